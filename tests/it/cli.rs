//! The `wscap` binary as a user runs it: outputs, determinism across thread
//! counts, and bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn wscap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wscap"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("wscap runs")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[test]
fn same_seed_gives_identical_outputs_whatever_the_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("t1");
    let b = tmp.path().join("t2");
    for (dir, threads) in [(&a, "1"), (&b, "2")] {
        let o = wscap(&[
            "run",
            "scenarios/quickstart.toml",
            "--out",
            dir.to_str().unwrap(),
            "--threads",
            threads,
            "--replications",
            "3",
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let fa = files_in(&a);
    let names: Vec<_> = fa
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "summary.csv",
        "summary.json",
        "timeseries.csv",
        "events.csv",
        "report.md",
        "connections.png",
        "connections.svg",
        "connect_latency.png",
        "connect_latency.svg",
        "refusals.png",
        "refusals.svg",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    assert_eq!(fa.len(), files_in(&b).len());
    for f in &fa {
        let other = b.join(f.file_name().unwrap());
        assert!(
            std::fs::read(f).unwrap() == std::fs::read(&other).unwrap(),
            "{} differs between --threads 1 and 2",
            f.display()
        );
    }
    // The summary has one row per replication plus mean and ci95.
    let summary = std::fs::read_to_string(a.join("summary.csv")).unwrap();
    let rows: Vec<&str> = summary.lines().collect();
    assert_eq!(rows.len(), 1 + 3 + 2);
    assert!(rows[0].starts_with("replication,clients_arrived,"));
    assert!(rows[4].starts_with("mean,") && rows[5].starts_with("ci95,"));
    let events = std::fs::read_to_string(a.join("events.csv")).unwrap();
    for e in ["crash", "marked-down", "restarted", "marked-up"] {
        assert!(
            events.contains(&format!(",server-1,{e},")),
            "no {e} in events.csv:\n{events}"
        );
    }
}

#[test]
fn run_prints_summary_speed_and_report_location() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q");
    let o = wscap(&[
        "run",
        "scenarios/quickstart.toml",
        "--out",
        out.to_str().unwrap(),
        "--replications",
        "2",
    ]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("events/s") && t.contains("peak memory") && t.contains("report.md"),
        "{t}"
    );
}

fn write_scenario(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("bad.toml");
    std::fs::write(&p, body).unwrap();
    p
}

const VALID: &str = r#"duration = "10s"
replications = 1
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

#[test]
fn bad_scenarios_exit_2_with_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (VALID.replace("\"roundrobin\"", "\"round-robin\""), ":7:", "leastconn"),
        (
            VALID.replace("count = 2", "count = 2\ncolour = \"red\""),
            ":5:",
            "unknown field `colour`",
        ),
        (VALID.replace("\"5/s\"", "\"-5/s\""), ":11:", "positive"),
        (
            VALID.replace("max_connections = 10", "max_connections = 0"),
            ":5:",
            "servers.max_connections",
        ),
        (
            format!("{VALID}[[fault]]\nkind = \"crash\"\nserver = 9\nat = \"1s\"\n"),
            ":15:",
            "does not exist",
        ),
        (
            VALID.replace("session = \"3s\"", "session = { dist = \"gaussian\", mean = \"3s\" }"),
            ":12:",
            "lognormal",
        ),
    ];
    for (src, line, needle) in cases {
        let p = write_scenario(tmp.path(), &src);
        let out = tmp.path().join("out");
        for args in [
            vec!["check", p.to_str().unwrap()],
            vec!["run", p.to_str().unwrap(), "--out", out.to_str().unwrap()],
        ] {
            let o = wscap(&args);
            let t = text(&o);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {t}");
            assert!(
                t.contains(&format!("bad.toml{line}")),
                "{args:?}: wanted line {line} in: {t}"
            );
            assert!(t.contains(needle), "{args:?}: wanted `{needle}` in: {t}");
            assert!(!t.contains("panicked"), "{t}");
        }
        assert!(!out.exists(), "a failed run must not create its output folder");
    }
}

#[test]
fn missing_file_is_a_clear_error() {
    let o = wscap(&["run", "scenarios/does-not-exist.toml"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o).contains("does-not-exist.toml"), "{}", text(&o));
}

#[test]
fn check_accepts_every_bundled_scenario() {
    let mut args = vec!["check".to_string()];
    for e in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            args.push(p.to_string_lossy().into_owned());
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = wscap(&args);
    assert!(o.status.success(), "{}", text(&o));
}

