//! Runs through the local executor: real processes, real process groups, real /proc.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use amlops::local::{
    EnvironmentSpec, LocalError, LogStream, NoProgress, RunCommand, RunRecord, RunRequest,
    RunStatus, cancel_run, follow_logs, list_outputs, load_run, logs, poll_run, stage_environment,
    start_run_with_supervisor,
};
use jiff::Timestamp;

/// Starts a run supervised by the amlops binary of this build: this test binary is not
/// amlops, so it cannot be re-executed as the supervisor.
fn start_run(state: &Path, request: &RunRequest) -> Result<RunRecord, LocalError> {
    start_run_with_supervisor(state, request, Path::new(env!("CARGO_BIN_EXE_amlops")))
}

fn python3() -> PathBuf {
    let spec = EnvironmentSpec::UserManaged {
        interpreter: "python3".to_string(),
    };
    stage_environment(Path::new("/nonexistent"), &spec, &NoProgress)
        .unwrap()
        .python
}

/// A source directory with the given files.
fn source(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    for (name, text) in files {
        fs::write(src.join(name), text).unwrap();
    }
    src
}

fn request(run_id: &str, src: &Path, command: RunCommand) -> RunRequest {
    RunRequest {
        run_id: run_id.to_string(),
        experiment_name: "exp-a".to_string(),
        snapshot_dir: src.to_path_buf(),
        command,
        python: python3(),
        environment_variables: BTreeMap::from([("LEARNING_RATE".to_string(), "0.5".to_string())]),
        timeout: None,
        kill_grace: Duration::from_secs(5),
    }
}

fn script(name: &str) -> RunCommand {
    RunCommand::Script {
        script: name.to_string(),
        arguments: vec!["--epochs".to_string(), "it's 2".to_string()],
    }
}

fn wait_terminal(record: &RunRecord) -> RunStatus {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let status = poll_run(record, Timestamp::now()).unwrap();
        if status.is_terminal() || Instant::now() > until {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills a run's process group when a test ends early, so a failed assertion leaves
/// no `sleep 300` behind.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The fields of `/proc/<pid>/stat` after the command name (`[0]` = state, `[2]` = process
/// group, `[3]` = session, `[19]` = start time), read independently of the executor.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat[stat.rfind(')')? + 1..]
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    )
}

/// Live (non-zombie) processes in a process group.
fn group_members(pgid: i32) -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| stat_fields(pid).is_some_and(|f| f[0] != "Z" && f[2] == pgid.to_string()))
        .collect()
}

fn is_alive(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| f[0] != "Z")
}

