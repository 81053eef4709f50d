//! Progress output of `amlops apply` and Ctrl-C handling.

use super::*;

/// Set by SIGINT while `apply --wait` follows runs: cancel them, then exit.
pub(super) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub(super) fn catch_ctrl_c() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_sigint),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
    let _ = unsafe { sigaction(Signal::SIGINT, &action) };
}

/// Prints progress above a spinner (plain lines when stderr is not a terminal).
pub(super) struct Console {
    pub(super) bar: ProgressBar,
}

impl Console {
    pub(super) fn new() -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar }
    }
    pub(super) fn line(&self, s: String) {
        if self.bar.is_hidden() {
            eprintln!("{s}");
        } else {
            self.bar.println(s);
        }
    }
}

impl Reporter for Console {
    fn event(&self, key: &Key, e: &Event) {
        let kind = if e.warning { "Warning" } else { "Normal" };
        self.line(format!(
            "{}: {kind} {}: {}",
            key.short(),
            e.reason,
            e.message
        ));
    }
    fn step(&self, key: &Key, message: &str) {
        self.line(format!("{}: {message}", key.short()));
    }
}
