//! Walks a source tree and selects the files of a snapshot: ignore rules, `.git` never,
//! symlinks followed inside the tree and refused when they leave it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::SnapshotError;
use super::ignore_rules::{IgnoreStack, Rule, Verdict};

/// A file selected for the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Relative path with `/` separators (the path inside the snapshot).
    pub path: String,
    /// Where to read it (through in-tree symlinks).
    pub abs: PathBuf,
    pub size: u64,
    pub executable: bool,
}

/// Why a path is or is not part of the snapshot (`amlops snapshot --explain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Explanation {
    Included {
        reincluded_by: Option<Rule>,
    },
    /// `path` (the path itself or a parent directory) is excluded by `rule`.
    Excluded {
        path: String,
        rule: Rule,
    },
    /// `.git` is never part of a snapshot.
    GitDirectory {
        path: String,
    },
    /// The path is outside the source tree.
    OutsideTree,
    NotFound {
        path: String,
    },
    /// Including it fails (e.g. a symlink leaving the tree).
    Refused {
        reason: String,
    },
}

struct Dir {
    abs: PathBuf,
    rel: String,
    rules: IgnoreStack,
    /// Canonical paths of this directory and its parents (loop detection).
    ancestors: Vec<PathBuf>,
}

/// All files of the tree under `root` that the ignore rules keep, sorted by path.
pub fn collect(root: &Path) -> Result<Vec<Candidate>, SnapshotError> {
    let root = canonical_root(root)?;
    let mut out = Vec::new();
    let mut pending = vec![Dir {
        rules: IgnoreStack::default().enter(&root)?,
        abs: root.clone(),
        rel: String::new(),
        ancestors: vec![root.clone()],
    }];
    while let Some(dir) = pending.pop() {
        let mut entries: Vec<_> = fs::read_dir(&dir.abs)
            .map_err(SnapshotError::io(&dir.abs))?
            .collect::<Result<_, _>>()
            .map_err(SnapshotError::io(&dir.abs))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let abs = entry.path();
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| SnapshotError::NonUtf8Path { path: abs.clone() })?;
            if name == ".git" {
                continue;
            }
            let rel = if dir.rel.is_empty() {
                name.clone()
            } else {
                format!("{}/{name}", dir.rel)
            };
            let followed = fs::metadata(&abs);
            let is_dir = followed.as_ref().is_ok_and(|m| m.is_dir());
            if matches!(dir.rules.verdict(&abs, is_dir), Verdict::Excluded(_)) {
                continue;
            }
            let is_link = entry
                .file_type()
                .map_err(SnapshotError::io(&abs))?
                .is_symlink();
            let canonical = if is_link {
                resolve_link(&root, &abs, &rel)?
            } else {
                dir.ancestors
                    .last()
                    .map(|p| p.join(&name))
                    .unwrap_or_else(|| abs.clone())
            };
            let meta = followed.map_err(SnapshotError::io(&abs))?;
            if meta.is_dir() {
                if dir.ancestors.contains(&canonical) {
                    return Err(SnapshotError::SymlinkLoop { link: rel });
                }
                let mut ancestors = dir.ancestors.clone();
                ancestors.push(canonical);
                pending.push(Dir {
                    rules: dir.rules.enter(&abs)?,
                    abs,
                    rel,
                    ancestors,
                });
            } else if meta.is_file() {
                let executable = meta.permissions().mode() & 0o111 != 0;
                out.push(Candidate {
                    path: rel,
                    abs,
                    size: meta.len(),
                    executable,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Explains the fate of `query` (absolute, or relative to `root`).
pub fn explain(root: &Path, query: &Path) -> Result<Explanation, SnapshotError> {
    let root = canonical_root(root)?;
    let relative = if query.is_absolute() {
        let absolute = query.canonicalize().unwrap_or_else(|_| query.to_path_buf());
        match absolute.strip_prefix(&root) {
            Ok(r) => r.to_path_buf(),
            Err(_) => return Ok(Explanation::OutsideTree),
        }
    } else {
        query.to_path_buf()
    };
    let parts: Vec<String> = relative
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let mut rules = IgnoreStack::default().enter(&root)?;
    let mut cur = root.clone();
    let mut rel = String::new();
    let mut reincluded_by = None;
    for (i, part) in parts.iter().enumerate() {
        let abs = cur.join(part);
        rel = if rel.is_empty() {
            part.clone()
        } else {
            format!("{rel}/{part}")
        };
        if part == ".git" {
            return Ok(Explanation::GitDirectory { path: rel });
        }
        let Ok(link_meta) = fs::symlink_metadata(&abs) else {
            return Ok(Explanation::NotFound { path: rel });
        };
        let is_dir = fs::metadata(&abs).is_ok_and(|m| m.is_dir());
        match rules.verdict(&abs, is_dir) {
            Verdict::Excluded(rule) => return Ok(Explanation::Excluded { path: rel, rule }),
            Verdict::Reincluded(rule) => reincluded_by = Some(rule),
            Verdict::Unmatched => {}
        }
        if link_meta.file_type().is_symlink()
            && let Err(e) = resolve_link(&root, &abs, &rel)
        {
            return Ok(Explanation::Refused {
                reason: e.to_string(),
            });
        }
        if i + 1 < parts.len() {
            rules = rules.enter(&abs)?;
            cur = abs;
        }
    }
    Ok(Explanation::Included { reincluded_by })
}

fn canonical_root(root: &Path) -> Result<PathBuf, SnapshotError> {
    match root.canonicalize() {
        Ok(p) if p.is_dir() => Ok(p),
        _ => Err(SnapshotError::NotADirectory {
            path: root.to_path_buf(),
        }),
    }
}

/// The canonical target of the symlink at `abs`; refused when it leaves `root`.
fn resolve_link(root: &Path, abs: &Path, rel: &str) -> Result<PathBuf, SnapshotError> {
    let target = abs
        .canonicalize()
        .map_err(|source| SnapshotError::SymlinkBroken {
            link: rel.to_string(),
            source,
        })?;
    if !target.starts_with(root) {
        return Err(SnapshotError::SymlinkEscape {
            link: rel.to_string(),
            target,
        });
    }
    Ok(target)
}
