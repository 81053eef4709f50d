//! The actions `reconcile` decides, executed against the local machine, snapshots and Azure.
//! Shared by both frontends, so neither re-implements what an action does.

pub mod local;
pub mod source;

use crate::reconcile::ActionFailure;

/// A failure that retrying will not fix.
pub(crate) fn needs_human(reason: &str, message: impl std::fmt::Display) -> ActionFailure {
    ActionFailure {
        retryable: false,
        reason: reason.to_string(),
        message: message.to_string(),
    }
}

/// A failure that a later attempt may get past.
pub(crate) fn transient(reason: &str, message: impl std::fmt::Display) -> ActionFailure {
    ActionFailure {
        retryable: true,
        reason: reason.to_string(),
        message: message.to_string(),
    }
}
