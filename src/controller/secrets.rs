//! Secret values from the Kubernetes API, read only for the Secrets a spec references.
//!
//! The controllers watch Secrets metadata-only (names and resourceVersions, never data), so a
//! referenced Secret is read with a GET the first time and again only when its resourceVersion
//! moves: a rotated Secret is used on the next write, and an unchanged one costs no request.
//! `amlops logs` (no watch) reads with a GET every time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::Api;
use kube::api::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::actions::secrets::text_value;
use crate::actions::{SecretError, SecretSource};
use crate::azure::Secret;

/// The referenced Secrets read so far, by namespace and name, each as of its resourceVersion.
/// Shared by the controllers of a scope. Holds only Secrets a spec referenced.
#[derive(Default)]
pub struct SecretValues {
    read: Mutex<HashMap<(String, String), Arc<KubeSecret>>>,
}

/// The metadata-only watch of a scope's Secrets and the values read so far.
#[derive(Clone)]
pub struct SecretCache {
    pub versions: Store<PartialObjectMeta<KubeSecret>>,
    pub values: Arc<SecretValues>,
}

impl SecretCache {
    /// The resourceVersion the watch last saw for `namespace/name`.
    fn version(&self, namespace: &str, name: &str) -> Option<String> {
        self.versions
            .get(&ObjectRef::new(name).within(namespace))
            .and_then(|m| m.metadata.resource_version.clone())
    }

    /// The Secret read before, if the watch has seen no newer version of it since.
    fn current(&self, namespace: &str, name: &str) -> Option<Arc<KubeSecret>> {
        let version = self.version(namespace, name)?;
        let read = self.values.read.lock().ok()?;
        read.get(&(namespace.to_string(), name.to_string()))
            .filter(|s| s.metadata.resource_version.as_deref() == Some(version.as_str()))
            .cloned()
    }

    fn remember(&self, namespace: &str, name: &str, secret: Option<&Arc<KubeSecret>>) {
        if let Ok(mut read) = self.values.read.lock() {
            let key = (namespace.to_string(), name.to_string());
            match secret {
                Some(s) => read.insert(key, s.clone()),
                None => read.remove(&key),
            };
        }
    }
}

/// The Secrets of one namespace.
pub struct KubeSecrets {
    api: Api<KubeSecret>,
    namespace: String,
    cache: Option<SecretCache>,
}

impl KubeSecrets {
    /// Reads with a GET every time.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            cache: None,
        }
    }

    /// Reads with a GET only what `cache` does not hold as of the watched resourceVersion.
    pub fn cached(client: kube::Client, namespace: &str, cache: SecretCache) -> Self {
        Self {
            cache: Some(cache),
            ..Self::new(client, namespace)
        }
    }

    async fn read(&self, name: &str) -> Result<Option<Arc<KubeSecret>>, SecretError> {
        if let Some(secret) = self
            .cache
            .as_ref()
            .and_then(|c| c.current(&self.namespace, name))
        {
            return Ok(Some(secret));
        }
        let found = self.api.get_opt(name).await.map_err(|e| {
            let forbidden = matches!(&e, kube::Error::Api(s) if s.code == 403);
            SecretError::Unreadable {
                namespace: self.namespace.clone(),
                name: name.to_string(),
                message: if forbidden {
                    "forbidden: the operator's RBAC does not allow reading it".to_string()
                } else {
                    e.to_string()
                },
                retryable: !forbidden,
            }
        })?;
        let found = found.map(Arc::new);
        if let Some(cache) = &self.cache {
            cache.remember(&self.namespace, name, found.as_ref());
        }
        Ok(found)
    }
}

impl SecretSource for KubeSecrets {
    async fn secret_value(&self, name: &str, key: &str) -> Result<Secret, SecretError> {
        let ns = self.namespace.clone();
        let secret = self
            .read(name)
            .await?
            .ok_or_else(|| SecretError::NotFound {
                namespace: ns.clone(),
                name: name.to_string(),
                key: key.to_string(),
            })?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .or_else(|| {
                secret
                    .string_data
                    .as_ref()
                    .and_then(|d| d.get(key))
                    .map(|s| s.clone().into_bytes())
            })
            .ok_or_else(|| SecretError::KeyMissing {
                namespace: ns.clone(),
                name: name.to_string(),
                key: key.to_string(),
            })?;
        text_value(bytes, &ns, name, key)
    }

    async fn secret_version(&self, name: &str) -> Option<String> {
        if let Some(cache) = &self.cache {
            return cache.version(&self.namespace, name);
        }
        let meta = self.api.get_metadata_opt(name).await.ok()??;
        meta.metadata.resource_version
    }
}
