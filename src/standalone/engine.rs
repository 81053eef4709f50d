//! One reconcile of one stored object: load it and what it references, observe, decide with the
//! shared `reconcile` functions, execute the actions, write status and events back.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

mod azure_runs;

pub use azure_runs::{CurrentRun, RunPlace};

use super::azure::{Azure, StoredSecrets};
use super::inputs::StoredRunInputs;
use super::store::{Key, Store, StoreError};
use crate::actions::experiment::ExperimentDecision;
use crate::actions::local::{LocalBackend, LocalSubmission};
use crate::api::conditions::{self, READY, STALLED, SUBMITTED};
use crate::api::readiness::not_ready;
use crate::api::{ComputeTarget, Condition, Experiment, FINALIZER, RunConfiguration, Workspace};
use crate::reconcile::compute_target::{self, ComputeAction, WorkspaceState, needs_azure};
use crate::reconcile::experiment::{self, ExperimentAction, ObservedRun, RunConfigurationState};
use crate::reconcile::run_configuration::{
    self, EnvironmentState, RunConfigurationAction, TargetState, plan_environment,
};
use crate::reconcile::workspace;
use crate::reconcile::{ActionFailure, Event, ObjectInfo, mark_stalled, record};
use azure_runs::recheck_dependencies;

/// Where an object stands after one reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Still converging: look again after this long.
    Progressing(Duration),
    /// Done for now (Ready, or a terminal run when waiting for runs).
    Settled,
    /// Needs a human; apply reports it and stops waiting for it.
    Stalled,
    /// A run ended without success.
    RunFailed,
    /// Deleted and gone from the store.
    Gone,
}

/// Progress lines for a person watching `amlops apply`.
pub trait Reporter: Sync {
    fn event(&self, key: &Key, event: &Event);
    fn step(&self, key: &Key, message: &str);
}

pub struct Engine<'a> {
    pub store: &'a mut Store,
    pub azure: &'a Azure,
    pub local: LocalBackend,
    pub reporter: &'a dyn Reporter,
    /// Experiments count as settled only once their run is finished.
    pub wait_for_runs: bool,
}

struct Step<'r> {
    reporter: &'r dyn Reporter,
    key: &'r Key,
}

impl crate::local::Progress for Step<'_> {
    fn step(&self, message: &str) {
        self.reporter.step(self.key, message);
    }
}

