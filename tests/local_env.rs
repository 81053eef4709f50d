//! Environment staging with real tools: venv + pip from a local wheel (no network), a
//! stand-in micromamba, caching, concurrent stagers, and the missing-tool errors.
//! Every test uses its own PATH so a conda on the machine cannot change the outcome.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use amlops::local::{
    EnvironmentSpec, LocalError, NoProgress, StagedEnvironment, stage_environment_with_path,
};

/// The real interpreter behind `python3` (not a pyenv shim, which needs its own PATH).
fn real_python() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A PATH holding only `python3` (and whatever `extra` tools are written into it).
fn isolated_path(dir: &Path) -> (PathBuf, OsString) {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(real_python(), bin.join("python3")).unwrap();
    let path = std::env::join_paths([&bin, Path::new("/usr/bin"), Path::new("/bin")]).unwrap();
    (bin, path)
}

/// Builds `tinypkg-1.0-py3-none-any.whl` into `dir` with python's zipfile.
fn build_wheel(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let script = r#"
import base64, hashlib, sys, zipfile
files = {
    "tinypkg/__init__.py": b"VALUE = 42\n",
    "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
    "tinypkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
record = "".join(
    "%s,sha256=%s,%d\n" % (n, base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode(), len(d))
    for n, d in files.items()
) + "tinypkg-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile(sys.argv[1] + "/tinypkg-1.0-py3-none-any.whl", "w") as z:
    for n, d in files.items():
        z.writestr(n, d)
    z.writestr("tinypkg-1.0.dist-info/RECORD", record)
"#;
    let status = Command::new(real_python())
        .arg("-c")
        .arg(script)
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

fn pip_only(hash: &str, wheels: &Path, requirement: &str) -> EnvironmentSpec {
    EnvironmentSpec::SystemManaged {
        conda_file: "dependencies:\n- python\n- pip\n".to_string(),
        content_hash: hash.to_string(),
        python_version: None,
        conda_packages: vec!["python".to_string(), "pip".to_string()],
        pip_packages: vec![
            "--no-index".to_string(),
            format!("--find-links {}", wheels.display()),
            requirement.to_string(),
        ],
    }
}

fn python_says(python: &Path, code: &str) -> String {
    let out = Command::new(python).args(["-c", code]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn staging_log(staged: &StagedEnvironment) -> String {
    fs::read_to_string(staged.env_dir.as_ref().unwrap().join("staging.log")).unwrap()
}

#[test]
fn pip_only_environment_is_a_venv_built_once_then_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = isolated_path(dir.path());
    build_wheel(&dir.path().join("wheels"));
    let state = dir.path().join(".amlops");
    let spec = pip_only("hash-a", &dir.path().join("wheels"), "tinypkg==1.0");

    let first = stage_environment_with_path(&state, &spec, &path, &NoProgress).unwrap();
    assert!(!first.reused);
    assert_eq!(
        first.env_dir.as_deref(),
        Some(state.join("envs/hash-a").as_path())
    );
    assert_eq!(first.python, state.join("envs/hash-a/prefix/bin/python"));
    assert_eq!(
        python_says(
            &first.python,
            "import tinypkg, sys; print(tinypkg.VALUE, sys.prefix)"
        ),
        format!("42 {}\n", state.join("envs/hash-a/prefix").display())
    );
    let log = staging_log(&first);
    assert_eq!(log.matches("-m pip install").count(), 1, "{log}");

    let second = stage_environment_with_path(&state, &spec, &path, &NoProgress).unwrap();
    assert!(second.reused);
    assert_eq!(second.python, first.python);
    assert_eq!(
        staging_log(&second),
        log,
        "a reused environment ran a tool again"
    );
}

#[test]
fn failed_pip_install_names_the_problem_and_is_retried_from_scratch() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = isolated_path(dir.path());
    let wheels = dir.path().join("wheels");
    fs::create_dir_all(&wheels).unwrap();
    let state = dir.path().join(".amlops");
    let spec = pip_only("hash-missing", &wheels, "tinypkg==1.0");

    let err = stage_environment_with_path(&state, &spec, &path, &NoProgress).unwrap_err();
    let LocalError::ToolFailed {
        step, tail, log, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(step, "installing pip packages");
    assert!(
        tail.contains("No matching distribution found for tinypkg==1.0"),
        "{tail}"
    );
    assert_eq!(log, &state.join("envs/hash-missing/staging.log"));
    assert!(!state.join("envs/hash-missing/complete.json").exists());

    // The wheel shows up: the half-built environment is rebuilt, not reused.
    build_wheel(&wheels);
    let staged = stage_environment_with_path(&state, &spec, &path, &NoProgress).unwrap();
    assert!(!staged.reused);
    assert_eq!(
        python_says(&staged.python, "import tinypkg; print(tinypkg.VALUE)"),
        "42\n"
    );
    assert_eq!(
        staging_log(&staged).matches("-m venv").count(),
        1,
        "old log kept: not rebuilt from scratch"
    );
}

#[test]
fn concurrent_stagers_of_one_environment_build_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = isolated_path(dir.path());
    let state = dir.path().join(".amlops");
    let spec = EnvironmentSpec::SystemManaged {
        conda_file: String::new(),
        content_hash: "hash-shared".to_string(),
        python_version: None,
        conda_packages: Vec::new(),
        pip_packages: Vec::new(),
    };
    // Leftovers of a crashed build: no completion marker, so never trusted.
    fs::create_dir_all(state.join("envs/hash-shared/prefix")).unwrap();
    fs::write(state.join("envs/hash-shared/prefix/junk"), "x").unwrap();

    let results: Vec<StagedEnvironment> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| stage_environment_with_path(&state, &spec, &path, &NoProgress).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|r| !r.reused).count(),
        1,
        "{results:?}"
    );
    assert!(results.iter().all(|r| r.python == results[0].python));
    assert_eq!(staging_log(&results[0]).matches("-m venv").count(), 1);
    assert!(!state.join("envs/hash-shared/prefix/junk").exists());
    assert_eq!(
        python_says(
            &results[0].python,
            "import sys; print(sys.prefix != sys.base_prefix)"
        ),
        "True\n"
    );
}

