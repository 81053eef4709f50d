//! Compute lifecycles over HTTPS: create with LRO polling, scale, delete/detach, failures,
//! attach, secrets never echoed.

mod common;

use common::{Harness, fast, observable};
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
    assert_eq!(created.header("retry-after").as_deref(), Some("0"));
    let status_url = created.header("azure-asyncoperation").unwrap();
    let location = created.header("location").unwrap();
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
    let (result, _) = h.poll_location(&location).await;
    assert_eq!(result.status, 200);
    assert_eq!(result.body["properties"]["provisioningState"], "Succeeded");

    let got = h.call("GET", &url, None).await.body;
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
    let (gone, accepted) = h.poll_location(&deleted.header("location").unwrap()).await;
    assert_eq!(gone.status, 204);
    assert!(accepted >= 1);
    let missing = h.call("GET", &url, None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "ResourceNotFound");
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
