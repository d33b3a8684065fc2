//! The web tier beside queueing theory: gunicorn's sync workers make an app
//! server an M/M/c queue (Erlang C) when its backlog is long, and an
//! M/M/c/c loss system (Erlang B, 502s) when it has none; nginx serves
//! static files at its cache's hit ratio.

use wscap::experiment::Replication;
use wscap::scenario::Scenario;
use wscap::stats;

use crate::validation::{assert_in_ci, replications, scenario};

/// One app server with `workers` sync workers (exponential service of mean
/// 20 ms, no database), a `backlog`, behind one nginx with ample cores and
/// 1 µs costs. Clients arrive as a Poisson stream at `rate`/s and each
/// makes one dynamic request (session 0 s): the app sees Poisson arrivals.
fn app_farm(workers: u32, backlog: u32, rate: f64, reps: u32, seconds: u32) -> Scenario {
    scenario(&format!(
        r#"
duration = "{seconds}s"
warmup = "10s"
replications = {reps}
seed = 424242
sample_interval = "5s"

[servers]
count = 1
max_connections = 10

[balancer]
balance = "roundrobin"

[web]
backend_latency = "100us"
nginx = {{ count = 1, cores = 64, static_cost = "1us", proxy_cost = "1us" }}
app = {{ count = 1, workers = {workers}, backlog = {backlog}, service = {{ dist = "exponential", mean = "20ms" }} }}

[[population]]
name = "browsers"
role = "web"
arrival = {{ process = "poisson", rate = "{rate}/s" }}
session = "0s"
rtt = "2ms"
browsing = {{ think_time = "1s", static_ratio = 0.0 }}
"#
    ))
}

fn metric(r: &Replication, name: &str) -> f64 {
    r.metric(name).unwrap_or_else(|| panic!("no metric {name}"))
}

/// 4 workers at ρ = 0.75 (λ = 150/s, μ = 50/s): the mean wait for a worker
/// is Erlang C's Wq = C(4, 3)/(cμ − λ) = 10.19 ms, and the workers are busy
/// 75 % of the time.
#[test]
fn sync_workers_are_an_mmc_queue() {
    let (c, lambda, es) = (4u64, 150.0, 0.020);
    let reps = replications(&app_farm(c as u32, 100_000, lambda, 10, 400));
    let wq: Vec<f64> = reps.iter().map(|r| metric(r, "app_wait_ms_mean")).collect();
    let theory = stats::mmc_mean_wait(c, lambda, es) * 1000.0;
    assert_in_ci(
        "gunicorn, 4 sync workers at ρ 0.75: mean wait for a worker (ms)",
        &wq,
        theory,
        0.0,
    );
    let util: Vec<f64> = reps.iter().map(|r| metric(r, "app_util_mean")).collect();
    assert_in_ci("app workers busy", &util, lambda * es / c as f64, 0.0);
    // Response time = wait + service + hops; nothing fails.
    for r in &reps {
        assert_eq!(metric(r, "web_failed"), 0.0);
    }
    let resp: Vec<f64> = reps.iter().map(|r| metric(r, "web_ms_mean")).collect();
    // Hops: 2 ms RTT, 4 × 100 µs backend, 2 µs nginx; HDR rounding ≤ 0.1 %.
    let hops = 2.0 + 0.4 + 0.002;
    assert_in_ci(
        "web response time (ms)",
        &resp,
        theory + es * 1000.0 + hops,
        0.001 * 40.0,
    );
}

/// Without a backlog (gunicorn `backlog` 0) a request that finds every
/// worker busy gets a 502: the app server is an Erlang loss system, and the
/// 502 ratio is ErlangB(c, λ/μ).
#[test]
fn workers_without_backlog_are_an_erlang_loss_system() {
    let (c, lambda, es) = (4u64, 150.0, 0.020);
    let reps = replications(&app_farm(c as u32, 0, lambda, 10, 300));
    let ratio: Vec<f64> = reps
        .iter()
        .map(|r| metric(r, "web_502") / metric(r, "web_requests"))
        .collect();
    assert_in_ci(
        "502 ratio, 4 workers, no backlog, A = 3",
        &ratio,
        stats::erlang_b(c, lambda * es),
        0.0,
    );
    for r in &reps {
        assert_eq!(metric(r, "web_502"), metric(r, "web_failed"), "every failure is a 502");
    }
}

/// nginx serves static requests alone: 80 % cache hits at 100 µs, misses
/// at 5 ms; with one core per request and light load the mean static
/// response is the hops plus 0.8 × 0.1 + 0.2 × 5 ms. No app worker is used.
#[test]
fn nginx_serves_static_files_at_its_hit_ratio() {
    let sc = scenario(
        r#"
duration = "200s"
warmup = "10s"
replications = 6
[servers]
count = 1
max_connections = 10
[balancer]
balance = "roundrobin"
[web]
backend_latency = "100us"
nginx = { count = 2, cores = 8, static_cost = "100us", static_miss_cost = "5ms", cache_hit_ratio = 0.8 }
app = { count = 1, workers = 2, service = "10ms" }
[[population]]
name = "browsers"
role = "web"
arrival = { process = "poisson", rate = "100/s" }
session = "0s"
rtt = "2ms"
browsing = { think_time = "1s", static_ratio = 1.0 }
"#,
    );
    let reps = replications(&sc);
    let mean: Vec<f64> = reps.iter().map(|r| metric(r, "web_ms_mean")).collect();
    let expected = 2.0 + 0.2 + 0.8 * 0.1 + 0.2 * 5.0;
    assert_in_ci("static response time (ms)", &mean, expected, 0.001 * expected);
    for r in &reps {
        assert!(metric(r, "web_dynamic_ms_p50").is_nan(), "no dynamic requests");
        assert!(metric(r, "app_wait_ms_mean").is_nan(), "no app work");
    }
}
