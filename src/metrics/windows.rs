//! Steady state and fault windows.
//!
//! After the warm-up the run is split into *fault windows* and *steady
//! state*. A fault's window opens at the fault's time and closes when its
//! component is back (see [`Restored`]) and the system is back in its
//! steady band (total connections no lower, interval connect p99 no higher
//! than before the fault) for [`SETTLE`] consecutive samples — or at the
//! latest [`CAP`] after the component is back, or when the next fault
//! starts. The rest after the warm-up is steady state.
//!
//! Windows are decided on the simulated clock, sample by sample, so
//! everything counted is routed to its window as it happens: attempts by
//! their start, moves by their send time, drops by their time. A window's
//! end is only ever set to a time not yet reached, so the window of a past
//! time never changes.

use hdrhistogram::Histogram;

use super::new_hist;
use crate::time::{SimDuration, SimTime};

/// Consecutive in-band samples that end a fault window.
pub const SETTLE: u32 = 3;
/// A fault window ends at the latest this long after its component is back.
pub const CAP: SimDuration = SimDuration::from_secs(300);
/// Pre-fault steady samples the band is computed from (the latest ones).
pub const BAND_SAMPLES: usize = 60;
/// Fewer steady samples than this before a fault: no band, the window ends
/// [`SETTLE`] samples after the component is back.
pub const MIN_BAND_SAMPLES: usize = 5;

/// The phase of a time: `NOT_COUNTED` during the warm-up, even numbers for
/// steady stretches, odd for fault windows (`2i+1` for the `i`-th fault by
/// start time).
pub type Phase = u16;
pub const NOT_COUNTED: Phase = Phase::MAX;

/// What one window counted.
#[derive(Clone, Debug)]
pub struct WindowStats {
    pub attempts: u64,
    pub accepted: u64,
    pub refused: u64,
    pub reconnects: u64,
    /// Distinct clients with an attempt started in the window (once per
    /// contiguous stretch of it), and of those the ones refused.
    pub clients: u64,
    pub clients_refused: u64,
    /// Clients that stopped retrying after an attempt of the window was refused.
    pub gave_up: u64,
    /// Connections dropped by a crash or stop in the window.
    pub dropped: u64,
    pub moves_sent: u64,
    pub moves_lost: u64,
    /// Moves at risk (validated, not yet durable) when the fault struck
    /// (fault windows of runs with a storage tier).
    pub moves_at_risk: Option<u64>,
    /// Latencies (µs) of the window's attempts and moves.
    pub connect: Histogram<u64>,
    pub moves: Histogram<u64>,
    pub spectators: Histogram<u64>,
}

impl Default for WindowStats {
    fn default() -> Self {
        WindowStats {
            attempts: 0,
            accepted: 0,
            refused: 0,
            reconnects: 0,
            clients: 0,
            clients_refused: 0,
            gave_up: 0,
            dropped: 0,
            moves_sent: 0,
            moves_lost: 0,
            moves_at_risk: None,
            connect: new_hist(),
            moves: new_hist(),
            spectators: new_hist(),
        }
    }
}

impl WindowStats {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &WindowStats) {
        self.attempts += o.attempts;
        self.accepted += o.accepted;
        self.refused += o.refused;
        self.reconnects += o.reconnects;
        self.clients += o.clients;
        self.clients_refused += o.clients_refused;
        self.gave_up += o.gave_up;
        self.dropped += o.dropped;
        self.moves_sent += o.moves_sent;
        self.moves_lost += o.moves_lost;
        self.connect.add(&o.connect).expect("same bounds");
        self.moves.add(&o.moves).expect("same bounds");
        self.spectators.add(&o.spectators).expect("same bounds");
    }
}

/// How a fault's window ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Ending {
    /// Still open at the end of the run.
    Open,
    /// Back in the steady band.
    Recovered,
    /// [`CAP`] after the component was back, not yet in the band.
    Capped,
    /// The next fault started first.
    NextFault,
}

/// One fault's window.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct FaultWindow {
    /// The fault's index in the scenario.
    pub fault: usize,
    pub start: SimTime,
    /// Exclusive end (`SimTime::MAX` while open).
    pub end: SimTime,
    /// When its component was back (see [`Restored`]).
    pub restored: Option<SimTime>,
    /// The first of the [`SETTLE`] in-band samples that closed it.
    pub recovered: Option<SimTime>,
    pub ending: Ending,
}

/// The steady band before a fault.
#[derive(Clone, Copy, Debug)]
struct Band {
    conns_low: f64,
    p99_high: Option<f64>,
}

/// The windows of one replication.
#[derive(Clone, Debug)]
pub struct Windows {
    warmup: SimTime,
    /// Fault windows by start time (ties: scenario order).
    pub faults: Vec<FaultWindow>,
    /// The first fault not yet judged closed.
    judging: usize,
    band: Option<Band>,
    band_for: usize,
    good_run: u32,
    first_good: SimTime,
}

