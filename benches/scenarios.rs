//! Whole bundled scenarios, one replication each, single-threaded.
//! Criterion reports simulated events per second. Run:
//! `cargo bench --bench scenarios`. (For wall time and peak memory of a
//! full run, use `wscap run FILE --threads 1`, which prints both.)

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wscap::experiment::run_replication;
use wscap::scenario;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("scenario");
    g.sample_size(10);
    for file in [
        "scenarios/quickstart.toml",
        "scenarios/150k-players.toml",
        "scenarios/1m-spectators.toml",
        "scenarios/replica-lag.toml",
        "scenarios/mmc.toml",
    ] {
        let sc = scenario::load(Path::new(file)).expect("bundled scenario loads");
        let events = run_replication(&sc, 0).expect("runs").events;
        g.throughput(Throughput::Elements(events));
        g.bench_function(sc.name.clone(), |b| {
            b.iter(|| black_box(run_replication(&sc, 0).unwrap().events))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
