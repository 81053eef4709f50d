//! Leader election on a coordination.k8s.io Lease (kube-lease-manager): replicas stand by
//! (ready, not reconciling) until they hold the Lease; losing it stops the controllers and
//! the process exits so Kubernetes restarts it as a stand-by.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

pub struct Lease {
    pub name: String,
    pub namespace: String,
    pub identity: String,
}

/// Seconds a Lease is valid without renewal, and the renewal margin.
const DURATION: u64 = 15;
const GRACE: u64 = 5;

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
    let (mut leading, task) = manager.watch().await;
    ready.store(true, Ordering::Relaxed);
    let mut stopping = shutdown.clone();
    tracing::info!(lease = %lease.name, identity = %lease.identity, "waiting to become the leader");
    loop {
        if *leading.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = leading.changed() => changed.context("leader election stopped")?,
            _ = super::scope::shutdown_future(stopping.clone()) => {
                drop(leading);
                return release(task).await;
            }
        }
    }
    tracing::info!(lease = %lease.name, "became the leader");
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
    let _ = stopping.borrow_and_update();
    drop(leading);
    release(task).await?;
    result
}

async fn release(
    task: tokio::task::JoinHandle<kube_lease_manager::Result<kube_lease_manager::LeaseManager>>,
) -> anyhow::Result<()> {
    let manager = task
        .await
        .context("the leader-election task panicked")?
        .context("leader election failed")?;
    manager.release().await.context("releasing the Lease")?;
    Ok(())
}
