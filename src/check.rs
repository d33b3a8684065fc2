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
    le("clients attempting <= clients", c.clients_attempting, w.clients.created);
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
        ("connect latencies", w.ctx.rec.window_connects(), c.connections_accepted),
        ("move deliveries", w.ctx.rec.window_deliveries().0, c.deliveries_player),
        (
            "spectator deliveries",
            w.ctx.rec.window_deliveries().1,
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

    use crate::scenario::{self, Scenario};
    use crate::sim::storage::{Rehydration, Role};
    use crate::sim::{ClientState, World};
    use crate::time::SimTime;

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
        let breaks: [(&str, Break); 12] = [
            ("accepted + refused <= attempts", |w| {
                w.ctx.rec.counters.connections_accepted += 1_000_000
            }),
            ("reconnects <= attempts", |w| {
                w.ctx.rec.counters.reconnects = w.ctx.rec.counters.connection_attempts + 1
            }),
            ("clients attempting <= clients", |w| {
                w.ctx.rec.counters.clients_attempting = w.clients.created + 1
            }),
            ("gave up <= clients in state gave-up", |w| {
                w.ctx.rec.counters.gave_up = w.clients.state_counts[ClientState::GaveUp as usize] + 1
            }),
            ("moves validated + lost <= moves sent", |w| {
                w.ctx.rec.counters.moves_validated = w.ctx.rec.counters.moves_sent + 1
            }),
            ("steady state: accepted + refused <= attempts", |w| {
                w.ctx.rec.window_stats[0].accepted = w.ctx.rec.window_stats[0].attempts + 1
            }),
            ("steady state: clients <= attempts", |w| {
                w.ctx.rec.window_stats[0].clients = w.ctx.rec.window_stats[0].attempts + 1
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

    /// A bundled scenario with `edits` (`(from, to)`, each replaced once)
    /// applied to its text, to make it small.
    fn scenario(file: &str, edits: &[(&str, &str)]) -> Scenario {
        let path = format!("{}/scenarios/{file}", env!("CARGO_MANIFEST_DIR"));
        let mut src = std::fs::read_to_string(path).unwrap();
        for (from, to) in edits {
            assert!(src.contains(from), "{file} has no {from:?}");
            src = src.replacen(from, to, 1);
        }
        scenario::parse(&src, Path::new(file), file, Path::new(".")).unwrap()
    }

    fn ran(sc: &Scenario) -> World<'_> {
        let mut w = World::new(sc, 0);
        w.run().unwrap();
        w.ctx.rec.finish();
        w
    }

    type Break = fn(&mut World);

    /// The checker holds on a real run of `sc`; then, on a fresh run for
    /// each break, breaking that one piece of state makes it report the
    /// expected violation.
    fn each_break_is_caught(sc: &Scenario, breaks: &[(&str, Break)]) {
        let ok = super::check(&ran(sc));
        assert!(ok.is_empty(), "{}: {ok:?}", sc.name);
        for (expect, brk) in breaks {
            let mut w = ran(sc);
            brk(&mut w);
            let bad = super::check(&w);
            assert!(bad.iter().any(|b| b.contains(expect)), "{expect:?} not caught: {bad:?}");
        }
    }

    /// The first client in state `st`.
    fn client_in(w: &World, st: ClientState) -> usize {
        w.clients
            .list
            .iter()
            .position(|c| c.state == st)
            .expect("a client in that state")
    }

    /// Moves client `c` to state `st` the way `set_state` does (counts
    /// kept), so that only the tier that should know of it is wrong.
    fn move_client(w: &mut World, c: usize, st: ClientState) {
        let cl = &mut w.clients.list[c];
        w.clients.state_counts[cl.state as usize] -= 1;
        w.clients.state_counts[st as usize] += 1;
        cl.state = st;
    }

    /// The clients, servers, cluster and game tiers' checks and the seams
    /// between them, on the quickstart (three servers, one balancer node,
    /// chess over Kafka, a crash and restart).
    #[test]
    fn tier_checks_fire_on_broken_state() {
        let sc = scenario("quickstart.toml", &[("duration = \"5m\"", "duration = \"150s\"")]);
        let breaks: &[(&str, Break)] = &[
            // clients
            ("state counts drifted", |w| {
                let c = client_in(w, ClientState::Left);
                w.clients.list[c].state = ClientState::GaveUp;
            }),
            ("clients arrived but", |w| {
                // A client no population made, counted in its state.
                let c = client_in(w, ClientState::Left);
                w.clients.list.push(w.clients.list[c].clone());
                w.clients.state_counts[ClientState::Left as usize] += 1;
            }),
            // servers
            ("is down but holds", |w| {
                let s = w.servers.list.iter().position(|s| !s.conns.is_empty()).unwrap();
                w.servers.list[s].up = false;
            }),
            // cluster
            ("handshake station lost track", |w| w.cluster.nodes[0].tls.arrived += 1),
            ("VIP 0 is answered by balancer node 0, which is down", |w| {
                w.cluster.nodes[0].up = false
            }),
            // game
            ("moves not conserved", |w| w.game.tally.moves_sent += 1),
            ("server copies not conserved", |w| w.game.tally.copies_created += 1),
            // seams::NodeHoldsItsClients
            ("which is down or does not exist", |w| {
                let c = w.clients.list.iter().position(|c| c.holds_slot).unwrap();
                w.clients.list[c].node = 200;
            }),
            ("balancer node 0 counts", |w| {
                // A slot counted that no client holds.
                w.cluster.nodes[0].lb.on_forward(0)
            }),
            ("queued at balancer node 0 but its queues hold 0", |w| {
                // A queued client missing from the balancer's queues.
                let c = client_in(w, ClientState::Left);
                move_client(w, c, ClientState::Queued);
                w.clients.list[c].node = 0;
            }),
            // seams::ServersListConnectedClients
            ("clients connected but servers list", |w| {
                let s = w.servers.list.iter().position(|s| !s.conns.is_empty()).unwrap();
                w.servers.list[s].conns.pop();
            }),
            ("which is connected on server", |w| {
                // A server listing a client twice.
                let s = w.servers.list.iter().position(|s| !s.conns.is_empty()).unwrap();
                let c = w.servers.list[s].conns[0];
                w.servers.list[s].conns.push(c);
            }),
            ("each entry right", |w| {
                // A client connected that no server lists (and not counted).
                let c = client_in(w, ClientState::Left);
                w.clients.list[c].state = ClientState::Connected;
            }),
            // seams::RoomsListConnectedMembers
            (" elsewhere", |w| {
                // A room listing a client that left.
                let gone = client_in(w, ClientState::Left) as u32;
                let room = w
                    .game
                    .rooms
                    .iter_mut()
                    .find(|r| r.groups.iter().any(|g| !g.members.is_empty()));
                let group = room.unwrap().groups.iter_mut().find(|g| !g.members.is_empty()).unwrap();
                group.members[0].client = gone;
            }),
            ("places player", |w| {
                // A player its room still places on a server, though it
                // is no longer connected.
                let c = (0..w.clients.list.len())
                    .find(|&c| {
                        let cl = &w.clients.list[c];
                        cl.state == ClientState::Connected
                            && w.game
                                .rooms
                                .get(cl.room_idx as usize)
                                .is_some_and(|r| r.member_player(c as u32).is_some())
                    })
                    .expect("a connected chess player");
                move_client(w, c, ClientState::Orphaned);
            }),
            ("connected clients have a room but rooms list", |w| {
                // A member removed from its room.
                let room = w
                    .game
                    .rooms
                    .iter_mut()
                    .find(|r| r.groups.iter().any(|g| !g.members.is_empty()));
                let group = room.unwrap().groups.iter_mut().find(|g| !g.members.is_empty()).unwrap();
                group.members.pop();
            }),
            // seams::rehydrations_wait_for_connecting_clients
            ("waits for its room's history but is not connecting", |w| {
                let c = client_in(w, ClientState::Connected);
                let cl = &w.clients.list[c];
                let r = Rehydration {
                    generation: cl.generation,
                    server: cl.server,
                    epoch: 0,
                    started: SimTime::ZERO,
                    done: false,
                };
                w.storage.rehydrating.insert(c as u32, r);
            }),
        ];
        each_break_is_caught(&sc, breaks);
    }

    /// The web tier's checks, on a shortened web-tier scenario.
    #[test]
    fn web_checks_fire_on_broken_state() {
        let sc = scenario(
            "web-tier.toml",
            &[
                ("duration = \"8m\"", "duration = \"40s\""),
                ("warmup = \"1m\"", "warmup = \"5s\""),
                ("rate = \"100/s\"", "rate = \"20/s\""),
                ("at = \"4m\"", "at = \"20s\""),
            ],
        );
        let breaks: &[(&str, Break)] = &[
            ("web requests not conserved", |w| w.web.tally.requests += 1),
            ("an nginx or app server lost track of a request", |w| {
                w.web.nginx[0].arrived += 1
            }),
        ];
        each_break_is_caught(&sc, breaks);
    }

    /// An up replica (after the primary's failover, one of the two is
    /// left).
    fn up_replica(w: &World) -> usize {
        let db = w.storage.db.as_ref().unwrap();
        db.nodes
            .iter()
            .position(|n| n.role == Role::Replica && n.up)
            .expect("an up replica")
    }

    /// The storage tier's checks (Redis, the flusher, the primary and its
    /// replicas), on a shortened replica-lag scenario: a primary crash and
    /// failover, then a socket-server crash.
    #[test]
    fn storage_checks_fire_on_broken_state() {
        let sc = scenario(
            "replica-lag.toml",
            &[
                ("duration = \"4m\"", "duration = \"60s\""),
                ("warmup = \"20s\"", "warmup = \"5s\""),
                ("target = 4000", "target = 400"),
                ("count = 16000, at = \"40s\"", "count = 400, at = \"10s\""),
                ("at = \"90s\"", "at = \"20s\""),
                ("at = \"200s\"", "at = \"40s\""),
            ],
        );
        let breaks: &[(&str, Break)] = &[
            ("cache writes not conserved", |w| w.storage.tally.cache_writes += 1),
            ("cache writes counted pending", |w| {
                w.storage.tally.cache_writes_pending += 1
            }),
            ("cached moves not conserved", |w| {
                w.storage.cache.as_mut().unwrap().book.lost += 1
            }),
            ("the Redis book counts", |w| {
                w.storage.cache.as_mut().unwrap().book.unflushed += 1
            }),
            ("moves taken from Redis but", |w| {
                w.storage.cache.as_mut().unwrap().book.taken += 1
            }),
            ("the Redis station lost track", |w| {
                w.storage.cache.as_mut().unwrap().station.arrived += 1
            }),
            ("flushed moves not conserved", |w| w.storage.flusher.flushed += 1),
            ("the flusher counts", |w| w.storage.flusher.in_batches += 1),
            ("a station lost track of its items", |w| {
                w.storage.db.as_mut().unwrap().nodes[0].cpu.arrived += 1
            }),
            ("unapplied in its window", |w| {
                let r = up_replica(w);
                w.storage.db.as_mut().unwrap().nodes[r].progress.received += 1;
            }),
            ("unapplied rows in its window", |w| {
                let r = up_replica(w);
                w.storage.db.as_mut().unwrap().nodes[r].progress.received_rows += 1;
            }),
            ("commits queued to apply but", |w| {
                // A commit queued on the appliers that the replica never
                // received.
                let r = up_replica(w);
                let now = w.ctx.end;
                let n = &mut w.storage.db.as_mut().unwrap().nodes[r];
                let _ = n.apply.arrive(now, (u64::MAX, 1));
            }),
            ("received past the primary's binlog", |w| {
                let r = up_replica(w);
                let db = w.storage.db.as_mut().unwrap();
                db.nodes[r].progress.received_seq = db.binlog.head() + 1;
            }),
            ("more commits lost than made", |w| {
                w.storage.tally.commits_lost = w.storage.db.as_ref().unwrap().binlog.commits + 1
            }),
        ];
        each_break_is_caught(&sc, breaks);
    }
}
