//! One reconcile of an Experiment that runs in Azure, shared by both frontends: observe the
//! desired run (and the superseded one) by id, decide with `reconcile::experiment`, execute
//! submit / cancel, clean up run-based compute. Always observing by the deterministic run id
//! first is what makes submission exactly-once: a crash after the job PUT is adopted, a crash
//! before it re-submits once. A frontend hands in how to read Secrets and sources
//! ([`RunInputs`]) and writes the resulting status itself.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::run_compute::{self, ComputeReadiness, Removal};
use super::{SecretSource, code, job, needs_human};
use crate::api::{
    ComputeTarget, Experiment, ExperimentStatus, RunConfiguration, RunStatus, Source,
};
use crate::azure::WorkspaceClient;
use crate::azure::error::scrub;
use crate::reconcile::compute_target::azure_name;
use crate::reconcile::experiment::{
    self as decide_mod, ExperimentAction, ObservedRun, RunConfigurationState,
};
use crate::reconcile::run_configuration::plan_environment;
use crate::reconcile::{ActionFailure, Decision, Event, ObjectInfo, mark_progressing, record};
use crate::snapshot::{self, Limits, SnapshotOptions};

/// How often to look at a run-based cluster being created or deleted.
pub const COMPUTE_RECHECK: Duration = Duration::from_secs(5);

/// How soon to retry after a retryable failure.
const FAILURE_RETRY: Duration = Duration::from_secs(30);

pub type ExperimentDecision = Decision<ExperimentStatus, ExperimentAction>;

/// What differs per frontend when a run is submitted: where Secrets and ConfigMaps are read
/// (the API server, or the standalone store) and which sources are allowed.
pub trait RunInputs: SecretSource {
    /// The snapshot source of `source`, with the ConfigMap and git credential it references.
    fn source(
        &self,
        source: &Source,
    ) -> impl Future<Output = Result<snapshot::Source, ActionFailure>> + Send;
}

/// Everything one reconcile of an Experiment works with, loaded by the frontend.
pub struct RunWorld<'a, I> {
    pub exp: &'a Experiment,
    pub rc: Option<&'a RunConfiguration>,
    /// Whether the RunConfiguration is Ready, as the frontend sees it.
    pub run_configuration: RunConfigurationState,
    /// The ComputeTarget the RunConfiguration names (None: run-based compute, or not found).
    pub target: Option<&'a ComputeTarget>,
    /// `None`: Azure is not read (paused, or no RunConfiguration); `Some(Err)`: the Workspace
    /// is not usable, and why.
    pub client: Option<Result<WorkspaceClient, ActionFailure>>,
    pub inputs: &'a I,
    /// See [`decide_mod::Input::retry_after_stall`].
    pub retry_after_stall: Duration,
    pub now: jiff::Timestamp,
}

/// The outcome of one [`converge`]: the decision with every executed action folded in (its
/// `actions` are empty), the failure that stopped it, and whether the finalizer may go.
pub struct ConvergedRun {
    pub decision: ExperimentDecision,
    pub failure: Option<ActionFailure>,
    pub release_finalizer: bool,
}

/// How one submit ended.
enum Submitted {
    /// The job was PUT; its first observation, and why the snapshot had to be uploaded whole
    /// (the datastore path was refused), if it was.
    Run(Box<ObservedRun>, Option<String>),
    /// The run-based cluster is still being created: submit on a later reconcile.
    WaitingForCompute,
}

/// [`RunWorld`] with the object's facts worked out and the client split off.
struct Run<'a, I> {
    exp: &'a Experiment,
    info: ObjectInfo,
    rc: Option<&'a RunConfiguration>,
    target: Option<&'a ComputeTarget>,
    inputs: &'a I,
    now: jiff::Timestamp,
}

async fn observe(
    client: Option<&WorkspaceClient>,
    id: &str,
    status: Option<&ExperimentStatus>,
) -> Result<Option<ObservedRun>, ActionFailure> {
    let recorded = status.and_then(|s| s.current_run.iter().chain(&s.runs).find(|r| r.id == id));
    match client {
        Some(client) => job::observe(client, id, recorded).await,
        None => Ok(None),
    }
}

