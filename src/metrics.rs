//! Measurements of one replication: counters, HDR latency histograms, the
//! per-interval time series and the event timeline.
//!
//! The recorder only stores numbers; it does not format or write them
//! (that is `crate::report`). Counters and histograms ignore the warm-up;
//! the time series and timeline cover the whole run.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::time::{NS_PER_US, SimTime};

/// Why a connection attempt was refused (503), for the breakdown columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefuseKind {
    NoServer,
    QueueFull,
    QueueTimeout,
    ServerFailed,
    NodeFull,
    ConnectTimeout,
}

/// Counts after the warm-up.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Counters {
    pub clients_arrived: u64,
    pub connection_attempts: u64,
    pub connections_accepted: u64,
    pub connections_refused: u64,
    /// Distinct clients that saw at least one 503.
    pub clients_refused: u64,
    pub reconnects: u64,
    pub dropped: u64,
    pub gave_up: u64,
    pub refused_no_server: u64,
    pub refused_queue_full: u64,
    pub refused_queue_timeout: u64,
    pub refused_server_failed: u64,
    /// Turned away by a balancer node at its `node_maxconn`.
    pub refused_node_full: u64,
    /// Attempts the client abandoned after its connect timeout (SYNs to a
    /// VIP that nobody answers, or a handshake queue too long).
    pub connect_timeouts: u64,
    pub moves_sent: u64,
    pub moves_validated: u64,
    pub moves_lost: u64,
    /// Moves that crossed the relay (published once each).
    pub moves_relayed: u64,
    /// Server copies handed out by the relay, and those lost on the way
    /// (subscriber down, server crashed before fanning out).
    pub relay_copies: u64,
    pub relay_copies_lost: u64,
    pub deliveries_player: u64,
    pub deliveries_spectator: u64,
    /// Members sent the room's state when they (re)joined mid-game.
    pub state_syncs: u64,
    pub games_started: u64,
    pub games_completed: u64,
    pub games_abandoned: u64,
    /// Storage tier (`[cache]`, `[database]`): move writes sent to Redis
    /// and those that failed (Redis down, no connection, lost in its queue).
    pub cache_writes: u64,
    pub cache_writes_failed: u64,
    /// Moves Redis had stored, lost by a Redis crash before any flush.
    pub moves_lost_cache: u64,
    /// Moves whose flush commit the database acknowledged; flush batches.
    pub moves_flushed: u64,
    pub flush_batches: u64,
    pub db_commits: u64,
    pub db_commit_rows: u64,
    /// Acknowledged commits lost at a failover (never shipped to the
    /// promoted replica), and the moves they held.
    pub commits_lost: u64,
    pub moves_lost_db: u64,
    pub db_writes_failed: u64,
    pub db_reads: u64,
    pub db_reads_failed: u64,
    /// Reads on a replica that had not applied the key's latest commit.
    pub stale_reads: u64,
    /// Room state rebuilt on a server from Redis, from the database, or
    /// not at all (no source answered).
    pub rehydrations_cache: u64,
    pub rehydrations_db: u64,
    pub rehydrations_failed: u64,
}

/// One server at one sample time.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ServerSample {
    pub connections: u32,
    pub queued: u32,
    /// Busy fraction of the server's cores over the interval.
    pub cpu_util: f64,
    /// Jobs waiting for a core at the sample time.
    pub jobs_waiting: u32,
    /// The process is running.
    pub process_up: bool,
    /// The balancer considers it UP.
    pub lb_up: bool,
}

/// One balancer node at one sample time.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct NodeSample {
    pub up: bool,
    /// Client connections it holds (slots on servers and queued).
    pub connections: u64,
    /// Handshakes waiting for a core.
    pub handshakes_waiting: u32,
    /// Busy fraction of its cores over the interval (TLS).
    pub cpu_util: f64,
}

/// The web tier over one interval.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct WebSample {
    pub requests: u64,
    pub failed: u64,
    /// Response time percentiles of the requests answered in the interval (ms).
    pub ms_p50: Option<f64>,
    pub ms_p99: Option<f64>,
    /// Mean busy fraction of the nginx cores and of the app workers.
    pub nginx_util: f64,
    pub app_util: f64,
    /// Requests waiting for an app worker at the sample time.
    pub app_waiting: u64,
}

