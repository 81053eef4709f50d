//! Long-running operations (ARM async contract): a 201/202 start answer names a status
//! URL in `Azure-AsyncOperation` (poll its JSON `status`) or `Location` (202 while
//! running, 200/204 when done). The URL travels in a serializable [`OperationHandle`]
//! so a caller can persist it and resume polling after a restart.

use super::arm::{ArmClient, ArmRequest, ArmResponse};
use super::error::{AzureError, ErrorDetail, FailedState};
use super::retry::retry_after;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// Which polling protocol the status URL speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperationKind {
    /// `Azure-AsyncOperation`: 200 with `{"status": ..., "error": ...}`.
    AzureAsyncOperation,
    /// `Location`: 202 while running, 200/204 when done, an error status on failure.
    Location,
}

/// A running operation, safe to persist (e.g. in a status field) and resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationHandle {
    /// The status URL (on the ARM endpoint; the client refuses any other origin).
    pub url: String,
    /// How to read it.
    pub kind: OperationKind,
}

/// The answer to starting a long-running operation.
#[derive(Debug)]
pub enum Started<T> {
    /// Azure finished synchronously.
    Done(T),
    /// Azure accepted the request; poll the handle.
    Pending(OperationHandle),
}

/// Where an operation stands after one poll.
#[derive(Debug)]
pub enum PollState {
    /// Still running; poll again after the interval.
    InProgress {
        /// When to poll again (from `Retry-After` and [`PollOptions`]).
        next_poll: Duration,
    },
    /// Finished successfully.
    Succeeded,
    /// Finished Failed or Canceled.
    Failed(AzureError),
}

/// Poll pacing.
#[derive(Debug, Clone)]
pub struct PollOptions {
    /// Interval when Azure sends no `Retry-After`.
    pub default_interval: Duration,
    /// Never poll faster than this, even if Azure says `Retry-After: 0`.
    pub min_interval: Duration,
    /// Never wait longer than this between polls.
    pub max_interval: Duration,
}

impl Default for PollOptions {
    fn default() -> Self {
        Self {
            default_interval: Duration::from_secs(10),
            min_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(60),
        }
    }
}

impl PollOptions {
    /// The wait before the next poll.
    pub fn interval(&self, retry_after: Option<Duration>) -> Duration {
        retry_after
            .unwrap_or(self.default_interval)
            .clamp(self.min_interval, self.max_interval.max(self.min_interval))
    }
}

/// The operation a start answer points at, if any: `Azure-AsyncOperation` wins, else
/// `Location` on a 201/202.
pub fn operation_from_start(status: u16, headers: &HeaderMap) -> Option<OperationHandle> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    if let Some(url) = header("azure-asyncoperation") {
        return Some(OperationHandle {
            url,
            kind: OperationKind::AzureAsyncOperation,
        });
    }
    if matches!(status, 201 | 202) {
        return header("location").map(|url| OperationHandle {
            url,
            kind: OperationKind::Location,
        });
    }
    None
}

#[derive(Deserialize)]
struct AsyncOperationStatus {
    status: String,
    #[serde(default)]
    error: Option<ErrorDetail>,
}

/// Reads one successful poll answer (error statuses arrive as `Err` from the client).
pub fn poll_state(
    kind: OperationKind,
    response: &ArmResponse,
    options: &PollOptions,
) -> Result<PollState, AzureError> {
    let next_poll = options.interval(retry_after(&response.headers, SystemTime::now()));
    match kind {
        OperationKind::Location => Ok(if response.status == 202 {
            PollState::InProgress { next_poll }
        } else {
            PollState::Succeeded
        }),
        OperationKind::AzureAsyncOperation => {
            if response.status == 202 && response.body.is_empty() {
                return Ok(PollState::InProgress { next_poll });
            }
            let body: AsyncOperationStatus = response.json(POLL_OPERATION)?;
            let failed = |state| {
                PollState::Failed(AzureError::operation_failed(
                    POLL_OPERATION,
                    state,
                    body.error.as_ref(),
                ))
            };
            Ok(match body.status.to_ascii_lowercase().as_str() {
                "succeeded" => PollState::Succeeded,
                "failed" => failed(FailedState::Failed),
                "canceled" | "cancelled" => failed(FailedState::Canceled),
                _ => PollState::InProgress { next_poll },
            })
        }
    }
}

/// Operation name used for polls in errors and call counts.
pub const POLL_OPERATION: &str = "operation.poll";

impl ArmClient {
    /// Sends a request that may start a long-running operation.
    pub async fn begin(
        &self,
        request: &ArmRequest,
    ) -> Result<(ArmResponse, Option<OperationHandle>), AzureError> {
        let response = self.send(request).await?;
        let handle = operation_from_start(response.status, &response.headers);
        Ok((response, handle))
    }

    /// Polls once (one GET, retried on transient failures).
    pub async fn poll(&self, handle: &OperationHandle) -> Result<PollState, AzureError> {
        let request = ArmRequest::absolute(POLL_OPERATION, Method::GET, handle.url.clone());
        match self.send(&request).await {
            Ok(response) => poll_state(handle.kind, &response, self.polling()),
            // A Location poll reports failure with the operation's error status.
            Err(e @ AzureError::Api { .. }) if handle.kind == OperationKind::Location => {
                Ok(PollState::Failed(e))
            }
            Err(e) => Err(e),
        }
    }

