//! The seams between tiers, each one named function over the tiers it
//! joins: the calls from one tier into another (the web and game tiers'
//! so far; the other tiers' handlers are still `World` methods, in the
//! file of the tier whose event starts them) and the invariants that
//! relate two tiers.
//! Seams are direct calls, never events scheduled at `now`: the order of
//! events (and so every output) is that of the code before the split.

use super::web::{WEB_HANDSHAKE, WebDbCall, WebTier};
use super::{
    Client, ClientState, Clients, Cluster, Ctx, Event, Game, Job, NONE, STATE_NAMES, ServerEvent, Servers,
    storage::DbCaller, storage::Storage,
};
use crate::engine::Scheduler;
use crate::model::room::Member;
use crate::model::station::Admit;
use crate::scenario::Scenario;
use crate::time::{SimDuration, SimTime};

// ---------------------------------------------------------------------
// Calls

/// Clients × cluster × web: a `web` population's client arrives. The
/// clients tier draws its RTT and session length (its stream), the cluster
/// its VIP; the web tier starts the session with a first request.
pub fn web_session_arrives(
    clients: &mut Clients,
    cluster: &mut Cluster,
    web: &mut WebTier,
    ctx: &mut Ctx,
    pop: usize,
    s: &mut Scheduler<Event>,
) {
    let p = &ctx.sc.populations[pop];
    let rtt = p.rtt.sample(&mut clients.rng);
    let session = p.session.sample(&mut clients.rng);
    let vip = cluster.pick_vip();
    web.arrive(ctx, pop, rtt, session, vip, s);
}

/// Web × cluster: a web request reaches its VIP; the node that owns it (if
/// any) runs its TLS handshake on its cores when the session has none there.
pub fn web_request_at_node(
    web: &mut WebTier,
    cluster: &mut Cluster,
    ctx: &mut Ctx,
    req: u32,
    s: &mut Scheduler<Event>,
) {
    let owner = cluster.vip_owner[web.vip(req) as usize];
    let Some(node) = web.at_node(ctx, req, owner, s) else {
        return;
    };
    let now = s.now();
    cluster.nodes[node].full_handshakes += 1;
    match cluster.nodes[node].tls.arrive(now, (req, WEB_HANDSHAKE)) {
        Admit::Started(id) => cluster.schedule_handshake(ctx.sc, node, id, false, s),
        Admit::Queued => {}
        Admit::Rejected(_) => unreachable!("an up node's handshake queue is unbounded"),
    }
}

/// Cluster × web: node `node` finished a web request's TLS handshake (its
/// station's item tagged `WEB_HANDSHAKE`); the session remembers the node
/// and the request goes on after one client round trip
/// (`WebTier::tls_done`).
#[inline]
pub fn web_tls_done(web: &mut WebTier, ctx: &mut Ctx, node: usize, req: u32, s: &mut Scheduler<Event>) {
    web.tls_done(ctx, node, req, s);
}

/// Cluster × web: a crashed node's handshake queue and cores held these
/// items; the web requests among them (`WEB_HANDSHAKE`) fail
/// (`WebTier::handshake_lost`), in queue order. WebSocket clients are
/// dropped by the cluster with the node's other clients.
pub fn web_handshakes_lost(web: &mut WebTier, lost: Vec<(u32, u32)>, s: &mut Scheduler<Event>) {
    for (req, generation) in lost {
        if generation == WEB_HANDSHAKE {
            web.handshake_lost(req, s);
        }
    }
}

/// Web × storage: an app worker makes its next database call (or, with
/// none left, finishes).
pub fn web_next_db_call(web: &mut WebTier, storage: &mut Storage, ctx: &mut Ctx, req: u32, s: &mut Scheduler<Event>) {
    match web.next_db_call(ctx, req, s) {
        Some(WebDbCall::Read(key)) => storage.db_read(ctx, key, 1, DbCaller::Web { req }, s),
        Some(WebDbCall::Write(key)) => storage.db_write(ctx, vec![key], 1, DbCaller::Web { req }, s),
        None => {}
    }
}

