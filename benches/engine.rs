//! The event engine against the physical floor: a plain binary-heap loop.
//!
//! Two models, each written twice (a hand-written `BinaryHeap` loop, and a
//! `wscap::engine::Model`), and the M/M/c case a third time as a wscap
//! scenario through the whole simulator:
//! - "hold": `N` pending events; handling one schedules its successor an
//!   exponential time later (one pop + one push per event);
//! - "mmc": an M/M/c queue (c = 8, ρ = 0.9): arrivals and service
//!   completions, FIFO waiting line.
//!
//! Criterion reports events/s (elements/s); the engine should be within 2×
//! of the plain loop. Run: `cargo bench --bench engine`.

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

/// M/M/c parameters: 8 servers, λ = 7.2/s, μ = 1/s (ρ = 0.9).
const C: u32 = 8;
const LAMBDA: f64 = 7.2;

#[derive(Clone, Copy)]
enum MmcEv {
    Arrival,
    Departure,
}

fn plain_mmc() -> u64 {
    let mut rng = SimRng::seed_from_u64(2);
    let (arr, svc) = (Exp::new(LAMBDA / 1e9).unwrap(), Exp::new(1.0 / 1e9).unwrap());
    let mut heap: BinaryHeap<Reverse<(u64, u64, u8)>> = BinaryHeap::new();
    let (mut seq, mut busy, mut waiting, mut served) = (0u64, 0u32, 0u64, 0u64);
    heap.push(Reverse((arr.sample(&mut rng) as u64, seq, 0)));
    for _ in 0..EVENTS {
        let Reverse((t, _, kind)) = heap.pop().unwrap();
        seq += 1;
        if kind == 0 {
            heap.push(Reverse((t + arr.sample(&mut rng) as u64, seq, 0)));
            seq += 1;
            if busy < C {
                busy += 1;
                heap.push(Reverse((t + svc.sample(&mut rng) as u64, seq, 1)));
            } else {
                waiting += 1;
            }
        } else {
            served += 1;
            if waiting > 0 {
                waiting -= 1;
                heap.push(Reverse((t + svc.sample(&mut rng) as u64, seq, 1)));
            } else {
                busy -= 1;
            }
        }
    }
    served
}

struct Mmc {
    rng: SimRng,
    arr: Exp<f64>,
    svc: Exp<f64>,
    busy: u32,
    waiting: u64,
    served: u64,
}

impl Model for Mmc {
    type Event = MmcEv;
    fn handle(&mut self, ev: MmcEv, s: &mut Scheduler<MmcEv>) {
        match ev {
            MmcEv::Arrival => {
                s.after(SimDuration(self.arr.sample(&mut self.rng) as u64), MmcEv::Arrival);
                if self.busy < C {
                    self.busy += 1;
                    s.after(SimDuration(self.svc.sample(&mut self.rng) as u64), MmcEv::Departure);
                } else {
                    self.waiting += 1;
                }
            }
            MmcEv::Departure => {
                self.served += 1;
                if self.waiting > 0 {
                    self.waiting -= 1;
                    s.after(SimDuration(self.svc.sample(&mut self.rng) as u64), MmcEv::Departure);
                } else {
                    self.busy -= 1;
                }
            }
        }
    }
}

fn engine_mmc() -> u64 {
    let mut m = Mmc {
        rng: SimRng::seed_from_u64(2),
        arr: Exp::new(LAMBDA / 1e9).unwrap(),
        svc: Exp::new(1.0 / 1e9).unwrap(),
        busy: 0,
        waiting: 0,
        served: 0,
    };
    let mut s = Scheduler::new();
    s.at(SimTime(m.arr.sample(&mut m.rng) as u64), MmcEv::Arrival);
    engine::run(&mut m, &mut s, SimTime::MAX, EVENTS).unwrap();
    m.served
}

/// The same M/M/c as a wscap scenario: connection accepts are jobs on one
/// server's 8 cores, sessions are instantaneous.
fn mmc_scenario() -> wscap::scenario::Scenario {
    let src = format!(
        r#"
duration = "20000s"
replications = 1
sample_interval = "100s"
[servers]
count = 1
max_connections = 1000000
cores = {C}
connect_cost = {{ dist = "exponential", mean = "1s" }}
backend_latency = "1us"
[balancer]
balance = "leastconn"
[balancer.health_check]
enabled = false
[[population]]
name = "jobs"
role = "player"
arrival = {{ process = "poisson", rate = "{LAMBDA}/s" }}
session = "1us"
rtt = "2us"
"#
    );
    wscap::scenario::parse(&src, std::path::Path::new("mmc.toml"), "mmc", std::path::Path::new(".")).unwrap()
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

    let mut g = c.benchmark_group("mmc");
    g.sample_size(10);
    g.throughput(Throughput::Elements(EVENTS));
    g.bench_function("plain-binary-heap", |b| b.iter(|| black_box(plain_mmc())));
    g.bench_function("wscap-engine", |b| b.iter(|| black_box(engine_mmc())));
    let sc = mmc_scenario();
    let events = wscap::experiment::run_replication(&sc, 0).unwrap().events;
    g.throughput(Throughput::Elements(events));
    g.bench_function("wscap-simulator-scenario", |b| {
        b.iter(|| black_box(wscap::experiment::run_replication(&sc, 0).unwrap().events))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
