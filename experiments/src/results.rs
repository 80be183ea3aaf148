//! A run's directory: `config.json` before training, `metrics.jsonl` during, `forecasts.json`
//! (sampled test forecasts) and `summary.json` at the end. Whole files are written atomically (temporary file + rename), so an interrupted run never
//! leaves a truncated `summary.json`, and a completed run is recognised by its summary alone.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::config::RunConfig;
use crate::error::{Result, io_at};
use crate::evaluate::EpochRecord;
use crate::files::{
    json_line, read_json_if_exists, resumed_log, write_json_atomic, write_text_atomic,
};

/// The final record of a completed run (`summary.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Run id (directory name).
    pub run_id: String,
    /// Architecture name (`dlinear`).
    pub arch: String,
    /// Dataset name (`ETTh1`).
    pub dataset: String,
    /// SHA-256 of the data file read (`null` for generated data).
    pub data_sha256: Option<String>,
    /// Lookback `L`.
    pub seq_len: usize,
    /// Horizon `H`.
    pub pred_len: usize,
    /// Feature mode (`M`, `S`, `MS`).
    pub features: String,
    /// Training preset.
    pub preset: String,
    /// Seed.
    pub seed: u64,
    /// Test MSE of the best-validation weights (normalised scale).
    pub test_mse: f64,
    /// Test MAE of the best-validation weights.
    pub test_mae: f64,
    /// Validation MSE of the best-validation weights.
    pub val_mse: f64,
    /// Validation MAE of the best-validation weights.
    pub val_mae: f64,
    /// Training windows.
    pub n_train_windows: usize,
    /// Validation windows.
    pub n_val_windows: usize,
    /// Test windows (all of them: no drop_last).
    pub n_test_windows: usize,
    /// Trainable parameters.
    pub params: usize,
    /// Floats of recurrent state per sequence at inference (the window for linear models).
    pub state_size: usize,
    /// Analytic forward FLOPs for one input window (architectures::flops); absent in runs
    /// written before it was recorded.
    #[serde(default)]
    pub forward_flops: Option<u64>,
    /// Analytic training FLOPs: 3 · forward · training windows · epochs run.
    #[serde(default)]
    pub train_flops: Option<f64>,
    /// Epochs trained.
    pub epochs_run: usize,
    /// Epoch whose weights were tested.
    pub best_epoch: usize,
    /// Seconds of training (with per-epoch validation), summed over every segment of a resumed
    /// run.
    pub train_seconds: f64,
    /// Seconds end to end: load, train, validate, test (for a resumed run: the earlier
    /// segments' training seconds plus the last segment end to end).
    pub wall_seconds: f64,
    /// Epochs after which an interrupted run was resumed from its checkpoint (empty for a run
    /// trained in one go); the numbers are the same either way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed_after_epochs: Vec<usize>,
    /// Peak resident memory of the process, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// Backend.
    pub backend: String,
    /// Commit of the code.
    pub git_commit: String,
    /// CPU and thread count.
    pub machine: String,
    /// archzoo version.
    pub archzoo_version: String,
}

/// The directory of one run.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// `<out>/<run id>`.
    pub path: PathBuf,
}

impl RunDir {
    /// The directory for `config` under `out` (not created yet).
    pub fn new(out: &Path, config: &RunConfig) -> Self {
        Self {
            path: out.join(config.run_id()),
        }
    }

    /// `summary.json`.
    pub fn summary_path(&self) -> PathBuf {
        self.path.join("summary.json")
    }

    /// `metrics.jsonl`.
    pub fn metrics_path(&self) -> PathBuf {
        self.path.join("metrics.jsonl")
    }

    /// `forecasts.json`: sampled test forecasts ([`crate::evaluate::ForecastSamples`]).
    pub fn forecasts_path(&self) -> PathBuf {
        self.path.join("forecasts.json")
    }

    /// The summary of a completed run, if there is one.
    pub fn completed(&self) -> Result<Option<Summary>> {
        read_json_if_exists(&self.summary_path())
    }

    /// The run's training checkpoint (`checkpoint/`).
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint::new(&self.path)
    }

    /// Create the directory, write `config.json` and start `metrics.jsonl` with `records`: the
    /// epochs a resumed run has already trained (their lines are kept as first written, so the
    /// numbers stay exact), or none for a fresh start, which replaces a previous attempt's
    /// metrics.
    pub fn begin(&self, config: &RunConfig, records: &[EpochRecord]) -> Result<MetricsLog> {
        std::fs::create_dir_all(&self.path).map_err(io_at(&self.path))?;
        write_json_atomic(&self.path.join("config.json"), config)?;
        let path = self.metrics_path();
        let text = resumed_log(&path, records);
        write_text_atomic(&path, &text)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_at(&path))?;
        Ok(MetricsLog { file, path })
    }

    /// Write `summary.json`, marking the run complete.
    pub fn finish(&self, summary: &Summary) -> Result<()> {
        write_json_atomic(&self.summary_path(), summary)
    }
}

/// Appends one JSON line per epoch, flushed at once, so a killed run keeps its history.
pub struct MetricsLog {
    file: File,
    path: PathBuf,
}

impl MetricsLog {
    /// Append `record`.
    pub fn append(&mut self, record: &EpochRecord) -> Result<()> {
        writeln!(self.file, "{}", json_line(record))
            .and_then(|()| self.file.flush())
            .map_err(io_at(&self.path))
    }
}
