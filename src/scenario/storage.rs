//! Scenario types of the storage tier: the Redis cache that moves are
//! written behind to ([`Cache`]), and the database primary with its
//! replicas ([`Database`]). Both tables are optional; every key has a
//! default and unknown keys are errors.

use serde::{Deserialize, Serialize};

use super::{Checker, Fault, Scenario};
use crate::dist::Dist;
use crate::time::SimDuration;
use crate::units::Rate;

/// Most replicas a database may have.
pub const MAX_REPLICAS: u32 = 64;
/// Most applier threads per replica.
pub const MAX_APPLIER_THREADS: u32 = 1024;

/// `[cache]`: one single-threaded Redis. Every validated move is one write
/// op; moves are flushed to the database in batches (write-behind).
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// Service time of one op on Redis's single thread.
    #[serde(default = "d_op_cost")]
    pub op_cost: Dist,
    /// Extra service time per move when a room's history is read
    /// (rehydration): a read costs `op_cost + per_move_cost × moves`.
    #[serde(default = "d_per_move_cost")]
    pub per_move_cost: SimDuration,
    /// One-way latency socket server ↔ Redis.
    #[serde(default = "d_network")]
    pub network: SimDuration,
    /// Redis `maxclients` (10 000 by default).
    #[serde(default = "d_maxclients")]
    pub maxclients: u32,
    /// Connections each socket server keeps to Redis: only the first
    /// `maxclients / pool_size` running servers (by index) get a pool; the
    /// others' writes fail.
    #[serde(default = "d_pool_size")]
    pub pool_size: u32,
    /// When unflushed moves go to the database.
    #[serde(default)]
    pub flush: Flush,
    /// Redis persistence: what a crash loses.
    #[serde(default)]
    pub appendfsync: AppendFsync,
}

fn d_op_cost() -> Dist {
    Dist::constant(SimDuration::from_micros(20))
}
fn d_per_move_cost() -> SimDuration {
    SimDuration::from_micros(1)
}
fn d_network() -> SimDuration {
    SimDuration::from_micros(250)
}
fn d_maxclients() -> u32 {
    10_000
}
fn d_pool_size() -> u32 {
    8
}

/// The write-behind flush policy.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(tag = "policy", rename_all = "lowercase", deny_unknown_fields)]
pub enum Flush {
    /// Every `interval`, all unflushed moves in one batch (one commit).
    Interval {
        #[serde(default = "d_flush_interval")]
        interval: SimDuration,
    },
    /// Lichess-style: a game's moves are flushed `after_last_move` after its
    /// last move, and at once when it ends (one commit per game flush).
    Lichess { after_last_move: SimDuration },
}

impl Default for Flush {
    fn default() -> Self {
        Flush::Interval {
            interval: d_flush_interval(),
        }
    }
}

fn d_flush_interval() -> SimDuration {
    SimDuration::from_secs(1)
}

/// Redis `appendfsync`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AppendFsync {
    /// No durable copy: a crash loses every unflushed move, and Redis
    /// comes back empty.
    #[default]
    No,
    /// The append-only file is fsynced every second: a crash loses the
    /// moves written since the last fsync (≤ 1 s), the rest is reloaded.
    Everysec,
}

