//! Source snapshots: resolve a source (local dir, git, ConfigMap, inline files) to a tree,
//! select files with `.amlignore`/`.gitignore` rules, enforce limits, hash the content into
//! a manifest whose hash is the snapshot id, upload incrementally, and record git provenance.
//!
//! For the code version the actions layer registers: `hash` = [`Snapshot::id`],
//! `hashVersion` = [`HASH_VERSION`], `codeUri` = [`UploadOutcome::folder_url`]; the run
//! properties are [`GitProvenance::to_properties`]. What the id covers is documented in
//! [`manifest`]. [`take`] does blocking work (file I/O, rayon, gix): call it from
//! `spawn_blocking` in async code.

pub mod cli;
mod error;
mod git_source;
mod ignore_rules;
mod index;
pub mod limits;
pub mod manifest;
mod plan;
mod progress;
mod provenance;
mod sketch;
mod source;
mod upload;
mod walk;

use std::path::PathBuf;

pub use error::SnapshotError;
pub use git_source::{GitAuth, GitSource};
pub use ignore_rules::Rule;
pub use index::{MANIFEST_PREFIX, SKETCH_METADATA, manifest_blob};
pub use limits::Limits;
pub use manifest::{HASH_VERSION, Manifest, ManifestEntry};
pub use progress::{NoProgress, Progress, Transfer};
pub use provenance::{GitProvenance, strip_credentials};
pub use sketch::Sketch;
pub use source::{ResolvedSource, Secret, Source, check_file_names, resolve};
pub use upload::{UploadOptions, UploadOutcome, upload, upload_whole};
pub use walk::{Explanation, explain};

/// Options of [`take`].
#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    pub limits: Limits,
    /// Git clones and materialised ConfigMap/inline sources live here.
    pub cache_dir: PathBuf,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        let cache_dir = std::env::var_os("AMLOPS_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("amlops-cache"));
        SnapshotOptions {
            limits: Limits::default(),
            cache_dir,
        }
    }
}

/// A hashed snapshot, ready to upload.
#[derive(Debug)]
pub struct Snapshot {
    /// Hex BLAKE3 of the manifest: the code version's `hash`.
    pub id: String,
    pub manifest: Manifest,
    /// Where the files are read from.
    pub root: PathBuf,
    pub provenance: Option<GitProvenance>,
    /// Keeps temporary trees alive as long as the snapshot.
    _source: Option<ResolvedSource>,
}

/// Resolves, selects, checks limits and hashes `source`.
pub fn take(source: &Source, options: &SnapshotOptions) -> Result<Snapshot, SnapshotError> {
    let resolved = resolve(source, &options.cache_dir)?;
    let mut snapshot = take_dir(&resolved.root, &options.limits)?;
    snapshot.provenance = resolved.provenance.clone();
    snapshot._source = Some(resolved);
    Ok(snapshot)
}

/// Selects, checks limits and hashes the tree at `root` (no provenance lookup).
pub fn take_dir(root: &std::path::Path, limits: &Limits) -> Result<Snapshot, SnapshotError> {
    let candidates = walk::collect(root)?;
    let sizes: Vec<(&str, u64)> = candidates
        .iter()
        .map(|c| (c.path.as_str(), c.size))
        .collect();
    limits::check(&sizes, limits).map_err(SnapshotError::LimitExceeded)?;
    let manifest = manifest::hash_candidates(&candidates)?;
    Ok(Snapshot {
        id: manifest.snapshot_id(),
        manifest,
        root: root.to_path_buf(),
        provenance: None,
        _source: None,
    })
}
