//! Environment versions. Not long-running; immutable once written, so a 409 means
//! "this version exists with a different body" and is final.

use super::WorkspaceClient;
use crate::azure::error::AzureError;
use crate::azure::models::environment::EnvironmentVersion;
use reqwest::Method;

impl WorkspaceClient {
    /// GET an environment version (`None` if it does not exist).
    pub async fn environment_version_get(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<EnvironmentVersion>, AzureError> {
        let path = ["environments", name, "versions", version];
        self.get_optional(self.request("environment_version.get", Method::GET, &path))
            .await
    }

    /// PUT an environment version; re-putting the same body is a no-op.
    pub async fn environment_version_create_or_update(
        &self,
        name: &str,
        version: &str,
        body: &EnvironmentVersion,
    ) -> Result<EnvironmentVersion, AzureError> {
        let path = ["environments", name, "versions", version];
        let request = self
            .request("environment_version.create_or_update", Method::PUT, &path)
            .json(body)?
            .final_on(&[409]);
        self.arm.send_json(&request).await
    }
}
