//! Report sections shared by every command's `report.md`: the scenario as
//! run, a table per component (each socket server), and the model's
//! assumptions with their sources.

use std::fmt::Write as _;

use crate::experiment::Replication;
use crate::scenario::{Relay, Scenario};

/// `## Per server` for one replication: peak and mean connections, CPU,
/// queued jobs and time down, from its samples after the warm-up.
pub fn servers_table(sc: &Scenario, rep: &Replication, heading: &str) -> String {
    let warm = sc.warmup.as_secs_f64();
    let samples: Vec<_> = rep.samples.iter().filter(|s| s.time.as_secs_f64() > warm).collect();
    let n = rep.samples.iter().map(|s| s.servers.len()).max().unwrap_or(0);
    let mut s = String::new();
    if n == 0 || samples.is_empty() {
        return s;
    }
    let _ = writeln!(
        s,
        "{heading}\n\nFrom replication {}'s samples after the warm-up (one every {}).\n",
        rep.index, sc.sample_interval
    );
    let _ = writeln!(
        s,
        "| server | peak connections | mean connections | mean CPU | peak jobs waiting | time down (process) | time DOWN at the balancer |\n|---|---|---|---|---|---|---|"
    );
    let dt = sc.sample_interval.as_secs_f64();
    for i in 0..n {
        let vals: Vec<_> = samples.iter().filter_map(|x| x.servers.get(i)).collect();
        if vals.is_empty() {
            continue;
        }
        let peak = vals.iter().map(|v| v.connections).max().unwrap_or(0);
        let mean = vals.iter().map(|v| f64::from(v.connections)).sum::<f64>() / vals.len() as f64;
        let cpu = vals.iter().map(|v| v.cpu_util).sum::<f64>() / vals.len() as f64;
        let jobs = vals.iter().map(|v| v.jobs_waiting).max().unwrap_or(0);
        let down = vals.iter().filter(|v| !v.process_up).count() as f64 * dt;
        let lb_down = vals.iter().filter(|v| !v.lb_up).count() as f64 * dt;
        let _ = writeln!(
            s,
            "| server-{i} | {peak} | {mean:.0} | {:.1} % | {jobs} | {down:.0} s | {lb_down:.0} s |",
            cpu * 100.0
        );
    }
    s.push('\n');
    s
}

/// `## Scenario as run`: the scenario after overrides, as TOML.
pub fn scenario_as_run(sc: &Scenario) -> String {
    let text = toml::to_string_pretty(sc)
        .or_else(|_| serde_json::to_string_pretty(sc))
        .unwrap_or_else(|e| format!("(cannot show the scenario: {e})"));
    format!(
        "## Scenario as run\n\nAll defaults filled in{}.\n\n```toml\n{}\n```\n\n",
        if text.starts_with('{') { " (as JSON)" } else { "" },
        text.trim_end()
    )
}

