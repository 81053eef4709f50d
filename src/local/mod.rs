//! The local executor, for `ComputeTarget` `local`: stage environments, run scripts as
//! supervised process groups under `<state>/runs/`, logs, outputs, timeouts, cancel.
//!
//! It knows nothing of Kubernetes or the CRD types; callers map their specs onto
//! [`EnvironmentSpec`] and [`RunRequest`] and store the returned [`RunRecord`].
//! Runs are started under a supervisor (the amlops binary, `amlops supervise-run`) in
//! their own session, so they outlive the amlops process that started them; the
//! supervisor enforces the deadline and ends every process of the run with it. Any later
//! process can adopt a run from its record with [`poll_run`] / [`cancel_run`]. Linux only
//! (`/proc`, `prctl`).

mod copy;
mod env_plan;
mod environment;
mod error;
mod fsutil;
mod lock;
mod logs;
mod outputs;
mod pathsearch;
mod procfs;
mod progress;
mod run;
mod status;
mod subreaper;
mod supervisor;
mod tool;

pub(crate) use env_plan::conda_only_packages;
pub use environment::{
    EnvironmentSpec, StagedEnvironment, find_staged, stage_environment, stage_environment_with_path,
};
pub use error::LocalError;
pub use logs::{LogFollower, LogPaths, LogStream, follow_logs, logs};
pub use outputs::{OutputFile, list_outputs, outputs_dir};
pub use progress::{NoProgress, Progress};
pub use run::{RunCommand, RunRecord, RunRequest, load_run, start_run, start_run_with_supervisor};
pub use status::{RunStatus, cancel_run, finished_at, poll_run};
pub use subreaper::supervise;
pub use supervisor::{SUPERVISOR_SUBCOMMAND, SupervisorArgs};
