use crate::validation::scenario;
use wscap::experiment;
use wscap::stats;

fn sup(n: u32, lambda: f64, strategy: &str, dur_ms: u64, warm_ms: u64, reps: u32) -> (Vec<f64>, Vec<f64>) { supc(n, 1, lambda, strategy, dur_ms, warm_ms, reps, 5) }
fn supc(n: u32, cores: u32, lambda: f64, strategy: &str, dur_ms: u64, warm_ms: u64, reps: u32, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let rate = lambda * n as f64 * 1000.0;
    let sc = scenario(&format!(
        r#"
seed = {seed}
duration = "{dur_ms}ms"
warmup = "{warm_ms}ms"
replications = {reps}
sample_interval = "10ms"

[servers]
count = {n}
max_connections = 10000000
cores = {cores}
connect_cost = {{ dist = "exponential", mean = "1ms" }}
backend_latency = "1us"

[balancer]
strategy = "{strategy}"

[balancer.health_check]
enabled = false

[[population]]
name = "clients"
role = "player"
arrival = {{ process = "poisson", rate = "{rate}/s" }}
session = "1us"
rtt = "2us"
"#
    ));
    let t = std::time::Instant::now();
    let o = experiment::run(&sc, 0, &|| {}).unwrap();
    let xs: Vec<f64> = o
        .replications
        .iter()
        .map(|r| r.metric("connect_ms_mean").unwrap() - 0.004)
        .collect();
    let us: Vec<f64> = o
        .replications
        .iter()
        .map(|r| r.metric("cpu_util_mean").unwrap())
        .collect();
    let ars: Vec<f64> = o
        .replications
        .iter()
        .map(|r| r.metric("clients_arrived").unwrap())
        .collect();
    let corr = |a: &[f64], b: &[f64]| {
        let (ma, mb) = (stats::mean(a), stats::mean(b));
        let c: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        c / (a.iter().map(|x| (x - ma).powi(2)).sum::<f64>() * b.iter().map(|y| (y - mb).powi(2)).sum::<f64>()).sqrt()
    };
    eprintln!(
        "util mean {:.5} corr(T,util) {:.3} corr(T,arrivals) {:.3}",
        stats::mean(&us),
        corr(&xs, &us),
        corr(&xs, &ars)
    );
    let ev: u64 = o.total_events();
    eprintln!(
        "N={n} λ={lambda} {strategy} dur={dur_ms} reps={reps}: mean {:.4} ± {:.4} (sd {:.4}) events {ev} in {:?}",
        stats::mean(&xs),
        stats::ci_half_width(&xs, 0.99),
        stats::std_dev(&xs),
        t.elapsed()
    );
    (xs, us)
}


/// Control-variate estimate of E[y] with one control c of known mean 0:
/// (estimate, 99 % half-width).
fn cv(ys: &[f64], cs: &[f64]) -> (f64, f64) {
    let r = ys.len() as f64;
    let (my, mc) = (stats::mean(ys), stats::mean(cs));
    let scc: f64 = cs.iter().map(|c| (c - mc).powi(2)).sum();
    let syc: f64 = ys.iter().zip(cs).map(|(y, c)| (y - my) * (c - mc)).sum();
    let b = syc / scc;
    let est = my - b * mc;
    let s2: f64 = ys.iter().zip(cs).map(|(y, c)| (y - my - b * (c - mc)).powi(2)).sum::<f64>() / (r - 2.0);
    let var = s2 * (1.0 / r + mc * mc / scc);
    (est, stats::student_t_quantile(0.995, r - 2.0) * var.sqrt())
}

#[test]
#[ignore]
fn explore() {
    let lim = stats::power_of_d_sojourn(0.9, 2);
    let mut cover = 0;
    for seed in 0..10u64 {
        let (t80, u80) = supc(80, 1, 0.9, "random(2)", 900, 100, 8, seed);
        let (t20, u20) = supc(20, 1, 0.9, "random(2)", 3300, 100, 8, seed + 100);
        let y: Vec<f64> = t80.iter().zip(&t20).map(|(a, b)| (4.0 * a - b) / 3.0).collect();
        let c: Vec<f64> = u80.iter().zip(&u20).map(|(a, b)| (4.0 * (a - 0.9) - (b - 0.9)) / 3.0).collect();
        let (e, hw) = cv(&y, &c);
        let c80: Vec<f64> = u80.iter().map(|a| a - 0.9).collect();
        let (e80, hw80) = cv(&t80, &c80);
        let c20: Vec<f64> = u20.iter().map(|a| a - 0.9).collect();
        let (e20, hw20) = cv(&t20, &c20);
        let ok = (e - lim).abs() <= hw;
        cover += ok as u32;
        eprintln!("seed {seed}: T80 cv {e80:.4} ± {hw80:.4}; T20 cv {e20:.4} ± {hw20:.4}; extrapolated {e:.4} ± {hw:.4} plain {:.4} ± {:.4} (limit {lim:.4}) {ok}", stats::mean(&y), stats::ci_half_width(&y, 0.99));
    }
    eprintln!("covered {cover}/10");
}
