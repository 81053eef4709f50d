//! Leader election on a coordination.k8s.io Lease (kube-lease-manager): replicas stand by
//! (ready, not reconciling) until they hold the Lease; losing it stops the controllers and
//! the process exits so Kubernetes restarts it as a stand-by. A leader that shuts down releases
//! the Lease, and a stand-by notices a released Lease within [`STANDBY_POLL`], so it leads at
//! once instead of waiting for the Lease to expire.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease as LeaseObject;
use kube::Api;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;

pub struct Lease {
    pub name: String,
    pub namespace: String,
    pub identity: String,
}

/// Seconds a Lease is valid without renewal, and the renewal margin.
const DURATION: u64 = 15;
const GRACE: u64 = 5;
/// How often a stand-by reads the Lease to see whether its holder released it.
pub const STANDBY_POLL: Duration = Duration::from_secs(1);
/// Pause after a failed attempt to take or read the Lease.
const RETRY: Duration = Duration::from_secs(2);
/// Longest wait for the release at shutdown: past it the next leader waits for the Lease to
/// expire instead, and this process exits anyway.
pub const RELEASE_TIMEOUT: Duration = Duration::from_millis(800);

pub async fn run_as_leader<F, Fut>(
    client: kube::Client,
    lease: Lease,
    ready: Arc<AtomicBool>,
    shutdown: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    work: F,
) -> anyhow::Result<()>
where
    F: FnOnce(kube::Client, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let manager = LeaseManagerBuilder::new(client.clone(), &lease.name)
        .with_namespace(&lease.namespace)
        .with_identity(&lease.identity)
        .with_duration(DURATION)
        .with_grace(GRACE)
        .build()
        .await
        .with_context(|| {
            format!(
                "setting up leader election on Lease {}/{}",
                lease.namespace, lease.name
            )
        })?;
    ready.store(true, Ordering::Relaxed);
    tracing::info!(lease = %lease.name, identity = %lease.identity, "waiting to become the leader");
    let leases: Api<LeaseObject> = Api::namespaced(client.clone(), &lease.namespace);
    if !stand_by(&manager, &leases, &lease.name, shutdown.clone()).await {
        return manager.release().await.context("releasing the Lease");
    }
    tracing::info!(lease = %lease.name, "became the leader");
    // From here the manager's own task renews the Lease, and releases it once `leading` is gone.
    let (mut leading, task) = manager.watch().await;
    let lost = async {
        while *leading.borrow_and_update() {
            if leading.changed().await.is_err() {
                break;
            }
        }
    };
    let result = tokio::select! {
        r = work(client, shutdown) => r,
        () = lost => {
            let _ = stop.send(true);
            Err(anyhow::anyhow!("lost the leader-election Lease {}/{}", lease.namespace, lease.name))
        }
    };
    drop(leading);
    match tokio::time::timeout(RELEASE_TIMEOUT, task).await {
        Ok(released) => {
            released
                .context("the leader-election task panicked")?
                .context("releasing the Lease")?;
        }
        Err(_) => tracing::warn!(
            lease = %lease.name,
            "the Lease was not released in time; the next leader waits for it to expire"
        ),
    }
    result
}

/// Waits until this replica holds the Lease (`true`) or shutdown is asked for (`false`).
/// kube-lease-manager sleeps until the holder's Lease would expire; reading the Lease every
/// [`STANDBY_POLL`] notices a holder that released it early (it shut down).
async fn stand_by(
    manager: &LeaseManager,
    leases: &Api<LeaseObject>,
    name: &str,
    shutdown: watch::Receiver<bool>,
) -> bool {
    let stopping = super::scope::shutdown_future(shutdown);
    tokio::pin!(stopping);
    let mut pause = Duration::ZERO;
    loop {
        let take = async {
            tokio::time::sleep(pause).await;
            manager.changed().await
        };
        tokio::select! {
            changed = take => match changed {
                Ok(true) => return true,
                Ok(false) => pause = Duration::ZERO,
                Err(e) => {
                    tracing::warn!(error = %e, "leader election: cannot take the Lease; trying again");
                    pause = RETRY;
                }
            },
            () = released(leases, name) => {
                // On a replica that does not hold the Lease, `release` changes nothing and
                // re-reads it: the one way kube-lease-manager 0.13 offers to refresh its view,
                // so the next `changed` takes the free Lease at once.
                if let Err(e) = manager.release().await {
                    tracing::warn!(error = %e, "leader election: cannot read the Lease");
                }
            }
            () = &mut stopping => return false,
        }
    }
}

/// Resolves when the Lease exists and nobody holds it.
async fn released(leases: &Api<LeaseObject>, name: &str) {
    loop {
        tokio::time::sleep(STANDBY_POLL).await;
        match leases.get_opt(name).await {
            Ok(Some(lease)) if holder(&lease).is_none() => return,
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "leader election: cannot read the Lease"),
        }
    }
}

fn holder(lease: &LeaseObject) -> Option<&str> {
    lease
        .spec
        .as_ref()?
        .holder_identity
        .as_deref()
        .filter(|h| !h.is_empty())
}
