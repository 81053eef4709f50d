//! Environment and code versions over HTTPS (immutability, conda re-serialization, re-PUT,
//! the workspace-wide hash lookup, fresh pending-upload containers), compared with what the real
//! service answered (`tests/fixtures/azure/`).

mod common;

use common::{Harness, assert_same_keys, fast, fixture};
use serde_json::{Value, json};

fn environment(conda: &str) -> Value {
    json!({"properties": {"image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04", "condaFile": conda, "description": "train env"}})
}

#[tokio::test]
async fn environment_versions_are_immutable() {
    let h = Harness::start(fast()).await;
    let url = h.ws_url("/environments/train-env/versions/abc123");
    let first = h.call("PUT", &url, Some(environment("name: a\n"))).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(first.body["properties"]["provisioningState"], "Succeeded");
    let changed = h.call("PUT", &url, Some(environment("name: b\n"))).await;
    assert_eq!(changed.status, 409);
    assert_eq!(changed.body["error"]["code"], "UserError");
    let got = h.call("GET", &url, None).await;
    assert_eq!(
        got.body["properties"]["condaFile"],
        "{\n  \"name\": \"a\"\n}"
    );
    let mut archived = environment("name: a\n");
    archived["properties"]["isArchived"] = json!(true);
    assert_eq!(
        h.call("PUT", &url, Some(archived)).await.status,
        201,
        "isArchived is updatable"
    );
    assert_eq!(
        h.call("GET", &url, None).await.body["properties"]["isArchived"],
        true
    );
    let missing = h
        .call(
            "GET",
            &h.ws_url("/environments/train-env/versions/nope"),
            None,
        )
        .await;
    assert_eq!(missing.status, 404);
}

/// environment/…create_conda.json #0: 201, the YAML answered as two-space JSON, a `Build-ID`,
/// the server's `azureml.labels`.
#[tokio::test]
async fn environment_creation_answers_as_recorded() {
    let recorded = fixture("environment_create_conda.json");
    let h = Harness::start(fast()).await;
    let created = h
        .call(
            "PUT",
            &h.ws_url("/environments/env-test/versions/1"),
            Some(recorded["requestBody"].clone()),
        )
        .await;
    assert_eq!(created.status, recorded["status"]);
    let real = &recorded["responseBody"];
    assert_eq!(
        created.body["properties"]["condaFile"],
        real["properties"]["condaFile"]
    );
    assert_eq!(
        created.body["properties"]["properties"],
        real["properties"]["properties"]
    );
    for field in [
        "environmentType",
        "stage",
        "osType",
        "autoRebuild",
        "provisioningState",
    ] {
        assert_eq!(
            created.body["properties"][field], real["properties"][field],
            "{field}"
        );
    }
    assert_same_keys(real, &created.body, "/properties");
    let build = created.header("build-id").unwrap();
    let recorded_build = recorded["responseHeaders"]["Build-ID"].as_str().unwrap();
    assert_eq!(
        build.len(),
        recorded_build.len(),
        "{build} vs {recorded_build}"
    );
    assert!(build.starts_with("imgbldrun_"), "{build}");
    assert!(
        created
            .header("location")
            .unwrap()
            .ends_with("/environments/env-test/versions/1?api-version=2026-07-01")
    );
}

/// job/…ray_command_job.json #0: the same body again answers 201 and keeps `createdAt`; an
/// anonymous image-only environment has `condaFile: ""`, an empty label and stage `Logged`.
#[tokio::test]
async fn environment_reput_answers_201_with_the_original_creation_time() {
    let recorded = fixture("environment_reput_anonymous.json");
    let h = Harness::start(fast()).await;
    let url = h.ws_url(
        "/environments/CliV2AnonymousEnvironment/versions/6bacc0d892cc968bcd98bcbbea577d56",
    );
    let body = recorded["requestBody"].clone();
    let first = h.call("PUT", &url, Some(body.clone())).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let again = h.call("PUT", &url, Some(body)).await;
    assert_eq!(again.status, recorded["status"]);
    assert_eq!(
        again.body["systemData"]["createdAt"],
        first.body["systemData"]["createdAt"]
    );
    assert!(again.header("build-id").is_none(), "#0 carries no Build-ID");
    let real = &recorded["responseBody"];
    for field in ["condaFile", "stage", "isAnonymous", "properties"] {
        assert_eq!(
            again.body["properties"][field], real["properties"][field],
            "{field}"
        );
    }
    assert_same_keys(real, &again.body, "/properties");
    assert_same_keys(real, &again.body, "");
}

fn code(hash: &str) -> Value {
    json!({"properties": {"codeUri": "https://acct.blob.core.windows.net/c/LocalUpload/x", "properties": {"hash_sha256": hash, "hash_version": "202208"}}})
}

