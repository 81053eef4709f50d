//! `Workspace`: which Azure ML workspace, and how to authenticate to it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{Condition, SecretRef};

/// An Azure Machine Learning workspace that ComputeTargets, RunConfigurations and Experiments use.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "amlops.io",
    version = "v1alpha1",
    kind = "Workspace",
    namespaced,
    status = "WorkspaceStatus",
    shortname = "amlws",
    category = "amlops",
    doc = "An Azure Machine Learning workspace and the credential amlops uses to reach it.",
    printcolumn(
        name = "Workspace",
        type_ = "string",
        json_path = ".spec.workspaceName"
    ),
    printcolumn(name = "Location", type_ = "string", json_path = ".status.location"),
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
pub struct WorkspaceSpec {
    /// Azure subscription ID (a GUID) that holds the workspace.
    #[schemars(regex(
        pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ))]
    pub subscription_id: String,
    /// Resource group of the workspace.
    #[schemars(length(min = 1, max = 90), regex(pattern = r"^[-\w\._\(\)]+$"))]
    pub resource_group: String,
    /// Name of the Azure ML workspace (3-33 characters: letters, digits, `-` and `_`).
    #[schemars(regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$"))]
    pub workspace_name: String,
    /// How amlops authenticates to Azure for this workspace.
    pub credential: WorkspaceCredential,
    /// Endpoint overrides for sovereign clouds, private clouds and tests. Defaults to Azure public cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// How often an in-sync object that uses this workspace is re-read from Azure
    /// (Go-style duration such as `30m` or `1h`; default `1h`). Resyncs are jittered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub resync_period: Option<String>,
}

/// Exactly one way to obtain an Azure token.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "(has(self.workloadIdentity) ? 1 : 0) + (has(self.servicePrincipal) ? 1 : 0) + (has(self.managedIdentity) ? 1 : 0) + (has(self.azureCli) ? 1 : 0) == 1"
).message("exactly one of workloadIdentity, servicePrincipal, managedIdentity or azureCli must be set"))]
pub struct WorkspaceCredential {
    /// Azure Workload Identity (recommended in clusters): a federated token projected into the
    /// operator pod. Omitted IDs come from the webhook's AZURE_CLIENT_ID / AZURE_TENANT_ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_identity: Option<WorkloadIdentity>,
    /// A service principal whose Secret holds the keys AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_principal: Option<ServicePrincipal>,
    /// The managed identity of the node or pod (system-assigned, or user-assigned by client ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_identity: Option<ManagedIdentity>,
    /// The signed-in Azure CLI user. Only for `amlops apply` on a workstation; refused by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure_cli: Option<AzureCli>,
}

/// Azure Workload Identity settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadIdentity {
    /// Client (application) ID of the federated identity. Default: AZURE_CLIENT_ID of the operator pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub client_id: Option<String>,
    /// Microsoft Entra tenant ID. Default: AZURE_TENANT_ID of the operator pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub tenant_id: Option<String>,
}

/// A service principal read from a Secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServicePrincipal {
    /// Secret with the keys AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET.
    pub secret_ref: SecretRef,
}

/// A managed identity.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ManagedIdentity {
    /// Client ID of a user-assigned identity; omit for the system-assigned identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub client_id: Option<String>,
}

/// The Azure CLI credential (workstations only).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AzureCli {}

/// Endpoint overrides.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// Azure Resource Manager endpoint, e.g. `https://management.usgovcloudapi.net`. Must be https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https://[^\s]+$"))]
    pub resource_manager: Option<String>,
    /// Microsoft Entra authority host, e.g. `https://login.microsoftonline.us`. Must be https.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https://[^\s]+$"))]
    pub authority_host: Option<String>,
    /// Blob service URL of the workspace's storage account, for emulators and private setups,
    /// e.g. `http://127.0.0.1:10000/devstoreaccount1`. Default: `https://<account>.blob.<endpoint>`
    /// from the workspace's default datastore. Must be https; plain http only on 127.0.0.1,
    /// localhost or [::1]. No query: credentials never go in this URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 2048),
        regex(
            pattern = r"^(https://[^\s/?#@]+|http://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?)(/[^\s?#]*)?$"
        )
    )]
    pub blob_storage: Option<String>,
}

/// What amlops discovered about the workspace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceStatus {
    /// `Ready`, `Reconciling` and `Stalled` conditions.
    #[serde(default)]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    #[schemars(length(max = 16))]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// ARM resource ID of the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Azure region of the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// ARM resource ID of the workspace's storage account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_account: Option<String>,
    /// Name of the default datastore that code snapshots are uploaded to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_datastore: Option<String>,
    /// Azure ML studio URL of the workspace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub studio_url: Option<String>,
    /// When amlops last read the workspace from Azure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced_at: Option<Time>,
}

#[cfg(test)]
mod tests {
    use crate::api::validate::validate;
    use serde_json::json;

    fn with_blob_storage(url: &str) -> serde_json::Value {
        json!({
            "apiVersion": "amlops.io/v1alpha1", "kind": "Workspace",
            "metadata": {"name": "ws"},
            "spec": {
                "subscriptionId": "00000000-0000-0000-0000-000000000000",
                "resourceGroup": "rg", "workspaceName": "ws1",
                "credential": {"managedIdentity": {}},
                "endpoints": {"blobStorage": url}
            }
        })
    }

    #[test]
    fn blob_storage_admits_https_and_loopback_http_only() {
        for ok in [
            "https://acct.blob.core.usgovcloudapi.net",
            "https://storage.internal:8443/acct",
            "http://127.0.0.1:10000/devstoreaccount1",
            "http://localhost:10000/devstoreaccount1",
            "http://[::1]:10000/devstoreaccount1",
        ] {
            let problems = validate("Workspace", &with_blob_storage(ok), None);
            assert!(problems.is_empty(), "{ok}: {problems:?}");
        }
        for bad in [
            "http://acct.blob.core.windows.net",
            "http://127.0.0.1.evil.com/x",
            "https://acct.blob.core.windows.net/c?sv=1&sig=x",
            "https://user@acct.blob.core.windows.net",
        ] {
            let problems = validate("Workspace", &with_blob_storage(bad), None);
            assert!(
                problems
                    .iter()
                    .any(|p| p.field == "spec.endpoints.blobStorage"),
                "{bad}: {problems:?}"
            );
        }
    }
}
