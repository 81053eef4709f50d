//! The two `/bin/sh` scripts a run's pod executes, and the environment variables they read.
//! Pure text; `manifest` puts them into the pod, the tests here run them with `/bin/sh`.
//!
//! - [`UNPACK`] (init container): unpacks the snapshot archive into the workspace, with `tar`
//!   or, in images without it, `python -m tarfile`.
//! - [`RUN`] (run container): builds or reuses the environment, then `exec`s the command, so
//!   the user's process gets the container's signals and exit code. A user-managed
//!   environment runs the interpreter as it is; a system-managed one is built once per
//!   content key into `$AMLOPS_ENVS/<key>-<pod>` (micromamba when the image has it, else
//!   `python -m venv` + `pip install`), and `<key>.ready` names the finished directory, so
//!   pods sharing a cache volume never use a half-built environment and need no lock.
//!
//! A failure of the scripts themselves ends the container with `amlops:<Reason>: <message>`
//! as its termination message, which `state` turns back into the run's error code.

/// What the run container needs to know; every field becomes an environment variable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSetup {
    /// How the container arguments are run: `python <script> <args...>` or `sh -c <command>`.
    pub command: CommandMode,
    /// The interpreter: the user-managed one, or the python a venv is made from.
    pub python: String,
    /// The image, named in messages.
    pub image: String,
    /// A system-managed environment to build or reuse; `None` runs `python` as it is.
    pub build: Option<EnvironmentBuild>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandMode {
    /// Arguments are the script and its arguments.
    Script,
    /// The one argument is a shell command line.
    Shell,
}

/// A system-managed environment as the run script builds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvironmentBuild {
    /// Names the environment directory: changes whenever the dependencies or the image do.
    pub key: String,
    /// Directory holding environments (on the cache volume when there is one).
    pub envs_dir: String,
    /// Root prefix (package cache) of micromamba.
    pub mamba_root: String,
    /// The rendered conda_dependencies.yml, for micromamba.
    pub conda_file: String,
    /// Conda packages a venv cannot provide; without micromamba they are refused.
    pub conda_only: Vec<String>,
    pub python_version: Option<String>,
    /// pip requirement lines.
    pub requirements: Vec<String>,
}

/// Variables of the pod itself (downward API) the run script uses.
pub const POD_NAME_VAR: &str = "AMLOPS_POD";

impl RunSetup {
    /// The environment variables [`RUN`] reads (it unsets them before the command starts).
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        let mode = match self.command {
            CommandMode::Script => "script",
            CommandMode::Shell => "shell",
        };
        let mut vars = vec![
            ("AMLOPS_COMMAND", mode.to_string()),
            ("AMLOPS_PYTHON", self.python.clone()),
            ("AMLOPS_IMAGE", self.image.clone()),
        ];
        if let Some(b) = &self.build {
            vars.extend([
                ("AMLOPS_ENV_KEY", b.key.clone()),
                ("AMLOPS_ENVS", b.envs_dir.clone()),
                ("AMLOPS_MAMBA_ROOT", b.mamba_root.clone()),
                ("AMLOPS_CONDA_FILE", b.conda_file.clone()),
                ("AMLOPS_CONDA_ONLY", b.conda_only.join(", ")),
                (
                    "AMLOPS_PYTHON_VERSION",
                    b.python_version.clone().unwrap_or_default(),
                ),
                ("AMLOPS_REQUIREMENTS", b.requirements.join("\n")),
            ]);
        }
        vars
    }
}

/// Shared by both scripts: end the container with a reason the run's status shows.
const FAIL: &str = r#"fail() {
  printf 'amlops: %s\n' "$2" >&2
  printf 'amlops:%s: %s' "$1" "$2" 2>/dev/null >"${AMLOPS_TERMINATION_LOG:-/dev/termination-log}"
  exit 1
}
"#;

const UNPACK_BODY: &str = r#"tar -xzf "$AMLOPS_ARCHIVE" -C "$AMLOPS_WORKSPACE" 2>/dev/null \
  || "${AMLOPS_PYTHON:-python3}" -m tarfile -e "$AMLOPS_ARCHIVE" "$AMLOPS_WORKSPACE" \
  || fail SnapshotUnpackFailed "cannot unpack the source snapshot: the image $AMLOPS_IMAGE needs tar (with gzip) or python3"
