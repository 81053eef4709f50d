//! Run history models: the regional Azure ML API that knows what the ARM job resource does
//! not (start/end times, duration, the run's error, warnings, log files). Shapes follow the
//! recorded answers (`GET <discoveryUrl>` and `history/v1.0/.../runs`, see
//! tests/fixtures/azure/README.md) and azure-ai-ml's generated run-history models
//! (`RunDetails`, `ErrorResponse`, `RootError`).

use super::common::null_as_default;
use jiff::Timestamp;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// `GET <workspace discoveryUrl>`: the workspace region's service hosts.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Discovery {
    /// The regional API host (`https://<region>.api.azureml.ms`): run history lives under it.
    #[serde(default)]
    pub api: Option<String>,
}

/// A run as run history reports it (`runs/{id}`, and the common part of `runs/{id}/details`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRun {
    /// The run id (= the job name for jobs submitted through ARM).
    #[serde(default)]
    pub run_id: Option<String>,
    /// Run status, the same vocabulary as the job's.
    #[serde(default)]
    pub status: Option<String>,
    /// When the run started executing (null until then).
    #[serde(default, deserialize_with = "lenient_time")]
    pub start_time_utc: Option<Timestamp>,
    /// When the run ended (null until then).
    #[serde(default, deserialize_with = "lenient_time")]
    pub end_time_utc: Option<Timestamp>,
    /// The run's error envelope, null unless it failed.
    #[serde(default)]
    pub error: Option<RunError>,
    /// Warnings the service attached to the run.
    #[serde(default, deserialize_with = "null_as_default")]
    pub warnings: Vec<RunWarning>,
    /// `runs/{id}/details` only: log file name -> URL with a read SAS.
    #[serde(default, deserialize_with = "null_as_default")]
    pub log_files: BTreeMap<String, String>,
}

/// `ErrorResponse` of run history: `{"error": RootError, "correlation", "componentName", ...}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunError {
    #[serde(default)]
    pub error: Option<RootError>,
    /// Which component reported it, e.g. `CommonRuntime`.
    #[serde(default)]
    pub component_name: Option<String>,
}

/// `RootError`: a generic code (`UserError`, `SystemError`), a message, and optionally a chain
/// of more specific codes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RootError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub inner_error: Option<Box<InnerErrorChain>>,
}

/// `InnerErrorResponse`: `{code, innerError}` nested to any depth.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InnerErrorChain {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub inner_error: Option<Box<InnerErrorChain>>,
}

/// `RunDetailsWarning`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunWarning {
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// Run history writes `"0001-01-01T00:00:00+00:00"`-style placeholders in some time fields;
/// a time that does not parse reads as absent rather than failing the whole run.
fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let raw = Option::<String>::deserialize(d)?;
    Ok(raw
        .and_then(|s| s.parse::<Timestamp>().ok())
        .filter(|t| t.as_second() > 0))
}

impl RootError {
    /// The codes from generic to specific: the top code, then the `innerError` chain, then
    /// the `Error Code: X` line the runtime writes into the message when the chain is null
    /// (how the recorded failures carry `ScriptExecution.StreamAccess.Authentication`).
    pub fn code_chain(&self) -> Vec<String> {
        let mut codes: Vec<String> = self.code.iter().cloned().collect();
        let mut next = self.inner_error.as_deref();
        while let Some(inner) = next {
            codes.extend(inner.code.iter().cloned());
            next = inner.inner_error.as_deref();
        }
        if codes.len() <= 1
            && let Some(code) = self.message.as_deref().and_then(message_error_code)
        {
            codes.push(code);
        }
        codes.retain(|c| !c.is_empty());
        codes.dedup();
        codes
    }
}

/// The `Error Code: X` line of a runtime error message.
fn message_error_code(message: &str) -> Option<String> {
    message.lines().find_map(|line| {
        let code = line.trim().strip_prefix("Error Code:")?.trim();
        (!code.is_empty() && !code.contains(char::is_whitespace)).then(|| code.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_recorded_failed_run_reads_with_times_and_the_runtime_code() {
        let run: HistoryRun = serde_json::from_value(json!({
            "runId": "r1", "status": "Failed",
            "startTimeUtc": "2026-02-27T20:40:16.3346637+00:00",
            "endTimeUtc": "2026-02-27T20:40:29.7401875+00:00",
            "error": {"error": {"code": "UserError", "message": "\nError Code: ScriptExecution.StreamAccess.Authentication\nNative Error: x", "details": [], "innerError": null, "additionalInfo": null}, "correlation": null, "time": "0001-01-01T00:00:00+00:00", "componentName": "CommonRuntime"},
            "warnings": null, "logFiles": null
        }))
        .unwrap();
        assert_eq!(run.status.as_deref(), Some("Failed"));
        assert_eq!(
            run.start_time_utc.unwrap().to_string(),
            "2026-02-27T20:40:16.3346637Z"
        );
        let root = run.error.unwrap().error.unwrap();
        assert_eq!(
            root.code_chain(),
            ["UserError", "ScriptExecution.StreamAccess.Authentication"]
        );
    }

    #[test]
    fn inner_error_chains_win_over_the_message_and_placeholders_read_as_absent() {
        let root: RootError = serde_json::from_value(json!({
            "code": "UserError", "message": "Error Code: Ignored",
            "innerError": {"code": "BadArgument", "innerError": {"code": "UnknownTargetType"}}
        }))
        .unwrap();
        assert_eq!(
            root.code_chain(),
            ["UserError", "BadArgument", "UnknownTargetType"]
        );
        let run: HistoryRun = serde_json::from_value(
            json!({"startTimeUtc": "0001-01-01T00:00:00+00:00", "endTimeUtc": "garbage"}),
        )
        .unwrap();
        assert!(run.start_time_utc.is_none() && run.end_time_utc.is_none());
    }
}
