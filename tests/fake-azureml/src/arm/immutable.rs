//! Write-once resources (environment and code versions, jobs): a repeated PUT may only change
//! the fields the spec lets you update (`x-ms-mutability` includes `update`: tags,
//! description, isArchived, ...). Any other difference is refused with 409 Conflict, as Azure
//! does; the same body is an idempotent 200.

use serde_json::Value;

/// Which `properties.*` fields are filled in by the server and which may be updated.
pub struct Rules {
    pub server_fields: &'static [&'static str],
    pub updatable: &'static [&'static str],
}

#[derive(Debug, PartialEq, Eq)]
pub enum Rewrite {
    /// Accepted (possibly with updated mutable fields applied to `stored`).
    Accepted,
    /// The immutable part differs.
    Conflict,
}

fn immutable_part(rules: &Rules, body: &Value) -> Value {
    let mut props = body.get("properties").cloned().unwrap_or(Value::Null);
    if let Some(map) = props.as_object_mut() {
        for field in rules.server_fields.iter().chain(rules.updatable) {
            map.remove(*field);
        }
    }
    props
}

/// Applies `incoming` over `stored` if only updatable fields differ.
pub fn rewrite(rules: &Rules, stored: &mut Value, incoming: &Value) -> Rewrite {
    if immutable_part(rules, stored) != immutable_part(rules, incoming) {
        return Rewrite::Conflict;
    }
    if let Some(props) = stored.get_mut("properties").and_then(Value::as_object_mut) {
        for field in rules.updatable {
            match incoming.pointer(&format!("/properties/{field}")) {
                Some(value) => props.insert(field.to_string(), value.clone()),
                None => props.remove(*field),
            };
        }
    }
    Rewrite::Accepted
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const RULES: Rules = Rules {
        server_fields: &["provisioningState"],
        updatable: &["tags", "isArchived"],
    };

    #[test]
    fn only_updatable_fields_may_change() {
        let mut stored = json!({"properties": {"image": "a", "tags": {"x": "1"}}});
        let retag = json!({"properties": {"image": "a", "tags": {"x": "2"}, "isArchived": true, "provisioningState": "Succeeded"}});
        assert_eq!(rewrite(&RULES, &mut stored, &retag), Rewrite::Accepted);
        assert_eq!(
            stored,
            json!({"properties": {"image": "a", "tags": {"x": "2"}, "isArchived": true}})
        );
        let new_image = json!({"properties": {"image": "b", "tags": {"x": "2"}}});
        assert_eq!(rewrite(&RULES, &mut stored, &new_image), Rewrite::Conflict);
        assert_eq!(
            stored["properties"]["image"], "a",
            "a refused write changes nothing"
        );
    }
}
