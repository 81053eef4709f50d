use super::*;
use crate::actions::SecretError;
use crate::api::AmlCompute;
use serde_json::json;

struct Keys;
impl SecretSource for Keys {
    async fn secret_value(&self, name: &str, key: &str) -> Result<Secret, SecretError> {
        match (name, key) {
            ("vm-key", "id_rsa") => Ok(Secret::new("-----BEGIN OPENSSH PRIVATE KEY-----s3cret")),
            ("admin", "password") => Ok(Secret::new("Pa55word!")),
            _ => Err(SecretError::NotFound {
                namespace: "ml".into(),
                name: name.into(),
                key: key.into(),
            }),
        }
    }
}

fn spec() -> ComputeTargetSpec {
    serde_json::from_value(json!({"workspaceRef": {"name": "ws"}})).unwrap()
}

#[tokio::test]
async fn amlcompute_body_carries_every_declared_property_and_the_admin_password() {
    let s = ComputeTargetSpec {
        aml_compute: Some(AmlCompute {
            vm_size: "STANDARD_D2_V2".into(),
            min_nodes: 1,
            max_nodes: 3,
            idle_seconds_before_scale_down: 600,
            admin_user: Some(AdminUser {
                username: "azureuser".into(),
                password_secret_ref: Some(SecretKeyRef {
                    name: "admin".into(),
                    key: "password".into(),
                }),
                ssh_public_key_secret_ref: None,
            }),
            ..Default::default()
        }),
        description: Some("gpu pool".into()),
        ..spec()
    };
    let r = build_resource(&s, "ml/cpu", "sub", &Keys).await.unwrap();
    let body = serde_json::to_value(&r).unwrap();
    assert_eq!(body["tags"][OWNER_TAG], "ml/cpu");
    let p = &body["properties"];
    assert_eq!(p["computeType"], "AmlCompute");
    assert_eq!(p["description"], "gpu pool");
    assert_eq!(p["properties"]["vmSize"], "STANDARD_D2_V2");
    assert_eq!(
        p["properties"]["scaleSettings"],
        json!({"maxNodeCount": 3, "minNodeCount": 1, "nodeIdleTimeBeforeScaleDown": "PT600S"})
    );
    assert_eq!(
        p["properties"]["userAccountCredentials"]["adminUserPassword"],
        "Pa55word!"
    );
    assert!(!format!("{r:?}").contains("Pa55word!"), "Debug must redact");
}

#[tokio::test]
async fn attach_body_has_the_resource_id_and_a_missing_secret_is_named() {
    let mut s: ComputeTargetSpec = serde_json::from_value(json!({
        "workspaceRef": {"name": "ws"},
        "remoteVM": {"resourceId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1", "address": "10.0.0.4", "username": "u", "privateKeySecretRef": {"name": "vm-key", "key": "id_rsa"}}
    }))
    .unwrap();
    let r = build_resource(&s, "ml/vm", "sub", &Keys).await.unwrap();
    let body = serde_json::to_value(&r).unwrap();
    assert_eq!(body["properties"]["computeType"], "VirtualMachine");
    assert_eq!(
        body["properties"]["resourceId"],
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
    );
    assert_eq!(body["properties"]["properties"]["sshPort"], 22);
    assert!(
        body["properties"]["properties"]["administratorAccount"]["privateKeyData"]
            .as_str()
            .unwrap()
            .contains("s3cret")
    );
    if let Some(vm) = s.remote_vm.as_mut() {
        vm.private_key_secret_ref = Some(SecretKeyRef {
            name: "gone".into(),
            key: "id_rsa".into(),
        });
    }
    let err = build_resource(&s, "ml/vm", "sub", &Keys).await.unwrap_err();
    assert_eq!(err.reason, "SecretNotFound");
    assert!(err.message.contains("gone") && err.message.contains("id_rsa"));
}

#[tokio::test]
async fn data_lake_defaults_to_the_workspace_subscription() {
    let s: ComputeTargetSpec = serde_json::from_value(json!({"workspaceRef": {"name": "ws"}, "dataLakeAnalytics": {"accountName": "adla1", "resourceGroup": "rg2"}})).unwrap();
    let body =
        serde_json::to_value(build_resource(&s, "ml/x", "sub-1", &Keys).await.unwrap()).unwrap();
    assert_eq!(
        body["properties"]["resourceId"],
        "/subscriptions/sub-1/resourceGroups/rg2/providers/Microsoft.DataLakeAnalytics/accounts/adla1"
    );
}

