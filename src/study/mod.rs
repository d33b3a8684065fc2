//! Studies: many variants of one scenario, run together.
//!
//! A study turns one scenario file into several *points* (the scenario with
//! some keys overridden, see [`overrides`]) and hands their replications to
//! an [`Executor`] (see [`tasks`]): locally, one rayon pool with
//! `(point, replication)` tasks flattened so that every core stays busy; on
//! a cluster, blocks of replications run elsewhere (`crate::cluster`). Replication `i` of every point is seeded from
//! `(scenario seed, i)` exactly as `wscap run` seeds it, so points share
//! their random numbers (common random numbers): differences between points
//! come from the change, not from luck. Results are collected in task
//! order, so they do not depend on the thread count.
//!
//! - [`compare`]: the same scenario under several balancing strategies, with
//!   paired confidence intervals of their differences.
//! - [`sweep`]: the grid product of `--set` values.
//! - [`plan`]: the smallest value of one integer key that meets SLOs, and
//!   the headroom of that deployment.
//!
//! Nothing here does I/O or reads a clock: progress is reported through a
//! callback.

pub mod compare;
pub mod overrides;
pub mod plan;
pub mod spof;
pub mod sweep;
pub mod tasks;

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::experiment::{self, Outcome, Replication, SimError};
use crate::scenario::{Scenario, ScenarioError};
use crate::time::SimTime;

pub use overrides::{Assign, Base, Key, OValue, Setting};
pub use tasks::{Executor, Local};

/// Why a study could not run. All but [`StudyError::Sim`] are the user's
/// to fix (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    /// A malformed argument (`--set`, `--vary`, `--slo`, `--strategies`).
    #[error("{arg}: {message}")]
    Arg { arg: String, message: String },
    /// The scenario rejected an overridden value.
    #[error("{arg}: the scenario rejects this value:\n{error}")]
    Rejected { arg: String, error: ScenarioError },
    /// The scenario file itself is invalid.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// A replication failed: a bug in wscap.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The executor could not run the batch (a cluster executor's error:
    /// the caller knows its type; `usage` says whether it is the user's to
    /// fix, e.g. a work folder of another study).
    #[error("{error}")]
    Executor {
        usage: bool,
        error: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl StudyError {
    /// A usage or scenario error rather than a failure of the simulator.
    pub fn is_usage(&self) -> bool {
        match self {
            StudyError::Sim(_) => false,
            StudyError::Executor { usage, .. } => *usage,
            _ => true,
        }
    }
}

/// One variant of the scenario.
#[derive(Clone, Debug)]
pub struct Point {
    pub assigns: Vec<Assign>,
    pub scenario: Scenario,
}

impl Point {
    /// `key=value, key=value` (or "as in the file").
    pub fn label(&self) -> String {
        if self.assigns.is_empty() {
            "as in the file".into()
        } else {
            self.assigns.iter().map(Assign::label).collect::<Vec<_>>().join(", ")
        }
    }
}

/// What a study reports while it runs.
#[derive(Clone, Copy, Debug)]
pub enum Tick {
    /// A batch starts: this many replications, this much simulated time in
    /// all.
    Batch { replications: u32, simulated_ns: u64 },
    /// A replication advanced its simulated clock by this many nanoseconds.
    Simulated(u64),
    /// A replication finished.
    Replication,
}

/// A progress callback (called from worker threads).
pub type Progress<'a> = &'a (dyn Fn(Tick) + Sync);

/// Ignores progress.
pub fn no_progress(_: Tick) {}

/// One job of a batch: the replications `reps` of a scenario.
pub struct Job<'a> {
    pub scenario: &'a Scenario,
    pub reps: Range<u32>,
}

/// Total simulated nanoseconds of a batch (for a progress bar's length).
pub fn simulated_ns(jobs: &[Job]) -> u64 {
    jobs.iter()
        .map(|j| {
            j.scenario
                .duration
                .0
                .saturating_mul(u64::from(j.reps.end - j.reps.start))
        })
        .fold(0u64, u64::saturating_add)
}

