//! The event engine: a future-event list ordered by (time, insertion sequence)
//! and a bounded run loop.
//!
//! The engine knows nothing of clients, balancers or servers: it moves a
//! generic event type `E` from the queue to a [`Model`]. Ties in time are broken
//! by insertion order, so a run is a pure function of its inputs. Every run has
//! two bounds, simulated time and number of events, so no loop is unbounded.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

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

/// The future-event list and the clock. Models schedule through it.
pub struct Scheduler<E> {
    heap: BinaryHeap<Entry<E>>,
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
            seq: 0,
            now: SimTime::ZERO,
        }
    }

    /// The current simulated time.
    #[inline]
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Schedules `event` at absolute time `at`; a time in the past is moved to
    /// now (the clock never goes backwards).
    #[inline]
    pub fn at(&mut self, at: SimTime, event: E) {
        let time = at.0.max(self.now.0);
        self.heap.push(Entry {
            time,
            seq: self.seq,
            event,
        });
        self.seq += 1;
    }

    /// Schedules `event` after `delay` from now.
    #[inline]
    pub fn after(&mut self, delay: SimDuration, event: E) {
        self.at(self.now + delay, event);
    }

    /// Number of events waiting.
    pub fn pending(&self) -> usize {
        self.heap.len()
    }

    #[inline]
    fn pop(&mut self) -> Option<(SimTime, E)> {
        self.heap.pop().map(|e| (SimTime(e.time), e.event))
    }

    #[inline]
    fn peek_time(&self) -> Option<SimTime> {
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
    #[error("simulated clock went backwards: {from} -> {to}")]
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
    let mut events = 0u64;
    let stop = loop {
        match sched.peek_time() {
            None => break StopReason::Drained,
            Some(t) if t > until => break StopReason::EndTime,
            Some(_) => {}
        }
        if events >= max_events {
            break StopReason::EventLimit;
        }
        let (t, ev) = sched.pop().expect("peeked");
        if t < sched.now {
            return Err(EngineError::ClockBackwards { from: sched.now, to: t });
        }
        sched.now = t;
        model.handle(ev, sched);
        events += 1;
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
    fn past_times_are_clamped_to_now() {
        let mut s: Scheduler<u32> = Scheduler::new();
        s.now = SimTime(50);
        s.at(SimTime(10), 1);
        assert_eq!(s.peek_time(), Some(SimTime(50)));
    }
}
