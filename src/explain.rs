//! Why a headline latency is what it is: the parts of the slowest 1 % of
//! connects and of moves (recorded by `metrics::tail`, aggregated over the
//! replications), each with what it is, whether adding capacity moves it,
//! and the knobs that do.
//!
//! Reports use it to explain p99s; `plan` uses it not to advise more
//! capacity when capacity is not what sets a metric.

use crate::experiment::Outcome;
use crate::metrics::{CONNECT_PARTS, MOVE_PARTS};

/// Parts smaller than this share of the tail are not named.
pub const MIN_SHARE: f64 = 0.05;

/// One part of a latency's tail.
#[derive(Clone, Debug, PartialEq)]
pub struct Driver {
    /// The part (`metrics::CONNECT_PARTS` or `MOVE_PARTS`).
    pub part: &'static str,
    /// Its mean share of the slowest 1 % over the replications.
    pub share: f64,
    /// Where the time went, to follow "spent X % of their time".
    pub what: &'static str,
    /// More servers, cores or nodes shorten it.
    pub capacity: bool,
    /// What does move it.
    pub knobs: &'static str,
}

/// Which latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Latency {
    Connect,
    Move,
}

impl Latency {
    /// The latency a metric name measures, if it has recorded parts
    /// (`connect_ms_*`, `move_ms_*`).
    pub fn of_metric(metric: &str) -> Option<Latency> {
        if metric.starts_with("connect_ms_") {
            Some(Latency::Connect)
        } else if metric.starts_with("move_ms_") {
            Some(Latency::Move)
        } else {
            None
        }
    }
}

fn describe(lat: Latency, part: &str) -> (&'static str, bool, &'static str) {
    match (lat, part) {
        (Latency::Connect, "network") => (
            "on client and data-centre round trips",
            false,
            "not capacity: the clients' RTT (`population.rtt`) and `servers.backend_latency`",
        ),
        (Latency::Connect, "balancer_queue") => (
            "waiting in HAProxy's queue for a free server slot",
            true,
            "more servers (`servers.count`) or a higher `balancer.maxconn`",
        ),
        (Latency::Connect, "retries") => (
            "in HAProxy retries against a server that has failed but is not yet marked DOWN (1 s turn-around each)",
            false,
            "`balancer.health_check.inter`/`fall` (detect sooner), `balancer.retries`, `balancer.redispatch`, \
             or a strategy that does not prefer the emptiest server (`leastconn` sends reconnects to the dead \
             one; `roundrobin` spreads them)",
        ),
        (Latency::Connect, "tls") => (
            "in TLS handshakes queued on the balancer node's cores",
            true,
            "more `balancer.nbthread`, `balancer.tls.key = \"ecdsa-p256\"`, or a higher `resumption_ratio`",
        ),
        (Latency::Connect, "accept") => (
            "in the socket server's accept queue and CPU (and a room's state)",
            true,
            "more `servers.cores` or servers",
        ),
        (Latency::Connect, "reconnect") => (
            "on SYN retransmissions to a VIP nobody answers while it moves",
            false,
            "a faster failover (`balancer.failover`: `advert_int`, `priority`, or Pacemaker's timings)",
        ),
        (Latency::Move, "network") => (
            "on the players' round trips",
            false,
            "not capacity: the players' RTT (`population.rtt`)",
        ),
        (Latency::Move, "server") => (
            "queued and validated on the sender's server",
            true,
            "more `servers.cores` or servers",
        ),
        (Latency::Move, "relay") => (
            "in the relay between servers (Kafka linger, append, fetch)",
            false,
            "`relay.linger`, `relay.partitions`, or a strategy that keeps rooms on one server (`room`)",
        ),
        (Latency::Move, "fanout") => (
            "in the receiving server's queue and its walk over the room's members",
            true,
            "more `servers.cores`, a lower `send_cost`, or fewer members per server",
        ),
        _ => ("", false, ""),
    }
}

/// The parts of `lat`'s slowest 1 %, largest first, those of at least
/// [`MIN_SHARE`]. Empty when the run recorded none.
pub fn drivers(o: &Outcome, lat: Latency) -> Vec<Driver> {
    let (parts, prefix): (&[&'static str], &str) = match lat {
        Latency::Connect => (&CONNECT_PARTS, "connect_p99_share_"),
        Latency::Move => (&MOVE_PARTS, "move_p99_share_"),
    };
    let mut v: Vec<Driver> = parts
        .iter()
        .filter_map(|&part| {
            let share = o.aggregate(&format!("{prefix}{part}"))?.mean;
            if share.is_nan() || share < MIN_SHARE {
                return None;
            }
            let (what, capacity, knobs) = describe(lat, part);
            Some(Driver {
                part,
                share,
                what,
                capacity,
                knobs,
            })
        })
        .collect();
    v.sort_by(|a, b| b.share.total_cmp(&a.share));
    v
}

/// A sentence: "The slowest 1 % of connects spent 98 % of their time in
/// HAProxy retries … (knobs: …), 2 % in …". `None` without recorded parts.
pub fn sentence(o: &Outcome, lat: Latency) -> Option<String> {
    let d = drivers(o, lat);
    let first = d.first()?;
    let noun = match lat {
        Latency::Connect => "connects",
        Latency::Move => "moves",
    };
    let mut s = format!(
        "The slowest 1 % of {noun} spent {:.0} % of their time {}",
        first.share * 100.0,
        first.what
    );
    for x in &d[1..] {
        s.push_str(&format!(", {:.0} % {}", x.share * 100.0, x.what));
    }
    s.push_str(&format!(". What moves it: {}.", first.knobs));
    if !first.capacity {
        s.push_str(" Adding servers does not.");
    }
    Some(s)
}

/// Whether capacity drives `metric`: false when its latency's largest
/// tail part is one that more servers or cores do not shorten; true when
/// it does or nothing is known.
pub fn capacity_drives(o: &Outcome, metric: &str) -> bool {
    let Some(lat) = Latency::of_metric(metric) else {
        return true;
    };
    drivers(o, lat).first().is_none_or(|d| d.capacity)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::Aggregate;

    fn outcome(shares: &[(&'static str, f64)]) -> Outcome {
        Outcome {
            replications: vec![],
            aggregate: shares
                .iter()
                .map(|&(name, mean)| Aggregate { name, mean, ci95: 0.0 })
                .collect(),
            faults: vec![],
        }
    }

    #[test]
    fn retries_are_not_capacity() {
        let o = outcome(&[
            ("connect_p99_share_network", 0.02),
            ("connect_p99_share_retries", 0.97),
            ("connect_p99_share_accept", 0.01),
        ]);
        let d = drivers(&o, Latency::Connect);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].part, "retries");
        assert!(!capacity_drives(&o, "connect_ms_p99"));
        assert!(capacity_drives(&o, "refused_ratio"));
        let s = sentence(&o, Latency::Connect).unwrap();
        assert!(
            s.contains("97 %") && s.contains("health_check") && s.contains("does not"),
            "{s}"
        );
    }

    #[test]
    fn a_queue_is_capacity() {
        let o = outcome(&[("move_p99_share_server", 0.6), ("move_p99_share_network", 0.4)]);
        assert!(capacity_drives(&o, "move_ms_p99"));
        assert_eq!(drivers(&o, Latency::Move)[1].part, "network");
        assert!(sentence(&o, Latency::Connect).is_none());
    }
}
