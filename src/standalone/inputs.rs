//! What a run reads from the store besides its own objects: the namespace's Secrets and
//! ConfigMaps, loaded before the run is submitted (the store's SQLite connection cannot be
//! shared with async tasks). Both the local executor and Azure runs resolve sources here.

use std::collections::BTreeMap;

use serde_json::Value;

use super::azure::StoredSecrets;
use super::store::{Store, StoreError};
use crate::actions::experiment::RunInputs;
use crate::actions::source::{ConfigMapData, snapshot_source};
use crate::actions::{SecretError, SecretSource};
use crate::api::Source;
use crate::azure::Secret;
use crate::reconcile::ActionFailure;
use crate::snapshot;

pub struct StoredRunInputs {
    secrets: StoredSecrets,
    config_maps: BTreeMap<String, Value>,
}

impl StoredRunInputs {
    pub fn load(store: &Store, namespace: &str) -> Result<Self, StoreError> {
        let config_maps = store
            .list(Some("ConfigMap"))?
            .into_iter()
            .filter(|(k, _)| k.namespace == namespace)
            .map(|(k, v)| (k.name, v))
            .collect();
        Ok(Self {
            secrets: StoredSecrets::load(store, namespace)?,
            config_maps,
        })
    }

    /// The snapshot source of `source`, with the ConfigMap (`data` and base64 `binaryData`)
    /// and the git credential it references. `localPath` is allowed: this is the user's machine.
    pub fn snapshot_source(&self, source: &Source) -> Result<snapshot::Source, ActionFailure> {
        let config_map = source
            .config_map
            .as_ref()
            .and_then(|r| self.config_maps.get(&r.name))
            .map(|cm| ConfigMapData {
                data: serde_json::from_value(cm["data"].clone()).unwrap_or_default(),
                binary_data: serde_json::from_value::<BTreeMap<String, String>>(
                    cm["binaryData"].clone(),
                )
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| {
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, v)
                        .ok()
                        .map(|b| (k, b))
                })
                .collect(),
            });
        let git_secret = match source.git.as_ref().and_then(|g| g.secret_ref.as_ref()) {
            Some(r) => match self.secrets.value(&r.name, &r.key) {
                Ok(v) => Some((r.key.clone(), v)),
                Err(SecretError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        snapshot_source(source, config_map, git_secret)
    }
}

impl SecretSource for StoredRunInputs {
    fn secret_value(
        &self,
        name: &str,
        key: &str,
    ) -> impl Future<Output = Result<Secret, SecretError>> + Send {
        self.secrets.secret_value(name, key)
    }
}

impl RunInputs for StoredRunInputs {
    fn source(
        &self,
        source: &Source,
    ) -> impl Future<Output = Result<snapshot::Source, ActionFailure>> + Send {
        std::future::ready(self.snapshot_source(source))
    }
}
