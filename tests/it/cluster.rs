//! The balancer cluster and deployments: VIP failover timing, SYN
//! retransmission, TLS handshake queues and resumption, node limits, the
//! backend updater, scale-out/in and rolling restarts.
//!
//! Most checks are exact: with constant RTTs and costs the simulator's
//! times follow from the formulas (keepalived's master-down interval,
//! Linux's SYN back-off, c cores × a handshake rate).

use wscap::experiment::{self, Replication};
use wscap::metrics::TimelineEvent;
use wscap::model::balancer::{Admin, Balancer, Choice};
use wscap::rng;
use wscap::scenario::Scenario;
use wscap::sim::World;
use wscap::time::{SimDuration, SimTime};

use crate::validation::scenario;

fn run_one(sc: &Scenario) -> Replication {
    experiment::run_replication(sc, 0).unwrap_or_else(|e| panic!("{e}"))
}

fn metric(r: &Replication, name: &str) -> f64 {
    r.metric(name).unwrap_or_else(|| panic!("no metric {name}"))
}

fn events<'a>(r: &'a Replication, event: &str) -> Vec<&'a TimelineEvent> {
    r.timeline.iter().filter(|e| e.event.as_str() == event).collect()
}

/// Two nodes (active-passive), one server, 100 clients connected at 1 s who
/// stay; node 0's process dies at 10 s. Clients notice at once (RST, half of
/// a 2 ms RTT), wait 100 ms and reconnect; SYNs to the VIP are lost until it
/// moves. Connect latencies after the 5 s warm-up are the reconnections'.
fn vip_failover(failover: &str) -> Scenario {
    scenario(&format!(
        r#"
duration = "40s"
warmup = "5s"
replications = 1

[servers]
count = 1
max_connections = 10000
cores = 4
connect_cost = "10us"

[balancer]
balance = "roundrobin"
nodes = 2
mode = "active-passive"
failover = {failover}

[[population]]
name = "players"
role = "player"
arrival = {{ process = "step", count = 100, at = "1s", over = "1s" }}
session = "1h"
rtt = "2ms"
reconnect = {{ policy = "fixed", delay = "100ms", max_attempts = 100 }}

[[fault]]
kind = "balancer-crash"
node = 0
at = "10s"
mode = "process"
"#
    ))
}

