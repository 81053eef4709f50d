//! Status conditions shared by every kind (kstatus semantics).
//!
//! Conditions are a list keyed by `type` (server-side apply merges them by key).
//! `Ready` is on every kind; `Reconciling` marks work in progress and `Stalled` a problem that
//! needs a human, so Flux, Argo CD and `kubectl wait` understand every amlops object.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const SUBMITTED: &str = "Submitted";
pub const RUNNING: &str = "Running";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";

/// Status of a condition.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn from_bool(value: bool) -> Self {
        if value { Self::True } else { Self::False }
    }
}

/// One observation of the object's state.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`, `Reconciling`, `Stalled`, `Succeeded`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 64))]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Machine-readable PascalCase reason, e.g. `Provisioning` or the Azure error code `QuotaExceeded`.
    #[schemars(length(max = 128))]
    pub reason: String,
    /// Human-readable detail. Never contains secret material.
    #[schemars(length(max = 4096))]
    pub message: String,
    /// When the status last changed (not when the condition was last written).
    pub last_transition_time: Time,
    /// The `metadata.generation` this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// What a reconciler wants a condition to say; [`set`] turns it into a [`Condition`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation<'a> {
    pub type_: &'a str,
    pub status: ConditionStatus,
    pub reason: &'a str,
    pub message: String,
}

impl<'a> Observation<'a> {
    pub fn new(type_: &'a str, status: bool, reason: &'a str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: ConditionStatus::from_bool(status),
            reason,
            message: message.into(),
        }
    }
}

/// Upserts a condition by type. `lastTransitionTime` moves only when the status changes, so a
/// resync that finds nothing new leaves the object byte-for-byte identical.
pub fn set(
    conditions: &mut Vec<Condition>,
    obs: Observation<'_>,
    generation: Option<i64>,
    now: jiff::Timestamp,
) {
    let message = truncate(&obs.message, 4096);
    match conditions.iter_mut().find(|c| c.type_ == obs.type_) {
        Some(existing) => {
            if existing.status != obs.status {
                existing.last_transition_time = Time(now);
            }
            existing.status = obs.status;
            existing.reason = obs.reason.to_string();
            existing.message = message;
            existing.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: obs.type_.to_string(),
            status: obs.status,
            reason: obs.reason.to_string(),
            message,
            last_transition_time: Time(now),
            observed_generation: generation,
        }),
    }
}

/// Removes a condition by type (e.g. `Stalled` once the problem is gone).
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

pub fn find<'c>(conditions: &'c [Condition], type_: &str) -> Option<&'c Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut c = Vec::new();
        set(
            &mut c,
            Observation::new(READY, false, "Provisioning", "creating"),
            Some(1),
            ts(10),
        );
        set(
            &mut c,
            Observation::new(READY, false, "Provisioning", "still creating"),
            Some(1),
            ts(20),
        );
        assert_eq!(c[0].last_transition_time, Time(ts(10)));
        assert_eq!(c[0].message, "still creating");
        set(
            &mut c,
            Observation::new(READY, true, "Succeeded", "ready"),
            Some(2),
            ts(30),
        );
        assert_eq!(c[0].last_transition_time, Time(ts(30)));
        assert_eq!(c[0].observed_generation, Some(2));
        assert_eq!(c.len(), 1);
        assert!(is_true(&c, READY));
        remove(&mut c, READY);
        assert!(find(&c, READY).is_none());
    }

    #[test]
    fn long_messages_are_truncated_on_a_char_boundary() {
        let mut c = Vec::new();
        let long = "é".repeat(5000);
        set(
            &mut c,
            Observation::new(READY, false, "X", long),
            None,
            ts(1),
        );
        assert!(c[0].message.len() <= 4096);
        assert!(c[0].message.ends_with("..."));
    }
}
