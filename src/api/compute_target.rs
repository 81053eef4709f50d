//! `ComputeTarget`: where runs execute — the local machine, a managed Azure ML cluster, or an
//! attached compute resource.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{Condition, ErrorInfo, ObjectRef, SecretKeyRef, SecretRef, VmPriority};

/// A compute target for training runs: exactly one of `local`, `amlCompute`, `remoteVM`,
/// `hdInsight`, `azureBatch`, `databricks`, `dataLakeAnalytics` or `kubernetes`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "amlops.io",
    version = "v1alpha1",
    kind = "ComputeTarget",
    namespaced,
    status = "ComputeTargetStatus",
    shortname = "ct",
    category = "amlops",
    doc = "A compute target for training runs: local, a managed Azure ML cluster, or an attached compute.",
    printcolumn(name = "Type", type_ = "string", json_path = ".status.computeType"),
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.provisioningState"
    ),
    printcolumn(name = "Nodes", type_ = "integer", json_path = ".status.nodes.current"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1
    ),
    printcolumn(
        name = "Azure Name",
        type_ = "string",
        json_path = ".status.azureName",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new(
        "(has(self.local) ? 1 : 0) + (has(self.amlCompute) ? 1 : 0) + (has(self.remoteVM) ? 1 : 0) + (has(self.hdInsight) ? 1 : 0) + (has(self.azureBatch) ? 1 : 0) + (has(self.databricks) ? 1 : 0) + (has(self.dataLakeAnalytics) ? 1 : 0) + (has(self.kubernetes) ? 1 : 0) == 1"
    ).message("exactly one of local, amlCompute, remoteVM, hdInsight, azureBatch, databricks, dataLakeAnalytics or kubernetes must be set"),
    validation = kube::core::Rule::new("has(self.local) || has(self.workspaceRef)")
        .message("workspaceRef is required for every compute kind except local").field_path(".workspaceRef"),
    validation = kube::core::Rule::new(
        "has(self.local) == has(oldSelf.local) && has(self.amlCompute) == has(oldSelf.amlCompute) && has(self.remoteVM) == has(oldSelf.remoteVM) && has(self.hdInsight) == has(oldSelf.hdInsight) && has(self.azureBatch) == has(oldSelf.azureBatch) && has(self.databricks) == has(oldSelf.databricks) && has(self.dataLakeAnalytics) == has(oldSelf.dataLakeAnalytics) && has(self.kubernetes) == has(oldSelf.kubernetes)"
    ).message("the compute kind is immutable: delete and re-create the ComputeTarget to change it"),
    validation = kube::core::Rule::new(
        "has(self.azureName) == has(oldSelf.azureName) && (!has(self.azureName) || self.azureName == oldSelf.azureName)"
    ).message("azureName is immutable").field_path(".azureName"),
    validation = kube::core::Rule::new("!has(self.remoteVM) || self.remoteVM.resourceId.contains('/providers/Microsoft.Compute/virtualMachines/')")
        .message("remoteVM.resourceId must be a Microsoft.Compute/virtualMachines resource ID").field_path(".remoteVM.resourceId"),
    validation = kube::core::Rule::new("!has(self.hdInsight) || self.hdInsight.resourceId.contains('/providers/Microsoft.HDInsight/clusters/')")
        .message("hdInsight.resourceId must be a Microsoft.HDInsight/clusters resource ID").field_path(".hdInsight.resourceId"),
    validation = kube::core::Rule::new("!has(self.deletionPolicy) || self.deletionPolicy != 'Detach' || !has(self.amlCompute)")
        .message("deletionPolicy Detach applies to attached computes; use Delete or Retain for amlCompute").field_path(".deletionPolicy"),
)]
pub struct ComputeTargetSpec {
    /// The Workspace (same namespace) the compute belongs to. Required except for `local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_ref: Option<ObjectRef>,
    /// Name of the compute in Azure ML. Defaults to metadata.name. Immutable. 3-24 characters:
    /// a letter first, then letters, digits and `-`, and it must not end in `-<digits>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z][a-zA-Z0-9-]{2,23}$"))]
    #[x_kube(validation = kube::core::Rule::new("!self.matches('-[0-9]+$')").message("azureName must not end in '-' followed by digits (an Azure ML compute name rule)"))]
    pub azure_name: Option<String>,
    /// What happens in Azure when this object is deleted: `Delete` removes the compute,
    /// `Detach` removes it from the workspace but keeps the underlying resource, `Retain` leaves
    /// Azure untouched. Default: `Delete` for amlCompute, `Detach` for attached computes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
    /// Free-text description stored on the Azure compute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Run where amlops runs: a process under `amlops apply`, a Kubernetes Job in the
    /// Experiment's namespace under the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalCompute>,
    /// A managed Azure ML compute cluster that amlops creates, scales and deletes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aml_compute: Option<AmlCompute>,
    /// Attach an existing Azure virtual machine over SSH.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "remoteVM")]
    pub remote_vm: Option<SshCompute>,
    /// Attach an existing HDInsight cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hd_insight: Option<SshCompute>,
    /// An Azure Batch account. Azure ML api-version 2026-07-01 has no Azure Batch compute type:
    /// amlops reports such a target as Stalled with reason `UnsupportedComputeType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_batch: Option<AzureBatch>,
    /// Attach an Azure Databricks workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub databricks: Option<Databricks>,
    /// Attach an Azure Data Lake Analytics account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_lake_analytics: Option<DataLakeAnalytics>,
    /// Attach an AKS or Azure Arc-enabled Kubernetes cluster that runs the Azure ML extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesCompute>,
}

