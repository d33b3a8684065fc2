//! Writing results: `summary.csv`/`.json`, `timeseries.csv`, `events.csv`,
//! charts, `report.md` and `report.html`, into one output folder, atomically
//! (and, in [`study`], the outputs of `compare`, `sweep` and `plan`).
//!
//! Everything is written into a fresh temporary folder beside the target and
//! swapped into place only when complete, so an interrupted run leaves either
//! the previous outputs or the new ones, never a mix. This module and
//! `crate::scenario` are the only ones that touch the filesystem.

pub mod charts;
mod files;
pub mod html;
pub mod sections;
pub mod spof;
pub mod study;

use std::path::{Path, PathBuf};

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
        if let Some(first) = outcome.replications.first() {
            files.extend(charts::write_charts(
                dir,
                first,
                &sc.faults,
                sc.sample_interval.as_secs_f64(),
                sc.warmup.as_secs_f64(),
            )?);
        }
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

/// Builds a folder with `fill` in a temporary sibling of `target`, then
/// swaps it into place (atomically where the OS can exchange two paths).
pub fn replace_dir<T>(target: &Path, fill: impl FnOnce(&Path) -> Result<T, ReportError>) -> Result<T, ReportError> {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io_err(&parent))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempdir_in(&parent)
        .map_err(io_err(&parent))?;
    // On error `tmp` is dropped and removed: nothing half-written remains.
    let value = fill(tmp.path())?;
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
        replace_dir(&target, |d| std::fs::write(d.join("a"), "1").map_err(io_err(d))).unwrap();
        assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "1");
        replace_dir(&target, |d| std::fs::write(d.join("b"), "2").map_err(io_err(d))).unwrap();
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
