//! Balancing strategies do what their names promise. These are exact
//! (deterministic) properties, not statistical ones.

use std::collections::HashMap;
use std::path::Path;

use wscap::experiment::{self, Replication};
use wscap::model::balancer::KEY_SOURCE;
use wscap::model::hashing::{MapTable, Ring, key_hash};
use wscap::scenario::Scenario;
use wscap::sim::{ClientState, World};

use crate::validation::scenario;

/// `count` clients arriving over 10 s from t = 1 s, each staying for longer
/// than the run (so nobody leaves), on `servers` servers of 10 000
/// connections with no faults. `balancer` is the body of `[balancer]`;
/// `population` extra keys of the population.
fn no_departures(servers: u32, count: u64, balancer: &str, population: &str) -> Scenario {
    scenario(&no_departures_src(servers, count, balancer, population))
}

fn no_departures_src(servers: u32, count: u64, balancer: &str, population: &str) -> String {
    format!(
        r#"
duration = "15s"
replications = 1
sample_interval = "50ms"

[servers]
count = {servers}
max_connections = 10000

[balancer]
{balancer}

[[population]]
name = "clients"
role = "player"
arrival = {{ process = "step", count = {count}, at = "1s", over = "10s" }}
session = "1h"
{population}
"#
    )
}

fn run_one(sc: &Scenario) -> Replication {
    let r = experiment::run_replication(sc, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.metric("connections_refused"), Some(0.0), "nobody should be refused");
    r
}

// ---------------------------------------------------------------------------
// 2a. Round robin
// ---------------------------------------------------------------------------

/// 600 clients over 6 equal servers: exactly 100 each, for both roundrobin
/// and static-rr.
#[test]
fn roundrobin_spreads_exactly_evenly() {
    for strategy in ["roundrobin", "static-rr"] {
        let sc = no_departures(6, 600, &format!("balance = \"{strategy}\""), "");
        let r = run_one(&sc);
        eprintln!("{strategy}, 600 clients on 6 servers: {:?}", r.final_conns);
        assert_eq!(r.final_conns, vec![100; 6], "{strategy}");
    }
}

/// Weights 1:2:3 give exactly proportional counts (smooth weighted round
/// robin: exact over every cycle of 6).
#[test]
fn weighted_roundrobin_is_exactly_proportional() {
    for strategy in ["roundrobin", "static-rr"] {
        let sc = no_departures(3, 600, &format!("balance = \"{strategy}\"\nweights = [1, 2, 3]"), "");
        let r = run_one(&sc);
        eprintln!("{strategy}, weights 1:2:3, 600 clients: {:?}", r.final_conns);
        assert_eq!(r.final_conns, vec![100, 200, 300], "{strategy}");
    }
}

// ---------------------------------------------------------------------------
// 2b. leastconn and first
// ---------------------------------------------------------------------------

/// Without departures leastconn always adds to a least-loaded server, so
/// counts never differ by more than one.
#[test]
fn leastconn_stays_balanced() {
    let sc = no_departures(7, 503, "balance = \"leastconn\"", "");
    let r = run_one(&sc);
    let (min, max) = (
        *r.final_conns.iter().min().unwrap(),
        *r.final_conns.iter().max().unwrap(),
    );
    eprintln!("leastconn, 503 clients on 7 servers: {:?}", r.final_conns);
    assert_eq!(r.final_conns.iter().sum::<u32>(), 503);
    assert!(max - min <= 1, "leastconn unbalanced: {:?}", r.final_conns);
}

