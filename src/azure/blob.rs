//! A blob container client for code snapshots (Azure Blob Storage REST over reqwest).
//!
//! It covers what snapshot upload needs and nothing more: existence checks, Put Blob (with
//! user metadata), Put Block + Put Block List streamed from disk for large files, server-side
//! copies (Copy Blob From URL), downloads and listing (with metadata). Requests
//! are retried on throttling, 5xx and lost connections. Errors name the operation and the
//! blob; a SAS signature never appears in an error, a log line or `Debug` output.

mod auth;
mod error;
mod list;
mod stats;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use reqwest::{Method, RequestBuilder, Response};
use tokio::io::AsyncReadExt;
use url::Url;

pub use auth::{BearerSource, BlobAuth, SasToken, redact};
pub use error::BlobError;
pub use list::BlobItem;
pub use stats::{BlobStats, Op};

use stats::Counters;

/// Storage REST version sent as `x-ms-version` (Azurite 3 accepts it; it supports
/// `x-ms-copy-source-authorization` and bearer tokens).
pub const STORAGE_VERSION: &str = "2021-10-04";

/// Tunables; the defaults suit code snapshots.
#[derive(Debug, Clone)]
pub struct BlobOptions {
    /// Block size for block uploads (Azure allows up to 4000 MiB; 8 MiB keeps memory small).
    pub block_size: usize,
    /// Files larger than this are uploaded as blocks instead of one Put Blob.
    pub single_put_max: u64,
    /// Retries after the first attempt for retryable failures.
    pub max_retries: u32,
    /// First backoff delay; doubles per retry, capped at [`MAX_INLINE_WAIT`], with jitter.
    pub base_delay: Duration,
}

impl Default for BlobOptions {
    fn default() -> Self {
        BlobOptions {
            block_size: 8 * 1024 * 1024,
            single_put_max: 8 * 1024 * 1024,
            max_retries: 4,
            base_delay: Duration::from_millis(200),
        }
    }
}

/// One blob container, addressed by its URL, with one authorisation strategy.
#[derive(Debug, Clone)]
pub struct BlobContainer {
    http: reqwest::Client,
    container_url: Url,
    prefix: String,
    auth: BlobAuth,
    counters: Arc<Counters>,
    options: BlobOptions,
}

impl BlobContainer {
    /// From a SAS URL as `startPendingUpload` returns it: a container URL, or a folder inside
    /// a container (then [`prefix`](Self::prefix) is that folder), with the SAS as query.
    /// Path-style URLs (an IP or `localhost` host, as the emulator uses) carry the account
    /// name as first path segment.
    pub fn from_sas_url(sas_url: &str) -> Result<BlobContainer, BlobError> {
        let url = Url::parse(sas_url).map_err(|e| BlobError::InvalidUrl {
            reason: format!("'{}' is not a URL: {e}", redact(sas_url)),
        })?;
        let sas = SasToken::new(url.query().unwrap_or_default())?;
        let (container_url, prefix) = split_container_url(&url)?;
        Ok(BlobContainer::new(container_url, BlobAuth::Sas(sas)).with_prefix(prefix))
    }

    /// From a container URL without credentials in it, and an authorisation strategy.
    pub fn new(container_url: Url, auth: BlobAuth) -> BlobContainer {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .user_agent(concat!("amlops/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        BlobContainer {
            http,
            container_url,
            prefix: String::new(),
            auth,
            counters: Arc::default(),
            options: BlobOptions::default(),
        }
    }

    /// Replaces the HTTP client (custom CA, proxy, timeouts).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    pub fn with_options(mut self, options: BlobOptions) -> Self {
        self.options = options;
        self
    }

    fn with_prefix(mut self, prefix: String) -> Self {
        self.prefix = prefix;
        self
    }

    /// The folder inside the container the SAS URL pointed at (`""` for the container root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The container URL, without credentials.
    pub fn container_url(&self) -> &Url {
        &self.container_url
    }

