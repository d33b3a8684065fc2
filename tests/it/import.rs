//! `wscap import`: HAProxy configurations (and docker-compose files) turned
//! into scenarios that load and run, every key traced to its cfg line.

use std::path::{Path, PathBuf};

use wscap::experiment;
use wscap::import::{self, ImportError, Imported};
use wscap::scenario::{self, HashType, Scenario, Strategy};
use wscap::time::SimDuration;

use crate::cli::{text, wscap};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/haproxy")
        .join(name)
}

/// The design's own files, beside the project (read only when present).
fn shared(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures")
        .join(name);
    p.exists().then_some(p)
}

fn imported(cfg: &Path, compose: Option<&Path>, backend: Option<&str>) -> Imported {
    import::import(cfg, compose, backend).unwrap_or_else(|e| panic!("{e}"))
}

fn load(im: &Imported) -> Scenario {
    scenario::parse(&im.toml, Path::new("imported.toml"), "imported", Path::new("."))
        .unwrap_or_else(|e| panic!("{e}\n{}", im.toml))
}

/// Shortens the imported run so a debug build runs it in a moment.
fn short(im: &Imported) -> Scenario {
    let src = im
        .toml
        .replace("duration = \"10m\"", "duration = \"20s\"")
        .replace("warmup = \"1m\"", "warmup = \"2s\"")
        .replace("replications = 5", "replications = 1");
    scenario::parse(&src, Path::new("imported.toml"), "imported", Path::new(".")).unwrap()
}

fn has_note(im: &Imported, what: &str) -> bool {
    im.notes.iter().any(|n| n.message.contains(what))
}

/// Every key of the output that came from the cfg names its line.
fn keys_cite(im: &Imported, file: &str, keys: &[&str]) {
    for k in keys {
        let line = im
            .toml
            .lines()
            .find(|l| l.starts_with(&format!("{k} = ")))
            .unwrap_or_else(|| panic!("no `{k}` in\n{}", im.toml));
        assert!(line.contains(&format!("# {file}:")), "`{line}` does not cite {file}");
    }
}

#[test]
fn the_seed_config_and_compose_import_and_run() {
    let (Some(cfg), Some(compose)) = (shared("seed-haproxy.cfg"), shared("seed-docker-compose.spaces.yml")) else {
        eprintln!("../shared/fixtures not present: skipped");
        return;
    };
    let im = imported(&cfg, Some(&compose), None);
    // The nameless backend is resolved from `use_backend all`, with a warning.
    assert_eq!(im.backend, "all");
    assert!(has_note(&im, "`backend` has no name"), "{:?}", im.notes);
    let sc = load(&im);
    assert_eq!(sc.servers.count, 4);
    assert_eq!(sc.balancer.strategy, Strategy::RoundRobin);
    assert_eq!(sc.balancer.timeout_connect, SimDuration::from_secs(1000));
    assert!(!sc.balancer.health_check.enabled);
    for s in ["ws1", "ws2", "ws3", "ws4"] {
        assert!(im.toml.contains(&format!("compose service `{s}`")), "{}", im.toml);
    }
    // Unmodelled directives are listed in the output and warned about.
    assert!(im.toml.contains("timeout client 1000s") && has_note(&im, "timeout client 1000s"));
    assert!(im.toml.contains("TRAFFIC: TEMPLATE"));
    let r = experiment::run_replication(&short(&im), 0).unwrap_or_else(|e| panic!("{e}"));
    assert!(r.metric("connections_accepted").unwrap() > 0.0);
}

#[test]
fn a_tab_indented_compose_file_is_an_error_naming_the_line() {
    let cfg = fixture("template.cfg");
    let mut cases = vec![(fixture("tabs-compose.yml"), 3)];
    if let Some(p) = shared("seed-docker-compose.yml") {
        cases.push((p, 3));
    }
    for (compose, line) in cases {
        let e = import::import(&cfg, Some(&compose), None).unwrap_err();
        assert!(
            matches!(e, ImportError::Compose { line: Some(l), .. } if l == line),
            "{e}"
        );
        let msg = e.to_string();
        assert!(msg.contains(&format!(":{line}:")) && msg.contains("tab"), "{msg}");
    }
}

