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
//! [`train`] reads as the loop itself; the state it carries between epochs (weights, Adam, the
//! window order, the best weights and the early-stopping count) is [`Training`], whose methods
//! are the loop's steps.

use std::time::{Duration, Instant};

use architectures::blocks::dropout::RunSeedDraws;
use architectures::{Arch, Forecaster};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use datasets::ForecastData;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{Checkpoint, Saved, ToSave, TrainState};
use crate::config::RunConfig;
use crate::error::{Result, RunError};
use crate::evaluate::{EpochRecord, Metrics, evaluate};
use crate::progress::Progress;
use crate::sysinfo;

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
    let (mut run, mut model) = Training::new(config, data, device);
    if run.params == 0 {
        return Ok(Trained::Finished(run.untrained(model)));
    }
    let progress = Finishing(progress);
    progress.0.start(
        &config.arch.name().to_string(),
        config.train.epochs,
        run.batches,
    );
    if let Some(saved) = options.resume {
        model = run.resume(model, saved)?;
        progress.0.resumed(run.records.len());
    }
    let last_epoch = run.last_epoch();
    for epoch in run.records.len() + 1..=last_epoch {
        let epoch_started = Instant::now();
        let lr = config.train.schedule.lr(config.train.lr, epoch);
        let train_loss;
        (model, train_loss) = run.train_epoch(model, epoch, lr, progress.0)?;
        let (val, improved) = run.validate(&model, epoch);
        let record = EpochRecord {
            epoch,
            train_loss,
            val_mse: val.mse,
            val_mae: val.mae,
            lr,
            seconds: epoch_started.elapsed().as_secs_f64(),
            improved,
        };
        progress.0.epoch(epoch, &record.describe());
        on_epoch(&record)?;
        run.records.push(record);
        if !val.mse.is_finite() {
            let batch = run.batches;
            return Err(RunError::Diverged {
                epoch,
                batch,
                loss: val.mse,
            });
        }
        if let Some(checkpoint) = &options.checkpoint {
            checkpoint.save(run.to_save(&model, improved))?;
        }
        if run.patience_spent() {
            break;
        }
        if epoch < last_epoch
            && options
                .time_limit
                .is_some_and(|t| run.started.elapsed() >= t)
        {
            return Ok(Trained::Paused {
                epoch,
                epochs: config.train.epochs,
            });
        }
    }
    drop(progress);
    Ok(Trained::Finished(run.finish()))
}

/// Ends the progress display however the loop exits.
pub(crate) struct Finishing<'p>(pub(crate) &'p mut dyn Progress);

impl Drop for Finishing<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Indices of the training, validation and test splits in `ForecastData::splits`.
const TRAIN: usize = 0;
const VAL: usize = 1;
const TEST: usize = 2;

/// The state [`train`] carries from epoch to epoch.
struct Training<'a> {
    config: &'a RunConfig,
    data: &'a ForecastData,
    device: &'a Device,
    /// The autodiff twin of `device`, where training runs.
    autodiff: Device,
    optim: ModuleOptimizer,
    /// Trainable parameters.
    params: usize,
    /// Shuffles `order` once per epoch.
    rng: ChaCha8Rng,
    /// Training windows in this epoch's order.
    order: Vec<usize>,
    /// Batches per epoch.
    batches: usize,
    /// The best-validation weights (inference copy), their validation metrics and epoch.
    best: Option<(Arch, Metrics, usize)>,
    records: Vec<EpochRecord>,
    epochs_without_improvement: usize,
    /// Dropout seeds this run has drawn (a checkpoint stores the count).
    seed_draws: RunSeedDraws,
    /// Training seconds before the last resume.
    seconds_before: f64,
    resumed_after: Vec<usize>,
    started: Instant,
}

