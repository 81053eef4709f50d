//! The supervisor process (`amlops supervise-run`): a child subreaper that runs the
//! command as its child, enforces the deadline, and when the command ends (or on cancel
//! or timeout) ends every process the command left behind, wherever it moved (another
//! session, another process group, re-parented), before recording the outcome in the
//! run directory. So a run ends completely and on time with no amlops attached.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use nix::errno::Errno;
use nix::libc;
use nix::sys::prctl;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::time::TimeSpec;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpid};

use super::error::LocalError;
use super::fsutil::write_atomic;
use super::procfs::live_descendants;
use super::run::RunLayout;
use super::status::{KILL_WAIT, Termination, record_termination_if_absent};
use super::supervisor::{SupervisorArgs, exit_code_of, spawn_failure_code};

/// Processes deeper than the supervisor's children end without a SIGCHLD to it, so the
/// tree is read again this often while processes are being ended.
const RESCAN_EVERY: Duration = Duration::from_millis(20);

/// Longest wait before the deadline is compared with the wall clock again.
const DEADLINE_CHECK_EVERY: Duration = Duration::from_secs(30);

/// Signals that ask the supervisor to end the run (nobody but `kill` can send them: the
/// supervisor has no terminal). amlops sends SIGTERM after recording why.
const STOP_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

/// Runs the supervisor; the process exit code (0 once the outcome is recorded).
pub fn supervise(args: &SupervisorArgs) -> i32 {
    match supervise_run(args) {
        Ok(()) => 0,
        Err(e) => {
            // stderr is the run's stderr.log: the message lands next to the command's own.
            eprintln!("amlops supervisor: {e}");
            1
        }
    }
}

fn supervise_run(args: &SupervisorArgs) -> Result<(), LocalError> {
    let layout = RunLayout(&args.run_dir);
    if let Err(e) = prctl::set_child_subreaper(true) {
        eprintln!(
            "amlops supervisor: cannot become a child subreaper ({e}); processes that leave the run's process tree may outlive it"
        );
    }
    // Blocked before the command starts, so no SIGCHLD or stop request is missed; they
    // are taken with sigtimedwait.
    let mut waited = SigSet::empty();
    waited.add(Signal::SIGCHLD);
    STOP_SIGNALS.iter().for_each(|&s| waited.add(s));
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&waited), None).map_err(|e| {
        LocalError::io("cannot block signals for", &args.run_dir)(std::io::Error::from(e))
    })?;
    let Some((program, arguments)) = args.command.split_first() else {
        return Err(LocalError::EmptyCommand {
            run_id: args.run_dir.display().to_string(),
        });
    };
    let mut command = Command::new(program);
    command.args(arguments);
    // SAFETY: sigprocmask is async-signal-safe and touches no memory of the parent.
    unsafe {
        // The mask survives exec: unblocked, or the command could never get SIGTERM.
        command.pre_exec(|| {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)
        });
    }
    let command = match command.spawn() {
        Ok(child) => Pid::from_raw(child.id() as i32),
        Err(e) => {
            eprintln!(
                "amlops supervisor: cannot start {}: {e}",
                program.to_string_lossy()
            );
            return record_exit_code(&layout, spawn_failure_code(&e));
        }
    };
    let mut children = Children {
        command,
        exit_code: None,
    };
    let why = loop {
        children.reap();
        if children.exit_code.is_some() {
            break None;
        }
        // By the wall clock, as amlops checks the recorded deadline; waits are capped, as
        // a sleeping wait does not count the time the machine was suspended.
        let left = args.deadline.map(|d| {
            Duration::try_from(d.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO)
        });
        if left == Some(Duration::ZERO) {
            break Some(Termination::TimedOut);
        }
        let wait = left.map(|left| left.min(DEADLINE_CHECK_EVERY));
        if wait_for_signal(&waited, wait).is_some_and(|s| STOP_SIGNALS.contains(&s)) {
            break Some(Termination::Cancelled);
        }
    };
    // The processes are ended even if the reason cannot be recorded (disk full).
    let recorded = why.map_or(Ok(()), |why| record_termination_if_absent(&layout, &why));
    end_descendants(Duration::from_millis(args.kill_grace_ms), &mut children);
    let exit_code = children.wait_for_command();
    recorded.and(record_exit_code(&layout, exit_code))
}

fn record_exit_code(layout: &RunLayout, code: i32) -> Result<(), LocalError> {
    write_atomic(&layout.exit_code(), format!("{code}\n").as_bytes())
}

/// The supervisor's children: the command, and orphans re-parented to it.
struct Children {
    command: Pid,
    /// The command's exit code once it has been reaped.
    exit_code: Option<i32>,
}

impl Children {
    /// Reaps every child that has ended, noting the command's exit code.
    fn reap(&mut self) {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Ok(status) => self.note(status),
                Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }

    fn note(&mut self, status: WaitStatus) {
        if status.pid() == Some(self.command)
            && let Some(code) = exit_code_of(status)
        {
            self.exit_code = Some(code);
        }
    }

    /// The command's exit code, waiting for it if it has not been reaped yet (it was
    /// sent SIGKILL by then, so it ends).
    fn wait_for_command(&mut self) -> i32 {
        while self.exit_code.is_none() {
            match waitpid(self.command, None) {
                Ok(status) => self.note(status),
                Err(Errno::EINTR) => {}
                // Already reaped without a code: nothing better is known than SIGKILL.
                Err(_) => return 128 + Signal::SIGKILL as i32,
            }
        }
        self.exit_code.unwrap_or_default()
    }
}

/// Ends every live descendant: SIGTERM to each (once; also to ones that appear
/// meanwhile), up to `grace` for them to exit, then SIGKILL until none is left or
/// [`KILL_WAIT`] passed (a process stuck in the kernel cannot be helped).
fn end_descendants(grace: Duration, children: &mut Children) {
    let me = getpid().as_raw();
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let mut terminated: Vec<i32> = Vec::new();
    let grace_ends = Instant::now() + grace;
    let kill_ends = grace_ends + KILL_WAIT;
    loop {
        children.reap();
        let left = live_descendants(me);
        let now = Instant::now();
        if left.is_empty() || now >= kill_ends {
            return;
        }
        for pid in left {
            let signal = if now >= grace_ends {
                Signal::SIGKILL
            } else if terminated.contains(&pid) {
                continue;
            } else {
                terminated.push(pid);
                Signal::SIGTERM
            };
            // A process that ended since the scan is just gone (ESRCH).
            let _ = kill(Pid::from_raw(pid), signal);
        }
        let until = if now >= grace_ends {
            kill_ends
        } else {
            grace_ends
        };
        wait_for_signal(&chld, Some(RESCAN_EVERY.min(until - now)));
    }
}

/// Takes one of the blocked `signals`, waiting up to `timeout` (forever without one).
/// None on timeout or interruption.
fn wait_for_signal(signals: &SigSet, timeout: Option<Duration>) -> Option<Signal> {
    let Some(timeout) = timeout else {
        return signals.wait().ok();
    };
    let timeout = TimeSpec::from_duration(timeout);
    // SAFETY: both pointers are to live values for the duration of the call; the kernel
    // accepts a null siginfo pointer. (nix has no wrapper for sigtimedwait.)
    let signal =
        unsafe { libc::sigtimedwait(signals.as_ref(), std::ptr::null_mut(), timeout.as_ref()) };
    Signal::try_from(signal).ok()
}
