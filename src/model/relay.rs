//! The relay between socket servers: Kafka or Redis pub/sub.
//!
//! One publish per message; the relay hands one copy to each server that
//! hosts subscribers (never one per spectator). This model does the queueing
//! arithmetic and tells the simulation when copies arrive; it knows nothing
//! of rooms, clients or the event queue.
//!
//! - Kafka: a producer batch per (server, partition) closes `linger` after its
//!   first message; the partition appends batches one at a time at
//!   `partition_rate` messages/s (an overloaded partition queues), then the
//!   batch is replicated and committed after a heavy-tailed `append` time;
//!   each consumer server fetches it after its own `fetch` delay.
//! - Redis: a single-threaded server; a publish costs `publish_cost` plus
//!   `per_subscriber_cost` per subscribing server, written in order.

use std::collections::VecDeque;

use crate::dist::Dist;
use crate::rng::SimRng;
use crate::scenario;
use crate::time::{SimDuration, SimTime};

/// A Kafka producer batch waiting for its linger to expire.
#[derive(Debug, Default)]
pub struct Batch {
    pub partition: u32,
    pub producer: u32,
    /// Inline for the common batch of a move or two (a 5 ms linger).
    pub msgs: smallvec::SmallVec<[u32; 4]>,
    /// Its producer crashed: the close finds nothing to send.
    pub dropped: bool,
}

pub enum Relay {
    Kafka(Kafka),
    Redis(Redis),
}

pub struct Kafka {
    linger: SimDuration,
    partitions: u32,
    per_msg: SimDuration,
    append: Dist,
    fetch: Dist,
    network: SimDuration,
    /// Open batch per (producer server, partition).
    open: Vec<Option<u32>>,
    batches: slab::Slab<Batch>,
    busy_until: Vec<SimTime>,
    /// Per partition: (commit time, messages) of batches not yet committed.
    inflight: Vec<VecDeque<(SimTime, u32)>>,
    level: Level,
}

pub struct Redis {
    publish_cost: Dist,
    per_sub: Dist,
    network: SimDuration,
    busy_until: SimTime,
    inflight: VecDeque<(SimTime, u32)>,
    level: Level,
}

/// Messages inside the relay, and the peak since the last reading.
#[derive(Debug, Default)]
struct Level {
    now: u64,
    peak: u64,
}

/// Drops entries done by `now` from `q`, lowering the level.
fn drain(q: &mut VecDeque<(SimTime, u32)>, level: &mut Level, now: SimTime) {
    while q.front().is_some_and(|&(t, _)| t <= now) {
        let (_, n) = q.pop_front().expect("front exists");
        level.now -= n as u64;
    }
}

impl Relay {
    pub fn new(cfg: &scenario::Relay, servers: u32) -> Self {
        match cfg {
            scenario::Relay::Kafka {
                linger,
                partitions,
                partition_rate,
                append,
                fetch,
                network,
            } => Relay::Kafka(Kafka {
                linger: *linger,
                partitions: *partitions,
                per_msg: SimDuration::from_secs_f64(1.0 / partition_rate.per_s),
                append: append.clone(),
                fetch: fetch.clone(),
                network: *network,
                open: vec![None; (servers * partitions) as usize],
                batches: slab::Slab::new(),
                busy_until: vec![SimTime::ZERO; *partitions as usize],
                inflight: (0..*partitions).map(|_| VecDeque::new()).collect(),
                level: Level::default(),
            }),
            scenario::Relay::Redis {
                publish_cost,
                per_subscriber_cost,
                network,
            } => Relay::Redis(Redis {
                publish_cost: publish_cost.clone(),
                per_sub: per_subscriber_cost.clone(),
                network: *network,
                busy_until: SimTime::ZERO,
                inflight: VecDeque::new(),
                level: Level::default(),
            }),
        }
    }

    /// The most messages inside the relay (queued at a partition or at
    /// Redis, or being replicated) at any time since the previous call, which
    /// ends the reading period at `now`.
    pub fn backlog_peak(&mut self, now: SimTime) -> u64 {
        let (level, queues): (&mut Level, Vec<&mut VecDeque<(SimTime, u32)>>) = match self {
            Relay::Kafka(k) => (&mut k.level, k.inflight.iter_mut().collect()),
            Relay::Redis(r) => (&mut r.level, vec![&mut r.inflight]),
        };
        for q in queues {
            drain(q, level, now);
        }
        let peak = level.peak.max(level.now);
        level.peak = level.now;
        peak
    }
}

impl Kafka {
    /// Adds a message from `producer` for the room with hash `key`. Returns a
    /// new batch id and when it closes, if the message opened a batch.
    pub fn publish(&mut self, now: SimTime, producer: u32, key: u64, msg: u32) -> Option<(u32, SimTime)> {
        let p = (crate::rng::mix64(key) % self.partitions as u64) as u32;
        let slot = (producer * self.partitions + p) as usize;
        match self.open[slot] {
            Some(b) => {
                self.batches[b as usize].msgs.push(msg);
                None
            }
            None => {
                let b = self.batches.insert(Batch {
                    partition: p,
                    producer,
                    msgs: smallvec::smallvec![msg],
                    dropped: false,
                }) as u32;
                self.open[slot] = Some(b);
                Some((b, now + self.linger))
            }
        }
    }

    /// A producer's process died: its lingering batches are lost. Returns
    /// their messages. The batches stay (empty) until their close fires, so
    /// their ids are not reused meanwhile.
    pub fn drop_producer(&mut self, producer: u32) -> Vec<u32> {
        let mut lost = Vec::new();
        for p in 0..self.partitions {
            let slot = (producer * self.partitions + p) as usize;
            if let Some(b) = self.open[slot].take() {
                let batch = &mut self.batches[b as usize];
                batch.dropped = true;
                lost.extend(batch.msgs.drain(..));
            }
        }
        lost
    }

