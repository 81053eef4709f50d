//! Workspace and datastore models: read-only discovery of where things live.

use serde::Deserialize;

/// The parts of a workspace amlops reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    /// ARM id.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Region.
    #[serde(default)]
    pub location: Option<String>,
    /// Properties.
    #[serde(default)]
    pub properties: WorkspaceProperties,
}

/// `WorkspaceProperties` (the fields amlops reads).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceProperties {
    /// ARM id of the workspace storage account.
    #[serde(default)]
    pub storage_account: Option<String>,
    /// Discovery service URL.
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// Immutable workspace GUID.
    #[serde(default)]
    pub workspace_id: Option<String>,
    /// Provisioning state.
    #[serde(default)]
    pub provisioning_state: Option<String>,
    /// MLflow tracking URI.
    #[serde(default)]
    pub ml_flow_tracking_uri: Option<String>,
}

/// A datastore (read only; amlops never writes datastores).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Datastore {
    /// ARM id.
    #[serde(default)]
    pub id: Option<String>,
    /// Name.
    #[serde(default)]
    pub name: Option<String>,
    /// Properties.
    pub properties: DatastoreProperties,
}

/// `DatastoreProperties` plus the `AzureBlobDatastore` fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatastoreProperties {
    /// `AzureBlob`, `AzureFile`, ...
    pub datastore_type: String,
    /// Whether it is the workspace default.
    #[serde(default)]
    pub is_default: Option<bool>,
    /// Storage account name.
    #[serde(default)]
    pub account_name: Option<String>,
    /// Blob container.
    #[serde(default)]
    pub container_name: Option<String>,
    /// Storage endpoint suffix, e.g. `core.windows.net`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `https`.
    #[serde(default)]
    pub protocol: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn workspace_and_datastore_parse() {
        let w: Workspace = serde_json::from_value(json!({
            "id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w",
            "name": "w", "location": "westeurope",
            "properties": {"storageAccount": "/sa/x", "discoveryUrl": "https://d", "mlFlowTrackingUri": "azureml://m"}
        }))
        .unwrap();
        assert_eq!(w.properties.storage_account.as_deref(), Some("/sa/x"));
        assert_eq!(
            w.properties.ml_flow_tracking_uri.as_deref(),
            Some("azureml://m")
        );
        let d: Datastore = serde_json::from_value(json!({
            "name": "workspaceblobstore",
            "properties": {"datastoreType": "AzureBlob", "isDefault": true, "accountName": "acct",
                           "containerName": "azureml-blobstore-1", "endpoint": "core.windows.net",
                           "protocol": "https", "credentials": {"credentialsType": "AccountKey"}}
        }))
        .unwrap();
        assert_eq!(
            d.properties.container_name.as_deref(),
            Some("azureml-blobstore-1")
        );
    }
}
