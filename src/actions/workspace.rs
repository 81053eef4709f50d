//! Connecting to a Workspace (credential + ARM client, cached) and discovering its facts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::credentials::{Frontend, blob_endpoint, credential_source, endpoints};
use super::{SecretSource, azure_failure};
use crate::api::WorkspaceSpec;
use crate::azure::{
    ArmClient, ArmConfig, CallObserver, CredentialSource, WorkspaceClient, WorkspaceRef,
};
use crate::reconcile::ActionFailure;
use crate::reconcile::workspace::WorkspaceFacts;

/// Builds (and caches) one ARM client per Workspace. A client holds its credential and so its
/// cached token: reusing it keeps token requests to one per token lifetime, not one per
/// reconcile. The cache entry is replaced when the spec or the credential material changes.
pub struct Connector {
    config: ArmConfig,
    frontend: Frontend,
    observer: Option<Arc<dyn CallObserver>>,
    cache: Mutex<HashMap<String, (blake3::Hash, WorkspaceClient)>>,
}

impl Connector {
    /// `config` carries everything but the endpoints (taken from each Workspace).
    pub fn new(config: ArmConfig, frontend: Frontend) -> Self {
        Self {
            config,
            frontend,
            observer: None,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Reports every ARM exchange (metrics, tests).
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// A client for the Workspace `key` (namespace/name) described by `spec`.
    pub async fn connect<S: SecretSource>(
        &self,
        key: &str,
        spec: &WorkspaceSpec,
        secrets: &S,
    ) -> Result<WorkspaceClient, ActionFailure> {
        let source =
            credential_source(spec, self.frontend, secrets, |k| std::env::var(k).ok()).await?;
        let fingerprint = fingerprint(spec, &source);
        if let Ok(cache) = self.cache.lock()
            && let Some((f, client)) = cache.get(key)
            && *f == fingerprint
        {
            return Ok(client.clone());
        }
        let config = ArmConfig {
            endpoints: endpoints(spec)?,
            ..self.config.clone()
        };
        let mut arm = ArmClient::new(config, &source).map_err(|e| azure_failure(&e))?;
        if let Some(observer) = &self.observer {
            arm = arm.with_observer(observer.clone());
        }
        let client = WorkspaceClient::new(
            arm,
            WorkspaceRef {
                subscription_id: spec.subscription_id.clone(),
                resource_group: spec.resource_group.clone(),
                workspace: spec.workspace_name.clone(),
            },
        )
        .with_blob_endpoint(blob_endpoint(spec)?);
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key.to_string(), (fingerprint, client.clone()));
        }
        Ok(client)
    }

    /// Drops the cached client of a Workspace that is gone.
    pub fn forget(&self, key: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(key);
        }
    }
}

/// A digest of everything a client is built from. Secret material only enters the hash,
/// which lives in memory and is never shown.
fn fingerprint(spec: &WorkspaceSpec, source: &CredentialSource) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    h.update(serde_json::to_string(spec).unwrap_or_default().as_bytes());
    let mut part = |s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    match source {
        CredentialSource::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
        } => {
            part("wi");
            part(tenant_id);
            part(client_id);
            part(&token_file.to_string_lossy());
        }
        CredentialSource::ServicePrincipal {
            tenant_id,
            client_id,
            client_secret,
        } => {
            part("sp");
            part(tenant_id);
            part(client_id);
            part(client_secret.expose());
        }
        CredentialSource::ManagedIdentity { client_id } => {
            part("mi");
            part(client_id.as_deref().unwrap_or_default());
        }
        CredentialSource::DeveloperCli => part("cli"),
    }
    h.finalize()
}

/// GETs the workspace and its default datastore.
pub async fn discover(client: &WorkspaceClient) -> Result<WorkspaceFacts, ActionFailure> {
    let info = client
        .workspace_info()
        .await
        .map_err(|e| azure_failure(&e))?;
    Ok(WorkspaceFacts {
        resource_id: info.id,
        location: info.location,
        storage_account: info.storage_account,
        default_datastore: info.default_datastore.and_then(|d| d.name),
        studio_url: Some(info.studio_url),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::Secret;

    #[test]
    fn fingerprint_changes_with_the_secret_but_does_not_show_it() {
        let spec = WorkspaceSpec {
            subscription_id: "00000000-0000-0000-0000-000000000000".into(),
            resource_group: "rg".into(),
            workspace_name: "ws".into(),
            credential: Default::default(),
            endpoints: None,
            resync_period: None,
        };
        let sp = |s: &str| CredentialSource::ServicePrincipal {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: Secret::new(s),
        };
        let a = fingerprint(&spec, &sp("one"));
        assert_eq!(a, fingerprint(&spec, &sp("one")));
        assert_ne!(a, fingerprint(&spec, &sp("two")));
        assert!(!a.to_hex().contains("one"));
    }
}
