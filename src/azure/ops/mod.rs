//! Typed Azure ML operations on one workspace. Each file adds the calls for one
//! resource kind to [`WorkspaceClient`]; this file holds the shared plumbing
//! (paths, optional GETs, paging, LRO starts).

mod code;
mod compute;
mod connection;
mod environment;
mod history;
mod job;
mod workspace;

pub use history::LogChunk;
pub use workspace::WorkspaceInfo;

use super::arm::{ArmClient, ArmRequest};
use super::error::AzureError;
use super::lro::Started;
use super::models::common::Page;
use super::models::compute::{AmlComputeNode, AmlComputeNodesPage};
use super::storage::StorageState;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// Which workspace: subscription, resource group, name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkspaceRef {
    /// Subscription id.
    pub subscription_id: String,
    /// Resource group.
    pub resource_group: String,
    /// Workspace name.
    pub workspace: String,
}

impl WorkspaceRef {
    /// The workspace's ARM id.
    pub fn resource_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/workspaces/{}",
            self.subscription_id, self.resource_group, self.workspace
        )
    }

    /// ARM id of a compute (for `computeId` in jobs).
    pub fn compute_id(&self, compute: &str) -> String {
        format!("{}/computes/{compute}", self.resource_id())
    }

    /// ARM id of an environment version (for `environmentId` in jobs).
    pub fn environment_version_id(&self, name: &str, version: &str) -> String {
        format!(
            "{}/environments/{name}/versions/{version}",
            self.resource_id()
        )
    }

    /// ARM id of a code version (for `codeId` in jobs).
    pub fn code_version_id(&self, name: &str, version: &str) -> String {
        format!("{}/codes/{name}/versions/{version}", self.resource_id())
    }

    /// Path segments of the workspace followed by `rest`.
    fn segments(&self, rest: &[&str]) -> Vec<String> {
        let mut s: Vec<String> = vec![
            "subscriptions".into(),
            self.subscription_id.clone(),
            "resourceGroups".into(),
            self.resource_group.clone(),
            "providers".into(),
            "Microsoft.MachineLearningServices".into(),
            "workspaces".into(),
            self.workspace.clone(),
        ];
        s.extend(rest.iter().map(|x| (*x).to_owned()));
        s
    }
}

/// A list page: items plus an optional link to the next page.
trait Paged: DeserializeOwned {
    type Item;
    fn into_parts(self) -> (Vec<Self::Item>, Option<String>);
}

impl<T: DeserializeOwned> Paged for Page<T> {
    type Item = T;
    fn into_parts(self) -> (Vec<T>, Option<String>) {
        (self.value, self.next_link)
    }
}

impl Paged for AmlComputeNodesPage {
    type Item = AmlComputeNode;
    fn into_parts(self) -> (Vec<AmlComputeNode>, Option<String>) {
        (self.nodes, self.next_link)
    }
}

/// Upper bound on pages followed, so a server that keeps handing out `nextLink`s
/// cannot loop a reconcile forever.
const MAX_PAGES: usize = 1000;

/// The Azure ML operations of one workspace.
#[derive(Debug, Clone)]
pub struct WorkspaceClient {
    arm: ArmClient,
    workspace: WorkspaceRef,
    storage: Arc<StorageState>,
}

impl WorkspaceClient {
    /// Operations on `workspace` through `arm`.
    pub fn new(arm: ArmClient, workspace: WorkspaceRef) -> Self {
        Self {
            arm,
            workspace,
            storage: Arc::default(),
        }
    }

    /// Reaches the workspace's storage at `blob_endpoint` (an emulator, a private endpoint)
    /// instead of the address its datastore names. The URL must be checked by
    /// [`crate::azure::storage::parse_blob_endpoint`].
    pub fn with_blob_endpoint(mut self, blob_endpoint: Option<url::Url>) -> Self {
        self.storage = Arc::new(StorageState::new(blob_endpoint));
        self
    }

    /// Where snapshots go, and the storage settings (shared by this client's clones).
    pub fn storage(&self) -> &StorageState {
        &self.storage
    }

    /// The workspace addressed.
    pub fn workspace(&self) -> &WorkspaceRef {
        &self.workspace
    }

    /// The underlying ARM client (polling handles, raw calls).
    pub fn arm(&self) -> &ArmClient {
        &self.arm
    }

    fn request(
        &self,
        operation: &'static str,
        method: reqwest::Method,
        rest: &[&str],
    ) -> ArmRequest {
        ArmRequest::new(operation, method, self.workspace.segments(rest))
    }

    /// A GET where 404 (of the resource itself) means `None`.
    async fn get_optional<T: DeserializeOwned>(
        &self,
        request: ArmRequest,
    ) -> Result<Option<T>, AzureError> {
        match self.arm.send_json(&request).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// All items of a paged list, following `nextLink`s (on the ARM origin, same method).
    async fn list_all<P: Paged>(&self, first: ArmRequest) -> Result<Vec<P::Item>, AzureError> {
        let operation = first.operation;
        let mut request = first;
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let page: P = self.arm.send_json(&request).await?;
            let (mut page_items, next) = page.into_parts();
            items.append(&mut page_items);
            match next.filter(|l| !l.is_empty()) {
                Some(next) => request = request.with_absolute(next),
                None => return Ok(items),
            }
        }
        Err(AzureError::InvalidResponse {
            operation,
            status: 200,
            message: format!("more than {MAX_PAGES} pages; giving up"),
        })
    }

    /// Starts a long-running operation whose synchronous answer carries a `T`.
    async fn begin_json<T: DeserializeOwned>(
        &self,
        request: ArmRequest,
    ) -> Result<Started<T>, AzureError> {
        let (response, handle) = self.arm.begin(&request).await?;
        match handle {
            Some(h) => Ok(Started::Pending(h)),
            None => response.json(request.operation).map(Started::Done),
        }
    }

    /// Starts a long-running operation without a result body (delete, cancel).
    async fn begin_unit(&self, request: ArmRequest) -> Result<Started<()>, AzureError> {
        let (_, handle) = self.arm.begin(&request).await?;
        Ok(handle.map_or(Started::Done(()), Started::Pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_segments() {
        let w = WorkspaceRef {
            subscription_id: "sub".into(),
            resource_group: "rg".into(),
            workspace: "ws".into(),
        };
        let id = w.resource_id();
        assert_eq!(
            id,
            "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
        );
        assert_eq!(w.compute_id("cpu"), format!("{id}/computes/cpu"));
        assert_eq!(
            w.environment_version_id("env", "abc"),
            format!("{id}/environments/env/versions/abc")
        );
        assert_eq!(
            w.code_version_id("code", "h1"),
            format!("{id}/codes/code/versions/h1")
        );
        assert_eq!(format!("/{}", w.segments(&[]).join("/")), id);
    }
}
