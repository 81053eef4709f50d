//! The ARM client: base URL + api-version, bearer auth, user agent, timeouts, retries
//! with jittered backoff honouring `Retry-After`, the subscription's request budget, and a
//! hook that reports every HTTP exchange so the controller can count calls.
//!
//! A call never waits long: a backoff, `Retry-After` or budget wait over
//! [`RetryPolicy::max_inline_wait`] returns the error instead (its
//! [`AzureError::retry_after`] says when to try again), so a reconcile gives its worker back
//! and is requeued.

use super::budget::{Access, ArmBudget, SubscriptionBudget, subscription_of};
use super::credential::{CredentialSource, Endpoints, build_credential, token_error};
use super::error::{AzureError, scrub};
use super::http::{HttpOptions, build_http_client};
use super::lro::PollOptions;
use super::retry::{RetryPolicy, retry_after};
use azure_core::credentials::TokenCredential;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use url::Url;

/// The Azure ML REST API version amlops is written against.
pub const API_VERSION: &str = "2026-07-01";

/// Receives one report per HTTP exchange with ARM (including retries and polls):
/// the amlops operation name and the HTTP status, or `None` when no answer came.
pub trait CallObserver: Send + Sync {
    /// Called after each exchange.
    fn on_call(&self, operation: &'static str, status: Option<u16>);
}

impl<F: Fn(&'static str, Option<u16>) + Send + Sync> CallObserver for F {
    fn on_call(&self, operation: &'static str, status: Option<u16>) {
        self(operation, status)
    }
}

/// Everything tunable about the client.
#[derive(Debug, Clone)]
pub struct ArmConfig {
    /// ARM and authority endpoints.
    pub endpoints: Endpoints,
    /// `api-version` query parameter.
    pub api_version: String,
    /// Timeouts and extra CAs.
    pub http: HttpOptions,
    /// Retries of retryable failures.
    pub retry: RetryPolicy,
    /// The request budget per subscription; clones of this config share it.
    pub budget: ArmBudget,
    /// Long-running-operation polling.
    pub polling: PollOptions,
}

impl Default for ArmConfig {
    fn default() -> Self {
        Self {
            endpoints: Endpoints::default(),
            api_version: API_VERSION.to_owned(),
            http: HttpOptions::default(),
            retry: RetryPolicy::default(),
            budget: ArmBudget::default(),
            polling: PollOptions::default(),
        }
    }
}

/// A successful (2xx) ARM answer.
#[derive(Debug)]
pub struct ArmResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// Raw body.
    pub body: bytes::Bytes,
}

impl ArmResponse {
    /// Decodes the JSON body, naming the operation when it does not fit the model.
    pub fn json<T: DeserializeOwned>(&self, operation: &'static str) -> Result<T, AzureError> {
        serde_json::from_slice(&self.body).map_err(|e| AzureError::InvalidResponse {
            operation,
            status: self.status,
            message: format!("body does not match the expected model: {e}"),
        })
    }
}

/// Where a request goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// Path segments under the ARM base URL (each percent-encoded) plus query pairs;
    /// `api-version` is added.
    Path {
        /// Unencoded path segments.
        segments: Vec<String>,
        /// Extra query parameters.
        query: Vec<(&'static str, String)>,
    },
    /// An absolute URL given by ARM (LRO polls, next links); it already carries its
    /// api-version and must be on the ARM origin.
    Absolute(String),
    /// A URL on an Azure ML service host that an ARM answer named (the workspace's
    /// `discoveryUrl` and the regional API it lists, where run history lives). Must be https:
    /// the same bearer token goes there.
    Service(Url),
}

/// One logical ARM call (retried as a unit).
#[derive(Debug, Clone)]
pub struct ArmRequest {
    /// Operation name for errors and the call observer, e.g. `compute.get`.
    pub operation: &'static str,
    /// HTTP method.
    pub method: Method,
    /// URL.
    pub target: Target,
    /// JSON body.
    pub body: Option<Vec<u8>>,
    /// Error statuses that are final for this call: returned at once and marked as
    /// needing a human (e.g. 409 on an immutable asset version).
    pub final_statuses: &'static [u16],
    /// Send no bearer token (public endpoints such as discovery).
    pub anonymous: bool,
}

impl ArmRequest {
    /// A request to a path under the ARM base URL.
    pub fn new(operation: &'static str, method: Method, segments: Vec<String>) -> Self {
        Self {
            operation,
            method,
            target: Target::Path {
                segments,
                query: Vec::new(),
            },
            body: None,
            final_statuses: &[],
            anonymous: false,
        }
    }

    /// A request to an Azure ML service host named by ARM (see [`Target::Service`]).
    pub fn service(operation: &'static str, method: Method, url: Url) -> Self {
        Self {
            operation,
            method,
            target: Target::Service(url),
            body: None,
            final_statuses: &[],
            anonymous: false,
        }
    }

    /// Sends no token with this request.
    pub fn without_token(mut self) -> Self {
        self.anonymous = true;
        self
    }

