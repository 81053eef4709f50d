//! A Swagger 2.0 schema validator for the subset the Azure ML spec uses: `$ref`, `type`,
//! `required`, `enum` (+ `x-ms-enum.modelAsString`), `properties`, `additionalProperties`,
//! `allOf`, `discriminator` + `x-ms-discriminator-value`, `x-nullable`, `format`, `pattern`,
//! `minLength`/`maxLength`, `minimum`/`maximum`, `minItems`/`maxItems`.
//!
//! `readOnly` properties are accepted on input, as Azure ignores them.

use super::{SchemaRef, Spec};
use fancy_regex::Regex;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// One schema violation: where in the document and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON path, `$` is the document root, e.g. `$.properties.limits.jobLimitsType`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Stop collecting after this many violations: the first few are what a person reads.
const MAX_VIOLATIONS: usize = 20;

pub(super) fn validate(spec: &Spec, schema: SchemaRef<'_>, value: &Value) -> Vec<Violation> {
    let mut v = Validator {
        spec,
        out: Vec::new(),
    };
    v.check(schema, value, "$", true);
    v.out
}

/// `$.a.b` for identifier-like keys, `$['fake.outcome']` otherwise.
pub(crate) fn child_path(path: &str, key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    {
        format!("{path}.{key}")
    } else {
        format!("{path}['{}']", key.replace('\'', "\\'"))
    }
}

struct Validator<'s> {
    spec: &'s Spec,
    out: Vec<Violation>,
}

impl<'s> Validator<'s> {
    fn fail(&mut self, path: &str, message: impl Into<String>) {
        if self.out.len() < MAX_VIOLATIONS {
            self.out.push(Violation {
                path: path.to_string(),
                message: message.into(),
            });
        }
    }

    fn resolve(&mut self, schema: SchemaRef<'s>, path: &str) -> Option<SchemaRef<'s>> {
        match schema.node.get("$ref").and_then(Value::as_str) {
            None => Some(schema),
            Some(reference) => match self.spec.resolve(schema.doc, reference) {
                Ok(target) => Some(target),
                Err(e) => {
                    self.fail(path, format!("the fake cannot validate this: {e}"));
                    None
                }
            },
        }
    }

    /// `dispatch` is false when checking a base schema on behalf of one of its subtypes
    /// (through the subtype's `allOf`), so the base does not dispatch back to the subtype.
    fn check(&mut self, schema: SchemaRef<'s>, value: &Value, path: &str, dispatch: bool) {
        if value.is_null() {
            let nullable = |s: &Value| s.get("x-nullable").and_then(Value::as_bool) == Some(true);
            let target_nullable = self.resolve(schema, path).is_some_and(|t| nullable(t.node));
            if !(nullable(schema.node) || target_nullable) {
                self.fail(path, "null is not allowed here");
            }
            return;
        }
        if schema.node.get("$ref").is_some() {
            if let Some(target) = self.resolve(schema, path) {
                self.check(target, value, path, dispatch);
            }
            return;
        }
        if dispatch && self.dispatch_subtype(schema, value, path) {
            return;
        }
        for parent in schema
            .node
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(
                SchemaRef {
                    doc: schema.doc,
                    node: parent,
                    def: None,
                },
                value,
                path,
                false,
            );
        }
        if !self.check_type(schema.node, value, path) {
            return;
        }
        match value {
            Value::Object(map) => self.check_object(schema, map, path, dispatch),
            Value::Array(items) => self.check_array(schema, items, path),
            Value::String(s) => self.check_string(schema.node, s, path),
            Value::Number(_) => check_number(self, schema.node, value, path),
            _ => {}
        }
    }