#[test]
fn every_directive_of_the_full_fixture() {
    let im = imported(&fixture("full.cfg"), None, Some("game"));
    let sc = load(&im);
    let b = &sc.balancer;
    // server lines: g4 (backup) and g5 (disabled) left out; a template of 2.
    assert_eq!(sc.servers.count, 5);
    assert_eq!(b.weights.as_deref(), Some(&[10, 20, 30, 5, 5][..]));
    assert_eq!(b.strategy, Strategy::RandomD(3));
    assert_eq!(b.hash_type, HashType::Consistent);
    assert_eq!(b.maxconn, Some(500));
    assert_eq!(b.maxqueue, Some(50));
    assert_eq!(b.timeout_queue, SimDuration::from_millis(2500));
    // `timeout connect` comes from `defaults base`, which `defaults ws from base` inherits.
    assert_eq!(b.timeout_connect, SimDuration::from_secs(4));
    assert_eq!(b.retries, 2);
    assert!(b.redispatch);
    assert_eq!(b.slowstart, SimDuration::from_secs(20));
    // The frontend's maxconn (15000) is below the global one (20000).
    assert_eq!(b.node_maxconn, Some(15000));
    assert_eq!(b.cores, 4);
    let hc = &b.health_check;
    assert!(hc.enabled);
    assert_eq!(hc.inter, SimDuration::from_secs(3));
    assert_eq!(hc.fastinter, Some(SimDuration::from_millis(500)));
    assert_eq!(hc.downinter, Some(SimDuration::from_secs(10)));
    assert_eq!((hc.fall, hc.rise), (4, 3));
    assert_eq!(hc.timeout, Some(SimDuration::from_millis(1500)));
    assert!(b.tls.is_some(), "bind ssl crt → TLS");
    keys_cite(
        &im,
        "full.cfg",
        &[
            "balance",
            "hash_type",
            "maxconn",
            "maxqueue",
            "timeout_queue",
            "timeout_connect",
            "retries",
            "redispatch",
            "slowstart",
            "node_maxconn",
            "nbthread",
            "inter",
            "fastinter",
            "downinter",
            "fall",
            "rise",
            "timeout",
        ],
    );
    // The escaped blank in a server name, the quoted `#` that is no comment.
    assert!(im.toml.contains("server `g 3`"));
    assert!(im.toml.contains(r#"description "game \"edge\" #1""#) || has_note(&im, "game \\\"edge"));
    for what in [
        "backup server",
        "disabled",
        "`.if`",
        "timeout tunnel 1h",
        "sdbm avalanche",
        "resolvers dns",
        "a `resolvers` section",
        "both a TLS bind",
    ] {
        assert!(has_note(&im, what), "no warning about {what}: {:?}", im.notes);
    }
    // The `.if` block's backend is not seen at all.
    assert!(import::import(&fixture("full.cfg"), None, Some("ignored")).is_err());
    experiment::run_replication(&short(&im), 0).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_listen_section_and_no_option_redispatch() {
    let im = imported(&fixture("full.cfg"), None, Some("chess"));
    let sc = load(&im);
    let b = &sc.balancer;
    assert_eq!(sc.servers.count, 2);
    assert_eq!(b.strategy, Strategy::Source);
    assert_eq!(b.hash_type, HashType::MapBased);
    assert_eq!(b.maxconn, Some(1000));
    assert_eq!(b.retries, 5);
    assert!(!b.redispatch);
    assert_eq!(b.timeout_connect, SimDuration::from_secs(2));
    assert!(b.tls.is_none());
    // Without --backend, the first backend a frontend routes to, with a warning naming the others.
    let im = imported(&fixture("full.cfg"), None, None);
    assert_eq!(im.backend, "web");
    assert!(has_note(&im, "game, web, chess"), "{:?}", im.notes);
}

#[test]
fn server_templates_and_plain_servers_expand_with_compose_replicas() {
    let compose = fixture("template-compose.yml");
    let im = imported(&fixture("template.cfg"), Some(&compose), Some("rooms"));
    let sc = load(&im);
    // server-template of 8 slots, `deploy.replicas: ${WS_REPLICAS:-3}` (a merge key brings the image).
    assert_eq!(sc.servers.count, 3);
    assert_eq!(sc.balancer.strategy, Strategy::Room);
    assert!(has_note(&im, "read as its default, 3"));
    assert!(im.toml.contains("`redis` redis:7"), "{}", im.toml);
    let im = imported(&fixture("template.cfg"), Some(&compose), Some("chat"));
    let sc = load(&im);
    // chat-a × 2 (scale), chat-b by its alias, and one address compose does not know.
    assert_eq!(sc.servers.count, 4);
    assert_eq!(sc.balancer.strategy, Strategy::First);
    assert!(has_note(&im, "counted as 2 servers"));
    assert!(has_note(&im, "`not-in-compose` is not a service"));
    // Without compose, a template counts its slots.
    let sc = load(&imported(&fixture("template.cfg"), None, Some("rooms")));
    assert_eq!(sc.servers.count, 8);
}

#[test]
fn not_an_haproxy_file_is_an_error_with_its_line() {
    let e = import::import(&fixture("not-haproxy.cfg"), None, None).unwrap_err();
    assert!(matches!(e, ImportError::NotHaproxy { line: 2, .. }), "{e}");
    // A scenario file is not a config either.
    let e = import::import(Path::new("scenarios/quickstart.toml"), None, None).unwrap_err();
    assert!(e.to_string().contains("not an HAProxy configuration"), "{e}");
    let e = import::import(&fixture("full.cfg"), None, Some("nope")).unwrap_err();
    assert!(e.to_string().contains("game, web, chess"), "{e}");
}

#[test]
fn the_cli_writes_the_scenario_and_warns_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s.toml");
    let o = wscap(&[
        "import",
        "tests/fixtures/haproxy/template.cfg",
        "--compose",
        "tests/fixtures/haproxy/template-compose.yml",
        "--backend",
        "chat",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning: tests/fixtures/haproxy/template.cfg:26:"),
        "{err}"
    );
    let o = wscap(&["check", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = wscap(&["import", "tests/fixtures/haproxy/not-haproxy.cfg"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not-haproxy.cfg:2:"));
}

/// Public configurations (beside the project, never copied into it): each
/// imports into a scenario that loads, with its compose file when it has one.
#[test]
fn real_world_configurations_import() {
    let Some(dir) = shared("haproxy-real") else {
        eprintln!("../shared/fixtures/haproxy-real not present: skipped");
        return;
    };
    let pairs = [
        ("01-socketio-cluster-haproxy.cfg", Some("compose-01-socketio.yml"), 4),
        (
            "02-JSR-Algo-esp-server-template.cfg",
            Some("compose-02-JSR-Algo.yml"),
            2,
        ),
        ("03-haproxy-basic-config-edge.cfg", None, 4),
        ("04-sockjs-sockjs-node.cfg", None, 1),
        ("05-emqx-mqtt-ws-cluster.cfg", Some("compose-03-emqx.yml"), 2),
        ("06-python-websockets-leastconn.cfg", None, 4),
        ("07-HariSekhon-rabbitmq-multifile.cfg", None, 0),
        ("08-linuxwt-k8s-apiserver.cfg", None, 6),
    ];
    for (cfg, compose, count) in pairs {
        let compose = compose.map(|c| dir.join(c));
        let im = imported(&dir.join(cfg), compose.as_deref(), None);
        let sc = load(&im);
        if count > 0 {
            assert_eq!(sc.servers.count, count, "{cfg}\n{}", im.toml);
        }
        eprintln!(
            "{cfg}: backend `{}`, {} servers, {} warnings",
            im.backend,
            sc.servers.count,
            im.notes.len()
        );
    }
    // nbproc (fatal since 2.5) is said, not silently dropped.
    let im = imported(&dir.join("01-socketio-cluster-haproxy.cfg"), None, None);
    assert!(has_note(&im, "nbproc"));
    // 03: `balance random` is HAProxy's random(2); TLS from `bind :443 ssl crt`.
    let sc = load(&imported(&dir.join("03-haproxy-basic-config-edge.cfg"), None, None));
    assert_eq!(sc.balancer.strategy, Strategy::Random);
    assert!(sc.balancer.tls.is_some());
    assert_eq!(sc.balancer.maxconn, Some(100));
    // 04's legacy address on the frontend line is warned about.
    let im = imported(&dir.join("04-sockjs-sockjs-node.cfg"), None, Some("sockjs"));
    assert!(has_note(&im, "refused by HAProxy 2.x"));
}
