//! Network slowdowns: for a window of time, the links of one tier add a
//! fixed one-way latency and lose a fraction of their packets.
//!
//! Every link in the model is TCP, so a lost packet is not a lost message:
//! it is sent again after the retransmission timeout (RTO), which doubles
//! at each consecutive loss (RFC 6298). A hop that loses `k` packets in a
//! row therefore takes `base + extra + RTO·(2ᵏ − 1)`. `k` is geometric with
//! the loss ratio `p` (P(k ≥ n) = pⁿ), drawn by inversion from one uniform
//! number, and capped at [`MAX_RETRANSMITS`] (Linux's `tcp_retries2`), so
//! a hop's delay is always bounded. The RTO is Linux's floor, 200 ms, for
//! data, and 1 s for a SYN (RFC 6298's initial RTO).
//!
//! Outside every window a link costs exactly its base latency and draws no
//! random number, so a scenario without slowdowns runs as before.

use rand::RngExt;

use crate::rng::SimRng;
pub use crate::scenario::Link;
use crate::time::{SimDuration, SimTime};

/// Linux's minimum retransmission timeout for data (`TCP_RTO_MIN`).
pub const DATA_RTO: SimDuration = SimDuration::from_millis(200);
/// The initial retransmission timeout of a SYN (RFC 6298).
pub const SYN_RTO: SimDuration = SimDuration::from_secs(1);
/// At most this many retransmissions of one packet (Linux's `tcp_retries2`).
pub const MAX_RETRANSMITS: u32 = 15;

/// One slowdown window on one group of links.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slowdown {
    pub link: Link,
    pub from: SimTime,
    pub until: SimTime,
    /// Extra one-way latency per hop.
    pub extra: SimDuration,
    /// Fraction of packets lost, in [0, 1).
    pub loss: f64,
}

impl Slowdown {
    fn covers(&self, link: Link, now: SimTime) -> bool {
        self.link == link && self.from <= now && now < self.until
    }
}

/// Whether a hop carries a connection's first packet (a SYN) or data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet {
    Syn,
    Data,
}

/// The slowdowns of a run, known from the scenario before it starts.
#[derive(Clone, Debug)]
pub struct Network {
    slowdowns: Vec<Slowdown>,
    /// Its own random stream: losses draw nothing from the tiers' streams.
    rng: SimRng,
    /// Retransmissions caused by slowdowns, per link (by `Link as usize`).
    pub retransmits: [u64; 5],
    /// Hops that crossed a slowed link, per link.
    pub slowed_hops: [u64; 5],
}

impl Network {
    pub fn new(slowdowns: Vec<Slowdown>, rng: SimRng) -> Network {
        Network {
            slowdowns,
            rng,
            retransmits: [0; 5],
            slowed_hops: [0; 5],
        }
    }

    /// The slowdown on `link` at `now`, if any (the first listed wins when
    /// windows overlap).
    pub fn active(&self, link: Link, now: SimTime) -> Option<&Slowdown> {
        self.slowdowns.iter().find(|s| s.covers(link, now))
    }

    /// No slowdown windows: every hop takes its base latency, as
    /// [`delay`](Self::delay) would return it.
    #[inline]
    pub fn is_healthy(&self) -> bool {
        self.slowdowns.is_empty()
    }

    /// The one-way delay of a hop over `link` sent at `now` whose latency
    /// is `base` when the network is healthy.
    #[inline]
    pub fn delay(&mut self, link: Link, now: SimTime, base: SimDuration, packet: Packet) -> SimDuration {
        if self.slowdowns.is_empty() {
            return base;
        }
        self.slowed(link, now, base, packet)
    }

    #[cold]
    fn slowed(&mut self, link: Link, now: SimTime, base: SimDuration, packet: Packet) -> SimDuration {
        let Some(s) = self.active(link, now).copied() else {
            return base;
        };
        let i = link as usize;
        self.slowed_hops[i] += 1;
        let k = if s.loss > 0.0 {
            losses(s.loss, self.rng.random::<f64>())
        } else {
            0
        };
        self.retransmits[i] += k as u64;
        let rto = match packet {
            Packet::Syn => SYN_RTO,
            Packet::Data => DATA_RTO,
        };
        base + s.extra + SimDuration(rto.0 * ((1u64 << k) - 1))
    }
}

