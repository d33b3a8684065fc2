//! `wscap compare`, `sweep` and `plan` as a user runs them, on small
//! scenarios: their files, their statistics, and plan's answer against
//! Erlang B.

use std::path::{Path, PathBuf};

use wscap::stats;

use crate::cli::{text, wscap};
use crate::report::validate_html;

/// A pooled loss system: `servers` × 10 slots, Poisson arrivals at 34/s,
/// exponential sessions of 1 s (34 Erlangs offered), no queue, no retry.
/// Under leastconn (or first) it refuses ErlangB(10·servers, 34).
fn loss_system(servers: u32) -> String {
    format!(
        r#"name = "loss"
seed = 11
duration = "130s"
warmup = "10s"
replications = 4
sample_interval = "1s"

[servers]
count = {servers}
max_connections = 10
connect_cost = "1us"
backend_latency = "1us"

[balancer]
balance = "leastconn"
queue = false

[[population]]
name = "clients"
role = "player"
arrival = {{ process = "poisson", rate = "34/s" }}
session = {{ dist = "exponential", mean = "1s" }}
rtt = "2us"
reconnect = {{ policy = "none" }}
"#
    )
}

/// A tiny connection-only scenario (10 s, two servers).
const SMALL: &str = r#"name = "small"
duration = "10s"
replications = 2
[servers]
count = 2
max_connections = 10
[balancer]
balance = "roundrobin"
[[population]]
name = "p"
role = "player"
arrival = { process = "poisson", rate = "5/s" }
session = "3s"
"#;

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

fn ok(args: &[&str]) -> String {
    let o = wscap(args);
    let t = text(&o);
    assert!(o.status.success(), "{args:?}: {t}");
    t
}

fn csv(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let mut rows = vec![header];
    for rec in r.records() {
        rows.push(rec.unwrap().iter().map(String::from).collect());
    }
    rows
}

fn col(rows: &[Vec<String>], name: &str) -> usize {
    rows[0]
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {:?}", rows[0]))
}

#[test]
fn sweep_runs_the_grid_and_writes_a_row_per_point_and_replication() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "small.toml", SMALL);
    let mut outs = vec![];
    for threads in ["1", "2"] {
        let out = tmp.path().join(format!("sweep{threads}"));
        ok(&[
            "sweep",
            file.to_str().unwrap(),
            "--set",
            "servers.count=2..4",
            "--set",
            "balancer.balance=leastconn,first",
            "--set",
            "duration=8s",
            "--out",
            out.to_str().unwrap(),
            "--threads",
            threads,
            "--quiet",
        ]);
        outs.push(out);
    }
    let rows = csv(&outs[0].join("sweep.csv"));
    // 3 × 2 points, 2 replications each, after the header.
    assert_eq!(rows.len(), 1 + 3 * 2 * 2);
    let (n, s, r) = (
        col(&rows, "servers.count"),
        col(&rows, "balancer.balance"),
        col(&rows, "replication"),
    );
    assert!(col(&rows, "refused_ratio") > r, "metrics follow the replication");
    assert!(!rows[0].iter().any(|h| h == "duration"), "a single value is not swept");
    let got: Vec<(&str, &str, &str)> = rows[1..5]
        .iter()
        .map(|x| (x[n].as_str(), x[s].as_str(), x[r].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("2", "leastconn", "0"),
            ("2", "leastconn", "1"),
            ("2", "first", "0"),
            ("2", "first", "1")
        ]
    );
    // Replication i of every point arrives the same clients (common random numbers).
    let arrived = col(&rows, "clients_arrived");
    let first: Vec<&str> = rows[1..]
        .iter()
        .filter(|x| x[r] == "0")
        .map(|x| x[arrived].as_str())
        .collect();
    assert!(first.windows(2).all(|w| w[0] == w[1]), "{first:?}");
    // Same outputs whatever the thread count.
    for f in [
        "sweep.csv",
        "sweep_summary.csv",
        "report.md",
        "sweep.svg",
        "report.html",
    ] {
        assert!(
            std::fs::read(outs[0].join(f)).unwrap() == std::fs::read(outs[1].join(f)).unwrap(),
            "{f} differs between --threads 1 and 2"
        );
    }
    assert_eq!(validate_html(&outs[0]), 1);
    let md = std::fs::read_to_string(outs[0].join("report.md")).unwrap();
    assert!(md.starts_with("# wscap sweep: small\n\n**Answer.** 6 points"), "{md}");
}

