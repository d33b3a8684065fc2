//! How large a scenario may be: a documented upper bound on every
//! count-like key ([`bounds`], hard, checked by `scenario::validate`), and
//! an estimate of each run's size — clients, rooms, events, memory, output
//! — checked before the run against limits ([`check_size`], soft: the CLI's
//! `--allow-large` lets an expert go past them).
//!
//! Every constant is here, in one place. The memory estimate is calibrated
//! on measured peaks (VmHWM of `wscap run`) of every bundled scenario, in
//! full and cut short: about 130 bytes per client slot, 100 more per
//! client connected at once and 150 per room, plus the per-interval
//! samples each replication keeps (`tests/it/limits.rs` holds it within
//! 2× of the measured peak). The client arena hands the slot of a client
//! that left to the next arrival unless the client belongs to a room
//! (game traffic): so slots follow *concurrent* clients without a game,
//! *arrivals* with one.

use super::{Arrival, Checker, Problem, Role, Scenario};
use crate::dist::{CountDist, CountTable};
use crate::time::SimDuration;
use crate::units::count_text;

// ---- Hard bounds on count-like keys (validation refuses beyond them) ----

/// Cores of a socket server, a balancer node or an nginx server (each
/// core is a slot of a station, allocated up front).
pub const MAX_CORES: u32 = 1024;
/// Sync workers of one app server.
pub const MAX_WORKERS: u32 = 10_000;
/// An app server's listen backlog.
pub const MAX_BACKLOG: u32 = 1_000_000;
/// Distinct profile keys of the web tier (`web.app.keys`).
pub const MAX_KEYS: u32 = 1_000_000_000;
/// Connections per server (`servers.max_connections`, `balancer.maxconn`;
/// nothing is allocated per slot, the tests use 10⁸ as "no cap"),
/// per node (`balancer.node_maxconn`) and queue places (`balancer.maxqueue`).
pub const MAX_CONNECTIONS: u32 = 1_000_000_000;
/// Clients of one population in one replication (arrivals).
pub const MAX_CLIENTS_PER_POPULATION: u64 = 50_000_000;
/// Clients of all populations together in one replication (arrivals;
/// `sim::MAX_CLIENTS` is the simulator's own hard stop, above it).
pub const MAX_CLIENTS_TOTAL: u64 = 50_000_000;
/// Players per room.
pub const MAX_ROOM_SIZE: u32 = 10_000;
/// Source addresses of a population (NAT).
pub const MAX_SOURCE_IPS: u32 = 100_000_000;
/// Rooms a Zipf spectator population picks among.
pub const MAX_ZIPF_ROOMS: u32 = 100_000_000;
/// Reconnect attempts of one client.
pub const MAX_ATTEMPTS: u32 = 10_000;
/// Moves in one game (a constant, a uniform `max`, or a mean).
pub const MAX_MOVES: u32 = 1_000_000;
/// Redis `maxclients`, and connections per server's pool.
pub const MAX_REDIS_CLIENTS: u32 = 10_000_000;
/// Kafka producer batch slots: servers (with scale-outs) × partitions,
/// allocated up front by the relay.
pub const MAX_SERVER_PARTITIONS: u64 = 10_000_000;
/// `max_events`, per replication.
pub const MAX_EVENTS: u64 = 1_000_000_000_000;
/// `--threads`.
pub const MAX_THREADS: usize = 1024;

// ---- The estimate's calibration ----

