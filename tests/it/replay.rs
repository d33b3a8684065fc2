//! Replaying HAProxy logs (`arrival = { process = "haproxy-log", … }`):
//! the replay reproduces the log's connections exactly.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use wscap::engine::{self, Scheduler};
use wscap::experiment;
use wscap::scenario::{self, Arrival, Scenario, ScenarioError};
use wscap::sim::{ClientState, World};
use wscap::time::{SimDuration, SimTime};

fn dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/haproxy"))
}

fn replay_scenario(arrival: &str, base: &Path) -> Result<Scenario, ScenarioError> {
    let src = format!(
        r#"
duration = "120s"
replications = 1
sample_interval = "1s"

[servers]
count = 3
max_connections = 100

[balancer]
balance = "source"

[[population]]
name = "replayed"
role = "player"
arrival = {arrival}
session = "1h"
reconnect = {{ policy = "none" }}
"#
    );
    scenario::parse(&src, Path::new("replay.toml"), "replay", base)
}

/// What each arrival was, by arrival: (session, first attempt's start,
/// source, server once connected). Client slots are reused after a client
/// leaves, so the run is stepped one event at a time and every client seen
/// is noted under its arrival index.
fn run_world(sc: &Scenario) -> BTreeMap<u64, (SimDuration, SimTime, u64, Option<u32>)> {
    let mut w = World::new(sc, 0);
    let mut s = Scheduler::new();
    w.prime(&mut s);
    let end = SimTime::ZERO + sc.duration;
    let mut seen: BTreeMap<u64, (SimDuration, SimTime, u64, Option<u32>)> = BTreeMap::new();
    loop {
        let st = engine::run(&mut w, &mut s, end, 1).unwrap();
        for c in &w.clients.list {
            let e = seen
                .entry(c.arrival)
                .or_insert((c.session, c.attempt_start, c.source, None));
            if c.state == ClientState::Connected {
                e.3 = Some(c.server);
            }
        }
        if st.events == 0 {
            return seen;
        }
    }
}

