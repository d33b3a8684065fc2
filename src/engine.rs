//! The event engine: a future-event list ordered by (time, insertion sequence)
//! and a bounded run loop.
//!
//! The engine knows nothing of clients, balancers or servers: it moves a
//! generic event type `E` from the queue to a [`Model`]. Ties in time are broken
//! by insertion order, so a run is a pure function of its inputs. Every run has
//! two bounds, simulated time and number of events, so no loop is unbounded.

use std::collections::BTreeMap;

use crate::time::{SimDuration, SimTime};

struct Entry<E> {
    /// `time << 64 | seq` would overflow for large times; keep both fields and
    /// compare them in order instead.
    time: u64,
    seq: u64,
    event: E,
}

impl<E> Entry<E> {
    /// The order: time, then insertion sequence, as one integer (compared
    /// without a branch).
    #[inline]
    fn key(&self) -> u128 {
        ((self.time as u128) << 64) | self.seq as u128
    }
}

/// The events of the current bucket, sorted latest first: the earliest
/// is popped from the end in O(1). A bucket holds tens of events; an
/// event pushed into it is inserted in place, usually near the end (a
/// short delay), and a bucket poured in is sorted once. Cheaper than a
/// binary heap's sift-down per pop at these sizes.
struct Near<E>(Vec<Entry<E>>);

impl<E> Near<E> {
    #[inline]
    fn len(&self) -> usize {
        self.0.len()
    }
    #[inline]
    fn peek(&self) -> Option<&Entry<E>> {
        self.0.last()
    }
    /// The entry `k` places behind the earliest (`k = 0`: the earliest).
    #[inline]
    fn peek_behind(&self, k: usize) -> Option<&Entry<E>> {
        self.0.len().checked_sub(k + 1).map(|i| &self.0[i])
    }
    #[inline]
    fn pop(&mut self) -> Option<Entry<E>> {
        self.0.pop()
    }
    /// Inserts `e` after every later entry.
    #[inline]
    fn push(&mut self, e: Entry<E>) {
        let k = e.key();
        let i = self.0.partition_point(|x| x.key() > k);
        self.0.insert(i, e);
    }
    /// Takes a poured bucket's events (leaving it empty) and sorts. An
    /// empty current bucket swaps buffers with it instead of copying.
    fn pour(&mut self, bucket: &mut Vec<Entry<E>>) {
        if self.0.is_empty() {
            std::mem::swap(&mut self.0, bucket);
        } else {
            self.0.append(bucket);
        }
        self.0.sort_unstable_by_key(|x| std::cmp::Reverse(x.key()));
    }
}

/// Width of a bucket: 2^22 ns ≈ 4.2 ms. Wider buckets take more short
/// delays straight into the current bucket; 2^21 ran 1.8 % more
/// instructions on a 6-minute 150k run (cachegrind), 2^19 was slower still.
const BUCKET_SHIFT: u32 = 22;

/// The ring holds 2^10 buckets ≈ 4.3 s of simulated time ahead. 2^12
/// (≈ 17 s, most chess think times) ran 1.3 % fewer instructions on a
/// 6-minute 150k run but the hour ran slower, with 11 MiB more memory:
/// every bucket keeps its capacity, and 4 096 of them spread the queue
/// over more cache lines.
const RING_BITS: u32 = 10;
const RING_LEN: u64 = 1 << RING_BITS;
const RING_MASK: u64 = RING_LEN - 1;

/// The coarse buckets of the next 2^10 laps (≈ 73 minutes) are a ring
/// too: a think time or a session end is pushed in O(1). Laps further
/// ahead wait in an ordered map. A lap's bucket is freed when it is
/// spread (a lap's slot comes round only once in an hour's run).
const LAP_BITS: u32 = 10;
const LAP_LEN: u64 = 1 << LAP_BITS;
const LAP_MASK: u64 = LAP_LEN - 1;

/// Below this many current-bucket entries, and while nothing is bucketed,
/// every event goes straight to it: a model with a handful of pending
/// events never pays for buckets. Not once buckets hold events: a far
/// event pushed while the current bucket runs low (the end of every
/// bucket) would sit in it, sorted again with every bucket poured in
/// until its time comes (2.5 % of a 150k run's instructions).
const SMALL_HEAP: usize = 16;