/// Bytes per client slot held in the arena (a client that arrived, or
/// one connected at once without a game).
pub const BYTES_PER_CLIENT: f64 = 130.0;
/// Bytes more per client connected at once (its server's connection
/// list and heartbeat, the balancer's slot, its spectator or room
/// membership). Measured with `limits::estimate`'s test: 150k-players cut
/// to 3 min (150 000 connected, 75 000 rooms) peaks at 75 MiB, the full
/// hour (435 000 arrivals, the same 150 000 connected, 217 000 rooms) at
/// 130 MiB; 1m-spectators cut to 2 min (400 000 connected) at 100 MiB.
pub const BYTES_PER_CONNECTION: f64 = 100.0;
/// Bytes per room (its members, board and staged deliveries).
pub const BYTES_PER_ROOM: f64 = 150.0;
/// Bytes of one per-interval sample: its base, and per server row.
pub const BYTES_PER_SAMPLE: f64 = 256.0;
pub const BYTES_PER_SAMPLE_SERVER: f64 = 48.0;
/// Fixed cost of the process (code, fonts, thread pool) and of one
/// replication in flight (histograms, stations, slabs).
pub const BYTES_BASE: f64 = 16.0 * 1024.0 * 1024.0;
pub const BYTES_PER_REPLICATION: f64 = 4.0 * 1024.0 * 1024.0;
/// Share of a finished replication's world that stays in the process's
/// heap until the outputs are written (freed, but small blocks fragment
/// and are not returned to the system). Measured: balancer-failover at
/// 1 → 4 replications on one thread peaks at 25 → 40 MiB (≈ 0.4 of its
/// world per replication after the first); a world of large blocks
/// (1m-spectators) gives nearly all of it back.
pub const KEPT_SHARE: f64 = 0.4;
/// Bytes of one `timeseries.csv` row, and the charts and reports besides.
pub const BYTES_PER_CSV_ROW: f64 = 80.0;
pub const BYTES_OUTPUT_BASE: f64 = 8.0 * 1024.0 * 1024.0;
/// Events per client (arrival, attempt, balancer, accept, session end,
/// health noise…) and per move (at the server, validated, fan-out, relay).
pub const EVENTS_PER_CLIENT: f64 = 12.0;
pub const EVENTS_PER_MOVE: f64 = 5.0;

// ---- Soft limits on the estimate (`--allow-large` goes past them) ----

/// Share of the machine's available memory a run may be estimated to use.
pub const MEMORY_SHARE: f64 = 0.8;
/// Memory limit when the machine's is unknown (8 GiB).
pub const DEFAULT_MEMORY_BYTES: u64 = 8 << 30;
/// Output folder size (2 GiB).
pub const MAX_OUTPUT_BYTES: f64 = 2.0 * 1024.0 * 1024.0 * 1024.0;
/// Events of the whole run, all replications (about an hour at 25 M
/// events/s).
pub const MAX_TOTAL_EVENTS: f64 = 1e11;

fn gib(b: f64) -> String {
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB", b / (1u64 << 20) as f64)
    }
}

