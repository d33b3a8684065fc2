//! The event engine against the physical floor: a plain binary-heap loop.
//!
//! Both run the classic "hold" model: `N` pending events; handling one
//! schedules its successor an exponential time later, so the queue stays at
//! `N` and every event costs one pop and one push. Criterion reports
//! events/s (elements/s) for each; the engine should be within 2× of the
//! plain loop. Run: `cargo bench --bench engine`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_distr::{Distribution, Exp};
use wscap::engine::{self, Model, Scheduler};
use wscap::rng::SimRng;
use wscap::time::{SimDuration, SimTime};

const EVENTS: u64 = 1_000_000;

/// Mean gap between an event and its successor: 1 ms.
fn exp() -> Exp<f64> {
    Exp::new(1.0 / 1e6).unwrap()
}

fn plain_heap(pending: u32) -> u64 {
    let mut rng = SimRng::seed_from_u64(1);
    let e = exp();
    let mut heap = BinaryHeap::new();
    let mut seq = 0u64;
    for i in 0..pending {
        heap.push(Reverse((e.sample(&mut rng) as u64, seq, i)));
        seq += 1;
    }
    let mut checksum = 0u64;
    for _ in 0..EVENTS {
        let Reverse((t, _, id)) = heap.pop().unwrap();
        checksum = checksum.wrapping_add(id as u64);
        heap.push(Reverse((t + e.sample(&mut rng) as u64, seq, id)));
        seq += 1;
    }
    checksum
}

struct Hold {
    rng: SimRng,
    exp: Exp<f64>,
    checksum: u64,
}

#[derive(Clone, Copy)]
enum Ev {
    Tick { id: u32 },
}

impl Model for Hold {
    type Event = Ev;
    fn handle(&mut self, ev: Ev, s: &mut Scheduler<Ev>) {
        let Ev::Tick { id } = ev;
        self.checksum = self.checksum.wrapping_add(id as u64);
        s.after(SimDuration(self.exp.sample(&mut self.rng) as u64), Ev::Tick { id });
    }
}

fn wscap_engine(pending: u32) -> u64 {
    let mut m = Hold {
        rng: SimRng::seed_from_u64(1),
        exp: exp(),
        checksum: 0,
    };
    let mut s = Scheduler::new();
    for id in 0..pending {
        let t = m.exp.sample(&mut m.rng) as u64;
        s.at(SimTime(t), Ev::Tick { id });
    }
    engine::run(&mut m, &mut s, SimTime::MAX, EVENTS).unwrap();
    m.checksum
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("hold");
    g.throughput(Throughput::Elements(EVENTS));
    g.sample_size(10);
    for pending in [1_000u32, 100_000] {
        g.bench_function(format!("plain-binary-heap/{pending}-pending"), |b| {
            b.iter(|| black_box(plain_heap(pending)))
        });
        g.bench_function(format!("wscap-engine/{pending}-pending"), |b| {
            b.iter(|| black_box(wscap_engine(pending)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
