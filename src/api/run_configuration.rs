//! `RunConfiguration`: where and in which environment a script runs.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{Condition, ObjectRef, SecretKeyRef, VmPriority};

/// The target and environment of training runs, shared by Experiments that reference it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "amlops.io",
    version = "v1alpha1",
    kind = "RunConfiguration",
    namespaced,
    status = "RunConfigurationStatus",
    shortname = "runcfg",
    category = "amlops",
    doc = "Where and in which environment a training script runs.",
    printcolumn(name = "Target", type_ = "string", json_path = ".spec.targetRef.name"),
    printcolumn(
        name = "Environment",
        type_ = "string",
        json_path = ".status.environment.name"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.environment.version",
        priority = 1
    ),
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
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = kube::core::Rule::new("has(self.targetRef) != has(self.amlCompute)")
        .message("set exactly one of targetRef (a ComputeTarget) or amlCompute (run-based compute)"),
    validation = kube::core::Rule::new("!has(self.amlCompute) || has(self.workspaceRef)")
        .message("run-based amlCompute needs workspaceRef").field_path(".workspaceRef"),
    validation = kube::core::Rule::new("self.communicator == 'None' || self.nodeCount > 1 || self.processCountPerNode > 1")
        .message("a communicator needs more than one process: raise nodeCount or processCountPerNode, or set communicator None")
        .field_path(".communicator"),
)]
pub struct RunConfigurationSpec {
    /// The ComputeTarget (same namespace) runs go to. Exactly one of targetRef or amlCompute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<ObjectRef>,
    /// Run-based compute: a cluster created for each run and deleted when the run ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aml_compute: Option<RunBasedCompute>,
    /// Workspace for run-based compute and environment registration. Default: the target's workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_ref: Option<ObjectRef>,
    /// Training framework: `Python` (default), `PySpark`, `TensorFlow` or `PyTorch`.
    #[serde(default)]
    pub framework: Framework,
    /// Distributed communicator: `None` (default), `ParameterServer`, `OpenMpi`, `IntelMpi` or `Nccl`.
    #[serde(default)]
    pub communicator: Communicator,
    /// Number of nodes a run uses (default 1).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1000))]
    pub node_count: i32,
    /// Processes per node for distributed runs (default 1).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 64))]
    pub process_count_per_node: i32,
    /// A run still going after this many seconds is cancelled and marked Failed with reason `Timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2592000))]
    pub max_run_duration_seconds: Option<i64>,
    /// Environment variables of the run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 128))]
    pub environment_variables: BTreeMap<String, String>,
    /// The Python environment: exactly one of condaDependencies, userManaged or existing.
    pub environment: EnvironmentSource,
    /// Docker settings of the run's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<Docker>,
    /// Azure ML: the identity the run's code acts as (the job's `identity`). Default: Azure
    /// ML's own default (`AMLToken`). Not used by local runs or Jobs in a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<RunIdentity>,
    /// Azure ML: the job tier (the job's `queueSettings`). Azure ML api-version 2026-07-01 has
    /// no job priority. Not used by local runs or Jobs in a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_settings: Option<QueueSettings>,
    /// Azure ML: the instance type runs use on a `kubernetes` ComputeTarget (one of its
    /// `instanceTypes`; default its `defaultInstanceType`), sent as `resources.instanceType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub instance_type: Option<String>,
}

/// The identity an Azure ML run acts as.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self.type == 'Managed' || (!has(self.clientId) && !has(self.resourceId))")
    .message("clientId and resourceId select a user-assigned managed identity: they need type Managed"))]
pub struct RunIdentity {
    /// `AMLToken` (the workspace's token), `UserIdentity` (the submitter's identity) or
    /// `Managed` (the compute's managed identity).
    #[serde(rename = "type")]
    pub identity_type: RunIdentityType,
    /// With `Managed`: a user-assigned identity by client ID (omit for the system-assigned one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub client_id: Option<String>,
    /// With `Managed`: a user-assigned identity by ARM resource ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 1024),
        regex(
            pattern = r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ManagedIdentity/userAssignedIdentities/[^/]+$"
        )
    )]
    pub resource_id: Option<String>,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunIdentityType {
    #[serde(rename = "AMLToken")]
    AmlToken,
    UserIdentity,
    Managed,
}

/// Where an Azure ML run queues.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct QueueSettings {
    /// `Spot`, `Basic`, `Standard` or `Premium` (serverless and Kubernetes computes).
    pub job_tier: JobTier,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobTier {
    Spot,
    Basic,
    Standard,
    Premium,
}

fn one() -> i32 {
    1
}

/// Run-based compute created for one run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunBasedCompute {
    /// Azure VM size, e.g. `STANDARD_D2_V2`.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Za-z0-9_]+$"))]
    pub vm_size: String,
    /// `Dedicated` (default) or `LowPriority`.
    #[serde(default)]
    pub vm_priority: VmPriority,
    /// Maximum nodes of the temporary cluster (default 1).
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_nodes: i32,
}

#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum Framework {
    #[default]
    Python,
    PySpark,
    TensorFlow,
    PyTorch,
}

