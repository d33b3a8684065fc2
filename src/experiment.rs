//! Experiments: a scenario's replications, run in parallel with rayon, and
//! their aggregation (mean and 95 % confidence interval of every metric).
//!
//! Each replication derives its seed from `(scenario seed, index)` and
//! results are collected in index order, so the outcome is the same with
//! one thread or many.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::check;
use crate::engine::{EngineError, LoopStats, StopReason};
pub use crate::metrics::summary::{LagTrend, lag_trend};
use crate::metrics::summary::{MetricSink, ms, refused_ratio};
use crate::metrics::{Ending, FaultWindow, Sample, StorageSample, TimelineEvent};
use crate::metrics_defs::MetricKey as K;
use crate::scenario::Scenario;
use crate::sim::World;
use crate::stats;
use crate::time::SimTime;

/// A named number of one replication.
#[derive(Clone, Debug, Serialize)]
pub struct Metric {
    pub name: &'static str,
    pub value: f64,
}

/// A [`Metric`] as read back (its name interned).
#[derive(Deserialize)]
struct MetricOwned {
    name: String,
    value: f64,
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Metric, D::Error> {
        let m = MetricOwned::deserialize(d)?;
        Ok(Metric {
            name: crate::names::intern(&m.name),
            value: m.value,
        })
    }
}

/// The result of one replication. It serializes losslessly (every field,
/// f64 bits included, in a binary format such as postcard): the cluster
/// executor carries replications from tasks to the merge.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Replication {
    pub index: u32,
    pub metrics: Vec<Metric>,
    pub samples: Vec<Sample>,
    /// The cache and database per interval (empty without them).
    pub storage_samples: Vec<StorageSample>,
    pub timeline: Vec<TimelineEvent>,
    /// Connections per server at the end of the run.
    pub final_conns: Vec<u32>,
    /// Latency distributions after the warm-up, as CDF points
    /// (latency ms, fraction ≤ it): "connect", "move" (to the opponent),
    /// "spectator", "last_spectator", "relay". Empty when nothing was measured.
    #[serde(deserialize_with = "crate::names::de_static_pairs")]
    pub cdfs: Vec<(&'static str, Vec<(f64, f64)>)>,
    /// What each scenario fault cost, in scenario order (see [`fault_costs`]).
    pub faults: Vec<Vec<Metric>>,
    /// Each fault's window: (start, end, ending), in scenario order.
    pub fault_windows: Vec<FaultWindow>,
    pub events: u64,
    pub end: SimTime,
    pub stop: StopReason,
}

impl Replication {
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|m| m.name == name).map(|m| m.value)
    }
}

/// Mean and confidence interval of one metric over the replications.
#[derive(Clone, Debug, Serialize)]
pub struct Aggregate {
    pub name: &'static str,
    pub mean: f64,
    /// Half-width of the 95 % CI (NaN with one replication).
    pub ci95: f64,
}

/// A scenario's replications and their aggregate.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub replications: Vec<Replication>,
    pub aggregate: Vec<Aggregate>,
    /// Per scenario fault, the aggregate of its cost over replications.
    pub faults: Vec<Vec<Aggregate>>,
}

impl Outcome {
    /// Replications in index order, aggregated.
    pub fn new(replications: Vec<Replication>) -> Outcome {
        Outcome {
            aggregate: aggregate(&replications),
            faults: aggregate_faults(&replications),
            replications,
        }
    }
    pub fn total_events(&self) -> u64 {
        self.replications.iter().map(|r| r.events).sum()
    }
    pub fn aggregate(&self, name: &str) -> Option<&Aggregate> {
        self.aggregate.iter().find(|a| a.name == name)
    }
}

/// Why a replication failed. Each is a bug in wscap, not in the scenario.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("replication {replication}: {error}")]
    Engine { replication: u32, error: EngineError },
    #[error("replication {replication}: invariants violated:\n  {}", violations.join("\n  "))]
    Invariant { replication: u32, violations: Vec<String> },
    #[error("cannot start {threads} worker threads: {message}")]
    Threads { threads: usize, message: String },
}

/// Runs one replication and checks its invariants.
pub fn run_replication(sc: &Scenario, index: u32) -> Result<Replication, SimError> {
    run_replication_observed(sc, index, |_| {})
}