/// Hard bounds on the count-like keys not bounded elsewhere in validation.
pub(super) fn bounds(sc: &Scenario, c: &mut Checker) {
    let at_most = |c: &mut Checker, field: String, v: u64, max: u64, why: &str| {
        if v > max {
            c.fail(field, format!("{v} is above the limit {max} ({why})"));
        }
    };
    at_most(
        c,
        "servers.cores".into(),
        sc.servers.cores.into(),
        MAX_CORES.into(),
        "cores per server",
    );
    at_most(
        c,
        "balancer.nbthread".into(),
        sc.balancer.cores.into(),
        MAX_CORES.into(),
        "cores per node",
    );
    at_most(
        c,
        "servers.max_connections".into(),
        sc.servers.max_connections.into(),
        MAX_CONNECTIONS.into(),
        "connections per server",
    );
    for (k, v) in [
        ("maxconn", sc.balancer.maxconn),
        ("node_maxconn", sc.balancer.node_maxconn),
        ("maxqueue", sc.balancer.maxqueue),
    ] {
        if let Some(v) = v {
            at_most(
                c,
                format!("balancer.{k}"),
                v.into(),
                MAX_CONNECTIONS.into(),
                "connections",
            );
        }
    }
    at_most(
        c,
        "max_events".into(),
        sc.max_events,
        MAX_EVENTS,
        "events per replication",
    );
    if let Some(w) = &sc.web {
        at_most(
            c,
            "web.nginx.cores".into(),
            w.nginx.cores.into(),
            MAX_CORES.into(),
            "cores per nginx",
        );
        at_most(
            c,
            "web.app.workers".into(),
            w.app.workers.into(),
            MAX_WORKERS.into(),
            "workers per app server",
        );
        at_most(
            c,
            "web.app.backlog".into(),
            w.app.backlog.into(),
            MAX_BACKLOG.into(),
            "backlog per app server",
        );
        at_most(
            c,
            "web.app.keys".into(),
            w.app.keys.into(),
            MAX_KEYS.into(),
            "profile keys",
        );
    }
    if let Some(k) = &sc.cache {
        at_most(
            c,
            "cache.maxclients".into(),
            k.maxclients.into(),
            MAX_REDIS_CLIENTS.into(),
            "Redis clients",
        );
        at_most(
            c,
            "cache.pool_size".into(),
            k.pool_size.into(),
            MAX_REDIS_CLIENTS.into(),
            "Redis clients",
        );
    }
    if let Some(super::Relay::Kafka { partitions, .. }) = &sc.relay {
        let slots = sc.max_servers() as u64 * *partitions as u64;
        if slots > MAX_SERVER_PARTITIONS {
            c.fail(
                "relay.partitions",
                format!(
                    "{partitions} partitions × {} servers = {slots} producer batch slots: above the limit {MAX_SERVER_PARTITIONS}",
                    sc.max_servers()
                ),
            );
        }
    }
    if let Some(g) = &sc.game {
        let moves = match &g.moves {
            CountDist::Constant(n) => *n as f64,
            CountDist::Table(CountTable::Uniform { max, .. }) => *max as f64,
            CountDist::Table(CountTable::Normal { mean, .. } | CountTable::Geometric { mean }) => *mean,
        };
        if moves > MAX_MOVES as f64 {
            c.fail(
                "game.moves",
                format!("{} moves per game is above the limit {MAX_MOVES}", count_text(moves)),
            );
        }
    }
    let mut total = 0.0;
    let mut biggest = (0.0, String::new());
    for (i, p) in sc.populations.iter().enumerate() {
        let f = |k: &str| format!("population[{i}].{k}");
        at_most(
            c,
            f("room_size"),
            p.room_size.into(),
            MAX_ROOM_SIZE.into(),
            "players per room",
        );
        if let Some(n) = p.source_ips {
            at_most(c, f("source_ips"), n.into(), MAX_SOURCE_IPS.into(), "source addresses");
        }
        if let super::Watch::Zipf { rooms, .. } = p.watch {
            at_most(c, f("watch.rooms"), rooms.into(), MAX_ZIPF_ROOMS.into(), "rooms");
        }
        match &p.reconnect {
            super::Reconnect::Fixed { max_attempts, .. } | super::Reconnect::Exponential { max_attempts, .. } => {
                at_most(
                    c,
                    f("reconnect.max_attempts"),
                    (*max_attempts).into(),
                    MAX_ATTEMPTS.into(),
                    "attempts per client",
                );
            }
            super::Reconnect::None => {}
        }
        if let Arrival::Poisson {
            max_clients: Some(m), ..
        } = p.arrival
        {
            at_most(
                c,
                f("arrival.max_clients"),
                m,
                MAX_CLIENTS_PER_POPULATION,
                "clients per population",
            );
        }
        let (n, key) = arrivals(sc, i);
        total += n;
        if n > biggest.0 {
            biggest = (n, key);
        }
    }
    // A population above its own bound is reported by itself.
    if total > MAX_CLIENTS_TOTAL as f64 && biggest.0 <= MAX_CLIENTS_PER_POPULATION as f64 {
        c.fail(
            biggest.1,
            format!(
                "about {} clients per replication in all populations together: above the limit {} (this population brings the most)",
                count_text(total),
                count_text(MAX_CLIENTS_TOTAL as f64)
            ),
        );
    }
}

