//! Invariant checkers, run at the end of every replication.
//!
//! Conservation of clients: every client that arrived is in exactly one
//! state, the servers' connection lists hold exactly the connected clients,
//! each balancer node's queues hold exactly the clients queued there, and
//! each node's per-server slot counts equal the clients holding a slot
//! through it; no VIP is answered by a dead node. A violation is a
//! bug in wscap, never in the scenario.

use crate::sim::{ClientState, N_STATES, STATE_NAMES, World};

/// Returns every violated invariant, empty when all hold.
pub fn check(w: &World) -> Vec<String> {
    let mut bad = Vec::new();
    let mut states = [0u64; N_STATES];
    let n_srv = w.servers.list.len();
    let n_nodes = w.cluster.nodes.len();
    // Slots held per (node, server), and queued clients per node.
    let mut slots = vec![0u32; n_srv * n_nodes];
    let mut queued_at = vec![0u64; n_nodes];
    for (c, cl) in w.clients.list.iter().enumerate() {
        states[cl.state as usize] += 1;
        if cl.holds_slot || cl.state == ClientState::Queued {
            let node = cl.node as usize;
            if node >= n_nodes || !w.cluster.nodes[node].up {
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
    if states != w.clients.state_counts {
        bad.push(format!(
            "state counts drifted: counted {states:?}, tracked {:?}",
            w.clients.state_counts
        ));
    }
    let total: u64 = states.iter().sum();
    if total != w.clients.list.len() as u64 {
        bad.push(format!(
            "{} clients arrived but {total} are in a state",
            w.clients.list.len()
        ));
    }
    let connected = states[ClientState::Connected as usize];
    let listed: u64 = w.servers.list.iter().map(|s| s.conns.len() as u64).sum();
    if connected != listed {
        bad.push(format!("{connected} clients connected but servers list {listed}"));
    }
    for (i, s) in w.servers.list.iter().enumerate() {
        for (slot, &c) in s.conns.iter().enumerate() {
            let cl = &w.clients.list[c as usize];
            if cl.state != ClientState::Connected || cl.server as usize != i || cl.slot as usize != slot {
                bad.push(format!(
                    "server {i} lists client {c} which is {} on server {}",
                    STATE_NAMES[cl.state as usize], cl.server
                ));
                break;
            }
        }
        if !s.up && !s.conns.is_empty() {
            bad.push(format!("server {i} is down but holds {} connections", s.conns.len()));
        }
        for (k, node) in w.cluster.nodes.iter().enumerate().filter(|(_, n)| n.up) {
            let b = node.lb.conns(i as u32);
            let held = slots[k * n_srv + i];
            if b != held {
                bad.push(format!(
                    "balancer node {k} counts {b} sessions on server {i} but {held} clients hold a slot there"
                ));
            }
        }
    }
    // Rooms: every connected member is listed once, in the right place.
    let mut in_rooms = 0u64;
    for (r, room) in w.game.rooms.iter().enumerate() {
        for (g, group) in room.groups.iter().enumerate() {
            for (slot, m) in group.members.iter().enumerate() {
                in_rooms += 1;
                let cl = &w.clients.list[m.client as usize];
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
    let with_room = w
        .clients
        .list
        .iter()
        .filter(|c| c.state == ClientState::Connected && c.room_idx != crate::sim::NONE)
        .count() as u64;
    if in_rooms != with_room {
        bad.push(format!(
            "{with_room} connected clients have a room but rooms list {in_rooms}"
        ));
    }
    // Messages: every move sent is validated, lost, or still on its way;
    // every server copy is fanned out, lost, or still on its way.
    let t = &w.game.tally;
    let unvalidated = w.game.msgs.iter().filter(|(_, m)| !m.validated).count() as u64;
    if t.moves_sent != t.moves_validated + t.moves_lost + unvalidated {
        bad.push(format!(
            "moves not conserved: {} sent != {} validated + {} lost + {} in flight",
            t.moves_sent, t.moves_validated, t.moves_lost, unvalidated
        ));
    }
    let copies_in_flight: u64 = w
        .game
        .msgs
        .iter()
        .map(|(_, m)| (m.pending - m.in_batch as u32) as u64)
        .sum();
    if t.copies_created != t.copies_fanned_out + t.copies_lost + copies_in_flight {
        bad.push(format!(
            "server copies not conserved: {} created != {} fanned out + {} lost + {} in flight",
            t.copies_created, t.copies_fanned_out, t.copies_lost, copies_in_flight
        ));
    }
    for (k, node) in w.cluster.nodes.iter().enumerate().filter(|(_, n)| n.up) {
        let in_queues: u64 =
            (0..n_srv as u32).map(|s| node.lb.queued(s) as u64).sum::<u64>() + node.lb.backend_queued() as u64;
        if queued_at[k] != in_queues {
            bad.push(format!(
                "{} clients queued at balancer node {k} but its queues hold {in_queues}",
                queued_at[k]
            ));
        }
        if !node.tls.conserved() {
            bad.push(format!("balancer node {k}'s handshake station lost track of an item"));
        }
    }
    let t = &w.web.tally;
    let in_flight = w.web.in_flight() as u64;
    if t.requests != t.completed + t.failed + in_flight {
        bad.push(format!(
            "web requests not conserved: {} sent != {} answered + {} failed + {in_flight} in flight",
            t.requests, t.completed, t.failed
        ));
    }
    if !w.web.conserved() {
        bad.push("an nginx or app server lost track of a request".into());
    }
    for (v, &owner) in w.cluster.vip_owner.iter().enumerate() {
        if owner != crate::sim::NONE && !w.cluster.nodes[owner as usize].up {
            bad.push(format!("VIP {v} is answered by balancer node {owner}, which is down"));
        }
    }
    bad.extend(crate::sim::storage::check(w));
    bad.extend(self::counts(w));
    bad
}

/// The counted sets include each other as their definitions say
/// (`crate::metrics_defs`): an attempt's outcome is counted with its
/// attempt, refused clients are among the attempting ones, the windows add
/// up to the run, and each histogram holds what its counter counted.
pub fn counts(w: &World) -> Vec<String> {
    let mut bad = Vec::new();
    let c = &w.ctx.rec.counters;
    let mut le = |what: &str, a: u64, b: u64| {
        if a > b {
            bad.push(format!("count inclusion violated: {what} ({a} > {b})"));
        }
    };
    le(
        "accepted + refused <= attempts",
        c.connections_accepted + c.connections_refused,
        c.connection_attempts,
    );
    le("reconnects <= attempts", c.reconnects, c.connection_attempts);
    le(
        "clients refused <= clients attempting",
        c.clients_refused,
        c.clients_attempting,
    );
    le(
        "clients attempting <= clients",
        c.clients_attempting,
        w.clients.list.len() as u64,
    );
    le(
        "gave up after a refusal <= clients refused",
        c.gave_up_refused,
        c.clients_refused,
    );
    le(
        "gave up <= clients in state gave-up",
        c.gave_up,
        w.clients.state_counts[ClientState::GaveUp as usize],
    );
    le(
        "moves validated + lost <= moves sent",
        c.moves_validated + c.moves_lost,
        c.moves_sent,
    );
    for (k, s) in w.ctx.rec.window_stats.iter().enumerate() {
        let name = if k == 0 {
            "steady state".to_string()
        } else {
            format!("fault {}", k - 1)
        };
        le(
            &format!("{name}: accepted + refused <= attempts"),
            s.accepted + s.refused,
            s.attempts,
        );
        le(
            &format!("{name}: clients refused <= clients attempting"),
            s.clients_refused,
            s.clients,
        );
        le(&format!("{name}: clients <= attempts"), s.clients, s.attempts);
    }
    let by_cause = c.refused_no_server
        + c.refused_queue_full
        + c.refused_queue_timeout
        + c.refused_server_failed
        + c.refused_node_full
        + c.connect_timeouts;
    if by_cause != c.connections_refused {
        bad.push(format!(
            "refusals by cause add up to {by_cause}, not the {} refused",
            c.connections_refused
        ));
    }
    let sum = |f: fn(&crate::metrics::WindowStats) -> u64| w.ctx.rec.window_stats.iter().map(f).sum::<u64>();
    for (what, windows, total) in [
        ("attempts", sum(|s| s.attempts), c.connection_attempts),
        ("accepted", sum(|s| s.accepted), c.connections_accepted),
        ("refused", sum(|s| s.refused), c.connections_refused),
        ("dropped", sum(|s| s.dropped), c.dropped),
        ("gave up", sum(|s| s.gave_up), c.gave_up),
        ("moves sent", sum(|s| s.moves_sent), c.moves_sent),
        ("moves lost", sum(|s| s.moves_lost), c.moves_lost),
        ("connect latencies", sum(|s| s.connect.len()), c.connections_accepted),
        ("move deliveries", sum(|s| s.moves.len()), c.deliveries_player),
        (
            "spectator deliveries",
            sum(|s| s.spectators.len()),
            c.deliveries_spectator,
        ),
    ] {
        if windows != total {
            bad.push(format!("{what}: the windows count {windows} but the run {total}"));
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::scenario;
    use crate::sim::World;

    fn run_small() -> (scenario::Scenario, Vec<String>) {
        let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/quickstart.toml")).unwrap();
        let sc = scenario::parse(&src, Path::new("quickstart.toml"), "quickstart", Path::new(".")).unwrap();
        let mut w = World::new(&sc, 0);
        w.run_observed(|_| {}).unwrap();
        w.ctx.rec.finish();
        let ok = super::check(&w);
        (sc, ok)
    }

    /// The count checker holds on a real run and fires on each broken count.
    #[test]
    fn count_checker_fires_on_broken_counts() {
        let (sc, ok) = run_small();
        assert!(ok.is_empty(), "{ok:?}");
        type Break = fn(&mut World);
        let breaks: [(&str, Break); 6] = [
            ("accepted + refused <= attempts", |w| {
                w.ctx.rec.counters.connections_accepted += 1_000_000
            }),
            ("clients refused <= clients attempting", |w| {
                w.ctx.rec.counters.clients_refused = w.ctx.rec.counters.clients_attempting + 1
            }),
            ("gave up after a refusal", |w| {
                w.ctx.rec.counters.gave_up_refused = w.ctx.rec.counters.clients_refused + 1
            }),
            ("refusals by cause", |w| w.ctx.rec.counters.refused_queue_full += 1),
            ("dropped: the windows count", |w| w.ctx.rec.window_stats[0].dropped += 1),
            ("steady state: clients refused", |w| {
                w.ctx.rec.window_stats[0].clients_refused = w.ctx.rec.window_stats[0].clients + 1
            }),
        ];
        for (expect, brk) in breaks {
            let mut w = World::new(&sc, 0);
            w.run_observed(|_| {}).unwrap();
            w.ctx.rec.finish();
            brk(&mut w);
            let bad = super::counts(&w);
            assert!(bad.iter().any(|b| b.contains(expect)), "{expect}: {bad:?}");
        }
    }
}
