//! The model held to theory (DESIGN.md, "Validation").
//!
//! Statistical tests run R independent replications, take the mean of the
//! per-replication estimates and its 99 % Student-t confidence interval, and
//! require the theoretical value to lie inside it. No tolerance is tuned by
//! hand: where the model differs from the textbook system by a known small
//! amount, the comment next to the assertion says how much and why.
//!
//! Runs are seeded, so each test is deterministic: a pass stays a pass.

use std::path::Path;

use wscap::check;
use wscap::engine::{self, Scheduler};
use wscap::experiment::{self, Replication};
use wscap::scenario::{self, Scenario};
use wscap::sim::{ClientState, World};
use wscap::stats;
use wscap::time::SimTime;

pub fn scenario(src: &str) -> Scenario {
    scenario::parse(src, Path::new("test.toml"), "test", Path::new("."))
        .unwrap_or_else(|e| panic!("bad test scenario:\n{e}"))
}

/// Runs every replication of `sc` (in parallel) and panics on an invariant
/// violation.
pub fn replications(sc: &Scenario) -> Vec<Replication> {
    experiment::run(sc, 0, &|| {})
        .unwrap_or_else(|e| panic!("{e}"))
        .replications
}

pub fn metric(reps: &[Replication], name: &str) -> Vec<f64> {
    reps.iter()
        .map(|r| r.metric(name).unwrap_or_else(|| panic!("no metric {name}")))
        .collect()
}

/// Asserts that `theory` lies within mean ± (99 % CI half-width + `extra`).
/// Returns (mean, half-width).
pub fn assert_in_ci(label: &str, xs: &[f64], theory: f64, extra: f64) -> (f64, f64) {
    let m = stats::mean(xs);
    let hw = stats::ci_half_width(xs, 0.99);
    eprintln!(
        "{label}: measured {m:.5} ± {hw:.5} (99 % CI, {} reps: [{:.5}, {:.5}]), theory {theory:.5}",
        xs.len(),
        m - hw,
        m + hw
    );
    assert!(hw.is_finite(), "{label}: no confidence interval");
    assert!(
        (m - theory).abs() <= hw + extra,
        "{label}: theory {theory:.5} outside measured {m:.5} ± {hw:.5} (+ allowance {extra})"
    );
    (m, hw)
}

// ---------------------------------------------------------------------------
// 1a/1b. Erlang B
// ---------------------------------------------------------------------------

/// 4 servers × 10 slots, offered A = λ/μ = 34 Erlangs: pooled blocking
/// ErlangB(40, 34) ≈ 4.4 %; per-server blocking ErlangB(10, 8.5) ≈ 14.5 %.
const SERVERS: u32 = 4;
const CAP: u32 = 10;
const LOAD: f64 = 34.0;
const MEAN_SESSION_S: f64 = 1.0;

/// A loss system: Poisson arrivals at λ = LOAD/s, exponential sessions of
/// mean 1 s, no reconnects (a refused client gives up, so attempts =
/// arrivals), `queue = false` (a full server or pool refuses at once).
///
/// A slot is taken when the balancer forwards and released when the session
/// ends, so it is held for session + backend_latency + connect_cost =
/// session + 2 µs: a 2·10⁻⁶ relative increase of the offered load, which
/// moves the blocking probability by ~10⁻⁶, far inside any CI here. The
/// warm-up (20 mean sessions) removes the empty-start transient. 400 s of
/// counting gives ~13 600 arrivals per replication.
fn loss_system(strategy: &str) -> Scenario {
    scenario(&format!(
        r#"
seed = 20240501
duration = "420s"
warmup = "20s"
replications = 10
sample_interval = "1s"

[servers]
count = {SERVERS}
max_connections = {CAP}
connect_cost = "1us"
backend_latency = "1us"

[balancer]
balance = "{strategy}"
queue = false

[balancer.health_check]
enabled = true

[[population]]
name = "clients"
role = "player"
arrival = {{ process = "poisson", rate = "{rate}/s" }}
session = {{ dist = "exponential", mean = "{MEAN_SESSION_S}s" }}
rtt = "2us"
reconnect = {{ policy = "none" }}
"#,
        rate = LOAD / MEAN_SESSION_S,
    ))
}

