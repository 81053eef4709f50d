//! One typed error for everything that can go wrong talking to Azure, classified into
//! "retrying can help" (controllers report `Reconciling` and requeue) and "a human must
//! act" (controllers report `Stalled` with [`AzureError::code`] as the condition reason).
//!
//! Messages are scrubbed of SAS signatures and bearer tokens before they are stored, so
//! `Display`/`Debug` never carry a secret even if Azure echoes one.

use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use std::time::Duration;

/// The ARM error envelope `{"error": {...}}` (the spec's `ErrorResponse`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ErrorBody {
    /// The error object; absent in some malformed answers.
    #[serde(default, deserialize_with = "lenient")]
    pub error: Option<ErrorDetail>,
}

/// The ARM `ErrorDetail`, plus the two places Azure ML puts its specific code: the
/// account-rp shape's top-level `innerError`
/// (`errors/test_workspace_connections.pyTestWorkspaceConnectionstest_git_crud.json` #2) and
/// the management front end's `additionalInfo[type=InnerError].info.value`
/// (`job/test_command_job.pyTestCommandJobtest_ray_command_job.json` #1).
///
/// Every field is read leniently: `null` or a shape this client does not know reads as
/// absent, so an odd field never makes the whole error unreadable.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Azure error code, e.g. `QuotaExceeded`.
    #[serde(default, deserialize_with = "lenient")]
    pub code: Option<String>,
    /// Human-readable message.
    #[serde(default, deserialize_with = "lenient")]
    pub message: Option<String>,
    /// Nested details.
    #[serde(default, deserialize_with = "lenient")]
    pub details: Vec<ErrorDetail>,
    /// Azure ML nests its specific code under a generic `UserError`/`SystemError`.
    #[serde(default, deserialize_with = "lenient")]
    pub inner_error: Option<Box<InnerError>>,
    /// Typed extra information; `InnerError` entries carry the specific code chain.
    #[serde(default, deserialize_with = "lenient")]
    pub additional_info: Vec<AdditionalInfo>,
}

/// Azure ML's `innerError` chain.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InnerError {
    /// The more specific code.
    #[serde(default, deserialize_with = "lenient")]
    pub code: Option<String>,
    /// An even more specific one.
    #[serde(default, deserialize_with = "lenient")]
    pub inner_error: Option<Box<InnerError>>,
}

/// One `ErrorAdditionalInfo` entry: a `type` and a free-form `info` object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct AdditionalInfo {
    /// E.g. `ComponentName`, `Correlation`, `InnerError`.
    #[serde(rename = "type", default, deserialize_with = "lenient")]
    pub type_: Option<String>,
    /// The information; its shape depends on `type`.
    #[serde(default)]
    pub info: Option<serde_json::Value>,
}

/// Longest code chain followed; real ones have two or three links.
const MAX_CHAIN: usize = 8;

/// Appends a non-empty code that differs from the last one, up to [`MAX_CHAIN`] codes.
fn push_code(chain: &mut Vec<String>, code: Option<&str>) {
    if let Some(c) = code.map(str::trim).filter(|c| !c.is_empty())
        && chain.last().is_none_or(|last| last != c)
        && chain.len() < MAX_CHAIN
    {
        chain.push(c.to_owned());
    }
}

/// Reads a field as `T`, or as `T::default()` when it is `null` or has another shape.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(d: D) -> Result<T, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(serde_json::from_value(value).unwrap_or_default())
}

impl ErrorDetail {
    /// The error's codes from the generic to the most specific, e.g. `UserError`,
    /// `BadArgument`, `UnknownTargetType`: the top code, then the `innerError` chain (the
    /// top-level one, else the one in `additionalInfo`); without a chain, a generic top
    /// code is followed by the first code in `details`. Empty codes are skipped.
    pub fn code_chain(&self) -> Vec<String> {
        let mut chain = Vec::new();
        push_code(&mut chain, self.code.as_deref());
        let top_len = chain.len();
        let mut inner = self.inner_error.clone().or_else(|| self.additional_inner());
        while let Some(i) = inner {
            push_code(&mut chain, i.code.as_deref());
            inner = i.inner_error;
        }
        let generic = chain
            .first()
            .is_none_or(|c| GENERIC_CODES.contains(&c.as_str()));
        if chain.len() == top_len && generic {
            let detail = self.details.iter().find_map(|d| d.code.as_deref());
            push_code(&mut chain, detail);
        }
        chain
    }

