//! The CSV, JSON and Markdown files of a run.

use crate::metrics_defs::MetricKey as K;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::{ReportError, RunInfo, io_err};
use crate::experiment::{FAULT_COSTS, Outcome};
use crate::explain::{self, Latency};
use crate::metrics_defs::{self, Tier, Unit};
use crate::scenario::{Role, Scenario};

fn csv_err(path: &Path) -> impl FnOnce(csv::Error) -> ReportError + '_ {
    move |error| ReportError::Csv {
        path: path.to_path_buf(),
        error,
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

/// Per interval: one `all` row, one row per server, the storage rows, a
/// `web` row and one row per balancer node, for every replication.
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
    w.write_record(HEADER.iter().chain(&STORAGE_HEADER))
        .map_err(csv_err(path))?;
    let opt = |v: Option<f64>| v.map(num).unwrap_or_default();
    for r in &o.replications {
        let rep = r.index.to_string();
        let mut storage = r.storage_samples.iter().peekable();
        for s in &r.samples {
            let t = secs(s.time);
            // The storage sample taken at the same time, if any.
            while storage.next_if(|x| x.time < s.time).is_some() {}
            let st = storage.next_if(|x| x.time == s.time);
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
            let mut extra: [String; 12] = Default::default();
            if let Some(st) = st {
                extra[4] = st.moves_at_risk.to_string();
                if !st.db_nodes.is_empty() {
                    extra[10] = st.db_commits.to_string();
                    extra[11] = st.db_rows.to_string();
                }
            }
            w.write_record(all.iter().chain(&extra)).map_err(csv_err(path))?;
            for (i, sv) in s.servers.iter().enumerate() {
                let mut row = component_row(&rep, &t, format!("server-{i}"));
                row[3] = sv.connections.to_string();
                row[4] = sv.queued.to_string();
                row[5] = (if sv.process_up { "up" } else { "down" }).into();
                row[6] = (if sv.lb_up { "UP" } else { "DOWN" }).into();
                row[7] = format!("{:.4}", sv.cpu_util);
                row[8] = sv.jobs_waiting.to_string();
                w.write_record(&row).map_err(csv_err(path))?;
            }
            if let Some(st) = st {
                for [name, storage @ ..] in storage_rows(st) {
                    let mut row = component_row(&rep, &t, name);
                    row[22..].clone_from_slice(&storage);
                    w.write_record(&row).map_err(csv_err(path))?;
                }
            }
            // The web tier: requests and failures in the interval, response
            // time p50/p99 (in the connect columns), app workers busy (in
            // cpu_util) and requests waiting for a worker.
            if let Some(web) = &s.web {
                let mut row = component_row(&rep, &t, "web".into());
                row[7] = format!("{:.4}", web.app_util);
                row[8] = web.app_waiting.to_string();
                row[9] = web.requests.to_string();
                row[10] = (web.requests - web.failed.min(web.requests)).to_string();
                row[11] = web.failed.to_string();
                row[14] = opt(web.ms_p50);
                row[15] = opt(web.ms_p99);
                w.write_record(&row).map_err(csv_err(path))?;
            }
            // Balancer nodes: client connections held, handshakes waiting
            // for a core (in `jobs_waiting`), TLS core utilisation.
            for (k, nd) in s.nodes.iter().enumerate() {
                let mut row = component_row(&rep, &t, format!("balancer-{k}"));
                row[3] = nd.connections.to_string();
                row[5] = (if nd.up { "up" } else { "down" }).into();
                row[7] = format!("{:.4}", nd.cpu_util);
                row[8] = nd.handshakes_waiting.to_string();
                w.write_record(&row).map_err(csv_err(path))?;
            }
        }
    }
    w.flush().map_err(io_err(path))?;
    Ok(path.to_path_buf())
}

