//! A fake Azure Machine Learning ARM server plus discovery, run history and an AAD v2 token
//! endpoint, served over HTTPS with a CA generated at start-up. Stateful, time-driven
//! lifecycles, long-running operations, fault injection, a request log, and validation of every
//! ARM request against the official REST spec (api-version 2026-07-01). It answers as the real
//! service does in the recordings of `tests/fixtures/azure/README.md`; every behaviour names the
//! recording entry or spec section it follows, or says "not recorded". Used in-process by tests
//! and as the `fake-azureml` binary.

mod arm;
pub mod azurite;
mod control;
mod errors;
mod faults;
mod history;
pub mod lifecycle;
pub mod options;
mod ratelimit;
mod record;
mod reply;
mod server;
pub mod spec;
mod storage;
mod store;
pub mod tls;
mod token;

pub use history::LOG_FILES;
pub use lifecycle::JobOutcome;
pub use options::{Faults, Options, StorageBackend};
pub use ratelimit::{Bucket, SubscriptionBudget};
pub use record::RequestRecord;
/// The rustls the TLS material is built for (test servers wrap their streams with it).
pub use rustls;

use anyhow::Context;
use server::Shared;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running fake. ARM, discovery, run history and the token endpoint share one HTTPS port.
pub struct FakeAzureMl {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: String,
    ca_der: Vec<u8>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl FakeAzureMl {
    /// Generates the CA, binds `options.listen` and starts serving.
    pub async fn start(options: Options) -> anyhow::Result<FakeAzureMl> {
        let spec = spec::Spec::get()
            .map_err(anyhow::Error::msg)
            .context("loading the embedded Azure ML spec")?;
        let tls = tls::generate()?;
        let listener = TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("binding {}", options.listen))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(options, spec, format!("https://{addr}"))?);
        let (stop, stopped) = watch::channel(false);
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config);
        let task = tokio::spawn(server::serve(listener, acceptor, shared.clone(), stopped));
        Ok(FakeAzureMl {
            shared,
            addr,
            ca_pem: tls.ca_pem,
            ca_der: tls.ca_der,
            stop,
            task: Some(task),
        })
    }

    /// `https://127.0.0.1:PORT`, the ARM base URL.
    pub fn arm_endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The workspace's `discoveryUrl`: `https://127.0.0.1:PORT/discovery` (no token needed).
    pub fn discovery_url(&self) -> String {
        history::discovery_url(&self.arm_endpoint())
    }

    /// The run-history host (`api` and `history` of the discovery document): run `R` of a
    /// workspace is at `{this}/history/v1.0{workspace ARM id}/runs/R` (bearer token needed).
    pub fn run_history_base(&self) -> String {
        self.arm_endpoint()
    }

    /// The blob service URL of the storage backend (what a Workspace names as
    /// `spec.endpoints.blobStorage`: the datastore says `https://<account>.blob.core.windows.net`
    /// as the real one does, which an emulator cannot serve). `None` without a backend.
    pub fn blob_endpoint(&self) -> Option<String> {
        self.shared
            .options
            .storage
            .as_ref()
            .map(|s| s.blob_endpoint.clone())
    }

    /// The authority host serving `/{tenant}/oauth2/v2.0/token`.
    pub fn authority_host(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA that signed the server certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The CA that signed the server certificate, DER.
    pub fn ca_der(&self) -> Vec<u8> {
        self.ca_der.clone()
    }

    /// Every request since start (or the last reset), `/_fake/*` excluded.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests()
    }

    /// Requests with `method` whose path contains `path_contains` (case-insensitive).
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.shared.count(method, path_contains)
    }

    /// ARM and run-history requests that arrived, answered or not: unlike [`Self::requests`]
    /// (logged once answered) it shows a request held by a slow fault while it is held.
    pub fn requests_arrived(&self) -> u64 {
        self.shared.seq.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Names of the resources PUT under `/{collection}/` (e.g. `jobs`, `computes`), in order.
    pub fn put_names(&self, collection: &str) -> Vec<String> {
        let marker = format!("/{collection}/");
        self.requests()
            .into_iter()
            .filter(|r| r.method == "PUT")
            .filter_map(|r| {
                let path = r.path.split('?').next()?;
                let (_, rest) = path.rsplit_once(&marker)?;
                (!rest.contains('/')).then(|| rest.to_string())
            })
            .collect()
    }

    /// Counts per `"METHOD path-template"`.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        self.shared.counters()
    }

    /// Clears the request log and counters (resources are kept).
    pub fn reset(&self) {
        self.shared.reset(false)
    }

    /// Forgets every resource as well as the request log.
    pub fn reset_state(&self) {
        self.shared.reset(true)
    }

    /// What was PUT as connection `name` (credentials included: Azure itself never returns them).
    pub fn connections(&self, name: &str) -> Vec<serde_json::Value> {
        self.shared.connections(name)
    }

    /// Sets how jobs named `job` (any workspace) end; returns how many jobs matched. The same
    /// as tagging the job `fake.outcome: <outcome>` or `POST /_fake/jobs/{job}/outcome`.
    pub fn set_job_outcome(&self, job: &str, outcome: JobOutcome) -> usize {
        self.shared.set_job_outcome(job, outcome)
    }

    /// Gives every compute named `compute` (any workspace) these node errors (`code`,
    /// `message`); an empty list clears them. An AmlCompute with errors reports them in
    /// `properties.properties.errors` (spec `ErrorResponse` items), `allocationState: Resizing`,
    /// no current nodes and a target of at least one node: a cluster that cannot get its nodes.
    /// Returns how many computes matched. Also `POST /_fake/computes/{compute}/errors`.
    pub fn set_compute_errors(&self, compute: &str, errors: Vec<(String, String)>) -> usize {
        self.shared.set_compute_errors(compute, &errors)
    }

    /// The content of run log `log` (one of [`LOG_FILES`]) of the job named `job` as of now,
    /// i.e. what the log blob holds once run history is next read; `None` if there is no such
    /// job. The content only grows (see the `history` module).
    pub fn run_log(&self, job: &str, log: &str) -> Option<String> {
        history::current_log(&self.shared, job, log)
    }

    /// Stops accepting, closes all connections and waits for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeAzureMl {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
