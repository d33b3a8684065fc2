//! Measurements of one replication: counters, HDR latency histograms, the
//! per-interval time series and the event timeline.
//!
//! The recorder only stores numbers; it does not format or write them
//! (that is `crate::report`). Counters and histograms ignore the warm-up;
//! the time series and timeline cover the whole run.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::scenario::{Fault, Scenario};
use crate::time::{NS_PER_US, SimTime};

pub mod stage;
pub mod summary;
pub mod tail;
pub mod windows;
pub use tail::{CONNECT_PARTS, MOVE_PARTS, Tail};
pub use windows::{Ending, FaultWindow, NOT_COUNTED, Phase, WindowStats, Windows};

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
    /// Distinct clients that started an attempt after the warm-up.
    pub clients_attempting: u64,
    pub connection_attempts: u64,
    pub connections_accepted: u64,
    pub connections_refused: u64,
    /// Distinct clients refused on an attempt started after the warm-up.
    pub clients_refused: u64,
    pub reconnects: u64,
    pub dropped: u64,
    pub gave_up: u64,
    /// Of `gave_up`, those whose last attempt was refused.
    pub gave_up_refused: u64,
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
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Serialize, Deserialize)]
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

/// The kinds of timeline events. `as_str` is the label written to
/// `events.csv` and shown on the charts; readers match on the enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Happening {
    Crash,
    Restarted,
    MarkedDown,
    MarkedUp,
    /// A server's process exits on purpose (a deploy or a scale-in).
    Stopped,
    Drain,
    VipLost,
    VipMoved,
    ScaleOut,
    ScaleIn,
    ServersUpdated,
    DeployDone,
    MovesAtRisk,
    SemiSyncOn,
    SemiSyncOff,
    NoPrimary,
    FailoverFailed,
    Promoted,
    /// A network slowdown starts on a tier's links.
    Slowdown,
    /// It is over.
    SlowdownOver,
}

impl Happening {
    pub const ALL: [Happening; 20] = [
        Happening::Crash,
        Happening::Restarted,
        Happening::MarkedDown,
        Happening::MarkedUp,
        Happening::Stopped,
        Happening::Drain,
        Happening::VipLost,
        Happening::VipMoved,
        Happening::ScaleOut,
        Happening::ScaleIn,
        Happening::ServersUpdated,
        Happening::DeployDone,
        Happening::MovesAtRisk,
        Happening::SemiSyncOn,
        Happening::SemiSyncOff,
        Happening::NoPrimary,
        Happening::FailoverFailed,
        Happening::Promoted,
        Happening::Slowdown,
        Happening::SlowdownOver,
    ];

    /// The label in `events.csv` and on the charts.
    pub const fn as_str(self) -> &'static str {
        match self {
            Happening::Crash => "crash",
            Happening::Restarted => "restarted",
            Happening::MarkedDown => "marked-down",
            Happening::MarkedUp => "marked-up",
            Happening::Stopped => "stopped",
            Happening::Drain => "drain",
            Happening::VipLost => "vip-lost",
            Happening::VipMoved => "vip-moved",
            Happening::ScaleOut => "scale-out",
            Happening::ScaleIn => "scale-in",
            Happening::ServersUpdated => "servers-updated",
            Happening::DeployDone => "deploy-done",
            Happening::MovesAtRisk => "moves-at-risk",
            Happening::SemiSyncOn => "semi-sync-on",
            Happening::SemiSyncOff => "semi-sync-off",
            Happening::NoPrimary => "no-primary",
            Happening::FailoverFailed => "failover-failed",
            Happening::Promoted => "promoted",
            Happening::Slowdown => "slowdown",
            Happening::SlowdownOver => "slowdown-over",
        }
    }

    /// The kind whose label is `s`.
    pub fn parse(s: &str) -> Option<Happening> {
        Happening::ALL.into_iter().find(|h| h.as_str() == s)
    }

    /// Faults (drawn as markers on every time chart).
    pub const fn is_marker(self) -> bool {
        matches!(
            self,
            Happening::Crash
                | Happening::Restarted
                | Happening::MarkedDown
                | Happening::MarkedUp
                | Happening::Stopped
                | Happening::Drain
                | Happening::VipMoved
                | Happening::ScaleOut
                | Happening::ScaleIn
                | Happening::ServersUpdated
                | Happening::Promoted
                | Happening::Slowdown
                | Happening::SlowdownOver
        )
    }
}

