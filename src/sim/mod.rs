//! The simulation of one replication: clients, the balancer and the socket
//! servers, connected by events.
//!
//! Each part keeps its own state (clients in an arena, servers in an arena,
//! the balancer model); they never call each other directly, they schedule
//! [`Event`]s. Stale timers are discarded by a generation check: every client
//! carries a generation that changes with each state change, and every event
//! about a client carries the generation it was scheduled under.
//!
//! No I/O, no wall clock, no global RNG: a replication is a pure function of
//! the scenario and `(seed, replication index)`.

mod cluster;
mod game;
pub mod web;

pub mod storage;

use cluster::NO_NODE;
pub use cluster::{Cluster, Node};

use std::collections::{HashMap, VecDeque};

use slab::Slab;

use rand::RngExt;
use rand_distr::{Distribution, Exp, Zipf};

use crate::engine::{self, LoopStats, Model, Scheduler};
use crate::metrics::{NOT_COUNTED, NodeSample, Phase, Recorder, RefuseKind, ServerSample};
use crate::model::backoff;
use crate::model::balancer::{Admin, Choice, Refusal, Transition, Waiter};
use crate::model::relay::Relay;
use crate::model::room::Room;
use crate::rng::{self, SimRng, streams};
use crate::scenario::{Arrival, CrashMode, Fault, Role, Scenario, Watch};
use crate::time::{SimDuration, SimTime};

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

pub(crate) const NONE: u32 = u32::MAX;
pub(crate) const BACKEND: u32 = u32::MAX - 1;

/// One client.
#[derive(Clone, Debug)]
pub struct Client {
    pub generation: u32,
    pub state: ClientState,
    pub pop: u16,
    /// Holds one of the balancer's slots on `server`.
    pub holds_slot: bool,
    /// Consecutive failed attempts (resets on success).
    pub failures: u32,
    /// Failed connections to a server within this attempt (HAProxy retries).
    pub backend_tries: u32,
    pub server: u32,
    /// Index in its server's connection list while connected.
    pub slot: u32,
    /// Which queue it waits in (a server id or `BACKEND`).
    pub queue: u32,
    pub rtt: SimDuration,
    pub session: SimDuration,
    pub source: u64,
    pub room: u64,
    pub attempt_start: SimTime,
    /// When the session ends; `SimTime::MAX` until first connected.
    pub depart_at: SimTime,
    pub prev_backoff: SimDuration,
    pub ever_attempted: bool,
    /// The phase (steady stretch or fault window) of the current attempt's
    /// start, or of the drop it is noticing; where its outcome is counted.
    pub attempt_phase: Phase,
    /// The last phase it was counted attempting in, and refused in
    /// (`NOT_COUNTED` until the first counted attempt, refusal).
    pub seen_phase: Phase,
    pub refused_phase: Phase,
    /// Where the current attempt's time went (µs; see `Part`), and when
    /// the part under way began.
    pub parts: [u32; 5],
    pub mark: SimTime,
    /// Index in `World::rooms`, or `NONE`.
    pub room_idx: u32,
    /// Group and slot in the room while connected.
    pub group: u32,
    pub gslot: u32,
    /// The balancer VIP it resolved (DNS, cached for the client's life).
    pub vip: u8,
    /// The balancer node of the current attempt or connection (`NO_NODE`
    /// before it reaches one).
    pub node: u8,
    /// The node that holds its TLS session (for resumption).
    pub tls_node: u8,
    /// SYNs sent in this attempt to an unowned VIP.
    pub syn_tries: u8,
    /// The pending handshake is a resumption.
    pub tls_resumed: bool,
}

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

/// Work for a server's cores (an M/G/c FIFO per server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// Accept a connection: TCP + WebSocket upgrade + auth (+ room state sync).
    Accept { client: u32, generation: u32 },
    /// Receive a move and validate it against the room state.
    Receive { msg: u32 },
    /// Send a message to this server's members of its room.
    /// `ready`: when the copy was on this server (validated here, or
    /// delivered by the relay).
    FanOut { msg: u32, relayed: bool, ready: SimTime },
}

/// One socket server process.
#[derive(Debug)]
pub struct Server {
    pub up: bool,
    pub crash_mode: CrashMode,
    /// Changes at each crash: events of an earlier life are stale.
    pub epoch: u32,
    pub conns: Vec<u32>,
    /// Jobs waiting for a core.
    pub jobs: VecDeque<Job>,
    /// Jobs on a core, with their ids.
    pub in_service: Vec<(u32, Job)>,
    next_job: u32,
    /// Accept jobs queued or on a core (handshakes in progress).
    pub accepting: u32,
    /// When this server next crashes (a scheduled fault), `SimTime::MAX` if
    /// never: a fan-out that would run past it is cut there.
    pub next_crash: SimTime,
    pub check_started: SimTime,
    /// ∫ busy cores dt (core·ns), for utilisation.
    busy_area: u128,
    busy_since: SimTime,
    busy_area_sampled: u128,
}

impl Server {
    fn new() -> Self {
        Server {
            up: true,
            crash_mode: CrashMode::Process,
            epoch: 0,
            conns: Vec::new(),
            jobs: VecDeque::new(),
            in_service: Vec::new(),
            next_job: 0,
            accepting: 0,
            next_crash: SimTime::MAX,
            check_started: SimTime::ZERO,
            busy_area: 0,
            busy_since: SimTime::ZERO,
            busy_area_sampled: 0,
        }
    }

    /// Closes the busy integral up to `now` (call before `in_service` changes).
    fn account_busy(&mut self, now: SimTime) {
        self.busy_area += self.in_service.len() as u128 * now.0.saturating_sub(self.busy_since.0) as u128;
        self.busy_since = now;
    }

