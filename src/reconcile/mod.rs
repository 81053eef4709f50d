//! Pure decisions, one module per kind: (spec, referenced objects, observed state, now) ->
//! (actions, new status, when to look again). No I/O and no clients live here, so both
//! frontends (controller, standalone) share the logic and the tests need neither.

pub mod compute_target;
pub mod experiment;
mod meta;
pub mod run_configuration;
pub mod workspace;

pub use meta::ObjectInfo;

use std::time::Duration;

/// What a reconciler decided: the status to write, the actions to execute (in order), the
/// events worth telling a person on call, and when to reconcile again.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision<S, A> {
    pub status: S,
    pub actions: Vec<A>,
    pub events: Vec<Event>,
    /// `None`: nothing to wait for; the periodic resync is enough.
    pub requeue_after: Option<Duration>,
    /// The object this one waits for (e.g. `Workspace "ml"`) when that is why it is not
    /// Ready: a frontend without watches looks again soon.
    pub waiting_for: Option<String>,
}

impl<S, A> Decision<S, A> {
    pub fn new(status: S) -> Self {
        Self {
            status,
            actions: Vec::new(),
            events: Vec::new(),
            requeue_after: None,
            waiting_for: None,
        }
    }
}

/// A Kubernetes-style event: `Normal` or `Warning`, a PascalCase reason and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

