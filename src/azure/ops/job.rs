//! Jobs: create (not long-running), get, cancel (long-running), list by tag.
//! The job id is chosen by the caller (deterministic), so a re-PUT of the same body is
//! a no-op and a 409 (same id, different body) is final.

use super::WorkspaceClient;
use crate::azure::error::AzureError;
use crate::azure::lro::Started;
use crate::azure::models::common::Page;
use crate::azure::models::job::{JobProperties, JobResource};
use reqwest::Method;

impl WorkspaceClient {
    /// PUT a job.
    pub async fn job_create(&self, id: &str, job: &JobResource) -> Result<JobResource, AzureError> {
        let request = self
            .request("job.create", Method::PUT, &["jobs", id])
            .json(job)?
            .final_on(&[409]);
        self.arm.send_json(&request).await
    }

    /// GET a job (`None` if it does not exist).
    pub async fn job_get(&self, id: &str) -> Result<Option<JobResource>, AzureError> {
        self.get_optional(self.request("job.get", Method::GET, &["jobs", id]))
            .await
    }

    /// Request cancellation.
    pub async fn job_cancel(&self, id: &str) -> Result<Started<()>, AzureError> {
        self.begin_unit(self.request("job.cancel", Method::POST, &["jobs", id, "cancel"]))
            .await
    }

    /// Command jobs tagged `key=value`. The API filters by tag key only (and has no
    /// experiment filter), so the value is checked here.
    pub async fn job_list_by_tag(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<JobResource>, AzureError> {
        let request = self
            .request("job.list", Method::GET, &["jobs"])
            .query("jobType", "Command")
            .query("tag", key);
        let jobs = self.list_all::<Page<JobResource>>(request).await?;
        Ok(jobs
            .into_iter()
            .filter(|j| match &j.properties {
                JobProperties::Command(c) => {
                    c.base.tags.get(key).map(String::as_str) == Some(value)
                }
                JobProperties::Other => false,
            })
            .collect())
    }
}
