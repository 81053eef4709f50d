//! The parts of object metadata that decisions depend on, independent of where the object is stored.

use kube::Resource;

use crate::api::{PAUSE_ANNOTATION, PAUSED, RERUN_ANNOTATION};

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ObjectInfo {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub generation: Option<i64>,
    /// The object is being deleted (deletionTimestamp set); cleanup runs before the finalizer goes.
    pub deleting: bool,
    /// `amlops.io/reconcile: paused`: no writes to Azure or the local machine.
    pub paused: bool,
    /// Value of `amlops.io/rerun`, if set.
    pub rerun: Option<String>,
}

impl ObjectInfo {
    pub fn of<K: Resource>(obj: &K) -> Self {
        let meta = obj.meta();
        let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key)).cloned();
        Self {
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string()),
            uid: meta.uid.clone().unwrap_or_default(),
            generation: meta.generation,
            deleting: meta.deletion_timestamp.is_some(),
            paused: annotation(PAUSE_ANNOTATION).as_deref() == Some(PAUSED),
            rerun: annotation(RERUN_ANNOTATION),
        }
    }
}
