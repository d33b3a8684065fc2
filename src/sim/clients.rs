//! The clients tier: the client arena, populations and their arrivals,
//! each client's state machine (connecting, queued, connected, orphaned,
//! retrying, left, gave up) and its reconnect policy.

use super::{Component, Ctx, Tier};
use crate::metrics::summary::{MetricSink, clients_refused_ratio, ms, refused_ratio, split};
use crate::metrics_defs::MetricKey as K;
use crate::model::network::{Link, Packet};
use rand::RngExt;
use rand_distr::{Distribution, Exp, Zipf};

use super::cluster::NO_NODE;
use super::{BACKEND, Event, NONE, World};
use crate::engine::Scheduler;
use crate::metrics::{NOT_COUNTED, Phase, RefuseKind};
use crate::model::backoff;
use crate::model::balancer::Refusal;
use crate::rng::{self, SimRng, streams};
use crate::scenario::{Arrival, Role, Scenario, Watch};
use crate::time::{SimDuration, SimTime};

/// The clients tier's events (one variant of [`Event`]). Every event about
/// a client carries the generation it was scheduled under.
#[derive(Clone, Copy, Debug)]
pub enum ClientEvent {
    Arrival {
        pop: u16,
    },
    /// A client starts a new connection attempt.
    Attempt {
        client: u32,
        generation: u32,
    },
    /// The attempt reaches the balancer.
    AtBalancer {
        client: u32,
        generation: u32,
    },
    /// The client's upgrade request follows its handshake to the node.
    TlsRtt {
        client: u32,
        generation: u32,
    },
    /// The client gives up an attempt nobody answered in time.
    ConnectTimeout {
        client: u32,
        generation: u32,
    },
    /// The balancer learns that connecting to the client's server
    /// (`Client::server`, set with the generation) failed.
    BackendFailed {
        client: u32,
        generation: u32,
    },
    /// HAProxy's retry turn-around is over.
    RetryBackend {
        client: u32,
        generation: u32,
    },
    QueueTimeout {
        client: u32,
        generation: u32,
    },
    SessionEnd {
        client: u32,
        generation: u32,
    },
    /// A client notices its connection is dead.
    DropNoticed {
        client: u32,
        generation: u32,
    },
}

impl ClientEvent {
    /// The client the event is about (all but `Arrival`).
    #[inline]
    pub fn client(&self) -> Option<u32> {
        match *self {
            ClientEvent::Arrival { .. } => None,
            ClientEvent::Attempt { client, .. }
            | ClientEvent::AtBalancer { client, .. }
            | ClientEvent::TlsRtt { client, .. }
            | ClientEvent::ConnectTimeout { client, .. }
            | ClientEvent::BackendFailed { client, .. }
            | ClientEvent::RetryBackend { client, .. }
            | ClientEvent::QueueTimeout { client, .. }
            | ClientEvent::SessionEnd { client, .. }
            | ClientEvent::DropNoticed { client, .. } => Some(client),
        }
    }
}

/// The clients tier: every client in the system, and the populations'
/// arrival processes.
///
/// Memory follows the clients in the system, not the arrivals: the slot
/// of a client that left or gave up and belongs to no room is handed to
/// the next arrival (its generation keeps counting, so the old client's
/// pending events stay stale). Room members keep their slot: their room
/// still names them.
pub struct Clients {
    /// Client slots; a freed slot keeps its last client's final state
    /// until it is handed out again.
    pub list: Vec<Client>,
    /// Freed slots, handed out last-freed first.
    pub(super) free: Vec<u32>,
    /// Final states of the clients whose slots were handed out again.
    pub(super) retired: [u64; N_STATES],
    /// Clients that ever arrived.
    pub created: u64,
    pub(super) pops: Vec<PopState>,
    /// Clients per state (`ClientState as usize`), retired ones included.
    pub state_counts: [u64; N_STATES],
    pub(super) rng_arrivals: SimRng,
    pub(super) rng: SimRng,
}