    /// The front end's `additionalInfo[type=InnerError].info.value` chain, if any.
    fn additional_inner(&self) -> Option<Box<InnerError>> {
        self.additional_info
            .iter()
            .filter(|a| a.type_.as_deref() == Some("InnerError"))
            .find_map(|a| {
                let value = a.info.as_ref()?.get("value")?.clone();
                serde_json::from_value(value).ok()
            })
    }

    /// The most specific code as a Kubernetes condition reason (see [`reason_code`]).
    pub fn reason(&self) -> Option<String> {
        self.code_chain().last().map(|c| reason_code(c))
    }

    /// The message with the code chain in front when there is more than one code
    /// (`UserError/BadArgument/UnknownTargetType: Unknown compute target 'x'.`), scrubbed
    /// of secrets and bounded. The message of the first detail stands in for an empty one.
    pub fn describe(&self) -> String {
        let message = match self
            .message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            Some(m) => m.to_owned(),
            None => self
                .details
                .iter()
                .find_map(|x| x.message.clone())
                .unwrap_or_default(),
        };
        let chain = self.code_chain();
        match (chain.len(), message.is_empty()) {
            (0 | 1, _) => scrub(&message),
            (_, true) => scrub(&chain.join("/")),
            _ => scrub(&format!("{}: {message}", chain.join("/"))),
        }
    }
}

/// How a long-running operation ended when it did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailedState {
    /// The operation failed.
    Failed,
    /// The operation was canceled.
    Canceled,
}

impl std::fmt::Display for FailedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Failed => "Failed",
            Self::Canceled => "Canceled",
        })
    }
}

/// Everything that can go wrong talking to Azure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AzureError {
    /// ARM answered with an error status.
    #[error("{operation}: Azure answered HTTP {status} {}", labelled(.code, .message))]
    Api {
        /// The amlops operation name, e.g. `compute.create`.
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// The most specific Azure error code, as a condition reason (PascalCase).
        code: String,
        /// Scrubbed Azure message, led by the code chain when Azure nests codes.
        message: String,
        /// Server-requested wait, if any.
        retry_after: Option<Duration>,
        /// Whether retrying can help.
        retryable: bool,
    },
    /// A long-running operation reached a terminal state other than Succeeded.
    #[error("{operation}: the operation ended {state}: {}", labelled(.code, .message))]
    OperationFailed {
        /// The amlops operation name.
        operation: &'static str,
        /// Failed or Canceled.
        state: FailedState,
        /// The most specific Azure error code, as a condition reason (PascalCase).
        code: String,
        /// Scrubbed Azure message, led by the code chain when Azure nests codes.
        message: String,
        /// Whether retrying can help.
        retryable: bool,
    },
    /// No HTTP answer: connection refused or dropped, TLS failure, timeout.
    #[error("{operation}: could not reach Azure Resource Manager: {message}")]
    Transport {
        /// The amlops operation name.
        operation: &'static str,
        /// The request timed out (as opposed to failing to connect).
        timeout: bool,
        /// What the HTTP stack said.
        message: String,
    },
    /// The credential could not produce an access token.
    #[error("could not get an Azure access token: {message}")]
    Authentication {
        /// What the credential said (never the secret).
        message: String,
        /// The token endpoint was unreachable rather than refusing us.
        retryable: bool,
    },
    /// A success status with a body amlops cannot understand, or an LRO without a poll URL.
    #[error("{operation}: unexpected response from Azure (HTTP {status}): {message}")]
    InvalidResponse {
        /// The amlops operation name.
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// What was wrong.
        message: String,
    },
    /// amlops held the request back: the subscription's budget of this kind of request (ARM's
    /// token bucket, mirrored client-side, or a `Retry-After` ARM gave) has room again only
    /// after `wait`. Nothing was sent.
    #[error("{operation}: held back {:.1}s: the subscription's ARM {access} budget is spent", .wait.as_secs_f64())]
    OverBudget {
        /// The amlops operation name.
        operation: &'static str,
        /// `reads`, `writes` or `deletes`.
        access: &'static str,
        /// When the budget has room again.
        wait: Duration,
    },
    /// The client was configured wrongly (bad endpoint, unreadable CA file...).
    #[error("invalid Azure client configuration: {message}")]
    Config {
        /// What is wrong and where.
        message: String,
    },
}