#[test]
fn compare_finds_identical_and_different_strategies() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "loss.toml", &loss_system(4));
    let out = tmp.path().join("cmp");
    let t = ok(&[
        "compare",
        file.to_str().unwrap(),
        "--strategies",
        "leastconn,first,source",
        "--set",
        "duration=60s",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(t.contains("Answer."), "{t}");
    let pairs = csv(&out.join("compare_pairs.csv"));
    let find = |metric: &str, a: &str, b: &str| -> (f64, f64, bool) {
        let row = pairs
            .iter()
            .find(|r| r[0] == metric && r[1] == a && r[2] == b)
            .unwrap_or_else(|| panic!("no pair {metric} {a} {b}"));
        (
            row[3].parse().unwrap(),
            row[4].parse().unwrap_or(f64::NAN),
            row[6] == "true",
        )
    };
    // A pooled loss system refuses only when every slot is taken, whichever
    // server leastconn or first picks: the same refusals, replication by
    // replication.
    let (d, ci, sig) = find("refused_ratio", "leastconn", "first");
    assert_eq!((d, ci, sig), (0.0, 0.0, false));
    // `first` fills server 0 first: far less balanced.
    assert!(find("imbalance_max_over_mean", "leastconn", "first").2);
    // Source hashing (every client its own address) refuses per server,
    // like random assignment (ErlangB(10, 8.5) ≈ 14.5 % vs ErlangB(40, 34)
    // ≈ 4.4 %): significantly more.
    let (d, _, sig) = find("refused_ratio", "leastconn", "source");
    assert!(sig && d < -0.05, "leastconn − source = {d}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("refused ratio: leastconn vs first (difference 0 ± 0): not significantly different"),
        "{md}"
    );
    assert!(
        md.contains("**Answer.** Use **leastconn**") || md.contains("**Answer.** Use **first**"),
        "{md}"
    );
    let rows = csv(&out.join("compare.csv"));
    assert_eq!(rows.len(), 1 + 3 * 4);
    assert_eq!(validate_html(&out), 2);
}

/// The smallest load factor f with ErlangB(n, a·f) ≥ x.
fn erlang_load_factor(n: u64, a: f64, x: f64) -> f64 {
    let (mut lo, mut hi) = (1.0, 4.0);
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if stats::erlang_b(n, a * mid) < x {
            lo = mid
        } else {
            hi = mid
        }
    }
    lo
}