/// The future-event list and the clock. Models schedule through it.
///
/// Four tiers, by how far ahead an event is:
/// - the front: one event pushed earlier than every pending one (most
///   often a hop a microsecond later), handled next without being sorted;
/// - the current bucket (events before `horizon`), a [`Near`] vector
///   sorted latest-first, tens of entries, in L1;
/// - a ring of [`RING_LEN`] unsorted buckets of 2^[`BUCKET_SHIFT`] ns for
///   the next ≈ 4 s, each a `Vec` that keeps its capacity from one lap to
///   the next, with a bitmap of the non-empty ones;
/// - coarse buckets, one per lap of the ring (2^(`BUCKET_SHIFT` +
///   `RING_BITS`) ns ≈ 4.3 s), for everything further (think times,
///   session ends): a ring of [`LAP_LEN`] of them (≈ 73 minutes) with a
///   bitmap, then an ordered map for laps beyond; a coarse bucket is
///   spread over the ring when the ring's window is exactly its lap.
///
/// When the current bucket holds nothing before `horizon`, the next non-empty bucket
/// is poured into it. Order is still exactly (time, insertion sequence):
/// buckets only delay sorting, never reorder.
pub struct Scheduler<E> {
    /// The earliest pending event, when it was pushed earlier than every
    /// other one (a reply a microsecond later, a hop to the next tier): it
    /// is handled next without entering the current bucket.
    front: Option<Entry<E>>,
    near: Near<E>,
    /// Bucket of slot `s` (`time >> BUCKET_SHIFT`) is `ring[s & RING_MASK]`,
    /// for slots in `(cur, cur + RING_LEN)`.
    ring: Vec<Vec<Entry<E>>>,
    /// Bit `i` set: `ring[i]` is not empty.
    ring_bits: Vec<u64>,
    ring_len: usize,
    /// Coarse buckets, one per lap (`slot >> RING_BITS`), holding events
    /// pushed when their slot was at or after `cur + RING_LEN`: lap `l`
    /// in `laps[l & LAP_MASK]` while `l < cur's lap + LAP_LEN` when
    /// pushed, in `far` after that.
    laps: Vec<Vec<Entry<E>>>,
    /// Bit `i` set: `laps[i]` is not empty.
    lap_bits: Vec<u64>,
    /// Events in `laps`.
    laps_len: usize,
    far: BTreeMap<u64, Vec<Entry<E>>>,
    /// Events in `laps` and `far`.
    far_len: usize,
    /// The slot the current bucket covers: every bucketed event is after it.
    cur: u64,
    /// `(cur + 1) << BUCKET_SHIFT`: events before it go to the current bucket.
    horizon: u64,
    seq: u64,
    now: SimTime,
    /// Events after this time are counted, not queued (see
    /// [`Scheduler::discard_after`]).
    cutoff: u64,
    discarded: u64,
}

impl<E> Default for Scheduler<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Scheduler<E> {
    pub fn new() -> Self {
        Scheduler {
            front: None,
            near: Near(Vec::new()),
            ring: (0..RING_LEN).map(|_| Vec::new()).collect(),
            ring_bits: vec![0; (RING_LEN / 64) as usize],
            ring_len: 0,
            laps: (0..LAP_LEN).map(|_| Vec::new()).collect(),
            lap_bits: vec![0; (LAP_LEN / 64) as usize],
            laps_len: 0,
            far: BTreeMap::new(),
            far_len: 0,
            cur: 0,
            horizon: 1 << BUCKET_SHIFT,
            seq: 0,
            now: SimTime::ZERO,
            cutoff: u64::MAX,
            discarded: 0,
        }
    }

    /// Events scheduled after `end` will never be handled by a run that
    /// stops at `end`: they are counted (in [`pending`](Self::pending))
    /// but not queued. A session that ends an hour after a 15-minute run
    /// then costs no queue space. Only for a scheduler whose runs never go
    /// past `end`.
    pub fn discard_after(&mut self, end: SimTime) {
        self.cutoff = end.0;
    }

