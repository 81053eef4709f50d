//! Container logs, set by the test, and `GET .../pods/{name}/log` with the PodLogOptions a
//! client sends: `container`, `follow`, `tailLines`, `limitBytes`.
//!
//! Facts: the container rules and error texts of `LogLocation` (pkg/registry/core/pod/strategy.go);
//! the kubelet's "container ... is waiting to start" refusal; the PodLogOptions API reference
//! (tailLines >= 0 counts lines from the end, limitBytes > 0 caps the bytes sent, follow streams
//! until the container stops); https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/
//! for termination messages (at most 4096 bytes; with `FallbackToLogsOnError` an empty message
//! is replaced by the log's last 80 lines, at most 2048 bytes).
//!
//! Not modelled (refused with a clear error rather than ignored): `previous` (fake containers
//! never restart), `sinceSeconds`, `sinceTime`, `timestamps`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::Shared;
use crate::store::{ApiError, Key, Store};

const MAX_MESSAGE_BYTES: usize = 4096;
const FALLBACK_LINES: usize = 80;
const FALLBACK_BYTES: usize = 2048;

fn bad(message: String) -> ApiError {
    ApiError::new(400, "BadRequest", message)
}

fn container_names(pod: &Value, list: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Which container a log request means (LogLocation): the named one, which must exist, or the
/// only one.
fn container_of(pod: &Value, pod_name: &str, wanted: Option<&str>) -> Result<String, ApiError> {
    let containers = container_names(pod, "containers");
    let init = container_names(pod, "initContainers");
    match wanted {
        Some(c) if containers.iter().chain(&init).any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(bad(format!(
            "container {c} is not valid for pod {pod_name}"
        ))),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None if containers.is_empty() => Err(bad(format!(
            "a container name must be specified for pod {pod_name}"
        ))),
        None => {
            let mut m = format!(
                "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                containers.join(" ")
            );
            if !init.is_empty() {
                m.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(bad(m))
        }
    }
}

fn pod_of<'a>(store: &'a Store, key: &Key) -> Result<&'a Value, ApiError> {
    store
        .get(key)
        .ok_or_else(|| ApiError::new(404, "NotFound", format!("pods {:?} not found", key.name)))
}

/// The container a test writes to: the named one, else the pod's first (main) container.
fn target(store: &Store, key: &Key, container: Option<&str>) -> Result<String, ApiError> {
    let pod = pod_of(store, key)?;
    match container {
        Some(_) => container_of(pod, &key.name, container),
        None => container_names(pod, "containers")
            .into_iter()
            .next()
            .ok_or_else(|| bad(format!("pod {} has no containers", key.name))),
    }
}

fn log_key(key: &Key, container: &str) -> (String, String, String) {
    (
        key.namespace.clone(),
        key.name.clone(),
        container.to_string(),
    )
}

/// Appends what the container writes.
pub fn append(
    store: &mut Store,
    key: &Key,
    container: Option<&str>,
    text: &str,
) -> Result<(), ApiError> {
    let c = target(store, key, container)?;
    store
        .pod_logs
        .entry(log_key(key, &c))
        .or_default()
        .push_str(text);
    Ok(())
}

/// Everything the container wrote so far.
pub fn text(store: &Store, key: &Key, container: Option<&str>) -> String {
    target(store, key, container)
        .ok()
        .and_then(|c| store.pod_logs.get(&log_key(key, &c)).cloned())
        .unwrap_or_default()
}

