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
use super::objects::read;
use super::store::{Key, Store, StoreError};
use crate::actions::azure_runs::AzureRuns;
use crate::actions::experiment::{ExperimentDecision, RunWorld, converge};
use crate::actions::local::{LocalBackend, LocalRuns};
use crate::actions::objects::{
    LocalTargets, Resolved, resolve, run_configuration_state, target_state, workspace_state,
};
use crate::api::conditions::{self, READY, STALLED, SUBMITTED};
use crate::api::{ComputeTarget, Condition, Experiment, FINALIZER, RunConfiguration, Workspace};
use crate::reconcile::compute_target::{self, ComputeAction, needs_azure};
use crate::reconcile::experiment::{self, RunConfigurationState};
use crate::reconcile::run_configuration::{
    self, EnvironmentState, RunConfigurationAction, TargetState, plan_environment,
};
use crate::reconcile::workspace;
use crate::reconcile::{ActionFailure, Event, ObjectInfo, mark_stalled, record};

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
        let outcome = outcome_of(&d.status.conditions, d.requeue_after, &d.waiting_for);
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
        let ws_name = ct.spec.workspace_ref.as_ref().map(|r| r.name.as_str());
        let ws: Option<Workspace> = match ws_name {
            Some(name) => read(self.store, &key.namespace, name)?,
            None => None,
        };
        let input = compute_target::Input {
            info: &info,
            spec: &ct.spec,
            status: ct.status.as_ref(),
            workspace: workspace_state(ws.as_ref()),
            observed: None,
            operation: None,
            already_attached_by: None,
            in_cluster: false,
            local_jobs: false,
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
            let (Some(ws), Some(ws_name)) = (ws, ws_name) else {
                return Ok(Outcome::Progressing(Duration::from_secs(1)));
            };
            let ws_key = key.sibling("Workspace", ws_name);
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
        let outcome = outcome_of(&d.status.conditions, d.requeue_after, &d.waiting_for);
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
        let outcome = outcome_of(&d.status.conditions, d.requeue_after, &d.waiting_for);
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

    /// The RunConfiguration's ComputeTarget and the Workspace its runs go to, as stored.
    fn resolve(&self, key: &Key, rc: &RunConfiguration) -> Result<Resolved, StoreError> {
        futures::executor::block_on(resolve(&*self.store, &key.namespace, rc))
    }

    fn target_state(&self, key: &Key, rc: &RunConfiguration) -> Result<TargetState, StoreError> {
        let resolved = self.resolve(key, rc)?;
        Ok(target_state(
            rc,
            resolved.target.as_ref(),
            LocalTargets::Allowed,
        ))
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
        let rc: Option<RunConfiguration> = read(
            self.store,
            &key.namespace,
            &exp.spec.run_configuration_ref.name,
        )?;
        let run_configuration = run_configuration_state(rc.as_ref());
        let in_azure = match &rc {
            Some(rc) => self.runs_in_azure(key, rc)?,
            None => false,
        };
        if !in_azure
            && info.deleting
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
        let inputs = StoredRunInputs::load(self.store, &key.namespace)?;
        let (converged, poll) = match rc.as_ref().filter(|_| in_azure) {
            Some(rc) => {
                let resolved = self.resolve(key, rc)?;
                // Azure is read unless paused; a deletion reads even then (it needs to know what runs).
                let client = match !info.paused || info.deleting {
                    true => Some(self.connect(key, &resolved)?),
                    false => None,
                };
                let backend = client.map(|c| {
                    c.map(|client| AzureRuns {
                        client,
                        exp: &exp,
                        rc: Some(rc),
                        target: resolved.target.as_ref(),
                        inputs: &inputs,
                        now,
                    })
                });
                let converged = self.azure.block_on(converge(apply_world(
                    &exp,
                    run_configuration,
                    backend,
                    now,
                )));
                (converged, Poll::Azure)
            }
            None => {
                let step = Step {
                    reporter: self.reporter,
                    key,
                };
                let backend = LocalRuns {
                    local: &self.local,
                    exp: &exp,
                    rc: rc.as_ref(),
                    inputs: &inputs,
                    progress: &step,
                };
                let world = apply_world(&exp, run_configuration, Some(Ok(backend)), now);
                let converged = self.azure.block_on(converge(world));
                (converged, Poll::Local)
            }
        };
        if converged.release_finalizer {
            self.store.remove(key)?;
            self.reporter.step(key, "deleted");
            return Ok(Outcome::Gone);
        }
        let d = converged.decision;
        let outcome = self.experiment_outcome(&info, &d, poll);
        self.write(key, &mut object, &d.status, &d.events)?;
        Ok(outcome)
    }

    /// Where an Experiment stands for `apply`: a failed run fails the apply; without
    /// `--wait` a submitted run is enough; with it, only a finished run settles.
    fn experiment_outcome(&self, info: &ObjectInfo, d: &ExperimentDecision, poll: Poll) -> Outcome {
        let conds = &d.status.conditions;
        let mut outcome = outcome_of(conds, d.requeue_after, &d.waiting_for);
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
            _ => outcome,
        }
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

/// One Experiment reconcile of `apply`. Running `apply` again is the user's request to retry,
/// so a refused submission is not held back.
fn apply_world<'a, B>(
    exp: &'a Experiment,
    run_configuration: RunConfigurationState,
    backend: Option<Result<B, ActionFailure>>,
    now: Timestamp,
) -> RunWorld<'a, B> {
    RunWorld {
        exp,
        run_configuration,
        backend,
        retry_after_stall: Duration::ZERO,
        now,
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

/// Where an object stands after its decision. A standalone apply has no watches: an object
/// waiting for another object of the same apply looks again within a second instead of the
/// controller's fallback period.
fn outcome_of(
    conditions: &[Condition],
    requeue: Option<Duration>,
    waiting_for: &Option<String>,
) -> Outcome {
    let soon = Duration::from_secs(1);
    if conditions::is_true(conditions, STALLED) {
        Outcome::Stalled
    } else if conditions::is_true(conditions, READY) && requeue.is_none() {
        Outcome::Settled
    } else if waiting_for.is_some() {
        Outcome::Progressing(requeue.unwrap_or(soon).min(soon))
    } else {
        Outcome::Progressing(requeue.unwrap_or(soon))
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
