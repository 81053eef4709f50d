//! Code actions: snapshot the source, find a code version with the same content hash (then
//! nothing is uploaded), else upload the snapshot and register the version.
//!
//! Snapshots go to the workspace's default datastore under `LocalUpload/<snapshot id>/`, a
//! stable container where the upload is content-addressed: a resubmission after one file
//! changed sends that file plus the manifest, and copies the rest server-side. When the
//! datastore refuses amlops (403 from `listSecrets` or from storage), the snapshot goes whole
//! into the container `startPendingUpload` hands out for its code version (a fresh one per
//! call, SAS without delete), and [`StagedCode::upload_path`] says why. The code version is
//! named by the snapshot id, so a crash between upload and job submission costs one hash
//! lookup on the next attempt.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::{azure_failure, needs_human, transient};
use crate::api::ExperimentSpec;
use crate::azure::WorkspaceClient;
use crate::azure::blob::{BlobContainer, BlobError};
use crate::azure::models::code::{CodeVersion, CodeVersionProperties};
use crate::azure::models::common::ResourceBase;
use crate::azure::storage::SnapshotStore;
use crate::reconcile::ActionFailure;
use crate::snapshot::{
    self, GitProvenance, HASH_VERSION, Limits, NoProgress, Snapshot, SnapshotError,
    SnapshotOptions, UploadOptions, UploadOutcome,
};

/// The code asset every snapshot of amlops is a version of.
pub const CODE_ASSET: &str = "amlops-snapshots";
/// Code version properties Azure ML looks content up by (what azure-ai-ml writes).
pub const HASH_PROPERTY: &str = "hash_sha256";
pub const HASH_VERSION_PROPERTY: &str = "hash_version";

/// A snapshot that is registered as a code version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedCode {
    /// ARM id of the code version (the job's `codeId`).
    pub code_id: String,
    pub snapshot_id: String,
    pub provenance: Option<GitProvenance>,
    /// Bytes sent to blob storage by this call (0 when the version already existed).
    pub uploaded_bytes: u64,
    pub reused: bool,
    /// How the snapshot was uploaded; `None` when it was not (reused).
    pub upload_path: Option<UploadPath>,
}

/// Where a snapshot was uploaded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadPath {
    /// Incrementally, into the workspace's default datastore.
    Datastore,
    /// Whole, into the container of `startPendingUpload`, because the datastore path was
    /// refused for `reason` (a frontend shows it as a Warning event: every later snapshot of
    /// this workspace is uploaded whole until the permission is granted).
    PendingUpload { reason: String },
}

/// How a snapshot failure shows in the status: storage and git trouble may pass, the rest
/// (limits, symlinks, bad names) needs the source fixed.
pub fn snapshot_failure(e: &SnapshotError) -> ActionFailure {
    match e {
        SnapshotError::Blob(_) => transient("SnapshotUploadFailed", e),
        SnapshotError::Git { .. } => transient("GitSourceFailed", e),
        SnapshotError::LimitExceeded(_) => needs_human("SnapshotTooLarge", e),
        _ => needs_human("InvalidSource", e),
    }
}

/// Resolves and hashes the source off the async runtime (file I/O, rayon, git).
pub async fn take(
    source: snapshot::Source,
    options: SnapshotOptions,
) -> Result<Snapshot, ActionFailure> {
    tokio::task::spawn_blocking(move || snapshot::take(&source, &options))
        .await
        .map_err(|e| transient("SnapshotFailed", format!("snapshot task failed: {e}")))?
        .map_err(|e| snapshot_failure(&e))
}