impl Clients {
    pub fn new(sc: &Scenario, replication: u32) -> Self {
        let r = replication as u64;
        Clients {
            list: Vec::new(),
            pops: sc
                .populations
                .iter()
                .map(|p| PopState {
                    generated: 0,
                    matched: 0,
                    zipf: match p.watch {
                        Watch::Zipf { rooms, exponent } => Zipf::new(rooms as f64, exponent).ok(),
                        Watch::Featured => None,
                    },
                })
                .collect(),
            state_counts: [0; N_STATES],
            free: Vec::new(),
            retired: [0; N_STATES],
            created: 0,
            rng_arrivals: rng::stream(sc.seed, r, streams::ARRIVALS),
            rng: rng::stream(sc.seed, r, streams::CLIENTS),
        }
    }

    #[inline]
    pub fn live(&self, c: u32, generation: u32) -> bool {
        self.list[c as usize].generation == generation
    }
}

/// What a client is doing. Every arrived client is in exactly one state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ClientState {
    /// On its way to the balancer, to a server, or in a server's accept queue.
    Connecting = 0,
    /// Waiting in a balancer queue.
    Queued = 1,
    Connected = 2,
    /// Its server died; the client has not noticed yet.
    Orphaned = 3,
    /// Waiting for its reconnect delay.
    Retrying = 4,
    /// Session over (normal departure).
    Left = 5,
    /// Refused or dropped, and its policy gave up.
    GaveUp = 6,
}

pub const N_STATES: usize = 7;
pub const STATE_NAMES: [&str; N_STATES] = [
    "connecting",
    "queued",
    "connected",
    "orphaned",
    "retrying",
    "left",
    "gave-up",
];

/// One client.
///
/// Laid out in declaration order (`repr(C)`), the fields a move reads
/// first: a move whose room cannot place its sender (a player not
/// connected, or past the first two: `Room::member_player`) reads only
/// `generation`, `server` and `state`, which share the first 16 bytes. A
/// slot is 144 bytes and the arena 16-byte aligned (glibc's blocks, or
/// page-aligned mappings), so a slot starts 0, 16, 32 or 48 bytes into a
/// cache line and those 16 bytes are always in one line. A connected
/// chess player's move reads no client at all, and the engine no longer
/// prefetches one for a move. A misaligned arena would cost a miss, never
/// a wrong result.
#[derive(Clone, Debug)]
#[repr(C)]
pub struct Client {
    pub generation: u32,
    pub server: u32,
    /// Index in its server's connection list while connected.
    pub slot: u32,
    pub state: ClientState,
    /// Holds one of the balancer's slots on `server`.
    pub holds_slot: bool,
    pub pop: u16,
    pub rtt: SimDuration,
    pub session: SimDuration,
    pub source: u64,
    pub room: u64,
    pub attempt_start: SimTime,
    /// When the session ends; `SimTime::MAX` until first connected.
    pub depart_at: SimTime,
    pub prev_backoff: SimDuration,
    pub mark: SimTime,
    /// Which arrival this is (0-based, over the run): slots are reused,
    /// arrivals are not.
    pub arrival: u64,
    /// Consecutive failed attempts (resets on success).
    pub failures: u32,
    /// Failed connections to a server within this attempt (HAProxy retries).
    pub backend_tries: u32,
    /// Which queue it waits in (a server id or `BACKEND`).
    pub queue: u32,
    /// Index in `World::rooms`, or `NONE`.
    pub room_idx: u32,
    /// Group and slot in the room while connected.
    pub group: u32,
    pub gslot: u32,
    /// Where the current attempt's time went (µs; see `Part`), and when
    /// the part under way (`mark`) began.
    pub parts: [u32; 5],
    /// The phase (steady stretch or fault window) of the current attempt's
    /// start, or of the drop it is noticing; where its outcome is counted.
    pub attempt_phase: Phase,
    /// The last phase it was counted attempting in, and refused in
    /// (`NOT_COUNTED` until the first counted attempt, refusal).
    pub seen_phase: Phase,
    pub refused_phase: Phase,
    /// The balancer VIP it resolved (DNS, cached for the client's life).
    pub vip: u8,
    /// The balancer node of the current attempt or connection (`NO_NODE`
    /// before it reaches one).
    pub node: u8,
    /// The node that holds its TLS session (for resumption).
    pub tls_node: u8,
    /// SYNs sent in this attempt to an unowned VIP.
    pub syn_tries: u8,
    pub ever_attempted: bool,
    /// The pending handshake is a resumption.
    pub tls_resumed: bool,
}

