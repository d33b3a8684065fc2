//! The seams between tiers, each one named function over the tiers it
//! joins: the calls from one tier into another (the web tier's so far;
//! the other tiers' handlers are still `World` methods, in the file of the
//! tier whose event starts them) and the invariants that relate two tiers.
//! Seams are direct calls, never events scheduled at `now`: the order of
//! events (and so every output) is that of the code before the split.

use super::web::{WEB_HANDSHAKE, WebDbCall, WebTier};
use super::{
    ClientState, Clients, Cluster, Ctx, Event, Game, STATE_NAMES, Servers, storage::DbCaller, storage::Storage,
};
use crate::engine::Scheduler;
use crate::model::station::Admit;
use crate::scenario::Scenario;

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

// ---------------------------------------------------------------------
// Invariants

/// Clients × balancer: for every live node, its per-server slot counts equal
/// the clients holding a slot through it and its queues hold exactly the
/// clients queued at it; no client holds a slot at, or waits in, a dead node.
pub fn node_holds_its_clients(clients: &Clients, cluster: &Cluster, sc: &Scenario) -> Vec<String> {
    let mut bad = Vec::new();
    let n_srv = sc.max_servers() as usize;
    let n_nodes = cluster.nodes.len();
    // Slots held per (node, server), and queued clients per node.
    let mut slots = vec![0u32; n_srv * n_nodes];
    let mut queued_at = vec![0u64; n_nodes];
    for (c, cl) in clients.list.iter().enumerate() {
        if cl.holds_slot || cl.state == ClientState::Queued {
            let node = cl.node as usize;
            if node >= n_nodes || !cluster.nodes[node].up {
                bad.push(format!(
                    "client {c} holds a slot or waits at balancer node {node}, which is down or does not exist"
                ));
                continue;
            }
            if cl.holds_slot {
                slots[node * n_srv + cl.server as usize] += 1;
            }
            if cl.state == ClientState::Queued {
                queued_at[node] += 1;
            }
        }
    }
    for i in 0..n_srv {
        for (k, node) in cluster.nodes.iter().enumerate().filter(|(_, n)| n.up) {
            let b = node.lb.conns(i as u32);
            let held = slots[k * n_srv + i];
            if b != held {
                bad.push(format!(
                    "balancer node {k} counts {b} sessions on server {i} but {held} clients hold a slot there"
                ));
            }
        }
    }
    for (k, node) in cluster.nodes.iter().enumerate().filter(|(_, n)| n.up) {
        let in_queues: u64 =
            (0..n_srv as u32).map(|s| node.lb.queued(s) as u64).sum::<u64>() + node.lb.backend_queued() as u64;
        if queued_at[k] != in_queues {
            bad.push(format!(
                "{} clients queued at balancer node {k} but its queues hold {in_queues}",
                queued_at[k]
            ));
        }
    }
    bad
}

/// Clients × servers: the servers' connection lists hold exactly the
/// connected clients, each in the slot it believes it has.
pub fn servers_list_connected_clients(clients: &Clients, servers: &Servers) -> Vec<String> {
    let mut bad = Vec::new();
    let connected = clients.state_counts[ClientState::Connected as usize];
    let listed: u64 = servers.list.iter().map(|s| s.conns.len() as u64).sum();
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
    bad
}

/// Clients × game: every connected member of a room is listed once, in the
/// group of its server and the slot it believes it has.
pub fn rooms_list_connected_members(clients: &Clients, game: &Game) -> Vec<String> {
    let mut bad = Vec::new();
    let mut in_rooms = 0u64;
    for (r, room) in game.rooms.iter().enumerate() {
        for (g, group) in room.groups.iter().enumerate() {
            for (slot, m) in group.members.iter().enumerate() {
                in_rooms += 1;
                let cl = &clients.list[m.client as usize];
                if cl.state != ClientState::Connected
                    || cl.room_idx as usize != r
                    || cl.group as usize != g
                    || cl.gslot as usize != slot
                    || cl.server != group.server
                {
                    bad.push(format!(
                        "room {r} lists client {} which is {} elsewhere",
                        m.client, STATE_NAMES[cl.state as usize]
                    ));
                    break;
                }
            }
        }
    }
    let with_room = clients
        .list
        .iter()
        .filter(|c| c.state == ClientState::Connected && c.room_idx != super::NONE)
        .count() as u64;
    if in_rooms != with_room {
        bad.push(format!(
            "{with_room} connected clients have a room but rooms list {in_rooms}"
        ));
    }
    bad
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
