//! Environment/code versions (immutability, hash lookup, pending upload) and jobs
//! (lifecycle, outcomes, list filters, cancel) over HTTPS.

mod common;

use common::{Harness, fast, observable};
use fake_azureml::JobOutcome;
use serde_json::{Value, json};

fn environment(conda: &str) -> Value {
    json!({"properties": {"image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04", "condaFile": conda, "description": "train env"}})
}

fn job(tags: Value) -> Value {
    json!({"properties": {
        "jobType": "Command",
        "command": "python train.py",
        "environmentId": "azureml:/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/environments/env/versions/1",
        "computeId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/computes/cpu",
        "experimentName": "exp-a",
        "tags": tags,
        "limits": {"jobLimitsType": "Command", "timeout": "PT1H"}
    }})
}

#[tokio::test]
async fn environment_versions_are_immutable() {
    let h = Harness::start(fast()).await;
    let url = h.ws_url("/environments/train-env/versions/abc123");
    let first = h.call("PUT", &url, Some(environment("name: a\n"))).await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert_eq!(first.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        h.call("PUT", &url, Some(environment("name: a\n")))
            .await
            .status,
        200,
        "same body is idempotent"
    );
    let changed = h.call("PUT", &url, Some(environment("name: b\n"))).await;
    assert_eq!(changed.status, 409);
    assert_eq!(changed.body["error"]["code"], "Conflict");
    let got = h.call("GET", &url, None).await;
    assert_eq!(got.body["properties"]["condaFile"], "name: a\n");
    let mut archived = environment("name: a\n");
    archived["properties"]["isArchived"] = json!(true);
    assert_eq!(
        h.call("PUT", &url, Some(archived)).await.status,
        200,
        "isArchived is updatable"
    );
    assert_eq!(
        h.call("GET", &url, None).await.body["properties"]["isArchived"],
        true
    );
    assert_eq!(
        h.call(
            "GET",
            &h.ws_url("/environments/train-env/versions/nope"),
            None
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn code_versions_are_found_by_hash_and_get_an_upload_target() {
    let h = Harness::start(fast()).await;
    let code = |hash: &str| json!({"properties": {"codeUri": "https://acct.blob.core.windows.net/c/LocalUpload/x", "properties": {"hash_sha256": hash, "hash_version": "202208"}}});
    assert_eq!(
        h.call("PUT", &h.ws_url("/codes/src/versions/1"), Some(code("aaa")))
            .await
            .status,
        201
    );
    assert_eq!(
        h.call("PUT", &h.ws_url("/codes/src/versions/2"), Some(code("bbb")))
            .await
            .status,
        201
    );
    assert_eq!(
        h.call("PUT", &h.ws_url("/codes/src/versions/2"), Some(code("ccc")))
            .await
            .status,
        409
    );
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

    let upload = h
        .call(
            "POST",
            &h.ws_url("/codes/src/versions/3/startPendingUpload"),
            Some(json!({"pendingUploadType": "TemporaryBlobReference"})),
        )
        .await;
    assert_eq!(upload.status, 200, "{:?}", upload.body);
    let blob = &upload.body["blobReferenceForConsumption"];
    assert_eq!(blob["credential"]["credentialType"], "SAS");
    let sas = blob["credential"]["sasUri"].as_str().unwrap();
    assert!(
        sas.starts_with(blob["blobUri"].as_str().unwrap()) && sas.contains("sig="),
        "{sas}"
    );
    assert!(
        blob["storageAccountArmId"]
            .as_str()
            .unwrap()
            .contains("/providers/Microsoft.Storage/storageAccounts/")
    );
    assert_eq!(upload.body["pendingUploadType"], "TemporaryBlobReference");
    assert!(
        upload.body["pendingUploadId"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
}

#[tokio::test]
async fn job_walks_its_phases_and_reports_times() {
    let h = Harness::start(observable()).await;
    let url = h.ws_url("/jobs/run-ok");
    let created = h
        .call(
            "PUT",
            &url,
            Some(job(json!({"amlops.io/experiment": "exp-a"}))),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["properties"]["status"], "NotStarted");
    assert!(
        created.body["properties"]["services"]["Studio"]["endpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://ml.azure.com/runs/run-ok")
    );
    let mut seen = vec![];
    let done = loop {
        let body = h.call("GET", &url, None).await.body;
        let status = body["properties"]["status"].as_str().unwrap().to_string();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "Completed" {
            break body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let order = [
        "NotStarted",
        "Queued",
        "Preparing",
        "Running",
        "Finalizing",
        "Completed",
    ];
    let positions: Vec<usize> = seen
        .iter()
        .map(|s| order.iter().position(|o| o == s).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "statuses go forward only: {seen:?}"
    );
    assert!(
        seen.len() >= 4,
        "polling every 10 ms sees most of the 400 ms phases: {seen:?}"
    );
    let props = &done["properties"]["properties"];
    let start: jiff::Timestamp = props["StartTimeUtc"].as_str().unwrap().parse().unwrap();
    let end: jiff::Timestamp = props["EndTimeUtc"].as_str().unwrap().parse().unwrap();
    assert!(start < end);
    assert_eq!(
        h.call(
            "PUT",
            &url,
            Some(job(json!({"amlops.io/experiment": "exp-a"})))
        )
        .await
        .status,
        200,
        "re-submitting the same job is idempotent"
    );
    let retagged = h.call("PUT", &url, Some(job(json!({"other": "x"})))).await;
    assert_eq!(retagged.status, 200, "tags are updatable");
    assert_eq!(retagged.body["properties"]["tags"], json!({"other": "x"}));
    let mut changed = job(json!({"other": "x"}));
    changed["properties"]["command"] = json!("python other.py");
    assert_eq!(h.call("PUT", &url, Some(changed)).await.status, 409);
}

#[tokio::test]
async fn job_outcome_from_tag_and_list_filters() {
    let h = Harness::start(fast()).await;
    h.call(
        "PUT",
        &h.ws_url("/jobs/run-fail"),
        Some(job(json!({"fake.outcome": "Failed", "exp": "b"}))),
    )
    .await;
    h.call(
        "PUT",
        &h.ws_url("/jobs/run-other"),
        Some(job(json!({"exp": "c"}))),
    )
    .await;
    let failed = h
        .wait_for(&h.ws_url("/jobs/run-fail"), "/properties/status", "Failed")
        .await;
    assert_eq!(failed["properties"]["properties"]["ErrorCode"], "UserError");
    let tagged = h.call("GET", &h.ws_url("/jobs?tag=exp%3Db"), None).await;
    let names: Vec<&str> = tagged.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["run-fail"]);
    let all = h.call("GET", &h.ws_url("/jobs?tag=exp"), None).await;
    assert_eq!(all.body["value"].as_array().unwrap().len(), 2);
    let elsewhere = h
        .call(
            "GET",
            &format!(
                "{}{}/jobs?api-version=2026-07-01",
                h.fake.arm_endpoint(),
                common::WS.replace("ws-test", "ws-other")
            ),
            None,
        )
        .await;
    assert!(
        elsewhere.body["value"].as_array().unwrap().is_empty(),
        "jobs are per workspace"
    );
}

#[tokio::test]
async fn cancel_is_a_long_running_operation() {
    let h = Harness::start(observable()).await;
    let url = h.ws_url("/jobs/run-long");
    h.call("PUT", &url, Some(job(json!({})))).await;
    assert_eq!(h.fake.set_job_outcome("run-long", JobOutcome::Running), 1);
    h.wait_for(&url, "/properties/status", "Running").await;
    let cancel = h
        .call("POST", &h.ws_url("/jobs/run-long/cancel"), None)
        .await;
    assert_eq!(cancel.status, 202);
    assert!(
        cancel.header("azure-asyncoperation").is_none(),
        "the spec gives cancel only Location"
    );
    assert_eq!(
        h.call("GET", &url, None).await.body["properties"]["status"],
        "CancelRequested"
    );
    let (done, accepted) = h.poll_location(&cancel.header("location").unwrap()).await;
    assert_eq!(done.status, 204);
    assert!(accepted >= 1);
    let body = h.call("GET", &url, None).await.body;
    assert_eq!(body["properties"]["status"], "Canceled");
    assert!(body["properties"]["properties"]["EndTimeUtc"].is_string());
    // Cancelling a finished job is a no-op.
    assert_eq!(
        h.call("POST", &h.ws_url("/jobs/run-long/cancel"), None)
            .await
            .status,
        200
    );
    h.call("PUT", &h.ws_url("/jobs/run-done"), Some(job(json!({}))))
        .await;
    h.wait_for(
        &h.ws_url("/jobs/run-done"),
        "/properties/status",
        "Completed",
    )
    .await;
    assert_eq!(
        h.call("POST", &h.ws_url("/jobs/run-done/cancel"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        h.call("POST", &h.ws_url("/jobs/nope/cancel"), None)
            .await
            .status,
        404
    );
}
