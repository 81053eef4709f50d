//! Discovery and run history over HTTPS, compared with what the real service answered
//! (history/…child_run_download.json #3, #24, #25 in `tests/fixtures/azure/`), and run log
//! files served from Azurite.

mod common;

use common::{
    Harness, WS, assert_same_keys, compute_id, create_compute, fast, fixture, keys, observable,
};
use fake_azureml::azurite::Azurite;
use fake_azureml::{LOG_FILES, Options};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

fn job(outcome: &str) -> Value {
    json!({"properties": {
        "jobType": "Command",
        "command": "python train.py",
        "environmentId": "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu:33",
        "computeId": compute_id("cpu"),
        "experimentName": "exp-a",
        "displayName": "train",
        "tags": {"fake.outcome": outcome},
        "properties": {"azureml.git.commit": "abc"},
    }})
}

fn run_url(h: &Harness, run: &str, tail: &str) -> String {
    format!(
        "{}/history/v1.0{WS}/runs/{run}{tail}",
        h.fake.run_history_base()
    )
}

/// Submits job `name` with `outcome` on a fresh compute.
async fn submit(h: &Harness, name: &str, outcome: &str) {
    create_compute(h, "cpu").await;
    let put = h
        .call(
            "PUT",
            &h.ws_url(&format!("/jobs/{name}")),
            Some(job(outcome)),
        )
        .await;
    assert_eq!(put.status, 201, "{:?}", put.body);
}

/// GETs the run until its status is `want`.
async fn run_when(h: &Harness, run: &str, want: &str) -> Value {
    h.wait_for(&run_url(h, run, ""), "/status", want).await
}

#[tokio::test]
async fn discovery_answers_as_recorded_without_a_token() {
    let workspace = fixture("workspace_get.json");
    let discovery = fixture("discovery.json");
    let h = Harness::start(fast()).await;
    let ws = h.call("GET", &h.ws_url(""), None).await.body;
    for key in [
        "discoveryUrl",
        "mlFlowTrackingUri",
        "workspaceId",
        "storageAccount",
    ] {
        assert!(
            keys(&workspace["responseBody"]["properties"]).contains(key),
            "{key} is recorded"
        );
        assert!(ws["properties"][key].is_string(), "{key}: {ws}");
    }
    assert_eq!(ws["properties"]["discoveryUrl"], h.fake.discovery_url());
    let anonymous = h.http.get(h.fake.discovery_url()).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), discovery["status"]);
    let body: Value = anonymous.json().await.unwrap();
    assert_same_keys(&discovery["responseBody"], &body, "");
    assert_eq!(body["api"], h.fake.run_history_base());
    assert_eq!(body["history"], h.fake.run_history_base());
    assert_eq!(h.fake.count("GET", "/discovery"), 1);
}

/// #25: a failed run has `status`, start/end times, a `duration` of `end - start`, the error
/// envelope and warnings, under exactly the recorded keys.
#[tokio::test]
async fn a_failed_run_answers_in_the_recorded_shape() {
    let recorded = fixture("run_history_children.json");
    let real = &recorded["responseBody"]["value"][0];
    let h = Harness::start(fast()).await;
    submit(&h, "run-fail", "Failed").await;
    let run = run_when(&h, "run-fail", "Failed").await;
    for pointer in [
        "",
        "/error",
        "/error/error",
        "/createdBy",
        "/lastModifiedBy",
        "/warnings/0",
        "/runTypeV2",
        "/computeRequest",
        "/compute",
    ] {
        assert_same_keys(real, &run, pointer);
    }
    for same in [
        "/error/time",
        "/error/componentName",
        "/error/error/code",
        "/error/correlation",
    ] {
        assert_eq!(run.pointer(same), real.pointer(same), "{same}");
    }
    let message = run["error"]["error"]["message"].as_str().unwrap();
    let recorded_message = real["error"]["error"]["message"].as_str().unwrap();
    for part in [
        "\nError Code: ScriptExecution.StreamAccess.",
        "\nNative Error: ",
        "\nError Message: ",
    ] {
        assert!(
            message.contains(part) && recorded_message.contains(part),
            "{part:?} in {message:?}"
        );
    }
    assert!(message.contains("| session_id="), "{message}");
    let start: jiff::Timestamp = run["startTimeUtc"].as_str().unwrap().parse().unwrap();
    let end: jiff::Timestamp = run["endTimeUtc"].as_str().unwrap().parse().unwrap();
    assert!(start < end);
    let span = end.duration_since(start);
    let duration = run["duration"].as_str().unwrap();
    let expected_seconds = span.as_secs_f64();
    let (hms, fraction) = duration.split_once('.').unwrap_or((duration, "0"));
    let parts: Vec<f64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    let seconds = parts[0] * 3600.0
        + parts[1] * 60.0
        + parts[2]
        + format!("0.{fraction}").parse::<f64>().unwrap();
    assert!(
        (seconds - expected_seconds).abs() < 1e-6,
        "{duration} vs {span:?}"
    );
    assert_eq!(run["computeDuration"], run["duration"]);
    assert_eq!(run["runId"], "run-fail");
    assert_eq!(run["dataContainerId"], "dcid.run-fail");
    assert_eq!(run["target"], "cpu");
    assert_eq!(run["displayName"], "train");
    assert_eq!(run["properties"]["azureml.git.commit"], "abc");
    assert_eq!(run["properties"]["_azureml.ClusterName"], "cpu");
    assert_eq!(run["tags"]["fake.outcome"], "Failed");
}

