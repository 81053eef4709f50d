//! Admission of the core kinds amlops objects reference, Secret and ConfigMap, as the apiserver
//! does it: known fields only, string maps, base64 `data`/`binaryData`, valid keys, the size
//! limit, the keys each Secret type needs, and immutability. Messages never show a value.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::names;
use super::validate::Problem;

/// The apiserver's limit on the data of one Secret or ConfigMap.
const MAX_DATA_BYTES: usize = 1024 * 1024;

/// The structural schema of `kind`, checked like a CRD's (types, unknown fields).
pub(super) fn schema(kind: &str) -> Option<Value> {
    let strings = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let mut properties = json!({
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "immutable": {"type": "boolean"},
        "data": strings,
    });
    match kind {
        "Secret" => {
            properties["stringData"] = strings;
            properties["type"] = json!({"type": "string"});
        }
        "ConfigMap" => properties["binaryData"] = strings,
        _ => return None,
    }
    Some(json!({"type": "object", "properties": properties}))
}

/// The checks beyond the schema, for an object that passed it; `old` is the stored object of an update.
pub(super) fn check(kind: &str, object: &Value, old: Option<&Value>, out: &mut Vec<Problem>) {
    let data = match contents(kind, object) {
        Ok(data) => data,
        Err(problems) => return out.extend(problems),
    };
    let mut fail = |field: String, message: String| out.push(Problem { field, message });
    let total: usize = data.values().map(Vec::len).sum();
    if total > MAX_DATA_BYTES {
        fail(
            "data".into(),
            format!("{total} bytes in all; a {kind} holds at most {MAX_DATA_BYTES} bytes"),
        );
    }
    if kind == "Secret" {
        secret_type(object, &data, &mut fail);
    }
    let Some(old) = old else { return };
    if kind == "Secret" && secret_type_of(old) != secret_type_of(object) {
        fail(
            "type".into(),
            format!(
                "is immutable (stored: {:?}): delete the Secret and create it again to change it",
                secret_type_of(old)
            ),
        );
    }
    if old["immutable"] == true {
        if object["immutable"] != true {
            fail(
                "immutable".into(),
                format!("this {kind} is immutable and stays so: delete it and create it again"),
            );
        }
        if contents(kind, old).is_ok_and(|stored| stored != data) {
            fail(
                "data".into(),
                format!(
                    "this {kind} is immutable (immutable: true): delete it and create it again to change its data"
                ),
            );
        }
    }
}

/// Key -> bytes, as the apiserver stores them: base64 `data` (Secret) or `binaryData`
/// (ConfigMap) decoded, a Secret's `stringData` over its `data`. Problems name each bad key.
fn contents(kind: &str, object: &Value) -> Result<BTreeMap<String, Vec<u8>>, Vec<Problem>> {
    let (base64_field, text_fields): (&str, &[&str]) = match kind {
        "Secret" => ("data", &["stringData"]),
        _ => ("binaryData", &["data"]),
    };
    let mut problems = Vec::new();
    let mut data = BTreeMap::new();
    let entries = |field: &'static str| {
        object[field]
            .as_object()
            .into_iter()
            .flatten()
            .map(move |(k, v)| (field, k, v.as_str().unwrap_or_default()))
    };
    let fields = std::iter::once(base64_field).chain(text_fields.iter().copied());
    for (field, key, value) in fields.flat_map(entries) {
        if let Err(e) = names::config_map_key(key) {
            problems.push(Problem {
                field: format!("{field}.{key}"),
                message: format!("invalid key: {e}"),
            });
        }
        let bytes = if field == base64_field {
            match STANDARD.decode(value) {
                Ok(bytes) => bytes,
                Err(_) => {
                    problems.push(Problem {
                        field: format!("{field}.{key}"),
                        message: format!(
                            "is not valid base64; put plain text under {} instead",
                            if kind == "Secret" {
                                "stringData"
                            } else {
                                "data"
                            }
                        ),
                    });
                    continue;
                }
            }
        } else {
            value.as_bytes().to_vec()
        };
        // A ConfigMap key may not be in both maps; a Secret's stringData wins over its data.
        if data.insert(key.clone(), bytes).is_some() && kind == "ConfigMap" {
            problems.push(Problem {
                field: format!("{field}.{key}"),
                message: "is also a key of binaryData: a key may be in only one of them".into(),
            });
        }
    }
    if problems.is_empty() {
        Ok(data)
    } else {
        Err(problems)
    }
}

fn secret_type_of(object: &Value) -> &str {
    object["type"].as_str().unwrap_or("Opaque")
}

