//! `amlops controller`: kube-runtime controllers per kind, leader election, metrics and health.
//!
//! Each kind is one file with a `run(shared, scope)`; [`run_controllers`] starts every kind for
//! every watched namespace, so adding RunConfiguration and Experiment means one file and one
//! line each.

pub mod compute_target;
pub mod context;
pub mod duration;
pub mod experiment;
mod http;
pub mod kube_io;
pub mod leader;
pub mod metrics;
pub mod objects;
pub mod readiness;
pub mod run_configuration;
pub mod run_logs;
pub mod scope;
pub mod secrets;
mod watches;
pub mod workspace;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::azure::ArmConfig;
use crate::azure::budget::{ArmBudget, BudgetLimits};
use crate::azure::rate_limit::RateLimit;

pub use context::Settings;
pub use metrics::Metrics;
use scope::Scope;

/// Output format of the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags of `amlops controller` (each also read from its environment variable).
#[derive(Clone, Debug, clap::Args)]
pub struct ControllerArgs {
    /// Namespaces to watch, comma separated; empty watches all namespaces.
    #[arg(
        long,
        env = "AMLOPS_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    pub namespaces: Vec<String>,
    /// Reconciles running at once per kind.
    #[arg(long, env = "AMLOPS_CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,
    /// Resync period of objects whose Workspace sets none (Go-style: 30m, 1h).
    #[arg(long, env = "AMLOPS_RESYNC_PERIOD", default_value = "1h", value_parser = duration::parse)]
    pub resync_period: Duration,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "AMLOPS_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Run only while holding the leader-election Lease (default).
    #[arg(
        long = "leader-election",
        overrides_with = "no_leader_election",
        default_value_t = true
    )]
    pub leader_election: bool,
    /// Run without leader election (a single replica).
    #[arg(long = "no-leader-election")]
    pub no_leader_election: bool,
    /// Namespace of the Lease (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, default_value = "amlops-controller")]
    pub lease_name: String,
    /// Log level or tracing filter (e.g. `info`, `amlops=debug`).
    #[arg(long, env = "AMLOPS_LOG", default_value = "info")]
    pub log_level: String,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Enable the `kubernetes` compute kind (an AKS or Arc cluster attached to Azure ML).
    #[arg(long, env = "AMLOPS_ENABLE_KUBERNETES_COMPUTE")]
    pub enable_kubernetes_compute: bool,
    /// Refuse `local` ComputeTargets instead of running their runs as Kubernetes Jobs in the
    /// Experiment's namespace.
    #[arg(long, env = "AMLOPS_DISABLE_LOCAL_JOBS")]
    pub disable_local_jobs: bool,
    /// ARM writes (PUT, PATCH, POST) per second per Azure subscription, shared by every
    /// controller: the refill rate of ARM's write token bucket. Lower it to leave room for other
    /// tools using the same service principal.
    #[arg(long, env = "AMLOPS_ARM_WRITES_PER_SECOND", default_value_t = BudgetLimits::default().writes.per_second, value_parser = positive_rate)]
    pub arm_writes_per_second: f64,
    /// ARM writes allowed back to back per Azure subscription after a quiet period: the size of
    /// ARM's write token bucket.
    #[arg(long, env = "AMLOPS_ARM_WRITE_BURST", default_value_t = BudgetLimits::default().writes.burst, value_parser = clap::value_parser!(u32).range(1..))]
    pub arm_write_burst: u32,
}

fn positive_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "expected a positive number of writes per second, got {text:?}"
        )),
    }
}

impl ControllerArgs {
    fn settings(&self) -> Settings {
        Settings {
            namespaces: self
                .namespaces
                .iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect(),
            concurrency: self.concurrency.max(1),
            resync_period: self.resync_period,
            enable_kubernetes_compute: self.enable_kubernetes_compute,
            local_jobs: !self.disable_local_jobs,
            arm: ArmConfig {
                budget: ArmBudget::new(BudgetLimits {
                    writes: RateLimit {
                        per_second: self.arm_writes_per_second,
                        burst: self.arm_write_burst,
                    },
                    ..BudgetLimits::default()
                }),
                ..ArmConfig::default()
            },
            instance: std::env::var("HOSTNAME").ok(),
        }
    }
}

fn init_logging(args: &ControllerArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level).with_context(|| {
        format!(
            "--log-level {:?} is not a valid level or filter",
            args.log_level
        )
    })?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match args.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// Sends `true` on SIGTERM or Ctrl-C.
fn shutdown_on_signals(tx: watch::Sender<bool>) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    Ok(())
}

