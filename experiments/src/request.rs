//! A run as a user asks for it (the flags of `archzoo train`, or one point of a sweep), and its
//! resolution into the full [`RunConfig`] against the preset and the loaded data. `train` and
//! `sweep` share this one path, so a sweep run and the same flags given to `train` get the same
//! config and the same run id.

use architectures::options::positive;
use architectures::{ArchName, ModelOptions, TaskShape};
use clap::Args;
use datasets::{Features, ForecastData, ForecastSpec, SplitRule, TimeSeries};

use crate::backend::BackendName;
use crate::config::{DataConfig, RunConfig, TrainConfig};
use crate::error::{Result, RunError};
use crate::preset::Preset;
use crate::sweep::SweepRequest;

/// The help heading of the settings that only trainable architectures take (a sweep applies
/// them to those only).
pub const TRAINING: &str = "Training";

/// What is asked for: the run settings of `archzoo train`, declared once. The same declaration
/// parses a sweep file's keys (each key is a field, a list sweeps it), so every setting `train`
/// takes can be swept. `None` takes the preset's value (or the protocol's split rule).
#[derive(Clone, Debug, PartialEq, Args)]
pub struct RunRequest {
    /// Architecture.
    #[arg(long, value_enum, default_value = "dlinear")]
    pub arch: ArchName,
    /// `synthetic` (offline default), a known dataset name (see `archzoo list`), or a CSV path.
    #[arg(long, default_value = "synthetic")]
    pub data: String,
    /// Target column, feature mode and split rule.
    #[command(flatten)]
    pub data_args: DataArgs,
    /// Lookback L (default: the preset's).
    #[arg(long, allow_negative_numbers = true, value_parser = positive)]
    pub seq_len: Option<usize>,
    /// Horizon H.
    #[arg(long, default_value_t = 96, allow_negative_numbers = true, value_parser = positive)]
    pub pred_len: usize,
    /// Training preset; the flags override its values.
    #[arg(long, value_enum, default_value = "tslib")]
    pub preset: Preset,
    /// Initial learning rate (default: the preset's).
    #[arg(long, allow_negative_numbers = true, help_heading = TRAINING)]
    pub lr: Option<f64>,
    /// Training batch size (default: the preset's).
    #[arg(long, allow_negative_numbers = true, value_parser = positive, help_heading = TRAINING)]
    pub batch: Option<usize>,
    /// Maximum epochs (default: the preset's).
    #[arg(long, allow_negative_numbers = true, value_parser = positive, help_heading = TRAINING)]
    pub epochs: Option<usize>,
    /// Early-stopping patience in epochs (default: the preset's).
    #[arg(long, allow_negative_numbers = true, value_parser = positive, help_heading = TRAINING)]
    pub patience: Option<usize>,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendName,
    /// Seed of initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 2021)]
    pub seed: u64,
    /// Model options: each architecture takes the ones that apply and rejects the others.
    #[command(flatten, next_help_heading = "Model options")]
    pub model: ModelOptions,
}

/// Data selection shared by `train` and `data inspect`.
#[derive(Clone, Debug, PartialEq, Args)]
pub struct DataArgs {
    /// Target column, moved last.
    #[arg(long, default_value = "OT")]
    pub target: String,
    /// Feature mode.
    #[arg(long, value_enum, default_value = "M")]
    pub features: FeaturesArg,
    /// Split rule.
    #[arg(long, value_enum, default_value = "auto")]
    pub split: SplitArg,
}

/// Split rule: `auto` picks the protocol's rule from the dataset name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitArg {
    /// ETTh* -> ett-hour, ETTm* -> ett-minute, anything else -> ratio.
    Auto,
    /// 12/4/4 months of hourly rows.
    EttHour,
    /// 12/4/4 months of 15-minute rows.
    EttMinute,
    /// 70/10/20 of the rows.
    Ratio,
}