#[test]
fn plan_finds_the_erlang_b_server_count_and_its_headroom() {
    const CAP: u64 = 10;
    const LOAD: f64 = 34.0;
    const SLO: f64 = 0.015;
    // Theory: the smallest N whose pooled blocking is below the SLO, with
    // both neighbours far from the threshold (so the answer is not luck).
    let b = |n: u64| stats::erlang_b(n * CAP, LOAD);
    let want = (1..20u64).find(|&n| b(n) < SLO).unwrap();
    assert_eq!(want, 5);
    assert!(
        b(want - 1) > 2.0 * SLO && b(want) < SLO / 4.0,
        "{} {}",
        b(want - 1),
        b(want)
    );

    let tmp = tempfile::tempdir().unwrap();
    // The scenario starts at 3 servers: the search must go up.
    let file = write(tmp.path(), "loss.toml", &loss_system(3));
    let out = tmp.path().join("plan");
    let t = ok(&[
        "plan",
        file.to_str().unwrap(),
        "--slo",
        &format!("refused_ratio<{SLO}"),
        "--vary",
        "servers.count",
        "--max-replications",
        "8",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(t.contains(&format!("{want} servers meet every SLO")), "{t}");
    let rows = csv(&out.join("plan.csv"));
    let (v, met) = (col(&rows, "servers.count"), col(&rows, "meets_slos"));
    let verdicts: Vec<(u64, bool)> = rows[1..]
        .iter()
        .map(|r| (r[v].parse().unwrap(), r[met] == "true"))
        .collect();
    for &(n, m) in &verdicts {
        assert_eq!(m, n >= want, "servers.count={n}: {verdicts:?}");
    }
    assert!(
        verdicts.iter().any(|&(n, _)| n == want - 1),
        "the value below was tried: {verdicts:?}"
    );
    assert!(verdicts.len() <= 6, "a search, not a grid: {verdicts:?}");

    // Headroom: the load factor at which ErlangB(50, 34·f) reaches the SLO,
    // less what 95 % confidence costs.
    let theory = erlang_load_factor(want * CAP, LOAD, SLO);
    let h = csv(&out.join("headroom.csv"));
    let (f, met) = (col(&h, "load_factor"), col(&h, "meets_slos"));
    let best = h[1..]
        .iter()
        .filter(|r| r[met] == "true")
        .map(|r| r[f].parse::<f64>().unwrap())
        .fold(1.0, f64::max);
    eprintln!("headroom factor {best}, Erlang B {theory:.4}");
    assert!(
        best >= 1.05 && best <= theory + 0.02,
        "headroom factor {best} vs Erlang B {theory}"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.starts_with("# wscap plan: loss\n\n**Answer.** 4 servers are not enough"),
        "{md}"
    );
    assert!(md.contains("Headroom: **"), "{md}");
    validate_html(&out);
}

#[test]
fn bad_arguments_exit_2_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "small.toml", SMALL);
    let f = file.to_str().unwrap();
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["sweep", f, "--set", "servers.count=0..2"],
            vec!["--set servers.count=0", "at least 1"],
        ),
        (
            vec!["sweep", f, "--set", "servers.colour=3"],
            vec!["--set servers.colour=3", "unknown field `colour`", "max_connections"],
        ),
        (
            vec!["sweep", f, "--set", "population.3.session=1s"],
            vec!["--set population.3.session=1s", "numbered 0..=0"],
        ),
        (vec!["sweep", f, "--set", "servers.count"], vec!["expected key=value"]),
        (
            vec!["run", f, "--set", "servers.count=2,3"],
            vec!["several values are for `wscap sweep`"],
        ),
        (
            vec!["compare", f, "--strategies", "leastconn,bogus"],
            vec!["--strategies bogus", "unknown strategy `bogus`", "leastconn, first"],
        ),
        (
            vec!["compare", f, "--strategies", "leastconn,random(5)"],
            vec!["random(5) draws more servers"],
        ),
        (
            vec!["plan", f, "--slo", "p99<100", "--vary", "servers.count"],
            vec![
                "--slo p99<100",
                "unknown metric `p99`",
                "connect_ms_p99",
                "refused_ratio",
            ],
        ),
        (
            vec!["plan", f, "--slo", "refused_ratio<0.1", "--vary", "balancer.balance"],
            vec!["--vary balancer.balance", "whole number"],
        ),
        (
            vec!["compare", f, "--strategies", "leastconn,first", "--slo", "p99<100"],
            vec!["--slo p99<100", "unknown metric `p99`", "connect_ms_p99"],
        ),
        (
            vec![
                "compare",
                f,
                "--strategies",
                "leastconn,first",
                "--pareto",
                "jain_index,p99",
            ],
            vec!["--pareto jain_index,p99", "unknown metric `p99`", "connect_ms_p99"],
        ),
        (
            vec![
                "compare",
                f,
                "--strategies",
                "leastconn,first",
                "--pareto",
                "jain_index:up",
            ],
            vec!["`up` is not a direction"],
        ),
        (
            vec!["compare", f, "--strategies", "leastconn,first", "--replications", "0"],
            vec!["--replications 0", "between 1 and 10000"],
        ),
        (
            vec!["sweep", f, "--set", "servers.count=2,3", "--replications", "0"],
            vec!["--replications 0"],
        ),
    ];
    for (mut args, needles) in cases {
        args.extend(["--out", o]);
        let r = wscap(&args);
        let t = text(&r);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {t}");
        for n in needles {
            assert!(t.contains(n), "{args:?}: wanted `{n}` in: {t}");
        }
        assert!(!t.contains("panicked"), "{t}");
        assert!(!out.exists(), "{args:?}: nothing may be written");
    }
}

