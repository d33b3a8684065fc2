//! Scenario files: reading, validating and locating errors.
//!
//! This is one of the only modules that touch the filesystem (the scenario
//! file itself and empirical-distribution CSVs beside it). Everything it
//! hands on is checked: a [`Scenario`] that loads is one the engine can run.
//! Errors name the file, line, column and field, with the valid choices.

pub mod haproxy_log;
mod input;
pub mod limits;
mod locate;
mod storage;
mod types;
mod web;

pub use input::{MAX_DATA_BYTES, MAX_DATA_ROWS, MAX_SCENARIO_BYTES, read_source};
pub use storage::*;
pub use types::*;
pub use web::{App, Browsing, Nginx, Web};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::dist::{Dist, unit_scale};
use crate::time::SimDuration;

/// Every distribution in the scenario with its field path, by shared or
/// mutable reference (`dists!(sc)` / `dists!(sc, mut)`): one list for both.
macro_rules! dists {
    ($sc:expr $(, $m:ident)?) => {{
        let sc = $sc;
        let mut v: Vec<(String, &$($m)? Dist)> = vec![
            ("servers.connect_cost".into(), &$($m)? sc.servers.connect_cost),
            ("servers.receive_cost".into(), &$($m)? sc.servers.receive_cost),
            ("servers.send_cost".into(), &$($m)? sc.servers.send_cost),
            ("servers.publish_cost".into(), &$($m)? sc.servers.publish_cost),
            ("servers.consume_cost".into(), &$($m)? sc.servers.consume_cost),
        ];
        if let Some(g) = &$($m)? sc.game {
            v.push(("game.think_time".into(), &$($m)? g.think_time));
        }
        match &$($m)? sc.relay {
            Some(Relay::Kafka { append, fetch, .. }) => {
                v.push(("relay.append".into(), append));
                v.push(("relay.fetch".into(), fetch));
            }
            Some(Relay::Redis { publish_cost, per_subscriber_cost, .. }) => {
                v.push(("relay.publish_cost".into(), publish_cost));
                v.push(("relay.per_subscriber_cost".into(), per_subscriber_cost));
            }
            None => {}
        }
        if let Some(k) = &$($m)? sc.cache {
            v.push(("cache.op_cost".into(), &$($m)? k.op_cost));
        }
        if let Some(d) = &$($m)? sc.database {
            v.push(("database.write_cost".into(), &$($m)? d.write_cost));
            v.push(("database.batch_base".into(), &$($m)? d.batch_base));
            v.push(("database.read_cost".into(), &$($m)? d.read_cost));
        }
        for (i, p) in (&$($m)? sc.populations).into_iter().enumerate() {
            v.push((format!("population[{i}].session"), &$($m)? p.session));
            v.push((format!("population[{i}].rtt"), &$($m)? p.rtt));
            v.push((format!("population[{i}].browsing.think_time"), &$($m)? p.browsing.think_time));
        }
        if let Some(w) = &$($m)? sc.web {
            v.push(("web.nginx.static_cost".into(), &$($m)? w.nginx.static_cost));
            v.push(("web.nginx.static_miss_cost".into(), &$($m)? w.nginx.static_miss_cost));
            v.push(("web.nginx.proxy_cost".into(), &$($m)? w.nginx.proxy_cost));
            v.push(("web.app.service".into(), &$($m)? w.app.service));
        }
        v
    }};
}

/// One problem in a scenario file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// 1-based line and column, when the field could be located.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The field, as a dotted path (`balancer.health_check.inter`).
    pub field: String,
    pub message: String,
}

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{file}: cannot read the scenario: {error}")]
    Read { file: PathBuf, error: std::io::Error },
    /// Not a file wscap reads: a folder, too large, not text.
    #[error("{file}: {reason}")]
    Unreadable { file: PathBuf, reason: String },
    #[error("{}", render(file, problems))]
    Invalid { file: PathBuf, problems: Vec<Problem> },
}

impl ScenarioError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            ScenarioError::Read { .. } | ScenarioError::Unreadable { .. } => &[],
            ScenarioError::Invalid { problems, .. } => problems,
        }
    }
}

