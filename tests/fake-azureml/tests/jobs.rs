//! Jobs over HTTPS: the documented status order starting at `Starting`, no times or errors on
//! the ARM resource, the server-added properties, outcomes, list filters, cancel and the unknown
//! compute refusal, compared with what the real service answered (`tests/fixtures/azure/`).

mod common;

use common::{
    Harness, WS, assert_same_keys, compute_id, create_compute, fast, fixture, keys, observable,
    recorded_lro_headers,
};
use fake_azureml::JobOutcome;
use serde_json::{Value, json};

fn job(tags: Value) -> Value {
    json!({"properties": {
        "jobType": "Command",
        "command": "python train.py",
        "environmentId": "azureml:/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/environments/env/versions/1",
        "codeId": "azureml:/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/codes/c/versions/1",
        "computeId": compute_id("cpu"),
        "experimentName": "exp-a",
        "tags": tags,
        "limits": {"jobLimitsType": "Command", "timeout": "PT1H"}
    }})
}

/// Polls the job until `last`; returns the distinct statuses seen, in order.
async fn statuses_until(h: &Harness, url: &str, last: &str) -> (Vec<String>, Value) {
    let mut seen: Vec<String> = vec![];
    loop {
        let body = h.call("GET", url, None).await.body;
        let status = body["properties"]["status"].as_str().unwrap().to_string();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == last {
            return (seen, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

const INVENTED: [&str; 4] = ["StartTimeUtc", "EndTimeUtc", "ErrorCode", "ErrorMessage"];

/// job/…dependency_label_resolution.json #17: 201 `Starting` with the server-added properties;
/// then the documented order (spec `JobStatus`).
#[tokio::test]
async fn job_starts_as_recorded_and_walks_the_documented_order() {
    let recorded = fixture("job_create_starting.json");
    let real = &recorded["responseBody"];
    let h = Harness::start(observable()).await;
    create_compute(&h, "cpu").await;
    let url = h.ws_url("/jobs/run-ok");
    let created = h
        .call(
            "PUT",
            &url,
            Some(job(json!({"amlops.io/experiment": "exp-a"}))),
        )
        .await;
    assert_eq!(created.status, recorded["status"], "{:?}", created.body);
    assert_eq!(
        created.body["properties"]["status"],
        real["properties"]["status"]
    );
    let added = keys(&created.body["properties"]["properties"]);
    assert_eq!(
        added,
        keys(&real["properties"]["properties"]),
        "server-added properties"
    );
    assert_eq!(
        created.body["properties"]["properties"]["_azureml.ComputeTargetType"],
        "amlctrain"
    );
    assert_eq!(
        created.body["properties"]["properties"]["_azureml.ClusterName"],
        "cpu"
    );
    assert_same_keys(real, &created.body, "/properties/services");
    assert_same_keys(real, &created.body, "/properties/services/Studio");
    assert!(
        created.body["properties"]["services"]["Studio"]["endpoint"]
            .as_str()
            .unwrap()
            .starts_with("https://ml.azure.com/runs/run-ok?wsid=/subscriptions/")
    );
    let (seen, done) = statuses_until(&h, &url, "Completed").await;
    let order = [
        "Starting",
        "Provisioning",
        "Preparing",
        "Queued",
        "Running",
        "Finalizing",
        "Completed",
    ];
    let positions: Vec<usize> = seen
        .iter()
        .map(|s| {
            order
                .iter()
                .position(|o| o == s)
                .unwrap_or_else(|| panic!("{s} is not in {order:?}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "statuses go forward only: {seen:?}"
    );
    assert!(
        seen.len() >= 5,
        "polling every 10 ms sees most of the 400 ms phases: {seen:?}"
    );
    let props = keys(&done["properties"]["properties"]);
    assert!(
        INVENTED.iter().all(|p| !props.contains(*p)),
        "no times or errors on the ARM job: {props:?}"
    );
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

/// history/…child_run_download.json #21: a Failed ARM job carries neither times nor an error.
#[tokio::test]
async fn a_failed_job_has_no_times_or_error_on_the_arm_resource() {
    let recorded = fixture("job_failed_arm.json");
    let h = Harness::start(fast()).await;
    create_compute(&h, "cpu").await;
    h.call(
        "PUT",
        &h.ws_url("/jobs/run-fail"),
        Some(job(json!({"fake.outcome": "Failed"}))),
    )
    .await;
    let failed = h
        .wait_for(&h.ws_url("/jobs/run-fail"), "/properties/status", "Failed")
        .await;
    assert_eq!(
        failed["properties"]["status"],
        recorded["responseBody"]["properties"]["status"]
    );
    for pointer in ["/properties", "/properties/properties"] {
        let fake = keys(failed.pointer(pointer).unwrap());
        let real = keys(recorded["responseBody"].pointer(pointer).unwrap());
        for absent in INVENTED
            .iter()
            .chain(&["error", "startTimeUtc", "endTimeUtc"])
        {
            assert!(
                !real.contains(*absent) && !fake.contains(*absent),
                "{absent} at {pointer}"
            );
        }
    }
}

#[tokio::test]
async fn job_outcome_from_tag_and_list_filters() {
    let h = Harness::start(fast()).await;
    create_compute(&h, "cpu").await;
    h.call(
        "PUT",
        &h.ws_url("/jobs/run-paused"),
        Some(job(json!({"fake.outcome": "Paused", "exp": "b"}))),
    )
    .await;
    h.call(
        "PUT",
        &h.ws_url("/jobs/run-other"),
        Some(job(json!({"exp": "c"}))),
    )
    .await;
    h.wait_for(
        &h.ws_url("/jobs/run-paused"),
        "/properties/status",
        "Paused",
    )
    .await;
    let tagged = h.call("GET", &h.ws_url("/jobs?tag=exp%3Db"), None).await;
    let names: Vec<&str> = tagged.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["run-paused"]);
    let all = h.call("GET", &h.ws_url("/jobs?tag=exp"), None).await;
    assert_eq!(all.body["value"].as_array().unwrap().len(), 2);
    let elsewhere = h
        .call(
            "GET",
            &format!(
                "{}{}/jobs?api-version=2026-07-01",
                h.fake.arm_endpoint(),
                WS.replace("ws-test", "ws-other")
            ),
            None,
        )
        .await;
    assert!(
        elsewhere.body["value"].as_array().unwrap().is_empty(),
        "jobs are per workspace"
    );
}

/// job/…dependency_label_resolution.json #18–#20: 202 + `Location` (+ timeout) and body
/// `null`; the result URL answers 202 `{}` with both headers, then 200 empty.
#[tokio::test]
async fn cancel_answers_as_recorded() {
    let recorded = fixture("job_cancel.json");
    let [cancel, pending, done] = recorded.as_array().unwrap().as_slice() else {
        panic!("fixture has three exchanges");
    };
    let h = Harness::start(observable()).await;
    create_compute(&h, "cpu").await;
    let url = h.ws_url("/jobs/run-long");
    h.call("PUT", &url, Some(job(json!({})))).await;
    assert_eq!(h.fake.set_job_outcome("run-long", JobOutcome::Running), 1);
    h.wait_for(&url, "/properties/status", "Running").await;
    let cancelled = h
        .call("POST", &h.ws_url("/jobs/run-long/cancel"), None)
        .await;
    assert_eq!(cancelled.status, cancel["status"]);
    assert_eq!(cancelled.lro_headers(), recorded_lro_headers(cancel));
    assert_eq!(
        cancelled.header("x-ms-async-operation-timeout").as_deref(),
        Some("PT1H")
    );
    assert_eq!(cancelled.body, json!(null));
    let location = cancelled.header("location").unwrap();
    let guid = h.call("GET", &h.ws_url(""), None).await.body["properties"]["workspaceId"].clone();
    assert!(
        location.contains(&format!(
            "/mfeOperationResults/jc:{}:run-long?",
            guid.as_str().unwrap()
        )),
        "{location}"
    );
    assert_eq!(
        h.call("GET", &url, None).await.body["properties"]["status"],
        "CancelRequested"
    );

    let polled = h.call("GET", &location, None).await;
    assert_eq!(polled.status, pending["status"]);
    assert_eq!(polled.body, pending["responseBody"]);
    assert_eq!(polled.lro_headers(), recorded_lro_headers(pending));
    let (finished, accepted) = h.poll_location(&location).await;
    assert!(accepted >= 1);
    assert_eq!(finished.status, done["status"]);
    assert_eq!(finished.body, json!(null), "empty body");
    assert_eq!(
        h.call("GET", &url, None).await.body["properties"]["status"],
        "Canceled"
    );

    // Not recorded: cancelling a finished job is a no-op, an unknown one is a 404.
    assert_eq!(
        h.call("POST", &h.ws_url("/jobs/run-long/cancel"), None)
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

/// job/…ray_command_job.json #1: a job on a compute that does not exist is refused with 400 in
/// the MFE shape, the specific code only in `additionalInfo[type=InnerError]`.
#[tokio::test]
async fn a_job_on_an_unknown_compute_is_refused_as_recorded() {
    let recorded = fixture("job_unknown_compute.json");
    let real = &recorded["responseBody"];
    let h = Harness::start(fast()).await;
    let mut body = job(json!({}));
    body["properties"]["computeId"] = json!(compute_id("testCompute"));
    let refused = h
        .call("PUT", &h.ws_url("/jobs/run-nowhere"), Some(body))
        .await;
    assert_eq!(refused.status, recorded["status"]);
    assert_same_keys(real, &refused.body, "");
    assert_same_keys(real, &refused.body, "/error");
    assert_eq!(refused.body["error"]["code"], real["error"]["code"]);
    assert_eq!(refused.body["error"]["message"], real["error"]["message"]);
    let types = |v: &Value| -> Vec<String> {
        v["error"]["additionalInfo"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["type"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(types(&refused.body), types(real));
    let inner = |v: &Value| -> Value {
        v["error"]["additionalInfo"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "InnerError")
            .unwrap()["info"]["value"]
            .clone()
    };
    assert_eq!(inner(&refused.body), inner(real));
    assert_eq!(
        h.call("GET", &h.ws_url("/jobs/run-nowhere"), None)
            .await
            .status,
        404
    );
}
