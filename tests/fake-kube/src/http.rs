//! HTTP routing: paths to keys and verbs, LIST / WATCH / GET / POST / PUT / PATCH / DELETE,
//! and pod logs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Query;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::gc::Propagation;
use crate::selector::Selector;
use crate::store::{ApiError, Change, DeleteOptions, Key, PatchKind};
use crate::{RequestRecord, Shared, pod_logs, settle, strategy};

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let shared = shared.clone();
            async move { handle(shared, method, uri, headers, body).await }
        },
    )
}

/// A parsed resource path.
struct Target {
    key: Key,
    /// `None`: a collection (list, watch, create).
    named: bool,
    subresource: Option<String>,
    /// Collection across all namespaces.
    all_namespaces: bool,
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (*ns, rest),
        _ => ("", rest),
    };
    let (resource, name, sub) = match rest {
        [r] => (*r, None, None),
        [r, n] => (*r, Some(*n), None),
        [r, n, s] => (*r, Some(*n), Some(*s)),
        _ => return None,
    };
    Some(Target {
        key: Key {
            group: group.to_string(),
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            name: name.unwrap_or_default().to_string(),
        },
        named: name.is_some(),
        subresource: sub.map(String::from),
        all_namespaces: namespace.is_empty(),
    })
}

/// The query parameters, percent-decoded.
fn params(uri: &Uri) -> HashMap<String, String> {
    Query::<HashMap<String, String>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default()
}

/// `DeleteOptions` from the body (client-go, kube-rs, kubectl) or the query string.
fn delete_options(
    body: &Value,
    params: &HashMap<String, String>,
) -> Result<DeleteOptions, ApiError> {
    let policy = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .map(String::from)
        .or_else(|| params.get("propagationPolicy").cloned());
    let orphan = body
        .get("orphanDependents")
        .and_then(Value::as_bool)
        .or_else(|| params.get("orphanDependents").map(|v| v == "true"));
    let propagation = match (policy, orphan) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                422,
                "Invalid",
                "DeleteOptions is invalid: propagationPolicy: Invalid value: orphanDependents and propagationPolicy cannot be both set",
            ));
        }
        (Some(p), None) => Some(Propagation::parse(&p)?),
        (None, Some(true)) => Some(Propagation::Orphan),
        (None, Some(false)) => Some(Propagation::Background),
        (None, None) => None,
    };
    let precondition = |field: &str| {
        body.pointer(&format!("/preconditions/{field}"))
            .and_then(Value::as_str)
            .map(String::from)
    };
    Ok(DeleteOptions {
        propagation,
        uid: precondition("uid"),
        resource_version: precondition("resourceVersion"),
    })
}

fn json_response(code: u16, v: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn error(e: ApiError) -> Response {
    json_response(e.code, &e.status())
}

/// Metadata-only view of an object (`as=PartialObjectMetadata`).
fn partial(v: &Value) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": v["metadata"]})
}

