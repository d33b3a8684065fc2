//! The balancer cluster and deployments: balancer nodes, their virtual IPs
//! and failover, TLS handshakes on the nodes' cores, the backend updater,
//! scale-out, scale-in and rolling restarts.
//!
//! Each node is an independent HAProxy: its own [`Balancer`] (server slots,
//! queues, health checks), its own cores ([`Station`]) for handshakes and
//! its own `node_maxconn`. Clients reach a node through a virtual IP: one
//! VIP on node 0 (`active-passive`) or one per node, clients spread over
//! them (`active-active`, DNS round robin). A node that fails drops every
//! tunnel through it; its VIPs answer nowhere until the failover takeover
//! time has passed, then on the lowest-numbered surviving node. A SYN to an
//! unowned VIP is lost and retransmitted after 1 s, 2 s, 4 s, … until the
//! client's `connect_timeout`.
//!
//! Server slots follow HAProxy's `server-template`: every server that may
//! ever run has a slot from the start; slots not yet provisioned are in
//! maintenance. The backend updater applies additions and removals to every
//! node only at its next tick (`update_interval`); a deploy's drain and
//! ready commands go through the runtime API and apply at once.

use super::{Component, ComponentKind, Ctx, Tier};
use crate::metrics::summary::{MetricSink, samples_max};
use crate::metrics_defs::MetricKey as K;
use crate::model::network::{Link, Packet};
use rand::RngExt;

use super::web::WEB_HANDSHAKE;
use super::{BACKEND, ClientEvent, ClientState, Event, NONE, Part, ServerEvent, World};
use crate::engine::Scheduler;
use crate::metrics::Happening;
use crate::model::balancer::{Admin, Balancer, Choice, Refusal, Transition, Waiter};
use crate::model::station::{Admit, Station};
use crate::rng::{self, SimRng, streams};
use crate::scenario::{ClusterMode, CrashMode, Fault, Scenario};
use crate::time::{SimDuration, SimTime};

/// No node: the client has not reached one in this attempt.
pub(crate) const NO_NODE: u8 = u8::MAX;

/// A client in a node's handshake queue, with the generation it had.
pub type Handshake = (u32, u32);

/// One balancer node.
pub struct Node {
    pub up: bool,
    /// Changes at each crash: events of an earlier life are stale.
    pub epoch: u16,
    pub crash_mode: CrashMode,
    pub lb: Balancer,
    /// The node's cores: TLS handshakes queue here.
    pub tls: Station<Handshake>,
    /// When the current health check of each server started.
    pub check_started: Vec<SimTime>,
    pub full_handshakes: u64,
    pub resumed_handshakes: u64,
}

impl Node {
    pub fn new(sc: &Scenario) -> Self {
        let slots = sc.max_servers();
        Node {
            up: true,
            epoch: 0,
            crash_mode: CrashMode::Process,
            lb: Balancer::new(&sc.balancer, &sc.servers, slots),
            tls: Station::new(sc.balancer.cores, usize::MAX),
            check_started: vec![SimTime::ZERO; slots as usize],
            full_handshakes: 0,
            resumed_handshakes: 0,
        }
    }
}

/// The balancer cluster's events (one variant of [`Event`]).
#[derive(Clone, Copy, Debug)]
pub enum ClusterEvent {
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
    /// A balancer node's core finished a TLS handshake.
    TlsDone {
        node: u16,
        epoch: u16,
        id: u32,
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
    WeightTick {
        node: u16,
        server: u32,
    },
}

/// The balancer cluster: its nodes, their addresses and the deployment's
/// administrative state.
pub struct Cluster {
    /// The balancer nodes.
    pub nodes: Vec<Node>,
    pub(super) rng_balancer: SimRng,
    pub(super) rng_health: SimRng,
    /// Which node answers each VIP (`NONE` while it is moving).
    pub vip_owner: Vec<u32>,
    /// Since when each VIP has been unowned.
    vip_lost_at: Vec<SimTime>,
    /// Seconds of VIP outage (summed over VIPs), closed intervals only.
    pub vip_outage_ns: u64,
    /// The administrative state the deployment wants for each server slot;
    /// every node converges to it (at the updater's tick, or at once).
    pub admin: Vec<Admin>,
    /// Slots whose process exists (booted by the initial fleet or a scale-out,
    /// not yet removed by a scale-in).
    pub provisioned: Vec<bool>,
    /// How long a removed server drains before it stops (scale-in).
    stop_after: Vec<SimDuration>,
    /// Next free server-template slot.
    next_slot: u32,
    /// Changes waiting for the backend updater.
    pending: Vec<(u32, Admin)>,
    updater_scheduled: bool,
}

impl Cluster {
    pub fn new(sc: &Scenario, replication: u32) -> Self {
        let r = replication as u64;
        let n = sc.max_servers() as usize;
        let vips = match sc.balancer.mode {
            ClusterMode::ActivePassive => 1,
            ClusterMode::ActiveActive => sc.balancer.nodes as usize,
        };
        let initial = sc.servers.count as usize;
        Cluster {
            nodes: (0..sc.balancer.nodes).map(|_| Node::new(sc)).collect(),
            rng_balancer: rng::stream(sc.seed, r, streams::BALANCER),
            rng_health: rng::stream(sc.seed, r, streams::HEALTH),
            vip_owner: (0..vips as u32).collect(),
            vip_lost_at: vec![SimTime::ZERO; vips],
            vip_outage_ns: 0,
            admin: (0..n)
                .map(|i| if i < initial { Admin::Ready } else { Admin::Maint })
                .collect(),
            provisioned: (0..n).map(|i| i < initial).collect(),
            stop_after: vec![SimDuration::ZERO; n],
            next_slot: initial as u32,
            pending: Vec::new(),
            updater_scheduled: false,
        }
    }