#[tokio::test]
async fn kubernetes_attach_sends_instance_types_valid_against_the_spec() {
    let s: ComputeTargetSpec = serde_json::from_value(json!({
        "workspaceRef": {"name": "ws"},
        "kubernetes": {
            "resourceId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks",
            "namespace": "azureml",
            "defaultInstanceType": "gpu",
            "instanceTypes": {"gpu": {"nodeSelector": {"agentpool": "gpu"}, "resources": {"limits": {"nvidia.com/gpu": "1"}}}}
        }
    }))
    .unwrap();
    let body =
        serde_json::to_value(build_resource(&s, "ml/aks", "s", &Keys).await.unwrap()).unwrap();
    let k = &body["properties"]["properties"];
    assert_eq!(k["namespace"], "azureml");
    assert_eq!(
        k["instanceTypes"]["gpu"]["nodeSelector"]["agentpool"],
        "gpu"
    );
    assert_eq!(
        k["instanceTypes"]["gpu"]["resources"]["limits"]["nvidia.com/gpu"],
        "1"
    );
    let spec = fake_azureml::spec::Spec::get().unwrap();
    let schema = spec.definition("ComputeResource").unwrap();
    let violations = spec.validate(schema, &body);
    assert!(violations.is_empty(), "{violations:?}");
    let mut broken = body.clone();
    broken["properties"]["properties"]["instanceTypes"]["gpu"]["resources"]["limits"]["nvidia.com/gpu"] =
        json!(1);
    assert!(
        !spec.validate(schema, &broken).is_empty(),
        "the validator must reject a number where the spec wants a string"
    );
}

#[test]
fn observed_maps_state_scale_and_node_counts() {
    let r: ComputeResource = serde_json::from_value(json!({
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w/computes/cpu",
        "properties": {
            "computeType": "AmlCompute",
            "provisioningState": "Succeeded",
            "isAttachedCompute": false,
            "properties": {
                "vmSize": "STANDARD_D2_V2", "vmPriority": "Dedicated",
                "scaleSettings": {"maxNodeCount": 4, "minNodeCount": 1, "nodeIdleTimeBeforeScaleDown": "PT30M"},
                "allocationState": "Steady", "currentNodeCount": 1, "targetNodeCount": 1,
                "nodeStateCounts": {"idleNodeCount": 1, "runningNodeCount": 0}
            }
        }
    }))
    .unwrap();
    let o = observed(&r);
    assert_eq!(o.compute_type, "AmlCompute");
    assert_eq!(o.provisioning_state.as_deref(), Some("Succeeded"));
    assert_eq!(
        o.scale,
        Some(Scale {
            min_nodes: 1,
            max_nodes: 4,
            idle_seconds: 1800
        })
    );
    assert_eq!(o.nodes.as_ref().unwrap().idle, 1);
    assert_eq!(o.vm_priority.as_deref(), Some("Dedicated"));
    assert!(!o.attached);
}

#[test]
fn node_errors_of_a_cluster_reach_the_status_with_their_codes() {
    use crate::api::conditions::find;
    use crate::reconcile::ObjectInfo;
    use crate::reconcile::compute_target::WorkspaceState;
    let body = include_str!("../../../tests/fixtures/azure/compute-amlcompute-node-errors.json");
    let r: ComputeResource = serde_json::from_str(body).unwrap();
    let o = observed(&r);
    let codes: Vec<_> = o.node_errors.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(codes, ["AllocationFailed", "NodeSetupFailure"]);
    assert!(o.errors.is_empty(), "provisioning itself succeeded");
    let spec: ComputeTargetSpec = serde_json::from_value(json!({
        "workspaceRef": {"name": "ws"},
        "azureName": "test49208482942",
        "amlCompute": {"vmSize": "Standard_DS2_v2", "minNodes": 0, "maxNodes": 2, "idleSecondsBeforeScaleDown": 100}
    }))
    .unwrap();
    let info = ObjectInfo {
        name: "cpu".into(),
        namespace: "ml".into(),
        generation: Some(1),
        ..Default::default()
    };
    let d = decide(Input {
        info: &info,
        spec: &spec,
        status: None,
        workspace: WorkspaceState::Ready,
        observed: Some(&o),
        operation: None,
        already_attached_by: None,
        in_cluster: true,
        local_jobs: true,
        kubernetes_compute_enabled: false,
        retry_after_stall: std::time::Duration::from_secs(600),
        now: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
    });
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    let ready = find(&d.status.conditions, "Ready").unwrap();
    assert_eq!(ready.reason, "AllocationFailed");
    assert!(
        ready
            .message
            .contains("could not get 2 Standard_DS2_v2 nodes")
    );
    assert_eq!(
        find(&d.status.conditions, crate::api::DEGRADED)
            .unwrap()
            .reason,
        "AllocationFailed"
    );
    let recorded = crate::recorded::response_of("compute_create_update_delete.json", 3);
    let r: ComputeResource = serde_json::from_value(recorded).unwrap();
    assert!(observed(&r).node_errors.is_empty(), "errors: null");
}

#[test]
fn pending_operations_round_trip_their_polling_protocol() {
    for kind in [OperationKind::AzureAsyncOperation, OperationKind::Location] {
        let h = OperationHandle {
            url: "https://arm/op".into(),
            kind,
        };
        let p = pending_of("Delete", &h);
        assert!(p.kind.starts_with("Delete"));
        assert_eq!(handle_of(&p), h);
    }
}
