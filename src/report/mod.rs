//! Writing results: `summary.csv`/`.json`, `timeseries.csv`, `events.csv`,
//! charts, `report.md` and `report.html`, into one output folder, atomically
//! (and, in [`study`], the outputs of `compare`, `sweep` and `plan`).
//!
//! Everything is written into a fresh temporary folder beside the target and
//! swapped into place only when complete, so an interrupted run leaves either
//! the previous outputs or the new ones, never a mix (a cluster study's work
//! folder, `OUT/.wscap-work`, is carried into the new outputs, see
//! [`carry_work_folder`]). This module, `crate::scenario`, `crate::import`
//! and `crate::cluster` are the only ones that touch the filesystem.

pub mod charts;
mod files;
pub mod html;
pub mod sections;
pub mod spof;
pub mod study;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::experiment::Outcome;
use crate::scenario::Scenario;

pub use files::{
    answer_lines, cluster_lines, fault_lines, storage_lines, write_events_csv, write_summary_csv, write_summary_json,
    write_timeseries_csv,
};

/// Why outputs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    // The cause is in the message, not a `source` too: printed with its
    // chain (`{:#}`), it would say the OS error twice.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{path}: {error}")]
    Csv { path: PathBuf, error: csv::Error },
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
    /// `--out` names a place wscap must not replace (checked before a run).
    #[error("--out {}: {reason}", path.display())]
    Out { path: PathBuf, reason: String },
}

