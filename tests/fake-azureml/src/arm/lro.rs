//! Long-running operations: the `Azure-AsyncOperation` status monitor and the `Location`
//! result URL, both under `/subscriptions/{sub}/providers/Microsoft.MachineLearningServices/locations/{loc}/`.

use super::Ctx;
use super::computes;
use crate::reply::Reply;
use crate::server::{Request, Shared};
use crate::spec::API_VERSION;
use crate::store::Operation;
use serde_json::json;
use std::time::Instant;

const STATUS_KIND: &str = "mfeOperationsStatus";
const RESULT_KIND: &str = "mfeOperationResults";
const STATUS_TEMPLATE: &str = "/subscriptions/{subscriptionId}/providers/Microsoft.MachineLearningServices/locations/{location}/mfeOperationsStatus/{operationId}";
const RESULT_TEMPLATE: &str = "/subscriptions/{subscriptionId}/providers/Microsoft.MachineLearningServices/locations/{location}/mfeOperationResults/{operationId}";

/// Registers an operation and returns the LRO headers to answer with.
pub fn start(ctx: &Ctx<'_>, op: Operation) -> Vec<(String, String)> {
    let id = uuid::Uuid::new_v4().to_string();
    if let Ok(mut store) = ctx.shared.store.lock() {
        store.operations.insert(id.clone(), op);
    }
    let sub = ctx.route.param("subscriptionId");
    let base = format!(
        "{}/subscriptions/{sub}/providers/Microsoft.MachineLearningServices/locations/{}",
        ctx.shared.base_url,
        super::workspace::LOCATION
    );
    vec![
        (
            "Azure-AsyncOperation".into(),
            format!("{base}/{STATUS_KIND}/{id}?api-version={API_VERSION}"),
        ),
        (
            "Location".into(),
            format!("{base}/{RESULT_KIND}/{id}?api-version={API_VERSION}"),
        ),
        (
            "Retry-After".into(),
            ctx.shared.options.lro_retry_after_secs.to_string(),
        ),
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
    Some(poll(shared, id, template == STATUS_TEMPLATE))
}

fn poll(shared: &Shared, id: &str, status_monitor: bool) -> Reply {
    let now = Instant::now();
    let Ok(store) = shared.store.lock() else {
        return super::lock_poisoned();
    };
    let Some(op) = store.operations.get(id) else {
        return Reply::arm_error(
            404,
            "ResourceNotFound",
            format!("operation {id} was not found"),
        );
    };
    let retry_after = shared.options.lro_retry_after_secs.to_string();
    let done = now >= op.done_at;
    if status_monitor {
        let body = match (done, &op.error) {
            (false, _) => json!({"id": id, "name": id, "status": "InProgress"}),
            (true, None) => json!({"id": id, "name": id, "status": "Succeeded"}),
            (true, Some(error)) => {
                json!({"id": id, "name": id, "status": "Failed", "error": error})
            }
        };
        let reply = Reply::json(200, body);
        return if done {
            reply
        } else {
            reply.header("Retry-After", retry_after)
        };
    }
    if !done {
        return Reply::empty(202).header("Retry-After", retry_after);
    }
    match op
        .result_compute
        .as_ref()
        .and_then(|key| store.computes.get(key).filter(|c| c.exists(now)))
    {
        Some(compute) => Reply::json(200, computes::render(shared, compute, now)),
        None => match &op.error {
            Some(error) => Reply::json(400, json!({ "error": error })),
            None => Reply::empty(204),
        },
    }
}
