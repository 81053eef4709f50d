//! Environment and code versions: immutable once written (a different body for an existing
//! version is a 409, the same body a 200), lists with code `hash`/`hashVersion` filters,
//! and `startPendingUpload` for code.
//!
//! The content hash of a code version lives where azure-ai-ml puts it: in
//! `properties.properties["hash_sha256"]` and `properties.properties["hash_version"]`.

use super::immutable::{Rewrite, Rules, rewrite};
use super::{Ctx, list_reply, lock_poisoned, system_data, workspace};
use crate::reply::Reply;
use crate::storage;
use crate::store::Asset;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Environment,
    Code,
}

impl Kind {
    fn segment(self) -> &'static str {
        match self {
            Kind::Environment => "environments",
            Kind::Code => "codes",
        }
    }
}

const RULES: Rules = Rules {
    server_fields: &["provisioningState", "environmentType"],
    updatable: &["isArchived", "tags", "description", "stage"],
};

fn ids(ctx: &Ctx<'_>, kind: Kind) -> (String, String) {
    let id = format!(
        "{}/{}/{}/versions/{}",
        ctx.workspace_id,
        kind.segment(),
        ctx.route.param("name"),
        ctx.route.param("version")
    );
    (id.to_ascii_lowercase(), id)
}

fn render(kind: Kind, asset: &Asset) -> Value {
    let mut props = asset
        .body
        .get("properties")
        .cloned()
        .unwrap_or_else(|| json!({}));
    props["provisioningState"] = json!("Succeeded");
    for (field, default) in [
        ("isAnonymous", json!(false)),
        ("isArchived", json!(false)),
        ("tags", json!({})),
        ("properties", json!({})),
    ] {
        if props.get(field).is_none_or(Value::is_null) {
            props[field] = default;
        }
    }
    if kind == Kind::Environment {
        props["environmentType"] = json!("UserCreated");
        for (field, default) in [("autoRebuild", "Disabled"), ("osType", "Linux")] {
            if props.get(field).is_none() {
                props[field] = json!(default);
            }
        }
    }
    json!({
        "id": asset.id,
        "name": asset.name,
        "type": format!("Microsoft.MachineLearningServices/workspaces/{}/versions", kind.segment()),
        "systemData": system_data(asset.created_wall, asset.created_wall),
        "properties": props,
    })
}

pub fn get(ctx: &Ctx<'_>, kind: Kind) -> Reply {
    let (k, _) = ids(ctx, kind);
    let Ok(store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    match store.assets.get(&k) {
        Some(asset) => Reply::json(200, render(kind, asset)),
        None => Reply::arm_error(
            404,
            "UserError",
            format!(
                "Could not find asset with ID: azureml:{}:{}",
                ctx.route.param("name"),
                ctx.route.param("version")
            ),
        ),
    }
}

pub fn put(ctx: &Ctx<'_>, kind: Kind) -> Reply {
    let (k, id) = ids(ctx, kind);
    let body = match ctx.resource_body() {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let Ok(mut store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    if let Some(existing) = store.assets.get_mut(&k) {
        if rewrite(&RULES, &mut existing.body, &body) == Rewrite::Accepted {
            return Reply::json(200, render(kind, existing));
        }
        return Reply::arm_error(
            409,
            "Conflict",
            format!(
                "{} version {}:{} already exists with different content; only tags, description, stage and isArchived can change.",
                kind.segment(),
                ctx.route.param("name"),
                ctx.route.param("version")
            ),
        );
    }
    let asset = Asset {
        id,
        name: ctx.route.param("version").to_string(),
        body,
        created_wall: ctx.wall,
    };
    let rendered = render(kind, &asset);
    store.assets.insert(k, asset);
    Reply::json(201, rendered)
}

pub fn list(ctx: &Ctx<'_>, kind: Kind) -> Reply {
    let prefix = format!(
        "{}/{}/{}/versions/",
        ctx.workspace_id,
        kind.segment(),
        ctx.route.param("name")
    )
    .to_ascii_lowercase();
    let wanted = |asset: &Asset| {
        let prop = |name: &str| {
            asset
                .body
                .pointer(&format!("/properties/properties/{name}"))
                .and_then(Value::as_str)
        };
        let archived = asset
            .body
            .pointer("/properties/isArchived")
            .and_then(Value::as_bool)
            == Some(true);
        let view_ok = match ctx.query("listViewType").unwrap_or("ActiveOnly") {
            "All" => true,
            "ArchivedOnly" => archived,
            _ => !archived,
        };
        view_ok
            && ctx
                .query("hash")
                .is_none_or(|h| prop("hash_sha256") == Some(h))
            && ctx
                .query("hashVersion")
                .is_none_or(|v| prop("hash_version") == Some(v))
    };
    let Ok(store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    let mut items: Vec<&Asset> = store
        .assets
        .iter()
        .filter(|(k, a)| k.starts_with(&prefix) && wanted(a))
        .map(|(_, a)| a)
        .collect();
    items.sort_by(|a, b| {
        b.created_wall
            .cmp(&a.created_wall)
            .then_with(|| a.name.cmp(&b.name))
    });
    let top = ctx
        .query("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    list_reply(
        items
            .into_iter()
            .take(top)
            .map(|a| render(kind, a))
            .collect(),
    )
}

/// Hands out a container SAS for uploading the code version's files.
pub async fn start_pending_upload(ctx: &Ctx<'_>) -> Reply {
    let (k, _) = ids(ctx, Kind::Code);
    let request = ctx.body.as_ref();
    if let Some(t) = request
        .and_then(|b| b.get("pendingUploadType"))
        .and_then(Value::as_str)
        && t != "TemporaryBlobReference"
    {
        return Reply::arm_error(
            400,
            "UserError",
            format!("pendingUploadType {t:?} is not supported; use TemporaryBlobReference"),
        );
    }
    let upload_id = request
        .and_then(|b| b.get("pendingUploadId"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let container = storage::container_name(&k);
    let target = match &ctx.shared.options.storage {
        Some(backend) => {
            match storage::prepare_container(&ctx.shared.http, backend, &container, ctx.wall).await
            {
                Ok(target) => target,
                Err(e) => {
                    return Reply::arm_error(
                        500,
                        "InternalServerError",
                        format!("fake: preparing the upload container failed: {e}"),
                    );
                }
            }
        }
        None => storage::placeholder(&workspace::storage_account(ctx), &container),
    };
    Reply::json(
        200,
        json!({
            "blobReferenceForConsumption": {
                "blobUri": target.container_url,
                "storageAccountArmId": workspace::storage_account_id(ctx),
                "credential": {"credentialType": "SAS", "sasUri": target.sas_url},
            },
            "pendingUploadId": upload_id,
            "pendingUploadType": "TemporaryBlobReference",
        }),
    )
}
