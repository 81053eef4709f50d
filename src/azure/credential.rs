//! Credentials from a workspace's auth description, built on `azure_identity`.
//!
//! `azure_identity` caches one token per credential and scope and refreshes it five
//! minutes before expiry, so the ARM client keeps one credential for its lifetime and
//! asks it for a token on every request: N requests cost one token request.

use super::error::{AzureError, scrub};
use super::secret::Secret;
use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    DeveloperToolsCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use std::path::PathBuf;
use std::sync::Arc;
use url::Url;

/// How to authenticate, independent of where the description came from (a Kubernetes
/// `Workspace`, a standalone manifest, a test).
#[derive(Debug, Clone)]
pub enum CredentialSource {
    /// Azure Workload Identity: a projected service-account token exchanged for an
    /// Entra token (the webhook's `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
    /// `AZURE_FEDERATED_TOKEN_FILE`).
    WorkloadIdentity {
        /// Entra tenant.
        tenant_id: String,
        /// Application (client) id of the federated identity.
        client_id: String,
        /// File holding the service-account token; re-read as it rotates.
        token_file: PathBuf,
    },
    /// A service principal with a client secret.
    ServicePrincipal {
        /// Entra tenant.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// The client secret.
        client_secret: Secret,
    },
    /// The managed identity of the VM / node; `client_id` selects a user-assigned one.
    ManagedIdentity {
        /// User-assigned identity client id; `None` for the system-assigned identity.
        client_id: Option<String>,
    },
    /// Azure CLI, then Azure Developer CLI (standalone mode on a laptop).
    DeveloperCli,
}

/// Where ARM and Entra ID live: public cloud by default, overridable for sovereign
/// clouds and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Azure Resource Manager base URL.
    pub resource_manager: Url,
    /// Entra ID authority host (must be https).
    pub authority_host: Url,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self::new(
            "https://management.azure.com/",
            "https://login.microsoftonline.com/",
        )
        .unwrap_or_else(|_| unreachable!("the public cloud URLs are valid"))
    }
}

impl Endpoints {
    /// Parses and checks both URLs (https only, no query); errors name the bad one.
    pub fn new(resource_manager: &str, authority_host: &str) -> Result<Self, AzureError> {
        Ok(Self {
            resource_manager: https_url("ARM endpoint", resource_manager)?,
            authority_host: https_url("authority host", authority_host)?,
        })
    }

    /// The token scope for ARM: `<resource manager origin>/.default`.
    pub fn arm_scope(&self) -> String {
        format!(
            "{}/.default",
            self.resource_manager.as_str().trim_end_matches('/')
        )
    }
}

fn https_url(what: &str, value: &str) -> Result<Url, AzureError> {
    let url = Url::parse(value).map_err(|e| AzureError::Config {
        message: format!("{what} {value:?} is not a valid URL: {e}"),
    })?;
    if url.scheme() != "https" || url.host().is_none() {
        return Err(AzureError::Config {
            message: format!("{what} {value:?} must be an https:// URL with a host"),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(AzureError::Config {
            message: format!("{what} {value:?} must not have a query or fragment"),
        });
    }
    Ok(url)
}

/// Builds the credential. `http` is the shared client (it trusts the extra CAs); the
/// credential's own retries are bounded so a dead token endpoint fails in seconds, not
/// minutes, and the controller can report it.
pub fn build_credential(
    source: &CredentialSource,
    endpoints: &Endpoints,
    http: &reqwest::Client,
) -> Result<Arc<dyn TokenCredential>, AzureError> {
    let client_options = || {
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = endpoints.authority_host.to_string();
        ClientOptions {
            transport: Some(Transport::new(Arc::new(http.clone()))),
            cloud: Some(Arc::new(CloudConfiguration::Custom(cloud))),
            retry: RetryOptions::exponential(ExponentialRetryOptions {
                max_retries: 3,
                max_total_elapsed: azure_core::time::Duration::seconds(20),
                ..ExponentialRetryOptions::default()
            }),
            ..ClientOptions::default()
        }
    };
    let config = |what: &str, e: azure_core::Error| AzureError::Config {
        message: format!(
            "cannot set up the {what} credential: {}",
            scrub(&e.to_string())
        ),
    };
    let credential: Arc<dyn TokenCredential> = match source {
        CredentialSource::WorkloadIdentity {
            tenant_id,
            client_id,
            token_file,
        } => WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions {
                client_options: client_options(),
            },
            client_id: Some(client_id.clone()),
            tenant_id: Some(tenant_id.clone()),
            token_file_path: Some(token_file.clone()),
        }))
        .map_err(|e| config("workload identity", e))?,
        CredentialSource::ServicePrincipal {
            tenant_id,
            client_id,
            client_secret,
        } => ClientSecretCredential::new(
            tenant_id,
            client_id.clone(),
            azure_core::credentials::Secret::new(client_secret.expose().to_owned()),
            Some(ClientSecretCredentialOptions {
                client_options: client_options(),
            }),
        )
        .map_err(|e| config("service principal", e))?,
        CredentialSource::ManagedIdentity { client_id } => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                client_options: client_options(),
            }))
            .map_err(|e| config("managed identity", e))?
        }
        CredentialSource::DeveloperCli => {
            DeveloperToolsCredential::new(None).map_err(|e| config("developer CLI", e))?
        }
    };
    Ok(credential)
}