impl AzureError {
    /// Whether retrying the same request later can succeed without a human.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Api { retryable, .. }
            | Self::OperationFailed { retryable, .. }
            | Self::Authentication { retryable, .. } => *retryable,
            Self::Transport { .. } | Self::OverBudget { .. } => true,
            Self::InvalidResponse { .. } | Self::Config { .. } => false,
        }
    }

    /// A PascalCase code usable as a Kubernetes condition reason.
    pub fn code(&self) -> &str {
        match self {
            Self::Api { code, .. } | Self::OperationFailed { code, .. } => code,
            Self::Transport { timeout: true, .. } => "Timeout",
            Self::Transport { timeout: false, .. } => "ConnectionFailed",
            Self::Authentication { .. } => "AuthenticationFailed",
            Self::OverBudget { .. } => "ArmRequestBudgetSpent",
            Self::InvalidResponse { .. } => "InvalidResponse",
            Self::Config { .. } => "InvalidConfiguration",
        }
    }

    /// The wait Azure (or the subscription's request budget) asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
            Self::OverBudget { wait, .. } => Some(*wait),
            _ => None,
        }
    }

    /// HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::InvalidResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for a 404 about the resource itself (not about a missing parent such as
    /// the workspace or resource group, which a human must fix).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, code, .. } if !is_missing_parent(code))
    }

    /// Builds the error for an ARM error answer from its status and body. The code is the
    /// most specific one Azure gives (see [`ErrorDetail::code_chain`]); a body without one
    /// gets a code from the status, and a body that is not an error envelope becomes the
    /// message as is.
    pub fn from_response(
        operation: &'static str,
        status: u16,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> Self {
        let detail = serde_json::from_slice::<ErrorBody>(body)
            .ok()
            .and_then(|b| b.error);
        let (chain, message) = match &detail {
            Some(d) => (d.code_chain(), d.describe()),
            None => (Vec::new(), scrub(String::from_utf8_lossy(body).trim())),
        };
        let code = chain
            .last()
            .map(|c| reason_code(c))
            .unwrap_or_else(|| code_for_status(status));
        Self::Api {
            operation,
            status,
            retryable: classify(Some(status), &chain, &code),
            code,
            message,
            retry_after,
        }
    }

    /// Builds the error for a long-running operation that ended without success.
    pub fn operation_failed(
        operation: &'static str,
        state: FailedState,
        detail: Option<&ErrorDetail>,
    ) -> Self {
        let fallback = match state {
            FailedState::Failed => "OperationFailed",
            FailedState::Canceled => "OperationCanceled",
        };
        let chain = detail.map(ErrorDetail::code_chain).unwrap_or_default();
        let code = chain
            .last()
            .map(|c| reason_code(c))
            .unwrap_or_else(|| fallback.to_owned());
        Self::OperationFailed {
            operation,
            state,
            retryable: classify(None, &chain, &code),
            code,
            message: detail.map(ErrorDetail::describe).unwrap_or_default(),
        }
    }

    /// Marks an error as needing a human regardless of its code (e.g. a 409 on an
    /// immutable asset version, where repeating the same body cannot help).
    pub fn needs_human(mut self) -> Self {
        if let Self::Api { retryable, .. } | Self::OperationFailed { retryable, .. } = &mut self {
            *retryable = false;
        }
        self
    }
}

/// Generic Azure ML codes that hide the useful one in `innerError` or `details`.
const GENERIC_CODES: &[&str] = &["UserError", "SystemError", "ServiceError"];

/// Codes that mean "wait and try again".
const RETRYABLE_CODES: &[&str] = &[
    "TooManyRequests",
    "Throttled",
    "SubscriptionRequestsThrottled",
    "ResourceRequestsThrottled",
    "Conflict",
    "AnotherOperationInProgress",
    "OperationInProgress",
    "ParentResourceNotFound",
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
    "BadGateway",
    "GatewayTimeout",
    "ServerTimeout",
    "RequestTimeout",
    "SystemError",
    "TransientError",
];

