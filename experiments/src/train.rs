//! The training loop (burn's custom-training-loop shape) and the evaluation, following the TSLib
//! long-term forecasting experiment (`exp/exp_long_term_forecasting.py`):
//!
//! - Adam (PyTorch's epsilon 1e-8), MSE loss, shuffled stride-1 windows, every window used;
//! - the preset's learning-rate schedule ([`crate::preset::LrSchedule`]) exactly as the reference
//!   code applies it: e.g. `type1` is called after each epoch with `lr0 · 0.5^(epoch - 1)`, so
//!   epochs 1 and 2 train at `lr0` and epoch `k ≥ 2` at `lr0 · 0.5^(k - 2)`;
//! - early stopping on the validation MSE with patience `p` (an epoch improves when its loss is
//!   ≤ the best so far, as TSLib's `EarlyStopping` with delta 0), and the best-validation weights
//!   are the ones tested;
//! - the test set is never looked at before training ends.
//!
//! Metrics are MSE and MAE over every window, horizon step and scored channel, accumulated in f64
//! over elements, so they do not depend on the batch size (PROTOCOL.md).

use std::time::{Duration, Instant};

use architectures::blocks::dropout;
use architectures::{Arch, Forecaster};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use datasets::{ForecastData, Split};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, Saved, ToSave, TrainState};
use crate::config::RunConfig;
use crate::error::{Result, RunError};
use crate::progress::Progress;
use crate::sysinfo;

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Validation MSE after the epoch.
    pub val_mse: f64,
    /// Validation MAE after the epoch.
    pub val_mae: f64,
    /// Learning rate the epoch trained at.
    pub lr: f64,
    /// Wall seconds of the epoch (training and validation).
    pub seconds: f64,
    /// Whether this epoch's weights are the best so far.
    pub improved: bool,
}

/// Error metrics over a split.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean squared error.
    pub mse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Windows evaluated.
    pub windows: usize,
}

/// What training produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Test metrics of the best-validation weights.
    pub test: Metrics,
    /// Validation metrics of the best-validation weights.
    pub val: Metrics,
    /// Epochs trained (0 for models without parameters).
    pub epochs_run: usize,
    /// Epoch whose weights were tested (0 when untrained).
    pub best_epoch: usize,
    /// Seconds spent in the training loop (including per-epoch validation), over every segment
    /// of a resumed run.
    pub train_seconds: f64,
    /// The part of `train_seconds` spent before the last resume (0 for a run trained in one go).
    pub earlier_train_seconds: f64,
    /// Epochs after which the run was resumed from its checkpoint.
    pub resumed_after: Vec<usize>,
    /// Trainable parameters.
    pub params: usize,
    /// The tested model (inference copy).
    pub model: Arch,
}

/// How a call to [`train`] ended.
#[derive(Clone, Debug)]
pub enum Trained {
    /// Training ended (last epoch or early stop) and the best weights were tested.
    Finished(Box<Outcome>),
    /// The time limit passed at the end of epoch `epoch` of `epochs`; the checkpoint holds the
    /// run, and training it again resumes there.
    Paused {
        /// Epochs completed.
        epoch: usize,
        /// Epochs configured.
        epochs: usize,
    },
}

/// Checkpointing and pausing for [`train`].
#[derive(Default)]
pub struct TrainOptions {
    /// Where to write a checkpoint after every epoch (none: keep nothing).
    pub checkpoint: Option<Checkpoint>,
    /// A checkpoint to resume from (read by the caller, which also restores `metrics.jsonl`).
    pub resume: Option<Saved>,
    /// Pause at the end of the first epoch that ends this long or longer after the call began.
    pub time_limit: Option<Duration>,
}