/// The longest suffix of `text` with at most `max` bytes, starting on a character.
fn last_bytes(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The last `n` lines of `text` (a final line without a newline counts).
fn last_lines(text: &str, n: usize) -> &str {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let kept: usize = lines.iter().rev().take(n).map(|l| l.len()).sum();
    &text[text.len() - kept..]
}

/// What the kubelet reports as a failed container's termination message.
pub fn termination_message(written: &str, policy: &str, log: &str) -> String {
    let message = if written.is_empty() && policy == "FallbackToLogsOnError" {
        last_bytes(last_lines(log, FALLBACK_LINES), FALLBACK_BYTES)
    } else {
        written
    };
    let mut end = message.len().min(MAX_MESSAGE_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].to_string()
}

/// The options of one log request.
struct LogOptions {
    container: Option<String>,
    follow: bool,
    tail_lines: Option<usize>,
    limit_bytes: Option<usize>,
}

fn number(
    params: &HashMap<String, String>,
    name: &str,
    min: i64,
) -> Result<Option<usize>, ApiError> {
    let Some(text) = params.get(name) else {
        return Ok(None);
    };
    let n: i64 = text
        .parse()
        .map_err(|_| bad(format!("{name}: {text:?} is not an integer")))?;
    if n < min {
        let rule = if min == 0 {
            "must be greater than or equal to 0"
        } else {
            "must be greater than 0"
        };
        return Err(ApiError::new(
            422,
            "Invalid",
            format!("PodLogOptions is invalid: {name}: Invalid value: {n}: {rule}"),
        ));
    }
    Ok(Some(usize::try_from(n).unwrap_or(usize::MAX)))
}

impl LogOptions {
    fn parse(params: &HashMap<String, String>) -> Result<LogOptions, ApiError> {
        let flag = |name: &str| params.get(name).is_some_and(|v| v == "true" || v == "1");
        for unmodelled in ["sinceSeconds", "sinceTime"] {
            if params.contains_key(unmodelled) {
                return Err(bad(format!(
                    "fake-kube does not model the log option {unmodelled}"
                )));
            }
        }
        if flag("timestamps") {
            return Err(bad(
                "fake-kube does not model the log option timestamps".into()
            ));
        }
        Ok(LogOptions {
            container: params.get("container").filter(|c| !c.is_empty()).cloned(),
            follow: flag("follow"),
            tail_lines: number(params, "tailLines", 0)?,
            limit_bytes: number(params, "limitBytes", 1)?,
        })
    }
}

/// How a container stands for its log: still waiting (no log yet), or whether it stopped.
fn container_state(pod: &Value, container: &str) -> Result<bool, String> {
    let status = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .filter_map(|l| pod["status"][*l].as_array())
        .flatten()
        .find(|s| s["name"] == container);
    let Some(status) = status else {
        return Err("ContainerCreating".into());
    };
    if let Some(w) = status.pointer("/state/waiting") {
        return Err(w["reason"]
            .as_str()
            .unwrap_or("ContainerCreating")
            .to_string());
    }
    let pod_done = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    Ok(pod_done || status.pointer("/state/terminated").is_some())
}

/// Where a follower stands: which pod incarnation, how far it has read, how much it may still
/// send.
struct Follower {
    shared: Arc<Shared>,
    changes: broadcast::Receiver<()>,
    key: Key,
    container: String,
    uid: String,
    cursor: usize,
    budget: Option<usize>,
    done: bool,
}

/// Spends the byte budget on `bytes`.
fn within_budget(mut bytes: Vec<u8>, budget: &mut Option<usize>) -> Vec<u8> {
    if let Some(left) = budget {
        bytes.truncate(*left);
        *left -= bytes.len();
    }
    bytes
}

impl Follower {
    /// New log text since the cursor, and whether the stream is over (the container stopped,
    /// or the pod is gone or replaced).
    fn progress(&mut self) -> (Vec<u8>, bool) {
        let store = self.shared.store.lock().unwrap_or_else(|p| p.into_inner());
        let Some(pod) = store.get(&self.key) else {
            return (Vec::new(), true);
        };
        if pod.pointer("/metadata/uid").and_then(Value::as_str) != Some(self.uid.as_str()) {
            return (Vec::new(), true);
        }
        let text = store
            .pod_logs
            .get(&log_key(&self.key, &self.container))
            .map(String::as_str)
            .unwrap_or_default();
        let new = text
            .as_bytes()
            .get(self.cursor..)
            .unwrap_or_default()
            .to_vec();
        self.cursor += new.len();
        (new, container_state(pod, &self.container).unwrap_or(true))
    }

    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Follower)> {
        loop {
            if self.done || self.budget == Some(0) {
                return None;
            }
            let (new, ended) = self.progress();
            self.done = ended;
            let chunk = within_budget(new, &mut self.budget);
            if !chunk.is_empty() {
                return Some((Ok(Bytes::from(chunk)), self));
            }
            if self.done {
                return None;
            }
            if let Err(broadcast::error::RecvError::Closed) = self.changes.recv().await {
                return None;
            }
        }
    }
}

