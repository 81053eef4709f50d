//! Scenarios: Workspace and AmlCompute lifecycles through the real controllers.

mod controller_support;

use std::time::Duration;

use controller_support::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_is_ready_with_discovered_facts() {
    let env = Env::start(fast_azure()).await;
    env.workspace("ws", "ws1", None);
    let ws = env.wait_for("Workspace", "ws", 30, is_ready).await;
    let s = &ws["status"];
    assert_eq!(condition(&ws, "Ready").unwrap().1, "Connected");
    assert!(s["location"].is_string(), "{s:#}");
    assert!(
        s["storageAccount"]
            .as_str()
            .unwrap()
            .contains("Microsoft.Storage"),
        "{s:#}"
    );
    assert_eq!(s["defaultDatastore"], "workspaceblobstore");
    assert!(
        s["studioUrl"]
            .as_str()
            .unwrap()
            .starts_with("https://ml.azure.com/")
    );
    assert_eq!(s["observedGeneration"], 1);
    env.wait_for_event("ws", "Normal", "Connected", 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_azure_workspace_and_missing_workspace_object_are_stalled() {
    let env = Env::start(fast_azure()).await;
    env.workspace("ws", "missing-ws", None);
    let ws = env
        .wait_for("Workspace", "ws", 30, |o| condition(o, "Stalled").is_some())
        .await;
    assert_eq!(condition(&ws, "Stalled").unwrap().1, "WorkspaceNotFound");
    env.wait_for_event("ws", "Warning", "WorkspaceNotFound", 10)
        .await;
    env.compute_target("orphan", json!({"workspaceRef": {"name": "nope"}, "amlCompute": {"vmSize": "STANDARD_D2_V2", "maxNodes": 1}}));
    let ct = env
        .wait_for("ComputeTarget", "orphan", 30, |o| {
            condition(o, "Stalled").is_some()
        })
        .await;
    assert_eq!(condition(&ct, "Stalled").unwrap().1, "WorkspaceNotFound");
    assert_eq!(env.compute_calls("PUT"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amlcompute_create_scale_resync_delete() {
    let env = Env::start(fast_azure()).await;
    env.workspace("ws", "ws1", Some("2s"));
    env.compute_target("cpu", aml(1, 2));
    let started = std::time::Instant::now();
    let ct = env.wait_for("ComputeTarget", "cpu", 60, is_ready).await;
    let took = started.elapsed();
    let s = &ct["status"];
    assert_eq!(s["provisioningState"], "Succeeded");
    assert_eq!(s["computeType"], "AmlCompute");
    assert_eq!(s["nodes"]["current"], 1, "{s:#}");
    assert_eq!(s["allocationState"], "Steady");
    assert!(s.get("pendingOperation").is_none());
    assert_eq!(ct["metadata"]["finalizers"], json!(["amlops.io/cleanup"]));
    assert_eq!(env.compute_calls("PUT"), 1);
    let polls = env.azure.count("GET", "mfeOperations");
    let gets = env.compute_calls("GET");
    eprintln!(
        "create-to-Ready: {took:?}; ARM: 1 PUT, {polls} polls, {gets} compute GETs, {} requests in all (token incl.)",
        env.azure.requests().len()
    );
    env.wait_for_event("cpu", "Normal", "Creating", 10).await;
    env.wait_for_event("cpu", "Normal", "Provisioned", 10).await;

    // In sync: resyncs (every ~2s here) read, never write.
    env.azure.reset();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(env.arm_writes(), 0, "{:#?}", env.azure.requests());
    let reads = env.compute_calls("GET");
    assert!(
        reads >= 2,
        "resyncs should read the compute: {:#?}",
        env.azure.requests()
    );
    eprintln!("in-sync: {reads} compute GETs in 5s with a 2s resync period");

    // Scale change: exactly one PATCH, no PUT.
    env.azure.reset();
    env.kube
        .merge_patch(
            AMLOPS,
            "ComputeTarget",
            NS,
            "cpu",
            json!({"spec": {"amlCompute": {"maxNodes": 5}}}),
        )
        .unwrap();
    env.wait_for("ComputeTarget", "cpu", 30, |o| {
        o["status"]["observedGeneration"] == 2 && is_ready(o)
    })
    .await;
    assert_eq!(env.compute_calls("PATCH"), 1, "{:#?}", env.azure.requests());
    assert_eq!(env.compute_calls("PUT"), 0);
    env.wait_for_event("cpu", "Normal", "Scaled", 10).await;

    // Delete with the default policy (Delete): DELETE ...?underlyingResourceAction=Delete, then the finalizer goes.
    env.azure.reset();
    env.kube.delete(AMLOPS, "ComputeTarget", NS, "cpu").unwrap();
    env.wait_gone("ComputeTarget", "cpu", 30).await;
    let deletes: Vec<_> = env
        .azure
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:#?}");
    assert!(
        deletes[0].query.contains("underlyingResourceAction=Delete"),
        "{deletes:#?}"
    );
    env.wait_for_event("cpu", "Normal", "Deleted", 10).await;
    assert_rbac_allows(&env);
    let metrics = env.metrics.encode();
    assert!(
        metrics.contains("amlops_arm_calls_total{operation=\"compute.delete\",status=\"202\"} 1"),
        "{metrics}"
    );
    for line in metrics.lines().filter(|l| {
        l.starts_with("amlops_reconcile_duration_seconds_sum")
            || l.starts_with("amlops_reconcile_duration_seconds_count")
    }) {
        eprintln!("{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_leaves_azure_untouched_and_pause_stops_writes() {
    let env = Env::start(fast_azure()).await;
    env.workspace("ws", "ws1", None);
    let mut spec = aml(0, 2);
    spec["deletionPolicy"] = json!("Retain");
    env.compute_target("kept", spec);
    env.wait_for("ComputeTarget", "kept", 60, is_ready).await;

    // Paused: a drifted spec is not written to Azure.
    env.kube
        .merge_patch(
            AMLOPS,
            "ComputeTarget",
            NS,
            "kept",
            json!({"metadata": {"annotations": {"amlops.io/reconcile": "paused"}}}),
        )
        .unwrap();
    env.wait_for("ComputeTarget", "kept", 30, |o| {
        has_reason(o, "Reconciling", "Paused")
    })
    .await;
    env.azure.reset();
    env.kube
        .merge_patch(
            AMLOPS,
            "ComputeTarget",
            NS,
            "kept",
            json!({"spec": {"amlCompute": {"maxNodes": 4}}}),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.arm_writes(), 0, "{:#?}", env.azure.requests());

    // Retain: the object goes, the compute stays (no Azure write, so a pause does not hold it).
    env.kube
        .delete(AMLOPS, "ComputeTarget", NS, "kept")
        .unwrap();
    env.wait_gone("ComputeTarget", "kept", 30).await;
    assert_eq!(env.compute_calls("DELETE"), 0);
    assert_eq!(env.arm_writes(), 0, "{:#?}", env.azure.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_create_resumes_without_a_second_put() {
    let options = fake_azureml::Options {
        compute_provision_delay: Duration::from_secs(3),
        ..fast_azure()
    };
    let mut env = Env::start(options).await;
    env.workspace("ws", "ws1", None);
    env.compute_target("gpu", aml(0, 2));
    env.wait_for("ComputeTarget", "gpu", 30, |o| {
        o["status"]["pendingOperation"]["url"].is_string()
    })
    .await;
    env.stop_controllers().await;
    env.start_controllers();
    env.wait_for("ComputeTarget", "gpu", 60, is_ready).await;
    assert_eq!(env.compute_calls("PUT"), 1, "{:#?}", env.azure.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_exceeded_is_stalled_with_the_azure_code_and_not_retried_in_a_loop() {
    let mut env = Env::start(fake_azureml::Options {
        max_nodes_quota: Some(4),
        ..fast_azure()
    })
    .await;
    env.workspace("ws", "ws1", None);
    env.compute_target("big", aml(0, 10));
    let ct = env
        .wait_for("ComputeTarget", "big", 30, |o| {
            condition(o, "Stalled").is_some_and(|(s, _)| s == "True")
        })
        .await;
    assert_eq!(condition(&ct, "Stalled").unwrap().1, "QuotaExceeded");
    assert_eq!(
        condition(&ct, "Ready").unwrap(),
        ("False".to_string(), "QuotaExceeded".to_string())
    );
    env.wait_for_event("big", "Warning", "QuotaExceeded", 10)
        .await;
    assert_eq!(
        env.compute_calls("PUT"),
        1,
        "a needs-a-human error is not retried"
    );
    // A restart reconciles every object again (as a Workspace write or a finalizer update
    // would): the refused PUT waits for the resync period (1h here) instead.
    let gets = env.compute_calls("GET");
    env.stop_controllers().await;
    env.start_controllers();
    // The restarted controller looks again...
    env.wait_for_azure_calls("GET", "/computes/", gets, 10)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(env.compute_calls("PUT"), 1, "no hot loop while Stalled");
    let ct = env.get("ComputeTarget", "big").unwrap();
    assert_eq!(condition(&ct, "Stalled").unwrap().1, "QuotaExceeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_cannot_get_nodes_is_degraded_with_azure_codes_until_it_recovers() {
    let env = Env::start(fast_azure()).await;
    env.workspace("ws", "ws1", Some("1s"));
    env.compute_target("cpu", aml(0, 2));
    env.wait_for("ComputeTarget", "cpu", 60, is_ready).await;
    let puts = env.compute_calls("PUT");
    let azure_name = env.azure.put_names("computes").remove(0);
    // Azure reports node allocation errors on the cluster (AmlComputeProperties.errors).
    let errors = vec![(
        "AllocationFailed".to_string(),
        "Allocation failed: not enough cores of STANDARD_D2_V2 in eastus".to_string(),
    )];
    assert_eq!(env.azure.set_compute_errors(&azure_name, errors), 1);
    let ct = env
        .wait_for("ComputeTarget", "cpu", 30, |o| {
            condition(o, "Degraded").is_some_and(|(s, _)| s == "True")
        })
        .await;
    assert_eq!(condition(&ct, "Degraded").unwrap().1, "AllocationFailed");
    assert_eq!(
        condition(&ct, "Ready").unwrap(),
        ("False".into(), "AllocationFailed".into())
    );
    env.wait_for_event("cpu", "Warning", "AllocationFailed", 10)
        .await;
    // The errors go away: Ready again, and nothing was written to Azure meanwhile.
    env.azure.set_compute_errors(&azure_name, Vec::new());
    let ct = env.wait_for("ComputeTarget", "cpu", 30, is_ready).await;
    assert!(condition(&ct, "Degraded").is_none(), "{ct:#}");
    assert_eq!(
        env.compute_calls("PUT"),
        puts,
        "reading errors writes nothing"
    );
}