impl ReportError {
    /// The user's to fix (exit status 2), not a failure of the run.
    pub fn is_usage(&self) -> bool {
        matches!(self, ReportError::Out { .. })
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |error| ReportError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// What produced the outputs, for the report's "how to reproduce" section.
pub struct RunInfo<'a> {
    pub scenario_file: &'a Path,
    pub command: String,
    /// `run --slo`: each SLO's verdict, shown near the top of `report.md`
    /// (empty: no SLO was given).
    pub slo: &'a [crate::study::plan::Verdict],
}

/// Writes every output of a `run` into `out` (created or replaced whole).
/// Returns the files written, relative to `out`.
pub fn write_run(out: &Path, sc: &Scenario, outcome: &Outcome, info: &RunInfo) -> Result<Vec<PathBuf>, ReportError> {
    replace_dir(out, |dir| {
        let tables = || -> Result<Vec<PathBuf>, ReportError> {
            let mut files = vec![
                write_summary_csv(&dir.join("summary.csv"), outcome)?,
                write_summary_json(&dir.join("summary.json"), sc, outcome)?,
                write_timeseries_csv(&dir.join("timeseries.csv"), outcome)?,
                write_events_csv(&dir.join("events.csv"), outcome)?,
                files::write_columns_csv(&dir.join("summary_columns.csv"))?,
            ];
            if !sc.faults.is_empty() {
                files.push(files::write_faults_csv(&dir.join("faults.csv"), sc, outcome)?);
            }
            Ok(files)
        };
        let figures = || -> Result<Vec<PathBuf>, ReportError> {
            match outcome.replications.first() {
                Some(first) => charts::write_charts(
                    dir,
                    first,
                    &sc.faults,
                    sc.sample_interval.as_secs_f64(),
                    sc.warmup.as_secs_f64(),
                )
                .map_err(ReportError::from),
                None => Ok(Vec::new()),
            }
        };
        // On the `--threads` workers the tables are written while the
        // charts are drawn (each to its own files); outside a pool, in turn.
        // A table's error is reported before a chart's, as in turn.
        let (tables, figures) = if rayon::current_thread_index().is_some() {
            rayon::join(tables, figures)
        } else {
            let t = tables()?;
            (Ok(t), figures())
        };
        let mut files = tables?;
        files.extend(figures?);
        files.push(files::write_report_md(&dir.join("report.md"), sc, outcome, info)?);
        files.push(html::write_html_from_md(
            &dir.join("report.md"),
            &dir.join("report.html"),
        )?);
        Ok(files
            .iter()
            .map(|f| f.strip_prefix(dir).unwrap_or(f).to_path_buf())
            .collect())
    })
}

/// Whether [`replace_dir`] carries the target's work folder
/// (`crate::cluster::WORK_DIR`) into the new outputs (set by a cluster
/// executor's study); otherwise it goes with the previous outputs.
static CARRY_WORK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on, [`replace_dir`] keeps the target's work folder: it is moved
/// into the new outputs just before the swap.
pub fn carry_work_folder() {
    CARRY_WORK.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The temporary folders being filled now, for [`abandon_temporary_folders`].
static IN_PROGRESS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Test hook: `WSCAP_TEST_PAUSE_BEFORE_SWAP_MS=N` makes [`replace_dir`]
/// sleep N ms once its temporary folder is full, before the swap, so that
/// a test can signal a real process at the writing phase. Not for users.
pub const PAUSE_BEFORE_SWAP_ENV: &str = "WSCAP_TEST_PAUSE_BEFORE_SWAP_MS";

fn registry() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    IN_PROGRESS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes the temporary folders of every [`replace_dir`] in progress and
/// returns holding the registry, so that no swap starts after it: the
/// caller (the CLI's SIGINT/SIGTERM handler) exits while holding it. A swap
/// already under way finishes first (the new outputs are then in place).
pub fn abandon_temporary_folders() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    let mut reg = registry();
    for dir in reg.drain(..) {
        let _ = std::fs::remove_dir_all(&dir);
    }
    reg
}

/// `--out` must be a folder wscap may replace whole: refuses, before a run,
/// a path with no name (`.`, `/`, `..`), a file, a symbolic link, the
/// current folder or one of its ancestors, and an existing folder that is
/// neither empty nor wscap's (wscap's outputs always hold `report.md`).
pub fn check_out(target: &Path) -> Result<(), ReportError> {
    let refuse = |reason: String| {
        Err(ReportError::Out {
            path: target.to_path_buf(),
            reason,
        })
    };
    let named = target.file_name().is_some()
        && !matches!(
            target.components().next_back(),
            Some(std::path::Component::CurDir | std::path::Component::ParentDir)
        );
    if !named {
        return refuse(
            "names no folder of its own: wscap replaces its output folder whole; give a new folder, e.g. output/NAME"
                .into(),
        );
    }
    let meta = match std::fs::symlink_metadata(target) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return refuse(format!("cannot be used as an output folder: {e}")),
    };
    if meta.file_type().is_symlink() {
        return refuse("is a symbolic link: give the folder itself".into());
    }
    if !meta.is_dir() {
        return refuse("is a file, not an output folder".into());
    }
    if let (Ok(t), Ok(cwd)) = (
        target.canonicalize(),
        std::env::current_dir().and_then(|c| c.canonicalize()),
    ) && cwd.starts_with(&t)
    {
        return refuse("is the current folder or one of its parents: wscap would replace it whole".into());
    }
    let entries = std::fs::read_dir(target).map_err(io_err(target))?;
    // A cluster study's work folder alone (its outputs not written yet) is wscap's too.
    let empty = entries
        .flatten()
        .all(|e| e.file_name() == crate::cluster::WORK_DIR && e.path().is_dir());
    if !empty && !target.join("report.md").is_file() {
        return refuse(
            "is a folder that wscap did not write (no report.md): wscap replaces its output folder whole; give a new or empty folder"
                .into(),
        );
    }
    Ok(())
}

/// Whether process `pid` is running (or exists and is not ours to signal).
fn alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else {
        return false;
    };
    !matches!(rustix::process::test_kill_process(pid), Err(rustix::io::Errno::SRCH))
}

