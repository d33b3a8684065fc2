//! Slurm: one job array per batch (`sbatch --array`), watched with
//! `squeue` until it leaves the queue.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::workdir::BatchDir;
use super::{ClusterError, ranges, shell_quote};

/// How batches are submitted.
#[derive(Clone, Debug)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` of each array element (Slurm's syntax, e.g. 30:00).
    pub time_limit: Option<String>,
    /// Replications packed into one array element.
    pub tasks_per_element: u32,
    /// At most this many elements running at once (`%M`).
    pub max_concurrent: Option<u32>,
    /// Other sbatch arguments, passed as given.
    pub sbatch_args: Vec<String>,
    /// Time between two `squeue` polls.
    pub poll: Duration,
    /// Give up waiting after this long (the array keeps running).
    pub wait_limit: Duration,
}

impl Default for SlurmOptions {
    fn default() -> SlurmOptions {
        SlurmOptions {
            partition: None,
            time_limit: None,
            tasks_per_element: 1,
            max_concurrent: None,
            sbatch_args: vec![],
            poll: Duration::from_secs(1),
            wait_limit: Duration::from_secs(24 * 3600),
        }
    }
}

/// The `sbatch` arguments submitting `indices` of the batch in `batch` as
/// one array whose elements run `exe task DIR`.
pub fn sbatch_args(opts: &SlurmOptions, batch: &BatchDir, indices: &[u32], exe: &Path, name: &str) -> Vec<String> {
    let mut array = ranges(indices);
    if let Some(m) = opts.max_concurrent {
        array.push_str(&format!("%{m}"));
    }
    let logs = batch.logs();
    let mut args = vec![
        "--parsable".to_string(),
        format!("--array={array}"),
        format!("--job-name={name}"),
        format!("--output={}", logs.join("task-%a.out").display()),
        format!("--error={}", logs.join("task-%a.err").display()),
    ];
    if let Some(p) = &opts.partition {
        args.push(format!("--partition={p}"));
    }
    if let Some(t) = &opts.time_limit {
        args.push(format!("--time={t}"));
    }
    args.extend(opts.sbatch_args.iter().cloned());
    args.push(format!(
        "--wrap=exec {} task {}",
        shell_quote(&exe.to_string_lossy()),
        shell_quote(&batch.dir.to_string_lossy())
    ));
    args
}

/// Submits the array; returns its job id.
pub fn submit(args: &[String]) -> Result<String, ClusterError> {
    let out = Command::new("sbatch")
        .args(args)
        .output()
        .map_err(|e| ClusterError::Sbatch(format!("cannot run sbatch: {e}")))?;
    if !out.status.success() {
        return Err(ClusterError::Sbatch(format!(
            "{} ({}): {}",
            out.status,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    // --parsable: "JOBID" or "JOBID;CLUSTER".
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(ClusterError::Sbatch(format!("unexpected output {:?}", text.trim())));
    }
    Ok(id)
}

/// Whether job `id` (any of its array elements) is still in the queue.
pub fn in_queue(id: &str) -> Result<bool, ClusterError> {
    let out = Command::new("squeue")
        .args(["-h", "-j", id, "-o", "%i %T"])
        .output()
        .map_err(|e| ClusterError::Squeue(format!("cannot run squeue: {e}")))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // A job purged from slurmctld's memory is no longer known.
        if stderr.contains("Invalid job id") {
            return Ok(false);
        }
        return Err(ClusterError::Squeue(format!("{}: {}", out.status, stderr.trim())));
    }
    Ok(!String::from_utf8_lossy(&out.stdout).trim().is_empty())
}

/// Waits until job `id` leaves the queue, calling `tick` after every poll;
/// bounded by `opts.wait_limit`.
pub fn wait(id: &str, opts: &SlurmOptions, mut tick: impl FnMut()) -> Result<(), ClusterError> {
    let started = Instant::now();
    loop {
        tick();
        if !in_queue(id)? {
            tick();
            return Ok(());
        }
        if started.elapsed() >= opts.wait_limit {
            return Err(ClusterError::Timeout {
                job: id.to_string(),
                limit_s: opts.wait_limit.as_secs(),
            });
        }
        std::thread::sleep(opts.poll);
    }
}
