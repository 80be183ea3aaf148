//! Forecasting past the end of the data with a trained run: `archzoo predict RUN_DIR --data CSV`.
//!
//! A completed run keeps what a forecast needs beside its summary:
//! - `model.bpk`: the best-validation weights (burnpack, the checkpoint's format; the optimiser
//!   state is not kept);
//! - `scaler.json` ([`RunScaler`]): the input columns in the model's order and the train split's
//!   per-column mean and std, so a forecast is returned in the data's own units.
//!
//! The forecast takes the last `L` rows of any TSLib-format CSV with the run's columns, scales
//! them with the run's scaler, runs the model and inverts the scaling; its dates continue the
//! file's at the step between its last two rows.

use std::path::Path;

use architectures::Forecaster;
use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use chrono::NaiveDateTime;
use datasets::{Features, StandardScaler, TimeSeries};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::error::{Result, RunError, io_at};
use crate::files::{read_json_if_exists, write_bytes_atomic, write_json_atomic};

/// The weights file of a completed run.
pub const MODEL_FILE: &str = "model.bpk";
/// The scaler file of a completed run.
pub const SCALER_FILE: &str = "scaler.json";

/// `scaler.json`: the model's input columns and the train split's statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunScaler {
    /// Input columns in the model's order (target last).
    pub columns: Vec<String>,
    /// Train-split statistics of those columns.
    pub scaler: StandardScaler,
}

/// Write `model.bpk` and `scaler.json` into the run directory `dir`.
pub fn keep_model(dir: &Path, model: &architectures::Arch, scaler: RunScaler) -> Result<()> {
    let path = dir.join(MODEL_FILE);
    let bytes = model
        .clone()
        .into_record()
        .into_bytes()
        .map_err(|error| RunError::Invalid(format!("{}: {error}", path.display())))?;
    write_bytes_atomic(&path, &bytes)?;
    write_json_atomic(&dir.join(SCALER_FILE), &scaler)
}

/// A forecast past the end of the data, in the data's units.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The forecast columns: every input column (M, S) or the target (MS).
    pub columns: Vec<String>,
    /// The `H` dates after the last row.
    pub dates: Vec<NaiveDateTime>,
    /// `[H, columns]`, row-major.
    pub values: Vec<f64>,
}

impl Prediction {
    /// The forecast as CSV: `date` then the columns, one row per step.
    pub fn to_csv(&self) -> String {
        let mut text = std::iter::once("date")
            .chain(self.columns.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(",");
        text.push('\n');
        let width = self.columns.len();
        for (date, row) in self.dates.iter().zip(self.values.chunks(width)) {
            text.push_str(&date.format("%Y-%m-%d %H:%M:%S").to_string());
            for value in row {
                text.push_str(&format!(",{value}"));
            }
            text.push('\n');
        }
        text
    }
}

/// Forecast the `H` steps after the last row of the CSV at `data` with the run in `run_dir`.
pub fn predict(run_dir: &Path, data: &Path) -> Result<Prediction> {
    let config = RunConfig::load(&run_dir.join("config.json"))?;
    let model_path = run_dir.join(MODEL_FILE);
    let scaler_path = run_dir.join(SCALER_FILE);
    let retrain = || {
        format!(
            "{} has no {MODEL_FILE}: the run completed before runs kept their weights; train it \
             again with `archzoo train --config {} --force`",
            run_dir.display(),
            run_dir.join("config.json").display()
        )
    };
    if !model_path.exists() {
        return Err(RunError::Invalid(retrain()));
    }
    let stored: RunScaler = read_json_if_exists(&scaler_path)?
        .ok_or_else(|| RunError::Invalid(format!("{}: missing", scaler_path.display())))?;
    let series = datasets::load_csv(data, &config.data.target)?;
    let (l, h) = (config.data.seq_len, config.data.pred_len);
    let inputs = input_values(&series, &config, &stored.columns, data)?;
    let rows = series.rows();
    if rows < l.max(2) {
        return Err(RunError::Invalid(format!(
            "{}: {rows} rows, but the run's lookback needs {} (and two dates give the step)",
            data.display(),
            l.max(2)
        )));
    }
    let c = stored.columns.len();
    let lookback = stored.scaler.transform(&inputs[(rows - l) * c..]);

    let device = config.backend.device()?;
    let bytes = std::fs::read(&model_path).map_err(io_at(&model_path))?;
    let unfit = |message: String| RunError::Checkpoint {
        path: model_path.clone(),
        message,
    };
    let record =
        ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| unfit(e.to_string()))?;
    let model = config
        .arch
        .init(&device)
        .try_load_record(record)
        .map_err(|e| unfit(e.to_string()))?;
    let x = Tensor::<3>::from_data(TensorData::new(lookback, [1, l, c]), &device);
    let forecast = model
        .forecast(x) // [1, H, c], scaled
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| RunError::Invalid(format!("reading the forecast: {e:?}")))?;

    let scored: Vec<usize> = match config.data.features {
        Features::M | Features::S => (0..c).collect(),
        Features::MS => vec![c - 1],
    };
    let values = (0..h)
        .flat_map(|t| {
            let forecast = &forecast;
            let scaler = &stored.scaler;
            scored
                .iter()
                .map(move |&j| f64::from(forecast[t * c + j]) * scaler.std[j] + scaler.mean[j])
        })
        .collect();
    let (last, before) = (series.dates[rows - 1], series.dates[rows - 2]);
    let step = last - before;
    if step <= chrono::TimeDelta::zero() {
        return Err(RunError::Invalid(format!(
            "{}: the last two dates ({before}, {last}) do not increase, so they give no step to continue",
            data.display()
        )));
    }
    Ok(Prediction {
        columns: scored.iter().map(|&j| stored.columns[j].clone()).collect(),
        dates: (1..=h as i32).map(|k| last + step * k).collect(),
        values,
    })
}

/// The series' values in the run's column order, row-major `[rows, columns]`; a file whose
/// columns differ from the run's is an error naming the missing and the unexpected ones.
fn input_values(
    series: &TimeSeries,
    config: &RunConfig,
    columns: &[String],
    data: &Path,
) -> Result<Vec<f64>> {
    let available: Vec<&String> = match config.data.features {
        // S reads the target alone; the other columns may be anything.
        Features::S => series.columns.last().into_iter().collect(),
        Features::M | Features::MS => series.columns.iter().collect(),
    };
    let missing: Vec<&str> = columns
        .iter()
        .filter(|c| !available.contains(c))
        .map(String::as_str)
        .collect();
    let unexpected: Vec<&str> = available
        .iter()
        .filter(|c| !columns.contains(c))
        .map(|c| c.as_str())
        .collect();
    if !missing.is_empty() || !unexpected.is_empty() {
        let list = |names: &[&str]| {
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut message = format!("{}: its columns differ from the run's", data.display());
        if !missing.is_empty() {
            message.push_str(&format!("; missing {}", list(&missing)));
        }
        if !unexpected.is_empty() {
            message.push_str(&format!("; not in the run {}", list(&unexpected)));
        }
        return Err(RunError::Invalid(format!(
            "{message} (the run was trained on {})",
            list(&columns.iter().map(String::as_str).collect::<Vec<_>>())
        )));
    }
    let index: Vec<usize> = columns
        .iter()
        .map(|c| {
            series
                .columns
                .iter()
                .position(|s| s == c)
                .expect("checked above")
        })
        .collect();
    let width = series.channels();
    Ok((0..series.rows())
        .flat_map(|r| index.iter().map(move |&j| series.values[r * width + j]))
        .collect())
}
