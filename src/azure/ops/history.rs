//! Run history: where a run's times, error, warnings and log files live. The ARM job carries
//! only status and services (the recorded Failed job has neither times nor error), so amlops
//! finds the workspace's regional API through `discoveryUrl` (cached per workspace) and reads
//! `history/v1.0/.../runs/{id}` and `/details` there, with the same token, retries and error
//! classification as ARM. Log files are blobs behind a read SAS that run history hands out.

use super::WorkspaceClient;
use crate::azure::arm::ArmRequest;
use crate::azure::error::{AzureError, scrub};
use crate::azure::models::history::{Discovery, HistoryRun};
use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{CONTENT_RANGE, RANGE};
use url::Url;

/// A piece of a log file read from byte `from` on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogChunk {
    pub bytes: Bytes,
    /// The file's length when it was read, when the service said.
    pub total: Option<u64>,
}

fn invalid(operation: &'static str, message: String) -> AzureError {
    AzureError::InvalidResponse {
        operation,
        status: 200,
        message,
    }
}

fn parse_https(operation: &'static str, what: &str, raw: &str) -> Result<Url, AzureError> {
    let url = Url::parse(raw)
        .map_err(|e| invalid(operation, format!("{what} {raw:?} is not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(invalid(operation, format!("{what} {raw:?} is not https")));
    }
    Ok(url)
}

/// `bytes a-b/total` -> total.
fn range_total(header: Option<&reqwest::header::HeaderValue>) -> Option<u64> {
    header?.to_str().ok()?.rsplit_once('/')?.1.parse().ok()
}

impl WorkspaceClient {
    /// The workspace's regional API host, from its `discoveryUrl` (asked once per workspace).
    pub async fn history_host(&self) -> Result<Url, AzureError> {
        const OP: &str = "run_history.discover";
        let key = self.workspace.resource_id();
        if let Some(host) = self.arm.history_host(&key) {
            return Ok(host);
        }
        let ws = self.workspace_get().await?.ok_or_else(|| AzureError::Api {
            operation: OP,
            status: 404,
            code: "WorkspaceNotFound".into(),
            message: format!("workspace {key} does not exist"),
            retry_after: None,
            retryable: false,
        })?;
        let discovery_url = ws
            .properties
            .discovery_url
            .ok_or_else(|| invalid(OP, "the workspace has no discoveryUrl".into()))?;
        let discovery_url = parse_https(OP, "discoveryUrl", &discovery_url)?;
        // Discovery is public (it lists hosts): no token goes there.
        let request = ArmRequest::service(OP, Method::GET, discovery_url).without_token();
        let discovery: Discovery = self.arm.send_json(&request).await?;
        let api = discovery
            .api
            .ok_or_else(|| invalid(OP, "discovery names no `api` host".into()))?;
        let host = parse_https(OP, "discovery `api` host", &api)?;
        self.arm.remember_history_host(&key, host.clone());
        Ok(host)
    }

    async fn history_request(
        &self,
        operation: &'static str,
        run_id: &str,
        rest: &[&str],
    ) -> Result<ArmRequest, AzureError> {
        let mut url = self.history_host().await?;
        {
            let mut path = url.path_segments_mut().map_err(|()| AzureError::Config {
                message: "the run-history host cannot take a path".into(),
            })?;
            path.pop_if_empty();
            path.extend(["history", "v1.0"]);
            path.extend(self.workspace.segments(&["runs", run_id]));
            path.extend(rest);
        }
        // What azure-ai-ml's run-history client sends (recorded `.../children?api-version=v1.0`).
        url.query_pairs_mut().append_pair("api-version", "v1.0");
        Ok(ArmRequest::service(operation, Method::GET, url))
    }

    /// The run as run history sees it (`None`: it does not know the run yet).
    pub async fn run_get(&self, run_id: &str) -> Result<Option<HistoryRun>, AzureError> {
        let request = self.history_request("run_history.get", run_id, &[]).await?;
        self.get_optional(request).await
    }

    /// The run with its log files (name -> URL with a read SAS).
    pub async fn run_details(&self, run_id: &str) -> Result<Option<HistoryRun>, AzureError> {
        let request = self
            .history_request("run_history.details", run_id, &["details"])
            .await?;
        self.get_optional(request).await
    }

    /// Reads a log file from byte `from` on, at most `max` bytes (its URL carries its own SAS:
    /// no token is sent). Nothing past the end yet is an empty chunk, not an error.
    pub async fn read_log(
        &self,
        url: &str,
        from: u64,
        max: Option<u64>,
    ) -> Result<LogChunk, AzureError> {
        const OP: &str = "run_history.log";
        let parsed = Url::parse(url).map_err(|_| AzureError::Config {
            message: "a log file URL from run history is not a URL".into(),
        })?;
        let response = self
            .arm
            .http()
            .get(parsed)
            .header(
                RANGE,
                match max {
                    Some(n) => format!("bytes={from}-{}", from + n.max(1) - 1),
                    None => format!("bytes={from}-"),
                },
            )
            .header("x-ms-version", crate::azure::blob::STORAGE_VERSION)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                self.arm.report(OP, None);
                return Err(AzureError::Transport {
                    operation: OP,
                    timeout: e.is_timeout(),
                    message: scrub(&e.without_url().to_string()),
                });
            }
        };
        let status = response.status().as_u16();
        self.arm.report(OP, Some(status));
        let total = range_total(response.headers().get(CONTENT_RANGE));
        match status {
            // 416: the file has no byte at `from` yet.
            416 => Ok(LogChunk {
                bytes: Bytes::new(),
                total: total.or(Some(from)),
            }),
            200..=299 => {
                let whole = status == 200;
                let bytes = response.bytes().await.map_err(|e| AzureError::Transport {
                    operation: OP,
                    timeout: e.is_timeout(),
                    message: scrub(&e.without_url().to_string()),
                })?;
                // A server that ignores Range answers 200 with the whole file.
                let (bytes, total) = if whole {
                    let len = bytes.len() as u64;
                    let end = max.map_or(len, |n| from.saturating_add(n).min(len));
                    let at = |i: u64| usize::try_from(i.min(len)).unwrap_or(0);
                    (bytes.slice(at(from)..at(end)), Some(len))
                } else {
                    (bytes, total)
                };
                Ok(LogChunk { bytes, total })
            }
            _ => {
                let body = response.bytes().await.unwrap_or_default();
                Err(AzureError::from_response(OP, status, &body, None))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn content_range_gives_the_total_and_discovery_hosts_must_be_https() {
        assert_eq!(
            range_total(Some(&HeaderValue::from_static("bytes 10-19/120"))),
            Some(120)
        );
        assert_eq!(
            range_total(Some(&HeaderValue::from_static("bytes */7"))),
            Some(7)
        );
        assert_eq!(range_total(None), None);
        assert!(parse_https("op", "api", "http://westus.api.azureml.ms").is_err());
        assert_eq!(
            parse_https("op", "api", "https://westus.api.azureml.ms")
                .unwrap()
                .host_str(),
            Some("westus.api.azureml.ms")
        );
    }
}