#[test]
fn plan_says_when_no_value_can_meet_an_slo() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "loss.toml", &loss_system(3));
    let out = tmp.path().join("plan");
    // Connect latency is fixed by the network (2 µs RTT, 1 µs hops and
    // accept): no server count brings it under 1 µs.
    let o = wscap(&[
        "plan",
        file.to_str().unwrap(),
        "--slo",
        "connect_ms_p99<0.001",
        "--slo",
        "refused_ratio<0.015",
        "--vary",
        "servers.count=3..6",
        "--set",
        "duration=40s",
        "--seed",
        "2026",
        "--out",
        out.to_str().unwrap(),
    ]);
    let t = text(&o);
    // No value meets the SLOs: a failed verdict, not an error.
    assert_eq!(o.status.code(), Some(3), "{t}");
    assert!(!t.contains("error:"), "{t}");
    assert!(
        t.contains("No value of `servers.count` from 3 to 6 meets every SLO"),
        "{t}"
    );
    assert!(
        t.contains("connect_ms_p99 does not improve as `servers.count` grows"),
        "{t}"
    );
    assert!(t.contains("refused_ratio<0.015 is met from 6 servers on"), "{t}");
    assert!(!out.join("headroom.csv").exists());
    // Titled by the scenario, with the seed it ran with.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.starts_with("# wscap plan: loss\n\n**Answer.** No value"), "{md}");
    assert!(md.contains("Scenario `") && md.contains("`, seed 2026."), "{md}");
    assert!(md.contains(" --seed 2026 "), "{md}");
    assert!(!md.contains("seed 0") && !md.contains("NaN"), "{md}");
    validate_html(&out);
}

#[test]
fn plan_reports_are_titled_by_the_scenario_and_its_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "small.toml", SMALL);
    let out = tmp.path().join("plan");
    // A web SLO on a scenario without a web tier: never measured, never met.
    let o = wscap(&[
        "plan",
        file.to_str().unwrap(),
        "--slo",
        "web_ms_p99<100",
        "--vary",
        "servers.count=2..3",
        "--set",
        "duration=4s",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.starts_with("# wscap plan: small\n"), "{md}");
    // SMALL has no seed: the default one, the same in the text and the command.
    let seed = md
        .split("`, seed ")
        .nth(1)
        .and_then(|r| r.split('.').next())
        .unwrap_or_else(|| panic!("no seed in {md}"));
    assert!(md.contains(&format!("--seed {seed} ")), "seed {seed}: {md}");
    let answer = md.split("\n\n").nth(1).unwrap();
    assert!(answer.contains("web_ms_p99 is not measured"), "{answer}");
    for p in md.split("\n\n").filter(|p| !p.starts_with('|')) {
        assert!(!p.contains("NaN") && !p.contains("n/a"), "a sentence with NaN: {p}");
    }
}