/// `[database]`: a primary and `replicas` asynchronous (or semi-sync)
/// replicas that apply its binlog.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// Primary cores (writes, and reads when `reads_from = "primary"`).
    #[serde(default = "d_cores")]
    pub cores: u32,
    /// Core time of a single-row commit.
    #[serde(default = "d_write_cost")]
    pub write_cost: Dist,
    /// Core time of a flush batch: `batch_base + batch_per_row × rows`.
    #[serde(default = "d_batch_base")]
    pub batch_base: Dist,
    #[serde(default = "d_batch_per_row")]
    pub batch_per_row: SimDuration,
    /// Core time of a read: `read_cost + read_per_row × rows`.
    #[serde(default = "d_read_cost")]
    pub read_cost: Dist,
    #[serde(default = "d_read_per_row")]
    pub read_per_row: SimDuration,
    /// One-way latency client (socket server, flusher) ↔ database.
    #[serde(default = "d_network")]
    pub network: SimDuration,
    /// Number of replicas (0..=64).
    #[serde(default = "d_replicas")]
    pub replicas: u32,
    /// Cores of each replica that serve reads.
    #[serde(default = "d_cores")]
    pub read_cores: u32,
    /// Rows per second one applier thread applies.
    #[serde(default = "d_apply_rate")]
    pub apply_rate: Rate,
    /// Applier threads per replica: 1 is the single-threaded applier;
    /// more apply commits in parallel (in commit order, each on a thread).
    #[serde(default = "d_applier_threads")]
    pub applier_threads: u32,
    /// Binlog shipping latency primary → replica.
    #[serde(default = "d_ship_delay")]
    pub ship_delay: SimDuration,
    /// Semi-synchronous replication: a commit is acknowledged once a
    /// replica has received it (one round trip).
    #[serde(default)]
    pub semi_sync: bool,
    /// Without a replica's ack for this long, semi-sync falls back to
    /// asynchronous (MySQL `rpl_semi_sync_source_timeout`, 10 s).
    #[serde(default = "d_semi_sync_timeout")]
    pub semi_sync_timeout: SimDuration,
    /// From a primary crash to the promotion of the most caught-up replica
    /// (orchestrator-style detection and recovery).
    #[serde(default = "d_failover_detection")]
    pub failover_detection: SimDuration,
    /// Where reads go.
    #[serde(default)]
    pub reads_from: ReadsFrom,
}

fn d_cores() -> u32 {
    4
}
fn d_write_cost() -> Dist {
    Dist::constant(SimDuration::from_micros(200))
}
fn d_batch_base() -> Dist {
    Dist::constant(SimDuration::from_micros(500))
}
fn d_batch_per_row() -> SimDuration {
    SimDuration::from_micros(10)
}
fn d_read_cost() -> Dist {
    Dist::constant(SimDuration::from_micros(100))
}
fn d_read_per_row() -> SimDuration {
    SimDuration::from_micros(2)
}
fn d_replicas() -> u32 {
    1
}
fn d_apply_rate() -> Rate {
    Rate { per_s: 20_000.0 }
}
fn d_applier_threads() -> u32 {
    1
}
fn d_ship_delay() -> SimDuration {
    SimDuration::from_millis(1)
}
fn d_semi_sync_timeout() -> SimDuration {
    SimDuration::from_secs(10)
}
fn d_failover_detection() -> SimDuration {
    SimDuration::from_secs(10)
}

/// Where database reads (history, profiles, rehydration misses) go.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadsFrom {
    /// Round-robin over the running replicas (the primary if none runs):
    /// reads may be stale.
    #[default]
    Replicas,
    /// Every read on the primary: never stale.
    Primary,
}

/// Which database node a `db-crash` fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbTarget {
    /// Whichever node is the primary at the time of the fault.
    Primary,
    /// The node that started as replica `i` (0-based), whatever its role
    /// by then.
    Replica(u32),
}