/// Times exist once the run started / ended, as the lifecycle says; a run that did not fail has
/// no error.
#[tokio::test]
async fn run_times_follow_the_lifecycle() {
    let h = Harness::start(observable()).await;
    submit(&h, "run-ok", "Completed").await;
    let starting = h.call("GET", &run_url(&h, "run-ok", ""), None).await.body;
    assert_eq!(starting["status"], "Starting");
    for field in ["startTimeUtc", "endTimeUtc", "duration", "error"] {
        assert_eq!(starting[field], json!(null), "{field} while Starting");
    }
    let running = run_when(&h, "run-ok", "Running").await;
    assert!(running["startTimeUtc"].is_string());
    assert_eq!(running["endTimeUtc"], json!(null));
    let done = run_when(&h, "run-ok", "Completed").await;
    assert_eq!(
        done["startTimeUtc"], running["startTimeUtc"],
        "the start time does not move"
    );
    assert!(done["endTimeUtc"].is_string() && done["duration"].is_string());
    assert_eq!(done["error"], json!(null));
    assert_eq!(done["warnings"], json!(null));
    assert!(done["revision"].as_u64() > running["revision"].as_u64());
}

#[tokio::test]
async fn a_run_cancelled_before_it_started_has_an_end_but_no_start() {
    let h = Harness::start(observable()).await;
    submit(&h, "run-early", "Completed").await;
    let cancel = h
        .call("POST", &h.ws_url("/jobs/run-early/cancel"), None)
        .await;
    assert_eq!(cancel.status, 202);
    let run = run_when(&h, "run-early", "Canceled").await;
    assert_eq!(run["startTimeUtc"], json!(null));
    assert!(run["endTimeUtc"].is_string());
    assert_eq!(run["duration"], json!(null));
}

#[tokio::test]
async fn children_and_details_of_a_command_run() {
    let recorded = fixture("run_history_children.json");
    let h = Harness::start(fast()).await;
    submit(&h, "run-x", "Completed").await;
    let children = h
        .call("GET", &run_url(&h, "run-x", "/children"), None)
        .await;
    assert_eq!(children.status, recorded["status"]);
    assert_same_keys(&recorded["responseBody"], &children.body, "");
    assert_eq!(
        children.body,
        json!({"value": []}),
        "a command job has no children"
    );

    let details = h.call("GET", &run_url(&h, "run-x", "/details"), None).await;
    assert_eq!(details.status, 200);
    // azure-ai-ml `_restclient/runhistory/models/_models_py3.py`, class `RunDetails`.
    let model: BTreeSet<String> = [
        "runId",
        "runUuid",
        "parentRunUuid",
        "rootRunUuid",
        "target",
        "status",
        "parentRunId",
        "createdTimeUtc",
        "startTimeUtc",
        "endTimeUtc",
        "error",
        "warnings",
        "tags",
        "properties",
        "parameters",
        "services",
        "inputDatasets",
        "outputDatasets",
        "runDefinition",
        "logFiles",
        "jobCost",
        "revision",
        "runTypeV2",
        "settings",
        "computeRequest",
        "compute",
        "createdBy",
        "computeDuration",
        "effectiveStartTimeUtc",
        "runNumber",
        "rootRunId",
        "userId",
        "statusRevision",
        "hasVirtualParent",
        "currentComputeTime",
        "lastStartTimeUtc",
        "lastModifiedBy",
        "lastModifiedUtc",
        "duration",
        "inputs",
        "outputs",
    ]
    .map(String::from)
    .into();
    assert_eq!(keys(&details.body), model);
    assert_eq!(
        details.body["logFiles"],
        json!({}),
        "no storage backend, no log files"
    );
    assert_eq!(details.body["runId"], "run-x");
}

