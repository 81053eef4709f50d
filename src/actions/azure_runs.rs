//! Runs in Azure ML: create the run's cluster when the RunConfiguration asks for one, snapshot
//! and stage the code, PUT the command job; observe it through ARM and run history; cancel it;
//! delete run-based clusters once their runs are over.

use std::sync::Arc;
use std::time::Duration;

use super::experiment::ExperimentDecision;
use super::run_backend::{RunBackend, Submitted, planned};
use super::run_compute::{self, ComputeReadiness, Removal};
use super::source::RunInputs;
use super::{code, job, needs_human};
use crate::api::{ComputeTarget, Experiment, RunConfiguration, RunStatus};
use crate::azure::WorkspaceClient;
use crate::azure::error::scrub;
use crate::reconcile::compute_target::azure_name;
use crate::reconcile::experiment::{self as decide, ObservedRun};
use crate::reconcile::{ActionFailure, Event, ObjectInfo, mark_progressing};

/// How often to look at a run-based cluster being created or deleted.
pub const COMPUTE_RECHECK: Duration = Duration::from_secs(5);

/// The Azure ML backend for one reconcile of one Experiment.
pub struct AzureRuns<'a, I> {
    pub client: WorkspaceClient,
    pub exp: &'a Experiment,
    pub rc: Option<&'a RunConfiguration>,
    /// The ComputeTarget the RunConfiguration names (None: run-based compute, or not found).
    pub target: Option<&'a ComputeTarget>,
    pub inputs: &'a I,
    pub now: jiff::Timestamp,
}

impl<I: RunInputs> AzureRuns<'_, I> {
    fn info(&self) -> ObjectInfo {
        ObjectInfo::of(self.exp)
    }

    /// Records a submit that is waiting for its run-based cluster.
    fn waiting_for_compute(&self, d: &mut ExperimentDecision, run_id: &str) {
        let name = run_compute::compute_name(run_id);
        if let Some(run) = d.status.current_run.as_mut() {
            if run.run_based_compute.is_none() {
                d.events.push(Event::normal(
                    "CreatingCompute",
                    format!("creating run-based compute {name} for run {run_id}"),
                ));
            }
            run.run_based_compute = Some(name.clone());
        }
        let msg = format!("waiting for run-based compute {name} to be provisioned");
        mark_progressing(
            &mut d.status.conditions,
            "ProvisioningCompute",
            &msg,
            self.info().generation,
            self.now,
        );
        d.requeue_after = Some(COMPUTE_RECHECK);
    }
}

impl<I: RunInputs> RunBackend for AzureRuns<'_, I> {
    async fn observe(
        &self,
        run_id: &str,
        recorded: Option<&RunStatus>,
    ) -> Result<Option<ObservedRun>, ActionFailure> {
        job::observe(&self.client, run_id, recorded).await
    }

    async fn submit(
        &self,
        run_id: &str,
        d: &mut ExperimentDecision,
    ) -> Result<Submitted, ActionFailure> {
        let client = &self.client;
        let info = self.info();
        let (rc, plan) = planned(self.rc)?;
        let workspace = client.workspace();
        let compute = match (&rc.spec.aml_compute, self.target) {
            (Some(run_based), _) => {
                let name = run_compute::compute_name(run_id);
                let owner = format!("{}/{}", info.namespace, info.name);
                match run_compute::ensure(client, &name, run_based, &owner, self.inputs).await? {
                    ComputeReadiness::Ready => name,
                    ComputeReadiness::Provisioning => {
                        self.waiting_for_compute(d, run_id);
                        return Ok(Submitted::Waiting);
                    }
                }
            }
            (None, Some(ct)) => azure_name(&ObjectInfo::of(ct), &ct.spec),
            (None, None) => {
                return Err(needs_human(
                    "ComputeTargetNotFound",
                    "the RunConfiguration's ComputeTarget disappeared",
                ));
            }
        };
        // Refused before anything is uploaded.
        let instance_type = job::instance_type(&rc.spec, self.target.map(|t| &t.spec))?;
        let source = self.inputs.source(&self.exp.spec.source).await?;
        let snapshot = code::take(source, code::snapshot_options(&self.exp.spec)).await?;
        let staged = code::stage(client, Arc::new(snapshot)).await?;
        tracing::info!(experiment = %info.name, namespace = %info.namespace, snapshot = %staged.snapshot_id, reused = staged.reused, uploaded_bytes = staged.uploaded_bytes, "code staged");
        let body = job::build(&job::JobInput {
            name: &info.name,
            namespace: &info.namespace,
            uid: &info.uid,
            generation: info.generation,
            experiment: &self.exp.spec,
            run_configuration: &rc.spec,
            environment: &plan,
            environment_id: super::environment::environment_id(&plan, workspace),
            code_id: staged.code_id.clone(),
            compute_id: workspace.compute_id(&compute),
            snapshot_id: &staged.snapshot_id,
            provenance: staged.provenance.as_ref(),
            instance_type,
        })?;
        let observed = job::submit(client, run_id, &body).await?;
        if let Some(code::UploadPath::PendingUpload { reason }) = staged.upload_path {
            d.events.push(Event::warning(
                "SnapshotUploadedWhole",
                format!(
                    "the default datastore refused amlops, so the snapshot was uploaded whole through startPendingUpload (every snapshot of this workspace is, until the datastore permissions are granted): {}",
                    scrub(&reason)
                ),
            ));
        }
        Ok(Submitted::Run(Box::new(observed)))
    }

    async fn cancel(&self, run_id: &str) -> Result<(), ActionFailure> {
        job::cancel(&self.client, run_id).await
    }

    /// Deletes the run-based clusters of runs that are over. When the finalizer is about to
    /// go every cluster goes, including the one the desired run would use (its name is
    /// derived, so a crash before the status write cannot hide it).
    async fn clean_up(
        &self,
        d: &mut ExperimentDecision,
        releasing: bool,
    ) -> Result<bool, ActionFailure> {
        let current = d.status.current_run.as_ref().map(|r| r.id.clone());
        let mut names: Vec<String> = Vec::new();
        let runs = d
            .status
            .current_run
            .iter_mut()
            .chain(d.status.runs.iter_mut());
        let mut owners: Vec<&mut RunStatus> = Vec::new();
        for run in runs {
            let over = releasing || decide::is_over(run) || Some(&run.id) != current.as_ref();
            if over && let Some(name) = &run.run_based_compute {
                names.push(name.clone());
                owners.push(run);
            }
        }
        let derived = self
            .rc
            .filter(|rc| releasing && rc.spec.aml_compute.is_some())
            .map(|_| run_compute::compute_name(&decide::run_id(&self.info())))
            .filter(|n| !names.contains(n));
        let mut busy = false;
        let mut events = Vec::new();
        for name in names.iter().chain(derived.iter()) {
            match run_compute::remove(&self.client, name).await? {
                Removal::Gone => {
                    for run in owners.iter_mut() {
                        if run.run_based_compute.as_deref() == Some(name) {
                            run.run_based_compute = None;
                            events.push(Event::normal(
                                "ComputeDeleted",
                                format!("run-based compute {name} of run {} deleted", run.id),
                            ));
                        }
                    }
                }
                Removal::Deleting => busy = true,
            }
        }
        d.events.extend(events);
        if busy {
            d.requeue_after = Some(
                d.requeue_after
                    .map_or(COMPUTE_RECHECK, |r| r.min(COMPUTE_RECHECK)),
            );
        }
        Ok(busy)
    }
}