/// Waits until `pid` has ended (bounded); false if it still lives.
fn ended_within(pid: i32, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while is_alive(pid) {
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// SIGKILLs a process that left the run's process group when a test ends early, unless
/// its pid now belongs to another process (start time changed).
struct KillPidOnDrop {
    pid: i32,
    start_time: Option<String>,
}

impl KillPidOnDrop {
    fn new(pid: i32) -> Self {
        let start_time = stat_fields(pid).map(|f| f[19].clone());
        Self { pid, start_time }
    }
}

impl Drop for KillPidOnDrop {
    fn drop(&mut self) {
        if self.start_time.is_some()
            && stat_fields(self.pid).map(|f| f[19].clone()) == self.start_time
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Waits until `path` exists (a script signalled it got somewhere).
fn wait_for_file(path: &Path) -> String {
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if let Ok(text) = fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} never appeared", path.display());
}

const TRAIN: &str = r#"
import os, sys
os.makedirs("outputs/model", exist_ok=True)
with open("outputs/metrics.json", "w") as f:
    f.write('{"accuracy": 0.9}')
with open("outputs/model/weights.bin", "wb") as f:
    f.write(b"x" * 1000)
print("run", os.environ["AZUREML_RUN_ID"], os.environ["AZUREML_EXPERIMENT_NAME"], os.environ["LEARNING_RATE"])
print("args", sys.argv[1:])
print("cwd", os.getcwd())
"#;

#[test]
fn successful_run_writes_outputs_in_a_copy_of_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join(".amlops");
    let src = source(dir.path(), &[("train.py", TRAIN)]);
    let record = start_run(&state, &request("run-ok", &src, script("train.py"))).unwrap();
    assert_eq!(record.run_dir, state.join("runs/run-ok"));
    assert_eq!(wait_terminal(&record), RunStatus::Succeeded);

    let stdout = fs::read_to_string(logs(&record).stdout).unwrap();
    let workdir = fs::canonicalize(record.run_dir.join("workdir")).unwrap();
    assert!(stdout.contains("run run-ok exp-a 0.5\n"), "{stdout}");
    assert!(
        stdout.contains("args ['--epochs', \"it's 2\"]\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("cwd {}\n", workdir.display())),
        "{stdout}"
    );
    let outputs: Vec<(String, u64)> = list_outputs(&record)
        .unwrap()
        .into_iter()
        .map(|o| (o.path.display().to_string(), o.size))
        .collect();
    assert_eq!(
        outputs,
        [
            ("metrics.json".to_string(), 17),
            ("model/weights.bin".to_string(), 1000)
        ]
    );
    assert!(
        !src.join("outputs").exists(),
        "the run wrote into the user's source directory"
    );
    assert_eq!(group_members(record.pgid), Vec::<i32>::new());
}

#[test]
fn a_run_id_starts_once_and_its_record_can_be_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join(".amlops");
    let src = source(dir.path(), &[("train.py", TRAIN)]);
    let req = request("run-once", &src, script("train.py"));
    let record = start_run(&state, &req).unwrap();
    let again = start_run(&state, &req).unwrap_err();
    assert!(matches!(again, LocalError::RunExists { .. }), "{again}");
    assert_eq!(load_run(&state, "run-once").unwrap(), Some(record.clone()));
    assert_eq!(load_run(&state, "never-started").unwrap(), None);
    assert!(matches!(
        load_run(&state, "../x"),
        Err(LocalError::InvalidRunId { .. })
    ));
    assert_eq!(wait_terminal(&record), RunStatus::Succeeded);
    assert_eq!(
        fs::read_to_string(logs(&record).stdout)
            .unwrap()
            .matches("run run-once")
            .count(),
        1
    );
}

#[test]
fn failing_script_reports_exit_code_and_stderr_tail() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(
        dir.path(),
        &[(
            "fail.py",
            "import sys\nfor i in range(30):\n    print('noise', i, file=sys.stderr)\nraise SystemExit('loss is NaN')\n",
        )],
    );
    let record = start_run(
        &dir.path().join("state"),
        &request("run-fail", &src, script("fail.py")),
    )
    .unwrap();
    let RunStatus::Failed {
        exit_code,
        stderr_tail,
    } = wait_terminal(&record)
    else {
        panic!("expected Failed");
    };
    assert_eq!(exit_code, 1);
    let lines: Vec<&str> = stderr_tail.lines().collect();
    assert_eq!(lines.len(), 20, "{stderr_tail}");
    assert_eq!(lines[0], "noise 11");
    assert_eq!(*lines.last().unwrap(), "loss is NaN");
    // The outcome is stable: a second poll says the same.
    assert!(matches!(
        poll_run(&record, Timestamp::now()).unwrap(),
        RunStatus::Failed { exit_code: 1, .. }
    ));
}

#[test]
fn shell_command_runs_with_the_interpreter_directory_first_on_path() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), &[]);
    let mut req = request(
        "run-shell",
        &src,
        RunCommand::Shell("echo \"$PATH\"; exit 4".to_string()),
    );
    req.python = PathBuf::from("/staged/env/bin/python");
    let record = start_run(&dir.path().join("state"), &req).unwrap();
    assert!(matches!(
        wait_terminal(&record),
        RunStatus::Failed { exit_code: 4, .. }
    ));
    let stdout = fs::read_to_string(logs(&record).stdout).unwrap();
    assert!(stdout.starts_with("/staged/env/bin:"), "{stdout}");
    let empty = request("run-empty", &src, RunCommand::Shell("  ".to_string()));
    let err = start_run(&dir.path().join("state"), &empty).unwrap_err();
    assert!(matches!(err, LocalError::EmptyCommand { .. }), "{err}");
}

