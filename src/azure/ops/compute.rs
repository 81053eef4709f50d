//! Compute operations. PUT, PATCH and DELETE are long-running.

use super::WorkspaceClient;
use crate::azure::error::AzureError;
use crate::azure::lro::Started;
use crate::azure::models::compute::{
    AmlComputeNode, AmlComputeNodesPage, ClusterUpdateParameters, ComputeResource, ScaleSettings,
    UnderlyingResourceAction,
};
use reqwest::Method;

impl WorkspaceClient {
    /// GET a compute (`None` if it does not exist).
    pub async fn compute_get(&self, name: &str) -> Result<Option<ComputeResource>, AzureError> {
        self.get_optional(self.request("compute.get", Method::GET, &["computes", name]))
            .await
    }

    /// Create, update or attach (attach = `properties.resourceId` set) a compute.
    pub async fn compute_create_or_update(
        &self,
        name: &str,
        compute: &ComputeResource,
    ) -> Result<Started<ComputeResource>, AzureError> {
        let request = self
            .request("compute.create_or_update", Method::PUT, &["computes", name])
            .json(compute)?;
        self.begin_json(request).await
    }

    /// Change only the scale settings of an AmlCompute cluster.
    pub async fn compute_update_scale(
        &self,
        name: &str,
        scale: &ScaleSettings,
    ) -> Result<Started<ComputeResource>, AzureError> {
        let request = self
            .request("compute.update_scale", Method::PATCH, &["computes", name])
            .json(&ClusterUpdateParameters::scale(scale.clone()))?;
        self.begin_json(request).await
    }

    /// Delete a managed compute or detach an attached one.
    pub async fn compute_delete(
        &self,
        name: &str,
        action: UnderlyingResourceAction,
    ) -> Result<Started<()>, AzureError> {
        let request = self
            .request("compute.delete", Method::DELETE, &["computes", name])
            .query("underlyingResourceAction", action.as_str());
        self.begin_unit(request).await
    }

    /// All nodes of an AmlCompute cluster.
    pub async fn compute_list_nodes(&self, name: &str) -> Result<Vec<AmlComputeNode>, AzureError> {
        let request = self.request(
            "compute.list_nodes",
            Method::POST,
            &["computes", name, "listNodes"],
        );
        self.list_all::<AmlComputeNodesPage>(request).await
    }
}
