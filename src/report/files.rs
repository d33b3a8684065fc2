//! The CSV, JSON and Markdown files of a run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::{ReportError, RunInfo, io_err};
use crate::experiment::Outcome;
use crate::scenario::Scenario;

fn csv_err(path: &Path) -> impl FnOnce(csv::Error) -> ReportError + '_ {
    move |source| ReportError::Csv {
        path: path.to_path_buf(),
        source,
    }
}

/// A number for CSV: empty when not a number, shortest exact form otherwise.
fn num(v: f64) -> String {
    if v.is_nan() { String::new() } else { format!("{v}") }
}

fn jnum(v: f64) -> Value {
    serde_json::Number::from_f64(v)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn secs(t: crate::time::SimTime) -> String {
    // Milliseconds are exact enough for every sample interval we allow.
    format!("{:.3}", t.as_secs_f64())
}

/// One row per replication, then `mean` and `ci95` (half-width) rows.
pub fn write_summary_csv(path: &Path, o: &Outcome) -> Result<PathBuf, ReportError> {
    let mut w = csv::Writer::from_path(path).map_err(csv_err(path))?;
    let mut header = vec!["replication".to_string()];
    header.extend(o.aggregate.iter().map(|a| a.name.to_string()));
    w.write_record(&header).map_err(csv_err(path))?;
    for r in &o.replications {
        let mut row = vec![r.index.to_string()];
        row.extend(r.metrics.iter().map(|m| num(m.value)));
        w.write_record(&row).map_err(csv_err(path))?;
    }
    let mut mean = vec!["mean".to_string()];
    mean.extend(o.aggregate.iter().map(|a| num(a.mean)));
    w.write_record(&mean).map_err(csv_err(path))?;
    let mut ci = vec!["ci95".to_string()];
    ci.extend(o.aggregate.iter().map(|a| num(a.ci95)));
    w.write_record(&ci).map_err(csv_err(path))?;
    w.flush().map_err(io_err(path))?;
    Ok(path.to_path_buf())
}

/// The same as `summary.csv`, nested, with the scenario as run.
pub fn write_summary_json(path: &Path, sc: &Scenario, o: &Outcome) -> Result<PathBuf, ReportError> {
    let reps: Vec<Value> = o
        .replications
        .iter()
        .map(|r| {
            let metrics: Map<String, Value> = r.metrics.iter().map(|m| (m.name.to_string(), jnum(m.value))).collect();
            json!({ "replication": r.index, "stop": r.stop, "metrics": metrics })
        })
        .collect();
    let agg: Map<String, Value> = o
        .aggregate
        .iter()
        .map(|a| {
            (
                a.name.to_string(),
                json!({ "mean": jnum(a.mean), "ci95": jnum(a.ci95) }),
            )
        })
        .collect();
    let doc = json!({
        "scenario": sc.name,
        "seed": sc.seed,
        "replications": reps,
        "aggregate": agg,
        "config": sc,
    });
    let text = serde_json::to_string_pretty(&doc).expect("JSON values always serialise");
    std::fs::write(path, text + "\n").map_err(io_err(path))?;
    Ok(path.to_path_buf())
}

/// Per interval: one `all` row and one row per server, for every replication.
pub fn write_timeseries_csv(path: &Path, o: &Outcome) -> Result<PathBuf, ReportError> {
    let mut w = csv::Writer::from_path(path).map_err(csv_err(path))?;
    const HEADER: [&str; 22] = [
        "replication",
        "time_s",
        "component",
        "connections",
        "queued",
        "state",
        "lb_state",
        "cpu_util",
        "jobs_waiting",
        "arrivals",
        "accepted",
        "refused",
        "reconnects",
        "dropped",
        "connect_ms_p50",
        "connect_ms_p99",
        "moves",
        "move_ms_p50",
        "move_ms_p99",
        "spectator_ms_p50",
        "spectator_ms_p99",
        "relay_backlog",
    ];
    w.write_record(HEADER).map_err(csv_err(path))?;
    let opt = |v: Option<f64>| v.map(num).unwrap_or_default();
    for r in &o.replications {
        let rep = r.index.to_string();
        for s in &r.samples {
            let t = secs(s.time);
            let all: [String; 22] = [
                rep.clone(),
                t.clone(),
                "all".into(),
                s.connections.to_string(),
                s.queued.to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                s.arrivals.to_string(),
                s.accepted.to_string(),
                s.refused.to_string(),
                s.reconnects.to_string(),
                s.dropped.to_string(),
                opt(s.connect_ms_p50),
                opt(s.connect_ms_p99),
                s.moves.to_string(),
                opt(s.move_ms_p50),
                opt(s.move_ms_p99),
                opt(s.spectator_ms_p50),
                opt(s.spectator_ms_p99),
                s.relay_backlog.to_string(),
            ];
            w.write_record(&all).map_err(csv_err(path))?;
            for (i, sv) in s.servers.iter().enumerate() {
                let mut row: [String; 22] = Default::default();
                row[0] = rep.clone();
                row[1] = t.clone();
                row[2] = format!("server-{i}");
                row[3] = sv.connections.to_string();
                row[4] = sv.queued.to_string();
                row[5] = (if sv.process_up { "up" } else { "down" }).into();
                row[6] = (if sv.lb_up { "UP" } else { "DOWN" }).into();
                row[7] = format!("{:.4}", sv.cpu_util);
                row[8] = sv.jobs_waiting.to_string();
                w.write_record(&row).map_err(csv_err(path))?;
            }
        }
    }
    w.flush().map_err(io_err(path))?;
    Ok(path.to_path_buf())
}

/// The fault and state-change timeline of every replication.
pub fn write_events_csv(path: &Path, o: &Outcome) -> Result<PathBuf, ReportError> {
    let mut w = csv::Writer::from_path(path).map_err(csv_err(path))?;
    w.write_record(["replication", "time_s", "component", "event", "detail"])
        .map_err(csv_err(path))?;
    for r in &o.replications {
        for e in &r.timeline {
            w.write_record([&r.index.to_string(), &secs(e.time), &e.component, e.event, &e.detail])
                .map_err(csv_err(path))?;
        }
    }
    w.flush().map_err(io_err(path))?;
    Ok(path.to_path_buf())
}

/// A short human report: the headline numbers with their CIs, the charts,
/// the timeline of replication 0, and how to reproduce the run.
pub fn write_report_md(path: &Path, sc: &Scenario, o: &Outcome, info: &RunInfo) -> Result<PathBuf, ReportError> {
    let get = |n: &str| o.aggregate(n).map(|a| (a.mean, a.ci95)).unwrap_or((f64::NAN, f64::NAN));
    let pm = |(m, c): (f64, f64), digits: usize| {
        if c.is_nan() {
            format!("{m:.digits$}")
        } else {
            format!("{m:.digits$} ± {c:.digits$}")
        }
    };
    let mut s = String::new();
    let _ = writeln!(s, "# wscap run: {}\n", sc.name);
    if !sc.description.is_empty() {
        let _ = writeln!(s, "{}\n", sc.description);
    }
    let refused = get("refused_ratio");
    let _ = writeln!(
        s,
        "**Answer.** {:.3} % of clients were refused at least once ({:.3} % of all connection attempts, \
         retries included); {:.0} gave up. Connect latency p99 {} ms; \
         the busiest server peaked at {:.0} connections (cap {}).\n",
        get("clients_refused_ratio").0 * 100.0,
        refused.0 * 100.0,
        get("gave_up").0,
        pm(get("connect_ms_p99"), 1),
        get("max_conn_per_server").0,
        sc.servers.max_connections
    );
    if get("moves_validated").0 > 0.0 {
        let spectators = get("deliveries").0 > 0.0 && !get("spectator_ms_p99").0.is_nan();
        let _ = write!(
            s,
            "**Moves.** A move reaches the opponent in {} ms at p99 (p50 {} ms); {:.1} % of moves crossed the relay \
             (relay p99 {} ms); {:.0} moves were lost.",
            pm(get("move_ms_p99"), 1),
            pm(get("move_ms_p50"), 1),
            get("relay_share").0 * 100.0,
            pm(get("relay_ms_p99"), 1),
            get("moves_lost").0,
        );
        if spectators {
            let _ = write!(
                s,
                " Spectators have a move within {} ms at p99 (p50 {} ms); the last spectator of a move has it within {} ms \
                 at p99 (worst {} ms).",
                pm(get("spectator_ms_p99"), 1),
                pm(get("spectator_ms_p50"), 1),
                pm(get("last_spectator_ms_p99"), 1),
                pm(get("last_spectator_ms_max"), 1),
            );
        }
        let _ = writeln!(
            s,
            " Server cores were {:.1} % busy on average, {:.1} % in the busiest interval.\n",
            get("cpu_util_mean").0 * 100.0,
            get("cpu_util_max").0 * 100.0
        );
    }
    let _ = writeln!(
        s,
        "{} replications of {} (warm-up {} not counted), {} servers × {} connections, strategy `{}`. \
         Values are means with 95 % confidence half-widths.\n",
        o.replications.len(),
        sc.duration,
        sc.warmup,
        sc.servers.count,
        sc.servers.max_connections,
        sc.balancer.strategy
    );
    let _ = writeln!(s, "| metric | value |\n|---|---|");
    for a in &o.aggregate {
        let _ = writeln!(s, "| {} | {} |", a.name, pm((a.mean, a.ci95), 4));
    }
    let _ = writeln!(s, "\n## Charts (replication 0)\n");
    for (file, title) in [
        ("connections", "Connections per server"),
        ("connect_latency", "Connect latency p50/p99"),
        ("refusals", "Refusals and reconnects"),
        ("move_latency", "Move latency over time"),
        ("spectator_cdf", "Delivery-latency distribution"),
        ("relay_backlog", "Relay backlog"),
        ("cpu", "Server CPU utilisation"),
    ] {
        // Game charts exist only for runs with game traffic.
        if path.with_file_name(format!("{file}.svg")).exists() {
            let _ = writeln!(s, "![{title}]({file}.svg)\n");
        }
    }
    if let Some(r) = o.replications.first()
        && !r.timeline.is_empty()
    {
        let _ = writeln!(
            s,
            "## Timeline (replication 0)\n\n| time (s) | component | event | detail |\n|---|---|---|---|"
        );
        for e in &r.timeline {
            let _ = writeln!(
                s,
                "| {:.3} | {} | {} | {} |",
                e.time.as_secs_f64(),
                e.component,
                e.event,
                e.detail
            );
        }
    }
    if let Some(r) = o.replications.first() {
        s.push('\n');
        s.push_str(&super::sections::servers_table(sc, r, "## Per server"));
    }
    s.push_str(&super::sections::scenario_as_run(sc));
    s.push_str(&super::sections::assumptions(sc));
    let _ = writeln!(
        s,
        "\n## Reproduce\n\nScenario `{}`, seed {}.\n\n```\n{}\n```",
        info.scenario_file.display(),
        sc.seed,
        info.command
    );
    std::fs::write(path, s).map_err(io_err(path))?;
    Ok(path.to_path_buf())
}