    /// VIP outage so far, open intervals included.
    pub fn vip_outage(&self, now: SimTime) -> SimDuration {
        let open: u64 = self
            .vip_owner
            .iter()
            .zip(&self.vip_lost_at)
            .filter(|(o, _)| **o == NONE)
            .map(|(_, t)| now.since(*t).0)
            .sum();
        SimDuration(self.vip_outage_ns + open)
    }
}

/// Linux's initial SYN retransmission timeout (RFC 6298: 1 s).
const SYN_RTO: SimDuration = SimDuration::from_secs(1);

impl World<'_> {
    /// The attempt's packet reaches the client's VIP.
    pub(super) fn at_vip(&mut self, c: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let (vip, start, pop, tries) = {
            let cl = &self.clients.list[c as usize];
            (cl.vip as usize, cl.attempt_start, cl.pop as usize, cl.syn_tries)
        };
        let owner = self.cluster.vip_owner[vip];
        if owner == NONE {
            // Nobody answers ARP for the VIP: the SYN is lost; the client's
            // TCP retransmits it after 1 s, 2 s, 4 s, … (from the first send).
            let timeout = self.ctx.sc.populations[pop].connect_timeout;
            let cl = &mut self.clients.list[c as usize];
            let wait = SimDuration(SYN_RTO.0.saturating_mul(1u64 << tries.min(20)));
            cl.syn_tries = tries.saturating_add(1);
            let generation = cl.generation;
            if (now + wait).since(start) >= timeout {
                s.at(
                    (start + timeout).max(now),
                    Event::Clients(ClientEvent::ConnectTimeout { client: c, generation }),
                );
            } else {
                cl.add_part_us(super::Part::Reconnect, wait);
                s.after(wait, Event::Clients(ClientEvent::AtBalancer { client: c, generation }));
            }
            return;
        }
        let node = owner as usize;
        self.clients.list[c as usize].node = owner as u8;
        if let Some(max) = self.ctx.sc.balancer.node_maxconn
            && self.cluster.nodes[node].lb.load() + self.cluster.nodes[node].tls.len() as u64 >= max as u64
        {
            self.refuse(c, Refusal::NodeFull, s);
            return;
        }
        let Some(tls) = &self.ctx.sc.balancer.tls else {
            self.route(c, None, s);
            return;
        };
        let resumed_ratio = tls.resumption_ratio;
        let cl = &self.clients.list[c as usize];
        let resumed = cl.tls_node == owner as u8 && resumed_ratio > 0.0 && {
            let u: f64 = self.cluster.rng_balancer.random();
            u < resumed_ratio
        };
        let generation = cl.generation;
        let nd = &mut self.cluster.nodes[node];
        if resumed {
            nd.resumed_handshakes += 1;
        } else {
            nd.full_handshakes += 1;
        }
        // Remember the handshake's kind in the client until it starts.
        self.clients.list[c as usize].tls_resumed = resumed;
        self.clients.list[c as usize].mark = now;
        match self.cluster.nodes[node].tls.arrive(now, (c, generation)) {
            Admit::Started(id) => self.schedule_handshake(node, id, (c, generation), s),
            Admit::Queued => {
                // A client stuck behind a handshake storm gives up after its
                // connect timeout (and tries again: the storm feeds itself).
                let cl = &self.clients.list[c as usize];
                let timeout = self.ctx.sc.populations[cl.pop as usize].connect_timeout;
                s.at(
                    (cl.attempt_start + timeout).max(now),
                    Event::Clients(ClientEvent::ConnectTimeout { client: c, generation }),
                );
            }
            Admit::Rejected(_) => unreachable!("an up node's handshake queue is unbounded"),
        }
    }

