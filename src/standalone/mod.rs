//! The cluster-less frontend: manifests from files, an embedded SQLite store for objects and
//! status, the apply loop, and get/describe/logs rendering.

pub mod azure;
pub mod cli;
pub mod engine;
pub mod inputs;
pub mod manifests;
mod objects;
mod plan;
pub mod private;
pub mod render;
pub mod store;
pub mod writer_lock;
