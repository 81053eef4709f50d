//! Blob storage for code uploads: container naming, Shared Key SAS signing (account SAS to
//! create the container, service SAS for the client) and container creation.

use crate::options::StorageBackend;
use aws_lc_rs::{digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::{SignedDuration, Timestamp};

/// Storage service version the SAS tokens are signed for.
const SAS_VERSION: &str = "2021-12-02";
/// Lifetime of a handed-out SAS.
const SAS_TTL: SignedDuration = SignedDuration::from_hours(2);

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the storage account key is not valid base64")]
    BadKey,
    #[error("creating container {container}: {message}")]
    Create { container: String, message: String },
}

/// Where a client uploads: the container URL and the same URL with a SAS query.
pub struct UploadTarget {
    pub container_url: String,
    pub sas_url: String,
}

/// One container per code version: `code-` + 40 hex digits of the version id's SHA-256.
pub fn container_name(code_version_key: &str) -> String {
    let d = digest::digest(&digest::SHA256, code_version_key.as_bytes());
    let hex: String = d
        .as_ref()
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("code-{hex}")
}

/// A target on a storage account that does not exist (no backend configured).
pub fn placeholder(account: &str, container: &str) -> UploadTarget {
    let container_url = format!("https://{account}.blob.core.windows.net/{container}");
    let sas_url = format!("{container_url}?sv={SAS_VERSION}&sr=c&sp=racwdl&sig=fake-placeholder");
    UploadTarget {
        container_url,
        sas_url,
    }
}

fn sign(key_b64: &str, string_to_sign: &str) -> Result<String, StorageError> {
    let key = STANDARD.decode(key_b64).map_err(|_| StorageError::BadKey)?;
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        string_to_sign.as_bytes(),
    );
    Ok(STANDARD.encode(tag.as_ref()))
}

/// Everything but RFC 3986 unreserved characters is percent-encoded in query values.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string()
}

fn expiry(now: Timestamp) -> String {
    now.saturating_add(SAS_TTL)
        .unwrap_or(now)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Service SAS for one container (read, add, create, write, delete, list).
pub fn container_sas(
    backend: &StorageBackend,
    container: &str,
    now: Timestamp,
) -> Result<String, StorageError> {
    let (perms, se) = ("racwdl", expiry(now));
    let resource = format!("/blob/{}/{container}", backend.account);
    // permissions, start, expiry, resource, identifier, IP, protocol, version, signedResource,
    // snapshot time, encryption scope, rscc, rscd, rsce, rscl, rsct
    let string_to_sign =
        format!("{perms}\n\n{se}\n{resource}\n\n\n\n{SAS_VERSION}\nc\n\n\n\n\n\n\n");
    let sig = sign(&backend.account_key_b64, &string_to_sign)?;
    Ok(format!(
        "sv={SAS_VERSION}&sr=c&sp={perms}&se={}&sig={}",
        encode(&se),
        encode(&sig)
    ))
}

/// Account SAS allowing container creation.
fn account_sas(backend: &StorageBackend, now: Timestamp) -> Result<String, StorageError> {
    let (perms, se) = ("rwdlac", expiry(now));
    // account, permissions, services, resource types, start, expiry, IP, protocol, version, encryption scope
    let string_to_sign = format!(
        "{}\n{perms}\nb\nsco\n\n{se}\n\n\n{SAS_VERSION}\n\n",
        backend.account
    );
    let sig = sign(&backend.account_key_b64, &string_to_sign)?;
    Ok(format!(
        "sv={SAS_VERSION}&ss=b&srt=sco&sp={perms}&se={}&sig={}",
        encode(&se),
        encode(&sig)
    ))
}

/// Creates the container if needed and returns its URLs.
pub async fn prepare_container(
    http: &reqwest::Client,
    backend: &StorageBackend,
    container: &str,
    now: Timestamp,
) -> Result<UploadTarget, StorageError> {
    let container_url = format!(
        "{}/{container}",
        backend.blob_endpoint.trim_end_matches('/')
    );
    let create_url = format!(
        "{container_url}?restype=container&{}",
        account_sas(backend, now)?
    );
    let fail = |message: String| StorageError::Create {
        container: container.to_string(),
        message,
    };
    let response = http
        .put(&create_url)
        .header("x-ms-version", SAS_VERSION)
        .header("Content-Length", "0")
        .send()
        .await
        .map_err(|e| fail(e.without_url().to_string()))?;
    let status = response.status().as_u16();
    if status != 201 && status != 409 {
        let text = response.text().await.unwrap_or_default();
        return Err(fail(format!(
            "HTTP {status}: {}",
            text.chars().take(300).collect::<String>()
        )));
    }
    let sas_url = format!(
        "{container_url}?{}",
        container_sas(backend, container, now)?
    );
    Ok(UploadTarget {
        container_url,
        sas_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_are_valid_and_distinct() {
        let a = container_name("/subscriptions/s/x/codes/c/versions/1");
        let b = container_name("/subscriptions/s/x/codes/c/versions/2");
        assert_ne!(a, b);
        assert!(
            a.len() <= 63
                && a.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{a}"
        );
    }

    #[test]
    fn container_sas_is_signed_with_the_account_key() {
        let backend = |key: &str| StorageBackend {
            blob_endpoint: "http://127.0.0.1:1/acct".into(),
            account: "acct".into(),
            account_key_b64: key.into(),
        };
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let a = container_sas(&backend("a2V5LW9uZQ=="), "c", now).unwrap();
        let b = container_sas(&backend("a2V5LXR3bw=="), "c", now).unwrap();
        assert!(
            a.contains("sr=c") && a.contains("se=2026-01-01T02%3A00%3A00Z"),
            "{a}"
        );
        assert_ne!(a, b, "different keys must give different signatures");
        assert!(matches!(
            container_sas(&backend("not base64!"), "c", now),
            Err(StorageError::BadKey)
        ));
    }
}
