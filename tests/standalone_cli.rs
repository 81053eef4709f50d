//! `amlops apply/get/describe/logs/delete/validate/plan` as a user runs them: the real binary,
//! a temporary working directory, real local runs of python3.

mod cli_support;

use cli_support::{amlops_in, code, text};

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    /// A project with a local target, a user-managed python3 run configuration and an
    /// Experiment running `script` (python source) from `src/`.
    fn new(script: &str, experiment_extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/train.py"), script).unwrap();
        let w = Self { dir };
        w.write_manifests(experiment_extra, 60);
        w
    }

    fn write_manifests(&self, experiment_extra: &str, max_seconds: u32) {
        let manifests = format!(
            "apiVersion: amlops.io/v1alpha1\nkind: ComputeTarget\nmetadata: {{name: local}}\nspec: {{local: {{}}}}\n---\n\
             apiVersion: amlops.io/v1alpha1\nkind: RunConfiguration\nmetadata: {{name: py}}\nspec:\n  targetRef: {{name: local}}\n  \
             maxRunDurationSeconds: {max_seconds}\n  environmentVariables: {{GREETING: hello}}\n  environment: {{userManaged: {{interpreterPath: python3}}}}\n---\n\
             apiVersion: amlops.io/v1alpha1\nkind: Experiment\nmetadata: {{name: train}}\nspec:\n  runConfigurationRef: {{name: py}}\n  \
             source: {{localPath: src}}\n  script: train.py\n{experiment_extra}"
        );
        std::fs::write(self.path().join("app.yaml"), manifests).unwrap();
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) -> Output {
        amlops_in(self.path()).args(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn experiment(&self) -> serde_json::Value {
        self.json(&["get", "exp", "train", "-o", "json"])
    }
}

fn condition<'v>(obj: &'v serde_json::Value, type_: &str) -> &'v serde_json::Value {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or(&serde_json::Value::Null)
}

const OK_SCRIPT: &str = "import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/m.txt','w').write(os.environ['GREETING'])\nprint('trained', os.environ['AZUREML_RUN_ID'])\n";