    /// The current simulated time.
    #[inline]
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Schedules `event` at absolute time `at`, which must not be in the
    /// past. A past time is a model bug, never clamped: debug builds (and
    /// tests) panic at the caller's line; release builds queue the event at
    /// its past time, so the run loop stops with
    /// [`EngineError::ClockBackwards`] when it comes up, and the run fails.
    #[inline]
    #[cfg_attr(debug_assertions, track_caller)]
    pub fn at(&mut self, at: SimTime, event: E) {
        debug_assert!(
            at >= self.now,
            "an event was scheduled in the past: at {at} while the clock is at {}",
            self.now
        );
        self.push(at.0, event);
    }

    /// Queues `event` at `time`, as given.
    #[inline]
    fn push(&mut self, time: u64, event: E) {
        if time > self.cutoff {
            // Its sequence number is still taken: the events queued after
            // it keep the numbers (and so the tie order) they would have.
            self.seq += 1;
            self.discarded += 1;
            return;
        }
        let e = Entry {
            time,
            seq: self.seq,
            event,
        };
        self.seq += 1;
        // The front, if it precedes the front, the current bucket and every bucketed
        // event (ties go after them: a larger seq).
        if time < self.horizon || self.ring_len + self.far_len == 0 {
            match &self.front {
                Some(f) if time < f.time => {
                    let old = self.front.replace(e).expect("just matched");
                    self.near.push(old);
                    return;
                }
                None if self.near.peek().is_none_or(|h| time < h.time) => {
                    self.front = Some(e);
                    return;
                }
                _ => {}
            }
        }
        if time < self.horizon || (self.near.len() < SMALL_HEAP && self.ring_len + self.far_len == 0) {
            self.near.push(e);
            return;
        }
        // A bucketed event may precede a front beyond the horizon (pushed
        // while nothing was bucketed): the front goes back to the current bucket,
        // which `refill` keeps ordered against the buckets.
        if self.front.as_ref().is_some_and(|f| f.time >= self.horizon) {
            let f = self.front.take().expect("just seen");
            self.near.push(f);
        }
        let slot = time >> BUCKET_SHIFT;
        if slot - self.cur < RING_LEN {
            self.ring_put(slot, e);
        } else {
            let lap = slot >> RING_BITS;
            if lap - (self.cur >> RING_BITS) < LAP_LEN {
                let i = (lap & LAP_MASK) as usize;
                self.laps[i].push(e);
                self.lap_bits[i / 64] |= 1 << (i % 64);
                self.laps_len += 1;
            } else {
                self.far.entry(lap).or_default().push(e);
            }
            self.far_len += 1;
        }
    }

    #[inline]
    fn ring_put(&mut self, slot: u64, e: Entry<E>) {
        let i = (slot & RING_MASK) as usize;
        self.ring[i].push(e);
        self.ring_bits[i / 64] |= 1 << (i % 64);
        self.ring_len += 1;
    }

    /// Schedules `event` after `delay` from now.
    #[inline]
    #[cfg_attr(debug_assertions, track_caller)]
    pub fn after(&mut self, delay: SimDuration, event: E) {
        self.at(self.now + delay, event);
    }

    /// Number of events waiting.
    pub fn pending(&self) -> usize {
        self.front.is_some() as usize + self.near.len() + self.ring_len + self.far_len + self.discarded as usize
    }

    /// The first non-empty ring slot after `cur`, if any.
    fn next_ring_slot(&self) -> Option<u64> {
        if self.ring_len == 0 {
            return None;
        }
        circular_first(&self.ring_bits, self.cur + 1, RING_MASK)
    }

    /// The earliest lap with a coarse bucket, if any: the first in the
    /// lap ring after the clock's lap, or the map's first if earlier.
    fn first_lap(&self) -> Option<u64> {
        let mut first = self.far.first_key_value().map(|(&lap, _)| lap);
        if self.laps_len > 0 {
            // Laps in the ring are after the clock's lap and less than
            // LAP_LEN ahead.
            if let Some(lap) = circular_first(&self.lap_bits, (self.cur >> RING_BITS) + 1, LAP_MASK) {
                first = Some(first.map_or(lap, |f| f.min(lap)));
            }
        }
        first
    }