#[test]
fn deadline_kills_the_group_and_stays_timed_out() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), &[]);
    let cmd = "sleep 300 & echo started > started; sleep 300";
    let mut req = request("run-slow", &src, RunCommand::Shell(cmd.to_string()));
    req.timeout = Some(Duration::from_secs(3600));
    let record = start_run(&dir.path().join("state"), &req).unwrap();
    let _guard = KillOnDrop(record.pgid);
    let deadline = record.deadline.unwrap();
    assert_eq!(deadline.duration_since(record.started_at).as_secs(), 3600);
    assert_eq!(
        poll_run(&record, Timestamp::now()).unwrap(),
        RunStatus::Running
    );
    wait_for_file(&record.run_dir.join("workdir/started"));
    let members = group_members(record.pgid);
    assert!(members.len() >= 2, "{members:?}");

    assert_eq!(poll_run(&record, deadline).unwrap(), RunStatus::TimedOut);
    assert_eq!(group_members(record.pgid), Vec::<i32>::new());
    assert!(members.iter().all(|&pid| !is_alive(pid)));
    assert_eq!(
        poll_run(&record, Timestamp::now()).unwrap(),
        RunStatus::TimedOut
    );
}

#[test]
fn cancel_kills_grandchildren_even_when_they_ignore_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), &[]);
    // The grandchild ignores SIGTERM (trap '' is inherited), so only SIGKILL after the
    // grace period can end it.
    let cmd = "trap '' TERM; sleep 300 & echo $! > grandchild.pid; echo >> grandchild.pid; wait";
    let mut req = request("run-cancel", &src, RunCommand::Shell(cmd.to_string()));
    req.kill_grace = Duration::from_millis(300);
    let record = start_run(&dir.path().join("state"), &req).unwrap();
    let _guard = KillOnDrop(record.pgid);
    let grandchild: i32 = wait_for_file(&record.run_dir.join("workdir/grandchild.pid"))
        .trim()
        .parse()
        .unwrap();
    assert!(is_alive(grandchild));

    cancel_run(&record).unwrap();
    assert!(
        !is_alive(grandchild),
        "grandchild {grandchild} survived the cancel"
    );
    assert_eq!(group_members(record.pgid), Vec::<i32>::new());
    assert_eq!(
        poll_run(&record, Timestamp::now()).unwrap(),
        RunStatus::Cancelled
    );
    // Cancelling again is a no-op, and a finished run is not turned into Cancelled.
    cancel_run(&record).unwrap();
    assert_eq!(
        poll_run(&record, Timestamp::now()).unwrap(),
        RunStatus::Cancelled
    );
}

#[test]
fn finished_run_is_not_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), &[]);
    let record = start_run(
        &dir.path().join("state"),
        &request("run-done", &src, RunCommand::Shell("true".into())),
    )
    .unwrap();
    assert_eq!(wait_terminal(&record), RunStatus::Succeeded);
    cancel_run(&record).unwrap();
    assert_eq!(
        poll_run(&record, Timestamp::now()).unwrap(),
        RunStatus::Succeeded
    );
}

#[test]
fn supervisor_killed_from_outside_is_lost_and_its_children_are_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), &[]);
    let cmd = "sleep 300 & echo $! > child.pid; echo >> child.pid; wait";
    let record = start_run(
        &dir.path().join("state"),
        &request("run-lost", &src, RunCommand::Shell(cmd.into())),
    )
    .unwrap();
    let _guard = KillOnDrop(record.pgid);
    let child: i32 = wait_for_file(&record.run_dir.join("workdir/child.pid"))
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(record.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while is_alive(record.pid) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = poll_run(&record, Timestamp::now()).unwrap();
    let RunStatus::Lost { reason } = &status else {
        panic!("expected Lost, got {status:?}")
    };
    assert!(
        reason.contains("exited without recording an exit code"),
        "{reason}"
    );
    assert!(!is_alive(child), "orphaned child {child} still runs");
    assert_eq!(poll_run(&record, Timestamp::now()).unwrap(), status);
}