    /// The batch's linger expired: it goes to the broker. Returns its
    /// messages and the time the batch is committed (appended, replicated),
    /// or None if its producer crashed meanwhile.
    pub fn close(
        &mut self,
        now: SimTime,
        batch: u32,
        rng: &mut SimRng,
    ) -> Option<(smallvec::SmallVec<[u32; 4]>, SimTime)> {
        let b = self.batches.remove(batch as usize);
        if b.dropped {
            return None;
        }
        self.open[(b.producer * self.partitions + b.partition) as usize] = None;
        let p = b.partition as usize;
        let arrive = now + self.network;
        let start = arrive.max(self.busy_until[p]);
        let n = b.msgs.len() as u64;
        self.busy_until[p] = start + self.per_msg.saturating_mul(n);
        let committed = self.busy_until[p] + self.append.sample(rng);
        drain(&mut self.inflight[p], &mut self.level, now);
        self.inflight[p].push_back((committed, n as u32));
        self.level.now += n;
        self.level.peak = self.level.peak.max(self.level.now);
        Some((b.msgs, committed))
    }

    /// When a consumer on a subscribing server has a committed batch.
    pub fn fetched(&self, committed: SimTime, rng: &mut SimRng) -> SimTime {
        committed + self.fetch.sample(rng) + self.network
    }

    /// Number of batches waiting for their linger (bounded by servers × partitions).
    pub fn open_batches(&self) -> usize {
        self.batches.len()
    }
}

impl Redis {
    /// Publishes one message to `subscribers` servers; returns when each
    /// gets its copy, in order.
    pub fn publish(&mut self, now: SimTime, subscribers: usize, rng: &mut SimRng) -> Vec<SimTime> {
        let start = (now + self.network).max(self.busy_until);
        let mut t = start + self.publish_cost.sample(rng);
        let mut out = Vec::with_capacity(subscribers);
        for _ in 0..subscribers {
            t += self.per_sub.sample(rng);
            out.push(t + self.network);
        }
        self.busy_until = t;
        drain(&mut self.inflight, &mut self.level, now);
        self.inflight.push_back((t, 1));
        self.level.now += 1;
        self.level.peak = self.level.peak.max(self.level.now);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn kafka(rate: f64) -> Kafka {
        let cfg = scenario::Relay::Kafka {
            linger: SimDuration::from_millis(5),
            partitions: 1,
            partition_rate: crate::units::Rate { per_s: rate },
            append: Dist::constant(SimDuration::from_millis(2)),
            fetch: Dist::constant(SimDuration::from_millis(1)),
            network: SimDuration::ZERO,
        };
        match Relay::new(&cfg, 2) {
            Relay::Kafka(k) => k,
            Relay::Redis(_) => unreachable!(),
        }
    }

    #[test]
    fn kafka_batches_by_linger_and_queues_on_the_partition() {
        let mut k = kafka(1000.0); // 1 ms per message
        let mut r = SimRng::seed_from_u64(1);
        let (b, close) = k.publish(SimTime(0), 0, 7, 100).unwrap();
        assert_eq!(close, SimTime(5_000_000));
        assert!(
            k.publish(SimTime(1_000_000), 0, 7, 101).is_none(),
            "joins the open batch"
        );
        let (b2, _) = k.publish(SimTime(1_000_000), 1, 7, 102).unwrap();
        let (msgs, commit) = k.close(close, b, &mut r).unwrap();
        assert_eq!(msgs.as_slice(), [100, 101]);
        // 2 messages × 1 ms from 5 ms, then 2 ms append.
        assert_eq!(commit, SimTime(9_000_000));
        // The other producer's batch closes at 6 ms but queues behind: 7 ms + 1 + 2.
        let (_, commit2) = k.close(SimTime(6_000_000), b2, &mut r).unwrap();
        assert_eq!(commit2, SimTime(10_000_000));
        // A crashed producer's lingering batch never reaches the broker.
        let (b3, _) = k.publish(SimTime(7_000_000), 1, 9, 103).unwrap();
        assert_eq!(k.drop_producer(1), vec![103]);
        assert!(k.close(SimTime(12_000_000), b3, &mut r).is_none());
        let mut relay = Relay::Kafka(k);
        assert_eq!(relay.backlog_peak(SimTime(8_000_000)), 3);
        // The peak of a period counts messages that left before its end.
        assert_eq!(relay.backlog_peak(SimTime(9_500_000)), 3);
        assert_eq!(relay.backlog_peak(SimTime(10_000_000)), 1);
        assert_eq!(relay.backlog_peak(SimTime(10_000_001)), 0);
    }

    #[test]
    fn redis_is_one_fifo_with_per_subscriber_cost() {
        let cfg = scenario::Relay::Redis {
            publish_cost: Dist::constant(SimDuration::from_micros(10)),
            per_subscriber_cost: Dist::constant(SimDuration::from_micros(5)),
            network: SimDuration::from_micros(100),
        };
        let Relay::Redis(mut rd) = Relay::new(&cfg, 3) else {
            unreachable!()
        };
        let mut r = SimRng::seed_from_u64(1);
        let t = rd.publish(SimTime(0), 2, &mut r);
        assert_eq!(t, vec![SimTime(215_000), SimTime(220_000)]);
        // A second publish at the same instant waits for the first.
        let t2 = rd.publish(SimTime(0), 1, &mut r);
        assert_eq!(t2, vec![SimTime(235_000)]);
    }
}