/// The snapshot options of an Experiment: its `snapshotLimits`, where set to a positive
/// number, else the defaults.
pub fn snapshot_options(spec: &ExperimentSpec) -> SnapshotOptions {
    let mut options = SnapshotOptions::default();
    if let Some(l) = &spec.snapshot_limits {
        let defaults = options.limits;
        let positive = |v: Option<i64>, d: u64| {
            v.and_then(|v| u64::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(d)
        };
        options.limits = Limits {
            max_bytes: positive(l.max_bytes, defaults.max_bytes),
            max_files: positive(l.max_files, defaults.max_files),
        };
    }
    options
}

/// The code version body for an uploaded snapshot.
pub fn version_body(snapshot_id: &str, code_uri: &str) -> CodeVersion {
    CodeVersion {
        id: None,
        name: None,
        properties: CodeVersionProperties {
            code_uri: Some(code_uri.to_string()),
            is_anonymous: Some(true),
            base: ResourceBase {
                description: None,
                properties: BTreeMap::from([
                    (HASH_PROPERTY.to_string(), snapshot_id.to_string()),
                    (HASH_VERSION_PROPERTY.to_string(), HASH_VERSION.to_string()),
                ]),
                tags: BTreeMap::new(),
            },
            provisioning_state: None,
        },
    }
}

/// The code id of a version with this content hash, whichever code asset it belongs to: the
/// lookup by hash covers the whole workspace (a recorded lookup on one asset answered another
/// asset's version). Versions that do not carry the hash, or carry no id, are not taken.
pub fn reusable_version(found: &[CodeVersion], hash: &str, hash_version: &str) -> Option<String> {
    found
        .iter()
        .filter(|v| {
            let p = &v.properties.base.properties;
            p.get(HASH_PROPERTY).map(String::as_str) == Some(hash)
                && p.get(HASH_VERSION_PROPERTY).map(String::as_str) == Some(hash_version)
        })
        .find_map(|v| v.id.clone())
}

/// Why a storage error means "the datastore does not let amlops in" (403), if it does.
fn refusal(e: &SnapshotError) -> Option<String> {
    match e {
        SnapshotError::Blob(b @ BlobError::Status { status: 403, .. }) => Some(format!(
            "the default datastore's storage refused amlops: {b}"
        )),
        _ => None,
    }
}

/// How [`upload_blocking`] sends a snapshot.
#[derive(Clone, Copy)]
enum Upload {
    Incremental,
    Whole,
}

/// Uploads on a blocking thread that drives the upload itself: the upload future is not
/// provably `Send` (its stream of borrowed steps), which the controller runtime requires.
/// Needs a multi-threaded runtime (the blob I/O is driven by its workers). The outer error is
/// a failed task, the inner one the upload's own.
async fn upload_blocking(
    snapshot: Arc<Snapshot>,
    container: BlobContainer,
    how: Upload,
) -> Result<Result<UploadOutcome, SnapshotError>, ActionFailure> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let options = UploadOptions::default();
        runtime.block_on(async {
            match how {
                Upload::Incremental => {
                    snapshot::upload(&snapshot, &container, &options, &NoProgress).await
                }
                Upload::Whole => {
                    snapshot::upload_whole(&snapshot, &container, &options, &NoProgress).await
                }
            }
        })
    })
    .await
    .map_err(|e| transient("SnapshotFailed", format!("upload task failed: {e}")))
}

/// Uploads `snapshot` to the datastore, or whole through `startPendingUpload` when the
/// datastore refuses.
async fn upload(
    client: &WorkspaceClient,
    snapshot: Arc<Snapshot>,
) -> Result<(UploadOutcome, UploadPath), ActionFailure> {
    let store = client
        .snapshot_store()
        .await
        .map_err(|e| azure_failure(&e))?;
    let reason = match store {
        SnapshotStore::Refused(reason) => reason,
        SnapshotStore::Datastore { container, .. } => {
            match upload_blocking(snapshot.clone(), container, Upload::Incremental).await? {
                Ok(outcome) => return Ok((outcome, UploadPath::Datastore)),
                Err(e) => {
                    let reason = refusal(&e).ok_or_else(|| snapshot_failure(&e))?;
                    client
                        .storage()
                        .refuse(reason.clone(), Instant::now())
                        .await;
                    reason
                }
            }
        }
    };
    let target = client
        .code_version_start_pending_upload(CODE_ASSET, &snapshot.id)
        .await
        .map_err(|e| azure_failure(&e))?;
    let container = BlobContainer::from_sas_url(target.sas_uri.expose())
        .map_err(|e| needs_human("InvalidUploadTarget", e))?;
    let outcome = upload_blocking(snapshot, container, Upload::Whole)
        .await?
        .map_err(|e| snapshot_failure(&e))?;
    Ok((outcome, UploadPath::PendingUpload { reason }))
}

