//! Upload progress hook; the CLI renders it as a progress bar, controllers ignore it.

/// How a file reached the snapshot folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// Its bytes were sent.
    Uploaded,
    /// Copied server-side from a blob holding the same content.
    Copied,
    /// Already in the folder (an earlier, interrupted upload of the same snapshot).
    AlreadyPresent,
}

/// Receives upload progress. Calls may come from several tasks at once.
pub trait Progress: Send + Sync {
    /// Work about to start: files and bytes in the snapshot.
    fn start(&self, _files: u64, _bytes: u64) {}
    /// One file is in place.
    fn file_done(&self, _path: &str, _bytes: u64, _how: Transfer) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {}