/// One sample as the windows judge it.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    pub time: SimTime,
    pub connections: u64,
    /// Interval connect p99 (ms), `None` if nothing was accepted.
    pub connect_ms_p99: Option<f64>,
}

/// Whether a fault's component is back, asked at every sample while its
/// window is open (the simulator knows what "back" means for each kind).
pub trait Restored {
    fn restored(&self, fault: usize, since: SimTime, now: SimTime) -> bool;
}

impl Windows {
    /// `starts`: each scenario fault's time, in scenario order.
    pub fn new(warmup: SimTime, starts: &[SimTime]) -> Self {
        let mut faults: Vec<FaultWindow> = starts
            .iter()
            .enumerate()
            .map(|(fault, &start)| FaultWindow {
                fault,
                start,
                end: SimTime::MAX,
                restored: None,
                recovered: None,
                ending: Ending::Open,
            })
            .collect();
        faults.sort_by_key(|f| (f.start, f.fault));
        Windows {
            warmup,
            faults,
            judging: 0,
            band: None,
            band_for: usize::MAX,
            good_run: 0,
            first_good: SimTime::ZERO,
        }
    }

    pub fn warmup(&self) -> SimTime {
        self.warmup
    }

    /// The phase of time `t` (never changes once `t` has passed).
    #[inline]
    pub fn phase(&self, t: SimTime) -> Phase {
        if t < self.warmup {
            return NOT_COUNTED;
        }
        let p = self.faults.partition_point(|f| f.start <= t);
        if p == 0 {
            0
        } else if t < self.faults[p - 1].end {
            (2 * p - 1) as Phase
        } else {
            (2 * p) as Phase
        }
    }

    /// The stats slot of a counted phase: 0 for steady state, `1 + k` for
    /// the window of scenario fault `k`.
    #[inline]
    pub fn slot(&self, phase: Phase) -> usize {
        debug_assert!(phase != NOT_COUNTED);
        if phase.is_multiple_of(2) {
            0
        } else {
            1 + self.faults[(phase as usize - 1) / 2].fault
        }
    }

    /// The slot of time `t`, or `None` during the warm-up.
    #[inline]
    pub fn slot_at(&self, t: SimTime) -> Option<usize> {
        let p = self.phase(t);
        (p != NOT_COUNTED).then(|| self.slot(p))
    }

    /// Judges the open window at a sample. `history` holds the samples
    /// before this one (for the steady band).
    pub fn judge(&mut self, now: SimTime, reading: Reading, history: &[Reading], restored: &dyn Restored) {
        let Some(i) = (self.judging < self.faults.len()).then_some(self.judging) else {
            return;
        };
        let f = self.faults[i];
        if f.start >= now {
            return;
        }
        // The next fault has started: this window ends where it begins.
        if let Some(next) = self.faults.get(i + 1).map(|n| n.start)
            && next < now
        {
            let w = &mut self.faults[i];
            w.end = next;
            w.ending = Ending::NextFault;
            self.next_window();
            return self.judge(now, reading, history, restored);
        }
        if self.band_for != i {
            self.band = band(self.warmup, f.start, history, self);
            self.band_for = i;
        }
        let w = &mut self.faults[i];
        if w.restored.is_none() && restored.restored(w.fault, w.start, now) {
            w.restored = Some(now);
        }
        let Some(back) = w.restored else { return };
        let in_band = self.band.is_none_or(|b| {
            reading.connections as f64 >= b.conns_low
                && match (b.p99_high, reading.connect_ms_p99) {
                    (Some(hi), Some(p)) => p <= hi,
                    _ => true,
                }
        });
        if in_band {
            if self.good_run == 0 {
                self.first_good = now;
            }
            self.good_run += 1;
        } else {
            self.good_run = 0;
        }
        // `end` is just after `now`: whatever was counted at `now` stays in
        // the window, and nothing earlier changes window.
        let end = SimTime(now.0 + 1);
        if self.good_run >= SETTLE {
            w.end = end;
            w.recovered = Some(self.first_good);
            w.ending = Ending::Recovered;
            self.next_window();
        } else if now.since(back) >= CAP {
            w.end = end;
            w.ending = Ending::Capped;
            self.next_window();
        }
    }

    fn next_window(&mut self) {
        self.judging += 1;
        self.good_run = 0;
    }

    /// Seconds of steady state and of fault windows between the warm-up
    /// and `end`.
    pub fn durations(&self, end: SimTime) -> (f64, f64) {
        let total = end.0.saturating_sub(self.warmup.0);
        let faults: u64 = self
            .faults
            .iter()
            .map(|f| {
                let (a, b) = (f.start.max(self.warmup), f.end.min(end));
                b.0.saturating_sub(a.0)
            })
            .sum();
        let secs = |ns: u64| SimDuration(ns).as_secs_f64_to_ms();
        (secs(total - faults.min(total)), secs(faults.min(total)))
    }
}