    /// The URL of a blob (container-relative name), without credentials.
    pub fn blob_url(&self, name: &str) -> Url {
        let mut url = self.container_url.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(name.split('/'));
        }
        url
    }

    /// Requests sent and bytes uploaded so far by this client and its clones.
    pub fn stats(&self) -> BlobStats {
        self.counters.snapshot()
    }

    /// Whether the blob exists (HEAD).
    pub async fn exists(&self, name: &str) -> Result<bool, BlobError> {
        let url = self.blob_url(name);
        match self
            .send(Op::Head, name, 0, || {
                self.request(Method::HEAD, url.clone())
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Downloads a blob; `None` when it does not exist.
    pub async fn get_blob(&self, name: &str) -> Result<Option<Bytes>, BlobError> {
        let url = self.blob_url(name);
        let response = match self
            .send(Op::Get, name, 0, || self.request(Method::GET, url.clone()))
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport(Op::Get, name, e))?;
        Ok(Some(bytes))
    }

    /// Writes a whole blob in one request (replacing any existing one).
    pub async fn put_blob(&self, name: &str, bytes: Bytes) -> Result<(), BlobError> {
        self.put_blob_with_metadata(name, bytes, &[]).await
    }

    /// Writes a whole blob with user metadata (`x-ms-meta-<key>`; keys are C# identifiers,
    /// values ASCII, 8 KiB in all), replacing any existing blob.
    pub async fn put_blob_with_metadata(
        &self,
        name: &str,
        bytes: Bytes,
        metadata: &[(&str, &str)],
    ) -> Result<(), BlobError> {
        let url = self.blob_url(name);
        let len = bytes.len() as u64;
        self.send(Op::PutBlob, name, len, || async {
            let mut request = self
                .request(Method::PUT, url.clone())
                .await?
                .header("x-ms-blob-type", "BlockBlob")
                .header("content-type", "application/octet-stream")
                .body(bytes.clone());
            for (key, value) in metadata {
                request = request.header(format!("x-ms-meta-{key}"), *value);
            }
            Ok(request)
        })
        .await
        .map(|_| ())
    }

    /// Uploads a file: one Put Blob when small, else Put Block per `block_size` chunk read
    /// from disk (one chunk in memory at a time) and a final Put Block List.
    pub async fn upload_file(&self, name: &str, path: &Path) -> Result<(), BlobError> {
        let io = |source| BlobError::Io {
            path: path.to_path_buf(),
            source,
        };
        let size = tokio::fs::metadata(path).await.map_err(io)?.len();
        if size <= self.options.single_put_max {
            let bytes = tokio::fs::read(path).await.map_err(io)?;
            return self.put_blob(name, Bytes::from(bytes)).await;
        }
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let mut ids = Vec::new();
        loop {
            let mut chunk = Vec::with_capacity(self.options.block_size);
            (&mut file)
                .take(self.options.block_size as u64)
                .read_to_end(&mut chunk)
                .await
                .map_err(io)?;
            if chunk.is_empty() {
                break;
            }
            let id = block_id(ids.len());
            self.put_block(name, &id, Bytes::from(chunk)).await?;
            ids.push(id);
        }
        self.put_block_list(name, &ids).await
    }

    /// Stages one block of a block blob.
    pub async fn put_block(
        &self,
        name: &str,
        block_id: &str,
        bytes: Bytes,
    ) -> Result<(), BlobError> {
        let mut url = self.blob_url(name);
        url.query_pairs_mut()
            .append_pair("comp", "block")
            .append_pair("blockid", block_id);
        let len = bytes.len() as u64;
        self.send(Op::PutBlock, name, len, || async {
            Ok(self
                .request(Method::PUT, url.clone())
                .await?
                .body(bytes.clone()))
        })
        .await
        .map(|_| ())
    }

    /// Commits staged blocks, in order, as the blob's content.
    pub async fn put_block_list(&self, name: &str, block_ids: &[String]) -> Result<(), BlobError> {
        let mut url = self.blob_url(name);
        url.query_pairs_mut().append_pair("comp", "blocklist");
        let body = Bytes::from(block_list_xml(block_ids));
        let len = body.len() as u64;
        self.send(Op::PutBlockList, name, len, || async {
            Ok(self
                .request(Method::PUT, url.clone())
                .await?
                .header("content-type", "application/xml")
                .body(body.clone()))
        })
        .await
        .map(|_| ())
    }

    /// Server-side copy of `source` (a blob URL without credentials, in a container the same
    /// credentials can read) to `dst` (Copy Blob From URL, synchronous; sources up to 256 MiB).
    pub async fn copy_from_url(&self, dst: &str, source: &Url) -> Result<(), BlobError> {
        let url = self.blob_url(dst);
        let response = self
            .send(Op::Copy, dst, 0, || async {
                let request = self
                    .request(Method::PUT, url.clone())
                    .await?
                    .header("x-ms-requires-sync", "true")
                    .header("content-length", "0");
                self.auth
                    .authorize_copy_source(request, source.clone())
                    .await
            })
            .await?;
        match header(&response, "x-ms-copy-status").as_str() {
            "success" => Ok(()),
            other => Err(BlobError::Copy {
                blob: dst.to_string(),
                status: other.to_string(),
            }),
        }
    }

    /// Server-side copy of another blob of this container.
    pub async fn copy_blob(&self, dst: &str, src: &str) -> Result<(), BlobError> {
        self.copy_from_url(dst, &self.blob_url(src)).await
    }

    /// All blobs whose name starts with `prefix` (follows continuation markers).
    pub async fn list(&self, prefix: &str) -> Result<Vec<BlobItem>, BlobError> {
        self.list_with(prefix, false).await
    }

    /// Like [`list`](Self::list), with each blob's user metadata.
    pub async fn list_with_metadata(&self, prefix: &str) -> Result<Vec<BlobItem>, BlobError> {
        self.list_with(prefix, true).await
    }

    async fn list_with(&self, prefix: &str, metadata: bool) -> Result<Vec<BlobItem>, BlobError> {
        let mut items = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut url = self.container_url.clone();
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("restype", "container")
                    .append_pair("comp", "list");
                q.append_pair("prefix", prefix);
                if metadata {
                    q.append_pair("include", "metadata");
                }
                if let Some(m) = &marker {
                    q.append_pair("marker", m);
                }
            }
            let response = self
                .send(Op::List, prefix, 0, || {
                    self.request(Method::GET, url.clone())
                })
                .await?;
            let text = response
                .text()
                .await
                .map_err(|e| transport(Op::List, prefix, e))?;
            let (page, next) = list::parse_page(&text);
            items.extend(page);
            match next {
                Some(m) => marker = Some(m),
                None => return Ok(items),
            }
        }
    }

    async fn request(&self, method: Method, url: Url) -> Result<RequestBuilder, BlobError> {
        Ok(self
            .auth
            .authorize(&self.http, method, url)
            .await?
            .header("x-ms-version", STORAGE_VERSION))
    }

    /// Sends the request `make` builds, retrying retryable failures with jittered backoff
    /// (honouring `Retry-After`); non-2xx answers become [`BlobError::Status`].
    async fn send<F, Fut>(
        &self,
        op: Op,
        blob: &str,
        body_len: u64,
        make: F,
    ) -> Result<Response, BlobError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<RequestBuilder, BlobError>>,
    {
        let mut attempt = 0;
        loop {
            let request = make().await?;
            self.counters.record(op, body_len);
            let (error, retry_after) = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    (status_error(op, blob, response).await, retry_after)
                }
                Err(e) => (transport(op, blob, e), None),
            };
            let wait = retry_after.unwrap_or_else(|| backoff(self.options.base_delay, attempt));
            if !error.is_retryable()
                || attempt >= self.options.max_retries
                || wait > MAX_INLINE_WAIT
            {
                return Err(error);
            }
            tracing::debug!(blob, attempt, error = %error, "retrying blob request");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// Splits a (SAS) URL into the container URL and the folder below it.
