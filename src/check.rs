//! Invariant checkers, run at the end of every replication.
//!
//! Conservation of clients: every client that arrived is in exactly one
//! state, the servers' connection lists hold exactly the connected clients,
//! each balancer node's queues hold exactly the clients queued there, and
//! each node's per-server slot counts equal the clients holding a slot
//! through it; no VIP is answered by a dead node. A violation is a
//! bug in wscap, never in the scenario.

use crate::sim::{ClientState, World};

/// Returns every violated invariant, empty when all hold: each tier's own
/// ([`Tier::check`](crate::sim::Tier::check)), those between tiers
/// (`sim::seams`), and the recorder's count inclusions.
pub fn check(w: &World) -> Vec<String> {
    let mut bad = w.check();
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