impl Event {
    pub fn normal(reason: &str, message: impl Into<String>) -> Self {
        Self {
            warning: false,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
    pub fn warning(reason: &str, message: impl Into<String>) -> Self {
        Self {
            warning: true,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// How an action failed, as far as the status is concerned: retrying may help (`Reconciling`),
/// a human must act (`Stalled`), or another object is not ready yet (progress, not a warning).
/// `reason` is PascalCase (an Azure error code where there is one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionFailure {
    pub kind: FailureKind,
    pub reason: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// A later attempt may get past it.
    Retryable,
    /// Azure asked to wait this long first (`Retry-After`, or the subscription's request budget
    /// is spent): flow control, not a problem. The frontend looks again after the wait.
    RetryAfter(Duration),
    /// Retrying will not fix it: a person must act.
    NeedsHuman,
    /// An object this one needs is not Ready yet (e.g. `Workspace "ml"`): looked at again when
    /// it changes.
    WaitingFor(String),
}

impl FailureKind {
    pub fn retryable_if(retryable: bool) -> Self {
        match retryable {
            true => Self::Retryable,
            false => Self::NeedsHuman,
        }
    }
}

impl ActionFailure {
    /// Whether a later attempt may succeed without a person acting.
    pub fn retryable(&self) -> bool {
        self.kind != FailureKind::NeedsHuman
    }

    /// The dependency this failure waits for, if that is all it is.
    pub fn waiting_for(&self) -> Option<&str> {
        match &self.kind {
            FailureKind::WaitingFor(what) => Some(what),
            _ => None,
        }
    }

    /// How long Azure asked to wait before the next attempt, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            FailureKind::RetryAfter(wait) => Some(wait),
            _ => None,
        }
    }

    /// Whether a frontend counts this as a failed reconcile (error metrics, its own backoff):
    /// waiting for another object or for Azure's `Retry-After` is progress with a known time.
    pub fn is_failure(&self) -> bool {
        matches!(self.kind, FailureKind::Retryable | FailureKind::NeedsHuman)
    }
}

/// Sets the kstatus trio: `Ready` as given, plus `Reconciling` or `Stalled` (or neither, for a
/// settled object) set True and the other removed.
fn kstatus(
    conditions: &mut Vec<crate::api::Condition>,
    ready: bool,
    flag: Option<&str>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    use crate::api::conditions::{self, Observation, READY, RECONCILING, STALLED};
    conditions::set(
        conditions,
        Observation::new(READY, ready, reason, message),
        generation,
        now,
    );
    for t in [RECONCILING, STALLED] {
        if flag == Some(t) {
            conditions::set(
                conditions,
                Observation::new(t, true, reason, message),
                generation,
                now,
            );
        } else {
            conditions::remove(conditions, t);
        }
    }
}

/// Writes the outcome of a failed action into a status's conditions: `Ready=False` with the
/// reason, plus `Reconciling` (retryable) or `Stalled` (needs a human).
pub fn record_failure(
    conditions: &mut Vec<crate::api::Condition>,
    failure: &ActionFailure,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    use crate::api::conditions::{RECONCILING, STALLED};
    let flag = if failure.retryable() {
        RECONCILING
    } else {
        STALLED
    };
    kstatus(
        conditions,
        false,
        Some(flag),
        &failure.reason,
        &failure.message,
        generation,
        now,
    );
}

/// Reasons of failures about a referenced Secret or ConfigMap (missing, key missing, not
/// text, unreadable). Their watches re-run the reconcile when they change, so such a failure
/// is tried again then, unlike a write Azure refused.
pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
pub const SECRET_KEY_NOT_FOUND: &str = "SecretKeyNotFound";
pub const INVALID_SECRET: &str = "InvalidSecret";
pub const SECRET_UNREADABLE: &str = "SecretUnreadable";
pub const CONFIG_MAP_NOT_FOUND: &str = "ConfigMapNotFound";

pub fn is_about_a_watched_object(reason: &str) -> bool {
    [
        SECRET_NOT_FOUND,
        SECRET_KEY_NOT_FOUND,
        INVALID_SECRET,
        SECRET_UNREADABLE,
        CONFIG_MAP_NOT_FOUND,
    ]
    .contains(&reason)
}

/// How long to hold back a write that Azure refused with a needs-a-human error (`refused`,
/// still the `Stalled` reason of this generation): the rest of `retry_after` (the resync
/// period) since the refusal. Any event (a dependency's status write, a restart) re-runs the
/// reconcile; without this hold each one would repeat the refused write. A new generation, or
/// the end of the period, tries again; a failure about a watched Secret or ConfigMap is tried
/// again at once.
pub fn refusal_hold(
    conditions: &[crate::api::Condition],
    refused: &str,
    observed_generation: Option<i64>,
    generation: Option<i64>,
    retry_after: std::time::Duration,
    now: jiff::Timestamp,
) -> Option<std::time::Duration> {
    use crate::api::conditions::{ConditionStatus, STALLED, find};
    if is_about_a_watched_object(refused) || observed_generation != generation {
        return None;
    }
    let stalled = find(conditions, STALLED)
        .filter(|c| c.status == ConditionStatus::True && c.reason == refused)?;
    let since = now.duration_since(stalled.last_transition_time.0);
    let wait = jiff::SignedDuration::try_from(retry_after).ok()? - since;
    (wait > jiff::SignedDuration::ZERO)
        .then(|| std::time::Duration::try_from(wait).ok())
        .flatten()
}

/// The reason of a failure that only means "the Workspace is not Ready yet".
pub const WAITING_FOR_WORKSPACE: &str = "WaitingForWorkspace";

/// Records a failed action in a status (see [`record_failure`]) and tells a person once: the
/// Warning event goes out only when the Ready reason changes. Waiting for the Workspace, or for
/// Azure's `Retry-After`, is progress, not a failure.
pub fn record(
    conds: &mut Vec<crate::api::Condition>,
    events: &mut Vec<Event>,
    failure: &ActionFailure,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    use crate::api::conditions::{self, READY};
    let known = conditions::find(conds, READY).is_some_and(|c| c.reason == failure.reason);
    if !failure.is_failure() {
        mark_progressing(conds, &failure.reason, &failure.message, generation, now);
        return;
    }
    record_failure(conds, failure, generation, now);
    if !known {
        events.push(Event::warning(&failure.reason, failure.message.clone()));
    }
}

/// Sets the kstatus trio for a settled, healthy object.
pub fn mark_ready(
    conditions: &mut Vec<crate::api::Condition>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    kstatus(conditions, true, None, reason, message, generation, now);
}

/// Sets the kstatus trio for work in progress (not an error).
pub fn mark_progressing(
    conditions: &mut Vec<crate::api::Condition>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    kstatus(
        conditions,
        false,
        Some(crate::api::conditions::RECONCILING),
        reason,
        message,
        generation,
        now,
    );
}

/// Sets the kstatus trio for a problem that needs a human (no retry will fix it).
pub fn mark_stalled(
    conditions: &mut Vec<crate::api::Condition>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    kstatus(
        conditions,
        false,
        Some(crate::api::conditions::STALLED),
        reason,
        message,
        generation,
        now,
    );
}
