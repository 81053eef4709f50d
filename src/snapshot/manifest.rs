//! The content-addressed manifest and the snapshot id.
//!
//! Identity (what makes two snapshots "the same"): for every included file, its relative
//! path (UTF-8, `/`-separated, as found on disk — no Unicode normalisation), its size, its
//! normalised mode (`0755` if any execute bit is set, else `0644`) and the BLAKE3 hash of its
//! content. The id is the BLAKE3 hash of those records sorted by path.
//! Not part of the identity: timestamps, owners, other permission bits, whether a file was
//! reached through a symlink, empty directories, the source kind or location, git metadata.

use std::io::Read;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::SnapshotError;
use super::walk::Candidate;

/// `hashVersion` of the code version's `hash` (the snapshot id).
pub const HASH_VERSION: &str = "amlops-blake3-v1";

/// Files at least this large are hashed with BLAKE3's internal parallelism too.
const LARGE_FILE: u64 = 1024 * 1024;
const READ_CHUNK: usize = 256 * 1024;

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub path: String,
    pub size: u64,
    /// `0o755` or `0o644`.
    pub mode: u32,
    /// Hex BLAKE3 of the content.
    pub hash: String,
}

/// The files of a snapshot, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "hashVersion")]
    pub hash_version: String,
    pub files: Vec<ManifestEntry>,
}

impl Manifest {
    /// Builds a manifest from already-hashed entries (sorted here).
    pub fn from_entries(mut files: Vec<ManifestEntry>) -> Manifest {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Manifest {
            hash_version: HASH_VERSION.to_string(),
            files,
        }
    }

    /// The snapshot id: hex BLAKE3 over `path NUL size NUL mode NUL hash LF` per file.
    pub fn snapshot_id(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        hasher.update(HASH_VERSION.as_bytes());
        hasher.update(b"\n");
        for f in &self.files {
            hasher.update(f.path.as_bytes());
            hasher.update(format!("\0{}\0{:o}\0{}\n", f.size, f.mode, f.hash).as_bytes());
        }
        hasher.finalize().to_hex().to_string()
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Hashes the candidates in parallel (rayon), streaming each file in fixed-size chunks.
pub fn hash_candidates(candidates: &[Candidate]) -> Result<Manifest, SnapshotError> {
    let entries = candidates
        .par_iter()
        .map(|c| {
            let (hash, size) = hash_file(&c.abs)?;
            Ok(ManifestEntry {
                path: c.path.clone(),
                size,
                mode: if c.executable { 0o755 } else { 0o644 },
                hash,
            })
        })
        .collect::<Result<Vec<_>, SnapshotError>>()?;
    Ok(Manifest::from_entries(entries))
}

/// Hex BLAKE3 and byte count of a file, read in chunks (constant memory).
pub fn hash_file(path: &std::path::Path) -> Result<(String, u64), SnapshotError> {
    let mut file = std::fs::File::open(path).map_err(SnapshotError::io(path))?;
    let large = file
        .metadata()
        .map(|m| m.len() >= LARGE_FILE)
        .unwrap_or(false);
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(SnapshotError::io(path))?;
        if n == 0 {
            break;
        }
        if large {
            hasher.update_rayon(&buf[..n]);
        } else {
            hasher.update(&buf[..n]);
        }
        size += n as u64;
    }
    Ok((hasher.finalize().to_hex().to_string(), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, hash: &str) -> ManifestEntry {
        ManifestEntry {
            path: path.into(),
            size: 1,
            mode: 0o644,
            hash: hash.into(),
        }
    }

    #[test]
    fn id_ignores_input_order_and_depends_on_every_field() {
        let a = Manifest::from_entries(vec![entry("b", "2"), entry("a", "1")]);
        let b = Manifest::from_entries(vec![entry("a", "1"), entry("b", "2")]);
        assert_eq!(a.snapshot_id(), b.snapshot_id());
        assert_eq!(a.snapshot_id().len(), 64);
        let mut changed = b.clone();
        changed.files[0].mode = 0o755;
        assert_ne!(changed.snapshot_id(), a.snapshot_id());
        let renamed = Manifest::from_entries(vec![entry("a2", "1"), entry("b", "2")]);
        assert_ne!(renamed.snapshot_id(), a.snapshot_id());
    }

    #[test]
    fn file_hash_matches_blake3_of_the_content_for_small_and_large_files() {
        let d = tempfile::tempdir().unwrap();
        for size in [0usize, 10, 3 * 1024 * 1024 + 7] {
            let content: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
            let p = d.path().join(format!("f{size}"));
            std::fs::write(&p, &content).unwrap();
            let (hash, n) = hash_file(&p).unwrap();
            assert_eq!(hash, blake3::hash(&content).to_hex().to_string());
            assert_eq!(n, size as u64);
        }
    }
}
