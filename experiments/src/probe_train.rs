//! Training and scoring a token probe run (the recipe is in [`crate::probe`]), and its run
//! folder: `config.json`, `metrics.jsonl` (one line per epoch) and `summary.json`, written
//! atomically and last, so a folder with a summary is a finished run.
//!
//! A run keeps a checkpoint after every epoch ([`crate::checkpoint`], removed when it finishes):
//! one killed, or paused by a time limit, resumes at its last completed epoch and ends with the
//! numbers of an uninterrupted run (the paper preset's runs take hours on a CPU). The training
//! order is replayed rather than stored: epoch `e` shuffles the previous order with the seeded
//! ChaCha stream, and a fresh epoch's examples come from their own seed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use architectures::TokenArch;
use architectures::blocks::dropout::RunSeedDraws;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use datasets::{Scoring, TokenExamples};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, LoopState, Saved, ToSave};
use crate::error::{Result, RunError, io_at};
use crate::files::{
    json_line, read_json_if_exists, resumed_log, write_json_atomic, write_text_atomic,
};
use crate::probe::{LossPositions, ProbeConfig, TrainingExamples};
use crate::progress::Progress;
use crate::runner::RunOptions;
use crate::sysinfo;
use crate::train::Finishing;

/// One line of a probe run's `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeEpoch {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's batches.
    pub train_loss: f64,
    /// Test accuracy after the epoch.
    pub accuracy: f64,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Wall seconds of the epoch (training and testing).
    pub seconds: f64,
}

/// Accuracy at one test length.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LengthAccuracy {
    /// Sequence length.
    pub len: usize,
    /// Mean over examples of the fraction of scored positions right.
    pub accuracy: f64,
    /// Examples tested.
    pub examples: usize,
}

/// What a finished probe run wrote last: `summary.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeSummary {
    /// The run id (its folder's name).
    pub run_id: String,
    /// Test accuracy of the best epoch (the best-epoch weights are the ones tested at other
    /// lengths).
    pub accuracy: f64,
    /// The epoch it came from.
    pub best_epoch: usize,
    /// Epochs trained.
    pub epochs_run: usize,
    /// Whether training stopped early at the target accuracy.
    pub stopped_early: bool,
    /// Accuracy at the training length and every test length, ascending.
    pub lengths: Vec<LengthAccuracy>,
    /// Parameters of the whole token model.
    pub params: usize,
    /// Parameters of the backbone alone.
    pub backbone_params: usize,
    /// Floats of recurrent state per sequence at the training length (a KV cache's grows with
    /// it; Zoology's recall–memory axis).
    pub state_floats: usize,
    /// Wall seconds of training and testing.
    pub train_seconds: f64,
    /// Tokens per second over the training steps.
    pub train_tokens_per_second: f64,
    /// Commit of the code that ran.
    pub git_commit: String,
    /// Epochs after which the run was resumed from its checkpoint (absent when it ran in one go).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed_after: Vec<usize>,
}

/// The loop state of a probe run after a completed epoch: its checkpoint's `state.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeLoopState {
    /// Run id the checkpoint belongs to.
    pub run_id: String,
    /// Commit of the code that wrote the checkpoint.
    pub git_commit: String,
    /// Epochs completed.
    pub epoch: usize,
    /// The records of epochs `1..=epoch`, as `metrics.jsonl` holds them.
    pub records: Vec<ProbeEpoch>,
    /// Epoch of the best weights (their accuracy is recomputed on resume rather than read back
    /// from JSON).
    pub best_epoch: usize,
    /// Tokens trained on so far.
    pub trained_tokens: usize,
    /// Seconds in the training steps so far (the tokens-per-second denominator).
    pub training_seconds: f64,
    /// Wall seconds so far, testing included, over every segment.
    pub train_seconds: f64,
    /// Epochs after which the run was resumed, in order.
    pub resumed_after: Vec<usize>,
    /// Dropout mask seeds drawn from the device generator since the run seeded it (absent in
    /// checkpoints of models without dropout, written before the field existed: none).
    #[serde(default)]
    pub dropout_draws: u64,
}

impl LoopState for ProbeLoopState {
    fn epoch(&self) -> usize {
        self.epoch
    }

