//! Pure decisions of environment staging: which tool builds a system-managed
//! environment, and which interpreter a venv starts from. No I/O here.

use std::path::PathBuf;

use super::error::LocalError;

/// Tools found on `PATH` (the I/O side fills this in).
#[derive(Debug, Default, Clone)]
pub(crate) struct FoundTools {
    pub micromamba: Option<PathBuf>,
    pub conda: Option<PathBuf>,
    /// A python interpreter usable for a venv, with its `X.Y.Z` version.
    pub python: Option<(PathBuf, String)>,
}

/// How a system-managed environment gets built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Builder {
    /// `micromamba create` / `conda env create` from the conda file.
    Conda {
        tool: PathBuf,
        flavour: CondaFlavour,
    },
    /// `python -m venv` + `pip install -r requirements.txt`.
    Venv { python: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CondaFlavour {
    Micromamba,
    Conda,
}

/// Picks the builder. Conda tools win when present (they honour the whole conda file);
/// without them only pip-only dependency lists can be built, as a venv.
pub(crate) fn choose_builder(
    conda_packages: &[String],
    python_version: Option<&str>,
    found: &FoundTools,
) -> Result<Builder, LocalError> {
    if let Some(tool) = &found.micromamba {
        return Ok(Builder::Conda {
            tool: tool.clone(),
            flavour: CondaFlavour::Micromamba,
        });
    }
    if let Some(tool) = &found.conda {
        return Ok(Builder::Conda {
            tool: tool.clone(),
            flavour: CondaFlavour::Conda,
        });
    }
    let extra = conda_only_packages(conda_packages);
    if !extra.is_empty() {
        return Err(LocalError::MissingTool(format!(
            "conda packages [{}] need conda or micromamba on PATH; install micromamba or move them to pipPackages",
            extra.join(", ")
        )));
    }
    let requested = python_version.map(str::trim).filter(|v| !v.is_empty());
    match (&found.python, requested) {
        (None, _) => Err(LocalError::MissingTool(
            "a pip-only environment needs python3 (with the venv module) or conda/micromamba on PATH; install one of them"
                .to_string(),
        )),
        (Some((python, actual)), Some(wanted)) if !version_matches(wanted, actual) => {
            Err(LocalError::MissingTool(format!(
                "pythonVersion {wanted} was requested but {} is python {actual}; install python{} or micromamba",
                python.display(),
                minor_version(wanted).unwrap_or_else(|| wanted.to_string())
            )))
        }
        (Some((python, _)), _) => Ok(Builder::Venv {
            python: python.clone(),
        }),
    }
}

/// Conda packages other than `python` and `pip` themselves (which a venv provides).
pub(crate) fn conda_only_packages(conda_packages: &[String]) -> Vec<String> {
    conda_packages
        .iter()
        .filter(|spec| !matches!(package_name(spec).as_str(), "python" | "pip" | ""))
        .cloned()
        .collect()
}

/// The name part of a conda match spec such as `numpy>=1.2`, `conda-forge::pip=23`.
fn package_name(spec: &str) -> String {
    let spec = spec.trim();
    let spec = spec.rsplit("::").next().unwrap_or(spec);
    spec.split(|c: char| "=<>!~ [".contains(c))
        .next()
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Interpreter names to try for a requested version: `python3.11` before `python3`.
pub(crate) fn python_candidates(python_version: Option<&str>) -> Vec<String> {
    let mut names: Vec<String> = python_version
        .and_then(minor_version)
        .map(|mm| vec![format!("python{mm}")])
        .unwrap_or_default();
    names.push("python3".to_string());
    names
}

/// `3.11` from `3.11.7`, `=3.11`, `3.11.*`.
fn minor_version(requested: &str) -> Option<String> {
    let parts = version_parts(requested)?;
    (parts.len() >= 2).then(|| format!("{}.{}", parts[0], parts[1]))
}

/// Numeric components of a plain version request; `None` for ranges like `>=3.8`.
fn version_parts(requested: &str) -> Option<Vec<&str>> {
    let v = requested.trim().trim_start_matches('=');
    let v = v.strip_suffix(".*").unwrap_or(v);
    let parts: Vec<&str> = v.split('.').collect();
    parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .then_some(parts)
}

/// Whether `actual` (e.g. `3.11.7`) satisfies `requested` (`3`, `3.11`, `=3.11.7`, `3.11.*`).
pub(crate) fn version_matches(requested: &str, actual: &str) -> bool {
    let Some(wanted) = version_parts(requested) else {
        return false;
    };
    let have: Vec<&str> = actual.trim().split('.').collect();
    wanted.len() <= have.len() && wanted.iter().zip(&have).all(|(w, h)| w == h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn with_python(version: &str) -> FoundTools {
        FoundTools {
            python: Some((PathBuf::from("/usr/bin/python3"), version.to_string())),
            ..FoundTools::default()
        }
    }

    #[test]
    fn python_and_pip_are_not_conda_only() {
        let pkgs = strings(&[
            "python=3.11",
            "pip>=23",
            "conda-forge::numpy=1.26",
            " scipy ",
        ]);
        assert_eq!(
            conda_only_packages(&pkgs),
            strings(&["conda-forge::numpy=1.26", " scipy "])
        );
    }

    #[test]
    fn micromamba_preferred_then_conda() {
        let mut found = with_python("3.11.7");
        found.conda = Some("/opt/conda/bin/conda".into());
        let b = choose_builder(&strings(&["numpy"]), None, &found).unwrap();
        assert_eq!(
            b,
            Builder::Conda {
                tool: "/opt/conda/bin/conda".into(),
                flavour: CondaFlavour::Conda
            }
        );
        found.micromamba = Some("/bin/micromamba".into());
        let b = choose_builder(&[], None, &found).unwrap();
        assert_eq!(
            b,
            Builder::Conda {
                tool: "/bin/micromamba".into(),
                flavour: CondaFlavour::Micromamba
            }
        );
    }

    #[test]
    fn conda_packages_without_conda_name_what_to_install() {
        let err = choose_builder(
            &strings(&["python=3.11", "numpy"]),
            None,
            &with_python("3.11.7"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "conda packages [numpy] need conda or micromamba on PATH; install micromamba or move them to pipPackages"
        );
    }

    #[test]
    fn pip_only_uses_venv_when_version_matches() {
        let found = with_python("3.11.7");
        let venv = Builder::Venv {
            python: "/usr/bin/python3".into(),
        };
        assert_eq!(
            choose_builder(&strings(&["python=3.11", "pip"]), Some("3.11"), &found).unwrap(),
            venv
        );
        let err = choose_builder(&[], Some("3.8"), &found)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pythonVersion 3.8") && err.contains("install python3.8"),
            "{err}"
        );
        let err = choose_builder(&[], None, &FoundTools::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs python3"), "{err}");
    }

    #[test]
    fn version_matching() {
        assert!(version_matches("3.11", "3.11.7"));
        assert!(version_matches("=3.11.7", "3.11.7"));
        assert!(version_matches("3.11.*", "3.11.0"));
        assert!(version_matches("3", "3.9.1"));
        assert!(!version_matches("3.1", "3.11.7"));
        assert!(!version_matches("3.11.7.1", "3.11.7"));
        assert!(!version_matches(">=3.8", "3.11.7"));
    }

    #[test]
    fn candidates_prefer_exact_minor() {
        assert_eq!(
            python_candidates(Some("3.10.4")),
            strings(&["python3.10", "python3"])
        );
        assert_eq!(python_candidates(None), strings(&["python3"]));
        assert_eq!(python_candidates(Some(">=3.8")), strings(&["python3"]));
    }
}
