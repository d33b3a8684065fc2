//! A count array laid out exactly like a [`new_hist`](super::new_hist)
//! histogram (1 µs .. 1 h, 3 significant digits), without the
//! histogram's per-record bookkeeping (range checks, min, max, total).
//!
//! A fan-out to a million spectators records a million latencies; the
//! stage takes each with a shift and an add, and [`Stage::drain_into`]
//! moves the counts into real histograms at the next sample. The
//! histograms then hold exactly what recording each value would have
//! given: the same bucket counts, total, min and max (every public
//! reading of an HDR histogram is a function of the buckets; the tests
//! prove the layout equal to `hdrhistogram`'s).

use hdrhistogram::Histogram;

/// `new_hist`'s highest trackable value (µs); larger values are clamped
/// to it, as `Histogram::saturating_record` does.
pub const HIGHEST_US: u64 = 3_600_000_000;

/// 3 significant digits: 2·10³ values at unit resolution, rounded up to
/// 2^11 sub-buckets; half of them per bucket above the first.
const SUB_BUCKET_HALF_MAGNITUDE: u32 = 10;
const SUB_BUCKET_MASK: u64 = (1 << (SUB_BUCKET_HALF_MAGNITUDE + 1)) - 1;
/// 64 − unit magnitude (0: the lowest discernible value is 1) − 11.
const LEADING_ZERO_BASE: u32 = 64 - (SUB_BUCKET_HALF_MAGNITUDE + 1);

/// The bucket index of `value` in a `new_hist` histogram's counts.
#[inline(always)]
fn index_of(value: u64) -> usize {
    let bucket = LEADING_ZERO_BASE - (value | SUB_BUCKET_MASK).leading_zeros();
    let sub = value >> bucket;
    (((bucket as u64 + 1) << SUB_BUCKET_HALF_MAGNITUDE) + sub - (1 << SUB_BUCKET_HALF_MAGNITUDE)) as usize
}

/// The lowest value of bucket index `i` (its lowest equivalent).
#[inline]
fn value_of(i: usize) -> u64 {
    let i = i as u64;
    let half = 1u64 << SUB_BUCKET_HALF_MAGNITUDE;
    if i < 2 * half {
        i
    } else {
        let bucket = (i >> SUB_BUCKET_HALF_MAGNITUDE) - 1;
        ((i & (half - 1)) + half) << bucket
    }
}

/// Latencies (µs) staged for `new_hist` histograms.
#[derive(Clone, Debug)]
pub struct Stage {
    counts: Vec<u64>,
    /// The index `HIGHEST_US` falls in: indices past the counts clamp to it.
    top: usize,
    /// Touched indices: `lo..=hi` when `len > 0`.
    lo: usize,
    hi: usize,
    len: u64,
}

impl Default for Stage {
    fn default() -> Self {
        let len = super::new_hist().distinct_values();
        Stage {
            counts: vec![0; len],
            top: index_of(HIGHEST_US),
            lo: usize::MAX,
            hi: 0,
            len: 0,
        }
    }
}

impl Stage {
    /// Stages one value, as `Histogram::saturating_record` would record it.
    #[inline(always)]
    pub fn record(&mut self, us: u64) {
        // A batch of one: the same code, written back at once.
        self.batch().record(us);
    }

    /// A batch of records into this stage whose bookkeeping (touched
    /// range, count) lives in the batch until it is dropped: a fan-out's
    /// walk keeps it in registers instead of storing and reloading it per
    /// recipient.
    #[inline(always)]
    pub fn batch(&mut self) -> Batch<'_> {
        let Stage {
            counts,
            top,
            lo,
            hi,
            len,
        } = self;
        Batch {
            counts,
            top: *top,
            lo: *lo,
            hi: *hi,
            len: 0,
            stage_lo: lo,
            stage_hi: hi,
            stage_len: len,
        }
    }

    /// Values staged.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records the staged values into each of `into` and empties the stage.
    pub fn drain_into(&mut self, into: &mut [&mut Histogram<u64>]) {
        if self.len == 0 {
            return;
        }
        for i in self.lo..=self.hi {
            let c = std::mem::take(&mut self.counts[i]);
            if c > 0 {
                let v = value_of(i);
                for h in into.iter_mut() {
                    h.record_n(v, c).expect("a bucket's lowest value is in range");
                }
            }
        }
        self.lo = usize::MAX;
        self.hi = 0;
        self.len = 0;
    }
}

