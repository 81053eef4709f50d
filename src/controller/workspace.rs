//! The Workspace controller: resolve the credential, read the workspace, publish its facts.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, predicates};
use kube::{Api, ResourceExt};

use super::context::Shared;
use super::duration;
use super::kube_io::{Error, Finish, api_error_requeue, finish, relevant_change};
use super::objects::Caches;
use super::scope::{Scope, shutdown_future};
use crate::actions::workspace::discover;
use crate::api::Workspace;
use crate::reconcile::workspace::{Input, reconcile as decide};
use crate::reconcile::{ActionFailure, ObjectInfo};

pub const KIND: &str = "Workspace";

pub struct Ctx {
    pub shared: Arc<Shared>,
    pub caches: Arc<Caches>,
}

/// The resync period of a Workspace and of the objects that use it (the operator's default
/// when there is no Workspace).
pub fn resync_period(shared: &Shared, ws: Option<&Workspace>) -> std::time::Duration {
    ws.and_then(|w| w.spec.resync_period.as_deref())
        .and_then(|p| duration::parse(p).ok())
        .unwrap_or(shared.settings.resync_period)
}

/// Connects to Azure for `ws` (credential from its Secret when referenced).
pub async fn connect(
    shared: &Shared,
    caches: &Caches,
    ws: &Workspace,
) -> Result<crate::azure::WorkspaceClient, ActionFailure> {
    let ns = ws.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", ws.name_any());
    shared
        .connector
        .connect(&key, &ws.spec, &caches.secrets(&ns))
        .await
}

async fn reconcile(ws: Arc<Workspace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let started = Instant::now();
    let shared = &ctx.shared;
    let info = ObjectInfo::of(ws.as_ref());
    let api: Api<Workspace> = Api::namespaced(shared.client.clone(), &info.namespace);
    if info.deleting {
        shared
            .connector
            .forget(&format!("{}/{}", info.namespace, info.name));
        return Ok(Action::await_change());
    }
    let observed = if info.paused {
        None
    } else {
        Some(match connect(shared, &ctx.caches, &ws).await {
            Ok(client) => discover(&client).await,
            Err(f) => Err(f),
        })
    };
    let failure = observed.as_ref().and_then(|o| o.as_ref().err()).cloned();
    let d = decide(Input {
        info: &info,
        spec: &ws.spec,
        status: ws.status.as_ref(),
        observed,
        now: jiff::Timestamp::now(),
    });
    tracing::debug!(workspace = %info.name, namespace = %info.namespace, ?failure, "reconciled");
    finish(
        shared,
        &api,
        ws.as_ref(),
        Finish {
            kind: KIND,
            old_status: ws.status.as_ref(),
            status: &d.status,
            events: &d.events,
            requeue_after: d.requeue_after,
            failure,
            release_finalizer: false,
            resync: resync_period(shared, Some(&ws)),
            started,
        },
    )
    .await
}

fn error_policy(_: Arc<Workspace>, err: &Error, ctx: Arc<Ctx>) -> Action {
    api_error_requeue(KIND, err, &ctx.shared)
}

/// Workspaces whose service-principal Secret is `secret`.
fn users_of_secret(
    store: &Store<Workspace>,
    secret: &str,
    namespace: Option<String>,
) -> Vec<ObjectRef<Workspace>> {
    store
        .state()
        .iter()
        .filter(|ws| ws.namespace() == namespace)
        .filter(|ws| {
            ws.spec
                .credential
                .service_principal
                .as_ref()
                .is_some_and(|sp| sp.secret_ref.name == secret)
        })
        .map(|ws| ObjectRef::from_obj(ws.as_ref()))
        .collect()
}

/// Runs the Workspace controller for one scope until shutdown.
pub async fn run(shared: Arc<Shared>, scope: Scope) {
    let Some(caches) = Caches::synced(&shared, &scope).await else {
        return;
    };
    let main = caches.workspaces.changes(relevant_change).await;
    let secrets = caches
        .secret_versions
        .changes(predicates::resource_version)
        .await;
    let store = caches.workspaces.store().clone();
    let by_secret = store.clone();
    Controller::for_shared_stream(main, store)
        .with_config(
            kube::runtime::controller::Config::default().concurrency(shared.settings.concurrency),
        )
        .watches_shared_stream(secrets, move |s| {
            users_of_secret(&by_secret, &s.name_any(), s.namespace())
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
