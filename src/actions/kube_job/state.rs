//! A run's Job and pod, read back as the reconciler's [`ObservedRun`]. Pure.
//!
//! | what Kubernetes shows | run state |
//! |---|---|
//! | Job suspended (Kueue has not admitted it), or no pod yet, or the pod not scheduled | Queued |
//! | pod scheduled, containers not running yet (image pull, unpacking the source) | Preparing |
//! | pod running | Running |
//! | pod ended, Job not marked yet | Finalizing |
//! | Job condition `Complete` | Completed |
//! | Job condition `Failed` | Failed, with the error below |
//! | Job being deleted | Canceled |
//!
//! A failed run's error code is `Timeout` when `activeDeadlineSeconds` (maxRunDurationSeconds)
//! ran out, the reason amlops' own scripts wrote (`amlops:<Reason>: ...`), `OOMKilled`, or
//! `ExitCode` with the container's termination message — with `FallbackToLogsOnError` that
//! is the end of its log. What keeps a run waiting (Kueue, the scheduler, an image that
//! cannot be pulled) is a warning on the run.

use k8s_openapi::api::batch::v1::{Job, JobCondition};
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::manifest::{RUN_CONTAINER, UNPACK_CONTAINER};
use super::names::{GIT_ANNOTATION, KUEUE_QUEUE_LABEL, SNAPSHOT_ANNOTATION};
use crate::api::ErrorInfo;
use crate::azure::error::scrub;
use crate::reconcile::experiment::{ObservedRun, RunState};

/// Each warning is cut to this many characters (the status documents the bound).
const MAX_WARNING: usize = 300;

/// Waiting reasons of a container that need a person rather than patience.
const STUCK: [&str; 5] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// The pod of `job` among `pods`: owned by this Job (not an earlier one of the same name),
/// the newest if several.
pub fn current_pod<'a>(job: &Job, pods: &'a [Pod]) -> Option<&'a Pod> {
    let uid = job.metadata.uid.as_deref()?;
    pods.iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The reconciler's view of a run from its Job and (when there is one) its pod.
pub fn observed(job: &Job, pod: Option<&Pod>) -> ObservedRun {
    let complete = condition(job, "Complete");
    let failed = condition(job, "Failed");
    let run = pod.and_then(|p| container(p, RUN_CONTAINER, false));
    let run_ended = run.and_then(terminated);
    let state = if complete.is_some() {
        RunState::Completed
    } else if failed.is_some() {
        RunState::Failed
    } else if job.metadata.deletion_timestamp.is_some() {
        RunState::Canceled
    } else if suspended(job) {
        RunState::Queued
    } else {
        pod_state(pod)
    };
    let started = run
        .and_then(|c| c.state.as_ref())
        .and_then(|s| {
            s.running
                .as_ref()
                .and_then(|r| r.started_at.clone())
                .or_else(|| s.terminated.as_ref().and_then(|t| t.started_at.clone()))
        })
        .or_else(|| {
            let begun = !matches!(state, RunState::Queued | RunState::Preparing);
            job.status
                .as_ref()
                .and_then(|s| s.start_time.clone())
                .filter(|_| begun)
        });
    let finished = state
        .is_terminal()
        .then(|| {
            run_ended.and_then(|t| t.finished_at.clone()).or_else(|| {
                let end = complete.or(failed)?;
                job.status
                    .as_ref()
                    .and_then(|s| s.completion_time.clone())
                    .or_else(|| end.last_transition_time.clone())
            })
        })
        .flatten();
    let annotation = |key: &str| {
        job.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
    };
    ObservedRun {
        state: Some(state),
        started_at: started.map(|t: Time| t.0),
        finished_at: finished.map(|t: Time| t.0),
        error: failed.map(|c| failure(job, c, pod)),
        warnings: if state.is_terminal() {
            Vec::new()
        } else {
            warnings(job, pod)
        },
        studio_url: None,
        logs: Some(format!(
            "kubectl logs -n {} job/{}",
            job.metadata.namespace.as_deref().unwrap_or("default"),
            job.metadata.name.as_deref().unwrap_or_default()
        )),
        outputs: None,
        snapshot_id: annotation(SNAPSHOT_ANNOTATION),
        git: annotation(GIT_ANNOTATION).and_then(|g| serde_json::from_str(&g).ok()),
    }
}

fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
}

fn suspended(job: &Job) -> bool {
    job.spec.as_ref().and_then(|s| s.suspend) == Some(true)
}

fn container<'a>(pod: &'a Pod, name: &str, init: bool) -> Option<&'a ContainerStatus> {
    let status = pod.status.as_ref()?;
    let list = if init {
        &status.init_container_statuses
    } else {
        &status.container_statuses
    };
    list.iter().flatten().find(|c| c.name == name)
}

fn terminated(c: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    c.state.as_ref()?.terminated.as_ref()
}

