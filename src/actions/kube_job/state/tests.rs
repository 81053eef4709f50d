use serde_json::{Value, json};

use super::*;

const T0: &str = "2026-12-01T10:00:00Z";
const T1: &str = "2026-12-01T10:00:05Z";
const T2: &str = "2026-12-01T10:01:17Z";

fn job(spec: Value, status: Value) -> Job {
    serde_json::from_value(json!({
        "metadata": {
            "name": "train-2-0123456789", "namespace": "ml", "uid": "job-uid",
            "labels": {"amlops.io/run-id": "train-2-0123456789"},
            "annotations": {
                "amlops.io/snapshot-id": "5f1e",
                "amlops.io/git": "{\"repositoryUri\":\"https://example.com/ml.git\",\"commit\":\"abc123\",\"dirty\":false}"
            }
        },
        "spec": merge(json!({"template": {}, "suspend": false}), spec),
        "status": status,
    }))
    .unwrap()
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    base
}

fn pod(status: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": "train-2-0123456789-x7k2p", "creationTimestamp": T0,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "train-2-0123456789", "uid": "job-uid"}]
        },
        "status": status,
    }))
    .unwrap()
}

fn condition(type_: &str, reason: &str, message: &str, at: &str) -> Value {
    json!({"type": type_, "status": "True", "reason": reason, "message": message, "lastTransitionTime": at})
}

fn terminated(exit: i32, reason: &str, message: &str) -> Value {
    json!({"terminated": {"exitCode": exit, "reason": reason, "message": message, "startedAt": T1, "finishedAt": T2}})
}

fn running_job() -> Job {
    job(json!({}), json!({"startTime": T0, "active": 1}))
}

fn failed_job(reason: &str) -> Job {
    job(
        json!({"activeDeadlineSeconds": 600}),
        json!({"startTime": T0, "failed": 1, "conditions": [condition("Failed", reason, "Job has reached the specified backoff limit", T2)]}),
    )
}

fn failed_pod(init: Value, run: Value) -> Pod {
    pod(json!({
        "phase": "Failed",
        "initContainerStatuses": [{"name": "unpack-source", "image": "python:3.12-slim", "imageID": "", "ready": false, "restartCount": 0, "state": init}],
        "containerStatuses": [{"name": "run", "image": "python:3.12-slim", "imageID": "", "ready": false, "restartCount": 0, "state": run}]
    }))
}

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

#[test]
fn a_job_kueue_has_not_admitted_is_queued_saying_so() {
    let mut j = job(json!({"suspend": true}), json!({}));
    j.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(KUEUE_QUEUE_LABEL.into(), "team-gpu".into());
    let o = observed(&j, None);
    assert_eq!(o.state, Some(RunState::Queued));
    assert_eq!(
        o.warnings,
        ["waiting for Kueue to admit the Job (LocalQueue team-gpu)"]
    );
    assert!(o.started_at.is_none() && o.error.is_none());
    let plain = observed(&job(json!({"suspend": true}), json!({})), None);
    assert_eq!(plain.warnings, ["the Job is suspended"]);
}

#[test]
fn a_job_without_a_pod_or_with_an_unscheduled_one_is_queued() {
    let o = observed(&running_job(), None);
    assert_eq!((o.state, o.warnings.len()), (Some(RunState::Queued), 0));
    let unscheduled = pod(json!({
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]
    }));
    let o = observed(&running_job(), Some(&unscheduled));
    assert_eq!(o.state, Some(RunState::Queued));
    assert_eq!(
        o.warnings,
        ["the pod is not scheduled: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."]
    );
}

