//! Control and observability endpoints under `/_fake/` (no ARM path starts with `_`):
//! `GET /_fake/requests`, `GET /_fake/counters`, `POST /_fake/reset[?state=true]`,
//! `POST /_fake/jobs/{name}/outcome` with `{"outcome": "Completed|Failed|Canceled|Running|Paused|NotResponding|Unknown"}`,
//! `POST /_fake/computes/{name}/errors` with `{"errors": [{"code": .., "message": ..}]}` (an
//! empty list clears them).

use crate::lifecycle::JobOutcome;
use crate::reply::Reply;
use crate::server::{Request, Shared};
use serde_json::{Value, json};

pub const PREFIX: &str = "/_fake/";

pub fn handle(shared: &Shared, req: &Request) -> Reply {
    let route = req.path.trim_start_matches(PREFIX).trim_end_matches('/');
    let segs: Vec<&str> = route.split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["requests"]) => Reply::json(200, json!(shared.requests())),
        ("GET", ["counters"]) => Reply::json(200, json!(shared.counters())),
        ("POST", ["reset"]) => {
            let state = req.query.iter().any(|(k, v)| k == "state" && v == "true");
            shared.reset(state);
            Reply::empty(204)
        }
        ("POST", ["jobs", name, "outcome"]) => set_outcome(shared, name, &req.body),
        ("POST", ["computes", name, "errors"]) => set_compute_errors(shared, name, &req.body),
        _ => Reply::arm_error(
            404,
            "NotFound",
            format!("no fake control endpoint {} {}", req.method, req.path),
        ),
    }
}

fn set_outcome(shared: &Shared, name: &str, body: &[u8]) -> Reply {
    let requested: Option<Value> = serde_json::from_slice(body).ok();
    let outcome = requested
        .as_ref()
        .and_then(|b| b.get("outcome"))
        .and_then(Value::as_str)
        .and_then(JobOutcome::parse);
    let Some(outcome) = outcome else {
        return Reply::arm_error(
            400,
            "BadRequest",
            "body must be {\"outcome\": \"Completed|Failed|Canceled|Running|Paused|NotResponding|Unknown\"}",
        );
    };
    match shared.set_job_outcome(name, outcome) {
        0 => Reply::arm_error(404, "NotFound", format!("no job named {name}")),
        n => Reply::json(200, json!({"updated": n})),
    }
}

#[derive(serde::Deserialize)]
struct NodeError {
    code: String,
    message: String,
}

#[derive(serde::Deserialize)]
struct NodeErrors {
    errors: Vec<NodeError>,
}

fn set_compute_errors(shared: &Shared, name: &str, body: &[u8]) -> Reply {
    let Ok(requested) = serde_json::from_slice::<NodeErrors>(body) else {
        return Reply::arm_error(
            400,
            "BadRequest",
            "body must be {\"errors\": [{\"code\": \"...\", \"message\": \"...\"}]}",
        );
    };
    let errors: Vec<(String, String)> = requested
        .errors
        .into_iter()
        .map(|e| (e.code, e.message))
        .collect();
    match shared.set_compute_errors(name, &errors) {
        0 => Reply::arm_error(404, "NotFound", format!("no compute named {name}")),
        n => Reply::json(200, json!({"updated": n})),
    }
}
