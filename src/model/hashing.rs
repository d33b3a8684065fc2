//! Key → server maps for hash strategies (`source`, `room`/`uri`).
//!
//! `map-based` is HAProxy's default: a table in which each usable server
//! appears `weight` times, indexed by `hash % len`; when the set of usable
//! servers changes, most keys move. `consistent` is a hash ring with
//! `POINTS_PER_WEIGHT × weight` points per server; a lost server's keys go to
//! the next point on the ring and nobody else's move.

use crate::rng::mix64;

const POINTS_PER_WEIGHT: u32 = 100;

/// A hash of a client key (source address or room id), salted so that
/// different kinds of key do not collide systematically.
#[inline]
pub fn key_hash(kind: u64, key: u64) -> u64 {
    mix64(key ^ kind.wrapping_mul(0xA24B_AED4_963E_E407))
}

/// HAProxy map-based table.
#[derive(Clone, Debug, Default)]
pub struct MapTable {
    slots: Vec<u32>,
}

impl MapTable {
    /// `usable[i]` says whether server i takes new traffic; `weights[i]` its weight.
    pub fn build(usable: &[bool], weights: &[u32]) -> Self {
        let mut slots = Vec::new();
        for (i, (&u, &w)) in usable.iter().zip(weights).enumerate() {
            if u {
                slots.extend(std::iter::repeat_n(i as u32, w as usize));
            }
        }
        MapTable { slots }
    }

    pub fn lookup(&self, hash: u64) -> Option<u32> {
        if self.slots.is_empty() {
            None
        } else {
            Some(self.slots[(hash % self.slots.len() as u64) as usize])
        }
    }
}

/// A consistent-hash ring over all servers; lookups skip unusable ones.
#[derive(Clone, Debug, Default)]
pub struct Ring {
    points: Vec<(u64, u32)>,
}

impl Ring {
    pub fn build(weights: &[u32]) -> Self {
        let mut points = Vec::new();
        for (i, &w) in weights.iter().enumerate() {
            for v in 0..w * POINTS_PER_WEIGHT {
                points.push((mix64(((i as u64) << 32) | v as u64), i as u32));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The first usable server clockwise from `hash`.
    pub fn lookup(&self, hash: u64, usable: impl Fn(u32) -> bool) -> Option<u32> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.points.partition_point(|&(h, _)| h < hash);
        let n = self.points.len();
        (0..n).map(|k| self.points[(start + k) % n].1).find(|&s| usable(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_based_uses_weights() {
        let t = MapTable::build(&[true, false, true], &[1, 5, 3]);
        let mut counts = [0u32; 3];
        for k in 0..40_000u64 {
            counts[t.lookup(key_hash(1, k)).unwrap() as usize] += 1;
        }
        assert_eq!(counts[1], 0);
        let ratio = counts[2] as f64 / counts[0] as f64;
        assert!((ratio - 3.0).abs() < 0.2, "ratio {ratio}");
    }

    #[test]
    fn ring_skips_unusable() {
        let r = Ring::build(&[1, 1, 1]);
        for k in 0..1000u64 {
            let s = r.lookup(key_hash(2, k), |s| s != 1).unwrap();
            assert_ne!(s, 1);
        }
        assert_eq!(r.lookup(5, |_| false), None);
    }
}