/// What happens in Azure when the ComputeTarget is deleted.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletionPolicy {
    Delete,
    Detach,
    Retain,
}

/// Where amlops runs: a process on the machine that runs `amlops apply`, or a Kubernetes Job
/// in the Experiment's namespace when the controller runs in a cluster. Every setting below
/// places that Job; `amlops apply` on a laptop ignores them all.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LocalCompute {
    /// Container image of runs whose RunConfiguration sets no `docker.baseImage`. Default:
    /// `python:<pythonVersion>-slim` when the conda dependencies name a pythonVersion, else
    /// `python:3.12-slim`. Cluster only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// Secrets (same namespace, type `kubernetes.io/dockerconfigjson`) the kubelet pulls the
    /// image with; amlops never reads them. Cluster only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub image_pull_secrets: Vec<SecretRef>,
    /// CPU, memory and extended resources (e.g. `nvidia.com/gpu`) of the run's container, as
    /// in a pod spec. Cluster only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<LocalResources>,
    /// Node labels the run's pod is scheduled on. Cluster only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the run's pod tolerates (e.g. those of GPU nodes). Cluster only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub tolerations: Vec<LocalToleration>,
    /// ServiceAccount (same namespace) the run's pod runs as, with its token mounted. Unset:
    /// the namespace's `default` ServiceAccount, without a token. Never the operator's own.
    /// Cluster only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 253),
        regex(pattern = DNS_SUBDOMAIN)
    )]
    pub service_account_name: Option<String>,
    /// PriorityClass of the run's pod. Cluster only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 253),
        regex(pattern = DNS_SUBDOMAIN)
    )]
    pub priority_class_name: Option<String>,
    /// Seconds after a run ends before Kubernetes deletes its Job, pod and logs. Unset: they
    /// stay until the Experiment is deleted. The run's status is kept either way. Cluster only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 31536000))]
    pub ttl_seconds_after_finished: Option<i32>,
    /// Kueue LocalQueue (same namespace) the run's Job is submitted to: the Job carries the
    /// `kueue.x-k8s.io/queue-name` label and is created suspended, so Kueue admits it when
    /// the queue has quota. Cluster only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub queue_name: Option<String>,
    /// PersistentVolumeClaim (same namespace) that caches built environments and pip
    /// downloads across runs: an environment is built once per content hash and image. Unset:
    /// every run builds its environment in the pod. Cluster only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 253),
        regex(pattern = DNS_SUBDOMAIN)
    )]
    pub cache_persistent_volume_claim: Option<String>,
}

