//! The spec's operations: path-template matching and validation of path, query and body
//! parameters of a request.

use super::schema::{Violation, check_string_format, matches_pattern};
use super::{DocId, SchemaRef, Spec, SpecError};
use serde_json::Value;

/// One operation of the spec.
#[derive(Debug)]
pub struct Operation {
    /// Upper-case HTTP method.
    pub method: String,
    /// Path template as written in the spec, e.g. `/subscriptions/{subscriptionId}/...`.
    pub template: String,
    segments: Vec<Segment>,
    /// Resolved parameters (path-level and operation-level), each with the document its
    /// `$ref`s resolve against. Copied out of the document: they are small.
    params: Vec<(DocId, Value)>,
}

#[derive(Debug)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A request path matched against an operation.
#[derive(Debug)]
pub struct RouteMatch<'s> {
    pub operation: &'s Operation,
    /// Decoded path parameter values by name.
    pub path_params: Vec<(String, String)>,
}

impl RouteMatch<'_> {
    /// The value of path parameter `name` (empty if absent).
    pub fn param(&self, name: &str) -> &str {
        self.path_params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// Violations of a request's parameters, reported as one 400.
pub type ParamViolations = Vec<Violation>;

pub(super) fn load(spec: &Spec) -> Result<Vec<Operation>, SpecError> {
    let mut ops = Vec::new();
    let Some(paths) = spec.doc(0).get("paths").and_then(Value::as_object) else {
        return Ok(ops);
    };
    for (template, item) in paths {
        let Some(item) = item.as_object() else {
            continue;
        };
        let shared: Vec<&Value> = item
            .get("parameters")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default();
        for (method, op) in item {
            if method == "parameters" {
                continue;
            }
            let mut params = Vec::new();
            for p in shared.iter().copied().chain(
                op.get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            ) {
                params.push(param_location(spec, p)?);
            }
            ops.push(Operation {
                method: method.to_ascii_uppercase(),
                template: template.clone(),
                segments: parse_template(template),
                params,
            });
        }
    }
    Ok(ops)
}

/// Resolves a parameter (possibly a `$ref` into types.json) to its document and node.
fn param_location(spec: &Spec, p: &Value) -> Result<(DocId, Value), SpecError> {
    Ok(match p.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let resolved = spec.resolve(0, r)?;
            (resolved.doc, resolved.node.clone())
        }
        None => (0, p.clone()),
    })
}

fn parse_template(template: &str) -> Vec<Segment> {
    template
        .split('/')
        .filter(|s| !s.is_empty())
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Segment::Param(name.to_string()),
                None => Segment::Literal(s.to_ascii_lowercase()),
            },
        )
        .collect()
}

/// Why a request path matched no operation.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    NoSuchPath,
    MethodNotAllowed,
}

impl Spec {
    /// Finds the operation for `method` and the (still percent-encoded) `path`. Literal segments
    /// compare case-insensitively, as ARM does; the most specific template wins.
    pub fn route(&self, method: &str, path: &str) -> Result<RouteMatch<'_>, RouteError> {
        let segs: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        // (literal segment count, match) of the most specific operation so far.
        let mut best: Option<(usize, RouteMatch<'_>)> = None;
        let mut path_known = false;
        for op in &self.operations {
            let Some(params) = match_segments(&op.segments, &segs) else {
                continue;
            };
            path_known = true;
            if !op.method.eq_ignore_ascii_case(method) {
                continue;
            }
            let literals = op
                .segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count();
            if best.as_ref().is_none_or(|(n, _)| literals > *n) {
                best = Some((
                    literals,
                    RouteMatch {
                        operation: op,
                        path_params: params,
                    },
                ));
            }
        }
        match best {
            Some((_, found)) => Ok(found),
            None if path_known => Err(RouteError::MethodNotAllowed),
            None => Err(RouteError::NoSuchPath),
        }
    }

    /// Validates path parameters, query parameters and (if `body` is given) the body of a
    /// matched request. `query` holds decoded pairs.
    pub fn validate_request(
        &self,
        m: &RouteMatch<'_>,
        query: &[(String, String)],
        body: Option<&Value>,
    ) -> ParamViolations {
        let mut out = Vec::new();
        for (doc, p) in &m.operation.params {
            let name = p.get("name").and_then(Value::as_str).unwrap_or("");
            let required = p.get("required").and_then(Value::as_bool) == Some(true);
            match p.get("in").and_then(Value::as_str) {
                Some("path") => check_simple(p, &format!("path.{name}"), m.param(name), &mut out),
                Some("query") => match query.iter().find(|(k, _)| k == name) {
                    Some((_, v)) => check_simple(p, &format!("query.{name}"), v, &mut out),
                    None if required => out.push(Violation {
                        path: format!("query.{name}"),
                        message: "required query parameter is missing".into(),
                    }),
                    None => {}
                },
                Some("body") => match (body, p.get("schema")) {
                    (Some(b), Some(schema)) => out.extend(self.validate(
                        SchemaRef {
                            doc: *doc,
                            node: schema,
                            def: None,
                        },
                        b,
                    )),
                    (None, _) if required => out.push(Violation {
                        path: "$".into(),
                        message: "request body is required".into(),
                    }),
                    _ => {}
                },
                _ => {}
            }
        }
        out
    }
}

fn match_segments(template: &[Segment], segs: &[String]) -> Option<Vec<(String, String)>> {
    if template.len() != segs.len() {
        return None;
    }
    let mut params = Vec::new();
    for (t, s) in template.iter().zip(segs) {
        match t {
            Segment::Literal(l) if l.eq_ignore_ascii_case(s) => {}
            Segment::Literal(_) => return None,
            Segment::Param(name) => params.push((name.clone(), s.clone())),
        }
    }
    Some(params)
}

/// Validates a path or query parameter (a string on the wire) against its declared type.
fn check_simple(p: &Value, path: &str, value: &str, out: &mut Vec<Violation>) {
    let mut fail = |message: String| {
        out.push(Violation {
            path: path.to_string(),
            message,
        })
    };
    match p.get("type").and_then(Value::as_str) {
        Some("integer") if value.parse::<i64>().is_err() => {
            fail(format!("{value:?} is not an integer"))
        }
        Some("boolean") if !matches!(value, "true" | "false") => {
            fail(format!("{value:?} is not a boolean"))
        }
        Some("number") if value.parse::<f64>().is_err() => {
            fail(format!("{value:?} is not a number"))
        }
        _ => {}
    }
    if let Some(min) = p
        .get("minLength")
        .and_then(Value::as_u64)
        .filter(|m| (value.chars().count() as u64) < *m)
    {
        fail(format!("must be at least {min} characters long"));
    }
    if let Some(max) = p
        .get("maxLength")
        .and_then(Value::as_u64)
        .filter(|m| (value.chars().count() as u64) > *m)
    {
        fail(format!("must be at most {max} characters long"));
    }
    if let Some(pattern) = p.get("pattern").and_then(Value::as_str) {
        match matches_pattern(pattern, value) {
            Ok(true) => {}
            Ok(false) => fail(format!("{value:?} does not match pattern {pattern}")),
            Err(e) => fail(format!("the fake cannot evaluate pattern {pattern}: {e}")),
        }
    }
    if let Some(format) = p.get("format").and_then(Value::as_str)
        && let Err(why) = check_string_format(format, value)
    {
        fail(format!("{value:?} is not a valid {format}: {why}"));
    }
}
