//! One reconcile of a RunConfiguration whose runs go to Azure, shared by both frontends:
//! observe the planned environment version (one GET) and the private registry's connection
//! (one GET, a PUT when absent), decide, register the environment when absent.

use std::time::Duration;

use super::{SecretSource, environment, registry};
use crate::api::readiness::why_not_ready;
use crate::api::{RunConfigurationStatus, Workspace};
use crate::azure::{WorkspaceClient, WorkspaceRef};
use crate::reconcile::run_configuration::{
    EnvironmentPlan, EnvironmentState, Input, RunConfigurationAction, plan_registry,
    reconcile as decide,
};
use crate::reconcile::{
    ActionFailure, Decision, Event, FailureKind, WAITING_FOR_WORKSPACE, record,
};

/// How often to look again while the Workspace is not Ready.
pub const WORKSPACE_RECHECK: Duration = Duration::from_secs(30);

type RcDecision = Decision<RunConfigurationStatus, RunConfigurationAction>;

/// The outcome of one [`converge`]: the decision with the registration folded in, and the
/// failure (reason, retryable) worth counting, if one stopped it. Waiting for the Workspace
/// is not counted.
pub type Converged = super::Converged<RunConfigurationStatus, RunConfigurationAction>;

/// The Workspace runs go to (`name` is spec.workspaceRef, else the target's), when it is
/// Ready: absent is a failure a person must fix, not Ready is worth waiting for.
pub fn require_workspace<'w>(
    name: Option<&str>,
    workspace: Option<&'w Workspace>,
) -> Result<&'w Workspace, ActionFailure> {
    let name = name.unwrap_or_default();
    let Some(ws) = workspace else {
        return Err(ActionFailure {
            kind: FailureKind::NeedsHuman,
            reason: "WorkspaceNotFound".into(),
            message: if name.is_empty() {
                "no Workspace: set spec.workspaceRef or use a ComputeTarget that has one".into()
            } else {
                format!("Workspace {name:?} not found")
            },
        });
    };
    match why_not_ready(ws) {
        None => Ok(ws),
        Some((reason, message)) => Err(ActionFailure {
            kind: FailureKind::WaitingFor(format!("Workspace {name:?}")),
            reason: WAITING_FOR_WORKSPACE.into(),
            message: format!("waiting for Workspace {name:?}: {reason}: {message}"),
        }),
    }
}

/// The decision when Azure could not be read: the old status with the failure recorded.
fn failed(input: &Input<'_>, failure: &ActionFailure) -> RcDecision {
    let mut d = Decision::new(input.status.cloned().unwrap_or_default());
    d.status.observed_generation = input.info.generation;
    record(
        &mut d.status.conditions,
        &mut d.events,
        failure,
        input.info.generation,
        input.now,
    );
    d.waiting_for = failure.waiting_for().map(str::to_string);
    d.requeue_after = d.waiting_for.is_some().then_some(WORKSPACE_RECHECK);
    d
}

/// Records the `environmentId` runs get in the status, once it shows this plan's version.
fn name_environment(
    status: &mut RunConfigurationStatus,
    plan: &EnvironmentPlan,
    workspace: &WorkspaceRef,
) {
    if let Some(env) = status
        .environment
        .as_mut()
        .filter(|e| e.name == plan.name() && e.version == plan.version())
    {
        env.id = Some(environment::environment_id(plan, workspace));
    }
}

/// Observes `plan` in the Workspace `client` connects to, makes the private registry's
/// connection exist (if the spec has one), decides (`input.environment` is replaced by what
/// was observed) and registers the version when the decision asks for it.
pub async fn converge<S: SecretSource>(
    client: Result<WorkspaceClient, ActionFailure>,
    plan: &EnvironmentPlan,
    input: Input<'_>,
    secrets: &S,
) -> Converged {
    let owner = format!("{}/{}", input.info.namespace, input.info.name);
    let registry = plan_registry(input.spec);
    let observed = async {
        let client = client?;
        let state = environment::observe(&client, plan).await?;
        let written = match &registry {
            Some(r) => registry::converge(&client, r, secrets, &owner).await?,
            None => false,
        };
        Ok::<_, ActionFailure>((state, written, client))
    }
    .await;
    let (state, written, client) = match observed {
        Ok(o) => o,
        Err(f) => {
            return Converged {
                decision: failed(&input, &f),
                failure: f.waiting_for().is_none().then_some(f),
                release_finalizer: false,
            };
        }
    };
    let Input {
        info,
        spec,
        status,
        target,
        now,
        ..
    } = input;
    let decide_with = |status: Option<&RunConfigurationStatus>, environment| {
        decide(Input {
            info,
            spec,
            status,
            target: target.clone(),
            environment,
            now,
        })
    };
    let mut d = decide_with(status, state);
    d.status.registry_connection = registry.as_ref().map(|r| r.name.clone());
    let mut failure = None;
    for action in std::mem::take(&mut d.actions) {
        let RunConfigurationAction::StageEnvironment(plan) = action;
        match environment::register(&client, &plan, &owner).await {
            Ok(()) => {
                // Registered: decide again so the status says Ready in this same pass.
                let mut next = decide_with(Some(&d.status), EnvironmentState::Staged);
                next.events.push(Event::normal(
                    "EnvironmentRegistered",
                    format!("environment {}:{} registered", plan.name(), plan.version()),
                ));
                d = next;
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
        }
    }
    name_environment(&mut d.status, plan, client.workspace());
    if let Some(r) = registry.as_ref().filter(|_| written) {
        d.events.push(Event::normal(
            "RegistryConnectionWritten",
            format!(
                "workspace connection {} holds the credentials of registry {}",
                r.name, r.address
            ),
        ));
    }
    Converged {
        decision: d,
        failure,
        release_finalizer: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::StagedEnvironment;
    use crate::reconcile::run_configuration::ExistingName;

    #[test]
    fn the_status_names_the_environment_id_of_the_staged_plan_only() {
        let ws = WorkspaceRef {
            subscription_id: "sub".into(),
            resource_group: "rg".into(),
            workspace: "ws".into(),
        };
        let plan = EnvironmentPlan::Existing {
            name: ExistingName::from("AzureML-sklearn-1.0-ubuntu20.04-py38-cpu"),
            version: "33".into(),
        };
        let staged = |version: &str| RunConfigurationStatus {
            environment: Some(StagedEnvironment {
                name: "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu".into(),
                version: version.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut status = staged("33");
        name_environment(&mut status, &plan, &ws);
        assert_eq!(
            status.environment.unwrap().id.as_deref(),
            Some(
                "azureml://registries/azureml/environments/AzureML-sklearn-1.0-ubuntu20.04-py38-cpu/versions/33"
            )
        );
        let mut stale = staged("32");
        name_environment(&mut stale, &plan, &ws);
        assert_eq!(
            stale.environment.unwrap().id,
            None,
            "an older version still in the status keeps no id of the new one"
        );
        let mut none = RunConfigurationStatus::default();
        name_environment(&mut none, &plan, &ws);
        assert!(none.environment.is_none());
    }
}
