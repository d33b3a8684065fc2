//! Where the tail of a latency goes: each recorded latency is split into
//! named parts (network, queueing, retries…) and the parts are summed per
//! latency bucket, so that once the run's p99 is known the parts of the
//! latencies at or above it give each part's share of the tail.
//!
//! Buckets are logarithmic (4 per power of two of µs, ≤ 19 % wide), so
//! "at or above the p99" means "in the p99's bucket or above": the slowest
//! 1 % and at most one bucket more.

/// Buckets: values below 4 µs each have one, then 4 per octave up to 2⁴⁴ µs.
const BUCKETS: usize = 4 + 43 * 4;

/// Latency parts summed per bucket; `N` parts per latency.
#[derive(Clone, Debug)]
pub struct Tail<const N: usize> {
    counts: Vec<u64>,
    sums: Vec<[u64; N]>,
}

impl<const N: usize> Default for Tail<N> {
    fn default() -> Self {
        Tail {
            counts: vec![0; BUCKETS],
            sums: vec![[0; N]; BUCKETS],
        }
    }
}

fn bucket(us: u64) -> usize {
    if us < 4 {
        return us as usize;
    }
    let e = 63 - us.leading_zeros() as usize;
    (4 + (e - 2) * 4 + ((us >> (e - 2)) & 3) as usize).min(BUCKETS - 1)
}

impl<const N: usize> Tail<N> {
    /// One latency (µs) and its parts (µs, summing to it).
    #[inline]
    pub fn record(&mut self, us: u64, parts: [u64; N]) {
        let b = bucket(us);
        self.counts[b] += 1;
        for (s, p) in self.sums[b].iter_mut().zip(parts) {
            *s += p;
        }
    }

    pub fn add(&mut self, o: &Tail<N>) {
        for b in 0..BUCKETS {
            self.counts[b] += o.counts[b];
            for i in 0..N {
                self.sums[b][i] += o.sums[b][i];
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&c| c == 0)
    }

    /// Each part's share of the latencies at or above `threshold_us`
    /// (NaN when none were recorded).
    pub fn shares_above(&self, threshold_us: u64) -> [f64; N] {
        let from = bucket(threshold_us);
        let mut tot = [0u64; N];
        for s in &self.sums[from..] {
            for i in 0..N {
                tot[i] += s[i];
            }
        }
        let all: u64 = tot.iter().sum();
        tot.map(|t| if all == 0 { f64::NAN } else { t as f64 / all as f64 })
    }
}

/// The parts of a connect latency, in `connect_p99_share_*` order.
pub const CONNECT_PARTS: [&str; 6] = ["network", "balancer_queue", "retries", "tls", "accept", "reconnect"];
/// The parts of a move latency (player → opponent), in `move_p99_share_*` order.
pub const MOVE_PARTS: [&str; 4] = ["network", "server", "relay", "fanout"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_narrow() {
        let mut last = 0;
        for us in 1..100_000u64 {
            let b = bucket(us);
            assert!(b >= last);
            last = b;
        }
        // Each bucket at most 25 % wide.
        assert_eq!(bucket(1030), bucket(1100));
        assert_ne!(bucket(1030), bucket(1300));
    }

    #[test]
    fn shares_come_from_the_tail_only() {
        let mut t = Tail::<2>::default();
        for _ in 0..990 {
            t.record(100, [100, 0]);
        }
        for _ in 0..10 {
            t.record(3000, [1000, 2000]);
        }
        let s = t.shares_above(3000);
        assert!((s[0] - 1.0 / 3.0).abs() < 1e-12 && (s[1] - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            t.shares_above(50)[0],
            (990.0 * 100.0 + 10_000.0) / (990.0 * 100.0 + 30_000.0)
        );
    }
}
