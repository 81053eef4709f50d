//! Code actions: snapshot the source, find a code version with the same content hash (then
//! nothing is uploaded), else upload the changed blobs and register the version.
//!
//! Every snapshot goes to one upload slot of the workspace, so the content-addressed upload
//! sends only blobs the container does not hold yet: a resubmission after one file changed
//! uploads that file plus the manifest. The code version is named by the snapshot id, so a
//! crash between upload and job submission costs one hash lookup on the next attempt.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{azure_failure, needs_human, transient};
use crate::azure::WorkspaceClient;
use crate::azure::blob::BlobContainer;
use crate::azure::models::code::{CodeVersion, CodeVersionProperties};
use crate::azure::models::common::ResourceBase;
use crate::reconcile::ActionFailure;
use crate::snapshot::{
    self, GitProvenance, HASH_VERSION, NoProgress, Snapshot, SnapshotError, SnapshotOptions,
    UploadOptions,
};

/// The code asset every snapshot of amlops is a version of.
pub const CODE_ASSET: &str = "amlops-snapshots";
/// The version whose pending upload gives the (stable) container snapshots are uploaded to.
pub const UPLOAD_SLOT: &str = "amlops-upload-slot";
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

/// Uploads on a blocking thread that drives the upload itself: the upload future is not
/// provably `Send` (its stream of borrowed steps), which the controller runtime requires.
/// Needs a multi-threaded runtime (the blob I/O is driven by its workers).
async fn upload_blocking(
    snapshot: Arc<Snapshot>,
    container: BlobContainer,
) -> Result<snapshot::UploadOutcome, ActionFailure> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        runtime.block_on(snapshot::upload(
            &snapshot,
            &container,
            &UploadOptions::default(),
            &NoProgress,
        ))
    })
    .await
    .map_err(|e| transient("SnapshotFailed", format!("upload task failed: {e}")))?
    .map_err(|e| snapshot_failure(&e))
}

/// Registers `snapshot` as a code version, uploading only when no version has its hash.
pub async fn stage(
    client: &WorkspaceClient,
    snapshot: Arc<Snapshot>,
) -> Result<StagedCode, ActionFailure> {
    let id = &snapshot.id.clone();
    let existing = client
        .code_version_list_by_hash(CODE_ASSET, id, HASH_VERSION)
        .await
        .map_err(|e| azure_failure(&e))?;
    let mut staged = StagedCode {
        code_id: String::new(),
        snapshot_id: id.clone(),
        provenance: snapshot.provenance.clone(),
        uploaded_bytes: 0,
        reused: false,
    };
    if let Some(found) = existing.first() {
        let version = found.name.as_deref().unwrap_or(id);
        staged.code_id = found
            .id
            .clone()
            .unwrap_or_else(|| client.workspace().code_version_id(CODE_ASSET, version));
        staged.reused = true;
        return Ok(staged);
    }
    let target = client
        .code_version_start_pending_upload(CODE_ASSET, UPLOAD_SLOT)
        .await
        .map_err(|e| azure_failure(&e))?;
    let container = BlobContainer::from_sas_url(target.sas_uri.expose())
        .map_err(|e| needs_human("InvalidUploadTarget", e))?;
    let outcome = upload_blocking(snapshot, container).await?;
    let body = version_body(id, outcome.folder_url.as_str());
    let created = client
        .code_version_create_or_update(CODE_ASSET, id, &body)
        .await
        .map_err(|e| azure_failure(&e))?;
    staged.code_id = created
        .id
        .unwrap_or_else(|| client.workspace().code_version_id(CODE_ASSET, id));
    staged.uploaded_bytes = outcome.uploaded_bytes;
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
    fn limit_failures_need_a_human_blob_failures_are_retried() {
        let f = snapshot_failure(&SnapshotError::LimitExceeded("too big".into()));
        assert_eq!(
            (f.reason.as_str(), f.retryable),
            ("SnapshotTooLarge", false)
        );
        let f = snapshot_failure(&SnapshotError::Git {
            url: "https://h/r".into(),
            message: "timeout".into(),
        });
        assert!(f.retryable);
    }
}
