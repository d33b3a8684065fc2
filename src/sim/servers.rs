//! The socket-servers tier: each server process, its cores (an M/G/c FIFO
//! of jobs: accepts, moves to validate, fan-outs), its connection list,
//! crashes and restarts.

use super::{ClientEvent, ClientState, Event, NONE, Part, World, seams};
use super::{Component, ComponentKind, Ctx, Tier};
use crate::engine::Scheduler;
use crate::metrics::Happening;
use crate::metrics::summary::{MetricSink, mean_after_warmup, samples_max};
use crate::metrics::{imbalance, jain};
use crate::metrics_defs::MetricKey as K;
use crate::model::network::{Link, Packet};
use crate::model::station::Station;
use crate::rng::{self, SimRng, streams};
use crate::scenario::{CrashMode, Fault, Scenario};
use crate::time::{SimDuration, SimTime};

/// The socket-servers tier's events (one variant of [`Event`]).
#[derive(Clone, Copy, Debug)]
pub enum ServerEvent {
    /// The balancer's connection reaches the client's server
    /// (`Client::server`, set with the generation).
    AtServer {
        client: u32,
        generation: u32,
    },
    /// A core finished a job (`epoch`: the server's, truncated; a crash
    /// changes it).
    CoreDone {
        server: u32,
        job: u32,
        epoch: u16,
    },
    Restart {
        server: u32,
    },
}

/// The socket-servers tier: every server slot that may ever run.
pub struct Servers {
    pub list: Vec<Server>,
    /// Slots that ever ran a process (for imbalance statistics).
    pub ever_provisioned: Vec<bool>,
    pub(super) rng: SimRng,
}

impl Servers {
    pub fn new(sc: &Scenario, replication: u32) -> Self {
        let n = sc.max_servers() as usize;
        let initial = sc.servers.count as usize;
        Servers {
            list: (0..n)
                .map(|i| {
                    let mut sv = Server::new(sc.servers.cores);
                    sv.up = i < initial;
                    sv
                })
                .collect(),
            ever_provisioned: (0..n).map(|i| i < initial).collect(),
            rng: rng::stream(sc.seed, replication as u64, streams::SERVERS),
        }
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
    pub conns: Vec<u32>,
    /// The cores: an M/G/c FIFO of jobs (`model::station`). Its epoch
    /// changes at each crash: completions of an earlier life are stale.
    pub cores: Station<Job>,
    /// Accept jobs queued or on a core (handshakes in progress).
    pub accepting: u32,
    /// When this server next crashes (a scheduled fault), `SimTime::MAX` if
    /// never: a fan-out that would run past it is cut there.
    pub next_crash: SimTime,
    pub check_started: SimTime,
}

impl Server {
    pub(super) fn new(cores: u32) -> Self {
        Server {
            up: true,
            crash_mode: CrashMode::Process,
            conns: Vec::new(),
            cores: Station::new(cores, usize::MAX),
            accepting: 0,
            next_crash: SimTime::MAX,
            check_started: SimTime::ZERO,
        }
    }

    /// The cores' epoch (changes at each crash).
    #[inline]
    pub fn epoch(&self) -> u32 {
        self.cores.epoch()
    }
}

impl World<'_> {
    pub(super) fn core_done(&mut self, srv: u32, epoch: u16, id: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let sv = &mut self.servers.list[srv as usize];
        let current = sv.cores.epoch();
        if current as u16 != epoch {
            return;
        }
        let Some(job) = sv.cores.complete(now, current, id) else {
            return;
        };
        if matches!(job, Job::Accept { .. }) {
            sv.accepting -= 1;
        }
        seams::start_jobs(&mut self.servers, &mut self.game, &self.clients, &mut self.ctx, srv, s);
        match job {
            Job::Accept { client, generation } => {
                if self.live(client, generation) {
                    self.accept(client, srv, s);
                }
            }
            Job::Receive { msg } => seams::move_validated(
                &mut self.game,
                &mut self.servers,
                &self.clients,
                &mut self.storage,
                &mut self.ctx,
                msg,
                srv,
                s,
            ),
            Job::FanOut { msg, .. } => self.game.copy_done(&mut self.ctx, &self.clients, msg, false),
        }
    }

    /// When a connection to a dead server fails, as the balancer sees it.
    pub(super) fn failure_delay(&self, srv: u32) -> SimDuration {
        match self.servers.list[srv as usize].crash_mode {
            CrashMode::Process => self.ctx.sc.servers.backend_latency,
            CrashMode::Host => self.ctx.sc.balancer.timeout_connect,
        }
    }

