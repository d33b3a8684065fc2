//! Reading the files a scenario run depends on, with bounds: the scenario
//! file itself and the CSV files it names (empirical distributions, arrival
//! traces).
//!
//! A data file must be a regular file (not a folder, FIFO, socket or device
//! such as `/dev/zero`: those are refused before they are opened, so nothing
//! blocks or grows) of at most [`MAX_DATA_BYTES`]; it is streamed through
//! the CSV reader, never read whole, and at most [`MAX_DATA_ROWS`] rows are
//! kept. The scenario file is read up to [`MAX_SCENARIO_BYTES`] (a pipe such
//! as `<(…)` is allowed; a device or a huge file stops at the cap).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::ScenarioError;

/// Largest scenario file (4 MiB; the bundled ones are below 10 KiB).
pub const MAX_SCENARIO_BYTES: u64 = 4 << 20;
/// Largest CSV file a scenario may name (256 MiB).
pub const MAX_DATA_BYTES: u64 = 256 << 20;
/// Most rows read from one CSV column (as many as a population's clients).
pub const MAX_DATA_ROWS: usize = 50_000_000;

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Reads a scenario file: at most [`MAX_SCENARIO_BYTES`], UTF-8.
pub fn read_source(path: &Path) -> Result<String, ScenarioError> {
    let unreadable = |reason: String| ScenarioError::Unreadable {
        file: path.to_path_buf(),
        reason,
    };
    let read_err = |error| ScenarioError::Read {
        file: path.to_path_buf(),
        error,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.is_dir() {
        return Err(unreadable("is a folder, not a scenario file".into()));
    }
    if meta.is_file() && meta.len() > MAX_SCENARIO_BYTES {
        return Err(unreadable(format!(
            "is {}: a scenario file is at most {} (is it the right file?)",
            mib(meta.len()),
            mib(MAX_SCENARIO_BYTES)
        )));
    }
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_SCENARIO_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_SCENARIO_BYTES {
        return Err(unreadable(format!(
            "is longer than {}: a scenario file is at most that (is it the right file?)",
            mib(MAX_SCENARIO_BYTES)
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        unreadable(format!(
            "is not UTF-8 text (invalid byte at offset {}): is it the right file?",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Opens a CSV file named by a scenario: a regular file of at most
/// [`MAX_DATA_BYTES`], returned as a bounded stream.
pub fn open_data(path: &Path) -> Result<impl Read, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "`{shown}` is {}: a data file must be a regular CSV file",
            kind(&meta)
        ));
    }
    if meta.len() > MAX_DATA_BYTES {
        return Err(format!(
            "`{shown}` is {}: a data file is at most {}",
            mib(meta.len()),
            mib(MAX_DATA_BYTES)
        ));
    }
    let f = File::open(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    // A file that grows while it is read stops at the cap.
    Ok(std::io::BufReader::new(f.take(MAX_DATA_BYTES)))
}
