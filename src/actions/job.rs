//! Job actions: build the CommandJob of a run (pure), observe it by its deterministic id,
//! submit it, cancel it. The id comes from `reconcile::experiment::run_id`, so a submit
//! after a crash finds the job already there instead of starting a second one.

use std::collections::BTreeMap;

use super::{azure_failure, needs_human};
use crate::api::{
    Communicator, ComputeTargetSpec, ErrorInfo, ExperimentSpec, Framework, JobTier,
    RunConfigurationSpec, RunIdentityType, RunStatus,
};
use crate::azure::error::{reason_code, scrub};
use crate::azure::lro::Started;
use crate::azure::models::common::{IsoDuration, ResourceBase};
use crate::azure::models::history::HistoryRun;
use crate::azure::models::job::{
    CommandJob, CommandJobLimits, Distribution, IdentityConfiguration, JobProperties, JobResource,
    JobResources, JobStatus, QueueSettings,
};
use crate::azure::{AzureError, WorkspaceClient};
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
    /// `resources.instanceType` ([`instance_type`]).
    pub instance_type: Option<String>,
}

/// The instance type a run asks for: the RunConfiguration's `instanceType`, which must be one
/// of a `kubernetes` target's `instanceTypes` (when it declares any), else the target's
/// `defaultInstanceType`. Other computes take none.
pub fn instance_type(
    rc: &RunConfigurationSpec,
    target: Option<&ComputeTargetSpec>,
) -> Result<Option<String>, ActionFailure> {
    let kubernetes = target.and_then(|t| t.kubernetes.as_ref());
    match (&rc.instance_type, kubernetes) {
        (None, Some(k)) => Ok(k.default_instance_type.clone()),
        (None, None) => Ok(None),
        (Some(wanted), None) => Err(needs_human(
            "InstanceTypeNotSupported",
            format!(
                "spec.instanceType {wanted:?} applies to runs on a kubernetes ComputeTarget; this RunConfiguration's target is not one: remove instanceType"
            ),
        )),
        (Some(wanted), Some(k))
            if !k.instance_types.is_empty() && !k.instance_types.contains_key(wanted) =>
        {
            let declared: Vec<&str> = k.instance_types.keys().map(String::as_str).collect();
            Err(needs_human(
                "UnknownInstanceType",
                format!(
                    "spec.instanceType {wanted:?} is not one of the target's instanceTypes ({}); use one of them or declare it on the ComputeTarget",
                    declared.join(", ")
                ),
            ))
        }
        (Some(wanted), Some(_)) => Ok(Some(wanted.clone())),
    }
}

/// The job's `identity` for the RunConfiguration's.
fn identity(rc: &RunConfigurationSpec) -> Option<IdentityConfiguration> {
    rc.identity.as_ref().map(|i| IdentityConfiguration {
        identity_type: match i.identity_type {
            RunIdentityType::AmlToken => "AMLToken",
            RunIdentityType::UserIdentity => "UserIdentity",
            RunIdentityType::Managed => "Managed",
        }
        .to_string(),
        client_id: i.client_id.clone(),
        resource_id: i.resource_id.clone(),
    })
}

