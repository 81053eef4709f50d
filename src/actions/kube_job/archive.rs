//! The source snapshot as a gzipped tar in a ConfigMap, which the run's init container
//! unpacks.
//!
//! The archive is deterministic (files in manifest order, fixed owner, time and modes), so
//! the same snapshot always gives the same bytes. Each run gets its own ConfigMap, named
//! like its Job: it is created owned by the Experiment (so nothing is orphaned if amlops
//! stops before the Job exists) and handed to the Job once that exists, so Kubernetes
//! garbage-collects it with the Job (`ttlSecondsAfterFinished`, cancel, Experiment
//! deletion). A ConfigMap shared by every run of a snapshot would save etcd space for
//! reruns, but would need amlops to count its users to ever delete it.

use std::collections::BTreeMap;
use std::io::Write;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::JobRun;
use super::manifest::{experiment_owner, labels};
use super::names::{SNAPSHOT_ANNOTATION, job_name};
use crate::actions::{needs_human, transient};
use crate::reconcile::ActionFailure;
use crate::snapshot::Snapshot;

/// Key of the archive in the ConfigMap (the file name the init container reads).
pub const ARCHIVE_KEY: &str = "source.tar.gz";

/// The largest archive put in a ConfigMap. Kubernetes refuses ConfigMaps over 1 MiB of
/// data; the rest is left for the object's metadata.
pub const MAX_ARCHIVE_BYTES: usize = 960 * 1024;

/// A packed snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceArchive {
    pub snapshot_id: String,
    /// The gzipped tar.
    pub bytes: Vec<u8>,
}