/// Storage × web: a worker's database call came back; the worker goes on
/// with its next one, or the request fails.
pub fn web_db_done(
    web: &mut WebTier,
    storage: &mut Storage,
    ctx: &mut Ctx,
    req: u32,
    ok: bool,
    s: &mut Scheduler<Event>,
) {
    if web.db_done(ctx, req, ok, s) {
        web_next_db_call(web, storage, ctx, req, s);
    }
}

/// Game × servers × storage: a move was validated on `srv`; it goes to
/// Redis (if `srv` holds a connection pool) or, without a cache, straight
/// to the database.
pub fn move_to_storage(
    game: &Game,
    servers: &Servers,
    storage: &mut Storage,
    ctx: &mut Ctx,
    msg: u32,
    srv: u32,
    s: &mut Scheduler<Event>,
) {
    let sc = ctx.sc;
    if !storage.is_on() || sc.game.is_none() {
        return;
    }
    let m = &game.msgs[msg as usize];
    let (room, g, seq) = (m.room, m.game, m.seq);
    let r = &game.rooms[room as usize];
    let ends = r.game == g && !r.active && r.moves_made == seq + 1 && r.moves_made >= r.moves_total;
    let usable = sc.cache.is_some() && Storage::cache_usable(sc, servers, srv);
    storage.write_move(ctx, usable, (room, g, seq, ends), s);
}

/// Servers × game × clients: a job joins a server's queue and starts if a
/// core is free; its cost is computed when it starts (`job_cost`: a
/// fan-out walks the room's members then). (Only for a server that is up:
/// the callers check.)
#[inline]
pub fn push_job(
    servers: &mut Servers,
    game: &mut Game,
    clients: &Clients,
    ctx: &mut Ctx,
    srv: u32,
    job: Job,
    s: &mut Scheduler<Event>,
) {
    let now = s.now();
    let sv = &mut servers.list[srv as usize];
    debug_assert!(sv.up, "a job for server {srv}, which is down");
    if matches!(job, Job::Accept { .. }) {
        sv.accepting += 1;
    }
    if let Admit::Started(id) = sv.cores.arrive(now, job) {
        start_job(servers, game, clients, ctx, srv, id, job, s);
    }
}

/// Servers × game × clients: starts the queued jobs `srv`'s free cores
/// can take.
pub fn start_jobs(
    servers: &mut Servers,
    game: &mut Game,
    clients: &Clients,
    ctx: &mut Ctx,
    srv: u32,
    s: &mut Scheduler<Event>,
) {
    let now = s.now();
    while let Some((id, &job)) = servers.list[srv as usize].cores.next(now) {
        start_job(servers, game, clients, ctx, srv, id, job, s);
    }
}

/// A core took `job` (id `id`): its cost decides when it is done.
#[allow(clippy::too_many_arguments)]
#[inline]
fn start_job(
    servers: &mut Servers,
    game: &mut Game,
    clients: &Clients,
    ctx: &mut Ctx,
    srv: u32,
    id: u32,
    job: Job,
    s: &mut Scheduler<Event>,
) {
    let epoch = servers.list[srv as usize].cores.epoch() as u16;
    let cost = job_cost(servers, game, clients, ctx, srv, job, s);
    s.after(
        cost,
        Event::Servers(ServerEvent::CoreDone {
            server: srv,
            epoch,
            job: id,
        }),
    );
}

