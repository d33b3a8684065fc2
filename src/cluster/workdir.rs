//! The work folder's files: the study (`study.json`), each batch's task
//! manifest (`batch-K/manifest.json`) and task results
//! (`batch-K/results/task-I.bin`), every one written atomically (a
//! temporary file in the same folder, then a rename).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ClusterError, shell_quote};
use crate::experiment::Replication;
use crate::scenario::Scenario;
use crate::study::Job;
use crate::study::tasks::{self, Task};

/// The version of wscap that wrote a file; a result of another version is
/// refused (its numbers could differ).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The format of the work folder's files.
pub const FORMAT: u32 = 1;

/// First bytes of a task result file.
const MAGIC: &[u8] = b"wscap-task-result\n";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |error| ClusterError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced,
/// then renamed over it. A reader sees the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ClusterError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    tmp.persist(path).map_err(|e| ClusterError::Io {
        path: path.to_path_buf(),
        error: e.error,
    })?;
    Ok(())
}

/// SHA-256 of `bytes` in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// What `wscap merge` needs to write a study's outputs again: the command
/// as given and where it was given.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Study {
    pub format: u32,
    pub wscap_version: String,
    /// The folder the command ran in (its relative paths are from there).
    pub cwd: PathBuf,
    /// The arguments after `wscap`.
    pub args: Vec<String>,
}

/// One batch's tasks: what to run, and what its results must carry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub wscap_version: String,
    /// The batch's number in the study (plan runs one per round).
    pub batch: u32,
    /// SHA-256 of the scenarios as run (their JSON).
    pub scenario_hash: String,
    /// The folder the scenarios' own file paths (traces, logs) are read from.
    pub base_dir: PathBuf,
    /// Each job's scenario as run (JSON).
    pub scenarios: Vec<serde_json::Value>,
    pub tasks: Vec<Task>,
}

impl Manifest {
    /// The manifest of a batch: its jobs split into tasks of `per_task`
    /// replications. Checks that every scenario survives its JSON round
    /// trip exactly (else a task would not run the same scenario).
    pub fn new(batch: u32, jobs: &[Job], per_task: u32, base_dir: &Path) -> Result<Manifest, ClusterError> {
        let mut scenarios = vec![];
        for job in jobs {
            let v = serde_json::to_value(job.scenario).map_err(|e| ClusterError::RoundTrip(e.to_string()))?;
            let back = crate::scenario::from_json(v.clone(), base_dir).map_err(ClusterError::RoundTrip)?;
            if format!("{back:?}") != format!("{:?}", job.scenario) {
                return Err(ClusterError::RoundTrip(format!(
                    "scenario `{}` reads back different",
                    job.scenario.name
                )));
            }
            scenarios.push(v);
        }
        let text = serde_json::to_vec(&scenarios).map_err(|e| ClusterError::RoundTrip(e.to_string()))?;
        Ok(Manifest {
            format: FORMAT,
            wscap_version: VERSION.to_string(),
            batch,
            scenario_hash: sha256_hex(&text),
            base_dir: base_dir.to_path_buf(),
            scenarios,
            tasks: tasks::split(jobs, per_task),
        })
    }

    /// Its file's bytes (pretty JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        v.push(b'\n');
        v
    }

    /// Its identity: SHA-256 of its file's bytes.
    pub fn id(&self) -> String {
        sha256_hex(&self.to_bytes())
    }

    pub fn read(path: &Path) -> Result<Manifest, ClusterError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        serde_json::from_slice(&bytes).map_err(|e| ClusterError::Decode {
            path: path.to_path_buf(),
            what: "task manifest",
            message: e.to_string(),
        })
    }

    /// What differs from `other`, in words ("" when nothing does).
    pub fn differences(&self, other: &Manifest) -> String {
        let mut d = vec![];
        if self.wscap_version != other.wscap_version {
            d.push(format!(
                "wscap version {} vs {}",
                other.wscap_version, self.wscap_version
            ));
        }
        if self.scenario_hash != other.scenario_hash {
            d.push(format!(
                "scenario hash {} vs {}",
                short(&other.scenario_hash),
                short(&self.scenario_hash)
            ));
        }
        if self.tasks != other.tasks {
            d.push(format!("{} tasks vs {}", other.tasks.len(), self.tasks.len()));
        }
        if d.is_empty() && self != other {
            d.push("the manifest".into());
        }
        d.join(", ")
    }

    /// The scenario of job `j`, read back from the manifest.
    pub fn scenario(&self, j: usize) -> Result<Scenario, ClusterError> {
        let v = self
            .scenarios
            .get(j)
            .ok_or_else(|| ClusterError::Index(format!("the manifest has no job {j}")))?;
        crate::scenario::from_json(v.clone(), &self.base_dir).map_err(ClusterError::RoundTrip)
    }
}

