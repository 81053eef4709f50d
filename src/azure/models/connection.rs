//! Workspace connections: how Azure ML learns credentials of outside services. amlops writes
//! `ContainerRegistry` connections with `UsernamePassword` credentials so image builds and
//! runs can pull a private base image.

use crate::azure::secret::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A workspace connection resource (`WorkspaceConnectionPropertiesV2BasicResource`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceConnection {
    /// ARM id (read-only).
    #[serde(default, skip_serializing)]
    pub id: Option<String>,
    pub properties: ConnectionProperties,
}

/// `WorkspaceConnectionPropertiesV2` with the `UsernamePassword` credentials (the fields
/// amlops uses). Azure never returns `credentials`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionProperties {
    /// The discriminator, e.g. `UsernamePassword`.
    pub auth_type: String,
    /// e.g. `ContainerRegistry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The service address, e.g. `myregistry.azurecr.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<UsernamePassword>,
    /// Free-form strings; amlops keeps the user name and the owner here, since Azure does
    /// not return the credentials.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// `WorkspaceConnectionUsernamePassword`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsernamePassword {
    pub username: String,
    pub password: Secret,
}
