//! Job models: amlops submits `CommandJob`s (spec `JobBase` with `jobType: Command`).
//! Other job types in a listing read as [`JobProperties::Other`].

use super::common::{IsoDuration, ResourceBase, null_as_default};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A job resource (`JobBase`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResource {
    /// ARM id (read-only).
    #[serde(default, skip_serializing)]
    pub id: Option<String>,
    /// Job name = job id (read-only).
    #[serde(default, skip_serializing)]
    pub name: Option<String>,
    /// The job.
    pub properties: JobProperties,
}

/// `JobBaseProperties`, discriminated by `jobType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "jobType")]
pub enum JobProperties {
    /// A command job.
    Command(Box<CommandJob>),
    /// AutoML, Sweep, Pipeline, Spark: not amlops' business.
    #[serde(other)]
    Other,
}

/// Lifecycle state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    /// Not started.
    NotStarted,
    /// Starting.
    Starting,
    /// Provisioning compute.
    Provisioning,
    /// Preparing the environment.
    Preparing,
    /// Waiting for compute.
    Queued,
    /// Running.
    Running,
    /// Collecting outputs.
    Finalizing,
    /// Cancellation requested.
    CancelRequested,
    /// Finished successfully.
    Completed,
    /// Finished with an error.
    Failed,
    /// Canceled.
    Canceled,
    /// Lost contact.
    NotResponding,
    /// Paused.
    Paused,
    /// Unknown (also any state this client does not know).
    #[serde(other)]
    Unknown,
}

/// `CommandJob`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandJob {
    /// Command line run in the environment (required).
    pub command: String,
    /// ARM id of the environment version (required).
    pub environment_id: String,
    /// ARM id of the code version (the snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_id: Option<String>,
    /// ARM id of the compute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_id: Option<String>,
    /// Distributed training setup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Distribution>,
    /// Node count etc.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<JobResources>,
    /// Maximum run duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<CommandJobLimits>,
    /// Environment variables of the job.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub environment_variables: BTreeMap<String, String>,
    /// Experiment the run belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_name: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The identity the job's code acts as (`JobBaseProperties.identity`; null: AMLToken).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityConfiguration>,
    /// The job tier (`QueueSettings`; recorded responses answer `{"jobTier": "Null"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_settings: Option<QueueSettings>,
    /// Description, properties, tags.
    #[serde(flatten)]
    pub base: ResourceBase,
    /// Status (read-only).
    #[serde(default, skip_serializing)]
    pub status: Option<JobStatus>,
    /// Endpoints such as `Studio` (read-only).
    #[serde(default, deserialize_with = "null_as_default", skip_serializing)]
    pub services: BTreeMap<String, JobService>,
}

impl CommandJob {
    /// The Azure ML studio URL of the run, when Azure reports one.
    pub fn studio_url(&self) -> Option<&str> {
        self.services
            .get("Studio")
            .and_then(|s| s.endpoint.as_deref())
    }
}

/// A job endpoint (read-only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobService {
    /// URL.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Kind, e.g. `Studio`.
    #[serde(default)]
    pub job_service_type: Option<String>,
}

/// `DistributionConfiguration`, discriminated by `distributionType`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "distributionType", rename_all_fields = "camelCase")]
pub enum Distribution {
    /// torch.distributed.
    PyTorch {
        /// Processes per node.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process_count_per_instance: Option<u32>,
    },
    /// TensorFlow parameter servers / workers.
    TensorFlow {
        /// Workers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worker_count: Option<u32>,
        /// Parameter servers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parameter_server_count: Option<u32>,
    },
    /// MPI.
    Mpi {
        /// Processes per node.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process_count_per_instance: Option<u32>,
    },
}

/// `JobResourceConfiguration` (the fields amlops sets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobResources {
    /// Number of nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<u32>,
    /// Instance type (Kubernetes computes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Docker shared memory size, e.g. `2g`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<String>,
}

