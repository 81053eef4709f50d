//! Compute lifecycles over HTTPS: create with LRO polling, scale, delete/detach, failures,
//! attach, node errors, secrets never echoed; and the recorded lifecycle of the real service.

mod common;

use common::{Harness, assert_keys_cover, fast, fixture, observable, recorded_lro_headers};
use serde_json::json;

fn cluster(min: i64, max: i64) -> serde_json::Value {
    json!({"location": "eastus", "properties": {"computeType": "AmlCompute", "properties": {
        "vmSize": "STANDARD_DS3_V2",
        "scaleSettings": {"minNodeCount": min, "maxNodeCount": max, "nodeIdleTimeBeforeScaleDown": "PT120S"},
        "userAccountCredentials": {"adminUserName": "azureuser", "adminUserPassword": "hunter2-secret"}
    }}})
}

#[tokio::test]
async fn create_poll_scale_and_delete_an_aml_compute() {
    let h = Harness::start(observable()).await;
    let url = h.ws_url("/computes/gpu-cluster");

    let created = h.call("PUT", &url, Some(cluster(1, 4))).await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    assert_eq!(created.body["properties"]["provisioningState"], "Creating");
    let status_url = created.header("azure-asyncoperation").unwrap();
    assert!(
        status_url.starts_with(&h.fake.arm_endpoint())
            && status_url.contains("api-version=2026-07-01")
    );

    let (done, polls) = h.poll_async_operation(&status_url).await;
    assert_eq!(done["status"], "Succeeded");
    assert!(
        polls >= 2,
        "the first poll should see InProgress ({polls} polls)"
    );

    let got = h.call("GET", &url, None).await.body;
    assert_eq!(got["properties"]["provisioningState"], "Succeeded");
    let props = &got["properties"]["properties"];
    assert_eq!(props["currentNodeCount"], 1);
    assert_eq!(props["targetNodeCount"], 1);
    assert_eq!(props["nodeStateCounts"]["idleNodeCount"], 1);
    assert_eq!(props["allocationState"], "Steady");
    assert_eq!(got["properties"]["isAttachedCompute"], false);
    assert_eq!(
        props["userAccountCredentials"],
        json!({"adminUserName": "azureuser"}),
        "secrets must not be echoed"
    );
    assert!(!got.to_string().contains("hunter2-secret"));

    let nodes = h
        .call("POST", &h.ws_url("/computes/gpu-cluster/listNodes"), None)
        .await;
    assert_eq!(nodes.body["nodes"].as_array().unwrap().len(), 1);

    let scale = json!({"properties": {"properties": {"scaleSettings": {"minNodeCount": 2, "maxNodeCount": 4}}}});
    let patched = h.call("PATCH", &url, Some(scale)).await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.body["properties"]["provisioningState"], "Updating");
    let (done, _) = h
        .poll_async_operation(&patched.header("azure-asyncoperation").unwrap())
        .await;
    assert_eq!(done["status"], "Succeeded");
    assert_eq!(
        h.call("GET", &url, None).await.body["properties"]["properties"]["currentNodeCount"],
        2
    );

    let listed = h.call("GET", &h.ws_url("/computes"), None).await;
    assert_eq!(listed.body["value"].as_array().unwrap().len(), 1);

    let deleted = h
        .call(
            "DELETE",
            &h.ws_url("/computes/gpu-cluster?underlyingResourceAction=Delete"),
            None,
        )
        .await;
    assert_eq!(deleted.status, 202);
    assert_eq!(
        h.call("GET", &url, None).await.body["properties"]["provisioningState"],
        "Deleting"
    );
    let (gone, _) = h
        .poll_async_operation(&deleted.header("azure-asyncoperation").unwrap())
        .await;
    assert_eq!(gone["status"], "Succeeded");
    let missing = h.call("GET", &url, None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "UserError");
    // Deleting what is gone is a no-op.
    assert_eq!(
        h.call(
            "DELETE",
            &h.ws_url("/computes/gpu-cluster?underlyingResourceAction=Delete"),
            None
        )
        .await
        .status,
        204
    );
}

