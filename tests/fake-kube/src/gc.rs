//! The garbage collector: dependents go when their owners go.
//!
//! Facts from https://kubernetes.io/docs/concepts/architecture/garbage-collection/ ("Owners and
//! dependents", "Cascading deletion") and the collector in pkg/controller/garbagecollector:
//! - a dependent is deleted once every owner it names is absent; an owner is identified by
//!   uid, and a namespaced owner must be in the dependent's namespace or it counts as absent;
//! - Background: the apiserver deletes the owner at once and the collector deletes dependents;
//! - Foreground: the owner stays, with a deletionTimestamp and the `foregroundDeletion`
//!   finalizer, while the collector deletes its dependents; it goes once no dependent whose
//!   reference has `blockOwnerDeletion: true` is left;
//! - Orphan: the owner stays with the `orphan` finalizer until the collector has removed the
//!   references to it from its dependents, which then live on;
//! - a dependent that still has a live owner only loses its references to absent owners and to
//!   owners being deleted in the foreground.
//!
//! The real collector works asynchronously from informers; the fake runs after every write
//! until nothing is left to do, so a test sees the settled state.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::store::{ApiError, DeleteOptions, Key, Store, finalizers};

/// `DeleteOptions.propagationPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

const ORPHAN_FINALIZER: &str = "orphan";
const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

impl Propagation {
    pub fn parse(text: &str) -> Result<Propagation, ApiError> {
        match text {
            "Background" => Ok(Propagation::Background),
            "Foreground" => Ok(Propagation::Foreground),
            "Orphan" => Ok(Propagation::Orphan),
            other => Err(ApiError::new(
                422,
                "Invalid",
                format!(
                    "DeleteOptions is invalid: propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
            )),
        }
    }

    /// The finalizer the apiserver adds so the collector can finish the deletion.
    pub fn finalizer(self) -> Option<&'static str> {
        match self {
            Propagation::Background => None,
            Propagation::Foreground => Some(FOREGROUND_FINALIZER),
            Propagation::Orphan => Some(ORPHAN_FINALIZER),
        }
    }

    /// How the collector deletes an object whose owners are gone: as its own finalizers
    /// ask, else in the background.
    fn of_finalizers(obj: &Value) -> Propagation {
        let fins = finalizers(obj);
        if fins.iter().any(|f| f == ORPHAN_FINALIZER) {
            Propagation::Orphan
        } else if fins.iter().any(|f| f == FOREGROUND_FINALIZER) {
            Propagation::Foreground
        } else {
            Propagation::Background
        }
    }
}