/// `replay.log` (tests/fixtures/haproxy): 8 connections, TCP and HTTP(S)
/// lines with and without a syslog prefix, logged at their end (so not in
/// accept order), from 5 client addresses. Total times 5750, 3000, 12000,
/// 4875, 62000, 60000, 0 and 999 ms: mean 148 624 / 8 = 18 578 ms.
#[test]
fn replay_reproduces_the_logs_arrivals_and_session_lengths_exactly() {
    let sc = replay_scenario(
        r#"{ process = "haproxy-log", file = "replay.log", sessions = true, sources = true, start = "1s" }"#,
        dir(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let r = experiment::run_replication(&sc, 0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.metric("clients_arrived"), Some(8.0));
    assert_eq!(r.metric("connections_accepted"), Some(8.0));

    let seen = run_world(&sc);
    let clients: Vec<_> = seen.values().collect();
    assert_eq!(clients.len(), 8);
    let mean_ns = clients.iter().map(|c| c.0.0 as u128).sum::<u128>() / 8;
    assert_eq!(mean_ns, 18_578 * 1_000_000);
    // Connect times: the accept dates from the first (10:00:00.000), plus `start`.
    let mut starts: Vec<u64> = clients.iter().map(|c| c.1.since(SimTime::ZERO).0).collect();
    starts.sort_unstable();
    let want: Vec<u64> = [0, 1250, 2500, 3000, 4125, 10_000, 10_000, 30_999]
        .iter()
        .map(|ms| SimDuration::from_millis(1000 + ms).0)
        .collect();
    assert_eq!(starts, want);
    // Five client addresses; clients sharing one land on one server.
    let sources: BTreeSet<u64> = clients.iter().map(|c| c.2).collect();
    assert_eq!(sources.len(), 5);
    let mut server_of: HashMap<u64, u32> = HashMap::new();
    for c in &clients {
        let srv = c.3.expect("every replayed client connected");
        assert_eq!(*server_of.entry(c.2).or_insert(srv), srv);
    }
}

#[test]
fn time_scale_and_the_populations_own_sessions() {
    let sc = replay_scenario(
        r#"{ process = "haproxy-log", file = "replay.log", time_scale = 0.5 }"#,
        dir(),
    )
    .unwrap();
    let Arrival::HaproxyLog { replay, .. } = &sc.populations[0].arrival else {
        panic!("not a log replay")
    };
    assert_eq!(replay.times.last(), Some(&SimDuration::from_micros(15_499_500)));
    assert!(replay.sessions.is_empty() && replay.sources.is_empty());
    let seen = run_world(&sc);
    assert_eq!(seen.len(), 8);
    // Without `sessions`, the population's own `session` (1 h).
    assert!(seen.values().all(|c| c.0 == SimDuration::from_secs(3600)));
}

#[test]
fn malformed_lines_fail_with_their_number_or_are_skipped_and_counted() {
    let e = replay_scenario(r#"{ process = "haproxy-log", file = "replay-bad.log" }"#, dir()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("line 2") && msg.contains("lenient"), "{msg}");
    // With sessions, a logasap line (`+0`) has no session length either.
    let sc = replay_scenario(
        r#"{ process = "haproxy-log", file = "replay-bad.log", sessions = true, lenient = true }"#,
        dir(),
    )
    .unwrap();
    let Arrival::HaproxyLog { replay, .. } = &sc.populations[0].arrival else {
        panic!()
    };
    assert_eq!((replay.lines, replay.skipped, replay.times.len()), (4, 2, 2));
    assert_eq!(replay.first_skipped, Some(2));
    let sc = replay_scenario(
        r#"{ process = "haproxy-log", file = "replay-bad.log", lenient = true }"#,
        dir(),
    )
    .unwrap();
    let Arrival::HaproxyLog { replay, .. } = &sc.populations[0].arrival else {
        panic!()
    };
    assert_eq!((replay.skipped, replay.times.len()), (1, 3));
    let e = replay_scenario(
        r#"{ process = "haproxy-log", file = "replay.log", time_scale = 0 }"#,
        dir(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("time_scale"), "{e}");
}

/// Public log lines (beside the project, never copied into it): all 40
/// read, HAProxy 1.x to 2.6, HTTP, HTTPS and TCP, with and without syslog.
#[test]
fn real_world_log_lines_replay() {
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/haproxy-real");
    if !real.exists() {
        eprintln!("../shared/fixtures/haproxy-real not present: skipped");
        return;
    }
    for f in ["haproxy-http.log", "haproxy-tcp.log"] {
        let sc = replay_scenario(
            &format!(r#"{{ process = "haproxy-log", file = "{f}", sources = true }}"#),
            &real,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let Arrival::HaproxyLog { replay, .. } = &sc.populations[0].arrival else {
            panic!()
        };
        assert_eq!(replay.times.len(), 20, "{f}");
        // With sessions, the logasap lines (`+` total time) are skipped when lenient.
        let sc = replay_scenario(
            &format!(r#"{{ process = "haproxy-log", file = "{f}", sessions = true, lenient = true }}"#),
            &real,
        )
        .unwrap();
        let Arrival::HaproxyLog { replay, .. } = &sc.populations[0].arrival else {
            panic!()
        };
        eprintln!("{f}: {} lines, {} skipped for sessions", replay.lines, replay.skipped);
        assert_eq!(replay.lines, 20);
    }
}

#[test]
fn the_cli_fails_on_a_malformed_line_unless_lenient() {
    use crate::cli::{text, wscap};
    let f = "tests/fixtures/haproxy/replay-bad.toml";
    let o = wscap(&["check", f]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("replay-bad.log` line 2"), "{}", text(&o));
    let o = wscap(&["check", "--lenient", f]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 of 4 lines"), "{}", text(&o));
    let tmp = tempfile::tempdir().unwrap();
    let o = wscap(&["run", f, "--lenient", "--quiet", "--out", tmp.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}
