//! Workspace and datastore models: read-only discovery of where things live, and the
//! datastore secrets (a SAS) snapshots are uploaded with.

use crate::azure::secret::Secret;
use serde::{Deserialize, Serialize};

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
    /// How the datastore authenticates to storage (only the type comes back on a GET).
    #[serde(default)]
    pub credentials: Option<DatastoreCredentials>,
}

/// `DatastoreCredentials`: the discriminator only; secrets come from `listSecrets`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatastoreCredentials {
    /// `AccountKey`, `Sas`, `ServicePrincipal`, `Certificate`, or `None` (identity-based
    /// access: callers use their own Entra token).
    pub credentials_type: String,
}

/// `SecretExpiry`, the body of `listSecrets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretExpiry {
    /// Asks for a secret that expires (a SAS) rather than the account key.
    pub expirable_secret: bool,
    /// Lifetime of the SAS.
    pub expire_after_hours: i32,
}

/// `DatastoreSecrets`: only the `Sas` kind is read; other kinds (account keys, client
/// secrets) are never deserialized, so they cannot be kept or shown.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatastoreSecrets {
    /// `Sas` when `expirableSecret` was honoured.
    pub secrets_type: String,
    /// The SAS query (`?sv=...&sig=...`).
    #[serde(default)]
    pub sas_token: Option<Secret>,
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

    #[test]
    fn recorded_default_datastore_parses() {
        let d: Datastore =
            serde_json::from_value(crate::recorded::response("datastore_get.json")).unwrap();
        let p = &d.properties;
        assert_eq!(d.name.as_deref(), Some("workspaceblobstore"));
        assert_eq!(p.datastore_type, "AzureBlob");
        assert_eq!(p.account_name.as_deref(), Some("Sanitized"));
        assert_eq!(
            p.container_name.as_deref(),
            Some("azureml-blobstore-8e7dad76-df37-472b-b882-0c1c58adfcf9")
        );
        assert_eq!(
            (p.endpoint.as_deref(), p.protocol.as_deref()),
            (Some("core.windows.net"), Some("https"))
        );
        assert_eq!(
            p.credentials.as_ref().map(|c| c.credentials_type.as_str()),
            Some("AccountKey")
        );
    }

    #[test]
    fn list_secrets_body_is_what_the_sdk_sends_and_fits_the_spec() {
        let body = serde_json::to_value(SecretExpiry {
            expirable_secret: true,
            expire_after_hours: 1,
        })
        .unwrap();
        assert_eq!(
            body,
            crate::recorded::request("datastore_list_secrets.json")
        );
        let spec = fake_azureml::spec::Spec::get().unwrap();
        let schema = spec.definition("SecretExpiry").unwrap();
        assert!(spec.validate(schema, &body).is_empty());
        assert!(
            !spec
                .validate(schema, &json!({"expireAfterHours": "1"}))
                .is_empty(),
            "the validator must reject a string where the spec wants an integer"
        );
    }

    #[test]
    fn recorded_sas_secret_parses_and_stays_hidden() {
        let s: DatastoreSecrets =
            serde_json::from_value(crate::recorded::response("datastore_list_secrets.json"))
                .unwrap();
        assert_eq!(s.secrets_type, "Sas");
        let sas = s.sas_token.as_ref().unwrap();
        assert!(sas.expose().contains("sp=rcuwdl"));
        assert!(!format!("{s:?}").contains("sig="));
        // An account key answer is not read into anything.
        let key: DatastoreSecrets =
            serde_json::from_value(json!({"secretsType": "AccountKey", "key": "KEY=="})).unwrap();
        assert!(key.sas_token.is_none());
        assert!(!format!("{key:?}").contains("KEY=="));
    }
}
