//! Go-style durations (`90s`, `30m`, `1h30m`, `1.5h`, `500ms`) as the chart and CRDs write
//! them, and the jitter that spreads periodic resyncs of a fleet.

use std::time::Duration;

/// Parses a Go-style duration: one or more `<number><unit>` with units ms, s, m, h.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 90s, 30m, 1h or 1h30m");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0.0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let value: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let (unit, len) = if rest.starts_with("ms") {
            (0.001, 2)
        } else if rest.starts_with('s') {
            (1.0, 1)
        } else if rest.starts_with('m') {
            (60.0, 1)
        } else if rest.starts_with('h') {
            (3600.0, 1)
        } else {
            return Err(bad());
        };
        total += value * unit;
        rest = &rest[len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// `period` stretched by up to +10%, by a fraction derived from `seed` (e.g. the object's uid
/// and the current time), so objects created together do not resync together.
pub fn jittered(period: Duration, seed: &[u8]) -> Duration {
    let h = blake3::hash(seed);
    let mut eight = [0u8; 8];
    eight.copy_from_slice(&h.as_bytes()[..8]);
    let frac = (u64::from_le_bytes(eight) % 10_000) as f64 / 100_000.0;
    period.mul_f64(1.0 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        for bad in ["", "1d", "h", "1h-", "ten"] {
            assert!(parse(bad).unwrap_err().contains("not a duration"), "{bad}");
        }
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_spreads() {
        let p = Duration::from_secs(3600);
        let a = jittered(p, b"uid-a");
        let b = jittered(p, b"uid-b");
        for j in [a, b] {
            assert!(j >= p && j <= p.mul_f64(1.1), "{j:?}");
        }
        assert_ne!(a, b);
        assert_eq!(a, jittered(p, b"uid-a"));
    }
}
