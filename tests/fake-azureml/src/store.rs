//! The fake's state: computes, environment and code versions, jobs and connections keyed by
//! lower-cased ARM resource id (ARM ids are case-insensitive), and long-running operations keyed
//! by operation id.

use crate::lifecycle::JobOutcome;
use jiff::Timestamp;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Instant;

#[derive(Debug, Default)]
pub struct Store {
    pub computes: HashMap<String, Compute>,
    /// Environment and code versions.
    pub assets: HashMap<String, Asset>,
    pub jobs: HashMap<String, Job>,
    /// Workspace connections, as PUT (credentials included; they are stripped when rendered).
    pub connections: HashMap<String, Asset>,
    pub operations: HashMap<String, Operation>,
}

#[derive(Debug)]
pub struct Compute {
    pub id: String,
    pub name: String,
    /// The body as PUT (secrets included; they are stripped when rendered).
    pub body: Value,
    pub created_wall: Timestamp,
    pub modified_wall: Timestamp,
    /// While `now < busy_until` the compute reports `busy_state`.
    pub busy_until: Instant,
    pub busy_state: &'static str,
    /// Provisioning ends in Failed (tag `fake.outcome: Failed`).
    pub fails: bool,
    /// Set by DELETE: the compute disappears at this instant.
    pub gone_at: Option<Instant>,
    /// Node errors injected by tests (`code`, `message`), rendered in
    /// `properties.properties.errors`.
    pub node_errors: Vec<(String, String)>,
}

impl Compute {
    /// Whether the compute still exists at `now`.
    pub fn exists(&self, now: Instant) -> bool {
        self.gone_at.is_none_or(|t| now < t)
    }
}

#[derive(Debug)]
pub struct Asset {
    pub id: String,
    pub name: String,
    pub body: Value,
    pub created_wall: Timestamp,
}

#[derive(Debug)]
pub struct Job {
    pub id: String,
    pub name: String,
    /// Lower-cased workspace id, for listing.
    pub workspace: String,
    pub body: Value,
    pub created: Instant,
    pub created_wall: Timestamp,
    pub outcome: JobOutcome,
    pub cancelled_at: Option<Instant>,
    /// Properties the service adds to `properties.properties` when it accepts the job
    /// (job/…dependency_label_resolution.json #17); kept apart from `body` so that a re-PUT of
    /// the same body stays idempotent.
    pub server_properties: serde_json::Map<String, Value>,
}

/// A long-running operation: when it ends and how.
#[derive(Debug)]
pub struct Operation {
    pub done_at: Instant,
    /// `Some({code, message})` (an ARM ErrorDetail) if the operation ends Failed.
    pub error: Option<Value>,
}

impl Store {
    /// Forgets every resource and operation.
    pub fn clear(&mut self) {
        *self = Store::default();
    }
}
