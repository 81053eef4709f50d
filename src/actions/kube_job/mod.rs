//! Runs on the `local` ComputeTarget when the controller runs in a cluster: each run is a
//! Kubernetes Job in the Experiment's namespace, named by the run id and owned by the
//! Experiment, with the source snapshot delivered in a ConfigMap (see docs/local-jobs.md).
//!
//! Pure pieces build the objects ([`manifest`], [`archive`], [`script`]) and read them back
//! ([`state`]); [`client`] is the only file that talks to the API server; [`runs`] is the
//! [`crate::actions::run_backend::RunBackend`] over them.

pub mod archive;
pub mod client;
pub mod manifest;
pub mod names;
pub mod runs;
pub mod script;
pub mod state;

pub use archive::{MAX_ARCHIVE_BYTES, SourceArchive};
pub use client::KubeJobs;
pub use manifest::DEFAULT_IMAGE;
pub use runs::KubeJobRuns;

use crate::api::{ExperimentSpec, GitProvenance, LocalCompute, RunConfigurationSpec};
use crate::reconcile::ObjectInfo;
use crate::reconcile::run_configuration::EnvironmentPlan;

/// Everything one run's Job is built from, borrowed from the objects.
#[derive(Clone, Copy, Debug)]
pub struct JobRun<'a> {
    /// `reconcile::experiment::run_id` of the run.
    pub run_id: &'a str,
    /// The Experiment: its namespace is the Job's, its name and uid make the ownerReference.
    pub owner: &'a ObjectInfo,
    pub experiment: &'a ExperimentSpec,
    pub run_configuration: &'a RunConfigurationSpec,
    pub environment: &'a EnvironmentPlan,
    /// The `local` settings of the RunConfiguration's ComputeTarget.
    pub target: &'a LocalCompute,
    /// Content hash of the snapshot the run starts from (recorded on the Job).
    pub snapshot_id: &'a str,
    pub git: Option<&'a GitProvenance>,
}

#[cfg(test)]
pub(crate) mod fixtures;
