//! RunConfiguration: render the environment deterministically, name it by content, and say
//! Ready once the environment is staged and the target can take runs.

use std::time::Duration;

use jiff::Timestamp;

use super::{Decision, ObjectInfo, mark_progressing, mark_ready, mark_stalled};
use crate::api::{
    Docker, EnvironmentSource, RunConfigurationSpec, RunConfigurationStatus, SecretKeyRef,
    StagedEnvironment,
};

/// Base image of system-managed and user-managed environments on Azure when docker.baseImage is unset.
pub const DEFAULT_BASE_IMAGE: &str = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest";

/// The environment a RunConfiguration asks for, fully resolved and named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvironmentPlan {
    /// Conda dependencies rendered into `conda_file`; `version` is the content hash.
    SystemManaged {
        name: String,
        version: String,
        conda_file: String,
        python_version: Option<String>,
        conda_packages: Vec<String>,
        pip_packages: Vec<String>,
        base_image: String,
    },
    /// The interpreter (locally) or the image (on Azure) as is; `version` hashes the image.
    UserManaged {
        name: String,
        version: String,
        interpreter: String,
        base_image: String,
    },
    /// A registered Azure ML environment, in the workspace or in a registry.
    Existing { name: ExistingName, version: String },
}

/// Name prefix Azure ML reserves for curated environments, which live in the
/// [`CURATED_REGISTRY`] registry.
pub const CURATED_PREFIX: &str = "AzureML-";
/// The registry of Azure ML's curated environments.
pub const CURATED_REGISTRY: &str = "azureml";

/// Where an `existing` environment lives, and its name there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExistingName {
    /// An environment of the workspace: looked up there before runs use it.
    Workspace(String),
    /// An environment of an Azure ML registry: a workspace cannot answer for it, so runs
    /// reference it by asset id and Azure resolves it when a run is submitted.
    Registry { registry: String, name: String },
}

impl ExistingName {
    /// `existing.name` and `existing.registry` as the spec gives them: a registry when one
    /// is named or the name is a curated one, else the workspace.
    pub fn new(name: &str, registry: Option<&str>) -> Self {
        match registry {
            Some(r) => Self::Registry {
                registry: r.to_owned(),
                name: name.to_owned(),
            },
            None if name.starts_with(CURATED_PREFIX) => Self::Registry {
                registry: CURATED_REGISTRY.to_owned(),
                name: name.to_owned(),
            },
            None => Self::Workspace(name.to_owned()),
        }
    }

    /// The environment's name (without its registry).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Workspace(name) | Self::Registry { name, .. } => name,
        }
    }

    /// The registry, for a registry environment.
    pub fn registry(&self) -> Option<&str> {
        match self {
            Self::Workspace(_) => None,
            Self::Registry { registry, .. } => Some(registry),
        }
    }
}

/// A name given without a registry (see [`ExistingName::new`]).
impl From<&str> for ExistingName {
    fn from(name: &str) -> Self {
        Self::new(name, None)
    }
}

/// The workspace name, or the registry asset path `azureml://registries/<r>/environments/<n>`.
impl std::fmt::Display for ExistingName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Workspace(name) => f.write_str(name),
            Self::Registry { registry, name } => {
                write!(f, "azureml://registries/{registry}/environments/{name}")
            }
        }
    }
}

impl EnvironmentPlan {
    pub fn name(&self) -> &str {
        match self {
            Self::SystemManaged { name, .. } | Self::UserManaged { name, .. } => name,
            Self::Existing { name, .. } => name.as_str(),
        }
    }
    pub fn version(&self) -> &str {
        match self {
            Self::SystemManaged { version, .. }
            | Self::UserManaged { version, .. }
            | Self::Existing { version, .. } => version,
        }
    }
    /// The registry an `existing` environment comes from; `None` for the workspace's.
    pub fn registry(&self) -> Option<&str> {
        match self {
            Self::Existing { name, .. } => name.registry(),
            _ => None,
        }
    }

    /// The asset id runs reference a registry environment by,
    /// `azureml://registries/<registry>/environments/<name>/versions/<version>`; `None` for
    /// workspace environments, which runs reference by ARM id.
    pub fn registry_asset_id(&self) -> Option<String> {
        match self {
            Self::Existing { name, version } if name.registry().is_some() => {
                Some(format!("{name}/versions/{version}"))
            }
            _ => None,
        }
    }