mkdir -p "$AMLOPS_WORKSPACE/outputs" || fail SnapshotUnpackFailed "cannot create outputs/ in $AMLOPS_WORKSPACE"
"#;

const RUN_BODY: &str = r#"python="${AMLOPS_PYTHON:-python3}"
if [ -n "${AMLOPS_ENV_KEY:-}" ]; then
  ready="$AMLOPS_ENVS/$AMLOPS_ENV_KEY.ready"
  env_dir=""
  [ -s "$ready" ] && env_dir=$(cat "$ready")
  if [ -n "$env_dir" ] && [ -d "$env_dir" ]; then
    echo "amlops: reusing environment $AMLOPS_ENV_KEY"
  else
    env_dir="$AMLOPS_ENVS/$AMLOPS_ENV_KEY-$AMLOPS_POD"
    rm -rf "$env_dir"
    mkdir -p "$AMLOPS_ENVS" || fail EnvironmentFailed "cannot create $AMLOPS_ENVS"
    if command -v micromamba >/dev/null 2>&1; then
      echo "amlops: building environment $AMLOPS_ENV_KEY with micromamba"
      printf '%s' "$AMLOPS_CONDA_FILE" >"$HOME/conda_dependencies.yml" \
        || fail EnvironmentFailed "cannot write $HOME/conda_dependencies.yml"
      MAMBA_ROOT_PREFIX="$AMLOPS_MAMBA_ROOT" micromamba create --yes --prefix "$env_dir" --file "$HOME/conda_dependencies.yml" \
        || fail EnvironmentFailed "micromamba create failed; the log above says why"
    else
      [ -z "$AMLOPS_CONDA_ONLY" ] \
        || fail CondaPackagesNeedMicromamba "conda packages [$AMLOPS_CONDA_ONLY] need micromamba, which the image $AMLOPS_IMAGE lacks; use an image with micromamba or move them to pipPackages"
      command -v "$python" >/dev/null 2>&1 \
        || fail InterpreterNotFound "$python is not in the image $AMLOPS_IMAGE; a pip environment needs python3 with the venv module"
      if [ -n "$AMLOPS_PYTHON_VERSION" ]; then
        have=$("$python" -c 'import platform; print(platform.python_version())') \
          || fail InterpreterNotFound "$python in the image $AMLOPS_IMAGE does not run"
        case "$have" in
          "$AMLOPS_PYTHON_VERSION" | "$AMLOPS_PYTHON_VERSION".*) ;;
          *) fail PythonVersionMismatch "pythonVersion $AMLOPS_PYTHON_VERSION was requested but the image $AMLOPS_IMAGE has python $have; use python:$AMLOPS_PYTHON_VERSION-slim or an image with micromamba" ;;
        esac
      fi
      echo "amlops: building environment $AMLOPS_ENV_KEY (python -m venv, pip install)"
      "$python" -m venv "$env_dir" || fail EnvironmentFailed "python -m venv failed; the log above says why"
      if [ -n "$AMLOPS_REQUIREMENTS" ]; then
        printf '%s\n' "$AMLOPS_REQUIREMENTS" >"$env_dir/requirements.txt" \
          || fail EnvironmentFailed "cannot write $env_dir/requirements.txt"
        "$env_dir/bin/python" -m pip install --no-input --disable-pip-version-check -r "$env_dir/requirements.txt" \
          || fail EnvironmentFailed "pip install failed; the log above says why"
      fi
    fi
    printf '%s' "$env_dir" >"$ready.$AMLOPS_POD" && mv -f "$ready.$AMLOPS_POD" "$ready" \
      || fail EnvironmentFailed "cannot record the environment in $AMLOPS_ENVS"
  fi
  PATH="$env_dir/bin:$PATH"
  export PATH
  python="$env_dir/bin/python"
fi
mode="$AMLOPS_COMMAND"
if [ "$mode" = script ]; then
  command -v "$python" >/dev/null 2>&1 || fail InterpreterNotFound "$python is not in the image $AMLOPS_IMAGE"
fi
unset AMLOPS_COMMAND AMLOPS_PYTHON AMLOPS_IMAGE AMLOPS_ENV_KEY AMLOPS_ENVS AMLOPS_MAMBA_ROOT \
  AMLOPS_CONDA_FILE AMLOPS_CONDA_ONLY AMLOPS_PYTHON_VERSION AMLOPS_REQUIREMENTS AMLOPS_POD