    /// Validates against the subtype named by the discriminator; true if it did.
    fn dispatch_subtype(&mut self, schema: SchemaRef<'s>, value: &Value, path: &str) -> bool {
        let (Some(prop), Some(def)) = (
            schema.node.get("discriminator").and_then(Value::as_str),
            schema.def,
        ) else {
            return false;
        };
        let Some(tag) = value.get(prop).and_then(Value::as_str) else {
            return false; // `required` / type checks of the base report it
        };
        let own = schema
            .node
            .get("x-ms-discriminator-value")
            .and_then(Value::as_str)
            .unwrap_or(def);
        if tag == own {
            return false;
        }
        let base = (schema.doc, def.to_string());
        match self.spec.subtype(&base, tag) {
            Some(sub) => self.check(sub, value, path, true),
            None => {
                let known = self.spec.subtype_values(&base).join(", ");
                self.fail(
                    &child_path(path, prop),
                    format!("unknown {prop} {tag:?} for {def}; expected one of: {known}"),
                );
            }
        }
        true
    }

    fn check_type(&mut self, node: &Value, value: &Value, path: &str) -> bool {
        let Some(ty) = node.get("type").and_then(Value::as_str) else {
            return true;
        };
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            _ => true,
        };
        if !ok {
            self.fail(path, format!("expected {ty}, found {}", kind(value)));
        }
        ok
    }

    fn check_object(
        &mut self,
        schema: SchemaRef<'s>,
        map: &Map<String, Value>,
        path: &str,
        dispatch: bool,
    ) {
        let node = schema.node;
        for name in node
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !map.contains_key(name) {
                self.fail(&child_path(path, name), "required property is missing");
            }
        }
        let props = node.get("properties").and_then(Value::as_object);
        for (key, val) in map {
            let child = child_path(path, key);
            if let Some(prop) = props.and_then(|p| p.get(key)) {
                self.check(
                    SchemaRef {
                        doc: schema.doc,
                        node: prop,
                        def: None,
                    },
                    val,
                    &child,
                    true,
                );
                continue;
            }
            match node.get("additionalProperties") {
                Some(Value::Object(_)) => {
                    let extra = SchemaRef {
                        doc: schema.doc,
                        node: &node["additionalProperties"],
                        def: None,
                    };
                    self.check(extra, val, &child, true);
                }
                // When checked as a base of a subtype the subtype's properties are legitimately unknown here.
                Some(Value::Bool(false))
                    if dispatch && !self.declared_in_ancestors(schema, key) =>
                {
                    self.fail(&child, "unknown property (additionalProperties is false)");
                }
                _ => {}
            }
        }
    }

    fn declared_in_ancestors(&mut self, schema: SchemaRef<'s>, key: &str) -> bool {
        schema
            .node
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|parent| {
                let Some(p) = self.resolve(
                    SchemaRef {
                        doc: schema.doc,
                        node: parent,
                        def: None,
                    },
                    "$",
                ) else {
                    return false;
                };
                p.node.get("properties").and_then(|m| m.get(key)).is_some()
                    || self.declared_in_ancestors(p, key)
            })
    }

    fn check_array(&mut self, schema: SchemaRef<'s>, items: &[Value], path: &str) {
        let node = schema.node;
        if let Some(min) = node
            .get("minItems")
            .and_then(Value::as_u64)
            .filter(|m| (items.len() as u64) < *m)
        {
            self.fail(
                path,
                format!("must have at least {min} items, has {}", items.len()),
            );
        }
        if let Some(max) = node
            .get("maxItems")
            .and_then(Value::as_u64)
            .filter(|m| (items.len() as u64) > *m)
        {
            self.fail(
                path,
                format!("must have at most {max} items, has {}", items.len()),
            );
        }
        if let Some(item_schema) = node.get("items") {
            for (i, item) in items.iter().enumerate() {
                self.check(
                    SchemaRef {
                        doc: schema.doc,
                        node: item_schema,
                        def: None,
                    },
                    item,
                    &format!("{path}[{i}]"),
                    true,
                );
            }
        }
    }

    fn check_string(&mut self, node: &Value, s: &str, path: &str) {
        if let Some(values) = node.get("enum").and_then(Value::as_array) {
            let open = node
                .pointer("/x-ms-enum/modelAsString")
                .and_then(Value::as_bool)
                == Some(true);
            if !open && !values.iter().any(|v| v.as_str() == Some(s)) {
                let list: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
                self.fail(path, format!("{s:?} is not one of: {}", list.join(", ")));
            }
        }
        let chars = s.chars().count() as u64;
        if let Some(min) = node
            .get("minLength")
            .and_then(Value::as_u64)
            .filter(|m| chars < *m)
        {
            self.fail(path, format!("must be at least {min} characters long"));
        }
        if let Some(max) = node
            .get("maxLength")
            .and_then(Value::as_u64)
            .filter(|m| chars > *m)
        {
            self.fail(path, format!("must be at most {max} characters long"));
        }
        if let Some(pattern) = node.get("pattern").and_then(Value::as_str) {
            match matches_pattern(pattern, s) {
                Ok(true) => {}
                Ok(false) => self.fail(path, format!("{s:?} does not match pattern {pattern}")),
                Err(e) => self.fail(
                    path,
                    format!("the fake cannot evaluate pattern {pattern}: {e}"),
                ),
            }
        }
        if let Some(format) = node.get("format").and_then(Value::as_str)
            && let Err(why) = check_string_format(format, s)
        {
            self.fail(path, format!("{s:?} is not a valid {format}: {why}"));
        }
    }
}

