//! `wscap spof` as a user runs it: the web tier's primary fails over in
//! its detection time, without a replica it is a single point of failure,
//! one nginx of two is at most degraded, the quickstart runs in seconds;
//! bad arguments exit 2 and a broken SLO exits 3. Also the `nginx-crash`
//! and `app-crash` faults it needs, in a plain run and in validation.
//!
//! `--only` restricts a study to some components: each component's run and
//! the baseline are seeded from (scenario seed, replication) whatever else
//! runs, so a component's row is the same as in the full study.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cli::{text, wscap};
use crate::report::validate_html;

fn csv(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    let mut rows = vec![header];
    for rec in r.records() {
        rows.push(rec.unwrap().iter().map(String::from).collect());
    }
    rows
}

/// The `spof.csv` row of `component`, as (column → value).
fn row(rows: &[Vec<String>], component: &str) -> impl Fn(&str) -> String {
    let header = rows[0].clone();
    let c = header.iter().position(|h| h == "component").unwrap();
    let r = rows
        .iter()
        .find(|r| r[c] == component)
        .unwrap_or_else(|| panic!("no row for {component}"))
        .clone();
    move |name: &str| {
        let k = header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        r[k].clone()
    }
}

fn num(s: String) -> f64 {
    s.parse().unwrap_or(f64::NAN)
}

fn spof(args: &[&str], out: &Path) -> (PathBuf, String) {
    let mut a = vec!["spof"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--out", out.to_str().unwrap(), "--quiet"]);
    let o = wscap(&a);
    assert!(o.status.success(), "wscap {a:?} failed: {}", text(&o));
    (
        out.join("spof.csv"),
        std::fs::read_to_string(out.join("report.md")).unwrap(),
    )
}

/// web-tier: the primary dies, the replica is promoted after
/// `failover_detection` = 20 s; until then every request that writes
/// fails (≈ 30 % of requests, far above the 5-point outage threshold).
/// The outage is measured to one sample interval (1 s): the last interval
/// in outage ends at most one interval after the promotion. So the mean
/// outage must be within its own 95 % CI plus one interval of 20 s.
/// nginx-0 of two: the balancer routes around it at once; only the
/// requests inside it fail, so at most "degraded".
#[test]
fn web_tier_primary_fails_over_in_its_detection_time_and_one_nginx_of_two_is_at_most_degraded() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, md) = spof(
        &["scenarios/web-tier.toml", "--only", "db-primary,nginx-0"],
        &tmp.path().join("s"),
    );
    let rows = csv(&path);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let p = row(&rows, "db-primary");
    assert_eq!(p("class"), "outage until failover");
    assert_eq!(p("spof"), "false");
    let (outage, ci) = (num(p("outage_s")), num(p("outage_s_ci95")));
    assert!(
        (outage - 20.0).abs() <= ci + 1.0,
        "primary outage {outage} ± {ci} s, failover detection 20 s"
    );
    assert!(
        num(p("web_failed_diff")) > num(p("web_failed_diff_ci95")),
        "the outage fails requests"
    );
    let n = row(&rows, "nginx-0");
    assert!(
        ["no visible effect", "degraded"].contains(&n("class").as_str()),
        "nginx-0 of two: {}",
        n("class")
    );
    assert!(
        md.starts_with("# wscap spof: web-tier\n\n**Answer.** No single point of failure"),
        "{md}"
    );
    assert!(md.contains("outage until failover"), "{md}");
    validate_html(&tmp.path().join("s"));
    assert!(tmp.path().join("s").join("spof.png").exists());
}

/// Without a replica nothing can be promoted: every write fails until the
/// end of the run, the primary is a single point of failure, and the
/// report names the redundancy that removes it. (Reads must then go to
/// the primary: the scenario rejects `reads_from = "replicas"` with none.)
#[test]
fn web_tier_primary_without_a_replica_is_a_single_point_of_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, md) = spof(
        &[
            "scenarios/web-tier.toml",
            "--set",
            "database.replicas=0",
            "--set",
            "database.reads_from=primary",
            "--only",
            "db-primary",
        ],
        &tmp.path().join("s"),
    );
    let rows = csv(&path);
    let p = row(&rows, "db-primary");
    assert_eq!(p("class"), "outage until repaired");
    assert_eq!(p("spof"), "true");
    assert!(p("advice").contains("add a replica"), "{}", p("advice"));
    assert!(
        md.contains("**Answer.** 1 single point of failure: **db-primary** (add a replica"),
        "{md}"
    );
}

/// The whole quickstart study (5 components × 4 replications and the
/// baseline) in seconds, even in a debug build; its single balancer node
/// (and the VIP it answers) are single points of failure; each socket
/// server of three is survived (clients reconnect to the others).
#[test]
fn quickstart_runs_in_seconds_and_finds_its_single_balancer() {
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (path, md) = spof(&["scenarios/quickstart.toml"], &tmp.path().join("s"));
    let wall = started.elapsed().as_secs_f64();
    assert!(wall < 60.0, "quickstart spof took {wall:.1} s");
    let rows = csv(&path);
    assert_eq!(rows.len(), 1 + 5, "3 servers, 1 node, 1 VIP: {rows:?}");
    for c in ["balancer-0", "vip-0"] {
        let r = row(&rows, c);
        assert_eq!(r("class"), "outage until repaired", "{c}");
        assert!(r("advice").contains("second balancer node"), "{c}: {}", r("advice"));
    }
    for s in ["server-0", "server-1", "server-2"] {
        let r = row(&rows, s);
        assert!(
            ["no visible effect", "degraded", "outage until failover"].contains(&r("class").as_str()),
            "{s}: {}",
            r("class")
        );
        // Its connections drop: a significant paired difference.
        assert!(num(r("dropped_diff")) > num(r("dropped_diff_ci95")), "{s}");
    }
    assert!(
        md.contains("**Answer.** 2 single points of failure: **balancer-0**"),
        "{md}"
    );
    // Ranked: the single points of failure first.
    assert_eq!(rows[1][2], "balancer-0");
}