if [ "$mode" = shell ]; then
  exec /bin/sh -c "$1"
fi
exec "$python" "$@"
"#;

/// The init container's script; reads `AMLOPS_ARCHIVE`, `AMLOPS_WORKSPACE`, `AMLOPS_PYTHON`
/// and `AMLOPS_IMAGE`.
pub fn unpack() -> String {
    format!("{FAIL}{UNPACK_BODY}")
}

/// The run container's script; reads [`RunSetup::variables`] and [`POD_NAME_VAR`], runs the
/// container's arguments.
pub fn run() -> String {
    format!("{FAIL}{RUN_BODY}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    /// The real interpreter behind `python3` (which may be a version-manager shim).
    fn python() -> String {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    struct Pod {
        dir: tempfile::TempDir,
    }

    impl Pod {
        fn new() -> Self {
            let pod = Pod {
                dir: tempfile::tempdir().unwrap(),
            };
            for d in ["workspace", "home", "envs"] {
                std::fs::create_dir(pod.path(d)).unwrap();
            }
            pod
        }
        fn path(&self, p: &str) -> PathBuf {
            self.dir.path().join(p)
        }
        fn termination(&self) -> String {
            std::fs::read_to_string(self.path("termination-log")).unwrap_or_default()
        }
        /// Runs `script` as the container would: `sh -c <script> amlops-run <args...>`.
        fn exec(&self, script: &str, vars: &[(&str, String)], args: &[&str], pod: &str) -> Output {
            Command::new("/bin/sh")
                .arg("-c")
                .arg(script)
                .arg("amlops-run")
                .args(args)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap())
                .env("HOME", self.path("home"))
                .env(POD_NAME_VAR, pod)
                .env("AMLOPS_TERMINATION_LOG", self.path("termination-log"))
                .envs(vars.iter().map(|(k, v)| (k, v)))
                .current_dir(self.path("workspace"))
                .output()
                .unwrap()
        }
    }

    fn setup(command: CommandMode, build: Option<EnvironmentBuild>) -> RunSetup {
        RunSetup {
            command,
            python: python(),
            image: "python:3.12-slim".into(),
            build,
        }
    }

    fn build(envs: &Path) -> EnvironmentBuild {
        EnvironmentBuild {
            key: "k1".into(),
            envs_dir: envs.display().to_string(),
            mamba_root: envs.join("mamba").display().to_string(),
            conda_file: "name: project_environment\n".into(),
            conda_only: vec![],
            python_version: None,
            requirements: vec![],
        }
    }

    fn stdout(o: &Output) -> String {
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    #[test]
    fn unpack_extracts_the_archive_with_tar_or_without_it_with_python() {
        let pod = Pod::new();
        let archive = pod.path("source.tar.gz");
        let file = std::fs::File::create(&archive).unwrap();
        let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        tar.append_data(&mut header, "pkg/train.py", &b"print"[..])
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        let vars = |workspace: &Path| {
            vec![
                ("AMLOPS_ARCHIVE", archive.display().to_string()),
                ("AMLOPS_WORKSPACE", workspace.display().to_string()),
                ("AMLOPS_PYTHON", python()),
                ("AMLOPS_IMAGE", "img".to_string()),
            ]
        };
        let out = pod.exec(&unpack(), &vars(&pod.path("workspace")), &[], "p");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            std::fs::read(pod.path("workspace/pkg/train.py")).unwrap(),
            b"print"
        );
        assert!(pod.path("workspace/outputs").is_dir());

        // An image without tar: only mkdir (and the interpreter) on PATH.
        let bin = pod.path("bin");
        std::fs::create_dir(&bin).unwrap();
        let mkdir = String::from_utf8(
            Command::new("sh")
                .args(["-c", "command -v mkdir"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        std::os::unix::fs::symlink(mkdir.trim(), bin.join("mkdir")).unwrap();
        let second = pod.path("second");
        std::fs::create_dir(&second).unwrap();
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(unpack())
            .env_clear()
            .env("PATH", &bin)
            .envs(vars(&second))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            std::fs::read(second.join("pkg/train.py")).unwrap(),
            b"print"
        );

        // Neither can read a broken archive: the reason ends up in the termination message.
        std::fs::write(&archive, b"not gzip").unwrap();
        let out = pod.exec(&unpack(), &vars(&second), &[], "p");
        assert_eq!(out.status.code(), Some(1));
        assert!(
            pod.termination()
                .starts_with("amlops:SnapshotUnpackFailed: cannot unpack the source snapshot"),
            "{}",
            pod.termination()
        );
    }

    #[test]
    fn a_script_runs_with_its_arguments_in_the_workspace_without_amlops_variables() {
        let pod = Pod::new();
        std::fs::write(
            pod.path("workspace/train.py"),
            "import os, sys\nprint(sys.argv[1:], os.getcwd().endswith('workspace'), sorted(k for k in os.environ if k.startswith('AMLOPS_') and k != 'AMLOPS_TERMINATION_LOG'))\nsys.exit(3)\n",
        )
        .unwrap();
        let vars = setup(CommandMode::Script, None).variables();
        let out = pod.exec(&run(), &vars, &["train.py", "--lr", "it's 0.1"], "p");
        assert_eq!(stdout(&out), "['--lr', \"it's 0.1\"] True []\n");
        assert_eq!(
            out.status.code(),
            Some(3),
            "the script's exit code is the container's"
        );
        assert_eq!(
            pod.termination(),
            "",
            "a user failure leaves the message to the log"
        );
    }

    #[test]
    fn a_shell_command_runs_through_sh() {
        let pod = Pod::new();
        let vars = setup(CommandMode::Shell, None).variables();
        let out = pod.exec(&run(), &vars, &["echo one && echo two"], "p");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(stdout(&out), "one\ntwo\n");
    }

    #[test]
    fn a_missing_interpreter_is_named() {
        let pod = Pod::new();
        let mut s = setup(CommandMode::Script, None);
        s.python = "/opt/nowhere/python".into();
        let out = pod.exec(&run(), &s.variables(), &["train.py"], "p");
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            pod.termination(),
            "amlops:InterpreterNotFound: /opt/nowhere/python is not in the image python:3.12-slim"
        );
    }

    #[test]
    fn conda_packages_without_micromamba_and_a_wrong_python_are_refused_with_reasons() {
        let pod = Pod::new();
        let mut b = build(&pod.path("envs"));
        b.conda_only = vec!["numpy".into(), "scipy".into()];
        let out = pod.exec(
            &run(),
            &setup(CommandMode::Script, Some(b.clone())).variables(),
            &["train.py"],
            "p",
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(
            pod.termination().starts_with(
                "amlops:CondaPackagesNeedMicromamba: conda packages [numpy, scipy] need micromamba"
            ),
            "{}",
            pod.termination()
        );
        b.conda_only.clear();
        b.python_version = Some("2.7".into());
        pod.exec(
            &run(),
            &setup(CommandMode::Script, Some(b)).variables(),
            &["train.py"],
            "p",
        );
        assert!(
            pod.termination()
                .starts_with("amlops:PythonVersionMismatch: pythonVersion 2.7 was requested but the image python:3.12-slim has python 3."),
            "{}",
            pod.termination()
        );
    }

    #[test]
    fn a_venv_is_built_once_per_key_and_reused_by_the_next_pod() {
        let pod = Pod::new();
        std::fs::write(
            pod.path("workspace/where.py"),
            "import sys\nprint(sys.prefix)\n",
        )
        .unwrap();
        let mut b = build(&pod.path("envs"));
        b.python_version = Some(
            String::from_utf8(
                Command::new(python())
                    .args(["-c", "import platform; print(platform.python_version())"])
                    .output()
                    .unwrap()
                    .stdout,
            )
            .unwrap()
            .trim()
            .rsplit_once('.')
            .unwrap()
            .0
            .to_string(),
        );
        let vars = setup(CommandMode::Script, Some(b)).variables();
        let first = pod.exec(&run(), &vars, &["where.py"], "pod-a");
        assert!(first.status.success(), "{first:?}");
        let built = pod.path("envs/k1-pod-a");
        assert!(stdout(&first).contains("building environment k1"));
        assert!(stdout(&first).ends_with(&format!("{}\n", built.display())));
        assert_eq!(
            std::fs::read_to_string(pod.path("envs/k1.ready")).unwrap(),
            built.display().to_string()
        );
        let second = pod.exec(&run(), &vars, &["where.py"], "pod-b");
        assert_eq!(
            stdout(&second),
            format!("amlops: reusing environment k1\n{}\n", built.display())
        );
        assert!(!pod.path("envs/k1-pod-b").exists());
    }
}
