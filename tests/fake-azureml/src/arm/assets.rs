//! Environment and code versions: immutable once written (a different body for an existing
//! version is a 409; not recorded, the spec calls versions immutable), lists with the code
//! `hash`/`hashVersion` lookup, and `startPendingUpload` for code.
//!
//! The content hash of a code version lives where azure-ai-ml puts it: in
//! `properties.properties["hash_sha256"]` and `properties.properties["hash_version"]`
//! (code/…2026-03-27.json #0).

use super::immutable::{Rewrite, Rules, rewrite};
use super::{Ctx, conda, list_reply, lock_poisoned, system_data, workspace};
use crate::errors;
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

/// The environment-only fields the service fills in (environment/…create_conda.json #0 for a
/// named environment; job/…ray_command_job.json #0 for an anonymous one: empty label, stage
/// `Logged`).
fn render_environment(props: &mut Value) {
    let anonymous = props["isAnonymous"] == json!(true);
    props["condaFile"] = conda::answered(props.get("condaFile"));
    props["environmentType"] = json!("UserCreated");
    if let Some(user_props) = props["properties"].as_object_mut() {
        let label = if anonymous { "" } else { "latest" };
        user_props.insert("azureml.labels".into(), json!(label));
    }
    let stage = if anonymous { "Logged" } else { "Development" };
    for (field, default) in [
        ("autoRebuild", json!("Disabled")),
        ("osType", json!("Linux")),
        ("stage", json!(stage)),
        ("autoDeleteSetting", Value::Null),
        ("intellectualProperty", Value::Null),
    ] {
        if props.get(field).is_none() {
            props[field] = default;
        }
    }
}

fn render(kind: Kind, asset: &Asset) -> Value {
    let mut props = asset
        .body
        .get("properties")
        .cloned()
        .unwrap_or_else(|| json!({}));
    props["provisioningState"] = json!("Succeeded");
    for (field, default) in [
        ("description", Value::Null),
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
        render_environment(&mut props);
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
        // Not recorded: a missing version (MFE shape).
        None => errors::mfe_user(
            404,
            format!(
                "Could not find asset with ID: azureml:{}:{}",
                ctx.route.param("name"),
                ctx.route.param("version")
            ),
            &["NotFound"],
        ),
    }
}

/// A short build id like `imgbldrun_5c0303c` (environment/…create_conda.json #0).
fn build_id() -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("imgbldrun_{}", &hex[..7])
}

