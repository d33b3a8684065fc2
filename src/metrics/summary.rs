//! What the tiers' summary metrics are made of: a sink keyed by
//! [`MetricKey`] that writes them in `summary.csv` column order whichever
//! tier set them first, and the helpers they share (histogram quantiles in
//! ms, per-sample maxima and means after the warm-up, the steady/fault
//! split of the window tallies).

use crate::metrics::{Sample, StorageSample, WindowStats};
use crate::metrics_defs::{METRICS, MetricKey};
use crate::scenario::Scenario;
use crate::stats;
use crate::time::SimTime;

/// Metric values by key; [`MetricSink::into_named`] lists the ones set in
/// column order (`metrics_defs::METRICS`).
pub struct MetricSink {
    values: Vec<Option<f64>>,
}

impl Default for MetricSink {
    fn default() -> Self {
        MetricSink {
            values: vec![None; METRICS.len()],
        }
    }
}

impl MetricSink {
    #[inline]
    pub fn set(&mut self, key: MetricKey, value: f64) {
        let slot = &mut self.values[key as usize];
        debug_assert!(slot.is_none(), "metric {} set twice", key.name());
        *slot = Some(value);
    }

    /// `(name, value)` of every metric set, in column order.
    pub fn into_named(self) -> impl Iterator<Item = (&'static str, f64)> {
        self.values
            .into_iter()
            .zip(METRICS)
            .filter_map(|(v, d)| v.map(|v| (d.name, v)))
    }
}

pub fn ms(h: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        f64::NAN
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

pub fn mean_ms(h: &hdrhistogram::Histogram<u64>) -> f64 {
    if h.is_empty() { f64::NAN } else { h.mean() / 1000.0 }
}

pub fn max_ms(h: &hdrhistogram::Histogram<u64>) -> f64 {
    if h.is_empty() {
        f64::NAN
    } else {
        h.max() as f64 / 1000.0
    }
}

/// Largest value of a per-sample quantity over the intervals after the
/// warm-up (0 without any).
pub fn samples_max(samples: &[Sample], sc: &Scenario, f: impl Fn(&Sample) -> f64) -> f64 {
    let w = SimTime::ZERO + sc.warmup;
    samples.iter().filter(|s| s.time > w).map(f).fold(0.0, f64::max)
}

/// Mean of the values `f` gives for each sample after the warm-up (NaN if
/// there are none).
pub fn mean_after_warmup<'a, I: IntoIterator<Item = f64>>(
    samples: &'a [Sample],
    sc: &Scenario,
    f: impl Fn(&'a Sample) -> I,
) -> f64 {
    let w = SimTime::ZERO + sc.warmup;
    let vals: Vec<f64> = samples.iter().filter(|s| s.time > w).flat_map(f).collect();
    stats::mean(&vals)
}

/// Steady state (slot 0) and the union of the fault windows.
pub fn split(stats: &[WindowStats]) -> (WindowStats, WindowStats) {
    let mut faults = WindowStats::default();
    for w in &stats[1..] {
        faults.add(w);
    }
    (stats[0].clone(), faults)
}

pub fn refused_ratio(w: &WindowStats) -> f64 {
    if w.attempts == 0 {
        f64::NAN
    } else {
        w.refused as f64 / w.attempts as f64
    }
}

pub fn clients_refused_ratio(w: &WindowStats) -> f64 {
    if w.clients == 0 {
        f64::NAN
    } else {
        w.clients_refused as f64 / w.clients as f64
    }
}

/// The trend of replica lag at the end of a run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LagTrend {
    /// Largest least-squares slope of a running replica's lag over the
    /// final window (s of lag per s), NaN without replicas.
    pub slope: f64,
    /// Rows per second committed on the primary over the window.
    pub write_rows_per_s: f64,
    /// Rows per second one replica applies (threads × apply rate).
    pub capacity_rows_per_s: f64,
    /// Writes outpace applying and the lag still grows: it grows without
    /// bound.
    pub unbounded: bool,
}

/// The lag trend over the last half of the samples after the warm-up (at
/// least 4 samples), from the replicas running throughout it. Unbounded
/// when the lag's slope is positive and the primary committed rows faster
/// than a replica applies them.
pub fn lag_trend(samples: &[StorageSample], warmup: SimTime, capacity_rows_per_s: f64) -> LagTrend {
    let after: Vec<&StorageSample> = samples.iter().filter(|s| s.time > warmup).collect();
    let window = &after[after.len() / 2..];
    let mut trend = LagTrend {
        slope: f64::NAN,
        write_rows_per_s: f64::NAN,
        capacity_rows_per_s,
        unbounded: false,
    };
    if window.len() < 4 {
        return trend;
    }
    let span = window[window.len() - 1].time.as_secs_f64() - window[0].time.as_secs_f64();
    let rows: u64 = window[1..].iter().map(|s| s.db_rows).sum();
    trend.write_rows_per_s = rows as f64 / span;
    let nodes = window.iter().map(|s| s.db_nodes.len()).min().unwrap_or(0);
    for i in 0..nodes {
        let pts: Option<Vec<(f64, f64)>> = window
            .iter()
            .map(|s| {
                let n = &s.db_nodes[i];
                (n.role == "replica").then(|| (s.time.as_secs_f64(), n.lag_s.unwrap_or(f64::NAN)))
            })
            .collect();
        if let Some(pts) = pts {
            let k = crate::model::database::slope(&pts);
            if !k.is_nan() && (trend.slope.is_nan() || k > trend.slope) {
                trend.slope = k;
            }
        }
    }
    trend.unbounded = trend.slope > 0.0 && trend.write_rows_per_s > capacity_rows_per_s;
    trend
}
