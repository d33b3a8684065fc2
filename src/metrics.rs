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
        )
    }
}

fn new_hist() -> Histogram<u64> {
    // 1 µs .. 1 h, 3 significant digits.
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
