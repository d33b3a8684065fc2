//! Experiments: a scenario's replications, run in parallel with rayon, and
//! their aggregation (mean and 95 % confidence interval of every metric).
//!
//! Each replication derives its seed from `(scenario seed, index)` and
//! results are collected in index order, so the outcome is the same with
//! one thread or many.

use rayon::prelude::*;
use serde::Serialize;

use crate::check;
use crate::engine::{EngineError, LoopStats, StopReason};
use crate::metrics::{Sample, TimelineEvent, imbalance, jain};
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

/// The result of one replication.
#[derive(Clone, Debug)]
pub struct Replication {
    pub index: u32,
    pub metrics: Vec<Metric>,
    pub samples: Vec<Sample>,
    pub timeline: Vec<TimelineEvent>,
    /// Connections per server at the end of the run.
    pub final_conns: Vec<u32>,
    /// Latency distributions after the warm-up, as CDF points
    /// (latency ms, fraction ≤ it): "connect", "move" (to the opponent),
    /// "spectator", "last_spectator", "relay". Empty when nothing was measured.
    pub cdfs: Vec<(&'static str, Vec<(f64, f64)>)>,
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
}

impl Outcome {
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
    #[error("replication {replication}: {source}")]
    Engine { replication: u32, source: EngineError },
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
    let stats: LoopStats = w.run_observed(observe).map_err(|source| SimError::Engine {
        replication: index,
        source,
    })?;
    let violations = check::check(&w);
    if !violations.is_empty() {
        return Err(SimError::Invariant {
            replication: index,
            violations,
        });
    }
    let end = SimTime::ZERO + sc.duration;
    let loads = w.rec.mean_conns_per_server(end);
    let c = w.rec.counters;
    let h = &w.rec.connect;
    let pct = |q: f64| {
        if h.is_empty() {
            f64::NAN
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let ratio = if c.connection_attempts == 0 {
        0.0
    } else {
        c.connections_refused as f64 / c.connection_attempts as f64
    };
    let m = |name: &'static str, value: f64| Metric { name, value };
    let metrics = vec![
        m("clients_arrived", c.clients_arrived as f64),
        m("connection_attempts", c.connection_attempts as f64),
        m("connections_accepted", c.connections_accepted as f64),
        m("connections_refused", c.connections_refused as f64),
        m("refused_ratio", ratio),
        m("clients_refused", c.clients_refused as f64),
        m(
            "clients_refused_ratio",
            if c.clients_arrived == 0 {
                0.0
            } else {
                c.clients_refused as f64 / c.clients_arrived as f64
            },
        ),
        m("reconnects", c.reconnects as f64),
        m("dropped", c.dropped as f64),
        m("gave_up", c.gave_up as f64),
        m(
            "connect_ms_mean",
            if h.is_empty() { f64::NAN } else { h.mean() / 1000.0 },
        ),
        m("connect_ms_p50", pct(0.5)),
        m("connect_ms_p90", pct(0.9)),
        m("connect_ms_p99", pct(0.99)),
        m("connect_ms_p999", pct(0.999)),
        m(
            "connect_ms_max",
            if h.is_empty() {
                f64::NAN
            } else {
                h.max() as f64 / 1000.0
            },
        ),
        m("max_conn_per_server", w.rec.peak_conns() as f64),
        m("imbalance_max_over_mean", imbalance(&loads)),
        m("jain_index", jain(&loads)),
        m("refused_no_server", c.refused_no_server as f64),
        m("refused_queue_full", c.refused_queue_full as f64),
        m("refused_queue_timeout", c.refused_queue_timeout as f64),
        m("refused_server_failed", c.refused_server_failed as f64),
        m("moves_sent", c.moves_sent as f64),
        m("moves_validated", c.moves_validated as f64),
        m("moves_lost", c.moves_lost as f64),
        m(
            "relay_share",
            if c.moves_validated == 0 {
                f64::NAN
            } else {
                c.moves_relayed as f64 / c.moves_validated as f64
            },
        ),
        m("move_ms_mean", mean_ms(&w.rec.move_player)),
        m("move_ms_p50", ms(&w.rec.move_player, 0.5)),
        m("move_ms_p90", ms(&w.rec.move_player, 0.9)),
        m("move_ms_p99", ms(&w.rec.move_player, 0.99)),
        m("move_ms_p999", ms(&w.rec.move_player, 0.999)),
        m("move_ms_max", max_ms(&w.rec.move_player)),
        m("spectator_ms_mean", mean_ms(&w.rec.move_spectator)),
        m("spectator_ms_p50", ms(&w.rec.move_spectator, 0.5)),
        m("spectator_ms_p90", ms(&w.rec.move_spectator, 0.9)),
        m("spectator_ms_p99", ms(&w.rec.move_spectator, 0.99)),
        m("spectator_ms_p999", ms(&w.rec.move_spectator, 0.999)),
        m("spectator_ms_max", max_ms(&w.rec.move_spectator)),
        m("last_spectator_ms_p50", ms(&w.rec.move_last_spectator, 0.5)),
        m("last_spectator_ms_p99", ms(&w.rec.move_last_spectator, 0.99)),
        m("last_spectator_ms_max", max_ms(&w.rec.move_last_spectator)),
        m("relay_ms_p50", ms(&w.rec.relay, 0.5)),
        m("relay_ms_p99", ms(&w.rec.relay, 0.99)),
        m("relay_copies", c.relay_copies as f64),
        m("relay_copies_lost", c.relay_copies_lost as f64),
        m(
            "relay_backlog_max",
            samples_max(&w.rec.samples, |s| s.relay_backlog as f64),
        ),
        m("deliveries", (c.deliveries_player + c.deliveries_spectator) as f64),
        m("state_syncs", c.state_syncs as f64),
        m("games_started", c.games_started as f64),
        m("games_completed", c.games_completed as f64),
        m("games_abandoned", c.games_abandoned as f64),
        m("cpu_util_mean", cpu_mean(&w.rec.samples, sc)),
        m(
            "cpu_util_max",
            samples_max(&w.rec.samples, |s| {
                s.servers.iter().map(|v| v.cpu_util).fold(0.0, f64::max)
            }),
        ),
        m("events", stats.events as f64),
        m(
            "truncated",
            if stats.stop == StopReason::EventLimit { 1.0 } else { 0.0 },
        ),
    ];
    let cdfs = vec![
        ("connect", cdf(&w.rec.connect)),
        ("move", cdf(&w.rec.move_player)),
        ("spectator", cdf(&w.rec.move_spectator)),
        ("last_spectator", cdf(&w.rec.move_last_spectator)),
        ("relay", cdf(&w.rec.relay)),
    ];
    Ok(Replication {
        index,
        metrics,
        cdfs,
        final_conns: w.servers.iter().map(|s| s.conns.len() as u32).collect(),
        samples: std::mem::take(&mut w.rec.samples),
        timeline: std::mem::take(&mut w.rec.timeline),
        events: stats.events,
        end: stats.end,
        stop: stats.stop,
    })
}

fn ms(h: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        f64::NAN
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

fn mean_ms(h: &hdrhistogram::Histogram<u64>) -> f64 {
    if h.is_empty() { f64::NAN } else { h.mean() / 1000.0 }
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

fn max_ms(h: &hdrhistogram::Histogram<u64>) -> f64 {
    if h.is_empty() {
        f64::NAN
    } else {
        h.max() as f64 / 1000.0
    }
}

/// Largest value of a per-sample quantity after the warm-up.
fn samples_max(samples: &[crate::metrics::Sample], f: impl Fn(&crate::metrics::Sample) -> f64) -> f64 {
    samples.iter().map(f).fold(0.0, f64::max)
}

/// Mean core utilisation over servers and samples after the warm-up.
fn cpu_mean(samples: &[crate::metrics::Sample], sc: &Scenario) -> f64 {
    let w = SimTime::ZERO + sc.warmup;
    let vals: Vec<f64> = samples
        .iter()
        .filter(|s| s.time > w)
        .flat_map(|s| s.servers.iter().map(|v| v.cpu_util))
        .collect();
    if vals.is_empty() {
        f64::NAN
    } else {
        vals.iter().sum::<f64>() / vals.len() as f64
    }
}

/// Aggregates replications metric by metric (NaN values are left out).
pub fn aggregate(reps: &[Replication]) -> Vec<Aggregate> {
    let Some(first) = reps.first() else { return vec![] };
    first
        .metrics
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let xs: Vec<f64> = reps
                .iter()
                .map(|r| r.metrics[i].value)
                .filter(|v| !v.is_nan())
                .collect();
            Aggregate {
                name: m.name,
                mean: stats::mean(&xs),
                ci95: stats::ci_half_width(&xs, 0.95),
            }
        })
        .collect()
}

/// Runs every replication of `sc` on `threads` worker threads (0 = one per
/// core). `progress` is called once per finished replication.
pub fn run(sc: &Scenario, threads: usize, progress: &(dyn Fn() + Sync)) -> Result<Outcome, SimError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| SimError::Threads {
            threads,
            message: e.to_string(),
        })?;
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
    let aggregate = aggregate(&replications);
    Ok(Outcome {
        replications,
        aggregate,
    })
}
