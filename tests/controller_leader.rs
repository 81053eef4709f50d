//! Leader election on a Lease in fake-kube: the work runs only while holding the Lease, and a
//! graceful shutdown releases it for the next replica.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use amlops::controller::leader::{Lease, run_as_leader};
use fake_kube::FakeKube;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leads_then_releases_the_lease_on_shutdown() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let kube = FakeKube::start().await.unwrap();
    let client = kube::Client::try_from(kube::Config::new(kube.url().parse().unwrap())).unwrap();
    let ready = Arc::new(AtomicBool::new(false));
    let working = Arc::new(AtomicBool::new(false));
    let (tx, rx) = watch::channel(false);
    let lease = Lease {
        name: "amlops-controller".into(),
        namespace: "amlops-system".into(),
        identity: "pod-a".into(),
    };
    let w = working.clone();
    let task = tokio::spawn(run_as_leader(
        client,
        lease,
        ready.clone(),
        rx,
        tx.clone(),
        move |_client, mut stop| async move {
            w.store(true, Ordering::SeqCst);
            let _ = stop.wait_for(|s| *s).await;
            Ok(())
        },
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !working.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never became the leader: {:#?}",
            kube.requests()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready.load(Ordering::SeqCst));
    let held = kube
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "amlops-system",
            "amlops-controller",
        )
        .unwrap();
    assert_eq!(held["spec"]["holderIdentity"], "pod-a", "{held:#}");
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let released = kube
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "amlops-system",
            "amlops-controller",
        )
        .unwrap();
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
    // which tests/deploy/expected-rbac.yaml does not grant yet (it lists get, create, update).
    assert_eq!(verbs, ["create", "get", "patch"]);
}