/// A Kubernetes object name (DNS-1123 subdomain, at most 253 characters with `length`).
const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Requests and limits of a run's container. Values are Kubernetes quantities (`2`, `500m`,
/// `16Gi`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LocalResources {
    /// What the scheduler reserves, e.g. `cpu: "2"`, `memory: 8Gi`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "quantity_map")]
    pub requests: BTreeMap<String, Quantity>,
    /// Hard caps, e.g. `memory: 16Gi`, `nvidia.com/gpu: 1` (extended resources such as GPUs
    /// are set here).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "quantity_map")]
    pub limits: BTreeMap<String, Quantity>,
}

/// A map of resource name to quantity: an integer or a quantity string, as in a pod spec
/// (the schema controller-gen writes for `resource.Quantity`, bounded).
fn quantity_map(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 16,
        "additionalProperties": {
            "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
            "x-kubernetes-int-or-string": true
        }
    })
}

/// A toleration of the run's pod, as in a pod spec.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.operator) || self.operator != 'Exists' || !has(self.value)")
    .message("a toleration with operator Exists takes no value"))]
pub struct LocalToleration {
    /// Taint key; empty with operator `Exists` tolerates every taint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 316))]
    pub key: Option<String>,
    /// `Equal` (default) or `Exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<TolerationOperator>,
    /// Taint value, for operator `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; unset tolerates every effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
    /// For `NoExecute`: seconds the pod stays bound after the taint appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TolerationOperator {
    Equal,
    Exists,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

/// A managed Azure ML compute cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.minNodes <= self.maxNodes").message("minNodes must be less than or equal to maxNodes"))]
pub struct AmlCompute {
    /// Azure VM size of every node, e.g. `STANDARD_D2_V2` or `Standard_NC6s_v3`.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9_]+$"))]
    pub vm_size: String,
    /// `Dedicated` (default) or `LowPriority`.
    #[serde(default)]
    pub vm_priority: VmPriority,
    /// Nodes kept even when idle (default 0: scale to zero).
    #[serde(default)]
    #[schemars(range(min = 0, max = 1000))]
    pub min_nodes: i32,
    /// Upper bound of the autoscaler.
    #[schemars(range(min = 1, max = 1000))]
    pub max_nodes: i32,
    /// Seconds a node stays idle before it is released (default 1800).
    #[serde(default = "default_idle_seconds")]
    #[schemars(range(min = 60, max = 604800))]
    pub idle_seconds_before_scale_down: i32,
    /// ARM resource ID of a virtual network subnet for the nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 1024),
        regex(
            pattern = r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/virtualNetworks/[^/]+/subnets/[^/]+$"
        )
    )]
    pub subnet: Option<String>,
    /// Administrator account created on every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_user: Option<AdminUser>,
    /// Public SSH port on the nodes: `Enabled`, `Disabled` or `NotSpecified` (Azure decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_login_port_public_access: Option<RemoteLoginPortPublicAccess>,
}

fn default_idle_seconds() -> i32 {
    1800
}

/// State of the public SSH port of cluster nodes.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteLoginPortPublicAccess {
    Enabled,
    Disabled,
    NotSpecified,
}

/// Administrator account of cluster nodes: a password or an SSH public key, from a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.passwordSecretRef) || has(self.sshPublicKeySecretRef)")
    .message("adminUser needs passwordSecretRef or sshPublicKeySecretRef"))]
pub struct AdminUser {
    /// Administrator user name.
    #[schemars(length(min = 1, max = 64))]
    pub username: String,
    /// Secret key holding the administrator password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding the administrator's SSH public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_public_key_secret_ref: Option<SecretKeyRef>,
}

/// An existing machine or cluster attached over SSH (`remoteVM` or `hdInsight`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.passwordSecretRef) != has(self.privateKeySecretRef)")
    .message("set exactly one of passwordSecretRef or privateKeySecretRef"))]
