//! AmlCompute node errors (`properties.errors`: allocation or node setup failures). Azure
//! keeps such a cluster `Succeeded`, but runs sent to it wait for nodes that do not come.
//! While Azure reports any, the ComputeTarget shows `Degraded` with the first error's code;
//! the caller makes `Ready` False with the same reason and [`summary`] as the message.

use jiff::Timestamp;

use crate::api::conditions::{self, Observation};
use crate::api::{Condition, DEGRADED, ErrorInfo};
use crate::reconcile::Event;

/// Errors named in the message; Azure reports one per failing node, which can be many.
const MAX_LISTED: usize = 3;
/// Characters kept of each error's message.
const MAX_EACH: usize = 300;

/// One bounded message naming the first errors, e.g. `Azure reports 2 node errors on the
/// cluster: AllocationFailed: ...; NodeSetupFailure: ...`.
pub fn summary(errors: &[ErrorInfo]) -> String {
    let listed: Vec<String> = errors
        .iter()
        .take(MAX_LISTED)
        .map(|e| format!("{}: {}", e.code, shorten(&e.message)))
        .collect();
    let more = errors.len().saturating_sub(MAX_LISTED);
    let tail = if more > 0 {
        format!("; and {more} more")
    } else {
        String::new()
    };
    let noun = if errors.len() == 1 { "error" } else { "errors" };
    format!(
        "Azure reports {} node {noun} on the cluster: {}{tail}",
        errors.len(),
        listed.join("; ")
    )
}

fn shorten(message: &str) -> String {
    match message.char_indices().nth(MAX_EACH) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    }
}

/// Sets `Degraded` from the node errors Azure reports, or removes it when there are none.
/// A Warning event goes out when errors appear or the first code changes, a Normal one when
/// they are gone; an unchanged report changes nothing.
pub fn track(
    conditions: &mut Vec<Condition>,
    events: &mut Vec<Event>,
    errors: &[ErrorInfo],
    generation: Option<i64>,
    now: Timestamp,
) {
    let before = conditions::find(conditions, DEGRADED).map(|c| c.reason.clone());
    let Some(first) = errors.first() else {
        if before.is_some() {
            conditions::remove(conditions, DEGRADED);
            events.push(Event::normal(
                "NodeErrorsCleared",
                "Azure reports no node errors on the cluster any more",
            ));
        }
        return;
    };
    let message = summary(errors);
    if before.as_deref() != Some(first.code.as_str()) {
        events.push(Event::warning(&first.code, message.clone()));
    }
    conditions::set(
        conditions,
        Observation::new(DEGRADED, true, &first.code, message),
        generation,
        now,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{ConditionStatus, find};

    fn error(code: &str, message: &str) -> ErrorInfo {
        ErrorInfo {
            code: code.into(),
            message: message.into(),
        }
    }
    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn summary_names_the_first_errors_and_counts_the_rest() {
        let one = summary(&[error("AllocationFailed", "no capacity")]);
        assert_eq!(
            one,
            "Azure reports 1 node error on the cluster: AllocationFailed: no capacity"
        );
        let many: Vec<_> = (0..7)
            .map(|i| error(&format!("Code{i}"), &"x".repeat(5000)))
            .collect();
        let s = summary(&many);
        assert!(s.starts_with("Azure reports 7 node errors on the cluster: Code0: "));
        assert!(s.contains("Code2") && !s.contains("Code3"), "{s}");
        assert!(s.ends_with("; and 4 more"), "{s}");
        assert!(s.len() < 1200, "bounded: {}", s.len());
    }

    #[test]
    fn errors_appearing_set_degraded_and_warn_once() {
        let mut c = Vec::new();
        let mut events = Vec::new();
        let errors = [error("AllocationFailed", "no capacity")];
        track(&mut c, &mut events, &errors, Some(1), t(0));
        let degraded = find(&c, DEGRADED).unwrap();
        assert_eq!(degraded.status, ConditionStatus::True);
        assert_eq!(degraded.reason, "AllocationFailed");
        assert_eq!(events.len(), 1);
        assert!(events[0].warning);
        assert_eq!(events[0].reason, "AllocationFailed");
        let before = c.clone();
        track(&mut c, &mut events, &errors, Some(1), t(60));
        assert_eq!(c, before, "the same report changes nothing");
        assert_eq!(events.len(), 1, "and tells nobody again");
        let other = [error("NodeSetupFailure", "image pull failed")];
        track(&mut c, &mut events, &other, Some(1), t(120));
        assert_eq!(find(&c, DEGRADED).unwrap().reason, "NodeSetupFailure");
        assert_eq!(events.len(), 2, "a new first code is news");
        assert_eq!(
            find(&c, DEGRADED).unwrap().last_transition_time,
            before[0].last_transition_time,
            "still degraded: the transition time stays"
        );
    }

    #[test]
    fn errors_clearing_remove_degraded() {
        let mut c = Vec::new();
        let mut events = Vec::new();
        track(&mut c, &mut events, &[], Some(1), t(0));
        assert!(c.is_empty() && events.is_empty(), "never degraded: nothing");
        track(&mut c, &mut events, &[error("X", "m")], Some(1), t(0));
        track(&mut c, &mut events, &[], Some(1), t(10));
        assert!(find(&c, DEGRADED).is_none());
        assert_eq!(events.len(), 2);
        assert!(!events[1].warning);
        assert_eq!(events[1].reason, "NodeErrorsCleared");
    }
}
