//! The Experiment controller: load the Experiment, its RunConfiguration, target and Workspace
//! from the cluster, run the shared `actions::experiment::converge` (observe by run id,
//! decide, submit / cancel, clean up run-based compute), write status.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PartialObjectMeta;
use kube::runtime::Controller;
use kube::runtime::controller::Action;
use kube::runtime::{predicates, reflector, watcher};
use kube::{Api, ResourceExt};

use super::context::Shared;
use super::kube_io::{Error, Finish, api_error_requeue, finish, has_finalizer, set_finalizer};
use super::objects::Caches;
use super::readiness::readiness_of;
use super::run_configuration::workspace_client;
use super::scope::{Scope, shutdown_future};
use super::secrets::KubeSecrets;
use super::watches;
use super::workspace::resync_period;
use crate::actions::azure_runs::AzureRuns;
use crate::actions::experiment::{RunWorld, converge};
use crate::actions::kube_job::names::{MANAGED_BY, MANAGER};
use crate::actions::kube_job::{KubeJobRuns, KubeJobs};
use crate::actions::objects::{ObjectSource, resolve, run_configuration_state};
use crate::actions::source::{ConfigMapData, RunInputs};
use crate::actions::{SecretError, SecretSource};
use crate::api::{Experiment, RunConfiguration};
use crate::reconcile::{ActionFailure, FailureKind, ObjectInfo};

pub const KIND: &str = "Experiment";

pub struct Ctx {
    pub shared: Arc<Shared>,
    pub caches: Arc<Caches>,
}

/// Secrets (cached, see [`super::secrets`]) and ConfigMaps (a GET when a run is submitted)
/// from the API server.
struct KubeRunInputs {
    client: kube::Client,
    namespace: String,
    secrets: KubeSecrets,
}

impl SecretSource for KubeRunInputs {
    fn secret_value(
        &self,
        name: &str,
        key: &str,
    ) -> impl Future<Output = Result<crate::azure::Secret, SecretError>> + Send {
        self.secrets.secret_value(name, key)
    }
}

impl KubeRunInputs {
    async fn read_config_map(&self, name: &str) -> Result<Option<ConfigMapData>, ActionFailure> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let cm = api.get_opt(name).await.map_err(|e| ActionFailure {
            kind: FailureKind::Retryable,
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
}

impl RunInputs for KubeRunInputs {
    fn config_map(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<ConfigMapData>, ActionFailure>> + Send {
        self.read_config_map(name)
    }

    fn local_paths_allowed(&self) -> bool {
        false
    }
}

/// One reconcile of `exp` by the controller: a refused submission waits a resync period.
fn world<'a, B>(
    exp: &'a Experiment,
    rc: Option<&RunConfiguration>,
    backend: Option<Result<B, ActionFailure>>,
    resync: std::time::Duration,
    now: jiff::Timestamp,
) -> RunWorld<'a, B> {
    RunWorld {
        exp,
        run_configuration: run_configuration_state(rc),
        backend,
        retry_after_stall: resync,
        now,
    }
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
    let objects = ctx.caches.as_ref();
    let rc: Option<RunConfiguration> = objects
        .get(&info.namespace, &exp.spec.run_configuration_ref.name)
        .await?;
    let resolved = match &rc {
        Some(rc) => Some(resolve(objects, &info.namespace, rc).await?),
        None => None,
    };
    let old = exp.status.as_ref();
    // The backend is read unless paused; a deletion reads even then (it needs to know what runs).
    let reads = !info.paused || info.deleting;
    let inputs = KubeRunInputs {
        client: shared.client.clone(),
        namespace: info.namespace.clone(),
        secrets: objects.secrets(&info.namespace),
    };
    let resync = resync_period(shared, resolved.as_ref().and_then(|r| r.workspace.as_ref()));
    let target = resolved.as_ref().and_then(|r| r.target.as_ref());
    let local = target.and_then(|t| t.spec.local.as_ref());
    let converged = match local {
        // `local` in a cluster: a Job in the Experiment's namespace.
        Some(local) if shared.settings.local_jobs => {
            let backend = KubeJobRuns {
                jobs: KubeJobs::new(shared.client.clone(), &info.namespace),
                exp: exp.as_ref(),
                rc: rc.as_ref(),
                target: local,
                inputs: &inputs,
            };
            let backend = reads.then_some(Ok(backend));
            converge(world(&exp, rc.as_ref(), backend, resync, now)).await
        }
        _ => {
            let client = match &resolved {
                Some(r) if reads => Some(workspace_client(shared, objects, r).await),
                _ => None,
            };
            let backend = client.map(|c| {
                c.map(|client| AzureRuns {
                    client,
                    exp: exp.as_ref(),
                    rc: rc.as_ref(),
                    target,
                    inputs: &inputs,
                    now,
                })
            });
            converge(world(&exp, rc.as_ref(), backend, resync, now)).await
        }
    };
    let d = converged.decision;
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
            failure: converged.failure,
            release_finalizer: converged.release_finalizer,
            resync,
            started,
        },
    )
    .await
}

fn error_policy(_: Arc<Experiment>, err: &Error, ctx: Arc<Ctx>) -> Action {
    api_error_requeue(KIND, err, &ctx.shared)
}

/// Runs the Experiment controller for one scope until shutdown.
pub async fn run(shared: Arc<Shared>, scope: Scope) {
    let Some(caches) = Caches::synced(&shared, &scope).await else {
        return;
    };
    let (reader, writer) = reflector::store();
    let main = watches::own(scope.api::<Experiment>(&shared.client), writer);
    let run_configurations = caches
        .run_configurations
        .changes(readiness_of::<RunConfiguration>)
        .await;
    // The source's ConfigMap and the git credential's Secret: a run waiting for one of them
    // is submitted as soon as it appears.
    let config_maps = watches::versions(scope.api::<PartialObjectMeta<ConfigMap>>(&shared.client));
    let secrets = caches
        .secret_versions
        .changes(predicates::resource_version)
        .await;
    let (by_rc, by_cm, by_secret) = (reader.clone(), reader.clone(), reader.clone());
    let controller = Controller::for_stream(main, reader)
        .with_config(
            kube::runtime::controller::Config::default().concurrency(shared.settings.concurrency),
        )
        .watches_shared_stream(run_configurations, move |rc| {
            let name = rc.name_any();
            watches::users(&by_rc, rc.namespace(), |e| {
                e.spec.run_configuration_ref.name == name
            })
        })
        .watches_stream(config_maps, move |cm| {
            let name = cm.name_any();
            watches::users(&by_cm, cm.namespace(), |e| {
                e.spec
                    .source
                    .config_map
                    .as_ref()
                    .is_some_and(|c| c.name == name)
            })
        })
        .watches_shared_stream(secrets, move |secret| {
            let name = secret.name_any();
            watches::users(&by_secret, secret.namespace(), |e| {
                e.spec
                    .source
                    .git
                    .as_ref()
                    .and_then(|g| g.secret_ref.as_ref())
                    .is_some_and(|r| r.name == name)
            })
        });
    // A run's Job reports its progress (started, completed, failed) as it happens.
    let controller = match shared.settings.local_jobs {
        true => controller.owns(
            scope.api::<Job>(&shared.client),
            watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGER}")),
        ),
        false => controller,
    };
    controller
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
