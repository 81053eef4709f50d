//! What every controller shares: the kube client, the Azure connector, metrics, events,
//! settings and the per-object retry backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::events::{Recorder, Reporter};

use super::metrics::{ArmCallCounter, Metrics};
use crate::actions::credentials::Frontend;
use crate::actions::workspace::Connector;
use crate::azure::ArmConfig;

/// The controller name in events and the field manager of every write.
pub const MANAGER: &str = "amlops";

/// Tunables of the controllers (from flags in production, from the test in scenario tests).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// Reconciles running at once, per kind and namespace scope.
    pub concurrency: u16,
    /// Resync period of Workspaces that set none.
    pub resync_period: Duration,
    pub enable_kubernetes_compute: bool,
    /// `local` ComputeTargets run their runs as Kubernetes Jobs (`--disable-local-jobs` turns
    /// this off: such targets are refused).
    pub local_jobs: bool,
    /// ARM client settings (endpoints come from each Workspace).
    pub arm: ArmConfig,
    /// Instance name in events (the pod name).
    pub instance: Option<String>,
}

/// First wait after a retryable failure; doubles per consecutive failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub struct Shared {
    pub client: kube::Client,
    pub connector: Connector,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub settings: Settings,
    failures: Mutex<HashMap<String, u32>>,
}

impl Shared {
    pub fn new(client: kube::Client, settings: Settings, metrics: Arc<Metrics>) -> Self {
        let connector = Connector::new(settings.arm.clone(), Frontend::Cluster)
            .with_observer(Arc::new(ArmCallCounter(metrics.clone())));
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: MANAGER.to_string(),
                instance: settings.instance.clone(),
            },
        );
        Self {
            client,
            connector,
            metrics,
            recorder,
            settings,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records the result of a reconcile of `uid`; returns the backoff when it failed retryably.
    pub fn backoff(&self, uid: &str, retryable_failure: bool) -> Option<Duration> {
        let Ok(mut failures) = self.failures.lock() else {
            return retryable_failure.then_some(FIRST_BACKOFF);
        };
        if !retryable_failure {
            failures.remove(uid);
            return None;
        }
        let n = failures.entry(uid.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        Some(
            FIRST_BACKOFF
                .saturating_mul(1u32 << (*n - 1).min(16))
                .min(MAX_BACKOFF),
        )
    }
}