/// Expected arrivals of population `i` in one replication, and the key
/// that sets them.
fn arrivals(sc: &Scenario, i: usize) -> (f64, String) {
    let p = &sc.populations[i];
    let f = |k: &str| format!("population[{i}].arrival.{k}");
    match &p.arrival {
        Arrival::Poisson {
            rate,
            start,
            stop,
            max_clients,
        } => {
            let end = stop.unwrap_or(sc.duration).min(sc.duration);
            let span = end.as_secs_f64() - start.as_secs_f64().min(end.as_secs_f64());
            let n = rate.per_s * span;
            match max_clients {
                Some(m) if (*m as f64) < n => (*m as f64, f("max_clients")),
                _ => (n, f("rate")),
            }
        }
        // Spread evenly over `over` from `start`: a run that ends inside
        // the spread sees only its share.
        Arrival::Ramp { target, over, start } => (*target as f64 * within(sc, *start, *over), f("target")),
        Arrival::Step { count, at, over } => (*count as f64 * within(sc, *at, *over), f("count")),
        Arrival::Trace { times, .. } => (times.partition_point(|t| *t < sc.duration) as f64, f("file")),
        Arrival::HaproxyLog { replay, .. } => (replay.times.len() as f64, f("file")),
    }
}

/// The share of arrivals spread evenly over `over` from `from` that come
/// before the end of the run.
fn within(sc: &Scenario, from: SimDuration, over: SimDuration) -> f64 {
    let (end, from, over) = (sc.duration.as_secs_f64(), from.as_secs_f64(), over.as_secs_f64());
    if from >= end {
        0.0
    } else if over <= 0.0 {
        1.0
    } else {
        ((end - from) / over).min(1.0)
    }
}

/// A run's size, estimated from its scenario before it runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// Arrivals per replication, all populations.
    pub clients: f64,
    /// Connected at once at the peak (Little's law: arrival rate × mean
    /// session, at most the arrivals and the fleet's capacity).
    pub peak_connected: f64,
    /// Rooms (players ÷ room size, with game traffic).
    pub rooms: f64,
    /// Events per replication.
    pub events: f64,
    /// Peak memory of the process, all replications in flight.
    pub memory_bytes: f64,
    /// Size of the output folder.
    pub output_bytes: f64,
    /// The key that drives the clients (and so memory and events).
    pub clients_key: String,
    /// The key that drives the memory: the clients' key, or the one of
    /// the samples (`servers.count`, `sample_interval`) when the samples
    /// kept weigh more than the replications in flight.
    pub memory_key: String,
}

/// Estimates the size of a run of `sc` with `threads` workers (0 = one
/// per core, given as `cores`).
pub fn estimate(sc: &Scenario, threads: usize) -> Estimate {
    let mut clients = 0.0;
    let mut peak = 0.0;
    let mut held = 0.0;
    let mut rooms = 0.0;
    let mut key = (0.0, String::from("population"));
    for (i, p) in sc.populations.iter().enumerate() {
        let (n, k) = arrivals(sc, i);
        clients += n;
        if n > key.0 {
            key = (n, k);
        }
        let session = p.session.mean_secs();
        let span = sc.duration.as_secs_f64().max(1e-9);
        let connected = if session.is_finite() {
            n.min(n / span * session.max(0.0) + 1.0)
        } else {
            n
        };
        peak += connected;
        // Room members keep their slot after they leave (`sim::Clients`).
        held += if sc.game.is_some() && p.role != Role::Web {
            n
        } else {
            connected
        };
        if p.role == Role::Player {
            rooms += n / p.room_size.max(1) as f64;
        }
    }
    let capacity = sc.max_servers() as f64 * sc.servers.max_connections as f64;
    let peak = peak.min(capacity.max(1.0) + sc.populations.len() as f64);
    let rooms = if sc.game.is_some() { rooms } else { 0.0 };
    let samples = sc.duration.0 as f64 / sc.sample_interval.0.max(1) as f64;
    let servers = sc.max_servers() as f64;
    let moves = match &sc.game {
        Some(g) => {
            let think = g.think_time.mean_secs();
            let span = sc.duration.as_secs_f64();
            if think.is_finite() && think > 0.0 {
                rooms.min(peak) * span / think
            } else {
                0.0
            }
        }
        None => 0.0,
    };
    let events = clients * EVENTS_PER_CLIENT + moves * EVENTS_PER_MOVE + samples;
    let held = held.min(clients);
    let reps = sc.replications.max(1) as f64;
    let running = if threads == 0 { reps } else { reps.min(threads as f64) };
    let samples_bytes = samples * (BYTES_PER_SAMPLE + servers * BYTES_PER_SAMPLE_SERVER);
    let working =
        held * BYTES_PER_CLIENT + peak * BYTES_PER_CONNECTION + rooms * BYTES_PER_ROOM + BYTES_PER_REPLICATION;
    // Replications in flight hold their world; every finished one keeps its
    // samples until the outputs are written, and the ones after the first
    // on a thread a share of their world's heap.
    let memory_bytes = BYTES_BASE + (running + (reps - running) * KEPT_SHARE) * working + reps * samples_bytes;
    let memory_key = if reps * samples_bytes > (running + (reps - running) * KEPT_SHARE) * working {
        samples_key(servers).to_string()
    } else {
        key.1.clone()
    };
    let output_bytes = BYTES_OUTPUT_BASE + reps * samples * (1.0 + servers) * BYTES_PER_CSV_ROW;
    Estimate {
        clients,
        peak_connected: peak,
        rooms,
        events,
        memory_bytes,
        output_bytes,
        clients_key: key.1,
        memory_key,
    }
}

