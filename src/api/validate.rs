//! Client-side admission: the checks the apiserver runs on create/update (object metadata,
//! the OpenAPI schema and CEL rules of the generated CRDs, the built-in rules of Secrets and
//! ConfigMaps), so `amlops validate` and `amlops apply` reject exactly what a cluster would,
//! with the field named.

use serde_json::Value;

use super::{all_crds, core_kinds, names};

/// One thing wrong with an object, with the JSON path of the field (e.g. `spec.amlCompute.maxNodes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// The openAPIV3Schema of the CRD for `kind`, as JSON.
pub fn schema_for(kind: &str) -> Option<Value> {
    all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .and_then(|crd| {
            let schema = crd
                .spec
                .versions
                .first()?
                .schema
                .as_ref()?
                .open_api_v3_schema
                .as_ref()?
                .clone();
            serde_json::to_value(schema).ok()
        })
}

/// Whether `namespace` may name a namespace; the problem says what it may be.
pub fn check_namespace(namespace: &str) -> Result<(), String> {
    names::dns_label(namespace)
}

/// Validates `object` (a whole manifest: apiVersion, kind, metadata, spec or data) of `kind`,
/// an amlops kind, Secret or ConfigMap; `old` (the stored object) enables the rules of an
/// update (immutable fields).
pub fn validate(kind: &str, object: &Value, old: Option<&Value>) -> Vec<Problem> {
    let mut problems = Vec::new();
    check_metadata(object, &mut problems);
    if let Some(schema) = core_kinds::schema(kind) {
        check_schema(&schema, object, "", &mut problems);
        if problems.is_empty() {
            core_kinds::check(kind, object, old, &mut problems);
        }
        return problems;
    }
    let Some(schema) = schema_for(kind) else {
        return vec![Problem {
            field: "kind".into(),
            message: format!("unknown kind {kind:?}"),
        }];
    };
    // status is not checked: controllers own it, and the apiserver drops it from a manifest.
    for field in object.as_object().into_iter().flatten().map(|(k, _)| k) {
        if !["apiVersion", "kind", "metadata", "spec", "status"].contains(&field.as_str()) {
            problems.push(Problem {
                field: field.clone(),
                message: "unknown field; known fields here: apiVersion, kind, metadata, spec"
                    .into(),
            });
        }
    }
    if let (Some(spec_schema), Some(spec)) =
        (schema.pointer("/properties/spec"), object.get("spec"))
    {
        check_schema(spec_schema, spec, "spec", &mut problems);
    } else if object.get("spec").is_none() {
        problems.push(Problem {
            field: "spec".into(),
            message: "is required".into(),
        });
    }
    if problems.is_empty() {
        let spec_only = |v: &Value| serde_json::json!({ "spec": v.get("spec").cloned().unwrap_or(Value::Null) });
        let old_spec = old.map(spec_only);
        if let Err(errors) = kube::core::cel::Validator::new().validate(
            &schema,
            &spec_only(object),
            old_spec.as_ref(),
        ) {
            for e in errors.into_vec() {
                let field = if e.field_path.is_empty() {
                    "spec".to_string()
                } else {
                    e.field_path.trim_start_matches('.').to_string()
                };
                problems.push(Problem {
                    field,
                    message: e.message,
                });
            }
        }
    }
    problems
}

/// The apiserver's checks of metadata: the name, the namespace, labels and annotations.
fn check_metadata(object: &Value, out: &mut Vec<Problem>) {
    let meta = &object["metadata"];
    if !meta.is_object() {
        return out.push(Problem {
            field: "metadata".into(),
            message: "is required, with a name".into(),
        });
    }
    let mut fail = |field: String, message: String| out.push(Problem { field, message });
    // A misspelt field (`namspace:`) would be dropped silently, leaving the object elsewhere.
    for field in meta.as_object().into_iter().flatten().map(|(k, _)| k) {
        if !OBJECT_META_FIELDS.contains(&field.as_str()) {
            fail(
                format!("metadata.{field}"),
                format!(
                    "unknown field; known fields here: {}",
                    OBJECT_META_FIELDS.join(", ")
                ),
            );
        }
    }
    match &meta["name"] {
        Value::String(name) => {
            if let Err(e) = names::dns_subdomain(name) {
                fail("metadata.name".into(), e);
            }
        }
        Value::Null => fail("metadata.name".into(), "is required".into()),
        other => fail("metadata.name".into(), expected("string", other)),
    }
    match &meta["namespace"] {
        Value::String(namespace) => {
            if let Err(e) = check_namespace(namespace) {
                fail("metadata.namespace".into(), e);
            }
        }
        Value::Null => {}
        other => fail("metadata.namespace".into(), expected("string", other)),
    }
    let mut annotation_bytes = 0;
    for field in ["labels", "annotations"] {
        let map = match &meta[field] {
            Value::Object(map) => map,
            Value::Null => continue,
            other => {
                fail(
                    format!("metadata.{field}"),
                    expected("a map of strings", other),
                );
                continue;
            }
        };
        for (key, value) in map {
            let at = format!("metadata.{field}.{key}");
            if let Err(e) = names::qualified_name(key) {
                fail(at.clone(), format!("invalid key: {e}"));
            }
            let Some(value) = value.as_str() else {
                fail(at, expected("string", value));
                continue;
            };
            if field == "annotations" {
                annotation_bytes += key.len() + value.len();
            } else if let Err(e) = names::label_value(value) {
                fail(at, format!("invalid value: {e}"));
            }
        }
    }
    if annotation_bytes > MAX_ANNOTATION_BYTES {
        fail(
            "metadata.annotations".into(),
            format!("{annotation_bytes} bytes in all; at most {MAX_ANNOTATION_BYTES}"),
        );
    }
}

