//! Token probes as runs: the settings of `archzoo probe` ([`ProbeRequest`], which a sweep file's
//! keys also parse), their presets ([`ProbePreset`]), and the full [`ProbeConfig`] a run is,
//! hashed into its id. Training is [`crate::probe_train`].
//!
//! The recipe is Zoology's (`zoology/train.py`): AdamW with weight decay 0.1, the learning rate
//! decayed to 0 along a cosine over every step of the configured epochs, the test accuracy after
//! each epoch, and an early stop once it exceeds 0.99. Accuracy is the mean over test examples
//! of the fraction of scored positions predicted exactly (argmax).

use architectures::options::positive;
use architectures::{ArchName, ModelOptions, TokenConfig};
use clap::Args;
use datasets::ProbeTask;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backend::BackendName;
use crate::error::{Result, RunError};
use crate::request::TRAINING;

/// The token tasks, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum TaskName {
    /// Multi-query associative recall (Zoology).
    Mqar,
    /// Selective copying (Mamba paper, Table 1).
    SelectiveCopy,
    /// Induction heads, with length extrapolation (Mamba paper, Table 2).
    Induction,
}

/// Sizes of a probe run: the papers' or ones a 2-core CPU trains in the time a grid allows.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum ProbePreset {
    /// Sized for two cores: MQAR with V 256 and batch 32 (the Transformer reaches 0.99 at
    /// width 64), shorter copying (see the README for what this costs in comparability).
    #[default]
    Cpu,
    /// The papers' settings (Zoology's MQAR figure, the Mamba paper's copying and induction).
    Paper,
}

/// Where the training examples come from.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum TrainingExamples {
    /// One set, drawn once and reshuffled each epoch (Zoology's MQAR).
    #[default]
    Fixed,
    /// A new set each epoch (the Mamba paper draws its copying and induction data afresh):
    /// a model cannot pass by memorising a few thousand sequences.
    Fresh,
}

/// Which positions the training loss reads.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum LossPositions {
    /// Every position with a target (the references: induction's loss reads every next token).
    #[default]
    Labelled,
    /// Only the scored positions (induction: the last). The other next tokens of an induction
    /// sequence are uniform noise, 255 of its 256 targets.
    Scored,
}

/// A preset's values for one task; flags override each.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeDefaults {
    /// Vocabulary (alphabet for copying).
    pub vocab: usize,
    /// Sequence length (blank positions for copying).
    pub seq_len: usize,
    /// MQAR's key–value pairs `K`, or copying's data tokens `M`; unused by induction.
    pub count: usize,
    /// Training examples, drawn once.
    pub train_examples: usize,
    /// Test examples.
    pub test_examples: usize,
    /// Epochs at most.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Test lengths besides the training length, as multiples of it (induction only).
    pub test_multiples: &'static [usize],
    /// Test examples at each of those lengths.
    pub length_test_examples: usize,
    /// A fixed training set or a fresh one each epoch.
    pub examples: TrainingExamples,
    /// The positions the loss reads.
    pub loss: LossPositions,
}