/// The key that drives the per-interval samples (and `timeseries.csv`):
/// many servers, or else short intervals.
fn samples_key(servers: f64) -> &'static str {
    if servers >= 1000.0 {
        "servers.count"
    } else {
        "sample_interval"
    }
}

/// Overrides the memory limit: bytes, or a number with `KiB`, `MiB`,
/// `GiB` (e.g. `WSCAP_MEMORY_LIMIT=4GiB` on a shared machine).
pub const MEMORY_LIMIT_ENV: &str = "WSCAP_MEMORY_LIMIT";

fn parse_bytes(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&v[..i], v[i..].trim()),
        None => (v, ""),
    };
    let k: f64 = match unit {
        "" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    (n.is_finite() && n >= 0.0).then_some((n * k) as u64)
}

/// Where the memory limit comes from.
#[derive(Clone, Debug)]
pub struct Budget {
    /// The memory a run may use: [`MEMORY_SHARE`] of the machine's
    /// available memory, or [`DEFAULT_MEMORY_BYTES`].
    pub memory_bytes: u64,
    /// Says where `memory_bytes` came from, for the message.
    pub memory_source: String,
    /// Worker threads the run will use (at least 1).
    pub threads: usize,
}

impl Budget {
    /// The budget of this machine (Linux: `MemAvailable` in
    /// /proc/meminfo), with `threads` workers (0 = one per core).
    pub fn of_this_machine(threads: usize) -> Budget {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            threads
        };
        if let Some(b) = std::env::var(MEMORY_LIMIT_ENV).ok().and_then(|v| parse_bytes(&v)) {
            return Budget {
                memory_bytes: b,
                memory_source: MEMORY_LIMIT_ENV.to_string(),
                threads,
            };
        }
        let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map(|kb| kb * 1024)
        });
        match available {
            Some(b) => Budget {
                memory_bytes: (b as f64 * MEMORY_SHARE) as u64,
                memory_source: format!("{:.0} % of this machine's available memory", MEMORY_SHARE * 100.0),
                threads,
            },
            None => Budget {
                memory_bytes: DEFAULT_MEMORY_BYTES,
                memory_source: "the default when the machine's memory is unknown".into(),
                threads,
            },
        }
    }
}