/// The VIP answers again exactly `3·advert_int + (256 − priority)/256 ·
/// advert_int` (keepalived) or `token + consensus + resource_start`
/// (Pacemaker) after the crash. Each reconnecting client's SYN, first sent
/// 102 ms after the crash, is retransmitted 1, 3, 7, 15 s later: it connects
/// at the first retransmission after the move, so its connect latency is
/// `2^k − 1` s plus the 2 ms RTT and the server hop.
#[test]
fn vip_moves_after_the_failover_formula_and_syns_back_off() {
    let cases = [
        // (failover, takeover in s)
        (r#"{ kind = "keepalived" }"#, 3.0 + 156.0 / 256.0),
        (
            r#"{ kind = "keepalived", advert_int = "1s", priority = 200 }"#,
            3.0 + 56.0 / 256.0,
        ),
        (
            r#"{ kind = "keepalived", advert_int = "500ms", priority = 100 }"#,
            1.5 + 0.5 * 156.0 / 256.0,
        ),
        (
            r#"{ kind = "keepalived", advert_int = "3s", priority = 254 }"#,
            9.0 + 3.0 * 2.0 / 256.0,
        ),
        (r#"{ kind = "pacemaker" }"#, 3.0 + 3.6),
        (
            r#"{ kind = "pacemaker", token = "1s", consensus = "2s", resource_start = "500ms" }"#,
            3.5,
        ),
    ];
    for (failover, takeover) in cases {
        let r = run_one(&vip_failover(failover));
        let outage = metric(&r, "vip_outage_s");
        assert!(
            (outage - takeover).abs() < 1e-6,
            "{failover}: VIP outage {outage} s, formula {takeover} s"
        );
        let moved = events(&r, "vip-moved");
        assert_eq!(moved.len(), 1, "{failover}");
        assert!((moved[0].time.as_secs_f64() - 10.0 - takeover).abs() < 1e-6);
        // First SYN at crash + 1 ms (notice) + 100 ms (delay) + 1 ms (half RTT).
        let first_syn = 0.102;
        let k = (0..10)
            .find(|&k| first_syn + (2f64.powi(k) - 1.0) >= takeover)
            .expect("a retransmission after the move");
        let expected_ms = (2f64.powi(k) - 1.0) * 1000.0;
        let (p0, max) = (metric(&r, "connect_ms_p50"), metric(&r, "connect_ms_max"));
        eprintln!(
            "{failover}: takeover {takeover:.4} s; reconnect latency p50 {p0} ms, max {max} ms; SYN back-off {expected_ms} ms"
        );
        assert_eq!(
            metric(&r, "connections_accepted"),
            100.0,
            "{failover}: everyone reconnects"
        );
        // + 2 ms RTT, 0.5 ms of backend hops, 10 µs accept; HDR precision 0.1 %.
        for v in [p0, max] {
            assert!(
                v >= expected_ms + 2.0 && v <= (expected_ms + 3.0) * 1.001,
                "{failover}: reconnect latency {v} ms, expected {expected_ms} ms + ~2.5 ms"
            );
        }
    }
}

/// `n` clients arriving in the same instant at one node with `cores` cores
/// and a TLS key; no resumption.
fn tls_storm(n: u32, cores: u32, key: &str) -> Scenario {
    scenario(&format!(
        r#"
duration = "5s"
replications = 1

[servers]
count = 2
max_connections = 10000
cores = 8
connect_cost = "10us"

[balancer]
balance = "roundrobin"
nbthread = {cores}

[balancer.tls]
key = "{key}"

[[population]]
name = "players"
role = "player"
arrival = {{ process = "step", count = {n}, at = "1s" }}
session = "1h"
rtt = "2ms"
"#
    ))
}

/// Handshakes queue on the node's cores: the k-th of a simultaneous burst
/// finishes after ⌈k / cores⌉ handshakes, so the last connect waits
/// `n / (cores · rate)` and the median half that (M/D/c with a batch
/// arrival), on top of 2 RTTs (the SYN/upgrade and the TLS 1.3 round trip).
#[test]
fn handshakes_queue_on_the_balancer_cores() {
    for (key, rate) in [("rsa-2048", 2_500.0), ("ecdsa-p256", 12_000.0)] {
        for cores in [1u32, 2, 4] {
            let n = 1000u32;
            let r = run_one(&tls_storm(n, cores, key));
            let per = 1000.0 / rate; // ms per handshake
            let last = (n as f64 / cores as f64).ceil() * per;
            let median = (n as f64 / 2.0 / cores as f64).ceil() * per;
            // 2 ms RTT (upgrade) + 2 ms (TLS round trip) + 0.5 ms backend hops + 10 µs.
            let base = 4.51;
            let (p50, max) = (metric(&r, "connect_ms_p50"), metric(&r, "connect_ms_max"));
            eprintln!(
                "{key}, {cores} cores, {n} at once: max {max} ms (expected {:.2}), p50 {p50} ms (expected {:.2})",
                last + base,
                median + base
            );
            assert!(
                (max - (last + base)).abs() <= 0.002 * max + 0.05,
                "{key} {cores}: max {max}"
            );
            assert!(
                (p50 - (median + base)).abs() <= 0.002 * p50 + per + 0.05,
                "{key} {cores}: p50 {p50}"
            );
            assert_eq!(metric(&r, "tls_full_handshakes"), n as f64);
            assert_eq!(metric(&r, "tls_resumed_handshakes"), 0.0);
        }
    }
}

/// Clients dropped by a server crash reconnect through the same node: each
/// resumes its TLS session with probability `resumption_ratio`. The count
/// of resumed handshakes is binomial; the bound is 4 standard deviations.
#[test]
fn reconnections_to_the_same_node_resume_sessions() {
    let sc = scenario(
        r#"
duration = "30s"
replications = 1

[servers]
count = 2
max_connections = 10000
cores = 8
connect_cost = "10us"

[balancer]
balance = "roundrobin"
nbthread = 2
[balancer.tls]
key = "ecdsa-p256"
resumption_ratio = 0.7

[[population]]
name = "players"
role = "player"
arrival = { process = "step", count = 4000, at = "1s", over = "5s" }
session = "1h"
rtt = "2ms"
reconnect = { policy = "fixed", delay = "200ms", max_attempts = 20 }

[[fault]]
kind = "crash"
server = 0
at = "10s"
mode = "process"
restart_after = "1s"
"#,
    );
    let r = run_one(&sc);
    let full = metric(&r, "tls_full_handshakes");
    let resumed = metric(&r, "tls_resumed_handshakes");
    let reconnects = full + resumed - 4000.0;
    let dropped = metric(&r, "dropped");
    assert_eq!(dropped, 2000.0, "round robin put half on server 0");
    // Some reconnections hit the dead server before it is marked DOWN and
    // retry: every reconnection attempt handshakes again.
    assert!(
        reconnects >= dropped,
        "{reconnects} reconnection handshakes for {dropped} drops"
    );
    let p = resumed / reconnects;
    let sd = (0.7 * 0.3 / reconnects).sqrt();
    eprintln!(
        "resumed {resumed} of {reconnects} reconnection handshakes = {p:.4} (0.7 ± {:.4})",
        4.0 * sd
    );
    assert!((p - 0.7).abs() < 4.0 * sd, "resumption ratio {p}");
}

/// A node at its global maxconn turns the rest away.
#[test]
fn node_maxconn_bounds_a_node() {
    let sc = scenario(
        r#"
duration = "10s"
replications = 1
[servers]
count = 2
max_connections = 10000
[balancer]
balance = "leastconn"
node_maxconn = 500
[[population]]
name = "players"
role = "player"
arrival = { process = "step", count = 1000, at = "1s", over = "2s" }
session = "1h"
"#,
    );
    let r = run_one(&sc);
    assert_eq!(metric(&r, "connections_accepted"), 500.0);
    assert_eq!(metric(&r, "refused_node_full"), 500.0);
    assert_eq!(metric(&r, "node_connections_max"), 500.0);
}

/// Active-active: DNS round robin spreads clients over the nodes' VIPs
/// (binomial, 4 sd); when node 1 dies its VIP moves to node 0, which ends
/// up holding every connection.
#[test]
fn active_active_spreads_and_survives_a_node() {
    let sc = scenario(
        r#"
duration = "40s"
replications = 1
[servers]
count = 4
max_connections = 10000
cores = 4
connect_cost = "10us"
[balancer]
balance = "leastconn"
nodes = 2
mode = "active-active"
[[population]]
name = "players"
role = "player"
arrival = { process = "step", count = 4000, at = "1s", over = "4s" }
session = "1h"
rtt = "2ms"
reconnect = { policy = "exponential", base = "100ms", cap = "2s", jitter = "full", max_attempts = 20 }
[[fault]]
kind = "balancer-crash"
node = 1
at = "20s"
mode = "process"
"#,
    );
    let mut w = World::new(&sc, 0);
    let mut sched = wscap::engine::Scheduler::new();
    w.prime(&mut sched);
    wscap::engine::run(&mut w, &mut sched, SimTime::ZERO + SimDuration::from_secs(15), u64::MAX).unwrap();
    let (a, b) = (w.cluster.nodes[0].lb.load(), w.cluster.nodes[1].lb.load());
    let sd = (4000.0f64 * 0.25).sqrt();
    eprintln!(
        "before the crash: node 0 holds {a}, node 1 holds {b} (2000 ± {:.0})",
        4.0 * sd
    );
    assert_eq!(a + b, 4000);
    assert!((a as f64 - 2000.0).abs() < 4.0 * sd);
    wscap::engine::run(&mut w, &mut sched, SimTime::ZERO + sc.duration, u64::MAX).unwrap();
    assert!(wscap::check::check(&w).is_empty(), "{:?}", wscap::check::check(&w));
    assert_eq!(w.cluster.nodes[0].lb.load(), 4000, "node 0 took over VIP 1's clients");
    assert_eq!(w.cluster.vip_owner, vec![0, 0]);
}

/// 4 servers with 100 long-lived clients each; at 20 s a fifth server boots,
/// but the balancer only adds it at the updater's tick (30 s). New clients
/// arrive at 10/s. Under leastconn the fresh, empty server takes every new
/// connection until it catches up; slowstart (60 s) ramps its weight and
/// spares it.
fn scale_out(slowstart: &str) -> Scenario {
    scenario(&format!(
        r#"
duration = "45s"
replications = 1
sample_interval = "1s"
[servers]
count = 4
max_connections = 10000
connect_cost = "10us"
[balancer]
balance = "leastconn"
slowstart = "{slowstart}"
update_interval = "30s"
[[population]]
name = "early"
role = "player"
arrival = {{ process = "step", count = 400, at = "1s", over = "4s" }}
session = "1h"
[[population]]
name = "late"
role = "player"
arrival = {{ process = "poisson", rate = "10/s", start = "10s" }}
session = "1h"
[[fault]]
kind = "scale-out"
count = 1
at = "20s"
"#
    ))
}

fn conns_at(r: &Replication, t_s: f64, server: usize) -> u32 {
    let s = r
        .samples
        .iter()
        .find(|s| (s.time.as_secs_f64() - t_s).abs() < 1e-9)
        .expect("a sample at that time");
    s.servers[server].connections
}

#[test]
fn leastconn_floods_a_fresh_server_and_slowstart_spares_it() {
    let mut share = vec![];
    for slowstart in ["0s", "60s"] {
        let r = run_one(&scale_out(slowstart));
        let updated = events(&r, "servers-updated");
        assert_eq!(updated.len(), 1);
        assert_eq!(
            updated[0].time,
            SimTime::ZERO + SimDuration::from_secs(30),
            "at the updater's tick"
        );
        assert_eq!(
            conns_at(&r, 30.0, 4),
            0,
            "booted at 20 s but unknown to the balancer until 30 s"
        );
        let total = |t| (0..5).map(|i| conns_at(&r, t, i)).sum::<u32>();
        let new = total(40.0) - total(30.0);
        let to_fresh = conns_at(&r, 40.0, 4);
        let s = to_fresh as f64 / new as f64;
        eprintln!("slowstart {slowstart}: the fresh server got {to_fresh} of {new} connections in 30–40 s ({s:.2})");
        share.push(s);
    }
    assert_eq!(
        share[0], 1.0,
        "leastconn sends every new connection to the empty server"
    );
    assert!(share[1] < 0.5, "slowstart spreads them: {}", share[1]);
}

/// Map-based hashing remaps most rooms when a fifth server joins (the
/// table is `hash mod total weight`: a key stays only where the old and new
/// tables agree, about 1/5 of them); consistent hashing moves only the keys
/// the new server takes (≈ 1/5), all of them to it.
#[test]
fn adding_a_server_remaps_rooms_by_hash_type() {
    let mut moved = vec![];
    for hash_type in ["map-based", "consistent"] {
        let sc = scenario(&format!(
            r#"
duration = "10s"
[servers]
count = 4
max_connections = 10000
[balancer]
balance = "room"
hash_type = "{hash_type}"
[[population]]
name = "p"
role = "player"
arrival = {{ process = "step", count = 1, at = "1s" }}
session = "1h"
[[fault]]
kind = "scale-out"
count = 1
at = "5s"
"#
        ));
        let mut lb = Balancer::new(&sc.balancer, &sc.servers, sc.max_servers());
        let mut rng = rng::stream(1, 0, 0);
        let keys = 20_000u64;
        let pick = |lb: &mut Balancer, rng: &mut _, k: u64| match lb.choose(0, k, None, rng) {
            Choice::Server(s) => s,
            other => panic!("{other:?}"),
        };
        let before: Vec<u32> = (0..keys).map(|k| pick(&mut lb, &mut rng, k)).collect();
        assert!(before.iter().all(|&s| s < 4));
        lb.set_admin(4, Admin::Ready, SimTime::ZERO);
        let after: Vec<u32> = (0..keys).map(|k| pick(&mut lb, &mut rng, k)).collect();
        let n_moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        let to_new = after.iter().filter(|&&s| s == 4).count();
        eprintln!("{hash_type}: {n_moved} of {keys} rooms remapped, {to_new} to the new server");
        if hash_type == "consistent" {
            assert_eq!(n_moved, to_new, "consistent hashing moves keys only to the new server");
        }
        moved.push(n_moved as f64 / keys as f64);
    }
    assert!(moved[0] > 0.7, "map-based remaps most rooms: {}", moved[0]);
    assert!(
        (0.1..0.3).contains(&moved[1]),
        "consistent remaps about 1/5: {}",
        moved[1]
    );
}

/// A rolling restart of 3 servers: each is drained (no new connections),
/// stopped after `drain`, restarted after `restart_time` and set ready; the
/// next starts `pause` later. Clients of a stopped server reconnect to the
/// others; nobody is refused or gives up, and everyone is connected at the
/// end.
#[test]
fn rolling_restart_takes_one_server_at_a_time() {
    let sc = scenario(
        r#"
duration = "80s"
replications = 1
sample_interval = "500ms"
[servers]
count = 3
max_connections = 10000
connect_cost = "10us"
[balancer]
balance = "leastconn"
[[population]]
name = "players"
role = "player"
arrival = { process = "step", count = 300, at = "1s", over = "3s" }
session = "1h"
rtt = "2ms"
reconnect = { policy = "fixed", delay = "100ms", max_attempts = 50 }
[[population]]
name = "late"
role = "player"
arrival = { process = "poisson", rate = "5/s", start = "5s", stop = "70s" }
session = "1h"
rtt = "2ms"
reconnect = { policy = "fixed", delay = "100ms", max_attempts = 50 }
[[fault]]
kind = "rolling-restart"
at = "10s"
drain = "5s"
restart_time = "5s"
pause = "5s"
"#,
    );
    let r = run_one(&sc);
    for (i, ev) in events(&r, "drain").iter().enumerate() {
        assert_eq!(ev.component, format!("server-{i}"));
        assert_eq!(ev.time, SimTime::ZERO + SimDuration::from_secs(10 + 15 * i as u64));
    }
    let stopped = events(&r, "stopped");
    assert_eq!(stopped.len(), 3);
    for (i, ev) in stopped.iter().enumerate() {
        assert_eq!(ev.time, SimTime::ZERO + SimDuration::from_secs(15 + 15 * i as u64));
    }
    assert_eq!(events(&r, "deploy-done").len(), 1);
    // While draining, a server gains no connections.
    for i in 0..3usize {
        let (from, to) = (10.0 + 15.0 * i as f64, 15.0 + 15.0 * i as f64);
        let during: Vec<u32> = r
            .samples
            .iter()
            .filter(|s| (from..to).contains(&s.time.as_secs_f64()))
            .map(|s| s.servers[i].connections)
            .collect();
        assert!(
            during.windows(2).all(|w| w[1] <= w[0]),
            "server {i} gained connections while draining: {during:?}"
        );
    }
    assert_eq!(metric(&r, "connections_refused"), 0.0);
    assert_eq!(metric(&r, "gave_up"), 0.0);
    let arrived = metric(&r, "clients_arrived");
    let last = r.samples.last().unwrap();
    assert_eq!(last.connections as f64, arrived, "everyone is connected at the end");
}

/// Scale-in: the highest-numbered server leaves every list at the updater's
/// tick, drains, then stops; its clients reconnect to the others.
#[test]
fn scale_in_removes_at_the_tick_then_drains() {
    let sc = scenario(
        r#"
duration = "60s"
replications = 1
[servers]
count = 4
max_connections = 10000
connect_cost = "10us"
[balancer]
balance = "roundrobin"
update_interval = "20s"
[[population]]
name = "players"
role = "player"
arrival = { process = "step", count = 400, at = "1s", over = "4s" }
session = "1h"
rtt = "2ms"
reconnect = { policy = "fixed", delay = "100ms", max_attempts = 50 }
[[fault]]
kind = "scale-in"
count = 1
at = "10s"
drain = "5s"
"#,
    );
    let r = run_one(&sc);
    let updated = events(&r, "servers-updated");
    assert_eq!(updated[0].time, SimTime::ZERO + SimDuration::from_secs(20));
    let stopped = events(&r, "stopped");
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].component, "server-3");
    assert_eq!(stopped[0].time, SimTime::ZERO + SimDuration::from_secs(25));
    assert_eq!(r.final_conns[3], 0);
    assert_eq!(r.final_conns.iter().sum::<u32>(), 400);
    assert_eq!(metric(&r, "dropped"), 100.0, "round robin gave it a quarter");
}