    fn staged(&self) -> StagedEnvironment {
        let (content_hash, conda_file) = match self {
            Self::SystemManaged {
                version,
                conda_file,
                ..
            } => (Some(version.clone()), Some(conda_file.clone())),
            Self::UserManaged { version, .. } => (Some(version.clone()), None),
            Self::Existing { .. } => (None, None),
        };
        StagedEnvironment {
            name: self.name().to_string(),
            version: self.version().to_string(),
            registry: self.registry().map(str::to_owned),
            // Runs on Azure only: the frontend names it (see `actions::environment::environment_id`).
            id: None,
            content_hash,
            conda_file,
        }
    }

    /// What Ready says about the environment.
    fn readiness(&self) -> String {
        match (self, self.registry_asset_id()) {
            (_, Some(asset)) => format!(
                "environment {asset} is passed to runs as is (Azure resolves registry environments when a run is submitted)"
            ),
            (Self::Existing { name, version }, None) => {
                format!("environment {name}:{version} found in the workspace")
            }
            _ => format!("environment {} staged", self.version()),
        }
    }
}

/// Renders conda_dependencies.yml. Same spec, same bytes, on every machine.
pub fn render_conda_file(deps: &crate::api::CondaDependencies) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = String::from("name: project_environment\nchannels:\n");
    let channels = if deps.channels.is_empty() {
        vec!["conda-forge".to_string()]
    } else {
        deps.channels.clone()
    };
    for c in &channels {
        out.push_str(&format!("  - {}\n", quote(c)));
    }
    out.push_str("dependencies:\n");
    if let Some(v) = &deps.python_version {
        out.push_str(&format!("  - {}\n", quote(&format!("python={v}"))));
    }
    for p in &deps.conda_packages {
        out.push_str(&format!("  - {}\n", quote(p)));
    }
    if !deps.pip_packages.is_empty() {
        out.push_str("  - pip\n  - pip:\n");
        for p in &deps.pip_packages {
            out.push_str(&format!("      - {}\n", quote(p)));
        }
    }
    out
}

/// The Azure ML environment name of a RunConfiguration: one name per object, versions by content.
pub fn environment_name(info: &ObjectInfo) -> String {
    let raw = format!("amlops-{}-{}", info.namespace, info.name);
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(255)
        .collect()
}

fn content_version(parts: &[&str]) -> String {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().to_hex()[..32].to_string()
}

fn docker_fingerprint(docker: Option<&Docker>) -> String {
    docker
        .map(|d| {
            format!(
                "enabled={} shared={} gpu={} shm={:?}",
                d.enabled, d.shared_volumes, d.gpu_support, d.shm_size
            )
        })
        .unwrap_or_default()
}

/// Resolves the environment of a spec. Pure: the same spec always gives the same plan.
pub fn plan_environment(info: &ObjectInfo, spec: &RunConfigurationSpec) -> Option<EnvironmentPlan> {
    let base_image = spec
        .docker
        .as_ref()
        .and_then(|d| d.base_image.clone())
        .unwrap_or_else(|| DEFAULT_BASE_IMAGE.to_string());
    let docker = docker_fingerprint(spec.docker.as_ref());
    let EnvironmentSource {
        conda_dependencies,
        user_managed,
        existing,
    } = &spec.environment;
    match (conda_dependencies, user_managed, existing) {
        (Some(deps), None, None) => {
            let conda_file = render_conda_file(deps);
            Some(EnvironmentPlan::SystemManaged {
                name: environment_name(info),
                version: content_version(&["conda", &conda_file, &base_image, &docker]),
                conda_file,
                python_version: deps.python_version.clone(),
                conda_packages: deps.conda_packages.clone(),
                pip_packages: deps.pip_packages.clone(),
                base_image,
            })
        }
        (None, Some(user), None) => Some(EnvironmentPlan::UserManaged {
            name: environment_name(info),
            version: content_version(&["user", &base_image, &docker]),
            interpreter: user.interpreter_path.clone(),
            base_image,
        }),
        (None, None, Some(e)) => Some(EnvironmentPlan::Existing {
            name: ExistingName::new(&e.name, e.registry.as_deref()),
            version: e.version.clone(),
        }),
        _ => None,
    }
}

/// The Workspace a RunConfiguration's runs go to: its own `workspaceRef`, else its target's.
pub fn workspace_name<'a>(
    spec: &'a RunConfigurationSpec,
    target: Option<&'a crate::api::ComputeTarget>,
) -> Option<&'a str> {
    spec.workspace_ref
        .as_ref()
        .or(target.and_then(|t| t.spec.workspace_ref.as_ref()))
        .map(|r| r.name.as_str())
}