/// compute/…create_and_delete.json #0–#3, #5, #10: the same requests get the same status
/// codes, the same LRO headers (only `Azure-AsyncOperation`, never `Location`/`Retry-After`),
/// the same poll bodies and the recorded keys.
#[tokio::test]
async fn compute_lifecycle_answers_as_recorded() {
    let recorded = fixture("compute_create_update_delete.json");
    let [create, first_poll, last_poll, get, update, delete] =
        recorded.as_array().unwrap().as_slice()
    else {
        panic!("fixture has six exchanges");
    };
    let h = Harness::start(observable()).await;
    let url = h.ws_url("/computes/recorded");

    let created = h
        .call("PUT", &url, Some(create["requestBody"].clone()))
        .await;
    assert_eq!(created.status, create["status"]);
    assert_eq!(created.lro_headers(), recorded_lro_headers(create));
    let monitor = created.header("azure-asyncoperation").unwrap();
    assert!(monitor.contains("/computeOperationsStatus/"), "{monitor}");
    for pointer in ["", "/properties", "/properties/properties"] {
        assert_keys_cover(&create["responseBody"], &created.body, pointer);
    }
    for field in [
        "currentNodeCount",
        "targetNodeCount",
        "nodeStateCounts",
        "allocationState",
        "errors",
    ] {
        assert_eq!(
            created.body["properties"]["properties"][field],
            create["responseBody"]["properties"]["properties"][field],
            "{field} while Creating"
        );
    }

    let poll = h.call("GET", &monitor, None).await;
    assert_eq!(poll.status, first_poll["status"]);
    assert_eq!(poll.body, first_poll["responseBody"]);
    assert!(poll.header("retry-after").is_none());
    let (done, _) = h.poll_async_operation(&monitor).await;
    assert_eq!(
        done, last_poll["responseBody"],
        "Succeeded with percentComplete"
    );

    let got = h.call("GET", &url, None).await;
    assert_eq!(got.status, get["status"]);
    for pointer in [
        "",
        "/properties",
        "/properties/properties",
        "/properties/properties/nodeStateCounts",
    ] {
        assert_keys_cover(&get["responseBody"], &got.body, pointer);
    }
    assert_eq!(got.body["properties"]["properties"]["errors"], json!(null));
    assert_eq!(got.body["properties"]["provisioningErrors"], json!(null));

    let updated = h
        .call("PUT", &url, Some(update["requestBody"].clone()))
        .await;
    assert_eq!(
        updated.status, update["status"],
        "an update by PUT answers 201"
    );
    assert_eq!(
        updated.body["properties"]["provisioningState"],
        update["responseBody"]["properties"]["provisioningState"]
    );
    assert_eq!(updated.lro_headers(), recorded_lro_headers(update));
    h.poll_async_operation(&updated.header("azure-asyncoperation").unwrap())
        .await;
    assert_eq!(
        h.call("GET", &url, None).await.body["properties"]["properties"]["scaleSettings"]["nodeIdleTimeBeforeScaleDown"],
        "PT3M20S"
    );

    let deleted = h
        .call(
            "DELETE",
            &h.ws_url("/computes/recorded?underlyingResourceAction=Delete"),
            None,
        )
        .await;
    assert_eq!(deleted.status, delete["status"]);
    assert_eq!(deleted.lro_headers(), recorded_lro_headers(delete));
    assert_eq!(deleted.body, json!(null), "empty body");
}

