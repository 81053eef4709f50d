//! Shared helpers for the HTTP tests: a fake plus a reqwest client that trusts its CA, and the
//! recorded answers of the real service (`tests/fixtures/azure/`) to compare the fake with.

#![allow(dead_code)] // each test binary uses a different subset

use fake_azureml::{FakeAzureMl, Options};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

pub const API: &str = "api-version=2026-07-01";
pub const WS: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-test/providers/Microsoft.MachineLearningServices/workspaces/ws-test";

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

pub struct Harness {
    pub fake: FakeAzureMl,
    pub http: reqwest::Client,
}

/// Fast timings: short lifecycles.
pub fn fast() -> Options {
    Options {
        compute_provision_delay: Duration::from_millis(150),
        job_phase_delay: Duration::from_millis(60),
        ..Options::default()
    }
}

/// Timings long enough that a test reliably observes intermediate states (Creating,
/// CancelRequested, a 202 from a Location URL) even on a loaded machine.
pub fn observable() -> Options {
    Options {
        compute_provision_delay: Duration::from_millis(1000),
        job_phase_delay: Duration::from_millis(400),
        ..Options::default()
    }
}

pub fn client_for(fake: &FakeAzureMl) -> reqwest::Client {
    let ca = reqwest::Certificate::from_der(&fake.ca_der()).unwrap();
    // No idle pooling: every request gets its own connection, so an injected connection drop
    // is seen as an error and never silently retried on a fresh connection.
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

impl Harness {
    pub async fn start(options: Options) -> Harness {
        let fake = FakeAzureMl::start(options).await.unwrap();
        let http = client_for(&fake);
        Harness { fake, http }
    }

    /// `{arm}{WS}{suffix}?api-version=...` (or `&api-version` if suffix has a query).
    pub fn ws_url(&self, suffix: &str) -> String {
        let sep = if suffix.contains('?') { '&' } else { '?' };
        format!("{}{WS}{suffix}{sep}{API}", self.fake.arm_endpoint())
    }

    pub async fn call(&self, method: &str, url: &str, body: Option<Value>) -> Reply {
        self.try_call(method, url, body).await.unwrap()
    }

    pub async fn try_call(
        &self,
        method: &str,
        url: &str,
        body: Option<Value>,
    ) -> Result<Reply, reqwest::Error> {
        let mut req = self
            .http
            .request(method.parse().unwrap(), url)
            .bearer_auth("test-token");
        if let Some(body) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Polls an Azure-AsyncOperation URL until a terminal status; returns it and the poll count.
    pub async fn poll_async_operation(&self, url: &str) -> (Value, usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut polls = 0;
        loop {
            let r = self.call("GET", url, None).await;
            polls += 1;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let status = r.body["status"].as_str().unwrap().to_string();
            if status != "InProgress" {
                return (r.body, polls);
            }
            assert!(Instant::now() < deadline, "operation never finished");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls a Location URL until it stops answering 202; returns the final reply and the 202 count.
    pub async fn poll_location(&self, url: &str) -> (Reply, usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut accepted = 0;
        loop {
            let r = self.call("GET", url, None).await;
            if r.status != 202 {
                return (r, accepted);
            }
            accepted += 1;
            assert!(Instant::now() < deadline, "operation never finished");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// GETs `url` until `body[pointer] == want`.
    pub async fn wait_for(&self, url: &str, pointer: &str, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.call("GET", url, None).await;
            if r.body.pointer(pointer).and_then(Value::as_str) == Some(want) {
                return r.body;
            }
            assert!(
                Instant::now() < deadline,
                "{pointer} never became {want}: {:?}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A recorded exchange of `tests/fixtures/azure/<name>` (see its README).
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/../fixtures/azure/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

/// The keys of a JSON object (empty for anything else).
pub fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The object at `pointer` has the same keys in the recorded and in the fake's answer.
pub fn assert_same_keys(real: &Value, fake: &Value, pointer: &str) {
    let (r, f) = (
        keys(real.pointer(pointer).unwrap_or(&Value::Null)),
        keys(fake.pointer(pointer).unwrap_or(&Value::Null)),
    );
    assert!(!r.is_empty(), "the recording has no object at {pointer:?}");
    assert_eq!(
        f,
        r,
        "keys at {pointer:?}: the fake lacks {:?} and adds {:?}",
        r.difference(&f).collect::<Vec<_>>(),
        f.difference(&r).collect::<Vec<_>>()
    );
}

/// The fake's object at `pointer` has every key the recorded one has (for resources whose
/// other keys come from what the test sent).
pub fn assert_keys_cover(real: &Value, fake: &Value, pointer: &str) {
    let (r, f) = (
        keys(real.pointer(pointer).unwrap_or(&Value::Null)),
        keys(fake.pointer(pointer).unwrap_or(&Value::Null)),
    );
    assert!(!r.is_empty(), "the recording has no object at {pointer:?}");
    let missing: Vec<&String> = r.difference(&f).collect();
    assert!(
        missing.is_empty(),
        "keys at {pointer:?}: the fake lacks {missing:?}"
    );
}

/// The long-running-operation headers an answer carries, by name (lower case).
pub const LRO_HEADERS: [&str; 4] = [
    "azure-asyncoperation",
    "location",
    "retry-after",
    "x-ms-async-operation-timeout",
];

/// Which of [`LRO_HEADERS`] a recorded exchange carries.
pub fn recorded_lro_headers(exchange: &Value) -> BTreeSet<String> {
    keys(&exchange["responseHeaders"])
        .into_iter()
        .map(|h| h.to_ascii_lowercase())
        .filter(|h| LRO_HEADERS.contains(&h.as_str()))
        .collect()
}

impl Reply {
    /// Which of [`LRO_HEADERS`] the fake's answer carries.
    pub fn lro_headers(&self) -> BTreeSet<String> {
        LRO_HEADERS
            .iter()
            .filter(|h| self.headers.contains_key(**h))
            .map(|h| h.to_string())
            .collect()
    }
}

/// A compute the jobs of a test can run on.
pub async fn create_compute(h: &Harness, name: &str) {
    let body = serde_json::json!({"location": "eastus", "properties": {"computeType": "AmlCompute", "properties": {
        "vmSize": "STANDARD_DS3_V2",
        "scaleSettings": {"minNodeCount": 0, "maxNodeCount": 2}
    }}});
    let created = h
        .call("PUT", &h.ws_url(&format!("/computes/{name}")), Some(body))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
}

/// The ARM id of compute `name` in the test workspace.
pub fn compute_id(name: &str) -> String {
    format!("{WS}/computes/{name}")
}
