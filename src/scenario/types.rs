//! The scenario's types: what a scenario file may say, with defaults.
//!
//! Every table denies unknown keys. Defaults follow HAProxy (`inter 2s`,
//! `fall 3`, `rise 2`, `retries 3`, `timeout connect 5s`) unless stated.

use serde::{Deserialize, Serialize};

use crate::dist::{CountDist, Dist};
use crate::time::SimDuration;
use crate::units::Rate;

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Names the output folder; defaults to the file name without extension.
    #[serde(default)]
    pub name: String,
    /// Free text shown in the report.
    #[serde(default)]
    pub description: String,
    /// Master seed: with the replication index it seeds every random stream.
    #[serde(default = "d_seed")]
    pub seed: u64,
    /// Simulated length of one replication.
    pub duration: SimDuration,
    /// Metrics before this time are not counted (the system fills up).
    #[serde(default)]
    pub warmup: SimDuration,
    /// Independent replications (confidence intervals need at least 2).
    #[serde(default = "d_replications")]
    pub replications: u32,
    /// Interval of `timeseries.csv` rows and chart points.
    #[serde(default = "d_sample_interval")]
    pub sample_interval: SimDuration,
    /// Hard bound on events per replication; a run that hits it is flagged
    /// as truncated.
    #[serde(default = "d_max_events")]
    pub max_events: u64,
    pub servers: Servers,
    pub balancer: Balancer,
    #[serde(rename = "population")]
    pub populations: Vec<Population>,
    #[serde(rename = "fault", default)]
    pub faults: Vec<Fault>,
    /// Game traffic (moves); without it only connections are simulated.
    #[serde(default)]
    pub game: Option<Game>,
    /// Pub/sub between socket servers for rooms that span servers.
    #[serde(default)]
    pub relay: Option<Relay>,
    /// Redis that moves are written behind to (see `scenario::storage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<super::storage::Cache>,
    /// Database primary and replicas (see `scenario::storage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<super::storage::Database>,
    /// The web tier: nginx and app servers for `web` populations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<super::web::Web>,
}

impl Scenario {
    /// Every server that may ever run: the initial `servers.count` plus
    /// those added by `scale-out` faults (server-template slots).
    pub fn max_servers(&self) -> u32 {
        let added: u64 = self
            .faults
            .iter()
            .map(|f| match f {
                Fault::ScaleOut { count, .. } => *count as u64,
                _ => 0,
            })
            .sum();
        (self.servers.count as u64 + added).min(u32::MAX as u64) as u32
    }
}

/// How players play.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Game {
    /// Time a player thinks after receiving the opponent's move.
    pub think_time: Dist,
    /// Moves per game (both players together).
    pub moves: CountDist,
    /// Pause before the same players start a new game.
    #[serde(default = "d_rematch")]
    pub rematch_delay: SimDuration,
}

fn d_rematch() -> SimDuration {
    SimDuration::from_secs(10)
}

/// The relay between socket servers.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Relay {
    /// Kafka: producer batching (`linger`), a partition (room hash) with a
    /// throughput limit, broker append + replication (acks=all), consumer fetch.
    Kafka {
        /// Producer `linger.ms` (Kafka 4 default: 5 ms).
        #[serde(default = "d_linger")]
        linger: SimDuration,
        #[serde(default = "d_partitions")]
        partitions: u32,
        /// Messages per second one partition can append.
        #[serde(default = "d_partition_rate")]
        partition_rate: Rate,
        /// Broker append and replication to the ISR (acks=all): heavy-tailed.
        #[serde(default = "d_append")]
        append: Dist,
        /// Consumer fetch delay once committed.
        #[serde(default = "d_fetch")]
        fetch: Dist,
        /// One-way network latency server ↔ broker.
        #[serde(default = "d_relay_net")]
        network: SimDuration,
    },
    /// Redis pub/sub: one single-threaded Redis, a publish costs `publish_cost`
    /// plus `per_subscriber_cost` for each subscribing server; at-most-once.
    Redis {
        #[serde(default = "d_redis_publish")]
        publish_cost: Dist,
        #[serde(default = "d_redis_per_sub")]
        per_subscriber_cost: Dist,
        #[serde(default = "d_relay_net")]
        network: SimDuration,
    },
}

