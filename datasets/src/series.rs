//! A multivariate time series read from a TSLib-format CSV: a `date` column first, then numeric
//! columns; the target is moved to the last column, as TSLib's `Dataset_Custom` does.

use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};
use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};

/// A multivariate series held in memory, row-major `[rows, channels]`.
#[derive(Clone, Debug)]
pub struct TimeSeries {
    /// Short name (file stem, or `synthetic`).
    pub name: String,
    /// Channel names, target last.
    pub columns: Vec<String>,
    /// Timestamp of every row.
    pub dates: Vec<NaiveDateTime>,
    /// Values, row-major `[rows, channels]`, in the column order of [`Self::columns`].
    pub values: Vec<f64>,
    /// SHA-256 of the file it was read from (`None` for generated series).
    pub sha256: Option<String>,
}

impl TimeSeries {
    /// Number of rows (time steps).
    pub fn rows(&self) -> usize {
        self.dates.len()
    }

    /// Number of channels (columns other than `date`).
    pub fn channels(&self) -> usize {
        self.columns.len()
    }

    /// Value at `row`, `channel`.
    pub fn get(&self, row: usize, channel: usize) -> f64 {
        self.values[row * self.channels() + channel]
    }
}

/// Date formats accepted in the `date` column, tried in order.
const DATE_TIME_FORMATS: [&str; 5] = [
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
];
const DATE_FORMATS: [&str; 2] = ["%Y-%m-%d", "%Y/%m/%d"];

/// Parse one `date` cell.
pub fn parse_date(cell: &str) -> Option<NaiveDateTime> {
    let cell = cell.trim();
    DATE_TIME_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(cell, f).ok())
        .or_else(|| {
            DATE_FORMATS
                .iter()
                .find_map(|f| NaiveDate::parse_from_str(cell, f).ok())
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
}

/// Read a TSLib-format CSV and move `target` to the last column.
///
/// Every cell is checked: the first column must be `date` and parse as a date; every other cell
/// must be a finite number; every row must have as many fields as the header. Errors name the
/// file, the 1-based line and the column.
pub fn load_csv(path: &Path, target: &str) -> Result<TimeSeries> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let sha256 = format!("{:x}", Sha256::digest(&bytes));
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".to_string());
    let mut series = parse_csv(path, &bytes, target, name)?;
    series.sha256 = Some(sha256);
    Ok(series)
}

fn parse_csv(path: &Path, bytes: &[u8], target: &str, name: String) -> Result<TimeSeries> {
    let path_buf = || PathBuf::from(path);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let header = reader
        .headers()
        .map_err(|e| csv_error(path, e))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect::<Vec<_>>();
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(DataError::Empty {
            path: path_buf(),
            message: "the file is empty (no header row)".into(),
        });
    }
    if header[0] != "date" {
        return Err(DataError::NoDateColumn {
            path: path_buf(),
            found: header[0].clone(),
        });
    }
    let value_columns = &header[1..];
    let target_index = value_columns
        .iter()
        .position(|c| c == target)
        .ok_or_else(|| DataError::MissingTarget {
            path: path_buf(),
            target: target.to_string(),
            columns: header.join(","),
        })?;
    // Column order after moving the target last (TSLib `Dataset_Custom`).
    let mut order: Vec<usize> = (0..value_columns.len())
        .filter(|&i| i != target_index)
        .collect();
    order.push(target_index);
    let columns: Vec<String> = order.iter().map(|&i| value_columns[i].clone()).collect();

    let mut dates = Vec::new();
    let mut values = Vec::new();
    let mut row_values = vec![0.0f64; value_columns.len()];
    for record in reader.records() {
        let record = record.map_err(|e| csv_error(path, e))?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != header.len() {
            return Err(DataError::FieldCount {
                path: path_buf(),
                line,
                expected: header.len(),
                found: record.len(),
            });
        }
        let date_cell = &record[0];
        let date = parse_date(date_cell).ok_or_else(|| DataError::BadDate {
            path: path_buf(),
            line,
            value: date_cell.to_string(),
        })?;
        for (i, cell) in record.iter().skip(1).enumerate() {
            let cell = cell.trim();
            if cell.is_empty() {
                return Err(DataError::EmptyCell {
                    path: path_buf(),
                    line,
                    column: value_columns[i].clone(),
                });
            }
            row_values[i] = cell
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| DataError::NotNumeric {
                    path: path_buf(),
                    line,
                    column: value_columns[i].clone(),
                    value: cell.to_string(),
                })?;
        }
        dates.push(date);
        values.extend(order.iter().map(|&i| row_values[i]));
    }
    if dates.is_empty() {
        return Err(DataError::Empty {
            path: path_buf(),
            message: "the file has a header but no data rows".into(),
        });
    }
    Ok(TimeSeries {
        name,
        columns,
        dates,
        values,
        sha256: None,
    })
}

fn csv_error(path: &Path, error: csv::Error) -> DataError {
    let line = error.position().map_or(0, |p| p.line());
    DataError::Csv {
        path: path.to_path_buf(),
        line,
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TimeSeries> {
        parse_csv(Path::new("t.csv"), text.as_bytes(), "OT", "t".into())
    }

    #[test]
    fn target_moves_last_and_values_follow() {
        let s =
            parse("date,OT,a,b\n2020-01-01 00:00:00,1,2,3\n2020-01-01 01:00:00,4,5,6\n").unwrap();
        assert_eq!(s.columns, ["a", "b", "OT"]);
        assert_eq!(s.values, [2.0, 3.0, 1.0, 5.0, 6.0, 4.0]);
        assert_eq!(s.rows(), 2);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("date,a,OT\n2020-01-01,1,2\n2020-01-02,x,3\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.csv:3: column `a`: `x` is not a finite number"
        );
        let e = parse("date,a,OT\n2020-01-01,,2\n").unwrap_err();
        assert_eq!(e.to_string(), "t.csv:2: column `a`: empty cell");
        let e = parse("date,a,OT\n2020-01-01,1,2\n2020-01-02,1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.csv:3: expected 3 fields (as in the header), found 2"
        );
        let e = parse("date,a,OT\nyesterday,1,2\n").unwrap_err();
        assert!(e.to_string().starts_with("t.csv:2: column `date`"), "{e}");
        let e = parse("time,a,OT\n2020-01-01,1,2\n").unwrap_err();
        assert!(e.to_string().contains("first column must be `date`"), "{e}");
        let e = parse("date,a,b\n2020-01-01,1,2\n").unwrap_err();
        assert!(
            e.to_string().contains("target column `OT` not found"),
            "{e}"
        );
        let e = parse("date,a,OT\n2020-01-01,1,nan\n").unwrap_err();
        assert!(
            e.to_string().contains("`nan` is not a finite number"),
            "{e}"
        );
    }

    #[test]
    fn date_formats() {
        assert!(parse_date("2016-07-01 00:00:00").is_some());
        assert!(parse_date("1990/1/1 0:00").is_some());
        assert!(parse_date("2002-01-01").is_some());
        assert!(parse_date("01.01.2002").is_none());
    }
}
