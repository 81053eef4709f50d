//! Knobs of the fake: lifecycle timings, fault injection, validation and blob storage.
//!
//! Long-running operations carry no `Retry-After` (no recorded one does, see `arm::lro`), so
//! there is no knob for it: a client polls at its own default interval.

use std::net::SocketAddr;

use crate::ratelimit::SubscriptionBudget;
use std::time::Duration;

/// How the fake behaves. `Options::default()` gives realistic but fast timings and no faults.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Time a compute spends in `Creating`/`Updating`/`Deleting` before the operation ends.
    pub compute_provision_delay: Duration,
    /// Time a job spends in each of Starting, Provisioning, Preparing, Queued, Running,
    /// Finalizing (and CancelRequested).
    pub job_phase_delay: Duration,
    /// Fault injection on ARM requests.
    pub faults: Faults,
    /// Validate path, query and body of every ARM request against the official spec (400 on violation).
    pub validate_bodies: bool,
    /// Blob storage behind the workspace (e.g. Azurite): the containers `startPendingUpload`
    /// and datastore `listSecrets` hand out SAS tokens for, and the run log blobs of run details.
    /// Without it those SAS tokens are placeholders and run details list no log files.
    pub storage: Option<StorageBackend>,
    /// `POST datastores/workspaceblobstore/listSecrets` answers 403 `AuthorizationFailed`, as for
    /// a caller without the `listSecrets/action` permission (so a client's fallback to
    /// `startPendingUpload` can be tested).
    pub datastore_secrets_forbidden: bool,
    /// Dedicated-core quota of the subscription in nodes: an AmlCompute PUT asking for more
    /// `maxNodeCount` is refused with 400 `QuotaExceeded`, as Azure does. `None`: unlimited.
    pub max_nodes_quota: Option<i64>,
    /// Test fault injection, not recorded behaviour: the token endpoint holds every answer this
    /// long, as a token service that does not answer in time. Zero answers at once.
    pub token_delay: Duration,
    /// The request budget the `x-ms-ratelimit-remaining-*` headers report (ARM's published
    /// sizes by default; a smaller one shows a nearly spent subscription). See `ratelimit`.
    pub subscription_budget: SubscriptionBudget,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            compute_provision_delay: Duration::from_millis(300),
            job_phase_delay: Duration::from_millis(200),
            faults: Faults::default(),
            validate_bodies: true,
            storage: None,
            datastore_secrets_forbidden: false,
            max_nodes_quota: None,
            token_delay: Duration::ZERO,
            subscription_budget: SubscriptionBudget::default(),
        }
    }
}

/// Fractions (0.0..=1.0, summed in this order) of ARM and run-history requests (discovery
/// included) that get a fault instead of normal handling. Which request gets which fault is a
/// pure function of `seed` and the request's sequence number, so a run is reproducible.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// 429 with `Retry-After: retry_after_secs`.
    pub throttle_ratio: f64,
    /// 500 or 503 (alternating by the random draw), with `Retry-After` on 503.
    pub server_error_ratio: f64,
    /// The connection is closed without a response.
    pub drop_ratio: f64,
    /// The request is answered normally after `slow_delay`.
    pub slow_ratio: f64,
    /// `Retry-After` seconds on throttled/503 responses.
    pub retry_after_secs: u64,
    /// Seed of the deterministic draw.
    pub seed: u64,
    /// How long a slow response is held (default 0 means 2 s).
    pub slow_delay: Duration,
}

impl Faults {
    /// The effective delay of a slow response.
    pub fn slow_delay(&self) -> Duration {
        if self.slow_delay.is_zero() {
            Duration::from_secs(2)
        } else {
            self.slow_delay
        }
    }
}

/// A blob service the fake signs SAS tokens for and writes run logs to.
#[derive(Clone)]
pub struct StorageBackend {
    /// Path-style account endpoint, e.g. `http://127.0.0.1:10000/devstoreaccount1`.
    pub blob_endpoint: String,
    /// Account name, e.g. `devstoreaccount1`.
    pub account: String,
    /// Base64 account key (Azurite's well-known key for devstoreaccount1).
    pub account_key_b64: String,
}

impl std::fmt::Debug for StorageBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageBackend")
            .field("blob_endpoint", &self.blob_endpoint)
            .field("account", &self.account)
            .field("account_key_b64", &"<redacted>")
            .finish()
    }
}