    pub(super) fn accept(&mut self, c: u32, srv: u32, s: &mut Scheduler<Event>) {
        // A room with no member here has no state here: read it first.
        if self.rehydration_pending(c, srv, s) {
            return;
        }
        let now = s.now();
        self.set_state(c, ClientState::Connected);
        let sv = &mut self.servers.list[srv as usize];
        let slot = sv.conns.len() as u32;
        sv.conns.push(c);
        let n = sv.conns.len() as u32;
        self.ctx.rec.server_conns(srv as usize, now, n);
        let cl = &mut self.clients.list[c as usize];
        cl.slot = slot;
        cl.failures = 0;
        cl.prev_backoff = SimDuration::ZERO;
        let hop = self
            .ctx
            .net
            .delay(Link::Servers, now, self.ctx.sc.servers.backend_latency, Packet::Data);
        let heard = now
            + hop
            + self
                .ctx
                .net
                .delay(Link::Clients, now, SimDuration(cl.rtt.0 / 2), Packet::Data);
        let latency = heard.since(cl.attempt_start).0;
        if cl.depart_at == SimTime::MAX {
            cl.depart_at = now + cl.session;
        }
        cl.add_part(Part::Accept, now);
        let (generation, depart, phase) = (cl.generation, cl.depart_at, cl.attempt_phase);
        self.ctx.rec.accepted(phase, latency, cl.parts);
        // A client whose session ran out while it was reconnecting leaves
        // as soon as it is connected.
        s.at(
            depart.max(now),
            Event::Clients(ClientEvent::SessionEnd { client: c, generation }),
        );
        seams::join_room(&mut self.game, &mut self.clients, &mut self.ctx, c, srv, s);
    }

    /// Removes a connected client from its server's list.
    pub(super) fn detach(&mut self, c: u32, now: SimTime) {
        let (srv, slot) = {
            let cl = &self.clients.list[c as usize];
            (cl.server as usize, cl.slot as usize)
        };
        let sv = &mut self.servers.list[srv];
        sv.conns.swap_remove(slot);
        if let Some(&moved) = sv.conns.get(slot) {
            self.clients.list[moved as usize].slot = slot as u32;
        }
        let n = sv.conns.len() as u32;
        self.clients.list[c as usize].slot = NONE;
        self.ctx.rec.server_conns(srv, now, n);
        seams::leave_room(&mut self.game, &mut self.clients, c);
    }

    /// Hands freed slots on `srv` at `node` to waiting requests.
    pub(super) fn crash(
        &mut self,
        srv: u32,
        mode: CrashMode,
        restart_after: Option<SimDuration>,
        label: Happening,
        s: &mut Scheduler<Event>,
    ) {
        let now = s.now();
        let sv = &mut self.servers.list[srv as usize];
        if !sv.up {
            return;
        }
        sv.up = false;
        sv.crash_mode = mode;
        sv.accepting = 0;
        // Queued jobs first, then those on a core.
        let pending: Vec<Job> = sv.cores.crash(now);
        let conns = std::mem::take(&mut sv.conns);
        let delay = self.failure_delay(srv);
        for job in pending {
            match job {
                Job::Accept { client, generation } => {
                    if self.live(client, generation) {
                        s.after(delay, Event::Clients(ClientEvent::BackendFailed { client, generation }));
                    }
                }
                Job::Receive { msg } => self.game.move_lost(&mut self.ctx, msg),
                Job::FanOut { msg, relayed, .. } => {
                    if relayed {
                        self.ctx.rec.count(now, |k| k.relay_copies_lost += 1);
                    }
                    self.game.copy_done(&mut self.ctx, &self.clients, msg, true);
                }
            }
        }
        let n = conns.len() as u64;
        let phase = self.ctx.rec.windows.phase(now);
        for c in conns {
            seams::leave_room(&mut self.game, &mut self.clients, c);
            self.set_state(c, ClientState::Orphaned);
            let cl = &mut self.clients.list[c as usize];
            cl.slot = NONE;
            cl.attempt_phase = phase;
            let notice = match mode {
                CrashMode::Process => SimDuration(cl.rtt.0 / 2),
                CrashMode::Host => self.ctx.sc.populations[cl.pop as usize].heartbeat_timeout,
            };
            let generation = cl.generation;
            s.after(
                notice,
                Event::Clients(ClientEvent::DropNoticed { client: c, generation }),
            );
        }
        // After the clients are dropped: a lost batch's sender is then gone.
        self.game.drop_producer_batches(&mut self.ctx, &self.clients, srv);
        self.ctx.rec.server_conns(srv as usize, now, 0);
        self.ctx.rec.dropped(now, n);
        let how = match mode {
            CrashMode::Process => "process",
            CrashMode::Host => "host",
        };
        let detail = if label == Happening::Crash {
            format!("{how} crash, {n} connections dropped")
        } else {
            format!("stopped, {n} connections closed")
        };
        self.ctx.rec.event(now, format!("server-{srv}"), label, detail);
        if let Some(d) = restart_after {
            s.after(d, Event::Servers(ServerEvent::Restart { server: srv }));
        }
        self.storage_server_crashed(srv, s);
    }