/// `VALID` as a file, run with `args` (2 replications unless given).
fn run_valid(dir: &Path, extra: &[&str]) -> (Output, PathBuf) {
    let p = dir.join("valid.toml");
    std::fs::write(&p, VALID).unwrap();
    let out = dir.join("out");
    let mut args = vec!["run", p.to_str().unwrap(), "--out", out.to_str().unwrap()];
    if !extra.contains(&"--replications") {
        args.extend(["--replications", "3"]);
    }
    args.extend(extra);
    (wscap(&args), out)
}

#[test]
fn help_documents_the_exit_status() {
    for args in [vec!["--help"], vec!["run", "--help"], vec!["plan", "--help"]] {
        let o = wscap(&args);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(0), "{t}");
        for needle in [
            "Exit status:",
            "0  ok",
            "1  the run failed",
            "2  bad input",
            "3  an SLO verdict failed",
        ] {
            assert!(t.contains(needle), "{args:?}: no `{needle}` in {t}");
        }
    }
}

#[test]
fn run_slo_met_exits_0_and_reports_the_verdict() {
    let tmp = tempfile::tempdir().unwrap();
    let (o, out) = run_valid(
        tmp.path(),
        &["--slo", "connect_ms_p99<10000", "--slo", "refused_ratio<=0.5"],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("SLO verdict: every SLO is met (one-sided 95 % bound of the mean over 3 replications)"),
        "{t}"
    );
    assert!(t.contains("  connect_ms_p99<10000  met "), "{t}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let verdict = md
        .find("**SLO verdict: every SLO is met**")
        .expect("verdict in report.md");
    assert!(
        verdict < md.find("**Answer.**").unwrap(),
        "the verdict comes first:\n{md}"
    );
    assert!(md.contains("| `connect_ms_p99<10000` |"), "{md}");
    assert!(
        md.contains("--slo 'connect_ms_p99<10000' --slo 'refused_ratio<=0.5'"),
        "{md}"
    );
}

#[test]
fn run_slo_not_met_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    // Connect latency includes the clients' RTT: never under 1 µs.
    let (o, out) = run_valid(
        tmp.path(),
        &["--slo", "connect_ms_p99<0.001", "--slo", "connect_ms_p99<10000"],
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(3), "{t}");
    assert!(t.contains("SLO verdict: 1 of 2 not met"), "{t}");
    let line = t.lines().find(|l| l.contains("connect_ms_p99<0.001")).unwrap();
    assert!(line.contains("NOT MET") && line.contains("upper bound"), "{line}");
    assert!(!t.contains("error:"), "a verdict is not an error: {t}");
    // The outputs are written all the same.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("**SLO verdict: not met.** 1 of 2 SLOs is not met with 95 % confidence (`connect_ms_p99<0.001`"),
        "{md}"
    );
    let top = &md[..md.find("**Answer.**").unwrap()];
    assert!(top.contains("| **not met** |") && !top.contains("NaN"), "{top}");
    crate::report::validate_html(&out);
}

#[test]
fn bad_input_exits_2_and_failures_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--replications", "0"],
            vec!["--replications 0", "between 1 and 10000"],
        ),
        (
            vec!["--slo", "p99<100"],
            vec![
                "--slo p99<100",
                "unknown metric `p99`",
                "connect_ms_p99",
                "refused_ratio",
            ],
        ),
        (vec!["--slo", "connect_ms_p99=100"], vec!["expected metric<value"]),
        (vec!["--slo", "connect_ms_p99<abc"], vec!["`abc` is not a number"]),
        (
            vec!["--slo", "connect_ms_p99<100", "--replications", "1"],
            vec!["at least 2", "--replications 2"],
        ),
    ];
    for (extra, needles) in cases {
        let (o, out) = run_valid(tmp.path(), &extra);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {t}");
        for n in needles {
            assert!(t.contains(n), "{extra:?}: wanted `{n}` in {t}");
        }
        assert!(!out.exists(), "{extra:?}: nothing runs, nothing is written");
    }
    // An output folder that cannot be created (its parent is a file) is
    // refused before the run, as a bad --out (issue 14).
    let blocker = tmp.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let p = tmp.path().join("valid.toml");
    let o = wscap(&[
        "run",
        p.to_str().unwrap(),
        "--out",
        blocker.join("out").to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("cannot be used as an output folder"), "{}", text(&o));
}