fn d_linger() -> SimDuration {
    SimDuration::from_millis(5)
}
fn d_partitions() -> u32 {
    1
}
fn d_partition_rate() -> Rate {
    Rate { per_s: 50_000.0 }
}
fn d_append() -> Dist {
    Dist::lognormal(SimDuration::from_millis(2), 0.8)
}
fn d_fetch() -> Dist {
    Dist::lognormal(SimDuration::from_millis(1), 0.5)
}
fn d_relay_net() -> SimDuration {
    SimDuration::from_micros(250)
}
fn d_redis_publish() -> Dist {
    Dist::constant(SimDuration::from_micros(5))
}
fn d_redis_per_sub() -> Dist {
    Dist::constant(SimDuration::from_micros(2))
}

fn d_seed() -> u64 {
    1
}
fn d_replications() -> u32 {
    5
}
fn d_sample_interval() -> SimDuration {
    SimDuration::from_secs(1)
}
fn d_max_events() -> u64 {
    2_000_000_000
}

/// The socket servers (all alike).
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Servers {
    pub count: u32,
    /// The process's own connection cap (10 000 in the seed deployment).
    pub max_connections: u32,
    /// Cores that accept and upgrade connections.
    #[serde(default = "d_cores")]
    pub cores: u32,
    /// Core time per accepted connection (TCP accept + WebSocket upgrade + auth).
    #[serde(default = "d_connect_cost")]
    pub connect_cost: Dist,
    /// One-way latency between the balancer and a server (same data centre).
    #[serde(default = "d_backend_latency")]
    pub backend_latency: SimDuration,
    /// Core time to receive a move and validate it against the room state.
    #[serde(default = "d_receive_cost")]
    pub receive_cost: Dist,
    /// Core time to send one message to one connection (fan-out is per connection).
    #[serde(default = "d_send_cost")]
    pub send_cost: Dist,
    /// Core time to publish a message to the relay.
    #[serde(default = "d_relay_cost")]
    pub publish_cost: Dist,
    /// Core time to take a message from the relay.
    #[serde(default = "d_relay_cost")]
    pub consume_cost: Dist,
    /// Core time per move of game history when a member (re)joins a room
    /// and is sent the current state.
    #[serde(default = "d_sync_cost")]
    pub sync_cost_per_move: SimDuration,
}

fn d_receive_cost() -> Dist {
    Dist::constant(SimDuration::from_micros(100))
}
fn d_send_cost() -> Dist {
    Dist::constant(SimDuration::from_micros(10))
}
fn d_relay_cost() -> Dist {
    Dist::constant(SimDuration::from_micros(20))
}
fn d_sync_cost() -> SimDuration {
    SimDuration::from_micros(2)
}

fn d_cores() -> u32 {
    1
}
fn d_connect_cost() -> Dist {
    Dist::constant(SimDuration::from_micros(500))
}
fn d_backend_latency() -> SimDuration {
    SimDuration::from_micros(250)
}

/// Balancing strategies (HAProxy `balance` algorithms).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Strategy {
    RoundRobin,
    StaticRr,
    LeastConn,
    First,
    Source,
    /// Hash of the room id (HAProxy `uri` on a per-room URL).
    Room,
    /// HAProxy's `random`: the same as `random(2)` (two draws, the less
    /// loaded wins), HAProxy's default number of draws.
    Random,
    /// Power of d choices: the least loaded of d random servers;
    /// `random(1)` is a single weighted random draw.
    RandomD(u32),
}

pub const STRATEGY_CHOICES: &str = "roundrobin, static-rr, leastconn, first, source, room, uri, random, random(d)";

impl Strategy {
    pub fn parse(s: &str) -> Result<Strategy, String> {
        let t = s.trim();
        Ok(match t {
            "roundrobin" => Strategy::RoundRobin,
            "static-rr" => Strategy::StaticRr,
            "leastconn" => Strategy::LeastConn,
            "first" => Strategy::First,
            "source" => Strategy::Source,
            "room" | "uri" => Strategy::Room,
            "random" => Strategy::Random,
            _ => {
                if let Some(d) = t.strip_prefix("random(").and_then(|r| r.strip_suffix(')')) {
                    match d.trim().parse::<u64>() {
                        Ok(0) => return Err(format!("`{t}`: d in random(d) must be at least 1")),
                        Ok(d) => match u32::try_from(d) {
                            Ok(d) => Strategy::RandomD(d),
                            Err(_) => {
                                return Err(format!(
                                    "`{t}` draws more servers than a scenario can have (servers.count is at most 100000): d in random(d) is at most the server count"
                                ));
                            }
                        },
                        Err(_) => {
                            return Err(format!(
                                "`{t}`: d in random(d) must be a whole number from 1 to the server count"
                            ));
                        }
                    }
                } else {
                    return Err(format!("unknown strategy `{t}`, expected one of {STRATEGY_CHOICES}"));
                }
            }
        })
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Strategy::RoundRobin => write!(f, "roundrobin"),
            Strategy::StaticRr => write!(f, "static-rr"),
            Strategy::LeastConn => write!(f, "leastconn"),
            Strategy::First => write!(f, "first"),
            Strategy::Source => write!(f, "source"),
            Strategy::Room => write!(f, "room"),
            Strategy::Random => write!(f, "random"),
            Strategy::RandomD(d) => write!(f, "random({d})"),
        }
    }
}