/// Registers `snapshot` as a code version, uploading only when no version has its hash.
pub async fn stage(
    client: &WorkspaceClient,
    snapshot: Arc<Snapshot>,
) -> Result<StagedCode, ActionFailure> {
    let id = snapshot.id.clone();
    let found = client
        .code_version_list_by_hash(CODE_ASSET, &id, HASH_VERSION)
        .await
        .map_err(|e| azure_failure(&e))?;
    let mut staged = StagedCode {
        code_id: String::new(),
        snapshot_id: id.clone(),
        provenance: snapshot.provenance.clone(),
        uploaded_bytes: 0,
        reused: false,
        upload_path: None,
    };
    if let Some(code_id) = reusable_version(&found, &id, HASH_VERSION) {
        staged.code_id = code_id;
        staged.reused = true;
        return Ok(staged);
    }
    let (outcome, path) = upload(client, snapshot).await?;
    let body = version_body(&id, outcome.folder_url.as_str());
    let created = match client
        .code_version_create_or_update(CODE_ASSET, &id, &body)
        .await
    {
        Ok(created) => created,
        // A concurrent staging of the same snapshot registered it first, naming its own
        // upload (a whole upload goes to a fresh container): same content, so use that one.
        Err(e) if e.status() == Some(409) => client
            .code_version_get(CODE_ASSET, &id)
            .await
            .map_err(|e| azure_failure(&e))?
            .ok_or_else(|| azure_failure(&e))?,
        Err(e) => return Err(azure_failure(&e)),
    };
    staged.code_id = created
        .id
        .unwrap_or_else(|| client.workspace().code_version_id(CODE_ASSET, &id));
    staged.uploaded_bytes = outcome.uploaded_bytes;
    staged.upload_path = Some(path);
    Ok(staged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_body_carries_the_hash_where_lookups_find_it() {
        let v = serde_json::to_value(version_body("abc", "https://a/c/LocalUpload/abc")).unwrap();
        let p = &v["properties"];
        assert_eq!(p["codeUri"], "https://a/c/LocalUpload/abc");
        assert_eq!(p["properties"][HASH_PROPERTY], "abc");
        assert_eq!(p["properties"][HASH_VERSION_PROPERTY], HASH_VERSION);
        assert_eq!(p["isAnonymous"], true);
    }

    #[test]
    fn a_hash_hit_on_another_asset_is_reused_by_its_id() {
        let page: crate::azure::models::common::Page<CodeVersion> = serde_json::from_value(
            crate::recorded::response("code_hash_lookup_other_asset.json"),
        )
        .unwrap();
        let hash = "49eadfeccdc40c46a054f17f07829f9bd5bf4ff0b51fb49f2de9a63d5ddf0098";
        assert_eq!(
            reusable_version(&page.value, hash, "202208").as_deref(),
            Some(
                "/subscriptions/00000000-0000-0000-0000-000000000/resourceGroups/00000/providers/Microsoft.MachineLearningServices/workspaces/00000/codes/test_679501396464/versions/2"
            )
        );
        // A version whose hash is not ours (another hash version, or no id) is not taken.
        assert_eq!(reusable_version(&page.value, hash, HASH_VERSION), None);
        let mut no_id = page.value.clone();
        no_id[0].id = None;
        assert_eq!(reusable_version(&no_id, hash, "202208"), None);
    }

    #[test]
    fn only_a_403_from_storage_refuses_the_datastore() {
        let status = |status| {
            SnapshotError::Blob(BlobError::Status {
                op: "upload",
                blob: "LocalUpload/x/a.py".into(),
                status,
                code: "AuthorizationPermissionMismatch".into(),
                message: "This request is not authorized to perform this operation using this permission.".into(),
            })
        };
        let reason = refusal(&status(403)).unwrap();
        assert!(
            reason.contains("AuthorizationPermissionMismatch"),
            "{reason}"
        );
        assert_eq!(refusal(&status(503)), None);
        assert_eq!(refusal(&SnapshotError::LimitExceeded("x".into())), None);
    }

    #[test]
    fn limit_failures_need_a_human_blob_failures_are_retried() {
        let f = snapshot_failure(&SnapshotError::LimitExceeded("too big".into()));
        assert_eq!(
            (f.reason.as_str(), f.retryable()),
            ("SnapshotTooLarge", false)
        );
        let f = snapshot_failure(&SnapshotError::Git {
            url: "https://h/r".into(),
            message: "timeout".into(),
        });
        assert!(f.retryable());
    }
}
