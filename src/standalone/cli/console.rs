//! Progress output of `amlops apply`, and Ctrl-C / SIGTERM handling.

use super::*;

/// Set by SIGINT or SIGTERM while `apply --wait` follows runs: cancel them, then exit.
pub(super) static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: nix::libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C (SIGINT) and SIGTERM (`kill`, a CI job cancelled, a container stopped) both ask
/// `apply --wait` to cancel its runs. SIGHUP keeps its default: a closed terminal or a
/// dropped SSH session ends `apply` but not the runs, which a later `apply --wait` adopts.
/// A signal ignored when amlops started (`nohup`, a background job of a script) stays ignored.
pub(super) fn catch_interrupts() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_interrupt),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
        if let Ok(old) = unsafe { sigaction(signal, &action) }
            && matches!(old.handler(), SigHandler::SigIgn)
        {
            // SAFETY: restores the disposition amlops inherited.
            let _ = unsafe { sigaction(signal, &old) };
        }
    }
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
