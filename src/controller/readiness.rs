//! The watch key of a dependency: what the objects waiting on it react to.

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::api::Condition;
use crate::api::readiness::{Readiness, not_ready};

/// The watch key of a dependency: changes only with its generation or readiness.
pub fn readiness_of<K: Readiness>(obj: &K) -> Option<u64> {
    readiness_key(obj.conditions(), obj.meta().generation)
}

/// What dependents react to: the generation and whether it is ready (not every status write).
pub fn readiness_key(conds: &[Condition], generation: Option<i64>) -> Option<u64> {
    let mut h = DefaultHasher::new();
    generation.hash(&mut h);
    not_ready(conds, generation).is_none().hash(&mut h);
    Some(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{self, Observation, READY};

    #[test]
    fn the_key_moves_with_generation_and_readiness_not_with_messages() {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let mut c = Vec::new();
        conditions::set(
            &mut c,
            Observation::new(READY, false, "Creating", "LRO"),
            Some(2),
            now,
        );
        let creating = readiness_key(&c, Some(2));
        assert_ne!(creating, readiness_key(&c, Some(3)));
        conditions::set(
            &mut c,
            Observation::new(READY, false, "Creating", "still"),
            Some(2),
            now,
        );
        assert_eq!(creating, readiness_key(&c, Some(2)));
        conditions::set(
            &mut c,
            Observation::new(READY, true, "Ready", "ok"),
            Some(2),
            now,
        );
        assert_ne!(creating, readiness_key(&c, Some(2)));
    }
}
