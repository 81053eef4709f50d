//! The objects controllers read. Reconciles read Workspaces, ComputeTargets and
//! RunConfigurations from [`Caches`]: one watch per kind and namespace scope, shared by every
//! controller of the scope, so a reconcile costs no GET of what it references. `amlops logs`
//! (no watches) reads with GETs through [`KubeObjects`].

use std::any::Any;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use super::context::Shared;
use super::metrics::Metrics;
use super::scope::{Scope, shutdown_future};
use super::secrets::{KubeSecrets, SecretCache, SecretValues};
use super::watches::Informer;
use crate::actions::objects::{Namespaced, ObjectSource};
use crate::api::{ComputeTarget, RunConfiguration, Workspace};

/// Reads objects through the controller's kube client.
pub struct KubeObjects(pub kube::Client);

impl ObjectSource for KubeObjects {
    type Error = kube::Error;

    fn get<K: Namespaced>(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<K>, kube::Error>> + Send {
        let api = Api::<K>::namespaced(self.0.clone(), namespace);
        let name = name.to_string();
        async move { api.get_opt(&name).await }
    }
}

/// What the controllers of one scope read and follow, each kind watched once.
pub struct Caches {
    client: kube::Client,
    pub workspaces: Informer<Workspace>,
    pub compute_targets: Informer<ComputeTarget>,
    pub run_configurations: Informer<RunConfiguration>,
    /// Metadata only: which Secrets exist and their versions (see [`super::secrets`]).
    pub secret_versions: Informer<PartialObjectMeta<Secret>>,
    secret_values: Arc<SecretValues>,
}

impl Caches {
    fn start(client: &kube::Client, scope: &Scope) -> Self {
        let shutdown = || scope.shutdown.clone();
        Caches {
            client: client.clone(),
            workspaces: Informer::start(scope.api(client), shutdown()),
            compute_targets: Informer::start(scope.api(client), shutdown()),
            run_configurations: Informer::start(scope.api(client), shutdown()),
            secret_versions: Informer::start(scope.api(client), shutdown()),
            secret_values: Arc::default(),
        }
    }

    /// The caches of `scope` for the controllers sharing `shared`, started by the first of them
    /// to ask. (The controllers of a scope are started one by one, with nothing but `shared`
    /// and `scope` in common; this registry is where they meet.)
    pub fn of(shared: &Arc<Shared>, scope: &Scope) -> Arc<Caches> {
        let mut registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        registry.retain(|r| r.caches.strong_count() > 0);
        let found = registry
            .iter()
            .find(|r| {
                Weak::ptr_eq(&r.shared, &Arc::downgrade(shared)) && r.namespace == scope.namespace
            })
            .and_then(|r| r.caches.upgrade());
        if let Some(caches) = found {
            return caches;
        }
        let caches = Arc::new(Caches::start(&shared.client, scope));
        registry.push(Registered {
            shared: Arc::downgrade(shared),
            metrics: Arc::downgrade(&shared.metrics),
            namespace: scope.namespace.clone(),
            caches: Arc::downgrade(&caches),
        });
        caches
    }

    /// The caches of `scope` once every store holds its first full list, so no reconcile
    /// judges a reference missing that is merely not listed yet; `None` when the scope shuts
    /// down first.
    pub async fn synced(shared: &Arc<Shared>, scope: &Scope) -> Option<Arc<Caches>> {
        let caches = Caches::of(shared, scope);
        caches.wait_synced(scope).await.then_some(caches)
    }

    /// Whether every store holds its first full list.
    pub fn is_synced(&self) -> bool {
        self.workspaces.is_synced()
            && self.compute_targets.is_synced()
            && self.run_configurations.is_synced()
            && self.secret_versions.is_synced()
    }

    /// Waits until every store holds its first full list; false when the scope shuts down first.
    pub async fn wait_synced(&self, scope: &Scope) -> bool {
        let synced = async {
            let (a, b, c, d) = futures::join!(
                self.workspaces.wait_synced(),
                self.compute_targets.wait_synced(),
                self.run_configurations.wait_synced(),
                self.secret_versions.wait_synced(),
            );
            a && b && c && d
        };
        tokio::select! {
            ok = synced => ok,
            () = shutdown_future(scope.shutdown.clone()) => false,
        }
    }

    /// The Secrets of `namespace`, read with a GET only when their version moved.
    pub fn secrets(&self, namespace: &str) -> KubeSecrets {
        let cache = SecretCache {
            versions: self.secret_versions.store().clone(),
            values: self.secret_values.clone(),
        };
        KubeSecrets::cached(self.client.clone(), namespace, cache)
    }

    /// The cached copy of `namespace/name` when `K` is a cached kind.
    fn cached<K>(&self, namespace: &str, name: &str) -> Option<Option<K>>
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        fn lookup<K, C>(store: &Store<C>, namespace: &str, name: &str) -> Option<Option<K>>
        where
            K: kube::Resource<DynamicType = ()> + Clone + 'static,
            C: kube::Resource<DynamicType = ()> + Clone + 'static,
        {
            let store = (store as &dyn Any).downcast_ref::<Store<K>>()?;
            Some(
                store
                    .get(&ObjectRef::new(name).within(namespace))
                    .map(|o| o.as_ref().clone()),
            )
        }
        lookup(self.workspaces.store(), namespace, name)
            .or_else(|| lookup(self.compute_targets.store(), namespace, name))
            .or_else(|| lookup(self.run_configurations.store(), namespace, name))
    }
}

impl ObjectSource for Caches {
    type Error = kube::Error;

    /// From the cache; a kind without one (none the controllers read today) with a GET.
    fn get<K: Namespaced>(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<K>, kube::Error>> + Send {
        let cached = self.cached::<K>(namespace, name);
        let read = KubeObjects(self.client.clone());
        let (namespace, name) = (namespace.to_string(), name.to_string());
        async move {
            match cached {
                Some(found) => Ok(found),
                None => read.get(&namespace, &name).await,
            }
        }
    }
}

struct Registered {
    shared: Weak<Shared>,
    metrics: Weak<Metrics>,
    namespace: Option<String>,
    caches: Weak<Caches>,
}

static REGISTRY: Mutex<Vec<Registered>> = Mutex::new(Vec::new());

/// Whether the caches of every scope run by the controllers reporting to `metrics` have
/// synced (true when none run: a stand-by replica, or before the controllers start).
pub fn caches_synced(metrics: &Arc<Metrics>) -> bool {
    let registry = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    registry
        .iter()
        .filter(|r| Weak::ptr_eq(&r.metrics, &Arc::downgrade(metrics)))
        .filter_map(|r| r.caches.upgrade())
        .all(|c| c.is_synced())
}
