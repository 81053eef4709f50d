//! The actions reconcilers decide, and their one executor against Azure, the local executor
//! and snapshots, shared by both frontends. A frontend hands in how to read
//! Secrets ([`SecretSource`]); everything else is here, so neither frontend re-implements
//! what an action does.

pub mod azure_runs;
pub mod code;
pub mod compute;
pub mod credentials;
pub mod environment;
pub mod experiment;
pub mod job;
pub mod kube_job;
pub mod local;
pub mod objects;
pub mod registry;
pub mod run_backend;
pub mod run_compute;
pub mod run_configuration;
pub mod run_logs;
pub mod secrets;
pub mod source;
pub mod workspace;

pub use secrets::{SecretError, SecretSource};

use crate::azure::AzureError;
use crate::reconcile::{ActionFailure, Decision, FailureKind};

/// How one converge step of any kind ended: the decision with every executed action folded
/// in, the failure that stopped it (None when all went through, or it only waits for another
/// object), and whether the finalizer may go.
pub struct Converged<S, A> {
    pub decision: Decision<S, A>,
    pub failure: Option<ActionFailure>,
    pub release_finalizer: bool,
}

/// An Azure failure as the status sees it: retryable (after the wait Azure asked for, if it
/// did) or not, the Azure code as the reason, and the (already scrubbed) message.
pub fn azure_failure(err: &AzureError) -> ActionFailure {
    let kind = match err.retry_after() {
        Some(wait) if err.retryable() => FailureKind::RetryAfter(wait),
        _ => FailureKind::retryable_if(err.retryable()),
    };
    ActionFailure {
        kind,
        reason: err.code().to_string(),
        message: err.to_string(),
    }
}

/// A failure that retrying will not fix.
pub(crate) fn needs_human(reason: &str, message: impl std::fmt::Display) -> ActionFailure {
    ActionFailure {
        kind: FailureKind::NeedsHuman,
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

/// A failure that a later attempt may get past.
pub(crate) fn transient(reason: &str, message: impl std::fmt::Display) -> ActionFailure {
    ActionFailure {
        kind: FailureKind::Retryable,
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_errors_keep_code_and_retryability() {
        let quota = AzureError::Api {
            operation: "compute.create_or_update",
            status: 400,
            code: "QuotaExceeded".into(),
            message: "not enough cores".into(),
            retry_after: None,
            retryable: false,
        };
        let f = azure_failure(&quota);
        assert_eq!(f.reason, "QuotaExceeded");
        assert!(!f.retryable());
        assert!(f.message.contains("not enough cores"));
        let t = AzureError::Transport {
            operation: "compute.get",
            timeout: true,
            message: "slow".into(),
        };
        let f = azure_failure(&t);
        assert!(f.retryable());
        assert_eq!(f.reason, "Timeout");
        assert_eq!(f.retry_after(), None);
    }

    #[test]
    fn a_wait_azure_asked_for_is_the_retry_time() {
        let throttled = AzureError::from_response(
            "job.create",
            429,
            br#"{"error":{"code":"SubscriptionRequestsThrottled","message":"slow down"}}"#,
            Some(std::time::Duration::from_secs(17)),
        );
        let f = azure_failure(&throttled);
        assert_eq!(f.retry_after(), Some(std::time::Duration::from_secs(17)));
        assert!(f.retryable() && !f.is_failure());
        assert_eq!(f.reason, "SubscriptionRequestsThrottled");
        let held = AzureError::OverBudget {
            operation: "job.create",
            access: "writes",
            wait: std::time::Duration::from_millis(2500),
        };
        let f = azure_failure(&held);
        assert_eq!(
            f.retry_after(),
            Some(std::time::Duration::from_millis(2500))
        );
        assert_eq!(f.reason, "ArmRequestBudgetSpent");
        assert!(f.message.contains("writes budget"), "{}", f.message);
    }
}
