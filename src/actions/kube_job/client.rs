//! The API calls of cluster runs, in one namespace: create, observe and cancel a run's Job
//! and ConfigMap, read its pod's log. Every failure is typed: a missing RBAC grant names the
//! verb and resource, a refused object needs a human, an unreachable API server is retried.

use std::pin::Pin;

use futures::AsyncBufRead;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::manifest::{RUN_CONTAINER, job_owner};
use super::names::{RUN_LABEL, SNAPSHOT_ANNOTATION, job_name};
use super::state;
use crate::actions::{needs_human, transient};
use crate::azure::error::scrub;
use crate::reconcile::ActionFailure;
use crate::reconcile::experiment::ObservedRun;

/// Lines of the log read for a tail (the byte bound is applied to them).
const TAIL_LINES: i64 = 200;

/// A run's log, as `amlops logs` reads it.
pub type LogReader = Pin<Box<dyn AsyncBufRead + Send>>;

/// Runs as Jobs in one namespace (the Experiment's).
#[derive(Clone)]
pub struct KubeJobs {
    client: Client,
    namespace: String,
}

impl KubeJobs {
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
        }
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
    fn config_maps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn failure(&self, verb: &str, resource: &str, e: kube::Error) -> ActionFailure {
        kube_failure(verb, resource, &self.namespace, e)
    }

    async fn job(&self, name: &str) -> Result<Option<Job>, ActionFailure> {
        self.jobs()
            .get_opt(name)
            .await
            .map_err(|e| self.failure("get", "jobs.batch", e))
    }

    /// The Job and its current pod (`None` before the Job controller made one).
    async fn job_and_pod(&self, run_id: &str) -> Result<Option<(Job, Option<Pod>)>, ActionFailure> {
        let name = job_name(run_id);
        let Some(job) = self.job(&name).await? else {
            return Ok(None);
        };
        let selector = format!("{RUN_LABEL}={name}");
        let pods = self
            .pods()
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| self.failure("list", "pods", e))?;
        let pod = state::current_pod(&job, &pods.items).cloned();
        Ok(Some((job, pod)))
    }

    /// The run's state; `None` when no Job with its name exists (never submitted, or
    /// deleted).
    pub async fn observe(&self, run_id: &str) -> Result<Option<ObservedRun>, ActionFailure> {
        Ok(self
            .job_and_pod(run_id)
            .await?
            .map(|(job, pod)| state::observed(&job, pod.as_ref())))
    }

    /// Creates the run's ConfigMap, then its Job, then hands the ConfigMap to the Job. Exactly
    /// once across restarts: an existing Job (409) is the run already submitted; an existing
    /// ConfigMap of another snapshot (the source moved before the Job was created) is
    /// replaced, so the Job always unpacks the snapshot it names.
    pub async fn submit(&self, job: Job, config_map: ConfigMap) -> Result<(), ActionFailure> {
        let name = config_map.metadata.name.clone().unwrap_or_default();
        let post = PostParams::default();
        let config_maps = self.config_maps();
        match config_maps.create(&post, &config_map).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {
                if self.job(&name).await?.is_none() {
                    self.replace_if_other_snapshot(&config_map).await?;
                }
            }
            Err(e) => return Err(self.failure("create", "configmaps", e)),
        }
        let created = match self.jobs().create(&post, &job).await {
            Ok(created) => created,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.job(&name).await?.ok_or_else(|| {
                    transient(
                        "JobConflict",
                        format!("Job {name} exists and is gone again"),
                    )
                })?
            }
            Err(e) => return Err(self.failure("create", "jobs.batch", e)),
        };
        let Some(owner) = job_owner(&created) else {
            return Err(transient(
                "JobConflict",
                format!("the API server returned Job {name} without a uid"),
            ));
        };
        let patch = json!({"metadata": {"ownerReferences": [owner]}});
        match config_maps
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(self.failure("patch", "configmaps", e)),
        }
    }

    async fn replace_if_other_snapshot(&self, wanted: &ConfigMap) -> Result<(), ActionFailure> {
        let name = wanted.metadata.name.clone().unwrap_or_default();
        let snapshot = |cm: &ConfigMap| {
            cm.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(SNAPSHOT_ANNOTATION))
                .cloned()
        };
        let existing = self
            .config_maps()
            .get_opt(&name)
            .await
            .map_err(|e| self.failure("get", "configmaps", e))?;
        if existing.is_some_and(|cm| snapshot(&cm) == snapshot(wanted)) {
            return Ok(());
        }
        self.delete_config_map(&name).await?;
        self.config_maps()
            .create(&PostParams::default(), wanted)
            .await
            .map(drop)
            .map_err(|e| self.failure("create", "configmaps", e))
    }

    async fn delete_config_map(&self, name: &str) -> Result<(), ActionFailure> {
        match self
            .config_maps()
            .delete(name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(self.failure("delete", "configmaps", e)),
        }
    }

    /// Deletes the run's Job (its pod goes with it, in the background) and its ConfigMap,
    /// which Kubernetes would also collect once the Job is gone but which has no Job to
    /// go with when amlops stopped before creating it. Nothing to delete is success.
    pub async fn cancel(&self, run_id: &str) -> Result<(), ActionFailure> {
        let name = job_name(run_id);
        match self.jobs().delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(self.failure("delete", "jobs.batch", e)),
        }
        self.delete_config_map(&name).await
    }

    /// The last lines of the run's log (at most `max_bytes`, from a line start, secrets
    /// scrubbed); `None` while the run container has not started or when its pod is gone.
    pub async fn log_tail(
        &self,
        run_id: &str,
        max_bytes: usize,
    ) -> Result<Option<String>, ActionFailure> {
        let Some(pod) = self.pod_name(run_id).await? else {
            return Ok(None);
        };
        let params = LogParams {
            container: Some(RUN_CONTAINER.into()),
            tail_lines: Some(TAIL_LINES),
            ..LogParams::default()
        };
        let text = match self.pods().logs(&pod, &params).await {
            Ok(text) => text,
            // 400: the container is still waiting to start; 404: the pod is gone.
            Err(kube::Error::Api(s)) if matches!(s.code, 400 | 404) => return Ok(None),
            Err(e) => return Err(self.failure("get", "pods/log", e)),
        };
        let tail = tail(&text, max_bytes);
        Ok((!tail.is_empty()).then(|| scrub(tail)))
    }

    /// The run container's log as a stream (with `follow`, until the container ends);
    /// `None` while there is no pod whose run container started.
    pub async fn log_stream(
        &self,
        run_id: &str,
        follow: bool,
    ) -> Result<Option<LogReader>, ActionFailure> {
        let Some(pod) = self.pod_name(run_id).await? else {
            return Ok(None);
        };
        let params = LogParams {
            container: Some(RUN_CONTAINER.into()),
            follow,
            ..LogParams::default()
        };
        match self.pods().log_stream(&pod, &params).await {
            Ok(stream) => Ok(Some(Box::pin(stream))),
            Err(kube::Error::Api(s)) if matches!(s.code, 400 | 404) => Ok(None),
            Err(e) => Err(self.failure("get", "pods/log", e)),
        }
    }

    async fn pod_name(&self, run_id: &str) -> Result<Option<String>, ActionFailure> {
        Ok(self
            .job_and_pod(run_id)
            .await?
            .and_then(|(_, pod)| pod?.metadata.name))
    }
}