/// Compare's recommendation on the pooled loss system: `first` and
/// `leastconn` refuse exactly the same clients with the same connect
/// latency, but `first` piles them on server 0.
fn compare_loss(tmp: &Path, strategies: &str, extra: &[&str]) -> (std::process::Output, PathBuf) {
    let file = write(tmp, "loss.toml", &loss_system(4));
    let out = tmp.join(format!("cmp-{}", extra.len()));
    let mut args = vec![
        "compare",
        file.to_str().unwrap(),
        "--strategies",
        strategies,
        "--set",
        "duration=40s",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    (wscap(&args), out)
}

#[test]
fn compare_never_recommends_a_dominated_strategy() {
    let tmp = tempfile::tempdir().unwrap();
    // The old rule (fewest refusals, then lowest p99) took the first listed
    // of equals: `first`, which leastconn dominates on balance.
    let (o, out) = compare_loss(tmp.path(), "first,leastconn", &[]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let answer = t.lines().find(|l| l.starts_with("Answer.")).unwrap();
    assert!(answer.starts_with("Answer. Use leastconn."), "{answer}");
    assert!(
        answer.contains("Dominated: `first` by `leastconn` (better on Jain's index"),
        "{answer}"
    );
    let rows = csv(&out.join("compare.csv"));
    let (st, pareto, rec, meets) = (
        col(&rows, "strategy"),
        col(&rows, "pareto"),
        col(&rows, "recommended"),
        col(&rows, "meets_slos"),
    );
    for r in &rows[1..] {
        let lc = r[st] == "leastconn";
        assert_eq!(
            (r[pareto] == "true", r[rec] == "true", r[meets].as_str()),
            (lc, lc, "true"),
            "{r:?}"
        );
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| first | yes | no | dominated by leastconn |"), "{md}");
    assert!(md.contains("| leastconn | yes | yes | **recommended** |"), "{md}");
    // The same answer, byte for byte, whatever the thread count.
    let (o1, out1) = compare_loss(tmp.path(), "first,leastconn", &["--threads", "1", "--quiet"]);
    assert_eq!(o1.status.code(), Some(0), "{}", text(&o1));
    for f in ["report.md", "compare.csv", "compare_summary.csv", "compare_pairs.csv"] {
        assert!(
            std::fs::read(out.join(f)).unwrap() == std::fs::read(out1.join(f)).unwrap(),
            "{f} differs between --threads 1 and the default"
        );
    }
}

#[test]
fn compare_recommends_only_strategies_that_meet_the_slos() {
    let tmp = tempfile::tempdir().unwrap();
    // Source hashing refuses per server (ErlangB(10, 8.5) ≈ 14.5 %), the
    // pooled ones ErlangB(40, 34) ≈ 4.4 %.
    let (o, out) = compare_loss(tmp.path(), "source,first,leastconn", &["--slo", "refused_ratio<0.1"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("2 of 3 strategies meet every SLO (`refused_ratio<0.1`): `first` and `leastconn`"),
        "{t}"
    );
    assert!(t.contains("Answer. Use leastconn."), "{t}");
    let rows = csv(&out.join("compare.csv"));
    let (st, meets) = (col(&rows, "strategy"), col(&rows, "meets_slos"));
    for r in &rows[1..] {
        assert_eq!(r[meets] == "true", r[st] != "source", "{r:?}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## SLO verdict"), "{md}");
    assert!(md.contains("| source | no | no | fails an SLO |"), "{md}");
    assert!(md.contains("--slo 'refused_ratio<0.1'"), "{md}");

    // An SLO nobody meets: exit 3, and the report says so.
    let (o, out) = compare_loss(
        tmp.path(),
        "source,first,leastconn",
        &["--slo", "refused_ratio<0.001", "--quiet"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("**Answer.** **No strategy meets every SLO** (`refused_ratio<0.001`) with 95 % confidence: `source` fails: refused_ratio is"),
        "{md}"
    );
    let rows = csv(&out.join("compare.csv"));
    let rec = col(&rows, "recommended");
    assert!(rows[1..].iter().all(|r| r[rec] == "false"));
    assert!(!md.contains("NaN"), "{md}");
}

/// `--set` with a key renamed to HAProxy's word: exit 2 naming the new key.
#[test]
fn an_old_key_in_set_names_the_new_one() {
    let o = crate::cli::wscap(&["run", "scenarios/quickstart.toml", "--set", "balancer.strategy=first"]);
    assert_eq!(o.status.code(), Some(2), "{}", crate::cli::text(&o));
    assert!(
        crate::cli::text(&o).contains("is now `balance`"),
        "{}",
        crate::cli::text(&o)
    );
}
