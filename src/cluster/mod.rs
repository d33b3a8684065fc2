//! Running a study's tasks elsewhere: on a Slurm cluster as one job array
//! per batch, or by hand / by another scheduler (a Kubernetes Indexed Job,
//! AWS Batch array job) with `wscap task` and `wscap merge`.
//!
//! This module is the I/O around the simulation, never part of it: it
//! writes a batch's task manifest ([`workdir::Manifest`]) into a *work
//! folder*, runs `sbatch`/`squeue` ([`slurm`]), writes each task's result
//! atomically and reads them back. What a task is (a block of
//! replications) and how results are put back in order is
//! `crate::study::tasks`, which does no I/O; the simulation does not know
//! this module exists.
//!
//! **Work folder.** `OUT/.wscap-work/` ([`WORK_DIR`]) beside the outputs:
//! `study.json` (the command, to merge again), and per batch (plan runs
//! several) `batch-K/manifest.json`, `batch-K/results/task-I.bin`,
//! `batch-K/logs/task-I.{out,err}` (Slurm's), `batch-K/jobs.txt` (the job
//! arrays submitted). It is carried into the new outputs when they are
//! swapped into place (see `crate::report::carry_work_folder`).
//!
//! **Invariant.** A task's replications are seeded as everywhere else, its
//! result is serialized losslessly (postcard: f64 as their 8 bytes), and
//! merging puts them back in index order: the outputs are byte-identical
//! to `--executor local`'s.

pub mod executor;
pub mod slurm;
pub mod workdir;

use std::path::PathBuf;

pub use executor::{Mode, WorkExecutor};
pub use slurm::SlurmOptions;

/// The work folder's name inside the output folder.
pub const WORK_DIR: &str = ".wscap-work";

/// Environment variables holding an array task's index, in the order they
/// are read: Slurm job arrays, Kubernetes Indexed Jobs, AWS Batch array jobs.
pub const INDEX_ENV: [&str; 3] = [
    "SLURM_ARRAY_TASK_ID",
    "JOB_COMPLETION_INDEX",
    "AWS_BATCH_JOB_ARRAY_INDEX",
];

/// A failed task: its index, the tail of its standard error, and the
/// command that reruns it.
#[derive(Debug, Clone)]
pub struct TaskFailure {
    pub index: u32,
    pub stderr_tail: String,
    pub command: String,
}

/// Why a cluster step failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{}: not a wscap {what}: {message}", path.display())]
    Decode {
        path: PathBuf,
        what: &'static str,
        message: String,
    },
    /// A task result that belongs to another study (user's to fix).
    #[error(
        "{}: task {index}'s result comes from another {what} ({found}, this manifest has {expected}): \
         remove it and rerun the task (`{command}`)",
        path.display()
    )]
    Foreign {
        path: PathBuf,
        index: u32,
        what: &'static str,
        found: String,
        expected: String,
        command: String,
    },
    /// The work folder holds an unfinished study other than this one.
    #[error(
        "{}: holds the unfinished tasks of another study ({differs}); \
         remove that folder to start this one there, or give another --out",
        work.display()
    )]
    OtherStudy { work: PathBuf, differs: String },
    /// `wscap merge` of a work folder whose scenario changed since.
    #[error(
        "{}: its tasks were written for another scenario ({differs}): the scenario file or the \
         command changed since; run the study again (it resumes only with the same scenario)",
        work.display()
    )]
    Changed { work: PathBuf, differs: String },
    /// A manifest written by another wscap version.
    #[error("{}: written by wscap {found}, this is wscap {expected}: run its tasks with that version", path.display())]
    Version {
        path: PathBuf,
        found: String,
        expected: String,
    },
    /// `wscap merge` with tasks not done.
    #[error(
        "{}: {} of {} tasks have no result yet (indices {}); run them, e.g. `{}`, then merge again",
        work.display(), missing.len(), total, ranges(missing), command
    )]
    Missing {
        work: PathBuf,
        missing: Vec<u32>,
        total: usize,
        command: String,
    },
    /// Tasks of a job array ended without a result.
    #[error("{}", failed_message(job, failures))]
    Failed { job: String, failures: Vec<TaskFailure> },
    #[error("sbatch failed: {0}")]
    Sbatch(String),
    #[error("squeue failed: {0}")]
    Squeue(String),
    #[error(
        "job array {job} still running after {limit_s} s (--wait-limit): its tasks keep running; rerun the same command later to merge them"
    )]
    Timeout { job: String, limit_s: u64 },
    /// `--executor prepare`: the tasks are written, nothing was run.
    #[error("{tasks} tasks written to {}", work.display())]
    Prepared { work: PathBuf, tasks: usize },
    #[error("{0}")]
    Index(String),
    #[error("a scenario does not survive its JSON round trip (a bug in wscap): {0}")]
    RoundTrip(String),
    #[error(transparent)]
    Sim(#[from] crate::experiment::SimError),
}

