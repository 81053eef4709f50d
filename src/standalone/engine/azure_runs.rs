//! The Azure side of `amlops apply` for runs: RunConfigurations whose target is Azure
//! compute register their environment, and their Experiments run, through the same shared
//! steps as the controller (`actions::run_configuration::converge`,
//! `actions::experiment::converge`), with the Workspace, target, Secrets and ConfigMaps read
//! from the store.

use jiff::Timestamp;
use serde_json::Value;

use super::{Engine, Outcome, is_azure_compute, outcome_of};
use crate::actions::job;
use crate::actions::objects::Resolved;
use crate::actions::run_configuration::require_workspace;
use crate::api::RunConfiguration;
use crate::azure::WorkspaceClient;
use crate::reconcile::run_configuration::{self, EnvironmentState, plan_environment};
use crate::reconcile::{ActionFailure, ObjectInfo};
use crate::standalone::azure::StoredSecrets;
use crate::standalone::store::{Key, StoreError};

impl Engine<'_> {
    /// Whether runs go to Azure: run-based amlCompute, or a ComputeTarget that is not local.
    pub(super) fn runs_in_azure(
        &self,
        key: &Key,
        rc: &RunConfiguration,
    ) -> Result<bool, StoreError> {
        let Some(target) = &rc.spec.target_ref else {
            return Ok(true);
        };
        let ct_key = key.sibling("ComputeTarget", &target.name);
        Ok(self
            .store
            .get(&ct_key)?
            .is_some_and(|ct| is_azure_compute(&ct)))
    }

    /// A client for the resolved Workspace once it is Ready; otherwise why not.
    pub(super) fn connect(
        &self,
        key: &Key,
        resolved: &Resolved,
    ) -> Result<Result<WorkspaceClient, ActionFailure>, StoreError> {
        let name = resolved.workspace_name.as_deref();
        let ws = match require_workspace(name, resolved.workspace.as_ref()) {
            Ok(ws) => ws,
            Err(f) => return Ok(Err(f)),
        };
        let ws_key = key.sibling("Workspace", name.unwrap_or_default());
        let secrets = StoredSecrets::load(self.store, &key.namespace)?;
        Ok(self.azure.connect(&ws_key, ws, &secrets))
    }

    /// Registers the environment in the Workspace through the step the controller uses.
    pub(super) fn azure_run_configuration(
        &mut self,
        key: &Key,
        mut object: Value,
        rc: &RunConfiguration,
        info: &ObjectInfo,
        now: Timestamp,
    ) -> Result<Outcome, StoreError> {
        let input = run_configuration::Input {
            info,
            spec: &rc.spec,
            status: rc.status.as_ref(),
            target: self.target_state(key, rc)?,
            environment: EnvironmentState::NotStaged,
            now,
        };
        let d = match plan_environment(info, &rc.spec) {
            Some(plan) if !info.paused => {
                let client = self.connect(key, &self.resolve(key, rc)?)?;
                let secrets = StoredSecrets::load(self.store, &key.namespace)?;
                let step =
                    crate::actions::run_configuration::converge(client, &plan, input, &secrets);
                self.azure.block_on(step).decision
            }
            // Paused, or an invalid environment: the decision has no actions.
            _ => run_configuration::reconcile(input),
        };
        let outcome = outcome_of(&d.status.conditions, d.requeue_after, &d.waiting_for);
        self.write(key, &mut object, &d.status, &d.events)?;
        Ok(outcome)
    }

    /// The current run of the Experiment `key` and where it runs (for Ctrl-C and `logs`).
    pub fn current_run(&self, key: &Key) -> Result<Option<CurrentRun>, StoreError> {
        let Some(object) = self.store.get(key)? else {
            return Ok(None);
        };
        let Some(id) = object["status"]["currentRun"]["id"].as_str() else {
            return Ok(None);
        };
        let rc_name = object["spec"]["runConfigurationRef"]["name"]
            .as_str()
            .unwrap_or_default();
        let rc = self
            .store
            .get(&key.sibling("RunConfiguration", rc_name))?
            .and_then(|v| serde_json::from_value::<RunConfiguration>(v).ok());
        let place = match rc {
            Some(rc) if self.runs_in_azure(key, &rc)? => {
                RunPlace::Azure(self.connect(key, &self.resolve(key, &rc)?)?)
            }
            _ => RunPlace::Local,
        };
        Ok(Some(CurrentRun {
            id: id.to_string(),
            place,
        }))
    }

    /// Asks the current run of the Experiment `key` to stop, wherever it runs (Ctrl-C during
    /// `apply --wait`); the next reconcile observes the outcome.
    pub fn cancel_current_run(&self, key: &Key) -> Result<Result<(), ActionFailure>, StoreError> {
        Ok(match self.current_run(key)? {
            None => Ok(()),
            Some(CurrentRun {
                id,
                place: RunPlace::Azure(client),
            }) => client.and_then(|c| self.azure.block_on(job::cancel(&c, &id))),
            Some(CurrentRun {
                id,
                place: RunPlace::Local,
            }) => self.local.cancel(&id),
        })
    }
}

/// An Experiment's current run, as `amlops logs` and Ctrl-C need it.
pub struct CurrentRun {
    pub id: String,
    pub place: RunPlace,
}

/// Where a run runs: a local process, or Azure ML (with a client for its Workspace, or why
/// there is none).
pub enum RunPlace {
    Local,
    Azure(Result<WorkspaceClient, ActionFailure>),
}
