//! Compute models (`ComputeResource` in the spec): AmlCompute clusters and the
//! attachable kinds amlops supports. Read-only fields are never sent back.
//!
//! The spec's `Compute` is discriminated by `computeType` with the kind's own fields
//! under `properties`; kinds amlops does not manage (ComputeInstance, AKS, SynapseSpark,
//! DataFactory) read as [`ComputeKind::Other`]. There is no Azure Batch compute type
//! in api-version 2026-07-01.

use super::common::{IsoDuration, null_as_default};
use crate::azure::error::ErrorBody;
use crate::azure::secret::Secret;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// A compute target resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeResource {
    /// ARM id (read-only).
    #[serde(default, skip_serializing)]
    pub id: Option<String>,
    /// Compute name (read-only).
    #[serde(default, skip_serializing)]
    pub name: Option<String>,
    /// Azure region; defaults to the workspace's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Tags.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub tags: BTreeMap<String, String>,
    /// The compute itself.
    pub properties: Compute,
}

/// Provisioning state of a compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProvisioningState {
    /// Being updated.
    Updating,
    /// Being created.
    Creating,
    /// Being deleted.
    Deleting,
    /// Ready.
    Succeeded,
    /// Failed; see `provisioning_errors`.
    Failed,
    /// Canceled.
    Canceled,
    /// Unknown (also any state this client does not know).
    #[serde(other)]
    Unknown,
}

/// The kind-specific part of a compute.
#[derive(Debug, Clone, PartialEq)]
pub enum ComputeKind {
    /// A managed cluster.
    AmlCompute(AmlComputeProperties),
    /// An attached VM reached over SSH.
    VirtualMachine(VirtualMachineProperties),
    /// An attached HDInsight cluster.
    HdInsight(HdInsightProperties),
    /// An attached Databricks workspace.
    Databricks(DatabricksProperties),
    /// An attached Data Lake Analytics account.
    DataLakeAnalytics(DataLakeAnalyticsProperties),
    /// An attached AKS / Arc cluster running the Azure ML extension.
    Kubernetes(KubernetesProperties),
    /// A kind amlops does not manage, by its `computeType`.
    Other(String),
}

impl ComputeKind {
    /// The spec's `computeType` value.
    pub fn compute_type(&self) -> &str {
        match self {
            Self::AmlCompute(_) => "AmlCompute",
            Self::VirtualMachine(_) => "VirtualMachine",
            Self::HdInsight(_) => "HDInsight",
            Self::Databricks(_) => "Databricks",
            Self::DataLakeAnalytics(_) => "DataLakeAnalytics",
            Self::Kubernetes(_) => "Kubernetes",
            Self::Other(t) => t,
        }
    }
}

/// Fields every compute kind shares.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComputeCommon {
    /// Region of the underlying compute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_location: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// ARM id of the attached resource (attach = PUT with this set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Disable key-based local auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_local_auth: Option<bool>,
    /// Provisioning state (read-only).
    #[serde(default, skip_serializing)]
    pub provisioning_state: Option<ProvisioningState>,
    /// Why provisioning failed (read-only; ARM `ErrorResponse`s).
    #[serde(default, deserialize_with = "null_as_default", skip_serializing)]
    pub provisioning_errors: Vec<ErrorBody>,
    /// True for attached computes (read-only).
    #[serde(default, skip_serializing)]
    pub is_attached_compute: Option<bool>,
}

/// A compute: kind-specific properties plus the shared fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Compute {
    /// Kind and its properties.
    pub kind: ComputeKind,
    /// Shared fields.
    pub common: ComputeCommon,
}