impl ClusterError {
    /// The user's to fix (exit status 2): results of another study, an
    /// unfinished study in the way, a bad index, tasks missing at a merge.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ClusterError::Foreign { .. }
                | ClusterError::OtherStudy { .. }
                | ClusterError::Changed { .. }
                | ClusterError::Version { .. }
                | ClusterError::Missing { .. }
                | ClusterError::Index(_)
        )
    }
}

fn failed_message(job: &str, failures: &[TaskFailure]) -> String {
    let mut s = format!(
        "{} task(s) of job array {job} ended without a result (rerun the same command to run only them again):",
        failures.len()
    );
    for f in failures {
        s.push_str(&format!("\n  task {}: rerun with `{}`", f.index, f.command));
        if f.stderr_tail.trim().is_empty() {
            s.push_str("\n    (no standard error: cancelled, or killed before it wrote any)");
        } else {
            for line in f.stderr_tail.lines() {
                s.push_str(&format!("\n    | {line}"));
            }
        }
    }
    s
}

/// Indices as ranges: `0-3,7,9-12`.
pub fn ranges(indices: &[u32]) -> String {
    let mut out: Vec<String> = vec![];
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

/// The task index: `--index` if given, else the first of [`INDEX_ENV`]
/// set. `env` reads a variable (the process environment in `wscap task`).
pub fn task_index(flag: Option<u32>, env: impl Fn(&str) -> Option<String>) -> Result<u32, ClusterError> {
    if let Some(i) = flag {
        return Ok(i);
    }
    for name in INDEX_ENV {
        if let Some(v) = env(name) {
            return v
                .trim()
                .parse::<u32>()
                .map_err(|_| ClusterError::Index(format!("{name}={v:?} is not a task index (a whole number)")));
        }
    }
    Err(ClusterError::Index(format!(
        "no task index: give --index I, or run as an array task ({} set)",
        INDEX_ENV.join(", ")
    )))
}

/// `'text'` for a POSIX shell (unchanged when it needs no quotes).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || "-_.=,:/+@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_compress_runs() {
        assert_eq!(ranges(&[0, 1, 2, 3, 7, 9, 10]), "0-3,7,9-10");
        assert_eq!(ranges(&[]), "");
        assert_eq!(ranges(&[5]), "5");
    }

    #[test]
    fn index_from_flag_then_each_variable() {
        let none = |_: &str| None;
        assert_eq!(task_index(Some(4), none).unwrap(), 4);
        assert!(task_index(None, none).unwrap_err().is_usage());
        for name in INDEX_ENV {
            let env = |n: &str| (n == name).then(|| "7".to_string());
            assert_eq!(task_index(None, env).unwrap(), 7, "{name}");
            let bad = |n: &str| (n == name).then(|| "x".to_string());
            let e = task_index(None, bad).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
        // --index wins over the environment.
        assert_eq!(task_index(Some(1), |_| Some("9".into())).unwrap(), 1);
    }
}
