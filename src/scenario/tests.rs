use super::*;
use std::path::Path;

const GOOD: &str = r#"
duration = "1m"
[servers]
count = 2
max_connections = 10
[balancer]
balance = "leastconn"
[[population]]
name = "p"
role = "player"
arrival = { process = "poisson", rate = "1/s" }
session = "10s"
"#;

fn parse_str(src: &str) -> Result<Scenario, ScenarioError> {
    parse(src, Path::new("t.toml"), "t", Path::new("."))
}

fn one_problem(src: &str) -> Problem {
    let e = parse_str(src).expect_err("should fail");
    e.problems()[0].clone()
}

#[test]
fn good_scenario_loads_with_defaults() {
    let sc = parse_str(GOOD).unwrap();
    assert_eq!(sc.name, "t");
    assert_eq!(sc.balancer.health_check.inter, crate::time::SimDuration::from_secs(2));
    assert_eq!(sc.balancer.retries, 3);
}

#[test]
fn unknown_key_names_line_and_choices() {
    let src = GOOD.replace("count = 2", "count = 2\nmax_conections = 5");
    let p = one_problem(&src);
    assert_eq!(p.line, Some(5));
    assert!(p.message.contains("unknown field `max_conections`"), "{}", p.message);
    assert!(p.message.contains("max_connections"), "{}", p.message);
}

#[test]
fn bad_strategy_lists_choices() {
    let src = GOOD.replace("\"leastconn\"", "\"leestconn\"");
    let p = one_problem(&src);
    assert_eq!(p.line, Some(7));
    assert_eq!(p.field, "balancer.balance");
    assert!(
        p.message.contains("roundrobin") && p.message.contains("random(d)"),
        "{}",
        p.message
    );
}

/// Keys renamed to HAProxy's words: the old one is an error naming the new one, at its line.
#[test]
fn old_key_names_the_new_one() {
    let src = GOOD.replace("balance = ", "strategy = ");
    let p = one_problem(&src);
    assert_eq!((p.line, p.field.as_str()), (Some(7), "balancer.strategy"));
    assert!(p.message.contains("`strategy` is now `balance`"), "{}", p.message);
    let src = GOOD.replace("balance = \"leastconn\"", "balance = \"leastconn\"\ncores = 2");
    let p = one_problem(&src);
    assert_eq!((p.line, p.field.as_str()), (Some(8), "balancer.cores"));
    assert!(p.message.contains("`cores` is now `nbthread`"), "{}", p.message);
    // [servers] keeps its own `cores`.
    let sc = parse_str(&GOOD.replace("count = 2", "count = 2\ncores = 3")).unwrap();
    assert_eq!(sc.servers.cores, 3);
    let sc = parse_str(&GOOD.replace("balance = \"leastconn\"", "balance = \"leastconn\"\nnbthread = 2")).unwrap();
    assert_eq!(sc.balancer.cores, 2);
}

#[test]
fn bad_duration_in_inline_table() {
    let src = GOOD.replace(
        "session = \"10s\"",
        "session = { dist = \"exponential\", mean = \"10\" }",
    );
    let p = one_problem(&src);
    assert_eq!(p.line, Some(12));
    assert_eq!(p.field, "population[0].session.mean");
    assert!(p.message.contains("no unit"), "{}", p.message);
}

#[test]
fn semantic_errors_are_located() {
    let src = format!("{GOOD}\n[[fault]]\nkind = \"crash\"\nserver = 7\nat = \"10s\"\n");
    let p = one_problem(&src);
    assert_eq!(p.field, "fault[0].server");
    assert_eq!(p.line, Some(16));
    assert!(p.message.contains("0..=1"), "{}", p.message);
    let p = one_problem(&GOOD.replace("max_connections = 10", "max_connections = 0"));
    assert_eq!((p.field.as_str(), p.line), ("servers.max_connections", Some(5)));
}

#[test]
fn negative_rate_is_rejected() {
    let p = one_problem(&GOOD.replace("\"1/s\"", "\"-1/s\""));
    assert!(p.message.contains("positive"), "{}", p.message);
    assert_eq!(p.line, Some(11));
}

#[test]
fn error_display_names_file_line_field() {
    let e = parse_str(&GOOD.replace("\"leastconn\"", "\"nope\"")).unwrap_err();
    let s = e.to_string();
    assert!(s.starts_with("t.toml:7:"), "{s}");
    assert!(s.contains("field `balancer.balance`"), "{s}");
}

#[test]
fn errors_in_a_later_fault_point_at_that_fault() {
    let src = format!(
        "{GOOD}\n[[fault]]\nkind = \"crash\"\nserver = 0\nat = \"5s\"\n\n[[fault]]\nkind = \"crash\"\nserver = 1\nat = \"2m5x\"\n"
    );
    let p = one_problem(&src);
    assert_eq!(p.line, Some(22), "{p:?}");
    assert!(p.message.contains("2m5x"), "{}", p.message);
    let src = format!(
        "{GOOD}\n[[fault]]\nkind = \"crash\"\nserver = 0\nat = \"5s\"\n\n[[fault]]\nkind = \"crash\"\nsrv = 1\nat = \"5s\"\n"
    );
    let p = one_problem(&src);
    assert_eq!(p.line, Some(21), "{p:?}");
    assert!(p.message.contains("unknown field `srv`"), "{}", p.message);
}