impl<'a> Training<'a> {
    /// Seed the device and build the model (returned beside the state, which the loop passes
    /// through each step by value so that the optimizer updates its sole copy) and optimizer.
    fn new(config: &'a RunConfig, data: &'a ForecastData, device: &'a Device) -> (Self, Arch) {
        device.seed(config.seed);
        let seed_draws = RunSeedDraws::since_seeding();
        let autodiff = device.clone().autodiff();
        let model = config.arch.init(&autodiff);
        let windows = data.splits[TRAIN].windows;
        let run = Self {
            params: model.num_params(),
            optim: AdamConfig::new()
                .with_epsilon(config.train.adam_epsilon as f32)
                .init(),
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            order: (0..windows).collect(),
            batches: windows.div_ceil(config.train.batch_size),
            best: None,
            records: Vec::new(),
            epochs_without_improvement: 0,
            seed_draws,
            seconds_before: 0.0,
            resumed_after: Vec::new(),
            started: Instant::now(),
            config,
            data,
            device,
            autodiff,
        };
        (run, model)
    }

    /// A model without parameters (the repeat baseline) is evaluated as built.
    fn untrained(self, model: Arch) -> Box<Outcome> {
        let model = model.valid();
        Box::new(Outcome {
            val: self.evaluate(&model, VAL),
            test: self.evaluate(&model, TEST),
            epochs_run: 0,
            best_epoch: 0,
            train_seconds: self.started.elapsed().as_secs_f64(),
            earlier_train_seconds: 0.0,
            resumed_after: Vec::new(),
            params: 0,
            model,
        })
    }

    /// Put the run and `model` where `saved` left them.
    fn resume(&mut self, mut model: Arch, saved: Saved) -> Result<Arch> {
        let state = saved.state;
        let unfit = |message: String| RunError::Checkpoint {
            path: saved.path.clone(),
            message,
        };
        // burn initialises parameters lazily, on first use: an uninterrupted run draws each
        // parameter's initial values from the device generator during its first training step,
        // interleaved with that step's dropout seeds. A throwaway first step makes the same draws
        // in the same order; the remaining dropout seeds are replayed after it.
        let (l, c) = (self.data.spec.seq_len, self.data.input_channels());
        let first_batch = self
            .config
            .train
            .batch_size
            .min(self.data.splits[TRAIN].windows);
        let x = Tensor::<3>::zeros([first_batch, l, c], &self.autodiff);
        let loss = model.forecast(x).powi_scalar(2).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = AdamConfig::new().init().step(0.0, model, grads);
        // The step queued a BatchNorm running-statistics update (burn's `RunningState` applies
        // it at the next read); syncing now lets the checkpoint's statistics replace it.
        let _ = model.valid();
        self.seed_draws.restore(&self.autodiff, state.dropout_draws);
        for _ in 0..state.epoch {
            self.order.shuffle(&mut self.rng);
        }
        model = model
            .try_load_record(saved.model)
            .map_err(|e| unfit(e.to_string()))?;
        self.optim = std::mem::replace(&mut self.optim, AdamConfig::new().init())
            .load_record(saved.optimizer);
        let best_model = model
            .valid()
            .try_load_record(saved.best)
            .map_err(|e| unfit(e.to_string()))?;
        let best_val = self.evaluate(&best_model, VAL);
        self.best = Some((best_model, best_val, state.best_epoch));
        self.records = state.records;
        self.epochs_without_improvement = state.epochs_without_improvement;
        self.seconds_before = state.train_seconds;
        self.resumed_after = state.resumed_after;
        self.resumed_after.push(state.epoch);
        Ok(model)
    }

    /// The last epoch to train: the configured count, or the epochs already done when a
    /// checkpoint was written after the early stop (the run died before testing).
    fn last_epoch(&self) -> usize {
        let done = self.records.len();
        if done > 0 && self.patience_spent() {
            done
        } else {
            self.config.train.epochs
        }
    }

    fn patience_spent(&self) -> bool {
        self.epochs_without_improvement >= self.config.train.patience
    }

