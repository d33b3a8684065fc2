//! Client reconnect delays: none, fixed, or exponential with the jitter
//! schemes of the AWS study "Exponential Backoff and Jitter":
//! v = min(cap, base·2ⁿ); none → v; full → U(0, v); equal → v/2 + U(0, v/2);
//! decorrelated → min(cap, U(base, 3·prev)).

use rand::RngExt;

use crate::rng::SimRng;
use crate::scenario::{Jitter, Reconnect};
use crate::time::SimDuration;

/// The delay before reconnect attempt number `attempt` (0 = the first retry),
/// or None when the policy gives up. `prev` is the previous delay (for
/// decorrelated jitter; zero before the first).
pub fn next_delay(policy: &Reconnect, attempt: u32, prev: SimDuration, rng: &mut SimRng) -> Option<SimDuration> {
    match policy {
        Reconnect::None => None,
        Reconnect::Fixed { delay, max_attempts } => (attempt < *max_attempts).then_some(*delay),
        Reconnect::Exponential {
            base,
            cap,
            jitter,
            max_attempts,
        } => {
            if attempt >= *max_attempts {
                return None;
            }
            let (b, c) = (base.0, cap.0);
            let v = b
                .checked_shl(attempt.min(63))
                .filter(|&x| x >> attempt.min(63) == b)
                .unwrap_or(u64::MAX)
                .min(c);
            let d = match jitter {
                Jitter::None => v,
                Jitter::Full => rng.random_range(0..=v),
                Jitter::Equal => v / 2 + rng.random_range(0..=v / 2),
                Jitter::Decorrelated => {
                    let p = if prev.0 == 0 { b } else { prev.0 };
                    let hi = p.saturating_mul(3).max(b);
                    rng.random_range(b..=hi).min(c)
                }
            };
            Some(SimDuration(d))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn exp(j: Jitter) -> Reconnect {
        Reconnect::Exponential {
            base: SimDuration::from_millis(100),
            cap: SimDuration::from_secs(10),
            jitter: j,
            max_attempts: 20,
        }
    }

    #[test]
    fn exponential_doubles_then_caps() {
        let mut r = SimRng::seed_from_u64(0);
        let p = exp(Jitter::None);
        let d: Vec<u64> = (0..9)
            .map(|n| next_delay(&p, n, SimDuration::ZERO, &mut r).unwrap().0 / 1_000_000)
            .collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000]);
        assert_eq!(next_delay(&p, 20, SimDuration::ZERO, &mut r), None);
        assert!(next_delay(&p, 19, SimDuration::ZERO, &mut r).is_some());
    }

    #[test]
    fn jitters_stay_in_their_ranges() {
        let mut r = SimRng::seed_from_u64(0);
        for n in 0..12 {
            let v = (100u64 << n).min(10_000) * 1_000_000;
            let f = next_delay(&exp(Jitter::Full), n, SimDuration::ZERO, &mut r).unwrap().0;
            assert!(f <= v);
            let e = next_delay(&exp(Jitter::Equal), n, SimDuration::ZERO, &mut r).unwrap().0;
            assert!(e >= v / 2 && e <= v);
            let prev = SimDuration::from_millis(700);
            let d = next_delay(&exp(Jitter::Decorrelated), n, prev, &mut r).unwrap().0;
            assert!((100_000_000..=2_100_000_000).contains(&d));
        }
    }

    #[test]
    fn none_never_retries() {
        let mut r = SimRng::seed_from_u64(0);
        assert_eq!(next_delay(&Reconnect::None, 0, SimDuration::ZERO, &mut r), None);
    }
}
