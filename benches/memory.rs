//! Peak memory of a long M/M/c run as arrivals grow: it must follow the
//! handful of clients in the system, not the customers that came and went.
//! Each size runs one replication of `scenarios/mmc.toml` in a fresh child
//! process (so each peak is its own) and prints the peak resident memory
//! (Linux `VmHWM`). Run: `cargo bench --bench memory`.

use std::path::Path;
use std::process::Command;

use wscap::experiment::run_replication;
use wscap::scenario;
use wscap::time::SimDuration;

const CHILD: &str = "WSCAP_BENCH_MEMORY_SECONDS";

fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    if let Ok(secs) = std::env::var(CHILD) {
        let mut sc = scenario::load(Path::new("scenarios/mmc.toml")).expect("bundled scenario loads");
        sc.duration = SimDuration::from_secs(secs.parse().expect("seconds"));
        let r = run_replication(&sc, 0).expect("runs");
        let customers = r.metric("clients_arrived").unwrap_or(0.0);
        println!("{customers} {}", peak_kib().unwrap_or(0));
        return;
    }
    // `cargo bench` passes `--bench`; nothing else to parse.
    let exe = std::env::current_exe().expect("own path");
    println!("mmc (M/M/8, rho 0.9): peak memory as customers grow");
    // 7 200 customers a second: 139 s ~ 1 M, 556 s ~ 4 M.
    for secs in [139u64, 278, 556] {
        let out = Command::new(&exe)
            .env(CHILD, secs.to_string())
            .output()
            .expect("child runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut it = text.split_whitespace();
        let customers: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
        let kib: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        println!(
            "  {:>5.2} M customers ({secs:>3} s simulated): peak RSS {:>6.1} MiB",
            customers / 1e6,
            kib as f64 / 1024.0
        );
    }
}
