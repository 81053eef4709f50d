//! The schema validator on real spec schemas.

use fake_azureml::spec::Spec;
use serde_json::{Value, json};

fn violations(definition: &str, value: Value) -> Vec<String> {
    let spec = Spec::get().unwrap();
    let schema = spec.definition(definition).unwrap();
    spec.validate(schema, &value)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn command_job() -> Value {
    json!({"properties": {
        "jobType": "Command",
        "command": "python train.py --epochs 3",
        "environmentId": "azureml:/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/environments/env/versions/1",
        "codeId": "azureml:/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/codes/c/versions/1",
        "computeId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/computes/cpu-cluster",
        "experimentName": "exp",
        "displayName": "run 1",
        "tags": {"amlops.io/uid": "1234"},
        "properties": {"azureml.git.commit": "abc"},
        "environmentVariables": {"A": "1"},
        "distribution": {"distributionType": "PyTorch", "processCountPerInstance": 2},
        "resources": {"instanceCount": 2},
        "limits": {"jobLimitsType": "Command", "timeout": "PT2H"}
    }})
}

fn aml_compute() -> Value {
    json!({"location": "eastus", "properties": {
        "computeType": "AmlCompute",
        "description": "training cluster",
        "properties": {
            "vmSize": "STANDARD_DS3_V2",
            "vmPriority": "LowPriority",
            "scaleSettings": {"minNodeCount": 0, "maxNodeCount": 4, "nodeIdleTimeBeforeScaleDown": "PT120S"},
            "subnet": {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/default"},
            "userAccountCredentials": {"adminUserName": "azureuser", "adminUserSshPublicKey": "ssh-rsa AAAA"}
        }
    }})
}

#[test]
fn valid_command_job_and_aml_compute_pass() {
    assert_eq!(violations("JobBase", command_job()), Vec::<String>::new());
    assert_eq!(
        violations("ComputeResource", aml_compute()),
        Vec::<String>::new()
    );
}

#[test]
fn command_job_without_command_names_the_path() {
    let mut job = command_job();
    job["properties"].as_object_mut().unwrap().remove("command");
    assert_eq!(
        violations("JobBase", job),
        ["$.properties.command: required property is missing"]
    );
}

#[test]
fn limits_without_job_limits_type_is_rejected() {
    let mut job = command_job();
    job["properties"]["limits"] = json!({"timeout": "PT2H"});
    assert_eq!(
        violations("JobBase", job),
        ["$.properties.limits.jobLimitsType: required property is missing"]
    );
}

#[test]
fn scale_settings_without_max_node_count_is_rejected() {
    let mut compute = aml_compute();
    compute["properties"]["properties"]["scaleSettings"] = json!({"minNodeCount": 1});
    assert_eq!(
        violations("ComputeResource", compute),
        ["$.properties.properties.scaleSettings.maxNodeCount: required property is missing"]
    );
}

#[test]
fn types_formats_and_ranges_are_checked() {
    let mut compute = aml_compute();
    let settings = &mut compute["properties"]["properties"]["scaleSettings"];
    settings["maxNodeCount"] = json!("4");
    settings["minNodeCount"] = json!(5_000_000_000u64);
    settings["nodeIdleTimeBeforeScaleDown"] = json!("120 seconds");
    let v = violations("ComputeResource", compute);
    assert!(
        v.contains(
            &"$.properties.properties.scaleSettings.maxNodeCount: expected integer, found string"
                .to_string()
        ),
        "{v:?}"
    );
    assert!(v.iter().any(|m| m.starts_with("$.properties.properties.scaleSettings.minNodeCount: 5000000000 is out of range for int32")), "{v:?}");
    assert!(v.iter().any(|m| m.starts_with("$.properties.properties.scaleSettings.nodeIdleTimeBeforeScaleDown: \"120 seconds\" is not a valid duration")), "{v:?}");
}

#[test]
fn discriminators_pick_the_subtype_and_reject_unknown_values() {
    let mut job = command_job();
    job["properties"]["distribution"] =
        json!({"distributionType": "PyTorch", "processCountPerInstance": "two"});
    assert_eq!(
        violations("JobBase", job),
        ["$.properties.distribution.processCountPerInstance: expected integer, found string"]
    );
    let mut compute = aml_compute();
    compute["properties"]["computeType"] = json!("AzureBatch");
    let v = violations("ComputeResource", compute);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(
        v[0].starts_with("$.properties.computeType: unknown computeType \"AzureBatch\""),
        "{v:?}"
    );
}

#[test]
fn nulls_only_where_the_spec_allows_them() {
    let mut job = command_job();
    job["properties"]["codeId"] = Value::Null; // x-nullable
    assert_eq!(violations("JobBase", job.clone()), Vec::<String>::new());
    job["properties"]["command"] = Value::Null;
    assert_eq!(
        violations("JobBase", job),
        ["$.properties.command: null is not allowed here"]
    );
}

#[test]
fn string_constraints_and_map_values() {
    let mut job = command_job();
    job["properties"]["command"] = json!("");
    job["properties"]["tags"] = json!({"fake.outcome": 3});
    let v = violations("JobBase", job);
    assert!(
        v.contains(&"$.properties.command: must be at least 1 characters long".to_string()),
        "{v:?}"
    );
    assert!(
        v.contains(
            &"$.properties.tags['fake.outcome']: expected string, found integer".to_string()
        ),
        "{v:?}"
    );
}

#[test]
fn closed_enums_are_enforced_and_open_ones_accept_any_string() {
    let spec = Spec::get().unwrap();
    // SkuTier (common types) is a closed enum; osType is modelAsString.
    let tier = spec.validate(
        spec.definition("ComputeResource").unwrap(),
        &json!({"sku": {"name": "x", "tier": "Gold"}}),
    );
    assert_eq!(tier.len(), 1, "{tier:?}");
    assert!(
        tier[0]
            .to_string()
            .starts_with("$.sku.tier: \"Gold\" is not one of: Free, Basic, Standard, Premium"),
        "{tier:?}"
    );
    let mut compute = aml_compute();
    compute["properties"]["properties"]["osType"] = json!("Plan9");
    assert_eq!(violations("ComputeResource", compute), Vec::<String>::new());
}