/// The whole system at one sample time, with what happened in the interval.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub time: SimTime,
    pub connections: u64,
    pub queued: u64,
    pub arrivals: u64,
    pub accepted: u64,
    pub refused: u64,
    pub reconnects: u64,
    pub dropped: u64,
    /// Connect latency percentiles of the attempts accepted in the interval (ms).
    pub connect_ms_p50: Option<f64>,
    pub connect_ms_p99: Option<f64>,
    /// Move latency player → opponent in the interval (ms).
    pub move_ms_p50: Option<f64>,
    pub move_ms_p99: Option<f64>,
    /// Move latency player → spectator in the interval (ms).
    pub spectator_ms_p50: Option<f64>,
    pub spectator_ms_p99: Option<f64>,
    pub moves: u64,
    /// Most messages inside the relay (queued at a partition / Redis,
    /// replicating) at any time in the interval.
    pub relay_backlog: u64,
    pub servers: Vec<ServerSample>,
    pub nodes: Vec<NodeSample>,
    /// The web tier, if there is one.
    pub web: Option<WebSample>,
}

/// A fault or state change.
#[derive(Clone, Debug, Serialize)]
pub struct TimelineEvent {
    pub time: SimTime,
    pub component: String,
    pub event: &'static str,
    pub detail: String,
}

impl TimelineEvent {
    /// Faults (drawn as markers on every time chart).
    pub fn is_marker(&self) -> bool {
        matches!(
            self.event,
            "crash"
                | "restarted"
                | "marked-down"
                | "marked-up"
                | "stopped"
                | "drain"
                | "vip-moved"
                | "scale-out"
                | "scale-in"
                | "servers-updated"
                | "promoted"
        )
    }
}

/// A latency histogram in µs: 1 µs .. 1 h, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid HDR bounds")
}

#[derive(Clone, Copy, Debug, Default)]
struct ServerConns {
    current: u32,
    peak: u32,
    last_change: SimTime,
    /// ∫ connections dt after the warm-up, in connection·ns.
    area: u128,
}

pub struct Recorder {
    warmup: SimTime,
    pub counters: Counters,
    pub connect: Histogram<u64>,
    interval_connect: Histogram<u64>,
    /// Move latency, player → opponent (µs).
    pub move_player: Histogram<u64>,
    /// Move latency, player → each spectator (µs).
    pub move_spectator: Histogram<u64>,
    /// Per move: until the last spectator has it (µs).
    pub move_last_spectator: Histogram<u64>,
    /// Relay: validated on the sender's server → copy at a subscriber (µs).
    pub relay: Histogram<u64>,
    interval_player: Histogram<u64>,
    interval_spectator: Histogram<u64>,
    interval: Counters,
    servers: Vec<ServerConns>,
    pub samples: Vec<Sample>,
    pub timeline: Vec<TimelineEvent>,
    /// Rehydration: from accepting a member to its room's state read (µs).
    pub rehydration: Histogram<u64>,
    /// The storage tier per interval (empty without `[cache]`/`[database]`).
    pub storage_samples: Vec<StorageSample>,
}

impl Recorder {
    pub fn new(servers: usize, warmup: SimTime) -> Self {
        Recorder {
            warmup,
            counters: Counters::default(),
            connect: new_hist(),
            interval_connect: new_hist(),
            move_player: new_hist(),
            move_spectator: new_hist(),
            move_last_spectator: new_hist(),
            relay: new_hist(),
            interval_player: new_hist(),
            interval_spectator: new_hist(),
            interval: Counters::default(),
            servers: vec![ServerConns::default(); servers],
            samples: Vec::new(),
            timeline: Vec::new(),
            rehydration: new_hist(),
            storage_samples: Vec::new(),
        }
    }

    #[inline]
    fn counting(&self, now: SimTime) -> bool {
        now >= self.warmup
    }

    /// Adds to a counter, both in the run totals (after warm-up) and in the
    /// current interval.
    #[inline]
    pub fn count(&mut self, now: SimTime, f: impl Fn(&mut Counters)) {
        f(&mut self.interval);
        if self.counting(now) {
            f(&mut self.counters);
        }
    }

