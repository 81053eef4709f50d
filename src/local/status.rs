//! Polling, timing out and cancelling runs from their [`RunRecord`] alone, so any amlops
//! process (including one started after a crash) can adopt a run.
//!
//! Truth lives in the run directory: `exit_code` (written by the supervisor once every
//! process of the run has ended) and `termination.json` (why the run was ended, written
//! *before* anything is killed: by amlops when it cancels, times out or loses the run, or
//! by the supervisor when the deadline passes or a signal from outside asks it to stop),
//! so every later poll reports the same outcome, with or without amlops attached.

use std::fs;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::error::LocalError;
use super::fsutil::{create_atomic, tail_lines, write_atomic};
use super::procfs::{boot_id, live_group_members, read_stat};
use super::run::{RunLayout, RunRecord};

/// Lines of stderr quoted in a `Failed` status.
const STDERR_TAIL_LINES: usize = 20;
/// How long processes get to disappear after SIGKILL.
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(2);
const CHECK_EVERY: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum RunStatus {
    Running,
    Succeeded,
    /// The command exited non-zero (`128 + n` when killed by signal `n`).
    Failed {
        exit_code: i32,
        stderr_tail: String,
    },
    /// The deadline passed; every process of the run was ended.
    TimedOut,
    /// [`cancel_run`] (or a signal to the supervisor) ended every process of the run.
    Cancelled,
    /// The run ended without recording an exit code (killed from outside, machine
    /// rebooted, pid reused); it is not restarted, so it is never run twice.
    Lost {
        reason: String,
    },
}

impl RunStatus {
    pub fn is_terminal(&self) -> bool {
        !matches!(self, RunStatus::Running)
    }
}

/// Why a run was ended; stored before any signal is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub(crate) enum Termination {
    Cancelled,
    TimedOut,
    Lost { reason: String },
}

/// Whether the recorded supervisor is still the process we started.
enum Leader {
    Alive,
    /// Exited; its process group may still have members, and the pid number cannot be
    /// reused while they live, so signalling the group is safe.
    Gone,
    /// The pid belongs to something else now: never signal it.
    Replaced(String),
}

/// The run's state at `now`. Enforces the deadline (as the supervisor does on its own):
/// past it, the run's processes are ended (waiting up to the record's grace period) and
/// the run is `TimedOut`.
pub fn poll_run(record: &RunRecord, now: Timestamp) -> Result<RunStatus, LocalError> {
    let layout = RunLayout(&record.run_dir);
    if let Some(termination) = read_termination(&layout) {
        if !matches!(termination, Termination::Lost { .. }) {
            // The supervisor may still be ending the processes, or a kill was interrupted
            // by a crash of amlops: either way it is finished before the status is final.
            end_processes(record)?;
        }
        return Ok(termination.into());
    }
    if let Some(status) = read_exit_code(record) {
        return Ok(status);
    }
    match leader(record) {
        Leader::Alive if record.deadline.is_some_and(|d| now >= d) => {
            terminate(record, Termination::TimedOut)?;
            Ok(RunStatus::TimedOut)
        }
        Leader::Alive => Ok(RunStatus::Running),
        gone_or_replaced => {
            // The supervisor may have written the code just before exiting.
            if let Some(status) = read_exit_code(record) {
                return Ok(status);
            }
            let reason = match gone_or_replaced {
                Leader::Replaced(reason) => reason,
                _ => {
                    // Do not leave children of a lost run running: it is never resumed.
                    kill_group(record)?;
                    format!(
                        "supervisor process {} exited without recording an exit code (killed from outside?)",
                        record.pid
                    )
                }
            };
            let lost = Termination::Lost { reason };
            write_termination(&layout, &lost)?;
            Ok(lost.into())
        }
    }
}

/// Cancels a run: records `Cancelled`, then ends every process of the run (SIGTERM,
/// SIGKILL after the grace period) and returns once they are gone. A run that already
/// ended is left as it is.
pub fn cancel_run(record: &RunRecord) -> Result<(), LocalError> {
    let layout = RunLayout(&record.run_dir);
    if read_termination(&layout).is_some() || layout.exit_code().exists() {
        return Ok(());
    }
    terminate(record, Termination::Cancelled)
}

fn terminate(record: &RunRecord, why: Termination) -> Result<(), LocalError> {
    write_termination(&RunLayout(&record.run_dir), &why)?;
    end_processes(record)
}

