//! Runs on the `local` ComputeTarget when the controller runs in a cluster: each run is a
//! Kubernetes Job in the Experiment's namespace, named by the run id and owned by the
//! Experiment, with the source snapshot delivered in a ConfigMap (see docs/local-jobs.md).
//!
//! Pure pieces build the objects ([`manifest`], [`archive`], [`script`]) and read them back
//! ([`state`]); [`client`] is the only file that talks to the API server. [`build`] is the
//! one call that turns a run into the two objects [`KubeJobs::submit`] creates.

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

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;

use crate::api::{ExperimentSpec, GitProvenance, LocalCompute, RunConfigurationSpec};
use crate::reconcile::ActionFailure;
use crate::reconcile::ObjectInfo;
use crate::reconcile::run_configuration::EnvironmentPlan;
use crate::snapshot::Snapshot;

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

/// The two objects of one run: the ConfigMap holding the source archive (create it first)
/// and the Job that unpacks and runs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    pub config_map: ConfigMap,
    pub job: Job,
}

/// Packs the snapshot and builds the run's ConfigMap and Job. Reads the snapshot's files
/// (blocking: call it from `spawn_blocking` in async code). Refuses, as a failure that needs
/// a human, what a cluster run cannot do: multi-node runs, an `existing` environment, conda
/// packages without an image that can install them, a snapshot too large for a ConfigMap.
pub fn build(run: &JobRun<'_>, snapshot: &Snapshot) -> Result<Submission, ActionFailure> {
    let job = manifest::job(run)?;
    let archive = SourceArchive::pack(snapshot, MAX_ARCHIVE_BYTES)?;
    Ok(Submission {
        config_map: archive::config_map(run, &archive),
        job,
    })
}

#[cfg(test)]
pub(crate) mod fixtures;
