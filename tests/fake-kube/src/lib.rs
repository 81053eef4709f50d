//! An in-process fake Kubernetes API server for scenario tests: plain HTTP on 127.0.0.1,
//! good enough for a real `kube::Client` and kube-runtime controllers. It serves:
//! - LIST and WATCH (newline-delimited events from a resourceVersion) with `labelSelector` and
//!   `fieldSelector`, GET, POST (with `generateName`), PUT, PATCH (merge, JSON patch,
//!   server-side apply), metadata-only (PartialObjectMetadata) lists and watches;
//! - the status subresource (amlops kinds, batch/v1 Jobs, core/v1 Pods), finalizers with
//!   deletionTimestamp, 409 conflicts, DELETE preconditions;
//! - `DeleteOptions.propagationPolicy` (Background, Foreground, Orphan; batch/v1 Jobs orphan
//!   their pods when none is named) and a garbage collector that deletes dependents whose
//!   owners are gone, through `ownerReferences`, `blockOwnerDeletion` included;
//! - batch/v1 Jobs as the apiserver stores them (defaults, generated selector and pod labels,
//!   restartPolicy/name/immutable-template validation) and the Job controller's suspension
//!   bookkeeping; the test drives everything else a Job does (`start_job`, `complete_job`,
//!   `fail_job`, `exceed_job_deadline`, `unsuspend_job`, `expire_job_ttl`): by default no Job
//!   runs by itself;
//! - `GET .../pods/{name}/log` (`container`, `follow`, `tailLines`, `limitBytes`) over logs the
//!   test writes (`append_pod_log`), streaming what is appended until the container stops.
//!
//! Every request is recorded (verb and resource as RBAC sees them, `pods/log` included) so a
//! test can hold the calls against the RBAC rules.

mod gc;
mod http;
mod job_controller;
mod job_spec;
mod merge;
mod pod_logs;
mod selector;
mod store;
mod strategy;

pub use gc::Propagation;
pub use store::{ApiError, Key};

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{broadcast, watch};

/// One request as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestRecord {
    /// get, list, watch, create, update, patch, delete.
    pub verb: String,
    /// API group, "" for core.
    pub group: String,
    /// Plural resource, with `/subresource` when there is one (e.g. `computetargets/status`).
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

pub(crate) struct Shared {
    store: Mutex<store::Store>,
    records: Mutex<Vec<RequestRecord>>,
    changed: broadcast::Sender<()>,
}

/// A running fake API server.
pub struct FakeKube {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

/// `group`/`resource` of an `apiVersion` + `kind` (plural = lowercase kind + "s", which holds
/// for every kind amlops touches).
pub fn key_of(api_version: &str, kind: &str, namespace: &str, name: &str) -> Key {
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    Key {
        group: group.to_string(),
        resource: format!("{}s", kind.to_ascii_lowercase()),
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

fn key_of_object(obj: &Value) -> Key {
    let s = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    key_of(
        &s("/apiVersion"),
        &s("/kind"),
        &s("/metadata/namespace"),
        &s("/metadata/name"),
    )
}

impl FakeKube {
    /// Binds a random port on 127.0.0.1 and serves until dropped.
    pub async fn start() -> std::io::Result<FakeKube> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (changed, _) = broadcast::channel(1024);
        let shared = Arc::new(Shared {
            store: Mutex::new(store::Store::default()),
            records: Mutex::new(Vec::new()),
            changed,
        });
        let (stop, mut stopped) = watch::channel(false);
        let app = http::router(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        });
        Ok(FakeKube { shared, addr, stop })
    }

    /// `http://127.0.0.1:PORT`, the cluster URL for a kube `Config`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with_store<T>(&self, f: impl FnOnce(&mut store::Store) -> T) -> T {
        let out = {
            let mut s = self.shared.store.lock().unwrap_or_else(|p| p.into_inner());
            let out = f(&mut s);
            settle(&mut s);
            out
        };
        let _ = self.shared.changed.send(());
        out
    }

    /// Creates an object as `kubectl create` would (not recorded).
    pub fn create(&self, obj: Value) -> Result<Value, ApiError> {
        let key = key_of_object(&obj);
        self.with_store(|s| s.create(&key, obj))
    }

