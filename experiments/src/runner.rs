//! One forecasting run end to end: load and prepare the data, write `config.json`, train
//! (resuming from the run's checkpoint when an earlier attempt stopped), evaluate, keep the
//! best weights and the scaler (`model.bpk`, `scaler.json`, for `archzoo predict`), write
//! `summary.json`.

use std::path::Path;
use std::time::{Duration, Instant};

use architectures::SequenceModel;
use datasets::{DataSource, ForecastData, ForecastSpec, TimeSeries};

use crate::checkpoint::TrainState;
use crate::config::RunConfig;
use crate::error::{Result, RunError};
use crate::evaluate;
use crate::files::write_json_atomic;
use crate::predict::{self, RunScaler};
use crate::progress::Progress;
use crate::results::{RunDir, Summary};
use crate::sysinfo;
use crate::train::{self, TrainOptions, Trained};

/// How a run ended.
#[derive(Clone, Debug)]
pub enum RunStatus {
    /// Trained now (or finished now, resumed from a checkpoint).
    Completed(Summary),
    /// A completed summary already existed; nothing was re-trained.
    Skipped(Summary),
    /// The time limit passed after `epoch` of `epochs` epochs; the run's checkpoint holds it and
    /// running it again resumes there.
    Paused {
        /// Run id.
        run_id: String,
        /// Epochs completed.
        epoch: usize,
        /// Epochs configured.
        epochs: usize,
    },
}

/// How [`run`] treats earlier attempts and time.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Train from scratch even when the run completed before or left a checkpoint.
    pub force: bool,
    /// Pause at the end of the first epoch that ends this long or longer after training began
    /// (see [`train::TrainOptions::time_limit`]).
    pub time_limit: Option<Duration>,
}

/// Load the series `data` names (`synthetic`, a known dataset under `data_dir`, or a CSV path)
/// with `target` last. A known dataset missing from `data_dir` is an error that says where it
/// was looked for and how to get it.
pub fn load_series(data: &str, data_dir: &Path, target: &str) -> Result<(DataSource, TimeSeries)> {
    let source = DataSource::parse(data)?;
    if let (DataSource::Known(known), Some(path)) = (&source, source.path(data_dir))
        && !path.exists()
    {
        return Err(RunError::Invalid(format!(
            "dataset `{}` not found at {} (set ARCHZOO_DATA or --data-dir to the folder holding `{}`{})",
            known.name,
            path.display(),
            known.path,
            if known.name.starts_with("ETT") {
                ", or fetch it with `archzoo data download ett --dir data`"
            } else {
                ""
            }
        )));
    }
    let series = source.load(data_dir, target)?;
    Ok((source, series))
}

/// Load the data a config names and apply the protocol.
pub fn prepare_data(config: &RunConfig, data_dir: &Path) -> Result<ForecastData> {
    let (_, series) = load_series(&config.data.data, data_dir, &config.data.target)?;
    let spec = ForecastSpec {
        seq_len: config.data.seq_len,
        pred_len: config.data.pred_len,
        features: config.data.features,
        split: config.data.split,
    };
    Ok(ForecastData::new(&series, spec)?)
}

/// Run `config`, writing results under `out/<run id>/`. A run with a completed summary is
/// skipped, and one with a checkpoint resumes from it, unless `options.force`.
pub fn run(
    config: &RunConfig,
    data_dir: &Path,
    out: &Path,
    options: RunOptions,
    progress: &mut dyn Progress,
) -> Result<RunStatus> {
    let started = Instant::now();
    let dir = RunDir::new(out, config);
    if !options.force
        && let Some(summary) = dir.completed()?
    {
        return Ok(RunStatus::Skipped(summary));
    }
    // Data errors surface before anything is written.
    let data = prepare_data(config, data_dir)?;
    run_prepared(config, &data, out, options, progress, started)
}

/// [`run`] on data already prepared with `config`'s data settings; `started` is when loading
/// began, so `wall_seconds` covers the whole run.
pub fn run_prepared(
    config: &RunConfig,
    data: &ForecastData,
    out: &Path,
    options: RunOptions,
    progress: &mut dyn Progress,
    started: Instant,
) -> Result<RunStatus> {
    let dir = RunDir::new(out, config);
    if !options.force
        && let Some(summary) = dir.completed()?
    {
        return Ok(RunStatus::Skipped(summary));
    }
    config.arch.validate()?;
    let device = config.backend.device()?;
    let checkpoint = dir.checkpoint();
    let resume = checkpoint.resume::<TrainState>(options.force)?;
    let records = resume
        .as_ref()
        .map_or(&[][..], |saved| &saved.state.records);
    let mut log = dir.begin(config, records)?;
    let train_options = TrainOptions {
        checkpoint: Some(checkpoint.clone()),
        resume,
        time_limit: options.time_limit,
    };
    let trained = train::train(config, data, &device, progress, train_options, |record| {
        log.append(record)
    })?;
    let outcome = match trained {
        Trained::Finished(outcome) => outcome,
        Trained::Paused { epoch, epochs } => {
            return Ok(RunStatus::Paused {
                run_id: config.run_id(),
                epoch,
                epochs,
            });
        }
    };
    let [train_split, val_split, test_split] = &data.splits;
    let summary = Summary {
        run_id: config.run_id(),
        arch: config.arch.name().to_string(),
        dataset: data.name.clone(),
        data_sha256: data.sha256.clone(),
        seq_len: config.data.seq_len,
        pred_len: config.data.pred_len,
        features: config.data.features.to_string(),
        preset: config.train.preset.to_string(),
        seed: config.seed,
        test_mse: outcome.test.mse,
        test_mae: outcome.test.mae,
        val_mse: outcome.val.mse,
        val_mae: outcome.val.mae,
        n_train_windows: train_split.windows,
        n_val_windows: val_split.windows,
        n_test_windows: test_split.windows,
        params: outcome.params,
        state_size: outcome.model.state_size(config.data.seq_len),
        forward_flops: Some(config.arch.forward_flops()),
        train_flops: Some(architectures::flops::train_flops(
            config.arch.forward_flops(),
            train_split.windows,
            outcome.epochs_run,
        )),
        epochs_run: outcome.epochs_run,
        best_epoch: outcome.best_epoch,
        train_seconds: outcome.train_seconds,
        wall_seconds: outcome.earlier_train_seconds + started.elapsed().as_secs_f64(),
        resumed_after_epochs: outcome.resumed_after.clone(),
        peak_rss_bytes: sysinfo::peak_rss_bytes(),
        backend: config.backend.to_string(),
        git_commit: sysinfo::git_commit().to_string(),
        machine: sysinfo::machine(),
        archzoo_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let windows = evaluate::sampled_windows(test_split.windows, evaluate::STORED_FORECASTS);
    let forecasts = evaluate::sample_forecasts(&outcome.model, data, test_split, &windows, &device);
    write_json_atomic(&dir.forecasts_path(), &forecasts)?;
    let scaler = RunScaler {
        columns: data.columns.clone(),
        scaler: data.scaler.clone(),
    };
    predict::keep_model(&dir.path, &outcome.model, scaler)?;
    dir.finish(&summary)?;
    // The summary marks the run complete; the checkpoint is no longer needed.
    checkpoint.remove()?;
    Ok(RunStatus::Completed(summary))
}
