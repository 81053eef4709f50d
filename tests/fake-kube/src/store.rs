//! The object store with apiserver semantics: resourceVersion, generation, status
//! subresource, finalizers + deletionTimestamp, deletion propagation, conflicts, and a watch
//! history.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::gc::Propagation;
use crate::{merge, strategy};

/// Where an object lives: API group ("" for core), plural resource, namespace, name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

/// One change, as a watch reports it.
#[derive(Clone, Debug)]
pub struct Change {
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub kind: &'static str,
    pub object: Value,
    pub rv: u64,
}

/// An API error: HTTP status, reason, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }
    pub fn status(&self) -> Value {
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "message": self.message, "reason": self.reason, "code": self.code})
    }
}

/// How a PATCH body is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    /// Server-side apply by a field manager.
    Apply,
}

/// The parts of a DELETE's `DeleteOptions` the fake honours.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `None`: the resource's default (see `strategy::default_propagation`).
    pub propagation: Option<Propagation>,
    /// `preconditions.uid`: delete only this incarnation of the name.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

#[derive(Default)]
pub struct Store {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    pub history: Vec<Change>,
    /// Finalizers each field manager applied, per object (the part of SSA controllers rely on).
    applied_finalizers: HashMap<(Key, String), Vec<String>>,
    /// Container logs by (namespace, pod, container); they go with their pod.
    pub pod_logs: BTreeMap<(String, String, String), String>,
}