impl<I: RunInputs> Run<'_, I> {
    fn owner(&self) -> String {
        format!("{}/{}", self.info.namespace, self.info.name)
    }

    fn snapshot_options(&self) -> SnapshotOptions {
        let mut options = SnapshotOptions::default();
        let defaults = Limits::default();
        if let Some(l) = &self.exp.spec.snapshot_limits {
            let positive =
                |v: Option<i64>, d: u64| v.and_then(|v| u64::try_from(v).ok()).unwrap_or(d);
            options.limits = Limits {
                max_bytes: positive(l.max_bytes, defaults.max_bytes),
                max_files: positive(l.max_files, defaults.max_files),
            };
        }
        options
    }

    /// Creates the run's cluster (if the RunConfiguration asks for one) and waits for it,
    /// snapshots and stages the code, then PUTs the job.
    async fn submit(
        &self,
        client: &WorkspaceClient,
        run_id: &str,
    ) -> Result<Submitted, ActionFailure> {
        let Some(rc) = self.rc else {
            return Err(needs_human(
                "RunConfigurationNotFound",
                "the RunConfiguration disappeared",
            ));
        };
        let rc_info = ObjectInfo::of(rc);
        let plan = plan_environment(&rc_info, &rc.spec).ok_or_else(|| {
            needs_human(
                "InvalidEnvironment",
                "the RunConfiguration has no environment",
            )
        })?;
        let workspace = client.workspace();
        let compute = match (&rc.spec.aml_compute, self.target) {
            (Some(run_based), _) => {
                let name = run_compute::compute_name(run_id);
                match run_compute::ensure(client, &name, run_based, &self.owner(), self.inputs)
                    .await?
                {
                    ComputeReadiness::Ready => name,
                    ComputeReadiness::Provisioning => return Ok(Submitted::WaitingForCompute),
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
        let source = self.inputs.source(&self.exp.spec.source).await?;
        let snapshot = code::take(source, self.snapshot_options()).await?;
        let staged = code::stage(client, Arc::new(snapshot)).await?;
        tracing::info!(experiment = %self.info.name, namespace = %self.info.namespace, snapshot = %staged.snapshot_id, reused = staged.reused, uploaded_bytes = staged.uploaded_bytes, "code staged");
        let body = job::build(&job::JobInput {
            name: &self.info.name,
            namespace: &self.info.namespace,
            uid: &self.info.uid,
            generation: self.info.generation,
            experiment: &self.exp.spec,
            run_configuration: &rc.spec,
            environment: &plan,
            environment_id: super::environment::environment_id(&plan, workspace),
            code_id: staged.code_id.clone(),
            compute_id: workspace.compute_id(&compute),
            snapshot_id: &staged.snapshot_id,
            provenance: staged.provenance.as_ref(),
        })?;
        let uploaded_whole = match staged.upload_path {
            Some(code::UploadPath::PendingUpload { reason }) => Some(reason),
            _ => None,
        };
        job::submit(client, run_id, &body)
            .await
            .map(|o| Submitted::Run(Box::new(o), uploaded_whole))
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
            self.info.generation,
            self.now,
        );
        d.requeue_after = Some(COMPUTE_RECHECK);
    }

    /// Deletes the run-based clusters of runs that are over. When the finalizer is about to
    /// go (`releasing`) every cluster goes, including the one the desired run would use (its
    /// name is derived, so a crash before the status write cannot hide it). Returns true while
    /// some cluster is still there.
    async fn clean_up_computes(
        &self,
        client: &WorkspaceClient,
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
            let over = releasing || decide_mod::is_over(run) || Some(&run.id) != current.as_ref();
            if over && let Some(name) = &run.run_based_compute {
                names.push(name.clone());
                owners.push(run);
            }
        }
        let derived = self
            .rc
            .filter(|rc| releasing && rc.spec.aml_compute.is_some())
            .map(|_| run_compute::compute_name(&decide_mod::run_id(&self.info)))
            .filter(|n| !names.contains(n));
        let mut busy = false;
        for name in names.iter().chain(derived.iter()) {
            match run_compute::remove(client, name).await? {
                Removal::Gone => {
                    for run in owners.iter_mut() {
                        if run.run_based_compute.as_deref() == Some(name) {
                            run.run_based_compute = None;
                            d.events.push(Event::normal(
                                "ComputeDeleted",
                                format!("run-based compute {name} of run {} deleted", run.id),
                            ));
                        }
                    }
                }
                Removal::Deleting => busy = true,
            }
        }
        Ok(busy)
    }
}

/// Runs that had a run-based cluster keep it recorded until it is deleted, even when the
/// decision rebuilt the run's status (a resubmit after a failure).
fn carry_computes(old: Option<&ExperimentStatus>, new: &mut ExperimentStatus) {
    let Some(old) = old else { return };
    let recorded: Vec<&RunStatus> = old
        .current_run
        .iter()
        .chain(old.runs.iter())
        .filter(|r| r.run_based_compute.is_some())
        .collect();
    for run in new.current_run.iter_mut().chain(new.runs.iter_mut()) {
        if run.run_based_compute.is_none()
            && let Some(o) = recorded.iter().find(|o| o.id == run.id)
        {
            run.run_based_compute = o.run_based_compute.clone();
        }
    }
}

fn failed_decision(
    old: Option<&ExperimentStatus>,
    info: &ObjectInfo,
    failure: &ActionFailure,
    now: jiff::Timestamp,
) -> ExperimentDecision {
    let mut d = Decision::new(old.cloned().unwrap_or_default());
    d.status.observed_generation = info.generation;
    record(
        &mut d.status.conditions,
        &mut d.events,
        failure,
        info.generation,
        now,
    );
    d.requeue_after = failure.retryable.then_some(FAILURE_RETRY);
    d
}