/// Ends whatever of the run still lives. A live supervisor is asked with SIGTERM: it ends
/// every descendant, also those outside its process group (SIGTERM, grace, SIGKILL), and
/// exits; amlops waits for that. Whatever is left in the group then (the supervisor
/// was killed or hangs) gets SIGKILL.
fn end_processes(record: &RunRecord) -> Result<(), LocalError> {
    match leader(record) {
        Leader::Replaced(_) => return Ok(()),
        Leader::Alive => {
            match kill(Pid::from_raw(record.pid), Signal::SIGTERM) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(source) => return Err(signal_error(record, record.pid, source)),
            }
            let grace = Duration::from_millis(record.kill_grace_ms);
            wait_until(
                || !matches!(leader(record), Leader::Alive),
                grace.saturating_add(KILL_WAIT * 2),
            );
        }
        Leader::Gone => {}
    }
    kill_group(record)
}

fn leader(record: &RunRecord) -> Leader {
    if !record.boot_id.is_empty() && record.boot_id != boot_id() {
        return Leader::Replaced("the machine rebooted since the run started".to_string());
    }
    match read_stat(record.pid) {
        None => Leader::Gone,
        Some(stat) if stat.start_time != record.start_time => Leader::Replaced(format!(
            "process {} now belongs to another program (pid reused); the run's exit code was never recorded",
            record.pid
        )),
        Some(stat) if stat.state == 'Z' => Leader::Gone,
        Some(_) => Leader::Alive,
    }
}

/// SIGKILL to the run's process group, then up to [`KILL_WAIT`] for it to empty.
fn kill_group(record: &RunRecord) -> Result<(), LocalError> {
    match killpg(Pid::from_raw(record.pgid), Signal::SIGKILL) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(source) => return Err(signal_error(record, record.pgid, source)),
    }
    wait_until(|| live_group_members(record.pgid).is_empty(), KILL_WAIT);
    Ok(())
}

fn signal_error(record: &RunRecord, pid: i32, source: Errno) -> LocalError {
    LocalError::Signal {
        run_id: record.run_id.clone(),
        pid,
        source,
    }
}

/// Checks `done` until it holds or `limit` passes.
fn wait_until(done: impl Fn() -> bool, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(CHECK_EVERY);
    }
}

fn read_exit_code(record: &RunRecord) -> Option<RunStatus> {
    let layout = RunLayout(&record.run_dir);
    let text = fs::read_to_string(layout.exit_code()).ok()?;
    Some(match text.trim().parse::<i32>() {
        Ok(0) => RunStatus::Succeeded,
        Ok(exit_code) => RunStatus::Failed {
            exit_code,
            stderr_tail: tail_lines(&layout.stderr(), STDERR_TAIL_LINES),
        },
        Err(_) => RunStatus::Lost {
            reason: format!("exit code file {} is corrupt", layout.exit_code().display()),
        },
    })
}

fn read_termination(layout: &RunLayout) -> Option<Termination> {
    serde_json::from_slice(&fs::read(layout.termination()).ok()?).ok()
}

fn write_termination(layout: &RunLayout, why: &Termination) -> Result<(), LocalError> {
    write_atomic(&layout.termination(), &termination_json(layout, why)?)
}

/// Records why the run is ended unless a reason is recorded already (amlops records its
/// own before it signals the supervisor, and that one stands).
pub(crate) fn record_termination_if_absent(
    layout: &RunLayout,
    why: &Termination,
) -> Result<(), LocalError> {
    create_atomic(&layout.termination(), &termination_json(layout, why)?).map(drop)
}

fn termination_json(layout: &RunLayout, why: &Termination) -> Result<Vec<u8>, LocalError> {
    serde_json::to_vec(why).map_err(|e| {
        LocalError::io("cannot encode", layout.termination())(std::io::Error::other(e))
    })
}

impl From<Termination> for RunStatus {
    fn from(t: Termination) -> Self {
        match t {
            Termination::Cancelled => RunStatus::Cancelled,
            Termination::TimedOut => RunStatus::TimedOut,
            Termination::Lost { reason } => RunStatus::Lost { reason },
        }
    }
}

/// When the run ended: the time its exit code (or amlops' termination record) was written.
pub fn finished_at(record: &RunRecord) -> Option<Timestamp> {
    let layout = RunLayout(&record.run_dir);
    [layout.exit_code(), layout.termination()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .min()
        .and_then(|t| Timestamp::try_from(t).ok())
}
