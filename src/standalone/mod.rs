//! The cluster-less frontend: manifests from files, an embedded SQLite store for objects and
//! status, the apply loop, and get/describe/logs rendering.

pub mod manifests;
pub mod store;
