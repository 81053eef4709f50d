//! Removal of `x-ms-secret` properties from resources before they are returned: Azure never
//! echoes secrets (admin passwords, SSH keys, tokens) in GET or PUT responses.

use super::{SchemaRef, Spec};
use serde_json::Value;

pub(super) fn strip(spec: &Spec, schema: SchemaRef<'_>, value: &mut Value) {
    walk(spec, schema, value, true)
}

/// `dispatch` is false while walking a base on behalf of its subtype (see `schema.rs`).
fn walk(spec: &Spec, schema: SchemaRef<'_>, value: &mut Value, dispatch: bool) {
    if let Some(r) = schema.node.get("$ref").and_then(Value::as_str) {
        if let Ok(target) = spec.resolve(schema.doc, r) {
            walk(spec, target, value, dispatch);
        }
        return;
    }
    // A polymorphic base hands over to the subtype named by the value's discriminator.
    if dispatch
        && let (Some(prop), Some(def)) = (
            schema.node.get("discriminator").and_then(Value::as_str),
            schema.def,
        )
        && let Some(tag) = value.get(prop).and_then(Value::as_str)
        && let Some(sub) = spec.subtype(&(schema.doc, def.to_string()), tag)
    {
        return walk(spec, sub, value, true);
    }
    for parent in schema
        .node
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        walk(
            spec,
            SchemaRef {
                doc: schema.doc,
                node: parent,
                def: None,
            },
            value,
            false,
        );
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.node.get("properties").and_then(Value::as_object) {
                for (key, prop) in props {
                    if prop.get("x-ms-secret").and_then(Value::as_bool) == Some(true) {
                        map.remove(key);
                    } else if let Some(child) = map.get_mut(key) {
                        walk(
                            spec,
                            SchemaRef {
                                doc: schema.doc,
                                node: prop,
                                def: None,
                            },
                            child,
                            true,
                        );
                    }
                }
            }
            if let Some(extra @ Value::Object(_)) = schema.node.get("additionalProperties") {
                for child in map.values_mut() {
                    walk(
                        spec,
                        SchemaRef {
                            doc: schema.doc,
                            node: extra,
                            def: None,
                        },
                        child,
                        true,
                    );
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.node.get("items") {
                for child in items {
                    walk(
                        spec,
                        SchemaRef {
                            doc: schema.doc,
                            node: item,
                            def: None,
                        },
                        child,
                        true,
                    );
                }
            }
        }
        _ => {}
    }
}