    fn best_epoch(&self) -> usize {
        self.best_epoch
    }
}

/// Checkpointing and pausing for [`train_probe`].
#[derive(Default)]
pub struct ProbeOptions {
    /// Where to write a checkpoint after every epoch (none: keep nothing).
    pub checkpoint: Option<Checkpoint>,
    /// A checkpoint to resume from (read by the caller, which also restores `metrics.jsonl`).
    pub resume: Option<Saved<ProbeLoopState>>,
    /// Pause at the end of the first epoch that ends this long or longer after the call began.
    pub time_limit: Option<Duration>,
}

/// How a call to [`train_probe`] or [`run_probe`] ended.
#[derive(Clone, Debug)]
pub enum ProbeTrained {
    /// Training ended (last epoch or early stop) and the best weights were tested.
    Finished(Box<ProbeSummary>),
    /// The time limit passed at the end of epoch `epoch` of `epochs`; the checkpoint holds the
    /// run, and running it again resumes there.
    Paused {
        /// Epochs completed.
        epoch: usize,
        /// Epochs configured.
        epochs: usize,
    },
}

/// A probe run's folder under an output directory.
#[derive(Clone, Debug)]
pub struct ProbeDir {
    /// `<out>/<run id>`.
    pub path: PathBuf,
}

impl ProbeDir {
    /// The folder of `config` under `out`.
    pub fn new(out: &Path, config: &ProbeConfig) -> Self {
        Self {
            path: out.join(config.run_id()),
        }
    }

    /// Its summary, when the run finished.
    pub fn completed(&self) -> Result<Option<ProbeSummary>> {
        read_json_if_exists(&self.path.join("summary.json"))
    }

    /// Its checkpoint (there while the run is unfinished).
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint::new(&self.path)
    }
}

/// Train `config` into its folder under `out`: a finished run is read back, not trained again,
/// and an interrupted one resumes from its checkpoint, unless `options.force`;
/// `options.time_limit` pauses it at the end of the first epoch past the limit.
pub fn run_probe(
    config: &ProbeConfig,
    out: &Path,
    options: RunOptions,
    progress: &mut dyn Progress,
) -> Result<ProbeTrained> {
    let dir = ProbeDir::new(out, config);
    if !options.force
        && let Some(summary) = dir.completed()?
    {
        return Ok(ProbeTrained::Finished(Box::new(summary)));
    }
    std::fs::create_dir_all(&dir.path).map_err(io_at(&dir.path))?;
    write_json_atomic(&dir.path.join("config.json"), config)?;
    let device = config.backend.device()?;
    let checkpoint = dir.checkpoint();
    let resume = checkpoint.resume::<ProbeLoopState>(options.force)?;
    let metrics = dir.path.join("metrics.jsonl");
    let records = resume.as_ref().map_or(&[][..], |s| &s.state.records[..]);
    let mut lines = resumed_log(&metrics, records);
    write_text_atomic(&metrics, &lines)?;
    let train_options = ProbeOptions {
        checkpoint: Some(checkpoint.clone()),
        resume,
        time_limit: options.time_limit,
    };
    let trained = train_probe(config, &device, progress, train_options, |epoch| {
        lines.push_str(&json_line(epoch));
        lines.push('\n');
        write_text_atomic(&metrics, &lines)
    })?;
    if let ProbeTrained::Finished(summary) = &trained {
        write_json_atomic(&dir.path.join("summary.json"), summary)?;
        checkpoint.remove()?;
    }
    Ok(trained)
}