/// Runs the loss system and returns each replication's refusal ratio.
fn refused_ratio(strategy: &str) -> Vec<f64> {
    refused_ratio_and_reps(strategy).0
}

fn refused_ratio_and_reps(strategy: &str) -> (Vec<f64>, Vec<Replication>) {
    let reps = replications(&loss_system(strategy));
    for r in &reps {
        assert_eq!(r.metric("truncated"), Some(0.0));
        // No queue: every refusal is a "queue full" at once.
        assert_eq!(r.metric("connections_refused"), r.metric("refused_queue_full"));
        assert_eq!(r.metric("reconnects"), Some(0.0));
    }
    (metric(&reps, "refused_ratio"), reps)
}

/// leastconn over N × cap is one pool of N·cap trunks: a request is refused
/// only when every slot is taken. Also Little's law on the same runs: the
/// mean number connected (the carried load) is the accepted rate times the
/// mean session, λ(1 − B)/μ = A(1 − B), estimated from the 1 s samples
/// after the warm-up.
#[test]
fn erlang_b_pooled_leastconn() {
    let theory = stats::erlang_b((SERVERS * CAP) as u64, LOAD);
    let (ratios, reps) = refused_ratio_and_reps("leastconn");
    assert_in_ci("erlang-b pooled, leastconn", &ratios, theory, 0.0);
    let warmup = 20.0;
    let carried: Vec<f64> = reps
        .iter()
        .map(|r| {
            let xs: Vec<f64> = r
                .samples
                .iter()
                .filter(|s| s.time.as_secs_f64() > warmup)
                .map(|s| s.connections as f64)
                .collect();
            stats::mean(&xs)
        })
        .collect();
    assert_in_ci(
        "little's law, carried load (connections)",
        &carried,
        LOAD * (1.0 - theory),
        0.0,
    );
}

/// `first` fills servers in order but, like leastconn, only refuses when
/// all are full: the same pooled Erlang B. (The pooled strategies give
/// identical numbers: sessions are drawn at arrival from a stream that does
/// not depend on routing, and a pooled loss system's busy count does not
/// depend on which free slot is used, so the runs refuse the same clients.)
#[test]
fn erlang_b_pooled_first() {
    let theory = stats::erlang_b((SERVERS * CAP) as u64, LOAD);
    assert_in_ci("erlang-b pooled, first", &refused_ratio("first"), theory, 0.0);
}

/// `random(1)` is NOT the textbook "random assignment" loss system: like
/// HAProxy, wscap's random draws (balancer.rs, `pick_available` →
/// `random_draws` → `random_available`) only draw among servers with a
/// free slot and refuse only when none has one. So it is a pooled system
/// too and must match ErlangB(N·cap, A), and clearly not the per-server
/// value. (`random`, two draws, is pooled for the same reason.)
#[test]
fn erlang_b_random_is_pooled() {
    let pooled = stats::erlang_b((SERVERS * CAP) as u64, LOAD);
    let per_server = stats::erlang_b(CAP as u64, LOAD / SERVERS as f64);
    let (m, hw) = assert_in_ci("erlang-b pooled, random(1)", &refused_ratio("random(1)"), pooled, 0.0);
    assert!(
        (m - per_server).abs() > hw,
        "random looks like per-server assignment ({m} vs {per_server})"
    );
}

/// The per-server ("random assignment") loss system needs a strategy that
/// does not skip full servers: `source` hashing with every client its own
/// address and a map-based table sends each client to a server fixed by a
/// hash of its id, regardless of load, and with `queue = false` refuses if
/// that server is full. Each server is then its own Erlang loss system
/// with offered load A/N, and since all N are alike the overall refusal
/// ratio is ErlangB(cap, A/N).
///
/// Caveat: the key of client k is the same in every replication (its index),
/// so the sequence of assigned servers is shared by the replications; only
/// arrival times and sessions differ. The hash (SplitMix64) makes that
/// sequence indistinguishable from i.i.d. uniform, so each server still
/// sees a thinned Poisson stream of rate λ/N.
#[test]
fn erlang_b_per_server_source_hash() {
    let per_server = stats::erlang_b(CAP as u64, LOAD / SERVERS as f64);
    let pooled = stats::erlang_b((SERVERS * CAP) as u64, LOAD);
    let (m, hw) = assert_in_ci("erlang-b per server, source", &refused_ratio("source"), per_server, 0.0);
    assert!((m - pooled).abs() > hw, "source hashing looks pooled ({m} vs {pooled})");
}