/// [`run_replication`], reporting the simulated clock to `observe` now and
/// then (see [`World::run_observed`]).
pub fn run_replication_observed(
    sc: &Scenario,
    index: u32,
    observe: impl FnMut(SimTime),
) -> Result<Replication, SimError> {
    let mut w = World::new(sc, index);
    let stats: LoopStats = w.run_observed(observe).map_err(|error| SimError::Engine {
        replication: index,
        error,
    })?;
    w.ctx.rec.finish();
    let violations = check::check(&w);
    if !violations.is_empty() {
        return Err(SimError::Invariant {
            replication: index,
            violations,
        });
    }
    let end = SimTime::ZERO + sc.duration;
    w.ctx.rec.close_server_conns(end);
    // Each tier sets its own metrics; the run's are set here. The sink
    // lists them in `summary.csv` column order.
    let mut sink = MetricSink::default();
    for tier in w.tiers() {
        tier.metrics(&w.ctx, &mut sink);
    }
    run_metrics(&w, &stats, &mut sink);
    let metrics: Vec<Metric> = sink.into_named().map(|(name, value)| Metric { name, value }).collect();
    let cdfs = vec![
        ("connect", cdf(&w.ctx.rec.connect)),
        ("move", cdf(&w.ctx.rec.move_player)),
        ("spectator", cdf(&w.ctx.rec.move_spectator)),
        ("last_spectator", cdf(&w.ctx.rec.move_last_spectator)),
        ("relay", cdf(&w.ctx.rec.relay)),
    ];
    // In scenario order, like the per-fault costs.
    let mut fault_windows = w.ctx.rec.windows.faults.clone();
    fault_windows.sort_by_key(|f| f.fault);
    let faults = fault_costs(&w, sc, &fault_windows, end);
    Ok(Replication {
        index,
        metrics,
        cdfs,
        faults,
        fault_windows,
        final_conns: w.servers.list.iter().map(|s| s.conns.len() as u32).collect(),
        samples: std::mem::take(&mut w.ctx.rec.samples),
        storage_samples: std::mem::take(&mut w.ctx.rec.storage_samples),
        timeline: std::mem::take(&mut w.ctx.rec.timeline),
        events: stats.events,
        end: stats.end,
        stop: stats.stop,
    })
}

/// CDF points of a µs histogram in ms: one point per distinct recorded
/// bucket (HDR resolution), at most a few thousand.
fn cdf(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let total = h.len() as f64;
    let mut acc = 0u64;
    h.iter_recorded()
        .map(|v| {
            acc += v.count_at_value();
            (
                h.highest_equivalent(v.value_iterated_to()) as f64 / 1000.0,
                acc as f64 / total,
            )
        })
        .collect()
}

/// Aggregates replications metric by metric (NaN values are left out).
pub fn aggregate(reps: &[Replication]) -> Vec<Aggregate> {
    aggregate_rows(&reps.iter().map(|r| r.metrics.as_slice()).collect::<Vec<_>>())
}

/// Aggregates rows of the same metrics (NaN values are left out).
fn aggregate_rows(rows: &[&[Metric]]) -> Vec<Aggregate> {
    let Some(first) = rows.first() else { return vec![] };
    first
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let xs: Vec<f64> = rows.iter().map(|r| r[i].value).filter(|v| !v.is_nan()).collect();
            Aggregate {
                name: m.name,
                mean: stats::mean(&xs),
                ci95: stats::ci_half_width(&xs, 0.95),
            }
        })
        .collect()
}

/// Aggregates each fault's cost over the replications.
pub fn aggregate_faults(reps: &[Replication]) -> Vec<Vec<Aggregate>> {
    let n = reps.first().map_or(0, |r| r.faults.len());
    (0..n)
        .map(|k| aggregate_rows(&reps.iter().map(|r| r.faults[k].as_slice()).collect::<Vec<_>>()))
        .collect()
}

/// The names of a fault's cost, in [`fault_costs`] order.
pub const FAULT_COSTS: [&str; 15] = [
    "start_s",
    "window_s",
    "time_to_recover_s",
    "recovered",
    "dropped",
    "attempts",
    "refused",
    "refused_ratio",
    "clients_refused",
    "gave_up",
    "reconnect_peak_per_s",
    "connect_ms_p99",
    "move_ms_p99",
    "moves_lost",
    "moves_at_risk",
];

/// The run's own metrics: steady state and fault windows, events, truncation.
fn run_metrics(w: &World, stats: &LoopStats, out: &mut MetricSink) {
    let (sc, rec) = (w.ctx.sc, &w.ctx.rec);
    let has_faults = !sc.faults.is_empty();
    let if_faults = |v: f64| if has_faults { v } else { f64::NAN };
    let (steady_s, fault_s) = rec.windows.durations(w.ctx.end);
    let recovered = rec
        .windows
        .faults
        .iter()
        .filter(|f| f.ending == Ending::Recovered)
        .count();
    out.set(K::SteadyS, steady_s);
    out.set(K::FaultWindowS, if_faults(fault_s));
    out.set(K::FaultsRecovered, if_faults(recovered as f64));
    out.set(K::Events, stats.events as f64);
    out.set(
        K::Truncated,
        if stats.stop == StopReason::EventLimit { 1.0 } else { 0.0 },
    );
}

