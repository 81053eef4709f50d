//! ARM's request budget per subscription, as the fake reports it. Every ARM answer carries what
//! is left of its kind of request, for the principal and over all principals (`-global-`), as
//! real answers do: `job/test_command_job.pyTestCommandJobtest_command_job_dependency_label_resolution.json`
//! #0 (job PUT: `x-ms-ratelimit-remaining-subscription-writes: 199`, `...-global-writes: 2999`),
//! #2 (GET: `...-reads: 249`, `...-global-reads: 3749`), #3 and #18 (POST `listSecrets` and job
//! cancel count as writes), #19 (an LRO poll counts as a read), and
//! `compute/test_compute.pyTestComputetest_aml_compute_create_and_delete.json` #10 (DELETE:
//! `...-deletes`). An error answer carries it too (`job/test_command_job.pyTestCommandJobtest_ray_command_job.json` #1, a 400).
//!
//! The counts come from token buckets of ARM's published sizes ("Understand how Azure Resource
//! Manager throttles requests", learn.microsoft.com: 250 reads + 25/s, 200 writes + 10/s, 200
//! deletes + 10/s per principal; the global limit is 15 times that), which match the recorded
//! 199/2999 and 249/3749 after one request. The fake only reports them: it never throttles on
//! its own (not recorded: the answer to a request past an empty bucket); the `faults` knob
//! throttles instead.

use std::collections::HashMap;
use std::time::Instant;

use crate::reply::Reply;

/// Size and refill of one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub size: f64,
    pub per_second: f64,
}

/// The per-principal buckets of a subscription (the global ones are 15 times larger).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SubscriptionBudget {
    pub reads: Bucket,
    pub writes: Bucket,
    pub deletes: Bucket,
}

impl Default for SubscriptionBudget {
    fn default() -> Self {
        Self {
            reads: Bucket {
                size: 250.0,
                per_second: 25.0,
            },
            writes: Bucket {
                size: 200.0,
                per_second: 10.0,
            },
            deletes: Bucket {
                size: 200.0,
                per_second: 10.0,
            },
        }
    }
}

/// The global (all principals) limit over the per-principal one, per the docs cited above.
const GLOBAL_FACTOR: f64 = 15.0;

struct Level {
    tokens: f64,
    last: Instant,
}

impl Level {
    /// Takes one token (never below zero: the fake does not throttle) and says what is left.
    fn take(&mut self, bucket: Bucket, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * bucket.per_second).min(bucket.size);
        self.tokens = (self.tokens - 1.0).max(0.0);
        self.tokens.floor() as u64
    }
}

/// The levels of every subscription the fake has seen.
#[derive(Default)]
pub struct Budgets {
    levels: HashMap<(String, &'static str), (Level, Level)>,
}

impl Budgets {
    /// Counts a request with `method` on `path` and adds the remaining counts to `reply`.
    /// Requests outside a subscription (run history, discovery) carry none.
    pub fn count(
        &mut self,
        limits: &SubscriptionBudget,
        method: &str,
        path: &str,
        reply: Reply,
        now: Instant,
    ) -> Reply {
        let Some(subscription) = subscription_of(path) else {
            return reply;
        };
        let (noun, bucket) = match method {
            "GET" | "HEAD" => ("reads", limits.reads),
            "DELETE" => ("deletes", limits.deletes),
            _ => ("writes", limits.writes),
        };
        let global = Bucket {
            size: bucket.size * GLOBAL_FACTOR,
            per_second: bucket.per_second * GLOBAL_FACTOR,
        };
        let (own, all) = self
            .levels
            .entry((subscription.to_ascii_lowercase(), noun))
            .or_insert_with(|| {
                let full = |b: Bucket| Level {
                    tokens: b.size,
                    last: now,
                };
                (full(bucket), full(global))
            });
        let (own, all) = (own.take(bucket, now), all.take(global, now));
        reply
            .header(
                &format!("x-ms-ratelimit-remaining-subscription-{noun}"),
                own.to_string(),
            )
            .header(
                &format!("x-ms-ratelimit-remaining-subscription-global-{noun}"),
                all.to_string(),
            )
    }
}

fn subscription_of(path: &str) -> Option<&str> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    segments.find(|s| s.eq_ignore_ascii_case("subscriptions"))?;
    segments.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        reply
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_first_request_of_each_kind_reports_what_the_recordings_show() {
        let mut budgets = Budgets::default();
        let limits = SubscriptionBudget::default();
        let now = Instant::now();
        let path = "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws/jobs/j";
        let put = budgets.count(&limits, "PUT", path, Reply::empty(201), now);
        assert_eq!(
            header(&put, "x-ms-ratelimit-remaining-subscription-writes"),
            Some("199")
        );
        assert_eq!(
            header(&put, "x-ms-ratelimit-remaining-subscription-global-writes"),
            Some("2999")
        );
        let get = budgets.count(&limits, "GET", path, Reply::empty(200), now);
        assert_eq!(
            header(&get, "x-ms-ratelimit-remaining-subscription-reads"),
            Some("249")
        );
        assert_eq!(
            header(&get, "x-ms-ratelimit-remaining-subscription-global-reads"),
            Some("3749")
        );
        let history = budgets.count(&limits, "GET", "/discovery", Reply::empty(200), now);
        assert!(history.headers.is_empty());
    }

    #[test]
    fn counts_go_down_per_request_and_refill_over_time() {
        let mut budgets = Budgets::default();
        let limits = SubscriptionBudget {
            writes: Bucket {
                size: 2.0,
                per_second: 1.0,
            },
            ..SubscriptionBudget::default()
        };
        let now = Instant::now();
        let left = |budgets: &mut Budgets, at| {
            let reply = budgets.count(&limits, "POST", "/subscriptions/S/x", Reply::empty(200), at);
            header(&reply, "x-ms-ratelimit-remaining-subscription-writes").map(str::to_owned)
        };
        assert_eq!(left(&mut budgets, now).as_deref(), Some("1"));
        assert_eq!(left(&mut budgets, now).as_deref(), Some("0"));
        assert_eq!(left(&mut budgets, now).as_deref(), Some("0"));
        let later = now + std::time::Duration::from_secs(2);
        assert_eq!(left(&mut budgets, later).as_deref(), Some("1"));
    }
}