#[test]
fn a_scheduled_pod_pulling_is_preparing_and_an_image_that_cannot_be_pulled_is_named() {
    let pulling = pod(json!({
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "initContainerStatuses": [{"name": "unpack-source", "image": "registry.example.com/py:9", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"registry.example.com/py:9\""}}}],
        "containerStatuses": [{"name": "run", "image": "registry.example.com/py:9", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "PodInitializing"}}}]
    }));
    let o = observed(&running_job(), Some(&pulling));
    assert_eq!(o.state, Some(RunState::Preparing));
    assert_eq!(
        o.warnings,
        [
            "the image registry.example.com/py:9 cannot be pulled: Back-off pulling image \"registry.example.com/py:9\""
        ]
    );
    assert!(o.started_at.is_none(), "preparing is not started");
}

#[test]
fn a_running_pod_is_running_since_its_container_started() {
    let running = pod(json!({
        "phase": "Running",
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "run", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
            "state": {"running": {"startedAt": T1}}}]
    }));
    let o = observed(&running_job(), Some(&running));
    assert_eq!(o.state, Some(RunState::Running));
    assert_eq!(o.started_at, Some(ts(T1)));
    assert!(o.warnings.is_empty() && o.finished_at.is_none());
    assert_eq!(
        o.logs.as_deref(),
        Some("kubectl logs -n ml job/train-2-0123456789")
    );
}

