//! Repeat-last-value: the no-training reference baseline of the forecasting tables (LTSF-Linear
//! Table 2, "Repeat"). Every horizon step is the last input value of its channel.

use burn::prelude::*;

use crate::error::ConfigError;
use crate::options::{ModelOption, ModelOptions};
use crate::registry::{Architecture, TaskShape};
use crate::sequence_model::{Forecaster, SequenceModel, WindowState};

/// The registry entry.
pub struct RepeatSpec;

impl Architecture for RepeatSpec {
    type Config = RepeatConfig;
    type Model = Repeat;

    const ABOUT: &'static str = "repeat the last input value over the horizon; no training";
    const TRAINABLE: bool = false;

    fn options() -> Vec<ModelOption> {
        Vec::new()
    }

    fn config(task: TaskShape, _: &ModelOptions) -> Result<RepeatConfig, ConfigError> {
        Ok(RepeatConfig::new(task.seq_len, task.pred_len))
    }

    fn validate(config: &RepeatConfig) -> Result<(), ConfigError> {
        if config.seq_len == 0 || config.pred_len == 0 {
            return Err(ConfigError::Invalid(
                "seq_len and pred_len must be positive".into(),
            ));
        }
        Ok(())
    }

    fn forward_flops(_: &RepeatConfig) -> u64 {
        0
    }

    fn init(config: &RepeatConfig, device: &Device) -> Repeat {
        config.init(device)
    }
}

/// Hyperparameters of [`Repeat`].
#[derive(Config, Debug)]
pub struct RepeatConfig {
    /// Lookback `L`.
    pub seq_len: usize,
    /// Horizon `H`.
    pub pred_len: usize,
}

/// `[b, L, c] -> [b, H, c]`, no parameters.
#[derive(Module, Debug)]
pub struct Repeat {
    seq_len: usize,
    pred_len: usize,
}

impl RepeatConfig {
    /// Build (there is nothing to place on a device).
    pub fn init(&self, _device: &Device) -> Repeat {
        Repeat {
            seq_len: self.seq_len,
            pred_len: self.pred_len,
        }
    }
}

impl Forecaster for Repeat {
    fn forecast(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, l, _] = x.dims();
        x.narrow(1, l - 1, 1).repeat_dim(1, self.pred_len) // [b, H, c]
    }
}

impl SequenceModel for Repeat {
    type State = WindowState;

    /// The one-step forecast at `t` is `x_t`: the identity.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        x
    }

    fn init_state(&self, _batch: usize, _device: &Device) -> WindowState {
        WindowState { past: None }
    }

    fn step(&self, x: Tensor<2>, state: WindowState) -> (Tensor<2>, WindowState) {
        (x, state)
    }

    fn state_size(&self, _len: usize) -> usize {
        0
    }

    fn width(&self) -> Option<usize> {
        None
    }
}
