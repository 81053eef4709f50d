//! Readiness of an object as the objects that depend on it see it: `Ready=True` for the
//! generation it was computed for, else why not. Shared by both frontends and the actions.

use kube::Resource;

use super::conditions::{self, READY};
use super::{ComputeTarget, Condition, RunConfiguration, Workspace};

/// The kinds other kinds wait on.
pub trait Readiness: Resource {
    fn conditions(&self) -> &[Condition];
}

macro_rules! readiness_from_status {
    ($($kind:ty),*) => {$(
        impl Readiness for $kind {
            fn conditions(&self) -> &[Condition] {
                self.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default()
            }
        }
    )*};
}
readiness_from_status!(Workspace, ComputeTarget, RunConfiguration);

/// `None` when `obj` is Ready for its current generation; else the reason and message.
pub fn why_not_ready<K: Readiness>(obj: &K) -> Option<(String, String)> {
    not_ready(obj.conditions(), obj.meta().generation)
}

/// `None` when Ready is True for `generation`; else the reason and message to wait on.
pub fn not_ready(conds: &[Condition], generation: Option<i64>) -> Option<(String, String)> {
    match conditions::find(conds, READY) {
        Some(c) if conditions::is_true(conds, READY) && c.observed_generation == generation => None,
        Some(_) if conditions::is_true(conds, READY) => Some((
            "NotReconciled".into(),
            "the latest spec has not been reconciled yet".into(),
        )),
        Some(c) => Some((c.reason.clone(), c.message.clone())),
        None => Some((
            "NotReconciled".into(),
            "the object has no status yet".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::Observation;

    #[test]
    fn ready_only_for_the_observed_generation() {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let mut c = Vec::new();
        assert_eq!(not_ready(&c, Some(1)).unwrap().0, "NotReconciled");
        conditions::set(
            &mut c,
            Observation::new(READY, true, "Ready", "ok"),
            Some(1),
            now,
        );
        assert!(not_ready(&c, Some(1)).is_none());
        assert_eq!(not_ready(&c, Some(2)).unwrap().0, "NotReconciled");
        conditions::set(
            &mut c,
            Observation::new(READY, false, "Creating", "LRO"),
            Some(2),
            now,
        );
        assert_eq!(
            not_ready(&c, Some(2)),
            Some(("Creating".into(), "LRO".into()))
        );
    }
}
