//! The storage tier (DESIGN.md, "Cache and database") held to exact
//! accounting and to theory: replica lag under overload grows at
//! λ/μ − 1 seconds per second, a failover loses exactly the commits not yet
//! shipped, semi-sync loses none, a Redis crash loses exactly the unflushed
//! moves (only the last second's with `appendfsync everysec`), stale reads
//! appear with lag and vanish when reads go to the primary.
//!
//! The farms are one or two socket servers whose players (in rooms of two,
//! games that do not end unless said) send moves at a known rate: a room
//! makes one move per think time plus a fixed transit of
//! RTT + 2 hops + receive + send = 2 ms + 20 µs + 100 µs + 10 µs.

use wscap::check;
use wscap::engine::{self, Scheduler};
use wscap::experiment::{self, Replication};
use wscap::report;
use wscap::scenario::Scenario;
use wscap::sim::World;
use wscap::time::{SimDuration, SimTime};

use crate::validation::scenario;

/// RTT + 2 hops + receive + send, in seconds.
const TRANSIT_S: f64 = 0.002 + 0.000_020 + 0.000_100 + 0.000_010;

/// `players` players arriving over the first second on `servers` servers
/// (room hashing: both players of a room on one server), thinking `think`
/// (a TOML distribution) per move, `moves` moves a game, then `extra`
/// (the storage tables and faults).
fn farm(seed: u64, duration_s: u64, servers: u32, players: u32, think: &str, moves: &str, extra: &str) -> Scenario {
    scenario(&format!(
        r#"
seed = {seed}
duration = "{duration_s}s"
replications = 1
sample_interval = "1s"

[servers]
count = {servers}
max_connections = 100000
cores = 4
backend_latency = "10us"

[balancer]
balance = "room"

[balancer.health_check]
inter = "1s"

[[population]]
name = "players"
role = "player"
arrival = {{ process = "step", count = {players}, at = "0s", over = "1s" }}
session = "1h"
rtt = "2ms"
room_size = 2
reconnect = {{ policy = "fixed", delay = "100ms", max_attempts = 100 }}

[game]
think_time = {think}
moves = {moves}
rematch_delay = "2s"

[relay]
kind = "redis"

{extra}
"#
    ))
}

fn new_world(sc: &Scenario) -> (World<'_>, Scheduler<wscap::sim::Event>) {
    let mut w = World::new(sc, 0);
    let mut s = Scheduler::new();
    w.prime(&mut s);
    (w, s)
}

/// Runs to `until` (events at `until` included) and checks the invariants.
fn run_to(w: &mut World, s: &mut Scheduler<wscap::sim::Event>, until: SimTime) {
    engine::run(w, s, until, u64::MAX).unwrap();
    let bad = check::check(w);
    assert!(
        bad.is_empty(),
        "t = {:.3} s: invariants violated:\n{}",
        until.as_secs_f64(),
        bad.join("\n")
    );
}

fn at_s(s: f64) -> SimTime {
    SimTime::ZERO + SimDuration::from_secs_f64(s)
}

fn one(r: &Replication, name: &str) -> f64 {
    r.metric(name).unwrap_or_else(|| panic!("no metric {name}"))
}