// ---------------------------------------------------------------------------
// 1c. Health checks detect a crash
// ---------------------------------------------------------------------------

const CRASH_AT_S: f64 = 10.0;
const BACKEND_LATENCY_S: f64 = 1e-6;

/// All `count` servers crash at 10 s (each is an independent sample: its
/// check phase is drawn on its own). Returns, per replication, the
/// detection delays (marked-down time − crash time) of every server.
fn detection_delays(mode: &str, health: &str) -> Vec<Vec<f64>> {
    let count = 10;
    let faults: String = (0..count)
        .map(|k| format!("[[fault]]\nkind = \"crash\"\nserver = {k}\nat = \"{CRASH_AT_S}s\"\nmode = \"{mode}\"\n"))
        .collect();
    let sc = scenario(&format!(
        r#"
seed = 99
duration = "25s"
replications = 10
sample_interval = "5s"

[servers]
count = {count}
max_connections = 100
connect_cost = "1us"
backend_latency = "{BACKEND_LATENCY_S}s"

[balancer]
balance = "leastconn"

[balancer.health_check]
{health}

[[population]]
name = "clients"
role = "player"
arrival = {{ process = "poisson", rate = "5/s" }}
session = {{ dist = "exponential", mean = "5s" }}

{faults}"#
    ));
    replications(&sc)
        .iter()
        .map(|r| {
            (0..count)
                .map(|k| {
                    let comp = format!("server-{k}");
                    let at = |ev: &str| {
                        r.timeline
                            .iter()
                            .find(|e| e.component == comp && e.event.as_str() == ev)
                            .unwrap_or_else(|| panic!("rep {}: no {ev} event for {comp}", r.index))
                            .time
                            .as_secs_f64()
                    };
                    let crash = at("crash");
                    assert!((crash - CRASH_AT_S).abs() < 1e-9);
                    at("marked-down") - crash
                })
                .collect()
        })
        .collect()
}

/// Checks every delay is in (lo, hi] and that the mean over the
/// replications' means matches `theory_mean`.
fn check_detection(label: &str, delays: &[Vec<f64>], lo: f64, hi: f64, theory_mean: f64) {
    for d in delays.iter().flatten() {
        assert!(
            *d > lo && *d <= hi + 1e-9,
            "{label}: detection after {d} s, expected in ({lo}, {hi}]"
        );
    }
    let all: Vec<f64> = delays.iter().flatten().copied().collect();
    let (min, max) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    eprintln!(
        "{label}: delays over {} crashes in [{min:.3}, {max:.3}] s, bounds ({lo}, {hi:.6}]",
        all.len()
    );
    let means: Vec<f64> = delays.iter().map(|v| stats::mean(v)).collect();
    assert_in_ci(&format!("{label}: mean detection delay (s)"), &means, theory_mean, 0.0);
}

/// Checks run every `inter` from a phase drawn uniformly in [0, inter)
/// (spread-checks), so the first failing check starts U(0, inter] after the
/// crash; after it the server is checked every `fastinter` (default inter)
/// and marked down at the `fall`-th failure, whose result comes one
/// balancer↔server round trip (2 × backend_latency) after it started:
///   delay = U(0, inter] + (fall − 1)·fastinter + 2·backend_latency.
/// With inter = 2 s, fall = 3: delay ∈ (4, 6] s, mean 5 s — inside the
/// brief's "inter × fall ± inter" = [4, 8] s, and a tighter check.
#[test]
fn crash_detected_after_fall_checks() {
    let (inter, fall) = (2.0, 3.0);
    let rtt = 2.0 * BACKEND_LATENCY_S;
    let d = detection_delays("process", "inter = \"2s\"\nfall = 3");
    let lo = (fall - 1.0) * inter;
    check_detection(
        "crash detection, inter 2s fall 3",
        &d,
        lo,
        inter + lo + rtt,
        inter / 2.0 + lo + rtt,
    );
}