pub fn finalizers(v: &Value) -> Vec<String> {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn rv_of(v: &Value) -> Option<&str> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

impl Store {
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    pub fn objects(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter()
    }

    pub fn list(&self, group: &str, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(k, _)| {
                k.group == group
                    && k.resource == resource
                    && namespace.is_none_or(|n| n == k.namespace)
            })
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn record(&mut self, key: &Key, kind: &'static str, object: Value) {
        self.history.push(Change {
            group: key.group.clone(),
            resource: key.resource.clone(),
            namespace: key.namespace.clone(),
            kind,
            object,
            rv: self.rv,
        });
    }

    fn bump(&mut self, obj: &mut Value) {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
    }

    pub fn create(&mut self, key: &Key, mut obj: Value) -> Result<Value, ApiError> {
        let mut key = key.clone();
        if key.name.is_empty() {
            key.name = generated_name(&obj)?;
        }
        let key = &key;
        if self.objects.contains_key(key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} {:?} already exists", key.resource, key.name),
            ));
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        let m = &mut obj["metadata"];
        m["name"] = json!(key.name);
        if !key.namespace.is_empty() {
            m["namespace"] = json!(key.namespace);
        }
        m["uid"] = json!(uuid::Uuid::new_v4().to_string());
        m["generation"] = json!(1);
        m["creationTimestamp"] = json!(now());
        if let Some(m) = m.as_object_mut() {
            m.remove("deletionTimestamp");
        }
        if strategy::has_status_subresource(key)
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        strategy::prepare_create(key, &mut obj)?;
        self.bump(&mut obj);
        self.objects.insert(key.clone(), obj.clone());
        self.record(key, "ADDED", obj.clone());
        Ok(obj)
    }

    fn current(&self, key: &Key) -> Result<Value, ApiError> {
        self.objects.get(key).cloned().ok_or_else(|| {
            ApiError::new(
                404,
                "NotFound",
                format!("{} {:?} not found", key.resource, key.name),
            )
        })
    }

    fn check_rv(current: &Value, incoming: &Value) -> Result<(), ApiError> {
        match (rv_of(incoming), rv_of(current)) {
            (Some(want), Some(have)) if want != have => Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "the object has been modified; please apply your changes to the latest version and try again (resourceVersion {want} is stale, current is {have})"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// PUT: replace the object, or only its status with `status_only`.
    pub fn update(
        &mut self,
        key: &Key,
        incoming: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let current = self.current(key)?;
        Self::check_rv(&current, &incoming)?;
        let mut next = if status_only {
            let mut n = current.clone();
            n["status"] = incoming.get("status").cloned().unwrap_or(Value::Null);
            n
        } else {
            let mut n = incoming;
            if strategy::has_status_subresource(key) {
                match current.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(o) = n.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            n
        };
        self.keep_system_fields(&current, &mut next);
        if !status_only {
            strategy::prepare_update(key, &current, &mut next)?;
        }
        self.commit(key, current, next)
    }

    /// PATCH of any kind; `Apply` creates the object when it does not exist.
    pub fn patch(
        &mut self,
        key: &Key,
        body: Value,
        kind: PatchKind,
        status_only: bool,
        manager: &str,
    ) -> Result<Value, ApiError> {
        let current = match (self.objects.get(key), kind) {
            (Some(c), _) => c.clone(),
            (None, PatchKind::Apply) if !status_only => {
                let mut obj = body.clone();
                let fins = finalizers(&body);
                self.applied_finalizers
                    .insert((key.clone(), manager.to_string()), fins);
                if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                return self.create(key, obj);
            }
            (None, _) => {
                return Err(ApiError::new(
                    404,
                    "NotFound",
                    format!("{} {:?} not found", key.resource, key.name),
                ));
            }
        };
        Self::check_rv(&current, &body)?;
        let mut next = current.clone();
        match (kind, status_only) {
            (PatchKind::Json, _) => {
                merge::json_patch(&mut next, &body).map_err(|e| ApiError::new(422, "Invalid", e))?
            }
            (PatchKind::Merge, true) => merge::merge(
                &mut next,
                &json!({"status": body.get("status").cloned().unwrap_or(Value::Null)}),
            ),
            (PatchKind::Merge, false) => merge::merge(&mut next, &body),
            // SSA of the status by its one writer: the applied status is the whole status.
            (PatchKind::Apply, true) => {
                next["status"] = body.get("status").cloned().unwrap_or(Value::Null)
            }
            (PatchKind::Apply, false) => self.apply_main(key, &mut next, &body, manager),
        }
        if strategy::has_status_subresource(key) && !status_only {
            match current.get("status") {
                Some(s) => next["status"] = s.clone(),
                None => {
                    if let Some(o) = next.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        if status_only && let (Some(o), Some(c)) = (next.as_object_mut(), current.as_object()) {
            for (k, v) in c {
                if k != "status" {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
        self.keep_system_fields(&current, &mut next);
        if !status_only {
            strategy::prepare_update(key, &current, &mut next)?;
        }
        self.commit(key, current, next)
    }

    /// Server-side apply of the main resource, approximated: finalizers are owned per field
    /// manager (dropping one from the applied set removes it), everything else merges.
    fn apply_main(&mut self, key: &Key, next: &mut Value, body: &Value, manager: &str) {
        let owned_key = (key.clone(), manager.to_string());
        let previously = self
            .applied_finalizers
            .remove(&owned_key)
            .unwrap_or_default();
        let applied = finalizers(body);
        let mut result: Vec<String> = finalizers(next)
            .into_iter()
            .filter(|f| !previously.contains(f) || applied.contains(f))
            .collect();
        for f in &applied {
            if !result.contains(f) {
                result.push(f.clone());
            }
        }
        self.applied_finalizers.insert(owned_key, applied);
        let mut rest = body.clone();
        if let Some(m) = rest.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("finalizers");
            m.remove("resourceVersion");
        }
        merge::merge(next, &rest);
        next["metadata"]["finalizers"] = json!(result);
    }

    fn keep_system_fields(&self, current: &Value, next: &mut Value) {
        for f in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
            "name",
            "namespace",
        ] {
            match current["metadata"].get(f) {
                Some(v) => next["metadata"][f] = v.clone(),
                None => {
                    if let Some(m) = next["metadata"].as_object_mut() {
                        m.remove(f);
                    }
                }
            }
        }
        if let Some(m) = next["metadata"].as_object_mut()
            && m.get("finalizers")
                .and_then(Value::as_array)
                .is_some_and(Vec::is_empty)
        {
            m.remove("finalizers");
        }
    }

    /// Stores `next` (generation bumped on a spec change), or deletes it when it is being
    /// deleted and has no finalizers left. An unchanged object is not written.
    fn commit(&mut self, key: &Key, current: Value, mut next: Value) -> Result<Value, ApiError> {
        if next.get("spec") != current.get("spec") {
            let g = current["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            next["metadata"]["generation"] = json!(g);
        }
        let mut cmp = next.clone();
        cmp["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        if cmp == current {
            return Ok(current);
        }
        if next["metadata"].get("deletionTimestamp").is_some() && finalizers(&next).is_empty() {
            return Ok(self.remove(key, next));
        }
        self.bump(&mut next);
        self.objects.insert(key.clone(), next.clone());
        self.record(key, "MODIFIED", next.clone());
        Ok(next)
    }

    fn remove(&mut self, key: &Key, mut last: Value) -> Value {
        self.objects.remove(key);
        self.applied_finalizers.retain(|(k, _), _| k != key);
        if strategy::is_pod(key) {
            self.pod_logs
                .retain(|(ns, pod, _), _| *ns != key.namespace || *pod != key.name);
        }
        self.bump(&mut last);
        self.record(key, "DELETED", last.clone());
        last
    }

    /// DELETE: without finalizers the object goes at once; otherwise it only gets a
    /// deletionTimestamp. Foreground and Orphan propagation add the garbage collector's
    /// finalizer first, so the owner stays until its dependents are handled (see `gc`).
    pub fn delete(&mut self, key: &Key, options: &DeleteOptions) -> Result<Value, ApiError> {
        let current = self.current(key)?;
        let uid = current.pointer("/metadata/uid").and_then(Value::as_str);
        if let Some(want) = &options.uid
            && uid != Some(want.as_str())
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: UID in precondition: {want}, UID in object meta: {}",
                    uid.unwrap_or_default()
                ),
            ));
        }
        if let Some(want) = &options.resource_version
            && rv_of(&current) != Some(want.as_str())
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                    rv_of(&current).unwrap_or_default()
                ),
            ));
        }
        if current["metadata"].get("deletionTimestamp").is_some() {
            return Ok(current);
        }
        let propagation = options
            .propagation
            .unwrap_or_else(|| strategy::default_propagation(key));
        let mut fins = finalizers(&current);
        if let Some(f) = propagation.finalizer()
            && !fins.iter().any(|x| x == f)
        {
            fins.push(f.to_string());
        }
        if fins.is_empty() {
            return Ok(self.remove(key, current));
        }
        let mut next = current;
        next["metadata"]["finalizers"] = json!(fins);
        next["metadata"]["deletionTimestamp"] = json!(now());
        self.bump(&mut next);
        self.objects.insert(key.clone(), next.clone());
        self.record(key, "MODIFIED", next.clone());
        Ok(next)
    }
}

