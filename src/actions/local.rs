//! Runs on the `local` ComputeTarget: stage the environment, snapshot the source, start the
//! script through the local executor, observe it, cancel it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::experiment::ExperimentDecision;
use super::run_backend::{RunBackend, Submitted, planned};
use super::source::RunInputs;
use super::{needs_human, transient};
use crate::api::{
    ErrorInfo, Experiment, ExperimentSpec, GitProvenance, RunConfiguration, RunConfigurationSpec,
    RunStatus,
};
use crate::local::{self, EnvironmentSpec, LocalError, RunCommand, RunRequest};
use crate::reconcile::ActionFailure;
use crate::reconcile::experiment::{ObservedRun, RunState};
use crate::reconcile::run_configuration::EnvironmentPlan;
use crate::reconcile::{FailureKind, ObjectInfo};
use crate::snapshot::{self, Snapshot, SnapshotOptions};

/// Where standalone mode keeps environments, snapshots and runs (`.amlops` by default).
#[derive(Clone, Debug)]
pub struct LocalBackend {
    pub state_dir: PathBuf,
}

/// What amlops records next to a local run so a later process can report it in full.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunProvenance {
    snapshot_id: String,
    git: Option<GitProvenance>,
}

const PROVENANCE_FILE: &str = "amlops-snapshot.json";

/// The local executor's view of a planned environment.
pub fn environment_spec(plan: &EnvironmentPlan) -> Result<EnvironmentSpec, ActionFailure> {
    match plan {
        EnvironmentPlan::UserManaged { interpreter, .. } => Ok(EnvironmentSpec::UserManaged {
            interpreter: interpreter.clone(),
        }),
        EnvironmentPlan::SystemManaged {
            version,
            conda_file,
            python_version,
            conda_packages,
            pip_packages,
            ..
        } => Ok(EnvironmentSpec::SystemManaged {
            conda_file: conda_file.clone(),
            content_hash: version.clone(),
            python_version: python_version.clone(),
            conda_packages: conda_packages.clone(),
            pip_packages: pip_packages.clone(),
        }),
        EnvironmentPlan::Existing { name, version } => Err(needs_human(
            "UnsupportedEnvironment",
            format!(
                "environment.existing ({name}:{version}) names an Azure ML environment; local runs need condaDependencies or userManaged"
            ),
        )),
    }
}

impl LocalBackend {
    /// True when the environment is ready to run without building anything.
    pub fn environment_staged(&self, plan: &EnvironmentPlan) -> Result<bool, ActionFailure> {
        Ok(local::find_staged(&self.state_dir, &environment_spec(plan)?).is_some())
    }

    /// Builds (or reuses) the environment; a missing tool or interpreter needs a human.
    pub fn stage_environment(
        &self,
        plan: &EnvironmentPlan,
        progress: &dyn local::Progress,
    ) -> Result<PathBuf, ActionFailure> {
        let spec = environment_spec(plan)?;
        local::stage_environment(&self.state_dir, &spec, progress)
            .map(|s| s.python)
            .map_err(|e| local_failure("EnvironmentFailed", e))
    }