// The layout above: 144 bytes (a multiple of 16), and what a move reads
// of a client within the first 16.
const _: () = assert!(std::mem::size_of::<Client>() == 144);
const _: () = assert!(std::mem::offset_of!(Client, state) < 16);

/// The parts of a connect attempt's time that are not the network
/// (`metrics::CONNECT_PARTS` after its first).
#[derive(Clone, Copy, Debug)]
pub enum Part {
    /// Waiting in a balancer queue for a slot.
    Queue,
    /// From forwarding to a server that failed to the HAProxy retry.
    Retries,
    /// The handshake queue and CPU of the balancer node.
    Tls,
    /// The accept queue and CPU of the socket server (and a room's state).
    Accept,
    /// SYN retransmissions to a VIP nobody answers.
    Reconnect,
}

impl Client {
    /// Adds the time since `mark` to `part`.
    #[inline]
    pub fn add_part(&mut self, part: Part, now: SimTime) {
        self.add_part_us(part, now.since(self.mark));
    }

    #[inline]
    pub fn add_part_us(&mut self, part: Part, d: SimDuration) {
        let us = (d.0 / crate::time::NS_PER_US).min(u32::MAX as u64) as u32;
        let p = &mut self.parts[part as usize];
        *p = p.saturating_add(us);
    }
}

pub(super) struct PopState {
    generated: u64,
    /// Players matched so far (room = matched / room_size).
    matched: u64,
    zipf: Option<Zipf<f64>>,
}

/// Most client slots a replication may hold at once (a bound on the arena;
/// slots of clients that left are reused).
pub const MAX_CLIENTS: usize = 100_000_000;

