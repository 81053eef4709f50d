//! The Job of one run. Pure: the same run always gives the same Job.
//!
//! One pod (`completions`/`parallelism` 1, `backoffLimit` 0: a failed run is not retried
//! behind the user's back), owned by the Experiment, with the Pod Security `restricted`
//! profile (non-root uid/gid 1000 whatever the image's USER, no privilege escalation, every
//! capability dropped, RuntimeDefault seccomp) and no ServiceAccount token unless the
//! ComputeTarget names a ServiceAccount. An init container unpacks the snapshot into the
//! workspace; the run container builds or reuses the environment and runs the command there
//! (see `script`).
//!
//! Pod layout (all writable volumes are emptyDirs except the optional cache claim):
//! ```text
//! /amlops/snapshot    the ConfigMap with the archive (read-only)
//! /amlops/workspace   the unpacked source: the working directory, with outputs/
//! /amlops/home        HOME (pip's cache when there is no cache claim)
//! /amlops/cache       envs/, pip/ and mamba/: the cache claim, else scratch
//! ```

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    LocalObjectReference, ObjectFieldSelector, PersistentVolumeClaimVolumeSource,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SeccompProfile,
    SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::JobRun;
use super::archive::ARCHIVE_KEY;
use super::names::{
    EXPERIMENT_LABEL, GIT_ANNOTATION, KUEUE_QUEUE_LABEL, MANAGED_BY, MANAGER, RUN_ANNOTATION,
    RUN_LABEL, SNAPSHOT_ANNOTATION, job_name, label_value,
};
use super::script::{self, CommandMode, EnvironmentBuild, POD_NAME_VAR, RunSetup};
use crate::actions::local::environment_spec;
use crate::actions::needs_human;
use crate::api::{LocalToleration, TaintEffect, TolerationOperator};
use crate::local::{EnvironmentSpec, conda_only_packages};
use crate::reconcile::{ActionFailure, ObjectInfo};

/// Image of runs when neither the RunConfiguration (`docker.baseImage`) nor the
/// ComputeTarget (`local.image`) names one and the conda dependencies name no pythonVersion.
pub const DEFAULT_IMAGE: &str = "python:3.12-slim";

/// Name of the container that runs the command (the one `amlops logs` reads).
pub const RUN_CONTAINER: &str = "run";
/// Name of the init container that unpacks the snapshot.
pub const UNPACK_CONTAINER: &str = "unpack-source";

/// User and group the pod runs as (the images' own USER is not trusted to be non-root).
const RUN_AS: i64 = 1000;

const SNAPSHOT_DIR: &str = "/amlops/snapshot";
const WORKSPACE: &str = "/amlops/workspace";
const HOME: &str = "/amlops/home";
const CACHE: &str = "/amlops/cache";

/// The run's Job; refused (needs a human) when the run cannot be a cluster Job as declared.
pub fn job(run: &JobRun<'_>) -> Result<Job, ActionFailure> {
    let rc = run.run_configuration;
    if rc.node_count > 1 {
        return Err(needs_human(
            "MultiNodeNotSupported",
            format!(
                "nodeCount {}: a local run in a cluster is one pod; set nodeCount 1, or use an amlCompute or kubernetes target for multi-node training",
                rc.node_count
            ),
        ));
    }
    let image = image(run);
    let setup = run_setup(run, &image)?;
    let (command_args, name) = (command_args(run)?, job_name(run.run_id));
    let target = run.target;
    let mut job_labels = labels(run);
    if let Some(queue) = &target.queue_name {
        job_labels.insert(KUEUE_QUEUE_LABEL.into(), queue.clone());
    }
    let mut annotations = BTreeMap::from([
        (RUN_ANNOTATION.to_string(), run.run_id.to_string()),
        (SNAPSHOT_ANNOTATION.to_string(), run.snapshot_id.to_string()),
    ]);
    if let Some(git) = run.git.and_then(|g| serde_json::to_string(g).ok()) {
        annotations.insert(GIT_ANNOTATION.into(), git);
    }
    let pod = PodSpec {
        restart_policy: Some("Never".into()),
        service_account_name: target.service_account_name.clone(),
        // The namespace's default ServiceAccount gets no token: the user's code has no
        // business with the API server unless the ComputeTarget says so.
        automount_service_account_token: target.service_account_name.is_none().then_some(false),
        // Service links would put every Service of the namespace into the run's environment.
        enable_service_links: Some(false),
        priority_class_name: target.priority_class_name.clone(),
        node_selector: (!target.node_selector.is_empty()).then(|| target.node_selector.clone()),
        tolerations: (!target.tolerations.is_empty())
            .then(|| target.tolerations.iter().map(toleration).collect()),
        image_pull_secrets: (!target.image_pull_secrets.is_empty()).then(|| {
            target
                .image_pull_secrets
                .iter()
                .map(|s| LocalObjectReference {
                    name: s.name.clone(),
                })
                .collect()
        }),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(RUN_AS),
            run_as_group: Some(RUN_AS),
            fs_group: Some(RUN_AS),
            // A large cache volume is not re-owned file by file on every run.
            fs_group_change_policy: Some("OnRootMismatch".into()),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        init_containers: Some(vec![unpack_container(run, &image, &setup.python)]),
        containers: vec![run_container(run, &image, &setup, command_args)],
        volumes: Some(volumes(run)),
        ..PodSpec::default()
    };
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(run.owner.namespace.clone()),
            labels: Some(job_labels),
            annotations: Some(annotations),
            owner_references: Some(vec![experiment_owner(run.owner)]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(0),
            completions: Some(1),
            parallelism: Some(1),
            active_deadline_seconds: rc.max_run_duration_seconds,
            ttl_seconds_after_finished: target.ttl_seconds_after_finished,
            // Kueue admits a queued Job by unsuspending it.
            suspend: Some(run.experiment.suspend || target.queue_name.is_some()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(run)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    })
}