/// Codes that no amount of retrying fixes.
const HUMAN_CODES: &[&str] = &[
    "BadRequest",
    "BadArgument",
    "InvalidParameter",
    "InvalidRequestContent",
    "InvalidTemplate",
    "ValidationError",
    "UserError",
    "QuotaExceeded",
    "OperationNotAllowed",
    "RequestDisallowedByPolicy",
    "AuthorizationFailed",
    "LinkedAuthorizationFailed",
    "AuthenticationFailed",
    "InvalidAuthenticationToken",
    "ExpiredAuthenticationToken",
    "MissingSubscriptionRegistration",
    "SubscriptionNotFound",
    "ResourceGroupNotFound",
    "ResourceNotFound",
    "NotFound",
    "WorkspaceNotFound",
];

/// Codes of a 404 that is about a parent rather than the addressed resource.
fn is_missing_parent(code: &str) -> bool {
    matches!(
        code,
        "ParentResourceNotFound"
            | "ResourceGroupNotFound"
            | "SubscriptionNotFound"
            | "WorkspaceNotFound"
    )
}

/// What a code alone says: `Some(true)` retryable, `Some(false)` needs a human, `None`
/// unknown.
fn known(code: &str) -> Option<bool> {
    if RETRYABLE_CODES.contains(&code) {
        Some(true)
    } else if HUMAN_CODES.contains(&code) {
        Some(false)
    } else {
        None
    }
}

/// Retryable if the code says so; a known human code wins over the status; otherwise
/// throttling, conflicts, timeouts and 5xx (except 501/505) are retryable.
pub fn is_retryable(status: Option<u16>, code: &str) -> bool {
    known(code).unwrap_or(match status {
        Some(408 | 409 | 429) => true,
        Some(501 | 505) => false,
        Some(s) => (500..600).contains(&s),
        None => false,
    })
}

/// Classifies an error by its code chain: the most specific code this client knows
/// decides (`UserError/BadArgument/UnknownTargetType` needs a human because of
/// `BadArgument`). Without one, [`is_retryable`] decides on `code` (the reason): the
/// status first, the generic `UserError`/`SystemError` only when they are all there is.
fn classify(status: Option<u16>, chain: &[String], code: &str) -> bool {
    chain
        .iter()
        .rev()
        .map(|c| reason_code(c))
        .filter(|c| !GENERIC_CODES.contains(&c.as_str()))
        .find_map(|c| known(&c))
        .unwrap_or_else(|| is_retryable(status, code))
}

/// A fallback code when the body names none.
fn code_for_status(status: u16) -> String {
    match status {
        400 => "BadRequest".into(),
        401 => "AuthenticationFailed".into(),
        403 => "AuthorizationFailed".into(),
        404 => "NotFound".into(),
        408 => "RequestTimeout".into(),
        409 => "Conflict".into(),
        429 => "TooManyRequests".into(),
        500 => "InternalServerError".into(),
        502 => "BadGateway".into(),
        503 => "ServiceUnavailable".into(),
        504 => "GatewayTimeout".into(),
        s => format!("Http{s}"),
    }
}

/// Longest condition reason our CRDs accept (`Condition.reason`).
const MAX_REASON: usize = 128;

/// Turns any Azure code into a valid Kubernetes condition reason in PascalCase (which
/// also matches `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`): separators are dropped and the
/// following letter upper-cased (`ScriptExecution.StreamAccess.NotFound` ->
/// `ScriptExecutionStreamAccessNotFound`); a leading digit gets an `Azure` prefix; at most
/// 128 characters.
pub fn reason_code(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut upper_next = true;
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() {
            if upper_next {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
            upper_next = false;
        } else {
            upper_next = true;
        }
    }
    let mut reason = match out.chars().next() {
        None => "Unknown".into(),
        Some(c) if c.is_ascii_digit() => format!("Azure{out}"),
        Some(_) => out,
    };
    // ASCII only, so any byte is a character boundary.
    reason.truncate(MAX_REASON);
    reason
}

/// `code: message` for display, unless the message already leads with the code chain
/// that ends in `code` (see [`ErrorDetail::describe`]), which says it better.
fn labelled(code: &str, message: &str) -> String {
    let led_by_chain = message.split_once(": ").is_some_and(|(head, _)| {
        head.contains('/') && head.rsplit('/').next().map(reason_code).as_deref() == Some(code)
    });
    if led_by_chain {
        message.to_owned()
    } else {
        format!("{code}: {message}")
    }
}