impl SplitArg {
    /// The rule, `None` for `auto` (the protocol's rule for the dataset).
    pub fn rule(self) -> Option<SplitRule> {
        match self {
            Self::Auto => None,
            Self::EttHour => Some(SplitRule::EttHour),
            Self::EttMinute => Some(SplitRule::EttMinute),
            Self::Ratio => Some(SplitRule::Ratio),
        }
    }

    /// The rule for `dataset`.
    pub fn resolve(self, dataset: &str) -> SplitRule {
        self.rule()
            .unwrap_or_else(|| SplitRule::for_dataset(dataset))
    }
}

/// Feature mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FeaturesArg {
    /// All channels in, all out.
    #[value(name = "M")]
    M,
    /// Target only.
    #[value(name = "S")]
    S,
    /// All channels in, target out.
    #[value(name = "MS")]
    Ms,
}

impl From<FeaturesArg> for Features {
    fn from(f: FeaturesArg) -> Self {
        match f {
            FeaturesArg::M => Features::M,
            FeaturesArg::S => Features::S,
            FeaturesArg::Ms => Features::MS,
        }
    }
}

impl RunRequest {
    /// `archzoo train`'s defaults (DLinear on the synthetic series, M, H = 96, preset `tslib`,
    /// seed 2021, flex) for `arch`.
    pub fn new(arch: ArchName) -> Self {
        Self::parse(&["--arch".into(), arch.to_string()]).expect("the defaults parse")
    }

    /// The full config and the prepared data, for `series` (loaded from `self.data` and
    /// `self.target`, named `dataset`). Settings that do not apply or are out of range are
    /// errors here, before anything is written.
    pub fn resolve(&self, dataset: &str, series: &TimeSeries) -> Result<(RunConfig, ForecastData)> {
        let preset = self.preset.values(dataset, self.pred_len);
        let seq_len = self.seq_len.unwrap_or(preset.seq_len);
        if !self.arch.trainable() {
            for (given, flag) in [
                (self.lr.is_some(), "lr"),
                (self.epochs.is_some(), "epochs"),
                (self.batch.is_some(), "batch"),
                (self.patience.is_some(), "patience"),
            ] {
                if given {
                    return Err(RunError::Invalid(format!(
                        "--{flag} does not apply to `{}`: it has nothing to train",
                        self.arch
                    )));
                }
            }
        }
        let lr = RunError::unless_positive_lr(self.lr.unwrap_or(preset.lr))?;
        for (value, flag) in [
            (self.batch, "batch"),
            (self.epochs, "epochs"),
            (self.patience, "patience"),
            (self.seq_len, "seq-len"),
            (Some(self.pred_len), "pred-len"),
        ] {
            if value == Some(0) {
                return Err(RunError::Invalid(format!("--{flag} must be positive")));
            }
        }
        let spec = ForecastSpec {
            seq_len,
            pred_len: self.pred_len,
            features: self.data_args.features.into(),
            split: self.data_args.split.resolve(dataset),
        };
        let data = ForecastData::new(series, spec.clone())?;
        let mut options = self
            .model
            .clone()
            .with_defaults(&preset.model, &self.arch.accepted());
        options.mean_init = preset.dlinear_mean_init;
        let task = TaskShape {
            seq_len,
            pred_len: self.pred_len,
            channels: data.input_channels(),
        };
        let config = RunConfig {
            arch: self.arch.config(task, &options)?,
            data: DataConfig {
                data: self.data.clone(),
                target: self.data_args.target.clone(),
                features: spec.features,
                split: spec.split,
                seq_len,
                pred_len: self.pred_len,
            },
            train: TrainConfig {
                preset: self.preset,
                lr,
                schedule: preset.schedule,
                batch_size: self.batch.unwrap_or(preset.batch_size),
                eval_batch_size: 256,
                epochs: self.epochs.unwrap_or(preset.epochs),
                patience: self.patience.unwrap_or(preset.patience),
                adam_epsilon: 1e-8,
            },
            seed: self.seed,
            backend: self.backend,
        };
        Ok((config, data))
    }
}