#[test]
fn empirical_and_trace_csvs_are_loaded_beside_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rtt.csv"), "host,rtt_ms\na,10\nb,30\nc,20\n").unwrap();
    std::fs::write(dir.path().join("arrivals.csv"), "t\n2.5\n0.5\n1\n").unwrap();
    let src = GOOD
        .replace(
            "session = \"10s\"",
            "session = \"10s\"\nrtt = { dist = \"empirical\", file = \"rtt.csv\", column = \"rtt_ms\" }",
        )
        .replace(
            "{ process = \"poisson\", rate = \"1/s\" }",
            "{ process = \"trace\", file = \"arrivals.csv\", column = \"t\" }",
        );
    let sc = parse(&src, Path::new("t.toml"), "t", dir.path()).unwrap();
    let Dist::Empirical { values_s, .. } = &sc.populations[0].rtt else {
        panic!("not empirical")
    };
    assert_eq!(**values_s, vec![0.010, 0.020, 0.030]);
    let Arrival::Trace { times, .. } = &sc.populations[0].arrival else {
        panic!("not a trace")
    };
    let ms: Vec<u64> = times.iter().map(|t| t.0 / 1_000_000).collect();
    assert_eq!(ms, vec![500, 1000, 2500]);
    // A run replays exactly the trace.
    let rep = crate::experiment::run_replication(&sc, 0).unwrap();
    assert_eq!(rep.metric("clients_arrived"), Some(3.0));

    // A missing column names the columns there are.
    let bad = src.replace("column = \"rtt_ms\"", "column = \"rtt\"");
    let e = parse(&bad, Path::new("t.toml"), "t", dir.path()).unwrap_err();
    let p = &e.problems()[0];
    assert!(p.message.contains("host, rtt_ms"), "{}", p.message);
    assert_eq!(p.line, Some(13), "{p:?}");
}

#[test]
fn cluster_and_deployment_nonsense_is_caught_with_the_field() {
    let cases: [(&str, &str, &str); 7] = [
        (
            "[[fault]]\nkind = \"balancer-crash\"\nnode = 2\nat = \"10s\"",
            "fault[0].node",
            "balancer node 2 does not exist",
        ),
        (
            "[[fault]]\nkind = \"scale-in\"\ncount = 2\nat = \"10s\"",
            "fault[0].count",
            "leave none",
        ),
        (
            "[[fault]]\nkind = \"crash\"\nserver = 3\nat = \"10s\"",
            "fault[0].server",
            "0..=1",
        ),
        (
            "[[fault]]\nkind = \"rolling-restart\"\nat = \"2m\"",
            "fault[0].at",
            "not before the end",
        ),
        ("", "balancer.failover.priority", "1..=254"),
        ("", "balancer.tls.resumption_ratio", "between 0 and 1"),
        ("", "balancer.nodes", "at least 1"),
    ];
    for (i, (extra, field, msg)) in cases.into_iter().enumerate() {
        let mut src = GOOD.to_string();
        match i {
            4 => {
                src = src.replace(
                    "balance = \"leastconn\"",
                    "balance = \"leastconn\"\nfailover = { kind = \"keepalived\", priority = 255 }",
                )
            }
            5 => {
                src = src.replace(
                    "balance = \"leastconn\"",
                    "balance = \"leastconn\"\ntls = { key = \"ecdsa-p256\", resumption_ratio = 1.5 }",
                )
            }
            6 => src = src.replace("balance = \"leastconn\"", "balance = \"leastconn\"\nnodes = 0"),
            _ => src.push_str(extra),
        }
        let e = parse_str(&src).expect_err(field);
        let p = e
            .problems()
            .iter()
            .find(|p| p.field == field)
            .unwrap_or_else(|| panic!("{field}: {e}"));
        assert!(p.message.contains(msg), "{field}: {}", p.message);
        assert!(p.line.is_some(), "{field} has a line: {e}");
    }
    // A scale-out makes the new ids valid targets.
    let src = format!(
        "{GOOD}[[fault]]\nkind = \"scale-out\"\ncount = 2\nat = \"10s\"\n[[fault]]\nkind = \"crash\"\nserver = 3\nat = \"20s\""
    );
    let sc = parse_str(&src).unwrap();
    assert_eq!(sc.max_servers(), 4);
    // TLS key names list the choices.
    let src = GOOD.replace(
        "balance = \"leastconn\"",
        "balance = \"leastconn\"\ntls = { key = \"rsa4096\" }",
    );
    let p = one_problem(&src);
    assert!(
        p.message.contains("rsa-2048") && p.message.contains("ecdsa-p256"),
        "{}",
        p.message
    );
}
