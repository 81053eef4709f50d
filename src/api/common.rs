//! Small types shared by several kinds.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A reference to another amlops object in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ObjectRef {
    /// Name of the referenced object, in the same namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A reference to one key of a Kubernetes Secret in the same namespace.
/// amlops reads the value only at the moment it is sent to Azure and never stores or logs it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace as the referring object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret whose value is used.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A reference to a whole Kubernetes Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct SecretRef {
    /// Name of the Secret, in the same namespace as the referring object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Priority of the virtual machines of an Azure ML compute cluster.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum VmPriority {
    /// Dedicated VMs: never preempted, full price.
    #[default]
    Dedicated,
    /// Low-priority (spot) VMs: cheaper, may be preempted.
    LowPriority,
}

/// Last error reported by Azure (or by amlops) for an object.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ErrorInfo {
    /// Error code, e.g. the Azure error code `QuotaExceeded`.
    pub code: String,
    /// Human-readable message. Never contains secret material.
    pub message: String,
}