/// `## Assumptions`: what the model takes for granted and where each
/// default comes from.
pub fn assumptions(sc: &Scenario) -> String {
    let mut a: Vec<String> = vec![
        "Arrivals, sessions, RTTs and service costs follow the scenario's distributions; every replication draws \
         its own random streams from (seed, replication index), and different strategies or deployments of one \
         study share them (common random numbers)."
            .into(),
        format!(
            "Balancer semantics follow HAProxy 2.x/3.x (configuration manual: `balance`, `maxconn`, `maxqueue`, \
             `timeout queue`, `retries`, `option redispatch`, `slowstart`): here strategy `{}`, health checks \
             `inter {}`, `fall {}`, `rise {}` (HAProxy's defaults are 2s/3/2).",
            sc.balancer.strategy,
            sc.balancer.health_check.inter,
            sc.balancer.health_check.fall,
            sc.balancer.health_check.rise
        ),
        format!(
            "Each socket server holds at most {} connections and has {} core(s); accepts, moves, fan-out and relay \
             work queue FIFO for the cores (an M/G/c queue per server).",
            sc.servers.max_connections, sc.servers.cores
        ),
        "A dead host is noticed after the client's heartbeat timeout (socket.io v4 defaults: pingInterval 25 s + \
         pingTimeout 20 s = 45 s); a killed process at once (TCP RST)."
            .into(),
        "Reconnect backoff follows the formulas of the AWS Architecture Blog's \"Exponential Backoff and Jitter\" \
         (M. Brooker, 2015): v = min(cap, base·2ⁿ); full jitter U(0, v); equal v/2 + U(0, v/2); decorrelated \
         min(cap, U(base, 3·prev))."
            .into(),
        "Latency percentiles come from HDR histograms with 3 significant digits; values are means over \
         replications with Student-t 95 % confidence half-widths (t quantiles by a Cornish–Fisher expansion)."
            .into(),
        "The model is validated against theory in the test suite: Erlang B for pooled and per-server loss \
         systems, Erlang C / M/M/c for server queues, the supermarket model for power-of-d choices, and \
         conservation of every client and message in every run."
            .into(),
    ];
    match &sc.relay {
        Some(Relay::Kafka { linger, partitions, .. }) => a.push(format!(
            "Kafka relay: producer `linger.ms` {linger} (Kafka 4.0's default is 5 ms), {partitions} partition(s), \
             acks=all append with a heavy-tailed (lognormal) latency, one publish per subscribing server, never \
             per spectator."
        )),
        Some(Relay::Redis { .. }) => a.push(
            "Redis pub/sub relay: one single-threaded Redis, O(subscribing servers) per publish, at-most-once \
             (a subscriber that is down misses the message), as documented for Redis PUBLISH."
                .into(),
        ),
        None => {}
    }
    if sc.game.is_some() {
        a.push(
            "Chess rooms of two players live on the server of the player who created them; a move to an \
             opponent or spectator on another server crosses the relay."
                .into(),
        );
    }
    let b = &sc.balancer;
    if b.nodes > 1
        || sc
            .faults
            .iter()
            .any(|f| matches!(f, crate::scenario::Fault::BalancerCrash { .. }))
    {
        a.push(format!(
            "Balancer failover: {} node(s) ({}); a failed node's VIP answers again after {:.3} s — keepalived \
             (VRRPv2, RFC 3768): master-down interval 3·advert_int + (256 − priority)/256·advert_int, or \
             Corosync/Pacemaker: token + consensus (default 1.2 × token) + resource start. Without preemption. \
             A SYN to an unanswered VIP is retransmitted after 1 s, 2 s, 4 s… (Linux, initial RTO 1 s per RFC 6298).",
            b.nodes,
            match b.mode {
                crate::scenario::ClusterMode::ActivePassive => "active-passive",
                crate::scenario::ClusterMode::ActiveActive => "active-active, DNS round robin",
            },
            b.failover.takeover().as_secs_f64()
        ));
    }
    if let Some(tls) = &b.tls {
        a.push(format!(
            "TLS termination on the balancer: a full handshake costs {:.0} µs of a core ({} per core, \
             as measured with `openssl speed` — RSA-2048 ≈ 2 500 signs/s, ECDSA P-256 ≈ 12 000/s); a resumed one \
             {:.0} % of it (no private-key operation); TLS 1.3, one round trip.",
            tls.full_cost().as_secs_f64() * 1e6,
            match tls.key {
                crate::scenario::TlsKey::Rsa2048 => "RSA-2048",
                crate::scenario::TlsKey::EcdsaP256 => "ECDSA P-256",
            },
            tls.resumed_cost_ratio * 100.0
        ));
    }
    if sc.faults.iter().any(|f| {
        matches!(
            f,
            crate::scenario::Fault::ScaleOut { .. } | crate::scenario::Fault::ScaleIn { .. }
        )
    }) {
        a.push(format!(
            "Servers added or removed reach the balancers at the backend updater's next tick (every {}), as \
             HAProxy's `server-template` slots filled by DNS service discovery (`hold valid`).",
            b.update_interval
        ));
    }
    if sc.cache.is_some() {
        a.push(
            "Redis: one thread executes every op in turn; moves are written behind and flushed in batches (as \
             Lichess does for games in progress); with `appendfsync everysec` a crash loses at most the last second \
             of writes (Redis persistence documentation)."
                .into(),
        );
    }
    if let Some(d) = &sc.database {
        a.push(format!(
            "Database: MySQL-style asynchronous binlog replication to {} replica(s), applied at {:.0} rows/s by {} \
             applier thread(s); replica lag = unapplied rows ÷ apply capacity, so it grows at λ/μ − 1 s per s when \
             writes outrun applying. Semi-sync {} (MySQL's `rpl_semi_sync_master_timeout` default is 10 s); a failed \
             primary is replaced by the most caught-up replica after {} (orchestrator-style detection).",
            d.replicas,
            d.apply_rate.per_s,
            d.applier_threads,
            if d.semi_sync { "on" } else { "off" },
            d.failover_detection
        ));
    }
    if let Some(w) = &sc.web {
        a.push(format!(
            "Web tier: nginx serves static files itself ({} % from its cache) and proxies dynamic requests round \
             robin; gunicorn sync workers handle one request each ({} per app server; gunicorn's advice is \
             2 × cores + 1), with a listen backlog of {} (gunicorn's default is 2048), beyond which nginx answers 502.",
            w.nginx.cache_hit_ratio * 100.0,
            w.app.workers,
            w.app.backlog
        ));
    }
    let mut s = String::from("## Assumptions and sources\n\n");
    for x in a {
        let _ = writeln!(s, "- {x}");
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_section_is_toml() {
        let src = "duration = \"10s\"\n[servers]\ncount = 2\nmax_connections = 10\n[balancer]\nbalance = \"first\"\n\
                   [[population]]\nname = \"p\"\nrole = \"player\"\narrival = { process = \"poisson\", rate = \"5/s\" }\nsession = \"3s\"\n";
        let sc = crate::scenario::parse(src, std::path::Path::new("t.toml"), "t", std::path::Path::new(".")).unwrap();
        let s = scenario_as_run(&sc);
        assert!(s.contains("```toml") && s.contains("balance = \"first\""), "{s}");
        assert!(assumptions(&sc).contains("HAProxy"));
    }
}
