//! ARM's request budget, mirrored client-side: one token bucket per subscription and kind of
//! request (reads, writes, deletes), shared by every client built from the same [`ArmConfig`]
//! (so by every controller of an operator), lowered to what ARM reports left in the
//! `x-ms-ratelimit-remaining-*` headers, and drained for everyone on the subscription when ARM
//! answers 429, so a throttle never turns into more requests.
//!
//! [`ArmConfig`]: super::arm::ArmConfig

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::HeaderMap;
use url::Url;

use super::rate_limit::{RateLimit, TokenBucket};

/// The kinds of request ARM counts separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Delete,
}

impl Access {
    /// How ARM counts a request with `method`: GET and HEAD read, DELETE deletes, the rest
    /// (PUT, PATCH, POST actions such as `listSecrets` or a job cancel) write.
    pub fn of(method: &Method) -> Self {
        match *method {
            Method::GET | Method::HEAD => Self::Read,
            Method::DELETE => Self::Delete,
            _ => Self::Write,
        }
    }

    /// Plural noun, as in ARM's header names.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Read => "reads",
            Self::Write => "writes",
            Self::Delete => "deletes",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The budget per subscription for each kind of request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetLimits {
    pub reads: RateLimit,
    pub writes: RateLimit,
    pub deletes: RateLimit,
}

impl Default for BudgetLimits {
    /// ARM's published subscription limits under its token-bucket throttling (since 2024,
    /// "Understand how Azure Resource Manager throttles requests",
    /// https://learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling):
    /// reads 250 burst + 25/s, writes 200 + 10/s, deletes 200 + 10/s, per subscription, service
    /// principal, region and kind. The recordings agree: a 2026 job PUT answered
    /// `x-ms-ratelimit-remaining-subscription-writes: 199` and a GET `...-reads: 249`
    /// (`job/test_command_job.pyTestCommandJobtest_command_job_dependency_label_resolution.json`
    /// #0 and #2). One bucket per subscription is stricter than ARM (it also splits by
    /// principal and region), never looser.
    fn default() -> Self {
        Self {
            reads: RateLimit {
                per_second: 25.0,
                burst: 250,
            },
            writes: RateLimit {
                per_second: 10.0,
                burst: 200,
            },
            deletes: RateLimit {
                per_second: 10.0,
                burst: 200,
            },
        }
    }
}

impl BudgetLimits {
    /// Checks every limit, naming the kind that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        for (access, limit) in self.each() {
            limit
                .validate()
                .map_err(|e| format!("ARM {} budget: {e}", access.noun()))?;
        }
        Ok(())
    }

    fn each(&self) -> [(Access, RateLimit); 3] {
        [
            (Access::Read, self.reads),
            (Access::Write, self.writes),
            (Access::Delete, self.deletes),
        ]
    }
}

/// The buckets of one subscription.
#[derive(Debug)]
pub struct SubscriptionBudget {
    buckets: Mutex<[TokenBucket; 3]>,
}

impl SubscriptionBudget {
    fn new(limits: &BudgetLimits, now: Instant) -> Self {
        Self {
            buckets: Mutex::new(limits.each().map(|(_, l)| TokenBucket::new(l, now))),
        }
    }

    fn with<T>(&self, access: Access, f: impl FnOnce(&mut TokenBucket) -> T) -> T {
        // A poisoned lock only means another task panicked mid-update; the bucket state is
        // still numbers, so keep using it.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut buckets[access.index()])
    }

    /// See [`TokenBucket::acquire`].
    pub fn acquire(
        &self,
        access: Access,
        now: Instant,
        max_wait: Duration,
    ) -> Result<Duration, Duration> {
        self.with(access, |b| b.acquire(now, max_wait))
    }

    /// Takes in what an answer says: the remaining budget ARM reports, and a 429 (which
    /// closes the bucket for the `Retry-After`).
    pub fn observe(
        &self,
        access: Access,
        status: u16,
        headers: &HeaderMap,
        retry_after: Option<Duration>,
        now: Instant,
    ) {
        self.with(access, |b| {
            if let Some(left) = remaining(headers, access) {
                b.cap(now, left);
            }
            if status == 429 {
                b.drain(now, retry_after);
            }
        })
    }
}

/// The budgets of every subscription, created on first use. Clones share them.
#[derive(Debug, Clone, Default)]
pub struct ArmBudget {
    limits: BudgetLimits,
    subscriptions: Arc<Mutex<HashMap<String, Arc<SubscriptionBudget>>>>,
}

impl ArmBudget {
    /// An empty registry; each subscription starts with full buckets of `limits`.
    pub fn new(limits: BudgetLimits) -> Self {
        Self {
            limits,
            subscriptions: Default::default(),
        }
    }

    pub fn limits(&self) -> &BudgetLimits {
        &self.limits
    }

    /// The budget of `subscription` (compared case-insensitively, as ARM does; `""` for
    /// requests that name none).
    pub fn subscription(&self, subscription: &str) -> Arc<SubscriptionBudget> {
        let key = subscription.to_ascii_lowercase();
        let mut all = self.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(key)
            .or_insert_with(|| Arc::new(SubscriptionBudget::new(&self.limits, Instant::now())))
            .clone()
    }
}