/// JSON Schema: one of the strategy names, or `random(d)`.
impl schemars::JsonSchema for Strategy {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Strategy".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "HAProxy balance algorithm: roundrobin, static-rr, leastconn, first, source, room, uri, random (= random(2)), random(d).",
            "type": "string",
            "anyOf": [
                { "enum": ["roundrobin", "static-rr", "leastconn", "first", "source", "room", "uri", "random"] },
                { "pattern": "^\\s*random\\(\\s*[0-9]+\\s*\\)\\s*$" }
            ]
        })
    }
}

impl<'de> Deserialize<'de> for Strategy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Strategy::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Strategy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How a hash strategy maps keys to servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum HashType {
    /// `hash % total weight` over the usable servers: remaps most keys when
    /// the set changes (HAProxy's default).
    #[default]
    MapBased,
    /// A hash ring: only the lost server's keys move.
    Consistent,
}

/// The balancer cluster: HAProxy settings shared by every node, and the
/// cluster's shape (nodes, VIP failover, TLS, backend updater).
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Balancer {
    /// HAProxy's `balance`: the algorithm choosing a server.
    #[serde(rename = "balance")]
    pub strategy: Strategy,
    #[serde(default)]
    pub hash_type: HashType,
    /// Server weights (1..=256), one per server; default all 1.
    #[serde(default)]
    pub weights: Option<Vec<u32>>,
    /// Per-server connection limit at the balancer; default the server's
    /// `max_connections`.
    #[serde(default)]
    pub maxconn: Option<u32>,
    /// Bound on each server's queue (and on the backend queue, per server).
    /// Absent or `0`: unbounded but for `timeout_queue`, as HAProxy's
    /// `maxqueue 0` (its default).
    #[serde(default)]
    pub maxqueue: Option<u32>,
    /// `false`: no queue at all, a request finding every eligible server
    /// at `maxconn` is refused at once (a loss system; HAProxy has no such
    /// setting). Before issue 13 this was spelt `maxqueue = 0`.
    #[serde(default = "d_true")]
    pub queue: bool,
    /// How long a request may wait in a queue before a 503.
    #[serde(default = "d_timeout_connect")]
    pub timeout_queue: SimDuration,
    /// How long a connection attempt to a silent (lost) host may take.
    #[serde(default = "d_timeout_connect")]
    pub timeout_connect: SimDuration,
    /// Retries of a failed connection to a server, each after a 1 s
    /// turn-around (HAProxy: min(timeout connect, 1s)).
    #[serde(default = "d_retries")]
    pub retries: u32,
    /// `option redispatch`: the last retry goes to another server.
    #[serde(default)]
    pub redispatch: bool,
    /// A returning server's weight ramps from 0 to full over this time
    /// (0 = off).
    #[serde(default)]
    pub slowstart: SimDuration,
    #[serde(default)]
    pub health_check: HealthCheck,
    /// Balancer nodes (HAProxy instances), each with its own server state,
    /// health checks, queues, `node_maxconn` and `cores`.
    #[serde(default = "d_nodes")]
    pub nodes: u32,
    /// How clients reach the nodes.
    #[serde(default)]
    pub mode: ClusterMode,
    /// HAProxy's global `maxconn` per node (client connections it holds,
    /// queued ones included); beyond it a node turns connections away.
    /// Absent: no limit.
    #[serde(default)]
    pub node_maxconn: Option<u32>,
    /// Threads per node (HAProxy's `nbthread`), each on its own core;
    /// they run TLS handshakes.
    #[serde(rename = "nbthread", default = "d_cores")]
    pub cores: u32,
    /// How a failed node's virtual IP moves to a surviving node.
    #[serde(default)]
    pub failover: Failover,
    /// TLS termination on the nodes; absent: plain TCP (no handshake cost).
    #[serde(default)]
    pub tls: Option<Tls>,
    /// Servers added or removed reach the nodes' server lists only at the
    /// next tick of the backend updater (DNS / service discovery).
    #[serde(default = "d_update_interval")]
    pub update_interval: SimDuration,
}