impl World<'_> {
    pub(super) fn next_arrival_time(&mut self, pop: usize, now: SimTime) -> Option<SimTime> {
        let ps = &self.clients.pops[pop];
        let k = ps.generated;
        let t = match &self.ctx.sc.populations[pop].arrival {
            Arrival::Poisson {
                rate,
                start,
                stop,
                max_clients,
            } => {
                if max_clients.is_some_and(|m| k >= m) {
                    return None;
                }
                let from = now.max(SimTime::ZERO + *start);
                let gap = Exp::new(rate.per_s).ok()?.sample(&mut self.clients.rng_arrivals);
                let t = from + SimDuration::from_secs_f64(gap);
                if stop.is_some_and(|st| t > SimTime::ZERO + st) {
                    return None;
                }
                t
            }
            Arrival::Ramp { target, over, start } => {
                if k >= *target {
                    return None;
                }
                let u: f64 = self.clients.rng_arrivals.random();
                SimTime::ZERO
                    + *start
                    + SimDuration::from_secs_f64(over.as_secs_f64() * (k as f64 + u) / *target as f64)
            }
            Arrival::Trace { times, .. } => SimTime::ZERO + *times.get(k as usize)?,
            Arrival::HaproxyLog { replay, .. } => SimTime::ZERO + *replay.times.get(k as usize)?,
            Arrival::Step { count, at, over } => {
                if k >= *count {
                    return None;
                }
                let u: f64 = self.clients.rng_arrivals.random();
                SimTime::ZERO + *at + SimDuration::from_secs_f64(over.as_secs_f64() * (k as f64 + u) / *count as f64)
            }
        };
        (t <= self.ctx.end).then_some(t)
    }

    #[inline]
    pub(super) fn set_state(&mut self, c: u32, st: ClientState) {
        let cl = &mut self.clients.list[c as usize];
        self.clients.state_counts[cl.state as usize] -= 1;
        self.clients.state_counts[st as usize] += 1;
        cl.state = st;
        cl.generation = cl.generation.wrapping_add(1);
        if cl.group != NONE {
            // A member player's generation is mirrored in its room.
            self.game.rooms[cl.room_idx as usize].mirror_generation(c, cl.generation);
        }
        if matches!(st, ClientState::Left | ClientState::GaveUp) {
            if cl.room_idx != NONE {
                let now = self.ctx.now;
                super::seams::client_gone(&self.clients, &mut self.game, &mut self.ctx, c, now);
            } else {
                // Handed out at a later arrival, after this event is done
                // with it.
                self.clients.free.push(c);
            }
        }
    }

    #[inline]
    pub(super) fn live(&self, c: u32, generation: u32) -> bool {
        self.clients.list[c as usize].generation == generation
    }

    pub(super) fn arrive(&mut self, pop: usize, s: &mut Scheduler<Event>) {
        let now = s.now();
        let p = &self.ctx.sc.populations[pop];
        if self.clients.free.is_empty() && self.clients.list.len() >= MAX_CLIENTS {
            return;
        }
        if p.role == Role::Web {
            // HTTP sessions, not WebSocket connections: `sim::web`.
            self.clients.pops[pop].generated += 1;
            super::seams::web_session_arrives(
                &mut self.clients,
                &mut self.cluster,
                &mut self.web,
                &mut self.ctx,
                pop,
                s,
            );
            if let Some(t) = self.next_arrival_time(pop, now) {
                s.at(t, Event::Clients(ClientEvent::Arrival { pop: pop as u16 }));
            }
            return;
        }
        let arrival = self.clients.created;
        self.clients.created += 1;
        let rtt = p.rtt.sample(&mut self.clients.rng);
        let mut session = p.session.sample(&mut self.clients.rng);
        let mut source = match p.source_ips {
            Some(n) => ((pop as u64) << 32) | self.clients.rng.random_range(0..n) as u64,
            None => (1u64 << 48) | arrival,
        };
        let ps = &mut self.clients.pops[pop];
        if let Arrival::HaproxyLog { replay, .. } = &p.arrival {
            // A replayed line's own session length and client address.
            let k = ps.generated as usize;
            if let Some(&s) = replay.sessions.get(k) {
                session = s;
            }
            if let Some(&a) = replay.sources.get(k) {
                source = ((pop as u64) << 32) | a as u64;
            }
        }
        let room = match p.role {
            Role::Player | Role::Web => {
                let r = crate::model::div_fast(ps.matched, p.room_size as u64);
                ps.matched += 1;
                ((pop as u64) << 32) | r
            }
            // Spectators watch rooms of the first player population.
            Role::Spectator => {
                let host = self
                    .ctx
                    .sc
                    .populations
                    .iter()
                    .position(|q| q.role == Role::Player)
                    .unwrap_or(0) as u64;
                let rank = match &ps.zipf {
                    Some(z) => z.sample(&mut self.clients.rng) as u64 - 1,
                    None => 0,
                };
                (host << 32) | rank
            }
        };
        ps.generated += 1;
        let (id, generation) = match self.clients.free.pop() {
            Some(id) => {
                let old = &self.clients.list[id as usize];
                self.clients.retired[old.state as usize] += 1;
                (id, old.generation.wrapping_add(1))
            }
            None => (self.clients.list.len() as u32, 0),
        };
        let room_idx = if self.ctx.sc.game.is_some() {
            self.game.room_for(self.ctx.sc, id, room, p.role)
        } else {
            NONE
        };
        let client = Client {
            arrival,
            generation,
            state: ClientState::Connecting,
            pop: pop as u16,
            holds_slot: false,
            failures: 0,
            backend_tries: 0,
            server: NONE,
            slot: NONE,
            queue: NONE,
            rtt,
            session,
            source,
            room,
            attempt_start: now,
            depart_at: SimTime::MAX,
            prev_backoff: SimDuration::ZERO,
            ever_attempted: false,
            attempt_phase: NOT_COUNTED,
            seen_phase: NOT_COUNTED,
            refused_phase: NOT_COUNTED,
            parts: [0; 5],
            mark: now,
            room_idx,
            group: NONE,
            gslot: NONE,
            vip: 0,
            node: NO_NODE,
            tls_node: NO_NODE,
            syn_tries: 0,
            tls_resumed: false,
        };
        if id as usize == self.clients.list.len() {
            self.clients.list.push(client);
        } else {
            self.clients.list[id as usize] = client;
        }
        let vip = self.cluster.pick_vip();
        self.clients.list[id as usize].vip = vip;
        self.clients.state_counts[ClientState::Connecting as usize] += 1;
        self.ctx.rec.count(now, |c| c.clients_arrived += 1);
        self.start_attempt(id, s);
        if let Some(t) = self.next_arrival_time(pop, now) {
            s.at(t, Event::Clients(ClientEvent::Arrival { pop: pop as u16 }));
        }
    }

    pub(super) fn start_attempt(&mut self, c: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let again = self.clients.list[c as usize].ever_attempted;
        self.set_state(c, ClientState::Connecting);
        let cl = &mut self.clients.list[c as usize];
        cl.ever_attempted = true;
        cl.attempt_start = now;
        cl.parts = [0; 5];
        cl.backend_tries = 0;
        cl.node = NO_NODE;
        cl.syn_tries = 0;
        let (generation, half) = (cl.generation, SimDuration(cl.rtt.0 / 2));
        let phase = self.ctx.rec.attempt(now, again);
        let first = phase != cl.seen_phase;
        let first_ever = cl.seen_phase == NOT_COUNTED && phase != NOT_COUNTED;
        cl.attempt_phase = phase;
        if phase != NOT_COUNTED {
            cl.seen_phase = phase;
        }
        self.ctx.rec.client_attempting(phase, first, first_ever);
        let half = self.ctx.net.delay(Link::Clients, now, half, Packet::Syn);
        s.after(half, Event::Clients(ClientEvent::AtBalancer { client: c, generation }));
    }

    pub(super) fn refuse(&mut self, c: u32, r: Refusal, s: &mut Scheduler<Event>) {
        let kind = match r {
            Refusal::NoServer => RefuseKind::NoServer,
            Refusal::QueueFull => RefuseKind::QueueFull,
            Refusal::QueueTimeout => RefuseKind::QueueTimeout,
            Refusal::ServerFailed => RefuseKind::ServerFailed,
            Refusal::NodeFull => RefuseKind::NodeFull,
            Refusal::ConnectTimeout => RefuseKind::ConnectTimeout,
        };
        let cl = &mut self.clients.list[c as usize];
        let phase = cl.attempt_phase;
        let counted = phase != NOT_COUNTED;
        let first = counted && cl.refused_phase != phase;
        let first_ever = counted && cl.refused_phase == NOT_COUNTED;
        if counted {
            cl.refused_phase = phase;
        }
        self.ctx.rec.refused(phase, kind, first, first_ever);
        // The 503 travels back to the client, which then applies its policy.
        let half = SimDuration(self.clients.list[c as usize].rtt.0 / 2);
        let half = self.ctx.net.delay(Link::Clients, s.now(), half, Packet::Data);
        self.retry_or_give_up(c, half, true, s);
    }

    /// After a refusal (`refused`) or a noticed drop: wait and try again,
    /// or give up.
    pub(super) fn retry_or_give_up(&mut self, c: u32, delay0: SimDuration, refused: bool, s: &mut Scheduler<Event>) {
        let now = s.now();
        let pop = self.clients.list[c as usize].pop as usize;
        let (failures, prev, depart) = {
            let cl = &self.clients.list[c as usize];
            (cl.failures, cl.prev_backoff, cl.depart_at)
        };
        if now + delay0 >= depart {
            self.set_state(c, ClientState::Left);
            return;
        }
        match backoff::next_delay(
            &self.ctx.sc.populations[pop].reconnect,
            failures,
            prev,
            &mut self.clients.rng,
        ) {
            Some(d) => {
                self.set_state(c, ClientState::Retrying);
                let cl = &mut self.clients.list[c as usize];
                cl.failures += 1;
                cl.prev_backoff = d;
                let generation = cl.generation;
                s.after(
                    delay0 + d,
                    Event::Clients(ClientEvent::Attempt { client: c, generation }),
                );
            }
            None => {
                self.set_state(c, ClientState::GaveUp);
                let phase = self.clients.list[c as usize].attempt_phase;
                self.ctx.rec.gave_up(phase, refused);
            }
        }
    }
}