/// The state of a Job that runs (neither finished nor suspended), from its pod.
fn pod_state(pod: Option<&Pod>) -> RunState {
    let Some(status) = pod.and_then(|p| p.status.as_ref()) else {
        return RunState::Queued;
    };
    match status.phase.as_deref() {
        Some("Pending") if scheduled(pod) => RunState::Preparing,
        Some("Pending") | None => RunState::Queued,
        Some("Running") => RunState::Running,
        Some("Succeeded" | "Failed") => RunState::Finalizing,
        Some(_) => RunState::Unknown,
    }
}

fn scheduled(pod: Option<&Pod>) -> bool {
    pod_condition(pod, "PodScheduled").is_some_and(|c| c.status == "True")
}

fn pod_condition<'a>(
    pod: Option<&'a Pod>,
    type_: &str,
) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod?.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// Why a run that has not finished is not running yet, in words for the status.
fn warnings(job: &Job, pod: Option<&Pod>) -> Vec<String> {
    let mut out = Vec::new();
    if suspended(job) {
        let queue = job
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(KUEUE_QUEUE_LABEL));
        out.push(match queue {
            Some(q) => format!("waiting for Kueue to admit the Job (LocalQueue {q})"),
            None => "the Job is suspended".to_string(),
        });
        return out;
    }
    if let Some(c) = pod_condition(pod, "PodScheduled").filter(|c| c.status == "False") {
        out.push(format!(
            "the pod is not scheduled: {}",
            c.message
                .as_deref()
                .or(c.reason.as_deref())
                .unwrap_or("no reason given")
        ));
    }
    let statuses = pod
        .and_then(|p| p.status.as_ref())
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        });
    for c in statuses {
        let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        let reason = w.reason.as_deref().unwrap_or_default();
        if !STUCK.contains(&reason) {
            continue;
        }
        let detail = w.message.as_deref().unwrap_or(reason);
        out.push(if reason.contains("Image") {
            format!("the image {} cannot be pulled: {detail}", c.image)
        } else {
            format!("container {} cannot start: {reason}: {detail}", c.name)
        });
    }
    out.into_iter()
        .map(|w| scrub(&w).chars().take(MAX_WARNING).collect())
        .collect()
}

/// The error of a failed run.
fn failure(job: &Job, failed: &JobCondition, pod: Option<&Pod>) -> ErrorInfo {
    let error = |code: &str, message: String| ErrorInfo {
        code: code.to_string(),
        message: scrub(message.trim()),
    };
    if failed.reason.as_deref() == Some("DeadlineExceeded") {
        let limit = job
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds)
            .unwrap_or_default();
        return error(
            "Timeout",
            format!("ran longer than maxRunDurationSeconds ({limit}s) and was stopped"),
        );
    }
    if let Some(status) = pod.and_then(|p| p.status.as_ref())
        && let Some(reason) = status.reason.as_deref()
    {
        // The pod itself was failed by the kubelet (e.g. Evicted for node pressure).
        let message = status.message.clone().unwrap_or_default();
        return error(reason, message);
    }
    let ended = |name: &str, init: bool| {
        pod.and_then(|p| container(p, name, init))
            .and_then(terminated)
            .filter(|t| t.exit_code != 0)
    };
    if let Some(t) = ended(UNPACK_CONTAINER, true) {
        return container_failure(t, "SnapshotUnpackFailed", "unpacking the source snapshot");
    }
    if let Some(t) = ended(RUN_CONTAINER, false) {
        return container_failure(t, "ExitCode", "the run");
    }
    error(
        failed.reason.as_deref().unwrap_or("RunFailed"),
        failed
            .message
            .clone()
            .unwrap_or_else(|| "the Job failed".to_string()),
    )
}

/// A container that ended with a non-zero exit code: amlops' own reason when its scripts
/// wrote one, else the exit code (or OOMKilled) and what the log ended with.
fn container_failure(t: &ContainerStateTerminated, code: &str, what: &str) -> ErrorInfo {
    let message = t.message.as_deref().unwrap_or_default().trim();
    let own = message
        .strip_prefix("amlops:")
        .and_then(|rest| rest.split_once(": "))
        .filter(|(reason, _)| {
            !reason.is_empty() && reason.chars().all(|c| c.is_ascii_alphanumeric())
        });
    let (code, message) = match (own, t.reason.as_deref()) {
        (Some((reason, text)), _) => (reason.to_string(), text.to_string()),
        (None, Some("OOMKilled")) => (
            "OOMKilled".to_string(),
            format!(
                "{what} ran out of memory (exit code {}); raise resources.limits.memory of the ComputeTarget; the log ends with:\n{message}",
                t.exit_code
            ),
        ),
        (None, _) => (
            code.to_string(),
            format!(
                "{what} exited with code {}; the log ends with:\n{message}",
                t.exit_code
            ),
        ),
    };
    ErrorInfo {
        code,
        message: scrub(message.trim()),
    }
}

#[cfg(test)]
mod tests;
