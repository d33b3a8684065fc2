//! Network slowdowns (`kind = "slowdown"`): a tier's links add latency and
//! lose packets for a window, and the run shows it where theory says.

use crate::cli::wscap;
use crate::validation::{assert_in_ci, metric, replications, scenario};

/// Players on 4 servers with a constant 40 ms RTT; the slowdown on `tier`
/// runs from 120 s for 60 s.
fn toml(tier: &str, latency: &str, loss: f64, rate: &str) -> String {
    format!(
        r#"
name = "slow"
seed = 11
duration = "300s"
warmup = "30s"
replications = 4
sample_interval = "1s"

[servers]
count = 4
max_connections = 2000

[balancer]
balance = "room"

[[population]]
name = "players"
role = "player"
arrival = {{ process = "poisson", rate = "{rate}" }}
session = {{ dist = "exponential", mean = "2m" }}
rtt = "40ms"
room_size = 2

[game]
think_time = {{ dist = "exponential", mean = "3s" }}
moves = {{ dist = "uniform", min = 40, max = 120 }}

[relay]
kind = "kafka"

[[fault]]
kind = "slowdown"
tier = "{tier}"
at = "120s"
for = "60s"
latency = "{latency}"
loss = {loss}
"#
    )
}

/// 200 ms more one way on the clients' links: a move crosses two client
/// links (sender → its server, server → opponent), so during the window
/// every move takes 400 ms longer, and so does the p99.
#[test]
fn latency_on_the_clients_links_shifts_moves_by_two_hops() {
    let sc = scenario(&toml("clients", "200ms", 0.0, "10/s"));
    let reps = replications(&sc);
    let steady = metric(&reps, "move_ms_p99_steady");
    let faults = metric(&reps, "move_ms_p99_faults");
    let shift: Vec<f64> = faults.iter().zip(&steady).map(|(f, s)| f - s).collect();
    // HDR histograms keep 3 significant digits: 1 ms at these latencies.
    assert_in_ci("move p99 shift (ms)", &shift, 400.0, 1.0);
}

/// 5 % of packets lost on the clients' links: a SYN that is lost waits
/// Linux's 1 s initial RTO, so more than 1 % of connects during the window
/// take over a second (P = 0.05 per attempt) and the window's connect p99
/// is above 1 s, while steady state stays far below it.
#[test]
fn syn_loss_puts_the_connect_p99_past_the_initial_rto() {
    let sc = scenario(&toml("clients", "0ms", 0.05, "20/s"));
    let reps = replications(&sc);
    for (s, f) in metric(&reps, "connect_ms_p99_steady")
        .into_iter()
        .zip(metric(&reps, "connect_ms_p99_faults"))
    {
        assert!(s < 500.0, "steady connect p99 {s} ms");
        assert!(f >= 1000.0, "connect p99 during the slowdown {f} ms");
    }
    // The window closes once the links are healthy again.
    for r in &reps {
        let w = &r.fault_windows[0];
        assert!(w.recovered.is_some(), "{w:?}");
    }
}

#[test]
fn slowdowns_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    for (bad, want) in [
        (toml("cache", "10ms", 0.0, "10/s"), "needs a [cache] table"),
        (
            toml("clients", "10ms", 1.5, "10/s"),
            "not a loss ratio between 0 and 0.9",
        ),
        (
            toml("clients", "0ms", 0.0, "10/s"),
            "needs a latency above 0s or a loss above 0",
        ),
        (toml("disk", "10ms", 0.0, "10/s"), "clients"),
        (
            toml("clients", "10ms", 0.0, "10/s").replace(r#"for = "60s""#, r#"for = "0s""#),
            "fault[0].for",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, bad).unwrap();
        let out = wscap(&["check", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "want {want:?} in:\n{err}");
        assert!(err.contains("bad.toml:"), "names the file and line:\n{err}");
    }
}