    /// A request to an absolute URL from ARM.
    pub fn absolute(operation: &'static str, method: Method, url: String) -> Self {
        Self {
            operation,
            method,
            target: Target::Absolute(url),
            body: None,
            final_statuses: &[],
            anonymous: false,
        }
    }

    /// The same call sent to an absolute URL from ARM (next pages).
    pub fn with_absolute(mut self, url: String) -> Self {
        self.target = Target::Absolute(url);
        self
    }

    /// Adds a query parameter (ignored for absolute URLs).
    pub fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        if let Target::Path { query, .. } = &mut self.target {
            query.push((name, value.into()));
        }
        self
    }

    /// Sets the JSON body.
    pub fn json<T: serde::Serialize>(mut self, body: &T) -> Result<Self, AzureError> {
        let bytes = serde_json::to_vec(body).map_err(|e| AzureError::Config {
            message: format!("{}: cannot serialize the request body: {e}", self.operation),
        })?;
        self.body = Some(bytes);
        Ok(self)
    }

    /// Marks statuses as final (see [`ArmRequest::final_statuses`]).
    pub fn final_on(mut self, statuses: &'static [u16]) -> Self {
        self.final_statuses = statuses;
        self
    }
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    api_version: String,
    credential: Arc<dyn TokenCredential>,
    scope: String,
    retry: RetryPolicy,
    budget: ArmBudget,
    polling: PollOptions,
    /// Run-history hosts found through discovery, per workspace (they do not move).
    history_hosts: std::sync::Mutex<std::collections::HashMap<String, Url>>,
}

/// A cheap-to-clone ARM client sharing one HTTP pool and credential (and so one cached
/// token); the request budget is shared with every client of the same [`ArmConfig`].
#[derive(Clone)]
pub struct ArmClient {
    inner: Arc<Inner>,
    observer: Option<Arc<dyn CallObserver>>,
}

impl std::fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmClient")
            .field("base", &self.inner.base.as_str())
            .field("api_version", &self.inner.api_version)
            .finish_non_exhaustive()
    }
}

impl ArmClient {
    /// Builds the HTTPS client and the credential, then the ARM client.
    pub fn new(config: ArmConfig, source: &CredentialSource) -> Result<Self, AzureError> {
        let http = build_http_client(&config.http)?;
        let credential = build_credential(source, &config.endpoints, &http)?;
        Self::with_credential(config, http, credential)
    }