/// Labels of every object of the run (the Job adds the Kueue queue).
pub fn labels(run: &JobRun<'_>) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_string(), MANAGER.to_string()),
        (EXPERIMENT_LABEL.to_string(), label_value(&run.owner.name)),
        (RUN_LABEL.to_string(), job_name(run.run_id)),
    ])
}

/// The Experiment as the controlling owner: deleting it deletes the run's objects.
pub fn experiment_owner(owner: &ObjectInfo) -> OwnerReference {
    OwnerReference {
        api_version: format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
        kind: "Experiment".into(),
        name: owner.name.clone(),
        uid: owner.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The Job as the controlling owner of its ConfigMap, once the Job exists (it has a uid).
/// `blockOwnerDeletion` stays unset: it would need rights on `jobs/finalizers`.
pub fn job_owner(job: &Job) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job.metadata.name.clone()?,
        uid: job.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: None,
    })
}

/// `docker.baseImage`, else the target's image, else `python:<pythonVersion>-slim`, else
/// [`DEFAULT_IMAGE`].
pub fn image(run: &JobRun<'_>) -> String {
    declared_image(run)
        .map(str::to_string)
        .or_else(|| {
            let deps = run
                .run_configuration
                .environment
                .conda_dependencies
                .as_ref()?;
            Some(format!("python:{}-slim", deps.python_version.as_deref()?))
        })
        .unwrap_or_else(|| DEFAULT_IMAGE.to_string())
}

fn declared_image<'a>(run: &JobRun<'a>) -> Option<&'a str> {
    run.run_configuration
        .docker
        .as_ref()
        .and_then(|d| d.base_image.as_deref())
        .or(run.target.image.as_deref())
}

/// What the run script does about the environment. Conda packages are refused here when
/// the image is amlops' own python image, which has no micromamba; a declared image is
/// trusted to have it, and the script says so if it does not.
fn run_setup(run: &JobRun<'_>, image: &str) -> Result<RunSetup, ActionFailure> {
    let command = match run.experiment.script {
        Some(_) => CommandMode::Script,
        None => CommandMode::Shell,
    };
    let (python, build) = match environment_spec(run.environment)? {
        EnvironmentSpec::UserManaged { interpreter } => (interpreter, None),
        EnvironmentSpec::SystemManaged {
            conda_file,
            content_hash,
            python_version,
            conda_packages,
            pip_packages,
        } => {
            let conda_only = conda_only_packages(&conda_packages);
            if !conda_only.is_empty() && declared_image(run).is_none() {
                return Err(needs_human(
                    "CondaPackagesNeedMicromamba",
                    format!(
                        "conda packages [{}] need micromamba, which the default image {image} lacks; name an image with micromamba in docker.baseImage (RunConfiguration) or image (ComputeTarget local), or move them to pipPackages",
                        conda_only.join(", ")
                    ),
                ));
            }
            let mut key = blake3::Hasher::new();
            key.update(content_hash.as_bytes());
            key.update(b"\0");
            key.update(image.as_bytes());
            let build = EnvironmentBuild {
                key: key.finalize().to_hex()[..32].to_string(),
                envs_dir: format!("{CACHE}/envs"),
                mamba_root: format!("{CACHE}/mamba"),
                conda_file,
                conda_only,
                python_version,
                requirements: pip_packages,
            };
            ("python3".to_string(), Some(build))
        }
    };
    Ok(RunSetup {
        command,
        python,
        image: image.to_string(),
        build,
    })
}

/// The run container's arguments: the script and its arguments, or the command line.
fn command_args(run: &JobRun<'_>) -> Result<Vec<String>, ActionFailure> {
    let spec = run.experiment;
    match (&spec.script, &spec.command) {
        (Some(script), _) => Ok([vec![script.clone()], spec.arguments.clone()].concat()),
        (None, Some(command)) => Ok(vec![command.clone()]),
        (None, None) => Err(needs_human(
            "InvalidSpec",
            "spec.script or spec.command is required",
        )),
    }
}

