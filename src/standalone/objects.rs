//! The standalone store as an [`ObjectSource`]: the objects an object names are read from
//! SQLite at once, so the returned future holds only the answer.

use std::fmt::Debug;
use std::future::Future;

use k8s_openapi::NamespaceResourceScope;
use serde::de::DeserializeOwned;

use super::store::{Key, Store, StoreError};
use crate::actions::objects::ObjectSource;

impl ObjectSource for Store {
    type Error = StoreError;

    /// A stored object that does not match its kind's schema reads as absent: its own
    /// reconcile reports it.
    fn get<K>(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<K>, StoreError>> + Send
    where
        K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + DeserializeOwned
            + Clone
            + Debug
            + Send
            + 'static,
    {
        let key = Key {
            kind: K::kind(&()).into_owned(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let found = Store::get(self, &key)
            .map(|object| object.and_then(|v| serde_json::from_value::<K>(v).ok()));
        std::future::ready(found)
    }
}

/// Reads `name` of kind `K` from the store (the store answers at once: no runtime needed).
pub fn read<K>(store: &Store, namespace: &str, name: &str) -> Result<Option<K>, StoreError>
where
    K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + Debug
        + Send
        + 'static,
{
    futures::executor::block_on(ObjectSource::get(store, namespace, name))
}