#[test]
fn reused_pid_is_lost_and_never_signalled() {
    let dir = tempfile::tempdir().unwrap();
    let mut stranger = Command::new("sleep").arg("300").spawn().unwrap();
    let pid = stranger.id() as i32;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start_time: u64 = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let mut record: RunRecord = serde_json::from_value(serde_json::json!({
        "run_id": "run-reused",
        "run_dir": dir.path(),
        "pid": pid,
        "pgid": pid,
        "start_time": start_time + 1,
        "boot_id": fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim(),
        "started_at": "2026-01-01T00:00:00Z",
        "deadline": "2026-01-01T00:00:01Z",
        "kill_grace_ms": 0,
    }))
    .unwrap();
    let status = poll_run(&record, Timestamp::now()).unwrap();
    let RunStatus::Lost { reason } = status else {
        panic!("expected Lost, got {status:?}")
    };
    assert!(reason.contains("pid reused"), "{reason}");
    cancel_run(&record).unwrap();
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "an unrelated process was signalled"
    );

    // Same pid and start time but another boot: also never signalled.
    record.start_time = start_time;
    record.boot_id = "another-boot".to_string();
    record.run_dir = dir.path().join("other");
    fs::create_dir_all(&record.run_dir).unwrap();
    let status = poll_run(&record, Timestamp::now()).unwrap();
    assert!(
        matches!(&status, RunStatus::Lost { reason } if reason.contains("rebooted")),
        "{status:?}"
    );
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "an unrelated process was signalled"
    );
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}

const CRASH_CHILD_ENV: &str = "AMLOPS_LOCAL_TEST_CRASH_STATE";

/// Starts a run from a separate process that then dies by SIGKILL mid-run; this
/// process adopts the run from its serialized record alone.
#[test]
fn crash_and_resume_adopts_the_run_from_its_record() {
    if let Ok(state) = std::env::var(CRASH_CHILD_ENV) {
        let src = PathBuf::from(&state).join("src");
        let cmd = "sleep 1; echo bye >&2; exit 3";
        let record = start_run(
            Path::new(&state),
            &request("run-crash", &src, RunCommand::Shell(cmd.into())),
        )
        .unwrap();
        println!("RECORD {}", serde_json::to_string(&record).unwrap());
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    source(dir.path(), &[("train.py", TRAIN)]);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_and_resume_adopts_the_run_from_its_record",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_ENV, dir.path())
        .output()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(9),
        "{out:?}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json = stdout
        .lines()
        .find_map(|l| Some(&l[l.find("RECORD ")? + "RECORD ".len()..]))
        .expect("child printed no record");
    let record: RunRecord = serde_json::from_str(json).unwrap();
    let _guard = KillOnDrop(record.pgid);
    assert_eq!(
        poll_run(&record, Timestamp::now()).unwrap(),
        RunStatus::Running
    );
    assert_eq!(
        wait_terminal(&record),
        RunStatus::Failed {
            exit_code: 3,
            stderr_tail: "bye".to_string()
        }
    );
}

#[test]
fn follow_streams_logs_until_the_run_ends() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(
        dir.path(),
        &[(
            "steps.py",
            "import sys, time\nfor i in range(5):\n    print('step', i)\n    time.sleep(0.1)\nprint('warn', file=sys.stderr)\n",
        )],
    );
    let record = start_run(
        &dir.path().join("state"),
        &request("run-follow", &src, script("steps.py")),
    )
    .unwrap();
    let (mut out, mut err, mut chunks) = (Vec::new(), Vec::new(), 0);
    let status = follow_logs(&record, Duration::from_millis(30), &mut |stream, bytes| {
        chunks += 1;
        match stream {
            LogStream::Stdout => out.extend_from_slice(bytes),
            LogStream::Stderr => err.extend_from_slice(bytes),
        }
    })
    .unwrap();
    assert_eq!(status, RunStatus::Succeeded);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "step 0\nstep 1\nstep 2\nstep 3\nstep 4\n"
    );
    assert_eq!(String::from_utf8(err).unwrap(), "warn\n");
    assert!(
        chunks >= 2,
        "logs arrived in {chunks} chunk(s): not streamed"
    );
}

/// Starts a child in a session of its own (it leaves the run's process group and session,
/// as a daemon does) that writes its pid to `escaped.pid` and sleeps.
const ESCAPE: &str =
    "setsid sh -c 'echo $$ > escaped.tmp; mv escaped.tmp escaped.pid; exec sleep 300' &";

/// The escaped process of a run started with [`ESCAPE`], once it runs; checks it really
/// left the run's session.
fn escaped_process(record: &RunRecord) -> (i32, KillPidOnDrop) {
    let pid: i32 = wait_for_file(&record.run_dir.join("workdir/escaped.pid"))
        .trim()
        .parse()
        .unwrap();
    let guard = KillPidOnDrop::new(pid);
    let session = stat_fields(pid).map(|f| f[3].clone());
    assert!(is_alive(pid));
    assert_ne!(
        session,
        Some(record.pid.to_string()),
        "did not leave the session"
    );
    (pid, guard)
}