    /// Merge-patches an object as a person would (not recorded).
    pub fn merge_patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        patch: Value,
    ) -> Result<Value, ApiError> {
        let key = key_of(api_version, kind, namespace, name);
        self.with_store(|s| s.patch(&key, patch, store::PatchKind::Merge, false, "kubectl"))
    }

    /// Deletes an object as `kubectl delete` would: background propagation (not recorded).
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.delete_with_propagation(api_version, kind, namespace, name, Propagation::Background)
    }

    /// Deletes an object as `kubectl delete --cascade=...` would (not recorded).
    pub fn delete_with_propagation(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        propagation: Propagation,
    ) -> Result<Value, ApiError> {
        let key = key_of(api_version, kind, namespace, name);
        let options = store::DeleteOptions {
            propagation: Some(propagation),
            ..store::DeleteOptions::default()
        };
        self.with_store(|s| s.delete(&key, &options))
    }

    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = key_of(api_version, kind, namespace, name);
        self.with_store(|s| s.get(&key).cloned())
    }

    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let k = key_of(api_version, kind, "", "");
        self.with_store(|s| s.list(&k.group, &k.resource, namespace))
    }

    /// The batch/v1 Jobs of a namespace.
    pub fn jobs(&self, namespace: &str) -> Vec<Value> {
        self.list("batch/v1", "Job", Some(namespace))
    }

    /// The Pods of a namespace.
    pub fn pods(&self, namespace: &str) -> Vec<Value> {
        self.list("v1", "Pod", Some(namespace))
    }

    /// Does what the Job controller, scheduler and kubelet do when a Job starts: creates its pod
    /// (named `<job>-<random>`, with the template's labels, owned by the Job) and marks it
    /// running and ready; the Job gets `startTime`, `active: 1`, `ready: 1`. Returns the pod's
    /// name. Refused for a suspended or finished Job, or one whose pod already runs.
    pub fn start_job(&self, namespace: &str, name: &str) -> Result<String, ApiError> {
        self.with_store(|s| job_controller::start(s, namespace, name))
    }

    /// The running pod's main container writes `log` and exits 0: the pod Succeeded, the Job
    /// gets `succeeded`, `SuccessCriteriaMet`, then `Complete` and `completionTime`.
    pub fn complete_job(&self, namespace: &str, name: &str, log: &str) -> Result<(), ApiError> {
        self.with_store(|s| job_controller::complete(s, namespace, name, log))
    }

    /// The running pod's main container writes `log` and exits with `exit_code` (not 0) and
    /// `termination_message` (empty: none; with `FallbackToLogsOnError` the log's tail); any
    /// other container stops with it. The
    /// pod Failed; the Job gets `failed` and, once more pods failed than `spec.backoffLimit`,
    /// `FailureTarget` then `Failed`, reason `BackoffLimitExceeded`; below the limit it waits
    /// for the next `start_job`, as the real controller would start a replacement.
    pub fn fail_job(
        &self,
        namespace: &str,
        name: &str,
        exit_code: i32,
        termination_message: &str,
        log: &str,
    ) -> Result<(), ApiError> {
        self.with_store(|s| {
            job_controller::fail(s, namespace, name, exit_code, termination_message, log)
        })
    }

    /// `spec.activeDeadlineSeconds` has passed for a started Job: its pods are deleted and it
    /// fails with reason `DeadlineExceeded`.
    pub fn exceed_job_deadline(&self, namespace: &str, name: &str) -> Result<(), ApiError> {
        self.with_store(|s| job_controller::exceed_deadline(s, namespace, name))
    }

    /// What Kueue does to admit a Job: `spec.suspend = false`. The Job gets `Suspended=False`
    /// (`JobResumed`) and a new `startTime`; its pod starts with `start_job`.
    pub fn unsuspend_job(&self, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.with_store(|s| job_controller::set_suspend(s, namespace, name, false))
    }

    /// What Kueue does to preempt a Job: `spec.suspend = true`. Its running pod is deleted and
    /// the Job gets `Suspended=True` (`JobSuspended`).
    pub fn suspend_job(&self, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.with_store(|s| job_controller::set_suspend(s, namespace, name, true))
    }

    /// The TTL-after-finished controller's deletion of a finished Job with
    /// `spec.ttlSecondsAfterFinished`: foreground, so its pods go first.
    pub fn expire_job_ttl(&self, namespace: &str, name: &str) -> Result<(), ApiError> {
        self.with_store(|s| job_controller::expire_ttl(s, namespace, name))
    }

    /// Appends to the log of the pod's first (main) container.
    pub fn append_pod_log(&self, namespace: &str, pod: &str, text: &str) -> Result<(), ApiError> {
        let key = key_of("v1", "Pod", namespace, pod);
        self.with_store(|s| pod_logs::append(s, &key, None, text))
    }

    /// Appends to the log of a named container (init containers included).
    pub fn append_container_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        text: &str,
    ) -> Result<(), ApiError> {
        let key = key_of("v1", "Pod", namespace, pod);
        self.with_store(|s| pod_logs::append(s, &key, Some(container), text))
    }

    /// Every API request the clients made, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .records
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    pub fn clear_requests(&self) {
        if let Ok(mut r) = self.shared.records.lock() {
            r.clear();
        }
    }
}

/// Lets the controllers the fake runs by itself (the garbage collector and the Job
/// controller's suspension bookkeeping) finish what the last write started.
pub(crate) fn settle(store: &mut store::Store) {
    // Each round either changes something or ends; the bound only guards against a bug.
    for _ in 0..100 {
        let suspension = job_controller::sync_suspension(store);
        let collected = gc::collect(store);
        if !suspension && !collected {
            break;
        }
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