/// Servers × game × clients: core time of a job, computed when it starts,
/// on the servers' stream. An accept sends a rejoining member its room's
/// state (`Game::sync_cost`); a receive publishes when other servers host
/// the room; a fan-out computes and records every recipient's delivery
/// here (`Game::fan_out`, cut by the server's next crash).
#[inline]
fn job_cost(
    servers: &mut Servers,
    game: &mut Game,
    clients: &Clients,
    ctx: &mut Ctx,
    srv: u32,
    job: Job,
    s: &mut Scheduler<Event>,
) -> SimDuration {
    let sv = &ctx.sc.servers;
    match job {
        Job::Accept { client, .. } => {
            let base = sv.connect_cost.sample(&mut servers.rng);
            base + game.sync_cost(ctx.sc, clients.list[client as usize].room_idx)
        }
        Job::Receive { msg } => {
            let mut c = sv.receive_cost.sample(&mut servers.rng);
            let m = &game.msgs[msg as usize];
            if game.rooms[m.room as usize].remote_servers(srv).next().is_some() {
                c = c + sv.publish_cost.sample(&mut servers.rng);
            }
            c
        }
        Job::FanOut { msg, relayed, ready } => {
            let cut = servers.list[srv as usize].next_crash;
            game.fan_out(ctx, clients, &mut servers.rng, cut, srv, msg, relayed, ready, s)
        }
    }
}

/// Clients × game: a client was accepted on `srv`: it joins its room's
/// group there (its group and slot are written back to the client); it
/// moves at once if it is its turn, else the room may start a game.
pub fn join_room(game: &mut Game, clients: &mut Clients, ctx: &mut Ctx, c: u32, srv: u32, s: &mut Scheduler<Event>) {
    let now = s.now();
    let cl = &clients.list[c as usize];
    let r = cl.room_idx;
    if r == NONE {
        return;
    }
    let half = (cl.rtt.0 / 2).min(u32::MAX as u64) as u32;
    let room = &mut game.rooms[r as usize];
    let (g, slot) = room.join(
        srv,
        Member {
            client: c,
            half_rtt_ns: half,
        },
        cl.generation,
    );
    let (active, synced, to_move) = (room.active, room.moves_made > 0, room.to_move());
    let cl = &mut clients.list[c as usize];
    cl.group = g;
    cl.gslot = slot;
    if active && synced {
        ctx.rec.count(now, |k| k.state_syncs += 1);
    }
    if active && to_move == Some(c) {
        // Back (or new) with the state: it is this player's turn.
        game.schedule_move(ctx, clients, r, now + SimDuration(half as u64), s);
    } else {
        game.maybe_start(ctx, clients, r, s);
    }
}

/// Clients × game: a client leaves its room's group (disconnected or
/// crashed); the member moved into its slot learns its new slot.
pub fn leave_room(game: &mut Game, clients: &mut Clients, c: u32) {
    let cl = &clients.list[c as usize];
    if cl.room_idx == NONE || cl.group == NONE {
        return;
    }
    let (r, g, slot) = (cl.room_idx, cl.group, cl.gslot);
    if let Some(moved) = game.rooms[r as usize].leave(g, slot) {
        clients.list[moved as usize].gslot = slot;
    }
    let cl = &mut clients.list[c as usize];
    cl.group = NONE;
    cl.gslot = NONE;
}

/// Clients × game: a client left for good; a player's departure ends its
/// room's games (`Game::client_gone`).
#[inline]
pub fn client_gone(clients: &Clients, game: &mut Game, ctx: &mut Ctx, c: u32, now: SimTime) {
    let r = clients.list[c as usize].room_idx;
    game.client_gone(ctx, r, c, now);
}

/// Game × clients × servers: the move of the player to move reaches its
/// server (`Game::move_at_server`, which reads the sender's state); it
/// queues there as a `Job::Receive`.
#[inline]
pub fn move_at_server(
    game: &mut Game,
    servers: &mut Servers,
    clients: &Clients,
    ctx: &mut Ctx,
    room: u32,
    token: u16,
    s: &mut Scheduler<Event>,
) {
    if let Some((srv, msg)) = game.move_at_server(ctx, clients, room, token, s.now()) {
        push_job(servers, game, clients, ctx, srv, Job::Receive { msg }, s);
    }
}