#[test]
fn a_run_past_its_limit_ends_timed_out_with_no_amlops_attached() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), &[]);
    let cmd = format!("{ESCAPE} sleep 300");
    let mut req = request("run-limit", &src, RunCommand::Shell(cmd));
    req.timeout = Some(Duration::from_secs(2));
    req.kill_grace = Duration::from_millis(300);
    let record = start_run(&dir.path().join("state"), &req).unwrap();
    let _guard = KillOnDrop(record.pgid);
    let (escaped, _escaped_guard) = escaped_process(&record);

    // Nobody polls: only the supervisor can end the run.
    assert!(
        ended_within(record.pid, Duration::from_secs(60)),
        "the supervisor ran on past the deadline"
    );
    assert!(!is_alive(escaped), "process {escaped} outlived the run");
    assert_eq!(group_members(record.pgid), Vec::<i32>::new());
    assert!(Timestamp::now() >= record.deadline.unwrap());
    assert_eq!(
        poll_run(&record, Timestamp::now()).unwrap(),
        RunStatus::TimedOut
    );
    // The command's own end is recorded too (killed by SIGTERM), yet the status stays
    // TimedOut: the recorded reason decides.
    assert_eq!(
        fs::read_to_string(record.run_dir.join("exit_code")).unwrap(),
        "143\n"
    );
}

#[test]
fn cancel_ends_a_grandchild_that_left_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), &[]);
    let cmd = format!("{ESCAPE} sleep 300");
    let record = start_run(
        &dir.path().join("state"),
        &request("run-escape-cancel", &src, RunCommand::Shell(cmd)),
    )
    .unwrap();
    let _guard = KillOnDrop(record.pgid);
    let (escaped, _escaped_guard) = escaped_process(&record);

    cancel_run(&record).unwrap();
    assert!(!is_alive(escaped), "process {escaped} survived the cancel");
    assert!(!is_alive(record.pid), "the supervisor survived the cancel");
    assert_eq!(
        poll_run(&record, Timestamp::now()).unwrap(),
        RunStatus::Cancelled
    );
}

#[test]
fn processes_a_completed_run_left_behind_end_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), &[]);
    // A plain background job and one in its own session; the script ends at once.
    let cmd = format!(
        "sleep 300 & echo $! > background.pid; {ESCAPE} while [ ! -e escaped.pid ]; do sleep 0.02; done"
    );
    let record = start_run(
        &dir.path().join("state"),
        &request("run-leftovers", &src, RunCommand::Shell(cmd)),
    )
    .unwrap();
    let _guard = KillOnDrop(record.pgid);
    let (escaped, _escaped_guard) = escaped_process(&record);
    let background: i32 = fs::read_to_string(record.run_dir.join("workdir/background.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _background_guard = KillPidOnDrop::new(background);

    // Succeeded is recorded only once every process of the run has ended.
    assert_eq!(wait_terminal(&record), RunStatus::Succeeded);
    assert!(!is_alive(escaped), "process {escaped} outlived the run");
    assert!(
        !is_alive(background),
        "process {background} outlived the run"
    );
}

#[test]
fn cancel_gives_the_command_sigterm_and_the_grace_period_to_clean_up() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), &[]);
    let cmd = "trap 'echo cleaned > cleaned; exit 0' TERM; sleep 300 & echo >> ready; wait";
    let mut req = request("run-graceful", &src, RunCommand::Shell(cmd.to_string()));
    // Without SIGTERM reaching the command, cancel would SIGKILL it after this long.
    req.kill_grace = Duration::from_secs(120);
    let record = start_run(&dir.path().join("state"), &req).unwrap();
    let _guard = KillOnDrop(record.pgid);
    wait_for_file(&record.run_dir.join("workdir/ready"));
    cancel_run(&record).unwrap();
    assert_eq!(
        fs::read_to_string(record.run_dir.join("workdir/cleaned")).ok(),
        Some("cleaned\n".to_string()),
        "the command never got SIGTERM"
    );
    assert_eq!(
        poll_run(&record, Timestamp::now()).unwrap(),
        RunStatus::Cancelled
    );
}