impl ProbePreset {
    /// The values for `task`.
    pub fn defaults(self, task: TaskName) -> ProbeDefaults {
        match (self, task) {
            // Zoology's figure 2: V 8192, 100k/3k examples, 64 epochs, batch 512 at L 64 (256 at
            // 256, 128 at 512); (L, K) from (64, 4) to (512, 64).
            (Self::Paper, TaskName::Mqar) => ProbeDefaults {
                vocab: 8192,
                seq_len: 64,
                count: 4,
                train_examples: 100_000,
                test_examples: 3_000,
                epochs: 64,
                batch_size: 512,
                lr: 1e-3,
                test_multiples: &[],
                length_test_examples: 0,
                examples: TrainingExamples::Fixed,
                loss: LossPositions::Labelled,
            },
            // Zoology's figure at its shortest setting, sized for two cores: V 256 (a 32× smaller
            // head), batch 32; 12 epochs of 100k examples (37 500 steps) carry 2-layer attention
            // at width 64 past the 1/K plateau (measured: 0.36 after 6 250 steps, 0.93 after
            // 9 375, 0.9925 after 34 375).
            (Self::Cpu, TaskName::Mqar) => ProbeDefaults {
                vocab: 256,
                seq_len: 64,
                count: 4,
                train_examples: 100_000,
                test_examples: 1_000,
                epochs: 12,
                batch_size: 32,
                lr: 1e-3,
                test_multiples: &[],
                length_test_examples: 0,
                examples: TrainingExamples::Fixed,
                loss: LossPositions::Labelled,
            },
            // The Mamba paper: A 16, M 16, length 4096; 400k steps of batch 64 at lr 1e-4 on
            // data drawn afresh: 256 epochs of 100k fresh sequences.
            (Self::Paper, TaskName::SelectiveCopy) => ProbeDefaults {
                vocab: 16,
                seq_len: 4096,
                count: 16,
                train_examples: 100_000,
                test_examples: 1_000,
                epochs: 256,
                batch_size: 64,
                lr: 1e-4,
                test_multiples: &[],
                length_test_examples: 0,
                examples: TrainingExamples::Fresh,
                loss: LossPositions::Labelled,
            },
            // The paper's alphabet and 16 tokens among 64 blanks (a 96-token sequence), 32
            // epochs of 10k fresh sequences (5 000 steps) at lr 3e-3. Measured on Mamba
            // (2 layers, width 64): among 256 blanks at lr 1e-3, 0.35 after 2 500 steps; among
            // 64, 0.49 at lr 1e-3 and 0.96 at 3e-3 after 2 500 steps, still rising.
            (Self::Cpu, TaskName::SelectiveCopy) => ProbeDefaults {
                vocab: 16,
                seq_len: 64,
                count: 16,
                train_examples: 10_000,
                test_examples: 1_000,
                epochs: 32,
                batch_size: 64,
                lr: 3e-3,
                test_multiples: &[],
                length_test_examples: 0,
                examples: TrainingExamples::Fresh,
                loss: LossPositions::Labelled,
            },
            // The Mamba paper: vocabulary 16, trained at 256, tested up to 2^20.
            (Self::Paper, TaskName::Induction) => ProbeDefaults {
                vocab: 16,
                seq_len: 256,
                count: 0,
                train_examples: 100_000,
                test_examples: 1_000,
                epochs: 64,
                batch_size: 64,
                lr: 1e-3,
                test_multiples: &[2, 4, 16, 64, 256, 1024, 4096],
                length_test_examples: 1_000,
                examples: TrainingExamples::Fresh,
                loss: LossPositions::Labelled,
            },
            // Trained at 256 as the paper, on 16 epochs of 10k fresh sequences (2 500 steps; the
            // paper's are fresh too, about 200k steps of batch 8) with the loss at the answer
            // only. Measured on Mamba (2 layers, width 64) over one fixed set of 10k: at chance
            // with the loss on every next token, and memorised (train loss 1.93, test at
            // chance) with the loss at the answer; fresh sets and the answer: at chance for
            // 9 to 11 epochs, then 1.0 within two, and 1.0 at 2x and 4x the length.
            (Self::Cpu, TaskName::Induction) => ProbeDefaults {
                vocab: 16,
                seq_len: 256,
                count: 0,
                train_examples: 10_000,
                test_examples: 500,
                epochs: 16,
                batch_size: 64,
                lr: 1e-3,
                test_multiples: &[2, 4, 16, 64],
                length_test_examples: 100,
                examples: TrainingExamples::Fresh,
                loss: LossPositions::Scored,
            },
        }
    }
}

