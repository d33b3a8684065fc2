//! The `wscap` command line: a thin layer over the library. It parses
//! arguments, loads the scenario, runs it, prints a summary and asks
//! `wscap::report` to write the outputs. `anyhow` is used here only.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use wscap::experiment::{self, Outcome};
use wscap::report::{self, RunInfo};
use wscap::scenario::{self, Scenario, ScenarioError};

#[derive(Parser)]
#[command(
    name = "wscap",
    version,
    about = "Discrete-event capacity simulator for real-time WebSocket backends"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario: replications in parallel, then CSV, JSON, charts and a report.
    Run(RunArgs),
    /// Validate scenario files without running them.
    Check {
        /// Scenario files (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// Scenario file (TOML).
    file: PathBuf,
    /// Output folder [default: output/<scenario name>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Master seed (overrides the scenario's `seed`).
    #[arg(long)]
    seed: Option<u64>,
    /// Number of replications (overrides the scenario's `replications`).
    #[arg(long)]
    replications: Option<u32>,
    /// Worker threads (0 = one per core). Results do not depend on it.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print nothing but errors.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Check { files } => check(&files),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A bad scenario is the user's to fix: exit 2, like a usage error.
            let code = if e.downcast_ref::<ScenarioError>().is_some() {
                2
            } else {
                1
            };
            eprintln!("error: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn check(files: &[PathBuf]) -> Result<()> {
    let mut first_err = None;
    for f in files {
        match scenario::load(f) {
            Ok(sc) => println!(
                "{}: ok ({} servers, {} populations, {} faults)",
                f.display(),
                sc.servers.count,
                sc.populations.len(),
                sc.faults.len()
            ),
            Err(e) => {
                eprintln!("{e}");
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(anyhow::Error::new(e).context("invalid scenario")),
        None => Ok(()),
    }
}

fn load_with_overrides(args: &RunArgs) -> Result<Scenario> {
    let mut sc = scenario::load(&args.file)?;
    if let Some(s) = args.seed {
        sc.seed = s;
    }
    if let Some(r) = args.replications {
        anyhow::ensure!(
            (1..=10_000).contains(&r),
            "--replications must be between 1 and 10000, got {r}"
        );
        sc.replications = r;
    }
    Ok(sc)
}

fn progress_bar(len: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    // Draws only on a terminal: piped output stays clean.
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} replications, {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb
}

fn run(args: RunArgs) -> Result<()> {
    let sc = load_with_overrides(&args)?;
    let out = args.out.clone().unwrap_or_else(|| Path::new("output").join(&sc.name));
    let pb = progress_bar(sc.replications as u64, args.quiet);
    pb.set_message(sc.name.clone());
    let started = Instant::now();
    let outcome = experiment::run(&sc, args.threads, &|| pb.inc(1)).context("simulation failed")?;
    let wall = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let command = format!(
        "wscap run {} --seed {} --replications {}",
        args.file.display(),
        sc.seed,
        sc.replications
    );
    let files = report::write_run(
        &out,
        &sc,
        &outcome,
        &RunInfo {
            scenario_file: &args.file,
            command,
        },
    )
    .with_context(|| format!("cannot write outputs to {}", out.display()))?;
    if !args.quiet {
        print_summary(&sc, &outcome, wall, &out, files.len());
    }
    Ok(())
}

fn print_summary(sc: &Scenario, o: &Outcome, wall_s: f64, out: &Path, n_files: usize) {
    let show = |name: &str, label: &str, scale: f64, unit: &str| {
        if let Some(a) = o.aggregate(name).filter(|a| !a.mean.is_nan()) {
            let ci = if a.ci95.is_nan() {
                String::new()
            } else {
                format!(" ± {:.3}", a.ci95 * scale)
            };
            println!("  {label:<32} {:>12.3}{ci} {unit}", a.mean * scale);
        }
    };
    println!(
        "{}: {} replications × {} simulated",
        sc.name,
        o.replications.len(),
        sc.duration
    );
    show("clients_arrived", "clients arrived", 1.0, "");
    show("connections_accepted", "connections accepted", 1.0, "");
    show("refused_ratio", "attempts refused (503)", 100.0, "%");
    show("clients_refused_ratio", "clients refused at least once", 100.0, "%");
    show("reconnects", "reconnects", 1.0, "");
    show("dropped", "dropped by faults", 1.0, "");
    show("connect_ms_p50", "connect latency p50", 1.0, "ms");
    show("connect_ms_p99", "connect latency p99", 1.0, "ms");
    show("connect_ms_p999", "connect latency p99.9", 1.0, "ms");
    show("max_conn_per_server", "busiest server (peak)", 1.0, "connections");
    show("imbalance_max_over_mean", "imbalance max/mean", 1.0, "");
    show("jain_index", "Jain's fairness index", 1.0, "");
    if o.replications
        .iter()
        .any(|r| r.stop == wscap::engine::StopReason::EventLimit)
    {
        println!(
            "  WARNING: the event bound (max_events = {}) was hit: results are truncated",
            sc.max_events
        );
    }
    if o.aggregate("moves_validated").is_some_and(|a| a.mean > 0.0) {
        show("move_ms_p50", "move latency to opponent p50", 1.0, "ms");
        show("move_ms_p99", "move latency to opponent p99", 1.0, "ms");
        show("spectator_ms_p99", "move latency to spectators p99", 1.0, "ms");
        show("last_spectator_ms_p99", "until the last spectator p99", 1.0, "ms");
        show("relay_share", "moves crossing the relay", 100.0, "%");
        show("moves_lost", "moves lost", 1.0, "");
    }
    let events = o.total_events();
    let deliveries: f64 = o.replications.iter().filter_map(|r| r.metric("deliveries")).sum();
    let wall = wall_s.max(1e-9);
    println!(
        "  {events} events in {wall_s:.2} s wall = {:.2} M events/s; {:.0} deliveries = {:.1} M deliveries/s; peak memory {}",
        events as f64 / wall / 1e6,
        deliveries,
        deliveries / wall / 1e6,
        peak_memory().unwrap_or_else(|| "unknown".into())
    );
    println!(
        "  report: {} ({} files: report.md, summary.csv, charts…)",
        out.join("report.md").display(),
        n_files
    );
}

/// Peak resident memory of this process (Linux: VmHWM), for the summary.
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(format!("{:.1} MiB", kb as f64 / 1024.0))
}
