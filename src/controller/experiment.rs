//! The Experiment controller: observe the desired run (and the superseded one) by id, decide
//! with `reconcile::experiment`, execute submit / cancel, clean up run-based compute, write
//! status. Always observing by the deterministic run id first is what makes submission
//! exactly-once: a crash after the job PUT is adopted, a crash before it re-submits once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, reflector, watcher};
use kube::{Api, ResourceExt};

use super::context::Shared;
use super::kube_io::{Error, Finish, finish, has_finalizer, relevant_change, set_finalizer};
use super::readiness::{not_ready, readiness_key};
use super::run_configuration::{Resolved, record, resolve, workspace_client};
use super::scope::{Scope, shutdown_future};
use super::secrets::KubeSecrets;
use super::workspace::resync_period;
use crate::actions::run_compute::{self, ComputeReadiness, Removal};
use crate::actions::source::{ConfigMapData, snapshot_source};
use crate::actions::{SecretSource, code, job, needs_human};
use crate::api::{Experiment, ExperimentStatus, RunConfiguration, RunStatus};
use crate::azure::WorkspaceClient;
use crate::reconcile::compute_target::azure_name;
use crate::reconcile::experiment::{
    self as decide_mod, ExperimentAction, ObservedRun, RunConfigurationState, RunState,
};
use crate::reconcile::run_configuration::plan_environment;
use crate::reconcile::{ActionFailure, Decision, Event, ObjectInfo, mark_progressing};
use crate::snapshot::{self, Limits, SnapshotOptions};

pub const KIND: &str = "Experiment";

/// How often to look at a run-based cluster being created or deleted.
const COMPUTE_RECHECK: Duration = Duration::from_secs(5);

type ExpDecision = Decision<ExperimentStatus, ExperimentAction>;

pub struct Ctx {
    pub shared: Arc<Shared>,
}

/// Everything one reconcile works with, loaded once.
struct World<'a> {
    shared: &'a Shared,
    exp: &'a Experiment,
    info: ObjectInfo,
    rc: Option<RunConfiguration>,
    resolved: Option<Resolved>,
    client: Option<WorkspaceClient>,
    now: jiff::Timestamp,
}

/// How one submit ended.
enum Submitted {
    Run(Box<ObservedRun>),
    /// The run-based cluster is still being created: submit on a later reconcile.
    WaitingForCompute,
}

fn run_configuration_state(rc: Option<&RunConfiguration>) -> RunConfigurationState {
    let Some(rc) = rc else {
        return RunConfigurationState::Missing;
    };
    let conds = rc.status.as_ref().map(|s| s.conditions.as_slice());
    match not_ready(conds.unwrap_or_default(), rc.metadata.generation) {
        None => RunConfigurationState::Ready,
        Some((reason, message)) => RunConfigurationState::NotReady { reason, message },
    }
}

fn is_terminal(run: &RunStatus) -> bool {
    RunState::parse(&run.state).is_some_and(RunState::is_terminal)
}