/// Records into a [`Stage`] (see [`Stage::batch`]); dropping the batch
/// writes its bookkeeping back to the stage.
pub struct Batch<'a> {
    counts: &'a mut [u64],
    top: usize,
    lo: usize,
    hi: usize,
    len: u64,
    stage_lo: &'a mut usize,
    stage_hi: &'a mut usize,
    stage_len: &'a mut u64,
}

impl Batch<'_> {
    /// Stages one value, as `Histogram::saturating_record` would record it.
    #[inline(always)]
    pub fn record(&mut self, us: u64) {
        let mut i = index_of(us);
        if i >= self.counts.len() {
            i = self.top;
        }
        self.counts[i] += 1;
        self.lo = self.lo.min(i);
        self.hi = self.hi.max(i);
        self.len += 1;
    }

    /// Values this batch staged so far.
    #[inline]
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Batch<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        *self.stage_lo = self.lo;
        *self.stage_hi = self.hi;
        *self.stage_len += self.len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::new_hist;
    use rand::{RngExt, SeedableRng};

    /// Every value from 1 to past the top, at each bucket's edges and at
    /// random: the stage's index agrees with HDR's equivalence classes,
    /// and its lowest value is HDR's lowest equivalent.
    #[test]
    fn the_layout_is_hdrhistograms() {
        let h = new_hist();
        let mut values: Vec<u64> = (1..5000).collect();
        for b in 0..40 {
            for d in [0u64, 1, 2, 3] {
                values.push((2048u64 << b).saturating_sub(d));
                values.push((2048u64 << b) + d);
            }
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..200_000 {
            let bits = rng.random_range(1..34);
            values.push(rng.random_range(1..(1u64 << bits)));
        }
        for &v in values.iter().filter(|&&v| v <= HIGHEST_US) {
            let i = index_of(v);
            assert_eq!(value_of(i), h.lowest_equivalent(v), "value {v}");
            assert!(i < h.distinct_values(), "value {v}");
            // The next bucket starts just past this one's highest value.
            assert_eq!(index_of(h.highest_equivalent(v) + 1), i + 1, "value {v}");
        }
    }

    /// Staged then drained ≡ recorded one by one: counts, total, min,
    /// max, mean and quantiles, with values past the top clamped.
    #[test]
    fn a_drained_stage_equals_recording_each_value() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut direct = new_hist();
        let (mut a, mut b) = (new_hist(), new_hist());
        let mut st = Stage::default();
        let draw = |rng: &mut rand::rngs::StdRng, round: u32| match rng.random_range(0..10) {
            0 => rng.random_range(1..3000),
            1 => rng.random_range(HIGHEST_US - 10..HIGHEST_US * 3),
            _ => rng.random_range(1..10_000_000u64 << round),
        };
        for round in 0..3 {
            // Runs of single records and of batches, interleaved.
            for run in 0..10 {
                if run % 2 == 0 {
                    for _ in 0..5_000 {
                        let v = draw(&mut rng, round);
                        direct.saturating_record(v);
                        st.record(v);
                    }
                } else {
                    let mut batch = st.batch();
                    for _ in 0..5_000 {
                        let v = draw(&mut rng, round);
                        direct.saturating_record(v);
                        batch.record(v);
                    }
                    assert_eq!(batch.len(), 5_000);
                }
            }
            assert_eq!(st.len(), 50_000);
            st.drain_into(&mut [&mut a, &mut b]);
            assert!(st.is_empty());
        }
        for h in [&a, &b] {
            assert_eq!(h.len(), direct.len());
            assert_eq!(h.min(), direct.min());
            assert_eq!(h.max(), direct.max());
            assert_eq!(h.mean().to_bits(), direct.mean().to_bits());
            for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
                assert_eq!(h.value_at_quantile(q), direct.value_at_quantile(q));
            }
            let x: Vec<_> = h
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect();
            let y: Vec<_> = direct
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect();
            assert_eq!(x, y);
        }
    }
}