/// `first` fills server 0 up to maxconn before anything goes to server 1,
/// and so on: 250 clients with maxconn 100 → [100, 100, 50, 0], and at every
/// sample a server only has connections if all before it are full.
#[test]
fn first_fills_servers_in_order() {
    let sc = no_departures(4, 250, "balance = \"first\"\nmaxconn = 100", "");
    let r = run_one(&sc);
    eprintln!("first, maxconn 100, 250 clients: {:?}", r.final_conns);
    assert_eq!(r.final_conns, vec![100, 100, 50, 0]);
    assert!(r.samples.len() > 200);
    for s in &r.samples {
        for k in 1..s.servers.len() {
            if s.servers[k].connections > 0 {
                assert!(
                    s.servers[..k].iter().all(|p| p.connections == 100),
                    "at {}: server {k} used before the earlier ones were full: {:?}",
                    s.time.as_secs_f64(),
                    s.servers.iter().map(|p| p.connections).collect::<Vec<_>>()
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 2c. Consistent vs map-based hashing
// ---------------------------------------------------------------------------

/// 10 000 keys over 10 servers, server 3 removed. Consistent hashing moves
/// exactly server 3's keys (about a tenth); map-based (`hash % n`) moves
/// most keys: a key stays only if h mod 10 and h mod 9 pick the same server,
/// about 1/10 + … ≈ 19 % of them, so about 81 % move.
#[test]
fn consistent_hashing_moves_only_lost_keys() {
    const N: usize = 10;
    const KEYS: u64 = 10_000;
    const LOST: u32 = 3;
    let weights = vec![1u32; N];
    let hashes: Vec<u64> = (0..KEYS).map(|k| key_hash(KEY_SOURCE, k)).collect();

    let ring = Ring::build(&weights);
    let (mut moved, mut owned) = (0u64, 0u64);
    for &h in &hashes {
        let before = ring.lookup(h, |_| true).unwrap();
        let after = ring.lookup(h, |s| s != LOST).unwrap();
        assert_ne!(after, LOST);
        if before == LOST {
            owned += 1;
            assert_ne!(after, before);
        } else {
            assert_eq!(
                after, before,
                "consistent hashing moved a key that was not on the lost server"
            );
        }
        moved += (after != before) as u64;
    }
    let ring_frac = moved as f64 / KEYS as f64;
    eprintln!(
        "consistent: {:.2} % of keys moved, server {LOST} held {:.2} %",
        100.0 * ring_frac,
        100.0 * owned as f64 / KEYS as f64
    );
    assert_eq!(moved, owned);
    // Its share is ~1/10 (100 points per server keep the arcs even).
    assert!(owned > KEYS / 20 && owned < KEYS / 5, "server {LOST} held {owned} keys");

    let mut usable = vec![true; N];
    let all = MapTable::build(&usable, &weights);
    usable[LOST as usize] = false;
    let without = MapTable::build(&usable, &weights);
    let moved = hashes.iter().filter(|&&h| all.lookup(h) != without.lookup(h)).count();
    let map_frac = moved as f64 / KEYS as f64;
    eprintln!("map-based: {:.2} % of keys moved", 100.0 * map_frac);
    assert!(hashes.iter().all(|&h| without.lookup(h) != Some(LOST)));
    assert!(map_frac > 0.5, "map-based moved only {:.2} %", 100.0 * map_frac);
}

// ---------------------------------------------------------------------------
// 2d. Room hashing
// ---------------------------------------------------------------------------

/// Strategy `room`: both players of a room end up on the same server, with
/// either hash type; rooms still spread over all servers.
#[test]
fn room_hashing_keeps_rooms_together() {
    for hash_type in ["map-based", "consistent"] {
        let sc = no_departures(
            5,
            400,
            &format!("balance = \"room\"\nhash_type = \"{hash_type}\""),
            "room_size = 2",
        );
        let mut w = World::new(&sc, 0);
        w.run().unwrap();
        assert!(wscap::check::check(&w).is_empty());
        let mut rooms: HashMap<u64, Vec<u32>> = HashMap::new();
        for c in &w.clients.list {
            assert_eq!(c.state, ClientState::Connected);
            rooms.entry(c.room).or_default().push(c.server);
        }
        assert_eq!(w.clients.list.len(), 400);
        assert_eq!(rooms.len(), 200);
        for (room, servers) in &rooms {
            assert_eq!(servers.len(), 2, "room {room:#x}");
            assert_eq!(servers[0], servers[1], "room {room:#x} split over servers {servers:?}");
        }
        let used: Vec<usize> = w.servers.list.iter().map(|s| s.conns.len()).collect();
        eprintln!("room hashing ({hash_type}), 200 rooms of 2: connections per server {used:?}");
        assert!(used.iter().all(|&n| n > 0 && n.is_multiple_of(2)), "{used:?}");
    }
}

// ---------------------------------------------------------------------------
// 2e. Source hashing behind NAT
// ---------------------------------------------------------------------------

/// With `source_ips = 1` every client of the population shares one address
/// and so one server; with its own address per client they spread.
#[test]
fn source_hashing_with_nat_uses_one_server() {
    let sc = no_departures(5, 300, "balance = \"source\"", "source_ips = 1");
    let r = run_one(&sc);
    eprintln!("source, one NAT address, 300 clients: {:?}", r.final_conns);
    assert_eq!(r.final_conns.iter().filter(|&&n| n > 0).count(), 1);
    assert_eq!(r.final_conns.iter().sum::<u32>(), 300);

    let sc = no_departures(5, 300, "balance = \"source\"", "");
    let r = run_one(&sc);
    eprintln!("source, own address each, 300 clients: {:?}", r.final_conns);
    assert!(r.final_conns.iter().all(|&n| n > 20), "{:?}", r.final_conns);
}

// ---------------------------------------------------------------------------
// HAProxy semantics (issue 13): `random` draws twice, `maxqueue 0` is unlimited
// ---------------------------------------------------------------------------

/// HAProxy's `balance random` is `random(2)`: the same placements draw for
/// draw; `random(1)` is a single draw and spreads worse.
#[test]
fn random_means_two_draws() {
    let run = |strategy: &str| {
        let sc = no_departures(8, 800, &format!("balance = \"{strategy}\""), "");
        run_one(&sc).final_conns
    };
    let (random, two, one) = (run("random"), run("random(2)"), run("random(1)"));
    eprintln!("random {random:?}\nrandom(2) {two:?}\nrandom(1) {one:?}");
    assert_eq!(random, two);
    let spread = |v: &[u32]| v.iter().max().unwrap() - v.iter().min().unwrap();
    assert!(spread(&two) < spread(&one), "two draws should balance better");
}

/// `maxqueue = 0` is HAProxy's unlimited queue (as absent); `queue = false`
/// refuses at once when every server is full.
#[test]
fn maxqueue_zero_is_unlimited_and_queue_false_refuses() {
    let full = |balancer: &str| {
        let sc = no_departures(2, 30, &format!("balance = \"leastconn\"\nmaxconn = 10\n{balancer}"), "");
        experiment::run_replication(&sc, 0).unwrap_or_else(|e| panic!("{e}"))
    };
    let absent = full("");
    let zero = full("maxqueue = 0");
    let off = full("queue = false");
    assert_eq!(zero.metric("connections_refused"), absent.metric("connections_refused"));
    assert_eq!(zero.metric("refused_queue_full"), Some(0.0));
    assert_eq!(off.metric("refused_queue_full"), Some(10.0));
    let src = no_departures_src(2, 30, "balance = \"leastconn\"\nqueue = false\nmaxqueue = 5", "");
    let err = wscap::scenario::parse(&src, Path::new("q.toml"), "q", Path::new("."))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("balancer.maxqueue") && err.contains("queue = false"),
        "{err}"
    );
}
