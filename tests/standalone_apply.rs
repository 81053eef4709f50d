//! `amlops apply/validate` on manifests a user gets wrong: the real binary in a temporary
//! working directory.

mod cli_support;

use cli_support::{amlops_in, text};

use std::path::Path;
use std::process::Output;

fn amlops(dir: &Path, args: &[&str]) -> Output {
    amlops_in(dir).args(args).output().unwrap()
}

/// A project directory with `src/train.py` and `app.yaml` holding `manifests`.
fn project(manifests: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/train.py"), "print('trained')\n").unwrap();
    std::fs::write(dir.path().join("app.yaml"), manifests).unwrap();
    dir
}

const LOCAL_TARGET: &str = "apiVersion: amlops.io/v1alpha1\nkind: ComputeTarget\nmetadata: {name: local}\nspec: {local: {}}\n";

fn run_configuration(interpreter: &str) -> String {
    format!(
        "apiVersion: amlops.io/v1alpha1\nkind: RunConfiguration\nmetadata: {{name: py}}\nspec:\n  targetRef: {{name: local}}\n  \
         environment: {{userManaged: {{interpreterPath: {interpreter}}}}}\n"
    )
}

fn experiment(run_configuration: &str) -> String {
    format!(
        "apiVersion: amlops.io/v1alpha1\nkind: Experiment\nmetadata: {{name: train}}\nspec:\n  runConfigurationRef: {{name: {run_configuration}}}\n  \
         source: {{localPath: src}}\n  script: train.py\n"
    )
}

// Before: both waited for the Experiment until --timeout and exited 3.
#[test]
fn apply_wait_stops_with_exit_1_when_the_run_configuration_is_stalled() {
    let dir = project(&format!(
        "{LOCAL_TARGET}---\n{}---\n{}",
        run_configuration("/nonexistent/python9"),
        experiment("py")
    ));
    let out = amlops(
        dir.path(),
        &["apply", "-f", "app.yaml", "--wait", "--timeout", "30s"],
    );
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("experiment/train: stopped waiting: spec.runConfigurationRef.name: RunConfiguration \"py\" needs a human: EnvironmentFailed")
            && msg.contains("/nonexistent/python9"),
        "{msg}"
    );
}

#[test]
fn apply_stops_with_exit_1_when_the_run_configuration_does_not_exist() {
    let dir = project(&experiment("nowhere"));
    for wait in [&["--wait"][..], &[]] {
        let args = [&["apply", "-f", "app.yaml", "--timeout", "30s"][..], wait].concat();
        let out = amlops(dir.path(), &args);
        let msg = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {msg}");
        assert!(
            msg.contains("experiment/train: stopped waiting: spec.runConfigurationRef.name: RunConfiguration \"nowhere\" does not exist"),
            "{msg}"
        );
    }
}