/// What is asked for: the settings of `archzoo probe`, declared once; a probe sweep file's keys
/// are these with underscores. `None` takes the preset's value.
#[derive(Clone, Debug, PartialEq, Args)]
pub struct ProbeRequest {
    /// Token task (a sweep file that sets it is a probe sweep).
    #[arg(long, value_enum, default_value = "mqar")]
    pub task: TaskName,
    /// Architecture (a causal backbone).
    #[arg(long, value_enum, default_value = "transformer")]
    pub arch: ArchName,
    /// Sizes: `cpu` (the default) or the papers'; the flags override its values.
    #[arg(long, value_enum, default_value = "cpu")]
    pub preset: ProbePreset,
    /// Vocabulary size (the alphabet, blank and marker included, for selective copying).
    #[arg(long, allow_negative_numbers = true, value_parser = positive)]
    pub vocab: Option<usize>,
    /// Sequence length (for selective copying: blank positions, the sequence adds 2M).
    #[arg(long, allow_negative_numbers = true, value_parser = positive)]
    pub seq_len: Option<usize>,
    /// MQAR: key-value pairs K.
    #[arg(long, allow_negative_numbers = true, value_parser = positive)]
    pub pairs: Option<usize>,
    /// MQAR: fill the positions after the context that hold no query with random tokens
    /// (Zoology's generator default) instead of the blank 0 (its figure-2 sweep, which both
    /// presets follow).
    #[arg(long)]
    pub random_non_queries: bool,
    /// Selective copying: data tokens M to copy.
    #[arg(long, allow_negative_numbers = true, value_parser = positive)]
    pub tokens: Option<usize>,
    /// Induction: test lengths besides the training length (default: the preset's multiples
    /// of it).
    #[arg(long, value_delimiter = ',', value_parser = positive)]
    pub test_lens: Option<Vec<usize>>,
    /// Induction: test examples at each length of `--test-lens` (default: the preset's).
    #[arg(long, allow_negative_numbers = true, value_parser = positive)]
    pub length_test_examples: Option<usize>,
    /// Training examples (per epoch with `--examples fresh`; default: the preset's).
    #[arg(long, allow_negative_numbers = true, value_parser = positive, help_heading = TRAINING)]
    pub train_examples: Option<usize>,
    /// One training set drawn once, or a fresh one each epoch (default: the preset's).
    #[arg(long, value_enum, help_heading = TRAINING)]
    pub examples: Option<TrainingExamples>,
    /// Positions the training loss reads: every labelled one, or only the scored ones
    /// (induction only: its last position; the other tasks score every labelled one).
    /// Default: the preset's.
    #[arg(long, value_enum, help_heading = TRAINING)]
    pub loss: Option<LossPositions>,
    /// Test examples (default: the preset's).
    #[arg(long, allow_negative_numbers = true, value_parser = positive, help_heading = TRAINING)]
    pub test_examples: Option<usize>,
    /// Peak learning rate (default: the preset's).
    #[arg(long, allow_negative_numbers = true, help_heading = TRAINING)]
    pub lr: Option<f64>,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true, help_heading = TRAINING)]
    pub weight_decay: f64,
    /// Batch size (default: the preset's).
    #[arg(long, allow_negative_numbers = true, value_parser = positive, help_heading = TRAINING)]
    pub batch: Option<usize>,
    /// Epochs at most (default: the preset's).
    #[arg(long, allow_negative_numbers = true, value_parser = positive, help_heading = TRAINING)]
    pub epochs: Option<usize>,
    /// Seed of the examples (train and test are drawn from it and the next seed).
    #[arg(long, default_value_t = 0, help_heading = TRAINING)]
    pub data_seed: u64,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendName,
    /// Seed of initialisation and shuffling.
    #[arg(long, default_value_t = 2021)]
    pub seed: u64,
    /// Model options: each architecture takes the ones that apply to its token model.
    #[command(flatten, next_help_heading = "Model options")]
    pub model: ModelOptions,
}

