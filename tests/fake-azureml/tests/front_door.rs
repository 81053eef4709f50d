//! Authentication, api-version, routing, the token endpoint over TLS, fault injection and
//! the /_fake observability endpoints.

mod common;

use common::{API, Harness, WS, fast};
use fake_azureml::{Faults, Options};
use serde_json::{Value, json};

#[tokio::test]
async fn arm_requires_a_bearer_token_and_the_api_version() {
    let h = Harness::start(fast()).await;
    let anonymous = h.http.get(h.ws_url("")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers().contains_key("www-authenticate"));
    let no_version = h
        .call("GET", &format!("{}{WS}", h.fake.arm_endpoint()), None)
        .await;
    assert_eq!(
        (no_version.status, no_version.body["error"]["code"].as_str()),
        (400, Some("MissingApiVersionParameter"))
    );
    let old = h
        .call(
            "GET",
            &format!("{}{WS}?api-version=2023-04-01", h.fake.arm_endpoint()),
            None,
        )
        .await;
    assert_eq!(old.status, 400);
    let ws = h.call("GET", &h.ws_url(""), None).await;
    assert_eq!(ws.status, 200);
    assert_eq!(ws.body["location"], "eastus");
    assert!(
        ws.body["properties"]["storageAccount"]
            .as_str()
            .unwrap()
            .contains("/Microsoft.Storage/storageAccounts/")
    );
    assert!(
        ws.body["properties"]["workspaceId"]
            .as_str()
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
    );
    let store = h
        .call("GET", &h.ws_url("/datastores/workspaceblobstore"), None)
        .await;
    assert_eq!(store.body["properties"]["datastoreType"], "AzureBlob");
    assert!(
        store.body["properties"]["containerName"]
            .as_str()
            .unwrap()
            .starts_with("azureml-blobstore-")
    );
}

#[tokio::test]
async fn missing_workspaces_unknown_paths_and_bad_json() {
    let h = Harness::start(fast()).await;
    let missing = h
        .call(
            "GET",
            &format!(
                "{}{}?{API}",
                h.fake.arm_endpoint(),
                WS.replace("ws-test", "missing-ws")
            ),
            None,
        )
        .await;
    assert_eq!(
        (missing.status, missing.body["error"]["code"].as_str()),
        (404, Some("ResourceNotFound"))
    );
    let unknown = h.call("GET", &h.ws_url("/teapots/one"), None).await;
    assert_eq!(unknown.status, 404);
    let resp = h
        .http
        .put(h.ws_url("/jobs/j"))
        .bearer_auth("t")
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("$: the request body is not valid JSON")
    );
}

