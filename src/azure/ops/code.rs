//! Code versions (snapshots): lookup by content hash, the pending-upload handshake,
//! and registration. Immutable once written, like environment versions.

use super::WorkspaceClient;
use crate::azure::error::AzureError;
use crate::azure::models::code::{
    CodeVersion, PendingUpload, PendingUploadRequest, PendingUploadResponse,
};
use crate::azure::models::common::Page;
use reqwest::Method;

impl WorkspaceClient {
    /// GET a code version (`None` if it does not exist).
    pub async fn code_version_get(
        &self,
        name: &str,
        version: &str,
    ) -> Result<Option<CodeVersion>, AzureError> {
        let path = ["codes", name, "versions", version];
        self.get_optional(self.request("code_version.get", Method::GET, &path))
            .await
    }

    /// Versions of code asset `name` whose content has `hash` (computed with
    /// `hash_version`, the algorithm's name). A missing asset yields an empty list.
    pub async fn code_version_list_by_hash(
        &self,
        name: &str,
        hash: &str,
        hash_version: &str,
    ) -> Result<Vec<CodeVersion>, AzureError> {
        let request = self
            .request(
                "code_version.list",
                Method::GET,
                &["codes", name, "versions"],
            )
            .query("hash", hash)
            .query("hashVersion", hash_version);
        match self.list_all::<Page<CodeVersion>>(request).await {
            Ok(v) => Ok(v),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// PUT a code version; re-putting the same body is a no-op.
    pub async fn code_version_create_or_update(
        &self,
        name: &str,
        version: &str,
        body: &CodeVersion,
    ) -> Result<CodeVersion, AzureError> {
        let path = ["codes", name, "versions", version];
        let request = self
            .request("code_version.create_or_update", Method::PUT, &path)
            .json(body)?
            .final_on(&[409]);
        self.arm.send_json(&request).await
    }

    /// Asks where to upload the snapshot of a code version: a container URI and a SAS.
    pub async fn code_version_start_pending_upload(
        &self,
        name: &str,
        version: &str,
    ) -> Result<PendingUpload, AzureError> {
        const OP: &str = "code_version.start_pending_upload";
        let path = ["codes", name, "versions", version, "startPendingUpload"];
        let request = self
            .request(OP, Method::POST, &path)
            .json(&PendingUploadRequest::temporary_blob(None))?;
        let response: PendingUploadResponse = self.arm.send_json(&request).await?;
        let missing = |what: &str| AzureError::InvalidResponse {
            operation: OP,
            status: 200,
            message: format!("the answer has no {what}"),
        };
        let blob = response
            .blob_reference_for_consumption
            .ok_or_else(|| missing("blobReferenceForConsumption"))?;
        let sas_uri = blob
            .credential
            .and_then(|c| c.sas_uri)
            .ok_or_else(|| missing("credential.sasUri"))?;
        Ok(PendingUpload {
            blob_uri: blob.blob_uri.ok_or_else(|| missing("blobUri"))?,
            sas_uri,
            storage_account_arm_id: blob.storage_account_arm_id,
        })
    }
}
