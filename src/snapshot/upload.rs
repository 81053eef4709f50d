//! Uploading a snapshot into a blob container, two ways.
//!
//! [`upload`] (the workspace's datastore: a stable container) is incremental and
//! content-addressed. Layout (container-relative): `LocalUpload/<snapshot id>/<path>` holds the
//! files as plain blobs (what Azure ML downloads for a run) and `amlops-manifests/<id>.json` is
//! written last, with the snapshot's [`Sketch`] as metadata: its presence means the folder is
//! complete, so an interrupted upload is never taken for done. Content already in the
//! container is found in the manifests of the most alike earlier snapshots and copied
//! server-side; no blob is shared between uploads of different snapshots, so they never wait
//! for one another.
//!
//! [`upload_whole`] (a container handed out for one upload, SAS `sp=rcwl`) sends every file
//! to the container root: no listing, no copies, no manifest.

use std::collections::HashSet;
use std::path::Path;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use tokio::sync::Semaphore;
use url::Url;

use super::index::{
    ContentIndex, ListedManifest, MANIFEST_PREFIX, SKETCH_METADATA, choose_sources, manifest_blob,
};
use super::manifest::Manifest;
use super::plan::{Step, blob_name, plan};
use super::progress::{Progress, Transfer};
use super::sketch::Sketch;
use super::{Snapshot, SnapshotError};
use crate::azure::blob::{BlobContainer, BlobError};

/// Earlier snapshots whose manifests a new one reads to find content (each is one GET of
/// about 150 bytes per file).
const MAX_SOURCES: usize = 3;