    /// Schedules the end of a handshake that a core of `node` started: a
    /// web request's (always full) or a client's (full or resumed).
    pub(super) fn schedule_handshake(&mut self, node: usize, id: u32, item: Handshake, s: &mut Scheduler<Event>) {
        let (c, generation) = item;
        let resumed = generation != WEB_HANDSHAKE && self.clients.list[c as usize].tls_resumed;
        self.cluster.schedule_handshake(self.ctx.sc, node, id, resumed, s);
    }
}

impl Cluster {
    /// The VIP a new client resolves (DNS round robin in active-active).
    pub(super) fn pick_vip(&mut self) -> u8 {
        let n = self.vip_owner.len();
        if n <= 1 {
            0
        } else {
            self.rng_balancer.random_range(0..n) as u8
        }
    }

    /// Handshake `id` started on `node`'s cores: a full one, or a
    /// resumption.
    pub(super) fn schedule_handshake(
        &self,
        sc: &Scenario,
        node: usize,
        id: u32,
        resumed: bool,
        s: &mut Scheduler<Event>,
    ) {
        let Some(tls) = &sc.balancer.tls else { return };
        let cost = if resumed { tls.resumed_cost() } else { tls.full_cost() };
        let epoch = self.nodes[node].epoch;
        s.after(
            cost,
            Event::Cluster(ClusterEvent::TlsDone {
                node: node as u16,
                epoch,
                id,
            }),
        );
    }
}

