//! The Job controller and kubelet, driven by the test: by default nothing runs a Job; a test
//! starts its pod, completes or fails it, or lets the deadline pass, and the Job's status
//! follows as the real controller writes it (Kubernetes 1.31+, JobPodReplacementPolicy and
//! JobSuccessPolicy on by default).
//!
//! Facts from https://kubernetes.io/docs/concepts/workloads/controllers/job/ ("Job termination
//! and cleanup", "Terminal Job conditions", "Suspending a Job"), the JobStatus API reference, and
//! pkg/controller/job/job_controller.go:
//! - a Job first gets the interim `SuccessCriteriaMet` / `FailureTarget` condition, and
//!   `Complete` / `Failed` (same reason and message) once its pods have terminated;
//! - success: reason `CompletionsReached`, message "Reached expected number of succeeded pods",
//!   and `completionTime` (set on success only);
//! - failure: `BackoffLimitExceeded` "Job has reached the specified backoff limit" once more
//!   pods failed than `spec.backoffLimit`; `DeadlineExceeded` "Job was active longer than
//!   specified deadline" when `activeDeadlineSeconds` passes, after the active pods are deleted;
//! - suspension: active pods are deleted and `Suspended` is True (`JobSuspended`, "Job
//!   suspended"); resuming sets it False (`JobResumed`, "Job resumed") and resets `startTime`;
//!   a Job created suspended has no `startTime` until it is resumed;
//! - `active` counts pending and running pods (omitted when 0), `ready` and `terminating` are
//!   always written, `uncountedTerminatedPods` is `{}` once pods are accounted for.
//!
//! Not modelled: a Job that is neither suspended nor started has an empty status (the real
//! controller would set `startTime` and create its pod at once), more than one pod at a time (parallelism, Indexed Jobs), the replacement pod
//! the real controller creates after a retryable failure (the test calls `start_job` again),
//! container restarts under `restartPolicy: OnFailure`, podFailurePolicy and successPolicy,
//! the job-tracking finalizer and graceful pod termination (a deleted pod goes at once).

use serde_json::{Value, json};

use crate::gc::Propagation;
use crate::store::{ApiError, DeleteOptions, Key, PatchKind, Store, now};
use crate::{pod_logs, strategy};

const SUCCEEDED_REASON: &str = "CompletionsReached";
const SUCCEEDED_MESSAGE: &str = "Reached expected number of succeeded pods";
const BACKOFF_REASON: &str = "BackoffLimitExceeded";
const BACKOFF_MESSAGE: &str = "Job has reached the specified backoff limit";
const DEADLINE_REASON: &str = "DeadlineExceeded";
const DEADLINE_MESSAGE: &str = "Job was active longer than specified deadline";

/// What a Job's terminal conditions say.
struct Outcome {
    interim: &'static str,
    terminal: &'static str,
    reason: &'static str,
    message: &'static str,
}

const SUCCEEDED: Outcome = Outcome {
    interim: "SuccessCriteriaMet",
    terminal: "Complete",
    reason: SUCCEEDED_REASON,
    message: SUCCEEDED_MESSAGE,
};

fn failed(reason: &'static str, message: &'static str) -> Outcome {
    Outcome {
        interim: "FailureTarget",
        terminal: "Failed",
        reason,
        message,
    }
}

fn job_key(namespace: &str, name: &str) -> Key {
    Key {
        group: "batch".into(),
        resource: "jobs".into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn pod_key(namespace: &str, name: &str) -> Key {
    Key {
        group: String::new(),
        resource: "pods".into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn conflict(key: &Key, why: &str) -> ApiError {
    ApiError::new(
        409,
        "Conflict",
        format!("job {}/{}: {why}", key.namespace, key.name),
    )
}

fn condition_is_true(job: &Value, kind: &str) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == kind && c["status"] == "True")
        })
}

