//! Secret values from the Kubernetes API: one GET of the referenced Secret, at the moment
//! the value is needed. Nothing is cached, so a rotated Secret is used on the next write.

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::Api;

use crate::actions::secrets::text_value;
use crate::actions::{SecretError, SecretSource};
use crate::azure::Secret;

/// The Secrets of one namespace.
pub struct KubeSecrets {
    api: Api<KubeSecret>,
    namespace: String,
}

impl KubeSecrets {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
        }
    }
}

impl SecretSource for KubeSecrets {
    async fn secret_value(&self, name: &str, key: &str) -> Result<Secret, SecretError> {
        let ns = self.namespace.clone();
        let found = self.api.get_opt(name).await.map_err(|e| {
            let forbidden = matches!(&e, kube::Error::Api(s) if s.code == 403);
            SecretError::Unreadable {
                namespace: ns.clone(),
                name: name.to_string(),
                message: if forbidden {
                    "forbidden: the operator's RBAC does not allow reading it".to_string()
                } else {
                    e.to_string()
                },
                retryable: !forbidden,
            }
        })?;
        let secret = found.ok_or_else(|| SecretError::NotFound {
            namespace: ns.clone(),
            name: name.to_string(),
            key: key.to_string(),
        })?;
        let bytes = secret
            .data
            .and_then(|mut d| d.remove(key))
            .map(|b| b.0)
            .or_else(|| {
                secret
                    .string_data
                    .and_then(|mut d| d.remove(key))
                    .map(String::into_bytes)
            })
            .ok_or_else(|| SecretError::KeyMissing {
                namespace: ns.clone(),
                name: name.to_string(),
                key: key.to_string(),
            })?;
        text_value(bytes, &ns, name, key)
    }

    async fn secret_version(&self, name: &str) -> Option<String> {
        let meta = self.api.get_metadata_opt(name).await.ok()??;
        meta.metadata.resource_version
    }
}