/// A `timeseries.csv` row of one component, blank but for its replication,
/// time and name: the 22 base columns and the 12 storage columns.
fn component_row(rep: &str, t: &str, component: String) -> [String; 34] {
    let mut row: [String; 34] = std::array::from_fn(|_| String::new());
    row[0] = rep.to_string();
    row[1] = t.to_string();
    row[2] = component;
    row
}

/// The storage columns of `timeseries.csv`: on the `all` row the moves at
/// risk and the commits and rows of the interval; on a `cache` row Redis's
/// state, backlog, utilisation and unflushed moves; on a row per database
/// node (`db-primary`, `db-replica-K`) its role, replica lag, apply
/// backlog and utilisations.
const STORAGE_HEADER: [&str; 12] = [
    "cache_state",
    "cache_backlog",
    "cache_util",
    "moves_unflushed",
    "moves_at_risk",
    "db_role",
    "replica_lag_s",
    "apply_backlog",
    "db_util",
    "db_read_util",
    "db_commits",
    "db_rows",
];

/// The `cache` and database rows of one storage sample: the component
/// name, then the 12 storage columns.
fn storage_rows(st: &crate::metrics::StorageSample) -> Vec<[String; 13]> {
    let mut rows = Vec::new();
    if let Some(c) = &st.cache {
        let mut row: [String; 13] = Default::default();
        row[0] = "cache".into();
        row[1] = (if c.up { "up" } else { "down" }).into();
        row[2] = c.backlog.to_string();
        row[3] = format!("{:.4}", c.util);
        row[4] = c.unflushed.to_string();
        rows.push(row);
    }
    for (i, n) in st.db_nodes.iter().enumerate() {
        let mut row: [String; 13] = Default::default();
        row[0] = crate::metrics::db_node_name(i);
        row[6] = n.role.into();
        row[7] = n.lag_s.map(|v| format!("{v:.3}")).unwrap_or_default();
        if n.lag_s.is_some() {
            row[8] = n.apply_backlog.to_string();
        }
        row[9] = format!("{:.4}", n.util);
        row[10] = format!("{:.4}", n.read_util);
        rows.push(row);
    }
    rows
}

/// The fault and state-change timeline of every replication.
pub fn write_events_csv(path: &Path, o: &Outcome) -> Result<PathBuf, ReportError> {
    let mut w = csv::Writer::from_path(path).map_err(csv_err(path))?;
    w.write_record(["replication", "time_s", "component", "event", "detail"])
        .map_err(csv_err(path))?;
    for r in &o.replications {
        for e in &r.timeline {
            w.write_record([
                &r.index.to_string(),
                &secs(e.time),
                &e.component,
                e.event.as_str(),
                &e.detail,
            ])
            .map_err(csv_err(path))?;
        }
    }
    w.flush().map_err(io_err(path))?;
    Ok(path.to_path_buf())
}