fn d_nodes() -> u32 {
    1
}
fn d_update_interval() -> SimDuration {
    SimDuration::from_secs(30)
}

/// How clients are spread over balancer nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterMode {
    /// One virtual IP held by node 0; the others stand by.
    #[default]
    ActivePassive,
    /// One virtual IP per node, clients spread over them (DNS round robin).
    ActiveActive,
}

/// Virtual-IP failover.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Failover {
    /// keepalived (VRRPv2): a backup takes the VIP after
    /// `3·advert_int + (256 − priority)/256 · advert_int` without adverts.
    Keepalived {
        #[serde(default = "d_advert")]
        advert_int: SimDuration,
        /// The backup's priority (1..=254; keepalived's default is 100).
        #[serde(default = "d_priority")]
        priority: u32,
    },
    /// Corosync/Pacemaker: membership is lost after `token`, a new one forms
    /// after `consensus` (default 1.2 × token), then the IP resource starts.
    Pacemaker {
        #[serde(default = "d_token")]
        token: SimDuration,
        #[serde(default)]
        consensus: Option<SimDuration>,
        #[serde(default)]
        resource_start: SimDuration,
    },
}

impl Default for Failover {
    fn default() -> Self {
        Failover::Keepalived {
            advert_int: d_advert(),
            priority: d_priority(),
        }
    }
}

impl Failover {
    /// Time from a node's failure to its VIP answering on another node.
    pub fn takeover(&self) -> SimDuration {
        match self {
            Failover::Keepalived { advert_int, priority } => {
                let skew = advert_int.0 as u128 * (256 - (*priority).min(255)) as u128 / 256;
                SimDuration(3 * advert_int.0 + skew as u64)
            }
            Failover::Pacemaker {
                token,
                consensus,
                resource_start,
            } => *token + consensus.unwrap_or(SimDuration(token.0 / 5 * 6)) + *resource_start,
        }
    }
}

fn d_advert() -> SimDuration {
    SimDuration::from_secs(1)
}
fn d_priority() -> u32 {
    100
}
fn d_token() -> SimDuration {
    SimDuration::from_secs(3)
}

/// Key type of the certificate, which sets the cost of a full handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TlsKey {
    /// ≈ 2 500 full handshakes/s per core (`openssl speed rsa2048` signs).
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// ≈ 12 000 full handshakes/s per core (`openssl speed ecdsap256`).
    EcdsaP256,
}

impl TlsKey {
    pub fn handshakes_per_s_per_core(self) -> f64 {
        match self {
            TlsKey::Rsa2048 => 2_500.0,
            TlsKey::EcdsaP256 => 12_000.0,
        }
    }
}

/// TLS termination on the balancer nodes.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub key: TlsKey,
    /// Overrides the key type's full-handshake rate per core.
    #[serde(default)]
    pub full_rate: Option<Rate>,
    /// Fraction of reconnections to the same node that resume their session
    /// (session cache / tickets); first connections and connections to
    /// another node always do a full handshake.
    #[serde(default)]
    pub resumption_ratio: f64,
    /// Cost of a resumed handshake relative to a full one (no private-key
    /// operation: symmetric crypto and a few messages).
    #[serde(default = "d_resumed_cost")]
    pub resumed_cost_ratio: f64,
}

fn d_resumed_cost() -> f64 {
    0.1
}

impl Tls {
    /// Core time of one full handshake.
    pub fn full_cost(&self) -> SimDuration {
        let rate = self
            .full_rate
            .map(|r| r.per_s)
            .unwrap_or(self.key.handshakes_per_s_per_core());
        SimDuration::from_secs_f64(1.0 / rate)
    }
    pub fn resumed_cost(&self) -> SimDuration {
        SimDuration::from_secs_f64(self.full_cost().as_secs_f64() * self.resumed_cost_ratio)
    }
}

fn d_timeout_connect() -> SimDuration {
    SimDuration::from_secs(5)
}
fn d_retries() -> u32 {
    3
}

