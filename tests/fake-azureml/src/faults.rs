//! Deterministic fault selection: the fault of the n-th ARM request is a pure function of the
//! seed and n, so a failing run can be replayed.

use crate::options::Faults;

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// 429 + Retry-After.
    Throttle,
    /// 500 or 503 (503 carries Retry-After).
    ServerError(u16),
    /// Close the connection without answering.
    Drop,
    /// Answer normally after a delay.
    Slow,
}

/// SplitMix64: a tiny, well-mixed hash of (seed, n).
fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn decide(faults: &Faults, n: u64) -> Fault {
    let h = mix(faults.seed, n);
    let draw = (h >> 11) as f64 / (1u64 << 53) as f64; // uniform in [0, 1)
    let mut edge = faults.throttle_ratio;
    if draw < edge {
        return Fault::Throttle;
    }
    edge += faults.server_error_ratio;
    if draw < edge {
        return Fault::ServerError(if h & 1 == 0 { 500 } else { 503 });
    }
    edge += faults.drop_ratio;
    if draw < edge {
        return Fault::Drop;
    }
    edge += faults.slow_ratio;
    if draw < edge {
        return Fault::Slow;
    }
    Fault::None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn faults(seed: u64) -> Faults {
        Faults {
            throttle_ratio: 0.2,
            server_error_ratio: 0.1,
            drop_ratio: 0.05,
            slow_ratio: 0.05,
            seed,
            ..Faults::default()
        }
    }

    #[test]
    fn same_seed_same_sequence_and_ratios_hold() {
        let a: Vec<Fault> = (0..2000).map(|n| decide(&faults(7), n)).collect();
        let b: Vec<Fault> = (0..2000).map(|n| decide(&faults(7), n)).collect();
        let c: Vec<Fault> = (0..2000).map(|n| decide(&faults(8), n)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let throttled = a.iter().filter(|f| **f == Fault::Throttle).count();
        assert!(
            (300..500).contains(&throttled),
            "{throttled} of 2000 throttled at ratio 0.2"
        );
        let errors = a
            .iter()
            .filter(|f| matches!(f, Fault::ServerError(_)))
            .count();
        assert!((130..270).contains(&errors), "{errors}");
        assert!(a.contains(&Fault::ServerError(500)) && a.contains(&Fault::ServerError(503)));
    }

    #[test]
    fn zero_ratios_never_fault() {
        assert!((0..1000).all(|n| decide(&Faults::default(), n) == Fault::None));
    }
}