/// Seconds-precision RFC 3339, as the apiserver writes metav1.Time.
pub fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// `metadata.generateName` plus five characters of the apiserver's alphabet
/// (SimpleNameGenerator: no vowels, no look-alike digits).
fn generated_name(obj: &Value) -> Result<String, ApiError> {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let prefix = obj
        .pointer("/metadata/generateName")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                422,
                "Invalid",
                "metadata.name: Required value: name or generateName is required",
            )
        })?;
    let random = uuid::Uuid::new_v4();
    let suffix: String = random.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    Ok(format!("{prefix}{suffix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key {
            group: "amlops.io".into(),
            resource: "computetargets".into(),
            namespace: "ml".into(),
            name: "cpu".into(),
        }
    }
    fn ct() -> Value {
        json!({"apiVersion": "amlops.io/v1alpha1", "kind": "ComputeTarget", "metadata": {"name": "cpu"}, "spec": {"x": 1}, "status": {"ignored": true}})
    }

    #[test]
    fn create_sets_system_fields_and_drops_status() {
        let mut s = Store::default();
        let o = s.create(&key(), ct()).unwrap();
        assert_eq!(o["metadata"]["generation"], 1);
        assert_eq!(o["metadata"]["resourceVersion"], "1");
        assert!(o.get("status").is_none());
        assert_eq!(s.create(&key(), ct()).unwrap_err().code, 409);
    }

    #[test]
    fn generation_moves_on_spec_changes_only_and_stale_writes_conflict() {
        let mut s = Store::default();
        s.create(&key(), ct()).unwrap();
        let o = s
            .patch(
                &key(),
                json!({"status": {"a": 1}}),
                PatchKind::Merge,
                true,
                "m",
            )
            .unwrap();
        assert_eq!(o["metadata"]["generation"], 1);
        assert_eq!(o["status"]["a"], 1);
        let o = s
            .patch(
                &key(),
                json!({"spec": {"x": 2}}),
                PatchKind::Merge,
                false,
                "m",
            )
            .unwrap();
        assert_eq!(o["metadata"]["generation"], 2);
        assert_eq!(o["status"]["a"], 1, "the main endpoint keeps the status");
        let mut stale = o.clone();
        stale["metadata"]["resourceVersion"] = json!("1");
        assert_eq!(s.update(&key(), stale, false).unwrap_err().code, 409);
        // an identical write does not bump the resourceVersion
        let same = s
            .patch(
                &key(),
                json!({"spec": {"x": 2}}),
                PatchKind::Merge,
                false,
                "m",
            )
            .unwrap();
        assert_eq!(
            same["metadata"]["resourceVersion"],
            o["metadata"]["resourceVersion"]
        );
    }

    #[test]
    fn finalizers_hold_deletion_until_the_applier_drops_theirs() {
        let mut s = Store::default();
        s.create(&key(), ct()).unwrap();
        s.patch(
            &key(),
            json!({"metadata": {"finalizers": ["other/keep"]}}),
            PatchKind::Merge,
            false,
            "x",
        )
        .unwrap();
        s.patch(
            &key(),
            json!({"metadata": {"name": "cpu", "finalizers": ["amlops.io/cleanup"]}}),
            PatchKind::Apply,
            false,
            "amlops",
        )
        .unwrap();
        assert_eq!(
            finalizers(s.get(&key()).unwrap()),
            ["other/keep", "amlops.io/cleanup"]
        );
        let o = s.delete(&key(), &DeleteOptions::default()).unwrap();
        assert!(o["metadata"]["deletionTimestamp"].is_string());
        s.patch(
            &key(),
            json!({"metadata": {"name": "cpu", "finalizers": []}}),
            PatchKind::Apply,
            false,
            "amlops",
        )
        .unwrap();
        assert_eq!(finalizers(s.get(&key()).unwrap()), ["other/keep"]);
        s.patch(
            &key(),
            json!({"metadata": {"finalizers": null}}),
            PatchKind::Merge,
            false,
            "x",
        )
        .unwrap();
        assert!(s.get(&key()).is_none());
        assert_eq!(s.history.last().unwrap().kind, "DELETED");
    }
}
