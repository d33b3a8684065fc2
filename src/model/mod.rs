//! The models of the system's parts. Each owns its own state and knows
//! nothing of the others: the simulation (`crate::sim`) connects them
//! through events.

pub mod backoff;
pub mod balancer;
pub mod cache;
pub mod database;
pub mod hashing;
pub mod least;
pub mod network;
pub mod relay;
pub mod room;
pub mod station;

/// `x / d` (`d > 0`), as a shift when `d` is a power of two (a room of two
/// players, an equal balancer weight): a 64-bit division costs tens of
/// cycles on the connection and move paths. The same quotient either way.
#[inline(always)]
pub fn div_fast(x: u64, d: u64) -> u64 {
    if d.is_power_of_two() {
        x >> d.trailing_zeros()
    } else {
        x / d
    }
}

/// `x % d` (`d > 0`), as a mask when `d` is a power of two; see [`div_fast`].
#[inline(always)]
pub fn rem_fast(x: u64, d: u64) -> u64 {
    if d.is_power_of_two() { x & (d - 1) } else { x % d }
}

#[cfg(test)]
mod tests {
    use super::{div_fast, rem_fast};

    #[test]
    fn fast_division_is_division() {
        let xs = [0, 1, 2, 3, 7, 8, 9, 1 << 20, (1 << 20) + 5, u64::MAX - 1, u64::MAX];
        for d in [1u64, 2, 3, 4, 12, 16, 48, 1 << 40, u64::MAX] {
            for &x in &xs {
                assert_eq!(div_fast(x, d), x / d, "{x} / {d}");
                assert_eq!(rem_fast(x, d), x % d, "{x} % {d}");
            }
        }
    }
}
