//! The one definition of every metric wscap writes to `summary.csv`: its
//! name, unit, tier, window (which set of things it counts, and when),
//! whether lower is better, and a sentence a capacity planner understands.
//!
//! [`METRICS`] is in the order the columns appear in `summary.csv`, and
//! [`MetricKey`] (generated with it by one macro) names each row: the tiers
//! set their metrics by key (`sim::Tier::metrics`) and
//! `metrics::summary::MetricSink` writes them in this order.
//! [`markdown_table`] renders it for the README and the reports;
//! [`columns_csv`] is written beside `summary.csv` as `summary_columns.csv`.
//! The README's metric table is generated from here: after editing this
//! table, run `WSCAP_WRITE_README=1 cargo test readme_metric_table`.

/// What a metric's number is measured in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    /// A whole number of things (attempts, moves, commits…).
    Count,
    /// One count divided by another (0..1).
    Ratio,
    /// Milliseconds.
    Ms,
    /// Seconds.
    Seconds,
    /// A busy share or a share of a latency, 0..1.
    Fraction,
    /// Things per second.
    PerSecond,
    /// Database rows per second.
    RowsPerSecond,
    /// Seconds gained per second (a lag's slope).
    SecondsPerSecond,
    /// A whole number of open connections.
    Connections,
    /// 0 or 1.
    Flag,
    /// Dimensionless (e.g. Jain's index, max/mean).
    Index,
}

impl Unit {
    pub const ALL: [Unit; 11] = [
        Unit::Count,
        Unit::Ratio,
        Unit::Ms,
        Unit::Seconds,
        Unit::Fraction,
        Unit::PerSecond,
        Unit::RowsPerSecond,
        Unit::SecondsPerSecond,
        Unit::Connections,
        Unit::Flag,
        Unit::Index,
    ];

    /// The unit as printed in tables and `summary_columns.csv`.
    pub fn label(self) -> &'static str {
        match self {
            Unit::Count => "count",
            Unit::Ratio => "ratio",
            Unit::Ms => "ms",
            Unit::Seconds => "s",
            Unit::Fraction => "fraction",
            Unit::PerSecond => "/s",
            Unit::RowsPerSecond => "rows/s",
            Unit::SecondsPerSecond => "s/s",
            Unit::Connections => "connections",
            Unit::Flag => "0/1",
            Unit::Index => "index",
        }
    }

    /// A replication's value is a whole number (reports print it as an
    /// integer; means over replications are not).
    pub fn is_integer(self) -> bool {
        matches!(self, Unit::Count | Unit::Connections | Unit::Flag)
    }
}

/// The part of the system a metric describes (one heading per tier).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Clients, attempts, refusals, connect latency, balance over servers.
    Connections,
    /// The balancer cluster: nodes, VIPs, TLS.
    Balancer,
    /// Moves, relay, spectators, socket-server CPU.
    Game,
    /// nginx and app servers.
    Web,
    /// Redis write-behind, moves at risk, rehydration.
    Cache,
    /// MySQL primary and replicas.
    Database,
    /// The run itself: steady state, fault windows, events, truncation.
    Run,
}

impl Tier {
    pub const ALL: [Tier; 7] = [
        Tier::Connections,
        Tier::Balancer,
        Tier::Game,
        Tier::Web,
        Tier::Cache,
        Tier::Database,
        Tier::Run,
    ];

    /// A heading for the tier's metrics.
    pub fn title(self) -> &'static str {
        match self {
            Tier::Connections => "Connections",
            Tier::Balancer => "Balancer cluster (nodes, VIPs, TLS)",
            Tier::Game => "Game traffic (moves, relay, spectators, server CPU)",
            Tier::Web => "Web tier (nginx, app servers)",
            Tier::Cache => "Cache (Redis write-behind, moves at risk, rehydration)",
            Tier::Database => "Database (MySQL primary and replicas)",
            Tier::Run => "Run (steady state, fault windows, engine)",
        }
    }

    /// A short machine-friendly name (`summary_columns.csv`).
    pub fn key(self) -> &'static str {
        match self {
            Tier::Connections => "connections",
            Tier::Balancer => "balancer",
            Tier::Game => "game",
            Tier::Web => "web",
            Tier::Cache => "cache",
            Tier::Database => "database",
            Tier::Run => "run",
        }
    }
}

/// Which set of things a metric counts, and when. Everything except
/// [`Window::WholeRun`] leaves the warm-up out.
///
/// The run after the warm-up is split into *fault windows* (from each
/// scenario fault until its component is back and the connections have
/// settled) and *steady state* (the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Window {
    Arrivals,
    Attempts,
    AttemptsSteady,
    AttemptsFaults,
    Clients,
    ClientsSteady,
    ClientsFaults,
    Events,
    Moves,
    MovesSteady,
    MovesFaults,
    Games,
    Requests,
    Samples,
    AfterWarmup,
    LastHalf,
    End,
    Steady,
    FaultWindows,
    WholeRun,
    Config,
}

impl Window {
    pub const ALL: [Window; 21] = [
        Window::Arrivals,
        Window::Attempts,
        Window::AttemptsSteady,
        Window::AttemptsFaults,
        Window::Clients,
        Window::ClientsSteady,
        Window::ClientsFaults,
        Window::Events,
        Window::Moves,
        Window::MovesSteady,
        Window::MovesFaults,
        Window::Games,
        Window::Requests,
        Window::Samples,
        Window::AfterWarmup,
        Window::LastHalf,
        Window::End,
        Window::Steady,
        Window::FaultWindows,
        Window::WholeRun,
        Window::Config,
    ];

