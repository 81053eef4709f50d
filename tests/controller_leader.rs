//! Leader election on a Lease in fake-kube: the work runs only while holding the Lease, a
//! shutdown releases it at once even with a reconcile stuck in a slow Azure call, and a
//! stand-by takes a released Lease without waiting for it to expire.

mod controller_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use amlops::controller::leader::{Lease, run_as_leader};
use controller_support::*;
use fake_kube::FakeKube;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A replica: its shutdown switch, its task, and whether its work is running.
struct Replica {
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
    ready: Arc<AtomicBool>,
    working: Arc<AtomicBool>,
}

impl Replica {
    /// Runs as `identity`; its work runs until shutdown.
    fn start(kube: &FakeKube, identity: &str) -> Replica {
        let client =
            kube::Client::try_from(kube::Config::new(kube.url().parse().unwrap())).unwrap();
        let (stop, rx) = watch::channel(false);
        let (ready, working) = (Arc::default(), Arc::<AtomicBool>::default());
        let w = working.clone();
        let lease = Lease {
            name: LEASE.into(),
            namespace: LEASE_NAMESPACE.into(),
            identity: identity.into(),
        };
        let task = tokio::spawn(run_as_leader(
            client,
            lease,
            Arc::clone(&ready),
            rx,
            stop.clone(),
            move |_client, mut stop| async move {
                w.store(true, Ordering::SeqCst);
                let _ = stop.wait_for(|s| *s).await;
                Ok(())
            },
        ));
        Replica {
            stop,
            task,
            ready,
            working,
        }
    }

    async fn wait_working(&self, kube: &FakeKube, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.working.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "never became the leader within {secs}s: {:#?}",
                lease(kube)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn shut_down(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("shuts down within 10s")
            .unwrap()
            .unwrap();
    }
}

fn lease(kube: &FakeKube) -> Value {
    kube.get("coordination.k8s.io/v1", "Lease", LEASE_NAMESPACE, LEASE)
        .unwrap_or_default()
}

fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_then_releases_the_lease_on_shutdown() {
    install_crypto();
    let kube = FakeKube::start().await.unwrap();
    let a = Replica::start(&kube, "pod-a");
    a.wait_working(&kube, 20).await;
    assert!(a.ready.load(Ordering::SeqCst));
    assert_eq!(lease(&kube)["spec"]["holderIdentity"], "pod-a");
    a.shut_down().await;
    let released = lease(&kube);
    assert!(
        released["spec"].get("holderIdentity").is_none(),
        "{released:#}"
    );
    let mut verbs: Vec<String> = kube
        .requests()
        .into_iter()
        .filter(|r| r.resource == "leases")
        .map(|r| r.verb)
        .collect();
    verbs.sort();
    verbs.dedup();
    // kube-lease-manager 0.13 takes and renews the Lease with PATCH (apply + strategic merge),
    // as tests/deploy/expected-rbac.yaml grants.
    assert_eq!(verbs, ["create", "get", "patch"]);
}

/// The Lease lasts 15 s: a stand-by that waited for it to expire would lead about 14 s after
/// the release below; reading it every second it leads within about one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stand_by_leads_as_soon_as_the_leader_releases_the_lease() {
    install_crypto();
    let kube = FakeKube::start().await.unwrap();
    let a = Replica::start(&kube, "pod-a");
    a.wait_working(&kube, 20).await;
    let b = Replica::start(&kube, "pod-b");
    while !b.ready.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the stand-by see the Lease held (it then sleeps until the Lease would expire).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!b.working.load(Ordering::SeqCst), "one leader at a time");
    a.shut_down().await;
    let released = Instant::now();
    b.wait_working(&kube, 8).await;
    eprintln!(
        "the stand-by led {:?} after the release",
        released.elapsed()
    );
    assert_eq!(lease(&kube)["spec"]["holderIdentity"], "pod-b");
    b.shut_down().await;
}

/// SIGTERM with a reconcile stuck in a slow Azure call: the controllers stop, the reconcile is
/// cut off, and the Lease is released, well within a pod's termination grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cuts_off_a_reconcile_stuck_in_azure_and_releases_the_lease() {
    // Fault injection stands in for a slow Azure: every ARM request is held for a minute.
    let options = fake_azureml::Options {
        faults: fake_azureml::Faults {
            slow_ratio: 1.0,
            slow_delay: Duration::from_secs(60),
            ..Default::default()
        },
        ..fast_azure()
    };
    let mut env = Env::start_leading(options, "pod-a").await;
    env.workspace("ws", "ws1", None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while env.azure.requests_arrived() == 0 {
        assert!(
            Instant::now() < deadline,
            "the Workspace reconcile never called Azure: {:#?}",
            lease(&env.kube)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lease(&env.kube)["spec"]["holderIdentity"], "pod-a");
    let started = Instant::now();
    env.stop_controllers().await;
    let took = started.elapsed();
    eprintln!("shutdown with a reconcile stuck in Azure took {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    let answered: Vec<_> = env
        .azure
        .requests()
        .into_iter()
        .filter(|r| !r.path.contains("/oauth2/"))
        .collect();
    assert!(
        answered.is_empty(),
        "the held request was cut off: {answered:#?}"
    );
    let released = lease(&env.kube);
    assert!(
        released["spec"].get("holderIdentity").is_none(),
        "{released:#}"
    );
}