fn split_container_url(url: &Url) -> Result<(Url, String), BlobError> {
    let path_style = matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)))
        || url.host_str() == Some("localhost");
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|p| !p.is_empty()).collect())
        .unwrap_or_default();
    let skip = if path_style { 2 } else { 1 };
    if segments.len() < skip {
        return Err(BlobError::InvalidUrl {
            reason: format!(
                "'{}' names no container (expected {}/<container>[/<folder>])",
                redact(url.as_str()),
                if path_style {
                    "http(s)://host/<account>"
                } else {
                    "https://<account>.blob.core.windows.net"
                }
            ),
        });
    }
    let mut container = url.clone();
    container.set_query(None);
    container.set_fragment(None);
    container.set_path(&format!("/{}", segments[..skip].join("/")));
    let prefix = segments[skip..]
        .iter()
        .map(|s| percent_decode(s))
        .collect::<Vec<_>>()
        .join("/");
    Ok((container, prefix))
}

fn percent_decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Block ids must have equal length within a blob; base64 of a zero-padded index.
fn block_id(index: usize) -> String {
    STANDARD.encode(format!("{index:08}"))
}

fn block_list_xml(ids: &[String]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for id in ids {
        xml.push_str("<Latest>");
        xml.push_str(id);
        xml.push_str("</Latest>");
    }
    xml.push_str("</BlockList>");
    xml
}