/// A short human report: the headline numbers with their CIs, the charts,
/// the timeline of replication 0, and how to reproduce the run.
pub fn write_report_md(path: &Path, sc: &Scenario, o: &Outcome, info: &RunInfo) -> Result<PathBuf, ReportError> {
    let mut s = String::new();
    let _ = writeln!(s, "# wscap run: {}\n", sc.name);
    if !sc.description.is_empty() {
        let _ = writeln!(s, "{}\n", sc.description);
    }
    s.push_str(&super::study::slo_verdict_md(info.slo));
    for line in answer_lines(sc, o) {
        let _ = writeln!(s, "{line}\n");
    }
    for line in cluster_lines(sc, o)
        .into_iter()
        .chain(storage_lines(sc, o))
        .map(|l| without_nan(&l))
    {
        let _ = writeln!(s, "{line}\n");
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
    s.push_str(&faults_table(sc, o));
    s.push_str(&metrics_table(sc, o));
    let _ = writeln!(s, "\n## Charts (replication 0)\n");
    for (file, title) in [
        ("connections", "Connections per server"),
        ("connect_latency", "Connect latency p50/p99"),
        ("refusals", "Refusals and reconnects"),
        ("move_latency", "Move latency over time"),
        ("spectator_cdf", "Delivery-latency distribution"),
        ("relay_backlog", "Relay backlog"),
        ("cpu", "Server CPU utilisation"),
        ("balancer_nodes", "Connections per balancer node"),
        ("balancer_cpu", "TLS handshake load per balancer node"),
        ("web_latency", "Web response time"),
        ("web_load", "Web tier load"),
        ("replica_lag", "Replica lag"),
        ("cache_backlog", "Redis backlog and moves at risk"),
    ] {
        // Game charts exist only for runs with game traffic.
        if path.with_file_name(format!("{file}.svg")).exists() {
            let _ = writeln!(s, "![{title}]({file}.svg)\n");
        }
    }
    if let Some(r) = o.replications.first() {
        let (faults, more) = super::charts::fault_closeups(r, &sc.faults);
        let faults: Vec<_> = faults
            .into_iter()
            .filter(|f| path.with_file_name(format!("{}.svg", f.stem)).exists())
            .collect();
        if !faults.is_empty() {
            let _ = writeln!(
                s,
                "### Faults close-up\n\nFrom 20 s before each fault to 60 s after its component is back (and past the end of its window in the table above, the dashed black line); shaded red: the outage.\n"
            );
        }
        for f in &faults {
            let _ = writeln!(s, "![Close-up of {}]({}.svg)\n", f.title, f.stem);
        }
        if more > 0 {
            let _ = writeln!(
                s,
                "{more} later fault(s) have no close-up (at most {}).\n",
                super::charts::MAX_FAULT_CHARTS
            );
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

/// The storage tier in plain words (empty without `[cache]` and
/// `[database]`): what was at risk and lost, replica lag, stale reads,
/// rehydrations, and, when writes outpace a replica's applier, the line
/// "replica lag grows without bound: writes X rows/s vs apply capacity Y
/// rows/s". For `report.md` and the command line.
pub fn cluster_lines(sc: &Scenario, o: &Outcome) -> Vec<String> {
    let get = |k: K| o.aggregate(k.name()).map(|a| a.mean).unwrap_or(f64::NAN);
    let mut out = Vec::new();
    let b = &sc.balancer;
    let node_crash = sc
        .faults
        .iter()
        .any(|f| matches!(f, crate::scenario::Fault::BalancerCrash { .. }));
    if b.nodes > 1 || b.tls.is_some() || node_crash {
        let mode = match b.mode {
            crate::scenario::ClusterMode::ActivePassive => "active-passive",
            crate::scenario::ClusterMode::ActiveActive => "active-active",
        };
        let mut line = format!("**Balancer cluster.** {} HAProxy node(s), {mode}", b.nodes);
        if node_crash {
            line += &format!(
                "; VIPs answered nowhere for {:.2} s in all (failover takeover {:.2} s), and {:.0} attempts were abandoned after the client's connect timeout",
                get(K::VipOutageS),
                b.failover.takeover().as_secs_f64(),
                get(K::ConnectTimeouts)
            );
        }
        if let Some(tls) = &b.tls {
            line += &format!(
                "; TLS with {}: {:.0} full and {:.0} resumed handshakes, the busiest node's cores peaked at {:.0} % busy in an interval",
                match tls.key {
                    crate::scenario::TlsKey::Rsa2048 => "RSA-2048",
                    crate::scenario::TlsKey::EcdsaP256 => "ECDSA P-256",
                },
                get(K::TlsFullHandshakes),
                get(K::TlsResumedHandshakes),
                get(K::BalancerCpuUtilMax) * 100.0
            );
        }
        if b.node_maxconn.is_some() {
            line += &format!(
                "; {:.0} connections were turned away at a node's maxconn (peak {:.0} held by one node)",
                get(K::RefusedNodeFull),
                get(K::NodeConnectionsMax)
            );
        }
        out.push(line + ".");
    }
    if sc.web.is_some() && get(K::WebRequests) > 0.0 {
        out.push(format!(
            "**Web tier.** {:.0} requests answered at p50 {:.1} ms and p99 {:.1} ms (static p99 {:.1} ms, dynamic p99 {:.1} ms); \
             {:.3} % failed ({:.0} with 502 at a full backlog, {:.0} on database errors). App workers were {:.1} % busy \
             and waited {:.2} ms on average for a worker; nginx cores {:.1} % busy.",
            get(K::WebRequests),
            get(K::WebMsP50),
            get(K::WebMsP99),
            get(K::WebStaticMsP99),
            get(K::WebDynamicMsP99),
            get(K::WebFailedRatio) * 100.0,
            get(K::Web502),
            get(K::WebDbErrors),
            get(K::AppUtilMean) * 100.0,
            get(K::AppWaitMsMean),
            get(K::NginxUtilMean) * 100.0,
        ));
    }
    out
}

/// The storage paragraphs of the report (also printed by the CLI).
pub fn storage_lines(sc: &Scenario, o: &Outcome) -> Vec<String> {
    let get = |k: K| o.aggregate(k.name()).map(|a| a.mean).unwrap_or(f64::NAN);
    let mut out = Vec::new();
    if let Some(k) = &sc.cache {
        let mut line = format!(
            "**Cache.** At most {:.0} moves were at risk (stored in Redis or in flush batches, not yet committed; \
             {:.0} at the worst crash); a Redis crash lost {:.0} moves (appendfsync {}); {:.0} writes to Redis failed \
             of {:.0}. Redis's thread was {:.1} % busy on average.",
            get(K::MovesAtRiskMax),
            get(K::MovesAtRiskAtCrash),
            get(K::MovesLostCache),
            match k.appendfsync {
                crate::scenario::AppendFsync::No => "no",
                crate::scenario::AppendFsync::Everysec => "everysec",
            },
            get(K::CacheWritesFailed),
            get(K::CacheWrites),
            get(K::CacheUtilMean) * 100.0,
        );
        if get(K::RehydrationsCache) + get(K::RehydrationsDb) + get(K::RehydrationsFailed) > 0.0 {
            line.push_str(&format!(
                " Room state was rehydrated {:.0} times from Redis and {:.0} times from the database \
                 ({:.0} failed), p99 {:.2} ms.",
                get(K::RehydrationsCache),
                get(K::RehydrationsDb),
                get(K::RehydrationsFailed),
                get(K::RehydrationMsP99),
            ));
        }
        out.push(line);
    }
    if let Some(d) = &sc.database {
        let mut line = format!(
            "**Database.** {:.0} commits ({:.0} rows); the primary's cores were {:.1} % busy on average. \
             {:.0} acknowledged commits were lost at failover ({:.0} moves).",
            get(K::DbCommits),
            get(K::DbCommitRows),
            get(K::DbUtilMean) * 100.0,
            get(K::CommitsLost),
            get(K::MovesLostDb),
        );
        let failover = get(K::FailoverS);
        if !failover.is_nan() {
            line.push_str(&format!(" A failover took {failover:.1} s on average."));
        }
        if d.replicas > 0 {
            line.push_str(&format!(" Replica lag peaked at {:.2} s", get(K::ReplicaLagMaxS)));
            let end = get(K::ReplicaLagEndS);
            line.push_str(&if end.is_nan() {
                " (no replica running at the end).".to_string()
            } else {
                format!(" ({end:.2} s at the end).")
            });
        }
        let ratio = get(K::StaleReadRatio);
        if !ratio.is_nan() {
            line.push_str(&format!(
                " {:.2} % of database reads were stale ({:.0} of {:.0}).",
                ratio * 100.0,
                get(K::StaleReads),
                get(K::DbReads)
            ));
        }
        if sc.cache.is_none() && get(K::RehydrationsDb) + get(K::RehydrationsFailed) > 0.0 {
            line.push_str(&format!(
                " Room state was rehydrated {:.0} times from the database, p99 {:.2} ms.",
                get(K::RehydrationsDb),
                get(K::RehydrationMsP99)
            ));
        }
        out.push(line);
        let unbounded: Vec<&crate::experiment::Replication> = o
            .replications
            .iter()
            .filter(|r| r.metric(K::ReplicaLagUnbounded.name()) == Some(1.0))
            .collect();
        if !unbounded.is_empty() {
            let mean = |k: K| unbounded.iter().filter_map(|r| r.metric(k.name())).sum::<f64>() / unbounded.len() as f64;
            out.push(format!(
                "**Warning.** Replica lag grows without bound: writes {:.0} rows/s vs apply capacity {:.0} rows/s \
                 ({} applier thread{} × {:.0} rows/s; the lag grows {:.2} s per s at the end, in {} of {} \
                 replications). More replicas do not help (each applies every write); more applier threads, a \
                 faster applier or fewer written rows do.",
                mean(K::DbWriteRowsPerS),
                mean(K::ReplicaApplyCapacityRowsPerS),
                d.applier_threads,
                if d.applier_threads == 1 { "" } else { "s" },
                d.apply_rate.per_s,
                mean(K::ReplicaLagSlope),
                unbounded.len(),
                o.replications.len()
            ));
        }
    }
    out
}

/// A mean and its CI as a report prints it: with the unit's precision,
/// counts as whole numbers, no "± NaN" with one replication.
pub fn value_text(mean: f64, ci95: f64, unit: Unit) -> String {
    let digits = match unit {
        Unit::Count | Unit::Connections | Unit::Flag => 0,
        Unit::Ms | Unit::Seconds => 1,
        Unit::Fraction | Unit::Index | Unit::SecondsPerSecond => 3,
        Unit::PerSecond | Unit::RowsPerSecond => 1,
        Unit::Ratio => 4,
    };
    if ci95.is_nan() {
        format!("{mean:.digits$}")
    } else {
        format!("{mean:.digits$} ± {ci95:.digits$}")
    }
}

/// A paragraph without the sentences that would print a value not
/// measured in this run ("NaN"): nothing is said rather than nonsense.
pub fn without_nan(paragraph: &str) -> String {
    if !paragraph.contains("NaN") {
        return paragraph.to_string();
    }
    paragraph
        .split_inclusive(". ")
        .filter(|s| !s.contains("NaN"))
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// The tiers a scenario has (the report shows only their metrics).
pub fn tiers_present(sc: &Scenario) -> Vec<Tier> {
    let sockets = sc.populations.iter().any(|p| p.role != Role::Web);
    let mut v = Vec::new();
    if sockets {
        v.push(Tier::Connections);
    }
    if sc.balancer.nodes > 1 || sc.balancer.tls.is_some() {
        v.push(Tier::Balancer);
    }
    if sc.game.is_some() {
        v.push(Tier::Game);
    }
    if sc.web.is_some() {
        v.push(Tier::Web);
    }
    if sc.cache.is_some() {
        v.push(Tier::Cache);
    }
    if sc.database.is_some() {
        v.push(Tier::Database);
    }
    v.push(Tier::Run);
    v
}

/// A percentage for a sentence.
fn pct(x: f64) -> String {
    let p = x * 100.0;
    if p == 0.0 {
        "0 %".into()
    } else if p < 0.1 {
        format!("{p:.3} %")
    } else {
        format!("{p:.1} %")
    }
}

/// The answer: connections in steady state and during the fault windows,
/// why connect p99 is what it is, the moves likewise. Never a NaN: a
/// clause whose value was not measured is left out.
pub fn answer_lines(sc: &Scenario, o: &Outcome) -> Vec<String> {
    let get = |k: K| {
        o.aggregate(k.name())
            .map(|a| (a.mean, a.ci95))
            .unwrap_or((f64::NAN, f64::NAN))
    };
    let ms = |k: K| {
        let (m, c) = get(k);
        value_text(m, c, Unit::Ms) + " ms"
    };
    let mut out = Vec::new();
    let has_faults = !sc.faults.is_empty();
    if get(K::ConnectionAttempts).0 > 0.0 {
        let mut a = String::from("**Answer.** ");
        let steady = get(K::RefusedRatioSteady).0;
        if !steady.is_nan() {
            a.push_str(&format!(
                "In steady state {} of connection attempts were refused ({} of clients at least once)",
                pct(steady),
                pct(get(K::ClientsRefusedRatioSteady).0),
            ));
            a.push_str(&if get(K::ConnectMsP99Steady).0.is_nan() {
                " and none was accepted. ".to_string()
            } else {
                format!(" and connect latency p99 was {}. ", ms(K::ConnectMsP99Steady))
            });
        } else {
            a.push_str("No connection attempt started in steady state. ");
        }
        if has_faults {
            let faults = get(K::RefusedRatioFaults).0;
            let n = sc.faults.len();
            a.push_str(&format!(
                "During the {} ({:.0} s in all, after the warm-up) ",
                if n == 1 {
                    "fault's window".to_string()
                } else {
                    format!("{n} faults' windows")
                },
                get(K::FaultWindowS).0
            ));
            if faults.is_nan() {
                a.push_str("no attempt started. ");
            } else {
                a.push_str(&format!(
                    "{} of attempts were refused ({} of the clients who tried then)",
                    pct(faults),
                    pct(get(K::ClientsRefusedRatioFaults).0),
                ));
                a.push_str(&if get(K::ConnectMsP99Faults).0.is_nan() {
                    ", none was accepted. ".to_string()
                } else {
                    format!(", connect p99 {}. ", ms(K::ConnectMsP99Faults))
                });
            }
        }
        a.push_str(&format!(
            "Over the whole run after the warm-up: {} of attempts refused, {} of clients refused at least once, \
             {:.0} gave up, connect p99 {}; the busiest server peaked at {:.0} connections (cap {}).",
            pct(get(K::RefusedRatio).0),
            pct(get(K::ClientsRefusedRatio).0),
            get(K::GaveUp).0,
            ms(K::ConnectMsP99),
            get(K::MaxConnPerServer).0,
            sc.servers.max_connections
        ));
        if has_faults {
            a.push_str(
                " Whole-run ratios depend on how long the run is against the faults; \
                 judge steady state and the fault windows separately.",
            );
        }
        out.push(without_nan(&a));
        if let Some(why) = explain::sentence(o, Latency::Connect) {
            out.push(format!("**Why connect p99 is {}.** {why}", ms(K::ConnectMsP99)));
        }
    }
    if get(K::MovesValidated).0 > 0.0 {
        let mut a = format!(
            "**Moves.** A move reaches the opponent within {} at p99 (p50 {})",
            ms(K::MoveMsP99),
            ms(K::MoveMsP50)
        );
        if has_faults && !get(K::MoveMsP99Faults).0.is_nan() {
            a.push_str(&format!(
                "; {} in steady state, {} during the fault windows",
                ms(K::MoveMsP99Steady),
                ms(K::MoveMsP99Faults)
            ));
        }
        a.push_str(&format!("; {} of moves crossed the relay", pct(get(K::RelayShare).0)));
        if !get(K::RelayMsP99).0.is_nan() {
            a.push_str(&format!(" (relay p99 {})", ms(K::RelayMsP99)));
        }
        a.push_str(&format!("; {:.0} moves were lost.", get(K::MovesLost).0));
        if get(K::Deliveries).0 > 0.0 && !get(K::SpectatorMsP99).0.is_nan() {
            a.push_str(&format!(
                " Spectators have a move within {} at p99 (p50 {}); the last spectator of a move has it within {} \
                 at p99 (worst {}).",
                ms(K::SpectatorMsP99),
                ms(K::SpectatorMsP50),
                ms(K::LastSpectatorMsP99),
                ms(K::LastSpectatorMsMax),
            ));
        }
        let (cpu, cpu_max) = (get(K::CpuUtilMean).0, get(K::CpuUtilMax).0);
        if !cpu.is_nan() {
            a.push_str(&format!(
                " Server cores were {} busy on average, {} in the busiest interval.",
                pct(cpu),
                pct(cpu_max)
            ));
        }
        out.push(without_nan(&a));
        if let Some(why) = explain::sentence(o, Latency::Move) {
            out.push(format!("**Why move p99 is {}.** {why}", ms(K::MoveMsP99)));
        }
    }
    out
}

/// "What each fault costs": one row per scenario fault, means ± 95 % CI
/// over the replications (empty without faults).
pub fn faults_table(sc: &Scenario, o: &Outcome) -> String {
    if o.faults.is_empty() {
        return String::new();
    }
    let has_moves = sc.game.is_some();
    let has_storage = sc.cache.is_some() || sc.database.is_some();
    let mut cols: Vec<(&str, &str, Unit)> = vec![
        ("dropped", "dropped", Unit::Count),
        ("refused", "attempts refused", Unit::Count),
        ("refused_ratio", "refused ratio", Unit::Ratio),
        ("clients_refused", "clients refused", Unit::Count),
        ("gave_up", "gave up", Unit::Count),
        ("reconnect_peak_per_s", "reconnect peak (/s)", Unit::PerSecond),
        ("window_s", "window (s)", Unit::Seconds),
        ("time_to_recover_s", "recovered after (s)", Unit::Seconds),
        ("connect_ms_p99", "connect p99 (ms)", Unit::Ms),
    ];
    if has_moves {
        cols.push(("move_ms_p99", "move p99 (ms)", Unit::Ms));
        cols.push(("moves_lost", "moves lost", Unit::Count));
    }
    if has_storage {
        cols.push(("moves_at_risk", "moves at risk", Unit::Count));
    }
    debug_assert!(cols.iter().all(|c| FAULT_COSTS.contains(&c.0)));
    let mut s = String::from("## What each fault costs\n\n");
    s.push_str(
        "Each fault's window runs from the fault until its component is back and the total connections and the \
         connect p99 have been back in their pre-fault steady band for 3 samples (at most 300 s after the \
         component is back, or until the next fault). Attempts and moves count in the window they started in. \
         Means ± 95 % CI over the replications; \"recovered after\" is the time to the first in-band sample, \
         over the replications that recovered.\n\n",
    );
    s.push_str("| fault |");
    for c in &cols {
        s.push_str(&format!(" {} |", c.1));
    }
    s.push_str("\n|---|");
    s.push_str(&"---:|".repeat(cols.len()));
    s.push('\n');
    for (k, agg) in o.faults.iter().enumerate() {
        let label = sc.faults.get(k).map(|f| f.describe()).unwrap_or_default();
        s.push_str(&format!("| {label} |"));
        for c in &cols {
            let a = agg.iter().find(|a| a.name == c.0);
            let cell = match a {
                Some(a) if !a.mean.is_nan() => value_text(a.mean, a.ci95, c.2),
                _ if c.0 == "time_to_recover_s" => "not within the window".into(),
                _ => "–".into(),
            };
            s.push_str(&format!(" {cell} |"));
        }
        s.push('\n');
    }
    s.push('\n');
    s
}

/// The metrics of the tiers present, grouped by tier: value (mean ± 95 %
/// CI), unit and window from `metrics_defs`. Metrics not measured in this
/// run (NaN) are left out.
pub fn metrics_table(sc: &Scenario, o: &Outcome) -> String {
    let mut s = String::from("## Metrics\n\n");
    s.push_str(
        "Every metric's definition and window is in `summary_columns.csv` beside this report (and in the \
         README). Means over the replications ± 95 % confidence half-widths.\n\n",
    );
    for tier in tiers_present(sc) {
        let rows: Vec<String> = o
            .aggregate
            .iter()
            .filter_map(|a| {
                let d = metrics_defs::def(a.name)?;
                (d.tier == tier && !a.mean.is_nan()).then(|| {
                    format!(
                        "| `{}` | {} | {} | {} |",
                        a.name,
                        value_text(a.mean, a.ci95, d.unit),
                        d.unit.label(),
                        d.window.label()
                    )
                })
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "### {}\n\n| metric | value | unit | window |\n|---|---:|---|---|\n",
            tier.title()
        ));
        for r in rows {
            s.push_str(&r);
            s.push('\n');
        }
        s.push('\n');
    }
    s
}

/// `faults.csv`: per scenario fault, one row per replication, then `mean`
/// and `ci95` rows, with [`FAULT_COSTS`] as columns.
pub fn write_faults_csv(path: &Path, sc: &Scenario, o: &Outcome) -> Result<PathBuf, ReportError> {
    let mut w = csv::Writer::from_path(path).map_err(csv_err(path))?;
    let mut header = vec!["fault".to_string(), "description".into(), "replication".into()];
    header.extend(FAULT_COSTS.iter().map(|c| c.to_string()));
    w.write_record(&header).map_err(csv_err(path))?;
    for (k, agg) in o.faults.iter().enumerate() {
        let desc = sc.faults.get(k).map(|f| f.describe()).unwrap_or_default();
        for r in &o.replications {
            let mut row = vec![k.to_string(), desc.clone(), r.index.to_string()];
            row.extend(r.faults[k].iter().map(|m| num(m.value)));
            w.write_record(&row).map_err(csv_err(path))?;
        }
        for (label, f) in [("mean", 0), ("ci95", 1)] {
            let mut row = vec![k.to_string(), desc.clone(), label.to_string()];
            row.extend(agg.iter().map(|a| num(if f == 0 { a.mean } else { a.ci95 })));
            w.write_record(&row).map_err(csv_err(path))?;
        }
    }
    w.flush().map_err(io_err(path))?;
    Ok(path.to_path_buf())
}

/// `summary_columns.csv`: each `summary.csv` column's unit, tier, window
/// and definition.
pub fn write_columns_csv(path: &Path) -> Result<PathBuf, ReportError> {
    std::fs::write(path, metrics_defs::columns_csv()).map_err(io_err(path))?;
    Ok(path.to_path_buf())
}

/// One line per fault for the command line: what it cost (means over the
/// replications).
pub fn fault_lines(sc: &Scenario, o: &Outcome) -> Vec<String> {
    o.faults
        .iter()
        .enumerate()
        .map(|(k, agg)| {
            let get = |n: &str| agg.iter().find(|a| a.name == n).map_or(f64::NAN, |a| a.mean);
            let mut line = format!(
                "Fault {k}, {}: {:.0} connections dropped, {:.0} attempts refused ({:.0} clients), {:.0} gave up, \
                 reconnects peaked at {:.0}/s",
                sc.faults.get(k).map(|f| f.describe()).unwrap_or_default(),
                get("dropped"),
                get("refused"),
                get("clients_refused"),
                get("gave_up"),
                get("reconnect_peak_per_s"),
            );
            let recover = get("time_to_recover_s");
            line.push_str(&if recover.is_nan() {
                format!(
                    "; not back in its steady band within its {:.0} s window",
                    get("window_s")
                )
            } else {
                format!("; back in its steady band after {recover:.0} s")
            });
            let p99 = get("connect_ms_p99");
            if !p99.is_nan() {
                line.push_str(&format!("; connect p99 {p99:.0} ms during it"));
            }
            let lost = get("moves_lost");
            if !lost.is_nan() {
                line.push_str(&format!("; {lost:.0} moves lost"));
            }
            line.push('.');
            line
        })
        .collect()
}