impl Compute {
    /// A compute of `kind` with no shared fields set.
    pub fn new(kind: ComputeKind) -> Self {
        Self {
            kind,
            common: ComputeCommon::default(),
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum KindRef<'a> {
    AmlCompute(&'a AmlComputeProperties),
    VirtualMachine(&'a VirtualMachineProperties),
    HdInsight(&'a HdInsightProperties),
    Databricks(&'a DatabricksProperties),
    DataLakeAnalytics(&'a DataLakeAnalyticsProperties),
    Kubernetes(&'a KubernetesProperties),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ComputeOut<'a> {
    compute_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<KindRef<'a>>,
    #[serde(flatten)]
    common: &'a ComputeCommon,
}

impl Serialize for Compute {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let properties = match &self.kind {
            ComputeKind::AmlCompute(p) => Some(KindRef::AmlCompute(p)),
            ComputeKind::VirtualMachine(p) => Some(KindRef::VirtualMachine(p)),
            ComputeKind::HdInsight(p) => Some(KindRef::HdInsight(p)),
            ComputeKind::Databricks(p) => Some(KindRef::Databricks(p)),
            ComputeKind::DataLakeAnalytics(p) => Some(KindRef::DataLakeAnalytics(p)),
            ComputeKind::Kubernetes(p) => Some(KindRef::Kubernetes(p)),
            ComputeKind::Other(_) => None,
        };
        ComputeOut {
            compute_type: self.kind.compute_type(),
            properties,
            common: &self.common,
        }
        .serialize(s)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ComputeIn {
    compute_type: String,
    #[serde(default)]
    properties: Option<serde_json::Value>,
    #[serde(flatten)]
    common: ComputeCommon,
}

/// Reads `properties` as `T`; absent or null means all defaults.
fn kind_properties<T: Default + serde::de::DeserializeOwned>(
    value: Option<serde_json::Value>,
) -> Result<T, serde_json::Error> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(T::default()),
        Some(v) => serde_json::from_value(v),
    }
}

impl<'de> Deserialize<'de> for Compute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = ComputeIn::deserialize(d)?;
        let p = raw.properties;
        let kind = match raw.compute_type.as_str() {
            "AmlCompute" => kind_properties(p).map(ComputeKind::AmlCompute),
            "VirtualMachine" => kind_properties(p).map(ComputeKind::VirtualMachine),
            "HDInsight" => kind_properties(p).map(ComputeKind::HdInsight),
            "Databricks" => kind_properties(p).map(ComputeKind::Databricks),
            "DataLakeAnalytics" => kind_properties(p).map(ComputeKind::DataLakeAnalytics),
            "Kubernetes" => kind_properties(p).map(ComputeKind::Kubernetes),
            other => Ok(ComputeKind::Other(other.to_owned())),
        }
        .map_err(|e| serde::de::Error::custom(format!("{} properties: {e}", raw.compute_type)))?;
        Ok(Self {
            kind,
            common: raw.common,
        })
    }
}

/// VM priority of cluster nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VmPriority {
    /// Dedicated VMs.
    Dedicated,
    /// Low-priority (spot) VMs.
    LowPriority,
}

/// Whether SSH to cluster nodes is reachable from the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoteLoginPortPublicAccess {
    /// Open.
    Enabled,
    /// Closed.
    Disabled,
    /// Open only if the cluster has no VNet and no admin credentials.
    NotSpecified,
}

/// Cluster size bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSettings {
    /// Maximum nodes (required by the spec).
    pub max_node_count: u32,
    /// Minimum nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_node_count: Option<u32>,
    /// Idle time before scale-down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_idle_time_before_scale_down: Option<IsoDuration>,
}

/// Administrator account on cluster nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserAccountCredentials {
    /// User name (required by the spec).
    pub admin_user_name: String,
    /// SSH public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_user_ssh_public_key: Option<Secret>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_user_password: Option<Secret>,
}

/// An ARM resource reference (`ResourceId`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceId {
    /// ARM id.
    pub id: String,
}

/// Per-state node counts (read-only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStateCounts {
    /// Idle nodes.
    #[serde(default)]
    pub idle_node_count: u32,
    /// Nodes running jobs.
    #[serde(default)]
    pub running_node_count: u32,
    /// Nodes being prepared.
    #[serde(default)]
    pub preparing_node_count: u32,
    /// Unusable nodes.
    #[serde(default)]
    pub unusable_node_count: u32,
    /// Nodes leaving the cluster.
    #[serde(default)]
    pub leaving_node_count: u32,
    /// Preempted nodes.
    #[serde(default)]
    pub preempted_node_count: u32,
}