    /// Like [`count`](Self::count), but whether it counts in the run totals
    /// depends on when the thing counted began (`origin`: a move's send
    /// time, a game's start), so that begun-before-warm-up work finishing
    /// after it is not counted half.
    #[inline]
    pub fn count_from(&mut self, origin: SimTime, f: impl Fn(&mut Counters)) {
        f(&mut self.interval);
        if self.counting(origin) {
            f(&mut self.counters);
        }
    }

    pub fn refused(&mut self, now: SimTime, kind: RefuseKind) {
        self.count(now, |c| {
            c.connections_refused += 1;
            match kind {
                RefuseKind::NoServer => c.refused_no_server += 1,
                RefuseKind::QueueFull => c.refused_queue_full += 1,
                RefuseKind::QueueTimeout => c.refused_queue_timeout += 1,
                RefuseKind::ServerFailed => c.refused_server_failed += 1,
                RefuseKind::NodeFull => c.refused_node_full += 1,
                RefuseKind::ConnectTimeout => c.connect_timeouts += 1,
            }
        });
    }

    /// An accepted connection with its connect latency (attempt start to
    /// the client hearing the upgrade).
    #[inline]
    pub fn accepted(&mut self, now: SimTime, latency_ns: u64) {
        let us = (latency_ns / NS_PER_US).max(1);
        self.interval_connect.saturating_record(us);
        self.interval.connections_accepted += 1;
        if self.counting(now) {
            self.connect.saturating_record(us);
            self.counters.connections_accepted += 1;
        }
    }

    /// A move delivered to a player (`to_player`) or a spectator; `now` is
    /// when the delivery was computed, `latency_ns` from the sender's send.
    #[inline]
    /// `sent` is when the move was sent (it decides the warm-up).
    pub fn delivery(&mut self, sent: SimTime, to_player: bool, latency_ns: u64) {
        let us = (latency_ns / NS_PER_US).max(1);
        let counting = self.counting(sent);
        if to_player {
            self.interval_player.saturating_record(us);
            if counting {
                self.move_player.saturating_record(us);
                self.counters.deliveries_player += 1;
            }
        } else {
            self.interval_spectator.saturating_record(us);
            if counting {
                self.move_spectator.saturating_record(us);
                self.counters.deliveries_spectator += 1;
            }
        }
    }

    /// A latency in one of the run-level histograms (after the warm-up).
    #[inline]
    pub fn latency(&mut self, now: SimTime, which: fn(&mut Recorder) -> &mut Histogram<u64>, latency_ns: u64) {
        if self.counting(now) {
            which(self).saturating_record((latency_ns / NS_PER_US).max(1));
        }
    }

    /// Server `s` now has `n` connections.
    #[inline]
    pub fn server_conns(&mut self, s: usize, now: SimTime, n: u32) {
        let w = self.warmup;
        let sc = &mut self.servers[s];
        if now > w {
            let from = sc.last_change.max(w);
            sc.area += sc.current as u128 * now.0.saturating_sub(from.0) as u128;
            sc.peak = sc.peak.max(n);
        }
        sc.current = n;
        sc.last_change = now;
    }

    pub fn event(&mut self, now: SimTime, component: String, event: &'static str, detail: String) {
        self.timeline.push(TimelineEvent {
            time: now,
            component,
            event,
            detail,
        });
    }

    /// Closes an interval: stores a sample and resets the interval counters.
    pub fn sample(
        &mut self,
        now: SimTime,
        queued: u64,
        relay_backlog: u64,
        servers: Vec<ServerSample>,
        nodes: Vec<NodeSample>,
        web: Option<WebSample>,
    ) {
        let ms = |h: &Histogram<u64>, q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0);
        let h = &self.interval_connect;
        let pct = |q: f64| ms(h, q);
        let connections = servers.iter().map(|s| s.connections as u64).sum();
        self.samples.push(Sample {
            time: now,
            connections,
            queued,
            arrivals: self.interval.clients_arrived,
            accepted: self.interval.connections_accepted,
            refused: self.interval.connections_refused,
            reconnects: self.interval.reconnects,
            dropped: self.interval.dropped,
            connect_ms_p50: pct(0.5),
            connect_ms_p99: pct(0.99),
            move_ms_p50: ms(&self.interval_player, 0.5),
            move_ms_p99: ms(&self.interval_player, 0.99),
            spectator_ms_p50: ms(&self.interval_spectator, 0.5),
            spectator_ms_p99: ms(&self.interval_spectator, 0.99),
            moves: self.interval.moves_validated,
            relay_backlog,
            servers,
            nodes,
            web,
        });
        self.interval = Counters::default();
        self.interval_connect.reset();
        self.interval_player.reset();
        self.interval_spectator.reset();
    }

    /// Time-averaged connections per server after the warm-up, closing
    /// the integrals at `end`.
    pub fn mean_conns_per_server(&mut self, end: SimTime) -> Vec<f64> {
        let span = end.0.saturating_sub(self.warmup.0).max(1) as f64;
        (0..self.servers.len())
            .map(|s| {
                let cur = self.servers[s].current;
                self.server_conns(s, end, cur);
                self.servers[s].area as f64 / span
            })
            .collect()
    }

    pub fn peak_conns(&self) -> u32 {
        self.servers.iter().map(|s| s.peak).max().unwrap_or(0)
    }
}