    /// Takes lap `lap`'s coarse bucket (from the ring or the map). A lap
    /// can have events in both: pushed to the map while it was more than
    /// `LAP_LEN` laps ahead, to the ring once it came closer. The map's
    /// part is taken first; `advance` then finds the ring's part as the
    /// first lap again and spreads it too, before any slot of the lap is
    /// poured.
    fn take_lap(&mut self, lap: u64) -> Vec<Entry<E>> {
        if self.far.first_key_value().is_some_and(|(&l, _)| l == lap) {
            return self.far.pop_first().expect("just seen").1;
        }
        let i = (lap & LAP_MASK) as usize;
        self.lap_bits[i / 64] &= !(1 << (i % 64));
        let bucket = std::mem::take(&mut self.laps[i]);
        self.laps_len -= bucket.len();
        bucket
    }

    /// Pours buckets into the current bucket until the current bucket's earliest event is before
    /// the horizon (so it precedes every bucketed event) or no bucket is left.
    #[inline]
    fn refill(&mut self) {
        while self.ring_len + self.far_len > 0 && self.near.peek().is_none_or(|e| e.time >= self.horizon) {
            self.advance();
        }
    }

    /// Moves the clock's bucket to the next non-empty slot and pours it
    /// into the current bucket, first spreading over the ring any coarse bucket whose
    /// lap comes before that slot (the ring's window is then exactly its lap).
    #[cold]
    #[inline(never)]
    fn advance(&mut self) {
        loop {
            let ring_next = self.next_ring_slot();
            if let Some(lap) = self.first_lap() {
                // Its events were pushed at least a ring's length ahead, so
                // the slot before the lap is not behind the clock.
                let before = (lap << RING_BITS) - 1;
                debug_assert!(before >= self.cur);
                if ring_next.is_none_or(|n| n > before) {
                    self.cur = before;
                    self.horizon = (before + 1) << BUCKET_SHIFT;
                    let bucket = self.take_lap(lap);
                    self.far_len -= bucket.len();
                    for e in bucket {
                        let slot = e.time >> BUCKET_SHIFT;
                        self.ring_put(slot, e);
                    }
                    continue;
                }
            }
            let Some(next) = ring_next else { return };
            self.cur = next;
            self.horizon = (next + 1) << BUCKET_SHIFT;
            let i = (next & RING_MASK) as usize;
            let bucket = &mut self.ring[i];
            self.ring_len -= bucket.len();
            self.near.pour(bucket);
            self.ring_bits[i / 64] &= !(1 << (i % 64));
            return;
        }
    }

    /// The earliest event if it is at or before `until`.
    #[inline]
    fn pop_until(&mut self, until: u64) -> Option<Entry<E>> {
        if let Some(f) = &self.front {
            return if f.time > until { None } else { self.front.take() };
        }
        self.refill();
        if self.near.peek()?.time > until {
            return None;
        }
        self.near.pop()
    }

    /// Time of the earliest pending event.
    fn next_time(&mut self) -> Option<SimTime> {
        if let Some(f) = &self.front {
            return Some(SimTime(f.time));
        }
        self.refill();
        self.near.peek().map(|e| SimTime(e.time))
    }
}

/// The first position from `start` on (positions are indexes modulo the
/// ring's length, `mask + 1`) whose bit is set in `bits`, as a position,
/// not an index: the first word masked below `start`'s index, then whole
/// words around the ring, then that first word's low bits again.
fn circular_first(bits: &[u64], start: u64, mask: u64) -> Option<u64> {
    let words = bits.len();
    let i0 = (start & mask) as usize;
    let at = |i: usize| start + ((i as u64).wrapping_sub(i0 as u64) & mask);
    let first = bits[i0 / 64] & (!0u64 << (i0 % 64));
    if first != 0 {
        return Some(at((i0 / 64) * 64 + first.trailing_zeros() as usize));
    }
    (1..=words).find_map(|k| {
        let w = (i0 / 64 + k) % words;
        (bits[w] != 0).then(|| at(w * 64 + bits[w].trailing_zeros() as usize))
    })
}

