//! The event engine: a future-event list ordered by (time, insertion sequence)
//! and a bounded run loop.
//!
//! The engine knows nothing of clients, balancers or servers: it moves a
//! generic event type `E` from the queue to a [`Model`]. Ties in time are broken
//! by insertion order, so a run is a pure function of its inputs. Every run has
//! two bounds, simulated time and number of events, so no loop is unbounded.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};

use crate::time::{SimDuration, SimTime};

struct Entry<E> {
    /// `time << 64 | seq` would overflow for large times; keep both fields and
    /// compare them in order instead.
    time: u64,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, o: &Self) -> bool {
        self.time == o.time && self.seq == o.seq
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<E> Ord for Entry<E> {
    /// Reversed so that `BinaryHeap` (a max-heap) pops the earliest entry.
    fn cmp(&self, o: &Self) -> Ordering {
        o.time.cmp(&self.time).then_with(|| o.seq.cmp(&self.seq))
    }
}

/// Width of a far-future bucket: 2^24 ns ≈ 16.8 ms.
const BUCKET_SHIFT: u32 = 24;

/// Below this many heap entries every event goes straight to the heap.
const SMALL_HEAP: usize = 1024;

/// The future-event list and the clock. Models schedule through it.
///
/// Two tiers: a binary heap, and buckets of ≈16.8 ms for events at or after
/// `horizon`, which wait unsorted until the clock reaches their bucket. An
/// event goes to a bucket only when the heap is already large
/// (`SMALL_HEAP`): long timers (session ends, think times) then stay out of
/// the heap until they are near, which keeps it small and in cache, while a
/// model with few pending events never pays for buckets. Order is still
/// exactly (time, insertion sequence).
pub struct Scheduler<E> {
    heap: BinaryHeap<Entry<E>>,
    /// Buckets of events at or after `horizon`, keyed by `time >> BUCKET_SHIFT`.
    far: BTreeMap<u64, Vec<Entry<E>>>,
    far_len: usize,
    /// Every event in `far` is at or after it (the heap may hold any time).
    horizon: u64,
    seq: u64,
    now: SimTime,
}

impl<E> Default for Scheduler<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Scheduler<E> {
    pub fn new() -> Self {
        Scheduler {
            heap: BinaryHeap::new(),
            far: BTreeMap::new(),
            far_len: 0,
            horizon: 1 << BUCKET_SHIFT,
            seq: 0,
            now: SimTime::ZERO,
        }
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
        let e = Entry {
            time,
            seq: self.seq,
            event,
        };
        self.seq += 1;
        if time < self.horizon || self.heap.len() < SMALL_HEAP {
            self.heap.push(e);
        } else {
            self.far.entry(time >> BUCKET_SHIFT).or_default().push(e);
            self.far_len += 1;
        }
    }

    /// Schedules `event` after `delay` from now.
    #[inline]
    #[cfg_attr(debug_assertions, track_caller)]
    pub fn after(&mut self, delay: SimDuration, event: E) {
        self.at(self.now + delay, event);
    }

    /// Number of events waiting.
    pub fn pending(&self) -> usize {
        self.heap.len() + self.far_len
    }

    /// Moves buckets into the heap until the heap's earliest event is before
    /// the horizon (so it precedes every bucketed event) or no bucket is left.
    #[inline]
    fn refill(&mut self) {
        while self.far_len > 0 && self.heap.peek().is_none_or(|e| e.time >= self.horizon) {
            let Some((slot, bucket)) = self.far.pop_first() else {
                return;
            };
            self.far_len -= bucket.len();
            self.horizon = (slot + 1) << BUCKET_SHIFT;
            self.heap.extend(bucket);
        }
    }

    /// The earliest event if it is at or before `until`.
    #[inline]
    fn pop_until(&mut self, until: u64) -> Option<Entry<E>> {
        self.refill();
        let e = self.heap.peek_mut()?;
        if e.time > until {
            return None;
        }
        Some(std::collections::binary_heap::PeekMut::pop(e))
    }

    /// Time of the earliest pending event.
    fn next_time(&mut self) -> Option<SimTime> {
        self.refill();
        self.heap.peek().map(|e| SimTime(e.time))
    }
}

/// A simulated system: reacts to one event at a time.
pub trait Model {
    type Event;
    fn handle(&mut self, event: Self::Event, sched: &mut Scheduler<Self::Event>);
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
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
