//! What a run reads from the store besides its own objects: the namespace's Secrets and
//! ConfigMaps, loaded before the run is submitted (the store's SQLite connection cannot be
//! shared with async tasks). Both the local executor and Azure runs resolve sources here.

use std::collections::BTreeMap;

use serde_json::Value;

use super::azure::StoredSecrets;
use super::store::{Store, StoreError};
use crate::actions::source::{ConfigMapData, RunInputs};
use crate::actions::{SecretError, SecretSource};
use crate::azure::Secret;
use crate::reconcile::ActionFailure;

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

    /// The data (and base64 `binaryData`) of a stored ConfigMap.
    fn config_map_data(&self, name: &str) -> Option<ConfigMapData> {
        let cm = self.config_maps.get(name)?;
        Some(ConfigMapData {
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
        })
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
    fn config_map(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<ConfigMapData>, ActionFailure>> + Send {
        std::future::ready(Ok(self.config_map_data(name)))
    }

    /// `localPath` is allowed: this is the user's machine.
    fn local_paths_allowed(&self) -> bool {
        true
    }
}
