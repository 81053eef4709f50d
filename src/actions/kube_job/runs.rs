//! Kubernetes Jobs as a [`RunBackend`]: a `local` run of the operator in a cluster is
//! snapshotted exactly as on a laptop or for Azure, packed into the run's ConfigMap and
//! started as a Job in the Experiment's namespace.

use std::sync::Arc;

use super::{JobRun, KubeJobs, MAX_ARCHIVE_BYTES, SourceArchive, archive, manifest};
use crate::actions::experiment::ExperimentDecision;
use crate::actions::local::to_api_provenance;
use crate::actions::run_backend::{RunBackend, Submitted, planned};
use crate::actions::source::RunInputs;
use crate::actions::{code, transient};
use crate::api::{Experiment, LocalCompute, RunConfiguration, RunStatus};
use crate::reconcile::experiment::ObservedRun;
use crate::reconcile::{ActionFailure, ObjectInfo};

/// The Job backend for one reconcile of one Experiment.
pub struct KubeJobRuns<'a, I> {
    pub jobs: KubeJobs,
    pub exp: &'a Experiment,
    pub rc: Option<&'a RunConfiguration>,
    /// The `local` settings of the RunConfiguration's ComputeTarget.
    pub target: &'a LocalCompute,
    pub inputs: &'a I,
}

impl<I: RunInputs> RunBackend for KubeJobRuns<'_, I> {
    async fn observe(
        &self,
        run_id: &str,
        _recorded: Option<&RunStatus>,
    ) -> Result<Option<ObservedRun>, ActionFailure> {
        self.jobs.observe(run_id).await
    }

    async fn submit(
        &self,
        run_id: &str,
        _d: &mut ExperimentDecision,
    ) -> Result<Submitted, ActionFailure> {
        let (rc, plan) = planned(self.rc)?;
        let source = self.inputs.source(&self.exp.spec.source).await?;
        let snapshot = Arc::new(code::take(source, code::snapshot_options(&self.exp.spec)).await?);
        let owner = ObjectInfo::of(self.exp);
        let git = snapshot.provenance.as_ref().map(to_api_provenance);
        let run = JobRun {
            run_id,
            owner: &owner,
            experiment: &self.exp.spec,
            run_configuration: &rc.spec,
            environment: &plan,
            target: self.target,
            snapshot_id: &snapshot.id,
            git: git.as_ref(),
        };
        // The refusals of the manifest (multi-node, environment) come before any packing.
        let job = manifest::job(&run)?;
        let packed = snapshot.clone();
        let archive =
            tokio::task::spawn_blocking(move || SourceArchive::pack(&packed, MAX_ARCHIVE_BYTES))
                .await
                .map_err(|e| transient("SnapshotFailed", format!("packing task failed: {e}")))??;
        self.jobs
            .submit(job, archive::config_map(&run, &archive))
            .await?;
        tracing::info!(experiment = %owner.name, namespace = %owner.namespace, run = %run_id, snapshot = %snapshot.id, "job created");
        match self.jobs.observe(run_id).await? {
            Some(observed) => Ok(Submitted::Run(Box::new(observed))),
            None => Err(transient(
                "JobConflict",
                format!("the Job of run {run_id} was created and is gone again"),
            )),
        }
    }

    async fn cancel(&self, run_id: &str) -> Result<(), ActionFailure> {
        self.jobs.cancel(run_id).await
    }
}