#[test]
fn an_slo_broken_by_a_single_failure_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let o = wscap(&[
        "spof",
        "scenarios/quickstart.toml",
        "--only",
        "balancer-0",
        "--slo",
        "clients_refused_ratio<0.01",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("**SLO verdict: not met.**"), "{md}");
    let o = wscap(&[
        "spof",
        "scenarios/quickstart.toml",
        "--only",
        "server-0",
        "--slo",
        "connect_ms_p99<100000",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn bad_spof_arguments_exit_2_naming_the_argument() {
    let f = "scenarios/quickstart.toml";
    for (args, needle) in [
        (vec!["spof", f, "--at", "10s"], "--at 10s: 10s is during the warm-up"),
        (
            vec!["spof", f, "--at", "6m"],
            "--at 6m: 6m is not before the end of the run",
        ),
        (vec!["spof", f, "--at", "soon"], "--at soon: not a duration"),
        (
            vec!["spof", f, "--only", "nginx-0"],
            "--only nginx-0: no component `nginx-0`",
        ),
        (vec!["spof", f, "--mode", "power"], "power"),
        (vec!["spof", f, "--slo", "bogus<1"], "unknown metric `bogus`"),
    ] {
        let o = wscap(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(needle), "{args:?}: {}", text(&o));
    }
}

/// A shortened web tier with an app server and an nginx crashing and
/// restarting: the run's invariants hold (every request answered, failed
/// or in flight; stations conserve), the timeline has both, and each
/// fault's window closes once its server is back.
#[test]
fn nginx_and_app_crashes_run_and_close_their_windows() {
    let tmp = tempfile::tempdir().unwrap();
    let src = std::fs::read_to_string("scenarios/web-tier.toml").unwrap();
    let src = src
        .replace("duration = \"8m\"", "duration = \"3m\"")
        .replace("replications = 3", "replications = 2")
        .replace(
            "kind = \"db-crash\"\ntarget = \"primary\"\nat = \"4m\"",
            "kind = \"app-crash\"\nserver = 1\nat = \"90s\"\nrestart_after = \"20s\"\n\n[[fault]]\nkind = \"nginx-crash\"\nnode = 0\nat = \"2m\"\nrestart_after = \"10s\"",
        );
    assert!(src.contains("nginx-crash"));
    let file = tmp.path().join("web-crash.toml");
    std::fs::write(&file, src).unwrap();
    let out = tmp.path().join("out");
    let o = wscap(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", text(&o));
    let events = std::fs::read_to_string(out.join("events.csv")).unwrap();
    for e in ["app-1,crash", "app-1,restarted", "nginx-0,crash", "nginx-0,restarted"] {
        assert!(events.contains(e), "{e} missing from\n{events}");
    }
    let faults = csv(&out.join("faults.csv"));
    let rec = faults[0].iter().position(|h| h == "recovered").unwrap();
    let desc = faults[0].iter().position(|h| h == "description").unwrap();
    let mean: Vec<&Vec<String>> = faults.iter().filter(|r| r[2] == "mean").collect();
    assert_eq!(mean.len(), 2);
    assert!(mean[0][desc].starts_with("app-1 crash at 90s"), "{:?}", mean[0]);
    assert!(mean[1][desc].starts_with("nginx-0 crash at 2m"), "{:?}", mean[1]);
    for m in mean {
        assert_eq!(m[rec], "1", "{m:?}");
    }
}

#[test]
fn nginx_and_app_crash_faults_are_validated() {
    let tmp = tempfile::tempdir().unwrap();
    let web = std::fs::read_to_string("scenarios/web-tier.toml").unwrap();
    let quick = std::fs::read_to_string("scenarios/quickstart.toml").unwrap();
    for (i, (base, fault, needle)) in [
        (
            &web,
            "kind = \"nginx-crash\"\nnode = 2\nat = \"2m\"",
            "fault[1].node`: nginx server 2 does not exist: they are numbered 0..=1 (web.nginx.count = 2)",
        ),
        (
            &web,
            "kind = \"app-crash\"\nserver = 4\nat = \"2m\"",
            "fault[1].server`: app server 4 does not exist: they are numbered 0..=3 (web.app.count = 4)",
        ),
        (
            &web,
            "kind = \"app-crash\"\nserver = 0\nat = \"2m\"\nrestart_after = \"0s\"",
            "fault[1].restart_after`: must be longer than 0s",
        ),
        (
            &quick,
            "kind = \"nginx-crash\"\nnode = 0\nat = \"2m\"",
            "`nginx-crash` needs a [web] table",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let file = tmp.path().join(format!("f{i}.toml"));
        std::fs::write(&file, format!("{base}\n[[fault]]\n{fault}\n")).unwrap();
        let o = wscap(&["check", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{fault}: {}", text(&o));
        assert!(text(&o).contains(needle), "{fault}: {}", text(&o));
    }
}
