//! Workspace connections: credentials are write-only, and a missing connection answers in the
//! account-rp error envelope (errors/…git_crud.json #2 in `tests/fixtures/azure/`).

mod common;

use common::{Harness, assert_same_keys, fast, fixture};
use serde_json::json;

#[tokio::test]
async fn connections_hide_credentials_and_answer_404_as_recorded() {
    let recorded = fixture("connection_not_found.json");
    let real = &recorded["responseBody"];
    let h = Harness::start(fast()).await;
    // The recorded name is longer than the 2026-07-01 spec's connection-name pattern allows.
    let missing = h
        .call("GET", &h.ws_url("/connections/e2etest_conn"), None)
        .await;
    assert_eq!(missing.status, recorded["status"]);
    for pointer in ["", "/error", "/error/innerError", "/correlation"] {
        assert_same_keys(real, &missing.body, pointer);
    }
    for same in [
        "/error/code",
        "/error/innerError",
        "/componentName",
        "/statusCode",
        "/error/details",
    ] {
        assert_eq!(missing.body.pointer(same), real.pointer(same), "{same}");
    }
    assert_eq!(
        missing.body["error"]["message"],
        real["error"]["message"]
            .as_str()
            .unwrap()
            .replace("e2etest_wps_conn_test_411923558605", "e2etest_conn")
    );

    let body = json!({"properties": {"category": "ContainerRegistry", "target": "registry.example.com", "authType": "UsernamePassword",
        "credentials": {"username": "me", "password": "registry-secret"}}});
    let put = h
        .call("PUT", &h.ws_url("/connections/registry"), Some(body))
        .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    let got = h
        .call("GET", &h.ws_url("/connections/registry"), None)
        .await;
    assert_eq!(got.body["properties"]["target"], "registry.example.com");
    assert!(!got.body.to_string().contains("registry-secret"));
    assert_eq!(
        h.fake.connections("registry")[0]["properties"]["credentials"]["password"],
        "registry-secret"
    );
}
