//! A run as a user asks for it (the flags of `archzoo train`, or one point of a sweep), and its
//! resolution into the full [`RunConfig`] against the preset and the loaded data. `train` and
//! `sweep` share this one path, so a sweep run and the same flags given to `train` get the same
//! config and the same run id.

use architectures::{ArchName, ModelOptions, TaskShape};
use datasets::{Features, ForecastData, ForecastSpec, SplitRule, TimeSeries};

use crate::backend::BackendName;
use crate::config::{DataConfig, RunConfig, TrainConfig};
use crate::error::{Result, RunError};
use crate::preset::Preset;

/// What is asked for; `None` takes the preset's value (or the protocol's split rule).
#[derive(Clone, Debug, PartialEq)]
pub struct RunRequest {
    /// Architecture.
    pub arch: ArchName,
    /// `synthetic`, a known dataset name or a CSV path.
    pub data: String,
    /// Target column.
    pub target: String,
    /// Feature mode.
    pub features: Features,
    /// Split rule; `None` is the protocol's rule for the dataset.
    pub split: Option<SplitRule>,
    /// Lookback `L`.
    pub seq_len: Option<usize>,
    /// Horizon `H`.
    pub pred_len: usize,
    /// Training recipe.
    pub preset: Preset,
    /// Initial learning rate.
    pub lr: Option<f64>,
    /// Training batch size.
    pub batch: Option<usize>,
    /// Maximum epochs.
    pub epochs: Option<usize>,
    /// Early-stopping patience.
    pub patience: Option<usize>,
    /// Seed.
    pub seed: u64,
    /// Model flags given.
    pub model: ModelOptions,
    /// Backend.
    pub backend: BackendName,
}

impl RunRequest {
    /// `archzoo train`'s defaults: DLinear on the synthetic series, M, H = 96, preset `tslib`,
    /// seed 2021, flex.
    pub fn new(arch: ArchName) -> Self {
        Self {
            arch,
            data: "synthetic".into(),
            target: "OT".into(),
            features: Features::M,
            split: None,
            seq_len: None,
            pred_len: 96,
            preset: Preset::Tslib,
            lr: None,
            batch: None,
            epochs: None,
            patience: None,
            seed: 2021,
            model: ModelOptions::default(),
            backend: BackendName::Flex,
        }
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
        let lr = self.lr.unwrap_or(preset.lr);
        if !(lr.is_finite() && lr > 0.0) {
            return Err(RunError::Invalid(format!(
                "--lr must be a positive number (got {lr})"
            )));
        }
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
            features: self.features,
            split: self
                .split
                .unwrap_or_else(|| SplitRule::for_dataset(dataset)),
        };
        let data = ForecastData::new(series, spec.clone())?;
        let mut options = self
            .model
            .clone()
            .with_defaults(&preset.model, self.arch.accepted_options());
        options.mean_init = Some(preset.dlinear_mean_init);
        let task = TaskShape {
            seq_len,
            pred_len: self.pred_len,
            channels: data.input_channels(),
        };
        let config = RunConfig {
            arch: self.arch.config(task, &options)?,
            data: DataConfig {
                data: self.data.clone(),
                target: self.target.clone(),
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