/// One reconcile of an Experiment against Azure: observe, decide, execute the actions in
/// order, then delete the run-based clusters of runs that are over. Writes nothing to Azure
/// while paused; a deletion still observes (it needs to know what runs).
pub async fn converge<I: RunInputs>(world: RunWorld<'_, I>) -> ConvergedRun {
    let RunWorld {
        exp,
        rc,
        run_configuration,
        target,
        client,
        inputs,
        retry_after_stall,
        now,
    } = world;
    let info = ObjectInfo::of(exp);
    let old = exp.status.as_ref();
    let (client, mut failure) = match client {
        Some(Ok(c)) => (Some(c), None),
        Some(Err(f)) => (None, Some(f)),
        None => (None, None),
    };
    let run = Run {
        exp,
        info: info.clone(),
        rc,
        target,
        inputs,
        now,
    };
    let desired_id = decide_mod::run_id(&info);
    let previous_id = old
        .and_then(|s| s.current_run.as_ref())
        .map(|r| r.id.clone())
        .filter(|id| *id != desired_id);
    let observed = async {
        let desired = observe(client.as_ref(), &desired_id, old).await?;
        let previous = match &previous_id {
            Some(id) => observe(client.as_ref(), id, old).await?,
            None => None,
        };
        Ok::<_, ActionFailure>((desired, previous))
    }
    .await;
    let mut d = match (observed, &failure) {
        // The Workspace is not usable: say so rather than deciding on a view without Azure.
        (_, Some(f)) if !info.deleting => failed_decision(old, &info, f, now),
        (Ok((desired, previous)), _) => decide_mod::reconcile(decide_mod::Input {
            info: &info,
            spec: &exp.spec,
            status: old,
            run_configuration,
            desired: desired.as_ref(),
            previous: previous.as_ref(),
            retry_after_stall,
            now,
        }),
        (Err(f), _) => {
            let d = failed_decision(old, &info, &f, now);
            failure = Some(f);
            d
        }
    };
    carry_computes(old, &mut d.status);
    let mut release = false;
    let writes = client.as_ref().filter(|_| !info.paused);
    for action in std::mem::take(&mut d.actions) {
        let Some(client) = writes else {
            if action == ExperimentAction::ReleaseFinalizer
                && decide_mod::unfinished_runs(&d.status).next().is_none()
            {
                // Nothing was ever started in Azure (or all of it is over): nothing to clean up.
                release = true;
            } else if info.deleting {
                let why = failure
                    .as_ref()
                    .map(|f| f.message.clone())
                    .unwrap_or_else(|| {
                        "reconciliation is paused by the amlops.io/reconcile annotation".into()
                    });
                let msg = format!("deletion waits: cannot clean up in Azure: {why}");
                mark_progressing(
                    &mut d.status.conditions,
                    "CleanupBlocked",
                    &msg,
                    info.generation,
                    now,
                );
                d.requeue_after = Some(FAILURE_RETRY);
            }
            break;
        };
        let result = match action {
            ExperimentAction::Submit { run_id } => match run.submit(client, &run_id).await {
                Ok(Submitted::Run(observed, uploaded_whole)) => {
                    decide_mod::fold_submitted(&mut d, &info, &exp.spec, &observed, now);
                    if let Some(reason) = uploaded_whole {
                        d.events.push(Event::warning(
                            "SnapshotUploadedWhole",
                            format!(
                                "the default datastore refused amlops, so the snapshot was uploaded whole through startPendingUpload (every snapshot of this workspace is, until the datastore permissions are granted): {}",
                                scrub(&reason)
                            ),
                        ));
                    }
                    Ok(())
                }
                Ok(Submitted::WaitingForCompute) => {
                    run.waiting_for_compute(&mut d, &run_id);
                    Ok(())
                }
                Err(f) => {
                    d.requeue_after = None;
                    decide_mod::record_refusal(&mut d.status, &run_id, &f);
                    Err(f)
                }
            },
            ExperimentAction::Cancel { run_id } => job::cancel(client, &run_id).await.map(|()| {
                d.events.push(Event::normal(
                    "Cancelling",
                    format!("cancelling run {run_id}"),
                ))
            }),
            ExperimentAction::ReleaseFinalizer => {
                release = true;
                Ok(())
            }
        };
        if let Err(f) = result {
            record(
                &mut d.status.conditions,
                &mut d.events,
                &f,
                info.generation,
                now,
            );
            failure = Some(f);
        }
    }
    if let Some(client) = writes {
        match run.clean_up_computes(client, &mut d, release).await {
            Ok(false) => {}
            Ok(true) => {
                release = false;
                d.requeue_after = Some(
                    d.requeue_after
                        .map_or(COMPUTE_RECHECK, |r| r.min(COMPUTE_RECHECK)),
                );
            }
            Err(f) => {
                release = false;
                record(
                    &mut d.status.conditions,
                    &mut d.events,
                    &f,
                    info.generation,
                    now,
                );
                failure = Some(f);
            }
        }
    }
    ConvergedRun {
        decision: d,
        failure,
        release_finalizer: release,
    }
}
