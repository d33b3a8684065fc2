//! Tasks: a batch of jobs split into blocks of replications that can run
//! anywhere, and the executors that run them.
//!
//! A batch (see [`super::run_batch`]) is a list of jobs, each the
//! replications `reps` of one scenario. [`split`] cuts it into [`Task`]s:
//! up to `per_task` consecutive replications of one job, numbered from 0
//! in job order. Replication `i` of a scenario is seeded from
//! `(scenario seed, i)` whoever runs it, so a task's replications are the
//! same on a laptop, in a rayon pool or on a cluster node, and
//! [`assemble`] puts them back in job and index order: the outcome does
//! not depend on the executor, the task size or the thread count.
//!
//! An [`Executor`] runs a batch: [`Local`] on a rayon pool here; the
//! cluster executors (`crate::cluster`) write the tasks to a work folder,
//! have them run elsewhere and read their results back. Nothing here does
//! I/O.

use std::ops::Range;

use super::{Job, Progress, StudyError, run_local};
use crate::experiment::{Replication, SimError};

/// One block of replications of one job of a batch.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    /// The task's number in its batch (a job array's index).
    pub index: u32,
    /// The job (point) whose replications these are.
    pub job: usize,
    /// Replication indices, consecutive.
    pub reps: Range<u32>,
}

/// Splits a batch into tasks of at most `per_task` replications (0 counts
/// as 1), in job order then replication order; a task never spans jobs.
pub fn split(jobs: &[Job], per_task: u32) -> Vec<Task> {
    let per = per_task.max(1);
    let mut out = vec![];
    for (j, job) in jobs.iter().enumerate() {
        let mut start = job.reps.start;
        while start < job.reps.end {
            let end = start.saturating_add(per).min(job.reps.end);
            out.push(Task {
                index: out.len() as u32,
                job: j,
                reps: start..end,
            });
            start = end;
        }
    }
    out
}

/// Puts the tasks' results back into each job's replications in index
/// order. `results[k]` belongs to `tasks[k]`; a result with other
/// replications than its task's is an error naming the task.
pub fn assemble(jobs: &[Job], tasks: &[Task], results: Vec<Vec<Replication>>) -> Result<Vec<Vec<Replication>>, String> {
    if tasks.len() != results.len() {
        return Err(format!("{} tasks but {} results", tasks.len(), results.len()));
    }
    let mut out: Vec<Vec<Replication>> = jobs.iter().map(|_| vec![]).collect();
    for (t, reps) in tasks.iter().zip(results) {
        let got: Vec<u32> = reps.iter().map(|r| r.index).collect();
        if !got.iter().copied().eq(t.reps.clone()) {
            return Err(format!(
                "task {} should hold replications {:?} of job {} but holds {got:?}",
                t.index, t.reps, t.job
            ));
        }
        let Some(slot) = out.get_mut(t.job) else {
            return Err(format!("task {} names job {}, not in the batch", t.index, t.job));
        };
        slot.extend(reps);
    }
    for (j, (job, reps)) in jobs.iter().zip(&out).enumerate() {
        if !reps.iter().map(|r| r.index).eq(job.reps.clone()) {
            return Err(format!("job {j}: the tasks do not cover replications {:?}", job.reps));
        }
    }
    Ok(out)
}

/// Runs the replications of one task here (on `threads` workers, 0 = one
/// per core), in index order.
pub fn run_task(job: &Job, threads: usize, progress: Progress) -> Result<Vec<Replication>, SimError> {
    let mut v = run_local(std::slice::from_ref(job), threads, progress)?;
    Ok(v.pop().unwrap_or_default())
}

/// Runs a batch of jobs: each job's replications in index order.
pub trait Executor: Sync {
    fn run_batch(&self, jobs: &[Job], progress: Progress) -> Result<Vec<Vec<Replication>>, StudyError>;
}

/// Today's executor: one rayon pool of `threads` workers (0 = one per
/// core) on this machine.
#[derive(Clone, Copy, Debug)]
pub struct Local {
    pub threads: usize,
}

impl Executor for Local {
    fn run_batch(&self, jobs: &[Job], progress: Progress) -> Result<Vec<Vec<Replication>>, StudyError> {
        run_local(jobs, self.threads, progress).map_err(StudyError::Sim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_packs_replications_without_spanning_jobs() {
        let sc = crate::scenario::load(std::path::Path::new("scenarios/quickstart.toml")).unwrap();
        let jobs = [
            Job {
                scenario: &sc,
                reps: 0..5,
            },
            Job {
                scenario: &sc,
                reps: 2..3,
            },
        ];
        let t = split(&jobs, 2);
        let got: Vec<(u32, usize, Range<u32>)> = t.iter().map(|t| (t.index, t.job, t.reps.clone())).collect();
        assert_eq!(got, vec![(0, 0, 0..2), (1, 0, 2..4), (2, 0, 4..5), (3, 1, 2..3)]);
        assert_eq!(split(&jobs, 0).len(), 6);
        assert_eq!(split(&jobs, 100).len(), 2);
    }
}
