//! Long-running operations, shaped as the recordings show them (no LRO there carries
//! `Retry-After`, so neither does the fake; a client falls back to its own poll interval):
//!
//! - compute PUT/DELETE (and PATCH, not recorded: same as PUT) answer only `Azure-AsyncOperation`
//!   on `.../locations/{loc}/computeOperationsStatus/{id}` (compute/…create_and_delete.json #0,
//!   #5, #10), which answers `{"status": "InProgress"}` and then
//!   `{"status": "Succeeded", "percentComplete": 100.0}` (#1–#2, #6–#7);
//! - job cancel answers `Location` on `.../locations/{loc}/mfeOperationResults/jc:{workspaceId}:{job}`
//!   (job/…dependency_label_resolution.json #18), which answers 202 `{}` with
//!   `Azure-AsyncOperation` and `Location` (both the same URL) until done (#19), then 200 with
//!   an empty body (#20).

use super::{Ctx, lock_poisoned, workspace};
use crate::errors;
use crate::reply::Reply;
use crate::server::{Request, Shared};
use crate::spec::API_VERSION;
use crate::store::Operation;
use serde_json::json;
use std::time::Instant;

const STATUS_KIND: &str = "computeOperationsStatus";
const RESULT_KIND: &str = "mfeOperationResults";
const STATUS_TEMPLATE: &str = "/subscriptions/{subscriptionId}/providers/Microsoft.MachineLearningServices/locations/{location}/computeOperationsStatus/{operationId}";
const RESULT_TEMPLATE: &str = "/subscriptions/{subscriptionId}/providers/Microsoft.MachineLearningServices/locations/{location}/mfeOperationResults/{operationId}";

fn monitor_url(ctx: &Ctx<'_>, kind: &str, id: &str) -> String {
    format!(
        "{}/subscriptions/{}/providers/Microsoft.MachineLearningServices/locations/{}/{kind}/{id}?api-version={API_VERSION}",
        ctx.shared.base_url,
        ctx.route.param("subscriptionId"),
        workspace::LOCATION
    )
}

fn register(ctx: &Ctx<'_>, id: &str, op: Operation) {
    if let Ok(mut store) = ctx.shared.store.lock() {
        store.operations.insert(id.to_string(), op);
    }
}

/// Registers a compute operation; returns its only header, `Azure-AsyncOperation`
/// (compute/…create_and_delete.json #0, #10; the recorded URL also carries `service=new`).
pub fn start_compute(ctx: &Ctx<'_>, op: Operation) -> Vec<(String, String)> {
    let id = uuid::Uuid::new_v4().to_string();
    register(ctx, &id, op);
    vec![(
        "Azure-AsyncOperation".into(),
        format!("{}&service=new", monitor_url(ctx, STATUS_KIND, &id)),
    )]
}

/// Registers the cancel of job `job`; returns the headers of job/…dependency_label_resolution.json
/// #18: `Location` on `mfeOperationResults/jc:<workspaceId>:<job>` and
/// `x-ms-async-operation-timeout: PT1H`.
pub fn start_cancel(ctx: &Ctx<'_>, job: &str, op: Operation) -> Vec<(String, String)> {
    let id = format!("jc:{}:{job}", workspace::workspace_guid(&ctx.workspace_id));
    register(ctx, &id, op);
    vec![
        ("Location".into(), monitor_url(ctx, RESULT_KIND, &id)),
        ("x-ms-async-operation-timeout".into(), "PT1H".into()),
    ]
}

/// A GET of a status monitor or result URL: its template and operation id.
fn monitor(req: &Request) -> Option<(&'static str, &str)> {
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let [subs, _, providers, ns, locations, _, kind, id] = segs.as_slice() else {
        return None;
    };
    let shape_ok = subs.eq_ignore_ascii_case("subscriptions")
        && providers.eq_ignore_ascii_case("providers")
        && ns.eq_ignore_ascii_case("Microsoft.MachineLearningServices")
        && locations.eq_ignore_ascii_case("locations");
    if !shape_ok || req.method != "GET" {
        return None;
    }
    if kind.eq_ignore_ascii_case(STATUS_KIND) {
        Some((STATUS_TEMPLATE, id))
    } else if kind.eq_ignore_ascii_case(RESULT_KIND) {
        Some((RESULT_TEMPLATE, id))
    } else {
        None
    }
}

/// The counter template of a monitor URL, if `req` is one.
pub fn template_of(req: &Request) -> Option<&'static str> {
    monitor(req).map(|(template, _)| template)
}

/// Answers a poll of a status monitor or result URL; `None` if the path is neither.
pub fn handle_status(shared: &Shared, req: &Request) -> Option<Reply> {
    let (template, id) = monitor(req)?;
    let id = percent_encoding::percent_decode_str(id).decode_utf8_lossy();
    Some(poll(shared, req, &id, template == STATUS_TEMPLATE))
}

fn poll(shared: &Shared, req: &Request, id: &str, status_monitor: bool) -> Reply {
    let now = Instant::now();
    let Ok(store) = shared.store.lock() else {
        return lock_poisoned();
    };
    let Some(op) = store.operations.get(id) else {
        // Not recorded: an unknown operation id.
        return errors::mfe_user(404, format!("Operation {id} was not found."), &["NotFound"]);
    };
    let done = now >= op.done_at;
    if status_monitor {
        let body = match (done, &op.error) {
            (false, _) => json!({"status": "InProgress"}),
            (true, None) => json!({"status": "Succeeded", "percentComplete": 100.0}),
            // Not recorded: a failed compute operation; the ARM async-operation contract puts
            // the error beside the status.
            (true, Some(error)) => json!({"status": "Failed", "error": error}),
        };
        return Reply::json(200, body);
    }
    if done {
        return Reply::empty(200);
    }
    let url = format!("{}{}?{}", shared.base_url, req.path, req.raw_query);
    Reply::json(202, json!({}))
        .header("Azure-AsyncOperation", url.clone())
        .header("Location", url)
}