    /// Core utilisation since the previous call, over `cores` cores.
    fn utilisation_since_last(&mut self, now: SimTime, cores: u32, interval: SimDuration) -> f64 {
        self.account_busy(now);
        let d = self.busy_area - self.busy_area_sampled;
        self.busy_area_sampled = self.busy_area;
        d as f64 / (cores as f64 * interval.0.max(1) as f64)
    }
}

/// The closed set of events. Small and `Copy`: the heap moves them often.
#[derive(Clone, Copy, Debug)]
pub enum Event {
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
    /// The balancer's connection reaches a server.
    AtServer {
        client: u32,
        generation: u32,
        server: u32,
    },
    /// The balancer learns that connecting to the server failed.
    BackendFailed {
        client: u32,
        generation: u32,
        server: u32,
    },
    /// HAProxy's retry turn-around is over.
    RetryBackend {
        client: u32,
        generation: u32,
        server: u32,
    },
    /// A core finished a job.
    CoreDone {
        server: u32,
        epoch: u32,
        job: u32,
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
    Check {
        node: u16,
        epoch: u16,
        server: u32,
    },
    CheckResult {
        node: u16,
        epoch: u16,
        server: u32,
        ok: bool,
    },
    Fault {
        index: u16,
    },
    Restart {
        server: u32,
    },
    WeightTick {
        node: u16,
        server: u32,
    },
    Sample,
    /// A room's players start a game (after matching or a rematch pause).
    GameStart {
        room: u32,
        game: u32,
    },
    /// The move of the player to move reaches its server (sent after the
    /// think time, half an RTT and a backend hop earlier).
    MoveAtServer {
        room: u32,
        token: u32,
    },
    /// A Kafka producer batch's linger expired.
    BatchClose {
        batch: u32,
    },
    /// A relayed copy of a message reaches a subscribing server.
    RelayDeliver {
        msg: u32,
        server: u32,
    },
    /// The client gives up an attempt nobody answered in time.
    ConnectTimeout {
        client: u32,
        generation: u32,
    },
    /// A balancer node's core finished a TLS handshake.
    TlsDone {
        node: u16,
        epoch: u16,
        id: u32,
    },
    /// The client's upgrade request follows its handshake to the node.
    TlsRtt {
        client: u32,
        generation: u32,
    },
    /// Failover: a surviving node claims a VIP.
    VipTakeover {
        vip: u32,
    },
    NodeRestart {
        node: u16,
    },
    /// The backend updater applies pending additions and removals.
    UpdaterTick,
    /// A removed server's drain is over: it exits.
    StopServer {
        server: u32,
    },
    /// A rolling restart's step for one server.
    Deploy {
        server: u32,
        phase: u8,
    },
    /// The web tier (`sim::web`).
    Web(web::WebEvent),
    /// The cache and database (`sim::storage`).
    Storage(storage::StorageEvent),
}

struct PopState {
    generated: u64,
    /// Players matched so far (room = matched / room_size).
    matched: u64,
    zipf: Option<Zipf<f64>>,
}

/// One replication's world.
pub struct World<'a> {
    pub sc: &'a Scenario,
    rng_arrivals: SimRng,
    rng_clients: SimRng,
    rng_balancer: SimRng,
    rng_servers: SimRng,
    rng_health: SimRng,
    pub clients: Vec<Client>,
    pops: Vec<PopState>,
    pub servers: Vec<Server>,
    /// The balancer nodes.
    pub nodes: Vec<Node>,
    /// VIPs and the deployment's administrative state.
    pub cluster: Cluster,
    /// nginx and app servers (idle without `[web]`).
    pub web: web::WebTier,
    pub rec: Recorder,
    pub state_counts: [u64; N_STATES],
    end: SimTime,
    rng_game: SimRng,
    rng_relay: SimRng,
    /// Rooms (only with a `[game]`), and their index by hash key.
    pub rooms: Vec<Room>,
    room_index: HashMap<u64, u32>,
    /// Messages in flight (moves and their copies).
    pub msgs: Slab<Msg>,
    pub relay: Option<Relay>,
    /// All-run message tallies for the conservation check.
    pub tally: Tally,
    /// The simulated time of the event being handled.
    now: SimTime,
    /// The cache and the database (idle without `[cache]`/`[database]`).
    pub storage: storage::Storage,
}

/// A move in flight: sent by a player, validated on its server, fanned out
/// locally and through the relay.
#[derive(Clone, Debug)]
pub struct Msg {
    pub room: u32,
    pub game: u32,
    /// Move number within the game (0-based).
    pub seq: u32,
    pub sender: u32,
    pub sender_generation: u32,
    pub server: u32,
    pub sent_at: SimTime,
    /// When it reached its server.
    pub arrived_at: SimTime,
    pub validated_at: SimTime,
    pub validated: bool,
    /// Server copies not yet fanned out (local + relayed).
    pub pending: u32,
    pub spectators: u32,
    pub last_spectator: SimTime,
    /// The next player to move has received it.
    pub next_delivered: bool,
    /// Waiting in a Kafka producer batch (counts as one `pending`).
    pub in_batch: bool,
    /// Server copies fanned out (sent to at least their server's members).
    pub fanned_out: u32,
}

/// Counts over the whole run (warm-up included) for conservation checks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub moves_sent: u64,
    pub moves_validated: u64,
    pub moves_lost: u64,
    /// Server copies of validated moves (local fan-outs and relayed copies).
    pub copies_created: u64,
    pub copies_fanned_out: u64,
    pub copies_lost: u64,
}

/// Most clients a replication may create (a bound on the arena).
pub const MAX_CLIENTS: usize = 100_000_000;

