//! The work-folder executor: each batch of a study becomes a task manifest
//! in the work folder; its tasks are run by Slurm (`Mode::Slurm`), or by
//! someone else (`Mode::Prepare` writes them and stops), and their results
//! are merged (`Mode::Merge` only merges). Re-running the same study on the
//! same work folder reuses every task result there and runs only the rest.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use super::slurm::{self, SlurmOptions};
use super::workdir::{BatchDir, Manifest, Study, TaskResult, write_atomic};
use super::{ClusterError, TaskFailure, ranges};
use crate::experiment::Replication;
use crate::study::tasks::{self, Executor, Task};
use crate::study::{Job, Progress, StudyError, Tick, simulated_ns};

/// What the executor does with the tasks it has no result for.
#[derive(Clone, Debug)]
pub enum Mode {
    /// Submit them as one Slurm job array per batch and wait.
    Slurm(SlurmOptions),
    /// Write the manifest (tasks of `per_task` replications) and stop
    /// ([`ClusterError::Prepared`]): someone else runs `wscap task`.
    Prepare { per_task: u32 },
    /// Run nothing: merge, or list what is missing.
    Merge,
}

/// A marker written once the study's outputs are written: a later study
/// may then replace the work folder.
const COMPLETE: &str = "complete";

/// Runs batches through a work folder (see the module doc).
pub struct WorkExecutor {
    pub mode: Mode,
    /// The work folder (absolute).
    pub work: PathBuf,
    pub study: Study,
    /// The folder scenario file paths are relative to (absolute).
    pub base_dir: PathBuf,
    /// The binary array elements run (`wscap task`).
    pub exe: PathBuf,
    /// The job name (`wscap-<scenario>`).
    pub name: String,
    /// Where messages go (printed above the progress bar).
    pub note: Box<dyn Fn(&str) + Sync + Send>,
    next_batch: AtomicU32,
    lock: Mutex<()>,
}

impl WorkExecutor {
    pub fn new(
        mode: Mode,
        work: PathBuf,
        study: Study,
        base_dir: PathBuf,
        exe: PathBuf,
        name: String,
        note: Box<dyn Fn(&str) + Sync + Send>,
    ) -> WorkExecutor {
        WorkExecutor {
            mode,
            work,
            study,
            base_dir,
            exe,
            name,
            note,
            next_batch: AtomicU32::new(0),
            lock: Mutex::new(()),
        }
    }

    fn per_task(&self) -> u32 {
        match &self.mode {
            Mode::Slurm(o) => o.tasks_per_element,
            Mode::Prepare { per_task } => *per_task,
            Mode::Merge => 1,
        }
    }

    /// Marks the study's outputs as written.
    pub fn finish(&self) -> Result<(), ClusterError> {
        write_atomic(&self.work.join(COMPLETE), b"outputs written\n")
    }

    /// Batch 0: a work folder of another study is replaced when that study
    /// is complete, refused otherwise; then `study.json` is (re)written.
    fn start(&self, fresh: &Manifest) -> Result<(), ClusterError> {
        let bd = BatchDir::new(&self.work, 0);
        if bd.manifest().is_file() {
            let old = Manifest::read(&bd.manifest())?;
            let differs = fresh.differences(&old);
            if !differs.is_empty() && !same_study(&old, fresh) {
                if matches!(self.mode, Mode::Merge) {
                    return Err(ClusterError::Changed {
                        work: self.work.clone(),
                        differs,
                    });
                }
                if self.work.join(COMPLETE).is_file() {
                    (self.note)(&format!(
                        "{}: replacing the work folder of a finished study ({differs})",
                        self.work.display()
                    ));
                    std::fs::remove_dir_all(&self.work).map_err(|error| ClusterError::Io {
                        path: self.work.clone(),
                        error,
                    })?;
                } else {
                    return Err(ClusterError::OtherStudy {
                        work: self.work.clone(),
                        differs,
                    });
                }
            }
        }
        if !matches!(self.mode, Mode::Merge) {
            let mut bytes = serde_json::to_vec_pretty(&self.study).expect("a study serializes");
            bytes.push(b'\n');
            write_atomic(&self.work.join("study.json"), &bytes)?;
            let _ = std::fs::remove_file(self.work.join(COMPLETE));
        }
        Ok(())
    }