impl Engine<'_> {
    pub fn reconcile(&mut self, key: &Key, now: Timestamp) -> Result<Outcome, StoreError> {
        let Some(object) = self.store.get(key)? else {
            return Ok(Outcome::Gone);
        };
        match key.kind.as_str() {
            "ComputeTarget" => self.compute_target(key, object, now),
            "RunConfiguration" => self.run_configuration(key, object, now),
            "Experiment" => self.experiment(key, object, now),
            "Workspace" => self.workspace(key, object, now),
            // Secrets and ConfigMaps are data, not reconciled.
            _ => Ok(Outcome::Settled),
        }
    }

    fn typed<K: DeserializeOwned>(&self, key: &Key, object: &Value) -> Result<K, Outcome> {
        serde_json::from_value(object.clone()).map_err(|e| {
            self.reporter.step(
                key,
                &format!("stored object does not match the {} schema: {e}", key.kind),
            );
            Outcome::Stalled
        })
    }

    /// Discovers the workspace in Azure with the Workspace's credential (the Azure CLI user,
    /// a service principal Secret from the store, ...), like the controller does.
    fn workspace(
        &mut self,
        key: &Key,
        mut object: Value,
        now: Timestamp,
    ) -> Result<Outcome, StoreError> {
        let ws: Workspace = match self.typed(key, &object) {
            Ok(ws) => ws,
            Err(o) => return Ok(o),
        };
        let info = ObjectInfo::of(&ws);
        if info.deleting {
            self.store.remove(key)?;
            return Ok(Outcome::Gone);
        }
        let observed = match info.paused {
            true => None,
            false => Some(self.azure.discover(
                key,
                &ws,
                &StoredSecrets::load(self.store, &key.namespace)?,
            )),
        };
        let d = workspace::reconcile(workspace::Input {
            info: &info,
            spec: &ws.spec,
            status: ws.status.as_ref(),
            observed,
            now,
        });
        let outcome = outcome_of(&d.status.conditions, d.requeue_after);
        self.write(key, &mut object, &d.status, &d.events)?;
        Ok(outcome)
    }

    fn compute_target(
        &mut self,
        key: &Key,
        mut object: Value,
        now: Timestamp,
    ) -> Result<Outcome, StoreError> {
        let ct: ComputeTarget = match self.typed(key, &object) {
            Ok(ct) => ct,
            Err(o) => return Ok(o),
        };
        let info = ObjectInfo::of(&ct);
        let workspace = match &ct.spec.workspace_ref {
            None => WorkspaceState::Missing,
            Some(r) => {
                let ws_key = Key {
                    kind: "Workspace".into(),
                    namespace: key.namespace.clone(),
                    name: r.name.clone(),
                };
                match self.store.get(&ws_key)? {
                    None => WorkspaceState::Missing,
                    Some(ws) => readiness(&ws)
                        .map_or(WorkspaceState::Ready, |(reason, message)| {
                            WorkspaceState::NotReady { reason, message }
                        }),
                }
            }
        };
        let input = compute_target::Input {
            info: &info,
            spec: &ct.spec,
            status: ct.status.as_ref(),
            workspace,
            observed: None,
            operation: None,
            already_attached_by: None,
            in_cluster: false,
            kubernetes_compute_enabled: false,
            // Standalone passes end when objects settle; running `apply` again is the
            // user's request to retry, so a refused write is sent again at once.
            retry_after_stall: Duration::ZERO,
            now,
        };
        let d = if needs_azure(&info, &ct.spec, &input.workspace) {
            if !info.deleting && !has_finalizer(&object) {
                add_finalizer(&mut object);
            }
            let ws_key = Key {
                kind: "Workspace".into(),
                namespace: key.namespace.clone(),
                name: ct.spec.workspace_ref.clone().unwrap_or_default().name,
            };
            let Some(ws) = self.store.get(&ws_key)? else {
                return Ok(Outcome::Progressing(Duration::from_secs(1)));
            };
            let ws: Workspace = match self.typed(&ws_key, &ws) {
                Ok(ws) => ws,
                Err(o) => return Ok(o),
            };
            let secrets = StoredSecrets::load(self.store, &key.namespace)?;
            let converged = self.azure.converge_compute(&ws_key, &ws, input, &secrets);
            if converged.release_finalizer {
                self.store.remove(key)?;
                return Ok(Outcome::Gone);
            }
            converged.decision
        } else {
            let d = compute_target::reconcile(input);
            if info.deleting || d.actions.contains(&ComputeAction::ReleaseFinalizer) {
                self.store.remove(key)?;
                return Ok(Outcome::Gone);
            }
            d
        };
        let outcome = outcome_of(&d.status.conditions, d.requeue_after);
        self.write(key, &mut object, &d.status, &d.events)?;
        Ok(outcome)
    }

    fn run_configuration(
        &mut self,
        key: &Key,
        mut object: Value,
        now: Timestamp,
    ) -> Result<Outcome, StoreError> {
        let rc: RunConfiguration = match self.typed(key, &object) {
            Ok(rc) => rc,
            Err(o) => return Ok(o),
        };
        let info = ObjectInfo::of(&rc);
        if info.deleting {
            self.store.remove(key)?;
            return Ok(Outcome::Gone);
        }
        if self.runs_in_azure(key, &rc)? {
            return self.azure_run_configuration(key, object, &rc, &info, now);
        }
        let target = self.target_state(key, &rc)?;
        let plan = plan_environment(&info, &rc.spec);
        let environment = match plan.as_ref().map(|p| self.local.environment_staged(p)) {
            Some(Ok(true)) => EnvironmentState::Staged,
            _ => EnvironmentState::NotStaged,
        };
        let input = run_configuration::Input {
            info: &info,
            spec: &rc.spec,
            status: rc.status.as_ref(),
            target,
            environment,
            now,
        };
        let mut d = run_configuration::reconcile(input);
        for action in std::mem::take(&mut d.actions) {
            let RunConfigurationAction::StageEnvironment(plan) = action;
            let step = Step {
                reporter: self.reporter,
                key,
            };
            match self.local.stage_environment(&plan, &step) {
                Ok(_) => {
                    // Staged: decide again so the status says Ready in this same pass.
                    let input = run_configuration::Input {
                        info: &info,
                        spec: &rc.spec,
                        status: Some(&d.status),
                        target: self.target_state(key, &rc)?,
                        environment: EnvironmentState::Staged,
                        now,
                    };
                    d = run_configuration::reconcile(input);
                    d.events.push(Event::normal(
                        "EnvironmentStaged",
                        format!("environment {} staged", plan.version()),
                    ));
                }
                Err(failure) => record(
                    &mut d.status.conditions,
                    &mut d.events,
                    &failure,
                    info.generation,
                    now,
                ),
            }
        }
        let outcome = outcome_of(&d.status.conditions, d.requeue_after);
        self.write(key, &mut object, &d.status, &d.events)?;
        Ok(outcome)
    }

    /// A recorded run this machine cannot clean up: unfinished (or holding a run-based cluster)
    /// and unknown to the local executor, so it went to Azure through a RunConfiguration
    /// that is no longer in the store.
    fn unreachable_run(&self, exp: &Experiment, now: Timestamp) -> Option<String> {
        let status = exp.status.as_ref()?;
        experiment::unfinished_runs(status)
            .find(|r| {
                r.run_based_compute.is_some() || matches!(self.local.observe(&r.id, now), Ok(None))
            })
            .map(|r| r.id.clone())
    }

    fn target_state(&self, key: &Key, rc: &RunConfiguration) -> Result<TargetState, StoreError> {
        let Some(target) = &rc.spec.target_ref else {
            return Ok(TargetState::Ready); // run-based compute is created per run
        };
        let ct_key = Key {
            kind: "ComputeTarget".into(),
            namespace: key.namespace.clone(),
            name: target.name.clone(),
        };
        Ok(match self.store.get(&ct_key)? {
            None => TargetState::Missing,
            Some(ct) => readiness(&ct).map_or(TargetState::Ready, |(reason, message)| {
                TargetState::NotReady { reason, message }
            }),
        })
    }

    fn experiment(
        &mut self,
        key: &Key,
        mut object: Value,
        now: Timestamp,
    ) -> Result<Outcome, StoreError> {
        let exp: Experiment = match self.typed(key, &object) {
            Ok(e) => e,
            Err(o) => return Ok(o),
        };
        let info = ObjectInfo::of(&exp);
        if !info.deleting && !has_finalizer(&object) {
            add_finalizer(&mut object);
        }
        let rc_key = Key {
            kind: "RunConfiguration".into(),
            namespace: key.namespace.clone(),
            name: exp.spec.run_configuration_ref.name.clone(),
        };
        let rc_object = self.store.get(&rc_key)?;
        let run_configuration = match &rc_object {
            None => RunConfigurationState::Missing,
            Some(rc) => readiness(rc).map_or(RunConfigurationState::Ready, |(reason, message)| {
                RunConfigurationState::NotReady { reason, message }
            }),
        };
        let azure_rc = match &rc_object {
            Some(v) => serde_json::from_value::<RunConfiguration>(v.clone())
                .ok()
                .map(|rc| {
                    self.runs_in_azure(key, &rc)
                        .map(|azure| azure.then_some(rc))
                })
                .transpose()?
                .flatten(),
            None => None,
        };
        if let Some(rc) = azure_rc {
            return self.azure_experiment(key, object, &exp, &rc, run_configuration, now);
        }
        if info.deleting
            && let Some(run) = self.unreachable_run(&exp, now)
        {
            let msg = format!(
                "run {run} is not a local run and RunConfiguration {:?} is not in the store, so it cannot be cancelled (nor its run-based compute deleted) from here: apply the RunConfiguration and its Workspace again, or cancel the job in Azure ML studio and run `amlops delete --force`",
                exp.spec.run_configuration_ref.name
            );
            let mut status = exp.status.clone().unwrap_or_default();
            mark_stalled(
                &mut status.conditions,
                "CleanupBlocked",
                &msg,
                info.generation,
                now,
            );
            let events = [Event::warning("CleanupBlocked", msg)];
            self.write(key, &mut object, &status, &events)?;
            return Ok(Outcome::Stalled);
        }
        let desired_id = experiment::run_id(&info);
        let observe = |id: &str| self.local.observe(id, now);
        let desired = observe(&desired_id);
        let current_id = exp
            .status
            .as_ref()
            .and_then(|s| s.current_run.as_ref())
            .map(|r| r.id.clone())
            .filter(|id| *id != desired_id);
        let previous = current_id.as_deref().map(observe).transpose();
        let (desired, previous) = match (desired, previous) {
            (Ok(d), Ok(p)) => (d, p.flatten()),
            (Err(f), _) | (_, Err(f)) => {
                let mut status = exp.status.clone().unwrap_or_default();
                let mut events = Vec::new();
                record(
                    &mut status.conditions,
                    &mut events,
                    &f,
                    info.generation,
                    now,
                );
                self.write(key, &mut object, &status, &events)?;
                return Ok(if f.retryable {
                    Outcome::Progressing(Duration::from_secs(1))
                } else {
                    Outcome::Stalled
                });
            }
        };
        let input = experiment::Input {
            info: &info,
            spec: &exp.spec,
            status: exp.status.as_ref(),
            run_configuration,
            desired: desired.as_ref(),
            previous: previous.as_ref(),
            // Running `apply` again is the user's request to retry.
            retry_after_stall: Duration::ZERO,
            now,
        };
        let mut d = experiment::reconcile(input);
        for action in std::mem::take(&mut d.actions) {
            match action {
                ExperimentAction::Submit { run_id } => {
                    let result = match &rc_object {
                        Some(rc) => self.submit(key, &exp, rc, &run_id),
                        None => Err(crate::actions::needs_human(
                            "RunConfigurationNotFound",
                            "the RunConfiguration disappeared",
                        )),
                    };
                    match result {
                        Ok(observed) => {
                            if let Some(observed) = observed {
                                experiment::fold_submitted(
                                    &mut d, &info, &exp.spec, &observed, now,
                                );
                            }
                        }
                        Err(f) => record(
                            &mut d.status.conditions,
                            &mut d.events,
                            &f,
                            info.generation,
                            now,
                        ),
                    }
                }
                ExperimentAction::Cancel { run_id } => {
                    if let Err(f) = self.local.cancel(&run_id) {
                        record(
                            &mut d.status.conditions,
                            &mut d.events,
                            &f,
                            info.generation,
                            now,
                        );
                    } else {
                        d.events.push(Event::normal(
                            "Cancelling",
                            format!("cancelling run {run_id}"),
                        ));
                    }
                }
                ExperimentAction::ReleaseFinalizer => {
                    self.store.remove(key)?;
                    self.reporter.step(key, "deleted");
                    return Ok(Outcome::Gone);
                }
            }
        }
        let outcome = self.experiment_outcome(&info, &d, Poll::Local);
        self.write(key, &mut object, &d.status, &d.events)?;
        Ok(outcome)
    }

    /// Where an Experiment stands for `apply`: a failed run fails the apply; without
    /// `--wait` a submitted run is enough; with it, only a finished run settles.
    fn experiment_outcome(&self, info: &ObjectInfo, d: &ExperimentDecision, poll: Poll) -> Outcome {
        let conds = &d.status.conditions;
        let mut outcome = outcome_of(conds, d.requeue_after);
        let run_finished = conditions::is_true(conds, conditions::SUCCEEDED)
            || conditions::is_true(conds, conditions::FAILED);
        if info.deleting {
            // Cleanup is still running (a cancel was asked for): keep going until the object is gone.
            outcome = Outcome::Progressing(d.requeue_after.unwrap_or(Duration::from_millis(500)));
        } else if conditions::is_true(conds, conditions::FAILED) {
            // With --wait, a failed run's run-based cluster is deleted before apply reports.
            let cleaning_up = d
                .status
                .current_run
                .iter()
                .chain(&d.status.runs)
                .any(|r| r.run_based_compute.is_some());
            outcome = match (self.wait_for_runs && cleaning_up, d.requeue_after) {
                (true, Some(after)) => Outcome::Progressing(after),
                _ => Outcome::RunFailed,
            };
        } else if !self.wait_for_runs && conditions::is_true(conds, SUBMITTED) {
            outcome = Outcome::Settled;
        } else if self.wait_for_runs && !run_finished && outcome == Outcome::Settled {
            outcome = Outcome::Progressing(Duration::from_millis(500));
        }
        match (poll, outcome) {
            // Local runs are cheap to poll: a person is watching.
            (Poll::Local, Outcome::Progressing(after)) => {
                Outcome::Progressing(after.min(Duration::from_millis(500)))
            }
            (Poll::Azure, _) => recheck_dependencies(outcome, conds),
            _ => outcome,
        }
    }

    fn submit(
        &mut self,
        key: &Key,
        exp: &Experiment,
        rc_object: &Value,
        run_id: &str,
    ) -> Result<Option<ObservedRun>, ActionFailure> {
        let rc: RunConfiguration = serde_json::from_value(rc_object.clone())
            .map_err(|e| crate::actions::needs_human("InvalidRunConfiguration", e))?;
        let rc_info = ObjectInfo::of(&rc);
        let plan = plan_environment(&rc_info, &rc.spec).ok_or_else(|| {
            crate::actions::needs_human("InvalidEnvironment", "RunConfiguration has no environment")
        })?;
        let source = StoredRunInputs::load(self.store, &key.namespace)
            .map_err(|e| crate::actions::transient("StoreUnreadable", e))?
            .snapshot_source(&exp.spec.source)?;
        let experiment_name = exp
            .spec
            .experiment_name
            .clone()
            .unwrap_or_else(|| key.name.clone());
        let submission = LocalSubmission {
            run_id,
            experiment_name: &experiment_name,
            spec: &exp.spec,
            source,
            run_configuration: &rc.spec,
            environment: &plan,
        };
        let step = Step {
            reporter: self.reporter,
            key,
        };
        self.local.submit(&submission, &step)?;
        self.local.observe(run_id, Timestamp::now())
    }

    /// Writes status (and finalizers) only when something changed, plus the events.
    fn write<S: Serialize>(
        &mut self,
        key: &Key,
        object: &mut Value,
        status: &S,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let new_status = serde_json::to_value(status).unwrap_or(Value::Null);
        let stored = self.store.get(key)?;
        let finalizers_changed = stored.as_ref().map(|s| &s["metadata"]["finalizers"])
            != Some(&object["metadata"]["finalizers"]);
        if object.get("status") != Some(&new_status) || finalizers_changed {
            object["status"] = new_status;
            *object = self.store.update(key, object)?;
        }
        for e in events {
            self.store
                .add_event(key, e.warning, &e.reason, &e.message)?;
            self.reporter.event(key, e);
        }
        Ok(())
    }
}