impl<'a> World<'a> {
    pub fn new(sc: &'a Scenario, replication: u32) -> Self {
        let r = replication as u64;
        let n = sc.max_servers() as usize;
        let initial = sc.servers.count as usize;
        World {
            sc,
            rng_arrivals: rng::stream(sc.seed, r, streams::ARRIVALS),
            rng_clients: rng::stream(sc.seed, r, streams::CLIENTS),
            rng_balancer: rng::stream(sc.seed, r, streams::BALANCER),
            rng_servers: rng::stream(sc.seed, r, streams::SERVERS),
            rng_health: rng::stream(sc.seed, r, streams::HEALTH),
            clients: Vec::new(),
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
            servers: (0..n)
                .map(|i| {
                    let mut sv = Server::new();
                    sv.up = i < initial;
                    sv
                })
                .collect(),
            nodes: (0..sc.balancer.nodes).map(|_| Node::new(sc)).collect(),
            cluster: Cluster::new(sc),
            web: web::WebTier::new(sc, replication),
            rec: Recorder::new(n, SimTime::ZERO + sc.warmup, &crate::metrics::fault_starts(sc)),
            state_counts: [0; N_STATES],
            end: SimTime::ZERO + sc.duration,
            rng_game: rng::stream(sc.seed, r, streams::GAME),
            rng_relay: rng::stream(sc.seed, r, streams::RELAY),
            rooms: Vec::new(),
            room_index: HashMap::new(),
            msgs: Slab::new(),
            relay: sc.relay.as_ref().map(|c| Relay::new(c, sc.max_servers())),
            tally: Tally::default(),
            now: SimTime::ZERO,
            storage: storage::Storage::new(sc, replication),
        }
    }

    /// Schedules the first events: arrivals, health checks, faults, samples.
    pub fn prime(&mut self, s: &mut Scheduler<Event>) {
        for i in 0..self.sc.populations.len() {
            if let Some(t) = self.next_arrival_time(i, SimTime::ZERO) {
                s.at(t, Event::Arrival { pop: i as u16 });
            }
        }
        // Spread the first checks over one interval (spread-checks).
        for node in 0..self.nodes.len() {
            self.prime_checks(node, s);
        }
        for (i, f) in self.sc.faults.iter().enumerate() {
            if matches!(f, Fault::CacheCrash { .. } | Fault::DbCrash { .. }) {
                continue; // `storage_prime` schedules them
            }
            let t = SimTime::ZERO + f.at();
            s.at(t, Event::Fault { index: i as u16 });
            if let Fault::Crash { server, .. } = f {
                let sv = &mut self.servers[*server as usize];
                sv.next_crash = sv.next_crash.min(t);
            }
        }
        s.at(SimTime::ZERO + self.sc.sample_interval, Event::Sample);
        self.storage_prime(s);
    }

    /// Runs to the end of the scenario.
    pub fn run(&mut self) -> Result<LoopStats, engine::EngineError> {
        self.run_observed(|_| {})
    }

    /// [`World::run`], reporting the simulated clock to `observe` every
    /// [`engine::OBSERVE_EVERY`] events (progress bars).
    pub fn run_observed(&mut self, observe: impl FnMut(SimTime)) -> Result<LoopStats, engine::EngineError> {
        let mut sched = Scheduler::new();
        self.prime(&mut sched);
        engine::run_observed(self, &mut sched, self.end, self.sc.max_events, observe)
    }