#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum Communicator {
    #[default]
    None,
    ParameterServer,
    OpenMpi,
    IntelMpi,
    Nccl,
}

/// Exactly one kind of environment.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "(has(self.condaDependencies) ? 1 : 0) + (has(self.userManaged) ? 1 : 0) + (has(self.existing) ? 1 : 0) == 1"
).message("exactly one of condaDependencies, userManaged or existing must be set"))]
pub struct EnvironmentSource {
    /// System-managed: amlops renders conda_dependencies.yml and builds (or registers) the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conda_dependencies: Option<CondaDependencies>,
    /// User-managed: the interpreter (or image) is used as is; you install what the script needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_managed: Option<UserManaged>,
    /// An environment that already exists: in the Azure ML workspace, or in an Azure ML
    /// registry (curated `AzureML-` environments, or any registry named in `registry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing: Option<ExistingEnvironment>,
}

/// System-managed conda dependencies.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CondaDependencies {
    /// Python version, e.g. `3.11`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+){0,2}$"))]
    pub python_version: Option<String>,
    /// Conda channels in priority order (default `conda-forge`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub channels: Vec<String>,
    /// Conda package specs, e.g. `numpy=1.26`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub conda_packages: Vec<String>,
    /// pip requirement specs, e.g. `scikit-learn==1.5.0`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub pip_packages: Vec<String>,
}

/// A user-managed environment.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserManaged {
    /// Interpreter that runs the script: a path, or a name looked up on PATH (default `python3`).
    #[serde(default = "default_interpreter")]
    #[schemars(length(min = 1, max = 1024))]
    pub interpreter_path: String,
}

fn default_interpreter() -> String {
    "python3".to_string()
}

/// A registered Azure ML environment. Without `registry` it is a workspace environment,
/// which amlops looks up in the workspace before runs use it, except curated environments
/// (names starting with `AzureML-`), which live in the `azureml` registry. Registry
/// environments are passed to runs as
/// `azureml://registries/<registry>/environments/<name>/versions/<version>` without a
/// check beforehand: Azure resolves them when a run is submitted.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExistingEnvironment {
    /// Environment name, e.g. `my-training-env`, or a curated one such as
    /// `AzureML-sklearn-1.0-ubuntu20.04-py38-cpu`.
    #[schemars(regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9\-_.]{0,254}$"))]
    pub name: String,
    /// Environment version, e.g. `33`.
    #[schemars(length(min = 1, max = 64))]
    pub version: String,
    /// The Azure ML registry holding the environment, e.g. `azureml` for
    /// `azureml://registries/azureml/environments/<name>/versions/<version>`. Unset: the
    /// workspace (the `azureml` registry for curated `AzureML-` names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{2,32}$"))]
    pub registry: Option<String>,
}

/// Docker settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Docker {
    /// Run inside a container (default true on Azure compute; ignored on local).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Base image, e.g. `mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub base_image: Option<String>,
    /// Private registry of the base image. On Azure, amlops writes its credentials into a
    /// workspace connection of category `ContainerRegistry` (named in
    /// `status.registryConnection`), which Azure ML uses to pull the image. The connection is
    /// written again when the address, user name, Secret reference or the Secret itself
    /// changes (rotation needs no spec change). Ignored on `local` compute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<Registry>,
    /// Mount the host's shared volumes into the container.
    #[serde(default)]
    pub shared_volumes: bool,
    /// Expose GPUs to the container.
    #[serde(default)]
    pub gpu_support: bool,
    /// Shared memory size, e.g. `2g`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+[bkmgBKMG]?$"))]
    pub shm_size: Option<String>,
}

fn yes() -> bool {
    true
}

/// A private container registry.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Registry {
    /// Registry host, e.g. `myregistry.azurecr.io`.
    #[schemars(length(min = 1, max = 253))]
    pub address: String,
    /// Registry user name.
    #[schemars(length(min = 1, max = 253))]
    pub username: String,
    /// Secret key holding the registry password.
    pub password_secret_ref: SecretKeyRef,
}

/// Observed state of the run configuration.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunConfigurationStatus {
    /// `Ready`, `Reconciling` and `Stalled` conditions.
    #[serde(default)]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    #[schemars(length(max = 16))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The staged environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<StagedEnvironment>,
    /// True when the referenced ComputeTarget is Ready (always true for run-based compute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ready: Option<bool>,
    /// The Azure ML workspace connection (category `ContainerRegistry`) holding the
    /// credentials of `docker.registry`, once written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub registry_connection: Option<String>,
}

/// An environment version, named by content so an unchanged spec never registers again.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StagedEnvironment {
    /// Environment name.
    pub name: String,
    /// Environment version (the content hash for system-managed environments).
    pub version: String,
    /// The Azure ML registry the environment comes from; unset for workspace environments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 33))]
    pub registry: Option<String>,
    /// The `environmentId` Azure ML runs are submitted with: the ARM id of the workspace
    /// version, or the registry asset id `azureml://registries/...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub id: Option<String>,
    /// Hash of the rendered conda file, base image and docker settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// The rendered conda_dependencies.yml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub conda_file: Option<String>,
}
