//! The workspace's default blob datastore as the place code snapshots go: where its container
//! is, how requests to it are authorised, and the decision (cached per workspace client) to
//! use it or not. Pure except for the token source; the ARM calls are in `ops/workspace.rs`.
//!
//! Authorisation follows azure-ai-ml: a datastore with credentials (`AccountKey`, `Sas`, ...)
//! yields a SAS from `listSecrets` (`{"expirableSecret": true, "expireAfterHours": 1}`); an
//! identity-based one (`credentialsType: None`) is accessed with the caller's own Entra token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use futures::future::BoxFuture;
use url::{Host, Url};

use super::blob::{BearerSource, BlobAuth, BlobContainer, BlobError, SasToken, redact};
use super::credential::token_error;
use super::models::workspace::{DatastoreProperties, DatastoreSecrets, SecretExpiry};

/// Entra scope of Azure Storage data-plane tokens.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// What `listSecrets` is asked for: a SAS valid one hour (what azure-ai-ml asks).
pub const SAS_REQUEST: SecretExpiry = SecretExpiry {
    expirable_secret: true,
    expire_after_hours: 1,
};

/// A SAS is reused for half its hour, so an upload started with it has 30 min left.
const SAS_REUSE: Duration = Duration::from_secs(30 * 60);
/// A token-authorised container is re-derived from the datastore this often (tokens
/// themselves are refreshed by the credential).
const TOKEN_REUSE: Duration = Duration::from_secs(60 * 60);
/// A refused datastore is asked again after this long (someone may grant the role).
const REFUSAL_REUSE: Duration = Duration::from_secs(30 * 60);

/// Where a workspace's snapshots go.
#[derive(Debug, Clone)]
pub enum SnapshotStore {
    /// The default datastore's container: uploads are incremental.
    Datastore {
        container: BlobContainer,
        access: DatastoreAccess,
    },
    /// The datastore cannot be used; why, in words fit for an event.
    Refused(String),
}

impl SnapshotStore {
    /// How long this decision may be reused.
    fn lifetime(&self) -> Duration {
        match self {
            SnapshotStore::Refused(_) => REFUSAL_REUSE,
            SnapshotStore::Datastore {
                access: DatastoreAccess::ListSecrets,
                ..
            } => SAS_REUSE,
            SnapshotStore::Datastore {
                access: DatastoreAccess::CallerToken,
                ..
            } => TOKEN_REUSE,
        }
    }
}

/// How requests to a datastore's storage are authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatastoreAccess {
    /// A SAS from `listSecrets`.
    ListSecrets,
    /// The caller's own Entra token (identity-based datastore).
    CallerToken,
}

impl DatastoreAccess {
    /// `credentialsType: None` means identity-based access; anything else has secrets.
    pub fn of(datastore: &DatastoreProperties) -> DatastoreAccess {
        match datastore.credentials.as_ref() {
            Some(c) if c.credentials_type.eq_ignore_ascii_case("None") => {
                DatastoreAccess::CallerToken
            }
            _ => DatastoreAccess::ListSecrets,
        }
    }
}