/// The first 12 hex digits of a hash.
pub fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// A task's replications and where they come from.
#[derive(Debug, Serialize, Deserialize)]
pub struct TaskResult {
    pub wscap_version: String,
    pub scenario_hash: String,
    /// The [`Manifest::id`] of the batch.
    pub manifest_id: String,
    pub index: u32,
    pub replications: Vec<Replication>,
}

impl TaskResult {
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut out = MAGIC.to_vec();
        out.extend(postcard::to_stdvec(self).map_err(|e| e.to_string())?);
        Ok(out)
    }

    pub fn read(path: &Path) -> Result<TaskResult, ClusterError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        let bad = |message: String| ClusterError::Decode {
            path: path.to_path_buf(),
            what: "task result",
            message,
        };
        let body = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("it does not start as one".into()))?;
        postcard::from_bytes(body).map_err(|e| bad(e.to_string()))
    }
}

/// A batch's folder in the work folder.
#[derive(Clone, Debug)]
pub struct BatchDir {
    pub dir: PathBuf,
}

impl BatchDir {
    pub fn new(work: &Path, batch: u32) -> BatchDir {
        BatchDir {
            dir: work.join(format!("batch-{batch:03}")),
        }
    }
    pub fn manifest(&self) -> PathBuf {
        self.dir.join("manifest.json")
    }
    pub fn result(&self, index: u32) -> PathBuf {
        self.dir.join("results").join(format!("task-{index:06}.bin"))
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
    pub fn stderr(&self, index: u32) -> PathBuf {
        self.logs().join(format!("task-{index}.err"))
    }
    /// The command that (re)runs task `index`.
    pub fn rerun_command(&self, index: u32) -> String {
        format!(
            "wscap task {} --index {index}",
            shell_quote(&self.dir.to_string_lossy())
        )
    }

    /// Task `index`'s result if there is one, checked against `manifest`:
    /// `Ok(None)` when absent, an error when it comes from another study.
    pub fn load_result(&self, manifest: &Manifest, id: &str, index: u32) -> Result<Option<TaskResult>, ClusterError> {
        let path = self.result(index);
        if !path.exists() {
            return Ok(None);
        }
        let r = TaskResult::read(&path)?;
        let foreign = |what: &'static str, found: &str, expected: &str| ClusterError::Foreign {
            path: path.clone(),
            index,
            what,
            found: found.to_string(),
            expected: expected.to_string(),
            command: self.rerun_command(index),
        };
        if r.wscap_version != manifest.wscap_version {
            return Err(foreign("wscap version", &r.wscap_version, &manifest.wscap_version));
        }
        if r.scenario_hash != manifest.scenario_hash {
            return Err(foreign(
                "scenario (scenario hash)",
                short(&r.scenario_hash),
                short(&manifest.scenario_hash),
            ));
        }
        if r.manifest_id != id {
            return Err(foreign("task manifest", short(&r.manifest_id), short(id)));
        }
        if r.index != index {
            return Err(foreign("task index", &r.index.to_string(), &index.to_string()));
        }
        Ok(Some(r))
    }
}

/// The tail of a file (at most `lines` lines), "" if unreadable.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The batch folder of `dir`: `dir` itself if it holds a manifest, else its
/// only (or first) batch.
pub fn batch_of(dir: &Path) -> Result<BatchDir, ClusterError> {
    if dir.join("manifest.json").is_file() {
        return Ok(BatchDir { dir: dir.to_path_buf() });
    }
    let first = BatchDir::new(dir, 0);
    if first.manifest().is_file() {
        return Ok(first);
    }
    Err(ClusterError::Index(format!(
        "{}: no task manifest here (manifest.json or batch-000/manifest.json): \
         give the work folder an --executor slurm or prepare run wrote",
        dir.display()
    )))
}

