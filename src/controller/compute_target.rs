//! The ComputeTarget controller: observe Azure, decide, execute, write status.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::runtime::{Controller, predicates};
use kube::{Api, ResourceExt};

use super::context::Shared;
use super::kube_io::{
    Error, Finish, api_error_requeue, finish, has_finalizer, relevant_change, set_finalizer,
};
use super::objects::Caches;
use super::readiness::readiness_of;
use super::scope::{Scope, shutdown_future};
use super::watches;
use super::workspace::{connect, resync_period};
use crate::actions::compute::{Converged, converge};
use crate::actions::objects::{ObjectSource, workspace_state};
use crate::api::{ComputeKind, ComputeTarget, ComputeTargetSpec, SecretKeyRef, Workspace};
use crate::reconcile::ObjectInfo;
use crate::reconcile::compute_target::{Input, attached_resource, needs_azure};

pub const KIND: &str = "ComputeTarget";

pub struct Ctx {
    pub shared: Arc<Shared>,
    pub caches: Arc<Caches>,
}

/// The earliest other ComputeTarget of the same workspace that attaches the same resource.
fn already_attached_by(store: &Store<ComputeTarget>, ct: &ComputeTarget) -> Option<String> {
    let resource = attached_resource(&ct.spec)?;
    let key = |c: &ComputeTarget| {
        (
            c.metadata.creation_timestamp.clone().map(|t| t.0),
            c.name_any(),
        )
    };
    store
        .state()
        .iter()
        .filter(|o| {
            o.namespace() == ct.namespace()
                && o.uid() != ct.uid()
                && o.metadata.deletion_timestamp.is_none()
        })
        .filter(|o| o.spec.workspace_ref == ct.spec.workspace_ref)
        .filter(|o| attached_resource(&o.spec).is_some_and(|r| r.eq_ignore_ascii_case(resource)))
        .filter(|o| key(o) < key(ct))
        .min_by_key(|o| key(o))
        .map(|o| o.name_any())
}

/// Secrets a ComputeTarget spec references directly.
fn secret_refs(spec: &ComputeTargetSpec) -> Vec<&SecretKeyRef> {
    match spec.kind() {
        Some(ComputeKind::AmlCompute(a)) => a
            .admin_user
            .iter()
            .flat_map(|u| [&u.password_secret_ref, &u.ssh_public_key_secret_ref])
            .flatten()
            .collect(),
        Some(ComputeKind::RemoteVm(s) | ComputeKind::HdInsight(s)) => {
            [&s.password_secret_ref, &s.private_key_secret_ref]
                .into_iter()
                .flatten()
                .collect()
        }
        Some(ComputeKind::Databricks(d)) => vec![&d.access_token_secret_ref],
        _ => vec![],
    }
}

async fn reconcile(ct: Arc<ComputeTarget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let started = Instant::now();
    let shared = &ctx.shared;
    let info = ObjectInfo::of(ct.as_ref());
    let api: Api<ComputeTarget> = Api::namespaced(shared.client.clone(), &info.namespace);
    let holds = has_finalizer(ct.as_ref());
    if info.deleting && !holds {
        return Ok(Action::await_change());
    }
    if !info.deleting && !holds {
        set_finalizer(&api, ct.as_ref(), true).await?;
    }
    let ws: Option<Workspace> = match &ct.spec.workspace_ref {
        Some(r) => ctx.caches.get(&info.namespace, &r.name).await?,
        None => None,
    };
    let workspace = workspace_state(ws.as_ref());
    let now = jiff::Timestamp::now();
    let secrets = ctx.caches.secrets(&info.namespace);
    let old = ct.status.as_ref();
    let resync = resync_period(shared, ws.as_ref());
    let input = Input {
        info: &info,
        spec: &ct.spec,
        status: old,
        workspace: workspace.clone(),
        observed: None,
        operation: None,
        already_attached_by: already_attached_by(ctx.caches.compute_targets.store(), &ct),
        in_cluster: true,
        local_jobs: shared.settings.local_jobs,
        kubernetes_compute_enabled: shared.settings.enable_kubernetes_compute,
        retry_after_stall: resync,
        now,
    };
    let client = match (ws.as_ref(), needs_azure(&info, &ct.spec, &workspace)) {
        (Some(ws), true) => Some(connect(shared, &ctx.caches, ws).await),
        _ => None,
    };
    let Converged {
        decision: d,
        failure,
        release_finalizer: release,
    } = converge(client, input, &secrets).await;
    finish(
        shared,
        &api,
        ct.as_ref(),
        Finish {
            kind: KIND,
            old_status: old,
            status: &d.status,
            events: &d.events,
            requeue_after: d.requeue_after,
            failure,
            release_finalizer: release,
            resync,
            started,
        },
    )
    .await
}

fn error_policy(_: Arc<ComputeTarget>, err: &Error, ctx: Arc<Ctx>) -> Action {
    api_error_requeue(KIND, err, &ctx.shared)
}

/// Runs the ComputeTarget controller for one scope until shutdown.
pub async fn run(shared: Arc<Shared>, scope: Scope) {
    let Some(caches) = Caches::synced(&shared, &scope).await else {
        return;
    };
    let main = caches.compute_targets.changes(relevant_change).await;
    let workspaces = caches.workspaces.changes(readiness_of::<Workspace>).await;
    let secrets = caches
        .secret_versions
        .changes(predicates::resource_version)
        .await;
    let reader = caches.compute_targets.store().clone();
    let (by_ws, by_secret) = (reader.clone(), reader.clone());
    let ctx = Arc::new(Ctx {
        shared: shared.clone(),
        caches,
    });
    Controller::for_shared_stream(main, reader)
        .with_config(
            kube::runtime::controller::Config::default().concurrency(shared.settings.concurrency),
        )
        .watches_shared_stream(workspaces, move |ws| {
            let name = ws.name_any();
            watches::users(&by_ws, ws.namespace(), |ct| {
                ct.spec
                    .workspace_ref
                    .as_ref()
                    .is_some_and(|r| r.name == name)
            })
        })
        .watches_shared_stream(secrets, move |s| {
            let name = s.name_any();
            watches::users(&by_secret, s.namespace(), |ct| {
                secret_refs(&ct.spec).iter().any(|r| r.name == name)
            })
        })
        .graceful_shutdown_on(shutdown_future(scope.shutdown.clone()))
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}
