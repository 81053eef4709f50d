//! The ARM front door: faults, authentication, api-version, spec routing and validation,
//! then dispatch to the resource handlers.

mod assets;
pub(crate) mod computes;
mod conda;
mod connections;
mod datastores;
mod immutable;
pub(crate) mod jobs;
mod lro;
pub(crate) mod workspace;

use crate::faults::{self, Fault};
use crate::reply::Reply;
use crate::server::{Request, Shared};
use crate::spec::{API_VERSION, RouteError, RouteMatch};
use jiff::Timestamp;
use serde_json::Value;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What the front door decided.
pub enum Outcome {
    Reply(Reply),
    /// Close the connection without a response (fault injection).
    Drop,
}

/// Everything a resource handler needs about one request.
pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub route: &'a RouteMatch<'a>,
    pub query: &'a [(String, String)],
    pub body: Option<Value>,
    pub now: Instant,
    pub wall: Timestamp,
    /// `/subscriptions/../workspaces/{name}` as addressed.
    pub workspace_id: String,
}

impl Ctx<'_> {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body of a resource PUT: an object whose `properties`, if present, is an object.
    /// Checked even with validation off, since handlers fill in fields of both.
    pub fn resource_body(&self) -> Result<Value, Reply> {
        let bad =
            |message: &str| Reply::arm_error(400, "InvalidRequestContent", message.to_string());
        match &self.body {
            None => Err(bad("$: request body is required")),
            Some(body) if !body.is_object() => Err(bad("$: expected object")),
            Some(body) if body.get("properties").is_some_and(|p| !p.is_object()) => {
                Err(bad("$.properties: expected object"))
            }
            Some(body) => Ok(body.clone()),
        }
    }
}

/// The answer when the state mutex is poisoned (a handler panicked earlier).
pub fn lock_poisoned() -> Reply {
    Reply::arm_error(500, "InternalServerError", "fake: state lock poisoned")
}

const WORKSPACE_PREFIX: &str = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.MachineLearningServices/workspaces/{workspaceName}";

/// Handles one ARM request; returns the outcome and the path template to count it under.
pub async fn handle(shared: &Shared, req: &Request) -> (Outcome, String) {
    let template = template_for(shared, req);
    if let Some(fault) = injected_fault(shared).await {
        return (fault, template);
    }
    let reply = handle_arm(shared, req).await;
    let reply = match shared.budgets.lock() {
        Ok(mut budgets) => budgets.count(
            &shared.options.subscription_budget,
            &req.method,
            &req.path,
            reply,
            Instant::now(),
        ),
        Err(_) => lock_poisoned(),
    };
    (Outcome::Reply(reply), template)
}

/// The fault chosen for the next request (ARM or run history), if any; a slow fault only delays.
pub async fn injected_fault(shared: &Shared) -> Option<Outcome> {
    match faults::decide(
        &shared.options.faults,
        shared.seq.fetch_add(1, Ordering::Relaxed),
    ) {
        Fault::Throttle => {
            let secs = shared.options.faults.retry_after_secs;
            let reply = Reply::arm_error(
                429,
                "TooManyRequests",
                "fake: request throttled (fault injection)",
            )
            .header("Retry-After", secs.to_string());
            Some(Outcome::Reply(reply))
        }
        Fault::ServerError(status) => {
            let code = if status == 503 {
                "ServiceUnavailable"
            } else {
                "InternalServerError"
            };
            let mut reply = Reply::arm_error(status, code, "fake: injected server error");
            if status == 503 {
                reply = reply.header(
                    "Retry-After",
                    shared.options.faults.retry_after_secs.to_string(),
                );
            }
            Some(Outcome::Reply(reply))
        }
        Fault::Drop => Some(Outcome::Drop),
        Fault::Slow => {
            tokio::time::sleep(shared.options.faults.slow_delay()).await;
            None
        }
        Fault::None => None,
    }
}

/// The spec (or LRO monitor) path template of a request, for counters.
fn template_for(shared: &Shared, req: &Request) -> String {
    lro::template_of(req)
        .map(str::to_string)
        .or_else(|| {
            shared
                .spec
                .route(&req.method, &req.path)
                .ok()
                .map(|r| r.operation.template.clone())
        })
        .unwrap_or_else(|| "(unknown)".to_string())
}

/// 401 unless the request carries a bearer token (any non-empty one). Not recorded: the
/// recordings are sanitized of Authorization headers; this is ARM's documented answer.
pub fn require_bearer(req: &Request) -> Option<Reply> {
    (!has_bearer(req)).then(|| {
        Reply::arm_error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing or is not a Bearer token.")
            .header("WWW-Authenticate", "Bearer authorization_uri=\"https://login.microsoftonline.com/common\"")
    })
}

async fn handle_arm(shared: &Shared, req: &Request) -> Reply {
    if let Some(reply) = require_bearer(req) {
        return reply;
    }
    if let Some(reply) = check_api_version(&req.query) {
        return reply;
    }
    if let Some(reply) = lro::handle_status(shared, req) {
        return reply;
    }
    match shared.spec.route(&req.method, &req.path) {
        Ok(route) => dispatch(shared, req, &route).await,
        Err(RouteError::MethodNotAllowed) => Reply::arm_error(
            405,
            "MethodNotAllowed",
            format!("{} is not allowed on {}", req.method, req.path),
        ),
        Err(RouteError::NoSuchPath) => Reply::arm_error(
            404,
            "InvalidResourceType",
            format!("no resource type matches {}", req.path),
        ),
    }
}