/// With fastinter = 500 ms the checks after the first failure come faster:
/// delay = U(0, 2] + 2 × 0.5 s ∈ (1, 3] s, mean 2 s.
#[test]
fn crash_detected_faster_with_fastinter() {
    let (inter, fall, fastinter) = (2.0, 3.0, 0.5);
    let rtt = 2.0 * BACKEND_LATENCY_S;
    let d = detection_delays("process", "inter = \"2s\"\nfall = 3\nfastinter = \"500ms\"");
    let lo = (fall - 1.0) * fastinter;
    check_detection(
        "crash detection, fastinter 500ms",
        &d,
        lo,
        inter + lo + rtt,
        inter / 2.0 + lo + rtt,
    );
}

/// A vanished host does not answer: the failing check only completes when
/// its `timeout` expires, instead of after one round trip:
/// delay = U(0, inter] + (fall − 1)·inter + timeout ∈ (5, 7] s for
/// inter 2 s, fall 3, timeout 1 s.
#[test]
fn host_crash_detected_after_check_timeouts() {
    let (inter, fall, timeout) = (2.0, 3.0, 1.0);
    let d = detection_delays("host", "inter = \"2s\"\nfall = 3\ntimeout = \"1s\"");
    let lo = (fall - 1.0) * inter + timeout;
    check_detection("host crash detection, timeout 1s", &d, lo, inter + lo, inter / 2.0 + lo);
}

// ---------------------------------------------------------------------------
// 1d. Conservation
// ---------------------------------------------------------------------------

/// An overloaded deployment (offered ≈ 170 Erlangs against 120 balancer
/// slots) with every mechanism on: per-server and backend queues with
/// timeouts, process and host crashes with restarts, HAProxy retries with
/// redispatch, slowstart, client reconnects with backoff, spectators on
/// Zipf rooms and NATed players. `maxconn` above the process cap makes the
/// process itself refuse (the balancer then retries).
fn busy(strategy: &str, hash_type: &str, maxconn: u32) -> Scenario {
    scenario(&format!(
        r#"
seed = 7
duration = "90s"
replications = 3
sample_interval = "5s"

[servers]
count = 4
max_connections = 40
cores = 2
connect_cost = {{ dist = "exponential", mean = "2ms" }}
backend_latency = "250us"

[balancer]
balance = "{strategy}"
hash_type = "{hash_type}"
maxconn = {maxconn}
maxqueue = 5
timeout_queue = "2s"
timeout_connect = "3s"
retries = 2
redispatch = true
slowstart = "5s"

[balancer.health_check]
inter = "1s"
fall = 2
rise = 2
fastinter = "300ms"

[[population]]
name = "players"
role = "player"
arrival = {{ process = "poisson", rate = "12/s" }}
session = {{ dist = "exponential", mean = "12s" }}
rtt = {{ dist = "lognormal", median = "40ms", sigma = 0.5 }}
source_ips = 30
room_size = 2
reconnect = {{ policy = "exponential", base = "200ms", cap = "5s", jitter = "full", max_attempts = 6 }}

[[population]]
name = "watchers"
role = "spectator"
arrival = {{ process = "poisson", rate = "3/s" }}
session = {{ dist = "exponential", mean = "8s" }}
watch = {{ pick = "zipf", rooms = 20, exponent = 1.1 }}
reconnect = {{ policy = "fixed", delay = "1s", max_attempts = 3 }}

[[fault]]
kind = "crash"
server = 1
at = "20s"
mode = "process"
restart_after = "10s"

[[fault]]
kind = "crash"
server = 2
at = "40s"
mode = "host"
restart_after = "15s"

[[fault]]
kind = "crash"
server = 0
at = "60s"
mode = "process"
"#
    ))
}