impl World<'_> {
    /// Handles one of this tier's events.
    #[inline(always)]
    pub(super) fn client_event(&mut self, ev: ClientEvent, s: &mut Scheduler<Event>) {
        let now = s.now();
        match ev {
            ClientEvent::Arrival { pop } => self.arrive(pop as usize, s),
            ClientEvent::Attempt { client, generation } => {
                if self.live(client, generation) {
                    if now >= self.clients.list[client as usize].depart_at {
                        self.set_state(client, ClientState::Left);
                    } else {
                        self.start_attempt(client, s);
                    }
                }
            }
            ClientEvent::AtBalancer { client, generation } => {
                if self.live(client, generation) {
                    self.at_vip(client, s);
                }
            }
            ClientEvent::TlsRtt { client, generation } => {
                if self.live(client, generation) {
                    self.route(client, None, s);
                }
            }
            ClientEvent::ConnectTimeout { client, generation } => {
                let cl = &self.clients.list[client as usize];
                if cl.generation == generation && cl.state == ClientState::Connecting && !cl.holds_slot {
                    self.refuse(client, Refusal::ConnectTimeout, s);
                }
            }
            ClientEvent::BackendFailed { client, generation } => {
                if !self.live(client, generation) {
                    return;
                }
                if let Some((node, srv)) = self.release_slot(client) {
                    self.drain_queue(node, srv, s);
                }
                let cl = &mut self.clients.list[client as usize];
                cl.backend_tries += 1;
                if cl.backend_tries <= self.ctx.sc.balancer.retries {
                    let turn = self.ctx.sc.balancer.timeout_connect.min(SimDuration::from_secs(1));
                    s.after(turn, Event::Clients(ClientEvent::RetryBackend { client, generation }));
                } else {
                    self.refuse(client, Refusal::ServerFailed, s);
                }
            }
            ClientEvent::RetryBackend { client, generation } => {
                if !self.live(client, generation) {
                    return;
                }
                // The server it was forwarded to (set with this generation).
                let server = self.clients.list[client as usize].server;
                self.clients.list[client as usize].add_part(Part::Retries, now);
                let b = &self.ctx.sc.balancer;
                if b.redispatch && self.clients.list[client as usize].backend_tries == b.retries {
                    self.route(client, Some(server), s);
                } else {
                    // The slot was released on failure and may have gone to a
                    // waiter: the retry must queue like any request beyond maxconn.
                    let node = self.clients.list[client as usize].node as usize;
                    let choice = self.cluster.nodes[node].lb.admit_to(server);
                    self.apply_choice(client, choice, s);
                }
            }
            ClientEvent::QueueTimeout { client, generation } => {
                if self.live(client, generation) && self.clients.list[client as usize].state == ClientState::Queued {
                    let cl = &self.clients.list[client as usize];
                    let (q, node) = (cl.queue, cl.node as usize);
                    self.cluster.nodes[node].lb.cancel_waiter((q != BACKEND).then_some(q));
                    self.refuse(client, Refusal::QueueTimeout, s);
                }
            }
            ClientEvent::SessionEnd { client, generation } => {
                if self.live(client, generation) {
                    self.detach(client, now);
                    self.set_state(client, ClientState::Left);
                    if let Some((node, srv)) = self.release_slot(client) {
                        self.drain_queue(node, srv, s);
                    }
                }
            }
            ClientEvent::DropNoticed { client, generation } => {
                if self.live(client, generation) {
                    if let Some((node, srv)) = self.release_slot(client) {
                        self.drain_queue(node, srv, s);
                    }
                    self.retry_or_give_up(client, SimDuration::ZERO, false, s);
                }
            }
        }
    }
}