    fn next_arrival_time(&mut self, pop: usize, now: SimTime) -> Option<SimTime> {
        let ps = &self.pops[pop];
        let k = ps.generated;
        let t = match &self.sc.populations[pop].arrival {
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
                let gap = Exp::new(rate.per_s).ok()?.sample(&mut self.rng_arrivals);
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
                let u: f64 = self.rng_arrivals.random();
                SimTime::ZERO
                    + *start
                    + SimDuration::from_secs_f64(over.as_secs_f64() * (k as f64 + u) / *target as f64)
            }
            Arrival::Trace { times, .. } => SimTime::ZERO + *times.get(k as usize)?,
            Arrival::Step { count, at, over } => {
                if k >= *count {
                    return None;
                }
                let u: f64 = self.rng_arrivals.random();
                SimTime::ZERO + *at + SimDuration::from_secs_f64(over.as_secs_f64() * (k as f64 + u) / *count as f64)
            }
        };
        (t <= self.end).then_some(t)
    }

    #[inline]
    fn set_state(&mut self, c: u32, st: ClientState) {
        let cl = &mut self.clients[c as usize];
        self.state_counts[cl.state as usize] -= 1;
        self.state_counts[st as usize] += 1;
        cl.state = st;
        cl.generation = cl.generation.wrapping_add(1);
        if matches!(st, ClientState::Left | ClientState::GaveUp) && cl.room_idx != NONE {
            let now = self.now;
            self.client_gone(c, now);
        }
    }

    #[inline]
    fn live(&self, c: u32, generation: u32) -> bool {
        self.clients[c as usize].generation == generation
    }

    fn arrive(&mut self, pop: usize, s: &mut Scheduler<Event>) {
        let now = s.now();
        let p = &self.sc.populations[pop];
        if self.clients.len() >= MAX_CLIENTS {
            return;
        }
        if p.role == Role::Web {
            // HTTP sessions, not WebSocket connections: `sim::web`.
            self.pops[pop].generated += 1;
            self.web_arrive(pop, s);
            if let Some(t) = self.next_arrival_time(pop, now) {
                s.at(t, Event::Arrival { pop: pop as u16 });
            }
            return;
        }
        let id = self.clients.len() as u32;
        let rtt = p.rtt.sample(&mut self.rng_clients);
        let session = p.session.sample(&mut self.rng_clients);
        let source = match p.source_ips {
            Some(n) => ((pop as u64) << 32) | self.rng_clients.random_range(0..n) as u64,
            None => (1u64 << 48) | id as u64,
        };
        let ps = &mut self.pops[pop];
        let room = match p.role {
            Role::Player | Role::Web => {
                let r = ps.matched / p.room_size as u64;
                ps.matched += 1;
                ((pop as u64) << 32) | r
            }
            // Spectators watch rooms of the first player population.
            Role::Spectator => {
                let host = self
                    .sc
                    .populations
                    .iter()
                    .position(|q| q.role == Role::Player)
                    .unwrap_or(0) as u64;
                let rank = match &ps.zipf {
                    Some(z) => z.sample(&mut self.rng_clients) as u64 - 1,
                    None => 0,
                };
                (host << 32) | rank
            }
        };
        ps.generated += 1;
        let room_idx = if self.sc.game.is_some() {
            self.room_for(id, room, p.role)
        } else {
            NONE
        };
        self.clients.push(Client {
            generation: 0,
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
        });
        let vip = self.pick_vip();
        self.clients.last_mut().expect("just pushed").vip = vip;
        self.state_counts[ClientState::Connecting as usize] += 1;
        self.rec.count(now, |c| c.clients_arrived += 1);
        self.start_attempt(id, s);
        if let Some(t) = self.next_arrival_time(pop, now) {
            s.at(t, Event::Arrival { pop: pop as u16 });
        }
    }

    fn start_attempt(&mut self, c: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let again = self.clients[c as usize].ever_attempted;
        self.set_state(c, ClientState::Connecting);
        let cl = &mut self.clients[c as usize];
        cl.ever_attempted = true;
        cl.attempt_start = now;
        cl.parts = [0; 5];
        cl.backend_tries = 0;
        cl.node = NO_NODE;
        cl.syn_tries = 0;
        let (generation, half) = (cl.generation, SimDuration(cl.rtt.0 / 2));
        let phase = self.rec.attempt(now, again);
        let first = phase != cl.seen_phase;
        let first_ever = cl.seen_phase == NOT_COUNTED && phase != NOT_COUNTED;
        cl.attempt_phase = phase;
        if phase != NOT_COUNTED {
            cl.seen_phase = phase;
        }
        self.rec.client_attempting(phase, first, first_ever);
        s.after(half, Event::AtBalancer { client: c, generation });
    }

    /// The client's balancer node decides where a request goes.
    fn route(&mut self, c: u32, exclude: Option<u32>, s: &mut Scheduler<Event>) {
        let (source, room, node) = {
            let cl = &self.clients[c as usize];
            (cl.source, cl.room, cl.node as usize)
        };
        let choice = self.nodes[node]
            .lb
            .choose(source, room, exclude, &mut self.rng_balancer);
        self.apply_choice(c, choice, s);
    }

    fn apply_choice(&mut self, c: u32, choice: Choice, s: &mut Scheduler<Event>) {
        match choice {
            Choice::Server(srv) => self.forward(c, srv, s),
            Choice::QueueServer(srv) => self.enqueue(c, Some(srv), s),
            Choice::QueueBackend => self.enqueue(c, None, s),
            Choice::Refuse(r) => self.refuse(c, r, s),
        }
    }

    fn forward(&mut self, c: u32, srv: u32, s: &mut Scheduler<Event>) {
        let node = self.clients[c as usize].node as usize;
        self.nodes[node].lb.on_forward(srv);
        self.set_state(c, ClientState::Connecting);
        let cl = &mut self.clients[c as usize];
        cl.mark = s.now();
        cl.server = srv;
        cl.holds_slot = true;
        cl.queue = NONE;
        let generation = cl.generation;
        s.after(
            self.sc.servers.backend_latency,
            Event::AtServer {
                client: c,
                generation,
                server: srv,
            },
        );
    }

    /// Gives back the client's slot; returns the node and server it was on.
    fn release_slot(&mut self, c: u32) -> Option<(usize, u32)> {
        let cl = &mut self.clients[c as usize];
        if cl.holds_slot {
            cl.holds_slot = false;
            let (node, srv) = (cl.node as usize, cl.server);
            self.nodes[node].lb.on_close(srv);
            Some((node, srv))
        } else {
            None
        }
    }

    fn enqueue(&mut self, c: u32, srv: Option<u32>, s: &mut Scheduler<Event>) {
        let now = s.now();
        self.set_state(c, ClientState::Queued);
        let cl = &mut self.clients[c as usize];
        cl.queue = srv.unwrap_or(BACKEND);
        let (generation, node) = (cl.generation, cl.node as usize);
        self.nodes[node].lb.enqueue(
            srv,
            Waiter {
                client: c,
                generation,
                since: now,
            },
        );
        s.after(
            self.sc.balancer.timeout_queue,
            Event::QueueTimeout { client: c, generation },
        );
    }

    fn refuse(&mut self, c: u32, r: Refusal, s: &mut Scheduler<Event>) {
        let kind = match r {
            Refusal::NoServer => RefuseKind::NoServer,
            Refusal::QueueFull => RefuseKind::QueueFull,
            Refusal::QueueTimeout => RefuseKind::QueueTimeout,
            Refusal::ServerFailed => RefuseKind::ServerFailed,
            Refusal::NodeFull => RefuseKind::NodeFull,
            Refusal::ConnectTimeout => RefuseKind::ConnectTimeout,
        };
        let cl = &mut self.clients[c as usize];
        let phase = cl.attempt_phase;
        let counted = phase != NOT_COUNTED;
        let first = counted && cl.refused_phase != phase;
        let first_ever = counted && cl.refused_phase == NOT_COUNTED;
        if counted {
            cl.refused_phase = phase;
        }
        self.rec.refused(phase, kind, first, first_ever);
        // The 503 travels back to the client, which then applies its policy.
        let half = SimDuration(self.clients[c as usize].rtt.0 / 2);
        self.retry_or_give_up(c, half, true, s);
    }

    /// After a refusal (`refused`) or a noticed drop: wait and try again,
    /// or give up.
    fn retry_or_give_up(&mut self, c: u32, delay0: SimDuration, refused: bool, s: &mut Scheduler<Event>) {
        let now = s.now();
        let pop = self.clients[c as usize].pop as usize;
        let (failures, prev, depart) = {
            let cl = &self.clients[c as usize];
            (cl.failures, cl.prev_backoff, cl.depart_at)
        };
        if now + delay0 >= depart {
            self.set_state(c, ClientState::Left);
            return;
        }
        match backoff::next_delay(
            &self.sc.populations[pop].reconnect,
            failures,
            prev,
            &mut self.rng_clients,
        ) {
            Some(d) => {
                self.set_state(c, ClientState::Retrying);
                let cl = &mut self.clients[c as usize];
                cl.failures += 1;
                cl.prev_backoff = d;
                let generation = cl.generation;
                s.after(delay0 + d, Event::Attempt { client: c, generation });
            }
            None => {
                self.set_state(c, ClientState::GaveUp);
                let phase = self.clients[c as usize].attempt_phase;
                self.rec.gave_up(phase, refused);
            }
        }
    }

    /// Puts a job in a server's queue and starts what the cores can take.
    fn push_job(&mut self, srv: u32, job: Job, s: &mut Scheduler<Event>) {
        let sv = &mut self.servers[srv as usize];
        if matches!(job, Job::Accept { .. }) {
            sv.accepting += 1;
        }
        sv.jobs.push_back(job);
        self.start_jobs(srv, s);
    }

    fn start_jobs(&mut self, srv: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let cores = self.sc.servers.cores as usize;
        loop {
            let sv = &mut self.servers[srv as usize];
            if sv.in_service.len() >= cores {
                break;
            }
            let Some(job) = sv.jobs.pop_front() else { break };
            sv.account_busy(now);
            let id = sv.next_job;
            sv.next_job = sv.next_job.wrapping_add(1);
            sv.in_service.push((id, job));
            let epoch = sv.epoch;
            let cost = self.job_cost(srv, job, s);
            s.after(
                cost,
                Event::CoreDone {
                    server: srv,
                    epoch,
                    job: id,
                },
            );
        }
    }

    /// Core time of a job, computed when it starts. A fan-out computes and
    /// records every recipient's delivery here (see `game::fan_out`).
    fn job_cost(&mut self, srv: u32, job: Job, s: &mut Scheduler<Event>) -> SimDuration {
        let sv = &self.sc.servers;
        match job {
            Job::Accept { client, .. } => {
                let base = sv.connect_cost.sample(&mut self.rng_servers);
                base + self.sync_cost(client)
            }
            Job::Receive { msg } => {
                let mut c = sv.receive_cost.sample(&mut self.rng_servers);
                let m = &self.msgs[msg as usize];
                if self.rooms[m.room as usize].remote_servers(srv).next().is_some() {
                    c = c + sv.publish_cost.sample(&mut self.rng_servers);
                }
                c
            }
            Job::FanOut { msg, relayed, ready } => self.fan_out(srv, msg, relayed, ready, s),
        }
    }

    fn core_done(&mut self, srv: u32, epoch: u32, id: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let sv = &mut self.servers[srv as usize];
        if sv.epoch != epoch {
            return;
        }
        let Some(i) = sv.in_service.iter().position(|&(j, _)| j == id) else {
            return;
        };
        sv.account_busy(now);
        let (_, job) = sv.in_service.swap_remove(i);
        if matches!(job, Job::Accept { .. }) {
            sv.accepting -= 1;
        }
        self.start_jobs(srv, s);
        match job {
            Job::Accept { client, generation } => {
                if self.live(client, generation) {
                    self.accept(client, srv, s);
                }
            }
            Job::Receive { msg } => self.validated(msg, srv, s),
            Job::FanOut { msg, .. } => self.copy_done(msg, false),
        }
    }

    /// When a connection to a dead server fails, as the balancer sees it.
    fn failure_delay(&self, srv: u32) -> SimDuration {
        match self.servers[srv as usize].crash_mode {
            CrashMode::Process => self.sc.servers.backend_latency,
            CrashMode::Host => self.sc.balancer.timeout_connect,
        }
    }

    fn accept(&mut self, c: u32, srv: u32, s: &mut Scheduler<Event>) {
        // A room with no member here has no state here: read it first.
        if self.rehydration_pending(c, srv, s) {
            return;
        }
        let now = s.now();
        self.set_state(c, ClientState::Connected);
        let sv = &mut self.servers[srv as usize];
        let slot = sv.conns.len() as u32;
        sv.conns.push(c);
        let n = sv.conns.len() as u32;
        self.rec.server_conns(srv as usize, now, n);
        let cl = &mut self.clients[c as usize];
        cl.slot = slot;
        cl.failures = 0;
        cl.prev_backoff = SimDuration::ZERO;
        let heard = now + self.sc.servers.backend_latency + SimDuration(cl.rtt.0 / 2);
        let latency = heard.since(cl.attempt_start).0;
        if cl.depart_at == SimTime::MAX {
            cl.depart_at = now + cl.session;
        }
        cl.add_part(Part::Accept, now);
        let (generation, depart, phase) = (cl.generation, cl.depart_at, cl.attempt_phase);
        self.rec.accepted(phase, latency, cl.parts);
        // A client whose session ran out while it was reconnecting leaves
        // as soon as it is connected.
        s.at(depart.max(now), Event::SessionEnd { client: c, generation });
        self.join_room(c, srv, s);
    }

    /// Removes a connected client from its server's list.
    fn detach(&mut self, c: u32, now: SimTime) {
        let (srv, slot) = {
            let cl = &self.clients[c as usize];
            (cl.server as usize, cl.slot as usize)
        };
        let sv = &mut self.servers[srv];
        sv.conns.swap_remove(slot);
        if let Some(&moved) = sv.conns.get(slot) {
            self.clients[moved as usize].slot = slot as u32;
        }
        let n = sv.conns.len() as u32;
        self.clients[c as usize].slot = NONE;
        self.rec.server_conns(srv, now, n);
        self.leave_room(c);
    }

    /// Hands freed slots on `srv` at `node` to waiting requests.
    fn drain_queue(&mut self, node: usize, srv: u32, s: &mut Scheduler<Event>) {
        loop {
            let clients = &self.clients;
            let is_live = |w: &Waiter| {
                let cl = &clients[w.client as usize];
                cl.generation == w.generation && cl.state == ClientState::Queued
            };
            let Some((w, _)) = self.nodes[node].lb.next_waiter(srv, is_live) else {
                break;
            };
            self.clients[w.client as usize].add_part_us(Part::Queue, s.now().since(w.since));
            self.forward(w.client, srv, s);
        }
    }

    /// The server's process dies (`label` "crash") or exits on purpose
    /// ("stopped": a deploy or scale-in; clients get a close at once).
    fn crash(
        &mut self,
        srv: u32,
        mode: CrashMode,
        restart_after: Option<SimDuration>,
        label: &'static str,
        s: &mut Scheduler<Event>,
    ) {
        let now = s.now();
        let sv = &mut self.servers[srv as usize];
        if !sv.up {
            return;
        }
        sv.up = false;
        sv.crash_mode = mode;
        sv.epoch = sv.epoch.wrapping_add(1);
        sv.account_busy(now);
        sv.accepting = 0;
        let pending: Vec<Job> = sv
            .jobs
            .drain(..)
            .chain(sv.in_service.drain(..).map(|(_, j)| j))
            .collect();
        let conns = std::mem::take(&mut sv.conns);
        let delay = self.failure_delay(srv);
        for job in pending {
            match job {
                Job::Accept { client, generation } => {
                    if self.live(client, generation) {
                        s.after(
                            delay,
                            Event::BackendFailed {
                                client,
                                generation,
                                server: srv,
                            },
                        );
                    }
                }
                Job::Receive { msg } => self.move_lost(msg),
                Job::FanOut { msg, relayed, .. } => {
                    if relayed {
                        self.rec.count(now, |k| k.relay_copies_lost += 1);
                    }
                    self.copy_done(msg, true);
                }
            }
        }
        let n = conns.len() as u64;
        let phase = self.rec.windows.phase(now);
        for c in conns {
            self.leave_room(c);
            self.set_state(c, ClientState::Orphaned);
            let cl = &mut self.clients[c as usize];
            cl.slot = NONE;
            cl.attempt_phase = phase;
            let notice = match mode {
                CrashMode::Process => SimDuration(cl.rtt.0 / 2),
                CrashMode::Host => self.sc.populations[cl.pop as usize].heartbeat_timeout,
            };
            let generation = cl.generation;
            s.after(notice, Event::DropNoticed { client: c, generation });
        }
        // After the clients are dropped: a lost batch's sender is then gone.
        self.drop_producer_batches(srv);
        self.rec.server_conns(srv as usize, now, 0);
        self.rec.dropped(now, n);
        let how = match mode {
            CrashMode::Process => "process",
            CrashMode::Host => "host",
        };
        let detail = if label == "crash" {
            format!("{how} crash, {n} connections dropped")
        } else {
            format!("stopped, {n} connections closed")
        };
        self.rec.event(now, format!("server-{srv}"), label, detail);
        if let Some(d) = restart_after {
            s.after(d, Event::Restart { server: srv });
        }
        self.storage_server_crashed(srv, s);
    }

    /// The first crash of `srv` scheduled after `now`.
    fn next_scheduled_crash(&self, srv: u32, now: SimTime) -> SimTime {
        self.sc
            .faults
            .iter()
            .filter_map(|f| match f {
                Fault::Crash { server, at, .. } if *server == srv && SimTime::ZERO + *at > now => {
                    Some(SimTime::ZERO + *at)
                }
                _ => None,
            })
            .min()
            .unwrap_or(SimTime::MAX)
    }

    fn check_result(&mut self, node: usize, srv: u32, ok: bool, s: &mut Scheduler<Event>) {
        let now = s.now();
        let hc = &self.sc.balancer.health_check;
        // Events name the node only when there are several.
        let who = if self.nodes.len() > 1 {
            format!(" by balancer-{node}")
        } else {
            String::new()
        };
        match self.nodes[node].lb.record_check(srv, ok, hc, now) {
            Some(Transition::MarkedDown) => {
                self.rec.event(
                    now,
                    format!("server-{srv}"),
                    "marked-down",
                    format!("health checks failed{who}"),
                );
                self.reroute_server_queue(node, srv, s);
            }
            Some(Transition::MarkedUp) => {
                self.rec.event(
                    now,
                    format!("server-{srv}"),
                    "marked-up",
                    format!("health checks passed{who}"),
                );
                self.start_slowstart(node, srv, s);
                self.drain_queue(node, srv, s);
            }
            None => {}
        }
        let interval = self.nodes[node].lb.check_interval(srv, hc);
        let next = (self.nodes[node].check_started[srv as usize] + interval).max(now);
        let epoch = self.nodes[node].epoch;
        s.at(
            next,
            Event::Check {
                node: node as u16,
                epoch,
                server: srv,
            },
        );
    }

    fn sample(&mut self, s: &mut Scheduler<Event>) {
        let now = s.now();
        let (cores, interval) = (self.sc.servers.cores, self.sc.sample_interval);
        let servers: Vec<ServerSample> = (0..self.servers.len())
            .map(|i| {
                let sv = &mut self.servers[i];
                let live = self.nodes.iter().filter(|n| n.up);
                let queued = live.clone().map(|n| n.lb.queued(i as u32)).sum();
                let lb_up = live
                    .clone()
                    .next()
                    .is_some_and(|n| n.lb.is_up(i as u32) && n.lb.admin(i as u32) == Admin::Ready);
                ServerSample {
                    connections: sv.conns.len() as u32,
                    queued,
                    cpu_util: sv.utilisation_since_last(now, cores, interval),
                    jobs_waiting: sv.jobs.len() as u32,
                    process_up: sv.up,
                    lb_up,
                }
            })
            .collect();
        let queued = self.state_counts[ClientState::Queued as usize];
        let backlog = self.relay.as_mut().map(|r| r.backlog_peak(now)).unwrap_or(0);
        let since = now - interval;
        let nodes = self
            .nodes
            .iter_mut()
            .map(|n| NodeSample {
                up: n.up,
                connections: if n.up { n.lb.load() } else { 0 },
                handshakes_waiting: n.tls.queued() as u32,
                cpu_util: n.tls.utilisation_since_last(now, since),
            })
            .collect();
        let web = self.web.sample(now, since);
        self.rec.sample(now, queued, backlog, servers, nodes, web);
        self.rec.judge_windows(now, &self.sc.faults);
        let next = now + self.sc.sample_interval;
        if next <= self.end {
            s.at(next, Event::Sample);
        }
    }
}