    fn batch(&self, jobs: &[Job], progress: Progress) -> Result<Vec<Vec<Replication>>, ClusterError> {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let k = self.next_batch.fetch_add(1, Ordering::SeqCst);
        let bd = BatchDir::new(&self.work, k);
        let fresh = Manifest::new(k, jobs, self.per_task(), &self.base_dir)?;
        if k == 0 {
            self.start(&fresh)?;
        }
        let manifest = if bd.manifest().is_file() {
            let old = Manifest::read(&bd.manifest())?;
            if !same_study(&old, &fresh) || !covers(&old.tasks, jobs) {
                let differs = fresh.differences(&old);
                return Err(if matches!(self.mode, Mode::Merge) {
                    ClusterError::Changed {
                        work: bd.dir.clone(),
                        differs,
                    }
                } else {
                    ClusterError::OtherStudy {
                        work: bd.dir.clone(),
                        differs,
                    }
                });
            }
            old
        } else {
            if matches!(self.mode, Mode::Merge) {
                let all: Vec<u32> = fresh.tasks.iter().map(|t| t.index).collect();
                return Err(ClusterError::Missing {
                    work: bd.dir.clone(),
                    total: all.len(),
                    command: "the study's command again (with --executor slurm or prepare)".into(),
                    missing: all,
                });
            }
            write_atomic(&bd.manifest(), &fresh.to_bytes())?;
            fresh
        };
        let id = manifest.id();
        let total_reps: u32 = jobs.iter().map(|j| j.reps.end.saturating_sub(j.reps.start)).sum();
        progress(Tick::Batch {
            replications: total_reps,
            simulated_ns: simulated_ns(jobs),
        });
        let done = |t: &Task| {
            let d = jobs[t.job].scenario.duration.0;
            for _ in t.reps.clone() {
                progress(Tick::Simulated(d));
                progress(Tick::Replication);
            }
        };
        let mut results: Vec<Option<TaskResult>> = vec![];
        for t in &manifest.tasks {
            let r = bd.load_result(&manifest, &id, t.index)?;
            if r.is_some() {
                done(t);
            }
            results.push(r);
        }
        let missing: Vec<u32> = manifest
            .tasks
            .iter()
            .filter(|t| results[t.index as usize].is_none())
            .map(|t| t.index)
            .collect();
        if !missing.is_empty() {
            match &self.mode {
                Mode::Merge => {
                    return Err(ClusterError::Missing {
                        work: bd.dir.clone(),
                        total: manifest.tasks.len(),
                        command: bd.rerun_command(missing[0]),
                        missing,
                    });
                }
                Mode::Prepare { .. } => {
                    return Err(ClusterError::Prepared {
                        work: bd.dir.clone(),
                        tasks: manifest.tasks.len(),
                    });
                }
                Mode::Slurm(opts) => {
                    self.submit_and_wait(opts, &bd, &manifest, &id, &missing, &mut results, &done)?;
                }
            }
        }
        let results: Vec<Vec<Replication>> = results
            .into_iter()
            .map(|r| r.map(|r| r.replications).unwrap_or_default())
            .collect();
        tasks::assemble(jobs, &manifest.tasks, results).map_err(|message| ClusterError::Decode {
            path: bd.dir.clone(),
            what: "batch",
            message,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn submit_and_wait(
        &self,
        opts: &SlurmOptions,
        bd: &BatchDir,
        manifest: &Manifest,
        id: &str,
        missing: &[u32],
        results: &mut [Option<TaskResult>],
        done: &dyn Fn(&Task),
    ) -> Result<(), ClusterError> {
        // Fresh logs for the tasks run again.
        for &i in missing {
            let _ = std::fs::remove_file(bd.stderr(i));
            let _ = std::fs::remove_file(bd.logs().join(format!("task-{i}.out")));
        }
        std::fs::create_dir_all(bd.logs()).map_err(|error| ClusterError::Io { path: bd.logs(), error })?;
        let args = slurm::sbatch_args(opts, bd, missing, &self.exe, &self.name);
        let job = slurm::submit(&args)?;
        let line = format!("{job} {}\n", ranges(missing));
        let jobs_file = bd.dir.join("jobs.txt");
        let mut log = std::fs::read(&jobs_file).unwrap_or_default();
        log.extend(line.as_bytes());
        write_atomic(&jobs_file, &log)?;
        (self.note)(&format!(
            "submitted Slurm job array {job}: {} of {} tasks ({}), work folder {}",
            missing.len(),
            manifest.tasks.len(),
            ranges(missing),
            bd.dir.display()
        ));
        let mut pending: Vec<u32> = missing.to_vec();
        let mut first_error: Option<ClusterError> = None;
        let mut collect = |pending: &mut Vec<u32>, results: &mut [Option<TaskResult>]| {
            pending.retain(|&i| {
                if !bd.result(i).exists() {
                    return true;
                }
                match bd.load_result(manifest, id, i) {
                    Ok(Some(r)) => {
                        done(&manifest.tasks[i as usize]);
                        results[i as usize] = Some(r);
                        false
                    }
                    Ok(None) => true,
                    Err(e) => {
                        first_error.get_or_insert(e);
                        false
                    }
                }
            });
        };
        slurm::wait(&job, opts, || collect(&mut pending, results))?;
        collect(&mut pending, results);
        if let Some(e) = first_error {
            return Err(e);
        }
        if !pending.is_empty() {
            let failures = pending
                .iter()
                .map(|&i| TaskFailure {
                    index: i,
                    stderr_tail: super::workdir::tail(&bd.stderr(i), 10),
                    command: bd.rerun_command(i),
                })
                .collect();
            return Err(ClusterError::Failed { job, failures });
        }
        Ok(())
    }
}

/// Same wscap version and scenarios.
fn same_study(a: &Manifest, b: &Manifest) -> bool {
    a.wscap_version == b.wscap_version && a.scenario_hash == b.scenario_hash && a.format == b.format
}

/// Whether `tasks` cover exactly each job's replications.
fn covers(tasks: &[Task], jobs: &[Job]) -> bool {
    jobs.iter().enumerate().all(|(j, job)| {
        let mut reps: Vec<u32> = tasks
            .iter()
            .filter(|t| t.job == j)
            .flat_map(|t| t.reps.clone())
            .collect();
        reps.sort_unstable();
        reps.into_iter().eq(job.reps.clone())
    }) && tasks.iter().all(|t| t.job < jobs.len())
        && tasks.iter().enumerate().all(|(k, t)| t.index as usize == k)
}

impl Executor for WorkExecutor {
    fn run_batch(&self, jobs: &[Job], progress: Progress) -> Result<Vec<Vec<Replication>>, StudyError> {
        self.batch(jobs, progress).map_err(|e| StudyError::Executor {
            usage: e.is_usage(),
            error: Box::new(e),
        })
    }
}
