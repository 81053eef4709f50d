//! Scenario: once the controllers' caches have synced, reconciles read what an object
//! references (RunConfiguration, ComputeTarget, Workspace, the credential's Secret) from them,
//! not with GETs on the API server; a rotated Secret is read again, once.

mod controller_support;

use std::time::Duration;

use amlops::controller::objects::caches_synced;
use controller_support::*;
use fake_azureml::azurite::Azurite;
use serde_json::json;

/// Waits until `kind` has finished more than `seen` reconciles.
async fn wait_for_reconcile(env: &Env, kind: &str, seen: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while env.reconciles(kind) <= seen {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {kind} reconcile"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Touches the Experiment (an annotation: a reconcile, no new run) and waits for that reconcile.
async fn touch(env: &Env, value: &str) {
    let seen = env.reconciles("Experiment");
    env.kube
        .merge_patch(
            AMLOPS,
            "Experiment",
            NS,
            "train",
            json!({"metadata": {"annotations": {"example.com/touch": value}}}),
        )
        .unwrap();
    wait_for_reconcile(env, "Experiment", seen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciles_read_references_from_the_caches_and_a_rotated_secret_once() {
    let azurite = Azurite::start();
    let env = Env::start(fake_azureml::Options {
        job_phase_delay: Duration::from_millis(100),
        storage: Some(azurite.storage_backend()),
        ..fast_azure()
    })
    .await;
    env.workspace("ws", "ws1", None);
    env.compute_target("cpu", aml(0, 2));
    env.create(
        "RunConfiguration",
        "rc",
        json!({"targetRef": {"name": "cpu"}, "environment": {"condaDependencies": {"pythonVersion": "3.11"}}}),
    );
    env.create(
        "Experiment",
        "train",
        json!({"runConfigurationRef": {"name": "rc"}, "script": "train.py",
            "source": {"inline": {"files": {"train.py": "print('training')\n"}}}}),
    );
    env.wait_for("Experiment", "train", 90, |o| {
        has_reason(o, "Succeeded", "Completed")
    })
    .await;
    assert!(caches_synced(&env.metrics));

    // From apply to Succeeded, every reconcile of every kind read its references from the caches.
    for kind in ["workspaces", "computetargets", "runconfigurations"] {
        assert_eq!(env.kube_calls("get", kind), 0, "GETs of {kind}");
    }
    let experiment_reconciles = env.reconciles("Experiment");
    assert!(experiment_reconciles >= 2, "{experiment_reconciles}");

    // A reconcile of a cached world reads nothing, the credential's Secret included.
    let settle = || tokio::time::sleep(Duration::from_millis(300));
    settle().await;
    env.kube.clear_requests();
    touch(&env, "1").await;
    settle().await;
    let gets: Vec<_> = env
        .kube
        .requests()
        .into_iter()
        .filter(|r| r.verb == "get")
        .collect();
    assert!(gets.is_empty(), "{gets:#?}");

    // A new version of the Secret is read again (the Workspace follows its Secret), once:
    // the next reconcile that connects uses the value read then.
    env.kube
        .merge_patch(
            "v1",
            "Secret",
            NS,
            "sp",
            json!({"metadata": {"annotations": {"rotated": "yes"}}}),
        )
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while env.kube_calls("get", "secrets") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rotated Secret was not read"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settle().await;
    let secret_reads = env.kube_calls("get", "secrets");
    touch(&env, "2").await;
    settle().await;
    assert_eq!(env.kube_calls("get", "secrets"), secret_reads);
    assert_rbac_allows(&env);
}
