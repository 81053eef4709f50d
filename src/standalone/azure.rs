//! Azure for `amlops apply`: the same Connector, credentials (including the Azure CLI user)
//! and compute actions as the controller, driven from the standalone store.

use std::collections::BTreeMap;

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

/// A runtime and a cached ARM client per Workspace, created on first use.
pub struct Azure {
    runtime: tokio::runtime::Runtime,
    connector: Connector,
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
        })
    }

    /// A client for the Workspace `key`/`ws`, authenticated with its credential.
    pub fn connect(
        &self,
        key: &Key,
        ws: &Workspace,
        secrets: &StoredSecrets,
    ) -> Result<WorkspaceClient, ActionFailure> {
        let id = format!("{}/{}", key.namespace, key.name);
        self.runtime
            .block_on(self.connector.connect(&id, &ws.spec, secrets))
    }

    /// Runs one shared async step (an `actions::*::converge`) to completion.
    pub fn block_on<F: Future>(&self, step: F) -> F::Output {
        self.runtime.block_on(step)
    }

    /// Reads the workspace facts (location, storage, studio URL) for the Workspace reconciler.
    pub fn discover(
        &self,
        key: &Key,
        ws: &Workspace,
        secrets: &StoredSecrets,
    ) -> Result<crate::reconcile::workspace::WorkspaceFacts, ActionFailure> {
        let client = self.connect(key, ws, secrets)?;
        self.runtime.block_on(discover(&client))
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
        self.runtime
            .block_on(converge(Some(client), input, secrets))
    }
}