fn render(file: &Path, problems: &[Problem]) -> String {
    let mut s = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(&file.display().to_string());
        if let Some(l) = p.line {
            s.push_str(&format!(":{l}"));
            if let Some(c) = p.column {
                s.push_str(&format!(":{c}"));
            }
        }
        if p.field.is_empty() {
            s.push_str(&format!(": {}", p.message));
        } else {
            s.push_str(&format!(": field `{}`: {}", p.field, p.message));
        }
    }
    s
}

/// The JSON Schema of the scenario format, derived from the types (so it
/// follows every key, default and unknown-key rule the loader applies; value
/// checks beyond types, such as `warmup < duration`, are the loader's).
pub fn json_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Scenario);
    schema.insert("title".into(), "wscap scenario".into());
    serde_json::to_value(&schema).expect("a schema is JSON")
}

/// Reads and validates a scenario file. Relative paths inside it (empirical
/// CSVs) are resolved against the file's folder.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let src = read_source(path)?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "scenario".into());
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&src, path, &stem, base)
}

/// Parses and validates scenario text. `file` is only used in messages;
/// `default_name` names the scenario if the file does not.
pub fn parse(src: &str, file: &Path, default_name: &str, base_dir: &Path) -> Result<Scenario, ScenarioError> {
    let invalid = |problems| ScenarioError::Invalid {
        file: file.to_path_buf(),
        problems,
    };
    let renamed = renamed_keys(src);
    if !renamed.is_empty() {
        return Err(invalid(renamed));
    }
    let shape = locate::structure(src);
    if !shape.is_empty() {
        return Err(invalid(shape));
    }
    let mut sc: Scenario =
        toml::from_str(src).map_err(|e| invalid(vec![locate::de_problem(src, &e, &|key| failing_entry(src, key))]))?;
    if sc.name.is_empty() {
        sc.name = default_name.to_string();
    }
    let mut problems = validate(&sc);
    if problems.is_empty() {
        problems.extend(load_files(&mut sc, base_dir));
    }
    if problems.is_empty() {
        return Ok(sc);
    }
    for p in &mut problems {
        if p.line.is_none() {
            // A key left at its default is not in the file: the top of it.
            let off = locate::locate(src, &p.field).unwrap_or(0);
            let (l, c) = locate::line_col(src, off);
            p.line = Some(l);
            p.column = Some(c);
        }
    }
    Err(invalid(problems))
}

/// Keys renamed to HAProxy's words (issue 13): the old dotted path and the
/// new key. An old key is an error naming the new one.
pub const RENAMED: &[(&str, &str)] = &[("balancer.strategy", "balance"), ("balancer.cores", "nbthread")];