/// Maps a token failure: unreachable or overloaded token endpoints are retryable, a
/// refusal (bad secret, unknown client, expired federated token) needs a human.
pub fn token_error(err: &azure_core::Error) -> AzureError {
    use azure_core::error::ErrorKind;
    let mut retryable = false;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(az) = e.downcast_ref::<azure_core::Error>() {
            retryable |= match az.kind() {
                ErrorKind::Io | ErrorKind::Connection => true,
                ErrorKind::HttpResponse { status, .. } => {
                    let s = u16::from(*status);
                    s == 429 || s >= 500
                }
                _ => false,
            };
        }
        current = e.source();
    }
    AzureError::Authentication {
        message: scrub(&err.to_string()),
        retryable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_cloud_defaults() {
        let e = Endpoints::default();
        assert_eq!(e.resource_manager.as_str(), "https://management.azure.com/");
        assert_eq!(
            e.authority_host.as_str(),
            "https://login.microsoftonline.com/"
        );
        assert_eq!(e.arm_scope(), "https://management.azure.com/.default");
    }

    #[test]
    fn endpoints_must_be_https() {
        let err = Endpoints::new("http://127.0.0.1:1", "https://login").unwrap_err();
        assert!(err.to_string().contains("ARM endpoint"), "{err}");
        let err = Endpoints::new("https://arm", "http://login").unwrap_err();
        assert!(err.to_string().contains("authority host"), "{err}");
        let err = Endpoints::new("https://arm?x=1", "https://login").unwrap_err();
        assert!(err.to_string().contains("query"), "{err}");
    }

    #[test]
    fn scope_of_a_custom_endpoint_uses_its_origin() {
        let e = Endpoints::new("https://127.0.0.1:8443", "https://127.0.0.1:8443").unwrap();
        assert_eq!(e.arm_scope(), "https://127.0.0.1:8443/.default");
    }

    #[test]
    fn the_client_secret_never_shows_in_debug() {
        let s = CredentialSource::ServicePrincipal {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: Secret::new("s3cr3t-value"),
        };
        assert!(!format!("{s:?}").contains("s3cr3t-value"));
    }

    #[test]
    fn an_empty_client_secret_is_a_config_error() {
        let http = reqwest::Client::new();
        let s = CredentialSource::ServicePrincipal {
            tenant_id: "tenant".into(),
            client_id: "client".into(),
            client_secret: Secret::new(""),
        };
        let Err(err) = build_credential(&s, &Endpoints::default(), &http) else {
            panic!("an empty secret must be refused");
        };
        assert_eq!(err.code(), "InvalidConfiguration");
        assert!(err.to_string().contains("service principal"), "{err}");
    }

    #[test]
    fn token_errors_classify_transport_as_retryable() {
        let io = azure_core::Error::with_message(azure_core::error::ErrorKind::Io, "reset");
        let wrapped = azure_core::Error::with_error(
            azure_core::error::ErrorKind::Credential,
            io,
            "ClientSecretCredential authentication failed",
        );
        assert!(token_error(&wrapped).retryable());
        let refused = azure_core::Error::with_message(
            azure_core::error::ErrorKind::Credential,
            "AADSTS7000215: Invalid client secret provided.",
        );
        let e = token_error(&refused);
        assert!(!e.retryable());
        assert_eq!(e.code(), "AuthenticationFailed");
    }
}
