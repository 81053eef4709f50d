//! Shared helpers for the HTTP tests: a fake plus a reqwest client that trusts its CA.

#![allow(dead_code)] // each test binary uses a different subset

use fake_azureml::{FakeAzureMl, Options};
use reqwest::header::HeaderMap;
use serde_json::Value;
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

/// Fast timings: short lifecycles, Retry-After 0.
pub fn fast() -> Options {
    Options {
        compute_provision_delay: Duration::from_millis(150),
        job_phase_delay: Duration::from_millis(60),
        lro_retry_after_secs: 0,
        ..Options::default()
    }
}

/// Timings long enough that a test reliably observes intermediate states (Creating,
/// CancelRequested, a 202 from a Location URL) even on a loaded machine.
pub fn observable() -> Options {
    Options {
        compute_provision_delay: Duration::from_millis(1000),
        job_phase_delay: Duration::from_millis(400),
        lro_retry_after_secs: 0,
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
