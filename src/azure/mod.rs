//! The Azure ML client: credentials, ARM calls, LRO polling, retries, error classification, blob upload.
//! Knows nothing of Kubernetes.

pub mod blob;
