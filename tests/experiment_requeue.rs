//! A reconcile never sits out a wait Azure asked for: when an observe or a submit is told
//! "later" (a 429's `Retry-After`, or the subscription's request budget is spent), the one run
//! loop (`actions::experiment::converge`) returns at once with that wait as its requeue time, and
//! counts no failure (the controller's own backoff would otherwise requeue sooner).

use std::time::Duration;

use amlops::actions::azure_failure;
use amlops::actions::experiment::{ExperimentDecision, RunWorld, converge};
use amlops::actions::run_backend::{RunBackend, Submitted};
use amlops::api::{Experiment, RunStatus};
use amlops::azure::AzureError;
use amlops::reconcile::ActionFailure;
use amlops::reconcile::experiment::{ObservedRun, RunConfigurationState};
use serde_json::json;

/// A backend whose observe and submit answer as given, counting nothing else.
struct Scripted {
    observe: Result<Option<ObservedRun>, ActionFailure>,
    submit: Result<(), ActionFailure>,
}

impl RunBackend for Scripted {
    async fn observe(
        &self,
        _: &str,
        _: Option<&RunStatus>,
    ) -> Result<Option<ObservedRun>, ActionFailure> {
        self.observe.clone()
    }

    async fn submit(
        &self,
        _: &str,
        _: &mut ExperimentDecision,
    ) -> Result<Submitted, ActionFailure> {
        self.submit.clone().map(|()| Submitted::Waiting)
    }

    async fn cancel(&self, _: &str) -> Result<(), ActionFailure> {
        Ok(())
    }
}

fn experiment(status: serde_json::Value) -> Experiment {
    serde_json::from_value(json!({
        "apiVersion": "amlops.io/v1alpha1", "kind": "Experiment",
        "metadata": {"name": "train", "namespace": "ml", "uid": "6f1c0b4e-0000-4000-8000-000000000001",
                     "generation": 1, "finalizers": ["amlops.io/cleanup"]},
        "spec": {"runConfigurationRef": {"name": "rc"}, "source": {"inline": {"files": {"train.py": "print(1)"}}},
                 "script": "train.py"},
        "status": status,
    }))
    .unwrap()
}

/// What ARM answers when a subscription's reads are throttled.
fn throttled(wait: Duration) -> ActionFailure {
    azure_failure(&AzureError::from_response(
        "job.get",
        429,
        br#"{"error":{"code":"SubscriptionRequestsThrottled","message":"Number of read requests for subscription exceeded the limit."}}"#,
        Some(wait),
    ))
}

/// What the client says without sending when the subscription's write budget is spent.
fn over_budget(wait: Duration) -> ActionFailure {
    azure_failure(&AzureError::OverBudget {
        operation: "job.create",
        access: "writes",
        wait,
    })
}

async fn run(exp: &Experiment, backend: Scripted) -> amlops::actions::experiment::ConvergedRun {
    converge(RunWorld {
        exp,
        run_configuration: RunConfigurationState::Ready,
        backend: Some(Ok(backend)),
        retry_after_stall: Duration::from_secs(3600),
        now: jiff::Timestamp::now(),
    })
    .await
}

#[tokio::test]
async fn a_throttled_observe_keeps_the_status_and_requeues_after_the_retry_after() {
    let status = json!({"observedGeneration": 1, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Running", "message": "run is Running",
         "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}]});
    let exp = experiment(status);
    let wait = Duration::from_secs(17);
    let converged = run(
        &exp,
        Scripted {
            observe: Err(throttled(wait)),
            submit: Ok(()),
        },
    )
    .await;
    let d = converged.decision;
    assert_eq!(d.requeue_after, Some(wait));
    assert!(converged.failure.is_none(), "a wait is not a failure");
    assert_eq!(Some(&d.status), exp.status.as_ref(), "nothing was learned");
    assert!(d.events.is_empty(), "{:?}", d.events);
}

#[tokio::test]
async fn a_submit_held_back_by_the_write_budget_says_so_and_requeues_after_the_wait() {
    let exp = experiment(json!(null));
    let wait = Duration::from_millis(2500);
    let converged = run(
        &exp,
        Scripted {
            observe: Ok(None),
            submit: Err(over_budget(wait)),
        },
    )
    .await;
    let d = converged.decision;
    assert_eq!(d.requeue_after, Some(wait));
    assert!(converged.failure.is_none(), "a wait is not a failure");
    let reconciling = d
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Reconciling")
        .expect("Reconciling while it waits");
    assert_eq!(reconciling.reason, "ArmRequestBudgetSpent");
    assert!(
        reconciling.message.contains("writes budget"),
        "{}",
        reconciling.message
    );
    assert!(
        !d.status.conditions.iter().any(|c| c.type_ == "Stalled"),
        "{:?}",
        d.status.conditions
    );
    assert!(
        d.events.iter().all(|e| !e.warning),
        "waiting for the budget is no warning: {:?}",
        d.events
    );
}

#[tokio::test]
async fn other_failures_still_count_and_use_the_backoff() {
    let exp = experiment(json!(null));
    let failure = azure_failure(&AzureError::Transport {
        operation: "job.create",
        timeout: true,
        message: "no answer".into(),
    });
    let converged = run(
        &exp,
        Scripted {
            observe: Ok(None),
            submit: Err(failure),
        },
    )
    .await;
    assert_eq!(
        converged.failure.map(|f| f.reason),
        Some("Timeout".to_string())
    );
}