/// Game × servers × storage × clients: the sender's server validated the
/// move: the game advances (`Game::validate`), the move goes to storage
/// (`move_to_storage`), a local fan-out is queued on `srv` if it has other
/// members of the room, and the move is published for the other servers
/// (`Game::publish`).
#[allow(clippy::too_many_arguments)]
pub fn move_validated(
    game: &mut Game,
    servers: &mut Servers,
    clients: &Clients,
    storage: &mut Storage,
    ctx: &mut Ctx,
    msg: u32,
    srv: u32,
    s: &mut Scheduler<Event>,
) {
    let now = s.now();
    game.validate(ctx, msg, s);
    move_to_storage(game, servers, storage, ctx, msg, srv, s);
    let (local, remote) = game.copies(msg, srv);
    if local {
        let job = Job::FanOut {
            msg,
            relayed: false,
            ready: now,
        };
        push_job(servers, game, clients, ctx, srv, job, s);
    }
    game.publish(ctx, clients, msg, srv, remote, s);
}

/// Game × servers × clients: a relayed copy reaches `server`; it is
/// fanned out there if the server is up, else lost.
pub fn relay_deliver(
    game: &mut Game,
    servers: &mut Servers,
    clients: &Clients,
    ctx: &mut Ctx,
    msg: u32,
    server: u32,
    s: &mut Scheduler<Event>,
) {
    let now = s.now();
    let latency = now.since(game.msgs[msg as usize].validated_at).0;
    ctx.rec.latency(now, |r| &mut r.relay, latency);
    if servers.list[server as usize].up {
        let job = Job::FanOut {
            msg,
            relayed: true,
            ready: now,
        };
        push_job(servers, game, clients, ctx, server, job, s);
    } else {
        // Redis pub/sub is at-most-once; a dead Kafka consumer's members
        // are gone too. Either way this server's copy is lost.
        ctx.rec.count(now, |k| k.relay_copies_lost += 1);
        game.copy_done(ctx, clients, msg, true);
    }
}

// ---------------------------------------------------------------------
// Invariants

/// The invariants between the clients and the tiers that list them,
/// checked in one pass over the clients (a million at the 1M game: each
/// pass read 144 MB): [`NodeHoldsItsClients`], [`ServersListConnectedClients`]
/// and [`RoomsListConnectedMembers`], in that order.
pub fn clients_are_listed(
    clients: &Clients,
    cluster: &Cluster,
    servers: &Servers,
    game: &Game,
    sc: &Scenario,
) -> Vec<String> {
    let mut nodes = NodeHoldsItsClients::new(cluster, sc);
    let mut conns = ServersListConnectedClients::default();
    let mut rooms = RoomsListConnectedMembers::default();
    for (c, cl) in clients.list.iter().enumerate() {
        nodes.visit(c, cl, cluster);
        conns.visit(c, cl, servers);
        rooms.visit(c, cl, clients, game);
    }
    let mut bad = nodes.finish(cluster);
    bad.extend(conns.finish(clients, servers));
    bad.extend(rooms.finish(game));
    bad
}

/// Clients × balancer: for every live node, its per-server slot counts equal
/// the clients holding a slot through it and its queues hold exactly the
/// clients queued at it; no client holds a slot at, or waits in, a dead node.
struct NodeHoldsItsClients {
    bad: Vec<String>,
    n_srv: usize,
    /// Slots held per (node, server), and queued clients per node.
    slots: Vec<u32>,
    queued_at: Vec<u64>,
}

impl NodeHoldsItsClients {
    fn new(cluster: &Cluster, sc: &Scenario) -> Self {
        let n_srv = sc.max_servers() as usize;
        let n_nodes = cluster.nodes.len();
        NodeHoldsItsClients {
            bad: Vec::new(),
            n_srv,
            slots: vec![0; n_srv * n_nodes],
            queued_at: vec![0; n_nodes],
        }
    }