    /// One pass over the shuffled training windows at `lr`: the updated model and the mean
    /// batch loss.
    fn train_epoch(
        &mut self,
        mut model: Arch,
        epoch: usize,
        lr: f64,
        progress: &mut dyn Progress,
    ) -> Result<(Arch, f64)> {
        let data = self.data;
        let train_split = &data.splits[TRAIN];
        let scored = data.scored_channels();
        let (l, h, c) = (data.spec.seq_len, data.spec.pred_len, data.input_channels());
        let (mut x_buf, mut y_buf) = (Vec::new(), Vec::new());
        self.order.shuffle(&mut self.rng);
        let mut loss_sum = 0.0;
        for (batch, indices) in self.order.chunks(self.config.train.batch_size).enumerate() {
            data.fill_batch(train_split, indices, &mut x_buf, &mut y_buf);
            let b = indices.len();
            let x =
                Tensor::<3>::from_data(TensorData::new(x_buf.clone(), [b, l, c]), &self.autodiff);
            let y = Tensor::<3>::from_data(
                TensorData::new(y_buf.clone(), [b, h, scored.len()]),
                &self.autodiff,
            );
            let prediction = model.forecast(x).narrow(2, scored.start, scored.len());
            let loss = (prediction - y).powi_scalar(2).mean();
            let loss_value =
                RunError::unless_finite(loss.clone().into_scalar::<f32>() as f64, epoch, batch)?;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = self.optim.step(lr, model, grads);
            loss_sum += loss_value;
            progress.batch(loss_value, lr);
        }
        Ok((model, loss_sum / self.batches as f64))
    }

    /// Validate the current weights; keep them if they are the best so far (a tie counts, as
    /// TSLib's `EarlyStopping` with delta 0). Their metrics and whether they improved.
    fn validate(&mut self, model: &Arch, epoch: usize) -> (Metrics, bool) {
        let inference = model.valid();
        let val = self.evaluate(&inference, VAL);
        let improved = self.best.as_ref().is_none_or(|(_, m, _)| val.mse <= m.mse);
        if improved {
            self.best = Some((inference, val, epoch));
            self.epochs_without_improvement = 0;
        } else {
            self.epochs_without_improvement += 1;
        }
        (val, improved)
    }

    /// The checkpoint after the epoch just recorded (the best weights only when they changed).
    fn to_save(&self, model: &Arch, improved: bool) -> ToSave {
        let (best_model, _, best_epoch) = self.best.as_ref().expect("an epoch ran");
        ToSave {
            state: TrainState {
                run_id: self.config.run_id(),
                git_commit: sysinfo::git_commit().to_string(),
                epoch: self.records.len(),
                records: self.records.clone(),
                best_epoch: *best_epoch,
                epochs_without_improvement: self.epochs_without_improvement,
                dropout_draws: self.seed_draws.count(),
                train_seconds: self.seconds_before + self.started.elapsed().as_secs_f64(),
                resumed_after: self.resumed_after.clone(),
            },
            model: model.clone().into_record(),
            optimizer: self.optim.to_record(),
            best: improved.then(|| best_model.clone().into_record()),
        }
    }

    /// MSE and MAE of `model` (an inference copy) over every window of split `split`.
    fn evaluate(&self, model: &Arch, split: usize) -> Metrics {
        let split = &self.data.splits[split];
        let batch = self.config.train.eval_batch_size;
        evaluate(model, self.data, split, batch, self.device)
    }

    /// Test the best-validation weights.
    fn finish(mut self) -> Box<Outcome> {
        let train_seconds = self.seconds_before + self.started.elapsed().as_secs_f64();
        let (model, val, best_epoch) = self.best.take().expect("at least one epoch ran");
        let test = self.evaluate(&model, TEST);
        Box::new(Outcome {
            test,
            val,
            epochs_run: self.records.len(),
            best_epoch,
            train_seconds,
            earlier_train_seconds: self.seconds_before,
            resumed_after: self.resumed_after,
            params: self.params,
            model,
        })
    }
}
