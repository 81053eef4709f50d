//! HTTP routing: paths to keys and verbs, LIST / WATCH / GET / POST / PUT / PATCH / DELETE.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::{ApiError, Change, Key, PatchKind};
use crate::{RequestRecord, Shared};

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

fn query(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| v.to_string())
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
    let watching = query(&uri, "watch").is_some_and(|w| w == "true" || w == "1");
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
    let metadata_only = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let ns = (!t.all_namespaces).then(|| t.key.namespace.clone());
    if verb == "watch" {
        let since = query(&uri, "resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let timeout = query(&uri, "timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(290u64);
        return watch(
            shared,
            t.key,
            ns,
            since,
            Duration::from_secs(timeout),
            metadata_only,
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
        match verb {
            "list" => {
                let items: Vec<Value> = store
                    .list(&t.key.group, &t.key.resource, ns.as_deref())
                    .iter()
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
                let manager = query(&uri, "fieldManager").unwrap_or_default();
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
            _ => store.delete(&t.key).map(|o| (200, o)),
        }
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

/// Streams changes after `since` that match, then live ones, until the timeout.
fn watch(
    shared: Arc<Shared>,
    key: Key,
    ns: Option<String>,
    since: u64,
    timeout: Duration,
    metadata_only: bool,
) -> Response {
    let rx = shared.changed.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    let state = (shared, rx, since, key, ns);
    let stream = futures::stream::unfold(
        state,
        move |(shared, mut rx, mut cursor, key, ns)| async move {
            loop {
                let lines: Vec<Bytes> = {
                    let store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
                    let matching: Vec<&Change> = store
                        .history
                        .iter()
                        .filter(|c| {
                            c.rv > cursor
                                && c.group == key.group
                                && c.resource == key.resource
                                && ns.as_ref().is_none_or(|n| *n == c.namespace)
                        })
                        .collect();
                    let lines = matching
                        .iter()
                        .map(|c| event_line(c, metadata_only))
                        .collect();
                    cursor = store.resource_version();
                    lines
                };
                if !lines.is_empty() {
                    let chunk: Vec<u8> = lines.concat();
                    return Some((
                        Ok::<Bytes, std::io::Error>(Bytes::from(chunk)),
                        (shared, rx, cursor, key, ns),
                    ));
                }
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Err(_) => return None,
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
                    Ok(_) => {}
                }
            }
        },
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