/// `wscap task`: runs task `index` of the batch in `dir` on `threads`
/// workers and writes its result atomically. Returns the result's path.
pub fn run_task(dir: &Path, index: u32, threads: usize) -> Result<PathBuf, ClusterError> {
    let batch = batch_of(dir)?;
    let manifest = Manifest::read(&batch.manifest())?;
    if manifest.wscap_version != VERSION {
        return Err(ClusterError::Version {
            path: batch.manifest(),
            found: manifest.wscap_version.clone(),
            expected: VERSION.to_string(),
        });
    }
    let task = manifest.tasks.get(index as usize).cloned().ok_or_else(|| {
        ClusterError::Index(format!(
            "task index {index} is out of range: {} has tasks 0..{}",
            batch.manifest().display(),
            manifest.tasks.len().saturating_sub(1)
        ))
    })?;
    let sc = manifest.scenario(task.job)?;
    let job = Job {
        scenario: &sc,
        reps: task.reps.clone(),
    };
    let replications = tasks::run_task(&job, threads, &crate::study::no_progress)?;
    let result = TaskResult {
        wscap_version: VERSION.to_string(),
        scenario_hash: manifest.scenario_hash.clone(),
        manifest_id: manifest.id(),
        index,
        replications,
    };
    let path = batch.result(index);
    let bytes = result.to_bytes().map_err(|message| ClusterError::Decode {
        path: path.clone(),
        what: "task result",
        message,
    })?;
    write_atomic(&path, &bytes)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::SimDuration;

    /// A replication (every tier: storage with database nodes, game
    /// traffic) reads back from its result file exactly: the same bytes
    /// when written again, the same value field by field.
    #[test]
    fn a_task_result_round_trips_exactly() {
        for file in ["scenarios/quickstart.toml", "scenarios/replica-lag.toml"] {
            let mut sc = crate::scenario::load(Path::new(file)).unwrap();
            sc.duration = SimDuration::from_secs(40);
            sc.warmup = SimDuration::from_secs(5);
            let rep = crate::experiment::run_replication(&sc, 1).unwrap();
            let r = TaskResult {
                wscap_version: VERSION.into(),
                scenario_hash: "h".into(),
                manifest_id: "m".into(),
                index: 3,
                replications: vec![rep],
            };
            let bytes = r.to_bytes().unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("r.bin");
            write_atomic(&path, &bytes).unwrap();
            let back = TaskResult::read(&path).unwrap();
            assert_eq!(back.to_bytes().unwrap(), bytes, "{file}");
            assert_eq!(format!("{back:?}"), format!("{r:?}"), "{file}");
            let (a, b) = (&r.replications[0], &back.replications[0]);
            assert!(
                a.metrics.iter().any(|m| m.value.is_nan()),
                "NaN metrics are carried too"
            );
            for (x, y) in a.metrics.iter().zip(&b.metrics) {
                assert_eq!((x.name, x.value.to_bits()), (y.name, y.value.to_bits()));
            }
            let bad = dir.path().join("bad.bin");
            std::fs::write(&bad, b"nope").unwrap();
            assert!(TaskResult::read(&bad).is_err());
        }
    }

    #[test]
    fn a_manifest_keeps_the_scenarios_as_run() {
        let sc = crate::scenario::load(Path::new("scenarios/web-tier.toml")).unwrap();
        let jobs = [Job {
            scenario: &sc,
            reps: 0..3,
        }];
        let base = std::path::absolute("scenarios").unwrap();
        let m = Manifest::new(0, &jobs, 2, &base).unwrap();
        assert_eq!(m.tasks.len(), 2);
        let back: Manifest = serde_json::from_slice(&m.to_bytes()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.id(), m.id());
        assert_eq!(format!("{:?}", back.scenario(0).unwrap()), format!("{sc:?}"));
        let mut other = sc.clone();
        other.seed += 1;
        let m2 = Manifest::new(
            0,
            &[Job {
                scenario: &other,
                reps: 0..3,
            }],
            2,
            &base,
        )
        .unwrap();
        assert_ne!(m2.scenario_hash, m.scenario_hash);
        assert!(m2.differences(&m).contains("scenario hash"));
    }
}