/// Create, or the same body again. An environment answers 201 both times, the re-PUT keeping
/// the original `createdAt` (job/…ray_command_job.json #0); its first creation carries
/// `Build-ID` (environment/…create_conda.json #0 — job/…dependency_label_resolution.json #0
/// shows a creation without one, so clients must not rely on it). A code version answers a
/// same-body re-PUT with 200 (not recorded). Both carry `Location` on themselves (#0, code
/// #5).
pub fn put(ctx: &Ctx<'_>, kind: Kind) -> Reply {
    let (k, id) = ids(ctx, kind);
    let body = match ctx.resource_body() {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    let location = format!(
        "{}{id}?api-version={}",
        ctx.shared.base_url,
        crate::spec::API_VERSION
    );
    let Ok(mut store) = ctx.shared.store.lock() else {
        return lock_poisoned();
    };
    if let Some(existing) = store.assets.get_mut(&k) {
        if rewrite(&RULES, &mut existing.body, &body) == Rewrite::Accepted {
            let status = if kind == Kind::Environment { 201 } else { 200 };
            return Reply::json(status, render(kind, existing)).header("Location", location);
        }
        return errors::mfe_user(
            409,
            format!(
                "{} version {}:{} already exists with different content; only tags, description, stage and isArchived can change.",
                kind.segment(),
                ctx.route.param("name"),
                ctx.route.param("version")
            ),
            &["Conflict"],
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
    let reply = Reply::json(201, rendered).header("Location", location);
    match kind {
        Kind::Environment => reply.header("Build-ID", build_id()),
        Kind::Code => reply,
    }
}

/// Lists the versions of one asset, or with `hash` (code) the versions of ANY code asset of the
/// workspace with that content hash: code/…2026-03-27.json #0 asks under `test_486…` and gets a
/// version of `test_679…` (job/…dependency_label_resolution.json #12 likewise).
pub fn list(ctx: &Ctx<'_>, kind: Kind) -> Reply {
    let workspace_wide = kind == Kind::Code && ctx.query("hash").is_some();
    let prefix = if workspace_wide {
        format!("{}/{}/", ctx.workspace_id, kind.segment())
    } else {
        format!(
            "{}/{}/{}/versions/",
            ctx.workspace_id,
            kind.segment(),
            ctx.route.param("name")
        )
    }
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
            .then_with(|| a.id.cmp(&b.id))
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

/// 26 random characters of `[a-z0-9]`, the suffix of a pending-upload container.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let bytes = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
    bytes
        .iter()
        .flat_map(|u| u.as_bytes().iter().copied())
        .take(26)
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// Hands out a FRESH container per call, `<workspaceId>-<random>` (63 characters), with a
/// container SAS `sp=rcwl` (no delete) valid ~8 h (code/…2023-10-31.json #1; the container is
/// new per version in job/…dependency_label_resolution.json #12 too). `blobUri` carries `:443`
/// for an https account as in #1; Azurite's http URL is kept as is. The answer's
/// `pendingUploadType` is `None`, as recorded.
pub async fn start_pending_upload(ctx: &Ctx<'_>) -> Reply {
    let request = ctx.body.as_ref();
    if let Some(t) = request
        .and_then(|b| b.get("pendingUploadType"))
        .and_then(Value::as_str)
        && t != "TemporaryBlobReference"
    {
        // Not recorded: another pendingUploadType.
        return errors::mfe_user(
            400,
            format!("pendingUploadType {t:?} is not supported; use TemporaryBlobReference"),
            &["BadArgument"],
        );
    }
    let upload_id = request
        .and_then(|b| b.get("pendingUploadId"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let container = format!(
        "{}-{}",
        workspace::workspace_guid(&ctx.workspace_id),
        random_suffix()
    );
    let (blob_uri, sas_uri) = match &ctx.shared.options.storage {
        Some(backend) => {
            let sas = storage::ensure_container(&ctx.shared.http, backend, &container, ctx.wall)
                .await
                .and_then(|()| storage::pending_upload_sas(backend, &container, ctx.wall));
            match sas {
                Ok(sas) => {
                    let url = storage::container_url(backend, &container);
                    (with_https_port(&url), format!("{url}?{sas}"))
                }
                Err(e) => {
                    return errors::mfe(
                        500,
                        "SystemError",
                        format!("fake: preparing the upload container failed: {e}"),
                        &[],
                    );
                }
            }
        }
        None => {
            let url = format!(
                "https://{}.blob.core.windows.net/{container}",
                workspace::storage_account(ctx)
            );
            (
                with_https_port(&url),
                format!("{url}?sv=2021-12-02&sr=c&sp=rcwl&sig=fake-placeholder"),
            )
        }
    };
    Reply::json(
        200,
        json!({
            "blobReferenceForConsumption": {
                "blobUri": blob_uri,
                "storageAccountArmId": workspace::storage_account_id(ctx),
                "credential": {"credentialType": "SAS", "sasUri": sas_uri},
            },
            "pendingUploadId": upload_id,
            "pendingUploadType": "None",
        }),
    )
}

/// `https://host/path` -> `https://host:443/path` (code/…2023-10-31.json #1 `blobUri`).
fn with_https_port(url: &str) -> String {
    match url.strip_prefix("https://") {
        Some(rest) => {
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            if host.contains(':') {
                url.to_string()
            } else {
                format!("https://{host}:443/{path}")
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_blob_uris_carry_the_port_and_http_ones_stay() {
        assert_eq!(
            with_https_port("https://acct.blob.core.windows.net/c"),
            "https://acct.blob.core.windows.net:443/c"
        );
        assert_eq!(
            with_https_port("http://127.0.0.1:10000/devstoreaccount1/c"),
            "http://127.0.0.1:10000/devstoreaccount1/c"
        );
    }

    #[test]
    fn pending_upload_suffixes_are_26_lowercase_alphanumerics() {
        let (a, b) = (random_suffix(), random_suffix());
        assert_ne!(a, b);
        assert_eq!(a.len(), 26);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{a}"
        );
    }
}