/// Train `config.arch` on `data` and evaluate the best-validation weights on the test split.
/// `on_epoch` sees every epoch record as soon as it exists (the runner appends it to disk).
///
/// With `options.resume` the run continues from that checkpoint and ends with the numbers an
/// uninterrupted run gets: the weights, Adam's state, the early-stopping state, the window
/// order and the dropout generator are all where the interrupted run left them.
pub fn train(
    config: &RunConfig,
    data: &ForecastData,
    device: &Device,
    progress: &mut dyn Progress,
    options: TrainOptions,
    mut on_epoch: impl FnMut(&EpochRecord) -> Result<()>,
) -> Result<Trained> {
    device.seed(config.seed);
    let draws_at_seed = dropout::seed_draws();
    let autodiff = device.clone().autodiff();
    let mut model = config.arch.init(&autodiff);
    let params = model.num_params();
    let [train_split, val_split, test_split] = &data.splits;
    let eval_batch = config.train.eval_batch_size;
    let started = Instant::now();

    if params == 0 {
        let model = model.valid();
        return Ok(Trained::Finished(Box::new(Outcome {
            val: evaluate(&model, data, val_split, eval_batch, device),
            test: evaluate(&model, data, test_split, eval_batch, device),
            epochs_run: 0,
            best_epoch: 0,
            train_seconds: started.elapsed().as_secs_f64(),
            earlier_train_seconds: 0.0,
            resumed_after: Vec::new(),
            params,
            model,
        })));
    }

    let train_cfg = &config.train;
    let mut optim = AdamConfig::new()
        .with_epsilon(train_cfg.adam_epsilon as f32)
        .init();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..train_split.windows).collect();
    let batches = train_split.windows.div_ceil(train_cfg.batch_size);
    let scored = data.scored_channels();
    let (l, h, c) = (data.spec.seq_len, data.spec.pred_len, data.input_channels());
    let (mut x_buf, mut y_buf) = (Vec::new(), Vec::new());

    let mut best: Option<(Arch, Metrics, usize)> = None;
    let mut records = Vec::new();
    let mut epochs_without_improvement = 0;
    let mut seconds_before = 0.0;
    let mut resumed_after = Vec::new();
    progress.start(&config.arch.name().to_string(), train_cfg.epochs, batches);
    if let Some(saved) = options.resume {
        let state = saved.state;
        let unfit = |message: String| RunError::Checkpoint {
            path: saved.path.clone(),
            message,
        };
        // burn initialises parameters lazily, on first use: an uninterrupted run draws each
        // parameter's initial values from the device generator during its first training step,
        // interleaved with that step's dropout seeds. A throwaway first step makes the same draws
        // in the same order; the remaining dropout seeds are replayed after it.
        let first_batch = train_cfg.batch_size.min(train_split.windows);
        let x = Tensor::<3>::zeros([first_batch, l, c], &autodiff);
        let loss = model.forecast(x).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = AdamConfig::new().init().step(0.0, model, grads);
        // The step queued a BatchNorm running-statistics update (burn's `RunningState` applies
        // it at the next read); syncing now lets the checkpoint's statistics replace it.
        let _ = model.valid();
        let drawn = dropout::seed_draws() - draws_at_seed;
        dropout::replay_seed_draws(&autodiff, state.dropout_draws.saturating_sub(drawn));
        for _ in 0..state.epoch {
            order.shuffle(&mut rng);
        }
        model = model
            .try_load_record(saved.model)
            .map_err(|e| unfit(e.to_string()))?;
        optim = optim.load_record(saved.optimizer);
        let best_model = model
            .valid()
            .try_load_record(saved.best)
            .map_err(|e| unfit(e.to_string()))?;
        let best_val = evaluate(&best_model, data, val_split, eval_batch, device);
        best = Some((best_model, best_val, state.best_epoch));
        records = state.records;
        epochs_without_improvement = state.epochs_without_improvement;
        seconds_before = state.train_seconds;
        resumed_after = state.resumed_after;
        resumed_after.push(state.epoch);
        progress.resumed(state.epoch);
    }
    let done = records.len();
    // A checkpoint written after the early stop (the run died before testing) trains no more.
    let stopped = done > 0 && epochs_without_improvement >= train_cfg.patience;
    let last_epoch = if stopped { done } else { train_cfg.epochs };
    for epoch in done + 1..=last_epoch {
        let epoch_started = Instant::now();
        let lr = train_cfg.schedule.lr(train_cfg.lr, epoch);
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for (batch, indices) in order.chunks(train_cfg.batch_size).enumerate() {
            data.fill_batch(train_split, indices, &mut x_buf, &mut y_buf);
            let b = indices.len();
            let x = Tensor::<3>::from_data(TensorData::new(x_buf.clone(), [b, l, c]), &autodiff);
            let y = Tensor::<3>::from_data(
                TensorData::new(y_buf.clone(), [b, h, scored.len()]),
                &autodiff,
            );
            let prediction = model.forecast(x).narrow(2, scored.start, scored.len());
            let loss = (prediction - y).powi_scalar(2).mean();
            let loss_value = loss.clone().into_scalar::<f32>() as f64;
            if !loss_value.is_finite() {
                progress.finish();
                return Err(RunError::Diverged {
                    epoch,
                    batch,
                    loss: loss_value,
                });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            loss_sum += loss_value;
            progress.batch(loss_value, lr);
        }
        let inference = model.valid();
        let val = evaluate(&inference, data, val_split, eval_batch, device);
        let improved = best.as_ref().is_none_or(|(_, m, _)| val.mse <= m.mse);
        if improved {
            best = Some((inference, val, epoch));
            epochs_without_improvement = 0;
        } else {
            epochs_without_improvement += 1;
        }
        let record = EpochRecord {
            epoch,
            train_loss: loss_sum / batches as f64,
            val_mse: val.mse,
            val_mae: val.mae,
            lr,
            seconds: epoch_started.elapsed().as_secs_f64(),
            improved,
        };
        progress.epoch(&record);
        on_epoch(&record)?;
        records.push(record);
        if !val.mse.is_finite() {
            progress.finish();
            return Err(RunError::Diverged {
                epoch,
                batch: batches,
                loss: val.mse,
            });
        }
        let (best_model, _, best_epoch) = best.as_ref().expect("an epoch ran");
        if let Some(checkpoint) = &options.checkpoint {
            checkpoint.save(ToSave {
                state: &TrainState {
                    run_id: config.run_id(),
                    git_commit: sysinfo::git_commit().to_string(),
                    epoch,
                    records: records.clone(),
                    best_epoch: *best_epoch,
                    epochs_without_improvement,
                    dropout_draws: dropout::seed_draws() - draws_at_seed,
                    train_seconds: seconds_before + started.elapsed().as_secs_f64(),
                    resumed_after: resumed_after.clone(),
                },
                model: model.clone().into_record(),
                optimizer: optim.to_record(),
                best: improved.then(|| best_model.clone().into_record()),
            })?;
        }
        if epochs_without_improvement >= train_cfg.patience {
            break;
        }
        if epoch < last_epoch && options.time_limit.is_some_and(|t| started.elapsed() >= t) {
            progress.finish();
            return Ok(Trained::Paused {
                epoch,
                epochs: train_cfg.epochs,
            });
        }
    }
    progress.finish();
    let train_seconds = seconds_before + started.elapsed().as_secs_f64();
    let (model, val, best_epoch) = best.expect("at least one epoch ran");
    let test = evaluate(&model, data, test_split, eval_batch, device);
    Ok(Trained::Finished(Box::new(Outcome {
        test,
        val,
        epochs_run: records.len(),
        best_epoch,
        train_seconds,
        earlier_train_seconds: seconds_before,
        resumed_after,
        params,
        model,
    })))
}

