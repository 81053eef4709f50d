//! The real `amlops` binary as the CLI tests run it: in a working directory of the test's own,
//! never with the caller's `AMLOPS_STATE`.

#![allow(dead_code)] // each test file uses a different part

use std::path::Path;
use std::process::{Command, Output};

/// `amlops` in `dir`, ready for arguments (state under `dir`).
pub fn amlops_in(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_amlops"));
    command.current_dir(dir).env_remove("AMLOPS_STATE");
    command
}

/// stdout then stderr, as text.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The exit code (-1 when a signal ended the process).
pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}