    #[inline]
    fn visit(&mut self, c: usize, cl: &Client, cluster: &Cluster) {
        if cl.holds_slot || cl.state == ClientState::Queued {
            let node = cl.node as usize;
            if node >= cluster.nodes.len() || !cluster.nodes[node].up {
                self.bad.push(format!(
                    "client {c} holds a slot or waits at balancer node {node}, which is down or does not exist"
                ));
                return;
            }
            if cl.holds_slot {
                self.slots[node * self.n_srv + cl.server as usize] += 1;
            }
            if cl.state == ClientState::Queued {
                self.queued_at[node] += 1;
            }
        }
    }

    fn finish(mut self, cluster: &Cluster) -> Vec<String> {
        let n_srv = self.n_srv;
        for i in 0..n_srv {
            for (k, node) in cluster.nodes.iter().enumerate().filter(|(_, n)| n.up) {
                let b = node.lb.conns(i as u32);
                let held = self.slots[k * n_srv + i];
                if b != held {
                    self.bad.push(format!(
                        "balancer node {k} counts {b} sessions on server {i} but {held} clients hold a slot there"
                    ));
                }
            }
        }
        for (k, node) in cluster.nodes.iter().enumerate().filter(|(_, n)| n.up) {
            let in_queues: u64 =
                (0..n_srv as u32).map(|s| node.lb.queued(s) as u64).sum::<u64>() + node.lb.backend_queued() as u64;
            if self.queued_at[k] != in_queues {
                self.bad.push(format!(
                    "{} clients queued at balancer node {k} but its queues hold {in_queues}",
                    self.queued_at[k]
                ));
            }
        }
        self.bad
    }
}

/// Clients × servers: the servers' connection lists hold exactly the
/// connected clients, each in the slot it believes it has.
///
/// Checked from the clients' side, in their order (reading a million
/// clients in the lists' order cost 2.6 % of the 1M game): each connected
/// client is in its slot of its server's list, and the lists hold as many
/// entries as there are connected clients, both as seen in the pass and
/// as tracked. Distinct clients hold distinct slots, so with equal counts
/// every listed entry is one of them. Only when that fails are the lists
/// walked entry by entry, to name the first wrong one per server.
struct ServersListConnectedClients {
    /// Connected clients seen, and whether each was in its slot.
    seen: u64,
    in_slots: bool,
}

impl Default for ServersListConnectedClients {
    fn default() -> Self {
        ServersListConnectedClients {
            seen: 0,
            in_slots: true,
        }
    }
}

impl ServersListConnectedClients {
    #[inline]
    fn visit(&mut self, c: usize, cl: &Client, servers: &Servers) {
        if cl.state == ClientState::Connected {
            self.seen += 1;
            self.in_slots &= servers
                .list
                .get(cl.server as usize)
                .and_then(|s| s.conns.get(cl.slot as usize))
                .is_some_and(|&x| x as usize == c);
        }
    }

    fn finish(self, clients: &Clients, servers: &Servers) -> Vec<String> {
        let connected = clients.state_counts[ClientState::Connected as usize];
        let listed: u64 = servers.list.iter().map(|s| s.conns.len() as u64).sum();
        if self.in_slots && self.seen == listed && connected == listed {
            return Vec::new();
        }
        let mut bad = Vec::new();
        if connected != listed {
            bad.push(format!("{connected} clients connected but servers list {listed}"));
        }
        for (i, s) in servers.list.iter().enumerate() {
            for (slot, &c) in s.conns.iter().enumerate() {
                let cl = &clients.list[c as usize];
                if cl.state != ClientState::Connected || cl.server as usize != i || cl.slot as usize != slot {
                    bad.push(format!(
                        "server {i} lists client {c} which is {} on server {}",
                        STATE_NAMES[cl.state as usize], cl.server
                    ));
                    break;
                }
            }
        }
        if bad.is_empty() {
            // Every entry is a connected client in its slot, yet some
            // connected client is not listed: more are connected than counted.
            bad.push(format!(
                "{} clients are connected but servers list {listed}, each entry right",
                self.seen
            ));
        }
        bad
    }
}