/// Train a token model on `config.task` and test it at every length; `on_epoch` sees each
/// epoch's record. With `options.resume` the run continues from that checkpoint and ends with
/// the numbers an uninterrupted run gets.
pub fn train_probe(
    config: &ProbeConfig,
    device: &Device,
    progress: &mut dyn Progress,
    options: ProbeOptions,
    mut on_epoch: impl FnMut(&ProbeEpoch) -> Result<()>,
) -> Result<ProbeTrained> {
    let started = Instant::now();
    let train = &config.train;
    let examples = |task: datasets::ProbeTask, n, seed| {
        task.generate(n, seed)
            .map_err(|e| RunError::Invalid(e.to_string()))
    };
    device.seed(config.seed);
    let seed_draws = RunSeedDraws::since_seeding();
    let autodiff = device.clone().autodiff();
    let mut model = config.model.init(&autodiff);
    // Checked before any example is drawn (the generators draw from their own seeded
    // generator, so the order does not change the examples).
    let longest = crate::probe::longest_len(config.task.seq_len(), &train.test_lens);
    if let Some(max) = model.max_len().filter(|&max| longest > max) {
        return Err(RunError::Invalid(format!(
            "`{}` handles sequences up to {max} positions; the run asks for {longest}",
            config.model.name()
        )));
    }
    let mut train_set = examples(config.task, train.train_examples, train.epoch_seed(1))?;
    let test_set = examples(config.task, train.test_examples, train.data_seed + 1)?;
    let mut optim = AdamWConfig::new()
        .with_weight_decay(train.weight_decay as f32)
        .with_epsilon(train.adam_epsilon as f32)
        .init();
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..train_set.count()).collect();
    let batches = order.len().div_ceil(train.batch_size);
    let total_steps = (train.epochs * batches) as f64;
    let label = format!("{} {}", config.model.name(), config.task.name());
    let progress = Finishing(progress);
    progress.0.start(&label, train.epochs, batches);

    let mut run = ProbeLoopState {
        run_id: config.run_id(),
        git_commit: sysinfo::git_commit().to_string(),
        epoch: 0,
        records: Vec::new(),
        best_epoch: 0,
        trained_tokens: 0,
        training_seconds: 0.0,
        train_seconds: 0.0,
        resumed_after: Vec::new(),
        dropout_draws: 0,
    };
    let mut best: Option<(TokenArch, f64)> = None;
    let mut seconds_before = 0.0;
    if let Some(saved) = options.resume {
        let unfit = |message: String| RunError::Checkpoint {
            path: saved.path.clone(),
            message,
        };
        // The device generator must stand where the interrupted run left it. A forward pass
        // first, as the first training step makes one, draws the parameters burn still
        // initialises lazily (the embedding) in the order that step drew them; after that only
        // dropout draws (one seed per mask), so replaying the interrupted run's draws, less
        // those the pass made, puts the generator back and the resumed run draws the masks of
        // an uninterrupted one.
        let _ = model.logits(Tensor::<2, Int>::zeros(
            [1, config.task.seq_len()],
            &autodiff,
        ));
        seed_draws.restore(&autodiff, saved.state.dropout_draws);
        model = model
            .try_load_record(saved.model)
            .map_err(|e| unfit(e.to_string()))?;
        optim = optim.load_record(saved.optimizer);
        let best_model = model
            .valid()
            .try_load_record(saved.best)
            .map_err(|e| unfit(e.to_string()))?;
        let best_accuracy = accuracy(&best_model, &test_set, device);
        best = Some((best_model, best_accuracy));
        for _ in 0..saved.state.epoch {
            order.shuffle(&mut rng);
        }
        run = saved.state;
        seconds_before = run.train_seconds;
        run.resumed_after.push(run.epoch);
        run.git_commit = sysinfo::git_commit().to_string();
        progress.0.resumed(run.epoch);
    }
    let mut step = run.epoch * batches;
    let mut stopped_early = run
        .records
        .last()
        .is_some_and(|r| r.accuracy > train.stop_accuracy);
    for epoch in run.epoch + 1..=train.epochs {
        if stopped_early {
            break;
        }
        let epoch_started = Instant::now();
        if epoch > 1 && train.examples == TrainingExamples::Fresh {
            train_set = examples(config.task, train.train_examples, train.epoch_seed(epoch))?;
        }
        order.shuffle(&mut rng);
        let (mut loss_sum, mut lr) = (0.0, train.lr);
        for (batch, indices) in order.chunks(train.batch_size).enumerate() {
            // Cosine from the peak to 0 over every step (PyTorch's CosineAnnealingLR, per step).
            lr = train.lr * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total_steps).cos());
            let batch_tensors = Batch::for_loss(&train_set, indices, train.loss, &autodiff);
            let logits = model.logits_at(batch_tensors.tokens, batch_tensors.positions);
            let loss = cross_entropy(logits, batch_tensors.targets);
            let loss_value =
                RunError::unless_finite(loss.clone().into_scalar::<f32>() as f64, epoch, batch)?;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            loss_sum += loss_value;
            step += 1;
            run.trained_tokens += indices.len() * train_set.len;
            progress.0.batch(loss_value, lr);
        }
        run.training_seconds += epoch_started.elapsed().as_secs_f64();
        let inference = model.valid();
        let accuracy = accuracy(&inference, &test_set, device);
        let record = ProbeEpoch {
            epoch,
            train_loss: loss_sum / batches as f64,
            accuracy,
            lr,
            seconds: epoch_started.elapsed().as_secs_f64(),
        };
        progress.0.epoch(
            epoch,
            &format!(
                "loss {:.4} accuracy {:.4} lr {:.2e} ({:.1} s)",
                record.train_loss, accuracy, lr, record.seconds
            ),
        );
        on_epoch(&record)?;
        run.records.push(record);
        run.epoch = epoch;
        let improved = best.as_ref().is_none_or(|(_, a)| accuracy > *a);
        if improved {
            best = Some((inference, accuracy));
            run.best_epoch = epoch;
        }
        stopped_early = accuracy > train.stop_accuracy;
        run.train_seconds = seconds_before + started.elapsed().as_secs_f64();
        run.dropout_draws = seed_draws.count();
        if let Some(checkpoint) = &options.checkpoint {
            let best_model = &best.as_ref().expect("an epoch ran").0;
            checkpoint.save(ToSave {
                state: run.clone(),
                model: model.clone().into_record(),
                optimizer: optim.to_record(),
                best: improved.then(|| best_model.clone().into_record()),
            })?;
        }
        if !stopped_early
            && epoch < train.epochs
            && options.time_limit.is_some_and(|t| started.elapsed() >= t)
        {
            return Ok(ProbeTrained::Paused {
                epoch,
                epochs: train.epochs,
            });
        }
    }
    drop(progress);
    let (best_model, best_accuracy) = best.expect("at least one epoch");
    let mut lengths = vec![LengthAccuracy {
        len: test_set.len,
        accuracy: best_accuracy,
        examples: test_set.count(),
    }];
    for &len in &train.test_lens {
        let set = examples(
            config.task.with_len(len),
            train.length_test_examples,
            train.data_seed + 1,
        )?;
        lengths.push(LengthAccuracy {
            len,
            accuracy: accuracy(&best_model, &set, device),
            examples: set.count(),
        });
    }
    Ok(ProbeTrained::Finished(Box::new(ProbeSummary {
        run_id: config.run_id(),
        accuracy: best_accuracy,
        best_epoch: run.best_epoch,
        epochs_run: run.epoch,
        stopped_early: stopped_early && run.epoch < train.epochs,
        lengths,
        params: best_model.num_params(),
        backbone_params: best_model.backbone_params(),
        state_floats: best_model.state_size(test_set.len),
        train_seconds: seconds_before + started.elapsed().as_secs_f64(),
        train_tokens_per_second: run.trained_tokens as f64 / run.training_seconds.max(1e-9),
        git_commit: sysinfo::git_commit().to_string(),
        resumed_after: run.resumed_after,
    })))
}