impl World<'_> {
    /// `srv` just entered `node`'s list UP: ramp its weight if `slowstart`
    /// is set (the ramp goes on in `WeightTick` events).
    fn start_slowstart(&mut self, node: usize, srv: u32, s: &mut Scheduler<Event>) {
        let ss = self.sc.balancer.slowstart;
        if ss.0 > 0 {
            self.nodes[node].lb.slowstart(srv, s.now(), ss);
            s.after(
                slowstart_tick(ss),
                Event::WeightTick {
                    node: node as u16,
                    server: srv,
                },
            );
        }
    }
}

fn slowstart_tick(ss: SimDuration) -> SimDuration {
    SimDuration((ss.0 / 20).max(SimDuration::from_millis(10).0))
}

impl Model for World<'_> {
    type Event = Event;

    fn handle(&mut self, ev: Event, s: &mut Scheduler<Event>) {
        let now = s.now();
        self.now = now;
        match ev {
            Event::Arrival { pop } => self.arrive(pop as usize, s),
            Event::Attempt { client, generation } => {
                if self.live(client, generation) {
                    if now >= self.clients[client as usize].depart_at {
                        self.set_state(client, ClientState::Left);
                    } else {
                        self.start_attempt(client, s);
                    }
                }
            }
            Event::AtBalancer { client, generation } => {
                if self.live(client, generation) {
                    self.at_vip(client, s);
                }
            }
            Event::TlsRtt { client, generation } => {
                if self.live(client, generation) {
                    self.route(client, None, s);
                }
            }
            Event::TlsDone { node, epoch, id } => self.tls_done(node as usize, epoch, id, s),
            Event::ConnectTimeout { client, generation } => {
                let cl = &self.clients[client as usize];
                if cl.generation == generation && cl.state == ClientState::Connecting && !cl.holds_slot {
                    self.refuse(client, Refusal::ConnectTimeout, s);
                }
            }
            Event::VipTakeover { vip } => self.vip_takeover(vip as usize, s),
            Event::NodeRestart { node } => self.node_restart(node as usize, s),
            Event::UpdaterTick => self.updater_tick(s),
            Event::StopServer { server } => self.stop_server(server, s),
            Event::Deploy { server, phase } => self.deploy_step(server, phase, s),
            Event::Web(e) => self.web_event(e, s),
            Event::AtServer {
                client,
                generation,
                server,
            } => {
                if !self.live(client, generation) {
                    return;
                }
                let sv = &mut self.servers[server as usize];
                // Connections and handshakes in progress; moves and fan-outs
                // queued on the cores are not connections.
                let load = sv.conns.len() + sv.accepting as usize;
                let failure = if !sv.up {
                    // RST comes straight back; a lost host lets the balancer's
                    // connect time out (counted from when it sent, one trip ago).
                    Some(match sv.crash_mode {
                        CrashMode::Process => self.sc.servers.backend_latency,
                        CrashMode::Host => self.sc.balancer.timeout_connect - self.sc.servers.backend_latency,
                    })
                } else if load >= self.sc.servers.max_connections as usize {
                    // The process itself refuses beyond its cap.
                    Some(self.sc.servers.backend_latency)
                } else {
                    None
                };
                match failure {
                    Some(d) => s.after(
                        d,
                        Event::BackendFailed {
                            client,
                            generation,
                            server,
                        },
                    ),
                    None => {
                        self.clients[client as usize].mark = now;
                        self.push_job(server, Job::Accept { client, generation }, s)
                    }
                }
            }
            Event::BackendFailed {
                client,
                generation,
                server,
            } => {
                if !self.live(client, generation) {
                    return;
                }
                if let Some((node, srv)) = self.release_slot(client) {
                    self.drain_queue(node, srv, s);
                }
                let cl = &mut self.clients[client as usize];
                cl.backend_tries += 1;
                if cl.backend_tries <= self.sc.balancer.retries {
                    let turn = self.sc.balancer.timeout_connect.min(SimDuration::from_secs(1));
                    s.after(
                        turn,
                        Event::RetryBackend {
                            client,
                            generation,
                            server,
                        },
                    );
                } else {
                    self.refuse(client, Refusal::ServerFailed, s);
                }
            }
            Event::RetryBackend {
                client,
                generation,
                server,
            } => {
                if !self.live(client, generation) {
                    return;
                }
                self.clients[client as usize].add_part(Part::Retries, now);
                let b = &self.sc.balancer;
                if b.redispatch && self.clients[client as usize].backend_tries == b.retries {
                    self.route(client, Some(server), s);
                } else {
                    // The slot was released on failure and may have gone to a
                    // waiter: the retry must queue like any request beyond maxconn.
                    let node = self.clients[client as usize].node as usize;
                    let choice = self.nodes[node].lb.admit_to(server);
                    self.apply_choice(client, choice, s);
                }
            }
            Event::CoreDone { server, epoch, job } => self.core_done(server, epoch, job, s),
            Event::QueueTimeout { client, generation } => {
                if self.live(client, generation) && self.clients[client as usize].state == ClientState::Queued {
                    let cl = &self.clients[client as usize];
                    let (q, node) = (cl.queue, cl.node as usize);
                    self.nodes[node].lb.cancel_waiter((q != BACKEND).then_some(q));
                    self.refuse(client, Refusal::QueueTimeout, s);
                }
            }
            Event::SessionEnd { client, generation } => {
                if self.live(client, generation) {
                    self.detach(client, now);
                    self.set_state(client, ClientState::Left);
                    if let Some((node, srv)) = self.release_slot(client) {
                        self.drain_queue(node, srv, s);
                    }
                }
            }
            Event::DropNoticed { client, generation } => {
                if self.live(client, generation) {
                    if let Some((node, srv)) = self.release_slot(client) {
                        self.drain_queue(node, srv, s);
                    }
                    self.retry_or_give_up(client, SimDuration::ZERO, false, s);
                }
            }
            Event::Check { node, epoch, server } => {
                let nd = &mut self.nodes[node as usize];
                if !nd.up || nd.epoch != epoch {
                    return; // the node died: its checks stop (restart primes new ones)
                }
                if nd.lb.admin(server) == Admin::Maint {
                    // Not in the list: not checked, look again later.
                    let inter = self.sc.balancer.health_check.inter;
                    s.after(inter, Event::Check { node, epoch, server });
                    return;
                }
                nd.check_started[server as usize] = now;
                let sv = &self.servers[server as usize];
                let rtt = SimDuration(2 * self.sc.servers.backend_latency.0);
                let (ok, d) = if sv.up {
                    (true, rtt)
                } else {
                    match sv.crash_mode {
                        CrashMode::Process => (false, rtt),
                        CrashMode::Host => (false, self.sc.balancer.health_check.timeout()),
                    }
                };
                s.after(
                    d,
                    Event::CheckResult {
                        node,
                        epoch,
                        server,
                        ok,
                    },
                );
            }
            Event::CheckResult {
                node,
                epoch,
                server,
                ok,
            } => {
                let nd = &self.nodes[node as usize];
                if nd.up && nd.epoch == epoch {
                    self.check_result(node as usize, server, ok, s);
                }
            }
            Event::Fault { index } => match self.sc.faults[index as usize] {
                Fault::Crash {
                    server,
                    mode,
                    restart_after,
                    ..
                } => {
                    if self.cluster.provisioned[server as usize] {
                        self.crash(server, mode, restart_after, "crash", s);
                    }
                    self.servers[server as usize].next_crash = self.next_scheduled_crash(server, now);
                }
                Fault::BalancerCrash {
                    node,
                    mode,
                    restart_after,
                    ..
                } => self.node_crash(node as usize, mode, restart_after, s),
                // Storage faults have their own events (`storage_prime`).
                Fault::CacheCrash { .. } | Fault::DbCrash { .. } => {}
                Fault::ScaleOut { .. } | Fault::ScaleIn { .. } | Fault::RollingRestart { .. } => {
                    self.deploy_fault(index as usize, s)
                }
                Fault::NginxCrash { .. } | Fault::AppCrash { .. } => self.web_fault(index as usize, s),
            },
            Event::Restart { server } => {
                if !self.cluster.provisioned[server as usize] {
                    return; // removed by a scale-in meanwhile
                }
                let sv = &mut self.servers[server as usize];
                sv.up = true;
                self.rec.event(
                    now,
                    format!("server-{server}"),
                    "restarted",
                    "process accepting again".into(),
                );
            }
            Event::WeightTick { node, server } => {
                let ss = self.sc.balancer.slowstart;
                let nd = &mut self.nodes[node as usize];
                if !nd.up {
                    return;
                }
                if nd.lb.slowstart(server, now, ss) {
                    s.after(slowstart_tick(ss), Event::WeightTick { node, server });
                }
                self.drain_queue(node as usize, server, s);
            }
            Event::Sample => self.sample(s),
            Event::GameStart { room, game } => self.game_start(room, game, s),
            Event::MoveAtServer { room, token } => self.move_at_server(room, token, s),
            Event::BatchClose { batch } => self.batch_close(batch, s),
            Event::RelayDeliver { msg, server } => self.relay_deliver(msg, server, s),
            Event::Storage(e) => self.storage_event(e, s),
        }
    }
}