    /// The window's short name, as printed in tables.
    pub fn label(self) -> &'static str {
        match self {
            Window::Arrivals => "arrivals",
            Window::Attempts => "attempts",
            Window::AttemptsSteady => "attempts (steady)",
            Window::AttemptsFaults => "attempts (faults)",
            Window::Clients => "clients",
            Window::ClientsSteady => "clients (steady)",
            Window::ClientsFaults => "clients (faults)",
            Window::Events => "events",
            Window::Moves => "moves",
            Window::MovesSteady => "moves (steady)",
            Window::MovesFaults => "moves (faults)",
            Window::Games => "games",
            Window::Requests => "requests",
            Window::Samples => "samples",
            Window::AfterWarmup => "after warm-up",
            Window::LastHalf => "last half",
            Window::End => "end",
            Window::Steady => "steady state",
            Window::FaultWindows => "fault windows",
            Window::WholeRun => "whole run",
            Window::Config => "scenario",
        }
    }

    /// One sentence: what the window counts, and when.
    pub fn doc(self) -> &'static str {
        match self {
            Window::Arrivals => {
                "New clients (socket and web populations) arriving after the warm-up, counted at arrival."
            }
            Window::Attempts => {
                "Connection attempts started after the warm-up, each with its outcome (accepted or refused, its \
                 latency) whenever that comes, so accepted + refused ≤ attempts (the rest were in flight at the \
                 end or abandoned by a crash)."
            }
            Window::AttemptsSteady => {
                "Connection attempts started in steady state after the warm-up, each with its outcome."
            }
            Window::AttemptsFaults => "Connection attempts started in a fault window, each with its outcome.",
            Window::Clients => {
                "Distinct clients that started at least one connection attempt after the warm-up, each counted once."
            }
            Window::ClientsSteady => {
                "Distinct clients that started an attempt in steady state after the warm-up, a client counted once \
                 per contiguous steady period."
            }
            Window::ClientsFaults => {
                "Distinct clients that started an attempt in a fault window, a client counted once per fault window."
            }
            Window::Events => {
                "Things counted at the moment they happen, when that is after the warm-up (a drop, a give-up, a \
                 relay copy, a commit, a read…)."
            }
            Window::Moves => {
                "Moves sent after the warm-up, counted by send time, with every delivery of them whenever it happens."
            }
            Window::MovesSteady => "Moves sent in steady state after the warm-up, with their deliveries.",
            Window::MovesFaults => "Moves sent in a fault window, with their deliveries.",
            Window::Games => "Games started after the warm-up; a game's completion counts with its start.",
            Window::Requests => {
                "Web requests sent after the warm-up, with their responses (a failed request has no response time)."
            }
            Window::Samples => {
                "The per-interval samples (every `sample_interval`) taken after the warm-up: a mean or maximum \
                 over them."
            }
            Window::AfterWarmup => "Simulated time from the end of the warm-up to the end of the run, time-weighted.",
            Window::LastHalf => {
                "The last half of the storage samples after the warm-up (at least 4 samples, else empty)."
            }
            Window::End => "The state at the end of the run (its last sample).",
            Window::Steady => "Steady state: the time after the warm-up outside every fault window.",
            Window::FaultWindows => {
                "Fault windows: from each scenario fault until its component is back (server up and marked UP, \
                 VIP moved, replica promoted, deploy done…) and total connections and connect p99 are back within \
                 their pre-fault steady band for 3 consecutive samples, or at most 300 s after the component is \
                 back (a window also ends at the next fault or the end of the run)."
            }
            Window::WholeRun => "The whole simulated run, warm-up included.",
            Window::Config => "A constant of the scenario as run, not a measurement.",
        }
    }
}

/// One `summary.csv` column.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricDef {
    pub name: &'static str,
    pub unit: Unit,
    pub tier: Tier,
    pub window: Window,
    /// `Some(true)`: lower is better (SLOs `<`, Pareto minimises it);
    /// `Some(false)`: higher is better; `None`: neither (volume, context).
    pub lower_is_better: Option<bool>,
    /// One sentence a capacity planner understands.
    pub doc: &'static str,
}

impl MetricDef {
    /// A replication's value is a whole number.
    pub fn is_integer(&self) -> bool {
        self.unit.is_integer()
    }
}

use Tier as T;
use Unit as U;
use Window as W;

const LOWER: Option<bool> = Some(true);
const HIGHER: Option<bool> = Some(false);
const NEITHER: Option<bool> = None;

const fn m(
    name: &'static str,
    unit: Unit,
    tier: Tier,
    window: Window,
    lower_is_better: Option<bool>,
    doc: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        unit,
        tier,
        window,
        lower_is_better,
        doc,
    }
}

/// Generates [`MetricKey`] (one variant per row, in order) and [`METRICS`]
/// from one table, so a key and its definition cannot drift apart.
macro_rules! metric_table {
    ($($key:ident = $def:expr),* $(,)?) => {
        /// A `summary.csv` metric as a typed key: one variant per row of
        /// [`METRICS`], in the same order (`key as usize` is its row), so a
        /// mistyped metric fails to compile.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum MetricKey {
            $($key),*
        }

        /// Every `summary.csv` metric, in column order.
        pub static METRICS: &[MetricDef] = &[$($def),*];

        impl MetricKey {
            /// Every key, in column order.
            pub const ALL: &[MetricKey] = &[$(MetricKey::$key),*];
        }
    };
}

impl MetricKey {
    /// The metric's definition.
    #[inline]
    pub fn def(self) -> &'static MetricDef {
        &METRICS[self as usize]
    }

    /// The `summary.csv` column name.
    #[inline]
    pub fn name(self) -> &'static str {
        self.def().name
    }
}