async fn handle(
    shared: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(t) = parse_path(uri.path()) else {
        return error(ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("the fake has no route for {}", uri.path()),
        });
    };
    let params = params(&uri);
    let watching = params.get("watch").is_some_and(|w| w == "true" || w == "1");
    let verb = match (&method, t.named, watching) {
        (&Method::GET, _, true) => "watch",
        (&Method::GET, true, _) => "get",
        (&Method::GET, false, _) => "list",
        (&Method::POST, _, _) => "create",
        (&Method::PUT, _, _) => "update",
        (&Method::PATCH, _, _) => "patch",
        (&Method::DELETE, _, _) => "delete",
        _ => {
            return error(ApiError {
                code: 405,
                reason: "MethodNotAllowed",
                message: format!("{method} is not supported"),
            });
        }
    };
    let resource = match &t.subresource {
        Some(s) => format!("{}/{s}", t.key.resource),
        None => t.key.resource.clone(),
    };
    if let Ok(mut r) = shared.records.lock() {
        r.push(RequestRecord {
            verb: verb.to_string(),
            group: t.key.group.clone(),
            resource,
            namespace: t.key.namespace.clone(),
            name: t.key.name.clone(),
        });
    }
    if t.subresource.as_deref() == Some("log") && strategy::is_pod(&t.key) && verb == "get" {
        return pod_logs::respond(shared, &t.key, &params).unwrap_or_else(error);
    }
    let selector = match Selector::parse(
        &t.key,
        params.get("labelSelector").map(String::as_str),
        params.get("fieldSelector").map(String::as_str),
    ) {
        Ok(s) => s,
        Err(e) => return error(e),
    };
    let metadata_only = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let ns = (!t.all_namespaces).then(|| t.key.namespace.clone());
    if verb == "watch" {
        let since = params
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let timeout = params
            .get("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(290u64);
        return watch(
            shared,
            Subscription {
                key: t.key,
                ns,
                selector,
                metadata_only,
            },
            since,
            Duration::from_secs(timeout),
        );
    }
    let parsed: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    if matches!(verb, "create" | "update" | "patch") && parsed.is_null() {
        return error(ApiError {
            code: 400,
            reason: "BadRequest",
            message: "the body is not JSON".into(),
        });
    }
    let status_only = t.subresource.as_deref() == Some("status");
    let result = {
        let mut store = match shared.store.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let result = match verb {
            "list" => {
                let items: Vec<Value> = store
                    .list(&t.key.group, &t.key.resource, ns.as_deref())
                    .iter()
                    .filter(|o| selector.matches(o))
                    .map(|o| if metadata_only { partial(o) } else { o.clone() })
                    .collect();
                let kind = if metadata_only {
                    "PartialObjectMetadataList"
                } else {
                    "List"
                };
                Ok((
                    200,
                    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": store.resource_version().to_string()}, "items": items}),
                ))
            }
            "get" => store
                .get(&t.key)
                .cloned()
                .map(|o| (200, o))
                .ok_or(ApiError {
                    code: 404,
                    reason: "NotFound",
                    message: format!("{} {:?} not found", t.key.resource, t.key.name),
                }),
            "create" => {
                let mut key = t.key.clone();
                key.name = parsed
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                store.create(&key, parsed).map(|o| (201, o))
            }
            "update" => store.update(&t.key, parsed, status_only).map(|o| (200, o)),
            "patch" => {
                let ct = headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|c| c.to_str().ok())
                    .unwrap_or_default();
                let kind = if ct.contains("apply-patch") {
                    PatchKind::Apply
                } else if ct.contains("json-patch") {
                    PatchKind::Json
                } else {
                    PatchKind::Merge
                };
                let manager = params.get("fieldManager").cloned().unwrap_or_default();
                if kind == PatchKind::Apply && manager.is_empty() {
                    Err(ApiError {
                        code: 400,
                        reason: "BadRequest",
                        message: "fieldManager is required for apply patches".into(),
                    })
                } else {
                    store
                        .patch(&t.key, parsed, kind, status_only, &manager)
                        .map(|o| (200, o))
                }
            }
            _ => delete_options(&parsed, &params)
                .and_then(|options| store.delete(&t.key, &options))
                .map(|o| (200, o)),
        };
        settle(&mut store);
        result
    };
    let _ = shared.changed.send(());
    match result {
        Ok((code, v)) => json_response(code, &v),
        Err(e) => error(e),
    }
}

fn event_line(c: &Change, metadata_only: bool) -> Bytes {
    let object = if metadata_only {
        partial(&c.object)
    } else {
        c.object.clone()
    };
    let mut line = json!({"type": c.kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// What a watch asked for.
struct Subscription {
    key: Key,
    ns: Option<String>,
    selector: Selector,
    metadata_only: bool,
}

impl Subscription {
    /// Selectors filter events by the object they carry (an object that stops matching is
    /// not reported as DELETED, unlike the apiserver; no scenario relabels objects).
    fn wants(&self, c: &Change) -> bool {
        c.group == self.key.group
            && c.resource == self.key.resource
            && self.ns.as_ref().is_none_or(|n| *n == c.namespace)
            && self.selector.matches(&c.object)
    }
}

/// Streams changes after `since` that match, then live ones, until the timeout.
fn watch(shared: Arc<Shared>, sub: Subscription, since: u64, timeout: Duration) -> Response {
    let rx = shared.changed.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    let state = (shared, rx, since, sub);
    let stream =
        futures::stream::unfold(state, move |(shared, mut rx, mut cursor, sub)| async move {
            loop {
                let lines: Vec<Bytes> = {
                    let store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
                    let lines = store
                        .history
                        .iter()
                        .filter(|c| c.rv > cursor && sub.wants(c))
                        .map(|c| event_line(c, sub.metadata_only))
                        .collect();
                    cursor = store.resource_version();
                    lines
                };
                if !lines.is_empty() {
                    let chunk: Vec<u8> = lines.concat();
                    return Some((
                        Ok::<Bytes, std::io::Error>(Bytes::from(chunk)),
                        (shared, rx, cursor, sub),
                    ));
                }
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Err(_) => return None,
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
                    Ok(_) => {}
                }
            }
        });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