fn expected(what: &str, got: &Value) -> String {
    format!("expected {what}, got {}", json_type(got))
}

/// The fields of Kubernetes' ObjectMeta.
const OBJECT_META_FIELDS: [&str; 15] = [
    "annotations",
    "creationTimestamp",
    "deletionGracePeriodSeconds",
    "deletionTimestamp",
    "finalizers",
    "generateName",
    "generation",
    "labels",
    "managedFields",
    "name",
    "namespace",
    "ownerReferences",
    "resourceVersion",
    "selfLink",
    "uid",
];

/// The apiserver's limit on the annotations of one object.
const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

/// Structural checks of the OpenAPI v3 subset the generated CRDs use.
fn check_schema(schema: &Value, value: &Value, path: &str, out: &mut Vec<Problem>) {
    let mut fail = |message: String| {
        out.push(Problem {
            field: path.to_string(),
            message,
        })
    };
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            fail("must not be null".into());
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str);
    let type_ok = match ty {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        fail(expected(ty.unwrap_or("?"), value));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| v.to_string())
            .collect();
        fail(format!(
            "unsupported value {value}: expected one of {}",
            list.join(", ")
        ));
    }
    match value {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = schema
                .get("minLength")
                .and_then(Value::as_u64)
                .filter(|m| len < *m)
            {
                fail(format!("must be at least {min} characters"));
            }
            if let Some(max) = schema
                .get("maxLength")
                .and_then(Value::as_u64)
                .filter(|m| len > *m)
            {
                fail(format!("must be at most {max} characters"));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                match regex::Regex::new(pattern) {
                    Ok(re) if !re.is_match(s) => {
                        fail(format!("{s:?} does not match the pattern {pattern}"))
                    }
                    Ok(_) => {}
                    Err(e) => fail(format!("schema pattern {pattern} does not compile: {e}")),
                }
            }
        }
        Value::Number(n) => {
            let v = n.as_f64().unwrap_or_default();
            if let Some(min) = schema
                .get("minimum")
                .and_then(Value::as_f64)
                .filter(|m| v < *m)
            {
                fail(format!("{n} is less than the minimum {min}"));
            }
            if let Some(max) = schema
                .get("maximum")
                .and_then(Value::as_f64)
                .filter(|m| v > *m)
            {
                fail(format!("{n} is greater than the maximum {max}"));
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .filter(|m| items.len() as u64 > *m)
            {
                fail(format!("must have at most {max} items"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_schema(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(map) => check_object(schema, map, path, out),
        _ => {}
    }
}

fn check_object(
    schema: &Value,
    map: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<Problem>,
) {
    if let Some(max) = schema
        .get("maxProperties")
        .and_then(Value::as_u64)
        .filter(|m| map.len() as u64 > *m)
    {
        out.push(Problem {
            field: path.into(),
            message: format!("must have at most {max} entries"),
        });
    }
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(required) {
            out.push(Problem {
                field: format!("{path}.{required}"),
                message: "is required".into(),
            });
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    for (key, v) in map {
        let child = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match (properties.and_then(|p| p.get(key)), additional) {
            (Some(s), _) => check_schema(s, v, &child, out),
            (None, Some(s)) if s.is_object() => check_schema(s, v, &child, out),
            (None, _)
                if schema.get("x-kubernetes-preserve-unknown-fields")
                    == Some(&Value::Bool(true)) => {}
            (None, _) => {
                let known: Vec<&str> = properties
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                out.push(Problem {
                    field: child,
                    message: format!("unknown field; known fields here: {}", known.join(", ")),
                });
            }
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_configuration(existing: Value) -> Value {
        serde_json::json!({
            "apiVersion": "amlops.io/v1alpha1",
            "kind": "RunConfiguration",
            "metadata": {"name": "rc"},
            "spec": {"targetRef": {"name": "cpu"}, "environment": {"existing": existing}}
        })
    }

    #[test]
    fn existing_environments_are_admitted_in_the_workspace_curated_and_registry_forms() {
        for existing in [
            serde_json::json!({"name": "my-env", "version": "3"}),
            serde_json::json!({"name": "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu", "version": "33"}),
            serde_json::json!({"registry": "azureml", "name": "acpt-pytorch-2.2-cuda12.1", "version": "41"}),
        ] {
            let problems = validate(
                "RunConfiguration",
                &run_configuration(existing.clone()),
                None,
            );
            assert!(problems.is_empty(), "{existing}: {problems:?}");
        }
    }

    #[test]
    fn a_bad_registry_or_an_asset_id_as_name_is_rejected_naming_the_field() {
        let cases = [
            (
                serde_json::json!({"registry": "a", "name": "env", "version": "1"}),
                "spec.environment.existing.registry",
            ),
            (
                serde_json::json!({"registry": "my/registry", "name": "env", "version": "1"}),
                "spec.environment.existing.registry",
            ),
            (
                serde_json::json!({"name": "azureml://registries/azureml/environments/env/versions/1", "version": "1"}),
                "spec.environment.existing.name",
            ),
        ];
        for (existing, field) in cases {
            let problems = validate(
                "RunConfiguration",
                &run_configuration(existing.clone()),
                None,
            );
            assert!(
                problems.iter().any(|p| p.field == field),
                "{existing}: {problems:?}"
            );
        }
    }
}
