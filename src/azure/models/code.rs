//! Code versions (source snapshots) and the pending-upload handshake that yields a
//! container SAS for uploading the snapshot blobs.

use super::common::ResourceBase;
use crate::azure::secret::Secret;
use serde::{Deserialize, Serialize};

/// A code version resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeVersion {
    /// ARM id (read-only).
    #[serde(default, skip_serializing)]
    pub id: Option<String>,
    /// The version (read-only).
    #[serde(default, skip_serializing)]
    pub name: Option<String>,
    /// The code asset.
    pub properties: CodeVersionProperties,
}

/// `CodeVersionProperties`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeVersionProperties {
    /// Blob URI of the uploaded snapshot (the container path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_uri: Option<String>,
    /// Anonymous assets are hidden in the studio's asset list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_anonymous: Option<bool>,
    /// Description, properties, tags.
    #[serde(flatten)]
    pub base: ResourceBase,
    /// Provisioning state (read-only).
    #[serde(default, skip_serializing)]
    pub provisioning_state: Option<String>,
}

/// `PendingUploadRequestDto`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingUploadRequest {
    /// Client-chosen id of the upload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_upload_id: Option<String>,
    /// Always `TemporaryBlobReference` for amlops.
    pub pending_upload_type: &'static str,
}

impl PendingUploadRequest {
    /// Asks for a temporary blob reference.
    pub fn temporary_blob(pending_upload_id: Option<String>) -> Self {
        Self {
            pending_upload_id,
            pending_upload_type: "TemporaryBlobReference",
        }
    }
}

/// `PendingUploadResponseDto`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingUploadResponse {
    /// Where and how to upload.
    #[serde(default)]
    pub blob_reference_for_consumption: Option<BlobReference>,
    /// The upload id.
    #[serde(default)]
    pub pending_upload_id: Option<String>,
}

/// `BlobReferenceForConsumptionDto`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobReference {
    /// Container URI to upload into.
    #[serde(default)]
    pub blob_uri: Option<String>,
    /// ARM id of the storage account.
    #[serde(default)]
    pub storage_account_arm_id: Option<String>,
    /// The credential (a SAS).
    #[serde(default)]
    pub credential: Option<PendingUploadCredential>,
}

/// `PendingUploadCredentialDto` (`SASCredentialDto`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingUploadCredential {
    /// `SAS`.
    pub credential_type: String,
    /// Container URI including the SAS token.
    #[serde(default)]
    pub sas_uri: Option<Secret>,
}

/// Where to upload a snapshot: what amlops needs from `startPendingUpload`.
#[derive(Debug, Clone)]
pub struct PendingUpload {
    /// Container URI without credentials (becomes the code version's `codeUri`).
    pub blob_uri: String,
    /// Container URI with its SAS token.
    pub sas_uri: Secret,
    /// Storage account ARM id, if reported.
    pub storage_account_arm_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pending_upload_request_and_response() {
        assert_eq!(
            serde_json::to_value(PendingUploadRequest::temporary_blob(None)).unwrap(),
            json!({"pendingUploadType": "TemporaryBlobReference"})
        );
        let r: PendingUploadResponse = serde_json::from_value(json!({
            "pendingUploadId": "u1", "pendingUploadType": "TemporaryBlobReference",
            "blobReferenceForConsumption": {
                "blobUri": "https://acct.blob.core.windows.net/c/LocalUpload/x",
                "storageAccountArmId": "/sa",
                "credential": {"credentialType": "SAS", "sasUri": "https://acct.blob.core.windows.net/c?sig=SECRET"}
            }
        }))
        .unwrap();
        let b = r.blob_reference_for_consumption.unwrap();
        assert!(!format!("{b:?}").contains("SECRET"));
        assert!(
            b.credential
                .unwrap()
                .sas_uri
                .unwrap()
                .expose()
                .ends_with("sig=SECRET")
        );
    }

    #[test]
    fn recorded_pending_upload_is_a_fresh_container_without_delete() {
        let r: PendingUploadResponse =
            serde_json::from_value(crate::recorded::response("code_pending_upload.json")).unwrap();
        let b = r.blob_reference_for_consumption.unwrap();
        assert_eq!(
            b.blob_uri.as_deref(),
            Some(
                "https://amltest5899420437.blob.core.windows.net:443/0bdd51b6-cd9c-4978-b870-99997b393b81-xhyq470r16ja7s4isx2179pzt9"
            )
        );
        let sas = b.credential.unwrap().sas_uri.unwrap();
        assert!(
            sas.expose().contains("sp=rcwl"),
            "create/write/list/read, no delete"
        );
        let c = crate::azure::blob::BlobContainer::from_sas_url(sas.expose()).unwrap();
        assert_eq!(
            c.container_url().as_str(),
            "https://amltest5899420437.blob.core.windows.net/0bdd51b6-cd9c-4978-b870-99997b393b81-xhyq470r16ja7s4isx2179pzt9"
        );
        assert_eq!(c.prefix(), "");
    }

    #[test]
    fn code_version_body_has_the_spec_shape() {
        let v = CodeVersion {
            id: None,
            name: None,
            properties: CodeVersionProperties {
                code_uri: Some("https://acct.blob.core.windows.net/c/LocalUpload/x".into()),
                is_anonymous: Some(true),
                ..Default::default()
            },
        };
        assert_eq!(
            serde_json::to_value(v).unwrap(),
            json!({"properties": {"codeUri": "https://acct.blob.core.windows.net/c/LocalUpload/x", "isAnonymous": true}})
        );
    }
}
