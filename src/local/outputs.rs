//! The files a run left in `./outputs`, for status and printing.

use std::fs;
use std::path::{Path, PathBuf};

use super::error::LocalError;
use super::run::{RunLayout, RunRecord};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Relative to the outputs directory.
    pub path: PathBuf,
    pub size: u64,
}

/// The run's outputs directory (`workdir/outputs`).
pub fn outputs_dir(record: &RunRecord) -> PathBuf {
    RunLayout(&record.run_dir).outputs()
}

/// Regular files under the outputs directory, sorted by path; symlinks are not followed.
pub fn list_outputs(record: &RunRecord) -> Result<Vec<OutputFile>, LocalError> {
    let root = outputs_dir(record);
    let mut files = Vec::new();
    if root.exists() {
        walk(&root, &root, &mut files)?;
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<OutputFile>) -> Result<(), LocalError> {
    for entry in fs::read_dir(dir).map_err(LocalError::io("cannot read", dir))? {
        let entry = entry.map_err(LocalError::io("cannot read", dir))?;
        let path = entry.path();
        let meta = entry
            .metadata()
            .map_err(LocalError::io("cannot stat", &path))?;
        if meta.is_dir() {
            walk(root, &path, files)?;
        } else if meta.is_file() {
            files.push(OutputFile {
                path: path.strip_prefix(root).unwrap_or(&path).to_path_buf(),
                size: meta.len(),
            });
        }
    }
    Ok(())
}