/// How an Experiment's run is watched.
#[derive(Clone, Copy)]
enum Poll {
    /// A process on this machine: look every half second.
    Local,
    /// An Azure job: as often as the shared decision says (its polling backs off).
    Azure,
}

/// A stored ComputeTarget that runs go to Azure for (anything but `local`).
pub(super) fn is_azure_compute(ct: &Value) -> bool {
    ct["spec"].get("local").is_none()
}

/// None when the stored object's Ready condition is True; else its reason and message.
fn readiness(object: &Value) -> Option<(String, String)> {
    let conditions: Vec<Condition> =
        serde_json::from_value(object["status"]["conditions"].clone()).unwrap_or_default();
    not_ready(&conditions, object["metadata"]["generation"].as_i64())
}

fn outcome_of(conditions: &[Condition], requeue: Option<Duration>) -> Outcome {
    if conditions::is_true(conditions, STALLED) {
        Outcome::Stalled
    } else if conditions::is_true(conditions, READY) && requeue.is_none() {
        Outcome::Settled
    } else {
        Outcome::Progressing(requeue.unwrap_or(Duration::from_secs(1)))
    }
}

fn has_finalizer(object: &Value) -> bool {
    object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER))
}

fn add_finalizer(object: &mut Value) {
    match object["metadata"]["finalizers"].as_array_mut() {
        Some(list) => list.push(Value::String(FINALIZER.into())),
        None => {
            object["metadata"]["finalizers"] = Value::Array(vec![Value::String(FINALIZER.into())])
        }
    }
}
