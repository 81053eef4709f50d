//! `.amlignore`/`.gitignore` rules on a real tree: arbitrary rule files and file names are
//! written to a temporary directory, then the snapshot walk selects files and `explain` tells
//! the fate of each. Besides panics, the two must agree: a file is in the snapshot exactly
//! when `explain` says it is included.
#![no_main]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use amlops::snapshot::{Explanation, Limits, explain, take_dir};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Tree {
    /// Ignore files: the directory (relative), `.amlignore` (true) or `.gitignore`, the text.
    rules: Vec<(String, bool, String)>,
    files: Vec<String>,
}

fuzz_target!(|tree: Tree| {
    if tree.rules.len() > 4 || tree.files.len() > 16 {
        return;
    }
    let Ok(dir) = scratch() else { return };
    let root = dir.path();
    for (at, aml, text) in &tree.rules {
        let name = if *aml { ".amlignore" } else { ".gitignore" };
        let _ = write(root, &relative(at).join(name), text);
    }
    let files: Vec<String> = tree
        .files
        .iter()
        .map(|f| relative(f))
        .filter(|f| !f.as_os_str().is_empty() && write(root, f, "x").is_ok())
        .filter_map(|f| f.to_str().map(str::to_string))
        .collect();
    let Ok(snapshot) = take_dir(root, &Limits::default()) else {
        return;
    };
    let taken: BTreeSet<&str> = snapshot
        .manifest
        .files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    for f in &files {
        let included = match explain(root, Path::new(f)) {
            Ok(Explanation::Included { .. }) => true,
            Ok(Explanation::Excluded { .. } | Explanation::GitDirectory { .. }) => false,
            // A name that is now a directory (a later file wrote under it), or refused.
            Ok(_) | Err(_) => continue,
        };
        if root.join(f).is_file() {
            assert_eq!(
                included,
                taken.contains(f.as_str()),
                "{f}: explain and the snapshot disagree; {tree:?}"
            );
        }
    }
});

/// A fresh directory in memory where there is one (many are made per second).
fn scratch() -> std::io::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    match shm.is_dir() {
        true => tempfile::tempdir_in(shm),
        false => tempfile::tempdir(),
    }
}

/// `s` as a short relative path of plain names (at most 3 levels of 12 bytes).
fn relative(s: &str) -> PathBuf {
    s.split('/')
        .filter(|c| !c.is_empty() && *c != "." && *c != "..")
        .map(|c| {
            let c: String = c.chars().filter(|ch| *ch != '\0').collect();
            let mut end = c.len().min(12);
            while !c.is_char_boundary(end) {
                end -= 1;
            }
            c[..end].to_string()
        })
        .filter(|c| !c.is_empty() && c != "." && c != "..")
        .take(3)
        .collect()
}

fn write(root: &Path, rel: &Path, text: &str) -> std::io::Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)
}