metric_table! {
    // --- connections (experiment::run_replication)
    ClientsArrived = m(
        "clients_arrived",
        U::Count,
        T::Connections,
        W::Arrivals,
        NEITHER,
        "New clients that arrived after the warm-up (web sessions included), whether or not they ever connected.",
    ),
    ClientsAttempting = m(
        "clients_attempting",
        U::Count,
        T::Connections,
        W::Clients,
        NEITHER,
        "Distinct clients that started at least one connection attempt after the warm-up.",
    ),
    ConnectionAttempts = m(
        "connection_attempts",
        U::Count,
        T::Connections,
        W::Attempts,
        NEITHER,
        "Connection attempts started after the warm-up: first attempts, retries after a refusal and reconnects \
         after a drop.",
    ),
    ConnectionsAccepted = m(
        "connections_accepted",
        U::Count,
        T::Connections,
        W::Attempts,
        NEITHER,
        "Attempts that ended with the client holding an open WebSocket on a socket server.",
    ),
    ConnectionsRefused = m(
        "connections_refused",
        U::Count,
        T::Connections,
        W::Attempts,
        LOWER,
        "Attempts that failed: a 503 from the balancer (no server, queue full, queue timeout, server failed, node \
         full) or a client-side connect timeout; the sum of the `refused_*` columns and `connect_timeouts`.",
    ),
    RefusedRatio = m(
        "refused_ratio",
        U::Ratio,
        T::Connections,
        W::Attempts,
        LOWER,
        "`connections_refused` ÷ `connection_attempts`: the share of attempts, retries included, that failed.",
    ),
    ClientsRefused = m(
        "clients_refused",
        U::Count,
        T::Connections,
        W::Clients,
        LOWER,
        "Clients among `clients_attempting` that had at least one attempt refused.",
    ),
    ClientsRefusedRatio = m(
        "clients_refused_ratio",
        U::Ratio,
        T::Connections,
        W::Clients,
        LOWER,
        "`clients_refused` ÷ `clients_attempting`: the share of clients who saw at least one refusal.",
    ),
    Reconnects = m(
        "reconnects",
        U::Count,
        T::Connections,
        W::Attempts,
        LOWER,
        "Attempts that were not a client's first: retries after a refusal and reconnects after a dropped \
         connection.",
    ),
    Dropped = m(
        "dropped",
        U::Count,
        T::Connections,
        W::Events,
        LOWER,
        "Open connections cut by a socket-server crash or stop (deploy, scale-in) or a balancer-node crash, \
         counted when it happens.",
    ),
    GaveUp = m(
        "gave_up",
        U::Count,
        T::Connections,
        W::Events,
        LOWER,
        "Clients that stopped trying because their reconnect policy allowed no further attempt (`max_attempts` \
         consecutive failures reached, or policy `none`) after a refused attempt or a dropped connection, counted \
         when they give up.",
    ),
    RefusedRatioSteady = m(
        "refused_ratio_steady",
        U::Ratio,
        T::Connections,
        W::AttemptsSteady,
        LOWER,
        "Refused ÷ attempts, over the attempts started in steady state.",
    ),
    RefusedRatioFaults = m(
        "refused_ratio_faults",
        U::Ratio,
        T::Connections,
        W::AttemptsFaults,
        LOWER,
        "Refused ÷ attempts, over the attempts started in fault windows.",
    ),
    ClientsRefusedRatioSteady = m(
        "clients_refused_ratio_steady",
        U::Ratio,
        T::Connections,
        W::ClientsSteady,
        LOWER,
        "Distinct clients refused at least once ÷ distinct clients attempting, in steady state.",
    ),
    ClientsRefusedRatioFaults = m(
        "clients_refused_ratio_faults",
        U::Ratio,
        T::Connections,
        W::ClientsFaults,
        LOWER,
        "Distinct clients refused at least once ÷ distinct clients attempting, in fault windows.",
    ),
    ConnectMsP99Steady = m(
        "connect_ms_p99_steady",
        U::Ms,
        T::Connections,
        W::AttemptsSteady,
        LOWER,
        "99th percentile connect latency of the accepted attempts started in steady state.",
    ),
    ConnectMsP99Faults = m(
        "connect_ms_p99_faults",
        U::Ms,
        T::Connections,
        W::AttemptsFaults,
        LOWER,
        "99th percentile connect latency of the accepted attempts started in fault windows.",
    ),
    ConnectP99ShareNetwork = m(
        "connect_p99_share_network",
        U::Fraction,
        T::Connections,
        W::Attempts,
        NEITHER,
        "Share of the latency of the slowest 1 % of accepted connects spent in network round trips (client ↔ \
         balancer ↔ server).",
    ),
    ConnectP99ShareBalancerQueue = m(
        "connect_p99_share_balancer_queue",
        U::Fraction,
        T::Connections,
        W::Attempts,
        NEITHER,
        "Share of the latency of the slowest 1 % of accepted connects spent waiting in HAProxy's queue for a \
         server slot.",
    ),
    ConnectP99ShareRetries = m(
        "connect_p99_share_retries",
        U::Fraction,
        T::Connections,
        W::Attempts,
        NEITHER,
        "Share of the latency of the slowest 1 % of accepted connects spent in HAProxy retries against a failed \
         or dead server (connect timeouts and the 1 s turn-around).",
    ),
    ConnectP99ShareTls = m(
        "connect_p99_share_tls",
        U::Fraction,
        T::Connections,
        W::Attempts,
        NEITHER,
        "Share of the latency of the slowest 1 % of accepted connects spent in the TLS handshake (queue and CPU on \
         the balancer node).",
    ),
    ConnectP99ShareAccept = m(
        "connect_p99_share_accept",
        U::Fraction,
        T::Connections,
        W::Attempts,
        NEITHER,
        "Share of the latency of the slowest 1 % of accepted connects spent in the accept queue and CPU on the \
         socket server, room state sync included.",
    ),
    ConnectP99ShareReconnect = m(
        "connect_p99_share_reconnect",
        U::Fraction,
        T::Connections,
        W::Attempts,
        NEITHER,
        "Share of the latency of the slowest 1 % of accepted connects spent between a client's tries within the \
         attempt (SYN retransmissions to a VIP nobody owns).",
    ),
    SteadyS = m(
        "steady_s",
        U::Seconds,
        T::Run,
        W::Steady,
        NEITHER,
        "Seconds of steady state after the warm-up (the run after the warm-up minus its fault windows).",
    ),
    FaultWindowS = m(
        "fault_window_s",
        U::Seconds,
        T::Run,
        W::FaultWindows,
        LOWER,
        "Seconds in fault windows after the warm-up: how long faults disturbed the system.",
    ),
    FaultsRecovered = m(
        "faults_recovered",
        U::Count,
        T::Run,
        W::FaultWindows,
        HIGHER,
        "Fault windows that ended by recovery (component back, connections and connect p99 back in their steady \
         band) rather than by the 300 s cap, the next fault or the end of the run.",
    ),
    ConnectMsMean = m(
        "connect_ms_mean",
        U::Ms,
        T::Connections,
        W::Attempts,
        LOWER,
        "Mean connect latency of accepted attempts: from the start of the attempt to the client hearing the \
         WebSocket upgrade, balancer queueing, HAProxy retries, TLS and accept queueing included.",
    ),
    ConnectMsP50 = m(
        "connect_ms_p50",
        U::Ms,
        T::Connections,
        W::Attempts,
        LOWER,
        "Median connect latency of accepted attempts (HDR histogram, 3 significant digits).",
    ),
    ConnectMsP90 = m(
        "connect_ms_p90",
        U::Ms,
        T::Connections,
        W::Attempts,
        LOWER,
        "90th percentile connect latency of accepted attempts.",
    ),
    ConnectMsP99 = m(
        "connect_ms_p99",
        U::Ms,
        T::Connections,
        W::Attempts,
        LOWER,
        "99th percentile connect latency of accepted attempts.",
    ),
    ConnectMsP999 = m(
        "connect_ms_p999",
        U::Ms,
        T::Connections,
        W::Attempts,
        LOWER,
        "99.9th percentile connect latency of accepted attempts.",
    ),
    ConnectMsMax = m(
        "connect_ms_max",
        U::Ms,
        T::Connections,
        W::Attempts,
        LOWER,
        "Slowest accepted connect.",
    ),
    MaxConnPerServer = m(
        "max_conn_per_server",
        U::Connections,
        T::Connections,
        W::AfterWarmup,
        LOWER,
        "Most connections any socket server held at once.",
    ),
    ImbalanceMaxOverMean = m(
        "imbalance_max_over_mean",
        U::Index,
        T::Connections,
        W::AfterWarmup,
        LOWER,
        "Time-averaged connections of the busiest server ÷ their mean over the servers that ever ran (1 = \
         perfectly even).",
    ),
    JainIndex = m(
        "jain_index",
        U::Index,
        T::Connections,
        W::AfterWarmup,
        HIGHER,
        "Jain's fairness index (Σx)² ÷ (n·Σx²) of the time-averaged connections per server that ever ran: 1 = \
         even, 1/n = all on one server.",
    ),
    RefusedNoServer = m(
        "refused_no_server",
        U::Count,
        T::Connections,
        W::Attempts,
        LOWER,
        "Attempts answered 503 because the balancer had no usable server (all DOWN, in maintenance or draining).",
    ),
    RefusedQueueFull = m(
        "refused_queue_full",
        U::Count,
        T::Connections,
        W::Attempts,
        LOWER,
        "Attempts answered 503 because the chosen server (or every server) was at `maxconn` and its queue at \
         `maxqueue`.",
    ),
    RefusedQueueTimeout = m(
        "refused_queue_timeout",
        U::Count,
        T::Connections,
        W::Attempts,
        LOWER,
        "Attempts answered 503 after waiting in HAProxy's queue longer than `timeout_queue`.",
    ),
    RefusedServerFailed = m(
        "refused_server_failed",
        U::Count,
        T::Connections,
        W::Attempts,
        LOWER,
        "Attempts answered 503 after HAProxy's `retries` all failed at a dead server (RST or connect timeout) or \
         one at its own `max_connections`.",
    ),
    RefusedNodeFull = m(
        "refused_node_full",
        U::Count,
        T::Balancer,
        W::Attempts,
        LOWER,
        "Attempts turned away by a balancer node holding its `node_maxconn` connections.",
    ),
    ConnectTimeouts = m(
        "connect_timeouts",
        U::Count,
        T::Balancer,
        W::Attempts,
        LOWER,
        "Attempts the client abandoned at its connect timeout: SYNs to a VIP nobody owns, or a TLS handshake \
         queue too long.",
    ),
    VipOutageS = m(
        "vip_outage_s",
        U::Seconds,
        T::Balancer,
        W::WholeRun,
        LOWER,
        "Seconds during which a VIP was owned by no balancer node, summed over VIPs.",
    ),
    // --- web tier
    WebRequests = m(
        "web_requests",
        U::Count,
        T::Web,
        W::Requests,
        NEITHER,
        "HTTP requests sent by web clients.",
    ),
    WebFailed = m(
        "web_failed",
        U::Count,
        T::Web,
        W::Requests,
        LOWER,
        "Requests that got an error: VIP unreachable, balancer node lost during the TLS handshake, 502 (app \
         backlog full) or 500 (database call failed).",
    ),
    WebFailedRatio = m(
        "web_failed_ratio",
        U::Ratio,
        T::Web,
        W::Requests,
        LOWER,
        "`web_failed` ÷ `web_requests`.",
    ),
    Web502 = m(
        "web_502",
        U::Count,
        T::Web,
        W::Events,
        LOWER,
        "Requests answered 502 Bad Gateway because the app server's `backlog` was full.",
    ),
    WebDbErrors = m(
        "web_db_errors",
        U::Count,
        T::Web,
        W::WholeRun,
        LOWER,
        "Requests answered 500 because one of their database calls failed (no primary, or a node crashed under \
         the call).",
    ),
    WebMsMean = m(
        "web_ms_mean",
        U::Ms,
        T::Web,
        W::Requests,
        LOWER,
        "Mean response time of successful requests, from the browser sending to it receiving the response.",
    ),
    WebMsP50 = m(
        "web_ms_p50",
        U::Ms,
        T::Web,
        W::Requests,
        LOWER,
        "Median response time of successful requests.",
    ),
    WebMsP90 = m(
        "web_ms_p90",
        U::Ms,
        T::Web,
        W::Requests,
        LOWER,
        "90th percentile response time of successful requests.",
    ),
    WebMsP99 = m(
        "web_ms_p99",
        U::Ms,
        T::Web,
        W::Requests,
        LOWER,
        "99th percentile response time of successful requests.",
    ),
    WebMsMax = m(
        "web_ms_max",
        U::Ms,
        T::Web,
        W::Requests,
        LOWER,
        "Slowest successful response.",
    ),
    WebStaticMsP50 = m(
        "web_static_ms_p50",
        U::Ms,
        T::Web,
        W::Requests,
        LOWER,
        "Median response time of static requests (served by nginx).",
    ),
    WebStaticMsP99 = m(
        "web_static_ms_p99",
        U::Ms,
        T::Web,
        W::Requests,
        LOWER,
        "99th percentile response time of static requests.",
    ),
    WebDynamicMsP50 = m(
        "web_dynamic_ms_p50",
        U::Ms,
        T::Web,
        W::Requests,
        LOWER,
        "Median response time of dynamic requests (proxied to an app worker).",
    ),
    WebDynamicMsP99 = m(
        "web_dynamic_ms_p99",
        U::Ms,
        T::Web,
        W::Requests,
        LOWER,
        "99th percentile response time of dynamic requests.",
    ),
    AppWaitMsMean = m(
        "app_wait_ms_mean",
        U::Ms,
        T::Web,
        W::Events,
        LOWER,
        "Mean wait of a dynamic request for a free app worker, over the waits that ended after the warm-up.",
    ),
    AppWaitMsP99 = m(
        "app_wait_ms_p99",
        U::Ms,
        T::Web,
        W::Events,
        LOWER,
        "99th percentile wait of a dynamic request for a free app worker.",
    ),
    AppUtilMean = m(
        "app_util_mean",
        U::Fraction,
        T::Web,
        W::Samples,
        NEITHER,
        "Mean busy share of the app servers' workers.",
    ),
    NginxUtilMean = m(
        "nginx_util_mean",
        U::Fraction,
        T::Web,
        W::Samples,
        NEITHER,
        "Mean busy share of the nginx cores.",
    ),
    // --- balancer cluster
    TlsFullHandshakes = m(
        "tls_full_handshakes",
        U::Count,
        T::Balancer,
        W::WholeRun,
        LOWER,
        "Full TLS handshakes asked of the balancer nodes by socket and web clients (the costly kind).",
    ),
    TlsResumedHandshakes = m(
        "tls_resumed_handshakes",
        U::Count,
        T::Balancer,
        W::WholeRun,
        NEITHER,
        "TLS handshakes resumed on the node that issued the session (cheaper than a full one).",
    ),
    BalancerCpuUtilMax = m(
        "balancer_cpu_util_max",
        U::Fraction,
        T::Balancer,
        W::Samples,
        LOWER,
        "Highest busy share of any balancer node's TLS cores over a sample interval.",
    ),
    NodeConnectionsMax = m(
        "node_connections_max",
        U::Connections,
        T::Balancer,
        W::Samples,
        LOWER,
        "Most client connections (slots on servers plus queued) any balancer node held at a sample time.",
    ),
    // --- game traffic
    MovesSent = m(
        "moves_sent",
        U::Count,
        T::Game,
        W::Moves,
        NEITHER,
        "Moves players sent, including those sent into a connection whose server had died.",
    ),
    MovesValidated = m(
        "moves_validated",
        U::Count,
        T::Game,
        W::Moves,
        NEITHER,
        "Moves validated by the sender's socket server.",
    ),
    MovesLost = m(
        "moves_lost",
        U::Count,
        T::Game,
        W::Moves,
        LOWER,
        "Moves never validated because the sender's connection or server died first.",
    ),
    RelayShare = m(
        "relay_share",
        U::Ratio,
        T::Game,
        W::Moves,
        LOWER,
        "Validated moves published to the relay because another server hosts a member of the room ÷ \
         `moves_validated`.",
    ),
    MoveMsMean = m(
        "move_ms_mean",
        U::Ms,
        T::Game,
        W::Moves,
        LOWER,
        "Mean move latency from the player's send to its delivery at the opponent (every other player of the \
         room).",
    ),
    MoveMsP50 = m(
        "move_ms_p50",
        U::Ms,
        T::Game,
        W::Moves,
        LOWER,
        "Median move latency, player → opponent.",
    ),
    MoveMsP90 = m(
        "move_ms_p90",
        U::Ms,
        T::Game,
        W::Moves,
        LOWER,
        "90th percentile move latency, player → opponent.",
    ),
    MoveMsP99 = m(
        "move_ms_p99",
        U::Ms,
        T::Game,
        W::Moves,
        LOWER,
        "99th percentile move latency, player → opponent.",
    ),
    MoveMsP999 = m(
        "move_ms_p999",
        U::Ms,
        T::Game,
        W::Moves,
        LOWER,
        "99.9th percentile move latency, player → opponent.",
    ),
    MoveMsMax = m(
        "move_ms_max",
        U::Ms,
        T::Game,
        W::Moves,
        LOWER,
        "Slowest move delivery to an opponent.",
    ),
    MoveMsP99Steady = m(
        "move_ms_p99_steady",
        U::Ms,
        T::Game,
        W::MovesSteady,
        LOWER,
        "99th percentile move latency, player → opponent, of the moves sent in steady state.",
    ),
    MoveMsP99Faults = m(
        "move_ms_p99_faults",
        U::Ms,
        T::Game,
        W::MovesFaults,
        LOWER,
        "99th percentile move latency, player → opponent, of the moves sent in fault windows.",
    ),
    MoveP99ShareNetwork = m(
        "move_p99_share_network",
        U::Fraction,
        T::Game,
        W::Moves,
        NEITHER,
        "Share of the latency of the slowest 1 % of moves (player → opponent) spent in network hops.",
    ),
    MoveP99ShareServer = m(
        "move_p99_share_server",
        U::Fraction,
        T::Game,
        W::Moves,
        NEITHER,
        "Share of the latency of the slowest 1 % of moves spent queueing and on CPU at the sender's server.",
    ),
    MoveP99ShareRelay = m(
        "move_p99_share_relay",
        U::Fraction,
        T::Game,
        W::Moves,
        NEITHER,
        "Share of the latency of the slowest 1 % of moves spent in the relay (Kafka or Redis pub/sub).",
    ),
    MoveP99ShareFanout = m(
        "move_p99_share_fanout",
        U::Fraction,
        T::Game,
        W::Moves,
        NEITHER,
        "Share of the latency of the slowest 1 % of moves spent queueing at the receiving server and in its \
         per-recipient send walk.",
    ),
    SpectatorMsMean = m(
        "spectator_ms_mean",
        U::Ms,
        T::Game,
        W::Moves,
        LOWER,
        "Mean move latency from the player's send to its delivery at each spectator.",
    ),
    SpectatorMsP50 = m(
        "spectator_ms_p50",
        U::Ms,
        T::Game,
        W::Moves,
        LOWER,
        "Median move latency, player → each spectator.",
    ),
    SpectatorMsP90 = m(
        "spectator_ms_p90",
        U::Ms,
        T::Game,
        W::Moves,
        LOWER,
        "90th percentile move latency, player → each spectator.",
    ),
    SpectatorMsP99 = m(
        "spectator_ms_p99",
        U::Ms,
        T::Game,
        W::Moves,
        LOWER,
        "99th percentile move latency, player → each spectator.",
    ),
    SpectatorMsP999 = m(
        "spectator_ms_p999",
        U::Ms,
        T::Game,
        W::Moves,
        LOWER,
        "99.9th percentile move latency, player → each spectator.",
    ),
    SpectatorMsMax = m(
        "spectator_ms_max",
        U::Ms,
        T::Game,
        W::Moves,
        LOWER,
        "Slowest move delivery to a spectator.",
    ),
    SpectatorMsP99Steady = m(
        "spectator_ms_p99_steady",
        U::Ms,
        T::Game,
        W::MovesSteady,
        LOWER,
        "99th percentile move latency, player → each spectator, of the moves sent in steady state.",
    ),
    SpectatorMsP99Faults = m(
        "spectator_ms_p99_faults",
        U::Ms,
        T::Game,
        W::MovesFaults,
        LOWER,
        "99th percentile move latency, player → each spectator, of the moves sent in fault windows.",
    ),
    LastSpectatorMsP50 = m(
        "last_spectator_ms_p50",
        U::Ms,
        T::Game,
        W::Moves,
        LOWER,
        "Median, over moves with spectators, of the time from the send until the last spectator has the move.",
    ),
    LastSpectatorMsP99 = m(
        "last_spectator_ms_p99",
        U::Ms,
        T::Game,
        W::Moves,
        LOWER,
        "99th percentile time from a move's send until its last spectator has it.",
    ),
    LastSpectatorMsMax = m(
        "last_spectator_ms_max",
        U::Ms,
        T::Game,
        W::Moves,
        LOWER,
        "Longest time from a move's send until its last spectator has it.",
    ),
    RelayMsP50 = m(
        "relay_ms_p50",
        U::Ms,
        T::Game,
        W::Events,
        LOWER,
        "Median relay latency of a server copy, from validation on the sender's server to the copy reaching a \
         subscribing server, counted on arrival.",
    ),
    RelayMsP99 = m(
        "relay_ms_p99",
        U::Ms,
        T::Game,
        W::Events,
        LOWER,
        "99th percentile relay latency of a server copy.",
    ),
    RelayCopies = m(
        "relay_copies",
        U::Count,
        T::Game,
        W::Events,
        NEITHER,
        "Copies of moves the relay handed out, one per subscribing server (never per spectator).",
    ),
    RelayCopiesLost = m(
        "relay_copies_lost",
        U::Count,
        T::Game,
        W::Events,
        LOWER,
        "Relay copies lost: the subscribing server was down or crashed before fanning out, or a lingering Kafka \
         producer batch died with its server.",
    ),
    RelayBacklogMax = m(
        "relay_backlog_max",
        U::Count,
        T::Game,
        W::Samples,
        LOWER,
        "Most messages inside the relay at once (queued at a partition or at Redis, replicating) in any sample \
         interval.",
    ),
    Deliveries = m(
        "deliveries",
        U::Count,
        T::Game,
        W::Moves,
        NEITHER,
        "Deliveries of moves to players and spectators.",
    ),
    StateSyncs = m(
        "state_syncs",
        U::Count,
        T::Game,
        W::Events,
        LOWER,
        "Members sent the room's state on (re)joining a game in progress, counted when they join.",
    ),
    GamesStarted = m(
        "games_started",
        U::Count,
        T::Game,
        W::Games,
        NEITHER,
        "Games started (every player of the room connected).",
    ),
    GamesCompleted = m(
        "games_completed",
        U::Count,
        T::Game,
        W::Games,
        NEITHER,
        "Games that reached their last move.",
    ),
    GamesAbandoned = m(
        "games_abandoned",
        U::Count,
        T::Game,
        W::Events,
        LOWER,
        "Games in progress ended because a player left for good (session over or gave up), counted when it \
         happens.",
    ),
    CpuUtilMean = m(
        "cpu_util_mean",
        U::Fraction,
        T::Game,
        W::Samples,
        NEITHER,
        "Mean busy share of the socket servers' cores, over every server slot (stopped and not-yet-provisioned \
         slots count as idle).",
    ),
    CpuUtilMax = m(
        "cpu_util_max",
        U::Fraction,
        T::Game,
        W::Samples,
        LOWER,
        "Highest busy share of any socket server's cores over a sample interval.",
    ),
    // --- the run
    Events = m(
        "events",
        U::Count,
        T::Run,
        W::WholeRun,
        NEITHER,
        "Simulation events the engine processed (the run's cost, not the system's).",
    ),
    Truncated = m(
        "truncated",
        U::Flag,
        T::Run,
        W::WholeRun,
        LOWER,
        "1 when the run stopped at `max_events` before its `duration`: every other number then covers less time \
         than asked.",
    ),
    // --- storage (experiment::STORAGE_METRICS; empty without the tier)
    CacheWrites = m(
        "cache_writes",
        U::Count,
        T::Cache,
        W::Events,
        NEITHER,
        "Move writes sent to Redis, one per validated move.",
    ),
    CacheWritesFailed = m(
        "cache_writes_failed",
        U::Count,
        T::Cache,
        W::Events,
        LOWER,
        "Move writes that failed: Redis down, no connection left in the server's pool, or lost in Redis's queue \
         by a crash.",
    ),
    MovesFlushed = m(
        "moves_flushed",
        U::Count,
        T::Cache,
        W::Events,
        NEITHER,
        "Moves whose database commit the primary acknowledged (flush batches, or one-row writes without a cache).",
    ),
    FlushBatches = m(
        "flush_batches",
        U::Count,
        T::Cache,
        W::Events,
        NEITHER,
        "Flush batches sent from Redis to the primary (each `flush.interval`, or per room).",
    ),
    MovesLostCache = m(
        "moves_lost_cache",
        U::Count,
        T::Cache,
        W::Events,
        LOWER,
        "Moves Redis held unflushed and lost in a Redis crash (per `appendfsync`).",
    ),
    MovesAtRiskMax = m(
        "moves_at_risk_max",
        U::Count,
        T::Cache,
        W::Samples,
        LOWER,
        "Most moves at once validated but not yet durable (unflushed in Redis or in unacknowledged flush \
         batches), at any storage sample or crash.",
    ),
    MovesAtRiskAtCrash = m(
        "moves_at_risk_at_crash",
        U::Count,
        T::Cache,
        W::Events,
        LOWER,
        "Moves at risk at the worst socket-server or Redis crash.",
    ),
    CacheUtilMean = m(
        "cache_util_mean",
        U::Fraction,
        T::Cache,
        W::Samples,
        NEITHER,
        "Mean busy share of Redis's single thread.",
    ),
    CacheUtilMax = m(
        "cache_util_max",
        U::Fraction,
        T::Cache,
        W::Samples,
        LOWER,
        "Highest busy share of Redis's thread over a sample interval.",
    ),
    CacheBacklogMax = m(
        "cache_backlog_max",
        U::Count,
        T::Cache,
        W::Samples,
        LOWER,
        "Most Redis operations waiting or in service at a sample time.",
    ),
    DbCommits = m(
        "db_commits",
        U::Count,
        T::Database,
        W::Events,
        NEITHER,
        "Commits on the primary (flush batches, one-row move writes, web writes).",
    ),
    DbCommitRows = m(
        "db_commit_rows",
        U::Count,
        T::Database,
        W::Events,
        NEITHER,
        "Rows in those commits.",
    ),
    CommitsLost = m(
        "commits_lost",
        U::Count,
        T::Database,
        W::Events,
        LOWER,
        "Acknowledged commits lost at a failover because the promoted replica never received them.",
    ),
    MovesLostDb = m(
        "moves_lost_db",
        U::Count,
        T::Database,
        W::Events,
        LOWER,
        "Moves in the acknowledged commits lost at a failover.",
    ),
    DbWritesFailed = m(
        "db_writes_failed",
        U::Count,
        T::Database,
        W::Events,
        LOWER,
        "Database writes that failed: no primary, or the primary crashed under them.",
    ),
    DbReads = m(
        "db_reads",
        U::Count,
        T::Database,
        W::Events,
        NEITHER,
        "Database reads answered (room history for rehydration, web app reads), on a replica or the primary.",
    ),
    DbReadsFailed = m(
        "db_reads_failed",
        U::Count,
        T::Database,
        W::Events,
        LOWER,
        "Database reads that failed: no node to read from, or it crashed under the read.",
    ),
    StaleReads = m(
        "stale_reads",
        U::Count,
        T::Database,
        W::Events,
        LOWER,
        "Reads answered by a replica that had not yet applied the key's latest commit.",
    ),
    StaleReadRatio = m(
        "stale_read_ratio",
        U::Ratio,
        T::Database,
        W::Events,
        LOWER,
        "`stale_reads` ÷ `db_reads`.",
    ),
    ReplicaLagMaxS = m(
        "replica_lag_max_s",
        U::Seconds,
        T::Database,
        W::Samples,
        LOWER,
        "Largest replica lag at any sample: rows committed and not yet applied ÷ the replica's apply capacity.",
    ),
    ReplicaLagEndS = m(
        "replica_lag_end_s",
        U::Seconds,
        T::Database,
        W::End,
        LOWER,
        "Largest replica lag at the last sample of the run.",
    ),
    ReplicaLagSlope = m(
        "replica_lag_slope",
        U::SecondsPerSecond,
        T::Database,
        W::LastHalf,
        LOWER,
        "Steepest least-squares slope of a replica's lag (seconds of lag gained per second), over the replicas \
         running throughout.",
    ),
    ReplicaLagUnbounded = m(
        "replica_lag_unbounded",
        U::Flag,
        T::Database,
        W::LastHalf,
        LOWER,
        "1 when replica lag still grows and the primary commits rows faster than a replica applies them: lag \
         grows without bound.",
    ),
    DbWriteRowsPerS = m(
        "db_write_rows_per_s",
        U::RowsPerSecond,
        T::Database,
        W::LastHalf,
        NEITHER,
        "Rows committed per second on the primary.",
    ),
    ReplicaApplyCapacityRowsPerS = m(
        "replica_apply_capacity_rows_per_s",
        U::RowsPerSecond,
        T::Database,
        W::Config,
        NEITHER,
        "Rows per second one replica can apply: `applier_threads` × `apply_rate`.",
    ),
    DbUtilMean = m(
        "db_util_mean",
        U::Fraction,
        T::Database,
        W::Samples,
        NEITHER,
        "Mean busy share of the primary's cores.",
    ),
    DbUtilMax = m(
        "db_util_max",
        U::Fraction,
        T::Database,
        W::Samples,
        LOWER,
        "Highest busy share of the primary's cores over a sample interval.",
    ),
    ReplicaApplyUtilMean = m(
        "replica_apply_util_mean",
        U::Fraction,
        T::Database,
        W::Samples,
        NEITHER,
        "Mean busy share of the replicas' applier threads.",
    ),
    FailoverS = m(
        "failover_s",
        U::Seconds,
        T::Database,
        W::WholeRun,
        LOWER,
        "Mean time from a primary crash to a replica's promotion, over the run's failovers (empty when none).",
    ),
    RehydrationsCache = m(
        "rehydrations_cache",
        U::Count,
        T::Cache,
        W::Events,
        NEITHER,
        "Room states rebuilt from Redis (it held the whole game) for a member accepted on a server with no member \
         of its room.",
    ),
    RehydrationsDb = m(
        "rehydrations_db",
        U::Count,
        T::Cache,
        W::Events,
        NEITHER,
        "Room states rebuilt from the database (Redis missed or is absent).",
    ),
    RehydrationsFailed = m(
        "rehydrations_failed",
        U::Count,
        T::Cache,
        W::Events,
        LOWER,
        "Room states that could not be rebuilt: neither Redis nor the database answered.",
    ),
    RehydrationMsP50 = m(
        "rehydration_ms_p50",
        U::Ms,
        T::Cache,
        W::Events,
        LOWER,
        "Median time from accepting a member to its room's state being read, for rehydrations that finished \
         after the warm-up.",
    ),
    RehydrationMsP99 = m(
        "rehydration_ms_p99",
        U::Ms,
        T::Cache,
        W::Events,
        LOWER,
        "99th percentile time from accepting a member to its room's state being read.",
    ),
    RehydrationMsMax = m(
        "rehydration_ms_max",
        U::Ms,
        T::Cache,
        W::Events,
        LOWER,
        "Longest time from accepting a member to its room's state being read.",
    ),
    MovesAtRiskEnd = m(
        "moves_at_risk_end",
        U::Count,
        T::Cache,
        W::End,
        LOWER,
        "Moves validated but not yet durable in the database when the run ended.",
    ),
    SemiSyncFallbacks = m(
        "semi_sync_fallbacks",
        U::Count,
        T::Database,
        W::WholeRun,
        LOWER,
        "Times semi-sync replication fell back to asynchronous after `semi_sync_timeout` without a replica's ack.",
    ),
}

