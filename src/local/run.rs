//! Starting a run: copy the snapshot, start the command under its supervisor
//! (`amlops supervise-run`, see `supervisor`) in its own session (so it outlives amlops
//! and no terminal signal reaches it), record it.
//!
//! Layout of one run directory `<state>/runs/<run id>/`:
//! ```text
//! workdir/            the copied snapshot, the process's working directory
//! workdir/outputs/    files the script leaves here are the run's outputs
//! stdout.log stderr.log
//! run.json            the RunRecord (also returned to the caller)
//! exit_code           written atomically by the supervisor once the command and every
//!                     process it left have ended
//! termination.json    why the run was ended, written before any kill: by amlops when it
//!                     cancels, times out or loses the run; by the supervisor when the
//!                     deadline passes or it is signalled from outside
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::copy::copy_tree;
use super::error::LocalError;
use super::fsutil::{is_safe_component, write_atomic};
use super::procfs::{boot_id, read_stat};
use super::supervisor::{SUPERVISOR_SUBCOMMAND, SupervisorArgs, run_environment};

/// The running amlops binary, re-executed as the supervisor; `/proc/self/exe` still
/// works when the file was replaced (an upgrade) while amlops runs.
const THIS_PROGRAM: &str = "/proc/self/exe";

/// What to run; free of any CRD type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// Names the run directory; letters, digits, `.`, `_`, `-`.
    pub run_id: String,
    /// Exported as `AZUREML_EXPERIMENT_NAME` / `AZUREML_ARM_PROJECT_NAME`.
    pub experiment_name: String,
    /// The files to run; copied, never run in place.
    pub snapshot_dir: PathBuf,
    pub command: RunCommand,
    /// The staged interpreter; its directory goes first on `PATH`.
    pub python: PathBuf,
    pub environment_variables: BTreeMap<String, String>,
    /// `maxRunDurationSeconds`; `None` runs without a limit.
    pub timeout: Option<Duration>,
    /// How long a cancelled run gets between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
}

/// The command of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCommand {
    /// `python <script> <arguments...>`, without a shell.
    Script {
        script: String,
        arguments: Vec<String>,
    },
    /// A shell command line (`sh -c`), like Azure ML's `command`.
    Shell(String),
}

/// Everything needed to find, poll and kill a run later, even from another amlops
/// process after a crash. Serialize it wherever the caller keeps status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub run_dir: PathBuf,
    /// The supervisor's pid; also its process group and session id.
    pub pid: i32,
    pub pgid: i32,
    /// Start time of `pid` in clock ticks after boot (`/proc/<pid>/stat` field 22):
    /// a different value at that pid means the pid was reused.
    pub start_time: u64,
    /// Kernel boot id at start: after a reboot the pid means nothing.
    pub boot_id: String,
    pub started_at: Timestamp,
    pub deadline: Option<Timestamp>,
    pub kill_grace_ms: u64,
}

/// Paths inside a run directory.
pub(crate) struct RunLayout<'a>(pub &'a Path);

impl RunLayout<'_> {
    pub fn workdir(&self) -> PathBuf {
        self.0.join("workdir")
    }
    pub fn outputs(&self) -> PathBuf {
        self.workdir().join("outputs")
    }
    pub fn stdout(&self) -> PathBuf {
        self.0.join("stdout.log")
    }
    pub fn stderr(&self) -> PathBuf {
        self.0.join("stderr.log")
    }
    pub fn exit_code(&self) -> PathBuf {
        self.0.join("exit_code")
    }
    pub fn termination(&self) -> PathBuf {
        self.0.join("termination.json")
    }
    pub fn record(&self) -> PathBuf {
        self.0.join("run.json")
    }
}

/// Copies the snapshot to `<state_dir>/runs/<run id>/workdir` and starts the command.
/// Fails with [`LocalError::RunExists`] if that run was started before: a run id is
/// started at most once, so a retried apply adopts the run instead of repeating it.
pub fn start_run(state_dir: &Path, request: &RunRequest) -> Result<RunRecord, LocalError> {
    start_run_with_supervisor(state_dir, request, Path::new(THIS_PROGRAM))
}

