//! amlops: declarative Azure Machine Learning training infrastructure for Kubernetes.
//!
//! Imports point one way: frontends (`controller`, `standalone`) -> `actions` ->
//! `local` | `snapshot` | `azure`; frontends and actions -> `reconcile` -> `api`.

pub mod actions;
pub mod api;
pub mod azure;
pub mod controller;
pub mod local;
pub mod reconcile;
pub mod snapshot;
pub mod standalone;

#[cfg(test)]
mod recorded;
