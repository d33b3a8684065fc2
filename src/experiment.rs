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
use crate::metrics::{Ending, FaultWindow, Sample, StorageSample, TimelineEvent, WindowStats, imbalance, jain};
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
    /// The cache and database per interval (empty without them).
    pub storage_samples: Vec<StorageSample>,
    pub timeline: Vec<TimelineEvent>,
    /// Connections per server at the end of the run.
    pub final_conns: Vec<u32>,
    /// Latency distributions after the warm-up, as CDF points
    /// (latency ms, fraction ≤ it): "connect", "move" (to the opponent),
    /// "spectator", "last_spectator", "relay". Empty when nothing was measured.
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
    w.ctx.rec.finish();
    let violations = check::check(&w);
    if !violations.is_empty() {
        return Err(SimError::Invariant {
            replication: index,
            violations,
        });
    }
    let end = SimTime::ZERO + sc.duration;
    // Server-template slots that never ran a process are not servers.
    let loads: Vec<f64> = w
        .ctx
        .rec
        .mean_conns_per_server(end)
        .into_iter()
        .zip(&w.cluster.ever_provisioned)
        .filter(|(_, p)| **p)
        .map(|(l, _)| l)
        .collect();
    let c = w.ctx.rec.counters;
    let h = &w.ctx.rec.connect;
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
    let (steady, faults) = split(&w.ctx.rec.window_stats);
    let (steady_s, fault_s) = w.ctx.rec.windows.durations(end);
    let has_faults = !sc.faults.is_empty();
    let if_faults = |v: f64| if has_faults { v } else { f64::NAN };
    let recovered = w
        .ctx
        .rec
        .windows
        .faults
        .iter()
        .filter(|f| f.ending == Ending::Recovered)
        .count();
    let p99_us = |h: &hdrhistogram::Histogram<u64>| h.value_at_quantile(0.99);
    let connect_shares = w.ctx.rec.connect_tail.shares_above(p99_us(h));
    let move_shares = w.ctx.rec.move_tail.shares_above(p99_us(&w.ctx.rec.move_player));
    let m = |name: &'static str, value: f64| Metric { name, value };
    let mut metrics = vec![
        m("clients_arrived", c.clients_arrived as f64),
        m("clients_attempting", c.clients_attempting as f64),
        m("connection_attempts", c.connection_attempts as f64),
        m("connections_accepted", c.connections_accepted as f64),
        m("connections_refused", c.connections_refused as f64),
        m("refused_ratio", ratio),
        m("clients_refused", c.clients_refused as f64),
        m(
            "clients_refused_ratio",
            if c.clients_attempting == 0 {
                0.0
            } else {
                c.clients_refused as f64 / c.clients_attempting as f64
            },
        ),
        m("reconnects", c.reconnects as f64),
        m("dropped", c.dropped as f64),
        m("gave_up", c.gave_up as f64),
        m("refused_ratio_steady", refused_ratio(&steady)),
        m("refused_ratio_faults", if_faults(refused_ratio(&faults))),
        m("clients_refused_ratio_steady", clients_refused_ratio(&steady)),
        m(
            "clients_refused_ratio_faults",
            if_faults(clients_refused_ratio(&faults)),
        ),
        m("connect_ms_p99_steady", ms(&steady.connect, 0.99)),
        m("connect_ms_p99_faults", if_faults(ms(&faults.connect, 0.99))),
        m("connect_p99_share_network", connect_shares[0]),
        m("connect_p99_share_balancer_queue", connect_shares[1]),
        m("connect_p99_share_retries", connect_shares[2]),
        m("connect_p99_share_tls", connect_shares[3]),
        m("connect_p99_share_accept", connect_shares[4]),
        m("connect_p99_share_reconnect", connect_shares[5]),
        m("steady_s", steady_s),
        m("fault_window_s", if_faults(fault_s)),
        m("faults_recovered", if_faults(recovered as f64)),
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
        m("max_conn_per_server", w.ctx.rec.peak_conns() as f64),
        m("imbalance_max_over_mean", imbalance(&loads)),
        m("jain_index", jain(&loads)),
        m("refused_no_server", c.refused_no_server as f64),
        m("refused_queue_full", c.refused_queue_full as f64),
        m("refused_queue_timeout", c.refused_queue_timeout as f64),
        m("refused_server_failed", c.refused_server_failed as f64),
        m("refused_node_full", c.refused_node_full as f64),
        m("connect_timeouts", c.connect_timeouts as f64),
        m("vip_outage_s", w.cluster.vip_outage(end).as_secs_f64()),
        m("web_requests", w.web.requests as f64),
        m("web_failed", w.web.failed as f64),
        m(
            "web_failed_ratio",
            if w.web.requests == 0 {
                f64::NAN
            } else {
                w.web.failed as f64 / w.web.requests as f64
            },
        ),
        m("web_502", w.web.rejected_502 as f64),
        m("web_db_errors", w.web.db_errors as f64),
        m("web_ms_mean", mean_ms(&w.web.all)),
        m("web_ms_p50", ms(&w.web.all, 0.5)),
        m("web_ms_p90", ms(&w.web.all, 0.9)),
        m("web_ms_p99", ms(&w.web.all, 0.99)),
        m("web_ms_max", max_ms(&w.web.all)),
        m("web_static_ms_p50", ms(&w.web.static_, 0.5)),
        m("web_static_ms_p99", ms(&w.web.static_, 0.99)),
        m("web_dynamic_ms_p50", ms(&w.web.dynamic, 0.5)),
        m("web_dynamic_ms_p99", ms(&w.web.dynamic, 0.99)),
        m("app_wait_ms_mean", w.web.app_wait_ms_mean()),
        m("app_wait_ms_p99", ms(&w.web.app_wait, 0.99)),
        m(
            "app_util_mean",
            mean_after_warmup(&w.ctx.rec.samples, sc, |s| s.web.map(|x| x.app_util)),
        ),
        m(
            "nginx_util_mean",
            mean_after_warmup(&w.ctx.rec.samples, sc, |s| s.web.map(|x| x.nginx_util)),
        ),
        m(
            "tls_full_handshakes",
            w.cluster.nodes.iter().map(|n| n.full_handshakes).sum::<u64>() as f64,
        ),
        m(
            "tls_resumed_handshakes",
            w.cluster.nodes.iter().map(|n| n.resumed_handshakes).sum::<u64>() as f64,
        ),
        m(
            "balancer_cpu_util_max",
            samples_max(&w.ctx.rec.samples, sc, |s| {
                s.nodes.iter().map(|n| n.cpu_util).fold(f64::NAN, f64::max)
            }),
        ),
        m(
            "node_connections_max",
            samples_max(&w.ctx.rec.samples, sc, |s| {
                s.nodes.iter().map(|n| n.connections as f64).fold(f64::NAN, f64::max)
            }),
        ),
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
        m("move_ms_mean", mean_ms(&w.ctx.rec.move_player)),
        m("move_ms_p50", ms(&w.ctx.rec.move_player, 0.5)),
        m("move_ms_p90", ms(&w.ctx.rec.move_player, 0.9)),
        m("move_ms_p99", ms(&w.ctx.rec.move_player, 0.99)),
        m("move_ms_p999", ms(&w.ctx.rec.move_player, 0.999)),
        m("move_ms_max", max_ms(&w.ctx.rec.move_player)),
        m("move_ms_p99_steady", ms(&steady.moves, 0.99)),
        m("move_ms_p99_faults", if_faults(ms(&faults.moves, 0.99))),
        m("move_p99_share_network", move_shares[0]),
        m("move_p99_share_server", move_shares[1]),
        m("move_p99_share_relay", move_shares[2]),
        m("move_p99_share_fanout", move_shares[3]),
        m("spectator_ms_mean", mean_ms(&w.ctx.rec.move_spectator)),
        m("spectator_ms_p50", ms(&w.ctx.rec.move_spectator, 0.5)),
        m("spectator_ms_p90", ms(&w.ctx.rec.move_spectator, 0.9)),
        m("spectator_ms_p99", ms(&w.ctx.rec.move_spectator, 0.99)),
        m("spectator_ms_p999", ms(&w.ctx.rec.move_spectator, 0.999)),
        m("spectator_ms_max", max_ms(&w.ctx.rec.move_spectator)),
        m("spectator_ms_p99_steady", ms(&steady.spectators, 0.99)),
        m("spectator_ms_p99_faults", if_faults(ms(&faults.spectators, 0.99))),
        m("last_spectator_ms_p50", ms(&w.ctx.rec.move_last_spectator, 0.5)),
        m("last_spectator_ms_p99", ms(&w.ctx.rec.move_last_spectator, 0.99)),
        m("last_spectator_ms_max", max_ms(&w.ctx.rec.move_last_spectator)),
        m("relay_ms_p50", ms(&w.ctx.rec.relay, 0.5)),
        m("relay_ms_p99", ms(&w.ctx.rec.relay, 0.99)),
        m("relay_copies", c.relay_copies as f64),
        m("relay_copies_lost", c.relay_copies_lost as f64),
        m(
            "relay_backlog_max",
            samples_max(&w.ctx.rec.samples, sc, |s| s.relay_backlog as f64),
        ),
        m("deliveries", (c.deliveries_player + c.deliveries_spectator) as f64),
        m("state_syncs", c.state_syncs as f64),
        m("games_started", c.games_started as f64),
        m("games_completed", c.games_completed as f64),
        m("games_abandoned", c.games_abandoned as f64),
        m(
            "cpu_util_mean",
            mean_after_warmup(&w.ctx.rec.samples, sc, |s| s.servers.iter().map(|v| v.cpu_util)),
        ),
        m(
            "cpu_util_max",
            samples_max(&w.ctx.rec.samples, sc, |s| {
                s.servers.iter().map(|v| v.cpu_util).fold(0.0, f64::max)
            }),
        ),
        m("events", stats.events as f64),
        m(
            "truncated",
            if stats.stop == StopReason::EventLimit { 1.0 } else { 0.0 },
        ),
    ];
    metrics.extend(storage_metrics(&w, sc));
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