/// MSE and MAE of `model` over every window of `split`, in order, `batch` windows at a time.
pub fn evaluate(
    model: &Arch,
    data: &ForecastData,
    split: &Split,
    batch: usize,
    device: &Device,
) -> Metrics {
    let scored = data.scored_channels();
    let (l, c) = (data.spec.seq_len, data.input_channels());
    let (mut x_buf, mut y_buf) = (Vec::new(), Vec::new());
    let (mut squared, mut absolute, mut count) = (0.0f64, 0.0f64, 0usize);
    let windows: Vec<usize> = (0..split.windows).collect();
    for indices in windows.chunks(batch.max(1)) {
        data.fill_batch(split, indices, &mut x_buf, &mut y_buf);
        let b = indices.len();
        let x = Tensor::<3>::from_data(TensorData::new(x_buf.clone(), [b, l, c]), device);
        let prediction = model
            .forecast(x)
            .narrow(2, scored.start, scored.len())
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 predictions");
        for (p, y) in prediction.iter().zip(&y_buf) {
            let e = f64::from(*p) - f64::from(*y);
            squared += e * e;
            absolute += e.abs();
        }
        count += prediction.len();
    }
    let n = count.max(1) as f64;
    Metrics {
        mse: squared / n,
        mae: absolute / n,
        windows: split.windows,
    }
}

