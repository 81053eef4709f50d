//! HTTPS serving: TLS accept loop, hyper HTTP/1.1 connections, request log, and the split
//! between control endpoints, discovery and run history, the token endpoint and ARM.

use crate::arm::{self, Outcome};
use crate::control;
use crate::history;
use crate::lifecycle::JobOutcome;
use crate::options::Options;
use crate::record::{RequestLog, RequestRecord};
use crate::reply::Reply;
use crate::spec::Spec;
use crate::store::Store;
use crate::token;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Largest request body accepted.
const MAX_BODY: usize = 32 * 1024 * 1024;
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// State shared by all connections.
pub struct Shared {
    pub options: Options,
    pub spec: &'static Spec,
    pub store: Mutex<Store>,
    pub log: Mutex<RequestLog>,
    /// Sequence number of ARM requests, the input of fault selection.
    pub seq: AtomicU64,
    tokens: AtomicU64,
    /// `https://127.0.0.1:PORT`, used in LRO URLs.
    pub base_url: String,
    /// Client for the storage backend (containers, log blobs).
    pub http: reqwest::Client,
    /// Bytes of each run log blob written so far (see `history::publish_logs`); the async lock
    /// also serializes those writes.
    pub written_logs: tokio::sync::Mutex<HashMap<String, usize>>,
    /// What is left of each subscription's request budget (reported, never enforced).
    pub budgets: Mutex<crate::ratelimit::Budgets>,
}

/// One request, read fully.
pub struct Request {
    pub method: String,
    pub path: String,
    pub raw_query: String,
    pub query: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub body: Bytes,
}

impl Shared {
    pub fn new(options: Options, spec: &'static Spec, base_url: String) -> anyhow::Result<Shared> {
        Ok(Shared {
            options,
            spec,
            store: Mutex::default(),
            log: Mutex::default(),
            seq: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            base_url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            written_logs: tokio::sync::Mutex::default(),
            budgets: Mutex::default(),
        })
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.log.lock().map(|l| l.records()).unwrap_or_default()
    }

    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.log.lock().map(|l| l.counters()).unwrap_or_default()
    }

    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.log
            .lock()
            .map(|l| l.count(method, path_contains))
            .unwrap_or(0)
    }

    /// Clears the request log and counters, and with `state` also every resource.
    pub fn reset(&self, state: bool) {
        if let Ok(mut log) = self.log.lock() {
            log.clear();
        }
        if state && let Ok(mut store) = self.store.lock() {
            store.clear();
        }
    }

    /// The stored body of every connection named `name` (any workspace), credentials included.
    pub fn connections(&self, name: &str) -> Vec<serde_json::Value> {
        let Ok(store) = self.store.lock() else {
            return Vec::new();
        };
        store
            .connections
            .values()
            .filter(|c| c.name == name)
            .map(|c| c.body.clone())
            .collect()
    }

    /// Sets the outcome of every job named `name` (any workspace); returns how many.
    pub fn set_job_outcome(&self, name: &str, outcome: JobOutcome) -> usize {
        let Ok(mut store) = self.store.lock() else {
            return 0;
        };
        store
            .jobs
            .values_mut()
            .filter(|j| j.name == name)
            .map(|j| j.outcome = outcome)
            .count()
    }

    /// Sets the node errors of every compute named `name`; returns how many.
    pub fn set_compute_errors(&self, name: &str, errors: &[(String, String)]) -> usize {
        arm::computes::set_errors(self, name, errors)
    }

    async fn respond(&self, req: &Request) -> Outcome {
        if req.path.starts_with(control::PREFIX) {
            return Outcome::Reply(control::handle(self, req));
        }
        let history = history::handle(self, req).await;
        let (outcome, template) = match (history, token::tenant_of(&req.path)) {
            (Some(answered), _) => answered,
            (None, Some(tenant)) if req.method == "POST" => {
                // Test fault injection (`Options::token_delay`), not recorded behaviour.
                if !self.options.token_delay.is_zero() {
                    tokio::time::sleep(self.options.token_delay).await;
                }
                let form: Vec<(String, String)> = url::form_urlencoded::parse(&req.body)
                    .into_owned()
                    .collect();
                let serial = self.tokens.fetch_add(1, Ordering::Relaxed);
                (
                    Outcome::Reply(token::issue(tenant, &form, serial)),
                    token::TEMPLATE.to_string(),
                )
            }
            _ => arm::handle(self, req).await,
        };
        let status = match &outcome {
            Outcome::Reply(r) => r.status,
            Outcome::Drop => 0,
        };
        let record = RequestRecord {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.raw_query.clone(),
            status,
        };
        if let Ok(mut log) = self.log.lock() {
            log.push(record, &template);
        }
        outcome
    }
}

/// The connection is closed without a response (fault injection).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose (fault injection)")]
struct Dropped;

async fn handle(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(to_response(Reply::arm_error(
                413,
                "RequestEntityTooLarge",
                "request body too large or unreadable",
            )));
        }
    };
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let request = Request {
        method: parts.method.as_str().to_ascii_uppercase(),
        path: parts.uri.path().to_string(),
        query: url::form_urlencoded::parse(raw_query.as_bytes())
            .into_owned()
            .collect(),
        raw_query,
        authorization: parts
            .headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
    };
    match shared.respond(&request).await {
        Outcome::Reply(reply) => Ok(to_response(reply)),
        Outcome::Drop => Err(Dropped),
    }
}

fn to_response(reply: Reply) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder()
        .status(reply.status)
        .header("x-ms-request-id", uuid::Uuid::new_v4().to_string());
    for (name, value) in &reply.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let body = match &reply.body {
        Some(json) => {
            builder = builder.header("Content-Type", "application/json; charset=utf-8");
            Bytes::from(serde_json::to_vec(json).unwrap_or_default())
        }
        None => Bytes::new(),
    };
    builder.body(Full::new(body)).unwrap_or_else(|_| {
        let mut fallback = hyper::Response::new(Full::new(Bytes::from_static(b"{\"error\":{\"code\":\"InternalServerError\",\"message\":\"fake: invalid response header\"}}")));
        *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

/// Accepts connections until `stop` flips, then ends all connections.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let (acceptor, shared) = (acceptor.clone(), shared.clone());
                connections.spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else { return };
                    let service = service_fn(move |req| handle(shared.clone(), req));
                    // Errors here are client disconnects and injected drops: nothing to report.
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}
