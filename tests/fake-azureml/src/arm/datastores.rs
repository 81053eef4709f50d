//! The workspace's default blob datastore `workspaceblobstore` and its `listSecrets`, as
//! job/…dependency_label_resolution.json #2–#3 show them: AccountKey credentials (never
//! returned by GET), container `azureml-blobstore-<workspace guid>`, and an account SAS
//! (`sp=rcuwdl`) from `listSecrets`.

use super::{Ctx, workspace};
use crate::errors;
use crate::reply::Reply;
use crate::storage;
use serde_json::{Value, json};

pub const DEFAULT_DATASTORE: &str = "workspaceblobstore";

/// Container of the default datastore.
pub fn default_container(ctx: &Ctx<'_>) -> String {
    format!(
        "azureml-blobstore-{}",
        workspace::workspace_guid(&ctx.workspace_id)
    )
}

/// Only the default datastore exists. Not recorded: the answer for another name (MFE shape).
fn check_name(ctx: &Ctx<'_>) -> Option<Reply> {
    let name = ctx.route.param("name");
    (name != DEFAULT_DATASTORE).then(|| {
        errors::mfe_user(
            404,
            format!("Datastore '{name}' was not found in workspace."),
            &["NotFound"],
        )
    })
}

/// GET: the shape of job/…dependency_label_resolution.json #2. `accountName` is the storage
/// backend's account (`devstoreaccount1` with Azurite); `protocol`/`endpoint` are the recorded
/// ones, so a client reaching Azurite needs its own blob endpoint override.
pub fn get(ctx: &Ctx<'_>) -> Reply {
    if let Some(missing) = check_name(ctx) {
        return missing;
    }
    let mut system_data =
        super::system_data(jiff::Timestamp::UNIX_EPOCH, jiff::Timestamp::UNIX_EPOCH);
    if let Some(fields) = system_data.as_object_mut() {
        // #2: created by the workspace itself, so no `createdBy`, and modified by an Application.
        fields.remove("createdBy");
        fields.remove("createdByType");
        fields.insert("lastModifiedByType".into(), json!("Application"));
    }
    Reply::json(
        200,
        json!({
            "id": format!("{}/datastores/{DEFAULT_DATASTORE}", ctx.workspace_id),
            "name": DEFAULT_DATASTORE,
            "type": "Microsoft.MachineLearningServices/workspaces/datastores",
            "properties": {
                "description": null,
                "tags": null,
                "properties": null,
                "isDefault": true,
                "credentials": {"credentialsType": "AccountKey"},
                "subscriptionId": ctx.route.param("subscriptionId"),
                "resourceGroup": ctx.route.param("resourceGroupName"),
                "datastoreType": "AzureBlob",
                "accountName": workspace::storage_account(ctx),
                "containerName": default_container(ctx),
                "endpoint": "core.windows.net",
                "protocol": "https",
                "serviceDataAccessAuthIdentity": "WorkspaceSystemAssignedIdentity",
            },
            "systemData": system_data,
        }),
    )
}

/// POST listSecrets with `{"expirableSecret": true, "expireAfterHours": n}`: an account SAS
/// valid `n` hours (spec `SecretExpiry` default 1), `"?"`-prefixed as in #3. The datastore
/// container is created in the storage backend if missing. With
/// `Options.datastore_secrets_forbidden` the answer is 403 `AuthorizationFailed` in the ARM shape
/// (not recorded: the ARM RBAC refusal for a caller without the `listSecrets/action` permission).
pub async fn list_secrets(ctx: &Ctx<'_>) -> Reply {
    if let Some(missing) = check_name(ctx) {
        return missing;
    }
    if ctx.shared.options.datastore_secrets_forbidden {
        return Reply::arm_error(
            403,
            "AuthorizationFailed",
            format!(
                "The client does not have authorization to perform action 'Microsoft.MachineLearningServices/workspaces/datastores/listSecrets/action' over scope '{}/datastores/{DEFAULT_DATASTORE}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
                ctx.workspace_id
            ),
        );
    }
    let hours = ctx
        .body
        .as_ref()
        .and_then(|b| b.get("expireAfterHours"))
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let sas = match &ctx.shared.options.storage {
        Some(backend) => {
            let container = default_container(ctx);
            let prepared =
                storage::ensure_container(&ctx.shared.http, backend, &container, ctx.wall).await;
            match prepared.and_then(|()| storage::datastore_sas(backend, ctx.wall, hours)) {
                Ok(sas) => sas,
                Err(e) => {
                    return errors::mfe(
                        500,
                        "SystemError",
                        format!("fake: preparing the datastore container failed: {e}"),
                        &[],
                    );
                }
            }
        }
        None => {
            "sv=2021-12-02&ss=bf&srt=co&sp=rcuwdl&se=2099-01-01T00%3A00%3A00Z&sig=fake-placeholder"
                .to_string()
        }
    };
    Reply::json(
        200,
        json!({"secretsType": "Sas", "sasToken": format!("?{sas}")}),
    )
}