/// Answers a log request: what the container wrote (its last `tailLines`, at most
/// `limitBytes`), and with `follow=true` what it writes next, until it stops.
pub fn respond(
    shared: Arc<Shared>,
    key: &Key,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let options = LogOptions::parse(params)?;
    // Subscribe before reading, so no write between the two is missed.
    let changes = shared.changed.subscribe();
    let (container, uid, text) = {
        let store = shared.store.lock().unwrap_or_else(|p| p.into_inner());
        let pod = pod_of(&store, key)?;
        let container = container_of(pod, &key.name, options.container.as_deref())?;
        if let Err(reason) = container_state(pod, &container) {
            return Err(bad(format!(
                "container {container:?} in pod {:?} is waiting to start: {reason}",
                key.name
            )));
        }
        if params.get("previous").is_some_and(|v| v == "true") {
            return Err(bad(format!(
                "previous terminated container {container:?} in pod {:?} not found",
                key.name
            )));
        }
        let uid = pod["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let text = store
            .pod_logs
            .get(&log_key(key, &container))
            .cloned()
            .unwrap_or_default();
        (container, uid, text)
    };
    let shown = match options.tail_lines {
        Some(n) => last_lines(&text, n),
        None => &text,
    };
    let mut budget = options.limit_bytes;
    let first = within_budget(shown.as_bytes().to_vec(), &mut budget);
    let plain = [(header::CONTENT_TYPE, "text/plain")];
    if !options.follow {
        return Ok((StatusCode::OK, plain, first).into_response());
    }
    let follower = Follower {
        shared,
        changes,
        key: key.clone(),
        container,
        uid,
        cursor: text.len(),
        budget,
        done: false,
    };
    let head = futures::stream::iter(
        (!first.is_empty()).then(|| Ok::<Bytes, std::io::Error>(Bytes::from(first))),
    );
    let tail = futures::stream::unfold(follower, Follower::next);
    use futures::StreamExt;
    Ok((StatusCode::OK, plain, Body::from_stream(head.chain(tail))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tails_count_lines_from_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(last_lines("a\nb\npartial", 1), "partial");
        assert_eq!(last_lines("a\n", 0), "");
        assert_eq!(last_lines("a\n", 5), "a\n");
    }

    #[test]
    fn termination_messages_fall_back_to_the_log_only_when_asked() {
        let log: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let fallback = termination_message("", "FallbackToLogsOnError", &log);
        assert!(fallback.starts_with("line 20\n") && fallback.ends_with("line 99\n"));
        assert_eq!(termination_message("", "File", &log), "");
        assert_eq!(
            termination_message("boom", "FallbackToLogsOnError", &log),
            "boom"
        );
        let long = "é".repeat(3000);
        let capped = termination_message(&long, "File", "");
        assert!(capped.len() <= MAX_MESSAGE_BYTES && capped.len() > MAX_MESSAGE_BYTES - 2);
    }

    #[test]
    fn a_log_request_names_a_container_when_the_pod_has_several() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "fetch"}]}});
        let e = container_of(&pod, "p", None).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [fetch]"
        );
        assert_eq!(container_of(&pod, "p", Some("fetch")).unwrap(), "fetch");
        assert_eq!(
            container_of(&pod, "p", Some("x")).unwrap_err().message,
            "container x is not valid for pod p"
        );
    }
}
