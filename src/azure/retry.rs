//! Retry timing: capped, jittered exponential backoff that honours `Retry-After`.
//! Pure functions; the ARM client supplies the clock and the random jitter.

use reqwest::header::HeaderMap;
use std::time::{Duration, SystemTime};

/// How often and how long to retry a retryable failure.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// Backoff before the first retry, doubled for each further one.
    pub base_delay: Duration,
    /// Upper bound of the exponential part.
    pub max_delay: Duration,
    /// Upper bound for a server-requested `Retry-After`, so a bogus header cannot park a
    /// reconcile for hours.
    pub max_retry_after: Duration,
    /// Longest wait spent inside one call (a backoff, a `Retry-After`, the request budget): a
    /// longer one ends the call with the error, whose `retry_after` a caller requeues on,
    /// rather than holding a reconcile worker while nothing happens.
    pub max_inline_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
            max_inline_wait: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// Delay before retry number `retry` (0 = the first retry). `jitter` in `[0, 1)`
    /// spreads the exponential part over its upper half ("equal jitter") so a fleet of
    /// clients does not retry in lockstep. A `Retry-After` is a floor: never retry sooner.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(31));
        let exp = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let jitter = jitter.clamp(0.0, 1.0);
        let backoff = exp.mul_f64(0.5 + 0.5 * jitter);
        match retry_after {
            Some(ra) => backoff.max(ra.min(self.max_retry_after)),
            None => backoff,
        }
    }
}

/// The server-requested wait from `retry-after-ms`, `x-ms-retry-after-ms` (milliseconds)
/// or `Retry-After` (seconds or an HTTP date), in that order of preference.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    for ms_header in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = text(ms_header).and_then(|v| v.trim().parse::<u64>().ok()) {
            return Some(Duration::from_millis(ms));
        }
    }
    text("retry-after").and_then(|v| parse_retry_after(v, now))
}

/// Parses a `Retry-After` value: delta-seconds or an HTTP date (a past date means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(60),
            max_inline_wait: Duration::from_secs(1),
        }
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = policy();
        // jitter at its maximum gives the full exponential value
        let full: Vec<_> = (0..7).map(|r| p.delay(r, None, 1.0)).collect();
        assert_eq!(full[0], Duration::from_millis(100));
        assert_eq!(full[1], Duration::from_millis(200));
        assert_eq!(full[3], Duration::from_millis(800));
        assert_eq!(full[5], Duration::from_secs(2));
        assert_eq!(full[6], Duration::from_secs(2));
        assert_eq!(p.delay(u32::MAX, None, 1.0), Duration::from_secs(2));
    }

    #[test]
    fn jitter_spreads_over_the_upper_half() {
        let p = policy();
        assert_eq!(p.delay(2, None, 0.0), Duration::from_millis(200));
        assert_eq!(p.delay(2, None, 0.5), Duration::from_millis(300));
        assert!(p.delay(2, None, 0.999) < Duration::from_millis(400));
    }

    #[test]
    fn retry_after_is_a_floor_and_is_capped() {
        let p = policy();
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(7)), 0.0),
            Duration::from_secs(7)
        );
        assert_eq!(
            p.delay(9, Some(Duration::from_millis(1)), 1.0),
            Duration::from_secs(2)
        );
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3600)), 0.0),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn parses_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("5", now), Some(Duration::from_secs(5)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn millisecond_headers_win_over_retry_after() {
        let now = SystemTime::now();
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("9"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(9)));
        h.insert("x-ms-retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(250)));
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
