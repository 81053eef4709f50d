//! The four source kinds, all resolved to one directory on disk that the rest of the
//! pipeline (walk, ignore rules, hashing, upload) treats the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    files: impl Iterator<Item = (&'a String, &'a [u8])> + Clone,
    cache_dir: &Path,
) -> Result<ResolvedSource, SnapshotError> {
    check_file_names(kind, files.clone().map(|(name, _)| name.as_str()))?;
    let temp = temp_dir(cache_dir)?;
    for (name, content) in files {
        let path = temp.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(SnapshotError::io(parent))?;
        }
        std::fs::write(&path, content).map_err(SnapshotError::io(&path))?;
    }
    Ok(ResolvedSource {
        root: temp.path().to_path_buf(),
        provenance: None,
        _temp: Some(temp),
    })
}

/// File names from specs (inline files, ConfigMap keys) must be plain relative paths that stay
/// inside the tree, each naming one file: `/`-separated parts, none empty, `.`, `..` or
/// `.git`, no control characters, and no name that is also the directory of another.
pub fn check_file_names<'a>(
    kind: &'static str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), SnapshotError> {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        check_relative(kind, name)?;
        if !seen.insert(name) {
            return Err(invalid(kind, name, "given twice"));
        }
    }
    // In sorted order, a directory's files follow right after a file of the same name
    // (`a`, `a!`, `a/b`: every name between shares the prefix `a`).
    let names: Vec<&str> = seen.into_iter().collect();
    for (i, file) in names.iter().enumerate() {
        let inside = names[i + 1..]
            .iter()
            .take_while(|n| n.starts_with(file))
            .find(|n| n.as_bytes().get(file.len()) == Some(&b'/'));
        if let Some(inside) = inside {
            return Err(SnapshotError::FileAndDirectory {
                source_kind: kind,
                file: file.to_string(),
                inside: inside.to_string(),
            });
        }
    }
    Ok(())
}

fn invalid(kind: &'static str, name: &str, reason: &'static str) -> SnapshotError {
    SnapshotError::InvalidFileName {
        source_kind: kind,
        name: name.to_string(),
        reason,
    }
}

fn check_relative(kind: &'static str, name: &str) -> Result<(), SnapshotError> {
    if name.chars().any(char::is_control) {
        return Err(invalid(kind, name, "control characters are not allowed"));
    }
    for part in name.split('/') {
        match part {
            "" => {
                return Err(invalid(
                    kind,
                    name,
                    "must be a relative path inside the source, without a leading, trailing or doubled `/`",
                ));
            }
            "." | ".." => {
                return Err(invalid(
                    kind,
                    name,
                    "must be a relative path inside the source, without `.` or `..` parts",
                ));
            }
            ".git" => return Err(invalid(kind, name, "`.git` is reserved")),
            _ => {}
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
            "a/./b",
            "a//b",
            "",
            ".git/config",
            "dir/",
            "nul\0name",
            "tab\tname",
        ] {
            assert!(
                check_file_names("inline files", [name].into_iter()).is_err(),
                "{name}"
            );
        }
        assert!(
            check_file_names("inline files", ["src/train.py", ".github/x"].into_iter()).is_ok()
        );
    }

    #[test]
    fn a_file_that_is_also_a_directory_is_named_with_the_file_inside_it() {
        let names = ["a", "a!", "a-b", "a/b", "b"];
        let message = check_file_names("inline files", names.into_iter())
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("'a' is a file and also the directory of 'a/b'"),
            "{message}"
        );
        assert!(check_file_names("inline files", ["a", "ab/c", "a.py"].into_iter()).is_ok());
        // Escaped, not printed raw.
        let message = check_file_names("inline files", ["x\0y"].into_iter())
            .unwrap_err()
            .to_string();
        assert!(message.contains(r"'x\0y'"), "{message}");
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert!(!format!("{:?}", Secret::new("ghp_abc")).contains("ghp_abc"));
    }
}