/// A simulated system: reacts to one event at a time.
pub trait Model {
    type Event;
    fn handle(&mut self, event: Self::Event, sched: &mut Scheduler<Self::Event>);

    /// A hint: `event` is likely to be handled soon. A model may ask
    /// the CPU to bring the state it will touch into cache (see
    /// [`prefetch`]); it must not change anything. Called before each
    /// `handle` with a pending event a few places behind the earliest.
    #[inline]
    fn prefetch(&self, _event: &Self::Event) {}
}

/// Asks the CPU to bring `*r` into cache; no effect on the program's
/// meaning. Lets a model hide the memory latency of the next event's
/// state behind the current event's work.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    prefetch_address((r as *const T).cast::<u8>());
}

/// [`prefetch`] for every cache line of `*r` (a room or a client spans
/// two or three).
#[inline(always)]
pub fn prefetch_all<T>(r: &T) {
    let p = (r as *const T).cast::<u8>();
    let size = std::mem::size_of::<T>();
    let mut off = 0;
    while off < size {
        prefetch_address(p.wrapping_add(off));
        off += 64;
    }
    if size > 0 {
        // The last byte: an object not aligned to a line ends in one more.
        prefetch_address(p.wrapping_add(size - 1));
    }
}

#[inline(always)]
fn prefetch_address(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: SSE is part of the x86_64 baseline, and a prefetch
        // never faults nor changes memory, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The run loop asks the model to prefetch the event this many places
/// behind the next one, so that a cache or TLB miss has more than one
/// event's time to resolve: the 150k hour ran about 5 % faster than with
/// the next event's own (0); two places (2) was no faster than one.
const PREFETCH_AHEAD: usize = 1;

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// The simulated end time was reached.
    EndTime,
    /// No events were left.
    Drained,
    /// The event bound was hit before the end time: results are truncated.
    EventLimit,
}

/// What the loop did.
#[derive(Clone, Copy, Debug)]
pub struct LoopStats {
    pub events: u64,
    pub end: SimTime,
    pub stop: StopReason,
}

/// An error in the engine's own invariants.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    #[error("an event was scheduled in the past (at {to} while the clock was at {from}): a bug in wscap")]
    ClockBackwards { from: SimTime, to: SimTime },
}

/// Runs `model` until simulated time `until` (events at exactly `until` are
/// processed), the queue drains, or `max_events` events have been handled.
pub fn run<M: Model>(
    model: &mut M,
    sched: &mut Scheduler<M::Event>,
    until: SimTime,
    max_events: u64,
) -> Result<LoopStats, EngineError> {
    run_observed(model, sched, until, max_events, |_| {})
}

/// Events between two calls of a [`run_observed`] observer.
pub const OBSERVE_EVERY: u64 = 1 << 16;

