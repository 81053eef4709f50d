//! Runs an environment tool (venv, pip, conda, micromamba) with its output appended to a
//! log file, and turns a failure into an error that carries the log's last lines.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::error::LocalError;
use super::fsutil::tail_lines;

/// Lines of tool output quoted in an error.
const ERROR_TAIL_LINES: usize = 20;

/// Runs `cmd` to completion; stdout and stderr go to `log`. `step` says what it was
/// doing, for the error message ("installing pip packages").
pub(crate) fn run_logged(mut cmd: Command, step: &str, log: &Path) -> Result<(), LocalError> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(LocalError::io("cannot open log", log))?;
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    writeln!(out, "$ {tool} {}", args.join(" "))
        .map_err(LocalError::io("cannot write log", log))?;
    let err = out
        .try_clone()
        .map_err(LocalError::io("cannot open log", log))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .status()
        .map_err(|source| LocalError::Spawn {
            program: tool.clone(),
            source,
        })?;
    if status.success() {
        return Ok(());
    }
    Err(LocalError::ToolFailed {
        tool,
        step: step.to_string(),
        status: status.to_string(),
        log: log.to_path_buf(),
        tail: tail_lines(log, ERROR_TAIL_LINES),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_carries_the_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("staging.log");
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo first"]);
        run_logged(ok, "saying hello", &log).unwrap();
        let mut bad = Command::new("sh");
        bad.args(["-c", "echo out; echo 'no such package' >&2; exit 3"]);
        let err = run_logged(bad, "installing pip packages", &log).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("sh failed (exit status: 3) while installing pip packages"),
            "{msg}"
        );
        assert!(
            msg.contains("no such package") && msg.contains(&log.display().to_string()),
            "{msg}"
        );
        assert!(std::fs::read_to_string(&log).unwrap().contains("first\n"));
    }
}