impl std::fmt::Display for Happening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Happening {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Happening {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Happening::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown timeline event `{s}`")))
    }
}

/// A fault or state change.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub time: SimTime,
    pub component: String,
    pub event: Happening,
    pub detail: String,
}

impl TimelineEvent {
    /// Faults (drawn as markers on every time chart).
    pub fn is_marker(&self) -> bool {
        self.event.is_marker()
    }
}

/// A latency histogram in µs: 1 µs .. 1 h, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid HDR bounds")
}

/// Latencies (deliveries, connects) recorded once, into one count array,
/// instead of twice (the interval's histogram and the window's): all
/// belong to window `slot` (`None`: the warm-up). They are added to both
/// histograms, exactly, at the next sample, at the end, or when a latency
/// of another window comes. A fan-out to a million spectators then costs
/// one record per recipient.
struct Staged {
    stage: stage::Stage,
    slot: Option<usize>,
    /// The last send time asked about and its window: a fan-out asks for
    /// the same one per recipient, and the window of a past time never
    /// changes.
    last_sent: SimTime,
    last_slot: Option<usize>,
}

/// Which histogram of a window a kind of delivery goes to.
type Pick = fn(&mut WindowStats) -> &mut Histogram<u64>;

impl Staged {
    /// Stages one delivery of a move sent at `sent`, first flushing the
    /// staged ones if they belong to another window. Returns whether it
    /// counts (it is not in the warm-up).
    #[inline]
    fn record(
        &mut self,
        windows: &Windows,
        sent: SimTime,
        us: u64,
        interval: &mut Histogram<u64>,
        stats: &mut [WindowStats],
        pick: Pick,
    ) -> bool {
        let slot = self.slot_of(windows, sent);
        self.record_in(slot, us, interval, stats, pick);
        slot.is_some()
    }

    /// The window of a move sent at `sent` (`None`: the warm-up).
    #[inline]
    fn slot_of(&mut self, windows: &Windows, sent: SimTime) -> Option<usize> {
        if sent != self.last_sent {
            self.last_sent = sent;
            self.last_slot = windows.slot_at(sent);
        }
        self.last_slot
    }

    /// Makes `slot` the stage's window, first flushing the staged values
    /// if they belong to another one.
    #[inline]
    fn enter(&mut self, slot: Option<usize>, interval: &mut Histogram<u64>, stats: &mut [WindowStats], pick: Pick) {
        if slot != self.slot {
            self.flush(interval, stats, pick);
            self.slot = slot;
        }
    }

    /// Stages one value of window `slot` (`None`: the interval only),
    /// first flushing the staged ones if they belong to another window.
    #[inline]
    fn record_in(
        &mut self,
        slot: Option<usize>,
        us: u64,
        interval: &mut Histogram<u64>,
        stats: &mut [WindowStats],
        pick: Pick,
    ) {
        self.enter(slot, interval, stats, pick);
        self.stage.record(us);
    }

    /// How many staged values belong to a window.
    fn in_window(&self) -> u64 {
        if self.slot.is_some() { self.stage.len() } else { 0 }
    }

    /// Adds the staged latencies to `interval` and to their window's
    /// histogram, and empties the stage.
    fn flush(&mut self, interval: &mut Histogram<u64>, stats: &mut [WindowStats], pick: Pick) {
        match self.slot {
            Some(slot) => self.stage.drain_into(&mut [interval, pick(&mut stats[slot])]),
            None => self.stage.drain_into(&mut [interval]),
        }
    }
}

impl Default for Staged {
    fn default() -> Self {
        Staged {
            stage: stage::Stage::default(),
            slot: None,
            last_sent: SimTime::MAX,
            last_slot: None,
        }
    }
}

/// The deliveries of one move (see [`Recorder::deliveries`]): each
/// recipient's latency is staged as it is walked; dropping it counts
/// the spectators'.
pub struct Deliveries<'a> {
    /// Into the spectators' stage, whose window is the move's.
    spectators: stage::Batch<'a>,
    /// The move was sent after the warm-up: its deliveries count.
    spectators_count: bool,
    sent: SimTime,
    windows: &'a Windows,
    staged_player: &'a mut Staged,
    interval_player: &'a mut Histogram<u64>,
    window_stats: &'a mut [WindowStats],
    move_tail: &'a mut Tail<4>,
    counters: &'a mut Counters,
}