/// HAProxy `check` parameters.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    #[serde(default = "d_true")]
    pub enabled: bool,
    #[serde(default = "d_inter")]
    pub inter: SimDuration,
    #[serde(default = "d_fall")]
    pub fall: u32,
    #[serde(default = "d_rise")]
    pub rise: u32,
    /// Check timeout; default `inter` (HAProxy: `timeout check` or inter).
    #[serde(default)]
    pub timeout: Option<SimDuration>,
    /// Interval while a server is changing state; default `inter`.
    #[serde(default)]
    pub fastinter: Option<SimDuration>,
    /// Interval while a server is DOWN; default `inter`.
    #[serde(default)]
    pub downinter: Option<SimDuration>,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            enabled: true,
            inter: d_inter(),
            fall: d_fall(),
            rise: d_rise(),
            timeout: None,
            fastinter: None,
            downinter: None,
        }
    }
}

impl HealthCheck {
    pub fn timeout(&self) -> SimDuration {
        self.timeout.unwrap_or(self.inter)
    }
    pub fn fastinter(&self) -> SimDuration {
        self.fastinter.unwrap_or(self.inter)
    }
    pub fn downinter(&self) -> SimDuration {
        self.downinter.unwrap_or(self.inter)
    }
}

fn d_true() -> bool {
    true
}
fn d_inter() -> SimDuration {
    SimDuration::from_secs(2)
}
fn d_fall() -> u32 {
    3
}
fn d_rise() -> u32 {
    2
}

/// What a population's clients do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Player,
    Spectator,
    Web,
}

/// One group of clients with a common behaviour.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Population {
    pub name: String,
    pub role: Role,
    pub arrival: Arrival,
    /// How long a client stays connected (from its first accepted
    /// connection; reconnections continue the same session).
    pub session: Dist,
    /// Client–balancer round-trip time, drawn once per client.
    #[serde(default = "d_rtt")]
    pub rtt: Dist,
    /// Number of distinct source addresses (NAT): clients share them
    /// uniformly. Default: every client has its own.
    #[serde(default)]
    pub source_ips: Option<u32>,
    /// Players per room (2 for chess); players are matched in arrival order.
    #[serde(default = "d_room_size")]
    pub room_size: u32,
    /// Spectators: which room they watch.
    #[serde(default)]
    pub watch: Watch,
    /// A client whose host vanished notices after this long (socket.io v4:
    /// pingInterval 25 s + pingTimeout 20 s).
    #[serde(default = "d_heartbeat")]
    pub heartbeat_timeout: SimDuration,
    #[serde(default)]
    pub reconnect: Reconnect,
    /// How long a connection attempt may go unanswered before the client
    /// gives up on it and applies its reconnect policy (socket.io's
    /// `timeout`: 20 s). SYNs to an unowned VIP are retransmitted after
    /// 1 s, 2 s, 4 s, … (Linux's initial RTO doubling) until then.
    #[serde(default = "d_connect_timeout")]
    pub connect_timeout: SimDuration,
    /// `web` clients: think time between requests and the static share.
    #[serde(default)]
    pub browsing: super::web::Browsing,
}

fn d_connect_timeout() -> SimDuration {
    SimDuration::from_secs(20)
}

fn d_rtt() -> Dist {
    Dist::constant(SimDuration::from_millis(40))
}
fn d_room_size() -> u32 {
    2
}
fn d_heartbeat() -> SimDuration {
    SimDuration::from_secs(45)
}

/// How spectators pick a room.
#[derive(Clone, Debug, Deserialize, Serialize, Default, PartialEq, schemars::JsonSchema)]
#[serde(tag = "pick", rename_all = "lowercase", from = "WatchTable")]
pub enum Watch {
    /// Everyone watches room 0.
    #[default]
    Featured,
    /// Room `k` (1-based rank) with probability ∝ 1/k^exponent.
    Zipf { rooms: u32, exponent: f64 },
}

/// What a `watch` table may say. serde lets a unit variant of an
/// internally tagged enum ignore unknown keys (`{ pick = "featured", room =
/// 3 }` would load silently): an empty struct variant denies them.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(tag = "pick", rename_all = "lowercase", deny_unknown_fields)]
enum WatchTable {
    Featured {},
    Zipf { rooms: u32, exponent: f64 },
}