#[test]
fn apply_wait_runs_then_reapply_reuses_and_a_spec_change_reruns() {
    let w = Workdir::new(OK_SCRIPT, "");
    let out = w.run(&["apply", "-f", "app.yaml", "--wait"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("experiment/train created"));
    let exp = w.experiment();
    assert_eq!(condition(&exp, "Succeeded")["status"], "True");
    let run = &exp["status"]["currentRun"];
    assert_eq!(run["state"], "Completed");
    assert_eq!(exp["metadata"]["generation"], 1);
    let outputs = PathBuf::from(run["outputs"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(outputs.join("m.txt")).unwrap(),
        "hello"
    );
    assert!(run["snapshotId"].as_str().is_some_and(|s| s.len() == 64));
    let first_id = run["id"].as_str().unwrap().to_string();

    // Same manifests again: nothing changes, no new run.
    let out = w.run(&["apply", "-f", "app.yaml", "--wait"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("experiment/train unchanged"));
    assert_eq!(
        w.experiment()["status"]["currentRun"]["id"],
        first_id.as_str()
    );
    assert_eq!(
        std::fs::read_dir(w.path().join(".amlops/runs"))
            .unwrap()
            .count(),
        1
    );

    // A spec change is a new generation and a new run; the old one moves to history.
    w.write_manifests("  arguments: [\"--epochs\", \"2\"]\n", 60);
    let out = w.run(&["apply", "-f", "app.yaml", "--wait"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let exp = w.experiment();
    assert_eq!(exp["metadata"]["generation"], 2);
    assert_ne!(exp["status"]["currentRun"]["id"], first_id.as_str());
    assert_eq!(exp["status"]["runs"][0]["id"], first_id.as_str());

    // --rerun starts another run of the same generation.
    let out = w.run(&["apply", "-f", "app.yaml", "--wait", "--rerun"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(
        w.experiment()["status"]["runs"].as_array().unwrap().len(),
        2
    );

    // get shows the printer columns; describe shows conditions and events; logs prints stdout.
    let table = String::from_utf8(w.run(&["get", "exp"]).stdout).unwrap();
    assert!(
        table.starts_with("NAME") && table.contains("Completed"),
        "{table}"
    );
    let described = String::from_utf8(w.run(&["describe", "exp", "train"]).stdout).unwrap();
    assert!(
        described.contains("Succeeded") && described.contains("Completed"),
        "{described}"
    );
    let logs = String::from_utf8(w.run(&["logs", "exp/train"]).stdout).unwrap();
    assert!(logs.contains("trained train-"), "{logs}");
    let missing = w.run(&["logs", "exp/nothere"]);
    assert_eq!(code(&missing), 1);
    assert!(
        text(&missing).contains("Experiment/nothere not found"),
        "{}",
        text(&missing)
    );

    // delete goes through the finalizer and removes the object.
    let out = w.run(&["delete", "exp", "train"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("experiment/train deleted"));
    assert_eq!(code(&w.run(&["get", "exp", "train"])), 1);
}

#[test]
fn a_failing_script_fails_with_the_stderr_tail() {
    let w = Workdir::new(
        "import sys\nprint('about to fail', file=sys.stderr)\nsys.exit(3)\n",
        "",
    );
    let out = w.run(&["apply", "-f", "app.yaml", "--wait"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let exp = w.experiment();
    assert_eq!(condition(&exp, "Failed")["status"], "True");
    let stalled = condition(&exp, "Stalled");
    assert_eq!(stalled["reason"], "ExitCode");
    assert!(
        stalled["message"]
            .as_str()
            .unwrap()
            .contains("about to fail"),
        "{stalled}"
    );
    assert_eq!(exp["status"]["currentRun"]["error"]["code"], "ExitCode");
}

#[test]
fn a_run_past_max_duration_fails_with_reason_timeout() {
    let w = Workdir::new("import time\ntime.sleep(60)\n", "");
    w.write_manifests("", 1);
    let started = Instant::now();
    let out = w.run(&["apply", "-f", "app.yaml", "--wait"]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(30));
    let exp = w.experiment();
    assert_eq!(condition(&exp, "Failed")["reason"], "Timeout");
}

#[test]
fn apply_without_wait_returns_and_a_later_apply_adopts_the_running_run() {
    // The run outlives the `apply` process (as after a crash of amlops) and is never started twice.
    let w = Workdir::new(
        "import time, os\ntime.sleep(2)\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/done','w').write('1')\n",
        "",
    );
    let out = w.run(&["apply", "-f", "app.yaml"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let exp = w.experiment();
    assert_eq!(condition(&exp, "Submitted")["status"], "True");
    assert_ne!(exp["status"]["currentRun"]["state"], "Completed");
    let out = w.run(&["apply", "-f", "app.yaml", "--wait"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let exp = w.experiment();
    assert_eq!(exp["status"]["currentRun"]["state"], "Completed");
    assert_eq!(
        std::fs::read_dir(w.path().join(".amlops/runs"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn deleting_a_running_experiment_kills_its_process_group() {
    let script = "import subprocess, time\nchild = subprocess.Popen(['sleep', '300'])\nopen('child.pid','w').write(str(child.pid))\ntime.sleep(300)\n";
    let w = Workdir::new(script, "");
    assert_eq!(code(&w.run(&["apply", "-f", "app.yaml"])), 0);
    let run_id = w.experiment()["status"]["currentRun"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pid_file = w
        .path()
        .join(".amlops/runs")
        .join(&run_id)
        .join("workdir/child.pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pid_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let child: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let out = w.run(&["delete", "-f", "app.yaml"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("experiment/train deleted"),
        "{}",
        text(&out)
    );
    // The grandchild is gone (or a zombie awaiting a reaper that is not us).
    let state = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.split(") ").nth(1).is_some_and(|s| s.starts_with('Z')),
        "child {child} survived: {state}"
    );
}

#[test]
fn validate_and_plan_report_per_object() {
    let w = Workdir::new(OK_SCRIPT, "");
    let out = w.run(&["validate", "-f", "app.yaml"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let plan = w.run(&["plan", "-f", "app.yaml"]);
    let plan = text(&plan);
    assert!(plan.contains("experiment/train: create"), "{plan}");
    assert!(
        plan.contains("snapshot the source and start a new run"),
        "{plan}"
    );

    std::fs::write(
        w.path().join("bad.yaml"),
        "apiVersion: amlops.io/v1alpha1\nkind: ComputeTarget\nmetadata: {name: big}\nspec:\n  workspaceRef: {name: ml}\n  amlCompute: {vmSize: STANDARD_D2_V2, minNodes: 4, maxNodes: 2}\n---\n\
         apiVersion: amlops.io/v1alpha1\nkind: Experiment\nmetadata: {name: e}\nspec:\n  runConfigurationRef: {name: nowhere}\n  source: {localPath: src}\n  script: a.py\n",
    )
    .unwrap();
    let out = w.run(&["validate", "-f", "bad.yaml"]);
    assert_eq!(code(&out), 2);
    let msg = text(&out);
    assert!(
        msg.contains("bad.yaml document 1 (ComputeTarget/big)")
            && msg.contains("minNodes must be less than or equal to maxNodes"),
        "{msg}"
    );
    // Schema-valid but pointing nowhere: cross-reference problems are listed too.
    std::fs::write(w.path().join("refs.yaml"), "apiVersion: amlops.io/v1alpha1\nkind: Experiment\nmetadata: {name: e}\nspec:\n  runConfigurationRef: {name: nowhere}\n  source: {localPath: src}\n  script: a.py\n").unwrap();
    let out = w.run(&["validate", "-f", "refs.yaml"]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out)
            .contains("spec.runConfigurationRef.name: RunConfiguration \"nowhere\" is not defined"),
        "{}",
        text(&out)
    );
    // plan judges as validate does.
    assert_eq!(code(&w.run(&["plan", "-f", "refs.yaml"])), 2);
    // apply refuses invalid input and writes nothing.
    assert_eq!(code(&w.run(&["apply", "-f", "bad.yaml"])), 2);
    assert_eq!(code(&w.run(&["get", "ct", "big"])), 1);
}

#[test]
fn plan_on_a_fresh_state_counts_the_objects_of_the_same_plan() {
    let w = Workdir::new(OK_SCRIPT, "");
    let out = w.run(&["plan", "-f", "app.yaml"]);
    let plan = text(&out);
    assert_eq!(code(&out), 0, "{plan}");
    assert!(
        plan.contains("runconfiguration/py: create\n  - run with interpreter python3 as found"),
        "{plan}"
    );
    assert!(
        !plan.contains("staged already") && !plan.contains("does not exist yet"),
        "{plan}"
    );
    // Reading does not create a state.
    assert!(!w.path().join(".amlops").exists());
}

#[test]
fn plan_and_validate_agree_on_every_example() {
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let w = Workdir::new(OK_SCRIPT, "");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.push(examples.clone());
    for file in files {
        let file = file.to_str().unwrap();
        let validate = w.run(&["validate", "-f", file]);
        let plan = w.run(&["plan", "-f", file]);
        assert_eq!(
            code(&plan),
            code(&validate),
            "{file}: validate said {}\nplan said {}",
            text(&validate),
            text(&plan)
        );
    }
}

#[test]
fn objects_of_one_name_in_two_namespaces_read_apart() {
    let w = Workdir::new(OK_SCRIPT, "");
    std::fs::write(
        w.path().join("two.yaml"),
        "apiVersion: amlops.io/v1alpha1\nkind: ComputeTarget\nmetadata: {name: local}\nspec: {local: {}}\n---\n\
         apiVersion: amlops.io/v1alpha1\nkind: ComputeTarget\nmetadata: {name: local, namespace: team-a}\nspec: {local: {}}\n",
    )
    .unwrap();
    let out = w.run(&["apply", "-f", "two.yaml"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("NAMESPACE"))
        .map(|l| l.split_whitespace().take(2).collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["NAMESPACE", "NAME"],
            ["default", "local"],
            ["team-a", "local"]
        ],
        "{}",
        text(&out)
    );
    let team = w.run(&["delete", "ct", "local", "-n", "team-a"]);
    assert!(
        text(&team).contains("computetarget/local (namespace team-a) deleted"),
        "{}",
        text(&team)
    );
}

#[test]
fn a_killed_apply_leaves_a_readable_store() {
    let w = Workdir::new("import time\ntime.sleep(30)\n", "");
    let mut child = amlops_in(w.path())
        .args(["apply", "-f", "app.yaml", "--wait"])
        .spawn()
        .unwrap();
    let db = w.path().join(".amlops/state.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let out = w.run(&["get", "exp", "train", "-o", "json"]);
        if out.status.success()
            && serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .is_ok_and(|v| v["status"]["currentRun"]["id"].is_string())
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    assert!(db.exists());
    let exp = w.experiment();
    assert!(exp["status"]["currentRun"]["id"].is_string());
    let check = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .unwrap();
    assert_eq!(check, "ok");
    // The run survives and a new apply can cancel it through delete.
    assert_eq!(code(&w.run(&["delete", "exp", "train"])), 0);
}

/// Manifests of an Experiment whose code is the ConfigMap `code` holding `train.py`.
fn config_map_app(script: &str) -> String {
    format!(
        "apiVersion: amlops.io/v1alpha1\nkind: ComputeTarget\nmetadata: {{name: local}}\nspec: {{local: {{}}}}\n---\n\
         apiVersion: amlops.io/v1alpha1\nkind: RunConfiguration\nmetadata: {{name: py}}\nspec:\n  targetRef: {{name: local}}\n  \
         environment: {{userManaged: {{interpreterPath: python3}}}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: code}}\ndata:\n  train.py: {script:?}\n---\n\
         apiVersion: amlops.io/v1alpha1\nkind: Experiment\nmetadata: {{name: train}}\nspec:\n  runConfigurationRef: {{name: py}}\n  \
         source: {{configMap: {{name: code}}}}\n  script: train.py\n"
    )
}

#[test]
fn a_changed_config_map_is_configured_planned_and_runs_the_new_code() {
    let w = Workdir::new(OK_SCRIPT, "");
    std::fs::write(
        w.path().join("cm.yaml"),
        config_map_app("print('code v1')\n"),
    )
    .unwrap();
    let out = w.run(&["apply", "-f", "cm.yaml", "--wait"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let first = w.experiment()["status"]["currentRun"].clone();
    let logs = text(&w.run(&["logs", "exp/train"]));
    assert!(logs.contains("code v1"), "{logs}");

    // Only the ConfigMap's data changes.
    std::fs::write(
        w.path().join("cm.yaml"),
        config_map_app("print('code v2')\n"),
    )
    .unwrap();
    let plan = text(&w.run(&["plan", "-f", "cm.yaml"]));
    assert!(plan.contains("data changed"), "{plan}");
    assert!(
        plan.contains("configmap/code: update (new generation)"),
        "{plan}"
    );
    assert!(
        plan.contains("Experiment \"train\" snapshots it: new generation, new run")
            && plan.contains("start a new run (ConfigMap code, whose data changed)"),
        "{plan}"
    );

    let out = w.run(&["apply", "-f", "cm.yaml", "--wait"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(
        text(&out).contains("configmap/code configured"),
        "{}",
        text(&out)
    );
    let exp = w.experiment();
    let run = &exp["status"]["currentRun"];
    assert_eq!(exp["metadata"]["generation"], 2);
    assert_ne!(run["id"], first["id"]);
    assert_ne!(run["snapshotId"], first["snapshotId"]);
    let logs = text(&w.run(&["logs", "exp/train"]));
    assert!(logs.contains("code v2"), "{logs}");
    let described = text(&w.run(&["describe", "exp", "train"]));
    assert!(described.contains("SourceChanged"), "{described}");

    // Applying the same content again changes nothing.
    let out = w.run(&["apply", "-f", "cm.yaml", "--wait"]);
    assert!(
        text(&out).contains("configmap/code unchanged"),
        "{}",
        text(&out)
    );
    assert_eq!(w.experiment()["status"]["currentRun"]["id"], run["id"]);

    // Applying the ConfigMap alone runs the Experiments that snapshot it in the same apply.
    std::fs::write(
        w.path().join("only-cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: code}\ndata:\n  train.py: \"print('code v3')\\n\"\n",
    )
    .unwrap();
    let out = w.run(&["apply", "-f", "only-cm.yaml", "--wait"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(w.experiment()["metadata"]["generation"], 3);
    assert_eq!(w.experiment()["status"]["currentRun"]["state"], "Completed");
    let logs = text(&w.run(&["logs", "exp/train"]));
    assert!(logs.contains("code v3"), "{logs}");
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_state_holding_secret_values_is_private_and_loose_modes_are_tightened_once() {
    use std::os::unix::fs::PermissionsExt;
    let w = Workdir::new(OK_SCRIPT, "");
    std::fs::write(
        w.path().join("secret.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: canary}\nstringData: {token: s3cr3t-canary}\n",
    )
    .unwrap();
    let out = w.run(&["apply", "-f", "app.yaml", "-f", "secret.yaml", "--wait"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let state = w.path().join(".amlops");
    assert_eq!(mode(&state), 0o700);
    for file in ["state.db", "state.db-wal", "state.db-shm"] {
        let path = state.join(file);
        if path.exists() || file == "state.db" {
            assert_eq!(mode(&path), 0o600, "{file}");
        }
    }

    // A state left open by an older amlops (or a umask) is made private, and said so once.
    let loosen = |path: &Path, m| std::fs::set_permissions(path, PermissionsExt::from_mode(m));
    loosen(&state, 0o755).unwrap();
    loosen(&state.join("state.db"), 0o644).unwrap();
    let out = w.run(&["get", "exp", "train"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("state.db private (mode 0644 -> 0600)")
            && stderr.contains(".amlops private (mode 0755 -> 0700)"),
        "{stderr}"
    );
    assert_eq!(
        (mode(&state), mode(&state.join("state.db"))),
        (0o700, 0o600)
    );
    let again = w.run(&["get", "exp", "train"]);
    assert!(!text(&again).contains("private"), "{}", text(&again));
}

#[test]
fn two_applies_on_one_state_take_turns_and_readers_never_wait() {
    let w = Workdir::new("import time\ntime.sleep(3)\nprint('trained')\n", "");
    let spawn = || {
        amlops_in(w.path())
            .args(["apply", "-f", "app.yaml", "--wait"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let pids = [a.id(), b.id()];
    // Readers work all along, whatever the writers are doing.
    let mut reads = 0;
    while !w.path().join(".amlops/runs").exists() || reads < 5 {
        let out = w.run(&["get", "exp"]);
        assert_eq!(code(&out), 0, "get during apply: {}", text(&out));
        reads += 1;
        if reads > 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let described = w.run(&["describe", "exp", "train"]);
    assert_eq!(code(&described), 0, "{}", text(&described));
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    for out in &outs {
        assert_eq!(code(out), 0, "{}", text(out));
        assert!(!text(out).contains("database is locked"), "{}", text(out));
    }
    // The second waited for the first, said so naming it, and found the work done.
    let waited = (0..2).find(|&i| {
        String::from_utf8_lossy(&outs[i].stderr).contains(&format!(
            "waiting for another amlops apply (pid {}) on .amlops",
            pids[1 - i]
        ))
    });
    let waited = waited.unwrap_or_else(|| panic!("{}\n{}", text(&outs[0]), text(&outs[1])));
    assert!(text(&outs[waited]).contains("experiment/train unchanged"));
    let exp = w.experiment();
    assert_eq!(exp["status"]["currentRun"]["state"], "Completed");
    assert!(
        exp["status"]["runs"]
            .as_array()
            .is_none_or(|r| r.is_empty())
    );
    assert_eq!(
        std::fs::read_dir(w.path().join(".amlops/runs"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn a_source_file_named_like_an_amlops_marker_reaches_the_run_unchanged() {
    let w = Workdir::new("print('marker:', open('.complete').read())\n", "");
    std::fs::write(w.path().join("src/.complete"), "the user's own data").unwrap();
    let out = w.run(&["apply", "-f", "app.yaml", "--wait"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let logs = text(&w.run(&["logs", "exp/train"]));
    assert!(logs.contains("marker: the user's own data"), "{logs}");
}

/// A python script whose forked child leaves the session (`os.setsid()`), writes its pid to
/// `escaped.pid` and sleeps, while the script sleeps too.
const ESCAPING_SCRIPT: &str = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    open('escaped.tmp', 'w').write(str(os.getpid()))\n    os.rename('escaped.tmp', 'escaped.pid')\ntime.sleep(300)\n";

fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// Waits (bounded) for the pid an [`ESCAPING_SCRIPT`] run wrote.
fn escaped_pid(w: &Workdir) -> i32 {
    let runs = w.path().join(".amlops/runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let found = std::fs::read_dir(&runs)
            .into_iter()
            .flatten()
            .find_map(|e| std::fs::read_to_string(e.ok()?.path().join("workdir/escaped.pid")).ok());
        if let Some(pid) = found {
            return pid.trim().parse().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the run never wrote escaped.pid");
}

/// Waits (bounded) for `child` to exit.
fn exit_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "amlops did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_to_apply_wait_cancels_its_run_like_ctrl_c_and_ends_every_process_of_it() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let w = Workdir::new(ESCAPING_SCRIPT, "");
        let mut apply = amlops_in(w.path())
            .args(["apply", "-f", "app.yaml", "--wait"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let escaped = escaped_pid(&w);
        assert!(is_alive(escaped));
        kill(Pid::from_raw(apply.id() as i32), signal).unwrap();
        let status = exit_within(&mut apply, Duration::from_secs(60));
        let out = apply.wait_with_output().unwrap();
        let output = text(&out);
        assert_eq!(status.code(), Some(130), "{signal}: {output}");
        assert!(output.contains("interrupted: cancelling"), "{output}");
        let exp = w.experiment();
        assert_eq!(exp["status"]["currentRun"]["state"], "Canceled", "{signal}");
        if is_alive(escaped) {
            let _ = kill(Pid::from_raw(escaped), Signal::SIGKILL);
            panic!("{signal}: process {escaped} that left the session survived the cancel");
        }
    }
}

/// A manifest `validate` and `apply` must both refuse, and the fragments the refusal says.
struct Refused {
    what: String,
    /// An object stored first (by `apply`) when the refusal is of an update.
    stored: Option<String>,
    manifest: String,
    expected: Vec<String>,
    args: Vec<&'static str>,
}

/// Every manifest of tests/invalid (what admission refuses: metadata, schema, CEL, Secret and
/// ConfigMap rules), `old` then `new` for the two-document updates.
fn admission_cases() -> Vec<Refused> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file).unwrap();
            let expected = text
                .lines()
                .filter_map(|l| l.strip_prefix("# expect: "))
                .map(String::from)
                .collect();
            let documents: Vec<&str> = text.split("\n---\n").collect();
            let (stored, manifest) = match documents.as_slice() {
                [new] => (None, new.to_string()),
                [old, new] => (Some(old.to_string()), new.to_string()),
                _ => panic!("{}: one document, or old + new", file.display()),
            };
            Refused {
                what: file.file_name().unwrap().to_string_lossy().into(),
                stored,
                manifest,
                expected,
                args: vec![],
            }
        })
        .collect()
}

/// What a reconcile would refuse for the manifest alone, so `apply` refuses it up front.
fn reconcile_cases() -> Vec<Refused> {
    let workspace = "apiVersion: amlops.io/v1alpha1\nkind: Workspace\nmetadata: {name: ml}\nspec:\n  \
        subscriptionId: 00000000-0000-0000-0000-000000000000\n  resourceGroup: rg\n  workspaceName: ws1\n  \
        credential: {managedIdentity: {}}\n---\n";
    let case = |what: &str, manifest: String, expected: &str| Refused {
        what: what.into(),
        stored: None,
        manifest,
        expected: vec![expected.into()],
        args: vec![],
    };
    vec![
        case(
            "an Azure compute whose name is not a valid Azure ML compute name",
            format!(
                "{workspace}apiVersion: amlops.io/v1alpha1\nkind: ComputeTarget\nmetadata: {{name: vm}}\nspec:\n  \
                 workspaceRef: {{name: ml}}\n  amlCompute: {{vmSize: STANDARD_D2_V2, maxNodes: 2}}\n"
            ),
            "(ComputeTarget/vm): metadata.name: \"vm\" is the name of this compute in Azure ML, which allows 3-24 characters",
        ),
        case(
            "inline files where one name is the directory of another",
            "apiVersion: amlops.io/v1alpha1\nkind: Experiment\nmetadata: {name: e}\nspec:\n  \
             runConfigurationRef: {name: r}\n  source:\n    inline:\n      files: {a: \"x\", a/b: \"y\"}\n  script: a\n"
                .into(),
            "(Experiment/e): spec.source.inline.files: inline files: 'a' is a file and also the directory of 'a/b'; rename one of them",
        ),
        Refused {
            args: vec!["-n", "Team_A"],
            ..case(
                "a namespace from -n that is not a namespace name",
                "apiVersion: amlops.io/v1alpha1\nkind: ComputeTarget\nmetadata: {name: local}\nspec: {local: {}}\n"
                    .into(),
                "(ComputeTarget/local): --namespace: \"Team_A\" is not valid",
            )
        },
    ]
}

/// Every row of the store, to see that a refused apply changed nothing.
fn stored_rows(dir: &Path) -> Vec<(String, String, String, String)> {
    let db = dir.join(".amlops/state.db");
    if !db.exists() {
        return vec![];
    }
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt =
        match conn.prepare("SELECT kind, namespace, name, object FROM objects ORDER BY 1, 2, 3") {
            Ok(s) => s,
            Err(_) => return vec![], // never written: no tables yet
        };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The values of a Secret manifest, which no output may show.
fn secret_values(manifest: &str) -> Vec<String> {
    let Ok(doc) = serde_saphyr::from_str::<serde_json::Value>(manifest) else {
        return vec![];
    };
    if doc["kind"] != "Secret" {
        return vec![];
    }
    let mut values = Vec::new();
    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Object(m) => m.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    for field in ["data", "stringData"] {
        strings(&doc[field], &mut values);
    }
    values
}

#[test]
fn validate_and_apply_refuse_the_same_manifests_naming_object_and_field() {
    let cases: Vec<Refused> = admission_cases()
        .into_iter()
        .chain(reconcile_cases())
        .collect();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            amlops_in(dir.path())
                .args(args)
                .args(&case.args)
                .output()
                .unwrap()
        };
        if let Some(old) = &case.stored {
            std::fs::write(dir.path().join("old.yaml"), old).unwrap();
            run(&["apply", "-f", "old.yaml"]);
            assert_eq!(
                stored_rows(dir.path()).len(),
                1,
                "{}: the old object is stored",
                case.what
            );
        }
        let before = stored_rows(dir.path());
        std::fs::write(dir.path().join("new.yaml"), &case.manifest).unwrap();
        let doc: serde_json::Value = serde_saphyr::from_multiple(&case.manifest)
            .unwrap()
            .into_iter()
            .last()
            .unwrap();
        let object = format!(
            "({}/{})",
            doc["kind"].as_str().unwrap(),
            doc["metadata"]["name"].as_str().unwrap().escape_debug()
        );
        for command in ["validate", "apply"] {
            let out = run(&[command, "-f", "new.yaml"]);
            let said = text(&out);
            assert_eq!(
                code(&out),
                2,
                "{}: {command} must refuse it: {said}",
                case.what
            );
            for fragment in &case.expected {
                let line = said.lines().find(|l| l.contains(fragment.as_str()));
                assert!(
                    line.is_some_and(|l| l.contains(&object)),
                    "{}: {command} must say {fragment:?} about {object}: {said}",
                    case.what
                );
            }
            assert!(
                !said.chars().any(|c| c.is_control() && c != '\n'),
                "{}: {command} printed a raw control character: {said:?}",
                case.what
            );
            for value in secret_values(&case.manifest) {
                assert!(
                    !said.contains(&value),
                    "{}: {command} showed a Secret value: {said}",
                    case.what
                );
            }
            assert_eq!(
                stored_rows(dir.path()),
                before,
                "{}: {command} changed the store",
                case.what
            );
        }
    }
}