/// Consecutive losses before a packet gets through, for loss ratio `p` and
/// a uniform `u` in [0, 1): the largest `k` with `pᵏ > u`, capped.
fn losses(p: f64, u: f64) -> u32 {
    if p <= 0.0 {
        return 0;
    }
    // P(k >= n) = p^n: k = floor(ln(1 - u) / ln p).
    let k = ((1.0 - u).ln() / p.ln()).floor();
    if k.is_finite() && k >= 0.0 {
        (k as u64).min(MAX_RETRANSMITS as u64) as u32
    } else {
        MAX_RETRANSMITS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn net(loss: f64) -> Network {
        Network::new(
            vec![Slowdown {
                link: Link::Servers,
                from: SimTime::ZERO + SimDuration::from_secs(10),
                until: SimTime::ZERO + SimDuration::from_secs(20),
                extra: SimDuration::from_millis(30),
                loss,
            }],
            SimRng::seed_from_u64(7),
        )
    }

    #[test]
    fn outside_the_window_a_link_costs_its_base() {
        let mut n = net(0.5);
        let base = SimDuration::from_millis(1);
        for t in [0, 9, 20, 30] {
            assert_eq!(
                n.delay(
                    Link::Servers,
                    SimTime::ZERO + SimDuration::from_secs(t),
                    base,
                    Packet::Data,
                ),
                base
            );
        }
        // Another tier's links are untouched inside the window.
        assert_eq!(
            n.delay(
                Link::Cache,
                SimTime::ZERO + SimDuration::from_secs(15),
                base,
                Packet::Data,
            ),
            base
        );
        assert_eq!(n.slowed_hops, [0; 5]);
    }

    #[test]
    fn without_loss_the_extra_latency_is_exact() {
        let mut n = net(0.0);
        let d = n.delay(
            Link::Servers,
            SimTime::ZERO + SimDuration::from_secs(15),
            SimDuration::from_millis(1),
            Packet::Data,
        );
        assert_eq!(d, SimDuration::from_millis(31));
        assert_eq!(n.retransmits, [0; 5]);
    }

    /// The number of retransmissions is geometric: its mean is p / (1 − p),
    /// within a 99.9 % confidence interval of the sample mean.
    #[test]
    fn losses_are_geometric() {
        let p = 0.2;
        let mut n = net(p);
        let hops = 200_000u64;
        let mut sum = 0.0;
        let mut sum2 = 0.0;
        for _ in 0..hops {
            let d = n.delay(
                Link::Servers,
                SimTime::ZERO + SimDuration::from_secs(15),
                SimDuration::ZERO,
                Packet::Data,
            );
            let k = ((d.0 - SimDuration::from_millis(30).0) / DATA_RTO.0 + 1).ilog2() as f64;
            sum += k;
            sum2 += k * k;
        }
        let mean = sum / hops as f64;
        let sd = (sum2 / hops as f64 - mean * mean).sqrt();
        let want = p / (1.0 - p);
        let half = 3.29 * sd / (hops as f64).sqrt();
        assert!((mean - want).abs() < half, "mean {mean} vs {want} ± {half}");
        assert_eq!(n.retransmits[Link::Servers as usize] as f64, sum);
    }

    #[test]
    fn a_syn_waits_the_initial_rto_and_the_count_is_capped() {
        assert_eq!(losses(0.5, 0.0), 0);
        assert_eq!(losses(0.5, 0.5), 1);
        assert_eq!(losses(0.5, 0.75), 2);
        assert_eq!(losses(0.999_999, 0.999_999_9), MAX_RETRANSMITS);
        let mut n = Network::new(
            vec![Slowdown {
                link: Link::Clients,
                from: SimTime::ZERO,
                until: SimTime::ZERO + SimDuration::from_secs(1),
                extra: SimDuration::ZERO,
                loss: 0.999_999_999,
            }],
            SimRng::seed_from_u64(3),
        );
        let d = n.delay(Link::Clients, SimTime::ZERO, SimDuration::ZERO, Packet::Syn);
        assert_eq!(d, SimDuration(SYN_RTO.0 * ((1 << MAX_RETRANSMITS) - 1)));
    }
}