pub struct SshCompute {
    /// ARM resource ID of the virtual machine (remoteVM) or HDInsight cluster (hdInsight);
    /// Azure ML attaches by resource ID.
    #[schemars(
        length(max = 1024),
        regex(
            pattern = r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/[^/]+/[^/]+/[^/]+$"
        )
    )]
    pub resource_id: String,
    /// Public IP address or DNS name (of the head node, for HDInsight).
    #[schemars(length(min = 1, max = 253))]
    pub address: String,
    /// SSH port (default 22).
    #[serde(default = "default_ssh_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub ssh_port: i32,
    /// SSH user name.
    #[schemars(length(min = 1, max = 64))]
    pub username: String,
    /// Secret key holding the SSH password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding an unencrypted SSH private key (Azure ML accepts no passphrase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_secret_ref: Option<SecretKeyRef>,
}

fn default_ssh_port() -> i32 {
    22
}

/// An Azure Batch account (not attachable in Azure ML api-version 2026-07-01).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AzureBatch {
    /// Batch account name.
    #[schemars(regex(pattern = r"^[a-z0-9]{3,24}$"))]
    pub account_name: String,
    /// Resource group of the Batch account.
    #[schemars(length(min = 1, max = 90), regex(pattern = r"^[-\w\._\(\)]+$"))]
    pub resource_group: String,
}

/// An Azure Databricks workspace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Databricks {
    /// ARM resource ID of the Databricks workspace.
    #[schemars(
        length(max = 1024),
        regex(
            pattern = r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Databricks/workspaces/[^/]+$"
        )
    )]
    pub resource_id: String,
    /// Workspace URL, e.g. `https://adb-123.4.azuredatabricks.net`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https://[^\s]+$"))]
    pub workspace_url: Option<String>,
    /// Secret key holding a Databricks personal access token.
    pub access_token_secret_ref: SecretKeyRef,
}

/// An Azure Data Lake Analytics account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DataLakeAnalytics {
    /// Data Lake Analytics account name.
    #[schemars(regex(pattern = r"^[a-z0-9]{3,24}$"))]
    pub account_name: String,
    /// Resource group of the account.
    #[schemars(length(min = 1, max = 90), regex(pattern = r"^[-\w\._\(\)]+$"))]
    pub resource_group: String,
    /// Subscription of the account. Default: the workspace's subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub subscription_id: Option<String>,
}

/// An AKS or Arc-enabled Kubernetes cluster running the Azure ML extension.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.defaultInstanceType) || self.defaultInstanceType in self.instanceTypes")
    .message("defaultInstanceType must name one of instanceTypes").field_path(".defaultInstanceType"))]
pub struct KubernetesCompute {
    /// ARM resource ID of the AKS cluster or the Arc-connected cluster.
    #[schemars(
        length(max = 1024),
        regex(
            pattern = r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/(Microsoft\.ContainerService/managedClusters|Microsoft\.Kubernetes/connectedClusters)/[^/]+$"
        )
    )]
    pub resource_id: String,
    /// Namespace in that cluster where training pods run (default `default`).
    #[serde(default = "default_namespace")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"))]
    pub namespace: String,
    /// Named instance types: a node selector plus resource requests and limits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub instance_types: BTreeMap<String, InstanceType>,
    /// Instance type used when a run names none; must be a key of instanceTypes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub default_instance_type: Option<String>,
}

fn default_namespace() -> String {
    "default".to_string()
}

/// An instance type of Kubernetes compute.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct InstanceType {
    /// Node labels the training pods are scheduled on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32))]
    pub node_selector: BTreeMap<String, String>,
    /// Resource requests and limits, as in a pod spec (e.g. `cpu: "4"`, `memory: 16Gi`, `nvidia.com/gpu: "1"`).
    #[serde(default)]
    pub resources: InstanceResources,
}

/// Requests and limits of an instance type.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct InstanceResources {
    /// Resource requests.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub requests: BTreeMap<String, String>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    pub limits: BTreeMap<String, String>,
}

/// Condition type of a cluster whose nodes report errors (allocation or node setup): True
/// with the first error's code as the reason while Azure reports any, absent otherwise.
/// `Ready` is False with the same reason meanwhile.
pub const DEGRADED: &str = "Degraded";