impl Tier for Clients {
    fn name(&self) -> &'static str {
        "clients"
    }

    /// Every client that arrived is in exactly one state, as counted.
    fn check(&self, ctx: &Ctx) -> Vec<String> {
        let mut bad = Vec::new();
        let mut states = self.retired;
        for cl in &self.list {
            states[cl.state as usize] += 1;
        }
        if states != self.state_counts {
            bad.push(format!(
                "state counts drifted: counted {states:?}, tracked {:?}",
                self.state_counts
            ));
        }
        // The tracked counts add up to the arrivals the populations made
        // (web sessions are not clients).
        let arrived: u64 = self
            .pops
            .iter()
            .zip(&ctx.sc.populations)
            .filter(|(_, p)| p.role != Role::Web)
            .map(|(ps, _)| ps.generated)
            .sum();
        let total: u64 = self.state_counts.iter().sum();
        if total != arrived {
            bad.push(format!("{arrived} clients arrived but {total} are in a state"));
        }
        bad
    }

    fn metrics(&self, ctx: &Ctx, out: &mut MetricSink) {
        let sc = ctx.sc;
        let rec = &ctx.rec;
        let c = rec.counters;
        let h = &rec.connect;
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
        let (steady, faults) = split(&rec.window_stats);
        let has_faults = !sc.faults.is_empty();
        let if_faults = |v: f64| if has_faults { v } else { f64::NAN };
        let p99_us = |h: &hdrhistogram::Histogram<u64>| h.value_at_quantile(0.99);
        let connect_shares = rec.connect_tail.shares_above(p99_us(h));
        out.set(K::ClientsArrived, c.clients_arrived as f64);
        out.set(K::ClientsAttempting, c.clients_attempting as f64);
        out.set(K::ConnectionAttempts, c.connection_attempts as f64);
        out.set(K::ConnectionsAccepted, c.connections_accepted as f64);
        out.set(K::ConnectionsRefused, c.connections_refused as f64);
        out.set(K::RefusedRatio, ratio);
        out.set(K::ClientsRefused, c.clients_refused as f64);
        out.set(
            K::ClientsRefusedRatio,
            if c.clients_attempting == 0 {
                0.0
            } else {
                c.clients_refused as f64 / c.clients_attempting as f64
            },
        );
        out.set(K::Reconnects, c.reconnects as f64);
        out.set(K::Dropped, c.dropped as f64);
        out.set(K::GaveUp, c.gave_up as f64);
        out.set(K::RefusedRatioSteady, refused_ratio(&steady));
        out.set(K::RefusedRatioFaults, if_faults(refused_ratio(&faults)));
        out.set(K::ClientsRefusedRatioSteady, clients_refused_ratio(&steady));
        out.set(K::ClientsRefusedRatioFaults, if_faults(clients_refused_ratio(&faults)));
        out.set(K::ConnectMsP99Steady, ms(&steady.connect, 0.99));
        out.set(K::ConnectMsP99Faults, if_faults(ms(&faults.connect, 0.99)));
        out.set(K::ConnectP99ShareNetwork, connect_shares[0]);
        out.set(K::ConnectP99ShareBalancerQueue, connect_shares[1]);
        out.set(K::ConnectP99ShareRetries, connect_shares[2]);
        out.set(K::ConnectP99ShareTls, connect_shares[3]);
        out.set(K::ConnectP99ShareAccept, connect_shares[4]);
        out.set(K::ConnectP99ShareReconnect, connect_shares[5]);
        out.set(
            K::ConnectMsMean,
            if h.is_empty() { f64::NAN } else { h.mean() / 1000.0 },
        );
        out.set(K::ConnectMsP50, pct(0.5));
        out.set(K::ConnectMsP90, pct(0.9));
        out.set(K::ConnectMsP99, pct(0.99));
        out.set(K::ConnectMsP999, pct(0.999));
        out.set(
            K::ConnectMsMax,
            if h.is_empty() {
                f64::NAN
            } else {
                h.max() as f64 / 1000.0
            },
        );
        out.set(K::RefusedNoServer, c.refused_no_server as f64);
        out.set(K::RefusedQueueFull, c.refused_queue_full as f64);
        out.set(K::RefusedQueueTimeout, c.refused_queue_timeout as f64);
        out.set(K::RefusedServerFailed, c.refused_server_failed as f64);
        out.set(K::RefusedNodeFull, c.refused_node_full as f64);
        out.set(K::ConnectTimeouts, c.connect_timeouts as f64);
    }

    /// Clients are load, not components.
    fn components(&self, _ctx: &Ctx) -> Vec<Component> {
        Vec::new()
    }
}