#[tokio::test]
async fn token_endpoint_serves_tls_signed_by_the_generated_ca() {
    let h = Harness::start(fast()).await;
    let url = format!("{}/my-tenant/oauth2/v2.0/token", h.fake.authority_host());
    let pairs = [
        ("grant_type", "client_credentials"),
        ("client_id", "app-id"),
        ("client_secret", "s"),
        ("scope", "https://management.azure.com/.default"),
    ];
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let post = |client: &reqwest::Client| {
        client
            .post(&url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.clone())
            .send()
    };
    let token: Value = post(&h.http).await.unwrap().json().await.unwrap();
    assert_eq!(token["token_type"], "Bearer");
    assert!(token["expires_in"].as_u64().unwrap() > 3000);
    assert!(
        token["access_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let untrusting = reqwest::Client::builder()
        .tls_certs_only([])
        .build()
        .unwrap();
    let err = post(&untrusting).await.unwrap_err();
    assert!(
        err.is_connect(),
        "a client without the CA must fail the handshake: {err:?}"
    );
    let pem_client = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(h.fake.ca_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    assert_eq!(post(&pem_client).await.unwrap().status(), 200);
    assert_eq!(h.fake.count("POST", "/oauth2/v2.0/token"), 2);
}

/// Status of each of 60 workspace GETs (0 = connection dropped).
async fn fault_sequence(seed: u64) -> (Vec<u16>, Vec<u16>, Vec<Option<String>>) {
    let faults = Faults {
        throttle_ratio: 0.2,
        server_error_ratio: 0.2,
        drop_ratio: 0.1,
        retry_after_secs: 7,
        seed,
        ..Faults::default()
    };
    let h = Harness::start(Options { faults, ..fast() }).await;
    let mut client_seen = vec![];
    let mut retry_after = vec![];
    for _ in 0..60 {
        match h.try_call("GET", &h.ws_url(""), None).await {
            Ok(r) => {
                client_seen.push(r.status);
                retry_after.push(r.header("retry-after"));
            }
            Err(_) => {
                client_seen.push(0);
                retry_after.push(None);
            }
        }
    }
    let server_seen = h.fake.requests().iter().map(|r| r.status).collect();
    let template = "GET /subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.MachineLearningServices/workspaces/{workspaceName}";
    assert_eq!(
        h.fake.counters().get(template),
        Some(&60),
        "faulted requests count under their own template"
    );
    (client_seen, server_seen, retry_after)
}

#[tokio::test]
async fn faults_are_deterministic_by_seed() {
    let (a, a_server, a_retry) = fault_sequence(42).await;
    let (b, _, _) = fault_sequence(42).await;
    let (c, _, _) = fault_sequence(43).await;
    assert_eq!(a, b, "same seed, same faults");
    assert_ne!(a, c, "another seed, other faults");
    assert_eq!(a, a_server, "the log records what the client saw");
    for status in [0, 200, 429, 500, 503] {
        assert!(a.contains(&status), "{status} missing from {a:?}");
    }
    for (status, retry) in a.iter().zip(&a_retry) {
        if *status == 429 || *status == 503 {
            assert_eq!(retry.as_deref(), Some("7"));
        }
    }
}

#[tokio::test]
async fn observability_endpoints_count_by_template_and_reset() {
    let h = Harness::start(fast()).await;
    h.call("GET", &h.ws_url(""), None).await;
    h.call("GET", &h.ws_url("/computes/none-here"), None).await;
    h.call("GET", &h.ws_url("/computes/other-one"), None).await;
    let base = h.fake.arm_endpoint();
    let counters: Value = h
        .http
        .get(format!("{base}/_fake/counters"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = "GET /subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.MachineLearningServices/workspaces/{workspaceName}/computes/{computeName}";
    assert_eq!(counters[key], 2, "{counters}");
    let requests: Value = h
        .http
        .get(format!("{base}/_fake/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let requests = requests.as_array().unwrap();
    assert_eq!(requests.len(), 3, "control calls are not logged");
    assert_eq!(requests[1]["status"], 404);
    assert_eq!(requests[1]["query"], API);
    let job = json!({"properties": {"jobType": "Command", "command": "x", "environmentId": "azureml:e:1"}});
    h.call("PUT", &h.ws_url("/jobs/j-ctl"), Some(job)).await;
    let set = h
        .http
        .post(format!("{base}/_fake/jobs/j-ctl/outcome"))
        .body(r#"{"outcome":"Failed"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    h.wait_for(&h.ws_url("/jobs/j-ctl"), "/properties/status", "Failed")
        .await;
    assert_eq!(
        h.http
            .post(format!("{base}/_fake/jobs/j-ctl/outcome"))
            .body(r#"{"outcome":"Maybe"}"#)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        h.http
            .post(format!("{base}/_fake/reset"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(h.fake.requests().is_empty());
    assert_eq!(
        h.call("GET", &h.ws_url("/jobs/j-ctl"), None).await.status,
        200,
        "reset keeps resources"
    );
    h.http
        .post(format!("{base}/_fake/reset?state=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        h.call("GET", &h.ws_url("/jobs/j-ctl"), None).await.status,
        404
    );
}

#[tokio::test]
async fn validation_can_be_switched_off_but_shapes_are_still_checked() {
    let h = Harness::start(Options {
        validate_bodies: false,
        ..fast()
    })
    .await;
    let no_command = json!({"properties": {"jobType": "Command", "environmentId": "azureml:e:1"}});
    assert_eq!(
        h.call("PUT", &h.ws_url("/jobs/lenient"), Some(no_command))
            .await
            .status,
        201
    );
    for body in [json!([1, 2]), json!({"properties": "x"})] {
        let r = h
            .call("PUT", &h.ws_url("/computes/odd-shape"), Some(body))
            .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
    }
    let r = h
        .call("DELETE", &h.ws_url("/computes/odd-shape"), None)
        .await;
    assert_eq!(
        r.status, 400,
        "underlyingResourceAction is still required: {:?}",
        r.body
    );
}