/// Every attempt ends accepted or refused, or is still in flight
/// (connecting or queued) when the run stops. With no warm-up the counters
/// cover the whole run, so this holds exactly:
///   accepted + refused + in flight at the end = attempts
///   attempts = arrivals + reconnects,   gave_up = clients in `gave-up`.
/// (With a warm-up it would not: an attempt started before the warm-up
/// ends may be counted as accepted/refused after it.)
#[test]
fn conservation_under_faults() {
    let cases = [
        ("leastconn", "map-based", 30),
        ("roundrobin", "map-based", 45),
        ("first", "map-based", 30),
        ("random(2)", "map-based", 45),
        ("source", "map-based", 30),
        ("room", "consistent", 45),
    ];
    // Which refusal paths and client outcomes the runs went through (all
    // servers are never down at once, so "no server" is not expected).
    let mut exercised = [0u64; 5];
    for (strategy, hash_type, maxconn) in cases {
        let sc = busy(strategy, hash_type, maxconn);
        for rep in 0..sc.replications {
            let mut w = World::new(&sc, rep);
            w.run().unwrap_or_else(|e| panic!("{strategy} rep {rep}: {e}"));
            let bad = check::check(&w);
            assert!(
                bad.is_empty(),
                "{strategy} rep {rep}: invariants violated:\n{}",
                bad.join("\n")
            );
            let c = w.ctx.rec.counters;
            let st = |s: ClientState| w.clients.state_counts[s as usize];
            let in_flight = st(ClientState::Connecting) + st(ClientState::Queued);
            let label = format!("{strategy}/{hash_type}/maxconn {maxconn} rep {rep}");
            eprintln!(
                "conservation {label}: attempts {} = accepted {} + refused {} + in flight {} \
                 (arrived {}, reconnects {}, dropped {}, gave up {}, refused: queue full {}, \
                 queue timeout {}, server failed {}, no server {})",
                c.connection_attempts,
                c.connections_accepted,
                c.connections_refused,
                in_flight,
                c.clients_arrived,
                c.reconnects,
                c.dropped,
                c.gave_up,
                c.refused_queue_full,
                c.refused_queue_timeout,
                c.refused_server_failed,
                c.refused_no_server
            );
            assert_eq!(
                c.connections_accepted + c.connections_refused + in_flight,
                c.connection_attempts,
                "{label}: attempts not accounted for"
            );
            assert_eq!(c.clients_arrived + c.reconnects, c.connection_attempts, "{label}");
            assert_eq!(c.clients_arrived, w.clients.created, "{label}");
            // Slots of clients that left are handed to later arrivals.
            assert!(w.clients.list.len() as u64 <= w.clients.created, "{label}");
            assert_eq!(c.gave_up, st(ClientState::GaveUp), "{label}");
            assert_eq!(
                c.connections_refused,
                c.refused_queue_full + c.refused_queue_timeout + c.refused_server_failed + c.refused_no_server,
                "{label}: refusal breakdown does not add up"
            );
            assert!(
                c.dropped > 0 && c.reconnects > 0 && c.connections_refused > 0,
                "{label}: faults had no effect"
            );
            for (i, v) in [
                c.refused_queue_full,
                c.refused_queue_timeout,
                c.refused_server_failed,
                c.gave_up,
                c.dropped,
            ]
            .into_iter()
            .enumerate()
            {
                exercised[i] += v;
            }
        }
        // The public entry point agrees (same seed → same run) and reports
        // no violation.
        let r = experiment::run_replication(&sc, 0).unwrap_or_else(|e| panic!("{e}"));
        let g = |n: &str| r.metric(n).unwrap();
        assert!(g("connections_accepted") + g("connections_refused") <= g("connection_attempts"));
    }
    for (name, v) in ["queue full", "queue timeout", "server failed", "gave up", "dropped"]
        .iter()
        .zip(exercised)
    {
        assert!(v > 0, "the conservation scenarios never produced `{name}`");
    }
}