impl World<'_> {
    /// A core finished a handshake; the client answers (TLS 1.3: one round
    /// trip) with its WebSocket upgrade, which the node then routes.
    pub(super) fn tls_done(&mut self, node: usize, epoch: u16, id: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        let nd = &mut self.cluster.nodes[node];
        if nd.epoch != epoch {
            return;
        }
        let Some((c, generation)) = nd.tls.complete(now, nd.tls.epoch(), id) else {
            return;
        };
        if let Some((next, &item)) = nd.tls.next(now) {
            self.schedule_handshake(node, next, item, s);
        }
        if generation == WEB_HANDSHAKE {
            super::seams::web_tls_done(&mut self.web, &mut self.ctx, node, c, s);
            return;
        }
        if !self.live(c, generation) {
            return; // gave up meanwhile: the handshake was wasted work
        }
        let cl = &mut self.clients.list[c as usize];
        cl.add_part(super::Part::Tls, now);
        cl.tls_node = node as u8;
        let rtt = self.ctx.net.delay(Link::Clients, now, cl.rtt, Packet::Data);
        s.after(rtt, Event::Clients(ClientEvent::TlsRtt { client: c, generation }));
    }

    /// A node fails: its VIPs stop answering, every tunnel through it drops.
    pub(super) fn node_crash(
        &mut self,
        node: usize,
        mode: CrashMode,
        restart_after: Option<SimDuration>,
        s: &mut Scheduler<Event>,
    ) {
        let now = s.now();
        if !self.cluster.nodes[node].up {
            return;
        }
        let takeover = self.ctx.sc.balancer.failover.takeover();
        {
            let nd = &mut self.cluster.nodes[node];
            nd.up = false;
            nd.crash_mode = mode;
            nd.epoch = nd.epoch.wrapping_add(1);
            let lost = nd.tls.crash(now);
            nd.lb = Balancer::new(&self.ctx.sc.balancer, &self.ctx.sc.servers, self.ctx.sc.max_servers());
            // Web requests waiting for a handshake fail; WebSocket clients
            // in the queue are found below with the node's other clients.
            super::seams::web_handshakes_lost(&mut self.web, lost, s);
        }
        let mut moved = 0;
        for v in 0..self.cluster.vip_owner.len() {
            if self.cluster.vip_owner[v] == node as u32 {
                self.cluster.vip_owner[v] = NONE;
                self.cluster.vip_lost_at[v] = now;
                self.ctx.rec.event(
                    now,
                    format!("vip-{v}"),
                    Happening::VipLost,
                    format!("balancer-{node} held it"),
                );
                s.after(takeover, Event::Cluster(ClusterEvent::VipTakeover { vip: v as u32 }));
                moved += 1;
            }
        }
        // Every client whose current attempt or connection goes through it.
        let mut dropped = 0u64;
        for c in 0..self.clients.list.len() as u32 {
            let cl = &mut self.clients.list[c as usize];
            if cl.node == node as u8 && cl.state == ClientState::Orphaned {
                // Its server died under it and it has not noticed yet: the
                // slot it held here died with the node's state. It notices
                // its own drop as scheduled, holding nothing.
                cl.holds_slot = false;
                cl.node = NO_NODE;
                continue;
            }
            let cl = &self.clients.list[c as usize];
            if cl.node != node as u8
                || !matches!(
                    cl.state,
                    ClientState::Connecting | ClientState::Queued | ClientState::Connected
                )
            {
                continue;
            }
            if cl.state == ClientState::Connected {
                self.detach(c, now);
                dropped += 1;
            }
            let phase = self.ctx.rec.windows.phase(now);
            let cl = &mut self.clients.list[c as usize];
            if cl.state == ClientState::Connected {
                // A connecting client's outcome stays with its attempt.
                cl.attempt_phase = phase;
            }
            cl.holds_slot = false;
            cl.queue = NONE;
            cl.node = NO_NODE;
            self.set_state(c, ClientState::Orphaned);
            let cl = &self.clients.list[c as usize];
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
        self.ctx.rec.dropped(now, dropped);
        let how = match mode {
            CrashMode::Process => "process",
            CrashMode::Host => "host",
        };
        self.ctx.rec.event(
            now,
            format!("balancer-{node}"),
            Happening::Crash,
            format!("{how} crash, {dropped} tunnels dropped, {moved} VIP(s) move in {takeover}"),
        );
        if let Some(d) = restart_after {
            s.after(d, Event::Cluster(ClusterEvent::NodeRestart { node: node as u16 }));
        }
    }

    /// The failover takeover time has passed: a surviving node claims the VIP.
    pub(super) fn vip_takeover(&mut self, vip: usize, s: &mut Scheduler<Event>) {
        let now = s.now();
        if self.cluster.vip_owner[vip] != NONE {
            return;
        }
        let Some(node) = self.cluster.nodes.iter().position(|n| n.up) else {
            return; // nobody left: the VIP waits for a node to come back
        };
        self.cluster.vip_owner[vip] = node as u32;
        self.cluster.vip_outage_ns += now.since(self.cluster.vip_lost_at[vip]).0;
        self.ctx.rec.event(
            now,
            format!("vip-{vip}"),
            Happening::VipMoved,
            format!("now answered by balancer-{node}"),
        );
    }

    pub(super) fn node_restart(&mut self, node: usize, s: &mut Scheduler<Event>) {
        let now = s.now();
        let nd = &mut self.cluster.nodes[node];
        if nd.up {
            return;
        }
        nd.up = true;
        nd.tls.restart(now);
        for srv in 0..self.cluster.admin.len() {
            self.cluster.nodes[node]
                .lb
                .set_admin(srv as u32, self.cluster.admin[srv], now);
        }
        self.ctx.rec.event(
            now,
            format!("balancer-{node}"),
            Happening::Restarted,
            "node back".into(),
        );
        // keepalived without preemption: VIPs stay where they moved; any VIP
        // still unowned is claimed after the takeover time.
        let takeover = self.ctx.sc.balancer.failover.takeover();
        for v in 0..self.cluster.vip_owner.len() {
            if self.cluster.vip_owner[v] == NONE {
                s.after(takeover, Event::Cluster(ClusterEvent::VipTakeover { vip: v as u32 }));
            }
        }
        self.prime_checks(node, s);
    }

    /// Health checks of every server from `node`, spread over one interval.
    pub(super) fn prime_checks(&mut self, node: usize, s: &mut Scheduler<Event>) {
        let hc = &self.ctx.sc.balancer.health_check;
        if !hc.enabled {
            return;
        }
        let epoch = self.cluster.nodes[node].epoch;
        for srv in 0..self.servers.list.len() {
            let off = self.cluster.rng_health.random_range(0..hc.inter.0.max(1));
            s.after(
                SimDuration(off),
                Event::Cluster(ClusterEvent::Check {
                    node: node as u16,
                    epoch,
                    server: srv as u32,
                }),
            );
        }
    }

    /// Applies an administrative state on every live node at once (the
    /// runtime API), starting slowstart where a server enters a list.
    pub(super) fn apply_admin(&mut self, srv: u32, admin: Admin, s: &mut Scheduler<Event>) {
        let now = s.now();
        self.cluster.admin[srv as usize] = admin;
        for node in 0..self.cluster.nodes.len() {
            if !self.cluster.nodes[node].up {
                continue;
            }
            if self.cluster.nodes[node].lb.set_admin(srv, admin, now) {
                self.start_slowstart(node, srv, s);
            }
            if admin == Admin::Ready {
                self.drain_queue(node, srv, s);
            } else {
                self.reroute_server_queue(node, srv, s);
            }
        }
    }

    /// Queues a change for the backend updater's next tick.
    pub(super) fn for_updater(&mut self, srv: u32, admin: Admin, s: &mut Scheduler<Event>) {
        self.cluster.pending.push((srv, admin));
        if !self.cluster.updater_scheduled {
            self.cluster.updater_scheduled = true;
            let ui = self.ctx.sc.balancer.update_interval.0.max(1);
            let now = s.now().0;
            let tick = (now / ui + 1) * ui;
            s.at(SimTime(tick), Event::Cluster(ClusterEvent::UpdaterTick));
        }
    }

    pub(super) fn updater_tick(&mut self, s: &mut Scheduler<Event>) {
        let now = s.now();
        self.cluster.updater_scheduled = false;
        let pending = std::mem::take(&mut self.cluster.pending);
        let (mut added, mut removed) = (0, 0);
        for (srv, admin) in pending {
            match admin {
                Admin::Maint => {
                    removed += 1;
                    let t = now + self.cluster.stop_after[srv as usize];
                    let sv = &mut self.servers.list[srv as usize];
                    sv.next_crash = sv.next_crash.min(t);
                    s.at(t, Event::Cluster(ClusterEvent::StopServer { server: srv }));
                }
                _ => added += 1,
            }
            self.apply_admin(srv, admin, s);
        }
        self.ctx.rec.event(
            now,
            "updater".into(),
            Happening::ServersUpdated,
            format!("{added} added, {removed} removed from every node's list"),
        );
    }

    /// Scale-out, scale-in and rolling-restart faults.
    pub(super) fn deploy_fault(&mut self, index: usize, s: &mut Scheduler<Event>) {
        let now = s.now();
        match self.ctx.sc.faults[index] {
            Fault::ScaleOut { count, boot, .. } => {
                for _ in 0..count {
                    let srv = self.cluster.next_slot;
                    self.cluster.next_slot += 1;
                    self.cluster.provisioned[srv as usize] = true;
                    self.servers.ever_provisioned[srv as usize] = true;
                    if boot.0 == 0 {
                        let sv = &mut self.servers.list[srv as usize];
                        sv.up = true;
                        sv.cores.restart(now);
                    } else {
                        s.after(boot, Event::Servers(ServerEvent::Restart { server: srv }));
                    }
                    self.for_updater(srv, Admin::Ready, s);
                }
                self.ctx.rec.event(
                    now,
                    "fleet".into(),
                    Happening::ScaleOut,
                    format!("{count} server(s) booting; the balancers add them at the next updater tick"),
                );
            }
            Fault::ScaleIn { count, drain, .. } => {
                let victims: Vec<u32> = (0..self.cluster.provisioned.len() as u32)
                    .rev()
                    .filter(|&i| self.cluster.provisioned[i as usize])
                    .take(count as usize)
                    .collect();
                for &srv in &victims {
                    self.cluster.provisioned[srv as usize] = false;
                    self.cluster.stop_after[srv as usize] = drain;
                    self.for_updater(srv, Admin::Maint, s);
                }
                self.ctx.rec.event(
                    now,
                    "fleet".into(),
                    Happening::ScaleIn,
                    format!("servers {victims:?} deregistered; they stop {drain} after the next updater tick"),
                );
            }
            Fault::RollingRestart { .. } => {
                if let Some(first) = self.next_deploy_target(0) {
                    s.at(
                        now,
                        Event::Cluster(ClusterEvent::Deploy {
                            server: first,
                            phase: 0,
                        }),
                    );
                }
            }
            // The router sends only the three deployment kinds here.
            _ => unreachable!("not a deployment"),
        }
    }

    pub(super) fn next_deploy_target(&self, from: u32) -> Option<u32> {
        (from..self.cluster.provisioned.len() as u32).find(|&i| self.cluster.provisioned[i as usize])
    }

    /// One step of the rolling restart of `server`: 0 drain, 1 stop,
    /// 2 ready again (and the next server after the pause).
    pub(super) fn deploy_step(&mut self, server: u32, phase: u8, s: &mut Scheduler<Event>) {
        let now = s.now();
        let Some(Fault::RollingRestart {
            drain,
            restart_time,
            pause,
            ..
        }) = self
            .ctx
            .sc
            .faults
            .iter()
            .find(|f| matches!(f, Fault::RollingRestart { .. }))
            .cloned()
        else {
            return;
        };
        match phase {
            0 => {
                self.apply_admin(server, Admin::Drain, s);
                self.ctx.rec.event(
                    now,
                    format!("server-{server}"),
                    Happening::Drain,
                    format!("deploy: draining for {drain}"),
                );
                let t = now + drain;
                let sv = &mut self.servers.list[server as usize];
                sv.next_crash = sv.next_crash.min(t);
                s.at(t, Event::Cluster(ClusterEvent::Deploy { server, phase: 1 }));
            }
            1 => {
                if self.cluster.provisioned[server as usize] {
                    self.crash(server, CrashMode::Process, Some(restart_time), Happening::Stopped, s);
                    self.servers.list[server as usize].next_crash = self.next_scheduled_crash(server, now);
                }
                s.after(restart_time, Event::Cluster(ClusterEvent::Deploy { server, phase: 2 }));
            }
            _ => {
                if self.cluster.provisioned[server as usize] {
                    self.apply_admin(server, Admin::Ready, s);
                }
                if let Some(next) = self.next_deploy_target(server + 1) {
                    s.after(pause, Event::Cluster(ClusterEvent::Deploy { server: next, phase: 0 }));
                } else {
                    self.ctx.rec.event(
                        now,
                        "fleet".into(),
                        Happening::DeployDone,
                        "rolling restart complete".into(),
                    );
                }
            }
        }
    }

    /// A scale-in's drain is over: the process closes its connections
    /// (clients see a close frame at once) and exits for good.
    pub(super) fn stop_server(&mut self, server: u32, s: &mut Scheduler<Event>) {
        let now = s.now();
        self.crash(server, CrashMode::Process, None, Happening::Stopped, s);
        self.servers.list[server as usize].next_crash = self.next_scheduled_crash(server, now);
    }

    /// Waiters of `srv`'s queue on `node` go elsewhere (it left the list).
    pub(super) fn reroute_server_queue(&mut self, node: usize, srv: u32, s: &mut Scheduler<Event>) {
        let clients = &self.clients.list;
        let waiters = self.cluster.nodes[node].lb.drain_server_queue(srv, |w| {
            let cl = &clients[w.client as usize];
            cl.generation == w.generation && cl.state == ClientState::Queued && cl.queue != BACKEND
        });
        for w in waiters {
            self.clients.list[w.client as usize].add_part_us(super::Part::Queue, s.now().since(w.since));
            self.route(w.client, Some(srv), s);
        }
    }
}

