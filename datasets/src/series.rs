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

/// How a series' timestamps depart from a regular grid: the usual step, and every duplicated
/// timestamp, gap and step backwards, by data row (0-based; the file line is `row + 2`). The
/// windows are cut by row as the papers do, so these are reported, never dropped or filled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DateIrregularities {
    /// The most common step between consecutive rows, seconds (0 for fewer than two rows).
    pub step_seconds: i64,
    /// Rows whose timestamp equals the previous row's.
    pub duplicates: Vec<usize>,
    /// `(row, missing)`: the step into `row` spans `missing` whole usual steps more than one.
    pub gaps: Vec<(usize, i64)>,
    /// Rows whose timestamp is earlier than the previous row's, or off the usual step's grid.
    pub other: Vec<usize>,
}

impl DateIrregularities {
    /// Whether every step is the usual one.
    pub fn is_regular(&self) -> bool {
        self.duplicates.is_empty() && self.gaps.is_empty() && self.other.is_empty()
    }
}

impl TimeSeries {
    /// The usual step of the timestamps and where the series departs from it.
    pub fn date_irregularities(&self) -> DateIrregularities {
        let steps: Vec<i64> = self
            .dates
            .windows(2)
            .map(|w| (w[1] - w[0]).num_seconds())
            .collect();
        let mut counts = std::collections::BTreeMap::new();
        for &step in steps.iter().filter(|&&s| s > 0) {
            *counts.entry(step).or_insert(0usize) += 1;
        }
        // The most common positive step; the smaller one on a tie.
        let step_seconds = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map_or(0, |(&step, _)| step);
        let mut report = DateIrregularities {
            step_seconds,
            duplicates: Vec::new(),
            gaps: Vec::new(),
            other: Vec::new(),
        };
        for (i, &step) in steps.iter().enumerate() {
            let row = i + 1;
            match step {
                0 => report.duplicates.push(row),
                s if s == step_seconds => {}
                s if step_seconds > 0 && s > 0 && s % step_seconds == 0 => {
                    report.gaps.push((row, s / step_seconds - 1))
                }
                _ => report.other.push(row),
            }
        }
        report
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

    #[test]
    fn non_ascii_and_replacement_characters_in_headers_are_kept() {
        // Weather's header: µ and ² arrive as U+FFFD in the papers' file.
        let text = "date,PAR (\u{FFFD}mol/m\u{FFFD}/s),T (°C),OT\n2020-01-01 00:10:00,1,2,3\n";
        let series = parse(text).unwrap();
        assert_eq!(
            series.columns,
            ["PAR (\u{FFFD}mol/m\u{FFFD}/s)", "T (°C)", "OT"]
        );
    }

    #[test]
    fn wide_files_load_every_column() {
        // Traffic's width: 862 sensors besides the date.
        let names: Vec<String> = (0..861)
            .map(|i| i.to_string())
            .chain(["OT".into()])
            .collect();
        let row = |v: usize| {
            (0..862)
                .map(|c| (v + c).to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let text = format!(
            "date,{}\n2016-07-01 02:00:00,{}\n2016-07-01 03:00:00,{}",
            names.join(","),
            row(0),
            row(1)
        );
        let series = parse(&text).unwrap();
        assert_eq!((series.rows(), series.channels()), (2, 862));
        assert_eq!(series.get(1, 861), 862.0);
    }

    #[test]
    fn duplicates_and_gaps_are_found_not_dropped() {
        // Hourly, one duplicated timestamp (rows 2, 3), two hours missing after row 4, TSLib's
        // `YYYY/M/D H:MM` dates and no trailing newline.
        let text = "date,a,OT\n2020/1/1 0:00,1,1\n2020/1/1 1:00,2,2\n2020/1/1 2:00,3,3\n\
                    2020/1/1 2:00,3,3\n2020/1/1 3:00,4,4\n2020/1/1 6:00,5,5\n2020/1/1 7:00,6,6";
        let series = parse(text).unwrap();
        assert_eq!(series.rows(), 7, "every row kept");
        let report = series.date_irregularities();
        assert_eq!(report.step_seconds, 3600);
        assert_eq!(report.duplicates, [3]);
        assert_eq!(report.gaps, [(5, 2)]);
        assert!(report.other.is_empty() && !report.is_regular());
    }

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
