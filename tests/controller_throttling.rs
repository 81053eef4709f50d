//! Scenario: a 429/5xx storm from ARM slows the create down but it converges, with exactly
//! one compute in Azure.

mod controller_support;

use controller_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_storm_converges() {
    let options = fake_azureml::Options {
        faults: fake_azureml::Faults {
            throttle_ratio: 0.3,
            server_error_ratio: 0.1,
            retry_after_secs: 0,
            seed: 7,
            ..Default::default()
        },
        ..fast_azure()
    };
    let env = Env::start(options).await;
    env.workspace("ws", "ws1", None);
    env.compute_target("cpu", aml(0, 2));
    env.wait_for("ComputeTarget", "cpu", 120, is_ready).await;
    let requests = env.azure.requests();
    let throttled = requests
        .iter()
        .filter(|r| r.status == 429 || r.status >= 500)
        .count();
    assert!(throttled > 0, "the storm did hit: {requests:#?}");
    let created = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path.contains("/computes/") && r.status < 300)
        .count();
    assert_eq!(created, 1, "{requests:#?}");
    eprintln!(
        "storm: {} ARM requests, {throttled} throttled or failed",
        requests.len()
    );
}

/// A 429 with a long `Retry-After`: the reconcile returns at once (its status says so), and the
/// next reconciles are held back client-side until the wait is over: one request, not a storm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_retry_after_holds_back_the_whole_subscription() {
    let options = fake_azureml::Options {
        faults: fake_azureml::Faults {
            throttle_ratio: 1.0,
            retry_after_secs: 60,
            ..Default::default()
        },
        ..fast_azure()
    };
    let env = Env::start(options).await;
    env.workspace("ws", "ws1", None);
    env.compute_target("cpu", aml(0, 2));
    // The first reconcile got the 429 and is requeued at its Retry-After (60 s), not after
    // the controller's 2 s backoff; a reconcile another event starts meanwhile is held back
    // without a request, and the ComputeTarget on the same subscription waits too.
    env.wait_for("Workspace", "ws", 30, |o| {
        condition(o, "Ready").is_some_and(|(_, reason)| {
            reason == "TooManyRequests" || reason == "ArmRequestBudgetSpent"
        })
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let arm: Vec<_> = env
        .azure
        .requests()
        .into_iter()
        .filter(|r| !r.path.contains("/oauth2/"))
        .collect();
    assert_eq!(arm.len(), 1, "{arm:#?}");
    assert_eq!(arm[0].status, 429);
}
