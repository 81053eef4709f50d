//! The fake's own answers are valid against the spec's response schemas, so a client that
//! deserializes them is tested against the real shapes.

mod common;

use common::{Harness, fast};
use fake_azureml::spec::Spec;
use serde_json::{Value, json};

fn violations(definition: &str, body: &Value) -> Vec<String> {
    let spec = Spec::get().unwrap();
    spec.validate(spec.definition(definition).unwrap(), body)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn assert_valid(definition: &str, body: &Value) {
    let found = violations(definition, body);
    assert!(found.is_empty(), "{definition}: {found:?}\n{body}");
}

#[tokio::test]
async fn responses_match_the_spec_schemas() {
    let h = Harness::start(fast()).await;
    assert_valid("Workspace", &h.call("GET", &h.ws_url(""), None).await.body);
    // The recording outranks the spec: job/…dependency_label_resolution.json #2 answers
    // AccountKey credentials without the `secrets` the spec requires (the service never returns
    // them); that is the only difference allowed.
    assert_eq!(
        violations(
            "Datastore",
            &h.call("GET", &h.ws_url("/datastores/workspaceblobstore"), None)
                .await
                .body
        ),
        ["$.properties.credentials.secrets: required property is missing"]
    );
    assert_valid(
        "DatastoreSecrets",
        &h.call(
            "POST",
            &h.ws_url("/datastores/workspaceblobstore/listSecrets"),
            Some(json!({"expirableSecret": true, "expireAfterHours": 1})),
        )
        .await
        .body,
    );

    let compute = json!({"properties": {"computeType": "AmlCompute", "properties": {"scaleSettings": {"minNodeCount": 2, "maxNodeCount": 3}}}});
    let created = h
        .call("PUT", &h.ws_url("/computes/cluster"), Some(compute))
        .await;
    // compute/…create_and_delete.json #0 answers `allocationState: null` while Creating, which
    // the spec does not mark nullable: the recording wins, and that is the only difference.
    assert_eq!(
        violations("ComputeResource", &created.body),
        ["$.properties.properties.allocationState: null is not allowed here"]
    );
    let (status, _) = h
        .poll_async_operation(&created.header("azure-asyncoperation").unwrap())
        .await;
    assert_eq!(status["status"], "Succeeded");
    assert_valid(
        "ComputeResource",
        &h.call("GET", &h.ws_url("/computes/cluster"), None)
            .await
            .body,
    );
    assert_valid(
        "PaginatedComputeResourcesList",
        &h.call("GET", &h.ws_url("/computes"), None).await.body,
    );
    assert_valid(
        "AmlComputeNodesInformation",
        &h.call("POST", &h.ws_url("/computes/cluster/listNodes"), None)
            .await
            .body,
    );

    let env = json!({"properties": {"image": "python:3.11", "condaFile": "name: x\n"}});
    assert_valid(
        "EnvironmentVersion",
        &h.call("PUT", &h.ws_url("/environments/e/versions/1"), Some(env))
            .await
            .body,
    );
    assert_valid(
        "EnvironmentVersionResourceArmPaginatedResult",
        &h.call("GET", &h.ws_url("/environments/e/versions"), None)
            .await
            .body,
    );
    let code = json!({"properties": {"codeUri": "https://a.blob.core.windows.net/c/p"}});
    assert_valid(
        "CodeVersion",
        &h.call("PUT", &h.ws_url("/codes/c/versions/1"), Some(code))
            .await
            .body,
    );
    assert_valid(
        "CodeVersionResourceArmPaginatedResult",
        &h.call("GET", &h.ws_url("/codes/c/versions"), None)
            .await
            .body,
    );
    let upload = h
        .call(
            "POST",
            &h.ws_url("/codes/c/versions/2/startPendingUpload"),
            Some(json!({})),
        )
        .await;
    assert_valid("PendingUploadResponseDto", &upload.body);

    let job = json!({"properties": {"jobType": "Command", "command": "echo hi", "environmentId": "azureml:e:1", "tags": {"fake.outcome": "Failed"}}});
    assert_valid(
        "JobBase",
        &h.call("PUT", &h.ws_url("/jobs/j"), Some(job)).await.body,
    );
    let failed = h
        .wait_for(&h.ws_url("/jobs/j"), "/properties/status", "Failed")
        .await;
    assert_valid("JobBase", &failed);
    assert_valid(
        "JobBaseResourceArmPaginatedResult",
        &h.call("GET", &h.ws_url("/jobs"), None).await.body,
    );

    let not_found = h.call("GET", &h.ws_url("/jobs/none"), None).await;
    assert_eq!(not_found.status, 404);
    let spec = Spec::get().unwrap();
    let error = spec
        .resolve(0, "../../../../../../common-types/resource-management/v3/types.json#/definitions/ErrorResponse")
        .unwrap();
    assert!(spec.validate(error, &not_found.body).is_empty());
}