fn finished(job: &Value) -> bool {
    condition_is_true(job, "Complete") || condition_is_true(job, "Failed")
}

fn suspended(job: &Value) -> bool {
    job.pointer("/spec/suspend") == Some(&json!(true))
}

/// Sets a condition of `kind` (replacing one of the same type), as ensureJobConditionStatus
/// does; the transition time moves only when the status changes.
fn set_condition(status: &mut Value, kind: &str, state: &str, reason: &str, message: &str) {
    let t = now();
    let mut conditions = status["conditions"].as_array().cloned().unwrap_or_default();
    let fresh = json!({"type": kind, "status": state, "reason": reason, "message": message,
                       "lastProbeTime": t, "lastTransitionTime": t});
    match conditions.iter_mut().find(|c| c["type"] == kind) {
        Some(c) if c["status"] == state => {
            c["reason"] = json!(reason);
            c["message"] = json!(message);
            c["lastProbeTime"] = json!(t);
        }
        Some(c) => *c = fresh,
        None => conditions.push(fresh),
    }
    status["conditions"] = json!(conditions);
}

fn count(status: &Value, field: &str) -> i64 {
    status[field].as_i64().unwrap_or(0)
}

/// The counters of a Job with no pod running: `active` is omitted when 0, as in the API.
fn idle(status: &mut Value) {
    if let Some(s) = status.as_object_mut() {
        s.remove("active");
    }
    status["ready"] = json!(0);
    status["terminating"] = json!(0);
    status["uncountedTerminatedPods"] = json!({});
}

/// Writes the Job's status through the status subresource, as the controller does.
fn write_status(
    store: &mut Store,
    key: &Key,
    edit: impl FnOnce(&mut Value),
) -> Result<Value, ApiError> {
    let mut job = store.get(key).cloned().ok_or_else(|| not_found(key))?;
    if !job["status"].is_object() {
        job["status"] = json!({});
    }
    edit(&mut job["status"]);
    store.update(key, job, true)
}

fn not_found(key: &Key) -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        format!("jobs.batch {:?} not found", key.name),
    )
}

fn job(store: &Store, namespace: &str, name: &str) -> Result<(Key, Value), ApiError> {
    let key = job_key(namespace, name);
    let job = store.get(&key).cloned().ok_or_else(|| not_found(&key))?;
    Ok((key, job))
}

/// Pods the Job controls that are pending or running and not being deleted.
fn active_pods(store: &Store, job: &Value) -> Vec<(Key, Value)> {
    let uid = job.pointer("/metadata/uid").and_then(Value::as_str);
    store
        .objects()
        .filter(|(k, p)| {
            strategy::is_pod(k)
                && p.pointer("/metadata/deletionTimestamp").is_none()
                && !matches!(
                    p.pointer("/status/phase").and_then(Value::as_str),
                    Some("Succeeded" | "Failed")
                )
                && p.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| r["uid"].as_str() == uid && r["controller"] == json!(true))
                    })
        })
        .map(|(k, p)| (k.clone(), p.clone()))
        .collect()
}

fn delete_pods(store: &mut Store, pods: &[(Key, Value)]) {
    let options = DeleteOptions {
        propagation: Some(Propagation::Background),
        ..DeleteOptions::default()
    };
    for (k, _) in pods {
        let _ = store.delete(k, &options);
    }
}

/// The one running pod of a runnable Job, or why there is none.
fn running_pod(store: &Store, key: &Key, job: &Value) -> Result<(Key, Value), ApiError> {
    if finished(job) {
        return Err(conflict(key, "the Job has finished"));
    }
    active_pods(store, job)
        .into_iter()
        .next()
        .ok_or_else(|| conflict(key, "the Job has no running pod (call start_job first)"))
}

