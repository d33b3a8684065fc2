//! Limits (issue 14, part 1): every count-like key has a documented upper
//! bound, refused by validation with the key and the limit; a run whose
//! estimated memory, output or events is above its limit is refused before
//! it runs (exit 2, naming the estimate, the limit and the key), unless
//! `--allow-large`; `--threads` is bounded.

use std::path::Path;

use crate::cli::{text, wscap};
use wscap::scenario::{self, limits};

const BASE: &str = r#"
duration = "10s"
replications = 1
[servers]
count = 2
max_connections = 100
[balancer]
balance = "leastconn"
[[population]]
name = "p"
role = "player"
arrival = { process = "poisson", rate = "5/s" }
session = "5s"
"#;

/// `BASE` with `edits` (find, replace) and `extra` appended.
fn with(edits: &[(&str, &str)], extra: &str) -> String {
    let mut s = BASE.to_string();
    for (a, b) in edits {
        assert!(s.contains(a), "{a}");
        s = s.replacen(a, b, 1);
    }
    s + extra
}

const WEB: &str = "\n[web]\nnginx = { count = 1 }\napp = { count = 1, workers = 2, service = \"5ms\" }\n";

/// One case per bound: the scenario at the bound loads, one above is
/// refused naming the key and the limit.
#[test]
fn every_count_like_key_has_a_bound() {
    const GAME: &str = "\n[game]\nthink_time = \"1s\"\nmoves = 40\n[relay]\nkind = \"redis\"\n";
    const CACHE: &str = "\n[cache]\n[database]\n";
    type Case = (&'static str, Box<dyn Fn(u64) -> String>, u64);
    let cases: Vec<Case> = vec![
        (
            "servers.cores",
            Box::new(|v| {
                with(
                    &[("max_connections = 100", &format!("max_connections = 100\ncores = {v}"))],
                    "",
                )
            }),
            limits::MAX_CORES.into(),
        ),
        (
            "balancer.nbthread",
            Box::new(|v| with(&[("\"leastconn\"", &format!("\"leastconn\"\nnbthread = {v}"))], "")),
            limits::MAX_CORES.into(),
        ),
        (
            "servers.max_connections",
            Box::new(|v| with(&[("max_connections = 100", &format!("max_connections = {v}"))], "")),
            limits::MAX_CONNECTIONS.into(),
        ),
        (
            "balancer.maxconn",
            Box::new(|v| with(&[("\"leastconn\"", &format!("\"leastconn\"\nmaxconn = {v}"))], "")),
            limits::MAX_CONNECTIONS.into(),
        ),
        (
            "balancer.node_maxconn",
            Box::new(|v| with(&[("\"leastconn\"", &format!("\"leastconn\"\nnode_maxconn = {v}"))], "")),
            limits::MAX_CONNECTIONS.into(),
        ),
        (
            "balancer.maxqueue",
            Box::new(|v| with(&[("\"leastconn\"", &format!("\"leastconn\"\nmaxqueue = {v}"))], "")),
            limits::MAX_CONNECTIONS.into(),
        ),
        (
            "max_events",
            Box::new(|v| {
                with(
                    &[("replications = 1", &format!("replications = 1\nmax_events = {v}"))],
                    "",
                )
            }),
            limits::MAX_EVENTS,
        ),
        (
            "web.nginx.cores",
            Box::new(|v| with(&[], &WEB.replace("count = 1 }", &format!("count = 1, cores = {v} }}")))),
            limits::MAX_CORES.into(),
        ),
        (
            "web.app.workers",
            Box::new(|v| with(&[], &WEB.replace("workers = 2", &format!("workers = {v}")))),
            limits::MAX_WORKERS.into(),
        ),
        (
            "web.app.backlog",
            Box::new(|v| with(&[], &WEB.replace("workers = 2", &format!("workers = 2, backlog = {v}")))),
            limits::MAX_BACKLOG.into(),
        ),
        (
            "web.app.keys",
            Box::new(|v| with(&[], &WEB.replace("workers = 2", &format!("workers = 2, keys = {v}")))),
            limits::MAX_KEYS.into(),
        ),
        (
            "cache.maxclients",
            Box::new(|v| {
                with(
                    &[],
                    &format!(
                        "{GAME}{}",
                        CACHE.replace("[cache]", &format!("[cache]\nmaxclients = {v}"))
                    ),
                )
            }),
            limits::MAX_REDIS_CLIENTS.into(),
        ),
        (
            "game.moves",
            Box::new(|v| with(&[], &GAME.replace("moves = 40", &format!("moves = {v}")))),
            limits::MAX_MOVES.into(),
        ),
        (
            "population[0].room_size",
            Box::new(|v| {
                with(
                    &[("session = \"5s\"", &format!("session = \"5s\"\nroom_size = {v}"))],
                    "",
                )
            }),
            limits::MAX_ROOM_SIZE.into(),
        ),
        (
            "population[0].source_ips",
            Box::new(|v| {
                with(
                    &[("session = \"5s\"", &format!("session = \"5s\"\nsource_ips = {v}"))],
                    "",
                )
            }),
            limits::MAX_SOURCE_IPS.into(),
        ),
        (
            "population[1].watch.rooms",
            Box::new(|v| {
                with(
                    &[],
                    &format!(
                        "{GAME}\n[[population]]\nname = \"s\"\nrole = \"spectator\"\narrival = {{ process = \"step\", count = 1, at = \"1s\" }}\nsession = \"5s\"\nwatch = {{ pick = \"zipf\", rooms = {v}, exponent = 1.0 }}\n"
                    ),
                )
            }),
            limits::MAX_ZIPF_ROOMS.into(),
        ),
        (
            "population[0].reconnect.max_attempts",
            Box::new(|v| {
                with(
                    &[(
                        "session = \"5s\"",
                        &format!(
                            "session = \"5s\"\nreconnect = {{ policy = \"fixed\", delay = \"1s\", max_attempts = {v} }}"
                        ),
                    )],
                    "",
                )
            }),
            limits::MAX_ATTEMPTS.into(),
        ),
        (
            "population[0].arrival.max_clients",
            Box::new(|v| {
                with(
                    &[("rate = \"5/s\" }", &format!("rate = \"5/s\", max_clients = {v} }}"))],
                    "",
                )
            }),
            limits::MAX_CLIENTS_PER_POPULATION,
        ),
        (
            "population[0].arrival.count",
            Box::new(|v| {
                with(
                    &[(
                        "process = \"poisson\", rate = \"5/s\"",
                        &format!("process = \"step\", count = {v}, at = \"1s\""),
                    )],
                    "",
                )
            }),
            limits::MAX_CLIENTS_PER_POPULATION,
        ),
        (
            "population[0].arrival.target",
            Box::new(|v| {
                with(
                    &[(
                        "process = \"poisson\", rate = \"5/s\"",
                        &format!("process = \"ramp\", target = {v}, over = \"5s\""),
                    )],
                    "",
                )
            }),
            limits::MAX_CLIENTS_PER_POPULATION,
        ),
        (
            "relay.partitions",
            Box::new(|v| {
                with(
                    &[("count = 2", "count = 200")],
                    &format!(
                        "\n[game]\nthink_time = \"1s\"\nmoves = 40\n[relay]\nkind = \"kafka\"\npartitions = {}\n",
                        v.div_ceil(200)
                    ),
                )
            }),
            limits::MAX_SERVER_PARTITIONS,
        ),
        // Two populations of 30 M each: the total is above the bound.
        (
            "population[1].arrival.count",
            Box::new(|v| {
                with(
                    &[(
                        "process = \"poisson\", rate = \"5/s\"",
                        "process = \"step\", count = 1, at = \"1s\"",
                    )],
                    &format!(
                        "\n[[population]]\nname = \"q\"\nrole = \"player\"\narrival = {{ process = \"step\", count = {}, at = \"1s\" }}\nsession = \"5s\"\n",
                        v - 1
                    ),
                )
            }),
            limits::MAX_CLIENTS_TOTAL,
        ),
    ];
    for (field, make, max) in &cases {
        let parse = |v: u64| scenario::parse(&make(v), Path::new("t.toml"), "t", Path::new("."));
        if let Err(e) = parse(*max) {
            panic!("{field} = {max} (the bound) must load:\n{e}");
        }
        let e = parse(max + 1)
            .err()
            .unwrap_or_else(|| panic!("{field} = {} loaded", max + 1));
        let p = e
            .problems()
            .iter()
            .find(|p| p.field == *field)
            .unwrap_or_else(|| panic!("{field}: {e}"));
        assert!(
            p.message.contains("limit") || p.message.contains("at most"),
            "{field}: {}",
            p.message
        );
        assert!(p.line.is_some(), "{field}: not located");
    }
}

#[test]
fn the_issues_cases_are_refused_before_they_run() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("s.toml");
    std::fs::write(&f, BASE).unwrap();
    let f = f.to_str().unwrap();
    let out = tmp.path().join("o");
    let out = out.to_str().unwrap();
    for (set, says) in [
        (
            "balancer.nbthread=4000000000",
            "field `balancer.nbthread`: 4000000000 is above the limit 1024",
        ),
        ("servers.cores=4000000000", "field `servers.cores`"),
        ("replications=10001", "at most 10000 replications"),
    ] {
        let o = wscap(&["run", f, "--set", set, "--out", out]);
        assert_eq!(o.status.code(), Some(2), "{set}: {}", text(&o));
        assert!(text(&o).contains(says), "{set}: {}", text(&o));
    }
    // 100 000 servers for an hour: 27 GiB of timeseries.
    let o = wscap(&[
        "run",
        f,
        "--set",
        "servers.count=100000",
        "--set",
        "duration=1h",
        "--out",
        out,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("field `servers.count`: estimated output"), "{t}");
    assert!(t.contains("above the limit 2.0 GiB"), "{t}");
    let o = wscap(&["run", f, "--threads", "100000", "--out", out]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("--threads 100000: at most 1024 worker threads"),
        "{}",
        text(&o)
    );
    assert!(!Path::new(out).exists());
}

/// The memory limit: above it, refused with the estimate, the limit, where
/// it comes from and the key; `--allow-large` runs it anyway.
#[test]
fn the_memory_limit_is_soft() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("s.toml");
    std::fs::write(&f, BASE).unwrap();
    let out = tmp.path().join("o");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", f.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"];
        args.extend(extra);
        std::process::Command::new(env!("CARGO_BIN_EXE_wscap"))
            .args(&args)
            .env(limits::MEMORY_LIMIT_ENV, "1MiB")
            .output()
            .unwrap()
    };
    let o = run(&[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("field `population[0].arrival.rate`: estimated peak memory"),
        "{t}"
    );
    assert!(t.contains("above the limit 1 MiB (WSCAP_MEMORY_LIMIT)"), "{t}");
    assert!(t.contains("--allow-large"), "{t}");
    assert!(!out.exists());
    let o = run(&["--allow-large"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.join("report.md").exists());
}

/// The estimate is within 2× of the measured peak memory (the summary's
/// "peak memory", VmHWM) on the bundled scenarios that run in seconds,
/// one replication on one thread.
#[test]
fn the_memory_estimate_is_within_2x_of_the_measured_peak() {
    for name in ["quickstart", "replica-lag", "balancer-failover"] {
        let file = format!("scenarios/{name}.toml");
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("o");
        let o = wscap(&[
            "run",
            &file,
            "--replications",
            "1",
            "--threads",
            "1",
            "--out",
            out.to_str().unwrap(),
        ]);
        let t = text(&o);
        assert!(o.status.success(), "{t}");
        let mib: f64 = t
            .split("peak memory ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("no peak memory in: {t}"));
        let mut sc = scenario::load(Path::new(env!("CARGO_MANIFEST_DIR")).join(&file).as_path()).unwrap();
        sc.replications = 1;
        let est = limits::estimate(&sc, 1).memory_bytes / (1024.0 * 1024.0);
        eprintln!("{name}: estimated {est:.1} MiB, measured {mib:.1} MiB");
        assert!(
            est <= 2.0 * mib && mib <= 2.0 * est,
            "{name}: estimated {est:.1} MiB, measured {mib:.1} MiB"
        );
    }
}