/// Checks a blob service URL override (`spec.endpoints.blobStorage`): `https://`, or plain
/// `http://` only on a loopback host (an emulator next to amlops), without query or fragment.
pub fn parse_blob_endpoint(value: &str) -> Result<Url, String> {
    let shown = redact(value);
    let url = Url::parse(value).map_err(|e| format!("{shown:?} is not a URL: {e}"))?;
    let loopback = match url.host() {
        Some(Host::Domain(d)) => d == "localhost",
        Some(Host::Ipv4(ip)) => ip == std::net::Ipv4Addr::LOCALHOST,
        Some(Host::Ipv6(ip)) => ip == std::net::Ipv6Addr::LOCALHOST,
        None => false,
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    if !scheme_ok || url.host().is_none() {
        return Err(format!(
            "{shown:?} must be an https:// URL, or http:// on 127.0.0.1, localhost or [::1]"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(format!(
            "{shown:?} must not carry a query, fragment or user name (credentials never go in the URL)"
        ));
    }
    Ok(url)
}

/// The datastore's container URL: `{blob_endpoint}/{container}` when the Workspace overrides
/// the blob endpoint, else `{protocol}://{account}.blob.{endpoint}/{container}` (what
/// azure-ai-ml builds). Fields are checked so a token or SAS only ever goes to a storage host.
pub fn container_url(
    datastore: &DatastoreProperties,
    blob_endpoint: Option<&Url>,
) -> Result<Url, String> {
    if datastore.datastore_type != "AzureBlob" {
        return Err(format!(
            "the default datastore is of type {}, not AzureBlob",
            datastore.datastore_type
        ));
    }
    let container = field(datastore.container_name.as_deref(), "containerName")?;
    if !is_container_name(container) {
        return Err(format!(
            "the default datastore's containerName {container:?} is not a blob container name"
        ));
    }
    let service = match blob_endpoint {
        Some(url) => url.as_str().trim_end_matches('/').to_string(),
        None => {
            let account = field(datastore.account_name.as_deref(), "accountName")?;
            let suffix = field(datastore.endpoint.as_deref(), "endpoint")?;
            let protocol = datastore.protocol.as_deref().unwrap_or("https");
            if !is_account_name(account) || !is_dns_suffix(suffix) || protocol != "https" {
                return Err(format!(
                    "the default datastore's storage address ({protocol}://{account}.blob.{suffix}) is not an https Azure Storage address; set spec.endpoints.blobStorage if it is served elsewhere"
                ));
            }
            format!("https://{account}.blob.{suffix}")
        }
    };
    Url::parse(&format!("{service}/{container}"))
        .map_err(|e| format!("the default datastore's container URL is invalid: {e}"))
}

/// The container authorised by what `listSecrets` answered, or why it cannot be.
pub fn sas_container(url: Url, secrets: &DatastoreSecrets) -> Result<BlobContainer, String> {
    if secrets.secrets_type != "Sas" {
        return Err(format!(
            "listSecrets answered secrets of type {} rather than a SAS",
            secrets.secrets_type
        ));
    }
    let token = secrets
        .sas_token
        .as_ref()
        .ok_or("listSecrets answered no sasToken")?;
    let sas = SasToken::new(token.expose())
        .map_err(|e| format!("listSecrets answered an unusable SAS: {e}"))?;
    Ok(BlobContainer::new(url, BlobAuth::Sas(sas)))
}

/// The container authorised by the caller's own Entra token.
pub fn token_container(url: Url, credential: Arc<dyn TokenCredential>) -> BlobContainer {
    BlobContainer::new(url, BlobAuth::Bearer(Arc::new(CallerToken(credential))))
}

fn field<'a>(value: Option<&'a str>, name: &str) -> Result<&'a str, String> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("the default datastore has no {name}"))
}

/// Storage account names: 3-24 lowercase letters and digits.
fn is_account_name(s: &str) -> bool {
    (3..=24).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Container names: 3-63 lowercase letters, digits and dashes.
fn is_container_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A DNS suffix such as `core.windows.net` (letters, digits, dots, dashes; no port or path).
fn is_dns_suffix(s: &str) -> bool {
    !s.is_empty()
        && s.contains('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// Storage tokens from the credential the ARM client uses (it caches them per scope).
struct CallerToken(Arc<dyn TokenCredential>);

impl BearerSource for CallerToken {
    fn token(&self) -> BoxFuture<'_, Result<String, BlobError>> {
        Box::pin(async move {
            let token = self
                .0
                .get_token(&[STORAGE_SCOPE], None)
                .await
                .map_err(|e| BlobError::Token(token_error(&e).to_string()))?;
            Ok(token.token.secret().to_string())
        })
    }
}

/// The per-workspace storage settings and the last decision about where snapshots go,
/// shared by the clones of a workspace client so concurrent stagings ask Azure once.
#[derive(Debug, Default)]
pub struct StorageState {
    blob_endpoint: Option<Url>,
    decided: tokio::sync::Mutex<Option<(SnapshotStore, Instant)>>,
}

impl StorageState {
    /// Settings with an optional blob service URL override (already checked).
    pub fn new(blob_endpoint: Option<Url>) -> StorageState {
        StorageState {
            blob_endpoint,
            decided: Default::default(),
        }
    }

    /// The blob service URL override, if any.
    pub fn blob_endpoint(&self) -> Option<&Url> {
        self.blob_endpoint.as_ref()
    }

    /// The current decision, or the one `decide` makes (then kept for its lifetime). Callers
    /// wait for one another, so a burst of stagings costs one decision. A refusal newly
    /// reached is logged here, once per decision.
    pub async fn get_or_decide<F>(
        &self,
        now: Instant,
        decide: F,
    ) -> Result<SnapshotStore, super::AzureError>
    where
        F: AsyncFnOnce() -> Result<SnapshotStore, super::AzureError>,
    {
        let mut slot = self.decided.lock().await;
        if let Some((store, until)) = slot.as_ref()
            && now < *until
        {
            return Ok(store.clone());
        }
        let store = decide().await?;
        if let SnapshotStore::Refused(reason) = &store {
            tracing::warn!(%reason, "snapshots go through startPendingUpload, uploaded whole");
        }
        *slot = Some((store.clone(), now + store.lifetime()));
        Ok(store)
    }

    /// Records that the datastore refused an upload (storage answered 403).
    pub async fn refuse(&self, reason: String, now: Instant) {
        tracing::warn!(%reason, "snapshots go through startPendingUpload, uploaded whole");
        *self.decided.lock().await = Some((SnapshotStore::Refused(reason), now + REFUSAL_REUSE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::models::workspace::{Datastore, DatastoreCredentials};
    use crate::azure::secret::Secret;

    fn recorded() -> DatastoreProperties {
        let mut d: Datastore =
            serde_json::from_value(crate::recorded::response("datastore_get.json")).unwrap();
        // The recording sanitized the account name to `Sanitized`, which Azure would refuse.
        d.properties.account_name = Some("salkdszptezyn4m".into());
        d.properties
    }

    #[test]
    fn container_url_is_what_the_sdk_builds_or_the_override() {
        let d = recorded();
        assert_eq!(
            container_url(&d, None).unwrap().as_str(),
            "https://salkdszptezyn4m.blob.core.windows.net/azureml-blobstore-8e7dad76-df37-472b-b882-0c1c58adfcf9"
        );
        let azurite = parse_blob_endpoint("http://127.0.0.1:10000/devstoreaccount1/").unwrap();
        assert_eq!(
            container_url(&d, Some(&azurite)).unwrap().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/azureml-blobstore-8e7dad76-df37-472b-b882-0c1c58adfcf9"
        );
    }

    #[test]
    fn a_datastore_that_would_send_credentials_elsewhere_is_refused() {
        let mut d = recorded();
        d.account_name = Some("evil.example.com/x".into());
        assert!(
            container_url(&d, None)
                .unwrap_err()
                .contains("spec.endpoints.blobStorage")
        );
        let mut d = recorded();
        d.protocol = Some("http".into());
        assert!(container_url(&d, None).is_err());
        let mut d = recorded();
        d.datastore_type = "AzureFile".into();
        assert!(container_url(&d, None).unwrap_err().contains("AzureFile"));
        let mut d = recorded();
        d.container_name = None;
        assert!(
            container_url(&d, None)
                .unwrap_err()
                .contains("containerName")
        );
    }

    #[test]
    fn identity_based_datastores_use_the_callers_token() {
        let mut d = recorded();
        assert_eq!(DatastoreAccess::of(&d), DatastoreAccess::ListSecrets);
        d.credentials = Some(DatastoreCredentials {
            credentials_type: "None".into(),
        });
        assert_eq!(DatastoreAccess::of(&d), DatastoreAccess::CallerToken);
    }

    #[test]
    fn blob_endpoint_override_is_https_or_loopback_http() {
        for ok in [
            "https://acct.blob.core.chinacloudapi.cn",
            "https://storage.internal:8443/acct",
            "http://127.0.0.1:10000/devstoreaccount1",
            "http://localhost:10000/devstoreaccount1",
            "http://[::1]:10000/devstoreaccount1",
        ] {
            assert!(parse_blob_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://acct.blob.core.windows.net",
            "http://10.0.0.1:10000/acct",
            "ftp://127.0.0.1/x",
            "https://acct.blob.core.windows.net/?sv=1&sig=x",
            "https://user@acct.blob.core.windows.net",
            "not a url",
        ] {
            assert!(parse_blob_endpoint(bad).is_err(), "{bad}");
        }
        let err =
            parse_blob_endpoint("https://a.blob.core.windows.net/c?sv=1&sig=SECRET").unwrap_err();
        assert!(!err.contains("SECRET"), "{err}");
    }

    #[test]
    fn only_a_sas_answer_makes_a_container() {
        let url = Url::parse("https://a.blob.core.windows.net/c").unwrap();
        let sas: DatastoreSecrets =
            serde_json::from_value(crate::recorded::response("datastore_list_secrets.json"))
                .unwrap();
        let c = sas_container(url.clone(), &sas).unwrap();
        assert_eq!(c.container_url(), &url);
        let key = DatastoreSecrets {
            secrets_type: "AccountKey".into(),
            sas_token: None,
        };
        assert!(
            sas_container(url.clone(), &key)
                .unwrap_err()
                .contains("AccountKey")
        );
        let unsigned = DatastoreSecrets {
            secrets_type: "Sas".into(),
            sas_token: Some(Secret::new("?sv=1&sp=r")),
        };
        assert!(sas_container(url, &unsigned).unwrap_err().contains("sig"));
    }

    #[tokio::test]
    async fn decisions_are_reused_for_their_lifetime_and_refusals_replace_them() {
        let state = StorageState::new(None);
        let t0 = Instant::now();
        let container = BlobContainer::new(
            Url::parse("https://a.blob.core.windows.net/c").unwrap(),
            BlobAuth::Sas(SasToken::new("sv=1&sig=s").unwrap()),
        );
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let decide = async || {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(SnapshotStore::Datastore {
                container: container.clone(),
                access: DatastoreAccess::ListSecrets,
            })
        };
        for minutes in [0, 29] {
            let at = t0 + Duration::from_secs(minutes * 60);
            let store = state.get_or_decide(at, decide).await.unwrap();
            assert!(matches!(store, SnapshotStore::Datastore { .. }));
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Past half the SAS lifetime, a new SAS is asked for.
        state
            .get_or_decide(t0 + Duration::from_secs(31 * 60), decide)
            .await
            .unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
        // A refusal from storage sticks for its own lifetime.
        state.refuse("storage answered 403".into(), t0).await;
        let store = state.get_or_decide(t0, decide).await.unwrap();
        assert!(matches!(store, SnapshotStore::Refused(r) if r.contains("403")));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