/// Mean cross-entropy of `logits: [n, V]` against `targets: [n]`.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let n = targets.dims()[0];
    let log_p = log_softmax(logits, 1); // [n, V]
    let picked = log_p.gather(1, targets.reshape([n, 1])); // [n, 1]
    picked.mean().neg()
}

/// A batch's tensors: the tokens `[b, l]`, the flattened positions read (indices into `b·l`),
/// and their targets.
pub struct Batch {
    /// `[b, l]`.
    pub tokens: Tensor<2, Int>,
    /// `[n]`, indices into the `b·l` positions.
    pub positions: Tensor<1, Int>,
    /// `[n]`.
    pub targets: Tensor<1, Int>,
}

impl Batch {
    /// The positions the loss reads: every one with a target, or the scored ones.
    pub fn for_loss(
        set: &TokenExamples,
        indices: &[usize],
        loss: LossPositions,
        device: &Device,
    ) -> Self {
        let (positions, targets, _) = match loss {
            LossPositions::Labelled => picked(set, indices, |_| true),
            LossPositions::Scored => picked(set, indices, scored(set)),
        };
        Self::new(set, indices, positions, targets, device)
    }

    fn new(
        set: &TokenExamples,
        indices: &[usize],
        positions: Vec<i64>,
        targets: Vec<i64>,
        device: &Device,
    ) -> Self {
        let (b, l) = (indices.len(), set.len);
        let tokens: Vec<i64> = indices
            .iter()
            .flat_map(|&i| set.tokens_of(i).iter().map(|&t| t as i64))
            .collect();
        let n = positions.len();
        Self {
            tokens: Tensor::from_data(TensorData::new(tokens, [b, l]), device),
            positions: Tensor::from_data(TensorData::new(positions, [n]), device),
            targets: Tensor::from_data(TensorData::new(targets, [n]), device),
        }
    }
}