/// The steady band from the steady samples (after the warm-up, before
/// `start`, not inside an earlier fault window): connections no lower than
/// mean − max(3 sd, 1 % of the mean), connect p99 no higher than mean +
/// max(3 sd, 10 % of the mean).
fn band(warmup: SimTime, start: SimTime, history: &[Reading], w: &Windows) -> Option<Band> {
    let steady: Vec<&Reading> = history
        .iter()
        .filter(|r| r.time > warmup && r.time <= start && w.phase(r.time).is_multiple_of(2))
        .collect();
    let steady = &steady[steady.len().saturating_sub(BAND_SAMPLES)..];
    if steady.len() < MIN_BAND_SAMPLES {
        return None;
    }
    let (m, sd) = mean_sd(steady.iter().map(|r| r.connections as f64));
    let p99: Vec<f64> = steady.iter().filter_map(|r| r.connect_ms_p99).collect();
    let p99_high = (p99.len() >= MIN_BAND_SAMPLES).then(|| {
        let (pm, psd) = mean_sd(p99.iter().copied());
        pm + (3.0 * psd).max(0.1 * pm)
    });
    Some(Band {
        conns_low: m - (3.0 * sd).max(0.01 * m),
        p99_high,
    })
}

fn mean_sd(xs: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = xs.clone().count() as f64;
    let m = xs.clone().sum::<f64>() / n;
    let v = xs.map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, v.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct BackAt(SimTime);
    impl Restored for BackAt {
        fn restored(&self, _: usize, _: SimTime, now: SimTime) -> bool {
            now >= self.0
        }
    }

    fn s(x: u64) -> SimTime {
        SimTime(x * 1_000_000_000)
    }

    fn reading(t: u64, conns: u64, p99: f64) -> Reading {
        Reading {
            time: s(t),
            connections: conns,
            connect_ms_p99: Some(p99),
        }
    }

    #[test]
    fn phases_split_warmup_steady_and_faults() {
        let mut w = Windows::new(s(10), &[s(50), s(20)]);
        assert_eq!(w.phase(s(5)), NOT_COUNTED);
        assert_eq!(w.slot_at(s(15)), Some(0));
        // Sorted by start: fault 1 (20 s) first, then fault 0 (50 s).
        assert_eq!(w.slot_at(s(20)), Some(2));
        assert_eq!(w.slot_at(s(49)), Some(2));
        assert_eq!(w.slot_at(s(50)), Some(1));
        w.faults[0].end = s(30);
        assert_eq!(w.slot_at(s(30)), Some(0));
        assert_eq!(w.phase(s(30)), 2);
        assert_eq!(w.phase(s(29)), 1);
        assert_eq!(w.phase(s(60)), 3);
    }

    #[test]
    fn window_closes_after_settle_in_band_samples() {
        let mut w = Windows::new(s(0), &[s(100)]);
        let mut hist: Vec<Reading> = (1..=99)
            .map(|t| reading(t, 1000 + t % 3, 50.0 + (t % 5) as f64))
            .collect();
        let back = BackAt(s(130));
        // Connections down and latency up until 140, back from 141 on.
        for t in 100..200 {
            let r = if t < 141 {
                reading(t, 900, 3000.0)
            } else {
                reading(t, 1001, 52.0)
            };
            w.judge(s(t), r, &hist, &back);
            hist.push(r);
        }
        let f = w.faults[0];
        assert_eq!(f.restored, Some(s(130)));
        assert_eq!(f.recovered, Some(s(141)));
        assert_eq!(f.ending, Ending::Recovered);
        assert_eq!(f.end, SimTime(s(143).0 + 1));
        let (steady, faults) = w.durations(s(200));
        assert!((faults - 43.0).abs() < 1e-6 && (steady - 157.0).abs() < 1e-6);
    }

    #[test]
    fn window_is_capped_after_the_component_is_back() {
        let mut w = Windows::new(s(0), &[s(100)]);
        let mut hist: Vec<Reading> = (1..=99).map(|t| reading(t, 1000, 50.0)).collect();
        let back = BackAt(s(110));
        for t in 100..1000 {
            let r = reading(t, 500, 50.0);
            w.judge(s(t), r, &hist, &back);
            hist.push(r);
        }
        let f = w.faults[0];
        assert_eq!(f.ending, Ending::Capped);
        assert_eq!(f.end, SimTime(s(410).0 + 1));
    }

    #[test]
    fn next_fault_ends_the_window() {
        let mut w = Windows::new(s(0), &[s(100), s(120)]);
        let hist: Vec<Reading> = (1..=99).map(|t| reading(t, 1000, 50.0)).collect();
        let never = BackAt(SimTime::MAX);
        for t in 100..130 {
            w.judge(s(t), reading(t, 10, 50.0), &hist, &never);
        }
        assert_eq!(w.faults[0].ending, Ending::NextFault);
        assert_eq!(w.faults[0].end, s(120));
        assert_eq!(w.faults[1].ending, Ending::Open);
    }
}
