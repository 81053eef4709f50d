//! Environment staging: resolve a user-managed interpreter, or build a system-managed
//! environment once per content hash under `<state>/envs/<hash>/` and reuse it after.
//!
//! Layout of one cached environment:
//! ```text
//! envs/<hash>.lock            flock taken by whoever stages <hash>
//! envs/<hash>/prefix/         the venv or conda prefix (bin/python)
//! envs/<hash>/conda_dependencies.yml, requirements.txt   what was asked for
//! envs/<hash>/staging.log     output of venv/pip/conda
//! envs/<hash>/complete.json   written last: only a complete environment is reused
//! ```

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::env_plan::{Builder, CondaFlavour, FoundTools, choose_builder, python_candidates};
use super::error::LocalError;
use super::fsutil::{is_safe_component, write_atomic};
use super::lock::lock_exclusive;
use super::pathsearch::find_executable;
use super::progress::Progress;
use super::tool::run_logged;

/// What the run needs from an environment, free of any CRD type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvironmentSpec {
    /// Run the given interpreter (a name on `PATH` or a path) as is.
    UserManaged { interpreter: String },
    /// Build from the rendered conda file, cached by `content_hash`.
    SystemManaged {
        /// The rendered `conda_dependencies.yml`.
        conda_file: String,
        /// Names the cache directory; must change whenever the dependencies do.
        content_hash: String,
        python_version: Option<String>,
        conda_packages: Vec<String>,
        /// Requirement lines; option lines such as `--find-links DIR` or
        /// `--index-url URL` are passed to pip as written.
        pip_packages: Vec<String>,
    },
}

/// An interpreter ready to run scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedEnvironment {
    pub python: PathBuf,
    /// The cache directory of a system-managed environment (`None` for user-managed).
    pub env_dir: Option<PathBuf>,
    /// True when a complete cached environment was reused and nothing was built.
    pub reused: bool,
}

/// The completion marker; its presence means the prefix is whole.
#[derive(Debug, Serialize, Deserialize)]
struct Complete {
    python: PathBuf,
    builder: String,
}

const MARKER: &str = "complete.json";

/// Stages `spec`, looking tools up on this process's `PATH`.
pub fn stage_environment(
    state_dir: &Path,
    spec: &EnvironmentSpec,
    progress: &dyn Progress,
) -> Result<StagedEnvironment, LocalError> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    stage_environment_with_path(state_dir, spec, &path_var, progress)
}

/// Stages `spec`, looking interpreters and tools up on `path_var` (a `PATH`-style list),
/// which is also the `PATH` the tools run with.
pub fn stage_environment_with_path(
    state_dir: &Path,
    spec: &EnvironmentSpec,
    path_var: &OsStr,
    progress: &dyn Progress,
) -> Result<StagedEnvironment, LocalError> {
    match spec {
        EnvironmentSpec::UserManaged { interpreter } => Ok(StagedEnvironment {
            python: resolve_interpreter(interpreter, path_var)?,
            env_dir: None,
            reused: false,
        }),
        EnvironmentSpec::SystemManaged {
            conda_file,
            content_hash,
            python_version,
            conda_packages,
            pip_packages,
        } => {
            if !is_safe_component(content_hash) {
                return Err(LocalError::InvalidContentHash {
                    hash: content_hash.clone(),
                });
            }
            let envs = state_dir.join("envs");
            fs::create_dir_all(&envs).map_err(LocalError::io("cannot create", &envs))?;
            let env_dir = envs.join(content_hash);
            let _lock = lock_exclusive(&envs.join(format!("{content_hash}.lock")), progress)?;
            if let Some(python) = complete_python(&env_dir) {
                progress.step(&format!("reusing environment {}", env_dir.display()));
                return Ok(StagedEnvironment {
                    python,
                    env_dir: Some(env_dir),
                    reused: true,
                });
            }
            let found = find_tools(python_version.as_deref(), path_var);
            let builder = choose_builder(conda_packages, python_version.as_deref(), &found)?;
            let build = Build {
                env_dir: &env_dir,
                path_var,
                progress,
            };
            let python = build.run(&builder, conda_file, pip_packages)?;
            Ok(StagedEnvironment {
                python,
                env_dir: Some(env_dir),
                reused: false,
            })
        }
    }
}

/// The staged environment for `spec` if it is ready now, without building anything:
/// the user-managed interpreter resolves, or a complete cached system-managed environment exists.
pub fn find_staged(state_dir: &Path, spec: &EnvironmentSpec) -> Option<StagedEnvironment> {
    match spec {
        EnvironmentSpec::UserManaged { interpreter } => {
            let path_var = std::env::var_os("PATH").unwrap_or_default();
            resolve_interpreter(interpreter, &path_var)
                .ok()
                .map(|python| StagedEnvironment {
                    python,
                    env_dir: None,
                    reused: false,
                })
        }
        EnvironmentSpec::SystemManaged { content_hash, .. } => {
            if !is_safe_component(content_hash) {
                return None;
            }
            let env_dir = state_dir.join("envs").join(content_hash);
            complete_python(&env_dir).map(|python| StagedEnvironment {
                python,
                env_dir: Some(env_dir),
                reused: true,
            })
        }
    }
}