/// Writes the interim condition, then the terminal one once the pods are gone, as two status
/// updates so watchers see both.
fn finish(store: &mut Store, key: &Key, outcome: &Outcome) -> Result<(), ApiError> {
    write_status(store, key, |s| {
        idle(s);
        set_condition(s, outcome.interim, "True", outcome.reason, outcome.message);
    })?;
    write_status(store, key, |s| {
        set_condition(s, outcome.terminal, "True", outcome.reason, outcome.message);
        if outcome.terminal == "Complete" {
            s["completionTime"] = json!(now());
        }
    })?;
    Ok(())
}

/// What the controller does on its own, without pods: it acknowledges suspension and
/// resumption. True when it changed something.
pub fn sync_suspension(store: &mut Store) -> bool {
    let jobs: Vec<(Key, Value)> = store
        .objects()
        .filter(|(k, j)| {
            strategy::is_job(k)
                && !finished(j)
                && j.pointer("/metadata/deletionTimestamp").is_none()
        })
        .map(|(k, j)| (k.clone(), j.clone()))
        .collect();
    let mut changed = false;
    for (key, job) in jobs {
        if suspended(&job) {
            let active = active_pods(store, &job);
            let acknowledged = condition_is_true(&job, "Suspended") && active.is_empty();
            if acknowledged {
                continue;
            }
            delete_pods(store, &active);
            let _ = write_status(store, &key, |s| {
                idle(s);
                set_condition(s, "Suspended", "True", "JobSuspended", "Job suspended");
            });
            changed = true;
        } else if condition_is_true(&job, "Suspended") {
            let _ = write_status(store, &key, |s| {
                set_condition(s, "Suspended", "False", "JobResumed", "Job resumed");
                s["startTime"] = json!(now());
            });
            changed = true;
        }
    }
    changed
}

/// The pod the controller creates from the Job's template: named `<job>-<random>`, labelled
/// with the template's labels (which carry the job name and controller uid), owned by the Job
/// as its controller, scheduled on a fake node.
fn pod_for(job: &Value) -> Value {
    let template = &job["spec"]["template"];
    let mut spec = template["spec"].clone();
    spec["nodeName"] = json!("fake-node");
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": format!("{}-", job["metadata"]["name"].as_str().unwrap_or_default()),
            "namespace": job["metadata"]["namespace"],
            "labels": template["metadata"]["labels"],
            "annotations": template["metadata"].get("annotations").cloned().unwrap_or(json!({})),
            "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "Job",
                "name": job["metadata"]["name"], "uid": job["metadata"]["uid"],
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
    })
}