/// The storage tier at one sample time.
#[derive(Clone, Debug, Serialize, Default)]
pub struct StorageSample {
    pub time: SimTime,
    /// Redis (`None` without a `[cache]`).
    pub cache: Option<CacheSample>,
    /// Moves validated and not yet durable in the database: unflushed in
    /// Redis or in flush batches (or single writes) not yet acknowledged.
    pub moves_at_risk: u64,
    /// Database nodes in scenario order (primary first, then replicas),
    /// empty without a `[database]`.
    pub db_nodes: Vec<DbNodeSample>,
    /// Commits and rows committed on the primary in the interval.
    pub db_commits: u64,
    pub db_rows: u64,
}

/// Redis at one sample time.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CacheSample {
    pub up: bool,
    /// Ops waiting or in service on Redis's thread.
    pub backlog: u64,
    pub unflushed: u64,
    /// Busy fraction of the thread over the interval.
    pub util: f64,
}

/// One database node at one sample time.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct DbNodeSample {
    /// "primary", "replica" or "down".
    pub role: &'static str,
    /// Replicas: unapplied rows ÷ apply capacity (s).
    pub lag_s: Option<f64>,
    /// Replicas: commits received and not applied.
    pub apply_backlog: u64,
    /// Busy fraction of the primary's cores (primary), or of the applier
    /// threads (replica), over the interval.
    pub util: f64,
    /// Busy fraction of the read cores (replica) over the interval.
    pub read_util: f64,
}

/// The name of database node `i`: `db-primary` (node 0, the first primary)
/// or `db-replica-K` (node K+1, which started as replica K).
pub fn db_node_name(i: usize) -> String {
    if i == 0 {
        "db-primary".to_string()
    } else {
        format!("db-replica-{}", i - 1)
    }
}

/// max/mean of a load vector (1 = perfectly even).
pub fn imbalance(loads: &[f64]) -> f64 {
    let mean = loads.iter().sum::<f64>() / loads.len().max(1) as f64;
    if mean <= 0.0 {
        return 1.0;
    }
    loads.iter().cloned().fold(0.0, f64::max) / mean
}

/// Jain's fairness index (Σx)² / (n·Σx²): 1 = even, 1/n = all on one.
pub fn jain(loads: &[f64]) -> f64 {
    let s: f64 = loads.iter().sum();
    let s2: f64 = loads.iter().map(|x| x * x).sum();
    if s2 <= 0.0 {
        1.0
    } else {
        s * s / (loads.len() as f64 * s2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fairness_measures() {
        assert_eq!(imbalance(&[5.0, 5.0, 5.0]), 1.0);
        assert_eq!(jain(&[5.0, 5.0, 5.0]), 1.0);
        assert!((imbalance(&[0.0, 0.0, 3.0]) - 3.0).abs() < 1e-12);
        assert!((jain(&[0.0, 0.0, 3.0]) - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn area_ignores_warmup() {
        let mut r = Recorder::new(1, SimTime(100));
        r.server_conns(0, SimTime(50), 10);
        r.server_conns(0, SimTime(150), 20);
        // 10 connections from 100 to 150, then 20 until 200.
        let m = r.mean_conns_per_server(SimTime(200));
        assert!((m[0] - 15.0).abs() < 1e-9);
        assert_eq!(r.peak_conns(), 20);
    }
}
