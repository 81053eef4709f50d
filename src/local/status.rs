//! Polling, timing out and cancelling runs from their [`RunRecord`] alone, so any amlops
//! process (including one started after a crash) can adopt a run.
//!
//! Truth lives in the run directory: `exit_code` (written by the supervisor) and
//! `termination.json` (written by amlops *before* it kills anything), so every later
//! poll reports the same outcome.

use std::fs;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::error::LocalError;
use super::fsutil::{tail_lines, write_atomic};
use super::procfs::{boot_id, live_group_members, read_stat};
use super::run::{RunLayout, RunRecord};

/// Lines of stderr quoted in a `Failed` status.
const STDERR_TAIL_LINES: usize = 20;
/// How long to wait for a group to disappear after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(2);
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
    /// The deadline passed; the process group was killed.
    TimedOut,
    /// [`cancel_run`] killed the process group.
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

/// Why amlops ended a run; stored before any signal is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Termination {
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

/// The run's state at `now`. Enforces the deadline: past it, the process group is
/// killed (waiting up to the record's grace period) and the run is `TimedOut`.
pub fn poll_run(record: &RunRecord, now: Timestamp) -> Result<RunStatus, LocalError> {
    let layout = RunLayout(&record.run_dir);
    if let Some(termination) = read_termination(&layout) {
        if !matches!(termination, Termination::Lost { .. }) {
            // A kill interrupted by a crash of amlops is finished here.
            if !matches!(leader(record), Leader::Replaced(_)) {
                kill_group(record, Duration::ZERO)?;
            }
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
                    kill_group(record, Duration::ZERO)?;
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

/// Cancels a run: records `Cancelled`, then SIGTERM to the whole process group,
/// SIGKILL after the grace period. A run that already ended is left as it is.
pub fn cancel_run(record: &RunRecord) -> Result<(), LocalError> {
    let layout = RunLayout(&record.run_dir);
    if read_termination(&layout).is_some() || layout.exit_code().exists() {
        return Ok(());
    }
    terminate(record, Termination::Cancelled)
}

fn terminate(record: &RunRecord, why: Termination) -> Result<(), LocalError> {
    write_termination(&RunLayout(&record.run_dir), &why)?;
    if matches!(leader(record), Leader::Replaced(_)) {
        return Ok(());
    }
    kill_group(record, Duration::from_millis(record.kill_grace_ms))
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

/// SIGTERM to the group, up to `grace` for it to exit, then SIGKILL.
fn kill_group(record: &RunRecord, grace: Duration) -> Result<(), LocalError> {
    let signal = |sig: Signal| match killpg(Pid::from_raw(record.pgid), sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(source) => Err(LocalError::Signal {
            run_id: record.run_id.clone(),
            pgid: record.pgid,
            source,
        }),
    };
    if !grace.is_zero() {
        signal(Signal::SIGTERM)?;
        if wait_for_empty_group(record.pgid, grace) {
            return Ok(());
        }
    }
    signal(Signal::SIGKILL)?;
    wait_for_empty_group(record.pgid, KILL_WAIT);
    Ok(())
}

fn wait_for_empty_group(pgid: i32, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        if live_group_members(pgid).is_empty() {
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
    let json = serde_json::to_vec(why).map_err(|e| {
        LocalError::io("cannot encode", layout.termination())(std::io::Error::other(e))
    })?;
    write_atomic(&layout.termination(), &json)
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