    /// The first crash of `srv` scheduled after `now`.
    pub(super) fn next_scheduled_crash(&self, srv: u32, now: SimTime) -> SimTime {
        self.ctx
            .sc
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
}

impl World<'_> {
    /// Handles one of this tier's events.
    #[inline(always)]
    pub(super) fn server_event(&mut self, ev: ServerEvent, s: &mut Scheduler<Event>) {
        let now = s.now();
        match ev {
            ServerEvent::AtServer { client, generation } => {
                if !self.live(client, generation) {
                    return;
                }
                // The server it was forwarded to (set with this generation).
                let server = self.clients.list[client as usize].server;
                let sv = &mut self.servers.list[server as usize];
                // Connections and handshakes in progress; moves and fan-outs
                // queued on the cores are not connections.
                let load = sv.conns.len() + sv.accepting as usize;
                let failure = if !sv.up {
                    // RST comes straight back; a lost host lets the balancer's
                    // connect time out (counted from when it sent, one trip ago).
                    Some(match sv.crash_mode {
                        CrashMode::Process => self.ctx.sc.servers.backend_latency,
                        CrashMode::Host => self.ctx.sc.balancer.timeout_connect - self.ctx.sc.servers.backend_latency,
                    })
                } else if load >= self.ctx.sc.servers.max_connections as usize {
                    // The process itself refuses beyond its cap.
                    Some(self.ctx.sc.servers.backend_latency)
                } else {
                    None
                };
                match failure {
                    Some(d) => s.after(d, Event::Clients(ClientEvent::BackendFailed { client, generation })),
                    None => {
                        self.clients.list[client as usize].mark = now;
                        seams::push_job(
                            &mut self.servers,
                            &mut self.game,
                            &self.clients,
                            &mut self.ctx,
                            server,
                            Job::Accept { client, generation },
                            s,
                        )
                    }
                }
            }
            ServerEvent::CoreDone { server, epoch, job } => self.core_done(server, epoch, job, s),
            ServerEvent::Restart { server } => {
                if !self.cluster.provisioned[server as usize] {
                    return; // removed by a scale-in meanwhile
                }
                let sv = &mut self.servers.list[server as usize];
                sv.up = true;
                sv.cores.restart(now);
                self.ctx.rec.event(
                    now,
                    format!("server-{server}"),
                    Happening::Restarted,
                    "process accepting again".into(),
                );
            }
        }
    }
}

impl Tier for Servers {
    fn name(&self) -> &'static str {
        "servers"
    }

    /// A dead server holds no connections.
    fn check(&self, _ctx: &Ctx) -> Vec<String> {
        let mut bad = Vec::new();
        for (i, s) in self.list.iter().enumerate() {
            if !s.up && !s.conns.is_empty() {
                bad.push(format!("server {i} is down but holds {} connections", s.conns.len()));
            }
        }
        bad
    }

    fn metrics(&self, ctx: &Ctx, out: &mut MetricSink) {
        let (sc, rec) = (ctx.sc, &ctx.rec);
        // Server-template slots that never ran a process are not servers.
        let loads: Vec<f64> = rec
            .mean_conns_per_server(ctx.end)
            .into_iter()
            .zip(&self.ever_provisioned)
            .filter(|(_, p)| **p)
            .map(|(l, _)| l)
            .collect();
        out.set(K::MaxConnPerServer, rec.peak_conns() as f64);
        out.set(K::ImbalanceMaxOverMean, imbalance(&loads));
        out.set(K::JainIndex, jain(&loads));
        out.set(
            K::CpuUtilMean,
            mean_after_warmup(&rec.samples, sc, |s| s.servers.iter().map(|v| v.cpu_util)),
        );
        out.set(
            K::CpuUtilMax,
            samples_max(&rec.samples, sc, |s| {
                s.servers.iter().map(|v| v.cpu_util).fold(0.0, f64::max)
            }),
        );
    }

    /// Every socket-server slot that ran a process.
    fn components(&self, _ctx: &Ctx) -> Vec<Component> {
        (0..self.list.len() as u32)
            .filter(|&i| self.ever_provisioned[i as usize])
            .map(|i| Component {
                tier: "servers",
                kind: ComponentKind::SocketServer,
                index: i,
                name: format!("server-{i}"),
            })
            .collect()
    }
}