impl From<WatchTable> for Watch {
    fn from(t: WatchTable) -> Watch {
        match t {
            WatchTable::Featured {} => Watch::Featured,
            WatchTable::Zipf { rooms, exponent } => Watch::Zipf { rooms, exponent },
        }
    }
}

/// Arrival processes.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(tag = "process", rename_all = "lowercase", deny_unknown_fields)]
pub enum Arrival {
    /// Poisson arrivals at `rate` from `start` until `stop` (default: the
    /// end of the run), at most `max_clients`.
    Poisson {
        rate: Rate,
        #[serde(default)]
        start: SimDuration,
        #[serde(default)]
        stop: Option<SimDuration>,
        #[serde(default)]
        max_clients: Option<u64>,
    },
    /// `target` clients arriving evenly (jittered) over `over`, from `start`:
    /// the connected count ramps linearly.
    Ramp {
        target: u64,
        over: SimDuration,
        #[serde(default)]
        start: SimDuration,
    },
    /// A flash crowd: `count` clients at `at`, spread uniformly over `over`.
    Step {
        count: u64,
        at: SimDuration,
        #[serde(default)]
        over: SimDuration,
    },
    /// Connect times replayed from a CSV column (one client per row),
    /// e.g. taken from a production access log.
    Trace {
        file: std::path::PathBuf,
        column: String,
        /// Unit of the numbers in the column: "ns", "us", "ms", "s".
        #[serde(default = "d_trace_unit")]
        unit: String,
        /// Filled in by the loader: sorted arrival offsets.
        #[serde(skip)]
        times: std::sync::Arc<Vec<SimDuration>>,
    },
    /// Connections replayed from an HAProxy log (`option tcplog` or
    /// `option httplog`, with or without a syslog prefix): one client per
    /// line, arriving at its accept date (the first at `start`), streamed.
    #[serde(rename = "haproxy-log")]
    HaproxyLog {
        file: std::path::PathBuf,
        /// Multiplies the gaps between accept dates (0.5: twice as fast).
        #[serde(default = "d_time_scale")]
        time_scale: f64,
        /// When the log's first connection arrives.
        #[serde(default)]
        start: SimDuration,
        /// Each client's session lasts its line's total time (`Tt`, `Ta` in
        /// HTTP logs: a WebSocket tunnel's lifetime) instead of `session`.
        #[serde(default)]
        sessions: bool,
        /// Each client's source address (for `source` hashing) is its
        /// line's client address.
        #[serde(default)]
        sources: bool,
        /// Skip malformed lines (counted) instead of failing on the first.
        #[serde(default)]
        lenient: bool,
        /// Filled in by the loader.
        #[serde(skip)]
        replay: std::sync::Arc<super::haproxy_log::LogReplay>,
    },
}

fn d_time_scale() -> f64 {
    1.0
}

fn d_trace_unit() -> String {
    "s".to_string()
}

/// Jitter of exponential backoff (AWS "Exponential Backoff and Jitter").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Jitter {
    #[default]
    None,
    Full,
    Equal,
    Decorrelated,
}

/// What a client does after a refusal or a dropped connection.
#[derive(Clone, Debug, Deserialize, Serialize, Default, schemars::JsonSchema)]
#[serde(tag = "policy", rename_all = "lowercase", from = "ReconnectTable")]
pub enum Reconnect {
    /// Give up at once.
    #[default]
    None,
    Fixed {
        delay: SimDuration,
        #[serde(default = "d_attempts")]
        max_attempts: u32,
    },
    Exponential {
        base: SimDuration,
        cap: SimDuration,
        #[serde(default)]
        jitter: Jitter,
        #[serde(default = "d_attempts")]
        max_attempts: u32,
    },
}

/// What a `reconnect` table may say (an empty struct variant for `none`,
/// so that it denies unknown keys: see [`WatchTable`]).
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(tag = "policy", rename_all = "lowercase", deny_unknown_fields)]
enum ReconnectTable {
    None {},
    Fixed {
        delay: SimDuration,
        #[serde(default = "d_attempts")]
        max_attempts: u32,
    },
    Exponential {
        base: SimDuration,
        cap: SimDuration,
        #[serde(default)]
        jitter: Jitter,
        #[serde(default = "d_attempts")]
        max_attempts: u32,
    },
}

