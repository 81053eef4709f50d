//! Prometheus metrics: reconciles, errors by reason, ARM calls by operation and status,
//! reconcile durations.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::azure::CallObserver;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ArmLabels {
    operation: String,
    status: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// All metrics of the controller, registered in one registry.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    arm_calls: Family<ArmLabels, Counter>,
    durations: Family<KindLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("amlops");
        let reconciles = Family::<KindLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let arm_calls = Family::<ArmLabels, Counter>::default();
        let durations = Family::<KindLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        registry.register("reconciles", "Reconciles by kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that ended in an error or a failed action, by kind and reason",
            errors.clone(),
        );
        registry.register("arm_calls", "HTTP exchanges with Azure Resource Manager by operation and status (including retries and polls)", arm_calls.clone());
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconcile, Azure calls included",
            durations.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            arm_calls,
            durations,
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, kind: &str, took: Duration) {
        let k = KindLabels {
            kind: kind.to_string(),
        };
        self.reconciles.get_or_create(&k).inc();
        self.durations.get_or_create(&k).observe(took.as_secs_f64());
    }

    pub fn error(&self, kind: &str, reason: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Counts ARM calls into the metrics.
pub struct ArmCallCounter(pub Arc<Metrics>);

impl CallObserver for ArmCallCounter {
    fn on_call(&self, operation: &'static str, status: Option<u16>) {
        let status = status.map_or_else(|| "none".to_string(), |s| s.to_string());
        self.0
            .arm_calls
            .get_or_create(&ArmLabels {
                operation: operation.to_string(),
                status,
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_every_family_with_labels() {
        let m = Arc::new(Metrics::default());
        m.reconciled("ComputeTarget", Duration::from_millis(3));
        m.error("ComputeTarget", "QuotaExceeded");
        ArmCallCounter(m.clone()).on_call("compute.get", Some(200));
        ArmCallCounter(m.clone()).on_call("compute.get", None);
        let text = m.encode();
        assert!(
            text.contains(r#"amlops_reconciles_total{kind="ComputeTarget"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"amlops_reconcile_errors_total{kind="ComputeTarget",reason="QuotaExceeded"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"amlops_arm_calls_total{operation="compute.get",status="200"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"status="none""#), "{text}");
        assert!(
            text.contains("amlops_reconcile_duration_seconds_count{kind=\"ComputeTarget\"} 1"),
            "{text}"
        );
    }
}