/// Test windows whose forecasts a run stores (`forecasts.json`), for forecast-against-truth charts
/// drawn later from the results alone.
pub const STORED_FORECASTS: usize = 8;

/// The forecast of one window for the last input channel (the target), on the scaled axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForecastSample {
    /// Window index within the split (0-based, stride 1).
    pub window: usize,
    /// Series row of the window's first lookback step.
    pub first_row: usize,
    /// The lookback, `L` values.
    pub lookback: Vec<f32>,
    /// The truth over the horizon, `H` values.
    pub truth: Vec<f32>,
    /// The model's forecast, `H` values.
    pub forecast: Vec<f32>,
}

/// `forecasts.json`: sampled test-window forecasts of the tested weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForecastSamples {
    /// Split the windows come from (`test`).
    pub split: String,
    /// Name of the channel shown (the target, last input channel).
    pub channel: String,
    /// The windows, in order.
    pub samples: Vec<ForecastSample>,
}

/// The windows [`sample_forecasts`] stores: `count` evenly spaced over `0..windows`, first and
/// last included, without repeats.
pub fn sampled_windows(windows: usize, count: usize) -> Vec<usize> {
    if windows == 0 || count == 0 {
        return Vec::new();
    }
    let mut picked: Vec<usize> = (0..count)
        .map(|i| i * (windows - 1) / (count - 1).max(1))
        .collect();
    picked.dedup();
    picked
}

/// Forecasts of `model` for the target channel of `windows` of `split`.
pub fn sample_forecasts(
    model: &Arch,
    data: &ForecastData,
    split: &Split,
    windows: &[usize],
    device: &Device,
) -> ForecastSamples {
    let scored = data.scored_channels();
    let (l, h, c) = (data.spec.seq_len, data.spec.pred_len, data.input_channels());
    let target = c - 1;
    let (mut x_buf, mut y_buf) = (Vec::new(), Vec::new());
    data.fill_batch(split, windows, &mut x_buf, &mut y_buf);
    let b = windows.len();
    let x = Tensor::<3>::from_data(TensorData::new(x_buf.clone(), [b, l, c]), device);
    let forecast = model
        .forecast(x)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 predictions"); // [b, H, c]
    let scored_width = scored.len();
    let samples = windows
        .iter()
        .enumerate()
        .map(|(i, &window)| ForecastSample {
            window,
            first_row: split.rows.start + window,
            lookback: (0..l).map(|t| x_buf[(i * l + t) * c + target]).collect(),
            // y_buf is [b, H, scored]; the target is the last scored channel.
            truth: (0..h)
                .map(|t| y_buf[(i * h + t) * scored_width + scored_width - 1])
                .collect(),
            forecast: (0..h).map(|t| forecast[(i * h + t) * c + target]).collect(),
        })
        .collect();
    ForecastSamples {
        split: split.name.to_string(),
        channel: data.columns[target].clone(),
        samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_windows_span_the_split_without_repeats() {
        assert_eq!(
            sampled_windows(2785, 8),
            [0, 397, 795, 1193, 1590, 1988, 2386, 2784]
        );
        assert_eq!(sampled_windows(3, 8), [0, 1, 2]);
        assert_eq!(sampled_windows(1, 8), [0]);
        assert_eq!(sampled_windows(10, 1), [0]);
        assert!(sampled_windows(0, 8).is_empty());
    }
}