/// What each scenario fault cost, from its window: connections dropped,
/// attempts refused and clients refused, clients who gave up, the peak
/// reconnection rate, the time to recover (NaN when the window ended
/// otherwise: cap, next fault, end of run), the p99 latencies of the
/// window's attempts and moves, moves lost and moves at risk at the fault.
fn fault_costs(w: &World, sc: &Scenario, windows: &[FaultWindow], end: SimTime) -> Vec<Vec<Metric>> {
    let interval_s = sc.sample_interval.as_secs_f64();
    windows
        .iter()
        .map(|f| {
            let st = &w.ctx.rec.window_stats[1 + f.fault];
            let stop = f.end.min(end);
            let span = stop.since(f.start).as_secs_f64_to_ms();
            let peak = w
                .ctx
                .rec
                .samples
                .iter()
                .filter(|s| s.time > f.start && s.time <= stop.max(f.start + sc.sample_interval))
                .map(|s| s.reconnects as f64 / interval_s)
                .fold(0.0, f64::max);
            let recover = match (f.ending, f.recovered) {
                (Ending::Recovered, Some(t)) => t.since(f.start).as_secs_f64(),
                _ => f64::NAN,
            };
            let at_risk = if w.storage.is_on() {
                st.moves_at_risk.unwrap_or(0) as f64
            } else {
                f64::NAN
            };
            let has_moves = sc.game.is_some();
            let if_moves = |v: f64| if has_moves { v } else { f64::NAN };
            let m = |name: &'static str, value: f64| Metric { name, value };
            let v = vec![
                m("start_s", f.start.as_secs_f64()),
                m("window_s", span),
                m("time_to_recover_s", recover),
                m("recovered", if f.ending == Ending::Recovered { 1.0 } else { 0.0 }),
                m("dropped", st.dropped as f64),
                m("attempts", st.attempts as f64),
                m("refused", st.refused as f64),
                m("refused_ratio", refused_ratio(st)),
                m("clients_refused", st.clients_refused as f64),
                m("gave_up", st.gave_up as f64),
                m("reconnect_peak_per_s", peak),
                m("connect_ms_p99", ms(&st.connect, 0.99)),
                m("move_ms_p99", if_moves(ms(&st.moves, 0.99))),
                m("moves_lost", if_moves(st.moves_lost as f64)),
                m("moves_at_risk", at_risk),
            ];
            debug_assert!(v.iter().map(|m| m.name).eq(FAULT_COSTS.iter().copied()));
            v
        })
        .collect()
}

/// A pool of `threads` workers (0 = one per core).
pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool, SimError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| SimError::Threads {
            threads,
            message: e.to_string(),
        })
}

/// Runs every replication of `sc` on `threads` worker threads (0 = one per
/// core). `progress` is called once per finished replication.
pub fn run(sc: &Scenario, threads: usize, progress: &(dyn Fn() + Sync)) -> Result<Outcome, SimError> {
    let pool = thread_pool(threads)?;
    let replications: Vec<Replication> = pool.install(|| {
        (0..sc.replications)
            .into_par_iter()
            .map(|i| {
                let r = run_replication(sc, i);
                progress();
                r
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(Outcome::new(replications))
}

/// The storage metrics: every one NaN when its tier (`[cache]`,
/// `[database]`) is not configured.
pub const STORAGE_METRICS: [&str; 37] = [
    "cache_writes",
    "cache_writes_failed",
    "moves_flushed",
    "flush_batches",
    "moves_lost_cache",
    "moves_at_risk_max",
    "moves_at_risk_at_crash",
    "cache_util_mean",
    "cache_util_max",
    "cache_backlog_max",
    "db_commits",
    "db_commit_rows",
    "commits_lost",
    "moves_lost_db",
    "db_writes_failed",
    "db_reads",
    "db_reads_failed",
    "stale_reads",
    "stale_read_ratio",
    "replica_lag_max_s",
    "replica_lag_end_s",
    "replica_lag_slope",
    "replica_lag_unbounded",
    "db_write_rows_per_s",
    "replica_apply_capacity_rows_per_s",
    "db_util_mean",
    "db_util_max",
    "replica_apply_util_mean",
    "failover_s",
    "rehydrations_cache",
    "rehydrations_db",
    "rehydrations_failed",
    "rehydration_ms_p50",
    "rehydration_ms_p99",
    "rehydration_ms_max",
    "moves_at_risk_end",
    "semi_sync_fallbacks",
];