// Before: "overflow when adding duration to instant", exit 101 after the objects were applied.
#[test]
fn a_timeout_too_long_for_the_clock_means_no_deadline_and_one_too_long_for_u64_is_refused() {
    let dir = project(&experiment("nowhere"));
    let out = amlops(
        dir.path(),
        &[
            "apply",
            "-f",
            "app.yaml",
            "--timeout",
            "18446744073709551615s",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = amlops(
        dir.path(),
        &[
            "delete",
            "exp",
            "train",
            "--timeout",
            "18446744073709551615s",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("experiment/train deleted"),
        "{}",
        text(&out)
    );
    for timeout in ["18446744073709551615h", "18446744073709551616s"] {
        let out = amlops(
            dir.path(),
            &["apply", "-f", "app.yaml", "--timeout", timeout],
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains(&format!(
                "{timeout:?}: too long (at most 18446744073709551615s)"
            )),
            "{}",
            text(&out)
        );
    }
}

// Before: the error snippet printed the lines around the error, the secret value with them.
#[test]
fn a_yaml_error_in_a_secret_or_a_document_of_unknown_kind_does_not_print_its_lines() {
    let canary = "CANARY-7f3e-s3cr3t";
    let dir = project("");
    let broken = [
        // The error is in the Secret.
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData:\n  password: {canary}\n  bad: [unclosed\n"
        ),
        // The kind comes after the error.
        format!("stringData:\n  password: {canary}\n   bad: x\nkind: Secret\n"),
        // No kind at all.
        format!("metadata: {{name: s}}\nstringData:\n  password: {canary}\n   bad: x\n"),
    ];
    for yaml in &broken {
        std::fs::write(dir.path().join("app.yaml"), yaml).unwrap();
        for command in ["validate", "apply"] {
            let out = amlops(dir.path(), &[command, "-f", "app.yaml"]);
            let msg = text(&out);
            assert_eq!(out.status.code(), Some(2), "{msg}");
            assert!(
                msg.contains("app.yaml: not valid YAML") && msg.contains("lines are not shown"),
                "{msg}"
            );
            assert!(!msg.contains(canary), "{command} printed the secret: {msg}");
        }
    }
    // A ConfigMap's lines are shown, without those of the Secret after it.
    std::fs::write(
        dir.path().join("app.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata:\n  a: b\n c: d\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData: {{password: {canary}}}\n"
        ),
    )
    .unwrap();
    let out = amlops(dir.path(), &["validate", "-f", "app.yaml"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("    6 |  c: d") && !msg.contains(canary),
        "{msg}"
    );
}

// Before: the FIFO hung validate, the symlink to a directory outside was read, and the loop
// was followed 40 times with 40 errors.
#[test]
fn a_manifest_directory_is_read_as_regular_files_inside_it_each_once() {
    use std::os::unix::fs::symlink;
    let dir = project("");
    let m = dir.path().join("m");
    std::fs::create_dir_all(m.join("sub")).unwrap();
    std::fs::create_dir_all(dir.path().join("outside")).unwrap();
    std::fs::write(m.join("ct.yaml"), LOCAL_TARGET).unwrap();
    nix::unistd::mkfifo(&m.join("x.yaml"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    symlink("..", m.join("sub/loop")).unwrap();
    symlink("ct.yaml", m.join("link.yml")).unwrap();
    let out = amlops(dir.path(), &["validate", "-f", "m"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(0), "{msg}");
    assert!(msg.contains("1 objects valid"), "{msg}");
    assert!(
        msg.contains("note: m/x.yaml: skipped: not a regular file"),
        "{msg}"
    );
    assert_eq!(
        msg.matches("m/sub/loop: skipped: read already").count(),
        1,
        "{msg}"
    );
    assert!(msg.contains("m/link.yml: skipped: read already"), "{msg}");

    std::fs::write(
        dir.path().join("outside/secret.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n",
    )
    .unwrap();
    symlink("../outside", m.join("escape")).unwrap();
    symlink("../outside/secret.yaml", m.join("file.yaml")).unwrap();
    let out = amlops(dir.path(), &["validate", "-f", "m"]);
    let msg = text(&out);
    assert_eq!(out.status.code(), Some(2), "{msg}");
    for link in ["m/escape", "m/file.yaml"] {
        assert!(
            msg.contains(&format!("error: {link}: refused: a symlink to ")),
            "{msg}"
        );
    }
    assert!(!msg.contains("Secret/s"), "{msg}");
    // Named on the command line, a FIFO is refused, not opened.
    let out = amlops(dir.path(), &["validate", "-f", "m/x.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("m/x.yaml: not a regular file or a directory"),
        "{}",
        text(&out)
    );
}

/// The files an example's header comment says it needs (`examples/NAME.yaml`), itself excluded.
fn needed_examples(repo: &Path, example: &Path) -> Vec<std::path::PathBuf> {
    let text = std::fs::read_to_string(example).unwrap();
    let mut needed: Vec<_> = text
        .lines()
        .take_while(|l| l.starts_with('#'))
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == '`' || c == ':'))
        .filter(|w| w.starts_with("examples/") && w.ends_with(".yaml"))
        .map(|w| repo.join(w))
        .filter(|p| p != example)
        .collect();
    needed.dedup();
    needed
}

// Before: remote-vm, kubernetes-compute and run-based-compute failed alone (Workspace "ml" is
// defined in another file) and their headers did not say which.
#[test]
fn every_example_validates_alone_or_with_the_files_its_header_names() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let examples = repo.join("examples");
    let out = amlops(dir.path(), &["validate", "-f", examples.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut files: Vec<_> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for example in &files {
        let mut args = vec!["validate".to_string()];
        for f in needed_examples(repo, example).iter().chain([example]) {
            args.extend(["-f".to_string(), f.display().to_string()]);
        }
        let out = amlops(
            dir.path(),
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
    }
}
