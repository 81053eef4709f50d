//! Writes every kind shares: status through server-side apply, the finalizer, events, and
//! the end of a reconcile (status write only when it changed, then events, then requeue).

use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::{MANAGER, Shared};
use super::duration::jittered;
use crate::api::FINALIZER;
use crate::reconcile::{ActionFailure, Event};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

pub fn has_finalizer<K: Resource>(obj: &K) -> bool {
    obj.finalizers().iter().any(|f| f == FINALIZER)
}

fn apply_body<K: Resource<DynamicType = ()>>(
    obj: &K,
    rest: serde_json::Value,
) -> serde_json::Value {
    let mut body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": obj.name_any()},
    });
    if let (Some(b), serde_json::Value::Object(r)) = (body.as_object_mut(), rest) {
        for (k, v) in r {
            if k == "metadata" {
                if let (Some(m), serde_json::Value::Object(mv)) =
                    (b.get_mut("metadata").and_then(|m| m.as_object_mut()), v)
                {
                    m.extend(mv);
                }
            } else {
                b.insert(k, v);
            }
        }
    }
    body
}

/// Adds (or, with `present = false`, drops) the amlops finalizer. Server-side apply owns just
/// this one entry, so finalizers of other controllers are never touched.
pub async fn set_finalizer<K>(api: &Api<K>, obj: &K, present: bool) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let finalizers: Vec<&str> = if present { vec![FINALIZER] } else { vec![] };
    let body = apply_body(
        obj,
        serde_json::json!({"metadata": {"finalizers": finalizers}}),
    );
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(body),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Already gone: nothing left to release.
        Err(kube::Error::Api(s)) if !present && s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Writes the whole status with server-side apply (field manager `amlops`).
pub async fn write_status<K, S>(api: &Api<K>, obj: &K, status: &S) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let status =
        serde_json::to_value(status).map_err(|e| Error::Kube(kube::Error::SerdeError(e)))?;
    let body = apply_body(obj, serde_json::json!({ "status": status }));
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(body),
    )
    .await?;
    Ok(())
}

/// Publishes the decision's events; a failure to publish is logged, never fatal.
pub async fn publish<K: Resource<DynamicType = ()>>(shared: &Shared, obj: &K, events: &[Event]) {
    let reference = obj.object_ref(&());
    for e in events {
        let event = KubeEvent {
            type_: if e.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: e.reason.clone(),
            note: Some(note(&e.message)),
            action: e.reason.clone(),
            secondary: None,
        };
        if let Err(err) = shared.recorder.publish(&event, &reference).await {
            tracing::warn!(object = %obj.name_any(), reason = %e.reason, error = %err, "could not publish an event");
        }
    }
}

/// The apiserver refuses event notes over 1024 bytes. A long message (a failed run's error
/// followed by its log tail) keeps its beginning (what failed) and its end (the last log
/// lines), eliding the middle.
fn note(message: &str) -> String {
    const LIMIT: usize = 1024;
    const HEAD: usize = 400;
    const GAP: &str = "\n[...]\n";
    if message.len() <= LIMIT {
        return message.to_string();
    }
    let mut head = HEAD;
    while !message.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = message.len() - (LIMIT - HEAD - GAP.len());
    while !message.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}{GAP}{}", &message[..head], &message[tail..])
}

/// A reconcile's result, the same shape for every kind.
pub struct Finish<'a, S> {
    pub kind: &'static str,
    pub old_status: Option<&'a S>,
    pub status: &'a S,
    pub events: &'a [Event],
    pub requeue_after: Option<Duration>,
    /// The failed action, if one failed.
    pub failure: Option<ActionFailure>,
    pub release_finalizer: bool,
    pub resync: Duration,
    pub started: Instant,
}

/// Writes the status if it changed, publishes events, releases the finalizer when asked,
/// records metrics, and says when to look again.
pub async fn finish<K, S>(
    shared: &Shared,
    api: &Api<K>,
    obj: &K,
    f: Finish<'_, S>,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if f.old_status != Some(f.status) {
        write_status(api, obj, f.status).await?;
    }
    publish(shared, obj, f.events).await;
    if f.release_finalizer && has_finalizer(obj) {
        set_finalizer(api, obj, false).await?;
    }
    let uid = obj.uid().unwrap_or_default();
    // Waiting for another object or for Azure's Retry-After is progress with a known time,
    // not a failure with the controller's own backoff.
    let failed = f.failure.as_ref().filter(|x| x.is_failure());
    if let Some(failure) = failed {
        shared.metrics.error(f.kind, &failure.reason);
    }
    let backoff = shared.backoff(&uid, failed.is_some_and(ActionFailure::retryable));
    let asked = f.failure.as_ref().and_then(ActionFailure::retry_after);
    shared.metrics.reconciled(f.kind, f.started.elapsed());
    if f.release_finalizer {
        return Ok(Action::await_change());
    }
    let now = jiff::Timestamp::now().as_nanosecond().to_le_bytes();
    let resync = || jittered(f.resync, &[uid.as_bytes(), &now].concat());
    Ok(Action::requeue(
        backoff.or(asked).or(f.requeue_after).unwrap_or_else(resync),
    ))
}

/// What makes a reconcile worth running for the object itself: spec (generation),
/// annotations (pause), finalizers and deletion. Status writes — our own included — do not,
/// so a Stalled object is not retried in a hot loop.
pub fn relevant_change<K: Resource>(obj: &K) -> Option<u64> {
    let mut h = DefaultHasher::new();
    let meta = obj.meta();
    meta.generation.hash(&mut h);
    meta.annotations.hash(&mut h);
    meta.finalizers.hash(&mut h);
    meta.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

/// What every controller does when a Kubernetes API call failed mid-reconcile: count it and
/// try again after a pause (Azure failures never get here: they become conditions).
pub fn api_error_requeue(kind: &'static str, err: &Error, shared: &Shared) -> Action {
    tracing::warn!(error = %err, kind, "reconcile failed on a Kubernetes API call");
    shared.metrics.error(kind, "KubernetesApiError");
    Action::requeue(super::context::FIRST_BACKOFF * 5)
}

#[cfg(test)]
mod tests {
    use super::note;

    #[test]
    fn long_notes_keep_their_start_and_end_within_the_apiserver_limit() {
        assert_eq!(note("short"), "short");
        let long = format!(
            "run r failed: UserError: boom\n{}\nlast line é",
            "x".repeat(3000)
        );
        let n = note(&long);
        assert!(n.len() <= 1024, "{}", n.len());
        assert!(n.starts_with("run r failed: UserError: boom"));
        assert!(n.ends_with("last line é"));
        assert!(n.contains("[...]"));
    }
}
