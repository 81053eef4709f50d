//! Per-resource apiserver rules (the "strategy" of each registry in kube-apiserver): which kinds
//! have a status subresource, what create resets or defaults, which updates are invalid, and
//! which deletion propagation applies when the client names none.

use serde_json::{Value, json};

use crate::gc::Propagation;
use crate::job_spec;
use crate::store::{ApiError, Key};

pub fn is_job(key: &Key) -> bool {
    key.group == "batch" && key.resource == "jobs"
}

pub fn is_pod(key: &Key) -> bool {
    key.group.is_empty() && key.resource == "pods"
}

/// Kinds whose `status` is a subresource (the main endpoint ignores status, and vice versa):
/// every amlops custom resource, batch/v1 Jobs and core/v1 Pods.
pub fn has_status_subresource(key: &Key) -> bool {
    key.group == "amlops.io" || is_job(key) || is_pod(key)
}

/// What the apiserver does to a new object before storing it, after the generic metadata.
pub fn prepare_create(key: &Key, obj: &mut Value) -> Result<(), ApiError> {
    validate_owner_references(obj)?;
    if is_job(key) {
        job_spec::prepare_create(obj)?;
    }
    if is_pod(key) {
        // podStrategy.PrepareForCreate: a new pod is Pending whatever the client sent.
        obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        // The ServiceAccount admission plugin: a pod that names no account runs as `default`.
        if obj
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            obj["spec"]["serviceAccountName"] = json!("default");
        }
    }
    Ok(())
}

/// What the apiserver defaults and refuses in an update of the main resource.
pub fn prepare_update(key: &Key, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    validate_owner_references(new)?;
    if is_job(key) {
        job_spec::prepare_update(old, new)?;
    }
    Ok(())
}

/// The propagation a DELETE without one gets: batch/v1 Jobs orphan their pods for backwards
/// compatibility (`DefaultGarbageCollectionPolicy` in pkg/registry/batch/job/strategy.go; the
/// apiserver warns "child pods are preserved by default when jobs are deleted"), everything
/// else is deleted in the background.
pub fn default_propagation(key: &Key) -> Propagation {
    if is_job(key) {
        Propagation::Orphan
    } else {
        Propagation::Background
    }
}

pub fn invalid(kind: &str, name: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("{kind} {name:?} is invalid: {detail}"),
    }
}

/// ownerReferences need apiVersion, kind, name and uid, and at most one may be the controller
/// (ValidateOwnerReferences in apimachinery's objectmeta validation).
fn validate_owner_references(obj: &Value) -> Result<(), ApiError> {
    let Some(refs) = obj.pointer("/metadata/ownerReferences") else {
        return Ok(());
    };
    let kind = obj["kind"].as_str().unwrap_or("object");
    let name = obj.pointer("/metadata/name").and_then(Value::as_str);
    let name = name.unwrap_or_default();
    let refs = refs.as_array().ok_or_else(|| {
        invalid(
            kind,
            name,
            "metadata.ownerReferences: Invalid value: must be a list",
        )
    })?;
    for r in refs {
        for field in ["apiVersion", "kind", "name", "uid"] {
            if r.get(field)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(invalid(
                    kind,
                    name,
                    format!("metadata.ownerReferences.{field}: Required value"),
                ));
            }
        }
    }
    let controllers = refs
        .iter()
        .filter(|r| r["controller"].as_bool() == Some(true))
        .count();
    if controllers > 1 {
        return Err(invalid(
            kind,
            name,
            "metadata.ownerReferences: Invalid value: only one reference can have Controller set to true",
        ));
    }
    Ok(())
}
