//! The standalone store as an [`ObjectSource`]: the objects an object names are read from
//! SQLite at once, so the returned future holds only the answer.

use std::future::Future;

use super::store::{Key, Store, StoreError};
use crate::actions::objects::{Namespaced, ObjectSource};

impl ObjectSource for Store {
    type Error = StoreError;

    /// A stored object that does not match its kind's schema reads as absent: its own
    /// reconcile reports it.
    fn get<K: Namespaced>(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<K>, StoreError>> + Send {
        std::future::ready(read(self, namespace, name))
    }
}

/// Reads `name` of kind `K` from the store.
pub fn read<K: Namespaced>(
    store: &Store,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, StoreError> {
    let key = Key {
        kind: K::kind(&()).into_owned(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    };
    Ok(store
        .get(&key)?
        .and_then(|v| serde_json::from_value::<K>(v).ok()))
}