/// Removes `.NAME.tmp-PID-…` and `.NAME.old-PID` folders in `parent` left by
/// a wscap process that is gone (killed by SIGKILL, or the machine
/// stopped). Folders of a running process are left alone.
fn remove_stale(parent: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        let file = e.file_name();
        let file = file.to_string_lossy();
        let rest = file
            .strip_prefix(&format!(".{name}.tmp-"))
            .or_else(|| file.strip_prefix(&format!(".{name}.old-")));
        let Some(pid) = rest
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !alive(pid) && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Builds a folder with `fill` in a temporary sibling of `target`
/// (`.NAME.tmp-PID-XXXXXX`), then swaps it into place (atomically where the
/// OS can exchange two paths). Stale temporary folders of dead processes
/// beside `target` are removed first; the temporary folder is registered
/// for [`abandon_temporary_folders`] while it exists.
pub fn replace_dir<T>(target: &Path, fill: impl FnOnce(&Path) -> Result<T, ReportError>) -> Result<T, ReportError> {
    check_out(target)?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    remove_stale(&parent, &name);
    let tmp = {
        let mut reg = registry();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.tmp-{}-", std::process::id()))
            .tempdir_in(&parent)
            .map_err(io_err(&parent))?;
        reg.push(tmp.path().to_path_buf());
        tmp
    };
    let unregister = |p: &Path| registry().retain(|q| q != p);
    // On error `tmp` is dropped and removed: nothing half-written remains.
    let value = match fill(tmp.path()) {
        Ok(v) => v,
        Err(e) => {
            unregister(tmp.path());
            return Err(e);
        }
    };
    if let Some(ms) = std::env::var(PAUSE_BEFORE_SWAP_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    // The swap holds the registry: an interrupt waits for it to finish.
    let mut reg = registry();
    if !reg.iter().any(|p| p == tmp.path()) {
        // Abandoned meanwhile (the process is exiting).
        drop(reg);
        return Err(io_err(tmp.path())(std::io::Error::other("interrupted")));
    }
    reg.retain(|q| q != tmp.path());
    let work = target.join(crate::cluster::WORK_DIR);
    if CARRY_WORK.load(std::sync::atomic::Ordering::SeqCst) && work.is_dir() {
        let to = tmp.path().join(crate::cluster::WORK_DIR);
        std::fs::rename(&work, &to).map_err(io_err(&work))?;
    }
    let tmp_path = tmp.keep();
    if target.exists() {
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            &tmp_path,
            rustix::fs::CWD,
            target,
            rustix::fs::RenameFlags::EXCHANGE,
        ) {
            Ok(()) => {
                // tmp_path now holds the previous outputs.
                std::fs::remove_dir_all(&tmp_path).map_err(io_err(&tmp_path))?;
            }
            Err(_) => {
                // No atomic exchange here: move the old folder aside first.
                let old = parent.join(format!(".{name}.old-{}", std::process::id()));
                std::fs::rename(target, &old).map_err(io_err(target))?;
                std::fs::rename(&tmp_path, target).map_err(io_err(target))?;
                std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
            }
        }
    } else {
        std::fs::rename(&tmp_path, target).map_err(io_err(target))?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_dir_swaps_whole_folders() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("out");
        // wscap's own folders hold report.md (check_out refuses others).
        let fill = |d: &Path, name: &str, text: &str| {
            std::fs::write(d.join("report.md"), "").map_err(io_err(d))?;
            std::fs::write(d.join(name), text).map_err(io_err(d))
        };
        replace_dir(&target, |d| fill(d, "a", "1")).unwrap();
        assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "1");
        replace_dir(&target, |d| fill(d, "b", "2")).unwrap();
        assert!(!target.join("a").exists(), "old files must not survive");
        assert_eq!(std::fs::read_to_string(target.join("b")).unwrap(), "2");
        // A failing fill leaves the previous outputs and no temporary folder.
        let r = replace_dir(&target, |d| {
            std::fs::write(d.join("c"), "3").map_err(io_err(d))?;
            Err::<(), _>(io_err(d)(std::io::Error::other("boom")))
        });
        assert!(r.is_err());
        assert!(target.join("b").exists() && !target.join("c").exists());
        let leftovers: Vec<_> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("out")]);
    }
}