/// Whether position `t` of `set`'s examples is scored.
fn scored(set: &TokenExamples) -> impl Fn(usize) -> bool {
    let (scoring, last) = (set.scoring, set.len - 1);
    move |t| match scoring {
        Scoring::Targets => true,
        Scoring::Last => t == last,
    }
}

/// The labelled positions of `indices`' examples that `keep(position)` selects, flattened
/// (example-major), their targets, and the example (0-based within the batch) of each.
fn picked(
    set: &TokenExamples,
    indices: &[usize],
    keep: impl Fn(usize) -> bool,
) -> (Vec<i64>, Vec<i64>, Vec<usize>) {
    let (mut positions, mut targets, mut owners) = (Vec::new(), Vec::new(), Vec::new());
    for (row, &i) in indices.iter().enumerate() {
        for (t, &target) in set.targets_of(i).iter().enumerate() {
            if let Some(target) = target.filter(|_| keep(t)) {
                positions.push((row * set.len + t) as i64);
                targets.push(target as i64);
                owners.push(row);
            }
        }
    }
    (positions, targets, owners)
}

/// Accuracy of `model` on `set`: per example, the fraction of its scored positions whose argmax
/// is the target; the mean over examples. Batched to about 32k tokens.
pub fn accuracy(model: &TokenArch, set: &TokenExamples, device: &Device) -> f64 {
    let batch = (32_768 / set.len).clamp(1, 256);
    let indices: Vec<usize> = (0..set.count()).collect();
    let mut total = 0.0;
    for chunk in indices.chunks(batch) {
        let (positions, targets, owners) = picked(set, chunk, scored(set));
        let tensors = Batch::new(set, chunk, positions, targets.clone(), device);
        let predicted = model
            .logits_at(tensors.tokens, tensors.positions)
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .expect("argmax is integer data");
        let (mut right, mut count) = (vec![0usize; chunk.len()], vec![0usize; chunk.len()]);
        for ((&p, &t), &row) in predicted.iter().zip(&targets).zip(&owners) {
            right[row] += usize::from(p == t);
            count[row] += 1;
        }
        total += right
            .iter()
            .zip(&count)
            .filter(|(_, c)| **c > 0)
            .map(|(&r, &c)| r as f64 / c as f64)
            .sum::<f64>();
    }
    total / set.count() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use datasets::ProbeTask;

    /// Induction's loss reads every next token, or with `Scored` only the last position, the
    /// answer (one per example).
    #[test]
    fn the_scored_loss_reads_only_the_induction_answer() {
        let set = ProbeTask::Induction { vocab: 8, len: 16 }
            .generate(3, 7)
            .unwrap();
        let device = Device::default();
        let all = Batch::for_loss(&set, &[0, 1, 2], LossPositions::Labelled, &device);
        assert_eq!(all.positions.dims(), [48]);
        let scored = Batch::for_loss(&set, &[0, 2], LossPositions::Scored, &device);
        let positions = scored
            .positions
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>();
        assert_eq!(positions.unwrap(), [15, 31]);
        let targets = scored
            .targets
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>();
        let answers: Vec<i64> = [0, 2]
            .iter()
            .map(|&i| set.targets_of(i)[15].unwrap() as i64)
            .collect();
        assert_eq!(targets.unwrap(), answers);
    }
}