/// The run-history error envelope (the `ErrorResponse` of the generated client; the same keys as
/// errors/…git_crud.json #2) for an unknown run; 401 without a token.
#[tokio::test]
async fn unknown_runs_and_missing_tokens_are_refused() {
    let envelope = fixture("connection_not_found.json");
    let h = Harness::start(fast()).await;
    let missing = h.call("GET", &run_url(&h, "nope", ""), None).await;
    assert_eq!(missing.status, 404);
    assert_same_keys(&envelope["responseBody"], &missing.body, "");
    assert_same_keys(&envelope["responseBody"], &missing.body, "/error");
    assert_eq!(missing.body["error"]["innerError"]["code"], "NotFoundError");
    assert_eq!(
        h.call("GET", &run_url(&h, "nope", "/details"), None)
            .await
            .status,
        404
    );
    let anonymous = h.http.get(run_url(&h, "nope", "")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let counted = h.fake.counters();
    assert!(
        counted.contains_key("GET /history/v1.0/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.MachineLearningServices/workspaces/{workspaceName}/runs/{runId}/details"),
        "{counted:?}"
    );
}

/// Reads a blob through its SAS URL.
async fn read_blob(http: &reqwest::Client, url: &str) -> String {
    let resp = http
        .get(url)
        .header("x-ms-version", "2021-12-02")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "reading a log blob");
    resp.text().await.unwrap()
}

/// The log files of `details` are blobs in Azurite behind read-only SAS URLs; every read
/// extends what the previous read saw and the final content is the outcome's.
#[tokio::test]
async fn log_files_are_blobs_that_grow_and_keep_their_prefix() {
    let azurite = Azurite::start();
    let h = Harness::start(Options {
        storage: Some(azurite.storage_backend()),
        ..observable()
    })
    .await;
    submit(&h, "run-logs", "Failed").await;
    let blob_client = reqwest::Client::new();
    let mut previous = String::new();
    let mut reads = 0;
    let final_log = loop {
        let details = h
            .call("GET", &run_url(&h, "run-logs", "/details"), None)
            .await
            .body;
        let files = details["logFiles"]
            .as_object()
            .unwrap_or_else(|| panic!("{details}"));
        let names: BTreeSet<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(names, LOG_FILES.into_iter().collect());
        let url = files["user_logs/std_log.txt"].as_str().unwrap();
        assert!(
            url.contains("/azureml/ExperimentRun/dcid.run-logs/user_logs/std_log.txt?")
                && url.contains("sp=r&"),
            "{url}"
        );
        let text = read_blob(&blob_client, url).await;
        assert!(
            text.starts_with(&previous),
            "the log rewrote its past:\n{previous:?}\n{text:?}"
        );
        reads += usize::from(text.len() > previous.len());
        previous = text;
        if details["status"] == "Failed" {
            let denied = blob_client
                .put(url)
                .header("x-ms-blob-type", "BlockBlob")
                .body("x")
                .send()
                .await
                .unwrap();
            assert_eq!(denied.status(), 403, "the log SAS is read-only");
            break previous.clone();
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    };
    assert!(reads >= 2, "the log grew over several reads");
    assert!(final_log.starts_with("Training started"), "{final_log}");
    assert!(final_log.contains("epoch 3/3 loss="), "{final_log}");
    assert!(
        final_log.contains("Traceback (most recent call last):"),
        "{final_log}"
    );
    assert!(
        final_log.ends_with("Error: the script exited with code 1\n"),
        "{final_log}"
    );
    assert_eq!(
        h.fake.run_log("run-logs", LOG_FILES[0]).as_deref(),
        Some(final_log.as_str())
    );
    let run = h.call("GET", &run_url(&h, "run-logs", ""), None).await.body;
    assert_eq!(run["status"], "Failed");
}