/// `IdentityConfiguration`, discriminated by `identityType` (`AMLToken`, `UserIdentity`,
/// `Managed`); the ids select a user-assigned identity of `Managed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityConfiguration {
    pub identity_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

/// `QueueSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueSettings {
    /// `Null`, `Spot`, `Basic`, `Standard` or `Premium`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_tier: Option<String>,
}

/// The only `jobLimitsType` a command job takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandLimitsType {
    /// `Command`.
    #[default]
    Command,
}

/// `CommandJobLimits`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandJobLimits {
    /// Always `Command` (required by the spec).
    pub job_limits_type: CommandLimitsType,
    /// Maximum run duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<IsoDuration>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job() -> JobResource {
        JobResource {
            id: None,
            name: None,
            properties: JobProperties::Command(Box::new(CommandJob {
                command: "python train.py --epochs 3".into(),
                environment_id: "/envs/e/versions/1".into(),
                code_id: Some("/codes/c/versions/1".into()),
                compute_id: Some("/computes/cpu".into()),
                distribution: Some(Distribution::PyTorch {
                    process_count_per_instance: Some(2),
                }),
                resources: Some(JobResources {
                    instance_count: Some(2),
                    ..Default::default()
                }),
                limits: Some(CommandJobLimits {
                    timeout: Some(IsoDuration::from_secs(3600)),
                    ..Default::default()
                }),
                environment_variables: BTreeMap::from([("A".into(), "1".into())]),
                experiment_name: Some("exp".into()),
                display_name: Some("run 1".into()),
                identity: None,
                queue_settings: None,
                base: ResourceBase {
                    description: None,
                    properties: BTreeMap::from([("git.commit".into(), "abc".into())]),
                    tags: BTreeMap::from([("amlops.io/experiment".into(), "ns.exp".into())]),
                },
                status: Some(JobStatus::Running),
                services: BTreeMap::new(),
            })),
        }
    }

    #[test]
    fn command_job_body_has_the_spec_shape() {
        assert_eq!(
            serde_json::to_value(job()).unwrap(),
            json!({"properties": {
                "jobType": "Command",
                "command": "python train.py --epochs 3",
                "environmentId": "/envs/e/versions/1",
                "codeId": "/codes/c/versions/1",
                "computeId": "/computes/cpu",
                "distribution": {"distributionType": "PyTorch", "processCountPerInstance": 2},
                "resources": {"instanceCount": 2},
                "limits": {"jobLimitsType": "Command", "timeout": "PT3600S"},
                "environmentVariables": {"A": "1"},
                "experimentName": "exp",
                "displayName": "run 1",
                "properties": {"git.commit": "abc"},
                "tags": {"amlops.io/experiment": "ns.exp"}
            }})
        );
    }

    #[test]
    fn responses_parse_status_services_and_other_job_types() {
        let j: JobResource = serde_json::from_value(json!({
            "id": "/jobs/j1", "name": "j1",
            "properties": {
                "jobType": "Command", "command": "c", "environmentId": "e",
                "status": "Finalizing", "tags": null, "environmentVariables": null,
                "services": {"Studio": {"endpoint": "https://ml.azure.com/runs/j1", "jobServiceType": "Studio"}},
                "limits": {"jobLimitsType": "Command", "timeout": "PT1H"}
            }
        }))
        .unwrap();
        let JobProperties::Command(c) = &j.properties else {
            panic!("not a command job")
        };
        assert_eq!(c.status, Some(JobStatus::Finalizing));
        assert_eq!(c.studio_url(), Some("https://ml.azure.com/runs/j1"));
        assert_eq!(
            c.limits.as_ref().unwrap().timeout,
            Some(IsoDuration::from_secs(3600))
        );
        let p: JobResource = serde_json::from_value(json!({
            "name": "p1", "properties": {"jobType": "Pipeline", "jobs": {}, "status": "Running"}
        }))
        .unwrap();
        assert_eq!(p.properties, JobProperties::Other);
        let odd: JobStatus = serde_json::from_value(json!("Hibernating")).unwrap();
        assert_eq!(odd, JobStatus::Unknown);
    }
}
