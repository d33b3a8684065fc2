//! Simulated time: integer nanoseconds, never floating point.
//!
//! [`SimTime`] is an instant on the simulated clock (nanoseconds since the run
//! started); [`SimDuration`] is a span. Both are `u64` underneath so that event
//! ordering is exact and runs are reproducible bit for bit.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// Nanoseconds per microsecond, millisecond and second.
pub const NS_PER_US: u64 = 1_000;
pub const NS_PER_MS: u64 = 1_000_000;
pub const NS_PER_S: u64 = 1_000_000_000;

/// An instant on the simulated clock, in nanoseconds since the start of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct SimTime(pub u64);

/// A span of simulated time, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimDuration(pub u64);

impl SimTime {
    pub const ZERO: SimTime = SimTime(0);
    pub const MAX: SimTime = SimTime(u64::MAX);

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NS_PER_S as f64
    }

    /// The span from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(earlier.0))
    }
}

impl SimDuration {
    pub const ZERO: SimDuration = SimDuration(0);

    pub const fn from_nanos(ns: u64) -> Self {
        SimDuration(ns)
    }
    pub const fn from_micros(us: u64) -> Self {
        SimDuration(us * NS_PER_US)
    }
    pub const fn from_millis(ms: u64) -> Self {
        SimDuration(ms * NS_PER_MS)
    }
    pub const fn from_secs(s: u64) -> Self {
        SimDuration(s * NS_PER_S)
    }
    /// Converts seconds to a duration, rounding to the nearest nanosecond;
    /// negative and non-finite values become zero, huge ones saturate.
    pub fn from_secs_f64(s: f64) -> Self {
        if s.is_finite() && s > 0.0 {
            let ns = s * NS_PER_S as f64;
            if ns >= u64::MAX as f64 {
                SimDuration(u64::MAX)
            } else {
                // `ns.round()` (half away from zero), without the libm call:
                // below 2^53 the fraction `ns - whole` is exact, above it
                // `ns` is a whole number and the fraction is 0.
                let whole = ns as u64;
                let half_up = ns - whole as f64 >= 0.5;
                SimDuration(whole + half_up as u64)
            }
        } else {
            SimDuration(0)
        }
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NS_PER_S as f64
    }
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / NS_PER_MS as f64
    }
    /// Seconds, to the millisecond: for reported spans such as a fault
    /// window, whose end lies 1 ns after the sample that closed it.
    pub fn as_secs_f64_to_ms(self) -> f64 {
        (self.0 as f64 / NS_PER_MS as f64).round() / 1e3
    }
    pub fn as_nanos(self) -> u64 {
        self.0
    }
    pub fn saturating_mul(self, k: u64) -> Self {
        SimDuration(self.0.saturating_mul(k))
    }
}

impl Add<SimDuration> for SimTime {
    type Output = SimTime;
    fn add(self, d: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(d.0))
    }
}

impl AddAssign<SimDuration> for SimTime {
    fn add_assign(&mut self, d: SimDuration) {
        self.0 = self.0.saturating_add(d.0);
    }
}

impl Sub<SimDuration> for SimTime {
    type Output = SimTime;
    /// Saturates at zero.
    fn sub(self, d: SimDuration) -> SimTime {
        SimTime(self.0.saturating_sub(d.0))
    }
}

impl Add for SimDuration {
    type Output = SimDuration;
    fn add(self, d: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_add(d.0))
    }
}

impl Sub for SimDuration {
    type Output = SimDuration;
    fn sub(self, d: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_sub(d.0))
    }
}

impl fmt::Display for SimDuration {
    /// Shortest exact rendering in the scenario-file syntax ("250ms", "30s", "1h").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        let units: [(u64, &str); 6] = [
            (3600 * NS_PER_S, "h"),
            (60 * NS_PER_S, "m"),
            (NS_PER_S, "s"),
            (NS_PER_MS, "ms"),
            (NS_PER_US, "us"),
            (1, "ns"),
        ];
        if ns == 0 {
            return write!(f, "0s");
        }
        for (k, u) in units {
            if ns.is_multiple_of(k) {
                return write!(f, "{}{}", ns / k, u);
            }
        }
        unreachable!("1 divides everything")
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}s", self.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_uses_largest_exact_unit() {
        assert_eq!(SimDuration::from_millis(250).to_string(), "250ms");
        assert_eq!(SimDuration::from_secs(90).to_string(), "90s");
        assert_eq!(SimDuration::from_secs(3600).to_string(), "1h");
        assert_eq!(SimDuration::ZERO.to_string(), "0s");
    }

    #[test]
    fn from_secs_f64_rounds_like_f64_round() {
        let old = |s: f64| {
            let ns = (s * NS_PER_S as f64).round();
            if ns >= u64::MAX as f64 { u64::MAX } else { ns as u64 }
        };
        let mut cases = vec![
            0.5e-9,
            1.5e-9,
            2.5e-9,
            0.5f64.next_down() / NS_PER_S as f64,
            1e-9,
            3.0,
            1e10,
            9.2e9,
            1.8e10,
            1.8446744073709552e10,
        ];
        // Values around every power of two up to 2^64 ns, and half-way points.
        for e in 0..64 {
            let x = (1u64 << e) as f64;
            for d in [-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.5] {
                cases.push((x + d) / NS_PER_S as f64);
            }
        }
        let mut z = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            z = z.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = (z >> 11) as f64 / (1u64 << 53) as f64;
            cases.push(u * 10f64.powi((z % 23) as i32 - 12));
        }
        for s in cases {
            assert_eq!(SimDuration::from_secs_f64(s).0, old(s), "{s:e} s");
        }
    }

    #[test]
    fn from_secs_f64_clamps() {
        assert_eq!(SimDuration::from_secs_f64(-1.0), SimDuration::ZERO);
        assert_eq!(SimDuration::from_secs_f64(f64::NAN), SimDuration::ZERO);
        assert_eq!(SimDuration::from_secs_f64(1e30).0, u64::MAX);
        assert_eq!(SimDuration::from_secs_f64(0.25), SimDuration::from_millis(250));
    }
}