/// Old key names in `src`, each a located problem naming its new name.
fn renamed_keys(src: &str) -> Vec<Problem> {
    let Ok(doc) = toml_edit::Document::parse(src) else {
        return vec![];
    };
    let mut out = vec![];
    for (old, new) in RENAMED {
        let (table, key) = old.rsplit_once('.').expect("a dotted path");
        let found = doc
            .get(table)
            .and_then(|t| t.as_table_like())
            .is_some_and(|t| t.contains_key(key));
        if found {
            let (line, column) = match locate::locate(src, old) {
                Some(off) => {
                    let (l, c) = locate::line_col(src, off);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            out.push(Problem {
                line,
                column,
                field: old.to_string(),
                message: format!(
                    "`{key}` is now `{new}`, HAProxy's word for it: write `{new} = …` in `[{table}]` (see the README's HAProxy mapping)"
                ),
            });
        }
    }
    out
}

/// Which entry of the top-level array of tables `key` (`population`,
/// `fault`) fails to deserialize on its own.
fn failing_entry(src: &str, key: &str) -> Option<usize> {
    use serde::Deserialize;
    let t: toml::Table = toml::from_str(src).ok()?;
    let entries = t.get(key)?.as_array()?;
    entries.iter().position(|v| match key {
        "population" => Population::deserialize(v.clone()).is_err(),
        "fault" => Fault::deserialize(v.clone()).is_err(),
        _ => false,
    })
}

/// Reads the CSV files a scenario refers to: empirical distributions and
/// arrival traces.
/// A scenario as run, read back from its JSON serialization (a cluster
/// task's manifest): the files it names (traces, empirical columns, HAProxy
/// logs) are read again, relative to `base_dir`, as [`load`] reads them.
pub fn from_json(value: serde_json::Value, base_dir: &Path) -> Result<Scenario, String> {
    let mut sc: Scenario = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let problems = load_files(&mut sc, base_dir);
    if let Some(p) = problems.first() {
        return Err(format!("{}: {}", p.field, p.message));
    }
    Ok(sc)
}

fn load_files(sc: &mut Scenario, base: &Path) -> Vec<Problem> {
    let mut problems = load_empirical(sc, base);
    for (i, p) in sc.populations.iter_mut().enumerate() {
        if let Arrival::HaproxyLog {
            file,
            time_scale,
            start,
            sessions,
            sources,
            lenient,
            replay,
        } = &mut p.arrival
        {
            let opts = haproxy_log::ReadOptions {
                time_scale: *time_scale,
                start: *start,
                sessions: *sessions,
                sources: *sources,
                lenient: *lenient,
            };
            match haproxy_log::read(&base.join(&*file), opts) {
                Ok(r) => *replay = Arc::new(r),
                Err(message) => problems.push(Problem {
                    line: None,
                    column: None,
                    field: format!("population[{i}].arrival.file"),
                    message,
                }),
            }
        }
        if let Arrival::Trace {
            file,
            column,
            unit,
            times,
        } = &mut p.arrival
        {
            let path = base.join(&*file);
            match read_column(&path, column) {
                Ok(v) => {
                    let k = unit_scale(unit).unwrap_or(1.0);
                    let mut t: Vec<SimDuration> = v.iter().map(|x| SimDuration::from_secs_f64(x * k)).collect();
                    t.sort_unstable();
                    if t.len() as u64 > limits::MAX_CLIENTS_PER_POPULATION {
                        problems.push(Problem {
                            line: None,
                            column: None,
                            field: format!("population[{i}].arrival.file"),
                            message: "more than 50 000 000 arrivals in the trace".into(),
                        });
                    }
                    *times = Arc::new(t);
                }
                Err(message) => problems.push(Problem {
                    line: None,
                    column: None,
                    field: format!("population[{i}].arrival.file"),
                    message,
                }),
            }
        }
    }
    problems
}

fn load_empirical(sc: &mut Scenario, base: &Path) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (field, dist) in dists!(sc, mut) {
        if let Dist::Empirical {
            file,
            column,
            unit,
            values_s,
        } = dist
        {
            let path = base.join(&*file);
            match read_column(&path, column) {
                Ok(mut v) => {
                    let k = unit_scale(unit).unwrap_or(1e-3);
                    v.iter_mut().for_each(|x| *x *= k);
                    v.sort_by(f64::total_cmp);
                    *values_s = Arc::new(v);
                }
                Err(message) => problems.push(Problem {
                    line: None,
                    column: None,
                    field: format!("{field}.file"),
                    message,
                }),
            }
        }
    }
    problems
}

fn read_column(path: &Path, column: &str) -> Result<Vec<f64>, String> {
    let mut r = csv::Reader::from_reader(input::open_data(path)?);
    let headers = r
        .headers()
        .map_err(|e| format!("cannot read the header of `{}`: {e}", path.display()))?
        .clone();
    let Some(idx) = headers.iter().position(|h| h.trim() == column) else {
        let names: Vec<&str> = headers.iter().collect();
        return Err(format!(
            "`{}` has no column `{column}`; its columns are: {}",
            path.display(),
            names.join(", ")
        ));
    };
    let mut out = Vec::new();
    for (row, rec) in r.records().enumerate() {
        if row == MAX_DATA_ROWS {
            return Err(format!(
                "`{}` has more than {MAX_DATA_ROWS} rows: at most that many are read",
                path.display()
            ));
        }
        let rec = rec.map_err(|e| format!("`{}`: {e}", path.display()))?;
        let cell = rec.get(idx).unwrap_or("").trim();
        let v: f64 = cell.parse().map_err(|_| {
            format!(
                "`{}` row {}: `{cell}` in column `{column}` is not a number",
                path.display(),
                row + 2
            )
        })?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(format!(
                "`{}` row {}: values must be zero or positive, got {v}",
                path.display(),
                row + 2
            ));
        }
        out.push(v);
    }
    if out.is_empty() {
        return Err(format!("`{}` has no rows", path.display()));
    }
    Ok(out)
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn fail(&mut self, field: impl Into<String>, message: impl fmt::Display) {
        self.problems.push(Problem {
            line: None,
            column: None,
            field: field.into(),
            message: message.to_string(),
        });
    }
    fn positive(&mut self, field: &str, v: u64, what: &str) {
        if v == 0 {
            self.fail(field, format!("{what} must be at least 1, got 0"));
        }
    }
}