    /// The run's state as the reconciler sees it; `None` when no run with this id was started.
    pub fn observe(
        &self,
        run_id: &str,
        now: Timestamp,
    ) -> Result<Option<ObservedRun>, ActionFailure> {
        let Some(record) = local::load_run(&self.state_dir, run_id)
            .map_err(|e| local_failure("RunUnreadable", e))?
        else {
            return Ok(None);
        };
        let status =
            local::poll_run(&record, now).map_err(|e| local_failure("RunUnreadable", e))?;
        let (state, error) = match status {
            local::RunStatus::Running => (RunState::Running, None),
            local::RunStatus::Succeeded => (RunState::Completed, None),
            local::RunStatus::Failed {
                exit_code,
                stderr_tail,
            } => (
                RunState::Failed,
                Some(error(
                    "ExitCode",
                    format!("exited with code {exit_code}; stderr ends with:\n{stderr_tail}"),
                )),
            ),
            local::RunStatus::TimedOut => {
                let limit = record
                    .deadline
                    .map(|d| d.duration_since(record.started_at).as_secs())
                    .unwrap_or_default();
                (
                    RunState::Failed,
                    Some(error(
                        "Timeout",
                        format!("ran longer than maxRunDurationSeconds ({limit}s) and was stopped"),
                    )),
                )
            }
            local::RunStatus::Cancelled => (RunState::Canceled, None),
            local::RunStatus::Lost { reason } => (RunState::Failed, Some(error("RunLost", reason))),
        };
        let provenance: Option<RunProvenance> = std::fs::read(record.run_dir.join(PROVENANCE_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        Ok(Some(ObservedRun {
            state: Some(state),
            started_at: Some(record.started_at),
            finished_at: state
                .is_terminal()
                .then(|| local::finished_at(&record))
                .flatten(),
            error,
            warnings: Vec::new(),
            studio_url: None,
            logs: Some(record.run_dir.display().to_string()),
            outputs: Some(local::outputs_dir(&record).display().to_string()),
            snapshot_id: provenance.as_ref().map(|p| p.snapshot_id.clone()),
            git: provenance.and_then(|p| p.git),
        }))
    }

    /// Snapshots the source, stages the environment and starts the run. Starting the same id
    /// twice is refused by the executor, so a retried submit never runs a script twice.
    pub fn submit(
        &self,
        run: &LocalSubmission<'_>,
        progress: &dyn local::Progress,
    ) -> Result<(), ActionFailure> {
        let snapshot = take_snapshot(&run.source, run.spec, &self.state_dir)?;
        progress.step(&format!(
            "snapshot {} ({} files)",
            &snapshot.id[..12],
            snapshot.manifest.files.len()
        ));
        let snapshot_dir = self.materialize(&snapshot)?;
        let python = self.stage_environment(run.environment, progress)?;
        let command = match (&run.spec.script, &run.spec.command) {
            (Some(script), _) => RunCommand::Script {
                script: script.clone(),
                arguments: run.spec.arguments.clone(),
            },
            (None, Some(cmd)) => RunCommand::Shell(cmd.clone()),
            (None, None) => {
                return Err(needs_human(
                    "InvalidSpec",
                    "spec.script or spec.command is required",
                ));
            }
        };
        let request = RunRequest {
            run_id: run.run_id.to_string(),
            experiment_name: run.experiment_name.to_string(),
            snapshot_dir,
            command,
            python,
            environment_variables: run.run_configuration.environment_variables.clone(),
            timeout: run
                .run_configuration
                .max_run_duration_seconds
                .map(|s| Duration::from_secs(s.max(1) as u64)),
            kill_grace: Duration::from_secs(10),
        };
        let record = match local::start_run(&self.state_dir, &request) {
            Ok(record) => record,
            Err(LocalError::RunExists { .. }) => return Ok(()),
            Err(e) => return Err(local_failure("RunStartFailed", e)),
        };
        let provenance = RunProvenance {
            snapshot_id: snapshot.id.clone(),
            git: snapshot.provenance.as_ref().map(to_api_provenance),
        };
        let body =
            serde_json::to_vec_pretty(&provenance).map_err(|e| transient("RunStartFailed", e))?;
        std::fs::write(record.run_dir.join(PROVENANCE_FILE), body)
            .map_err(|e| transient("RunStartFailed", e))
    }

    pub fn cancel(&self, run_id: &str) -> Result<(), ActionFailure> {
        match local::load_run(&self.state_dir, run_id)
            .map_err(|e| local_failure("RunUnreadable", e))?
        {
            Some(record) => {
                local::cancel_run(&record).map_err(|e| local_failure("CancelFailed", e))
            }
            None => Ok(()),
        }
    }

    /// Copies the snapshot's files once into `source-trees/<id>/` (content-addressed, reused by
    /// later runs). The directory is built under a temporary name and renamed into place, so
    /// its existence means it is complete: no marker file shares the user's tree.
    fn materialize(&self, snapshot: &Snapshot) -> Result<PathBuf, ActionFailure> {
        let dir = self.state_dir.join(SOURCE_TREES).join(&snapshot.id);
        if dir.is_dir() {
            return Ok(dir);
        }
        let tmp = self.state_dir.join(SOURCE_TREES).join(format!(
            ".{}.{}",
            snapshot.id,
            std::process::id()
        ));
        let fail = |e: std::io::Error| {
            transient(
                "SnapshotFailed",
                format!("cannot write snapshot {}: {e}", dir.display()),
            )
        };
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(fail)?;
        for entry in &snapshot.manifest.files {
            let to = tmp.join(&entry.path);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(fail)?;
            }
            std::fs::copy(snapshot.root.join(&entry.path), &to).map_err(fail)?;
        }
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => Ok(dir),
            // Another process materialized the same content first: theirs is identical.
            Err(_) if dir.is_dir() => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(dir)
            }
            Err(e) => Err(fail(e)),
        }
    }
}

