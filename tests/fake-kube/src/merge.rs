//! JSON merge patch (RFC 7386) and JSON patch (RFC 6902, the ops controllers use).

use serde_json::Value;

/// Applies a merge patch: objects merge recursively, `null` removes, anything else replaces.
pub fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (_, Some(p)) => {
            *target = Value::Object(Default::default());
            for (k, v) in p {
                if !v.is_null() {
                    let mut slot = Value::Null;
                    merge(&mut slot, v);
                    target[k] = slot;
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Applies a JSON patch; `Err` names the failing operation.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch must be an array")?;
    for op in ops {
        let kind = op["op"].as_str().ok_or("op missing")?;
        let path = op["path"].as_str().ok_or("path missing")?;
        let (parent_path, last) = path
            .rsplit_once('/')
            .ok_or_else(|| format!("bad path {path}"))?;
        let last = unescape(last);
        match kind {
            "test" => {
                if target.pointer(path) != Some(&op["value"]) {
                    return Err(format!("test failed at {path}"));
                }
            }
            "add" | "replace" => {
                let parent = target
                    .pointer_mut(parent_path)
                    .ok_or_else(|| format!("no parent for {path}"))?;
                match parent {
                    Value::Object(m) => {
                        m.insert(last, op["value"].clone());
                    }
                    Value::Array(a) if last == "-" => a.push(op["value"].clone()),
                    Value::Array(a) => {
                        let i: usize = last.parse().map_err(|_| format!("bad index in {path}"))?;
                        if kind == "add" && i <= a.len() {
                            a.insert(i, op["value"].clone());
                        } else if i < a.len() {
                            a[i] = op["value"].clone();
                        } else {
                            return Err(format!("index out of range in {path}"));
                        }
                    }
                    _ => return Err(format!("cannot add under {parent_path}")),
                }
            }
            "remove" => {
                let parent = target
                    .pointer_mut(parent_path)
                    .ok_or_else(|| format!("no parent for {path}"))?;
                match parent {
                    Value::Object(m) => {
                        m.remove(&last)
                            .ok_or_else(|| format!("nothing at {path}"))?;
                    }
                    Value::Array(a) => {
                        let i: usize = last.parse().map_err(|_| format!("bad index in {path}"))?;
                        if i >= a.len() {
                            return Err(format!("index out of range in {path}"));
                        }
                        a.remove(i);
                    }
                    _ => return Err(format!("cannot remove {path}")),
                }
            }
            other => return Err(format!("unsupported op {other}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge(&mut v, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(v, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }

    #[test]
    fn json_patch_ops() {
        let mut v = json!({"metadata": {"finalizers": ["x"]}});
        json_patch(&mut v, &json!([{"op": "test", "path": "/metadata/finalizers", "value": ["x"]}, {"op": "add", "path": "/metadata/finalizers/-", "value": "y"}])).unwrap();
        assert_eq!(v["metadata"]["finalizers"], json!(["x", "y"]));
        json_patch(
            &mut v,
            &json!([{"op": "remove", "path": "/metadata/finalizers/0"}]),
        )
        .unwrap();
        assert_eq!(v["metadata"]["finalizers"], json!(["y"]));
        assert!(
            json_patch(
                &mut v,
                &json!([{"op": "test", "path": "/metadata/finalizers", "value": []}])
            )
            .is_err()
        );
    }
}