/// Observed state of the compute.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComputeTargetStatus {
    /// `Ready`, `Reconciling` and `Stalled` conditions, and `Degraded` while an amlCompute
    /// cluster's nodes report errors.
    #[serde(default)]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    #[schemars(length(max = 16))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Compute type as Azure ML names it (`AmlCompute`, `VirtualMachine`, ...) or `Local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_type: Option<String>,
    /// Name of the compute in Azure ML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_name: Option<String>,
    /// Azure provisioning state (`Creating`, `Succeeded`, `Failed`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    /// ARM resource ID of the Azure ML compute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// True when the compute was attached rather than created by Azure ML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached: Option<bool>,
    /// Node counts of an amlCompute cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeCounts>,
    /// Cluster allocation state (`Steady` or `Resizing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_state: Option<String>,
    /// Last error from Azure, kept until the compute is healthy again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ErrorInfo>,
    /// A long-running Azure operation in progress, persisted so a restart resumes polling it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_operation: Option<PendingOperation>,
}

/// Node counts of a compute cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeCounts {
    pub current: i32,
    pub target: i32,
    pub idle: i32,
    pub running: i32,
    pub preparing: i32,
    pub unusable: i32,
    pub leaving: i32,
    pub preempted: i32,
}

/// A long-running Azure operation that amlops is waiting for.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PendingOperation {
    /// What the operation does (`Create`, `Update`, `Delete`, `Detach`, `Cancel`).
    pub kind: String,
    /// The Azure-AsyncOperation or Location URL to poll.
    #[schemars(length(max = 4096))]
    pub url: String,
    /// When the operation was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
}

/// The one compute kind a spec declares, borrowed.
#[derive(Clone, Copy, Debug)]
pub enum ComputeKind<'a> {
    Local(&'a LocalCompute),
    AmlCompute(&'a AmlCompute),
    RemoteVm(&'a SshCompute),
    HdInsight(&'a SshCompute),
    AzureBatch(&'a AzureBatch),
    Databricks(&'a Databricks),
    DataLakeAnalytics(&'a DataLakeAnalytics),
    Kubernetes(&'a KubernetesCompute),
}

impl ComputeTargetSpec {
    /// The declared kind, or `None` when the one-of rule is broken (the schema rejects that).
    pub fn kind(&self) -> Option<ComputeKind<'_>> {
        let kinds = [
            self.local.as_ref().map(ComputeKind::Local),
            self.aml_compute.as_ref().map(ComputeKind::AmlCompute),
            self.remote_vm.as_ref().map(ComputeKind::RemoteVm),
            self.hd_insight.as_ref().map(ComputeKind::HdInsight),
            self.azure_batch.as_ref().map(ComputeKind::AzureBatch),
            self.databricks.as_ref().map(ComputeKind::Databricks),
            self.data_lake_analytics
                .as_ref()
                .map(ComputeKind::DataLakeAnalytics),
            self.kubernetes.as_ref().map(ComputeKind::Kubernetes),
        ];
        let mut set = kinds.into_iter().flatten();
        let first = set.next()?;
        set.next().is_none().then_some(first)
    }

    /// The effective deletion policy: the declared one, else Delete for managed and Detach for attached.
    pub fn effective_deletion_policy(&self) -> DeletionPolicy {
        match (self.deletion_policy, self.kind()) {
            (Some(p), _) => p,
            (None, Some(ComputeKind::AmlCompute(_))) => DeletionPolicy::Delete,
            (None, _) => DeletionPolicy::Detach,
        }
    }
}

impl ComputeKind<'_> {
    /// The compute type as Azure ML (or amlops, for `Local` and `AzureBatch`) names it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Local(_) => "Local",
            Self::AmlCompute(_) => "AmlCompute",
            Self::RemoteVm(_) => "VirtualMachine",
            Self::HdInsight(_) => "HDInsight",
            Self::AzureBatch(_) => "AzureBatch",
            Self::Databricks(_) => "Databricks",
            Self::DataLakeAnalytics(_) => "DataLakeAnalytics",
            Self::Kubernetes(_) => "Kubernetes",
        }
    }
}