#[tokio::test]
async fn node_errors_show_a_cluster_that_cannot_get_nodes() {
    let h = Harness::start(fast()).await;
    let url = h.ws_url("/computes/starved");
    let created = h.call("PUT", &url, Some(cluster(0, 2))).await;
    h.poll_async_operation(&created.header("azure-asyncoperation").unwrap())
        .await;
    let errors = vec![(
        "AllocationFailed".to_string(),
        "Allocation failed: not enough quota for STANDARD_DS3_V2".to_string(),
    )];
    assert_eq!(h.fake.set_compute_errors("starved", errors), 1);
    let props = h.call("GET", &url, None).await.body["properties"]["properties"].clone();
    assert_eq!(
        props["errors"],
        json!([{"error": {"code": "AllocationFailed", "message": "Allocation failed: not enough quota for STANDARD_DS3_V2"}}])
    );
    assert_eq!(props["allocationState"], "Resizing");
    assert_eq!(props["currentNodeCount"], 0);
    assert_eq!(props["targetNodeCount"], 1);
    let nodes = h
        .call("POST", &h.ws_url("/computes/starved/listNodes"), None)
        .await;
    assert_eq!(nodes.body["nodes"], json!([]));

    let control = format!("{}/_fake/computes/starved/errors", h.fake.arm_endpoint());
    let cleared = h
        .http
        .post(&control)
        .body(r#"{"errors": []}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    let props = h.call("GET", &url, None).await.body["properties"]["properties"].clone();
    assert_eq!(props["errors"], json!(null));
    assert_eq!(props["allocationState"], "Steady");
    let unknown = h
        .http
        .post(format!(
            "{}/_fake/computes/nope/errors",
            h.fake.arm_endpoint()
        ))
        .body(r#"{"errors": []}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn delete_requires_underlying_resource_action() {
    let h = Harness::start(fast()).await;
    h.call("PUT", &h.ws_url("/computes/cluster-a"), Some(cluster(0, 2)))
        .await;
    let without = h
        .call("DELETE", &h.ws_url("/computes/cluster-a"), None)
        .await;
    assert_eq!(without.status, 400);
    assert_eq!(without.body["error"]["code"], "InvalidRequestContent");
    assert!(
        without.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("query.underlyingResourceAction")
    );
    let bogus = h
        .call(
            "DELETE",
            &h.ws_url("/computes/cluster-a?underlyingResourceAction=Purge"),
            None,
        )
        .await;
    assert_eq!(bogus.status, 400, "{:?}", bogus.body);
    assert_eq!(
        h.call(
            "DELETE",
            &h.ws_url("/computes/cluster-a?underlyingResourceAction=Detach"),
            None
        )
        .await
        .status,
        202
    );
}

#[tokio::test]
async fn tagged_compute_fails_with_provisioning_errors() {
    let h = Harness::start(fast()).await;
    let mut body = cluster(0, 2);
    body["tags"] = json!({"fake.outcome": "Failed"});
    let created = h
        .call("PUT", &h.ws_url("/computes/doomed"), Some(body))
        .await;
    let (done, _) = h
        .poll_async_operation(&created.header("azure-asyncoperation").unwrap())
        .await;
    assert_eq!(done["status"], "Failed");
    assert_eq!(done["error"]["code"], "ComputeProvisioningFailed");
    let got = h
        .call("GET", &h.ws_url("/computes/doomed"), None)
        .await
        .body;
    assert_eq!(got["properties"]["provisioningState"], "Failed");
    assert_eq!(
        got["properties"]["provisioningErrors"][0]["error"]["code"],
        "ComputeProvisioningFailed"
    );
}

#[tokio::test]
async fn attached_vm_reports_is_attached_and_hides_its_password() {
    let h = Harness::start(fast()).await;
    let body = json!({"properties": {
        "computeType": "VirtualMachine",
        "resourceId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
        "properties": {"address": "10.0.0.5", "sshPort": 22, "administratorAccount": {"username": "me", "password": "vm-secret-pw"}}
    }});
    let created = h
        .call("PUT", &h.ws_url("/computes/attached-vm"), Some(body))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    h.poll_async_operation(&created.header("azure-asyncoperation").unwrap())
        .await;
    let got = h
        .call("GET", &h.ws_url("/computes/attached-vm"), None)
        .await
        .body;
    assert_eq!(got["properties"]["isAttachedCompute"], true);
    assert_eq!(
        got["properties"]["properties"]["administratorAccount"],
        json!({"username": "me"})
    );
}

#[tokio::test]
async fn invalid_compute_bodies_and_names_are_rejected_with_the_path() {
    let h = Harness::start(fast()).await;
    let mut body = cluster(0, 2);
    body["properties"]["properties"]["scaleSettings"]
        .as_object_mut()
        .unwrap()
        .remove("maxNodeCount");
    let r = h
        .call("PUT", &h.ws_url("/computes/cluster-b"), Some(body))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error"]["message"],
        "$.properties.properties.scaleSettings.maxNodeCount: required property is missing"
    );
    // The compute name pattern has a lookahead: names may not end in -<digits>.
    let r = h
        .call("PUT", &h.ws_url("/computes/cluster-1"), Some(cluster(0, 2)))
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("path.computeName:"),
        "{:?}",
        r.body
    );
    assert_eq!(h.fake.count("PUT", "/computes/"), 2);
    assert_eq!(
        h.call("GET", &h.ws_url("/computes/cluster-b"), None)
            .await
            .status,
        404,
        "rejected writes create nothing"
    );
}