    /// Polls until the operation ends; `Err` if it failed, was canceled, or polling
    /// itself gave up. The first poll comes after the minimum interval (an operation
    /// just accepted is never already done). This holds its caller for the whole operation:
    /// a reconcile polls once with [`ArmClient::poll`] and requeues instead.
    pub async fn wait(&self, handle: &OperationHandle) -> Result<(), AzureError> {
        tokio::time::sleep(self.polling().min_interval).await;
        loop {
            match self.poll(handle).await? {
                PollState::Succeeded => return Ok(()),
                PollState::Failed(e) => return Err(e),
                PollState::InProgress { next_poll } => tokio::time::sleep(next_poll).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn response(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> ArmResponse {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_static(v));
        }
        ArmResponse {
            status,
            headers: h,
            body: bytes::Bytes::from(body.to_owned()),
        }
    }

    fn opts() -> PollOptions {
        PollOptions {
            default_interval: Duration::from_secs(10),
            min_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(30),
        }
    }

    #[test]
    fn async_operation_header_wins_over_location() {
        let r = response(
            201,
            &[
                ("azure-asyncoperation", "https://arm/op1"),
                ("location", "https://arm/loc"),
            ],
            "",
        );
        let h = operation_from_start(r.status, &r.headers).unwrap();
        assert_eq!(h.kind, OperationKind::AzureAsyncOperation);
        assert_eq!(h.url, "https://arm/op1");
        // PATCH answers 200 + Azure-AsyncOperation: still pending
        let r = response(200, &[("azure-asyncoperation", "https://arm/op2")], "{}");
        assert!(operation_from_start(r.status, &r.headers).is_some());
    }

    #[test]
    fn location_only_counts_on_201_or_202() {
        let r = response(202, &[("location", "https://arm/loc")], "");
        let h = operation_from_start(r.status, &r.headers).unwrap();
        assert_eq!(h.kind, OperationKind::Location);
        let r = response(200, &[("location", "https://arm/loc")], "{}");
        assert!(operation_from_start(r.status, &r.headers).is_none());
        let r = response(200, &[], "{}");
        assert!(operation_from_start(r.status, &r.headers).is_none());
    }

    #[test]
    fn async_operation_states() {
        let o = opts();
        let k = OperationKind::AzureAsyncOperation;
        let r = response(200, &[("retry-after", "3")], r#"{"status":"InProgress"}"#);
        match poll_state(k, &r, &o).unwrap() {
            PollState::InProgress { next_poll } => assert_eq!(next_poll, Duration::from_secs(3)),
            other => panic!("{other:?}"),
        }
        let r = response(200, &[], r#"{"status":"Succeeded"}"#);
        assert!(matches!(
            poll_state(k, &r, &o).unwrap(),
            PollState::Succeeded
        ));
        let r = response(
            200,
            &[],
            r#"{"status":"Failed","error":{"code":"QuotaExceeded","message":"no cores"}}"#,
        );
        match poll_state(k, &r, &o).unwrap() {
            PollState::Failed(e) => {
                assert_eq!(e.code(), "QuotaExceeded");
                assert!(!e.retryable());
            }
            other => panic!("{other:?}"),
        }
        let r = response(200, &[], r#"{"status":"Canceled"}"#);
        match poll_state(k, &r, &o).unwrap() {
            PollState::Failed(e) => assert_eq!(e.code(), "OperationCanceled"),
            other => panic!("{other:?}"),
        }
        let r = response(200, &[], r#"{"nostatus":true}"#);
        assert_eq!(poll_state(k, &r, &o).unwrap_err().code(), "InvalidResponse");
    }

    #[test]
    fn location_states() {
        let o = opts();
        let k = OperationKind::Location;
        let r = response(202, &[], "");
        match poll_state(k, &r, &o).unwrap() {
            PollState::InProgress { next_poll } => assert_eq!(next_poll, o.default_interval),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            poll_state(k, &response(204, &[], ""), &o).unwrap(),
            PollState::Succeeded
        ));
        assert!(matches!(
            poll_state(k, &response(200, &[], "{}"), &o).unwrap(),
            PollState::Succeeded
        ));
    }

    #[test]
    fn interval_is_clamped() {
        let o = opts();
        assert_eq!(o.interval(Some(Duration::ZERO)), Duration::from_secs(1));
        assert_eq!(
            o.interval(Some(Duration::from_secs(600))),
            Duration::from_secs(30)
        );
        assert_eq!(o.interval(None), Duration::from_secs(10));
    }

    #[test]
    fn handles_round_trip_through_json() {
        let h = OperationHandle {
            url: "https://management.azure.com/x/operationResults/1?api-version=2026-07-01".into(),
            kind: OperationKind::Location,
        };
        let text = serde_json::to_string(&h).unwrap();
        assert_eq!(
            text,
            r#"{"url":"https://management.azure.com/x/operationResults/1?api-version=2026-07-01","kind":"Location"}"#
        );
        assert_eq!(serde_json::from_str::<OperationHandle>(&text).unwrap(), h);
    }
}