#[tokio::test]
async fn code_versions_are_immutable_and_found_by_hash() {
    let h = Harness::start(fast()).await;
    for (version, hash) in [("1", "aaa"), ("2", "bbb")] {
        let url = h.ws_url(&format!("/codes/src/versions/{version}"));
        assert_eq!(h.call("PUT", &url, Some(code(hash))).await.status, 201);
    }
    let again = h
        .call("PUT", &h.ws_url("/codes/src/versions/2"), Some(code("bbb")))
        .await;
    assert_eq!(
        again.status, 200,
        "not recorded for code: a same-body re-PUT stays 200"
    );
    let changed = h
        .call("PUT", &h.ws_url("/codes/src/versions/2"), Some(code("ccc")))
        .await;
    assert_eq!(changed.status, 409);
    let found = h
        .call(
            "GET",
            &h.ws_url("/codes/src/versions?hash=bbb&hashVersion=202208"),
            None,
        )
        .await;
    let names: Vec<&str> = found.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["2"]);
    let none = h
        .call(
            "GET",
            &h.ws_url("/codes/src/versions?hash=bbb&hashVersion=other"),
            None,
        )
        .await;
    assert!(none.body["value"].as_array().unwrap().is_empty());
    let all = h.call("GET", &h.ws_url("/codes/src/versions"), None).await;
    assert_eq!(all.body["value"].as_array().unwrap().len(), 2);
}

/// code/…2026-03-27.json #0: a lookup by hash under one asset name finds the version of another.
#[tokio::test]
async fn the_hash_lookup_covers_every_code_asset_of_the_workspace() {
    let recorded = fixture("code_hash_lookup_other_asset.json");
    let real = &recorded["responseBody"]["value"][0];
    let hash = real["properties"]["properties"]["hash_sha256"]
        .as_str()
        .unwrap();
    let h = Harness::start(fast()).await;
    let body = json!({"properties": {"codeUri": real["properties"]["codeUri"], "properties": real["properties"]["properties"]}});
    let created = h
        .call(
            "PUT",
            &h.ws_url("/codes/test_679501396464/versions/2"),
            Some(body),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let found = h
        .call(
            "GET",
            &h.ws_url(&format!(
                "/codes/test_486492584222/versions?hash={hash}&hashVersion=202208"
            )),
            None,
        )
        .await;
    assert_eq!(found.status, recorded["status"]);
    let value = found.body["value"].as_array().unwrap();
    assert_eq!(value.len(), 1, "{:?}", found.body);
    assert!(
        value[0]["id"]
            .as_str()
            .unwrap()
            .ends_with("/codes/test_679501396464/versions/2")
    );
    assert_same_keys(real, &value[0], "");
    assert_same_keys(real, &value[0], "/properties");
    let elsewhere = h
        .call(
            "GET",
            &format!(
                "{}{}/codes/x/versions?hash={hash}&hashVersion=202208&api-version=2026-07-01",
                h.fake.arm_endpoint(),
                common::WS.replace("ws-test", "ws-other")
            ),
            None,
        )
        .await;
    assert!(
        elsewhere.body["value"].as_array().unwrap().is_empty(),
        "workspace-wide, not global"
    );
}

/// code/…2023-10-31.json #1: every call hands out a new `<workspaceId>-<random>` container with
/// an `sp=rcwl` SAS; `blobUri` carries `:443`.
#[tokio::test]
async fn pending_upload_hands_out_a_fresh_container_per_call() {
    let recorded = fixture("code_pending_upload.json");
    let h = Harness::start(fast()).await;
    let guid = h.call("GET", &h.ws_url(""), None).await.body["properties"]["workspaceId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut containers = Vec::new();
    for version in ["2", "2", "3"] {
        let upload = h
            .call(
                "POST",
                &h.ws_url(&format!("/codes/src/versions/{version}/startPendingUpload")),
                Some(recorded["requestBody"].clone()),
            )
            .await;
        assert_eq!(upload.status, recorded["status"], "{:?}", upload.body);
        let real = &recorded["responseBody"];
        assert_same_keys(real, &upload.body, "");
        assert_same_keys(real, &upload.body, "/blobReferenceForConsumption");
        assert_same_keys(
            real,
            &upload.body,
            "/blobReferenceForConsumption/credential",
        );
        assert_eq!(upload.body["pendingUploadType"], real["pendingUploadType"]);
        let blob = &upload.body["blobReferenceForConsumption"];
        let blob_uri = blob["blobUri"].as_str().unwrap();
        assert!(
            blob_uri.contains(".blob.core.windows.net:443/"),
            "{blob_uri}"
        );
        let container = blob_uri.rsplit('/').next().unwrap().to_string();
        let suffix = container
            .strip_prefix(&format!("{guid}-"))
            .unwrap_or_else(|| panic!("{container}"));
        assert_eq!(container.len(), 63);
        assert!(
            suffix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{suffix}"
        );
        let sas = blob["credential"]["sasUri"].as_str().unwrap();
        assert!(sas.contains("sr=c") && sas.contains("sp=rcwl"), "{sas}");
        containers.push(container);
    }
    containers.sort();
    containers.dedup();
    assert_eq!(
        containers.len(),
        3,
        "a new container per call, even for the same version"
    );
}
