//! How a run's supervisor is started (`amlops supervise-run`, a hidden subcommand), what
//! it records, and the run's environment. Pure parts only: the supervisor process is in
//! `subreaper`, spawning it in `run`.
//!
//! The supervisor is the amlops binary re-executed, not `/bin/sh`, because ending a run
//! must end every process it started, including ones that called `setsid()` (they leave
//! the run's process group, so signalling the group misses them) and ones whose parent
//! exited (re-parented to init, out of reach). Only a child subreaper
//! (`prctl(PR_SET_CHILD_SUBREAPER)`) keeps those as its descendants, and a shell cannot
//! call `prctl`. A cgroup would also hold them, but needs a delegated cgroup tree, which
//! unprivileged users and many containers do not have.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use nix::sys::wait::WaitStatus;

/// The hidden subcommand that runs the supervisor.
pub const SUPERVISOR_SUBCOMMAND: &str = "supervise-run";

/// Arguments of `amlops supervise-run`; only `start_run` starts it.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct SupervisorArgs {
    /// The run directory (absolute): `exit_code` and `termination.json` go there.
    #[arg(long)]
    pub run_dir: PathBuf,
    /// When the run times out; without it the run has no limit.
    #[arg(long)]
    pub deadline: Option<Timestamp>,
    /// Between SIGTERM and SIGKILL when the run's processes are ended.
    #[arg(long)]
    pub kill_grace_ms: u64,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<OsString>,
}

impl SupervisorArgs {
    /// The arguments after the subcommand that make clap parse back `self`.
    pub(crate) fn to_args(&self) -> Vec<OsString> {
        let mut run_dir = OsString::from("--run-dir=");
        run_dir.push(&self.run_dir);
        let mut args = vec![
            run_dir,
            format!("--kill-grace-ms={}", self.kill_grace_ms).into(),
        ];
        if let Some(deadline) = self.deadline {
            args.push(format!("--deadline={deadline}").into());
        }
        args.push("--".into());
        args.extend(self.command.iter().cloned());
        args
    }
}

/// The exit code recorded for the command, as a shell reports it: the code it exited
/// with, or `128 + n` when signal `n` ended it. None for a status that is not an end.
pub(crate) fn exit_code_of(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, signal, _) => Some(128 + signal as i32),
        _ => None,
    }
}

/// The exit code recorded when the command cannot be started, as a shell reports it:
/// 127 when the program does not exist, 126 when it cannot be executed.
pub(crate) fn spawn_failure_code(error: &std::io::Error) -> i32 {
    if error.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// Variables passed through from the amlops process; everything else (cloud
/// credentials, tokens) stays out of the user's script, as it would on Azure.
const PASSED_THROUGH: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
];

/// Builds the run's environment: passed-through variables, `PYTHONUNBUFFERED=1` (so
/// `logs -f` streams), the user's variables, then the `AZUREML_*` ones; the
/// interpreter's directory goes first on `PATH` so `python`/`pip` mean the staged ones.
pub(crate) fn run_environment<'a>(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    user: impl IntoIterator<Item = (&'a String, &'a String)>,
    azureml: &[(&str, &str)],
    interpreter_dir: Option<&Path>,
) -> Vec<(OsString, OsString)> {
    let mut env: std::collections::BTreeMap<OsString, OsString> = inherited
        .into_iter()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            PASSED_THROUGH.contains(&k.as_ref()) || k.starts_with("LC_")
        })
        .collect();
    env.insert("PYTHONUNBUFFERED".into(), "1".into());
    env.extend(user.into_iter().map(|(k, v)| (k.into(), v.into())));
    env.extend(azureml.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    if let Some(dir) = interpreter_dir {
        let mut path = dir.as_os_str().to_owned();
        if let Some(rest) = env.get(OsStr::new("PATH")).filter(|p| !p.is_empty()) {
            path.push(":");
            path.push(rest);
        }
        env.insert("PATH".into(), path);
    }
    env.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn supervisor_arguments_parse_back() {
        use clap::{Args, FromArgMatches};
        let args = SupervisorArgs {
            run_dir: PathBuf::from("/state/runs/it's a -run"),
            deadline: Some("2026-01-02T03:04:05.5Z".parse().unwrap()),
            kill_grace_ms: 300,
            command: ["python", "--epochs", "--", "-x"]
                .map(OsString::from)
                .into(),
        };
        let cli = SupervisorArgs::augment_args(clap::Command::new(SUPERVISOR_SUBCOMMAND));
        for args in [
            args.clone(),
            SupervisorArgs {
                deadline: None,
                ..args
            },
        ] {
            let argv = std::iter::once(OsString::from(SUPERVISOR_SUBCOMMAND)).chain(args.to_args());
            let matches = cli.clone().try_get_matches_from(argv).unwrap();
            assert_eq!(SupervisorArgs::from_arg_matches(&matches).unwrap(), args);
        }
    }

    #[test]
    fn exit_codes_read_as_a_shell_reports_them() {
        use nix::sys::signal::Signal;
        use nix::unistd::Pid;
        let pid = Pid::from_raw(1);
        assert_eq!(exit_code_of(WaitStatus::Exited(pid, 3)), Some(3));
        assert_eq!(
            exit_code_of(WaitStatus::Signaled(pid, Signal::SIGTERM, false)),
            Some(143)
        );
        assert_eq!(exit_code_of(WaitStatus::StillAlive), None);
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            (spawn_failure_code(&missing), spawn_failure_code(&denied)),
            (127, 126)
        );
    }

    #[test]
    fn environment_filters_and_layers() {
        let inherited = [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/me"),
            ("LC_ALL", "C"),
            ("AZURE_CLIENT_SECRET", "s3cret"),
            ("PYTHONUNBUFFERED", "0"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let user = BTreeMap::from([
            ("LR".to_string(), "0.1".to_string()),
            ("AZUREML_RUN_ID".to_string(), "spoofed".to_string()),
        ]);
        let env: BTreeMap<_, _> = run_environment(
            inherited,
            &user,
            &[("AZUREML_RUN_ID", "r1")],
            Some(Path::new("/env/bin")),
        )
        .into_iter()
        .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
        .collect();
        let expected: BTreeMap<String, String> = [
            ("AZUREML_RUN_ID", "r1"),
            ("HOME", "/home/me"),
            ("LC_ALL", "C"),
            ("LR", "0.1"),
            ("PATH", "/env/bin:/usr/bin"),
            ("PYTHONUNBUFFERED", "1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        assert_eq!(env, expected);
    }
}