#[test]
fn a_complete_job_is_completed_with_times_snapshot_and_provenance() {
    let j = job(
        json!({}),
        json!({"startTime": T0, "completionTime": T2, "succeeded": 1,
               "conditions": [condition("SuccessCriteriaMet", "CompletionsReached", "", T2), condition("Complete", "CompletionsReached", "", T2)]}),
    );
    let done = pod(
        json!({"phase": "Succeeded", "containerStatuses": [{"name": "run", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": terminated(0, "Completed", "")}]}),
    );
    let o = observed(&j, Some(&done));
    assert_eq!(o.state, Some(RunState::Completed));
    assert_eq!((o.started_at, o.finished_at), (Some(ts(T1)), Some(ts(T2))));
    assert!(o.error.is_none());
    assert_eq!(o.snapshot_id.as_deref(), Some("5f1e"));
    assert_eq!(o.git.unwrap().commit.as_deref(), Some("abc123"));
    // Its pod already collected: the Job's own times.
    let o = observed(&j, None);
    assert_eq!((o.started_at, o.finished_at), (Some(ts(T0)), Some(ts(T2))));
}

#[test]
fn a_run_over_its_deadline_failed_with_timeout() {
    let o = observed(&failed_job("DeadlineExceeded"), None);
    assert_eq!(o.state, Some(RunState::Failed));
    let e = o.error.unwrap();
    assert_eq!(e.code, "Timeout");
    assert_eq!(
        e.message,
        "ran longer than maxRunDurationSeconds (600s) and was stopped"
    );
    assert_eq!(o.finished_at, Some(ts(T2)));
}

#[test]
fn a_failed_script_carries_its_exit_code_and_the_end_of_its_log_scrubbed() {
    let log = "epoch 1\nTraceback (most recent call last):\nValueError: bad url https://x.blob.core.windows.net/c?sv=1&sig=SECRET123";
    let p = failed_pod(terminated(0, "Completed", ""), terminated(2, "Error", log));
    let o = observed(&failed_job("BackoffLimitExceeded"), Some(&p));
    let e = o.error.unwrap();
    assert_eq!(e.code, "ExitCode");
    assert!(
        e.message
            .starts_with("the run exited with code 2; the log ends with:\nepoch 1\nTraceback"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("SECRET123"), "{}", e.message);
    assert_eq!((o.started_at, o.finished_at), (Some(ts(T1)), Some(ts(T2))));
}

#[test]
fn amlops_own_failures_keep_their_reason() {
    let p = failed_pod(
        terminated(0, "Completed", ""),
        terminated(
            1,
            "Error",
            "amlops:EnvironmentFailed: pip install failed; the log above says why",
        ),
    );
    let e = observed(&failed_job("BackoffLimitExceeded"), Some(&p))
        .error
        .unwrap();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        (
            "EnvironmentFailed",
            "pip install failed; the log above says why"
        )
    );
    let unpack = failed_pod(
        terminated(
            1,
            "Error",
            "amlops:SnapshotUnpackFailed: cannot unpack the source snapshot",
        ),
        json!({"waiting": {"reason": "PodInitializing"}}),
    );
    let e = observed(&failed_job("BackoffLimitExceeded"), Some(&unpack))
        .error
        .unwrap();
    assert_eq!(e.code, "SnapshotUnpackFailed");
    let crashed = failed_pod(
        terminated(139, "Error", "Segmentation fault"),
        json!({"waiting": {"reason": "PodInitializing"}}),
    );
    let e = observed(&failed_job("BackoffLimitExceeded"), Some(&crashed))
        .error
        .unwrap();
    assert_eq!(e.code, "SnapshotUnpackFailed");
    assert!(
        e.message
            .starts_with("unpacking the source snapshot exited with code 139"),
        "{}",
        e.message
    );
    // A user's log line that looks like ours but is not a reason stays the user's.
    let odd = failed_pod(
        terminated(0, "Completed", ""),
        terminated(1, "Error", "amlops:not a reason: x"),
    );
    assert_eq!(
        observed(&failed_job("BackoffLimitExceeded"), Some(&odd))
            .error
            .unwrap()
            .code,
        "ExitCode"
    );
}

#[test]
fn out_of_memory_and_eviction_are_named() {
    let p = failed_pod(
        terminated(0, "Completed", ""),
        terminated(137, "OOMKilled", "loading shard 3"),
    );
    let e = observed(&failed_job("BackoffLimitExceeded"), Some(&p))
        .error
        .unwrap();
    assert_eq!(e.code, "OOMKilled");
    assert!(
        e.message.contains("resources.limits.memory") && e.message.ends_with("loading shard 3")
    );
    let evicted = pod(
        json!({"phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: ephemeral-storage."}),
    );
    let e = observed(&failed_job("BackoffLimitExceeded"), Some(&evicted))
        .error
        .unwrap();
    assert_eq!(
        (e.code.as_str(), e.message.as_str()),
        (
            "Evicted",
            "The node was low on resource: ephemeral-storage."
        )
    );
    // No pod left to ask: the Job's own reason.
    let e = observed(&failed_job("BackoffLimitExceeded"), None)
        .error
        .unwrap();
    assert_eq!(e.code, "BackoffLimitExceeded");
}

#[test]
fn a_job_being_deleted_is_canceled_and_an_ended_pod_awaits_the_job_controller() {
    let mut j = running_job();
    j.metadata.deletion_timestamp = Some(Time(ts(T2)));
    let o = observed(&j, None);
    assert_eq!(o.state, Some(RunState::Canceled));
    assert!(o.error.is_none());
    let ended = pod(json!({"phase": "Succeeded"}));
    assert_eq!(
        observed(&running_job(), Some(&ended)).state,
        Some(RunState::Finalizing)
    );
}

#[test]
fn the_current_pod_is_the_newest_of_this_job() {
    let mut old = pod(json!({"phase": "Failed"}));
    let mut newer = pod(json!({"phase": "Running"}));
    newer.metadata.name = Some("newer".into());
    newer.metadata.creation_timestamp = Some(Time(ts(T2)));
    let mut stranger = pod(json!({"phase": "Running"}));
    stranger.metadata.name = Some("stranger".into());
    stranger.metadata.creation_timestamp = Some(Time(ts("2026-12-01T11:00:00Z")));
    stranger.metadata.owner_references.as_mut().unwrap()[0].uid =
        "earlier-job-of-the-same-name".into();
    old.metadata.name = Some("old".into());
    let pods = [old, newer, stranger];
    assert_eq!(
        current_pod(&running_job(), &pods).and_then(|p| p.metadata.name.as_deref()),
        Some("newer")
    );
    assert!(current_pod(&running_job(), &pods[2..]).is_none());
}