impl From<ReconnectTable> for Reconnect {
    fn from(t: ReconnectTable) -> Reconnect {
        match t {
            ReconnectTable::None {} => Reconnect::None,
            ReconnectTable::Fixed { delay, max_attempts } => Reconnect::Fixed { delay, max_attempts },
            ReconnectTable::Exponential {
                base,
                cap,
                jitter,
                max_attempts,
            } => Reconnect::Exponential {
                base,
                cap,
                jitter,
                max_attempts,
            },
        }
    }
}

fn d_attempts() -> u32 {
    10
}

/// How a crashed server dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CrashMode {
    /// The process dies, the kernel answers with RST: clients and checks
    /// notice at once.
    #[default]
    Process,
    /// The host vanishes: clients notice after their heartbeat timeout,
    /// connections and checks time out.
    Host,
}

/// The links a network slowdown can hit: one group per tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Link {
    /// Clients' own network: every half round trip of a player, spectator
    /// or web session (to the VIP, and through the tunnel to its server).
    Clients,
    /// Balancer nodes to socket servers (`servers.backend_latency`).
    Servers,
    /// Balancer nodes to nginx, and nginx to the app servers
    /// (`web.backend_latency`).
    Web,
    /// Socket servers to Redis (`cache.network`).
    Cache,
    /// Socket servers, the flusher and app servers to MySQL, and the
    /// primary to its replicas (`database.network`).
    Database,
}

impl Link {
    /// The scenario's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Link::Clients => "clients",
            Link::Servers => "servers",
            Link::Web => "web",
            Link::Cache => "cache",
            Link::Database => "database",
        }
    }

    /// Its name on the timeline (`clients-network`…).
    pub fn component(self) -> String {
        format!("{}-network", self.name())
    }
}

/// A timed fault.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// A socket server crashes at `at` and, if `restart_after` is given,
    /// comes back (empty) that much later.
    Crash {
        server: u32,
        at: SimDuration,
        #[serde(default)]
        mode: CrashMode,
        #[serde(default)]
        restart_after: Option<SimDuration>,
    },
    /// A balancer node fails: every tunnel through it drops, and its VIP
    /// moves to a surviving node after the failover takeover time.
    BalancerCrash {
        node: u32,
        at: SimDuration,
        /// `process`: clients get a RST at once; `host`: they notice after
        /// their heartbeat timeout.
        #[serde(default)]
        mode: CrashMode,
        #[serde(default)]
        restart_after: Option<SimDuration>,
    },
    /// `count` new servers boot at `at` (taking `boot` to start); the
    /// balancers add them at the next backend-updater tick.
    ScaleOut {
        count: u32,
        at: SimDuration,
        #[serde(default)]
        boot: SimDuration,
    },
    /// The `count` highest-numbered running servers are deregistered at `at`;
    /// the balancers stop sending them connections at the next updater
    /// tick, then they close their connections gracefully after `drain`.
    ScaleIn {
        count: u32,
        at: SimDuration,
        #[serde(default = "d_drain")]
        drain: SimDuration,
    },
    /// A deploy: servers restarted one at a time in id order, starting at
    /// `at`. Each is set to drain on every balancer node (no new
    /// connections), closes its connections after `drain`, is down for
    /// `restart_time`, is set ready again, and the next one starts `pause`
    /// after that.
    RollingRestart {
        at: SimDuration,
        #[serde(default = "d_drain")]
        drain: SimDuration,
        #[serde(default = "d_restart_time")]
        restart_time: SimDuration,
        #[serde(default = "d_pause")]
        pause: SimDuration,
    },
    /// The Redis cache crashes at `at` (losing what `appendfsync` does not
    /// keep) and, if `restart_after` is given, comes back that much later.
    CacheCrash {
        at: SimDuration,
        #[serde(default)]
        restart_after: Option<SimDuration>,
    },
    /// A database node crashes: `target = "primary"` (a failover follows)
    /// or a replica index. With `restart_after` it comes back (a former
    /// primary that was replaced rejoins as a replica).
    DbCrash {
        target: super::storage::DbTarget,
        at: SimDuration,
        #[serde(default)]
        restart_after: Option<SimDuration>,
    },
    /// An nginx server (`[web] nginx`, numbered from 0) crashes at `at`:
    /// the requests it holds fail, and the balancer sends it no new ones
    /// until it is back `restart_after` later (if given).
    NginxCrash {
        node: u32,
        at: SimDuration,
        #[serde(default)]
        restart_after: Option<SimDuration>,
    },
    /// An app server (`[web] app`, numbered from 0) crashes at `at`: the
    /// requests in its workers and backlog fail (nginx answers 502), and
    /// nginx sends it no new ones until it is back `restart_after` later
    /// (if given).
    AppCrash {
        server: u32,
        at: SimDuration,
        #[serde(default)]
        restart_after: Option<SimDuration>,
    },
    /// A network slowdown: from `at`, for `for`, every hop over `tier`'s
    /// links takes `latency` longer and loses a `loss` fraction of its
    /// packets, which TCP sends again after its retransmission timeout
    /// (`crate::model::network`).
    Slowdown {
        tier: Link,
        at: SimDuration,
        #[serde(rename = "for")]
        for_: SimDuration,
        #[serde(default)]
        latency: SimDuration,
        #[serde(default)]
        loss: f64,
    },
}

