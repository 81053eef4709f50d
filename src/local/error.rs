//! Errors of the local executor. Each names the path, tool or run it is about and what
//! the user can do, because they end up verbatim in a `Ready=False` / `Failed` condition.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("interpreter {interpreter:?} not found: {detail}")]
    InterpreterNotFound { interpreter: String, detail: String },

    /// A required tool (conda, micromamba, a python version) is missing; the message
    /// names what to install.
    #[error("{0}")]
    MissingTool(String),

    #[error(
        "environment content hash {hash:?} is not a safe directory name (expected letters, digits, '.', '_' or '-')"
    )]
    InvalidContentHash { hash: String },

    #[error("{tool} failed ({status}) while {step}; full log at {}:\n{tail}", log.display())]
    ToolFailed {
        tool: String,
        step: String,
        status: String,
        log: PathBuf,
        tail: String,
    },

    #[error("{context} {}: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "run id {run_id:?} is not a safe directory name (expected letters, digits, '.', '_' or '-')"
    )]
    InvalidRunId { run_id: String },

    #[error("run {run_id} already exists at {}; load its record and poll it instead of starting it again", run_dir.display())]
    RunExists { run_id: String, run_dir: PathBuf },

    #[error("run {run_id} has an empty command")]
    EmptyCommand { run_id: String },

    #[error("snapshot entry {} is a symlink that leaves the snapshot directory", path.display())]
    SymlinkEscapes { path: PathBuf },

    #[error("could not start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },

    #[error("could not signal the processes of run {run_id} (supervisor pid {pid}): {source}")]
    Signal {
        run_id: String,
        pid: i32,
        #[source]
        source: nix::Error,
    },

    #[error("run record {} is unreadable: {detail}", path.display())]
    BadRecord { path: PathBuf, detail: String },
}

impl LocalError {
    /// Wraps an I/O error with what was being done and on which path.
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| LocalError::Io {
            context,
            path,
            source,
        }
    }
}