/// Longest wait between two attempts: storage asking for longer ends the upload with the error
/// (retryable), so the reconcile gives its worker back and is requeued.
pub const MAX_INLINE_WAIT: Duration = Duration::from_secs(1);

fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base
        .saturating_mul(1u32 << attempt.min(16))
        .min(MAX_INLINE_WAIT);
    let jitter = rand::random_range(0.5..1.0);
    exp.mul_f64(jitter)
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Head => "existence check",
        Op::Get => "download",
        Op::List => "listing",
        Op::PutBlob => "upload",
        Op::PutBlock => "block upload",
        Op::PutBlockList => "block list commit",
        Op::Copy => "server-side copy",
    }
}

fn transport(op: Op, blob: &str, e: reqwest::Error) -> BlobError {
    BlobError::Transport {
        op: op_name(op),
        blob: blob.to_string(),
        source: e.without_url(),
    }
}

async fn status_error(op: Op, blob: &str, response: Response) -> BlobError {
    let status = response.status();
    let header_code = header(&response, "x-ms-error-code");
    let body = response.text().await.unwrap_or_default();
    let (body_code, message) = list::parse_error(&body);
    let code = if header_code.is_empty() {
        body_code
    } else {
        header_code
    };
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or_default().to_string()
    } else {
        redact(&message)
    };
    BlobError::Status {
        op: op_name(op),
        blob: blob.to_string(),
        status: status.as_u16(),
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_style_sas_url_splits_into_container_and_folder() {
        let c = BlobContainer::from_sas_url(
            "https://acct.blob.core.windows.net/azureml-blobstore/LocalUpload/abc?sv=2021-10-04&sr=c&sig=s%2Bx",
        )
        .unwrap();
        assert_eq!(
            c.container_url().as_str(),
            "https://acct.blob.core.windows.net/azureml-blobstore"
        );
        assert_eq!(c.prefix(), "LocalUpload/abc");
        assert_eq!(
            c.blob_url("a dir/b#c.py").as_str(),
            "https://acct.blob.core.windows.net/azureml-blobstore/a%20dir/b%23c.py"
        );
    }

    #[test]
    fn path_style_sas_url_keeps_the_account_segment() {
        let c =
            BlobContainer::from_sas_url("http://127.0.0.1:10000/devstoreaccount1/code?sv=1&sig=x")
                .unwrap();
        assert_eq!(
            c.container_url().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/code"
        );
        assert_eq!(c.prefix(), "");
    }

    #[test]
    fn url_errors_do_not_leak_the_signature() {
        let err = BlobContainer::from_sas_url(
            "http://127.0.0.1:10000/devstoreaccount1?sv=1&sig=TOPSECRET",
        )
        .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(text.contains("names no container"), "{text}");
        assert!(!text.contains("TOPSECRET"), "{text}");
        let no_sig =
            BlobContainer::from_sas_url("https://a.blob.core.windows.net/c?sv=1").unwrap_err();
        assert!(no_sig.to_string().contains("sig"));
    }

    #[test]
    fn block_ids_have_equal_length_and_list_keeps_order() {
        assert_eq!(block_id(0).len(), block_id(12345).len());
        let xml = block_list_xml(&[block_id(0), block_id(1)]);
        assert!(xml.find(&block_id(0)).unwrap() < xml.find(&block_id(1)).unwrap());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        assert!(backoff(base, 0) <= Duration::from_millis(100));
        assert!(backoff(base, 3) >= Duration::from_millis(400));
        assert!(backoff(base, 30) <= MAX_INLINE_WAIT);
    }
}
