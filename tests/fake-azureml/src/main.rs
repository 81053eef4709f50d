//! `fake-azureml --listen 127.0.0.1:0 [--tls-dir DIR]`: runs the fake as a process. The first
//! stdout line is `{"arm": URL, "login": URL, "discovery": URL, "caFile": PATH}`; SIGTERM/SIGINT
//! stop it cleanly.

use anyhow::Context;
use clap::Parser;
use fake_azureml::{FakeAzureMl, Faults, Options, StorageBackend};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser, Debug)]
#[command(
    name = "fake-azureml",
    about = "Fake Azure ML ARM + AAD token server for tests"
)]
struct Cli {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Directory to write ca.pem into (default: a fresh temporary directory, removed on exit).
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    /// Milliseconds a compute spends creating/updating/deleting.
    #[arg(long, default_value_t = 300)]
    compute_provision_delay_ms: u64,
    /// Milliseconds a job spends in each phase.
    #[arg(long, default_value_t = 200)]
    job_phase_delay_ms: u64,
    /// Fraction of ARM requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    throttle_ratio: f64,
    /// Fraction of ARM requests answered 500/503.
    #[arg(long, default_value_t = 0.0)]
    server_error_ratio: f64,
    /// Fraction of ARM requests whose connection is closed without a response.
    #[arg(long, default_value_t = 0.0)]
    drop_ratio: f64,
    /// Fraction of ARM requests answered after --slow-delay-ms.
    #[arg(long, default_value_t = 0.0)]
    slow_ratio: f64,
    #[arg(long, default_value_t = 2000)]
    slow_delay_ms: u64,
    /// Retry-After of throttled/503 answers, seconds.
    #[arg(long, default_value_t = 1)]
    fault_retry_after_secs: u64,
    /// Seed of the fault draw.
    #[arg(long, default_value_t = 0)]
    fault_seed: u64,
    /// Do not validate requests against the spec.
    #[arg(long)]
    no_validate: bool,
    /// Blob endpoint of the workspace storage (uploads, datastore, run logs), e.g.
    /// http://127.0.0.1:10000/devstoreaccount1.
    #[arg(long, requires = "storage_account")]
    storage_blob_endpoint: Option<String>,
    #[arg(long, requires = "storage_blob_endpoint")]
    storage_account: Option<String>,
    /// Base64 account key (read from this environment variable so it stays out of `ps`).
    #[arg(long, default_value = "FAKE_AZUREML_STORAGE_KEY")]
    storage_key_env: String,
    /// Answer datastore listSecrets with 403 AuthorizationFailed.
    #[arg(long)]
    datastore_secrets_forbidden: bool,
    /// Refuse AmlCompute PUTs asking for more nodes than this with 400 QuotaExceeded.
    #[arg(long)]
    max_nodes_quota: Option<i64>,
}

impl Cli {
    fn options(&self) -> anyhow::Result<Options> {
        let storage = match (&self.storage_blob_endpoint, &self.storage_account) {
            (Some(endpoint), Some(account)) => Some(StorageBackend {
                blob_endpoint: endpoint.clone(),
                account: account.clone(),
                account_key_b64: std::env::var(&self.storage_key_env).with_context(|| {
                    format!(
                        "--storage-blob-endpoint needs the account key in ${}",
                        self.storage_key_env
                    )
                })?,
            }),
            _ => None,
        };
        Ok(Options {
            listen: self.listen,
            compute_provision_delay: Duration::from_millis(self.compute_provision_delay_ms),
            job_phase_delay: Duration::from_millis(self.job_phase_delay_ms),
            faults: Faults {
                throttle_ratio: self.throttle_ratio,
                server_error_ratio: self.server_error_ratio,
                drop_ratio: self.drop_ratio,
                slow_ratio: self.slow_ratio,
                retry_after_secs: self.fault_retry_after_secs,
                seed: self.fault_seed,
                slow_delay: Duration::from_millis(self.slow_delay_ms),
            },
            validate_bodies: !self.no_validate,
            storage,
            datastore_secrets_forbidden: self.datastore_secrets_forbidden,
            max_nodes_quota: self.max_nodes_quota,
            token_delay: Duration::ZERO,
            subscription_budget: Default::default(),
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let fake = FakeAzureMl::start(cli.options()?).await?;
    let (dir, temporary) = match &cli.tls_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("fake-azureml-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, fake.ca_pem())
        .with_context(|| format!("writing {}", ca_file.display()))?;
    let line = serde_json::json!({"arm": fake.arm_endpoint(), "login": fake.authority_host(), "discovery": fake.discovery_url(), "caFile": ca_file});
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    drop(stdout);
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    fake.shutdown().await;
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