/// How a probe model is trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeTrainConfig {
    /// The preset the values came from.
    pub preset: ProbePreset,
    /// Peak learning rate (cosine to 0 over every step of `epochs`).
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Adam's epsilon (PyTorch's 1e-8).
    pub adam_epsilon: f64,
    /// Batch size.
    pub batch_size: usize,
    /// Epochs at most.
    pub epochs: usize,
    /// Stop once the test accuracy exceeds this (Zoology: 0.99).
    pub stop_accuracy: f64,
    /// Training examples (per epoch when fresh).
    pub train_examples: usize,
    /// A fixed training set or a fresh one each epoch (absent in configs written before the
    /// field existed: fixed).
    #[serde(default, skip_serializing_if = "architectures::is_default")]
    pub examples: TrainingExamples,
    /// The positions the loss reads (absent before the field existed: labelled).
    #[serde(default, skip_serializing_if = "architectures::is_default")]
    pub loss: LossPositions,
    /// Test examples.
    pub test_examples: usize,
    /// Seed of the training examples; the test examples use the next one, a fresh epoch `e`
    /// ([`ProbeTrainConfig::epoch_seed`]) its own.
    pub data_seed: u64,
    /// Lengths tested besides the training length, ascending.
    pub test_lens: Vec<usize>,
    /// Test examples at each of `test_lens` (absent when there are none).
    #[serde(default, skip_serializing_if = "architectures::is_default")]
    pub length_test_examples: usize,
}

impl ProbeTrainConfig {
    /// Seed of epoch `epoch`'s training examples (1-based): `data_seed` for a fixed set and for
    /// a fresh set's first epoch, then `data_seed + (epoch − 1)·2³²`, clear of the test seed
    /// `data_seed + 1`.
    pub fn epoch_seed(&self, epoch: usize) -> u64 {
        match self.examples {
            TrainingExamples::Fixed => self.data_seed,
            TrainingExamples::Fresh => self
                .data_seed
                .wrapping_add(((epoch as u64).saturating_sub(1)) << 32),
        }
    }
}

/// The longest sequence a run reads: its training length or the longest of its test lengths
/// (ascending).
pub fn longest_len(train_len: usize, test_lens: &[usize]) -> usize {
    test_lens.last().map_or(train_len, |&l| l.max(train_len))
}

/// Everything that determines a probe run's numbers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// The task and its settings.
    pub task: ProbeTask,
    /// The token model.
    pub model: TokenConfig,
    /// The recipe.
    pub train: ProbeTrainConfig,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
    /// Backend.
    pub backend: BackendName,
}

impl ProbeConfig {
    /// Readable, unique id: `<arch>-<task>-L<len>-d<width>-lr<lr>-s<seed>-<hash8>`, the hash over
    /// the whole serialized config.
    pub fn run_id(&self) -> String {
        let json = serde_json::to_string(self).expect("ProbeConfig serializes");
        let hash = format!("{:x}", Sha256::digest(json.as_bytes()));
        format!(
            "{}-{}-L{}-d{}-lr{:e}-s{}-{}",
            self.model.name(),
            self.task.name(),
            self.task.seq_len(),
            self.model.d_model(),
            self.train.lr,
            self.seed,
            &hash[..8]
        )
    }
}

