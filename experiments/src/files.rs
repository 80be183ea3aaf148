//! Whole-file writes that never leave a partial file: a temporary file beside the target, synced,
//! then renamed over it. Every results file (run directories, ledgers, leaderboards, benchmark
//! summaries, checkpoints) is written this way.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Result, RunError, io_at};

/// The JSON value stored at `path`, or `None` when there is no such file (a run not finished, a
/// checkpoint not written); a file that is there but does not read is an error naming it.
pub fn read_json_if_exists<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(io_at(path))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| RunError::Json {
            path: path.to_path_buf(),
            source,
        })
}

/// Serialize `value` to `path` through a temporary file and a rename.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).expect("serializable value");
    text.push('\n');
    write_text_atomic(path, &text)
}

/// CSV text: the `columns` header, then one line per record, quoted where a field needs it
/// (RFC 4180, by the `csv` crate).
pub fn csv_text<R, F>(columns: &[&str], records: impl IntoIterator<Item = R>) -> String
where
    R: IntoIterator<Item = F>,
    F: AsRef<[u8]>,
{
    // Writing to memory cannot fail: the only errors of `csv::Writer` are I/O errors.
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(columns).expect("CSV to memory");
    for record in records {
        writer.write_record(record).expect("CSV to memory");
    }
    let bytes = writer.into_inner().expect("CSV to memory");
    String::from_utf8(bytes).expect("CSV of UTF-8 fields is UTF-8")
}

/// The text of a JSON-lines log (`metrics.jsonl`) for a run resuming after `records`: the lines
/// already in `path` when it holds them all (what the interrupted run wrote, byte for byte),
/// else the records written afresh (the log lost lines its checkpoint has).
pub fn resumed_log<R: Serialize>(path: &Path, records: &[R]) -> String {
    if records.is_empty() {
        return String::new();
    }
    let written = std::fs::read_to_string(path).unwrap_or_default();
    let kept: Vec<&str> = written.lines().take(records.len()).collect();
    if kept.len() == records.len() {
        kept.iter().map(|line| format!("{line}\n")).collect()
    } else {
        records
            .iter()
            .map(|r| format!("{}\n", json_line(r)))
            .collect()
    }
}

/// One line of a JSON-lines log.
pub fn json_line<R: Serialize>(record: &R) -> String {
    serde_json::to_string(record).expect("records serialize")
}

/// Write `text` to `path` through a temporary file (named for this process, so concurrent
/// writers never share one) and a rename: readers see the old file or the new one, never a part.
pub fn write_text_atomic(path: &Path, text: &str) -> Result<()> {
    write_bytes_atomic(path, text.as_bytes())
}

/// [`write_text_atomic`] for bytes.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map_or("file".into(), |n| n.to_string_lossy());
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_at(&tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_at(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_at(path))
}

/// Whether the run folder `dir` holds a token-probe run (its `config.json` names a `task`) rather
/// than a forecasting run.
pub fn is_probe_run(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|json| json.get("task").is_some())
}