fn resolve_interpreter(interpreter: &str, path_var: &OsStr) -> Result<PathBuf, LocalError> {
    find_executable(interpreter, Some(path_var)).ok_or_else(|| LocalError::InterpreterNotFound {
        interpreter: interpreter.to_string(),
        detail: if interpreter.contains('/') {
            "no executable file at that path".to_string()
        } else {
            "not an executable on PATH; install it or give its full path".to_string()
        },
    })
}

/// The python of a complete cached environment, if there is one whose interpreter
/// still exists (a deleted prefix is rebuilt rather than trusted).
fn complete_python(env_dir: &Path) -> Option<PathBuf> {
    let text = fs::read(env_dir.join(MARKER)).ok()?;
    let marker: Complete = serde_json::from_slice(&text).ok()?;
    marker.python.exists().then_some(marker.python)
}

fn find_tools(python_version: Option<&str>, path_var: &OsStr) -> FoundTools {
    let python = python_candidates(python_version)
        .iter()
        .filter_map(|name| find_executable(name, Some(path_var)))
        .find_map(|path| python_version_of(&path, path_var).map(|v| (path, v)));
    FoundTools {
        micromamba: find_executable("micromamba", Some(path_var)),
        conda: find_executable("conda", Some(path_var)),
        python,
    }
}

/// `X.Y.Z` of an interpreter, or `None` if it does not run.
fn python_version_of(python: &Path, path_var: &OsStr) -> Option<String> {
    let out = Command::new(python)
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .env("PATH", path_var)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One build of one environment directory (called with the lock held).
struct Build<'a> {
    env_dir: &'a Path,
    path_var: &'a OsStr,
    progress: &'a dyn Progress,
}

impl Build<'_> {
    fn run(
        &self,
        builder: &Builder,
        conda_file: &str,
        pip_packages: &[String],
    ) -> Result<PathBuf, LocalError> {
        // Whatever is here is a build that never completed: start from scratch.
        if self.env_dir.exists() {
            fs::remove_dir_all(self.env_dir).map_err(LocalError::io(
                "cannot remove incomplete environment",
                self.env_dir,
            ))?;
        }
        fs::create_dir_all(self.env_dir).map_err(LocalError::io("cannot create", self.env_dir))?;
        let prefix = self.env_dir.join("prefix");
        let python = prefix.join("bin").join("python");
        let log = self.env_dir.join("staging.log");
        let conda_path = self.env_dir.join("conda_dependencies.yml");
        fs::write(&conda_path, conda_file).map_err(LocalError::io("cannot write", &conda_path))?;
        let name = match builder {
            Builder::Conda { tool, flavour } => {
                self.progress.step(&format!(
                    "creating conda environment in {}",
                    prefix.display()
                ));
                let mut cmd = self.command(tool);
                match flavour {
                    CondaFlavour::Micromamba => cmd.args(["create", "--yes", "--prefix"]),
                    CondaFlavour::Conda => cmd.args(["env", "create", "--prefix"]),
                };
                cmd.arg(&prefix).arg("--file").arg(&conda_path);
                run_logged(cmd, "creating the conda environment", &log)?;
                if !python.exists() {
                    return Err(LocalError::MissingTool(format!(
                        "the conda environment in {} has no bin/python; add python to condaPackages",
                        prefix.display()
                    )));
                }
                "conda"
            }
            Builder::Venv { python: base } => {
                self.progress
                    .step(&format!("creating venv in {}", prefix.display()));
                let mut cmd = self.command(base);
                cmd.args(["-m", "venv"]).arg(&prefix);
                run_logged(cmd, "creating the venv", &log)?;
                if !pip_packages.is_empty() {
                    let requirements = self.env_dir.join("requirements.txt");
                    fs::write(&requirements, pip_packages.join("\n") + "\n")
                        .map_err(LocalError::io("cannot write", &requirements))?;
                    self.progress
                        .step(&format!("pip installing {} packages", pip_packages.len()));
                    let mut cmd = self.command(&python);
                    cmd.args([
                        "-m",
                        "pip",
                        "install",
                        "--disable-pip-version-check",
                        "--no-input",
                        "-r",
                    ])
                    .arg(&requirements);
                    run_logged(cmd, "installing pip packages", &log)?;
                }
                "venv"
            }
        };
        let marker = serde_json::to_vec_pretty(&Complete {
            python: python.clone(),
            builder: name.to_string(),
        })
        .map_err(|e| {
            LocalError::io("cannot encode", self.env_dir.join(MARKER))(std::io::Error::other(e))
        })?;
        write_atomic(&self.env_dir.join(MARKER), &marker)?;
        Ok(python)
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("PATH", self.path_var);
        cmd
    }
}