#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// Files uploaded at once. Each holds up to one block (8 MiB) in memory, so this bounds
    /// memory; small files are latency-bound and would take more.
    pub concurrency: usize,
    /// Server-side copies in flight at once. A copy sends no bytes and reads no file: it is one
    /// request whose time is the storage service's, so only many in flight keep a resubmission
    /// of thousands of files bounded by the service (a storage account takes ~20,000 requests/s).
    pub copy_concurrency: usize,
    /// Parent folder of snapshot folders (Azure ML's CLI uses `LocalUpload`).
    pub folder_root: String,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            concurrency: 8,
            copy_concurrency: 64,
            folder_root: "LocalUpload".to_string(),
        }
    }
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadOutcome {
    pub snapshot_id: String,
    /// Container-relative folder of the snapshot (`LocalUpload/<id>`, or `""` for the root).
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

impl UploadOutcome {
    fn new(snapshot: &Snapshot, container: &BlobContainer, folder: String) -> UploadOutcome {
        UploadOutcome {
            snapshot_id: snapshot.id.clone(),
            folder_url: container.blob_url(&folder),
            folder,
            already_complete: false,
            uploaded_files: 0,
            uploaded_bytes: 0,
            copied_files: 0,
            present_files: 0,
        }
    }

    fn count(&mut self, how: Transfer, size: u64) {
        match how {
            Transfer::Uploaded => {
                self.uploaded_files += 1;
                self.uploaded_bytes += size;
            }
            Transfer::Copied => self.copied_files += 1,
            Transfer::AlreadyPresent => self.present_files += 1,
        }
    }
}

/// Uploads `snapshot` into `container`, sending only content the container does not hold.
pub async fn upload(
    snapshot: &Snapshot,
    container: &BlobContainer,
    options: &UploadOptions,
    progress: &dyn Progress,
) -> Result<UploadOutcome, SnapshotError> {
    let root = options.folder_root.trim_end_matches('/');
    let folder = format!("{root}/{}", snapshot.id);
    let mut outcome = UploadOutcome::new(snapshot, container, folder.clone());
    let manifest = &snapshot.manifest;
    progress.start(manifest.files.len() as u64, manifest.total_bytes());
    let manifest_name = manifest_blob(&snapshot.id);
    if container.exists(&manifest_name).await? {
        outcome.already_complete = true;
        return Ok(outcome);
    }
    let sketch = Sketch::of(manifest);
    let index = content_index(container, &sketch, root, options).await?;
    let present: HashSet<String> = container
        .list(&format!("{folder}/"))
        .await?
        .into_iter()
        .map(|b| b.name)
        .collect();
    let plan = plan(manifest, &folder, &index, &present);
    let uploads = Semaphore::new(options.concurrency.max(1));
    let context = StepContext {
        container,
        root: &snapshot.root,
        folder: &folder,
        uploads: &uploads,
        progress,
    };
    for wave in [&plan.first, &plan.second] {
        let done: Vec<(Transfer, u64)> = stream::iter(wave.iter())
            .map(|step| run_step(step, &context))
            .buffer_unordered(options.copy_concurrency.max(options.concurrency).max(1))
            .try_collect()
            .await?;
        for (how, size) in done {
            outcome.count(how, size);
        }
    }
    let body = serde_json::to_vec(manifest).map_err(|e| SnapshotError::Manifest {
        blob: manifest_name.clone(),
        message: e.to_string(),
    })?;
    container
        .put_blob_with_metadata(
            &manifest_name,
            Bytes::from(body),
            &[(SKETCH_METADATA, &sketch.to_metadata())],
        )
        .await?;
    Ok(outcome)
}

/// Uploads every file of `snapshot` to the root of `container`, for a container handed out
/// for this one upload (it allows create/write/list/read but not delete, and holds nothing
/// to copy from).
pub async fn upload_whole(
    snapshot: &Snapshot,
    container: &BlobContainer,
    options: &UploadOptions,
    progress: &dyn Progress,
) -> Result<UploadOutcome, SnapshotError> {
    let mut outcome = UploadOutcome::new(snapshot, container, String::new());
    let manifest = &snapshot.manifest;
    progress.start(manifest.files.len() as u64, manifest.total_bytes());
    let uploads = Semaphore::new(options.concurrency.max(1));
    let context = StepContext {
        container,
        root: &snapshot.root,
        folder: "",
        uploads: &uploads,
        progress,
    };
    let steps: Vec<Step> = manifest.files.iter().map(Step::Upload).collect();
    let done: Vec<(Transfer, u64)> = stream::iter(steps.iter())
        .map(|step| run_step(step, &context))
        .buffer_unordered(options.concurrency.max(1))
        .try_collect()
        .await?;
    for (how, size) in done {
        outcome.count(how, size);
    }
    Ok(outcome)
}

/// Reads the manifests of the earlier snapshots most alike `sketch` (one listing, then at
/// most [`MAX_SOURCES`] GETs). A manifest that vanished or does not parse is skipped: it only
/// costs uploads it could have saved.
async fn content_index(
    container: &BlobContainer,
    sketch: &Sketch,
    root: &str,
    options: &UploadOptions,
) -> Result<ContentIndex, SnapshotError> {
    let listed: Vec<ListedManifest> = container
        .list_with_metadata(&format!("{MANIFEST_PREFIX}/"))
        .await?
        .iter()
        .filter_map(ListedManifest::from_item)
        .collect();
    let sources = choose_sources(sketch, &listed, MAX_SOURCES);
    let manifests: Vec<Option<(String, Manifest)>> = stream::iter(sources)
        .map(|id| async move {
            let found = container.get_blob(&manifest_blob(id)).await?;
            Ok::<_, BlobError>(found.and_then(|bytes| {
                let parsed = serde_json::from_slice::<Manifest>(&bytes);
                if let Err(e) = &parsed {
                    tracing::debug!(snapshot = id, error = %e, "skipping an unreadable manifest");
                }
                Some((id.to_string(), parsed.ok()?))
            }))
        })
        .buffered(MAX_SOURCES.min(options.copy_concurrency).max(1))
        .try_collect()
        .await?;
    let mut index = ContentIndex::default();
    for (id, manifest) in manifests.iter().flatten() {
        index.add(&format!("{root}/{id}"), manifest);
    }
    Ok(index)
}

struct StepContext<'a> {
    container: &'a BlobContainer,
    root: &'a Path,
    folder: &'a str,
    /// Bounds uploads (memory) while copies run at the wider stream width.
    uploads: &'a Semaphore,
    progress: &'a dyn Progress,
}

/// Performs one step; a copy whose source vanished falls back to an upload.
async fn run_step(step: &Step<'_>, cx: &StepContext<'_>) -> Result<(Transfer, u64), SnapshotError> {
    let (entry, how) = match step {
        Step::Present(entry) => (*entry, Transfer::AlreadyPresent),
        Step::Upload(entry) => (*entry, Transfer::Uploaded),
        Step::Copy { entry, from } => {
            let dst = blob_name(cx.folder, &entry.path);
            match cx.container.copy_blob(&dst, from).await {
                Ok(()) => (*entry, Transfer::Copied),
                Err(e) if is_missing_source(&e) => (*entry, Transfer::Uploaded),
                Err(e) => return Err(e.into()),
            }
        }
    };
    if how == Transfer::Uploaded {
        // The semaphore is never closed, so acquiring cannot fail.
        let _permit = cx.uploads.acquire().await.ok();
        cx.container
            .upload_file(
                &blob_name(cx.folder, &entry.path),
                &cx.root.join(&entry.path),
            )
            .await?;
    }
    cx.progress.file_done(&entry.path, entry.size, how);
    Ok((how, entry.size))
}

fn is_missing_source(e: &BlobError) -> bool {
    matches!(e, BlobError::Status { status: 404, .. })
        || matches!(e, BlobError::Status { code, .. } if code == "CannotVerifyCopySource")
}