fn names(pod: &Value, list: &str) -> Vec<(String, String)> {
    pod["spec"][list]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap_or_default().to_string(),
                        c["image"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pod_condition(kind: &str, state: &str, reason: Option<&str>) -> Value {
    let mut c =
        json!({"type": kind, "status": state, "lastProbeTime": null, "lastTransitionTime": now()});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    c
}

/// A running pod's status: init containers done, every container running and ready.
fn running_status(pod: &Value) -> Value {
    let t = now();
    let init: Vec<Value> = names(pod, "initContainers")
        .into_iter()
        .map(|(name, image)| json!({"name": name, "image": image, "imageID": "", "ready": true, "restartCount": 0, "started": false,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": t, "finishedAt": t}}}))
        .collect();
    let containers: Vec<Value> = names(pod, "containers")
        .into_iter()
        .map(|(name, image)| json!({"name": name, "image": image, "imageID": "", "ready": true, "restartCount": 0, "started": true,
            "state": {"running": {"startedAt": t}}}))
        .collect();
    let conditions: Vec<Value> = ["PodScheduled", "Initialized", "ContainersReady", "Ready"]
        .iter()
        .map(|k| pod_condition(k, "True", None))
        .collect();
    json!({
        "phase": "Running",
        "startTime": t,
        "hostIP": "10.0.0.1",
        "podIP": "10.244.0.10",
        "qosClass": pod["status"]["qosClass"],
        "conditions": conditions,
        "initContainerStatuses": init,
        "containerStatuses": containers,
    })
}

/// Ends the pod's containers: `exit_code` 0 completes it, anything else fails it with the
/// termination message.
fn terminate_pod(
    store: &mut Store,
    key: &Key,
    exit_code: i32,
    message: &str,
) -> Result<(), ApiError> {
    let mut pod = store
        .get(key)
        .cloned()
        .ok_or_else(|| ApiError::new(404, "NotFound", format!("pods {:?} not found", key.name)))?;
    let t = now();
    let (phase, reason, why_not_ready) = if exit_code == 0 {
        ("Succeeded", "Completed", "PodCompleted")
    } else {
        ("Failed", "Error", "PodFailed")
    };
    let status = &mut pod["status"];
    status["phase"] = json!(phase);
    for c in status["containerStatuses"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        let started = c
            .pointer("/state/running/startedAt")
            .cloned()
            .unwrap_or(json!(t));
        let mut terminated =
            json!({"exitCode": exit_code, "reason": reason, "startedAt": started, "finishedAt": t});
        if !message.is_empty() {
            terminated["message"] = json!(message);
        }
        c["state"] = json!({"terminated": terminated});
        c["ready"] = json!(false);
        c["started"] = json!(false);
    }
    for c in status["conditions"].as_array_mut().into_iter().flatten() {
        if c["type"] == "Ready" || c["type"] == "ContainersReady" {
            *c = pod_condition(
                c["type"].as_str().unwrap_or_default(),
                "False",
                Some(why_not_ready),
            );
        }
    }
    store.update(key, pod, true).map(|_| ())
}

/// Runs the Job's pod: creates it from the template and marks it running and ready; the Job
/// gets `startTime` (unless it has one), `active: 1`, `ready: 1`. Returns the pod's name.
pub fn start(store: &mut Store, namespace: &str, name: &str) -> Result<String, ApiError> {
    let (key, job) = job(store, namespace, name)?;
    if finished(&job) {
        return Err(conflict(&key, "the Job has finished"));
    }
    if suspended(&job) {
        return Err(conflict(
            &key,
            "the Job is suspended (spec.suspend: true) and runs no pod until it is resumed, e.g. by unsuspend_job as Kueue does",
        ));
    }
    if let Some((p, _)) = active_pods(store, &job).first() {
        return Err(conflict(
            &key,
            &format!("the Job already runs pod {}", p.name),
        ));
    }
    let created = store.create(&pod_key(namespace, ""), pod_for(&job))?;
    let pod_name = created["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pk = pod_key(namespace, &pod_name);
    let mut running = created.clone();
    running["status"] = running_status(&created);
    store.update(&pk, running, true)?;
    write_status(store, &key, |s| {
        if s.get("startTime").is_none_or(Value::is_null) {
            s["startTime"] = json!(now());
        }
        idle(s);
        s["active"] = json!(1);
        s["ready"] = json!(1);
    })?;
    Ok(pod_name)
}

/// The pod's main container exits 0 after writing `log`; the Job completes.
pub fn complete(store: &mut Store, namespace: &str, name: &str, log: &str) -> Result<(), ApiError> {
    let (key, job) = job(store, namespace, name)?;
    let (pk, _) = running_pod(store, &key, &job)?;
    pod_logs::append(store, &pk, None, log)?;
    terminate_pod(store, &pk, 0, "")?;
    let succeeded = count(&job["status"], "succeeded") + 1;
    let completions = job
        .pointer("/spec/completions")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    write_status(store, &key, |s| {
        idle(s);
        s["succeeded"] = json!(succeeded);
    })?;
    if succeeded >= completions {
        finish(store, &key, &SUCCEEDED)?;
    }
    Ok(())
}

/// The pod's main container writes `log` and exits with `exit_code` and the termination
/// message; the Job fails once more pods failed than `spec.backoffLimit`, else it waits for
/// the next `start_job`.
pub fn fail(
    store: &mut Store,
    namespace: &str,
    name: &str,
    exit_code: i32,
    termination_message: &str,
    log: &str,
) -> Result<(), ApiError> {
    if exit_code == 0 {
        return Err(ApiError::new(
            400,
            "BadRequest",
            "exit code 0 is a success: use complete_job",
        ));
    }
    let (key, job) = job(store, namespace, name)?;
    let (pk, pod) = running_pod(store, &key, &job)?;
    pod_logs::append(store, &pk, None, log)?;
    let main = pod.pointer("/spec/containers/0");
    let policy = main
        .and_then(|c| c["terminationMessagePolicy"].as_str())
        .unwrap_or("File");
    let whole_log = pod_logs::text(store, &pk, None);
    let message = pod_logs::termination_message(termination_message, policy, &whole_log);
    terminate_pod(store, &pk, exit_code, &message)?;
    let failed_pods = count(&job["status"], "failed") + 1;
    let backoff_limit = job
        .pointer("/spec/backoffLimit")
        .and_then(Value::as_i64)
        .unwrap_or(6);
    write_status(store, &key, |s| {
        idle(s);
        s["failed"] = json!(failed_pods);
    })?;
    if failed_pods > backoff_limit {
        finish(store, &key, &failed(BACKOFF_REASON, BACKOFF_MESSAGE))?;
    }
    Ok(())
}

/// `spec.activeDeadlineSeconds` has passed: the active pods are deleted (and count as failed)
/// and the Job fails with `DeadlineExceeded`.
pub fn exceed_deadline(store: &mut Store, namespace: &str, name: &str) -> Result<(), ApiError> {
    let (key, job) = job(store, namespace, name)?;
    if job.pointer("/spec/activeDeadlineSeconds").is_none() {
        return Err(conflict(&key, "the Job has no spec.activeDeadlineSeconds"));
    }
    if finished(&job) {
        return Err(conflict(&key, "the Job has finished"));
    }
    if suspended(&job) || job.pointer("/status/startTime").is_none() {
        return Err(conflict(
            &key,
            "the deadline runs from status.startTime, which a suspended or never started Job does not count",
        ));
    }
    let active = active_pods(store, &job);
    delete_pods(store, &active);
    let failed_pods = count(&job["status"], "failed") + active.len() as i64;
    write_status(store, &key, |s| {
        s["failed"] = json!(failed_pods);
    })?;
    finish(store, &key, &failed(DEADLINE_REASON, DEADLINE_MESSAGE))
}

/// Sets `spec.suspend`, as Kueue does to admit (false) or preempt (true) a Job; the controller's
/// reaction follows in `sync_suspension`.
pub fn set_suspend(
    store: &mut Store,
    namespace: &str,
    name: &str,
    suspend: bool,
) -> Result<Value, ApiError> {
    let key = job_key(namespace, name);
    store.patch(
        &key,
        json!({"spec": {"suspend": suspend}}),
        PatchKind::Merge,
        false,
        "kueue",
    )
}

/// The TTL-after-finished controller: a finished Job with `spec.ttlSecondsAfterFinished` is
/// deleted in the foreground once the TTL passes (pkg/controller/ttlafterfinished).
pub fn expire_ttl(store: &mut Store, namespace: &str, name: &str) -> Result<(), ApiError> {
    let (key, job) = job(store, namespace, name)?;
    if job.pointer("/spec/ttlSecondsAfterFinished").is_none() {
        return Err(conflict(
            &key,
            "the Job has no spec.ttlSecondsAfterFinished",
        ));
    }
    if !finished(&job) {
        return Err(conflict(
            &key,
            "the TTL runs from the end of the Job, which has not finished",
        ));
    }
    let options = DeleteOptions {
        propagation: Some(Propagation::Foreground),
        uid: job
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(String::from),
        resource_version: None,
    };
    store.delete(&key, &options).map(|_| ())
}