impl Deliveries<'_> {
    /// Delivered to a spectator `latency_ns` after it was sent.
    #[inline(always)]
    pub fn to_spectator(&mut self, latency_ns: u64) {
        self.spectators.record((latency_ns / NS_PER_US).max(1));
    }

    /// Spectators this walk has reached so far.
    #[inline]
    pub fn spectators(&self) -> u64 {
        self.spectators.len()
    }

    /// Delivered to a player `latency_ns` after it was sent; `parts` (ns,
    /// [`MOVE_PARTS`]) say where the time went. Inlined: in a chess room
    /// every walk is one player's.
    #[inline(always)]
    pub fn to_player(&mut self, latency_ns: u64, parts: [u64; 4]) {
        let us = (latency_ns / NS_PER_US).max(1);
        let counted = self.staged_player.record(
            self.windows,
            self.sent,
            us,
            self.interval_player,
            self.window_stats,
            |w| &mut w.moves,
        );
        if counted {
            self.counters.deliveries_player += 1;
            let p = parts.map(|x| x / NS_PER_US);
            self.move_tail.record(p.iter().sum::<u64>().max(1), p);
        }
    }
}

impl Drop for Deliveries<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.spectators_count {
            self.counters.deliveries_spectator += self.spectators.len();
        }
    }
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
    pub counters: Counters,
    /// Steady state and fault windows, and what each counted (slot 0:
    /// steady state; slot 1 + k: scenario fault k).
    pub windows: Windows,
    pub window_stats: Vec<WindowStats>,
    /// What the windows judge, one per sample.
    readings: Vec<windows::Reading>,
    /// Connect and move latencies split into their parts (see [`tail`]).
    pub connect_tail: Tail<6>,
    pub move_tail: Tail<4>,
    /// Connect latency of the attempts started after the warm-up (filled
    /// from the windows by [`finish`](Self::finish)).
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
    /// Deliveries recorded once, not yet added to the interval and window
    /// histograms (see [`Staged`]).
    staged_player: Staged,
    staged_spectator: Staged,
    /// Connect latencies, staged like deliveries.
    staged_connect: Staged,
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
    /// `fault_starts`: each scenario fault's time, in scenario order.
    pub fn new(servers: usize, warmup: SimTime, fault_starts: &[SimTime]) -> Self {
        Recorder {
            counters: Counters::default(),
            windows: Windows::new(warmup, fault_starts),
            window_stats: vec![WindowStats::default(); 1 + fault_starts.len()],
            readings: Vec::new(),
            connect_tail: Tail::default(),
            move_tail: Tail::default(),
            connect: new_hist(),
            interval_connect: new_hist(),
            move_player: new_hist(),
            move_spectator: new_hist(),
            move_last_spectator: new_hist(),
            relay: new_hist(),
            interval_player: new_hist(),
            interval_spectator: new_hist(),
            staged_player: Staged::default(),
            staged_spectator: Staged::default(),
            staged_connect: Staged::default(),
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
        now >= self.windows.warmup()
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

    /// A refused attempt: in the current interval, and in the totals and
    /// window of its start (`phase`). `first` says whether it is the
    /// client's first refusal in that phase, `first_ever` its first
    /// counted refusal at all.
    pub fn refused(&mut self, phase: Phase, kind: RefuseKind, first: bool, first_ever: bool) {
        self.interval.connections_refused += 1;
        if phase == NOT_COUNTED {
            return;
        }
        let w = &mut self.window_stats[self.windows.slot(phase)];
        w.refused += 1;
        w.clients_refused += first as u64;
        let c = &mut self.counters;
        c.clients_refused += first_ever as u64;
        {
            c.connections_refused += 1;
            match kind {
                RefuseKind::NoServer => c.refused_no_server += 1,
                RefuseKind::QueueFull => c.refused_queue_full += 1,
                RefuseKind::QueueTimeout => c.refused_queue_timeout += 1,
                RefuseKind::ServerFailed => c.refused_server_failed += 1,
                RefuseKind::NodeFull => c.refused_node_full += 1,
                RefuseKind::ConnectTimeout => c.connect_timeouts += 1,
            }
        }
    }

    /// An attempt starts at `now` (`again`: a reconnection). Returns its
    /// phase, which decides where its outcome is counted.
    #[inline]
    pub fn attempt(&mut self, now: SimTime, again: bool) -> Phase {
        self.interval.connection_attempts += 1;
        self.interval.reconnects += again as u64;
        let phase = self.windows.phase(now);
        if phase != NOT_COUNTED {
            self.counters.connection_attempts += 1;
            self.counters.reconnects += again as u64;
            let w = &mut self.window_stats[self.windows.slot(phase)];
            w.attempts += 1;
            w.reconnects += again as u64;
        }
        phase
    }

    /// A client counted as attempting in `phase` (`first`: first time in
    /// that phase; `first_ever`: first counted attempt at all).
    #[inline]
    pub fn client_attempting(&mut self, phase: Phase, first: bool, first_ever: bool) {
        if phase != NOT_COUNTED {
            self.window_stats[self.windows.slot(phase)].clients += first as u64;
            self.counters.clients_attempting += first_ever as u64;
        }
    }

    /// A client stopped retrying; `phase` is that of its last attempt (or
    /// of the drop it noticed), `refused` whether that attempt was refused.
    pub fn gave_up(&mut self, phase: Phase, refused: bool) {
        self.interval.gave_up += 1;
        if phase != NOT_COUNTED {
            self.counters.gave_up += 1;
            self.counters.gave_up_refused += refused as u64;
            self.window_stats[self.windows.slot(phase)].gave_up += 1;
        }
    }

    /// `n` connections dropped at `now` (a crash or stop).
    pub fn dropped(&mut self, now: SimTime, n: u64) {
        self.interval.dropped += n;
        if let Some(slot) = self.windows.slot_at(now) {
            self.counters.dropped += n;
            self.window_stats[slot].dropped += n;
        }
    }

    /// A move sent at `sent`, and whether it was lost at once.
    #[inline]
    pub fn move_sent(&mut self, sent: SimTime, lost: bool) {
        self.interval.moves_sent += 1;
        self.interval.moves_lost += lost as u64;
        if let Some(slot) = self.windows.slot_at(sent) {
            self.counters.moves_sent += 1;
            self.counters.moves_lost += lost as u64;
            let w = &mut self.window_stats[slot];
            w.moves_sent += 1;
            w.moves_lost += lost as u64;
        }
    }

    /// A move sent at `sent` lost later (sender or its server gone).
    pub fn move_lost(&mut self, sent: SimTime) {
        self.interval.moves_lost += 1;
        if let Some(slot) = self.windows.slot_at(sent) {
            self.counters.moves_lost += 1;
            self.window_stats[slot].moves_lost += 1;
        }
    }

    /// Moves at risk when a component crashed at `now`: kept for the fault
    /// window that opens at `now`, if any.
    pub fn at_risk_at_fault(&mut self, now: SimTime, n: u64) {
        let Some(slot) = self.windows.slot_at(now) else { return };
        if slot > 0
            && self
                .windows
                .faults
                .iter()
                .any(|f| f.start == now && f.fault + 1 == slot)
        {
            let w = &mut self.window_stats[slot];
            w.moves_at_risk = Some(w.moves_at_risk.unwrap_or(0).max(n));
        }
    }

    /// An accepted connection with its connect latency (attempt start to
    /// the client hearing the upgrade); `phase` is its attempt's. `parts`
    /// (µs, [`CONNECT_PARTS`] but the network) say where the time went;
    /// the network gets the rest.
    #[inline]
    pub fn accepted(&mut self, phase: Phase, latency_ns: u64, parts: [u32; 5]) {
        let us = (latency_ns / NS_PER_US).max(1);
        self.interval.connections_accepted += 1;
        let slot = (phase != NOT_COUNTED).then(|| self.windows.slot(phase));
        self.staged_connect
            .record_in(slot, us, &mut self.interval_connect, &mut self.window_stats, |w| {
                &mut w.connect
            });
        if let Some(slot) = slot {
            let p = parts.map(u64::from);
            let network = us.saturating_sub(p.iter().sum());
            self.connect_tail.record(us, [network, p[0], p[1], p[2], p[3], p[4]]);
            self.window_stats[slot].accepted += 1;
            self.counters.connections_accepted += 1;
        }
    }

    /// The deliveries of one move sent at `sent` (a fan-out's walk), to
    /// record one by one ([`Deliveries`]). The spectators' window is
    /// resolved here once, not per recipient.
    #[inline]
    pub fn deliveries(&mut self, sent: SimTime) -> Deliveries<'_> {
        let st = &mut self.staged_spectator;
        let slot = st.slot_of(&self.windows, sent);
        st.enter(slot, &mut self.interval_spectator, &mut self.window_stats, |w| {
            &mut w.spectators
        });
        Deliveries {
            spectators: self.staged_spectator.stage.batch(),
            spectators_count: slot.is_some(),
            sent,
            windows: &self.windows,
            staged_player: &mut self.staged_player,
            interval_player: &mut self.interval_player,
            window_stats: &mut self.window_stats,
            move_tail: &mut self.move_tail,
            counters: &mut self.counters,
        }
    }

    /// Adds the staged connect latencies and deliveries to the interval
    /// histograms and to their windows'.
    fn flush_staged(&mut self) {
        self.staged_connect
            .flush(&mut self.interval_connect, &mut self.window_stats, |w| &mut w.connect);
        self.staged_player
            .flush(&mut self.interval_player, &mut self.window_stats, |w| &mut w.moves);
        self.staged_spectator
            .flush(&mut self.interval_spectator, &mut self.window_stats, |w| {
                &mut w.spectators
            });
    }

    /// Player and spectator deliveries the windows hold, staged ones
    /// included (for the checks, which may look between samples).
    pub fn window_deliveries(&self) -> (u64, u64) {
        let sum = |f: fn(&WindowStats) -> u64| self.window_stats.iter().map(f).sum::<u64>();
        (
            sum(|s| s.moves.len()) + self.staged_player.in_window(),
            sum(|s| s.spectators.len()) + self.staged_spectator.in_window(),
        )
    }

    /// Connect latencies the windows hold, staged ones included.
    pub fn window_connects(&self) -> u64 {
        self.window_stats.iter().map(|s| s.connect.len()).sum::<u64>() + self.staged_connect.in_window()
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
        let w = self.windows.warmup();
        let sc = &mut self.servers[s];
        if now > w {
            let from = sc.last_change.max(w);
            sc.area += sc.current as u128 * now.0.saturating_sub(from.0) as u128;
            sc.peak = sc.peak.max(n);
        }
        sc.current = n;
        sc.last_change = now;
    }

    pub fn event(&mut self, now: SimTime, component: String, event: Happening, detail: String) {
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
        self.flush_staged();
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
        let reading = windows::Reading {
            time: now,
            connections,
            connect_ms_p99: pct(0.99),
        };
        self.readings.push(reading);
        self.interval = Counters::default();
        // A reset clears every bucket (360 KB each): only where something was recorded.
        for h in [
            &mut self.interval_connect,
            &mut self.interval_player,
            &mut self.interval_spectator,
        ] {
            if !h.is_empty() {
                h.reset();
            }
        }
    }

    /// Judges the open fault window at the sample just taken (see
    /// [`windows`]); call after [`sample`](Self::sample) and the storage
    /// sample of the same time.
    pub fn judge_windows(&mut self, now: SimTime, faults: &[Fault]) {
        let Some((reading, history)) = self.readings.split_last() else {
            return;
        };
        let restored = RestoredFromRecord {
            faults,
            samples: &self.samples,
            storage: &self.storage_samples,
            timeline: &self.timeline,
        };
        self.windows.judge(now, *reading, history, &restored);
    }

    /// Ends the run: the run-level connect and move histograms are the
    /// union of the windows'.
    pub fn finish(&mut self) {
        self.flush_staged();
        for w in &self.window_stats {
            self.connect.add(&w.connect).expect("same bounds");
            self.move_player.add(&w.moves).expect("same bounds");
            self.move_spectator.add(&w.spectators).expect("same bounds");
        }
    }

    /// Time-averaged connections per server after the warm-up, closing
    /// the integrals at `end`.
    /// Closes every server's connection integral at `end` (call once, at
    /// the end of the run, before [`Recorder::mean_conns_per_server`]).
    pub fn close_server_conns(&mut self, end: SimTime) {
        for s in 0..self.servers.len() {
            let cur = self.servers[s].current;
            self.server_conns(s, end, cur);
        }
    }

    /// Mean connections per server after the warm-up, up to `end` (the
    /// integrals closed by [`Recorder::close_server_conns`]).
    pub fn mean_conns_per_server(&self, end: SimTime) -> Vec<f64> {
        let span = end.0.saturating_sub(self.windows.warmup().0).max(1) as f64;
        self.servers.iter().map(|s| s.area as f64 / span).collect()
    }

    pub fn peak_conns(&self) -> u32 {
        self.servers.iter().map(|s| s.peak).max().unwrap_or(0)
    }
}

