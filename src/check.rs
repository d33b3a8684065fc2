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
    let mut counts = [0u64; N_STATES];
    let n_srv = w.servers.len();
    let n_nodes = w.nodes.len();
    // Slots held per (node, server), and queued clients per node.
    let mut slots = vec![0u32; n_srv * n_nodes];
    let mut queued_at = vec![0u64; n_nodes];
    for (c, cl) in w.clients.iter().enumerate() {
        counts[cl.state as usize] += 1;
        if cl.holds_slot || cl.state == ClientState::Queued {
            let node = cl.node as usize;
            if node >= n_nodes || !w.nodes[node].up {
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
    if counts != w.state_counts {
        bad.push(format!(
            "state counts drifted: counted {counts:?}, tracked {:?}",
            w.state_counts
        ));
    }
    let total: u64 = counts.iter().sum();
    if total != w.clients.len() as u64 {
        bad.push(format!(
            "{} clients arrived but {total} are in a state",
            w.clients.len()
        ));
    }
    let connected = counts[ClientState::Connected as usize];
    let listed: u64 = w.servers.iter().map(|s| s.conns.len() as u64).sum();
    if connected != listed {
        bad.push(format!("{connected} clients connected but servers list {listed}"));
    }
    for (i, s) in w.servers.iter().enumerate() {
        for (slot, &c) in s.conns.iter().enumerate() {
            let cl = &w.clients[c as usize];
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
        for (k, node) in w.nodes.iter().enumerate().filter(|(_, n)| n.up) {
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
    for (r, room) in w.rooms.iter().enumerate() {
        for (g, group) in room.groups.iter().enumerate() {
            for (slot, m) in group.members.iter().enumerate() {
                in_rooms += 1;
                let cl = &w.clients[m.client as usize];
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
    let t = &w.tally;
    let unvalidated = w.msgs.iter().filter(|(_, m)| !m.validated).count() as u64;
    if t.moves_sent != t.moves_validated + t.moves_lost + unvalidated {
        bad.push(format!(
            "moves not conserved: {} sent != {} validated + {} lost + {} in flight",
            t.moves_sent, t.moves_validated, t.moves_lost, unvalidated
        ));
    }
    let copies_in_flight: u64 = w.msgs.iter().map(|(_, m)| (m.pending - m.in_batch as u32) as u64).sum();
    if t.copies_created != t.copies_fanned_out + t.copies_lost + copies_in_flight {
        bad.push(format!(
            "server copies not conserved: {} created != {} fanned out + {} lost + {} in flight",
            t.copies_created, t.copies_fanned_out, t.copies_lost, copies_in_flight
        ));
    }
    for (k, node) in w.nodes.iter().enumerate().filter(|(_, n)| n.up) {
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
        if owner != crate::sim::NONE && !w.nodes[owner as usize].up {
            bad.push(format!("VIP {v} is answered by balancer node {owner}, which is down"));
        }
    }
    bad.extend(crate::sim::storage::check(w));
    bad
}
