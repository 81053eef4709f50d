//! The Azure ML client: credentials, ARM calls, LRO polling, retries, error classification, blob upload.
//! Knows nothing of Kubernetes.
//!
//! Usage: build one [`ArmClient`] per credential (`ArmClient::new(ArmConfig, &CredentialSource)`;
//! it holds the HTTPS pool and the cached token, and clones cheaply; clones of one [`ArmConfig`]
//! share the request budget of each subscription, see [`budget`]), wrap it
//! in a [`WorkspaceClient`] per workspace, and call the typed operations. Long-running calls
//! return [`Started::Pending`] with an [`OperationHandle`] that can be persisted and later
//! passed to `ArmClient::poll` (one GET; a reconcile polls once and requeues) or
//! `ArmClient::wait` (polls until done: for tools and tests, never a reconcile). Every failure is an
//! [`AzureError`]: `retryable()` says whether to requeue, `retry_after()` when, `code()` is the
//! condition reason. No call waits longer than `RetryPolicy::max_inline_wait` inside.
//! api-version 2026-07-01 has no Azure Batch compute type, so there is no Batch model here.

pub mod arm;
pub mod blob;
pub mod budget;
pub mod credential;
pub mod error;
pub mod http;
pub mod lro;
pub mod models;
pub mod ops;
pub mod rate_limit;
pub mod retry;
pub mod secret;
pub mod storage;

pub use arm::{API_VERSION, ArmClient, ArmConfig, CallObserver};
pub use credential::{CredentialSource, Endpoints};
pub use error::AzureError;
pub use lro::{OperationHandle, OperationKind, PollState, Started};
pub use ops::{WorkspaceClient, WorkspaceInfo, WorkspaceRef};
pub use secret::Secret;
