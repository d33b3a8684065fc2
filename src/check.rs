//! Invariant checkers, run at the end of every replication.
//!
//! Conservation of clients: every client that arrived is in exactly one
//! state, the servers' connection lists hold exactly the connected clients,
//! the balancer's queues hold exactly the queued ones, and the balancer's
//! per-server slot counts equal the clients holding a slot. A violation is a
//! bug in wscap, never in the scenario.

use crate::sim::{ClientState, N_STATES, STATE_NAMES, World};

/// Returns every violated invariant, empty when all hold.
pub fn check(w: &World) -> Vec<String> {
    let mut bad = Vec::new();
    let mut counts = [0u64; N_STATES];
    let n_srv = w.servers.len();
    let mut slots = vec![0u32; n_srv];
    for cl in &w.clients {
        counts[cl.state as usize] += 1;
        if cl.holds_slot {
            slots[cl.server as usize] += 1;
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
        let b = w.balancer.conns(i as u32);
        if b != slots[i] {
            bad.push(format!(
                "balancer counts {b} sessions on server {i} but {} clients hold a slot there",
                slots[i]
            ));
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
    let queued = counts[ClientState::Queued as usize];
    let in_queues: u64 =
        (0..n_srv as u32).map(|s| w.balancer.queued(s) as u64).sum::<u64>() + w.balancer.backend_queued() as u64;
    if queued != in_queues {
        bad.push(format!(
            "{queued} clients queued but the balancer's queues hold {in_queues}"
        ));
    }
    bad.extend(crate::sim::storage::check(w));
    bad
}
