//! The watch streams every controller builds: its own kind (cached for lookups) and the kinds
//! it depends on, each passing an object on only when what matters about it changed; and the
//! [`Informer`]: one watch of a kind shared by every controller of a scope.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, mpsc, watch};

use super::kube_io::relevant_change;
use super::scope::shutdown_future;

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

/// Any new version of an object (ConfigMaps, watched metadata-only).
pub fn versions<K>(api: Api<K>) -> impl Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .touched_objects()
        .predicate_filter(predicates::resource_version, Default::default())
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

/// Passes an object on only when `key` of it differs from the last one passed for its uid.
fn changed<K: Resource + Send + Sync>(
    objects: impl Stream<Item = Arc<K>> + Send,
    key: fn(&K) -> Option<u64>,
) -> impl Stream<Item = Arc<K>> + Send {
    let mut last: HashMap<String, u64> = HashMap::new();
    objects.filter(move |o| {
        let pass = match (&o.meta().uid, key(o)) {
            (Some(uid), Some(k)) => last.insert(uid.clone(), k) != Some(k),
            _ => true,
        };
        futures::future::ready(pass)
    })
}

/// Objects a subscriber has not taken yet; a full buffer holds the watch back (nothing is
/// dropped). The kinds shared this way change rarely, so it only fills when a subscriber stops.
const SUBSCRIBER_BUFFER: usize = 256;

type Subscribers<K> = Arc<Mutex<Vec<mpsc::Sender<Arc<K>>>>>;

/// One watch of a kind in a scope, shared by every controller that reads or follows that kind:
/// a store for lookups, and for each subscriber the objects as they change (deletions
/// included). Runs until the scope shuts down.
pub struct Informer<K: Resource + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    subscribers: Subscribers<K>,
    /// Turns true once the first list is in the store. (`Store::wait_until_ready` wakes only
    /// one of several tasks waiting on it, and the controllers and `/readyz` all wait.)
    synced: watch::Receiver<bool>,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Starts watching `api`.
    pub fn start(api: Api<K>, shutdown: watch::Receiver<bool>) -> Self {
        let writer = Writer::default();
        let store = writer.as_reader();
        let subscribers: Subscribers<K> = Arc::default();
        let (synced_tx, synced) = watch::channel(false);
        let driver = Driver {
            writer,
            subscribers: subscribers.clone(),
            synced: synced_tx,
        };
        tokio::spawn(driver.run(api, shutdown));
        Informer {
            store,
            subscribers,
            synced,
        }
    }

    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// The objects cached now, then every object as it changes. Nothing is missed between the
    /// two: the watch cannot move on while a subscriber joins.
    async fn subscribe(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let current = {
            let mut subscribers = self.subscribers.lock().await;
            subscribers.push(tx);
            self.store.state()
        };
        let changes =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|o| (o, rx)) });
        futures::stream::iter(current).chain(changes)
    }

    /// The objects cached now, then each as it changes, passed on only when `key` of it (a hash
    /// of what matters to the subscriber, e.g. readiness) differs from the last one passed.
    pub async fn changes(
        &self,
        key: fn(&K) -> Option<u64>,
    ) -> impl Stream<Item = Arc<K>> + Send + 'static {
        changed(self.subscribe().await, key)
    }

    /// Whether the first list has completed (and the store holds every object).
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until the first list has completed; false if the watch stopped before.
    pub async fn wait_synced(&self) -> bool {
        self.synced.clone().wait_for(|s| *s).await.is_ok()
    }
}

/// The task behind an [`Informer`].
struct Driver<K: Resource + Clone + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    writer: Writer<K>,
    subscribers: Subscribers<K>,
    synced: watch::Sender<bool>,
}

impl<K> Driver<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// Applies every watch event to the store, then hands the objects it touched to the
    /// subscribers (after a relist: all of them).
    async fn run(mut self, api: Api<K>, shutdown: watch::Receiver<bool>) {
        let store = self.writer.as_reader();
        let events = watcher(api, watcher::Config::default())
            .default_backoff()
            .take_until(shutdown_future(shutdown));
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                    continue;
                }
            };
            let mut subscribers = self.subscribers.lock().await;
            self.writer.apply_watcher_event(&event);
            let touched: Vec<Arc<K>> = match event {
                watcher::Event::Apply(o) => {
                    store.get(&ObjectRef::from_obj(&o)).into_iter().collect()
                }
                watcher::Event::Delete(o) => vec![Arc::new(o)],
                watcher::Event::InitDone => {
                    self.synced.send_replace(true);
                    store.state()
                }
                watcher::Event::Init | watcher::Event::InitApply(_) => vec![],
            };
            for o in touched {
                let mut open = Vec::with_capacity(subscribers.len());
                for s in subscribers.drain(..) {
                    // A subscriber that is gone (its controller stopped) is dropped.
                    if s.send(o.clone()).await.is_ok() {
                        open.push(s);
                    }
                }
                *subscribers = open;
            }
        }
    }
}