/// `AmlComputeProperties`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmlComputeProperties {
    /// VM size, e.g. `STANDARD_DS3_V2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_size: Option<String>,
    /// Dedicated or low priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_priority: Option<VmPriority>,
    /// Size bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_settings: Option<ScaleSettings>,
    /// Node administrator account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_account_credentials: Option<UserAccountCredentials>,
    /// Subnet to join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<ResourceId>,
    /// Public SSH access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_login_port_public_access: Option<RemoteLoginPortPublicAccess>,
    /// `Steady` or `Resizing` (read-only).
    #[serde(default, skip_serializing)]
    pub allocation_state: Option<String>,
    /// Nodes now (read-only).
    #[serde(default, skip_serializing)]
    pub current_node_count: Option<u32>,
    /// Nodes wanted (read-only).
    #[serde(default, skip_serializing)]
    pub target_node_count: Option<u32>,
    /// Per-state counts (read-only).
    #[serde(default, skip_serializing)]
    pub node_state_counts: Option<NodeStateCounts>,
    /// Errors the cluster's nodes met during setup or allocation (read-only; spec
    /// `AmlComputeProperties.errors`, ARM `ErrorResponse`s, `null` when there are none).
    #[serde(default, deserialize_with = "null_as_default", skip_serializing)]
    pub errors: Vec<ErrorBody>,
}

/// SSH credentials of an attached VM or HDInsight cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineSshCredentials {
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_data: Option<Secret>,
    /// Private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_data: Option<Secret>,
}

/// `VirtualMachineSchemaProperties`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualMachineProperties {
    /// VM size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_machine_size: Option<String>,
    /// SSH port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_port: Option<u16>,
    /// Public IP or FQDN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// SSH credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub administrator_account: Option<VirtualMachineSshCredentials>,
}

/// `HDInsightProperties`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HdInsightProperties {
    /// SSH port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_port: Option<u16>,
    /// Public IP or FQDN of the master node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// SSH credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub administrator_account: Option<VirtualMachineSshCredentials>,
}

/// `DatabricksProperties`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabricksProperties {
    /// Databricks access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databricks_access_token: Option<Secret>,
    /// Workspace URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_url: Option<String>,
}

/// `DataLakeAnalyticsSchemaProperties`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataLakeAnalyticsProperties {
    /// Data Lake Store account name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_lake_store_account_name: Option<String>,
}

/// `KubernetesProperties` (the fields amlops sets).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesProperties {
    /// Namespace the Azure ML extension runs jobs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Default instance type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_instance_type: Option<String>,
    /// Named instance types (`InstanceTypeSchema`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instance_types: BTreeMap<String, InstanceTypeSchema>,
}

/// `InstanceTypeSchema`: where the pods of an instance type run and what they get.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceTypeSchema {
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default)]
    pub resources: InstanceTypeResources,
}

/// `InstanceTypeSchemaResources`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceTypeResources {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

/// `PATCH` body for scale settings: `{"properties":{"properties":{"scaleSettings":..}}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterUpdateParameters {
    /// `ClusterUpdateProperties`.
    pub properties: ClusterUpdateProperties,
}

/// `ClusterUpdateProperties`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterUpdateProperties {
    /// `ScaleSettingsInformation`.
    pub properties: ScaleSettingsInformation,
}

/// `ScaleSettingsInformation`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSettingsInformation {
    /// New scale settings.
    pub scale_settings: ScaleSettings,
}

impl ClusterUpdateParameters {
    /// The body that changes only the scale settings.
    pub fn scale(scale_settings: ScaleSettings) -> Self {
        Self {
            properties: ClusterUpdateProperties {
                properties: ScaleSettingsInformation { scale_settings },
            },
        }
    }
}

/// What DELETE does to the underlying resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnderlyingResourceAction {
    /// Delete it (managed computes).
    Delete,
    /// Keep it, only detach it from the workspace (attached computes).
    Detach,
}

impl UnderlyingResourceAction {
    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delete => "Delete",
            Self::Detach => "Detach",
        }
    }
}

/// State of one cluster node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Idle.
    Idle,
    /// Running a job.
    Running,
    /// Being prepared.
    Preparing,
    /// Unusable.
    Unusable,
    /// Leaving.
    Leaving,
    /// Preempted.
    Preempted,
    /// A state this client does not know.
    #[serde(other)]
    Unknown,
}

/// One node of a cluster (`AmlComputeNodeInformation`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmlComputeNode {
    /// Node id.
    #[serde(default)]
    pub node_id: Option<String>,
    /// Private IP.
    #[serde(default)]
    pub private_ip_address: Option<String>,
    /// Public IP.
    #[serde(default)]
    pub public_ip_address: Option<String>,
    /// SSH port.
    #[serde(default)]
    pub port: Option<u32>,
    /// State.
    #[serde(default)]
    pub node_state: Option<NodeState>,
    /// Job running on it.
    #[serde(default)]
    pub run_id: Option<String>,
}

