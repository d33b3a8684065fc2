//! The `wscap` command line: a thin layer over the library.
use std::path::PathBuf;
use anyhow::Result;
fn main() -> Result<()> {
    let path: PathBuf = std::env::args().nth(1).unwrap().into();
    let sc = wscap::scenario::load(&path)?;
    let t = std::time::Instant::now();
    let out = wscap::experiment::run(&sc, 0, &|| {})?;
    let el = t.elapsed().as_secs_f64();
    for a in &out.aggregate { println!("{:28} {:>14.4} ± {:.4}", a.name, a.mean, a.ci95); }
    println!("events {} in {:.3}s = {:.2} M/s", out.total_events(), el, out.total_events() as f64 / el / 1e6);
    for e in &out.replications[0].timeline { println!("{} {} {} {}", e.time, e.component, e.event, e.detail); }
    Ok(())
}
