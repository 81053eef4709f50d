//! Blob storage behind the fake (e.g. Azurite): Shared Key SAS signing for the SAS kinds the
//! service hands out, container creation and blob upload.
//!
//! - `startPendingUpload`: a container SAS `sr=c&sp=rcwl` (no delete), valid about 8 h from a
//!   start 10 min in the past (code/…2023-10-31.json #1: `st=03:16:33`, `se=11:26:33`, answered
//!   at 03:26:33);
//! - datastore `listSecrets`: an account SAS `ss=bf&srt=co&sp=rcuwdl`, valid `expireAfterHours`
//!   (job/…dependency_label_resolution.json #3);
//! - run log files: a read-only blob SAS `sr=b&sp=r` (not recorded: no recording shows
//!   `runs/{id}/details`).

use crate::options::StorageBackend;
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::{SignedDuration, Timestamp};

/// Storage service version the SAS tokens are signed for.
const SAS_VERSION: &str = "2021-12-02";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the storage account key is not valid base64")]
    BadKey,
    #[error("{action}: {message}")]
    Request { action: String, message: String },
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

fn sas_time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn offset(now: Timestamp, by: SignedDuration) -> Timestamp {
    now.saturating_add(by).unwrap_or(now)
}

/// What a service SAS grants.
pub struct ServiceSas<'a> {
    /// `c` (container) or `b` (blob).
    pub resource: &'a str,
    /// `container` or `container/blob`.
    pub path: &'a str,
    pub permissions: &'a str,
    pub start: Option<Timestamp>,
    pub expiry: Timestamp,
}

/// A service SAS query (no leading `?`).
pub fn service_sas(backend: &StorageBackend, sas: &ServiceSas<'_>) -> Result<String, StorageError> {
    let st = sas.start.map(sas_time).unwrap_or_default();
    let se = sas_time(sas.expiry);
    let canonical = format!("/blob/{}/{}", backend.account, sas.path);
    // permissions, start, expiry, resource, identifier, IP, protocol, version, signedResource,
    // snapshot time, encryption scope, rscc, rscd, rsce, rscl, rsct
    let string_to_sign = format!(
        "{}\n{st}\n{se}\n{canonical}\n\n\n\n{SAS_VERSION}\n{}\n\n\n\n\n\n\n",
        sas.permissions, sas.resource
    );
    let sig = sign(&backend.account_key_b64, &string_to_sign)?;
    let start = if st.is_empty() {
        String::new()
    } else {
        format!("&st={}", encode(&st))
    };
    Ok(format!(
        "sv={SAS_VERSION}{start}&se={}&sr={}&sp={}&sig={}",
        encode(&se),
        sas.resource,
        sas.permissions,
        encode(&sig)
    ))
}

/// An account SAS query (no leading `?`).
pub fn account_sas(
    backend: &StorageBackend,
    services: &str,
    resource_types: &str,
    permissions: &str,
    expiry: Timestamp,
) -> Result<String, StorageError> {
    let se = sas_time(expiry);
    // account, permissions, services, resource types, start, expiry, IP, protocol, version, encryption scope
    let string_to_sign = format!(
        "{}\n{permissions}\n{services}\n{resource_types}\n\n{se}\n\n\n{SAS_VERSION}\n\n",
        backend.account
    );
    let sig = sign(&backend.account_key_b64, &string_to_sign)?;
    Ok(format!(
        "sv={SAS_VERSION}&ss={services}&srt={resource_types}&sp={permissions}&se={}&sig={}",
        encode(&se),
        encode(&sig)
    ))
}

/// The upload container SAS of `startPendingUpload` (code/…2023-10-31.json #1).
pub fn pending_upload_sas(
    backend: &StorageBackend,
    container: &str,
    now: Timestamp,
) -> Result<String, StorageError> {
    service_sas(
        backend,
        &ServiceSas {
            resource: "c",
            path: container,
            permissions: "rcwl",
            start: Some(offset(now, SignedDuration::from_mins(-10))),
            expiry: offset(now, SignedDuration::from_hours(8)),
        },
    )
}

/// The datastore SAS of `listSecrets` (job/…dependency_label_resolution.json #3).
pub fn datastore_sas(
    backend: &StorageBackend,
    now: Timestamp,
    valid_hours: i64,
) -> Result<String, StorageError> {
    account_sas(
        backend,
        "bf",
        "co",
        "rcuwdl",
        offset(now, SignedDuration::from_hours(valid_hours)),
    )
}