/// `AmlComputeNodesInformation`: one page of nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AmlComputeNodesPage {
    /// Nodes.
    #[serde(default, deserialize_with = "null_as_default")]
    pub nodes: Vec<AmlComputeNode>,
    /// Next page.
    #[serde(default)]
    pub next_link: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster() -> ComputeResource {
        ComputeResource {
            id: Some("ignored".into()),
            name: Some("ignored".into()),
            location: Some("westeurope".into()),
            tags: BTreeMap::from([("amlops.io/owner".into(), "ns/ct".into())]),
            properties: Compute::new(ComputeKind::AmlCompute(AmlComputeProperties {
                vm_size: Some("STANDARD_DS3_V2".into()),
                vm_priority: Some(VmPriority::LowPriority),
                scale_settings: Some(ScaleSettings {
                    max_node_count: 4,
                    min_node_count: Some(0),
                    node_idle_time_before_scale_down: Some(IsoDuration::from_secs(120)),
                }),
                user_account_credentials: Some(UserAccountCredentials {
                    admin_user_name: "azureuser".into(),
                    admin_user_ssh_public_key: None,
                    admin_user_password: Some(Secret::new("pa55word")),
                }),
                subnet: Some(ResourceId {
                    id: "/sub/net".into(),
                }),
                remote_login_port_public_access: Some(RemoteLoginPortPublicAccess::Disabled),
                current_node_count: Some(3),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn aml_compute_body_has_the_spec_shape_and_no_read_only_fields() {
        let body = serde_json::to_value(cluster()).unwrap();
        assert_eq!(
            body,
            json!({
                "location": "westeurope",
                "tags": {"amlops.io/owner": "ns/ct"},
                "properties": {
                    "computeType": "AmlCompute",
                    "properties": {
                        "vmSize": "STANDARD_DS3_V2",
                        "vmPriority": "LowPriority",
                        "scaleSettings": {
                            "maxNodeCount": 4,
                            "minNodeCount": 0,
                            "nodeIdleTimeBeforeScaleDown": "PT120S"
                        },
                        "userAccountCredentials": {
                            "adminUserName": "azureuser",
                            "adminUserPassword": "pa55word"
                        },
                        "subnet": {"id": "/sub/net"},
                        "remoteLoginPortPublicAccess": "Disabled"
                    }
                }
            })
        );
    }

    #[test]
    fn debug_output_redacts_the_admin_password() {
        assert!(!format!("{:?}", cluster()).contains("pa55word"));
    }

    #[test]
    fn attach_bodies_carry_the_resource_id() {
        let c = ComputeResource {
            id: None,
            name: None,
            location: None,
            tags: BTreeMap::new(),
            properties: Compute {
                kind: ComputeKind::Databricks(DatabricksProperties {
                    databricks_access_token: Some(Secret::new("dapi123")),
                    workspace_url: None,
                }),
                common: ComputeCommon {
                    resource_id: Some("/subscriptions/s/resourceGroups/r/providers/Microsoft.Databricks/workspaces/w".into()),
                    ..Default::default()
                },
            },
        };
        let body = serde_json::to_value(&c).unwrap();
        assert_eq!(body["properties"]["computeType"], "Databricks");
        assert_eq!(
            body["properties"]["properties"]["databricksAccessToken"],
            "dapi123"
        );
        assert!(
            body["properties"]["resourceId"]
                .as_str()
                .unwrap()
                .ends_with("/w")
        );
    }

    #[test]
    fn responses_parse_including_read_only_and_unknown_kinds() {
        let c: ComputeResource = serde_json::from_value(json!({
            "id": "/x/computes/c1", "name": "c1", "location": "westeurope", "tags": null,
            "properties": {
                "computeType": "AmlCompute",
                "provisioningState": "Failed",
                "provisioningErrors": [{"error": {"code": "QuotaExceeded", "message": "no cores"}}],
                "isAttachedCompute": false,
                "properties": {
                    "vmSize": "STANDARD_DS3_V2",
                    "scaleSettings": {"maxNodeCount": 2, "nodeIdleTimeBeforeScaleDown": "PT2M"},
                    "allocationState": "Steady", "currentNodeCount": 0,
                    "nodeStateCounts": {"idleNodeCount": 0}
                }
            }
        }))
        .unwrap();
        assert_eq!(
            c.properties.common.provisioning_state,
            Some(ProvisioningState::Failed)
        );
        let code = c.properties.common.provisioning_errors[0]
            .error
            .as_ref()
            .unwrap()
            .code
            .clone();
        assert_eq!(code.as_deref(), Some("QuotaExceeded"));
        match &c.properties.kind {
            ComputeKind::AmlCompute(p) => {
                let s = p.scale_settings.as_ref().unwrap();
                assert_eq!(
                    s.node_idle_time_before_scale_down,
                    Some(IsoDuration::from_secs(120))
                );
            }
            other => panic!("{other:?}"),
        }
        let other: Compute = serde_json::from_value(json!({
            "computeType": "ComputeInstance", "properties": {"anything": 1}, "provisioningState": "Succeeded"
        }))
        .unwrap();
        assert_eq!(other.kind, ComputeKind::Other("ComputeInstance".into()));
        let bare: Compute =
            serde_json::from_value(json!({"computeType": "DataLakeAnalytics", "properties": null}))
                .unwrap();
        assert_eq!(
            bare.kind,
            ComputeKind::DataLakeAnalytics(Default::default())
        );
    }

    /// The recorded GET of a Succeeded cluster (`errors: null`).
    fn recorded_get() -> String {
        crate::recorded::response_of("compute_create_update_delete.json", 3).to_string()
    }
    const NODE_ERRORS_GET: &str =
        include_str!("../../../tests/fixtures/azure/compute-amlcompute-node-errors.json");

    fn aml_properties(body: &str) -> AmlComputeProperties {
        let c: ComputeResource = serde_json::from_str(body).unwrap();
        match c.properties.kind {
            ComputeKind::AmlCompute(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_recorded_cluster_get_parses_with_no_node_errors() {
        let c: ComputeResource = serde_json::from_str(&recorded_get()).unwrap();
        assert_eq!(
            c.properties.common.provisioning_state,
            Some(ProvisioningState::Succeeded)
        );
        assert!(c.properties.common.provisioning_errors.is_empty());
        let p = aml_properties(&recorded_get());
        assert!(p.errors.is_empty(), "errors: null reads as none");
        assert_eq!(p.allocation_state.as_deref(), Some("Steady"));
        assert_eq!(p.node_state_counts, Some(NodeStateCounts::default()));
        assert_eq!(
            p.scale_settings.unwrap().node_idle_time_before_scale_down,
            Some(IsoDuration::from_secs(100))
        );
    }

    #[test]
    fn node_errors_are_read_in_the_error_response_shape() {
        let p = aml_properties(NODE_ERRORS_GET);
        let codes: Vec<_> = p
            .errors
            .iter()
            .map(|e| e.error.as_ref().and_then(|d| d.reason()))
            .collect();
        assert_eq!(
            codes,
            [
                Some("AllocationFailed".to_string()),
                Some("NodeSetupFailure".to_string())
            ]
        );
        assert_eq!(p.allocation_state.as_deref(), Some("Resizing"));
        let body = serde_json::to_value(ComputeResource {
            properties: Compute::new(ComputeKind::AmlCompute(p)),
            ..cluster()
        })
        .unwrap();
        assert!(
            body["properties"]["properties"].get("errors").is_none(),
            "read-only: never sent back"
        );
    }

    #[test]
    fn a_bad_kind_body_names_the_kind() {
        let err = serde_json::from_value::<Compute>(json!({
            "computeType": "AmlCompute", "properties": {"scaleSettings": {"maxNodeCount": "many"}}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("AmlCompute properties"), "{err}");
    }

    #[test]
    fn scale_patch_body_nests_properties_twice() {
        let body = serde_json::to_value(ClusterUpdateParameters::scale(ScaleSettings {
            max_node_count: 3,
            min_node_count: Some(1),
            node_idle_time_before_scale_down: None,
        }))
        .unwrap();
        assert_eq!(
            body,
            json!({"properties": {"properties": {"scaleSettings": {"maxNodeCount": 3, "minNodeCount": 1}}}})
        );
    }

    #[test]
    fn node_pages_parse() {
        let p: AmlComputeNodesPage = serde_json::from_value(json!({
            "nodes": [{"nodeId": "n1", "nodeState": "running", "runId": "r", "port": 50000},
                      {"nodeId": "n2", "nodeState": "rebooting"}],
            "nextLink": null
        }))
        .unwrap();
        assert_eq!(p.nodes[0].node_state, Some(NodeState::Running));
        assert_eq!(p.nodes[1].node_state, Some(NodeState::Unknown));
    }
}
