//! Typed errors of the datasets crate. Every variant that comes from a file names the file, and,
//! where one exists, the line and the column, so the binary can print a message a user can act on.

use std::path::PathBuf;

/// Everything that can go wrong while reading, splitting or downloading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// File that failed.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The CSV reader itself failed (bad quoting, invalid UTF-8, ...).
    #[error("{path}:{line}: malformed CSV: {message}")]
    Csv {
        /// File that failed.
        path: PathBuf,
        /// 1-based line number (the header is line 1).
        line: u64,
        /// What the CSV reader said.
        message: String,
    },
    /// The file has no header row or no data rows.
    #[error("{path}: {message}")]
    Empty {
        /// File that failed.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// The first column is not called `date`.
    #[error("{path}:1: the first column must be `date` (TSLib format), found `{found}`")]
    NoDateColumn {
        /// File that failed.
        path: PathBuf,
        /// Name of the first column.
        found: String,
    },
    /// A date cell could not be parsed.
    #[error(
        "{path}:{line}: column `date`: cannot parse `{value}` as a date (expected e.g. `2016-07-01 00:00:00`)"
    )]
    BadDate {
        /// File that failed.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The cell as read.
        value: String,
    },
    /// The requested target column is not in the header.
    #[error("{path}:1: target column `{target}` not found; columns are: {columns}")]
    MissingTarget {
        /// File that failed.
        path: PathBuf,
        /// The target that was asked for.
        target: String,
        /// The header, comma separated.
        columns: String,
    },
    /// A row has a different number of fields from the header.
    #[error("{path}:{line}: expected {expected} fields (as in the header), found {found}")]
    FieldCount {
        /// File that failed.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Number of header fields.
        expected: usize,
        /// Number of fields in this row.
        found: usize,
    },
    /// A value cell is empty.
    #[error("{path}:{line}: column `{column}`: empty cell")]
    EmptyCell {
        /// File that failed.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Column name.
        column: String,
    },
    /// A value cell is not a finite number.
    #[error("{path}:{line}: column `{column}`: `{value}` is not a finite number")]
    NotNumeric {
        /// File that failed.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Column name.
        column: String,
        /// The cell as read.
        value: String,
    },
    /// A split has too few rows for even one window of `seq_len + pred_len`.
    #[error(
        "{dataset}: the {split} split spans rows [{start}, {end}) ({rows} rows) but one window needs seq_len + pred_len = {needed} rows; use a shorter --seq-len/--pred-len or a longer series"
    )]
    TooShort {
        /// Dataset name.
        dataset: String,
        /// `train`, `val` or `test`.
        split: &'static str,
        /// First row of the split (may be negative when the series is shorter than `seq_len`).
        start: i64,
        /// One past the last row.
        end: i64,
        /// Rows available.
        rows: i64,
        /// Rows needed.
        needed: usize,
    },
    /// A parameter is out of range (non-positive window length, unknown name, ...).
    #[error("{0}")]
    Invalid(String),
    /// A download failed (network, HTTP status).
    #[error("download of {url} failed: {message}")]
    Download {
        /// What was requested.
        url: String,
        /// Why it failed.
        message: String,
    },
    /// A downloaded file does not have the expected SHA-256.
    #[error(
        "{url}: checksum mismatch (expected sha256 {expected}, got {actual}); the file was rejected and not written"
    )]
    Checksum {
        /// What was requested.
        url: String,
        /// Pinned checksum.
        expected: String,
        /// Checksum of what arrived.
        actual: String,
    },
}

/// Shorthand used across the crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
