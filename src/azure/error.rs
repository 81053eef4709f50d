//! One typed error for everything that can go wrong talking to Azure, classified into
//! "retrying can help" (controllers report `Reconciling` and requeue) and "a human must
//! act" (controllers report `Stalled` with [`AzureError::code`] as the condition reason).
//!
//! Messages are scrubbed of SAS signatures and bearer tokens before they are stored, so
//! `Display`/`Debug` never carry a secret even if Azure echoes one.

use serde::Deserialize;
use std::time::Duration;

/// The ARM error envelope `{"error": {...}}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    /// The error object; absent in some malformed answers.
    pub error: Option<ErrorDetail>,
}

/// The ARM `ErrorDetail` (plus Azure ML's nested `innerError` codes).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Azure error code, e.g. `QuotaExceeded`.
    #[serde(default)]
    pub code: Option<String>,
    /// Human-readable message.
    #[serde(default)]
    pub message: Option<String>,
    /// Nested details.
    #[serde(default)]
    pub details: Vec<ErrorDetail>,
    /// Azure ML nests its specific code under a generic `UserError`/`SystemError`.
    #[serde(default)]
    pub inner_error: Option<Box<InnerError>>,
}

/// Azure ML's `innerError` chain.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InnerError {
    /// The more specific code.
    #[serde(default)]
    pub code: Option<String>,
    /// An even more specific one.
    #[serde(default)]
    pub inner_error: Option<Box<InnerError>>,
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
    #[error("{operation}: Azure answered HTTP {status} {code}: {message}")]
    Api {
        /// The amlops operation name, e.g. `compute.create`.
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// PascalCase Azure error code.
        code: String,
        /// Scrubbed Azure message.
        message: String,
        /// Server-requested wait, if any.
        retry_after: Option<Duration>,
        /// Whether retrying can help.
        retryable: bool,
    },
    /// A long-running operation reached a terminal state other than Succeeded.
    #[error("{operation}: the operation ended {state}: {code}: {message}")]
    OperationFailed {
        /// The amlops operation name.
        operation: &'static str,
        /// Failed or Canceled.
        state: FailedState,
        /// PascalCase Azure error code.
        code: String,
        /// Scrubbed Azure message.
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
            Self::Transport { .. } => true,
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
            Self::InvalidResponse { .. } => "InvalidResponse",
            Self::Config { .. } => "InvalidConfiguration",
        }
    }

    /// The wait Azure asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
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

    /// Builds the error for an ARM error answer from its status and body.
    pub fn from_response(
        operation: &'static str,
        status: u16,
        body: &[u8],
        retry_after: Option<Duration>,
    ) -> Self {
        let detail = serde_json::from_slice::<ErrorBody>(body)
            .ok()
            .and_then(|b| b.error);
        let (code, message) = match detail {
            Some(d) => (specific_code(&d), detail_message(&d)),
            None => (None, String::from_utf8_lossy(body).trim().to_owned()),
        };
        let code = code
            .map(|c| reason_code(&c))
            .unwrap_or_else(|| code_for_status(status));
        Self::Api {
            operation,
            status,
            retryable: is_retryable(Some(status), &code),
            code,
            message: scrub(&message),
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
        let code = detail
            .and_then(specific_code)
            .map(|c| reason_code(&c))
            .unwrap_or_else(|| fallback.to_owned());
        let message = detail.map(detail_message).unwrap_or_default();
        Self::OperationFailed {
            operation,
            state,
            retryable: is_retryable(None, &code),
            code,
            message: scrub(&message),
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

/// Retryable if the code says so; a known human code wins over the status; otherwise
/// throttling, conflicts, timeouts and 5xx (except 501/505) are retryable.
pub fn is_retryable(status: Option<u16>, code: &str) -> bool {
    if RETRYABLE_CODES.contains(&code) {
        return true;
    }
    if HUMAN_CODES.contains(&code) {
        return false;
    }
    match status {
        Some(408 | 409 | 429) => true,
        Some(501 | 505) => false,
        Some(s) => (500..600).contains(&s),
        None => false,
    }
}

/// The most specific code in an error: the deepest `innerError` code, else the first
/// detail code, when the top code is one of Azure ML's generic ones.
fn specific_code(d: &ErrorDetail) -> Option<String> {
    let top = d.code.clone().filter(|c| !c.is_empty());
    let generic = top.as_deref().is_none_or(|c| GENERIC_CODES.contains(&c));
    if !generic {
        return top;
    }
    let mut inner = d.inner_error.as_deref();
    let mut deepest = None;
    while let Some(i) = inner {
        if let Some(c) = i.code.as_deref().filter(|c| !c.is_empty()) {
            deepest = Some(c.to_owned());
        }
        inner = i.inner_error.as_deref();
    }
    deepest
        .or_else(|| {
            d.details
                .iter()
                .find_map(|x| x.code.clone().filter(|c| !c.is_empty()))
        })
        .or(top)
}

fn detail_message(d: &ErrorDetail) -> String {
    match d.message.as_deref().filter(|m| !m.is_empty()) {
        Some(m) => m.to_owned(),
        None => d
            .details
            .iter()
            .find_map(|x| x.message.clone())
            .unwrap_or_default(),
    }
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

/// Turns any Azure code into a valid Kubernetes condition reason in PascalCase:
/// separators are dropped and the following letter upper-cased (`invalid_request` ->
/// `InvalidRequest`); a leading digit gets an `Azure` prefix.
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
    match out.chars().next() {
        None => "Unknown".into(),
        Some(c) if c.is_ascii_digit() => format!("Azure{out}"),
        Some(_) => out,
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