impl World<'_> {
    /// The client's balancer node decides where a request goes.
    pub(super) fn route(&mut self, c: u32, exclude: Option<u32>, s: &mut Scheduler<Event>) {
        let (source, room, node) = {
            let cl = &self.clients.list[c as usize];
            (cl.source, cl.room, cl.node as usize)
        };
        let choice = self.cluster.nodes[node]
            .lb
            .choose(source, room, exclude, &mut self.cluster.rng_balancer);
        self.apply_choice(c, choice, s);
    }

    pub(super) fn apply_choice(&mut self, c: u32, choice: Choice, s: &mut Scheduler<Event>) {
        match choice {
            Choice::Server(srv) => self.forward(c, srv, s),
            Choice::QueueServer(srv) => self.enqueue(c, Some(srv), s),
            Choice::QueueBackend => self.enqueue(c, None, s),
            Choice::Refuse(r) => self.refuse(c, r, s),
        }
    }

    pub(super) fn forward(&mut self, c: u32, srv: u32, s: &mut Scheduler<Event>) {
        let node = self.clients.list[c as usize].node as usize;
        self.cluster.nodes[node].lb.on_forward(srv);
        self.set_state(c, ClientState::Connecting);
        let cl = &mut self.clients.list[c as usize];
        cl.mark = s.now();
        cl.server = srv;
        cl.holds_slot = true;
        cl.queue = NONE;
        let generation = cl.generation;
        let hop = self.ctx.sc.servers.backend_latency;
        let hop = self.ctx.net.delay(Link::Servers, s.now(), hop, Packet::Syn);
        s.after(hop, Event::Servers(ServerEvent::AtServer { client: c, generation }));
    }

    /// Gives back the client's slot; returns the node and server it was on.
    pub(super) fn release_slot(&mut self, c: u32) -> Option<(usize, u32)> {
        let cl = &mut self.clients.list[c as usize];
        if cl.holds_slot {
            cl.holds_slot = false;
            let (node, srv) = (cl.node as usize, cl.server);
            self.cluster.nodes[node].lb.on_close(srv);
            Some((node, srv))
        } else {
            None
        }
    }

    pub(super) fn enqueue(&mut self, c: u32, srv: Option<u32>, s: &mut Scheduler<Event>) {
        let now = s.now();
        self.set_state(c, ClientState::Queued);
        let cl = &mut self.clients.list[c as usize];
        cl.queue = srv.unwrap_or(BACKEND);
        let (generation, node) = (cl.generation, cl.node as usize);
        self.cluster.nodes[node].lb.enqueue(
            srv,
            Waiter {
                client: c,
                generation,
                since: now,
            },
        );
        s.after(
            self.ctx.sc.balancer.timeout_queue,
            Event::Clients(ClientEvent::QueueTimeout { client: c, generation }),
        );
    }

    pub(super) fn drain_queue(&mut self, node: usize, srv: u32, s: &mut Scheduler<Event>) {
        loop {
            let clients = &self.clients.list;
            let is_live = |w: &Waiter| {
                let cl = &clients[w.client as usize];
                cl.generation == w.generation && cl.state == ClientState::Queued
            };
            let Some((w, _)) = self.cluster.nodes[node].lb.next_waiter(srv, is_live) else {
                break;
            };
            self.clients.list[w.client as usize].add_part_us(Part::Queue, s.now().since(w.since));
            self.forward(w.client, srv, s);
        }
    }

    /// The server's process dies (`label` "crash") or exits on purpose
    /// ("stopped": a deploy or scale-in; clients get a close at once).
    pub(super) fn check_result(&mut self, node: usize, srv: u32, ok: bool, s: &mut Scheduler<Event>) {
        let now = s.now();
        let hc = &self.ctx.sc.balancer.health_check;
        // Events name the node only when there are several.
        let who = if self.cluster.nodes.len() > 1 {
            format!(" by balancer-{node}")
        } else {
            String::new()
        };
        match self.cluster.nodes[node].lb.record_check(srv, ok, hc, now) {
            Some(Transition::MarkedDown) => {
                self.ctx.rec.event(
                    now,
                    format!("server-{srv}"),
                    Happening::MarkedDown,
                    format!("health checks failed{who}"),
                );
                self.reroute_server_queue(node, srv, s);
            }
            Some(Transition::MarkedUp) => {
                self.ctx.rec.event(
                    now,
                    format!("server-{srv}"),
                    Happening::MarkedUp,
                    format!("health checks passed{who}"),
                );
                self.start_slowstart(node, srv, s);
                self.drain_queue(node, srv, s);
            }
            None => {}
        }
        let interval = self.cluster.nodes[node].lb.check_interval(srv, hc);
        let next = (self.cluster.nodes[node].check_started[srv as usize] + interval).max(now);
        let epoch = self.cluster.nodes[node].epoch;
        s.at(
            next,
            Event::Cluster(ClusterEvent::Check {
                node: node as u16,
                epoch,
                server: srv,
            }),
        );
    }
}