/// The subscription a request URL is about: the segment after `subscriptions` (ARM paths, LRO
/// status URLs and run-history paths all carry one), or `""`.
pub fn subscription_of(url: &Url) -> &str {
    let mut segments = url.path_segments().into_iter().flatten();
    segments
        .by_ref()
        .find(|s| s.eq_ignore_ascii_case("subscriptions"));
    segments.next().unwrap_or_default()
}

/// What ARM reports left of `access` for the subscription: the lower of the per-principal
/// count (`x-ms-ratelimit-remaining-subscription-writes`) and the count over all principals
/// (`...-subscription-global-writes`), both in the recordings cited at [`BudgetLimits`].
pub fn remaining(headers: &HeaderMap, access: Access) -> Option<f64> {
    let noun = access.noun();
    [
        format!("x-ms-ratelimit-remaining-subscription-{noun}"),
        format!("x-ms-ratelimit-remaining-subscription-global-{noun}"),
    ]
    .iter()
    .filter_map(|name| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok())
    .filter(|n| n.is_finite() && *n >= 0.0)
    .reduce(f64::min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const NO_WAIT: Duration = Duration::ZERO;

    fn small() -> BudgetLimits {
        let one = RateLimit {
            per_second: 10.0,
            burst: 2,
        };
        BudgetLimits {
            reads: one,
            writes: one,
            deletes: one,
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn clones_share_one_budget_per_subscription() {
        let budget = ArmBudget::new(small());
        let other_client = budget.clone();
        let now = Instant::now();
        let sub = "00000000-0000-0000-0000-00000000000A";
        for _ in 0..2 {
            assert!(
                budget
                    .subscription(sub)
                    .acquire(Access::Write, now, NO_WAIT)
                    .is_ok()
            );
        }
        let spent = other_client.subscription(&sub.to_lowercase());
        assert!(spent.acquire(Access::Write, now, NO_WAIT).is_err());
        // other kinds and other subscriptions have their own buckets
        assert!(spent.acquire(Access::Read, now, NO_WAIT).is_ok());
        let elsewhere = other_client.subscription("00000000-0000-0000-0000-00000000000b");
        assert!(elsewhere.acquire(Access::Write, now, NO_WAIT).is_ok());
        // a separately built budget (another process) shares nothing
        let fresh = ArmBudget::new(small()).subscription(sub);
        assert!(fresh.acquire(Access::Write, now, NO_WAIT).is_ok());
    }

    #[test]
    fn the_remaining_count_arm_reports_lowers_the_bucket() {
        let budget = ArmBudget::new(BudgetLimits::default()).subscription("s");
        let now = Instant::now();
        // the lower of the principal's and the global count wins
        let h = headers(&[
            ("x-ms-ratelimit-remaining-subscription-writes", "1"),
            (
                "x-ms-ratelimit-remaining-subscription-global-writes",
                "2999",
            ),
        ]);
        budget.observe(Access::Write, 201, &h, None, now);
        assert_eq!(budget.acquire(Access::Write, now, NO_WAIT), Ok(NO_WAIT));
        assert!(budget.acquire(Access::Write, now, NO_WAIT).is_err());
        // reads were not touched by a writes header
        for _ in 0..250 {
            assert!(budget.acquire(Access::Read, now, NO_WAIT).is_ok());
        }
    }

    #[test]
    fn a_429_closes_the_bucket_for_everyone_until_the_retry_after() {
        let budget = ArmBudget::new(BudgetLimits::default());
        let now = Instant::now();
        budget.subscription("s").observe(
            Access::Write,
            429,
            &HeaderMap::new(),
            Some(Duration::from_secs(17)),
            now,
        );
        let again = budget.subscription("S");
        assert_eq!(
            again.acquire(Access::Write, now, Duration::from_secs(1)),
            Err(Duration::from_secs(17))
        );
        let later = now + Duration::from_secs(17);
        assert!(again.acquire(Access::Write, later, NO_WAIT).is_ok());
    }

    #[test]
    fn requests_are_counted_by_method_and_subscription_in_the_path() {
        assert_eq!(Access::of(&Method::GET), Access::Read);
        assert_eq!(Access::of(&Method::PUT), Access::Write);
        assert_eq!(Access::of(&Method::POST), Access::Write);
        assert_eq!(Access::of(&Method::DELETE), Access::Delete);
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            subscription_of(&url(
                "https://management.azure.com/subscriptions/abc/resourceGroups/rg?api-version=1"
            )),
            "abc"
        );
        assert_eq!(
            subscription_of(&url(
                "https://westeurope.api.azureml.ms/history/v1.0/subscriptions/abc/resourceGroups/rg/runs/r"
            )),
            "abc"
        );
        assert_eq!(
            subscription_of(&url("https://westeurope.api.azureml.ms/discovery")),
            ""
        );
    }

    #[test]
    fn odd_header_values_are_ignored() {
        let h = headers(&[
            ("x-ms-ratelimit-remaining-subscription-reads", "many"),
            ("x-ms-ratelimit-remaining-subscription-global-reads", "-4"),
        ]);
        assert_eq!(remaining(&h, Access::Read), None);
        let h = headers(&[("x-ms-ratelimit-remaining-subscription-deletes", " 799 ")]);
        assert_eq!(remaining(&h, Access::Delete), Some(799.0));
    }

    #[test]
    fn a_bad_limit_names_its_kind() {
        let mut limits = BudgetLimits::default();
        assert!(limits.validate().is_ok());
        limits.writes.per_second = f64::NAN;
        assert!(limits.validate().unwrap_err().contains("writes"));
    }
}
