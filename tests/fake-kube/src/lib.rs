//! An in-process fake Kubernetes API server for scenario tests: plain HTTP on 127.0.0.1,
//! good enough for a real `kube::Client` and kube-runtime controllers. It serves LIST and
//! WATCH (newline-delimited events from a resourceVersion), GET, POST, PUT, PATCH (merge,
//! JSON patch, server-side apply), the status subresource, finalizers with deletionTimestamp,
//! 409 conflicts, metadata-only (PartialObjectMetadata) lists and watches, and records every
//! request so a test can hold the calls against the RBAC rules.

mod http;
mod merge;
mod store;

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
            f(&mut s)
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

    /// Deletes an object as `kubectl delete` would (not recorded).
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = key_of(api_version, kind, namespace, name);
        self.with_store(|s| s.delete(&key))
    }

    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = key_of(api_version, kind, namespace, name);
        self.with_store(|s| s.get(&key).cloned())
    }

    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let k = key_of(api_version, kind, "", "");
        self.with_store(|s| s.list(&k.group, &k.resource, namespace))
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

impl Drop for FakeKube {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
