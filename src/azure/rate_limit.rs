//! A token bucket, the model ARM itself throttles with: a caller short of a token either waits
//! briefly (its token is reserved, so waiting callers are served in order) or is told when to
//! come back, without holding anything. Pure: time is passed in.

use std::time::{Duration, Instant};

/// Sustained request rate and burst size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second; must be finite and > 0.
    pub per_second: f64,
    /// Bucket capacity: requests allowed back to back after an idle period (min 1).
    pub burst: u32,
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

    fn period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second)
    }
}

/// Token-bucket state. Reservations may drive the bucket negative: each caller that waits is
/// told exactly how long, which queues callers fairly without polling.
#[derive(Debug)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
    /// Nothing goes out before this (a `Retry-After` the server gave).
    closed_until: Option<Instant>,
    /// When the last caller turned away was told to come back: the next one is told one token
    /// period later, so a crowd turned away at once comes back at the rate tokens refill.
    queue_until: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            tokens: capacity(&limit),
            limit,
            last: now,
            closed_until: None,
            queue_until: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        self.tokens = (self.tokens + elapsed * self.limit.per_second).min(capacity(&self.limit));
    }

    /// Asks for one token. `Ok(wait)`: the token is reserved; send after `wait` (at most
    /// `max_wait`). `Err(after)`: none within `max_wait`; nothing is reserved, come back after
    /// `after`.
    pub fn acquire(&mut self, now: Instant, max_wait: Duration) -> Result<Duration, Duration> {
        self.refill(now);
        let token_in = if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.limit.per_second)
        };
        let closed = self
            .closed_until
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        let wait = token_in.max(closed);
        if wait <= max_wait {
            self.tokens -= 1.0;
            return Ok(wait);
        }
        let back = (now + wait).max(self.queue_until + self.limit.period());
        self.queue_until = back;
        Err(back - now)
    }

    /// The server says only `remaining` tokens are left (it also counts callers this bucket
    /// does not see): never hold more than that. A higher number changes nothing, as answers
    /// can arrive out of order.
    pub fn cap(&mut self, now: Instant, remaining: f64) {
        self.refill(now);
        self.tokens = self.tokens.min(remaining);
    }

    /// The server throttled a request: the bucket is empty, and closed for `retry_after`.
    pub fn drain(&mut self, now: Instant, retry_after: Option<Duration>) {
        self.refill(now);
        self.tokens = self.tokens.min(0.0);
        if let Some(wait) = retry_after {
            self.closed_until = self.closed_until.max(Some(now + wait));
        }
    }
}

fn capacity(limit: &RateLimit) -> f64 {
    f64::from(limit.burst.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        per_second: 10.0,
        burst: 3,
    };
    const ONE_SECOND: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_is_free_then_callers_queue_at_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        for _ in 0..3 {
            assert_eq!(b.acquire(t0, ONE_SECOND), Ok(Duration::ZERO));
        }
        let waits: Vec<_> = (0..3).map(|_| b.acquire(t0, ONE_SECOND)).collect();
        assert_eq!(
            waits,
            [Ok(ms(100)), Ok(ms(200)), Ok(ms(300))],
            "each queued caller waits one more token period"
        );
    }

    #[test]
    fn tokens_refill_over_time_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        for _ in 0..3 {
            b.acquire(t0, ONE_SECOND).unwrap();
        }
        let t1 = t0 + ms(100);
        assert_eq!(b.acquire(t1, ONE_SECOND), Ok(Duration::ZERO));
        assert!(b.acquire(t1, ONE_SECOND).unwrap() > Duration::ZERO);
        // a long idle period refills to the burst, not beyond
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.acquire(t2, ONE_SECOND), Ok(Duration::ZERO));
        }
        assert!(b.acquire(t2, ONE_SECOND).unwrap() > Duration::ZERO);
    }

    #[test]
    fn callers_turned_away_reserve_nothing_and_come_back_at_the_refill_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        for _ in 0..3 {
            b.acquire(t0, Duration::ZERO).unwrap();
        }
        let turned_away: Vec<_> = (0..3).map(|_| b.acquire(t0, Duration::ZERO)).collect();
        assert_eq!(turned_away, [Err(ms(100)), Err(ms(200)), Err(ms(300))]);
        // Nothing was reserved: one period later, one token is there.
        assert_eq!(b.acquire(t0 + ms(100), Duration::ZERO), Ok(Duration::ZERO));
    }

    #[test]
    fn the_server_count_lowers_the_bucket_but_never_raises_it() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        b.cap(t0, 1.0);
        assert_eq!(b.acquire(t0, Duration::ZERO), Ok(Duration::ZERO));
        assert_eq!(b.acquire(t0, Duration::ZERO), Err(ms(100)));
        b.cap(t0 + ms(100), 199.0);
        assert_eq!(b.acquire(t0 + ms(100), Duration::ZERO), Ok(Duration::ZERO));
        assert!(b.acquire(t0 + ms(100), Duration::ZERO).is_err());
    }

    #[test]
    fn a_throttle_drains_the_bucket_and_closes_it_for_the_retry_after() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(LIMIT, t0);
        b.drain(t0, Some(Duration::from_secs(30)));
        assert_eq!(b.acquire(t0, ONE_SECOND), Err(Duration::from_secs(30)));
        // the tokens refilled meanwhile, but the bucket opens only at the Retry-After
        let t1 = t0 + Duration::from_secs(29);
        assert_eq!(b.acquire(t1, Duration::ZERO), Err(ONE_SECOND + ms(100)));
        let t2 = t0 + Duration::from_secs(30);
        assert_eq!(b.acquire(t2, Duration::ZERO), Ok(Duration::ZERO));
        // without a Retry-After the bucket is just empty
        let mut b = TokenBucket::new(LIMIT, t0);
        b.drain(t0, None);
        assert_eq!(b.acquire(t0, ONE_SECOND), Ok(ms(100)));
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