impl World<'_> {
    /// `srv` just entered `node`'s list UP: ramp its weight if `slowstart`
    /// is set (the ramp goes on in `WeightTick` events).
    pub(super) fn start_slowstart(&mut self, node: usize, srv: u32, s: &mut Scheduler<Event>) {
        let ss = self.ctx.sc.balancer.slowstart;
        if ss.0 > 0 {
            self.cluster.nodes[node].lb.slowstart(srv, s.now(), ss);
            s.after(
                slowstart_tick(ss),
                Event::Cluster(ClusterEvent::WeightTick {
                    node: node as u16,
                    server: srv,
                }),
            );
        }
    }
}

pub(super) fn slowstart_tick(ss: SimDuration) -> SimDuration {
    SimDuration((ss.0 / 20).max(SimDuration::from_millis(10).0))
}

impl World<'_> {
    /// Handles one of this tier's events.
    pub(super) fn cluster_event(&mut self, ev: ClusterEvent, s: &mut Scheduler<Event>) {
        let now = s.now();
        match ev {
            ClusterEvent::TlsDone { node, epoch, id } => self.tls_done(node as usize, epoch, id, s),
            ClusterEvent::VipTakeover { vip } => self.vip_takeover(vip as usize, s),
            ClusterEvent::NodeRestart { node } => self.node_restart(node as usize, s),
            ClusterEvent::UpdaterTick => self.updater_tick(s),
            ClusterEvent::StopServer { server } => self.stop_server(server, s),
            ClusterEvent::Deploy { server, phase } => self.deploy_step(server, phase, s),
            ClusterEvent::Check { node, epoch, server } => {
                let nd = &mut self.cluster.nodes[node as usize];
                if !nd.up || nd.epoch != epoch {
                    return; // the node died: its checks stop (restart primes new ones)
                }
                if nd.lb.admin(server) == Admin::Maint {
                    // Not in the list: not checked, look again later.
                    let inter = self.ctx.sc.balancer.health_check.inter;
                    s.after(inter, Event::Cluster(ClusterEvent::Check { node, epoch, server }));
                    return;
                }
                nd.check_started[server as usize] = now;
                let sv = &self.servers.list[server as usize];
                let rtt = SimDuration(2 * self.ctx.sc.servers.backend_latency.0);
                let (ok, d) = if sv.up {
                    (true, rtt)
                } else {
                    match sv.crash_mode {
                        CrashMode::Process => (false, rtt),
                        CrashMode::Host => (false, self.ctx.sc.balancer.health_check.timeout()),
                    }
                };
                s.after(
                    d,
                    Event::Cluster(ClusterEvent::CheckResult {
                        node,
                        epoch,
                        server,
                        ok,
                    }),
                );
            }
            ClusterEvent::CheckResult {
                node,
                epoch,
                server,
                ok,
            } => {
                let nd = &self.cluster.nodes[node as usize];
                if nd.up && nd.epoch == epoch {
                    self.check_result(node as usize, server, ok, s);
                }
            }
            ClusterEvent::WeightTick { node, server } => {
                let ss = self.ctx.sc.balancer.slowstart;
                let nd = &mut self.cluster.nodes[node as usize];
                if !nd.up {
                    return;
                }
                if nd.lb.slowstart(server, now, ss) {
                    s.after(
                        slowstart_tick(ss),
                        Event::Cluster(ClusterEvent::WeightTick { node, server }),
                    );
                }
                self.drain_queue(node as usize, server, s);
            }
        }
    }
}

