//! A fake Azure Machine Learning ARM server plus an AAD v2 token endpoint, served over HTTPS
//! with a CA generated at start-up. Stateful, time-driven lifecycles, long-running operations,
//! fault injection, a request log, and validation of every request against the official REST
//! spec (api-version 2026-07-01). Used in-process by tests and as the `fake-azureml` binary.

mod arm;
pub mod azurite;
mod control;
mod faults;
pub mod lifecycle;
pub mod options;
mod record;
mod reply;
mod server;
pub mod spec;
mod storage;
mod store;
pub mod tls;
mod token;

pub use lifecycle::JobOutcome;
pub use options::{Faults, Options, StorageBackend};
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

/// A running fake. ARM and the token endpoint share one HTTPS port.
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

    /// Sets how jobs named `job` end; returns how many jobs matched.
    pub fn set_job_outcome(&self, job: &str, outcome: JobOutcome) -> usize {
        self.shared.set_job_outcome(job, outcome)
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
