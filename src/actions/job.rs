//! Job actions: build the CommandJob of a run (pure), observe it by its deterministic id,
//! submit it, cancel it. The id comes from `reconcile::experiment::run_id`, so a submit
//! after a crash finds the job already there instead of starting a second one.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::{azure_failure, needs_human};
use crate::api::{Communicator, ErrorInfo, ExperimentSpec, Framework, RunConfigurationSpec};
use crate::azure::WorkspaceClient;
use crate::azure::lro::Started;
use crate::azure::models::common::{IsoDuration, ResourceBase};
use crate::azure::models::job::{
    CommandJob, CommandJobLimits, Distribution, JobProperties, JobResource, JobResources,
};
use crate::reconcile::ActionFailure;
use crate::reconcile::experiment::{ObservedRun, RunState};
use crate::reconcile::run_configuration::EnvironmentPlan;
use crate::snapshot::GitProvenance;

pub const EXPERIMENT_TAG: &str = "amlops.io/experiment";
pub const NAMESPACE_TAG: &str = "amlops.io/namespace";
pub const UID_TAG: &str = "amlops.io/uid";
pub const SNAPSHOT_PROPERTY: &str = "amlops.io/snapshot-id";
pub const GENERATION_PROPERTY: &str = "amlops.io/generation";

/// Everything a job body is built from.
pub struct JobInput<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub generation: Option<i64>,
    pub experiment: &'a ExperimentSpec,
    pub run_configuration: &'a RunConfigurationSpec,
    pub environment: &'a EnvironmentPlan,
    /// ARM ids.
    pub environment_id: String,
    pub code_id: String,
    pub compute_id: String,
    pub snapshot_id: &'a str,
    pub provenance: Option<&'a GitProvenance>,
}

/// POSIX shell quoting: plain words stay as they are, anything else goes in single quotes.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// `spec.command`, or the interpreter + script + arguments, each word quoted.
pub fn command_line(spec: &ExperimentSpec, environment: &EnvironmentPlan) -> Option<String> {
    if let Some(command) = &spec.command {
        return Some(command.clone());
    }
    let interpreter = match environment {
        EnvironmentPlan::UserManaged { interpreter, .. } => interpreter.as_str(),
        _ => "python",
    };
    let script = spec.script.as_deref()?;
    let words: Vec<String> = [interpreter, script]
        .into_iter()
        .chain(spec.arguments.iter().map(String::as_str))
        .map(shell_quote)
        .collect();
    Some(words.join(" "))
}

fn count(n: i32) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(1)
}

/// Distribution from the framework and communicator; `None` for a single process.
pub fn distribution(rc: &RunConfigurationSpec) -> Option<Distribution> {
    let (nodes, per_node) = (count(rc.node_count), count(rc.process_count_per_node));
    let processes = Some(per_node);
    match (rc.communicator, rc.framework) {
        (Communicator::OpenMpi | Communicator::IntelMpi, _) => Some(Distribution::Mpi {
            process_count_per_instance: processes,
        }),
        (Communicator::Nccl, _) => Some(Distribution::PyTorch {
            process_count_per_instance: processes,
        }),
        (Communicator::ParameterServer, _) => Some(Distribution::TensorFlow {
            worker_count: Some(nodes.saturating_mul(per_node)),
            parameter_server_count: Some(1),
        }),
        (Communicator::None, Framework::PyTorch) if nodes * per_node > 1 => {
            Some(Distribution::PyTorch {
                process_count_per_instance: processes,
            })
        }
        (Communicator::None, _) => None,
    }
}

/// The CommandJob of one run.
pub fn build(input: &JobInput<'_>) -> Result<JobResource, ActionFailure> {
    let rc = input.run_configuration;
    if rc.framework == Framework::PySpark {
        return Err(needs_human(
            "UnsupportedFramework",
            "framework PySpark needs an Azure ML Spark job, which amlops does not submit; use Python, TensorFlow or PyTorch",
        ));
    }
    let command = command_line(input.experiment, input.environment).ok_or_else(|| {
        needs_human(
            "InvalidSpec",
            "spec.script or spec.command must be set on the Experiment",
        )
    })?;
    let mut tags = input.experiment.tags.clone();
    tags.insert(EXPERIMENT_TAG.into(), input.name.into());
    tags.insert(NAMESPACE_TAG.into(), input.namespace.into());
    tags.insert(UID_TAG.into(), input.uid.into());
    let mut properties: BTreeMap<String, String> = input
        .provenance
        .map(GitProvenance::to_properties)
        .unwrap_or_default();
    properties.insert(SNAPSHOT_PROPERTY.into(), input.snapshot_id.into());
    properties.insert(
        GENERATION_PROPERTY.into(),
        input.generation.unwrap_or(0).to_string(),
    );
    let shm_size = rc.docker.as_ref().and_then(|d| d.shm_size.clone());
    let job = CommandJob {
        command,
        environment_id: input.environment_id.clone(),
        code_id: Some(input.code_id.clone()),
        compute_id: Some(input.compute_id.clone()),
        distribution: distribution(rc),
        resources: Some(JobResources {
            instance_count: Some(count(rc.node_count)),
            instance_type: None,
            shm_size,
        }),
        limits: rc.max_run_duration_seconds.map(|s| CommandJobLimits {
            timeout: Some(IsoDuration::from_secs(u64::try_from(s).unwrap_or(0))),
            ..CommandJobLimits::default()
        }),
        environment_variables: rc.environment_variables.clone(),
        experiment_name: Some(
            input
                .experiment
                .experiment_name
                .clone()
                .unwrap_or_else(|| input.name.to_string()),
        ),
        display_name: Some(input.name.to_string()),
        base: ResourceBase {
            description: Some(format!(
                "amlops Experiment {}/{} generation {}",
                input.namespace,
                input.name,
                input.generation.unwrap_or(0)
            )),
            properties,
            tags,
        },
        status: None,
        services: BTreeMap::new(),
    };
    Ok(JobResource {
        id: None,
        name: None,
        properties: JobProperties::Command(Box::new(job)),
    })
}

