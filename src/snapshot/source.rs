//! The four source kinds, all resolved to one directory on disk that the rest of the
//! pipeline (walk, ignore rules, hashing, upload) treats the same way.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

pub use crate::azure::Secret;

use super::SnapshotError;
use super::git_source::{self, GitSource};
use super::provenance::{self, GitProvenance};

/// Where the code of a run comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A directory on this machine (standalone mode).
    LocalDir(PathBuf),
    Git(GitSource),
    /// A ConfigMap's keys become files; `binary_data` too.
    ConfigMap {
        data: BTreeMap<String, String>,
        binary_data: BTreeMap<String, Vec<u8>>,
    },
    /// Relative path -> content, written from the Experiment spec.
    Inline(BTreeMap<String, String>),
}

/// A source materialised as a directory. Temporary directories are removed on drop.
#[derive(Debug)]
pub struct ResolvedSource {
    pub root: PathBuf,
    pub provenance: Option<GitProvenance>,
    _temp: Option<tempfile::TempDir>,
}

/// Resolves `source`; git clones are cached under `cache_dir`.
pub fn resolve(source: &Source, cache_dir: &Path) -> Result<ResolvedSource, SnapshotError> {
    match source {
        Source::LocalDir(dir) => {
            if !dir.is_dir() {
                return Err(SnapshotError::NotADirectory { path: dir.clone() });
            }
            Ok(ResolvedSource {
                root: dir.clone(),
                provenance: provenance::detect(dir),
                _temp: None,
            })
        }
        Source::Git(git) => {
            let temp = temp_dir(cache_dir)?;
            let provenance = git_source::checkout(git, &cache_dir.join("git"), temp.path())?;
            Ok(ResolvedSource {
                root: temp.path().to_path_buf(),
                provenance: Some(provenance),
                _temp: Some(temp),
            })
        }
        Source::ConfigMap { data, binary_data } => {
            let files = data
                .iter()
                .map(|(k, v)| (k, v.as_bytes()))
                .chain(binary_data.iter().map(|(k, v)| (k, v.as_slice())));
            write_files("ConfigMap", files, cache_dir)
        }
        Source::Inline(files) => write_files(
            "inline files",
            files.iter().map(|(k, v)| (k, v.as_bytes())),
            cache_dir,
        ),
    }
}

fn temp_dir(cache_dir: &Path) -> Result<tempfile::TempDir, SnapshotError> {
    std::fs::create_dir_all(cache_dir).map_err(SnapshotError::io(cache_dir))?;
    tempfile::Builder::new()
        .prefix("source-")
        .tempdir_in(cache_dir)
        .map_err(SnapshotError::io(cache_dir))
}

fn write_files<'a>(
    kind: &'static str,
    files: impl Iterator<Item = (&'a String, &'a [u8])>,
    cache_dir: &Path,
) -> Result<ResolvedSource, SnapshotError> {
    let temp = temp_dir(cache_dir)?;
    for (name, content) in files {
        validate_relative(kind, name)?;
        let path = temp.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(SnapshotError::io(parent))?;
        }
        if path.exists() {
            return Err(SnapshotError::InvalidFileName {
                source_kind: kind,
                name: name.clone(),
                reason: "given twice",
            });
        }
        std::fs::write(&path, content).map_err(SnapshotError::io(&path))?;
    }
    Ok(ResolvedSource {
        root: temp.path().to_path_buf(),
        provenance: None,
        _temp: Some(temp),
    })
}

/// File names from specs must be plain relative paths that stay inside the tree.
fn validate_relative(kind: &'static str, name: &str) -> Result<(), SnapshotError> {
    let bad = |reason| {
        Err(SnapshotError::InvalidFileName {
            source_kind: kind,
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.ends_with('/') {
        return bad("must name a file");
    }
    for c in Path::new(name).components() {
        match c {
            Component::Normal(part) if part == ".git" => return bad("`.git` is reserved"),
            Component::Normal(_) => {}
            _ => return bad("must be a relative path without `.`, `..` or a leading `/`"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_are_refused() {
        for name in [
            "../x",
            "/etc/passwd",
            "a/../../b",
            "",
            ".git/config",
            "dir/",
        ] {
            assert!(validate_relative("inline files", name).is_err(), "{name}");
        }
        assert!(validate_relative("inline files", "src/train.py").is_ok());
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert!(!format!("{:?}", Secret::new("ghp_abc")).contains("ghp_abc"));
    }
}