/// Steps `sc`'s replication `rep` one event at a time and checks, after
/// every event, what must hold between events:
/// - the balancer never has more than `maxconn` sessions on a server;
/// - a server process never holds more than `max_connections` (accepted
///   plus being accepted);
/// - a server's own queue only holds requests while that server is full,
///   and the backend queue only while no usable server has a free slot;
/// - the end-of-run invariants (`check::check`), every 200 events.
///
/// Returns the violations found (first few), and the number of events.
fn per_event_violations(sc: &Scenario, rep: u32) -> (Vec<String>, u64) {
    let maxconn = sc.balancer.maxconn.unwrap_or(sc.servers.max_connections);
    let cap = sc.servers.max_connections as usize;
    let mut w = World::new(sc, rep);
    let mut s = Scheduler::new();
    w.prime(&mut s);
    let end = SimTime::ZERO + sc.duration;
    let (mut bad, mut n) = (Vec::new(), 0u64);
    while bad.len() < 5 {
        let st = engine::run(&mut w, &mut s, end, 1).unwrap();
        if st.events == 0 {
            break;
        }
        n += 1;
        let t = s.now().as_secs_f64();
        let servers = w.servers.list.len() as u32;
        let mut free = false;
        for k in 0..servers {
            let b = &w.cluster.nodes[0].lb;
            let sv = &w.servers.list[k as usize];
            if b.conns(k) > maxconn {
                bad.push(format!(
                    "t={t:.6}: balancer has {} sessions on server {k}, maxconn {maxconn}",
                    b.conns(k)
                ));
            }
            let load = sv.conns.len() + sv.accepting as usize;
            if load > cap {
                bad.push(format!(
                    "t={t:.6}: server {k} process holds {load}, max_connections {cap}"
                ));
            }
            let usable = b.is_up(k) && b.eweight(k) > 0;
            if b.queued(k) > 0 && usable && b.conns(k) < maxconn {
                bad.push(format!(
                    "t={t:.6}: {} waiting for server {k} which has a free slot",
                    b.queued(k)
                ));
            }
            free |= usable && b.conns(k) < maxconn;
        }
        if free && w.cluster.nodes[0].lb.backend_queued() > 0 {
            bad.push(format!(
                "t={t:.6}: {} in the backend queue while a server has a free slot",
                w.cluster.nodes[0].lb.backend_queued()
            ));
        }
        if n.is_multiple_of(200) {
            bad.extend(check::check(&w).into_iter().map(|v| format!("t={t:.6}: {v}")));
        }
    }
    bad.extend(check::check(&w));
    (bad, n)
}

/// The between-events invariants hold throughout the busy runs (with
/// `maxconn` at or below the process cap, the usual configuration).
#[test]
fn invariants_hold_after_every_event() {
    for (strategy, hash_type) in [
        ("leastconn", "map-based"),
        ("roundrobin", "map-based"),
        ("first", "map-based"),
        ("random(2)", "map-based"),
        ("source", "map-based"),
        ("room", "consistent"),
    ] {
        let sc = busy(strategy, hash_type, 30);
        let (bad, n) = per_event_violations(&sc, 0);
        eprintln!(
            "per-event invariants, {strategy}/{hash_type}: {n} events, {} violations",
            bad.len()
        );
        assert!(bad.is_empty(), "{strategy}/{hash_type}:\n{}", bad.join("\n"));
    }
}

/// BUG (src/sim.rs, `Event::RetryBackend`): HAProxy's retry after a failed
/// connection goes back through server assignment, so it waits in the
/// server's queue if the server is at `maxconn`. wscap's retry calls
/// `forward` directly, taking a balancer slot even when the server already
/// has `maxconn` sessions, because the failed attempt released its slot
/// (and a queued request took it) during the 1 s turn-around.
///
/// Smallest case: one server whose process takes 2 connections, balancer
/// maxconn 3, 10 clients at the same instant. Clients 0, 1 are accepted;
/// client 2 is forwarded (3/3), refused by the full process, releases its
/// slot, which client 3 takes from the queue (3/3); 1 s later client 2's
/// retry is forwarded anyway: 4 sessions on a server with maxconn 3. The
/// same happens in the busy scenarios with maxconn 45 above the process
/// cap 40 (up to 55 sessions).
#[test]
fn retries_respect_maxconn() {
    let sc = scenario(
        r#"
duration = "10s"
replications = 1

[servers]
count = 1
max_connections = 2
connect_cost = "1ms"
backend_latency = "250us"

[balancer]
balance = "leastconn"
maxconn = 3
retries = 3

[[population]]
name = "clients"
role = "player"
arrival = { process = "step", count = 10, at = "1s" }
session = "1h"
rtt = "2ms"
"#,
    );
    let (mut bad, _) = per_event_violations(&sc, 0);
    for case in [("roundrobin", "map-based"), ("room", "consistent")] {
        let (b, _) = per_event_violations(&busy(case.0, case.1, 45), 0);
        bad.extend(
            b.into_iter()
                .map(|v| format!("busy {}/{}, maxconn 45: {v}", case.0, case.1)),
        );
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