/// The job's `queueSettings` for the RunConfiguration's.
fn queue_settings(rc: &RunConfigurationSpec) -> Option<QueueSettings> {
    rc.queue_settings.as_ref().map(|q| QueueSettings {
        job_tier: Some(
            match q.job_tier {
                JobTier::Spot => "Spot",
                JobTier::Basic => "Basic",
                JobTier::Standard => "Standard",
                JobTier::Premium => "Premium",
            }
            .to_string(),
        ),
    })
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
            instance_type: input.instance_type.clone(),
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
        identity: identity(rc),
        queue_settings: queue_settings(rc),
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

/// The one mapping of Azure ML job statuses onto run states (the reconciler decides what is
/// terminal, from [`RunState`] alone).
pub fn run_state(status: JobStatus) -> RunState {
    match status {
        JobStatus::NotStarted => RunState::NotStarted,
        JobStatus::Starting => RunState::Starting,
        JobStatus::Provisioning => RunState::Provisioning,
        JobStatus::Preparing => RunState::Preparing,
        JobStatus::Queued => RunState::Queued,
        JobStatus::Running => RunState::Running,
        JobStatus::Finalizing => RunState::Finalizing,
        JobStatus::CancelRequested => RunState::CancelRequested,
        JobStatus::Completed => RunState::Completed,
        JobStatus::Failed => RunState::Failed,
        JobStatus::Canceled => RunState::Canceled,
        JobStatus::NotResponding => RunState::NotResponding,
        JobStatus::Paused => RunState::Paused,
        JobStatus::Unknown => RunState::Unknown,
    }
}

/// Longest run error message kept in status (the log tail comes on top).
const MAX_ERROR_MESSAGE: usize = 1024;
/// Longest log tail put into a failed run's message.
pub const MAX_LOG_TAIL: usize = 2048;
/// At most this many run-history warnings are kept, each this long.
const MAX_WARNINGS: usize = 5;
const MAX_WARNING: usize = 300;

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut.
fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The run's error as run history reports it: the reason is the most specific code, the
/// message shows the whole chain (`UserError/ScriptExecution.StreamAccess.NotFound: ...`).
fn run_error(history: &HistoryRun) -> Option<ErrorInfo> {
    let root = history.error.as_ref()?.error.as_ref()?;
    let chain = root.code_chain();
    let specific = chain.last().map_or("RunFailed", String::as_str);
    let message = root.message.as_deref().unwrap_or("").trim();
    let codes = chain.join("/");
    Some(ErrorInfo {
        code: reason_code(specific),
        message: bounded(
            &scrub(&if codes.is_empty() {
                message.to_string()
            } else {
                format!("{codes}: {message}")
            }),
            MAX_ERROR_MESSAGE,
        ),
    })
}

/// The reconciler's view of a run: status, studio URL, snapshot and provenance from the ARM
/// job; start/end times, error and warnings from run history (the ARM job has none of them).
pub fn observed(job: &JobResource, history: Option<&HistoryRun>) -> ObservedRun {
    let JobProperties::Command(c) = &job.properties else {
        return ObservedRun::default();
    };
    let props = &c.base.properties;
    let state = c.status.map(run_state);
    let error = history.and_then(run_error).or_else(|| {
        // Failed without a run-history error: say so rather than inventing a cause.
        (state == Some(RunState::Failed)).then(|| ErrorInfo {
            code: "RunFailed".into(),
            message: "Azure ML reports the run as Failed without an error".into(),
        })
    });
    let warnings = history
        .map(|h| {
            h.warnings
                .iter()
                .filter_map(|w| w.message.as_deref())
                .take(MAX_WARNINGS)
                .map(|m| bounded(&scrub(m.trim()), MAX_WARNING))
                .collect()
        })
        .unwrap_or_default();
    ObservedRun {
        state,
        started_at: history.and_then(|h| h.start_time_utc),
        finished_at: history.and_then(|h| h.end_time_utc),
        error: error.filter(|_| state == Some(RunState::Failed)),
        warnings,
        studio_url: c.studio_url().map(str::to_string),
        logs: None,
        outputs: None,
        snapshot_id: props.get(SNAPSHOT_PROPERTY).cloned(),
        git: provenance(props),
    }
}

/// What run history is read for, given the job's state and what the status already holds:
/// nothing while the run waits, the run once it started (times), its details once it ended
/// (times, error, log files). A run whose end is recorded costs the job GET only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HistoryRead {
    Nothing,
    Run,
    Details,
}

fn history_read(state: Option<RunState>, recorded: Option<&RunStatus>) -> HistoryRead {
    let Some(state) = state else {
        return HistoryRead::Nothing;
    };
    if state.is_terminal() {
        // Read once, when the end is first seen: a failed read leaves the recorded state
        // as it was, so the next reconcile reads again.
        let recorded_end = recorded.is_some_and(|r| r.state == state.as_str());
        return if recorded_end {
            HistoryRead::Nothing
        } else {
            HistoryRead::Details
        };
    }
    let started = matches!(
        state,
        RunState::Running
            | RunState::Finalizing
            | RunState::CancelRequested
            | RunState::NotResponding
            | RunState::Paused
    );
    if started && recorded.is_none_or(|r| r.started_at.is_none()) {
        HistoryRead::Run
    } else {
        HistoryRead::Nothing
    }
}

/// The last lines of the run's `user_logs/std_log.txt`, at most [`MAX_LOG_TAIL`] bytes, with
/// secrets scrubbed. `None` when the run has no such log (or it cannot be read: the error
/// code and message are what matter, the tail is a courtesy).
async fn log_tail(client: &WorkspaceClient, run_id: &str, details: &HistoryRun) -> Option<String> {
    let url = details.log_files.get(USER_LOG)?;
    // The first bytes say how long the file is (training logs can be large: never read it all).
    let probe = client.read_log(url, 0, Some(MAX_LOG_TAIL as u64)).await;
    let chunk = match probe {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(run = run_id, error = %e, "cannot read the run's log");
            return None;
        }
    };
    let total = chunk.total.unwrap_or(chunk.bytes.len() as u64);
    let from = total.saturating_sub(MAX_LOG_TAIL as u64);
    let bytes = if from == 0 {
        chunk.bytes
    } else {
        client.read_log(url, from, None).await.ok()?.bytes
    };
    let text = String::from_utf8_lossy(&bytes);
    // Start at a line boundary unless the tail is one long line.
    let text = match (from > 0, text.find('\n')) {
        (true, Some(i)) if i + 1 < text.len() => &text[i + 1..],
        _ => &text[..],
    };
    let tail = scrub(text.trim_end());
    (!tail.is_empty()).then_some(tail)
}

