//! Hand-written request/response models for exactly what amlops uses from the
//! Azure ML REST API 2026-07-01. Request bodies omit read-only fields; secret-bearing
//! fields are [`crate::azure::Secret`].

pub mod code;
pub mod common;
pub mod compute;
pub mod connection;
pub mod environment;
pub mod history;
pub mod job;
pub mod workspace;