/// A sink that refuses to grow past a limit, so an oversized snapshot is refused after
/// compressing at most `limit` bytes of output rather than all of it.
struct Bounded {
    bytes: Vec<u8>,
    limit: usize,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > self.limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::FileTooLarge,
                "archive over the limit",
            ));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SourceArchive {
    /// Packs the snapshot's files (read from `snapshot.root`; blocking). Each file is checked
    /// against its manifest hash, so the archive holds exactly the snapshot its id names.
    pub fn pack(snapshot: &Snapshot, limit: usize) -> Result<Self, ActionFailure> {
        let sink = Bounded {
            bytes: Vec::new(),
            limit,
        };
        let gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(sink, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let too_large = || too_large(snapshot, limit);
        let io_failure = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::FileTooLarge {
                too_large()
            } else {
                transient(
                    "SnapshotFailed",
                    format!("cannot pack snapshot {}: {e}", snapshot.id),
                )
            }
        };
        for entry in &snapshot.manifest.files {
            let path = snapshot.root.join(&entry.path);
            let content = std::fs::read(&path).map_err(|e| {
                transient(
                    "SnapshotFailed",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            if blake3::hash(&content).to_hex().as_str() != entry.hash {
                return Err(transient(
                    "SnapshotChanged",
                    format!(
                        "{} changed after snapshot {} was taken; the next attempt takes a new one",
                        entry.path, snapshot.id
                    ),
                ));
            }
            // A zeroed GNU header: no owner, time 0; long paths get GNU long-name entries.
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(entry.mode);
            tar.append_data(&mut header, &entry.path, content.as_slice())
                .map_err(io_failure)?;
        }
        let gz = tar.into_inner().map_err(io_failure)?;
        let sink = gz.finish().map_err(io_failure)?;
        Ok(SourceArchive {
            snapshot_id: snapshot.id.clone(),
            bytes: sink.bytes,
        })
    }
}

fn too_large(snapshot: &Snapshot, limit: usize) -> ActionFailure {
    needs_human(
        "SnapshotTooLargeForCluster",
        format!(
            "the source snapshot ({} files, {} bytes) compresses to more than {limit} bytes, \
             the most a ConfigMap can carry to a cluster run; use a git source, or leave large \
             files out with .amlignore",
            snapshot.manifest.files.len(),
            snapshot.manifest.total_bytes(),
        ),
    )
}

/// The run's immutable ConfigMap holding the archive, owned by the Experiment until
/// `KubeJobs::submit` hands it to the Job.
pub fn config_map(run: &JobRun<'_>, archive: &SourceArchive) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(job_name(run.run_id)),
            namespace: Some(run.owner.namespace.clone()),
            labels: Some(labels(run)),
            annotations: Some(BTreeMap::from([(
                SNAPSHOT_ANNOTATION.to_string(),
                archive.snapshot_id.clone(),
            )])),
            owner_references: Some(vec![experiment_owner(run.owner)]),
            ..ObjectMeta::default()
        },
        binary_data: Some(BTreeMap::from([(
            ARCHIVE_KEY.to_string(),
            ByteString(archive.bytes.clone()),
        )])),
        immutable: Some(true),
        ..ConfigMap::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Limits, take_dir};
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        dir
    }

    fn unpack(bytes: &[u8]) -> Vec<(String, u32, u64, Vec<u8>)> {
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        tar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut content = Vec::new();
                e.read_to_end(&mut content).unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    content,
                )
            })
            .collect()
    }

    #[test]
    fn the_archive_holds_exactly_the_snapshot_and_is_the_same_every_time() {
        let dir = tree(&[
            ("train.py", b"print('hi')\n"),
            ("pkg/util.py", b"X = 1\n"),
            ("run.sh", b"#!/bin/sh\n"),
            (&format!("deep/{}/long.txt", "d".repeat(120)), b"long path"),
        ]);
        std::fs::set_permissions(
            dir.path().join("run.sh"),
            std::fs::Permissions::from_mode(0o775),
        )
        .unwrap();
        let snapshot = take_dir(dir.path(), &Limits::default()).unwrap();
        let a = SourceArchive::pack(&snapshot, MAX_ARCHIVE_BYTES).unwrap();
        assert_eq!(a.snapshot_id, snapshot.id);
        let files = unpack(&a.bytes);
        let names: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
        let manifest: Vec<&str> = snapshot
            .manifest
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(names, manifest);
        let get = |name: &str| files.iter().find(|f| f.0 == name).unwrap();
        assert_eq!(get("train.py").3, b"print('hi')\n");
        assert_eq!(get("train.py").1, 0o644);
        assert_eq!(get("run.sh").1, 0o755);
        assert!(files.iter().all(|f| f.2 == 0), "no timestamps");
        assert_eq!(get(manifest[0]).3, b"long path", "{}", manifest[0]);
        // Touching a file (same content) changes nothing.
        std::fs::write(dir.path().join("train.py"), b"print('hi')\n").unwrap();
        let again = SourceArchive::pack(&snapshot, MAX_ARCHIVE_BYTES).unwrap();
        assert_eq!(again.bytes, a.bytes);
    }

    #[test]
    fn a_file_changed_since_the_snapshot_is_not_packed() {
        let dir = tree(&[("train.py", b"v1")]);
        let snapshot = take_dir(dir.path(), &Limits::default()).unwrap();
        std::fs::write(dir.path().join("train.py"), b"v2").unwrap();
        let err = SourceArchive::pack(&snapshot, MAX_ARCHIVE_BYTES).unwrap_err();
        assert_eq!(err.reason, "SnapshotChanged");
        assert!(err.retryable());
    }

    #[test]
    fn an_archive_over_the_limit_is_refused_naming_size_limit_and_way_out() {
        // Incompressible content: bytes of a hash chain.
        let mut noise = Vec::new();
        let mut h = blake3::hash(b"seed");
        while noise.len() < 64 * 1024 {
            noise.extend_from_slice(h.as_bytes());
            h = blake3::hash(h.as_bytes());
        }
        let dir = tree(&[("data.bin", &noise)]);
        let snapshot = take_dir(dir.path(), &Limits::default()).unwrap();
        let err = SourceArchive::pack(&snapshot, 32 * 1024).unwrap_err();
        assert_eq!(err.reason, "SnapshotTooLargeForCluster");
        assert!(!err.retryable());
        assert!(
            err.message
                .contains("(1 files, 65536 bytes) compresses to more than 32768 bytes"),
            "{}",
            err.message
        );
        assert!(err.message.contains("git source") && err.message.contains(".amlignore"));
        assert!(SourceArchive::pack(&snapshot, 128 * 1024).is_ok());
    }
}