#[test]
fn conda_tool_is_used_when_on_path() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, path) = isolated_path(dir.path());
    let calls = dir.path().join("calls.txt");
    // A stand-in micromamba: records its arguments, makes the prefix, links python.
    let fake = format!(
        "#!/bin/sh\necho \"$@\" >> '{calls}'\nwhile [ $# -gt 0 ]; do case $1 in --prefix) p=$2; shift;; --file) f=$2; shift;; esac; shift; done\nmkdir -p \"$p/bin\" && cp \"$f\" \"$p/used.yml\" && ln -s '{python}' \"$p/bin/python\"\n",
        calls = calls.display(),
        python = real_python().display()
    );
    fs::write(bin.join("micromamba"), fake).unwrap();
    fs::set_permissions(bin.join("micromamba"), fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join(".amlops");
    let conda_file = "name: x\ndependencies:\n- python=3.11\n- numpy\n";
    let spec = EnvironmentSpec::SystemManaged {
        conda_file: conda_file.to_string(),
        content_hash: "hash-conda".to_string(),
        python_version: Some("3.11".to_string()),
        conda_packages: vec!["python=3.11".to_string(), "numpy".to_string()],
        pip_packages: Vec::new(),
    };
    let staged = stage_environment_with_path(&state, &spec, &path, &NoProgress).unwrap();
    let env = state.join("envs/hash-conda");
    assert_eq!(staged.python, env.join("prefix/bin/python"));
    assert_eq!(
        fs::read_to_string(&calls).unwrap(),
        format!(
            "create --yes --prefix {} --file {}\n",
            env.join("prefix").display(),
            env.join("conda_dependencies.yml").display()
        )
    );
    assert_eq!(
        fs::read_to_string(env.join("prefix/used.yml")).unwrap(),
        conda_file
    );
    assert!(
        stage_environment_with_path(&state, &spec, &path, &NoProgress)
            .unwrap()
            .reused
    );
    assert_eq!(fs::read_to_string(&calls).unwrap().lines().count(), 1);
}

#[test]
fn conda_packages_without_conda_say_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = isolated_path(dir.path());
    let spec = EnvironmentSpec::SystemManaged {
        conda_file: String::new(),
        content_hash: "hash-numpy".to_string(),
        python_version: None,
        conda_packages: vec![
            "python=3.11".to_string(),
            "numpy".to_string(),
            "scipy>=1".to_string(),
        ],
        pip_packages: vec!["requests".to_string()],
    };
    let err =
        stage_environment_with_path(&dir.path().join("s"), &spec, &path, &NoProgress).unwrap_err();
    assert_eq!(
        err.to_string(),
        "conda packages [numpy, scipy>=1] need conda or micromamba on PATH; install micromamba or move them to pipPackages"
    );
}

#[test]
fn unavailable_python_version_without_conda_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = isolated_path(dir.path());
    let spec = EnvironmentSpec::SystemManaged {
        conda_file: String::new(),
        content_hash: "hash-py27".to_string(),
        python_version: Some("2.7".to_string()),
        conda_packages: Vec::new(),
        pip_packages: Vec::new(),
    };
    let err =
        stage_environment_with_path(&dir.path().join("s"), &spec, &path, &NoProgress).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("pythonVersion 2.7 was requested but")
            && msg.ends_with("install python2.7 or micromamba"),
        "{msg}"
    );
}

#[test]
fn user_managed_interpreter_is_resolved_or_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (bin, path) = isolated_path(dir.path());
    let state = dir.path().join("s");
    let stage = |interpreter: &str| {
        let spec = EnvironmentSpec::UserManaged {
            interpreter: interpreter.to_string(),
        };
        stage_environment_with_path(&state, &spec, &path, &NoProgress)
    };
    let staged = stage("python3").unwrap();
    assert_eq!(
        staged,
        StagedEnvironment {
            python: bin.join("python3"),
            env_dir: None,
            reused: false
        }
    );
    let absolute = real_python();
    assert_eq!(stage(absolute.to_str().unwrap()).unwrap().python, absolute);
    let err = stage("python9.9").unwrap_err().to_string();
    assert_eq!(
        err,
        "interpreter \"python9.9\" not found: not an executable on PATH; install it or give its full path"
    );
    let err = stage("/no/such/python").unwrap_err().to_string();
    assert!(err.contains("no executable file at that path"), "{err}");
    assert!(
        !state.exists(),
        "user-managed staging must not create state"
    );
}

#[test]
fn content_hash_must_be_a_plain_name() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path) = isolated_path(dir.path());
    let spec = EnvironmentSpec::SystemManaged {
        conda_file: String::new(),
        content_hash: "../escape".to_string(),
        python_version: None,
        conda_packages: Vec::new(),
        pip_packages: Vec::new(),
    };
    let err =
        stage_environment_with_path(&dir.path().join("s"), &spec, &path, &NoProgress).unwrap_err();
    assert!(
        matches!(err, LocalError::InvalidContentHash { .. }),
        "{err}"
    );
}