fn check_number(v: &mut Validator<'_>, node: &Value, value: &Value, path: &str) {
    match node.get("format").and_then(Value::as_str) {
        Some("int32") if value.as_i64().is_none_or(|n| i32::try_from(n).is_err()) => {
            v.fail(path, format!("{value} is out of range for int32"));
        }
        Some("int64") if value.as_i64().is_none() => {
            v.fail(path, format!("{value} is out of range for int64"))
        }
        _ => {}
    }
    let n = value.as_f64().unwrap_or(f64::NAN);
    if let Some(min) = node.get("minimum").and_then(Value::as_f64) {
        let exclusive = node.get("exclusiveMinimum").and_then(Value::as_bool) == Some(true);
        if n < min || (exclusive && n == min) {
            v.fail(path, format!("{value} is below the minimum {min}"));
        }
    }
    if let Some(max) = node.get("maximum").and_then(Value::as_f64) {
        let exclusive = node.get("exclusiveMaximum").and_then(Value::as_bool) == Some(true);
        if n > max || (exclusive && n == max) {
            v.fail(path, format!("{value} is above the maximum {max}"));
        }
    }
}

/// Checks the string formats the spec uses; unknown formats (password, arm-id) accept anything.
pub(crate) fn check_string_format(format: &str, s: &str) -> Result<(), String> {
    match format {
        "date-time" => s
            .parse::<jiff::Timestamp>()
            .map(drop)
            .map_err(|e| e.to_string()),
        "duration" => jiff::fmt::temporal::SpanParser::new()
            .parse_span(s)
            .map(drop)
            .map_err(|e| e.to_string()),
        "uuid" => uuid::Uuid::parse_str(s)
            .map(drop)
            .map_err(|e| e.to_string()),
        "uri" => url::Url::parse(s).map(drop).map_err(|e| e.to_string()),
        _ => Ok(()),
    }
}

/// Evaluates a spec `pattern` (ECMA-style, one of them with a lookahead) with a cache of compiled regexes.
pub(crate) fn matches_pattern(pattern: &str, s: &str) -> Result<bool, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, Regex>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache
        .lock()
        .map_err(|_| "regex cache poisoned".to_string())?;
    if !cache.contains_key(pattern) {
        let re = Regex::new(pattern).map_err(|e| e.to_string())?;
        cache.insert(pattern.to_string(), re);
    }
    let re = &cache[pattern];
    re.is_match(s).map_err(|e| e.to_string())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