/// The workspace connection that carries `docker.registry` credentials to Azure ML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryPlan {
    /// Connection name: one per (address, user name, Secret reference), so RunConfigurations
    /// that share a registry login share the connection, and any change makes a new one.
    /// A new version of the Secret rewrites the same connection.
    pub name: String,
    pub address: String,
    pub username: String,
    pub password: SecretKeyRef,
}

/// What Azure reports about a connection (never its credentials).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ObservedConnection {
    pub category: Option<String>,
    pub target: Option<String>,
    /// The version of the password's Secret the connection was written from (its metadata).
    pub secret_version: Option<String>,
}

pub const REGISTRY_CATEGORY: &str = "ContainerRegistry";

/// The registry connection a spec asks for, if any.
pub fn plan_registry(spec: &RunConfigurationSpec) -> Option<RegistryPlan> {
    let r = spec.docker.as_ref()?.registry.as_ref()?;
    let digest = content_version(&[
        &r.address,
        &r.username,
        &r.password_secret_ref.name,
        &r.password_secret_ref.key,
    ]);
    Some(RegistryPlan {
        // Azure's rule: ^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$ (16 + 16 characters here).
        name: format!("amlops-registry-{}", &digest[..16]),
        address: r.address.clone(),
        username: r.username.clone(),
        password: r.password_secret_ref.clone(),
    })
}

/// Whether the connection found in Azure is the planned one, written from the current
/// version of the password's Secret (`None`: unknown, not compared); `false` means write it.
/// The name already encodes user name and Secret reference, so address and category suffice.
pub fn registry_in_sync(
    plan: &RegistryPlan,
    observed: Option<&ObservedConnection>,
    secret_version: Option<&str>,
) -> bool {
    observed.is_some_and(|o| {
        o.category.as_deref() == Some(REGISTRY_CATEGORY)
            && o.target
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(&plan.address))
            && secret_version.is_none_or(|v| o.secret_version.as_deref() == Some(v))
    })
}

/// Whether the run target can take runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetState {
    Missing,
    NotReady {
        reason: String,
        message: String,
    },
    /// The target can never take runs from this frontend (e.g. `local` in a cluster).
    Unusable {
        reason: String,
        message: String,
    },
    Ready,
}

/// What the frontend found about the planned environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvironmentState {
    /// Staged locally, registered in Azure with exactly this version, or a registry
    /// environment (which a workspace cannot answer for, so it is not looked up).
    Staged,
    NotStaged,
    /// An `existing` environment that Azure does not have.
    Missing,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunConfigurationAction {
    /// Stage (locally) or register (in Azure) the planned environment. Idempotent by version.
    StageEnvironment(EnvironmentPlan),
}

pub struct Input<'a> {
    pub info: &'a ObjectInfo,
    pub spec: &'a RunConfigurationSpec,
    pub status: Option<&'a RunConfigurationStatus>,
    pub target: TargetState,
    pub environment: EnvironmentState,
    pub now: Timestamp,
}