/// The keys the built-in Secret types need.
fn secret_type(
    object: &Value,
    data: &BTreeMap<String, Vec<u8>>,
    fail: &mut impl FnMut(String, String),
) {
    let kind = secret_type_of(object);
    let has = |k: &str| data.get(k).is_some_and(|v| !v.is_empty());
    let needs = |keys: &[&str], any: bool| {
        let found = keys.iter().filter(|k| has(k)).count();
        if (any && found == 0) || (!any && found < keys.len()) {
            let list = keys.join(if any { " or " } else { " and " });
            Some(format!(
                "a Secret of type {kind} needs {list} in data or stringData"
            ))
        } else {
            None
        }
    };
    let missing = match kind {
        "kubernetes.io/basic-auth" => needs(&["username", "password"], true),
        "kubernetes.io/ssh-auth" => needs(&["ssh-privatekey"], false),
        "kubernetes.io/tls" => needs(&["tls.crt", "tls.key"], false),
        "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
            let key = if kind.ends_with("json") {
                ".dockerconfigjson"
            } else {
                ".dockercfg"
            };
            needs(&[key], false).or_else(|| {
                data.get(key)
                    .filter(|v| serde_json::from_slice::<Value>(v).is_err())
                    .map(|_| format!("{key} of a Secret of type {kind} must be JSON"))
            })
        }
        "kubernetes.io/service-account-token"
            if object["metadata"]["annotations"]["kubernetes.io/service-account.name"]
                .as_str()
                .is_none_or(str::is_empty) =>
        {
            Some(format!(
                "a Secret of type {kind} needs the annotation kubernetes.io/service-account.name"
            ))
        }
        _ => None,
    };
    if let Some(message) = missing {
        fail("type".into(), message);
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate::validate;
    use serde_json::json;

    fn secret(extra: serde_json::Value) -> serde_json::Value {
        let mut s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}});
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        s
    }

    fn fields(
        kind: &str,
        object: &serde_json::Value,
        old: Option<&serde_json::Value>,
    ) -> Vec<String> {
        validate(kind, object, old)
            .into_iter()
            .map(|p| p.field)
            .collect()
    }

    #[test]
    fn secrets_are_admitted_as_the_apiserver_does_without_showing_values() {
        assert!(
            fields(
                "Secret",
                &secret(json!({"stringData": {"pw": "x"}, "data": {"a": "aGk="}})),
                None
            )
            .is_empty()
        );
        let problems = validate(
            "Secret",
            &secret(
                json!({"data": {"pw": "hunter2!"}, "stringData": {"m": {"a": "b"}}, "strng": {}}),
            ),
            None,
        );
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(
            shown.iter().any(|p| p.starts_with("strng: unknown field")),
            "{shown:?}"
        );
        assert!(
            shown
                .iter()
                .any(|p| p.starts_with("stringData.m: expected string")),
            "{shown:?}"
        );
        assert!(shown.iter().all(|p| !p.contains("hunter2")), "{shown:?}");
        // Once the schema holds, the data is decoded.
        let problems = validate("Secret", &secret(json!({"data": {"pw": "hunter2!"}})), None);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "data.pw");
        assert!(
            problems[0].message.contains("not valid base64")
                && !problems[0].message.contains("hunter2")
        );
        assert_eq!(
            fields(
                "Secret",
                &secret(json!({"stringData": {"../x": "a"}})),
                None
            ),
            ["stringData.../x"]
        );
        assert_eq!(
            fields(
                "Secret",
                &secret(json!({"type": "kubernetes.io/ssh-auth", "stringData": {"key": "a"}})),
                None
            ),
            ["type"]
        );
    }

    #[test]
    fn immutable_secrets_and_config_maps_keep_their_data_and_type() {
        let old = secret(json!({"immutable": true, "stringData": {"pw": "a"}}));
        let same = secret(json!({"immutable": true, "data": {"pw": "YQ=="}}));
        assert!(fields("Secret", &same, Some(&old)).is_empty());
        let changed = secret(json!({"immutable": true, "stringData": {"pw": "b"}}));
        assert_eq!(fields("Secret", &changed, Some(&old)), ["data"]);
        let retyped =
            secret(json!({"type": "kubernetes.io/basic-auth", "stringData": {"password": "a"}}));
        assert_eq!(
            fields("Secret", &retyped, Some(&secret(json!({})))),
            ["type"]
        );
        let cm = |extra: serde_json::Value| {
            let mut c = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        assert_eq!(
            fields(
                "ConfigMap",
                &cm(json!({"data": {"a": "x"}, "binaryData": {"a": "eA=="}})),
                None
            ),
            ["data.a"]
        );
        assert_eq!(
            fields("ConfigMap", &cm(json!({"binaryData": {"a": "%%"}})), None),
            ["binaryData.a"]
        );
    }
}