/// The local-process backend for one reconcile of one Experiment (`amlops apply` on the
/// user's machine). Environment staging and snapshotting run in place: a person is watching
/// their progress, and no other work shares this process.
pub struct LocalRuns<'a, I> {
    pub local: &'a LocalBackend,
    pub exp: &'a Experiment,
    pub rc: Option<&'a RunConfiguration>,
    pub inputs: &'a I,
    pub progress: &'a (dyn local::Progress + Sync),
}

impl<I: RunInputs> RunBackend for LocalRuns<'_, I> {
    async fn observe(
        &self,
        run_id: &str,
        _recorded: Option<&RunStatus>,
    ) -> Result<Option<ObservedRun>, ActionFailure> {
        self.local.observe(run_id, Timestamp::now())
    }

    async fn submit(
        &self,
        run_id: &str,
        _d: &mut ExperimentDecision,
    ) -> Result<Submitted, ActionFailure> {
        let (rc, plan) = planned(self.rc)?;
        let source = self.inputs.source(&self.exp.spec.source).await?;
        let experiment_name = match &self.exp.spec.experiment_name {
            Some(name) => name.clone(),
            None => ObjectInfo::of(self.exp).name,
        };
        let submission = LocalSubmission {
            run_id,
            experiment_name: &experiment_name,
            spec: &self.exp.spec,
            source,
            run_configuration: &rc.spec,
            environment: &plan,
        };
        self.local.submit(&submission, self.progress)?;
        match self.local.observe(run_id, Timestamp::now())? {
            Some(observed) => Ok(Submitted::Run(Box::new(observed))),
            None => Err(transient(
                "RunStartFailed",
                format!("run {run_id} was started but its record cannot be found"),
            )),
        }
    }

    async fn cancel(&self, run_id: &str) -> Result<(), ActionFailure> {
        self.local.cancel(run_id)
    }
}

/// Where local runs' source snapshots are kept under the state directory (earlier versions
/// kept them under `snapshots/`, with a marker file inside the tree).
const SOURCE_TREES: &str = "source-trees";

/// Everything a local run needs, borrowed from the objects.
pub struct LocalSubmission<'a> {
    pub run_id: &'a str,
    pub experiment_name: &'a str,
    pub spec: &'a ExperimentSpec,
    pub source: snapshot::Source,
    pub run_configuration: &'a RunConfigurationSpec,
    pub environment: &'a EnvironmentPlan,
}

/// Takes the snapshot of an Experiment's source with its limits.
pub fn take_snapshot(
    source: &snapshot::Source,
    spec: &ExperimentSpec,
    state_dir: &Path,
) -> Result<Snapshot, ActionFailure> {
    let options = SnapshotOptions {
        cache_dir: state_dir.join("cache"),
        ..super::code::snapshot_options(spec)
    };
    snapshot::take(source, &options).map_err(|e| needs_human("SnapshotFailed", e))
}

pub fn to_api_provenance(p: &snapshot::GitProvenance) -> GitProvenance {
    GitProvenance {
        repository_uri: p.repository_uri.clone(),
        branch: p.branch.clone(),
        commit: p.commit.clone(),
        dirty: p.dirty,
    }
}

fn error(code: &str, message: String) -> ErrorInfo {
    ErrorInfo {
        code: code.to_string(),
        message,
    }
}

fn local_failure(reason: &str, e: LocalError) -> ActionFailure {
    // Missing tools, interpreters and bad specs need a person; I/O hiccups may pass.
    let retryable = matches!(e, LocalError::Io { .. });
    ActionFailure {
        kind: FailureKind::retryable_if(retryable),
        reason: reason.to_string(),
        message: e.to_string(),
    }
}
