//! How long-running local work (environment creation) reports what it is doing, so a
//! CLI can drive a spinner and a controller can log, without this module knowing either.

/// Receives human-readable progress messages.
pub trait Progress: Sync {
    /// A new step started, e.g. "creating venv in .amlops/envs/abc".
    fn step(&self, message: &str);
}

/// Discards progress (tests, non-interactive callers).
pub struct NoProgress;

impl Progress for NoProgress {
    fn step(&self, _message: &str) {}
}
