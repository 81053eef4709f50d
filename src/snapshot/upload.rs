//! Incremental, content-addressed upload of a snapshot into a blob container.
//!
//! Layout (container-relative): `LocalUpload/<snapshot id>/<path>` holds the files as plain
//! blobs (what Azure ML downloads for a run), `amlops-index/v1.json` maps content hashes to a
//! blob holding that content, and `amlops-manifests/<snapshot id>.json` is written last: its
//! presence means the folder is complete, so an interrupted upload is never taken for done.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use url::Url;

use super::index::{ContentIndex, INDEX_BLOB};
use super::plan::{Step, blob_name, plan};
use super::progress::{Progress, Transfer};
use super::{Snapshot, SnapshotError};
use crate::azure::blob::{BlobContainer, BlobError, WriteCondition};

/// Where completed snapshots' manifests are kept.
pub const MANIFEST_PREFIX: &str = "amlops-manifests";

#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Files transferred at once.
    pub concurrency: usize,
    /// Parent folder of snapshot folders (Azure ML's CLI uses `LocalUpload`).
    pub folder_root: String,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            concurrency: 8,
            folder_root: "LocalUpload".to_string(),
        }
    }
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOutcome {
    pub snapshot_id: String,
    /// Container-relative folder of the snapshot (`LocalUpload/<id>`).
    pub folder: String,
    /// URL of that folder (no credentials): the code version's `codeUri`.
    pub folder_url: Url,
    /// The manifest was already there: nothing was sent.
    pub already_complete: bool,
    pub uploaded_files: u64,
    pub uploaded_bytes: u64,
    pub copied_files: u64,
    pub present_files: u64,
}

/// The manifest blob of a snapshot.
pub fn manifest_blob(snapshot_id: &str) -> String {
    format!("{MANIFEST_PREFIX}/{snapshot_id}.json")
}

/// Uploads `snapshot` into `container`, sending only content the container does not hold.
pub async fn upload(
    snapshot: &Snapshot,
    container: &BlobContainer,
    options: &UploadOptions,
    progress: &dyn Progress,
) -> Result<UploadOutcome, SnapshotError> {
    let id = &snapshot.id;
    let folder = format!("{}/{id}", options.folder_root.trim_end_matches('/'));
    let mut outcome = UploadOutcome {
        snapshot_id: id.clone(),
        folder_url: container.blob_url(&folder),
        folder: folder.clone(),
        already_complete: false,
        uploaded_files: 0,
        uploaded_bytes: 0,
        copied_files: 0,
        present_files: 0,
    };
    let manifest = &snapshot.manifest;
    progress.start(manifest.files.len() as u64, manifest.total_bytes());
    let manifest_name = manifest_blob(id);
    if container.exists(&manifest_name).await? {
        outcome.already_complete = true;
        return Ok(outcome);
    }
    let (index, etag) = read_index(container).await?;
    let present: HashSet<String> = container
        .list(&format!("{folder}/"))
        .await?
        .into_iter()
        .map(|b| b.name)
        .collect();
    let plan = plan(manifest, &folder, &index, &present);

    let mut new_locations = BTreeMap::new();
    for wave in [&plan.first, &plan.second] {
        let done: Vec<(Transfer, &str, u64, String)> = stream::iter(wave.iter())
            .map(|step| run_step(step, container, &snapshot.root, &folder, progress))
            .buffer_unordered(options.concurrency.max(1))
            .try_collect()
            .await?;
        for (how, hash, size, name) in done {
            match how {
                Transfer::Uploaded => {
                    outcome.uploaded_files += 1;
                    outcome.uploaded_bytes += size;
                    new_locations.entry(hash.to_string()).or_insert(name);
                }
                Transfer::Copied => outcome.copied_files += 1,
                Transfer::AlreadyPresent => outcome.present_files += 1,
            }
        }
    }
    if index.lacks_any(&new_locations) {
        write_index(container, index, etag, &new_locations).await?;
    }
    let body = serde_json::to_vec(manifest).map_err(|e| SnapshotError::Index {
        blob: manifest_name.clone(),
        message: e.to_string(),
    })?;
    container
        .put_blob(&manifest_name, Bytes::from(body))
        .await?;
    Ok(outcome)
}

/// Performs one step; a copy whose source vanished falls back to an upload.
async fn run_step<'a>(
    step: &'a Step<'a>,
    container: &BlobContainer,
    root: &Path,
    folder: &str,
    progress: &dyn Progress,
) -> Result<(Transfer, &'a str, u64, String), SnapshotError> {
    let (entry, how) = match step {
        Step::Present(entry) => (*entry, Transfer::AlreadyPresent),
        Step::Upload(entry) => (*entry, Transfer::Uploaded),
        Step::Copy { entry, from } => {
            let dst = blob_name(folder, &entry.path);
            match container.copy_blob(&dst, from).await {
                Ok(()) => (*entry, Transfer::Copied),
                Err(e) if is_missing_source(&e) => (*entry, Transfer::Uploaded),
                Err(e) => return Err(e.into()),
            }
        }
    };
    let name = blob_name(folder, &entry.path);
    if how == Transfer::Uploaded {
        container
            .upload_file(&name, &root.join(&entry.path))
            .await?;
    }
    progress.file_done(&entry.path, entry.size, how);
    Ok((how, entry.hash.as_str(), entry.size, name))
}

fn is_missing_source(e: &BlobError) -> bool {
    matches!(e, BlobError::Status { status: 404, .. })
        || matches!(e, BlobError::Status { code, .. } if code == "CannotVerifyCopySource")
}

async fn read_index(
    container: &BlobContainer,
) -> Result<(ContentIndex, Option<String>), SnapshotError> {
    match container.get_blob(INDEX_BLOB).await? {
        None => Ok((ContentIndex::default(), None)),
        Some(d) => {
            let index = serde_json::from_slice(&d.bytes).map_err(|e| SnapshotError::Index {
                blob: INDEX_BLOB.into(),
                message: e.to_string(),
            })?;
            Ok((index, Some(d.etag)))
        }
    }
}

/// Merges `additions` into the index with optimistic concurrency: on a concurrent write,
/// re-read and merge again (a few times), so no uploader's entries are lost.
async fn write_index(
    container: &BlobContainer,
    mut index: ContentIndex,
    mut etag: Option<String>,
    additions: &BTreeMap<String, String>,
) -> Result<(), SnapshotError> {
    let mut attempts = 0;
    loop {
        let merged = index.merged(additions);
        let body = serde_json::to_vec(&merged).map_err(|e| SnapshotError::Index {
            blob: INDEX_BLOB.into(),
            message: e.to_string(),
        })?;
        let condition = match &etag {
            Some(tag) => WriteCondition::IfMatch(tag.clone()),
            None => WriteCondition::IfNoneExists,
        };
        match container
            .put_blob_conditional(INDEX_BLOB, Bytes::from(body), condition)
            .await
        {
            Ok(_) => return Ok(()),
            Err(BlobError::ConditionNotMet { .. }) if attempts < 5 => {
                attempts += 1;
                (index, etag) = read_index(container).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
