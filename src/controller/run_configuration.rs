//! The RunConfiguration controller: find the target and the workspace, observe the planned
//! environment version (one GET) and the private registry's connection, decide, register
//! the environment when absent, write status.
//!
//! No finalizer: environment versions are immutable, content-named assets that other
//! RunConfigurations (and finished runs) may still use, so deletion leaves them in place.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use kube::runtime::controller::Action;
use kube::runtime::{Controller, predicates};
use kube::{Api, ResourceExt};

use super::context::Shared;
use super::kube_io::{Error, Finish, api_error_requeue, finish, relevant_change};
use super::objects::Caches;
use super::readiness::readiness_of;
use super::scope::{Scope, shutdown_future};
use super::watches;
use super::workspace::{connect, resync_period};
use crate::actions::objects::{LocalTargets, Resolved, resolve, target_state};
use crate::actions::run_configuration::{self, require_workspace};
use crate::api::{ComputeTarget, RunConfiguration, Workspace};
use crate::azure::WorkspaceClient;
use crate::reconcile::run_configuration::{
    EnvironmentState, Input, TargetState, plan_environment, reconcile as decide,
};
use crate::reconcile::{ActionFailure, ObjectInfo};

pub const KIND: &str = "RunConfiguration";

pub struct Ctx {
    pub shared: Arc<Shared>,
    pub caches: Arc<Caches>,
}

/// Connects when the Workspace is Ready; otherwise why not, as a status-ready failure.
pub async fn workspace_client(
    shared: &Shared,
    caches: &Caches,
    resolved: &Resolved,
) -> Result<WorkspaceClient, ActionFailure> {
    let ws = require_workspace(
        resolved.workspace_name.as_deref(),
        resolved.workspace.as_ref(),
    )?;
    connect(shared, caches, ws).await
}

async fn reconcile(rc: Arc<RunConfiguration>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let started = Instant::now();
    let shared = &ctx.shared;
    let info = ObjectInfo::of(rc.as_ref());
    let api: Api<RunConfiguration> = Api::namespaced(shared.client.clone(), &info.namespace);
    if info.deleting {
        return Ok(Action::await_change());
    }
    let now = jiff::Timestamp::now();
    let resolved = resolve(ctx.caches.as_ref(), &info.namespace, &rc).await?;
    let local = match shared.settings.local_jobs {
        true => LocalTargets::Allowed,
        false => LocalTargets::Disabled,
    };
    let target = target_state(&rc, resolved.target.as_ref(), local);
    // A `local` target's runs are Jobs that install their environment when they start.
    let in_jobs = resolved.runs_locally();
    let plan = plan_environment(&info, &rc.spec);
    let old = rc.status.as_ref();
    let input_of = |status| Input {
        info: &info,
        spec: &rc.spec,
        status,
        target: target.clone(),
        environment: match in_jobs {
            true => EnvironmentState::Staged,
            false => EnvironmentState::NotStaged,
        },
        now,
    };
    let needs_azure = !info.paused && !in_jobs && !matches!(target, TargetState::Unusable { .. });
    let (d, failure) = match (&plan, needs_azure) {
        (Some(plan), true) => {
            let client = workspace_client(shared, &ctx.caches, &resolved).await;
            let secrets = ctx.caches.secrets(&info.namespace);
            let converged =
                run_configuration::converge(client, plan, input_of(old), &secrets).await;
            (converged.decision, converged.failure)
        }
        // Paused, an unusable target, or an invalid environment: the decision has no actions.
        _ => (decide(input_of(old)), None),
    };
    let resync = resync_period(shared, resolved.workspace.as_ref());
    finish(
        shared,
        &api,
        rc.as_ref(),
        Finish {
            kind: KIND,
            old_status: old,
            status: &d.status,
            events: &d.events,
            requeue_after: d.requeue_after,
            failure,
            release_finalizer: false,
            resync,
            started,
        },
    )
    .await
}

fn error_policy(_: Arc<RunConfiguration>, err: &Error, ctx: Arc<Ctx>) -> Action {
    api_error_requeue(KIND, err, &ctx.shared)
}

/// Runs the RunConfiguration controller for one scope until shutdown.
pub async fn run(shared: Arc<Shared>, scope: Scope) {
    let Some(caches) = Caches::synced(&shared, &scope).await else {
        return;
    };
    let main = caches.run_configurations.changes(relevant_change).await;
    let targets = caches
        .compute_targets
        .changes(readiness_of::<ComputeTarget>)
        .await;
    let workspaces = caches.workspaces.changes(readiness_of::<Workspace>).await;
    // The registry password's Secret: a missing one is retried when it appears.
    let secrets = caches
        .secret_versions
        .changes(predicates::resource_version)
        .await;
    let reader = caches.run_configurations.store().clone();
    let (by_target, by_ws, by_secret) = (reader.clone(), reader.clone(), reader.clone());
    Controller::for_shared_stream(main, reader)
        .with_config(
            kube::runtime::controller::Config::default().concurrency(shared.settings.concurrency),
        )
        .watches_shared_stream(targets, move |ct| {
            let name = ct.name_any();
            watches::users(&by_target, ct.namespace(), |rc| {
                rc.spec.target_ref.as_ref().is_some_and(|r| r.name == name)
            })
        })
        .watches_shared_stream(workspaces, move |ws| {
            let name = ws.name_any();
            watches::users(&by_ws, ws.namespace(), |rc| {
                rc.spec
                    .workspace_ref
                    .as_ref()
                    .is_some_and(|r| r.name == name)
            })
        })
        .watches_shared_stream(secrets, move |secret| {
            let name = secret.name_any();
            watches::users(&by_secret, secret.namespace(), |rc| {
                rc.spec
                    .docker
                    .as_ref()
                    .and_then(|d| d.registry.as_ref())
                    .is_some_and(|r| r.password_secret_ref.name == name)
            })
        })
        .graceful_shutdown_on(shutdown_future(scope.shutdown.clone()))
        .run(
            reconcile,
            error_policy,
            Arc::new(Ctx {
                shared: shared.clone(),
                caches,
            }),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}