impl Tier for Cluster {
    fn name(&self) -> &'static str {
        "cluster"
    }

    /// Every live node's handshake station keeps track of its items; no
    /// VIP is answered by a dead node.
    fn check(&self, _ctx: &Ctx) -> Vec<String> {
        let mut bad = Vec::new();
        for (k, node) in self.nodes.iter().enumerate().filter(|(_, n)| n.up) {
            if !node.tls.conserved() {
                bad.push(format!("balancer node {k}'s handshake station lost track of an item"));
            }
        }
        for (v, &owner) in self.vip_owner.iter().enumerate() {
            if owner != NONE && !self.nodes[owner as usize].up {
                bad.push(format!("VIP {v} is answered by balancer node {owner}, which is down"));
            }
        }
        bad
    }

    fn metrics(&self, ctx: &Ctx, out: &mut MetricSink) {
        let (sc, rec) = (ctx.sc, &ctx.rec);
        out.set(K::VipOutageS, self.vip_outage(ctx.end).as_secs_f64());
        out.set(
            K::TlsFullHandshakes,
            self.nodes.iter().map(|n| n.full_handshakes).sum::<u64>() as f64,
        );
        out.set(
            K::TlsResumedHandshakes,
            self.nodes.iter().map(|n| n.resumed_handshakes).sum::<u64>() as f64,
        );
        out.set(
            K::BalancerCpuUtilMax,
            samples_max(&rec.samples, sc, |s| {
                s.nodes.iter().map(|n| n.cpu_util).fold(f64::NAN, f64::max)
            }),
        );
        out.set(
            K::NodeConnectionsMax,
            samples_max(&rec.samples, sc, |s| {
                s.nodes.iter().map(|n| n.connections as f64).fold(f64::NAN, f64::max)
            }),
        );
    }

    /// Each balancer node and each VIP.
    fn components(&self, _ctx: &Ctx) -> Vec<Component> {
        let nodes = (0..self.nodes.len() as u32).map(|i| Component {
            tier: "cluster",
            kind: ComponentKind::BalancerNode,
            index: i,
            name: format!("balancer-{i}"),
        });
        let vips = (0..self.vip_owner.len() as u32).map(|v| Component {
            tier: "cluster",
            kind: ComponentKind::Vip,
            index: v,
            name: format!("vip-{v}"),
        });
        nodes.chain(vips).collect()
    }
}