fn d_drain() -> SimDuration {
    SimDuration::from_secs(30)
}
fn d_restart_time() -> SimDuration {
    SimDuration::from_secs(10)
}
fn d_pause() -> SimDuration {
    SimDuration::from_secs(10)
}

impl Fault {
    /// The fault in a few words: "server-7 crash (process) at 20m, restart
    /// after 60s".
    pub fn describe(&self) -> String {
        let at = self.at();
        let restart = |r: &Option<SimDuration>| match r {
            Some(d) => format!(" at {at}, restart after {d}"),
            None => format!(" at {at}"),
        };
        let mode = |m: &CrashMode| match m {
            CrashMode::Process => "process",
            CrashMode::Host => "host",
        };
        match self {
            Fault::Crash {
                server,
                mode: m,
                restart_after,
                ..
            } => format!("server-{server} crash ({}){}", mode(m), restart(restart_after)),
            Fault::BalancerCrash {
                node,
                mode: m,
                restart_after,
                ..
            } => format!("balancer-{node} crash ({}){}", mode(m), restart(restart_after)),
            Fault::ScaleOut { count, .. } => format!("scale-out by {count} at {at}"),
            Fault::ScaleIn { count, .. } => format!("scale-in by {count} at {at}"),
            Fault::RollingRestart { .. } => format!("rolling restart at {at}"),
            Fault::CacheCrash { restart_after, .. } => format!("Redis crash{}", restart(restart_after)),
            Fault::DbCrash {
                target, restart_after, ..
            } => match target {
                super::storage::DbTarget::Primary => format!("database primary crash{}", restart(restart_after)),
                super::storage::DbTarget::Replica(k) => {
                    format!("database replica {k} crash{}", restart(restart_after))
                }
            },
            Fault::NginxCrash {
                node, restart_after, ..
            } => format!("nginx-{node} crash{}", restart(restart_after)),
            Fault::AppCrash {
                server, restart_after, ..
            } => format!("app-{server} crash{}", restart(restart_after)),
            Fault::Slowdown {
                tier,
                for_,
                latency,
                loss,
                ..
            } => {
                let pct = format!("{:.3}", loss * 100.0);
                let pct = pct.trim_end_matches('0').trim_end_matches('.');
                format!(
                    "{} network slowdown at {at} for {for_} (+{latency} one way, {pct} % loss)",
                    tier.name()
                )
            }
        }
    }

    /// The fault's `kind` as a scenario names it ("crash", "balancer-crash"…).
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Crash { .. } => "crash",
            Fault::BalancerCrash { .. } => "balancer-crash",
            Fault::ScaleOut { .. } => "scale-out",
            Fault::ScaleIn { .. } => "scale-in",
            Fault::RollingRestart { .. } => "rolling-restart",
            Fault::CacheCrash { .. } => "cache-crash",
            Fault::DbCrash { .. } => "db-crash",
            Fault::NginxCrash { .. } => "nginx-crash",
            Fault::AppCrash { .. } => "app-crash",
            Fault::Slowdown { .. } => "slowdown",
        }
    }

    /// When the fault starts.
    pub fn at(&self) -> SimDuration {
        match self {
            Fault::Crash { at, .. }
            | Fault::BalancerCrash { at, .. }
            | Fault::ScaleOut { at, .. }
            | Fault::ScaleIn { at, .. }
            | Fault::RollingRestart { at, .. }
            | Fault::CacheCrash { at, .. }
            | Fault::DbCrash { at, .. }
            | Fault::NginxCrash { at, .. }
            | Fault::AppCrash { at, .. }
            | Fault::Slowdown { at, .. } => *at,
        }
    }
}