/// The definition of metric `name`.
pub fn def(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|d| d.name == name)
}

/// The metric table in Markdown: the windows first, then one `### tier`
/// section per tier (in [`Tier::ALL`] order) with `| metric | unit |
/// window | definition |` rows in `summary.csv` column order.
pub fn markdown_table() -> String {
    let mut out = String::from("### Windows\n\n| window | what it counts |\n|---|---|\n");
    for w in Window::ALL {
        if METRICS.iter().any(|d| d.window == w) {
            out.push_str(&format!("| {} | {} |\n", w.label(), w.doc()));
        }
    }
    for t in Tier::ALL {
        let rows: Vec<&MetricDef> = METRICS.iter().filter(|d| d.tier == t).collect();
        if rows.is_empty() {
            continue;
        }
        out.push_str(&format!(
            "\n### {}\n\n| metric | unit | window | definition |\n|---|---|---|---|\n",
            t.title()
        ));
        for d in rows {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                d.name,
                d.unit.label(),
                d.window.label(),
                d.doc
            ));
        }
    }
    out
}

/// `summary_columns.csv`: `name,unit,tier,window,definition`, one row per
/// metric in column order.
pub fn columns_csv() -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail.
    w.write_record(["name", "unit", "tier", "window", "definition"])
        .expect("csv to memory");
    for d in METRICS {
        w.write_record([d.name, d.unit.label(), d.tier.key(), d.window.label(), d.doc])
            .expect("csv to memory");
    }
    let bytes = w.into_inner().expect("csv to memory");
    String::from_utf8(bytes).expect("metric docs are UTF-8")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn metric_names_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for d in METRICS {
            assert!(seen.insert(d.name), "metric {} defined twice", d.name);
            assert!(
                !d.name.is_empty()
                    && d.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "bad metric name {:?}",
                d.name
            );
            assert!(
                d.doc.ends_with('.'),
                "{}: the definition is one sentence ending with a period",
                d.name
            );
            assert!(
                !d.doc.contains('|') && !d.doc.contains('\n'),
                "{}: breaks the Markdown table",
                d.name
            );
            assert_eq!(def(d.name), Some(d));
        }
        assert_eq!(def("no_such_metric"), None);
    }

    #[test]
    fn every_unit_tier_and_window_has_a_label() {
        let labels = |v: Vec<&str>| {
            assert!(v.iter().all(|l| !l.is_empty()));
            assert_eq!(
                v.iter().collect::<HashSet<_>>().len(),
                v.len(),
                "duplicate labels: {v:?}"
            );
        };
        labels(Unit::ALL.iter().map(|u| u.label()).collect());
        labels(Tier::ALL.iter().map(|t| t.title()).collect());
        labels(Tier::ALL.iter().map(|t| t.key()).collect());
        labels(Window::ALL.iter().map(|w| w.label()).collect());
        labels(Window::ALL.iter().map(|w| w.doc()).collect());
        for (i, u) in Unit::ALL.iter().enumerate() {
            assert_eq!(*u as usize, i, "Unit::ALL out of order");
        }
        for (i, t) in Tier::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i, "Tier::ALL out of order");
        }
        for (i, w) in Window::ALL.iter().enumerate() {
            assert_eq!(*w as usize, i, "Window::ALL out of order");
            assert!(w.doc().ends_with('.') && !w.doc().contains('|'));
            assert!(
                METRICS.iter().any(|d| d.window == *w),
                "window {w:?} is used by no metric"
            );
        }
        for d in METRICS {
            assert!(Unit::ALL.contains(&d.unit) && Tier::ALL.contains(&d.tier) && Window::ALL.contains(&d.window));
        }
        assert!(def("connections_refused").unwrap().is_integer());
        assert!(!def("refused_ratio").unwrap().is_integer());
    }

    #[test]
    fn markdown_table_has_every_metric_once() {
        let md = markdown_table();
        for d in METRICS {
            let row = format!("| `{}` |", d.name);
            let n = md.lines().filter(|l| l.starts_with(&row)).count();
            assert_eq!(n, 1, "{} has {n} rows", d.name);
        }
        let rows = md.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(rows, METRICS.len());
    }

    #[test]
    fn columns_csv_parses_with_one_row_per_metric() {
        let text = columns_csv();
        let mut r = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, ["name", "unit", "tier", "window", "definition"]);
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(rows.len(), METRICS.len());
        for (row, d) in rows.iter().zip(METRICS) {
            assert_eq!(row.len(), 5);
            assert_eq!(&row[0], d.name);
            assert_eq!(&row[1], d.unit.label());
            assert_eq!(&row[2], d.tier.key());
            assert_eq!(&row[3], d.window.label());
            assert_eq!(&row[4], d.doc);
        }
    }

    #[test]
    fn storage_metrics_close_the_table_in_order() {
        let storage = crate::experiment::STORAGE_METRICS;
        let tail: Vec<&str> = METRICS[METRICS.len() - storage.len()..]
            .iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(tail, storage);
    }

    /// Every metric a replication emits is defined, in the same order
    /// (metrics defined here and not yet emitted are allowed).
    #[test]
    fn emitted_metrics_follow_the_table() {
        let src = r#"
seed = 7
duration = "6s"
warmup = "1s"
replications = 1
sample_interval = "1s"

[servers]
count = 2
max_connections = 10
connect_cost = "1ms"

[balancer]
balance = "roundrobin"

[[population]]
name = "clients"
role = "player"
arrival = { process = "poisson", rate = "5/s" }
session = "2s"
rtt = "10ms"
"#;
        let sc = crate::scenario::parse(src, std::path::Path::new("t.toml"), "t", std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("bad test scenario:\n{e}"));
        let rep = crate::experiment::run_replication(&sc, 0).unwrap_or_else(|e| panic!("{e}"));
        let mut table = METRICS.iter().map(|d| d.name);
        for m in &rep.metrics {
            assert!(
                table.any(|n| n == m.name),
                "summary.csv column {} is not in metrics_defs::METRICS (or is out of order)",
                m.name
            );
        }
    }

    const BEGIN: &str = "<!-- metrics:begin -->\n";
    const END: &str = "<!-- metrics:end -->";

    /// The README's metric table is `markdown_table()`, between the marker
    /// lines. `WSCAP_WRITE_README=1` rewrites it instead of failing.
    #[test]
    fn readme_metric_table_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let start = readme
            .find(BEGIN)
            .expect("README.md has no `<!-- metrics:begin -->` line")
            + BEGIN.len();
        let end = start
            + readme[start..]
                .find(END)
                .expect("README.md has no `<!-- metrics:end -->` after the begin marker");
        let table = markdown_table();
        if readme[start..end] == table {
            return;
        }
        if std::env::var_os("WSCAP_WRITE_README").is_some() {
            let fresh = format!("{}{}{}", &readme[..start], table, &readme[end..]);
            std::fs::write(&path, fresh).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            eprintln!("rewrote the metric table in {}", path.display());
            return;
        }
        panic!(
            "README.md's metric table (between `<!-- metrics:begin -->` and `<!-- metrics:end -->`) is not \
             metrics_defs::markdown_table(): run `WSCAP_WRITE_README=1 cargo test readme_metric_table` to refresh"
        );
    }
}