fn run(sc: &Scenario) -> Replication {
    experiment::run_replication(sc, 0).unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------
// Replica lag
// ---------------------------------------------------------------------------

/// Write-through (no cache): every move is a one-row commit. 2 000 rooms,
/// exponential think time of mean 1 s: λ = 2000 / (1 s + transit) rows/s.
fn lag_farm(threads: u32, rate: u32) -> Scenario {
    farm(
        7,
        40,
        1,
        4000,
        r#"{ dist = "exponential", mean = "1s" }"#,
        "1000000",
        &format!(
            r#"
[database]
cores = 8
replicas = 1
applier_threads = {threads}
apply_rate = "{rate}/s"
ship_delay = "1ms"
"#
        ),
    )
}

const LAG_ROOMS: f64 = 2000.0;

/// Least-squares slope of replica 0's lag over samples from `from_s` on.
fn lag_slope(r: &Replication, from_s: f64) -> f64 {
    let pts: Vec<(f64, f64)> = r
        .storage_samples
        .iter()
        .filter(|s| s.time.as_secs_f64() >= from_s)
        .map(|s| (s.time.as_secs_f64(), s.db_nodes[1].lag_s.expect("replica lag")))
        .collect();
    wscap::model::database::slope(&pts)
}

/// Under overload the backlog grows at λ − μ rows/s, so the lag
/// (backlog ÷ μ) grows at λ/μ − 1 s per s, for one applier thread
/// (μ = 700 rows/s) and for two (μ = 1 400 rows/s); with three
/// (μ = 2 100 > λ) it stays bounded.
///
/// Tolerance: the commits are a superposition of 2 000 renewal streams
/// (exponential + constant), so their count grows like a random walk of
/// variance rate ≈ λ (squared CV 1/(1 + transit)² ≈ 0.996); the applier is
/// deterministic while busy. The OLS slope of a random walk observed over
/// a window W has variance 6σ²/(5W), here σ² = λ/μ², so its standard
/// deviation is √(1.2 λ / W) / μ: 0.012 for one thread, 0.006 for two.
/// We allow 4 of them, plus 0.2 % of λ/μ for the transit's queueing part
/// (cores < 10 % busy: waits of a few µs per 1 s cycle).
#[test]
fn lag_grows_at_lambda_over_mu_minus_one() {
    let lambda = LAG_ROOMS / (1.0 + TRANSIT_S);
    let from_s = 5.0;
    let window = 40.0 - from_s;
    for (threads, rate) in [(1u32, 700u32), (2, 700)] {
        let sc = lag_farm(threads, rate);
        let r = run(&sc);
        let mu = threads as f64 * rate as f64;
        let expected = lambda / mu - 1.0;
        let k = lag_slope(&r, from_s);
        let sd = (1.2 * lambda / window).sqrt() / mu;
        let tol = 4.0 * sd + 0.002 * lambda / mu;
        // The offered rate itself, measured: commits over the run.
        let measured = one(&r, "db_commit_rows") / 40.0;
        eprintln!(
            "{threads} thread(s): lag slope {k:.4} s/s, expected λ/μ − 1 = {expected:.4} (± {tol:.4}); \
             λ measured {measured:.1} rows/s vs {lambda:.1}"
        );
        assert!((k - expected).abs() <= tol, "slope {k} vs {expected} ± {tol}");
        // The run's own trend agrees and says it plainly.
        assert_eq!(one(&r, "replica_lag_unbounded"), 1.0);
        assert!((one(&r, "replica_lag_slope") - expected).abs() <= 2.0 * tol);
        assert!((one(&r, "replica_apply_capacity_rows_per_s") - mu).abs() < 1e-9);
        let o = experiment::Outcome::new(vec![r]);
        let lines = report::storage_lines(&sc, &o).join("\n").to_lowercase();
        assert!(
            lines.contains(&format!(
                "replica lag grows without bound: writes {:.0} rows/s vs apply capacity {mu:.0} rows/s",
                one(&o.replications[0], "db_write_rows_per_s")
            )),
            "{lines}"
        );
    }
    // Three threads: μ = 2 100 > λ. The lag stays near one commit's wait.
    let sc = lag_farm(3, 700);
    let r = run(&sc);
    eprintln!(
        "3 threads: lag max {:.4} s, slope {:.5}",
        one(&r, "replica_lag_max_s"),
        one(&r, "replica_lag_slope")
    );
    assert_eq!(one(&r, "replica_lag_unbounded"), 0.0);
    assert!(one(&r, "replica_lag_max_s") < 0.1);
    let o = experiment::Outcome::new(vec![r]);
    assert!(!report::storage_lines(&sc, &o).join(" ").contains("without bound"));
}

// ---------------------------------------------------------------------------
// Failover
// ---------------------------------------------------------------------------

/// Write-through, ~2 000 one-row commits/s, two replicas 50 ms away, the
/// primary crashes at 10 s, promotion after 1 s of detection.
fn failover_farm(semi_sync: bool) -> Scenario {
    farm(
        5,
        14,
        1,
        4000,
        r#"{ dist = "exponential", mean = "1s" }"#,
        "1000000",
        &format!(
            r#"
[database]
cores = 8
replicas = 2
apply_rate = "100000/s"
ship_delay = "50ms"
failover_detection = "1s"
semi_sync = {semi_sync}

[[fault]]
kind = "db-crash"
target = "primary"
at = "10s"
"#
        ),
    )
}

/// Asynchronous replication: the commits lost at the failover are exactly
/// those whose binlog had not reached a replica when the primary died:
/// committed in the last `ship_delay` before the crash (counted from the
/// binlog's commit times just before it, independently of the replicas'
/// positions). All were acknowledged, so all count as lost, with their
/// moves.
#[test]
fn failover_loses_exactly_the_unshipped_commits() {
    let sc = failover_farm(false);
    let (mut w, mut s) = new_world(&sc);
    let crash = at_s(10.0);
    run_to(&mut w, &mut s, SimTime(crash.0 - 1));
    let ship = SimDuration::from_millis(50);
    let db = w.storage.db.as_ref().unwrap();
    let unshipped: Vec<(u64, bool)> = db
        .binlog
        .after(0)
        .filter(|e| e.committed_at + ship >= crash)
        .map(|e| (e.seq, e.acked))
        .collect();
    assert!(unshipped.iter().all(|e| e.1), "async: acknowledged at commit");
    let expected = unshipped.len() as u64;
    // About λ × ship_delay = 100.
    assert!((60..=140).contains(&expected), "{expected} commits in the last 50 ms");
    run_to(&mut w, &mut s, at_s(10.5));
    assert_eq!(w.storage.tally.commits_lost, 0, "nothing is lost before the promotion");
    run_to(&mut w, &mut s, at_s(14.0));
    let t = w.storage.tally;
    eprintln!(
        "unshipped at the crash: {expected}; lost at failover: {}",
        t.commits_lost
    );
    assert_eq!(t.commits_lost, expected);
    assert_eq!(t.moves_lost_db, expected, "one move per commit");
    let promoted: Vec<_> = w
        .ctx
        .rec
        .timeline
        .iter()
        .filter(|e| e.event == wscap::metrics::Happening::Promoted)
        .collect();
    assert_eq!(promoted.len(), 1);
    assert_eq!(promoted[0].time, at_s(11.0), "detection 1 s, relay log applied at once");
    // Writes flow again: the flusher has nothing left to retry.
    assert_eq!(w.storage.flusher.waiting_retry(), 0);
    let db = w.storage.db.as_ref().unwrap();
    assert!(
        db.binlog.head() > unshipped.last().unwrap().0,
        "new commits after the gap"
    );
}

/// Semi-sync: a commit is acknowledged only once a replica has it, so no
/// acknowledged commit is lost; the unshipped ones were never acknowledged
/// (their writes failed and were retried on the new primary).
#[test]
fn semi_sync_loses_no_acknowledged_commit() {
    let sc = failover_farm(true);
    let r = run(&sc);
    eprintln!(
        "semi-sync: {} commits, {} lost, {} writes failed and retried",
        one(&r, "db_commits"),
        one(&r, "commits_lost"),
        one(&r, "db_writes_failed")
    );
    assert_eq!(one(&r, "commits_lost"), 0.0);
    assert_eq!(one(&r, "moves_lost_db"), 0.0);
    assert_eq!(one(&r, "semi_sync_fallbacks"), 0.0);
    assert!(one(&r, "db_writes_failed") > 50.0, "the waiting commits failed");
    let promoted = r
        .timeline
        .iter()
        .find(|e| e.event == wscap::metrics::Happening::Promoted)
        .unwrap();
    assert!(
        promoted.detail.contains("0 acknowledged commits"),
        "{}",
        promoted.detail
    );
    assert!(
        promoted.detail.contains("unacknowledged ones rolled back"),
        "{}",
        promoted.detail
    );
}

/// Semi-sync with no replica to ack: commits wait `semi_sync_timeout`,
/// then replication falls back to asynchronous (timeline event), and comes
/// back when a replica has caught up.
#[test]
fn semi_sync_falls_back_after_its_timeout() {
    let sc = farm(
        5,
        12,
        1,
        400,
        r#"{ dist = "exponential", mean = "1s" }"#,
        "1000000",
        r#"
[database]
replicas = 1
semi_sync = true
semi_sync_timeout = "2s"
ship_delay = "1ms"

[[fault]]
kind = "db-crash"
target = 0
at = "3s"
restart_after = "5s"
"#,
    );
    let r = run(&sc);
    let off = r
        .timeline
        .iter()
        .find(|e| e.event == wscap::metrics::Happening::SemiSyncOff)
        .expect("fallback");
    let on = r
        .timeline
        .iter()
        .find(|e| e.event == wscap::metrics::Happening::SemiSyncOn)
        .expect("back on");
    let t_off = off.time.as_secs_f64();
    eprintln!("semi-sync off at {t_off:.3} s, on at {:.3} s", on.time.as_secs_f64());
    // The first commit after the crash (within a few ms) times out 2 s later.
    assert!((5.0..5.05).contains(&t_off), "{t_off}");
    assert!(
        (8.0..8.01).contains(&on.time.as_secs_f64()),
        "replica back at 8 s + 1 ms"
    );
    assert_eq!(one(&r, "semi_sync_fallbacks"), 1.0);
    assert_eq!(
        one(&r, "db_writes_failed"),
        0.0,
        "waiting commits are released, not failed"
    );
}

// ---------------------------------------------------------------------------
// Redis crash
// ---------------------------------------------------------------------------

/// ~1 000 moves/s written behind to Redis, flushed every 5 s; Redis
/// crashes at 12.3 s (2.3 s after the flush at 10 s) and stays down.
fn redis_farm(appendfsync: &str) -> Scenario {
    farm(
        9,
        14,
        1,
        2000,
        r#"{ dist = "exponential", mean = "1s" }"#,
        "1000000",
        &format!(
            r#"
[cache]
op_cost = "20us"
network = "250us"
flush = {{ policy = "interval", interval = "5s" }}
appendfsync = "{appendfsync}"

[database]
replicas = 1

[[fault]]
kind = "cache-crash"
at = "12300ms"
"#
        ),
    )
}

/// Moves validated by `t` (whole run).
fn validated_by(w: &mut World, s: &mut Scheduler<wscap::sim::Event>, t: SimTime) -> u64 {
    run_to(w, s, t);
    w.game.tally.moves_validated
}

/// A move is stored in Redis `network + op_cost` = 270 µs after it is
/// validated (Redis is 2 % busy: waits are rare and µs long). The crash
/// loses every move stored after the last flush (appendfsync no), or
/// after the last fsync, at whole seconds (everysec): exactly the moves
/// validated in that window shifted by 270 µs, counted from the socket
/// servers' tally, independently of Redis's bookkeeping.
#[test]
fn redis_crash_loses_exactly_the_unflushed_moves() {
    let delta = SimDuration::from_micros(270);
    let before = |t: f64| SimTime(at_s(t).0 - delta.0);
    for (mode, from) in [("no", 10.0), ("everysec", 12.0)] {
        let sc = redis_farm(mode);
        let (mut w, mut s) = new_world(&sc);
        let v0 = validated_by(&mut w, &mut s, before(from));
        let v1 = validated_by(&mut w, &mut s, before(12.3));
        let unflushed = {
            run_to(&mut w, &mut s, SimTime(at_s(12.3).0 - 1));
            w.storage.cache.as_ref().unwrap().book.unflushed
        };
        run_to(&mut w, &mut s, at_s(14.0));
        let lost = w.storage.cache.as_ref().unwrap().book.lost;
        eprintln!(
            "appendfsync {mode}: {} moves validated in ({from} s, 12.3 s] − 270 µs, lost {lost} of {unflushed} unflushed",
            v1 - v0
        );
        assert_eq!(lost, v1 - v0);
        // Every write after the crash fails (Redis stays down).
        assert_eq!(w.storage.tally.cache_writes_failed, w.game.tally.moves_validated - v1);
        if mode == "everysec" {
            // At most one second's worth; the rest is reloaded and at risk.
            assert!(lost < unflushed && (lost as f64) < 1.1 * 1000.0);
            assert_eq!(w.storage.cache.as_ref().unwrap().book.unflushed, unflushed - lost);
        }
        let crash = w
            .ctx
            .rec
            .timeline
            .iter()
            .find(|e| e.event == wscap::metrics::Happening::Crash)
            .unwrap();
        assert!(crash.detail.contains(&format!("{lost} moves lost")), "{}", crash.detail);
    }
}

// ---------------------------------------------------------------------------
// Reads and rehydration
// ---------------------------------------------------------------------------

/// Two servers, write-through commits (~1 000/s) that outrun a slow
/// replica, server 0 crashes at 10 s: its players reconnect to server 1,
/// which has no state for their rooms and reads each room's history from
/// the database.
fn stale_farm(reads_from: &str) -> Scenario {
    farm(
        3,
        20,
        2,
        2000,
        r#"{ dist = "exponential", mean = "1s" }"#,
        "1000000",
        &format!(
            r#"
[database]
replicas = 1
apply_rate = "500/s"
reads_from = "{reads_from}"

[[fault]]
kind = "crash"
server = 0
at = "10s"
"#
        ),
    )
}

/// With the replica seconds behind, every history read there misses the
/// room's latest moves: stale. Reading from the primary is never stale.
#[test]
fn stale_reads_appear_with_lag_and_vanish_on_the_primary() {
    let lagging = run(&stale_farm("replicas"));
    let primary = run(&stale_farm("primary"));
    for (name, r) in [("replicas", &lagging), ("primary", &primary)] {
        eprintln!(
            "reads_from {name}: {} reads, {} stale (ratio {:.3}), {} rehydrations from the db, lag max {:.1} s",
            one(r, "db_reads"),
            one(r, "stale_reads"),
            one(r, "stale_read_ratio"),
            one(r, "rehydrations_db"),
            one(r, "replica_lag_max_s")
        );
    }
    assert!(one(&lagging, "replica_lag_max_s") > 5.0);
    assert!(one(&lagging, "db_reads") > 300.0);
    assert!(one(&lagging, "stale_read_ratio") > 0.95);
    assert_eq!(one(&lagging, "rehydrations_db"), one(&lagging, "db_reads"));
    assert!(one(&primary, "db_reads") > 300.0);
    assert_eq!(one(&primary, "stale_reads"), 0.0);
}

/// With a cache, reconnecting players' rooms are rehydrated from Redis:
/// 2 × network + op_cost + per_move_cost × moves. After Redis restarts
/// empty (appendfsync no) it holds no game begun before: the history comes
/// from the database.
#[test]
fn rehydration_reads_redis_then_the_database() {
    let tables = |faults: &str| {
        format!(
            r#"
[cache]
op_cost = "20us"
per_move_cost = "1us"
network = "250us"

[database]
replicas = 1
apply_rate = "100000/s"

[[fault]]
kind = "crash"
server = 0
at = "10s"
{faults}
"#
        )
    };
    let think = r#"{ dist = "exponential", mean = "1s" }"#;
    let warm = run(&farm(4, 20, 2, 400, think, "1000000", &tables("")));
    let cold = run(&farm(
        4,
        20,
        2,
        400,
        think,
        "1000000",
        &tables("\n[[fault]]\nkind = \"cache-crash\"\nat = \"5s\"\nrestart_after = \"1s\"\n"),
    ));
    for (name, r) in [("warm", &warm), ("cold", &cold)] {
        eprintln!(
            "{name}: {} from Redis, {} from the db, {} failed; p50 {:.3} ms",
            one(r, "rehydrations_cache"),
            one(r, "rehydrations_db"),
            one(r, "rehydrations_failed"),
            one(r, "rehydration_ms_p50")
        );
    }
    assert!(one(&warm, "rehydrations_cache") > 50.0);
    assert_eq!(one(&warm, "rehydrations_db"), 0.0);
    // About 12 moves per room when server 0 is marked down (13 s):
    // 0.52 ms + ~12 µs, plus some queueing: the ~200 reconnects retry in
    // step (fixed 100 ms delay) and their reads queue on Redis's thread.
    let p50 = one(&warm, "rehydration_ms_p50");
    assert!((0.532..0.6).contains(&p50), "{p50}");
    assert_eq!(one(&cold, "rehydrations_cache"), 0.0);
    assert!(one(&cold, "rehydrations_db") > 50.0);
    // A miss costs the Redis round trip, then the database read.
    assert!(one(&cold, "rehydration_ms_p50") > 1.0);
}

// ---------------------------------------------------------------------------
// Flush policies and maxclients
// ---------------------------------------------------------------------------

/// Lichess policy. Moves every 1 s (constant think), 10 moves a game:
/// flushing 5 s after the last move never fires mid-game, so each game is
/// one batch of its 10 moves, flushed when it ends. Flushing 200 ms after
/// the last move flushes each move on its own.
#[test]
fn lichess_policy_flushes_per_game() {
    let tables = |after: &str| {
        format!(
            r#"
[cache]
flush = {{ policy = "lichess", after_last_move = "{after}" }}

[database]
replicas = 1
"#
        )
    };
    let r = run(&farm(2, 60, 1, 200, "\"1s\"", "10", &tables("5s")));
    eprintln!(
        "after 5 s: {} batches, {} games completed, {} moves flushed",
        one(&r, "flush_batches"),
        one(&r, "games_completed"),
        one(&r, "moves_flushed")
    );
    assert_eq!(one(&r, "flush_batches"), one(&r, "games_completed"));
    assert_eq!(one(&r, "moves_flushed"), 10.0 * one(&r, "flush_batches"));
    let r = run(&farm(2, 20, 1, 200, "\"1s\"", "10", &tables("200ms")));
    let (batches, moves) = (one(&r, "flush_batches"), one(&r, "moves_validated"));
    eprintln!("after 200 ms: {batches} batches for {moves} moves");
    assert!(
        (moves - batches).abs() <= 100.0,
        "one batch per move (but the last 200 ms)"
    );
}

/// Only `maxclients / pool_size` servers get a connection pool: with 16
/// clients and pools of 8, servers 2 and 3 of 4 cannot use Redis and all
/// their writes fail.
#[test]
fn maxclients_leaves_servers_without_a_cache() {
    let tables = |maxclients: u32| {
        format!(
            r#"
[cache]
maxclients = {maxclients}
pool_size = 8

[database]
replicas = 1
"#
        )
    };
    let think = r#"{ dist = "exponential", mean = "1s" }"#;
    let sc = farm(6, 10, 4, 800, think, "1000000", &tables(16));
    let (mut w, mut s) = new_world(&sc);
    run_to(&mut w, &mut s, at_s(10.0));
    // Moves validated on servers 2 and 3: their rooms' players are there.
    let on_late: u64 = w
        .game
        .rooms
        .iter()
        .filter(|r| r.players.iter().all(|&p| w.clients.list[p as usize].server >= 2))
        .map(|r| r.moves_made as u64)
        .sum();
    let t = w.storage.tally;
    eprintln!(
        "{} writes, {} failed, moves on servers 2-3: {on_late}",
        t.cache_writes, t.cache_writes_failed
    );
    assert_eq!(t.cache_writes_failed, on_late);
    assert!(on_late > 0 && on_late < t.cache_writes);
    let r = run(&farm(6, 10, 4, 800, think, "1000000", &tables(10_000)));
    assert_eq!(one(&r, "cache_writes_failed"), 0.0);
}

// ---------------------------------------------------------------------------
// Determinism, absence, validation
// ---------------------------------------------------------------------------

fn everything() -> Scenario {
    farm(
        8,
        30,
        3,
        1000,
        r#"{ dist = "exponential", mean = "2s" }"#,
        r#"{ dist = "uniform", min = 20, max = 60 }"#,
        r#"
[cache]
flush = { policy = "lichess", after_last_move = "3s" }
appendfsync = "everysec"

[database]
replicas = 2
applier_threads = 2
apply_rate = "150/s"
semi_sync = true
ship_delay = "5ms"
failover_detection = "2s"

[[fault]]
kind = "crash"
server = 1
at = "8s"
restart_after = "3s"

[[fault]]
kind = "cache-crash"
at = "12s"
restart_after = "1s"

[[fault]]
kind = "db-crash"
target = 0
at = "5s"
restart_after = "3s"

[[fault]]
kind = "db-crash"
target = "primary"
at = "18s"
restart_after = "4s"
"#,
    )
}

/// Same scenario, same seed: the same numbers, bit for bit, every fault
/// path exercised and every invariant holding along the way.
#[test]
fn storage_runs_are_deterministic_and_conserve() {
    let sc = everything();
    let (mut w, mut s) = new_world(&sc);
    for t in 1..=30 {
        run_to(&mut w, &mut s, at_s(t as f64));
    }
    let a = run(&sc);
    let b = run(&sc);
    let bits = |r: &Replication| r.metrics.iter().map(|m| m.value.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    assert_eq!(format!("{:?}", a.storage_samples), format!("{:?}", b.storage_samples));
    for e in ["promoted", "crash", "restarted"] {
        assert!(a.timeline.iter().any(|x| x.event.as_str() == e), "no {e} event");
    }
    assert!(one(&a, "rehydrations_cache") + one(&a, "rehydrations_db") > 0.0);
}

/// Without `[cache]` and `[database]` the storage metrics are NaN (empty
/// in the CSV) and there are no storage samples.
#[test]
fn no_storage_tier_no_storage_numbers() {
    let sc = farm(1, 5, 1, 100, "\"1s\"", "10", "");
    let r = run(&sc);
    assert!(r.storage_samples.is_empty());
    for name in experiment::STORAGE_METRICS {
        assert!(one(&r, name).is_nan(), "{name} = {}", one(&r, name));
    }
}

fn problem(src: &str) -> (String, Option<usize>, String) {
    let e = wscap::scenario::parse(src, std::path::Path::new("t.toml"), "t", std::path::Path::new("."))
        .expect_err("should fail");
    let p = &e.problems()[0];
    (p.field.clone(), p.line, p.message.clone())
}

#[test]
fn nonsense_storage_values_are_located_errors() {
    let base = |tables: &str| {
        format!(
            "duration = \"1m\"\n[servers]\ncount = 1\nmax_connections = 10\n[balancer]\nbalance = \"leastconn\"\n\
             [[population]]\nname = \"p\"\nrole = \"player\"\narrival = {{ process = \"poisson\", rate = \"1/s\" }}\n\
             session = \"10s\"\n{tables}"
        )
    };
    // Line 12 is the first line of `tables`.
    let (f, l, m) = problem(&base("[cache]\nop_cost = \"20us\"\n"));
    assert_eq!((f.as_str(), l), ("cache", Some(12)));
    assert!(m.contains("add a [database]"), "{m}");
    let (f, l, m) = problem(&base("[database]\nreplicas = 2\napply_rate = \"0/s\"\n"));
    assert_eq!((f.as_str(), l), ("database.apply_rate", Some(14)));
    assert!(m.contains("above 0/s"), "{m}");
    let (f, _, _) = problem(&base("[database]\napplier_threads = 0\n"));
    assert_eq!(f, "database.applier_threads");
    let (f, l, m) = problem(&base("[database]\nreplicas = 0\n"));
    assert_eq!((f.as_str(), l), ("database.reads_from", Some(12)));
    assert!(m.contains("reads_from = \"primary\""), "{m}");
    let (f, l, m) = problem(&base(
        "[database]\nreplicas = 2\n[[fault]]\nkind = \"db-crash\"\ntarget = 2\nat = \"10s\"\n",
    ));
    assert_eq!((f.as_str(), l), ("fault[0].target", Some(16)));
    assert!(m.contains("0..=1"), "{m}");
    let (f, _, m) = problem(&base("[[fault]]\nkind = \"cache-crash\"\nat = \"10s\"\n"));
    assert_eq!(f, "fault[0].kind");
    assert!(m.contains("[cache]"), "{m}");
    let (_, l, m) = problem(&base("[database]\nreplica = 2\n"));
    assert_eq!(l, Some(13));
    assert!(m.contains("unknown field `replica`") && m.contains("replicas"), "{m}");
    let (_, _, m) = problem(&base(
        "[database]\n[[fault]]\nkind = \"db-crash\"\ntarget = \"secondary\"\nat = \"10s\"\n",
    ));
    assert!(m.contains("expected \"primary\" or a replica index"), "{m}");
    let (f, _, _) = problem(&base(
        "[cache]\nflush = { policy = \"interval\", interval = \"0s\" }\n[database]\n",
    ));
    assert_eq!(f, "cache.flush.interval");
}
