//! `labelSelector` and `fieldSelector` of LIST and WATCH, as the apiserver reads them
//! (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors and
//! .../field-selectors/): comma-separated requirements that must all hold.

use serde_json::Value;

use crate::store::{ApiError, Key};

/// One label requirement.
#[derive(Debug, PartialEq)]
enum Label {
    Exists(String),
    Absent(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// One field requirement: JSON pointer into the object, wanted value, `=` (true) or `!=`.
#[derive(Debug, PartialEq)]
struct Field {
    pointer: &'static str,
    value: String,
    equal: bool,
}

/// What a LIST or WATCH asked for; the default selects everything.
#[derive(Debug, Default)]
pub struct Selector {
    labels: Vec<Label>,
    fields: Vec<Field>,
}

fn bad(message: String) -> ApiError {
    ApiError {
        code: 400,
        reason: "BadRequest",
        message,
    }
}

/// Splits on commas outside parentheses (`k in (a,b),x=y` is two requirements).
fn requirements(text: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(text[start..].trim());
    out.into_iter().filter(|r| !r.is_empty()).collect()
}

fn set_of(key: &str, rest: &str, whole: &str) -> Result<(String, Vec<String>), ApiError> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            bad(format!(
                "unable to parse requirement: {whole:?}: expected a parenthesised set of values"
            ))
        })?;
    let values = inner.split(',').map(|v| v.trim().to_string()).collect();
    Ok((key.trim().to_string(), values))
}

fn label(req: &str) -> Result<Label, ApiError> {
    if let Some(k) = req.strip_prefix('!') {
        return Ok(Label::Absent(k.trim().to_string()));
    }
    if let Some((k, v)) = req.split_once("!=") {
        return Ok(Label::NotIn(k.trim().into(), vec![v.trim().into()]));
    }
    if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
        return Ok(Label::In(k.trim().into(), vec![v.trim().into()]));
    }
    if let Some((k, rest)) = req.split_once(" notin ") {
        let (k, vs) = set_of(k, rest, req)?;
        return Ok(Label::NotIn(k, vs));
    }
    if let Some((k, rest)) = req.split_once(" in ") {
        let (k, vs) = set_of(k, rest, req)?;
        return Ok(Label::In(k, vs));
    }
    if req.contains(char::is_whitespace) || req.contains(['(', ')', '<', '>']) {
        return Err(bad(format!(
            "unable to parse requirement: {req:?}: the fake reads =, ==, !=, in, notin, key and !key"
        )));
    }
    Ok(Label::Exists(req.to_string()))
}

/// The fields the apiserver lets a client select on: metadata.name and metadata.namespace for
/// every resource, plus some of a pod's (`ToSelectableFields` in pkg/registry/core/pod/strategy.go).
fn field_pointer(key: &Key, field: &str) -> Option<&'static str> {
    match (key.group.as_str(), key.resource.as_str(), field) {
        (_, _, "metadata.name") => Some("/metadata/name"),
        (_, _, "metadata.namespace") => Some("/metadata/namespace"),
        ("", "pods", "status.phase") => Some("/status/phase"),
        ("", "pods", "spec.nodeName") => Some("/spec/nodeName"),
        ("", "pods", "spec.restartPolicy") => Some("/spec/restartPolicy"),
        ("", "pods", "spec.serviceAccountName") => Some("/spec/serviceAccountName"),
        _ => None,
    }
}

fn field(key: &Key, req: &str) -> Result<Field, ApiError> {
    let (name, value, equal) = if let Some((k, v)) = req.split_once("!=") {
        (k, v, false)
    } else if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
        (k, v, true)
    } else {
        return Err(bad(format!(
            "invalid field selector {req:?}: expected field=value or field!=value"
        )));
    };
    let name = name.trim();
    let pointer = field_pointer(key, name).ok_or_else(|| {
        bad(format!(
            "field label not supported: {name} (resource {})",
            key.resource
        ))
    })?;
    Ok(Field {
        pointer,
        value: value.trim().to_string(),
        equal,
    })
}

impl Selector {
    /// Parses the two query parameters for a resource; absent ones select everything.
    pub fn parse(key: &Key, labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        Ok(Selector {
            labels: requirements(labels.unwrap_or_default())
                .into_iter()
                .map(label)
                .collect::<Result<_, _>>()?,
            fields: requirements(fields.unwrap_or_default())
                .into_iter()
                .map(|r| field(key, r))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let label_of = |k: &str| {
            obj.pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
        };
        let labels_hold = self.labels.iter().all(|r| match r {
            Label::Exists(k) => label_of(k).is_some(),
            Label::Absent(k) => label_of(k).is_none(),
            Label::In(k, vs) => label_of(k).is_some_and(|v| vs.iter().any(|w| w == v)),
            Label::NotIn(k, vs) => label_of(k).is_none_or(|v| vs.iter().all(|w| w != v)),
        });
        let fields_hold = self.fields.iter().all(|f| {
            let have = match obj.pointer(f.pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (have == f.value) == f.equal
        });
        labels_hold && fields_hold
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pods() -> Key {
        Key {
            group: String::new(),
            resource: "pods".into(),
            namespace: "ml".into(),
            name: String::new(),
        }
    }

    fn pod(labels: Value, phase: &str) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ml", "labels": labels}, "status": {"phase": phase}})
    }

    #[test]
    fn label_requirements_all_hold() {
        let s = Selector::parse(
            &pods(),
            Some("batch.kubernetes.io/job-name=run-1,tier in (a, b),!gone,app"),
            None,
        )
        .unwrap();
        let yes = pod(
            json!({"batch.kubernetes.io/job-name": "run-1", "tier": "b", "app": "x"}),
            "Running",
        );
        assert!(s.matches(&yes));
        let other_job = pod(
            json!({"batch.kubernetes.io/job-name": "run-2", "tier": "b", "app": "x"}),
            "Running",
        );
        assert!(!s.matches(&other_job));
        let with_gone = pod(
            json!({"batch.kubernetes.io/job-name": "run-1", "tier": "a", "app": "x", "gone": "1"}),
            "Running",
        );
        assert!(!s.matches(&with_gone));
        let notin = Selector::parse(&pods(), Some("tier notin (a),x!=y"), None).unwrap();
        assert!(notin.matches(&pod(json!({"tier": "c"}), "Running")));
        assert!(!notin.matches(&pod(json!({"tier": "a"}), "Running")));
    }

    #[test]
    fn field_selectors_know_their_fields() {
        let s =
            Selector::parse(&pods(), None, Some("metadata.name=p,status.phase!=Failed")).unwrap();
        assert!(s.matches(&pod(json!({}), "Running")));
        assert!(!s.matches(&pod(json!({}), "Failed")));
        let e = Selector::parse(&pods(), None, Some("spec.containers=x")).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("spec.containers"), "{}", e.message);
        assert_eq!(
            Selector::parse(&pods(), Some("a in b"), None)
                .unwrap_err()
                .code,
            400
        );
    }
}
