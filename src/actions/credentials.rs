//! The credential of a Workspace: which Azure identity amlops uses for it. The
//! service-principal Secret is read only when the Workspace references it, at the moment a
//! client is built, and its values stay inside [`crate::azure::Secret`].

use std::path::PathBuf;

use super::SecretSource;
use crate::api::WorkspaceSpec;
use crate::azure::storage::parse_blob_endpoint;
use crate::azure::{CredentialSource, Endpoints};
use crate::reconcile::{ActionFailure, FailureKind};
use url::Url;

/// Keys of a service-principal Secret.
pub const TENANT_KEY: &str = "AZURE_TENANT_ID";
pub const CLIENT_KEY: &str = "AZURE_CLIENT_ID";
pub const CLIENT_SECRET_KEY: &str = "AZURE_CLIENT_SECRET";
/// Set by the Azure Workload Identity webhook in the operator pod.
pub const FEDERATED_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";

/// Where the process runs, which decides what a Workspace may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frontend {
    /// `amlops controller`: no Azure CLI (no signed-in user exists in a pod).
    Cluster,
    /// `amlops apply` on a workstation or CI runner.
    Standalone,
}

fn stalled(reason: &str, message: String) -> ActionFailure {
    ActionFailure {
        kind: FailureKind::NeedsHuman,
        reason: reason.to_string(),
        message,
    }
}

/// Builds the credential source of `spec`. `env` reads the process environment (injected
/// for tests); `secrets` reads the Workspace's namespace.
pub async fn credential_source<S: SecretSource>(
    spec: &WorkspaceSpec,
    frontend: Frontend,
    secrets: &S,
    env: impl Fn(&str) -> Option<String>,
) -> Result<CredentialSource, ActionFailure> {
    let c = &spec.credential;
    if let Some(wi) = &c.workload_identity {
        let pick = |explicit: &Option<String>, var: &str| {
            explicit
                .clone()
                .or_else(|| env(var))
                .filter(|v| !v.is_empty())
        };
        let missing = |what: &str, var: &str| {
            stalled(
                "WorkloadIdentityNotConfigured",
                format!(
                    "workload identity needs {what}: set it in spec.credential.workloadIdentity or label the operator pod for the Azure Workload Identity webhook ({var})"
                ),
            )
        };
        let tenant_id =
            pick(&wi.tenant_id, TENANT_KEY).ok_or_else(|| missing("a tenant ID", TENANT_KEY))?;
        let client_id =
            pick(&wi.client_id, CLIENT_KEY).ok_or_else(|| missing("a client ID", CLIENT_KEY))?;
        let token_file = env(FEDERATED_TOKEN_FILE)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| missing("a projected service-account token", FEDERATED_TOKEN_FILE))?;
        return Ok(CredentialSource::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file: PathBuf::from(token_file),
        });
    }
    if let Some(sp) = &c.service_principal {
        let name = &sp.secret_ref.name;
        let tenant_id = secrets
            .secret_value(name, TENANT_KEY)
            .await?
            .expose()
            .to_string();
        let client_id = secrets
            .secret_value(name, CLIENT_KEY)
            .await?
            .expose()
            .to_string();
        let client_secret = secrets.secret_value(name, CLIENT_SECRET_KEY).await?;
        return Ok(CredentialSource::ServicePrincipal {
            tenant_id,
            client_id,
            client_secret,
        });
    }
    if let Some(mi) = &c.managed_identity {
        return Ok(CredentialSource::ManagedIdentity {
            client_id: mi.client_id.clone(),
        });
    }
    if c.azure_cli.is_some() {
        return match frontend {
            Frontend::Standalone => Ok(CredentialSource::DeveloperCli),
            Frontend::Cluster => Err(stalled(
                "AzureCliNotAllowed",
                "the azureCli credential only works for `amlops apply` on a workstation; in a cluster use workloadIdentity (recommended), servicePrincipal or managedIdentity".to_string(),
            )),
        };
    }
    Err(stalled("InvalidSpec", "spec.credential must set exactly one of workloadIdentity, servicePrincipal, managedIdentity or azureCli".to_string()))
}

