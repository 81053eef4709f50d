//! The Azure ML client: credentials, ARM calls, LRO polling, retries, error classification, blob upload.
//! Knows nothing of Kubernetes.

pub mod arm;
pub mod blob;
pub mod credential;
pub mod error;
pub mod http;
pub mod lro;
pub mod models;
pub mod ops;
pub mod rate_limit;
pub mod retry;
pub mod secret;

pub use arm::{API_VERSION, ArmClient, ArmConfig, CallObserver};
pub use credential::{CredentialSource, Endpoints};
pub use error::AzureError;
pub use lro::{OperationHandle, OperationKind, PollState, Started};
pub use secret::Secret;
pub use ops::{WorkspaceClient, WorkspaceInfo, WorkspaceRef};
