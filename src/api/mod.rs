//! The amlops API: CRD types for `amlops.io/v1alpha1`. No I/O lives here.
//!
//! Doc comments on fields become `kubectl explain` text, so they are written for the
//! platform engineer reading them, not for the Rust reader.

// `printcolumn(...)` repeats `type_ = ..` by design; clippy reads that as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

mod common;
mod compute_target;
pub mod conditions;
mod core_kinds;
mod crds;
mod experiment;
mod names;
pub mod readiness;
mod run_configuration;
pub mod validate;
mod workspace;

pub use common::*;
pub use compute_target::*;
pub use conditions::{Condition, ConditionStatus};
pub use crds::{all_crds, crds_yaml};
pub use experiment::*;
pub use run_configuration::*;
pub use workspace::*;

/// API group of every amlops kind.
pub const GROUP: &str = "amlops.io";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";
/// Finalizer that guards Azure cleanup (delete, detach, cancel) before an object goes away.
pub const FINALIZER: &str = "amlops.io/cleanup";
/// Annotation that stops every write to Azure while set to `paused`.
pub const PAUSE_ANNOTATION: &str = "amlops.io/reconcile";
/// Value of [`PAUSE_ANNOTATION`] that pauses reconciliation.
pub const PAUSED: &str = "paused";
/// Annotation whose change starts a new run of an Experiment without a spec change.
pub const RERUN_ANNOTATION: &str = "amlops.io/rerun";