/// Largest value of a per-sample quantity over the intervals after the
/// warm-up (0 without any).
fn samples_max(samples: &[crate::metrics::Sample], sc: &Scenario, f: impl Fn(&crate::metrics::Sample) -> f64) -> f64 {
    let w = SimTime::ZERO + sc.warmup;
    samples.iter().filter(|s| s.time > w).map(f).fold(0.0, f64::max)
}

/// Mean of the values `f` gives for each sample after the warm-up (NaN if
/// there are none).
fn mean_after_warmup<'a, I: IntoIterator<Item = f64>>(
    samples: &'a [crate::metrics::Sample],
    sc: &Scenario,
    f: impl Fn(&'a crate::metrics::Sample) -> I,
) -> f64 {
    let w = SimTime::ZERO + sc.warmup;
    let vals: Vec<f64> = samples.iter().filter(|s| s.time > w).flat_map(f).collect();
    stats::mean(&vals)
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

/// Steady state (slot 0) and the union of the fault windows.
fn split(stats: &[WindowStats]) -> (WindowStats, WindowStats) {
    let mut faults = WindowStats::default();
    for w in &stats[1..] {
        faults.add(w);
    }
    (stats[0].clone(), faults)
}

fn refused_ratio(w: &WindowStats) -> f64 {
    if w.attempts == 0 {
        f64::NAN
    } else {
        w.refused as f64 / w.attempts as f64
    }
}

fn clients_refused_ratio(w: &WindowStats) -> f64 {
    if w.clients == 0 {
        f64::NAN
    } else {
        w.clients_refused as f64 / w.clients as f64
    }
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
            let span = stop.0.saturating_sub(f.start.0) as f64 * 1e-9;
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

fn storage_metrics(w: &World, sc: &Scenario) -> Vec<Metric> {
    let nan = f64::NAN;
    let st = &w.storage;
    let c = &w.ctx.rec.counters;
    let warm = SimTime::ZERO + sc.warmup;
    let samples: Vec<&StorageSample> = w.ctx.rec.storage_samples.iter().filter(|s| s.time > warm).collect();
    let on = st.is_on();
    let cache = sc.cache.is_some();
    let db = sc.database.as_ref();
    let either = |v: f64| if on { v } else { nan };
    let if_cache = |v: f64| if cache { v } else { nan };
    let if_db = |v: f64| if db.is_some() { v } else { nan };
    let max_of =
        |f: &dyn Fn(&StorageSample) -> Option<f64>| samples.iter().filter_map(|s| f(s)).fold(f64::NAN, f64::max);
    let mean_of = |f: &dyn Fn(&StorageSample) -> Option<f64>| {
        let v: Vec<f64> = samples.iter().filter_map(|s| f(s)).collect();
        stats::mean(&v)
    };
    let lag_max = max_of(&|s| s.db_nodes.iter().filter_map(|n| n.lag_s).reduce(f64::max));
    let lag_end = w
        .ctx
        .rec
        .storage_samples
        .last()
        .and_then(|s| s.db_nodes.iter().filter_map(|n| n.lag_s).reduce(f64::max))
        .unwrap_or(nan);
    let capacity = db.map_or(nan, |d| d.applier_threads as f64 * d.apply_rate.per_s);
    let trend = lag_trend(&w.ctx.rec.storage_samples, warm, capacity);
    let has_replicas = db.is_some_and(|d| d.replicas > 0);
    let if_replicas = |v: f64| if has_replicas { v } else { nan };
    let failovers = st.db.as_ref().map(|d| stats::mean(&d.failovers_s)).unwrap_or(nan);
    let h = &w.ctx.rec.rehydration;
    let m = |name: &'static str, value: f64| Metric { name, value };
    let fallbacks = w
        .ctx
        .rec
        .timeline
        .iter()
        .filter(|e| e.event == crate::metrics::Happening::SemiSyncOff)
        .count() as f64;
    let v = vec![
        m("cache_writes", if_cache(c.cache_writes as f64)),
        m("cache_writes_failed", if_cache(c.cache_writes_failed as f64)),
        m("moves_flushed", either(c.moves_flushed as f64)),
        m("flush_batches", if_cache(c.flush_batches as f64)),
        m("moves_lost_cache", if_cache(c.moves_lost_cache as f64)),
        m("moves_at_risk_max", either(st.at_risk_max as f64)),
        m("moves_at_risk_at_crash", either(st.at_risk_at_crash_max as f64)),
        m("cache_util_mean", if_cache(mean_of(&|s| s.cache.map(|k| k.util)))),
        m("cache_util_max", if_cache(max_of(&|s| s.cache.map(|k| k.util)))),
        m(
            "cache_backlog_max",
            if_cache(max_of(&|s| s.cache.map(|k| k.backlog as f64))),
        ),
        m("db_commits", if_db(c.db_commits as f64)),
        m("db_commit_rows", if_db(c.db_commit_rows as f64)),
        m("commits_lost", if_db(c.commits_lost as f64)),
        m("moves_lost_db", if_db(c.moves_lost_db as f64)),
        m("db_writes_failed", if_db(c.db_writes_failed as f64)),
        m("db_reads", if_db(c.db_reads as f64)),
        m("db_reads_failed", if_db(c.db_reads_failed as f64)),
        m("stale_reads", if_db(c.stale_reads as f64)),
        m(
            "stale_read_ratio",
            if c.db_reads == 0 {
                nan
            } else {
                c.stale_reads as f64 / c.db_reads as f64
            },
        ),
        m("replica_lag_max_s", if_replicas(lag_max)),
        m("replica_lag_end_s", if_replicas(lag_end)),
        m("replica_lag_slope", if_replicas(trend.slope)),
        m(
            "replica_lag_unbounded",
            if_replicas(if trend.unbounded { 1.0 } else { 0.0 }),
        ),
        m("db_write_rows_per_s", if_db(trend.write_rows_per_s)),
        m("replica_apply_capacity_rows_per_s", if_replicas(capacity)),
        m(
            "db_util_mean",
            if_db(mean_of(&|s| {
                s.db_nodes.iter().find(|n| n.role == "primary").map(|n| n.util)
            })),
        ),
        m(
            "db_util_max",
            if_db(max_of(&|s| {
                s.db_nodes.iter().find(|n| n.role == "primary").map(|n| n.util)
            })),
        ),
        m(
            "replica_apply_util_mean",
            if_replicas(mean_of(&|s| {
                let u: Vec<f64> = s
                    .db_nodes
                    .iter()
                    .filter(|n| n.role == "replica")
                    .map(|n| n.util)
                    .collect();
                (!u.is_empty()).then(|| stats::mean(&u))
            })),
        ),
        m("failover_s", if_db(failovers)),
        m("rehydrations_cache", if_cache(c.rehydrations_cache as f64)),
        m("rehydrations_db", if_db(c.rehydrations_db as f64)),
        m("rehydrations_failed", either(c.rehydrations_failed as f64)),
        m("rehydration_ms_p50", ms(h, 0.5)),
        m("rehydration_ms_p99", ms(h, 0.99)),
        m("rehydration_ms_max", max_ms(h)),
        m("moves_at_risk_end", either(st.moves_at_risk() as f64)),
        m("semi_sync_fallbacks", if_db(fallbacks)),
    ];
    debug_assert!(v.iter().map(|m| m.name).eq(STORAGE_METRICS.iter().copied()));
    v
}
