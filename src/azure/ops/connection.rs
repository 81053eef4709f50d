//! Workspace connections. Not long-running; a PUT replaces the connection.

use super::WorkspaceClient;
use crate::azure::error::AzureError;
use crate::azure::models::connection::WorkspaceConnection;
use reqwest::Method;

impl WorkspaceClient {
    /// GET a connection (`None` if it does not exist). Azure leaves out the credentials.
    pub async fn connection_get(
        &self,
        name: &str,
    ) -> Result<Option<WorkspaceConnection>, AzureError> {
        let path = ["connections", name];
        self.get_optional(self.request("connection.get", Method::GET, &path))
            .await
    }

    /// PUT a connection, credentials included.
    pub async fn connection_create_or_update(
        &self,
        name: &str,
        body: &WorkspaceConnection,
    ) -> Result<WorkspaceConnection, AzureError> {
        let path = ["connections", name];
        let request = self
            .request("connection.create_or_update", Method::PUT, &path)
            .json(body)?;
        self.arm.send_json(&request).await
    }
}