/// Longest message kept; ARM bodies can be large and conditions should stay readable.
const MAX_MESSAGE: usize = 1024;

/// Removes SAS signatures (`sig=...`) and bearer tokens from a message and caps its length.
pub fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE));
    let mut rest = message;
    while let Some((pos, marker)) = next_marker(rest) {
        out.push_str(&rest[..pos + marker.len()]);
        out.push_str("<redacted>");
        let after = &rest[pos + marker.len()..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | '"' | '\'' | ',' | ')'))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    if out.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

fn next_marker(s: &str) -> Option<(usize, &'static str)> {
    ["sig=", "Bearer ", "access_token="]
        .into_iter()
        .filter_map(|m| s.find(m).map(|p| (p, m)))
        .min_by_key(|(p, _)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, body: &str) -> AzureError {
        AzureError::from_response("test.op", status, body.as_bytes(), None)
    }

    fn body(code: &str) -> String {
        format!(r#"{{"error":{{"code":"{code}","message":"m","details":[]}}}}"#)
    }

    #[test]
    fn throttling_conflicts_and_5xx_are_retryable() {
        for (status, code) in [
            (429, "TooManyRequests"),
            (409, "Conflict"),
            (409, "AnotherOperationInProgress"),
            (500, "InternalServerError"),
            (503, "ServiceUnavailable"),
            (404, "ParentResourceNotFound"),
        ] {
            let e = api(status, &body(code));
            assert!(e.retryable(), "{code} should be retryable");
            assert_eq!(e.code(), code);
        }
    }

    #[test]
    fn human_errors_are_not_retryable_even_with_a_retryable_status() {
        for (status, code) in [
            (400, "BadRequest"),
            (400, "InvalidParameter"),
            (409, "QuotaExceeded"),
            (403, "RequestDisallowedByPolicy"),
            (403, "AuthorizationFailed"),
            (401, "InvalidAuthenticationToken"),
            (500, "ValidationError"),
        ] {
            let e = api(status, &body(code));
            assert!(!e.retryable(), "{code} should need a human");
            assert_eq!(e.code(), code);
        }
    }

    #[test]
    fn unknown_codes_fall_back_to_the_status() {
        assert!(api(502, &body("WeirdGateway")).retryable());
        assert!(!api(422, &body("WeirdInput")).retryable());
        assert!(!api(501, "").retryable());
    }

    #[test]
    fn missing_body_gets_a_code_from_the_status() {
        let e = api(429, "");
        assert_eq!(e.code(), "TooManyRequests");
        assert!(e.retryable());
        let e = api(418, "teapot");
        assert_eq!(e.code(), "Http418");
        assert!(e.to_string().contains("teapot"));
    }

    #[test]
    fn generic_azure_ml_codes_are_refined_from_inner_errors() {
        let e = api(
            400,
            r#"{"error":{"code":"UserError","message":"quota","innerError":{"code":"BadArgument","innerError":{"code":"QuotaExceeded"}}}}"#,
        );
        assert_eq!(e.code(), "QuotaExceeded");
        assert!(!e.retryable());
        let e = api(
            500,
            r#"{"error":{"code":"SystemError","message":"","details":[{"code":"TransientError","message":"try later"}]}}"#,
        );
        assert_eq!(e.code(), "TransientError");
        assert!(e.retryable());
        assert!(e.to_string().contains("try later"));
    }

    /// The recorded 400 of the management front end (MFE shape).
    fn mfe() -> String {
        crate::recorded::response("job_unknown_compute.json").to_string()
    }
    /// The recorded 404 of account-rp.
    fn account_rp() -> String {
        crate::recorded::response("connection_not_found.json").to_string()
    }

    /// The same body with `field` of the error object replaced by `value`.
    fn with(body: &str, field: &str, value: serde_json::Value) -> String {
        let mut v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["error"][field] = value;
        v.to_string()
    }

    #[test]
    fn front_end_errors_take_the_code_from_additional_info() {
        let e = api(400, &mfe());
        assert_eq!(e.code(), "UnknownTargetType");
        assert!(!e.retryable(), "a bad argument needs a human");
        let AzureError::Api { message, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(
            message,
            "UserError/BadArgument/UnknownTargetType: Unknown compute target 'testCompute'."
        );
        assert_eq!(
            e.to_string(),
            "test.op: Azure answered HTTP 400 UserError/BadArgument/UnknownTargetType: Unknown compute target 'testCompute'."
        );
    }

    #[test]
    fn account_rp_errors_take_the_code_from_the_top_level_inner_error() {
        let e = api(404, &account_rp());
        assert_eq!(e.code(), "NotFoundError");
        assert!(e.is_not_found(), "a 404 about the connection itself");
        assert!(!e.retryable());
        assert!(
            e.to_string()
                .contains("UserError/NotFoundError: Connection e2etest_wps_conn_test_411923558605 can't be found"),
            "{e}"
        );
    }

    #[test]
    fn nulls_anywhere_in_the_error_still_parse() {
        let mfe = with(&mfe(), "details", serde_json::Value::Null);
        assert_eq!(api(400, &mfe).code(), "UnknownTargetType");
        let rp = with(&account_rp(), "details", serde_json::Value::Null);
        assert_eq!(api(404, &rp).code(), "NotFoundError");
        let bare = r#"{"error":{"code":"UserError","message":"m","details":null,"additionalInfo":null,"innerError":null}}"#;
        let e = api(400, bare);
        assert_eq!(e.code(), "UserError");
        assert!(!e.retryable());
        assert!(e.to_string().ends_with("UserError: m"), "{e}");
    }

    #[test]
    fn unknown_shapes_fall_back_to_the_top_level_code() {
        for (field, value) in [
            ("additionalInfo", serde_json::json!({"type": "InnerError"})),
            (
                "additionalInfo",
                serde_json::json!([{"type": "InnerError", "info": "text"}]),
            ),
            (
                "additionalInfo",
                serde_json::json!([{"type": "InnerError", "info": {"value": 7}}]),
            ),
            ("innerError", serde_json::json!("BadArgument")),
            ("details", serde_json::json!({"code": "X"})),
        ] {
            let body = with(
                r#"{"error":{"code":"UserError","message":"m"}}"#,
                field,
                value.clone(),
            );
            let e = api(400, &body);
            assert_eq!(e.code(), "UserError", "{field}: {value}");
            assert!(e.to_string().ends_with("UserError: m"), "{e}");
        }
        let e = api(400, r#"{"error":"not an object"}"#);
        assert_eq!(e.code(), "BadRequest");
        assert!(e.to_string().contains("not an object"), "{e}");
    }

    #[test]
    fn the_most_specific_known_code_classifies_the_error() {
        let chain = |top: &str, codes: &[&str]| {
            let mut inner = serde_json::Value::Null;
            for c in codes.iter().rev() {
                inner = serde_json::json!({"code": c, "innerError": inner});
            }
            serde_json::json!({"error": {"code": top, "message": "m", "additionalInfo": [
                {"type": "InnerError", "info": {"value": inner}}
            ]}})
            .to_string()
        };
        let quota = api(400, &chain("UserError", &["BadArgument", "QuotaExceeded"]));
        assert_eq!(quota.code(), "QuotaExceeded");
        assert!(!quota.retryable());
        let throttled = api(400, &chain("UserError", &["TooManyRequests"]));
        assert!(
            throttled.retryable(),
            "the specific code wins over UserError"
        );
        let unknown = api(503, &chain("UserError", &["SomethingNew"]));
        assert_eq!(unknown.code(), "SomethingNew");
        assert!(unknown.retryable(), "nothing known: the 503 decides");
        let unknown = api(400, &chain("SystemError", &["SomethingNew"]));
        assert!(!unknown.retryable(), "nothing known: the 400 decides");
        let dotted = api(
            400,
            &chain("UserError", &["ScriptExecution.StreamAccess.NotFound"]),
        );
        assert_eq!(dotted.code(), "ScriptExecutionStreamAccessNotFound");
        assert!(
            dotted
                .to_string()
                .contains("UserError/ScriptExecution.StreamAccess.NotFound: m"),
            "{dotted}"
        );
    }

    #[test]
    fn reasons_are_valid_kubernetes_reasons() {
        let rule = regex::Regex::new("^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$").unwrap();
        for raw in [
            "UnknownTargetType",
            "ScriptExecution.StreamAccess.NotFound",
            "404",
            "",
            "-x-",
            "ünïcode/code",
            &"A".repeat(500),
        ] {
            let r = reason_code(raw);
            assert!(rule.is_match(&r), "{raw:?} -> {r:?}");
            assert!(r.len() <= 128, "{raw:?}");
        }
    }

    #[test]
    fn describe_leads_with_the_chain_only_when_azure_nests_codes() {
        let d: ErrorDetail = serde_json::from_str::<ErrorBody>(&mfe())
            .unwrap()
            .error
            .unwrap();
        assert_eq!(
            d.code_chain(),
            ["UserError", "BadArgument", "UnknownTargetType"]
        );
        assert_eq!(d.reason().as_deref(), Some("UnknownTargetType"));
        let plain: ErrorDetail =
            serde_json::from_str(r#"{"code":"QuotaExceeded","message":"no cores"}"#).unwrap();
        assert_eq!(plain.describe(), "no cores");
        assert_eq!(plain.reason().as_deref(), Some("QuotaExceeded"));
        let silent: ErrorDetail =
            serde_json::from_str(r#"{"code":"UserError","innerError":{"code":"NotFoundError"}}"#)
                .unwrap();
        assert_eq!(silent.describe(), "UserError/NotFoundError");
        let empty: ErrorDetail = serde_json::from_str("{}").unwrap();
        assert!(empty.code_chain().is_empty());
        assert_eq!(empty.reason(), None);
    }

    #[test]
    fn codes_become_valid_condition_reasons() {
        assert_eq!(reason_code("invalid_request"), "InvalidRequest");
        assert_eq!(reason_code("Microsoft.Foo/Bar"), "MicrosoftFooBar");
        assert_eq!(reason_code("404"), "Azure404");
        assert_eq!(reason_code(""), "Unknown");
        assert_eq!(reason_code("QuotaExceeded"), "QuotaExceeded");
    }

    #[test]
    fn not_found_distinguishes_missing_parents() {
        assert!(api(404, &body("ResourceNotFound")).is_not_found());
        assert!(!api(404, &body("ResourceGroupNotFound")).is_not_found());
        assert!(!api(400, &body("BadRequest")).is_not_found());
    }

    #[test]
    fn messages_never_carry_sas_signatures_or_tokens() {
        let e = api(
            400,
            r#"{"error":{"code":"BadRequest","message":"bad url https://a.blob/c?sv=1&sig=SECRETSIG&se=2 and Bearer eyJSECRET."}}"#,
        );
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("SECRETSIG"), "{shown}");
        assert!(!shown.contains("eyJSECRET"), "{shown}");
        assert!(shown.contains("sig=<redacted>&se=2"), "{shown}");
    }

    #[test]
    fn long_messages_are_capped() {
        let long = "x".repeat(5000);
        assert!(scrub(&long).len() <= MAX_MESSAGE + '…'.len_utf8());
    }

    #[test]
    fn operation_failures_read_the_inner_error_chain() {
        let d: ErrorDetail = serde_json::from_str(
            r#"{"code":"UserError","message":"no nodes","details":null,"innerError":{"code":"QuotaExceeded","innerError":null}}"#,
        )
        .unwrap();
        let e = AzureError::operation_failed("compute.create", FailedState::Failed, Some(&d));
        assert_eq!(e.code(), "QuotaExceeded");
        assert!(!e.retryable());
        assert_eq!(
            e.to_string(),
            "compute.create: the operation ended Failed: UserError/QuotaExceeded: no nodes"
        );
    }

    #[test]
    fn operation_failures_use_the_operation_error_code() {
        let d: ErrorDetail =
            serde_json::from_str(r#"{"code":"QuotaExceeded","message":"no cores"}"#).unwrap();
        let e = AzureError::operation_failed("compute.create", FailedState::Failed, Some(&d));
        assert_eq!(e.code(), "QuotaExceeded");
        assert!(!e.retryable());
        let e = AzureError::operation_failed("compute.create", FailedState::Canceled, None);
        assert_eq!(e.code(), "OperationCanceled");
    }

    #[test]
    fn needs_human_overrides_a_retryable_conflict() {
        let e = api(409, &body("Conflict")).needs_human();
        assert!(!e.retryable());
        assert_eq!(e.code(), "Conflict");
    }
}