/// Semantic checks: every nonsense value is caught before a run starts.
/// Most `[[fault]]` entries a scenario may list: each has its own
/// statistics window (`metrics::windows`, phases fit in a `u16`).
pub const MAX_FAULTS: usize = 1000;

pub fn validate(sc: &Scenario) -> Vec<Problem> {
    let mut c = Checker { problems: vec![] };
    if sc.duration.0 == 0 {
        c.fail("duration", "the run must last longer than 0s");
    }
    if sc.warmup >= sc.duration && sc.duration.0 > 0 {
        c.fail(
            "warmup",
            format!("warmup {} must be shorter than duration {}", sc.warmup, sc.duration),
        );
    }
    c.positive("replications", sc.replications as u64, "replications");
    if sc.replications > 10_000 {
        c.fail("replications", "at most 10000 replications");
    }
    if sc.sample_interval.0 == 0 {
        c.fail("sample_interval", "must be longer than 0s");
    } else if sc.duration.0 / sc.sample_interval.0 > 1_000_000 {
        c.fail(
            "sample_interval",
            "more than 1 000 000 samples per run: use a longer interval",
        );
    }
    c.positive("max_events", sc.max_events, "max_events");
    if !sc.name.chars().all(|ch| ch.is_alphanumeric() || "-_.".contains(ch)) || sc.name.starts_with('.') {
        c.fail(
            "name",
            format!(
                "`{}`: use letters, digits, '-', '_' and '.' only (it names the output folder)",
                sc.name
            ),
        );
    }

    let s = &sc.servers;
    c.positive("servers.count", s.count as u64, "the server count");
    if s.count > 100_000 {
        c.fail("servers.count", "at most 100000 servers");
    }
    c.positive("servers.max_connections", s.max_connections as u64, "max_connections");
    c.positive("servers.cores", s.cores as u64, "cores");
    for (field, d) in dists!(sc) {
        if let Err((param, msg)) = d.validate() {
            c.fail(format!("{field}.{param}"), msg);
        }
    }

    let b = &sc.balancer;
    if let Some(w) = &b.weights {
        if w.len() != s.count as usize {
            c.fail(
                "balancer.weights",
                format!("{} weights given for {} servers: give one per server", w.len(), s.count),
            );
        }
        if let Some(bad) = w.iter().find(|&&x| x > 256) {
            c.fail(
                "balancer.weights",
                format!("weight {bad} is above HAProxy's maximum of 256"),
            );
        }
        if w.iter().all(|&x| x == 0) {
            c.fail("balancer.weights", "all weights are 0: no server would get traffic");
        }
    }
    if let Some(m) = b.maxconn {
        c.positive("balancer.maxconn", m as u64, "maxconn");
    }
    if !b.queue && b.maxqueue.is_some() {
        c.fail(
            "balancer.maxqueue",
            "`queue = false` (refuse at once, no queue) leaves no queue to bound: remove `maxqueue`",
        );
    }
    if let Strategy::RandomD(d) = b.strategy
        && d > s.count
    {
        c.fail(
            "balancer.balance",
            format!("random({d}) draws more servers than the {} there are", s.count),
        );
    }
    let hc = &b.health_check;
    if hc.enabled {
        if hc.inter.0 == 0 {
            c.fail("balancer.health_check.inter", "must be longer than 0s");
        }
        for (name, v) in [
            ("fastinter", hc.fastinter),
            ("downinter", hc.downinter),
            ("timeout", hc.timeout),
        ] {
            if v == Some(SimDuration::ZERO) {
                c.fail(format!("balancer.health_check.{name}"), "must be longer than 0s");
            }
        }
        c.positive("balancer.health_check.fall", hc.fall as u64, "fall");
        c.positive("balancer.health_check.rise", hc.rise as u64, "rise");
    }
    if b.retries > 100 {
        c.fail("balancer.retries", "at most 100 retries");
    }
    c.positive("balancer.nodes", b.nodes as u64, "nodes");
    if b.nodes > 64 {
        c.fail("balancer.nodes", "at most 64 balancer nodes");
    }
    c.positive("balancer.nbthread", b.cores as u64, "nbthread");
    if let Some(m) = b.node_maxconn {
        c.positive("balancer.node_maxconn", m as u64, "node_maxconn");
    }
    match &b.failover {
        Failover::Keepalived { advert_int, priority } => {
            if advert_int.0 == 0 {
                c.fail("balancer.failover.advert_int", "must be longer than 0s");
            }
            if !(1..=254).contains(priority) {
                c.fail(
                    "balancer.failover.priority",
                    format!("{priority}: a VRRP backup's priority is 1..=254"),
                );
            }
        }
        Failover::Pacemaker { token, consensus, .. } => {
            if token.0 == 0 {
                c.fail("balancer.failover.token", "must be longer than 0s");
            }
            if let Some(cs) = consensus
                && cs < token
            {
                c.fail(
                    "balancer.failover.consensus",
                    format!("consensus {cs} must be at least token {token} (Corosync requires it)"),
                );
            }
        }
    }
    if let Some(t) = &b.tls {
        if let Some(r) = t.full_rate
            && (r.per_s.is_nan() || r.per_s <= 0.0)
        {
            c.fail("balancer.tls.full_rate", "must be above 0/s");
        }
        if !(0.0..=1.0).contains(&t.resumption_ratio) {
            c.fail("balancer.tls.resumption_ratio", "must be between 0 and 1");
        }
        if !(t.resumed_cost_ratio > 0.0 && t.resumed_cost_ratio <= 1.0) {
            c.fail("balancer.tls.resumed_cost_ratio", "must be above 0 and at most 1");
        }
    }
    if b.update_interval.0 == 0 {
        c.fail("balancer.update_interval", "must be longer than 0s");
    }

    if sc.populations.is_empty() {
        c.fail("population", "no [[population]]: nobody would connect");
    }
    for (i, p) in sc.populations.iter().enumerate() {
        let f = |k: &str| format!("population[{i}].{k}");
        if p.name.trim().is_empty() {
            c.fail(f("name"), "must not be empty");
        }
        if sc.populations[..i].iter().any(|q| q.name == p.name) {
            c.fail(f("name"), format!("`{}` is used by two populations", p.name));
        }
        if p.role == Role::Web && sc.web.is_none() {
            c.fail(
                f("role"),
                "role `web` sends HTTP requests to the web tier: add a [web] table (nginx and app servers)",
            );
        }
        if !(0.0..=1.0).contains(&p.browsing.static_ratio) {
            c.fail(f("browsing.static_ratio"), "must be between 0 and 1");
        }
        match &p.arrival {
            Arrival::Poisson {
                rate,
                start,
                stop,
                max_clients,
            } => {
                if rate.per_s <= 0.0 {
                    c.fail(f("arrival.rate"), "must be above 0/s");
                }
                if let Some(stop) = stop
                    && stop <= start
                {
                    c.fail(f("arrival.stop"), format!("stop {stop} is not after start {start}"));
                }
                if *max_clients == Some(0) {
                    c.fail(f("arrival.max_clients"), "must be at least 1");
                }
                let expected = rate.per_s * sc.duration.as_secs_f64();
                if expected > limits::MAX_CLIENTS_PER_POPULATION as f64 && max_clients.is_none() {
                    c.fail(f("arrival.rate"), format!("about {} arrivals per replication: above the 50 000 000 client bound (set max_clients or lower the rate)", crate::units::count_text(expected)));
                }
            }
            Arrival::Ramp { target, .. } => {
                c.positive(&f("arrival.target"), *target, "target");
                if *target > limits::MAX_CLIENTS_PER_POPULATION {
                    c.fail(f("arrival.target"), "at most 50 000 000 clients per population");
                }
            }
            Arrival::HaproxyLog { time_scale, .. } => {
                if !(time_scale.is_finite() && *time_scale > 0.0) {
                    c.fail(f("arrival.time_scale"), "must be a number above 0");
                }
                if p.role == Role::Web {
                    c.fail(
                        f("arrival.process"),
                        "haproxy-log replays WebSocket connections: use it on player or spectator populations",
                    );
                }
            }
            Arrival::Trace { unit, .. } => {
                if unit_scale(unit).is_none() {
                    c.fail(
                        f("arrival.unit"),
                        format!("unknown unit `{unit}`, expected one of ns, us, ms, s"),
                    );
                }
            }
            Arrival::Step { count, .. } => {
                c.positive(&f("arrival.count"), *count, "count");
                if *count > limits::MAX_CLIENTS_PER_POPULATION {
                    c.fail(f("arrival.count"), "at most 50 000 000 clients per population");
                }
            }
        }
        if p.source_ips == Some(0) {
            c.fail(f("source_ips"), "must be at least 1");
        }
        c.positive(&f("room_size"), p.room_size as u64, "room_size");
        if let Watch::Zipf { rooms, exponent } = &p.watch {
            c.positive(&f("watch.rooms"), *rooms as u64, "rooms");
            if !(exponent.is_finite() && *exponent >= 0.0) {
                c.fail(f("watch.exponent"), "must be zero or positive");
            }
        }
        match &p.reconnect {
            Reconnect::None => {}
            Reconnect::Fixed { max_attempts, .. } => {
                c.positive(&f("reconnect.max_attempts"), *max_attempts as u64, "max_attempts")
            }
            Reconnect::Exponential {
                base,
                cap,
                max_attempts,
                ..
            } => {
                c.positive(&f("reconnect.max_attempts"), *max_attempts as u64, "max_attempts");
                if base.0 == 0 {
                    c.fail(f("reconnect.base"), "must be longer than 0s");
                }
                if cap < base {
                    c.fail(f("reconnect.cap"), format!("cap {cap} is below base {base}"));
                }
            }
        }
    }

    if let Some(w) = &sc.web {
        w.validate(&mut c);
    }
    if let Some(g) = &sc.game {
        if let Err(m) = g.moves.validate() {
            c.fail("game.moves", m);
        }
        if sc.relay.is_none() && s.count > 1 {
            c.fail(
                "game",
                "rooms can span servers but there is no [relay]: add `[relay] kind = \"kafka\"` or `\"redis\"` (or use one server)",
            );
        }
    }
    if let Some(Relay::Kafka {
        partitions,
        partition_rate,
        ..
    }) = &sc.relay
    {
        c.positive("relay.partitions", *partitions as u64, "partitions");
        if *partitions > 100_000 {
            c.fail("relay.partitions", "at most 100000 partitions");
        }
        if partition_rate.per_s <= 0.0 {
            c.fail("relay.partition_rate", "must be above 0/s");
        }
    }
    if sc.populations.iter().any(|p| p.role == Role::Spectator)
        && !sc.populations.iter().any(|p| p.role == Role::Player)
    {
        c.fail(
            "population",
            "spectators need a player population whose rooms they watch",
        );
    }

    if sc.faults.len() > MAX_FAULTS {
        c.fail(
            "fault",
            format!(
                "{} faults: at most {MAX_FAULTS} (each gets its own statistics window)",
                sc.faults.len()
            ),
        );
    }
    let max_servers = sc.max_servers();
    if max_servers > 100_000 {
        c.fail("fault", "scale-outs would take the fleet above 100000 servers");
    }
    for (i, fault) in sc.faults.iter().enumerate() {
        let f = |k: &str| format!("fault[{i}].{k}");
        let at = fault.at();
        if at >= sc.duration {
            c.fail(
                f("at"),
                format!("{at} is not before the end of the run ({})", sc.duration),
            );
        }
        match fault {
            Fault::Crash { server, .. } => {
                if *server >= max_servers {
                    c.fail(
                        f("server"),
                        format!(
                            "server {server} does not exist: servers are numbered 0..={}{}",
                            max_servers.saturating_sub(1),
                            if max_servers > s.count {
                                " (scale-outs included)"
                            } else {
                                ""
                            }
                        ),
                    );
                }
            }
            Fault::BalancerCrash { node, .. } => {
                if *node >= b.nodes {
                    c.fail(
                        f("node"),
                        format!(
                            "balancer node {node} does not exist: nodes are numbered 0..={} (balancer.nodes = {})",
                            b.nodes.saturating_sub(1),
                            b.nodes
                        ),
                    );
                }
            }
            Fault::ScaleOut { count, .. } => c.positive(&f("count"), *count as u64, "count"),
            Fault::ScaleIn { count, .. } => {
                c.positive(&f("count"), *count as u64, "count");
                if *count >= s.count {
                    c.fail(
                        f("count"),
                        format!("removing {count} of {} servers would leave none", s.count),
                    );
                }
            }
            Fault::RollingRestart { restart_time, .. } => {
                if restart_time.0 == 0 {
                    c.fail(f("restart_time"), "must be longer than 0s");
                }
                if sc.faults[..i].iter().any(|g| matches!(g, Fault::RollingRestart { .. })) {
                    c.fail(f("kind"), "only one rolling-restart per scenario");
                }
            }
            Fault::Slowdown {
                tier,
                for_,
                latency,
                loss,
                ..
            } => {
                if for_.0 == 0 {
                    c.fail(f("for"), "must be longer than 0s");
                }
                if !(0.0..=0.9).contains(loss) {
                    c.fail(
                        f("loss"),
                        format!("{loss} is not a loss ratio between 0 and 0.9 (0.01 = 1 % of packets lost)"),
                    );
                }
                if latency.0 == 0 && *loss == 0.0 {
                    c.fail(f("latency"), "a slowdown needs a latency above 0s or a loss above 0");
                }
                if *latency > SimDuration::from_secs(60) {
                    c.fail(
                        f("latency"),
                        format!("{latency} one way is beyond any network: at most 60s"),
                    );
                }
                let (present, needs) = match tier {
                    Link::Clients | Link::Servers => (true, ""),
                    Link::Web => (sc.web.is_some(), "a [web] table"),
                    Link::Cache => (sc.cache.is_some(), "a [cache] table"),
                    Link::Database => (sc.database.is_some(), "a [database] table"),
                };
                if !present {
                    c.fail(
                        f("tier"),
                        format!("a slowdown on `{}` needs {needs}: this scenario has none", tier.name()),
                    );
                }
            }
            // The storage tier's faults are checked by `storage::validate`.
            Fault::CacheCrash { .. } | Fault::DbCrash { .. } => {}
            Fault::NginxCrash {
                node: k, restart_after, ..
            }
            | Fault::AppCrash {
                server: k,
                restart_after,
                ..
            } => {
                let (field, what, table) = match fault {
                    Fault::NginxCrash { .. } => ("node", "nginx server", "nginx"),
                    _ => ("server", "app server", "app"),
                };
                match &sc.web {
                    None => c.fail(
                        f("kind"),
                        format!("`{}` needs a [web] table (nginx and app servers)", fault.kind()),
                    ),
                    Some(w) => {
                        let count = if table == "nginx" { w.nginx.count } else { w.app.count };
                        if *k >= count {
                            c.fail(
                                f(field),
                                format!(
                                    "{what} {k} does not exist: they are numbered 0..={} (web.{table}.count = {count})",
                                    count.saturating_sub(1)
                                ),
                            );
                        }
                    }
                }
                if *restart_after == Some(SimDuration::ZERO) {
                    c.fail(f("restart_after"), "must be longer than 0s (or left out: no restart)");
                }
            }
        }
    }
    storage::validate(sc, &mut c);
    limits::bounds(sc, &mut c);
    c.problems
}

/// A scenario error for `problems` found after loading (the run's size
/// estimate): each located in `file` by its field.
pub fn located_error(file: &Path, mut problems: Vec<Problem>) -> ScenarioError {
    if let Ok(src) = read_source(file) {
        for p in &mut problems {
            if p.line.is_none() {
                let off = locate::locate(&src, &p.field).unwrap_or(0);
                let (l, c) = locate::line_col(&src, off);
                p.line = Some(l);
                p.column = Some(c);
            }
        }
    }
    ScenarioError::Invalid {
        file: file.to_path_buf(),
        problems,
    }
}

#[cfg(test)]
mod tests;