/// The soft limits: problems naming the estimate, the limit and the key
/// that drives it (empty: the run fits). Not located: the caller locates
/// them in the file.
pub fn check_size(sc: &Scenario, budget: &Budget) -> Vec<Problem> {
    let e = estimate(sc, budget.threads);
    let mut out = vec![];
    let mut fail = |field: String, message: String| {
        out.push(Problem {
            line: None,
            column: None,
            field,
            message,
        })
    };
    let drivers = format!(
        "{} clients per replication (set by this key), {} replications, {} at a time",
        count_text(e.clients),
        sc.replications,
        budget.threads.min(sc.replications.max(1) as usize)
    );
    if e.memory_bytes > budget.memory_bytes as f64 {
        let why = if e.memory_key == e.clients_key {
            drivers.clone()
        } else {
            format!(
                "{} samples × {} servers kept for each of {} replications (set by this key)",
                sc.duration.0 / sc.sample_interval.0.max(1),
                sc.max_servers(),
                sc.replications
            )
        };
        fail(
            e.memory_key.clone(),
            format!(
                "estimated peak memory {} is above the limit {} ({}): {why}; lower it, use fewer --threads, or pass --allow-large",
                gib(e.memory_bytes),
                gib(budget.memory_bytes as f64),
                budget.memory_source
            ),
        );
    }
    if e.output_bytes > MAX_OUTPUT_BYTES {
        let servers = sc.max_servers();
        let samples = sc.duration.0 / sc.sample_interval.0.max(1);
        fail(
            samples_key(servers as f64).into(),
            format!(
                "estimated output {} is above the limit {}: timeseries.csv has a row per sample ({samples}), server ({servers}) and replication ({}); use a longer sample_interval, fewer servers or replications, or pass --allow-large",
                gib(e.output_bytes),
                gib(MAX_OUTPUT_BYTES),
                sc.replications
            ),
        );
    }
    let total = e.events * sc.replications.max(1) as f64;
    if total > MAX_TOTAL_EVENTS {
        fail(
            e.clients_key.clone(),
            format!(
                "about {} events in all replications is above the limit {} (about an hour at 25 M events/s): {drivers}; pass --allow-large to run anyway",
                count_text(total),
                count_text(MAX_TOTAL_EVENTS)
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sc(extra: &str, pop: &str) -> Scenario {
        sc_with(extra, pop, "")
    }

    /// With `tables` after the population (e.g. a `[game]`).
    fn sc_with(extra: &str, pop: &str, tables: &str) -> Scenario {
        let reps = if extra.contains("replications") {
            ""
        } else {
            "replications = 4"
        };
        let src = format!(
            "duration = \"1h\"\n{reps}\n{extra}\n[servers]\ncount = 10\nmax_connections = 10000\n\
             [balancer]\nbalance = \"leastconn\"\n[[population]]\nname = \"p\"\nrole = \"player\"\n{pop}\nsession = \"10m\"\n{tables}\n"
        );
        super::super::parse(&src, Path::new("t.toml"), "t", Path::new(".")).unwrap()
    }

    #[test]
    fn byte_sizes_parse() {
        assert_eq!(parse_bytes("1024"), Some(1024));
        assert_eq!(parse_bytes("4GiB"), Some(4 << 30));
        assert_eq!(parse_bytes("1.5 MiB"), Some(3 << 19));
        assert_eq!(parse_bytes("4GB"), None);
    }

    const GAME: &str = "[game]\nthink_time = \"8s\"\nmoves = 40\n[relay]\nkind = \"kafka\"\n";

    /// With a game, room members keep their slots: memory follows the
    /// arrivals. Without one, slots are reused: it follows the clients
    /// connected at once (Little's law).
    #[test]
    fn estimate_follows_arrivals_with_a_game_and_concurrency_without() {
        // One replication: its world only (no finished ones kept).
        const ONE: &str = "replications = 1";
        let step = |n: u32| format!("arrival = {{ process = \"step\", count = {n}, at = \"1s\" }}");
        let a = estimate(&sc_with(ONE, &step(100_000), GAME), 1);
        let b = estimate(&sc_with(ONE, &step(200_000), GAME), 1);
        assert_eq!(a.clients, 100_000.0);
        assert_eq!(a.clients_key, "population[0].arrival.count");
        let per_client = (b.memory_bytes
            - a.memory_bytes
            - (b.rooms - a.rooms) * BYTES_PER_ROOM
            - (b.peak_connected - a.peak_connected) * BYTES_PER_CONNECTION)
            / 100_000.0;
        assert!((per_client - BYTES_PER_CLIENT).abs() < 1e-6, "{per_client}");
        let a = estimate(&sc(ONE, &step(100_000)), 1);
        let b = estimate(&sc(ONE, &step(200_000)), 1);
        let held = (b.memory_bytes - a.memory_bytes) / (BYTES_PER_CLIENT + BYTES_PER_CONNECTION);
        assert!((held - (b.peak_connected - a.peak_connected)).abs() < 1e-6, "{held}");
        let p = estimate(&sc("", "arrival = { process = \"poisson\", rate = \"10/s\" }"), 1);
        assert!((p.clients - 36_000.0).abs() < 1e-6);
        // Little's law: 10/s × 600 s.
        assert!((p.peak_connected - 6001.0).abs() < 1.0, "{}", p.peak_connected);
    }

    /// A ramp or a step spread past the end of the run brings only its
    /// share of clients.
    #[test]
    fn arrivals_spread_past_the_end_count_their_share() {
        let ramp = estimate(
            &sc("", "arrival = { process = \"ramp\", target = 1000, over = \"2h\" }"),
            1,
        );
        assert!((ramp.clients - 500.0).abs() < 1e-6, "{}", ramp.clients);
        let step = estimate(
            &sc(
                "",
                "arrival = { process = \"step\", count = 1000, at = \"30m\", over = \"1h\" }",
            ),
            1,
        );
        assert!((step.clients - 500.0).abs() < 1e-6, "{}", step.clients);
        let whole = estimate(
            &sc("", "arrival = { process = \"ramp\", target = 1000, over = \"1m\" }"),
            1,
        );
        assert_eq!(whole.clients, 1000.0);
    }

    /// Memory driven by the samples (many servers, short intervals) is
    /// blamed on their key, not on the clients'.
    #[test]
    fn memory_of_samples_names_their_key() {
        let s = sc(
            "sample_interval = \"10ms\"",
            "arrival = { process = \"step\", count = 10, at = \"1s\" }",
        );
        let e = estimate(&s, 1);
        assert_eq!(e.memory_key, "sample_interval");
        let budget = Budget {
            memory_bytes: 64 << 20,
            memory_source: "test".into(),
            threads: 1,
        };
        let p = check_size(&s, &budget);
        let m = p.iter().find(|p| p.message.contains("peak memory")).expect("refused");
        assert_eq!(m.field, "sample_interval");
        assert!(m.message.contains("360000 samples × 10 servers"), "{}", m.message);
    }

    #[test]
    fn a_run_too_large_for_memory_names_estimate_limit_and_key() {
        let s = sc_with(
            "",
            "arrival = { process = \"step\", count = 40000000, at = \"1s\" }",
            GAME,
        );
        let small = Budget {
            memory_bytes: 1 << 30,
            memory_source: "test".into(),
            threads: 2,
        };
        let p = check_size(&s, &small);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "population[0].arrival.count");
        assert!(
            p[0].message
                .contains("estimated peak memory 21.4 GiB is above the limit 1.0 GiB"),
            "{}",
            p[0].message
        );
        assert!(p[0].message.contains("--allow-large"), "{}", p[0].message);
        let big = Budget {
            memory_bytes: 1 << 40,
            ..small
        };
        assert!(check_size(&s, &big).is_empty());
    }

    #[test]
    fn output_size_is_bounded() {
        let s = sc(
            "sample_interval = \"5ms\"",
            "arrival = { process = \"step\", count = 10, at = \"1s\" }",
        );
        let budget = Budget {
            memory_bytes: 1 << 40,
            memory_source: "test".into(),
            threads: 1,
        };
        let p = check_size(&s, &budget);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "sample_interval");
        assert!(p[0].message.contains("estimated output"), "{}", p[0].message);
    }

    #[test]
    fn total_events_are_bounded() {
        let s = sc(
            "replications = 10000",
            "arrival = { process = \"step\", count = 1000000, at = \"1s\" }",
        );
        let budget = Budget {
            memory_bytes: 1 << 50,
            memory_source: "test".into(),
            threads: 1,
        };
        let p = check_size(&s, &budget);
        assert!(
            p.iter().any(|p| p.message.contains("events in all replications")),
            "{p:?}"
        );
    }
}