async fn dispatch(shared: &Shared, req: &Request, route: &RouteMatch<'_>) -> Reply {
    let body = match parse_body(&req.body) {
        Ok(body) => body,
        Err(reply) => return reply,
    };
    if shared.options.validate_bodies {
        let violations = shared
            .spec
            .validate_request(route, &req.query, body.as_ref());
        if !violations.is_empty() {
            let message: Vec<String> = violations.iter().map(ToString::to_string).collect();
            return Reply::arm_error(400, "InvalidRequestContent", message.join("; "));
        }
    }
    let Some(suffix) = route.operation.template.strip_prefix(WORKSPACE_PREFIX) else {
        return not_implemented(route);
    };
    let (sub, rg, ws) = (
        route.param("subscriptionId"),
        route.param("resourceGroupName"),
        route.param("workspaceName"),
    );
    if workspace::is_missing(ws) {
        return Reply::arm_error(
            404,
            "ResourceNotFound",
            format!(
                "The Resource 'Microsoft.MachineLearningServices/workspaces/{ws}' under resource group '{rg}' was not found."
            ),
        );
    }
    let ctx = Ctx {
        shared,
        route,
        query: &req.query,
        body,
        now: Instant::now(),
        wall: Timestamp::now(),
        workspace_id: format!(
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}"
        ),
    };
    match (route.operation.method.as_str(), suffix) {
        ("GET", "") => workspace::get(&ctx),
        ("GET", "/datastores/{name}") => datastores::get(&ctx),
        ("POST", "/datastores/{name}/listSecrets") => datastores::list_secrets(&ctx).await,
        ("GET", "/computes") => computes::list(&ctx),
        ("GET", "/computes/{computeName}") => computes::get(&ctx),
        ("PUT", "/computes/{computeName}") => computes::put(&ctx),
        ("PATCH", "/computes/{computeName}") => computes::patch(&ctx),
        ("DELETE", "/computes/{computeName}") => computes::delete(&ctx),
        ("POST", "/computes/{computeName}/listNodes") => computes::list_nodes(&ctx),
        ("GET", "/environments/{name}/versions") => assets::list(&ctx, assets::Kind::Environment),
        ("GET", "/environments/{name}/versions/{version}") => {
            assets::get(&ctx, assets::Kind::Environment)
        }
        ("PUT", "/environments/{name}/versions/{version}") => {
            assets::put(&ctx, assets::Kind::Environment)
        }
        ("GET", "/codes/{name}/versions") => assets::list(&ctx, assets::Kind::Code),
        ("GET", "/codes/{name}/versions/{version}") => assets::get(&ctx, assets::Kind::Code),
        ("PUT", "/codes/{name}/versions/{version}") => assets::put(&ctx, assets::Kind::Code),
        ("POST", "/codes/{name}/versions/{version}/startPendingUpload") => {
            assets::start_pending_upload(&ctx).await
        }
        ("GET", "/connections/{connectionName}") => connections::get(&ctx),
        ("PUT", "/connections/{connectionName}") => connections::put(&ctx),
        ("GET", "/jobs") => jobs::list(&ctx),
        ("GET", "/jobs/{id}") => jobs::get(&ctx),
        ("PUT", "/jobs/{id}") => jobs::put(&ctx),
        ("POST", "/jobs/{id}/cancel") => jobs::cancel(&ctx),
        _ => not_implemented(route),
    }
}

fn not_implemented(route: &RouteMatch<'_>) -> Reply {
    Reply::arm_error(
        501,
        "NotImplementedInFake",
        format!(
            "the fake does not implement {} {} (it is valid in the spec)",
            route.operation.method, route.operation.template
        ),
    )
}

fn has_bearer(req: &Request) -> bool {
    req.authorization
        .as_deref()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .is_some_and(|token| !token.trim().is_empty())
}

fn check_api_version(query: &[(String, String)]) -> Option<Reply> {
    match query
        .iter()
        .find(|(k, _)| k == "api-version")
        .map(|(_, v)| v.as_str())
    {
        None => Some(Reply::arm_error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )),
        Some(API_VERSION) => None,
        Some(other) => Some(Reply::arm_error(
            400,
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for api version '{other}'. The supported api-versions are '{API_VERSION}'."
            ),
        )),
    }
}

fn parse_body(bytes: &[u8]) -> Result<Option<Value>, Reply> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(bytes).map(Some).map_err(|e| {
        Reply::arm_error(
            400,
            "InvalidRequestContent",
            format!("$: the request body is not valid JSON: {e}"),
        )
    })
}

/// `{"value": [...]}`, the ARM list shape (one page: the fake never pages).
pub fn list_reply(items: Vec<Value>) -> Reply {
    Reply::json(200, serde_json::json!({ "value": items }))
}

/// `systemData` as ARM reports it.
pub fn system_data(created: Timestamp, modified: Timestamp) -> Value {
    serde_json::json!({
        "createdBy": "fake-user@example.com",
        "createdByType": "User",
        "createdAt": created.to_string(),
        "lastModifiedBy": "fake-user@example.com",
        "lastModifiedByType": "User",
        "lastModifiedAt": modified.to_string(),
    })
}