fn time(props: &BTreeMap<String, String>, key: &str) -> Option<Timestamp> {
    props.get(key).and_then(|t| t.parse().ok())
}

fn provenance(props: &BTreeMap<String, String>) -> Option<crate::api::GitProvenance> {
    let get = |k: &str| props.get(&format!("azureml.git.{k}")).cloned();
    let git = crate::api::GitProvenance {
        repository_uri: get("repository_uri"),
        branch: get("branch"),
        commit: get("commit"),
        dirty: get("dirty").as_deref() == Some("true"),
    };
    (git.repository_uri.is_some() || git.commit.is_some()).then_some(git)
}

/// The reconciler's view of a job. Azure reports start/end times and errors as job
/// properties (`StartTimeUtc`, `EndTimeUtc`, `ErrorCode`, `ErrorMessage`).
pub fn observed(job: &JobResource) -> ObservedRun {
    let JobProperties::Command(c) = &job.properties else {
        return ObservedRun::default();
    };
    let props = &c.base.properties;
    let state = c
        .status
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|v| v.as_str().and_then(RunState::parse));
    let error = props.get("ErrorCode").map(|code| ErrorInfo {
        code: code.clone(),
        message: props.get("ErrorMessage").cloned().unwrap_or_default(),
    });
    ObservedRun {
        state,
        started_at: time(props, "StartTimeUtc"),
        finished_at: time(props, "EndTimeUtc"),
        error: error.filter(|_| state == Some(RunState::Failed)),
        studio_url: c.studio_url().map(str::to_string),
        logs: None,
        outputs: None,
        snapshot_id: props.get(SNAPSHOT_PROPERTY).cloned(),
        git: provenance(props),
    }
}

/// One GET of the job with this id; `None` when it was never submitted.
pub async fn observe(
    client: &WorkspaceClient,
    run_id: &str,
) -> Result<Option<ObservedRun>, ActionFailure> {
    client
        .job_get(run_id)
        .await
        .map(|j| j.as_ref().map(observed))
        .map_err(|e| azure_failure(&e))
}

/// PUTs the job; the answer is its first observation.
pub async fn submit(
    client: &WorkspaceClient,
    run_id: &str,
    job: &JobResource,
) -> Result<ObservedRun, ActionFailure> {
    client
        .job_create(run_id, job)
        .await
        .map(|j| observed(&j))
        .map_err(|e| azure_failure(&e))
}