/// The log file users read first, as Azure ML names it.
pub const USER_LOG: &str = "user_logs/std_log.txt";

/// One GET of the job with this id (`None`: never submitted), plus run history when the
/// status lacks what only it knows (see [`history_read`]). `recorded` is the run as the
/// status has it.
pub async fn observe(
    client: &WorkspaceClient,
    run_id: &str,
    recorded: Option<&RunStatus>,
) -> Result<Option<ObservedRun>, ActionFailure> {
    let fail = |e: AzureError| azure_failure(&e);
    let Some(job) = client.job_get(run_id).await.map_err(fail)? else {
        return Ok(None);
    };
    let state = match &job.properties {
        JobProperties::Command(c) => c.status.map(run_state),
        JobProperties::Other => None,
    };
    let history = match history_read(state, recorded) {
        HistoryRead::Nothing => None,
        HistoryRead::Run => client.run_get(run_id).await.map_err(fail)?,
        HistoryRead::Details => client.run_details(run_id).await.map_err(fail)?,
    };
    let mut seen = observed(&job, history.as_ref());
    if let (Some(details), Some(error)) = (&history, seen.error.as_mut())
        && let Some(tail) = log_tail(client, run_id, details).await
    {
        error.message = format!(
            "{}\n--- last lines of {USER_LOG} ---\n{tail}",
            error.message
        );
    }
    Ok(Some(seen))
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
        .map(|j| observed(&j, None))
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
                json!({"nodeCount": 2, "maxRunDurationSeconds": 600, "environmentVariables": {"A": "1"},
                       "identity": {"type": "Managed", "clientId": "00000000-0000-0000-0000-000000000001"},
                       "queueSettings": {"jobTier": "Spot"}}),
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
            instance_type: Some("gpu-small".into()),
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
        assert_eq!(p["resources"]["instanceType"], "gpu-small");
        assert_eq!(
            p["identity"],
            json!({"identityType": "Managed", "clientId": "00000000-0000-0000-0000-000000000001"})
        );
        assert_eq!(p["queueSettings"], json!({"jobTier": "Spot"}));
        assert_eq!(p["experimentName"], "train");
        assert_eq!(p["tags"]["team"], "vision");
        assert_eq!(p["tags"][UID_TAG], "u-1");
        assert_eq!(p["properties"][SNAPSHOT_PROPERTY], "snap");
        assert_eq!(p["properties"][GENERATION_PROPERTY], "3");
        assert_eq!(p["properties"]["azureml.git.commit"], "abc");
        assert_eq!(p["environmentVariables"]["A"], "1");
        // What Azure answers reads back as the same run (snapshot, provenance).
        let o = observed(&serde_json::from_value(v).unwrap(), None);
        assert_eq!(o.snapshot_id.as_deref(), Some("snap"));
        assert_eq!(o.git.unwrap().commit.as_deref(), Some("abc"));
    }

    #[test]
    fn instance_types_are_checked_against_the_kubernetes_target() {
        let target: ComputeTargetSpec = serde_json::from_value(json!({
            "workspaceRef": {"name": "ml"},
            "kubernetes": {"resourceId": "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerService/managedClusters/aks",
                           "instanceTypes": {"cpu-small": {}, "gpu-small": {}}, "defaultInstanceType": "cpu-small"}
        }))
        .unwrap();
        let aml: ComputeTargetSpec = serde_json::from_value(json!({
            "workspaceRef": {"name": "ml"},
            "amlCompute": {"vmSize": "STANDARD_D2_V2", "maxNodes": 1}
        }))
        .unwrap();
        let asks = |t: Option<&str>| {
            let mut r = rc(json!({}));
            r.instance_type = t.map(str::to_string);
            r
        };
        assert_eq!(
            instance_type(&asks(None), Some(&target))
                .unwrap()
                .as_deref(),
            Some("cpu-small")
        );
        assert_eq!(
            instance_type(&asks(Some("gpu-small")), Some(&target))
                .unwrap()
                .as_deref(),
            Some("gpu-small")
        );
        let unknown = instance_type(&asks(Some("tpu")), Some(&target)).unwrap_err();
        assert_eq!(unknown.reason, "UnknownInstanceType");
        assert!(
            unknown.message.contains("cpu-small, gpu-small"),
            "{unknown:?}"
        );
        assert_eq!(instance_type(&asks(None), Some(&aml)).unwrap(), None);
        let wrong = instance_type(&asks(Some("gpu-small")), Some(&aml)).unwrap_err();
        assert_eq!(wrong.reason, "InstanceTypeNotSupported");
    }

    #[test]
    fn a_recorded_new_job_is_starting_with_no_times_and_its_studio_link() {
        let job: JobResource =
            serde_json::from_value(crate::recorded::response("job_create_starting.json")).unwrap();
        let o = observed(&job, None);
        assert_eq!(o.state, Some(RunState::Starting));
        assert!(o.started_at.is_none() && o.error.is_none());
        assert!(
            o.studio_url
                .unwrap()
                .starts_with("https://ml.azure.com/runs/")
        );
    }

    #[test]
    fn a_failed_run_takes_times_error_chain_and_warnings_from_run_history() {
        let mut job = crate::recorded::response("job_create_starting.json");
        // The recorded job is Starting; the same resource once Azure marks it Failed (the
        // recorded Failed ARM job likewise has no times and no error).
        job["properties"]["status"] = json!("Failed");
        let job: JobResource = serde_json::from_value(job).unwrap();
        let history: HistoryRun = serde_json::from_value(
            crate::recorded::response("run_history_children.json")["value"][0].clone(),
        )
        .unwrap();
        let o = observed(&job, Some(&history));
        assert_eq!(o.state, Some(RunState::Failed));
        assert_eq!(
            o.started_at.unwrap().to_string(),
            "2026-02-27T20:40:16.3346637Z"
        );
        assert_eq!(
            o.finished_at.unwrap().to_string(),
            "2026-02-27T20:40:29.7401875Z"
        );
        let e = o.error.unwrap();
        assert_eq!(e.code, "ScriptExecutionStreamAccessAuthentication");
        assert!(
            e.message
                .starts_with("UserError/ScriptExecution.StreamAccess.Authentication: Error Code:"),
            "{}",
            e.message
        );
        assert!(e.message.len() <= MAX_ERROR_MESSAGE);
        assert_eq!(o.warnings.len(), 1);
        assert!(o.warnings[0].starts_with("AzureMLCompute job failed"));
        // Failed with no run-history error says so instead of inventing one.
        let o = observed(&job, None);
        assert_eq!(o.error.unwrap().code, "RunFailed");
    }

    #[test]
    fn every_job_status_maps_onto_the_run_state_of_the_same_name() {
        for name in [
            "NotStarted",
            "Starting",
            "Provisioning",
            "Preparing",
            "Queued",
            "Running",
            "Finalizing",
            "CancelRequested",
            "Completed",
            "Failed",
            "Canceled",
            "NotResponding",
            "Paused",
            "Unknown",
        ] {
            let status: JobStatus = serde_json::from_value(json!(name)).unwrap();
            assert_eq!(run_state(status).as_str(), name);
        }
        let odd: JobStatus = serde_json::from_value(json!("Hibernating")).unwrap();
        assert_eq!(run_state(odd), RunState::Unknown);
        assert!(!RunState::NotResponding.is_terminal() && !RunState::Paused.is_terminal());
    }

    #[test]
    fn run_history_is_read_when_a_run_starts_and_once_when_it_ends() {
        let recorded = |state: &str, started: bool| RunStatus {
            id: "r".into(),
            state: state.into(),
            started_at: started.then_some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::UNIX_EPOCH,
            )),
            ..RunStatus::default()
        };
        use HistoryRead::*;
        assert_eq!(history_read(Some(RunState::Queued), None), Nothing);
        assert_eq!(history_read(Some(RunState::Running), None), Run);
        assert_eq!(
            history_read(Some(RunState::Running), Some(&recorded("Running", false))),
            Run
        );
        assert_eq!(
            history_read(Some(RunState::Running), Some(&recorded("Running", true))),
            Nothing
        );
        assert_eq!(
            history_read(Some(RunState::Failed), Some(&recorded("Running", true))),
            Details
        );
        assert_eq!(
            history_read(Some(RunState::Failed), Some(&recorded("Failed", true))),
            Nothing
        );
        assert_eq!(history_read(Some(RunState::Completed), None), Details);
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
            instance_type: None,
        })
        .unwrap_err();
        assert_eq!(err.reason, "UnsupportedFramework");
    }
}