/// No privilege escalation and no capabilities: the container half of `restricted`.
fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    }
}

fn plain(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    }
}

fn unpack_container(run: &JobRun<'_>, image: &str, python: &str) -> Container {
    Container {
        name: UNPACK_CONTAINER.into(),
        image: Some(image.into()),
        command: Some(vec!["/bin/sh".into(), "-c".into(), script::unpack()]),
        env: Some(vec![
            plain("AMLOPS_ARCHIVE", format!("{SNAPSHOT_DIR}/{ARCHIVE_KEY}")),
            plain("AMLOPS_WORKSPACE", WORKSPACE.into()),
            plain("AMLOPS_PYTHON", python.into()),
            plain("AMLOPS_IMAGE", image.into()),
        ]),
        // Quota-enforcing namespaces want cpu/memory on every container; extended
        // resources (GPUs) stay with the run container.
        resources: resources(run, |name| {
            matches!(name, "cpu" | "memory" | "ephemeral-storage")
        }),
        security_context: Some(container_security()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(vec![
            VolumeMount {
                read_only: Some(true),
                ..mount("snapshot", SNAPSHOT_DIR)
            },
            mount("workspace", WORKSPACE),
        ]),
        ..Container::default()
    }
}

fn run_container(run: &JobRun<'_>, image: &str, setup: &RunSetup, args: Vec<String>) -> Container {
    let experiment_name = run
        .experiment
        .experiment_name
        .clone()
        .unwrap_or_else(|| run.owner.name.clone());
    // The variables a laptop run gets (`local::run`): the user's on top of the defaults,
    // amlops' own on top of the user's.
    let mut vars = BTreeMap::from([
        ("PYTHONUNBUFFERED".to_string(), "1".to_string()),
        ("HOME".to_string(), HOME.to_string()),
    ]);
    if run.target.cache_persistent_volume_claim.is_some() {
        vars.insert("PIP_CACHE_DIR".into(), format!("{CACHE}/pip"));
    }
    vars.extend(run.run_configuration.environment_variables.clone());
    vars.extend([
        ("AZUREML_RUN_ID".to_string(), run.run_id.to_string()),
        (
            "AZUREML_EXPERIMENT_NAME".to_string(),
            experiment_name.clone(),
        ),
        ("AZUREML_ARM_PROJECT_NAME".to_string(), experiment_name),
    ]);
    vars.extend(
        setup
            .variables()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
    );
    vars.remove(POD_NAME_VAR);
    let mut env: Vec<EnvVar> = vars.into_iter().map(|(k, v)| plain(&k, v)).collect();
    env.push(EnvVar {
        name: POD_NAME_VAR.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".into(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
    });
    Container {
        name: RUN_CONTAINER.into(),
        image: Some(image.into()),
        command: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            script::run(),
            "amlops-run".into(),
        ]),
        args: Some(args),
        working_dir: Some(WORKSPACE.into()),
        env: Some(env),
        resources: resources(run, |_| true),
        security_context: Some(container_security()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(vec![
            mount("workspace", WORKSPACE),
            mount("home", HOME),
            mount("cache", CACHE),
        ]),
        ..Container::default()
    }
}

/// The target's requests and limits whose resource name passes `keep`.
fn resources(run: &JobRun<'_>, keep: fn(&str) -> bool) -> Option<ResourceRequirements> {
    let r = run.target.resources.as_ref()?;
    let pick = |m: &BTreeMap<String, Quantity>| {
        let picked: BTreeMap<_, _> = m
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (!picked.is_empty()).then_some(picked)
    };
    let (requests, limits) = (pick(&r.requests), pick(&r.limits));
    (requests.is_some() || limits.is_some()).then(|| ResourceRequirements {
        requests,
        limits,
        ..ResourceRequirements::default()
    })
}

fn toleration(t: &LocalToleration) -> Toleration {
    Toleration {
        key: t.key.clone(),
        operator: t.operator.map(|o| {
            match o {
                TolerationOperator::Equal => "Equal",
                TolerationOperator::Exists => "Exists",
            }
            .to_string()
        }),
        value: t.value.clone(),
        effect: t.effect.map(|e| {
            match e {
                TaintEffect::NoSchedule => "NoSchedule",
                TaintEffect::PreferNoSchedule => "PreferNoSchedule",
                TaintEffect::NoExecute => "NoExecute",
            }
            .to_string()
        }),
        toleration_seconds: t.toleration_seconds,
    }
}

fn volumes(run: &JobRun<'_>) -> Vec<Volume> {
    let scratch = |name: &str| Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    };
    let cache = match &run.target.cache_persistent_volume_claim {
        Some(claim) => Volume {
            name: "cache".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: None,
            }),
            ..Volume::default()
        },
        None => scratch("cache"),
    };
    vec![
        Volume {
            name: "snapshot".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: job_name(run.run_id),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        scratch("workspace"),
        scratch("home"),
        cache,
    ]
}

#[cfg(test)]
mod tests;