/// JSON Schema: "primary" or a replica index.
impl schemars::JsonSchema for DbTarget {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DbTarget".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "\"primary\" or a replica index (0, 1, …).",
            "anyOf": [
                { "type": "string", "pattern": "^\\s*(primary|(replica-)?[0-9]+)\\s*$" },
                { "type": "integer", "minimum": 0 }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for DbTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DbTarget;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "\"primary\" or a replica index (0, 1, …)")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<DbTarget, E> {
                match s.trim() {
                    "primary" => Ok(DbTarget::Primary),
                    t => match t.strip_prefix("replica-").unwrap_or(t).parse::<u32>() {
                        Ok(i) => Ok(DbTarget::Replica(i)),
                        Err(_) => Err(E::custom(format!(
                            "unknown target `{t}`, expected \"primary\" or a replica index (0, 1, …)"
                        ))),
                    },
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DbTarget, E> {
                u32::try_from(v)
                    .map(DbTarget::Replica)
                    .map_err(|_| E::custom(format!("replica index {v} is too large")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DbTarget, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!("replica index {v} is negative"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for DbTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DbTarget::Primary => s.serialize_str("primary"),
            DbTarget::Replica(i) => s.serialize_u32(*i),
        }
    }
}

/// Semantic checks of `[cache]`, `[database]` and their faults.
pub(super) fn validate(sc: &Scenario, c: &mut Checker) {
    if let Some(k) = &sc.cache {
        if sc.database.is_none() {
            c.fail(
                "cache",
                "the cache writes moves behind to a database: add a [database] table",
            );
        }
        c.positive("cache.maxclients", k.maxclients as u64, "maxclients");
        c.positive("cache.pool_size", k.pool_size as u64, "pool_size");
        if k.pool_size > k.maxclients {
            c.fail(
                "cache.pool_size",
                format!(
                    "a pool of {} connections is above maxclients {}: no server could use the cache",
                    k.pool_size, k.maxclients
                ),
            );
        }
        if let Flush::Interval { interval } = &k.flush
            && interval.0 == 0
        {
            c.fail("cache.flush.interval", "must be longer than 0s");
        }
    }
    if let Some(d) = &sc.database {
        c.positive("database.cores", d.cores as u64, "cores");
        c.positive("database.read_cores", d.read_cores as u64, "read_cores");
        c.positive("database.applier_threads", d.applier_threads as u64, "applier_threads");
        if d.cores > 1024 || d.read_cores > 1024 {
            let field = if d.cores > 1024 {
                "database.cores"
            } else {
                "database.read_cores"
            };
            c.fail(field, "at most 1024 cores");
        }
        if d.applier_threads > MAX_APPLIER_THREADS {
            c.fail(
                "database.applier_threads",
                format!("at most {MAX_APPLIER_THREADS} applier threads"),
            );
        }
        if d.replicas > MAX_REPLICAS {
            c.fail("database.replicas", format!("at most {MAX_REPLICAS} replicas"));
        }
        if !(d.apply_rate.per_s > 0.0 && d.apply_rate.per_s.is_finite()) {
            c.fail(
                "database.apply_rate",
                "rows per second per applier thread must be above 0/s",
            );
        }
        if d.semi_sync_timeout.0 == 0 {
            c.fail("database.semi_sync_timeout", "must be longer than 0s");
        }
        if d.replicas == 0 {
            if d.reads_from == ReadsFrom::Replicas {
                c.fail(
                    "database.reads_from",
                    "reads go to replicas but there are none: set replicas >= 1 or reads_from = \"primary\"",
                );
            }
            if d.semi_sync {
                c.fail(
                    "database.semi_sync",
                    "semi-sync needs at least one replica to acknowledge",
                );
            }
        }
    }
    for (i, fault) in sc.faults.iter().enumerate() {
        let f = |k: &str| format!("fault[{i}].{k}");
        let (at, restart_after) = match fault {
            Fault::CacheCrash { at, restart_after } => {
                if sc.cache.is_none() {
                    c.fail(f("kind"), "a cache-crash needs a [cache] table");
                }
                (at, restart_after)
            }
            Fault::DbCrash {
                target,
                at,
                restart_after,
            } => {
                match (&sc.database, target) {
                    (None, _) => c.fail(f("kind"), "a db-crash needs a [database] table"),
                    (Some(d), DbTarget::Replica(r)) if *r >= d.replicas => c.fail(
                        f("target"),
                        if d.replicas == 0 {
                            format!("replica {r} does not exist: there are no replicas")
                        } else {
                            format!(
                                "replica {r} does not exist: replicas are numbered 0..={}",
                                d.replicas - 1
                            )
                        },
                    ),
                    _ => {}
                }
                (at, restart_after)
            }
            _ => continue,
        };
        if *at >= sc.duration {
            c.fail(
                f("at"),
                format!("{at} is not before the end of the run ({})", sc.duration),
            );
        }
        if *restart_after == Some(SimDuration::ZERO) {
            c.fail(f("restart_after"), "must be longer than 0s (or left out: no restart)");
        }
    }
}