/// [`run`], calling `observe` with the simulated clock every
/// [`OBSERVE_EVERY`] events (for progress bars; it must not touch the model).
pub fn run_observed<M: Model>(
    model: &mut M,
    sched: &mut Scheduler<M::Event>,
    until: SimTime,
    max_events: u64,
    mut observe: impl FnMut(SimTime),
) -> Result<LoopStats, EngineError> {
    let mut events = 0u64;
    let stop = loop {
        if events >= max_events {
            break match sched.next_time() {
                None if sched.discarded > 0 => StopReason::EndTime,
                None => StopReason::Drained,
                Some(t) if t.0 > until.0 => StopReason::EndTime,
                Some(_) => StopReason::EventLimit,
            };
        }
        let Some(e) = sched.pop_until(until.0) else {
            break if sched.pending() == 0 {
                StopReason::Drained
            } else {
                StopReason::EndTime
            };
        };
        if e.time < sched.now.0 {
            return Err(EngineError::ClockBackwards {
                from: sched.now,
                to: SimTime(e.time),
            });
        }
        sched.now = SimTime(e.time);
        if let Some(later) = sched.near.peek_behind(PREFETCH_AHEAD) {
            model.prefetch(&later.event);
        }
        model.handle(e.event, sched);
        events += 1;
        if events.is_multiple_of(OBSERVE_EVERY) {
            observe(sched.now);
        }
    };
    if stop == StopReason::EndTime {
        sched.now = sched.now.max(until);
    }
    Ok(LoopStats {
        events,
        end: sched.now,
        stop,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(Vec<(u64, u32)>);
    impl Model for Recorder {
        type Event = u32;
        fn handle(&mut self, ev: u32, s: &mut Scheduler<u32>) {
            self.0.push((s.now().0, ev));
            if ev == 0 {
                s.after(SimDuration(5), 99);
            }
        }
    }

    #[test]
    fn ties_break_by_insertion_order() {
        let mut s = Scheduler::new();
        for i in 1..=5 {
            s.at(SimTime(10), i);
        }
        s.at(SimTime(3), 0);
        let mut m = Recorder(vec![]);
        let st = run(&mut m, &mut s, SimTime(100), 1000).unwrap();
        assert_eq!(m.0, vec![(3, 0), (8, 99), (10, 1), (10, 2), (10, 3), (10, 4), (10, 5)]);
        assert_eq!(st.stop, StopReason::Drained);
    }

    #[test]
    fn bounds_stop_the_loop() {
        let mut s = Scheduler::new();
        for i in 0..10 {
            s.at(SimTime(i * 10), 1);
        }
        let mut m = Recorder(vec![]);
        let st = run(&mut m, &mut s, SimTime(45), 1000).unwrap();
        assert_eq!((st.events, st.stop), (5, StopReason::EndTime));
        let st = run(&mut m, &mut s, SimTime(1000), 2).unwrap();
        assert_eq!((st.events, st.stop), (2, StopReason::EventLimit));
    }

    /// A lap first pushed to the map (more than `LAP_LEN` laps ahead) and
    /// later, once nearer, to the lap ring: both parts come out in order.
    #[test]
    fn a_lap_in_both_the_map_and_the_lap_ring_keeps_order() {
        const LAP_NS: u64 = 1 << (BUCKET_SHIFT + RING_BITS);
        let lap = 2 * LAP_LEN;
        let (a, b, c) = (lap * LAP_NS + 100, lap * LAP_NS + 50, lap * LAP_NS + 100);
        struct Steps(Vec<(u64, u32)>, [u64; 2]);
        impl Model for Steps {
            type Event = u32;
            fn handle(&mut self, ev: u32, s: &mut Scheduler<u32>) {
                self.0.push((s.now().0, ev));
                if ev == 1 {
                    // Now the lap is less than LAP_LEN laps ahead: the ring.
                    s.at(SimTime(self.1[0]), 2);
                    s.at(SimTime(self.1[1]), 3);
                    assert_eq!((s.far.len(), s.laps_len), (1, 2), "the lap in both");
                }
            }
        }
        let mut s = Scheduler::new();
        // Enough near events (one takes the front slot) that the far ones
        // are bucketed.
        for i in 0..=SMALL_HEAP as u64 {
            s.at(SimTime(i + 1), 100);
        }
        s.at(SimTime(a), 0); // the map: 2 LAP_LEN laps ahead
        s.at(SimTime((LAP_LEN + 5) * LAP_NS), 1);
        assert_eq!((s.far.len(), s.laps_len), (2, 0), "both in the map");
        let mut m = Steps(Vec::new(), [b, c]);
        run(&mut m, &mut s, SimTime::MAX, 100).unwrap();
        m.0.retain(|&(_, ev)| ev != 100);
        assert_eq!(m.0, vec![((LAP_LEN + 5) * LAP_NS, 1), (b, 2), (a, 0), (c, 3)]);
        assert!(s.far.is_empty() && s.laps_len == 0);
    }

    #[test]
    fn far_events_keep_exact_order() {
        // Times spread over many buckets, with ties, inserted out of order.
        let mut s = Scheduler::new();
        let mut want = Vec::new();
        for i in 0..5000u64 {
            let t = (i * 7919 % 1000) * 50_000_000; // up to 50 s, many buckets
            // Ids from 1000: 0 and 99 mean something to `Recorder`.
            s.at(SimTime(t), i as u32 + 1000);
            want.push((t, i as u32 + 1000));
        }
        want.sort();
        let mut m = Recorder(vec![]);
        run(&mut m, &mut s, SimTime::MAX, 10_000).unwrap();
        // Event 0 schedules a 99 at +5 ns; the rest must come in (time, insertion) order.
        let got: Vec<(u64, u32)> = m.0.into_iter().filter(|&(_, e)| e != 99).collect();
        assert_eq!(got.len(), want.len());
        if let Some(i) = (0..got.len()).find(|&i| got[i] != want[i]) {
            panic!(
                "first difference at {i}: got {:?}, want {:?}",
                &got[i..i + 3],
                &want[i..i + 3]
            );
        }
    }

    /// The tiers (current bucket, ring, lap ring, far map) against a reference: random
    /// delays from nanoseconds to hours, scheduled from inside handlers as
    /// a model would, with ties, over many laps of the ring.
    #[test]
    fn random_schedules_match_a_sorted_reference() {
        use rand::{RngExt, SeedableRng};
        struct Spawner {
            rng: rand_pcg::Pcg64Mcg,
            got: Vec<(u64, u64)>,
            left: u32,
        }
        impl Model for Spawner {
            type Event = u64;
            fn handle(&mut self, id: u64, s: &mut Scheduler<u64>) {
                self.got.push((s.now().0, id));
                let n = self.rng.random_range(0..3u32).min(self.left);
                for _ in 0..n {
                    self.left -= 1;
                    let scale = [
                        1u64,
                        1_000,
                        1 << 21,
                        50_000_000,
                        70_000_000_000,
                        3_600_000_000_000,
                        36_000_000_000_000,
                    ];
                    let k = self.rng.random_range(0..scale.len());
                    let d = self.rng.random_range(0..scale[k]);
                    // Round some delays so that events tie.
                    let d = if self.rng.random_bool(0.2) {
                        d / 1_000_000 * 1_000_000
                    } else {
                        d
                    };
                    s.after(SimDuration(d), self.left as u64);
                }
            }
        }
        for seed in 0..20u64 {
            let mut m = Spawner {
                rng: rand_pcg::Pcg64Mcg::seed_from_u64(seed),
                got: Vec::new(),
                left: 20_000,
            };
            let mut s = Scheduler::new();
            for i in 0..200u64 {
                s.at(SimTime(i * 997), 1_000_000 + i);
            }
            run(&mut m, &mut s, SimTime::MAX, 1_000_000).unwrap();
            assert_eq!(m.got.len(), 20_200, "seed {seed}: every event handled once");
            // Time never goes back, and events scheduled for the same
            // time come in the order they were scheduled (ids count down).
            for w in m.got.windows(2) {
                assert!(w[0].0 <= w[1].0, "seed {seed}: clock went back: {w:?}");
                if w[0].0 == w[1].0 && w[0].1 < 1_000_000 && w[1].1 < 1_000_000 {
                    assert!(w[0].1 > w[1].1, "seed {seed}: ties out of order: {w:?}");
                }
            }
        }
    }

    /// Scheduling in the past is caught where it happens in debug builds.
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "scheduled in the past")]
    fn past_times_panic_in_debug_builds() {
        let mut s: Scheduler<u32> = Scheduler::new();
        s.now = SimTime(50);
        s.at(SimTime(10), 1);
    }

    /// Without debug assertions a past event is kept at its time, and the
    /// run loop fails with `ClockBackwards` when it comes up: never a clamp.
    #[test]
    fn past_times_stop_the_run() {
        struct Past;
        impl Model for Past {
            type Event = u32;
            fn handle(&mut self, ev: u32, s: &mut Scheduler<u32>) {
                if ev == 0 {
                    // `at` without its debug assertion: what a release build does.
                    s.push(s.now.0 - 5, 1);
                }
            }
        }
        let mut s = Scheduler::new();
        s.at(SimTime(10), 0);
        let err = run(&mut Past, &mut s, SimTime(100), 10).unwrap_err();
        assert_eq!(
            err,
            EngineError::ClockBackwards {
                from: SimTime(10),
                to: SimTime(5)
            }
        );
    }
}
