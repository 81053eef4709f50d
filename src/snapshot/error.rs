//! Typed snapshot errors: each names the path, link, limit or blob it is about.

use std::path::PathBuf;

use crate::azure::blob::BlobError;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("source directory '{}' does not exist or is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("symlink '{link}' points outside the source tree (to '{}'); copy the file into the tree or remove the link", target.display())]
    SymlinkEscape { link: String, target: PathBuf },
    #[error("symlink '{link}' cannot be resolved: {source}")]
    SymlinkBroken {
        link: String,
        #[source]
        source: std::io::Error,
    },
    #[error("symlink '{link}' points to one of its own parent directories (a loop)")]
    SymlinkLoop { link: String },
    #[error("'{}' is not valid UTF-8; blob names must be UTF-8", path.display())]
    NonUtf8Path { path: PathBuf },
    #[error("invalid pattern in ignore file '{}': {message}", file.display())]
    IgnoreFile { file: PathBuf, message: String },
    #[error("{0}")]
    LimitExceeded(String),
    #[error("invalid file name '{}' in {source_kind}: {reason}", name.escape_debug())]
    InvalidFileName {
        source_kind: &'static str,
        name: String,
        reason: &'static str,
    },
    #[error(
        "{source_kind}: '{}' is a file and also the directory of '{}'; rename one of them",
        file.escape_debug(),
        inside.escape_debug()
    )]
    FileAndDirectory {
        source_kind: &'static str,
        file: String,
        inside: String,
    },
    #[error("reading '{}': {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("git source {url}: {message}")]
    Git { url: String, message: String },
    #[error("blob storage: {0}")]
    Blob(#[from] BlobError),
    #[error("snapshot manifest '{blob}' could not be encoded: {message}")]
    Manifest { blob: String, message: String },
}

impl SnapshotError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> SnapshotError {
        let path = path.into();
        move |source| SnapshotError::Io { path, source }
    }
}
