//! Blob upload for code snapshots (filled in by the snapshot issue).