/// The ARM and authority endpoints of `spec` (public cloud unless overridden).
pub fn endpoints(spec: &WorkspaceSpec) -> Result<Endpoints, ActionFailure> {
    let default = Endpoints::default();
    let e = spec.endpoints.as_ref();
    let rm = e
        .and_then(|e| e.resource_manager.clone())
        .unwrap_or_else(|| default.resource_manager.to_string());
    let auth = e
        .and_then(|e| e.authority_host.clone())
        .unwrap_or_else(|| default.authority_host.to_string());
    Endpoints::new(&rm, &auth)
        .map_err(|err| stalled("InvalidEndpoints", format!("spec.endpoints: {err}")))
}

/// The Workspace's blob service override (`spec.endpoints.blobStorage`), checked here too:
/// the schema's pattern is not all a client can rely on (standalone manifests, old objects).
pub fn blob_endpoint(spec: &WorkspaceSpec) -> Result<Option<Url>, ActionFailure> {
    spec.endpoints
        .as_ref()
        .and_then(|e| e.blob_storage.as_deref())
        .map(|value| {
            parse_blob_endpoint(value).map_err(|err| {
                stalled(
                    "InvalidEndpoints",
                    format!("spec.endpoints.blobStorage: {err}"),
                )
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::SecretError;
    use crate::api::{
        AzureCli, ManagedIdentity, SecretRef, ServicePrincipal, WorkloadIdentity,
        WorkspaceCredential,
    };
    use crate::azure::Secret;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Secrets in memory, recording which ones were read.
    struct Mem {
        values: BTreeMap<(String, String), String>,
        reads: Mutex<Vec<String>>,
    }
    impl SecretSource for Mem {
        async fn secret_value(&self, name: &str, key: &str) -> Result<Secret, SecretError> {
            self.reads.lock().unwrap().push(format!("{name}/{key}"));
            self.values
                .get(&(name.to_string(), key.to_string()))
                .map(|v| Secret::new(v.clone()))
                .ok_or_else(|| SecretError::NotFound {
                    namespace: "ml".into(),
                    name: name.into(),
                    key: key.into(),
                })
        }
    }
    fn mem(pairs: &[(&str, &str, &str)]) -> Mem {
        Mem {
            values: pairs
                .iter()
                .map(|(n, k, v)| ((n.to_string(), k.to_string()), v.to_string()))
                .collect(),
            reads: Mutex::new(vec![]),
        }
    }
    fn spec(credential: WorkspaceCredential) -> WorkspaceSpec {
        WorkspaceSpec {
            subscription_id: "00000000-0000-0000-0000-000000000000".into(),
            resource_group: "rg".into(),
            workspace_name: "ws".into(),
            credential,
            endpoints: None,
            resync_period: None,
        }
    }
    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[tokio::test]
    async fn service_principal_reads_the_referenced_secret_and_redacts_it() {
        let s = mem(&[
            ("sp", TENANT_KEY, "t"),
            ("sp", CLIENT_KEY, "c"),
            ("sp", CLIENT_SECRET_KEY, "hunter2"),
        ]);
        let cred = WorkspaceCredential {
            service_principal: Some(ServicePrincipal {
                secret_ref: SecretRef { name: "sp".into() },
            }),
            ..Default::default()
        };
        let src = credential_source(&spec(cred), Frontend::Cluster, &s, no_env)
            .await
            .unwrap();
        assert!(
            matches!(&src, CredentialSource::ServicePrincipal { client_secret, .. } if client_secret.expose() == "hunter2")
        );
        assert!(!format!("{src:?}").contains("hunter2"));
        // a missing key names the Secret and the key, never a value
        let s = mem(&[("sp", TENANT_KEY, "t"), ("sp", CLIENT_KEY, "c")]);
        let cred = WorkspaceCredential {
            service_principal: Some(ServicePrincipal {
                secret_ref: SecretRef { name: "sp".into() },
            }),
            ..Default::default()
        };
        let err = credential_source(&spec(cred), Frontend::Cluster, &s, no_env)
            .await
            .unwrap_err();
        assert_eq!(err.reason, "SecretNotFound");
        assert!(err.message.contains("AZURE_CLIENT_SECRET"));
    }

    #[tokio::test]
    async fn secrets_are_not_read_unless_referenced() {
        let s = mem(&[]);
        let cred = WorkspaceCredential {
            managed_identity: Some(ManagedIdentity {
                client_id: Some("mi".into()),
            }),
            ..Default::default()
        };
        let src = credential_source(&spec(cred), Frontend::Cluster, &s, no_env)
            .await
            .unwrap();
        assert!(
            matches!(src, CredentialSource::ManagedIdentity { client_id: Some(ref c) } if c == "mi")
        );
        assert!(s.reads.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn workload_identity_defaults_come_from_the_webhook_env() {
        let env = |k: &str| match k {
            TENANT_KEY => Some("tenant-env".to_string()),
            CLIENT_KEY => Some("client-env".to_string()),
            FEDERATED_TOKEN_FILE => {
                Some("/var/run/secrets/azure/tokens/azure-identity-token".to_string())
            }
            _ => None,
        };
        let cred = WorkspaceCredential {
            workload_identity: Some(WorkloadIdentity {
                client_id: Some("explicit".into()),
                tenant_id: None,
            }),
            ..Default::default()
        };
        let src = credential_source(&spec(cred.clone()), Frontend::Cluster, &mem(&[]), env)
            .await
            .unwrap();
        match src {
            CredentialSource::WorkloadIdentity {
                tenant_id,
                client_id,
                token_file,
            } => {
                assert_eq!(
                    (tenant_id.as_str(), client_id.as_str()),
                    ("tenant-env", "explicit")
                );
                assert!(token_file.ends_with("azure-identity-token"));
            }
            other => panic!("{other:?}"),
        }
        let err = credential_source(&spec(cred), Frontend::Cluster, &mem(&[]), no_env)
            .await
            .unwrap_err();
        assert_eq!(err.reason, "WorkloadIdentityNotConfigured");
        assert!(err.message.contains(TENANT_KEY));
    }

    #[tokio::test]
    async fn azure_cli_is_refused_in_a_cluster_only() {
        let cred = WorkspaceCredential {
            azure_cli: Some(AzureCli {}),
            ..Default::default()
        };
        let err = credential_source(&spec(cred.clone()), Frontend::Cluster, &mem(&[]), no_env)
            .await
            .unwrap_err();
        assert_eq!(err.reason, "AzureCliNotAllowed");
        assert!(!err.retryable());
        let ok = credential_source(&spec(cred), Frontend::Standalone, &mem(&[]), no_env)
            .await
            .unwrap();
        assert!(matches!(ok, CredentialSource::DeveloperCli));
    }

    #[test]
    fn endpoints_default_to_public_cloud_and_reject_http() {
        let mut s = spec(WorkspaceCredential::default());
        assert_eq!(
            endpoints(&s).unwrap().resource_manager.as_str(),
            "https://management.azure.com/"
        );
        s.endpoints = Some(crate::api::Endpoints {
            resource_manager: Some("http://127.0.0.1:1".into()),
            ..Default::default()
        });
        assert_eq!(endpoints(&s).unwrap_err().reason, "InvalidEndpoints");
    }

    #[test]
    fn blob_endpoint_is_optional_and_plain_http_only_on_loopback() {
        let mut s = spec(WorkspaceCredential::default());
        assert_eq!(blob_endpoint(&s).unwrap(), None);
        let with = |value: &str| crate::api::Endpoints {
            blob_storage: Some(value.into()),
            ..Default::default()
        };
        s.endpoints = Some(with("http://127.0.0.1:10000/devstoreaccount1"));
        assert_eq!(
            blob_endpoint(&s).unwrap().unwrap().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        s.endpoints = Some(with("http://storage.internal/acct"));
        let err = blob_endpoint(&s).unwrap_err();
        assert_eq!(err.reason, "InvalidEndpoints");
        assert!(
            err.message.starts_with("spec.endpoints.blobStorage: "),
            "{}",
            err.message
        );
        assert!(!err.retryable());
    }
}