    /// Builds the client around an existing HTTP client and credential.
    pub fn with_credential(
        config: ArmConfig,
        http: reqwest::Client,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self, AzureError> {
        config
            .budget
            .limits()
            .validate()
            .map_err(|message| AzureError::Config { message })?;
        let scope = config.endpoints.arm_scope();
        let mut base = config.endpoints.resource_manager;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                api_version: config.api_version,
                credential,
                scope,
                retry: config.retry,
                budget: config.budget,
                polling: config.polling,
                history_hosts: Default::default(),
            }),
            observer: None,
        })
    }

    /// Reports every exchange to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The credential (and so its token cache), for other Azure audiences such as storage.
    pub fn credential(&self) -> Arc<dyn TokenCredential> {
        Arc::clone(&self.inner.credential)
    }

    /// Polling settings.
    pub fn polling(&self) -> &PollOptions {
        &self.inner.polling
    }

    /// The full URL of a request target; absolute URLs must stay on the ARM origin so
    /// a forged or corrupted poll URL can never receive our bearer token.
    pub fn url(&self, target: &Target) -> Result<Url, AzureError> {
        match target {
            Target::Path { segments, query } => {
                let mut url = self.inner.base.clone();
                {
                    let mut path = url.path_segments_mut().map_err(|()| AzureError::Config {
                        message: format!("ARM endpoint {} cannot take a path", self.inner.base),
                    })?;
                    path.pop_if_empty();
                    path.extend(segments);
                }
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("api-version", &self.inner.api_version);
                    for (k, v) in query {
                        q.append_pair(k, v);
                    }
                }
                Ok(url)
            }
            Target::Absolute(raw) => {
                let url = Url::parse(raw).map_err(|e| AzureError::Config {
                    message: format!("URL from Azure {raw:?} is invalid: {e}"),
                })?;
                if url.origin() != self.inner.base.origin() {
                    return Err(AzureError::Config {
                        message: format!(
                            "URL {raw:?} is not on the ARM endpoint {}; refusing to send a token there",
                            self.inner.base
                        ),
                    });
                }
                Ok(url)
            }
            Target::Service(url) if url.scheme() == "https" => Ok(url.clone()),
            Target::Service(url) => Err(AzureError::Config {
                message: format!(
                    "Azure ML service URL {} is not https; refusing to send a token there",
                    url.origin().ascii_serialization()
                ),
            }),
        }
    }

    /// Sends a request, retrying retryable failures; returns the 2xx answer or the
    /// classified error of the last attempt.
    pub async fn send(&self, request: &ArmRequest) -> Result<ArmResponse, AzureError> {
        let url = self.url(&request.target)?;
        let mut retry = 0;
        loop {
            let err = match self.attempt(request, &url).await {
                Ok(resp) => return Ok(resp),
                Err(e) => e,
            };
            let is_final = err
                .status()
                .is_some_and(|s| request.final_statuses.contains(&s));
            if is_final {
                return Err(err.needs_human());
            }
            if !err.retryable() || retry >= self.inner.retry.max_retries {
                return Err(err);
            }
            let wait = self
                .inner
                .retry
                .delay(retry, err.retry_after(), rand::random::<f64>());
            if wait > self.inner.retry.max_inline_wait {
                return Err(err);
            }
            tracing::debug!(
                operation = request.operation,
                code = err.code(),
                retry,
                wait_ms = wait.as_millis() as u64,
                "retrying ARM call"
            );
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    /// Sends and decodes a JSON answer.
    pub async fn send_json<T: DeserializeOwned>(
        &self,
        request: &ArmRequest,
    ) -> Result<T, AzureError> {
        self.send(request).await?.json(request.operation)
    }

    /// Waits for a token of the subscription's budget, briefly, or says how long it would be.
    async fn take_budget(
        &self,
        budget: &SubscriptionBudget,
        access: Access,
        operation: &'static str,
    ) -> Result<(), AzureError> {
        match budget.acquire(access, Instant::now(), self.inner.retry.max_inline_wait) {
            Ok(wait) if wait.is_zero() => Ok(()),
            Ok(wait) => {
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Err(wait) => Err(AzureError::OverBudget {
                operation,
                access: access.noun(),
                wait,
            }),
        }
    }

    async fn attempt(&self, request: &ArmRequest, url: &Url) -> Result<ArmResponse, AzureError> {
        let access = Access::of(&request.method);
        let budget = self.inner.budget.subscription(subscription_of(url));
        self.take_budget(&budget, access, request.operation).await?;
        let mut builder = self.inner.http.request(request.method.clone(), url.clone());
        if !request.anonymous {
            builder = builder.header(AUTHORIZATION, self.bearer().await?);
        }
        builder = builder
            .header(ACCEPT, "application/json")
            .header("x-ms-client-request-id", uuid::Uuid::new_v4().to_string());
        if let Some(body) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let result = match builder.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                resp.bytes().await.map(|body| (status, headers, body))
            }
            Err(e) => Err(e),
        };
        let (status, headers, body) = match result {
            Ok(parts) => parts,
            Err(e) => {
                self.observe(request.operation, None);
                return Err(transport_error(request.operation, &e));
            }
        };
        self.observe(request.operation, Some(status));
        // A bogus header must not park a reconcile for hours.
        let wait = retry_after(&headers, SystemTime::now())
            .map(|w| w.min(self.inner.retry.max_retry_after));
        budget.observe(access, status, &headers, wait, Instant::now());
        if (200..300).contains(&status) {
            Ok(ArmResponse {
                status,
                headers,
                body,
            })
        } else {
            Err(AzureError::from_response(
                request.operation,
                status,
                &body,
                wait,
            ))
        }
    }

    async fn bearer(&self) -> Result<HeaderValue, AzureError> {
        let token = self
            .inner
            .credential
            .get_token(&[self.inner.scope.as_str()], None)
            .await
            .map_err(|e| token_error(&e))?;
        let mut bearer = HeaderValue::try_from(format!("Bearer {}", token.token.secret()))
            .map_err(|_| AzureError::Authentication {
                message: "the access token contains characters not allowed in a header".into(),
                retryable: false,
            })?;
        bearer.set_sensitive(true);
        Ok(bearer)
    }

    /// The HTTPS client (shared pool, extra CAs) for calls that carry their own authorisation,
    /// such as log files behind a SAS.
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The run-history host found earlier for `workspace_id`.
    pub fn history_host(&self, workspace_id: &str) -> Option<Url> {
        let hosts = self.inner.history_hosts.lock().ok()?;
        hosts.get(&workspace_id.to_ascii_lowercase()).cloned()
    }

    /// Remembers the run-history host of `workspace_id`.
    pub fn remember_history_host(&self, workspace_id: &str, host: Url) {
        if let Ok(mut hosts) = self.inner.history_hosts.lock() {
            hosts.insert(workspace_id.to_ascii_lowercase(), host);
        }
    }

    /// Reports an exchange made outside [`ArmClient::send`] to the call observer.
    pub fn report(&self, operation: &'static str, status: Option<u16>) {
        self.observe(operation, status);
    }

    fn observe(&self, operation: &'static str, status: Option<u16>) {
        if let Some(o) = &self.observer {
            o.on_call(operation, status);
        }
    }
}

/// A transport failure with its whole cause chain (reqwest's top message alone is
/// often just "error sending request").
fn transport_error(operation: &'static str, err: &reqwest::Error) -> AzureError {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    AzureError::Transport {
        operation,
        timeout: err.is_timeout(),
        message: scrub(&message),
    }
}