/// Whether a fault's component is back, read off what the run recorded:
/// a crashed server running and UP again (or, with no restart, marked
/// DOWN), a balancer node's VIP moved (or the node back), the servers of a
/// scale-out in the balancers' lists, a scale-in's servers stopped, a
/// deploy done, Redis up again, a database primary promoted (or back), a
/// replica back. A fault with nothing to wait for (no restart) is back at
/// once.
struct RestoredFromRecord<'a> {
    faults: &'a [Fault],
    samples: &'a [Sample],
    storage: &'a [StorageSample],
    timeline: &'a [TimelineEvent],
}

impl windows::Restored for RestoredFromRecord<'_> {
    fn restored(&self, fault: usize, since: SimTime, _now: SimTime) -> bool {
        use crate::scenario::DbTarget;
        let timeline = self.timeline;
        let after = |event: Happening| timeline.iter().filter(move |e| e.time >= since && e.event == event);
        let last = self.samples.last();
        let storage = self.storage.last();
        match &self.faults[fault] {
            Fault::Crash {
                server, restart_after, ..
            } => last.and_then(|s| s.servers.get(*server as usize)).is_some_and(|v| {
                if restart_after.is_some() {
                    v.process_up && v.lb_up
                } else {
                    !v.lb_up
                }
            }),
            Fault::BalancerCrash {
                node, restart_after, ..
            } => {
                after(Happening::VipMoved).next().is_some()
                    || (restart_after.is_some() && last.and_then(|s| s.nodes.get(*node as usize)).is_some_and(|n| n.up))
            }
            Fault::ScaleOut { boot, .. } => after(Happening::ServersUpdated).any(|e| e.time >= since + *boot),
            Fault::ScaleIn { count, .. } => after(Happening::Stopped).count() >= *count as usize,
            Fault::RollingRestart { .. } => after(Happening::DeployDone).next().is_some(),
            Fault::CacheCrash { restart_after, .. } => {
                restart_after.is_none() || storage.and_then(|s| s.cache).is_some_and(|c| c.up)
            }
            Fault::DbCrash {
                target, restart_after, ..
            } => match target {
                DbTarget::Primary => {
                    after(Happening::Promoted).next().is_some()
                        || storage.is_some_and(|s| s.db_nodes.iter().any(|n| n.role == "primary"))
                }
                DbTarget::Replica(k) => {
                    restart_after.is_none()
                        || storage
                            .and_then(|s| s.db_nodes.get(*k as usize + 1))
                            .is_some_and(|n| n.role != "down")
                }
            },
            // Requests are routed around a dead nginx or app server at
            // once: back at once without a restart, else when restarted.
            Fault::NginxCrash {
                node, restart_after, ..
            } => restart_after.is_none() || after(Happening::Restarted).any(|e| e.component == format!("nginx-{node}")),
            Fault::AppCrash {
                server, restart_after, ..
            } => restart_after.is_none() || after(Happening::Restarted).any(|e| e.component == format!("app-{server}")),
            // The links are back when the slowdown's window is over.
            Fault::Slowdown { tier, .. } => after(Happening::SlowdownOver).any(|e| e.component == tier.component()),
        }
    }
}