/// `amlops controller`.
pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    // kube and reqwest both use rustls; one provider (aws-lc-rs) for the whole process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    init_logging(&args)?;
    let settings = args.settings();
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or kubeconfig)")?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (tx, rx) = watch::channel(false);
    shutdown_on_signals(tx.clone())?;
    let health = http::Health {
        metrics: metrics.clone(),
        ready: ready.clone(),
    };
    let server = tokio::spawn(http::serve(
        args.metrics_addr,
        health,
        scope::shutdown_future(rx.clone()),
    ));
    tracing::info!(namespaces = ?settings.namespaces, concurrency = settings.concurrency, resync = ?settings.resync_period, "starting amlops controller");
    let result = if args.leader_election && !args.no_leader_election {
        let namespace = args
            .leader_election_namespace
            .clone()
            .unwrap_or_else(|| "default".to_string());
        let identity = settings
            .instance
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let lease = leader::Lease {
            name: args.lease_name.clone(),
            namespace,
            identity,
        };
        leader::run_as_leader(
            client,
            lease,
            ready,
            rx.clone(),
            tx.clone(),
            |client, rx| run_controllers(client, settings, metrics, rx),
        )
        .await
    } else {
        ready.store(true, Ordering::Relaxed);
        run_controllers(client, settings, metrics, rx.clone()).await
    };
    let _ = tx.send(true);
    match server.await {
        Ok(Err(e)) => Err(e),
        _ => result,
    }
}

/// Runs every controller for every watched namespace until `shutdown` turns true.
pub async fn run_controllers(
    client: kube::Client,
    settings: Settings,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let namespaces: Vec<Option<String>> = if settings.namespaces.is_empty() {
        vec![None]
    } else {
        settings.namespaces.iter().cloned().map(Some).collect()
    };
    let shared = Arc::new(context::Shared::new(client, settings, metrics));
    let mut tasks = tokio::task::JoinSet::new();
    for namespace in namespaces {
        let scope = Scope {
            namespace,
            shutdown: shutdown.clone(),
        };
        tasks.spawn(workspace::run(shared.clone(), scope.clone()));
        tasks.spawn(compute_target::run(shared.clone(), scope.clone()));
        tasks.spawn(run_configuration::run(shared.clone(), scope.clone()));
        tasks.spawn(experiment::run(shared.clone(), scope));
    }
    // Each controller stops taking work at shutdown and waits for its reconciles in flight;
    // those still running after the grace are cut off.
    let cut_off = async {
        scope::shutdown_future(shutdown).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::pin!(cut_off);
    loop {
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(done) => done.context("a controller task panicked")?,
                None => return Ok(()),
            },
            () = &mut cut_off => {
                tracing::info!(grace = ?SHUTDOWN_GRACE, "cutting off the reconciles still in flight");
                tasks.shutdown().await;
                return Ok(());
            }
        }
    }
}

/// How long reconciles in flight at shutdown may take to finish before they are cut off. Cutting
/// one off is safe: Azure names are deterministic, so the next leader adopts a run this one
/// submitted instead of submitting it again. With [`leader::RELEASE_TIMEOUT`] it keeps the exit
/// under 2 s, well inside a pod's 30 s termination grace.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ControllerArgs,
    }

    #[test]
    fn flags_as_the_chart_passes_them() {
        let cli = Cli::try_parse_from([
            "amlops",
            "--namespaces=ml,research",
            "--concurrency=8",
            "--resync-period=30m",
            "--metrics-addr=0.0.0.0:9090",
            "--leader-election",
            "--lease-name=amlops-x",
            "--log-level=debug",
            "--log-format=json",
            "--enable-kubernetes-compute",
            "--disable-local-jobs",
            "--arm-writes-per-second=2.5",
            "--arm-write-burst=50",
        ])
        .unwrap();
        let a = cli.args;
        let s = a.settings();
        assert_eq!(s.namespaces, ["ml", "research"]);
        assert_eq!(s.concurrency, 8);
        assert_eq!(s.resync_period, Duration::from_secs(1800));
        assert_eq!(a.metrics_addr.port(), 9090);
        assert!(a.leader_election && !a.no_leader_election);
        assert_eq!(a.lease_name, "amlops-x");
        assert_eq!(a.log_format, LogFormat::Json);
        assert!(s.enable_kubernetes_compute);
        assert!(!s.local_jobs);
        let budget = s.arm.budget.limits();
        assert_eq!(
            budget.writes,
            RateLimit {
                per_second: 2.5,
                burst: 50
            }
        );
        assert_eq!(budget.reads, BudgetLimits::default().reads);
        let off = Cli::try_parse_from(["amlops", "--no-leader-election"])
            .unwrap()
            .args;
        assert!(off.no_leader_election);
        assert!(
            off.settings().local_jobs,
            "local runs are Jobs unless disabled"
        );
        assert!(
            off.settings().namespaces.is_empty(),
            "no --namespaces watches all"
        );
        assert_eq!(off.resync_period, Duration::from_secs(3600));
        assert_eq!(off.concurrency, 4);
        assert_eq!(
            off.settings().arm.budget.limits(),
            &BudgetLimits::default(),
            "ARM's published limits by default"
        );
        assert!(Cli::try_parse_from(["amlops", "--resync-period=soon"]).is_err());
        for bad in [
            "--arm-writes-per-second=0",
            "--arm-writes-per-second=-1",
            "--arm-writes-per-second=NaN",
            "--arm-write-burst=0",
        ] {
            assert!(Cli::try_parse_from(["amlops", bad]).is_err(), "{bad}");
        }
    }
}
