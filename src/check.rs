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
    let queued = counts[ClientState::Queued as usize];
    let in_queues: u64 =
        (0..n_srv as u32).map(|s| w.balancer.queued(s) as u64).sum::<u64>() + w.balancer.backend_queued() as u64;
    if queued != in_queues {
        bad.push(format!(
            "{queued} clients queued but the balancer's queues hold {in_queues}"
        ));
    }
    bad
}