impl ProbeRequest {
    /// The full config. Settings that do not apply (a window forecaster, a model option its
    /// token model lacks, `--pairs` for copying) and values out of range are errors here,
    /// before any example is drawn.
    pub fn resolve(&self) -> Result<ProbeConfig> {
        let preset = self.preset.defaults(self.task);
        let not_for = |flag: &str| {
            RunError::Invalid(format!(
                "--{flag} does not apply to the {} task",
                self.task_label()
            ))
        };
        if self.pairs.is_some() && self.task != TaskName::Mqar {
            return Err(not_for("pairs"));
        }
        if self.random_non_queries && self.task != TaskName::Mqar {
            return Err(not_for("random-non-queries"));
        }
        if self.tokens.is_some() && self.task != TaskName::SelectiveCopy {
            return Err(not_for("tokens"));
        }
        if self.test_lens.is_some() && self.task != TaskName::Induction {
            return Err(not_for("test-lens"));
        }
        if self.length_test_examples.is_some() && self.task != TaskName::Induction {
            return Err(not_for("length-test-examples"));
        }
        // The other tasks score every labelled position already.
        if self.loss == Some(LossPositions::Scored) && self.task != TaskName::Induction {
            return Err(not_for("loss scored"));
        }
        let vocab = self.vocab.unwrap_or(preset.vocab);
        let seq_len = self.seq_len.unwrap_or(preset.seq_len);
        let task = match self.task {
            TaskName::Mqar => ProbeTask::Mqar {
                vocab,
                len: seq_len,
                pairs: self.pairs.unwrap_or(preset.count),
                random_non_queries: self.random_non_queries,
            },
            TaskName::SelectiveCopy => ProbeTask::SelectiveCopy {
                alphabet: vocab,
                len: seq_len,
                tokens: self.tokens.unwrap_or(preset.count),
            },
            TaskName::Induction => ProbeTask::Induction {
                vocab,
                len: seq_len,
            },
        };
        task.validate()
            .map_err(|e| RunError::Invalid(e.to_string()))?;
        let mut test_lens = self.test_lens.clone().unwrap_or_else(|| {
            preset
                .test_multiples
                .iter()
                .map(|m| m * task.seq_len())
                .collect()
        });
        test_lens.sort_unstable();
        test_lens.dedup();
        test_lens.retain(|&l| l != task.seq_len());
        for &len in &test_lens {
            task.with_len(len)
                .validate()
                .map_err(|e| RunError::Invalid(format!("--test-lens: {e}")))?;
        }
        let lr = RunError::unless_positive_lr(self.lr.unwrap_or(preset.lr))?;
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(RunError::Invalid(format!(
                "--weight-decay must be a number ≥ 0 (got {})",
                self.weight_decay
            )));
        }
        let longest = longest_len(task.seq_len(), &test_lens);
        let model = self.arch.token_config(task.vocab(), longest, &self.model)?;
        Ok(ProbeConfig {
            task,
            model,
            train: ProbeTrainConfig {
                preset: self.preset,
                lr,
                weight_decay: self.weight_decay,
                adam_epsilon: 1e-8,
                batch_size: self.batch.unwrap_or(preset.batch_size),
                epochs: self.epochs.unwrap_or(preset.epochs),
                stop_accuracy: 0.99,
                train_examples: self.train_examples.unwrap_or(preset.train_examples),
                examples: self.examples.unwrap_or(preset.examples),
                loss: self.loss.unwrap_or(preset.loss),
                test_examples: self.test_examples.unwrap_or(preset.test_examples),
                data_seed: self.data_seed,
                length_test_examples: if test_lens.is_empty() {
                    0
                } else {
                    self.length_test_examples
                        .unwrap_or(preset.length_test_examples)
                },
                test_lens,
            },
            seed: self.seed,
            backend: self.backend,
        })
    }

    /// The task as `--task` spells it.
    fn task_label(&self) -> String {
        clap::ValueEnum::to_possible_value(&self.task)
            .expect("every task has a flag value")
            .get_name()
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::SweepRequest;

    fn request(flags: &[&str]) -> ProbeRequest {
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        ProbeRequest::parse(&flags).unwrap()
    }

    #[test]
    fn defaults_come_from_the_preset_and_flags_override_them() {
        let config = request(&["--task", "mqar", "--arch", "mamba", "--d-model", "32"])
            .resolve()
            .unwrap();
        assert_eq!(
            config.task,
            ProbeTask::Mqar {
                vocab: 256,
                len: 64,
                pairs: 4,
                random_non_queries: false,
            }
        );
        assert_eq!(config.model.d_model(), 32);
        assert_eq!(config.train.weight_decay, 0.1);
        let induction = request(&["--task", "induction", "--seq-len", "32"])
            .resolve()
            .unwrap();
        assert_eq!(induction.train.test_lens, [64, 128, 512, 2048]);
        assert!(
            induction
                .run_id()
                .starts_with("transformer-induction-L32-d64-lr1e-3-s2021-")
        );
    }

    #[test]
    fn bad_settings_are_errors_naming_them() {
        for (flags, needle) in [
            (&["--task", "mqar", "--seq-len", "63"][..], "len = 63"),
            (&["--task", "mqar", "--pairs", "40"][..], "pairs = 40"),
            (&["--task", "mqar", "--vocab", "64"][..], "vocab = 64"),
            (
                &["--task", "selective-copy", "--tokens", "300"][..],
                "tokens = 300",
            ),
            (&["--task", "mqar", "--tokens", "3"][..], "--tokens"),
            (&["--task", "mqar", "--arch", "dlinear"][..], "dlinear"),
            (&["--task", "mqar", "--patch-len", "4"][..], "--patch-len"),
            (&["--task", "mqar", "--lr", "-1"][..], "--lr"),
            (&["--task", "mqar", "--loss", "scored"][..], "--loss scored"),
            (
                &["--task", "selective-copy", "--length-test-examples", "9"][..],
                "--length-test-examples",
            ),
        ] {
            let error = request(flags).resolve().unwrap_err().to_string();
            assert!(error.contains(needle), "{flags:?}: {error}");
        }
    }

    #[test]
    fn a_fresh_set_draws_each_epoch_from_its_own_seed_the_first_the_fixed_sets() {
        let fresh = request(&["--task", "induction", "--examples", "fresh"])
            .resolve()
            .unwrap()
            .train;
        let fixed = request(&["--task", "induction", "--examples", "fixed"])
            .resolve()
            .unwrap()
            .train;
        let seeds: Vec<u64> = (1..=4).map(|e| fresh.epoch_seed(e)).collect();
        assert_eq!(seeds[0], fixed.epoch_seed(1));
        assert!((1..=4).all(|e| fixed.epoch_seed(e) == fixed.data_seed));
        let mut distinct = seeds.clone();
        distinct.push(fresh.data_seed + 1); // the test set's
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 5, "{seeds:?}");
    }

    /// The recipe fields added for copying and induction, and the token adapter's (its
    /// initialisation and embedding dropout), are left out of the serialized config at their
    /// defaults, so the committed MQAR runs of the recurrent models keep their ids (their sweep
    /// would otherwise train them again). The Transformer's token recipe changed (Zoology's
    /// initialisation and dropout), and with it its ids.
    #[test]
    fn mqar_configs_keep_the_ids_they_had_before_the_fresh_and_loss_fields() {
        // The grid's width-64, 2-layer MQAR entry of `arch` at (64, 4).
        let width_64 = |arch: &str, extra: &[&str]| {
            let mut flags = vec![
                "--task",
                "mqar",
                "--arch",
                arch,
                "--layers",
                "2",
                "--d-model",
                "64",
            ];
            flags.extend_from_slice(extra);
            request(&flags).resolve().unwrap()
        };
        let config = width_64("mamba", &[]);
        let json = serde_json::to_string(&config).unwrap();
        for key in [
            "examples",
            "loss",
            "length_test_examples",
            "init",
            "embedding_dropout",
        ] {
            assert!(!json.contains(&format!("\"{key}\"")), "{key} in {json}");
        }
        assert_eq!(
            config.run_id(),
            "mamba-mqar-L64-d64-lr1e-3-s2021-ed5357ed",
            "the id of a committed run in results/probes/mqar"
        );
        let transformer = width_64("transformer", &["--heads", "1"]);
        assert_ne!(
            transformer.run_id(),
            "transformer-mqar-L64-d64-lr1e-3-s2021-eab920f9",
            "the id of the Transformer's run under the previous recipe"
        );
        assert_eq!(
            transformer.run_id(),
            "transformer-mqar-L64-d64-lr1e-3-s2021-44a52047",
            "the id of the committed run under Zoology's recipe"
        );
        let induction = request(&["--task", "induction"]).resolve().unwrap();
        assert_eq!(induction.train.examples, TrainingExamples::Fresh);
        assert_eq!(induction.train.loss, LossPositions::Scored);
        assert_eq!(induction.train.length_test_examples, 100);
    }
}