/// Clients × game: every connected member of a room is listed once, in the
/// group of its server and the slot it believes it has.
///
/// Checked from the clients' side, reading them in order: each connected
/// client with a room is in its slot there (same generation, its server's
/// group), and the rooms list as many members as there are such clients.
/// Distinct clients hold distinct slots, so with equal counts every listed
/// member is one of them: the same as checking each member's client, without
/// reading a million clients at random.
#[derive(Default)]
struct RoomsListConnectedMembers {
    bad: Vec<String>,
    with_room: u64,
}

impl RoomsListConnectedMembers {
    #[inline]
    fn visit(&mut self, c: usize, cl: &Client, clients: &Clients, game: &Game) {
        if cl.room_idx == NONE {
            return;
        }
        if cl.state != ClientState::Connected {
            // A move's arrival trusts the room's word that a player is
            // connected (`Room::member_player`).
            if let Some((server, _)) = game
                .rooms
                .get(cl.room_idx as usize)
                .and_then(|r| r.member_player(c as u32))
            {
                self.bad.push(format!(
                    "room {} places player {c} on server {server}, but it is {}",
                    cl.room_idx, STATE_NAMES[cl.state as usize]
                ));
            }
            return;
        }
        self.with_room += 1;
        let r = cl.room_idx;
        let room = game.rooms.get(r as usize);
        let slot = room
            .and_then(|room| room.groups.get(cl.group as usize))
            .and_then(|g| Some((g.server, g.members.get(cl.gslot as usize)?)));
        // A player's generation is mirrored in its room; a spectator's is
        // not kept.
        let generation_ok = room
            .and_then(|room| room.player_generation(c as u32))
            .is_none_or(|g| g == cl.generation)
            && room
                .and_then(|room| room.member_player(c as u32))
                .is_none_or(|at| at == (cl.server, cl.generation));
        match slot {
            Some((server, m)) if m.client as usize == c && generation_ok && server == cl.server => {}
            Some((_, m)) if m.client as usize != c => {
                let other = clients
                    .list
                    .get(m.client as usize)
                    .map_or("unknown", |o| STATE_NAMES[o.state as usize]);
                self.bad.push(format!(
                    "room {r} lists client {} in the slot of connected client {c}; client {} is {other} elsewhere",
                    m.client, m.client
                ));
            }
            Some(_) => self.bad.push(format!(
                "room {r} lists client {c} with another generation or server than the client's"
            )),
            None => self.bad.push(format!(
                "client {c} is connected in room {r} but the room does not list it"
            )),
        }
    }

    fn finish(mut self, game: &Game) -> Vec<String> {
        let in_rooms: u64 = game
            .rooms
            .iter()
            .flat_map(|r| r.groups.iter())
            .map(|g| g.members.len() as u64)
            .sum();
        if in_rooms != self.with_room {
            self.bad.push(format!(
                "{} connected clients have a room but rooms list {in_rooms}",
                self.with_room
            ));
        }
        self.bad
    }
}

/// Clients × storage: a client waiting for its room's history is still
/// connecting to the server that asked for it.
pub fn rehydrations_wait_for_connecting_clients(clients: &Clients, storage: &Storage) -> Vec<String> {
    let mut bad = Vec::new();
    for (c, generation, srv, done) in storage.rehydrations() {
        let cl = &clients.list[c as usize];
        if cl.generation == generation && !done && (cl.state != ClientState::Connecting || cl.server != srv) {
            bad.push(format!(
                "client {c} waits for its room's history but is not connecting to server {srv}"
            ));
        }
    }
    bad
}