pub fn reconcile(input: Input<'_>) -> Decision<RunConfigurationStatus, RunConfigurationAction> {
    let Input {
        info,
        spec,
        status,
        now,
        ..
    } = input;
    let generation = info.generation;
    let mut d = Decision::new(status.cloned().unwrap_or_default());
    d.status.observed_generation = generation;
    let conditions = &mut d.status.conditions;
    let Some(plan) = plan_environment(info, spec) else {
        mark_stalled(
            conditions,
            "InvalidEnvironment",
            "exactly one of condaDependencies, userManaged or existing must be set",
            generation,
            now,
        );
        return d;
    };
    if info.deleting {
        return d;
    }
    if info.paused {
        mark_progressing(
            conditions,
            "Paused",
            "reconciliation is paused by the amlops.io/reconcile annotation",
            generation,
            now,
        );
        return d;
    }
    let target_ready = input.target == TargetState::Ready;
    d.status.target_ready = Some(target_ready);
    if let TargetState::Unusable { reason, message } = &input.target {
        // Nothing is staged for a target that can never run: a person has to change it.
        let target = spec
            .target_ref
            .as_ref()
            .map(|r| r.name.as_str())
            .unwrap_or_default();
        let msg = format!("ComputeTarget {target:?}: {message}");
        mark_stalled(conditions, reason, &msg, generation, now);
        return d;
    }
    match input.environment {
        EnvironmentState::Missing => {
            let msg = format!(
                "environment {}:{} does not exist in the workspace; a registry environment needs existing.registry",
                plan.name(),
                plan.version()
            );
            mark_stalled(conditions, "EnvironmentNotFound", &msg, generation, now);
            return d;
        }
        EnvironmentState::NotStaged => {
            let msg = format!("staging environment {}:{}", plan.name(), plan.version());
            mark_progressing(conditions, "StagingEnvironment", &msg, generation, now);
            d.actions
                .push(RunConfigurationAction::StageEnvironment(plan));
            d.requeue_after = Some(Duration::from_secs(1));
            return d;
        }
        EnvironmentState::Staged => d.status.environment = Some(plan.staged()),
    }
    let target = spec
        .target_ref
        .as_ref()
        .map(|r| r.name.as_str())
        .unwrap_or("run-based amlCompute");
    match input.target {
        TargetState::Ready => mark_ready(
            conditions,
            "Ready",
            &format!("{}; target {target} is ready", plan.readiness()),
            generation,
            now,
        ),
        TargetState::Missing => {
            mark_progressing(
                conditions,
                "ComputeTargetNotFound",
                &format!("ComputeTarget {target:?} not found"),
                generation,
                now,
            );
            d.requeue_after = Some(Duration::from_secs(30));
        }
        TargetState::NotReady { reason, message } => {
            let msg = format!("waiting for ComputeTarget {target:?}: {reason}: {message}");
            mark_progressing(conditions, "WaitingForComputeTarget", &msg, generation, now);
            d.requeue_after = Some(Duration::from_secs(15));
            d.waiting_for = Some(format!("ComputeTarget {target:?}"));
        }
        // Handled before the environment is looked at.
        TargetState::Unusable { .. } => {}
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{READY, STALLED, find, is_true};
    use crate::api::{CondaDependencies, ExistingEnvironment, ObjectRef, UserManaged};

    fn info() -> ObjectInfo {
        ObjectInfo {
            name: "sk".into(),
            namespace: "ml".into(),
            uid: "u".into(),
            generation: Some(3),
            ..Default::default()
        }
    }
    fn spec(env: EnvironmentSource) -> RunConfigurationSpec {
        serde_json::from_value(
            serde_json::json!({"targetRef": {"name": "cpu"}, "environment": env}),
        )
        .unwrap()
    }
    fn conda() -> EnvironmentSource {
        EnvironmentSource {
            conda_dependencies: Some(CondaDependencies {
                python_version: Some("3.11".into()),
                channels: vec![],
                conda_packages: vec!["numpy".into()],
                pip_packages: vec!["scikit-learn==1.5.2".into()],
            }),
            ..Default::default()
        }
    }
    fn t() -> Timestamp {
        Timestamp::from_second(1_800_000_000).unwrap()
    }

    #[test]
    fn conda_file_is_deterministic_yaml_with_a_pip_section() {
        let EnvironmentSource {
            conda_dependencies: Some(deps),
            ..
        } = conda()
        else {
            unreachable!()
        };
        let file = render_conda_file(&deps);
        assert_eq!(
            file,
            "name: project_environment\nchannels:\n  - \"conda-forge\"\ndependencies:\n  - \"python=3.11\"\n  - \"numpy\"\n  - pip\n  - pip:\n      - \"scikit-learn==1.5.2\"\n"
        );
        let parsed: serde_json::Value = serde_saphyr::from_str(&file).unwrap();
        assert_eq!(parsed["dependencies"][3]["pip"][0], "scikit-learn==1.5.2");
    }

    #[test]
    fn version_changes_with_content_only() {
        let a = plan_environment(&info(), &spec(conda())).unwrap();
        let b = plan_environment(
            &ObjectInfo {
                generation: Some(9),
                ..info()
            },
            &spec(conda()),
        )
        .unwrap();
        assert_eq!(
            a.version(),
            b.version(),
            "a new generation with the same content keeps the version"
        );
        let mut other = conda();
        other
            .conda_dependencies
            .as_mut()
            .unwrap()
            .pip_packages
            .push("pandas".into());
        assert_ne!(
            a.version(),
            plan_environment(&info(), &spec(other)).unwrap().version()
        );
        let mut with_image = spec(conda());
        with_image.docker = Some(Docker {
            base_image: Some("my/image:1".into()),
            enabled: true,
            ..Default::default()
        });
        assert_ne!(
            a.version(),
            plan_environment(&info(), &with_image).unwrap().version()
        );
        assert_eq!(a.name(), "amlops-ml-sk");
    }

    #[test]
    fn registry_connection_is_named_by_login_and_compared_by_address() {
        assert_eq!(plan_registry(&spec(conda())), None);
        let with = |address: &str, user: &str, key: &str| {
            let mut s = spec(conda());
            s.docker = Some(Docker {
                enabled: true,
                base_image: Some("private.example.io/train:1".into()),
                registry: Some(crate::api::Registry {
                    address: address.into(),
                    username: user.into(),
                    password_secret_ref: SecretKeyRef {
                        name: "registry".into(),
                        key: key.into(),
                    },
                }),
                ..Default::default()
            });
            plan_registry(&s).unwrap()
        };
        let plan = with("private.example.io", "puller", "password");
        let rule = regex::Regex::new("^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$").unwrap();
        assert!(rule.is_match(&plan.name), "{}", plan.name);
        assert_eq!(plan, with("private.example.io", "puller", "password"));
        for other in [
            with("other.example.io", "puller", "password"),
            with("private.example.io", "pusher", "password"),
            with("private.example.io", "puller", "rotated"),
        ] {
            assert_ne!(plan.name, other.name);
        }
        assert!(!registry_in_sync(&plan, None, None));
        let found = |category: &str, target: &str| ObservedConnection {
            category: Some(category.into()),
            target: Some(target.into()),
            secret_version: Some("41".into()),
        };
        let ok = found("ContainerRegistry", "PRIVATE.example.io");
        assert!(registry_in_sync(&plan, Some(&ok), Some("41")));
        assert!(registry_in_sync(&plan, Some(&ok), None), "version unknown");
        assert!(
            !registry_in_sync(&plan, Some(&ok), Some("42")),
            "the Secret changed: write again"
        );
        let git = found("Git", "private.example.io");
        assert!(!registry_in_sync(&plan, Some(&git), Some("41")));
        let elsewhere = found("ContainerRegistry", "elsewhere.io");
        assert!(!registry_in_sync(&plan, Some(&elsewhere), Some("41")));
    }

    #[test]
    fn stages_once_then_ready_when_target_is_ready() {
        let (i, s) = (info(), spec(conda()));
        let input = |env, target| Input {
            info: &i,
            spec: &s,
            status: None,
            target,
            environment: env,
            now: t(),
        };
        let d = reconcile(input(EnvironmentState::NotStaged, TargetState::Ready));
        assert!(matches!(
            d.actions.as_slice(),
            [RunConfigurationAction::StageEnvironment(
                EnvironmentPlan::SystemManaged { .. }
            )]
        ));
        let d = reconcile(input(EnvironmentState::Staged, TargetState::Ready));
        assert!(d.actions.is_empty());
        assert!(is_true(&d.status.conditions, READY));
        assert_eq!(
            d.status
                .environment
                .as_ref()
                .unwrap()
                .conda_file
                .as_deref()
                .map(|f| f.contains("numpy")),
            Some(true)
        );
        let d = reconcile(input(
            EnvironmentState::Staged,
            TargetState::NotReady {
                reason: "Creating".into(),
                message: "LRO".into(),
            },
        ));
        assert_eq!(
            find(&d.status.conditions, READY).unwrap().reason,
            "WaitingForComputeTarget"
        );
        assert_eq!(d.status.target_ready, Some(false));
        assert!(find(&d.status.conditions, STALLED).is_none());
    }

    #[test]
    fn unusable_target_is_stalled_with_its_reason() {
        let (i, s) = (info(), spec(conda()));
        let d = reconcile(Input {
            info: &i,
            spec: &s,
            status: None,
            target: TargetState::Unusable {
                reason: "LocalComputeNotAllowed".into(),
                message: "local compute cannot run in a cluster".into(),
            },
            environment: EnvironmentState::NotStaged,
            now: t(),
        });
        assert!(
            d.actions.is_empty(),
            "nothing is staged for a target that cannot run"
        );
        let stalled = find(&d.status.conditions, STALLED).unwrap();
        assert_eq!(stalled.reason, "LocalComputeNotAllowed");
        assert!(!is_true(&d.status.conditions, READY));
        assert_eq!(d.status.target_ready, Some(false));
        assert_eq!(d.requeue_after, None);
    }

    #[test]
    fn missing_existing_environment_is_stalled() {
        let (i, s) = (info(), spec(existing("e", None, "1")));
        let d = reconcile(Input {
            info: &i,
            spec: &s,
            status: None,
            target: TargetState::Ready,
            environment: EnvironmentState::Missing,
            now: t(),
        });
        assert_eq!(
            find(&d.status.conditions, STALLED).unwrap().reason,
            "EnvironmentNotFound"
        );
    }

    fn existing(name: &str, registry: Option<&str>, version: &str) -> EnvironmentSource {
        EnvironmentSource {
            existing: Some(ExistingEnvironment {
                name: name.into(),
                version: version.into(),
                registry: registry.map(Into::into),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn existing_environments_live_in_the_workspace_unless_curated_or_in_a_registry() {
        let plan = |env| plan_environment(&info(), &spec(env)).unwrap();
        let workspace = plan(existing("my-env", None, "3"));
        assert_eq!(workspace.registry(), None);
        assert_eq!(workspace.registry_asset_id(), None);
        assert_eq!((workspace.name(), workspace.version()), ("my-env", "3"));
        let curated = plan(existing(
            "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu",
            None,
            "33",
        ));
        assert_eq!(curated.registry(), Some("azureml"));
        assert_eq!(curated.name(), "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu");
        assert_eq!(
            curated.registry_asset_id().as_deref(),
            Some(
                "azureml://registries/azureml/environments/AzureML-sklearn-1.0-ubuntu20.04-py38-cpu/versions/33"
            )
        );
        let shared = plan(existing("train", Some("team-registry"), "7"));
        assert_eq!(
            shared.registry_asset_id().as_deref(),
            Some("azureml://registries/team-registry/environments/train/versions/7")
        );
        // Azure reserves the prefix for curated environments, and only that exact prefix.
        assert_eq!(plan(existing("azureml-mine", None, "1")).registry(), None);
        assert_eq!(
            ExistingName::from("AzureML-x"),
            ExistingName::new("AzureML-x", Some("azureml"))
        );
    }

    #[test]
    fn registry_environments_are_ready_without_a_workspace_lookup() {
        let s = spec(existing(
            "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu",
            None,
            "33",
        ));
        let i = info();
        let d = reconcile(Input {
            info: &i,
            spec: &s,
            status: None,
            target: TargetState::Ready,
            environment: EnvironmentState::Staged,
            now: t(),
        });
        assert!(
            d.actions.is_empty(),
            "nothing is registered for an existing environment"
        );
        assert!(is_true(&d.status.conditions, READY));
        let env = d.status.environment.unwrap();
        assert_eq!(env.name, "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu");
        assert_eq!(env.version, "33");
        assert_eq!(env.registry.as_deref(), Some("azureml"));
        let ready = find(&d.status.conditions, READY).unwrap();
        assert!(
            ready.message.contains(
                "azureml://registries/azureml/environments/AzureML-sklearn-1.0-ubuntu20.04-py38-cpu/versions/33 is passed to runs as is"
            ),
            "{}",
            ready.message
        );
        let s = spec(existing("my-env", None, "3"));
        let d = reconcile(Input {
            info: &i,
            spec: &s,
            status: None,
            target: TargetState::Ready,
            environment: EnvironmentState::Staged,
            now: t(),
        });
        let ready = find(&d.status.conditions, READY).unwrap();
        assert!(
            ready
                .message
                .starts_with("environment my-env:3 found in the workspace"),
            "{}",
            ready.message
        );
        assert_eq!(d.status.environment.unwrap().registry, None);
    }

    #[test]
    fn user_managed_keeps_the_interpreter() {
        let env = EnvironmentSource {
            user_managed: Some(UserManaged {
                interpreter_path: "/opt/py/bin/python".into(),
            }),
            ..Default::default()
        };
        let mut s = spec(env);
        s.target_ref = Some(ObjectRef {
            name: "local".into(),
        });
        match plan_environment(&info(), &s).unwrap() {
            EnvironmentPlan::UserManaged {
                interpreter,
                base_image,
                ..
            } => {
                assert_eq!(interpreter, "/opt/py/bin/python");
                assert_eq!(base_image, DEFAULT_BASE_IMAGE);
            }
            other => panic!("{other:?}"),
        }
    }
}