/// Asks Azure to cancel; an accepted request (202) is enough, the next observation tells
/// when it is done. A job that is gone needs no cancel.
pub async fn cancel(client: &WorkspaceClient, run_id: &str) -> Result<(), ActionFailure> {
    match client.job_cancel(run_id).await {
        Ok(Started::Done(()) | Started::Pending(_)) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(azure_failure(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ObjectRef, Source};
    use serde_json::json;

    fn experiment() -> ExperimentSpec {
        ExperimentSpec {
            experiment_name: None,
            run_configuration_ref: ObjectRef { name: "rc".into() },
            source: Source::default(),
            script: Some("train.py".into()),
            arguments: vec!["--lr".into(), "0.1".into(), "it's here".into()],
            command: None,
            tags: BTreeMap::from([("team".to_string(), "vision".to_string())]),
            suspend: false,
            history_limit: 10,
            snapshot_limits: None,
        }
    }
    fn rc(v: serde_json::Value) -> RunConfigurationSpec {
        let mut base = json!({"targetRef": {"name": "cpu"}, "environment": {"existing": {"name": "e", "version": "1"}}});
        if let (Some(b), Some(extra)) = (base.as_object_mut(), v.as_object()) {
            b.extend(extra.clone());
        }
        serde_json::from_value(base).unwrap()
    }
    fn env() -> EnvironmentPlan {
        EnvironmentPlan::Existing {
            name: "e".into(),
            version: "1".into(),
        }
    }

    #[test]
    fn command_quotes_arguments_and_user_managed_uses_its_interpreter() {
        assert_eq!(
            command_line(&experiment(), &env()).unwrap(),
            r#"python train.py --lr 0.1 'it'\''s here'"#
        );
        let user = EnvironmentPlan::UserManaged {
            name: "n".into(),
            version: "v".into(),
            interpreter: "/opt/py/bin/python".into(),
            base_image: "i".into(),
        };
        assert!(
            command_line(&experiment(), &user)
                .unwrap()
                .starts_with("/opt/py/bin/python train.py")
        );
        let cmd = ExperimentSpec {
            script: None,
            arguments: vec![],
            command: Some("bash run.sh && echo done".into()),
            ..experiment()
        };
        assert_eq!(
            command_line(&cmd, &env()).unwrap(),
            "bash run.sh && echo done"
        );
    }

    #[test]
    fn distribution_follows_communicator_and_framework() {
        let d = |v| distribution(&rc(v));
        assert_eq!(d(json!({})), None);
        assert_eq!(
            d(json!({"framework": "PyTorch", "nodeCount": 2, "processCountPerNode": 4})),
            Some(Distribution::PyTorch {
                process_count_per_instance: Some(4)
            })
        );
        assert_eq!(
            d(json!({"communicator": "OpenMpi", "nodeCount": 2})),
            Some(Distribution::Mpi {
                process_count_per_instance: Some(1)
            })
        );
        assert_eq!(
            d(
                json!({"framework": "TensorFlow", "communicator": "ParameterServer", "nodeCount": 3})
            ),
            Some(Distribution::TensorFlow {
                worker_count: Some(3),
                parameter_server_count: Some(1)
            })
        );
    }

    #[test]
    fn job_body_has_ids_limits_tags_and_provenance() {
        let (e, r, plan) = (
            experiment(),
            rc(
                json!({"nodeCount": 2, "maxRunDurationSeconds": 600, "environmentVariables": {"A": "1"}}),
            ),
            env(),
        );
        let git = GitProvenance {
            repository_uri: Some("https://h/r.git".into()),
            branch: Some("main".into()),
            commit: Some("abc".into()),
            dirty: false,
        };
        let job = build(&JobInput {
            name: "train",
            namespace: "ml",
            uid: "u-1",
            generation: Some(3),
            experiment: &e,
            run_configuration: &r,
            environment: &plan,
            environment_id: "/env".into(),
            code_id: "/code".into(),
            compute_id: "/compute".into(),
            snapshot_id: "snap",
            provenance: Some(&git),
        })
        .unwrap();
        let v = serde_json::to_value(&job).unwrap();
        let p = &v["properties"];
        assert_eq!(p["jobType"], "Command");
        assert_eq!(
            p["limits"],
            json!({"jobLimitsType": "Command", "timeout": "PT600S"})
        );
        assert_eq!(p["resources"]["instanceCount"], 2);
        assert_eq!(p["experimentName"], "train");
        assert_eq!(p["tags"]["team"], "vision");
        assert_eq!(p["tags"][UID_TAG], "u-1");
        assert_eq!(p["properties"][SNAPSHOT_PROPERTY], "snap");
        assert_eq!(p["properties"][GENERATION_PROPERTY], "3");
        assert_eq!(p["properties"]["azureml.git.commit"], "abc");
        assert_eq!(p["environmentVariables"]["A"], "1");
        // What Azure answers reads back as the same run.
        let mut answered = v.clone();
        answered["properties"]["status"] = json!("Failed");
        answered["properties"]["properties"]["ErrorCode"] = json!("UserError");
        answered["properties"]["properties"]["StartTimeUtc"] = json!("2026-01-01T00:00:00Z");
        let o = observed(&serde_json::from_value(answered).unwrap());
        assert_eq!(o.state, Some(RunState::Failed));
        assert_eq!(o.error.unwrap().code, "UserError");
        assert_eq!(o.snapshot_id.as_deref(), Some("snap"));
        assert_eq!(o.git.unwrap().commit.as_deref(), Some("abc"));
        assert!(o.started_at.is_some() && o.finished_at.is_none());
    }

    #[test]
    fn pyspark_is_refused_with_a_reason() {
        let (e, r, plan) = (experiment(), rc(json!({"framework": "PySpark"})), env());
        let err = build(&JobInput {
            name: "t",
            namespace: "ml",
            uid: "u",
            generation: None,
            experiment: &e,
            run_configuration: &r,
            environment: &plan,
            environment_id: String::new(),
            code_id: String::new(),
            compute_id: String::new(),
            snapshot_id: "",
            provenance: None,
        })
        .unwrap_err();
        assert_eq!(err.reason, "UnsupportedFramework");
    }
}