/// Runs every replication of every job on `exec`; returns each job's
/// replications in index order (the same whatever the executor).
pub fn run_batch(jobs: &[Job], exec: &dyn Executor, progress: Progress) -> Result<Vec<Vec<Replication>>, StudyError> {
    exec.run_batch(jobs, progress)
}

/// Runs every replication of every job in one pool of `threads` workers
/// (0 = one per core); returns each job's replications in index order.
pub fn run_local(jobs: &[Job], threads: usize, progress: Progress) -> Result<Vec<Vec<Replication>>, SimError> {
    let pool = crate::experiment::thread_pool(threads)?;
    progress(Tick::Batch {
        replications: jobs.iter().map(|j| j.reps.end.saturating_sub(j.reps.start)).sum(),
        simulated_ns: simulated_ns(jobs),
    });
    let tasks: Vec<(usize, u32)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(j, job)| job.reps.clone().map(move |i| (j, i)))
        .collect();
    // After a failure the remaining tasks are skipped.
    let failed = AtomicBool::new(false);
    let results: Vec<Option<Result<Replication, SimError>>> = pool.install(|| {
        tasks
            .par_iter()
            .map(|&(j, i)| {
                if failed.load(Ordering::Relaxed) {
                    return None;
                }
                let sc = jobs[j].scenario;
                let mut last = 0u64;
                let r = experiment::run_replication_observed(sc, i, |t: SimTime| {
                    progress(Tick::Simulated(t.0.saturating_sub(last)));
                    last = t.0;
                });
                progress(Tick::Simulated(sc.duration.0.saturating_sub(last)));
                progress(Tick::Replication);
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                Some(r)
            })
            .collect()
    });
    let mut out: Vec<Vec<Replication>> = jobs.iter().map(|_| vec![]).collect();
    let mut first_err = None;
    for (&(j, _), r) in tasks.iter().zip(results) {
        match r {
            Some(Ok(rep)) => out[j].push(rep),
            Some(Err(e)) => {
                first_err.get_or_insert(e);
            }
            None => {}
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Runs each point's replications `0..replications` (the scenario's count)
/// in one batch.
pub fn run_points(points: &[Point], exec: &dyn Executor, progress: Progress) -> Result<Vec<Outcome>, StudyError> {
    let jobs: Vec<Job> = points
        .iter()
        .map(|p| Job {
            scenario: &p.scenario,
            reps: 0..p.scenario.replications,
        })
        .collect();
    Ok(run_batch(&jobs, exec, progress)?.into_iter().map(outcome).collect())
}

/// An outcome from replications (aggregated).
pub fn outcome(replications: Vec<Replication>) -> Outcome {
    Outcome::new(replications)
}

/// The headline metrics of study tables and charts, in display order, with
/// a label and whether larger is better. Every other metric is still in the
/// CSVs.
pub const HEADLINE: [(&str, &str, bool); 12] = [
    ("connect_ms_p50", "connect p50 (ms)", false),
    ("connect_ms_p99", "connect p99 (ms)", false),
    ("move_ms_p50", "move p50 (ms)", false),
    ("move_ms_p99", "move p99 (ms)", false),
    ("spectator_ms_p99", "spectator p99 (ms)", false),
    ("refused_ratio", "refused ratio", false),
    ("clients_refused_ratio", "clients refused ratio", false),
    ("reconnects", "reconnects", false),
    ("imbalance_max_over_mean", "imbalance max/mean", false),
    ("jain_index", "Jain's index", true),
    ("relay_share", "relay share", false),
    ("moves_lost", "moves lost", false),
];

/// The headline metrics measured (not NaN) in at least one outcome.
pub fn headline_metrics(outcomes: &[Outcome]) -> Vec<(&'static str, &'static str, bool)> {
    HEADLINE
        .iter()
        .copied()
        .filter(|(m, ..)| {
            outcomes
                .iter()
                .any(|o| o.aggregate(m).is_some_and(|a| !a.mean.is_nan()))
        })
        .collect()
}

/// A metric's values over replications, NaN left out.
pub fn values(o: &Outcome, metric: &str) -> Vec<f64> {
    o.replications
        .iter()
        .filter_map(|r| r.metric(metric))
        .filter(|v| !v.is_nan())
        .collect()
}