/// Each fault's time, in scenario order.
pub fn fault_starts(sc: &Scenario) -> Vec<SimTime> {
    sc.faults.iter().map(|f| SimTime::ZERO + f.at()).collect()
}

/// The storage tier at one sample time.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
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
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
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

/// A [`DbNodeSample`] as read back (its role interned).
#[derive(Deserialize)]
struct DbNodeSampleOwned {
    role: String,
    lag_s: Option<f64>,
    apply_backlog: u64,
    util: f64,
    read_util: f64,
}

impl<'de> Deserialize<'de> for DbNodeSample {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DbNodeSample, D::Error> {
        let o = DbNodeSampleOwned::deserialize(d)?;
        Ok(DbNodeSample {
            role: crate::names::intern(&o.role),
            lag_s: o.lag_s,
            apply_backlog: o.apply_backlog,
            util: o.util,
            read_util: o.read_util,
        })
    }
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
        let mut r = Recorder::new(1, SimTime(100), &[]);
        r.server_conns(0, SimTime(50), 10);
        r.server_conns(0, SimTime(150), 20);
        // 10 connections from 100 to 150, then 20 until 200.
        r.close_server_conns(SimTime(200));
        let m = r.mean_conns_per_server(SimTime(200));
        assert!((m[0] - 15.0).abs() < 1e-9);
        assert_eq!(r.peak_conns(), 20);
    }
}
