//! Workspace discovery: location, storage, default datastore, studio URL; and where code
//! snapshots go (the default datastore, when it lets amlops in).

use std::time::Instant;

use super::WorkspaceClient;
use crate::azure::error::AzureError;
use crate::azure::models::workspace::{Datastore, DatastoreSecrets, SecretExpiry, Workspace};
use crate::azure::storage::{self, DatastoreAccess, SnapshotStore};
use reqwest::Method;

/// Name of the datastore Azure ML creates as every workspace's default blob store.
pub const DEFAULT_DATASTORE: &str = "workspaceblobstore";

/// What amlops needs to know about a workspace.
#[derive(Debug, Clone)]
pub struct WorkspaceInfo {
    /// ARM id.
    pub id: String,
    /// Region.
    pub location: Option<String>,
    /// ARM id of the storage account.
    pub storage_account: Option<String>,
    /// The default datastore (`workspaceblobstore`), if present.
    pub default_datastore: Option<Datastore>,
    /// Discovery service URL.
    pub discovery_url: Option<String>,
    /// Azure ML studio URL of the workspace. The spec has no such field, so it is built
    /// from the public-cloud studio host and the workspace id.
    pub studio_url: String,
}

/// The studio link for a workspace id.
pub fn studio_url(workspace_id: &str) -> String {
    let mut url = url::Url::parse("https://ml.azure.com/").unwrap_or_else(|_| unreachable!());
    url.query_pairs_mut().append_pair("wsid", workspace_id);
    url.into()
}

impl WorkspaceClient {
    /// GET the workspace (`None` if it does not exist).
    pub async fn workspace_get(&self) -> Result<Option<Workspace>, AzureError> {
        self.get_optional(self.request("workspace.get", Method::GET, &[]))
            .await
    }

    /// GET a datastore (`None` if it does not exist).
    pub async fn datastore_get(&self, name: &str) -> Result<Option<Datastore>, AzureError> {
        self.get_optional(self.request("datastore.get", Method::GET, &["datastores", name]))
            .await
    }

    /// POST `listSecrets` of a datastore: with `expirableSecret`, a SAS.
    pub async fn datastore_list_secrets(
        &self,
        name: &str,
        expiry: &SecretExpiry,
    ) -> Result<DatastoreSecrets, AzureError> {
        let path = ["datastores", name, "listSecrets"];
        let request = self
            .request("datastore.list_secrets", Method::POST, &path)
            .json(expiry)?;
        self.arm.send_json(&request).await
    }

    /// Where code snapshots go: the default datastore's container, or why not (then the
    /// caller falls back to `startPendingUpload`). Decided once per SAS lifetime (see
    /// [`storage::StorageState`]); ARM errors other than a refusal are returned.
    pub async fn snapshot_store(&self) -> Result<SnapshotStore, AzureError> {
        self.storage
            .get_or_decide(Instant::now(), async || self.decide_snapshot_store().await)
            .await
    }

    async fn decide_snapshot_store(&self) -> Result<SnapshotStore, AzureError> {
        let refused = |e: AzureError| {
            Ok(SnapshotStore::Refused(format!(
                "the default datastore refused amlops: {e}"
            )))
        };
        let datastore = match self.datastore_get(DEFAULT_DATASTORE).await {
            Ok(Some(d)) => d.properties,
            Ok(None) => {
                return Ok(SnapshotStore::Refused(format!(
                    "the workspace has no datastore {DEFAULT_DATASTORE}"
                )));
            }
            Err(e) if e.status() == Some(403) => return refused(e),
            Err(e) => return Err(e),
        };
        let url = match storage::container_url(&datastore, self.storage.blob_endpoint()) {
            Ok(url) => url,
            Err(reason) => return Ok(SnapshotStore::Refused(reason)),
        };
        let access = DatastoreAccess::of(&datastore);
        let container = match access {
            DatastoreAccess::CallerToken => storage::token_container(url, self.arm.credential()),
            DatastoreAccess::ListSecrets => {
                let secrets = match self
                    .datastore_list_secrets(DEFAULT_DATASTORE, &storage::SAS_REQUEST)
                    .await
                {
                    Ok(s) => s,
                    Err(e) if e.status() == Some(403) => return refused(e),
                    Err(e) => return Err(e),
                };
                match storage::sas_container(url, &secrets) {
                    Ok(c) => c,
                    Err(reason) => return Ok(SnapshotStore::Refused(reason)),
                }
            }
        };
        Ok(SnapshotStore::Datastore { container, access })
    }

    /// Workspace GET + default datastore GET. A missing workspace is an error that
    /// needs a human (code `WorkspaceNotFound`).
    pub async fn workspace_info(&self) -> Result<WorkspaceInfo, AzureError> {
        let ws = self.workspace_get().await?.ok_or_else(|| AzureError::Api {
            operation: "workspace.get",
            status: 404,
            code: "WorkspaceNotFound".into(),
            message: format!("workspace {} does not exist", self.workspace.resource_id()),
            retry_after: None,
            retryable: false,
        })?;
        let default_datastore = self.datastore_get(DEFAULT_DATASTORE).await?;
        let id = ws.id.unwrap_or_else(|| self.workspace.resource_id());
        Ok(WorkspaceInfo {
            studio_url: studio_url(&id),
            id,
            location: ws.location,
            storage_account: ws.properties.storage_account,
            default_datastore,
            discovery_url: ws.properties.discovery_url,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn studio_url_carries_the_workspace_id() {
        assert_eq!(
            studio_url(
                "/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w"
            ),
            "https://ml.azure.com/?wsid=%2Fsubscriptions%2Fs%2FresourceGroups%2Fr%2Fproviders%2FMicrosoft.MachineLearningServices%2Fworkspaces%2Fw"
        );
    }
}