fn uid(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn being_deleted(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

fn has_finalizer(obj: &Value, f: &str) -> bool {
    being_deleted(obj) && finalizers(obj).iter().any(|x| x == f)
}

fn owner_refs(obj: &Value) -> &[Value] {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn ref_uid(r: &Value) -> &str {
    r["uid"].as_str().unwrap_or_default()
}

/// Runs the collector until nothing is left to do; true when it changed something.
pub fn collect(store: &mut Store) -> bool {
    let mut changed = false;
    // Each step changes one object; the bound only guards against a bug looping forever.
    for _ in 0..10_000 {
        if !step(store) {
            break;
        }
        changed = true;
    }
    changed
}

/// How a dependent's reference stands.
#[derive(PartialEq)]
enum Owner {
    Absent,
    /// Being deleted in the foreground: waiting for its dependents.
    Waiting,
    Live,
}

struct Graph {
    objects: Vec<(Key, Value)>,
    by_uid: HashMap<String, usize>,
}

impl Graph {
    fn of(store: &Store) -> Graph {
        let objects: Vec<(Key, Value)> = store
            .objects()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let by_uid = objects
            .iter()
            .enumerate()
            .map(|(i, (_, o))| (uid(o).to_string(), i))
            .collect();
        Graph { objects, by_uid }
    }

    fn owner(&self, dependent: &Key, r: &Value) -> Owner {
        let Some((key, obj)) = self.by_uid.get(ref_uid(r)).map(|i| &self.objects[*i]) else {
            return Owner::Absent;
        };
        let same_object = r["name"].as_str() == Some(key.name.as_str())
            && r["kind"].as_str() == obj["kind"].as_str();
        let reachable = key.namespace.is_empty() || key.namespace == dependent.namespace;
        if !same_object || !reachable {
            Owner::Absent
        } else if has_finalizer(obj, FOREGROUND_FINALIZER) {
            Owner::Waiting
        } else {
            Owner::Live
        }
    }

    fn dependents<'a>(&'a self, owner: &'a Value) -> impl Iterator<Item = &'a (Key, Value)> {
        let id = uid(owner);
        self.objects
            .iter()
            .filter(move |(_, o)| owner_refs(o).iter().any(|r| ref_uid(r) == id))
    }
}

/// Writes `obj` with `edit` applied to its metadata; true when the write went through.
fn edit_metadata(store: &mut Store, key: &Key, obj: &Value, edit: impl FnOnce(&mut Value)) -> bool {
    let mut next = obj.clone();
    edit(&mut next["metadata"]);
    store.update(key, next, false).is_ok()
}

fn drop_finalizer(store: &mut Store, key: &Key, obj: &Value, f: &str) -> bool {
    edit_metadata(store, key, obj, |m| {
        let kept: Vec<String> = finalizers(obj).into_iter().filter(|x| x != f).collect();
        m["finalizers"] = json!(kept);
    })
}

fn drop_refs(store: &mut Store, key: &Key, obj: &Value, gone: impl Fn(&Value) -> bool) -> bool {
    let kept: Vec<Value> = owner_refs(obj)
        .iter()
        .filter(|r| !gone(r))
        .cloned()
        .collect();
    edit_metadata(store, key, obj, |m| {
        if kept.is_empty() {
            if let Some(m) = m.as_object_mut() {
                m.remove("ownerReferences");
            }
        } else {
            m["ownerReferences"] = json!(kept);
        }
    })
}

fn delete(store: &mut Store, key: &Key, propagation: Propagation) -> bool {
    let options = DeleteOptions {
        propagation: Some(propagation),
        ..DeleteOptions::default()
    };
    store.delete(key, &options).is_ok()
}

/// Does the first thing left to do; false when there is nothing.
fn step(store: &mut Store) -> bool {
    let g = Graph::of(store);
    // Orphaning owners: release their dependents, then let the owner go.
    for (key, obj) in g
        .objects
        .iter()
        .filter(|(_, o)| has_finalizer(o, ORPHAN_FINALIZER))
    {
        let id = uid(obj);
        for (dk, dep) in g.dependents(obj) {
            if drop_refs(store, dk, dep, |r| ref_uid(r) == id) {
                return true;
            }
        }
        if drop_finalizer(store, key, obj, ORPHAN_FINALIZER) {
            return true;
        }
    }
    // Foreground owners go once no blocking dependent is left (the dependents themselves are
    // deleted below, as owners waiting for them no longer hold them).
    for (key, obj) in g
        .objects
        .iter()
        .filter(|(_, o)| has_finalizer(o, FOREGROUND_FINALIZER))
    {
        let id = uid(obj);
        let blocked = g.dependents(obj).any(|(_, d)| {
            owner_refs(d)
                .iter()
                .any(|r| ref_uid(r) == id && r["blockOwnerDeletion"] == json!(true))
        });
        if !blocked && drop_finalizer(store, key, obj, FOREGROUND_FINALIZER) {
            return true;
        }
    }
    for (key, obj) in g.objects.iter().filter(|(_, o)| !being_deleted(o)) {
        let refs = owner_refs(obj);
        if refs.is_empty() {
            continue;
        }
        let states: Vec<Owner> = refs.iter().map(|r| g.owner(key, r)).collect();
        let acted = if states.contains(&Owner::Live) {
            !states.iter().all(|s| *s == Owner::Live)
                && drop_refs(store, key, obj, |r| g.owner(key, r) != Owner::Live)
        } else {
            let has_dependents = g.dependents(obj).next().is_some();
            let propagation = if states.contains(&Owner::Waiting) && has_dependents {
                Propagation::Foreground
            } else {
                Propagation::of_finalizers(obj)
            };
            delete(store, key, propagation)
        };
        if acted {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, resource: &str, name: &str) -> Key {
        Key {
            group: group.into(),
            resource: resource.into(),
            namespace: "ml".into(),
            name: name.into(),
        }
    }

    fn owned_by(owner: &Value, block: bool) -> Value {
        json!([{"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": block}])
    }

    /// Experiment -> ConfigMap (not blocking) and Experiment -> Job -> Pod.
    fn tree(s: &mut Store) -> (Key, Key, Key, Key) {
        let exp = key("amlops.io", "experiments", "train");
        let e = s
            .create(
                &exp,
                json!({"apiVersion": "amlops.io/v1alpha1", "kind": "Experiment", "metadata": {}}),
            )
            .unwrap();
        let cm = key("", "configmaps", "snap");
        s.create(&cm, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"ownerReferences": owned_by(&e, false)}}))
            .unwrap();
        let job = key("batch", "jobs", "run-1");
        let j = s
            .create(&job, json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"ownerReferences": owned_by(&e, true)},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main"}]}}}}))
            .unwrap();
        let pod = key("", "pods", "run-1-abcde");
        s.create(&pod, json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"ownerReferences": owned_by(&j, true)}}))
            .unwrap();
        (exp, cm, job, pod)
    }

    fn delete_with(s: &mut Store, k: &Key, p: Option<Propagation>) {
        let options = DeleteOptions {
            propagation: p,
            ..DeleteOptions::default()
        };
        s.delete(k, &options).unwrap();
        collect(s);
    }

    #[test]
    fn background_deletion_cascades_through_the_tree() {
        let mut s = Store::default();
        let (exp, cm, job, pod) = tree(&mut s);
        assert!(!collect(&mut s), "a settled tree has nothing to collect");
        delete_with(&mut s, &exp, Some(Propagation::Background));
        for k in [&exp, &cm, &job, &pod] {
            assert!(s.get(k).is_none(), "{k:?} is left");
        }
    }

    #[test]
    fn foreground_deletion_keeps_the_owner_until_blocking_dependents_are_gone() {
        let mut s = Store::default();
        let (exp, _, job, pod) = tree(&mut s);
        // A finalizer on the pod holds it, and so the Job and the Experiment.
        let p = s.get(&pod).unwrap().clone();
        let mut held = p.clone();
        held["metadata"]["finalizers"] = json!(["test/hold"]);
        s.update(&pod, held, false).unwrap();
        delete_with(&mut s, &exp, Some(Propagation::Foreground));
        assert!(s.get(&pod).unwrap()["metadata"]["deletionTimestamp"].is_string());
        assert_eq!(finalizers(s.get(&job).unwrap()), ["foregroundDeletion"]);
        assert_eq!(finalizers(s.get(&exp).unwrap()), ["foregroundDeletion"]);
        let mut released = s.get(&pod).unwrap().clone();
        released["metadata"]["finalizers"] = json!([]);
        s.update(&pod, released, false).unwrap();
        collect(&mut s);
        assert!(s.get(&pod).is_none() && s.get(&job).is_none() && s.get(&exp).is_none());
    }

    #[test]
    fn orphaning_keeps_dependents_without_the_reference() {
        let mut s = Store::default();
        let (_, _, job, pod) = tree(&mut s);
        // batch/v1 Jobs orphan their pods when the client names no propagation.
        delete_with(&mut s, &job, None);
        assert!(s.get(&job).is_none());
        let p = s.get(&pod).expect("the orphaned pod stays");
        assert!(p.pointer("/metadata/ownerReferences").is_none());
    }

    #[test]
    fn a_dependent_goes_only_when_every_owner_is_gone() {
        let mut s = Store::default();
        let (exp, cm, _, _) = tree(&mut s);
        let other = key("amlops.io", "experiments", "other");
        let o = s
            .create(
                &other,
                json!({"apiVersion": "amlops.io/v1alpha1", "kind": "Experiment", "metadata": {}}),
            )
            .unwrap();
        let mut c = s.get(&cm).unwrap().clone();
        let mut refs = c["metadata"]["ownerReferences"].as_array().unwrap().clone();
        let mut second = owned_by(&o, false)[0].clone();
        second["controller"] = json!(false);
        refs.push(second);
        c["metadata"]["ownerReferences"] = json!(refs);
        s.update(&cm, c, false).unwrap();
        delete_with(&mut s, &exp, Some(Propagation::Background));
        let left = s.get(&cm).expect("the second owner keeps it");
        assert_eq!(
            left["metadata"]["ownerReferences"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        delete_with(&mut s, &other, None);
        assert!(s.get(&cm).is_none());
    }

    #[test]
    fn a_reference_to_a_missing_owner_is_collected() {
        let mut s = Store::default();
        let cm = key("", "configmaps", "stray");
        s.create(
            &cm,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"ownerReferences": [
            {"apiVersion": "batch/v1", "kind": "Job", "name": "gone", "uid": "no-such-uid"}]}}),
        )
        .unwrap();
        assert!(collect(&mut s));
        assert!(s.get(&cm).is_none());
    }
}