/// A read-only SAS for one blob (log files of run details; not recorded).
pub fn blob_read_sas(
    backend: &StorageBackend,
    container: &str,
    blob: &str,
    now: Timestamp,
) -> Result<String, StorageError> {
    service_sas(
        backend,
        &ServiceSas {
            resource: "b",
            path: &format!("{container}/{blob}"),
            permissions: "r",
            start: None,
            expiry: offset(now, SignedDuration::from_hours(1)),
        },
    )
}

/// `{endpoint}/{container}`.
pub fn container_url(backend: &StorageBackend, container: &str) -> String {
    format!(
        "{}/{container}",
        backend.blob_endpoint.trim_end_matches('/')
    )
}

/// The fake's own account SAS for writing (container creation, log upload).
fn admin_sas(backend: &StorageBackend, now: Timestamp) -> Result<String, StorageError> {
    account_sas(
        backend,
        "b",
        "sco",
        "rwdlac",
        offset(now, SignedDuration::from_mins(10)),
    )
}

async fn send(
    request: reqwest::RequestBuilder,
    action: String,
    accepted: &[u16],
) -> Result<(), StorageError> {
    let fail = |message: String| StorageError::Request {
        action: action.clone(),
        message,
    };
    let response = request
        .header("x-ms-version", SAS_VERSION)
        .send()
        .await
        .map_err(|e| fail(e.without_url().to_string()))?;
    let status = response.status().as_u16();
    if accepted.contains(&status) {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    Err(fail(format!(
        "HTTP {status}: {}",
        text.chars().take(300).collect::<String>()
    )))
}

/// Creates `container` unless it exists.
pub async fn ensure_container(
    http: &reqwest::Client,
    backend: &StorageBackend,
    container: &str,
    now: Timestamp,
) -> Result<(), StorageError> {
    let url = format!(
        "{}?restype=container&{}",
        container_url(backend, container),
        admin_sas(backend, now)?
    );
    send(
        http.put(url).header("Content-Length", "0"),
        format!("creating container {container}"),
        &[201, 409],
    )
    .await
}

/// Writes (or overwrites) a block blob.
pub async fn put_blob(
    http: &reqwest::Client,
    backend: &StorageBackend,
    container: &str,
    blob: &str,
    content: Vec<u8>,
    now: Timestamp,
) -> Result<(), StorageError> {
    let url = format!(
        "{}/{blob}?{}",
        container_url(backend, container),
        admin_sas(backend, now)?
    );
    // Explicit, since an empty body would otherwise go without it and Azurite answers 400.
    let length = content.len().to_string();
    send(
        http.put(url)
            .header("x-ms-blob-type", "BlockBlob")
            .header("Content-Length", length)
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(content),
        format!("writing blob {container}/{blob}"),
        &[201],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(key: &str) -> StorageBackend {
        StorageBackend {
            blob_endpoint: "http://127.0.0.1:1/acct".into(),
            account: "acct".into(),
            account_key_b64: key.into(),
        }
    }

    #[test]
    fn pending_upload_sas_has_the_recorded_permissions_and_lifetime() {
        let now: Timestamp = "2023-10-31T03:26:33Z".parse().unwrap();
        let a = pending_upload_sas(&backend("a2V5LW9uZQ=="), "c", now).unwrap();
        let b = pending_upload_sas(&backend("a2V5LXR3bw=="), "c", now).unwrap();
        assert!(a.contains("sr=c&sp=rcwl&"), "{a}");
        assert!(a.contains("st=2023-10-31T03%3A16%3A33Z"), "{a}");
        assert!(a.contains("se=2023-10-31T11%3A26%3A33Z"), "{a}");
        assert_ne!(a, b, "different keys must give different signatures");
        assert!(matches!(
            pending_upload_sas(&backend("not base64!"), "c", now),
            Err(StorageError::BadKey)
        ));
    }

    #[test]
    fn datastore_sas_is_an_account_sas_valid_for_the_asked_hours() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let sas = datastore_sas(&backend("a2V5LW9uZQ=="), now, 3).unwrap();
        assert!(sas.contains("ss=bf&srt=co&sp=rcuwdl&"), "{sas}");
        assert!(sas.contains("se=2026-01-01T03%3A00%3A00Z"), "{sas}");
    }
}