/// [`start_run`] for a program that is not amlops itself (a test binary): `amlops` is
/// the amlops binary to run as the supervisor.
pub fn start_run_with_supervisor(
    state_dir: &Path,
    request: &RunRequest,
    amlops: &Path,
) -> Result<RunRecord, LocalError> {
    let run_id = &request.run_id;
    if !is_safe_component(run_id) {
        return Err(LocalError::InvalidRunId {
            run_id: run_id.clone(),
        });
    }
    let argv = argv(request)?;
    let runs = state_dir.join("runs");
    fs::create_dir_all(&runs).map_err(LocalError::io("cannot create", &runs))?;
    let run_dir = runs.join(run_id);
    let exists = || LocalError::RunExists {
        run_id: run_id.clone(),
        run_dir: run_dir.clone(),
    };
    if run_dir.exists() {
        return Err(exists());
    }
    // Build the directory aside and rename it into place, so a crash mid-copy leaves
    // no half run directory (a leftover partial one is just rebuilt).
    let partial = runs.join(format!(".{run_id}.partial"));
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(LocalError::io("cannot remove", &partial))?;
    }
    fs::create_dir(&partial).map_err(LocalError::io("cannot create", &partial))?;
    let staged = RunLayout(&partial);
    copy_tree(&request.snapshot_dir, &staged.workdir())?;
    fs::create_dir_all(staged.outputs())
        .map_err(LocalError::io("cannot create", staged.outputs()))?;
    if fs::rename(&partial, &run_dir).is_err() {
        // Only a concurrent start of the same id gets here; the directory exists now.
        let _ = fs::remove_dir_all(&partial);
        return Err(exists());
    }
    spawn(request, &run_dir, argv, amlops)
}

/// Loads the record `start_run` wrote into the run directory, for adopting a run whose
/// record the caller lost (e.g. amlops crashed before storing it).
pub fn load_run(state_dir: &Path, run_id: &str) -> Result<Option<RunRecord>, LocalError> {
    if !is_safe_component(run_id) {
        return Err(LocalError::InvalidRunId {
            run_id: run_id.to_string(),
        });
    }
    let path = RunLayout(&state_dir.join("runs").join(run_id)).record();
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LocalError::io("cannot read", &path)(e)),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| LocalError::BadRecord {
            path,
            detail: e.to_string(),
        })
}

fn argv(request: &RunRequest) -> Result<Vec<String>, LocalError> {
    match &request.command {
        RunCommand::Script { script, .. } | RunCommand::Shell(script)
            if script.trim().is_empty() =>
        {
            Err(LocalError::EmptyCommand {
                run_id: request.run_id.clone(),
            })
        }
        RunCommand::Script { script, arguments } => {
            let python = request.python.to_string_lossy().into_owned();
            Ok([vec![python, script.clone()], arguments.clone()].concat())
        }
        RunCommand::Shell(line) => Ok(vec!["/bin/sh".to_string(), "-c".to_string(), line.clone()]),
    }
}

fn spawn(
    request: &RunRequest,
    run_dir: &Path,
    argv: Vec<String>,
    amlops: &Path,
) -> Result<RunRecord, LocalError> {
    let layout = RunLayout(run_dir);
    let open =
        |path: PathBuf| fs::File::create(&path).map_err(LocalError::io("cannot create", &path));
    let (stdout, stderr) = (open(layout.stdout())?, open(layout.stderr())?);
    let azureml = [
        ("AZUREML_RUN_ID", request.run_id.as_str()),
        ("AZUREML_EXPERIMENT_NAME", request.experiment_name.as_str()),
        ("AZUREML_ARM_PROJECT_NAME", request.experiment_name.as_str()),
    ];
    let env = run_environment(
        std::env::vars_os(),
        &request.environment_variables,
        &azureml,
        request
            .python
            .parent()
            .filter(|p| !p.as_os_str().is_empty()),
    );
    let started_at = Timestamp::now();
    let deadline = request.timeout.and_then(|t| started_at.checked_add(t).ok());
    let kill_grace_ms = u64::try_from(request.kill_grace.as_millis()).unwrap_or(u64::MAX);
    let supervisor = SupervisorArgs {
        run_dir: std::path::absolute(run_dir).map_err(LocalError::io("cannot resolve", run_dir))?,
        deadline,
        kill_grace_ms,
        command: argv.into_iter().map(Into::into).collect(),
    };
    let spawn_error = |source| LocalError::Spawn {
        program: format!("{} {SUPERVISOR_SUBCOMMAND}", amlops.display()),
        source,
    };
    let mut cmd = Command::new(amlops);
    cmd.arg0("amlops")
        .arg(SUPERVISOR_SUBCOMMAND)
        .args(supervisor.to_args())
        .env_clear()
        .envs(env)
        .current_dir(layout.workdir())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().map_err(spawn_error)?;
    let pid = i32::try_from(child.id())
        .map_err(|_| spawn_error(std::io::Error::other("pid out of range")))?;
    // The child is not reaped yet, so its stat is readable even if it already exited.
    let start_time = read_stat(pid).map(|s| s.start_time).unwrap_or_default();
    // Reap the supervisor when it ends so it does not linger as a zombie of this
    // process; after a crash of amlops, init reaps it instead.
    std::thread::spawn(move || child.wait());
    let record = RunRecord {
        run_id: request.run_id.clone(),
        run_dir: run_dir.to_path_buf(),
        pid,
        pgid: pid,
        start_time,
        boot_id: boot_id(),
        started_at,
        deadline,
        kill_grace_ms,
    };
    let json = serde_json::to_vec_pretty(&record)
        .map_err(|e| LocalError::io("cannot encode", layout.record())(std::io::Error::other(e)))?;
    write_atomic(&layout.record(), &json)?;
    Ok(record)
}
