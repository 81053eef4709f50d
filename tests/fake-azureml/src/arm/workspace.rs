//! Workspaces: any name exists, except names starting with `missing`. The answer carries the
//! keys of history/…child_run_download.json #3 that clients use, with `discoveryUrl` pointing at
//! the fake's own `/discovery` (the real one is `https://<region>.api.azureml.ms/discovery`).

use super::Ctx;
use crate::reply::Reply;
use serde_json::json;

/// Region every fake workspace lives in.
pub const LOCATION: &str = "eastus";
/// Storage account of every fake workspace when no storage backend is configured.
const DEFAULT_ACCOUNT: &str = "fakeamlstorage";

/// Workspaces whose name starts with `missing` do not exist (404 for them and everything under them).
pub fn is_missing(name: &str) -> bool {
    name.to_ascii_lowercase().starts_with("missing")
}

/// A stable GUID per workspace (ARM ids are case-insensitive).
pub fn workspace_guid(workspace_id: &str) -> String {
    uuid::Uuid::new_v5(
        &uuid::Uuid::NAMESPACE_URL,
        workspace_id.to_ascii_lowercase().as_bytes(),
    )
    .to_string()
}

pub fn storage_account(ctx: &Ctx<'_>) -> String {
    ctx.shared
        .options
        .storage
        .as_ref()
        .map(|s| s.account.clone())
        .unwrap_or_else(|| DEFAULT_ACCOUNT.to_string())
}

/// ARM id of the workspace's storage account.
pub fn storage_account_id(ctx: &Ctx<'_>) -> String {
    let (sub, rg) = (
        ctx.route.param("subscriptionId"),
        ctx.route.param("resourceGroupName"),
    );
    format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{}",
        storage_account(ctx)
    )
}

pub fn get(ctx: &Ctx<'_>) -> Reply {
    let (sub, rg, ws) = (
        ctx.route.param("subscriptionId"),
        ctx.route.param("resourceGroupName"),
        ctx.route.param("workspaceName"),
    );
    let provider = |kind: &str, name: &str| {
        format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/{kind}/{name}")
    };
    let guid = workspace_guid(&ctx.workspace_id);
    Reply::json(
        200,
        json!({
            "id": ctx.workspace_id,
            "name": ws,
            "type": "Microsoft.MachineLearningServices/workspaces",
            "location": LOCATION,
            "kind": "Default",
            "sku": {"name": "Basic", "tier": "Basic"},
            "identity": {"type": "SystemAssigned", "principalId": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, guid.as_bytes()).to_string(), "tenantId": "00000000-0000-0000-0000-000000000001"},
            "systemData": super::system_data(jiff::Timestamp::UNIX_EPOCH, jiff::Timestamp::UNIX_EPOCH),
            "properties": {
                "friendlyName": ws,
                "workspaceId": guid,
                "storageAccount": storage_account_id(ctx),
                "keyVault": provider("Microsoft.KeyVault/vaults", "fakeamlkeyvault"),
                "applicationInsights": provider("Microsoft.Insights/components", "fakeamlinsights"),
                "containerRegistry": provider("Microsoft.ContainerRegistry/registries", "fakeamlregistry"),
                "discoveryUrl": crate::history::discovery_url(&ctx.shared.base_url),
                "mlFlowTrackingUri": format!("azureml://{LOCATION}.api.azureml.ms/mlflow/v1.0{}", ctx.workspace_id),
                "provisioningState": "Succeeded",
                "publicNetworkAccess": "Enabled",
                "hbiWorkspace": false,
                "v1LegacyMode": false,
                "tenantId": "00000000-0000-0000-0000-000000000001",
            }
        }),
    )
}
