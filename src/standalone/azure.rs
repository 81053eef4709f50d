//! Azure for `amlops apply`: the same Connector, credentials (including the Azure CLI user)
//! and compute actions as the controller, driven from the standalone store.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::store::{Key, Store, StoreError};
use crate::actions::compute::{Converged, converge};
use crate::actions::credentials::Frontend;
use crate::actions::secrets::text_value;
use crate::actions::workspace::{Connector, discover};
use crate::actions::{SecretError, SecretSource};
use crate::api::Workspace;
use crate::azure::{ArmConfig, Secret, WorkspaceClient};
use crate::reconcile::ActionFailure;
use crate::reconcile::compute_target::Input;

/// The Secrets of one namespace, read from the store before an Azure call (the store's
/// SQLite connection cannot be shared with async tasks). Values never leave this map
/// except inside [`Secret`].
pub struct StoredSecrets {
    namespace: String,
    secrets: BTreeMap<String, Value>,
}

impl StoredSecrets {
    pub fn load(store: &Store, namespace: &str) -> Result<Self, StoreError> {
        let secrets = store
            .list(Some("Secret"))?
            .into_iter()
            .filter(|(k, _)| k.namespace == namespace)
            .map(|(k, v)| (k.name, v))
            .collect();
        Ok(Self {
            namespace: namespace.to_string(),
            secrets,
        })
    }

    /// One key of one Secret, as text.
    pub fn value(&self, name: &str, key: &str) -> Result<Secret, SecretError> {
        let err = |e: fn(String, String, String) -> SecretError| {
            e(self.namespace.clone(), name.to_string(), key.to_string())
        };
        let secret = self.secrets.get(name).ok_or_else(|| {
            err(|namespace, name, key| SecretError::NotFound {
                namespace,
                name,
                key,
            })
        })?;
        if let Some(v) = secret["stringData"][key].as_str() {
            return text_value(v.as_bytes().to_vec(), &self.namespace, name, key);
        }
        let encoded = secret["data"][key].as_str().ok_or_else(|| {
            err(|namespace, name, key| SecretError::KeyMissing {
                namespace,
                name,
                key,
            })
        })?;
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded)
            .map_err(|_| {
                err(|namespace, name, key| SecretError::NotText {
                    namespace,
                    name,
                    key,
                })
            })?;
        text_value(bytes, &self.namespace, name, key)
    }
}

impl SecretSource for StoredSecrets {
    fn secret_value(
        &self,
        name: &str,
        key: &str,
    ) -> impl Future<Output = Result<Secret, SecretError>> + Send {
        std::future::ready(self.value(name, key))
    }

    fn secret_version(&self, name: &str) -> impl Future<Output = Option<String>> + Send {
        let version = self.secrets.get(name).and_then(|s| {
            s["metadata"]["resourceVersion"]
                .as_str()
                .map(str::to_string)
        });
        std::future::ready(version)
    }
}

/// When a command stops waiting (`apply`/`delete --timeout`), and how it stops then.
pub struct Deadline {
    pub at: Instant,
    /// The whole timeout, for the message.
    pub timeout: Duration,
    /// Tells the user what was being waited for, just before the process exits with `exit_code`.
    pub report: Box<dyn Fn(&str)>,
    pub exit_code: i32,
}

/// A runtime and a cached ARM client per Workspace, created on first use.
pub struct Azure {
    runtime: tokio::runtime::Runtime,
    connector: Connector,
    deadline: Option<Deadline>,
    /// The object being reconciled (`experiment/train`), named when the deadline passes.
    object: Mutex<String>,
}

impl Azure {
    pub fn new() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        Ok(Self {
            runtime,
            connector: Connector::new(ArmConfig::default(), Frontend::Standalone),
            deadline: None,
            object: Mutex::default(),
        })
    }

    /// Bounds every later Azure call by `deadline` (None: no deadline), retries and token
    /// requests included: a call still waiting then is dropped and the process exits.
    pub fn with_deadline(mut self, deadline: Option<Deadline>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Names the object whose reconcile makes the next calls.
    pub fn reconciling(&self, key: &Key) {
        if let Ok(mut o) = self.object.lock() {
            *o = format!("{}/{}", key.kind.to_lowercase(), key.name);
        }
    }

    /// A client for the Workspace `key`/`ws`, authenticated with its credential.
    pub fn connect(
        &self,
        key: &Key,
        ws: &Workspace,
        secrets: &StoredSecrets,
    ) -> Result<WorkspaceClient, ActionFailure> {
        let id = format!("{}/{}", key.namespace, key.name);
        self.block_on(self.connector.connect(&id, &ws.spec, secrets))
    }

    /// Runs one shared async step (an `actions::*::converge`) until it ends or the deadline
    /// passes. Ending midway is safe: the store is written only after a step returns, and what
    /// Azure was asked (a PUT of a deterministic name, a job submit by its run id) is found or
    /// asked again by the next apply.
    pub fn block_on<F: Future>(&self, step: F) -> F::Output {
        let Some(deadline) = &self.deadline else {
            return self.runtime.block_on(step);
        };
        let at = tokio::time::Instant::from_std(deadline.at);
        match self
            .runtime
            .block_on(async { tokio::time::timeout_at(at, step).await })
        {
            Ok(output) => output,
            Err(_) => {
                let who = match self.object.lock().map(|o| o.clone()).unwrap_or_default() {
                    o if o.is_empty() => "waiting".to_string(),
                    o => format!("{o} was waiting"),
                };
                (deadline.report)(&format!(
                    "timed out after {}s while {who} for an answer from Azure ML or its token endpoint",
                    deadline.timeout.as_secs()
                ));
                std::process::exit(deadline.exit_code)
            }
        }
    }

    /// Reads the workspace facts (location, storage, studio URL) for the Workspace reconciler.
    pub fn discover(
        &self,
        key: &Key,
        ws: &Workspace,
        secrets: &StoredSecrets,
    ) -> Result<crate::reconcile::workspace::WorkspaceFacts, ActionFailure> {
        let client = self.connect(key, ws, secrets)?;
        self.block_on(discover(&client))
    }

    /// One shared compute reconcile against the Workspace `ws_key`/`ws`.
    pub fn converge_compute(
        &self,
        ws_key: &Key,
        ws: &Workspace,
        input: Input<'_>,
        secrets: &StoredSecrets,
    ) -> Converged {
        let client = self.connect(ws_key, ws, secrets);
        self.block_on(converge(Some(client), input, secrets))
    }
}