impl World<'_> {
    fn owner(&self) -> String {
        format!("{}/{}", self.info.namespace, self.info.name)
    }

    async fn observe(&self, id: &str) -> Result<Option<ObservedRun>, ActionFailure> {
        match &self.client {
            Some(client) => job::observe(client, id).await,
            None => Ok(None),
        }
    }

    async fn config_map(&self, name: &str) -> Result<Option<ConfigMapData>, ActionFailure> {
        let api: Api<ConfigMap> = Api::namespaced(self.shared.client.clone(), &self.info.namespace);
        let cm = api.get_opt(name).await.map_err(|e| ActionFailure {
            retryable: true,
            reason: "KubernetesApiError".into(),
            message: format!("reading ConfigMap {name:?}: {e}"),
        })?;
        Ok(cm.map(|cm| ConfigMapData {
            data: cm.data.unwrap_or_default().into_iter().collect(),
            binary_data: cm
                .binary_data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect(),
        }))
    }

    /// The snapshot source of the spec, with the ConfigMap and git credential it references.
    async fn source(&self) -> Result<snapshot::Source, ActionFailure> {
        let source = &self.exp.spec.source;
        if source.local_path.is_some() {
            return Err(needs_human(
                "LocalPathNotAllowed",
                "spec.source.localPath works with `amlops apply` only; in a cluster use git, configMap or inline",
            ));
        }
        let config_map = match &source.config_map {
            Some(r) => self.config_map(&r.name).await?,
            None => None,
        };
        let git_secret = match source.git.as_ref().and_then(|g| g.secret_ref.as_ref()) {
            Some(r) => {
                let secrets = KubeSecrets::new(self.shared.client.clone(), &self.info.namespace);
                match secrets.secret_value(&r.name, &r.key).await {
                    Ok(v) => Some((r.key.clone(), snapshot::Secret::new(v.expose()))),
                    Err(crate::actions::SecretError::NotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                }
            }
            None => None,
        };
        snapshot_source(source, config_map, git_secret)
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
        let Some(rc) = &self.rc else {
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
        let compute = match (
            &rc.spec.aml_compute,
            self.resolved.as_ref().and_then(|r| r.target.as_ref()),
        ) {
            (Some(run_based), _) => {
                let name = run_compute::compute_name(run_id);
                let secrets = KubeSecrets::new(self.shared.client.clone(), &self.info.namespace);
                match run_compute::ensure(client, &name, run_based, &self.owner(), &secrets).await?
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
        let snapshot = code::take(self.source().await?, self.snapshot_options()).await?;
        let staged = code::stage(client, std::sync::Arc::new(snapshot)).await?;
        tracing::info!(experiment = %self.info.name, namespace = %self.info.namespace, snapshot = %staged.snapshot_id, reused = staged.reused, uploaded_bytes = staged.uploaded_bytes, "code staged");
        let body = job::build(&job::JobInput {
            name: &self.info.name,
            namespace: &self.info.namespace,
            uid: &self.info.uid,
            generation: self.info.generation,
            experiment: &self.exp.spec,
            run_configuration: &rc.spec,
            environment: &plan,
            environment_id: workspace.environment_version_id(plan.name(), plan.version()),
            code_id: staged.code_id.clone(),
            compute_id: workspace.compute_id(&compute),
            snapshot_id: &staged.snapshot_id,
            provenance: staged.provenance.as_ref(),
        })?;
        job::submit(client, run_id, &body)
            .await
            .map(|o| Submitted::Run(Box::new(o)))
    }

    fn submitted(&self, d: &mut ExpDecision, observed: ObservedRun) {
        decide_mod::fold_submitted(d, &self.info, &self.exp.spec, &observed, self.now);
    }

    /// Deletes the run-based clusters of runs that are over. When the finalizer is about to
    /// go (`releasing`) every cluster goes, including the one the desired run would use (its
    /// name is derived, so a crash before the status write cannot hide it). Returns true while
    /// some cluster is still there.
    async fn clean_up_computes(
        &self,
        client: &WorkspaceClient,
        d: &mut ExpDecision,
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
            let over = releasing || is_terminal(run) || Some(&run.id) != current.as_ref();
            if over && let Some(name) = &run.run_based_compute {
                names.push(name.clone());
                owners.push(run);
            }
        }
        let derived = self
            .rc
            .as_ref()
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
) -> ExpDecision {
    let mut d = Decision::new(old.cloned().unwrap_or_default());
    d.status.observed_generation = info.generation;
    record(
        &mut d.status.conditions,
        &mut d.events,
        failure,
        info.generation,
        now,
    );
    d.requeue_after = failure.retryable.then_some(Duration::from_secs(30));
    d
}

async fn reconcile(exp: Arc<Experiment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let started = Instant::now();
    let shared = &ctx.shared;
    let info = ObjectInfo::of(exp.as_ref());
    let api: Api<Experiment> = Api::namespaced(shared.client.clone(), &info.namespace);
    let holds = has_finalizer(exp.as_ref());
    if info.deleting && !holds {
        return Ok(Action::await_change());
    }
    if !info.deleting && !holds {
        set_finalizer(&api, exp.as_ref(), true).await?;
    }
    let now = jiff::Timestamp::now();
    let rc = Api::<RunConfiguration>::namespaced(shared.client.clone(), &info.namespace)
        .get_opt(&exp.spec.run_configuration_ref.name)
        .await?;
    let resolved = match &rc {
        Some(rc) => Some(resolve(&shared.client, &info.namespace, rc).await?),
        None => None,
    };
    let old = exp.status.as_ref();
    let mut failure: Option<ActionFailure> = None;
    // Azure is read unless paused; a deletion reads even then (it needs to know what runs).
    let client = match &resolved {
        Some(r) if !info.paused || info.deleting => match workspace_client(shared, r).await {
            Ok(c) => Some(c),
            Err(f) => {
                failure = Some(f);
                None
            }
        },
        _ => None,
    };
    let world = World {
        shared,
        exp: exp.as_ref(),
        info: info.clone(),
        rc,
        resolved,
        client,
        now,
    };
    let desired_id = decide_mod::run_id(&info);
    let previous_id = old
        .and_then(|s| s.current_run.as_ref())
        .map(|r| r.id.clone())
        .filter(|id| *id != desired_id);
    let observed = async {
        let desired = world.observe(&desired_id).await?;
        let previous = match &previous_id {
            Some(id) => world.observe(id).await?,
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
            run_configuration: run_configuration_state(world.rc.as_ref()),
            desired: desired.as_ref(),
            previous: previous.as_ref(),
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
    let writes_allowed = !info.paused;
    for action in std::mem::take(&mut d.actions) {
        let Some(client) = world.client.as_ref().filter(|_| writes_allowed) else {
            if action == ExperimentAction::ReleaseFinalizer && !has_unfinished_work(&d.status) {
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
                d.requeue_after = Some(Duration::from_secs(30));
            }
            break;
        };
        match action {
            ExperimentAction::Submit { run_id } => match world.submit(client, &run_id).await {
                Ok(Submitted::Run(observed)) => world.submitted(&mut d, *observed),
                Ok(Submitted::WaitingForCompute) => {
                    let name = run_compute::compute_name(&run_id);
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
                        info.generation,
                        now,
                    );
                    d.requeue_after = Some(COMPUTE_RECHECK);
                }
                Err(f) => {
                    record(
                        &mut d.status.conditions,
                        &mut d.events,
                        &f,
                        info.generation,
                        now,
                    );
                    d.requeue_after = None;
                    failure = Some(f);
                }
            },
            ExperimentAction::Cancel { run_id } => match job::cancel(client, &run_id).await {
                Ok(()) => d.events.push(Event::normal(
                    "Cancelling",
                    format!("cancelling run {run_id}"),
                )),
                Err(f) => {
                    record(
                        &mut d.status.conditions,
                        &mut d.events,
                        &f,
                        info.generation,
                        now,
                    );
                    failure = Some(f);
                }
            },
            ExperimentAction::ReleaseFinalizer => release = true,
        }
    }
    if let Some(client) = world.client.as_ref().filter(|_| writes_allowed) {
        match world.clean_up_computes(client, &mut d, release).await {
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
    let resync = world
        .resolved
        .as_ref()
        .and_then(|r| r.workspace.as_ref())
        .map(|w| resync_period(shared, &w.spec))
        .unwrap_or(shared.settings.resync_period);
    finish(
        shared,
        &api,
        exp.as_ref(),
        Finish {
            kind: KIND,
            old_status: old,
            status: &d.status,
            events: &d.events,
            requeue_after: d.requeue_after,
            failure: failure.map(|f| (f.reason, f.retryable)),
            release_finalizer: release,
            resync,
            started,
        },
    )
    .await
}

/// A run that may still be going, or a run-based cluster that may still exist.
fn has_unfinished_work(status: &ExperimentStatus) -> bool {
    status
        .current_run
        .iter()
        .chain(status.runs.iter())
        .any(|r| r.run_based_compute.is_some() || !is_terminal(r))
}

fn error_policy(_: Arc<Experiment>, err: &Error, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %err, "Experiment reconcile failed");
    ctx.shared.metrics.error(KIND, "KubernetesApiError");
    Action::requeue(super::context::FIRST_BACKOFF * 5)
}

fn users_of_run_configuration(
    store: &Store<Experiment>,
    rc: &RunConfiguration,
) -> Vec<ObjectRef<Experiment>> {
    let name = rc.name_any();
    store
        .state()
        .iter()
        .filter(|e| e.namespace() == rc.namespace() && e.spec.run_configuration_ref.name == name)
        .map(|e| ObjectRef::from_obj(e.as_ref()))
        .collect()
}

/// Runs the Experiment controller for one scope until shutdown.
pub async fn run(shared: Arc<Shared>, scope: Scope) {
    let (reader, writer) = reflector::store();
    let main = watcher(
        scope.api::<Experiment>(&shared.client),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .touched_objects()
    .predicate_filter(relevant_change, Default::default());
    let run_configurations = watcher(
        scope.api::<RunConfiguration>(&shared.client),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects()
    .predicate_filter(
        |rc: &RunConfiguration| {
            let conds = rc.status.as_ref().map(|s| s.conditions.as_slice());
            readiness_key(conds.unwrap_or_default(), rc.metadata.generation)
        },
        Default::default(),
    );
    let by_rc = reader.clone();
    Controller::for_stream(main, reader)
        .with_config(
            kube::runtime::controller::Config::default().concurrency(shared.settings.concurrency),
        )
        .watches_stream(run_configurations, move |rc| {
            users_of_run_configuration(&by_rc, &rc)
        })
        .graceful_shutdown_on(shutdown_future(scope.shutdown.clone()))
        .run(
            reconcile,
            error_policy,
            Arc::new(Ctx {
                shared: shared.clone(),
            }),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}