/// The end of `text`: at most `max_bytes`, starting at a line when it was cut.
fn tail(text: &str, max_bytes: usize) -> &str {
    let text = text.trim_end();
    if text.len() <= max_bytes {
        return text;
    }
    let mut start = text.len() - max_bytes;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    match cut.find('\n') {
        Some(i) if i + 1 < cut.len() => &cut[i + 1..],
        _ => cut,
    }
}

/// A failed API call as the status sees it. 403 names the missing grant (or the quota that
/// refused the object), 400/422 the refused object; anything else may pass on a retry.
pub fn kube_failure(verb: &str, resource: &str, namespace: &str, e: kube::Error) -> ActionFailure {
    let kube::Error::Api(s) = e else {
        return transient(
            "KubernetesUnavailable",
            format!(
                "{verb} {resource} in namespace {namespace}: {}",
                scrub(&e.to_string())
            ),
        );
    };
    let message = scrub(&s.message);
    match s.code {
        403 if message.contains("exceeded quota") => transient(
            "QuotaExceeded",
            format!("a ResourceQuota of namespace {namespace} refused the run: {message}"),
        ),
        403 => needs_human(
            "Forbidden",
            format!(
                "the operator may not {verb} {resource} in namespace {namespace}; grant it (the Helm chart does with controller.localJobs.enabled): {message}"
            ),
        ),
        400 | 422 => needs_human(
            "Invalid",
            format!("Kubernetes refused to {verb} {resource} in namespace {namespace}: {message}"),
        ),
        _ => transient(
            if s.reason.is_empty() {
                "KubernetesUnavailable"
            } else {
                s.reason.as_str()
            },
            format!("{verb} {resource} in namespace {namespace}: {message}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..kube::core::Status::default()
        }))
    }

    #[test]
    fn a_refused_call_names_the_missing_grant_and_a_quota_is_waited_for() {
        let f = kube_failure(
            "create",
            "jobs.batch",
            "ml",
            api_error(
                403,
                "Forbidden",
                "jobs.batch is forbidden: User \"system:serviceaccount:amlops-system:amlops\" cannot create resource \"jobs\"",
            ),
        );
        assert!(!f.retryable());
        assert_eq!(f.reason, "Forbidden");
        assert!(
            f.message
                .starts_with("the operator may not create jobs.batch in namespace ml"),
            "{}",
            f.message
        );
        let q = kube_failure(
            "create",
            "jobs.batch",
            "ml",
            api_error(
                403,
                "Forbidden",
                "exceeded quota: compute, requested: requests.nvidia.com/gpu=1",
            ),
        );
        assert!(q.retryable());
        assert_eq!(q.reason, "QuotaExceeded");
        let bad = kube_failure(
            "create",
            "configmaps",
            "ml",
            api_error(422, "Invalid", "Too long: must have at most 1048576 bytes"),
        );
        assert!(!bad.retryable() && bad.reason == "Invalid");
        let busy = kube_failure(
            "get",
            "jobs.batch",
            "ml",
            api_error(429, "TooManyRequests", "slow down"),
        );
        assert!(busy.retryable() && busy.reason == "TooManyRequests");
    }

    #[test]
    fn a_tail_starts_at_a_line_and_keeps_short_logs_whole() {
        assert_eq!(tail("a\nb\n", 100), "a\nb");
        assert_eq!(tail("first line\nsecond\nthird\n", 12), "third");
        assert_eq!(tail("one very long line", 4), "line");
        assert_eq!(tail("ééé", 3), "é");
    }
}
