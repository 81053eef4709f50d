//! Client-side token bucket so a fleet of reconcilers never storms ARM (which throttles
//! per subscription and principal). Reservations may drive the bucket negative: each
//! caller is told exactly how long to wait, which queues callers fairly without polling.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sustained request rate and burst size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second; must be finite and > 0.
    pub per_second: f64,
    /// Bucket capacity: requests allowed back to back after an idle period (min 1).
    pub burst: u32,
}

impl Default for RateLimit {
    /// ARM allows roughly 12,000 reads and 1,200 writes per hour per principal; 5/s
    /// sustained with bursts of 20 keeps one operator well inside that.
    fn default() -> Self {
        Self {
            per_second: 5.0,
            burst: 20,
        }
    }
}

impl RateLimit {
    /// Checks the numbers, naming the bad one.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.per_second.is_finite() && self.per_second > 0.0) {
            return Err(format!(
                "rate limit per_second must be a positive number, got {}",
                self.per_second
            ));
        }
        Ok(())
    }
}

/// Pure token-bucket state; time is passed in.
#[derive(Debug)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            tokens: f64::from(limit.burst.max(1)),
            limit,
            last: now,
        }
    }

    /// Reserves one token and returns how long the caller must wait before using it.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        let capacity = f64::from(self.limit.burst.max(1));
        self.tokens = (self.tokens + elapsed * self.limit.per_second).min(capacity);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.limit.per_second)
        }
    }
}

/// The shared, async face of [`TokenBucket`].
#[derive(Debug)]
pub struct RateLimiter {
    bucket: Mutex<TokenBucket>,
}

impl RateLimiter {
    /// A limiter with a full bucket.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            bucket: Mutex::new(TokenBucket::new(limit, Instant::now())),
        }
    }

    /// Waits until the caller may send one request.
    pub async fn acquire(&self) {
        let wait = {
            // A poisoned lock only means another task panicked mid-update; the bucket
            // state is still a number, so keep using it.
            let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
            bucket.reserve(Instant::now())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 10.0,
        burst: 3,
    };

    #[test]
    fn burst_is_free_then_callers_queue_at_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        for _ in 0..3 {
            assert_eq!(b.reserve(t0), Duration::ZERO);
        }
        let waits: Vec<_> = (0..3).map(|_| b.reserve(t0)).collect();
        assert_eq!(
            waits,
            [100, 200, 300].map(Duration::from_millis).to_vec(),
            "each queued caller waits one more token period"
        );
    }

    #[test]
    fn tokens_refill_over_time_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        for _ in 0..3 {
            b.reserve(t0);
        }
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(b.reserve(t1), Duration::ZERO);
        assert!(b.reserve(t1) > Duration::ZERO);
        // a long idle period refills to the burst, not beyond
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.reserve(t2), Duration::ZERO);
        }
        assert!(b.reserve(t2) > Duration::ZERO);
    }

    #[test]
    fn invalid_rates_are_rejected_with_the_value() {
        let bad = RateLimit {
            per_second: 0.0,
            burst: 1,
        };
        assert!(bad.validate().unwrap_err().contains("got 0"));
        assert!(LIMIT.validate().is_ok());
    }
}
