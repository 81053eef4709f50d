//! The watch streams every controller builds: its own kind (cached for lookups) and the kinds
//! it depends on, each passing an object on only when what matters about it changed.

use std::fmt::Debug;
use std::hash::Hash;

use futures::Stream;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

use super::kube_io::relevant_change;

/// Objects of the controller's own kind, cached in `writer`; status-only changes are dropped
/// so a Stalled object is not retried in a hot loop.
pub fn own<K>(
    api: Api<K>,
    writer: Writer<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .touched_objects()
        .predicate_filter(relevant_change, Default::default())
}

/// Objects of a kind the controller depends on, passed on when `key` (a hash of what matters,
/// e.g. readiness) changes.
pub fn changes<K>(
    api: Api<K>,
    key: fn(&K) -> Option<u64>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .touched_objects()
        .predicate_filter(key, Default::default())
}

/// Any new version of an object (Secrets, watched metadata-only).
pub fn versions<K>(api: Api<K>) -> impl Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    changes(api, predicates::resource_version)
}

/// The cached objects in `namespace` for which `uses` holds: what a change of a watched
/// dependency re-reconciles.
pub fn users<K>(
    store: &Store<K>,
    namespace: Option<String>,
    uses: impl Fn(&K) -> bool,
) -> Vec<ObjectRef<K>>
where
    K: Resource + Clone + Debug + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    store
        .state()
        .iter()
        .filter(|o| o.meta().namespace == namespace && uses(o))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}
