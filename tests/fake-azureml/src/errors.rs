//! The error envelopes the real service answers with. There are two, and a client must read both:
//!
//! - the management front end ("MFE": computes, jobs, environments, codes, datastores) answers an
//!   ARM `ErrorResponse` whose specific code sits only in
//!   `error.additionalInfo[type=InnerError].info.value` (job/…ray_command_job.json #1:
//!   `UserError` -> `BadArgument` -> `UnknownTargetType`);
//! - workspace connections ("account-rp", errors/…git_crud.json #2) and run history (the
//!   generated run-history client deserializes every error as `ErrorResponse` = `RootError` +
//!   correlation/environment/location/time/componentName, the same envelope as the run error of
//!   history/…child_run_download.json #25) answer with the specific code in `error.innerError`.
//!
//! The fake's own contract checks (authentication, api-version, spec validation, unknown paths,
//! injected faults) keep the plain ARM `{"error":{"code","message"}}` of `Reply::arm_error`:
//! those answers are not recorded.

use crate::reply::Reply;
use serde_json::{Value, json};

/// Region named in error envelopes (the fake's workspaces all live there).
const REGION: &str = "eastus";

fn correlation() -> Value {
    let id = uuid::Uuid::new_v4().simple().to_string();
    json!({"operation": id, "request": id[..16]})
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// `{"code": a, "innerError": {"code": b, "innerError": null}}` for `chain = [a, b]`.
fn inner_chain(chain: &[&str]) -> Value {
    chain.iter().rev().fold(
        Value::Null,
        |inner, code| json!({"code": code, "innerError": inner}),
    )
}

/// An MFE error (job/…ray_command_job.json #1): `code` at the top (the service uses the
/// generic `UserError` for 4xx; the fake's own 5xx use `SystemError`, not recorded), the
/// specific codes as the `InnerError` chain in `additionalInfo`, `details: []`.
pub fn mfe(status: u16, code: &str, message: impl Into<String>, inner: &[&str]) -> Reply {
    let mut additional = vec![
        json!({"type": "ComponentName", "info": {"value": "managementfrontend"}}),
        json!({"type": "Correlation", "info": {"value": correlation()}}),
        json!({"type": "Environment", "info": {"value": REGION}}),
        json!({"type": "Location", "info": {"value": REGION}}),
        json!({"type": "Time", "info": {"value": now()}}),
    ];
    if !inner.is_empty() {
        additional.push(json!({"type": "InnerError", "info": {"value": inner_chain(inner)}}));
    }
    Reply::json(
        status,
        json!({"error": {
            "code": code,
            "message": message.into(),
            "details": [],
            "additionalInfo": additional,
        }}),
    )
}

/// A 4xx from the MFE with the generic `UserError` on top.
pub fn mfe_user(status: u16, message: impl Into<String>, inner: &[&str]) -> Reply {
    mfe(status, "UserError", message, inner)
}

/// The `RootError` keys of errors/…git_crud.json #2 and history/…child_run_download.json #25.
pub fn root_error(code: &str, message: &str, inner: &[&str]) -> Value {
    json!({
        "code": code,
        "severity": null,
        "message": message,
        "messageFormat": null,
        "messageParameters": null,
        "referenceCode": null,
        "detailsUri": null,
        "target": null,
        "details": [],
        "innerError": inner_chain(inner),
        "debugInfo": null,
        "additionalInfo": null,
    })
}

/// The envelope of errors/…git_crud.json #2 (`componentName` names the service, `statusCode`
/// repeats the HTTP status).
pub fn component(status: u16, component: &str, message: &str, inner: &[&str]) -> Reply {
    Reply::json(
        status,
        json!({
            "error": root_error("UserError", message, inner),
            "correlation": correlation(),
            "environment": REGION,
            "location": REGION,
            "time": now(),
            "componentName": component,
            "statusCode": status,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mfe_nests_the_specific_codes_in_additional_info() {
        let reply = mfe_user(
            400,
            "Unknown compute target 'x'.",
            &["BadArgument", "UnknownTargetType"],
        );
        let body = reply.body.unwrap();
        let inner = body["error"]["additionalInfo"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "InnerError")
            .unwrap();
        assert_eq!(
            inner["info"]["value"],
            json!({"code": "BadArgument", "innerError": {"code": "UnknownTargetType", "innerError": null}})
        );
        assert_eq!(body["error"]["details"], json!([]));
    }

    #[test]
    fn component_envelope_carries_the_code_in_inner_error() {
        let body = component(404, "account-rp", "gone", &["NotFoundError"])
            .body
            .unwrap();
        assert_eq!(body["error"]["innerError"]["code"], "NotFoundError");
        assert_eq!(body["statusCode"], 404);
        assert_eq!(body["componentName"], "account-rp");
    }
}
