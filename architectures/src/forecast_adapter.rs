//! The forecasting adapter every backbone shares (PatchTST's recipe, Nie et al., ICLR 2023,
//! <https://arxiv.org/abs/2211.14730>; reference yuqinie98/PatchTST `PatchTST_backbone.py`
//! @ 204c21e): RevIN → channel independence → patching with end padding → linear patch
//! embedding → backbone → flatten head to the horizon → RevIN⁻¹.
//!
//! Each channel of a `[b, L, c]` window becomes its own sequence of `n` patches
//! (`patch_len` long, `stride` apart, after replicating the last value `stride` times at the end,
//! as PatchTST's `padding_patch = "end"`). `patch_len = stride = 1` is point-wise embedding (one
//! token per time step, no padding). Positions are the backbone's business.
//!
//! Where this differs from PatchTST's own encoder, on purpose, so that every backbone sits in
//! the same adapter: the backbone is the zoo's pre-norm Transformer (LayerNorm, final norm),
//! where PatchTST uses post-norm blocks with BatchNorm and `res_attention` (attention scores
//! carried from layer to layer); the patch embedding has a bias (PatchTST's `W_P` has one too,
//! TSLib's `value_embedding` does not); positions are learned per patch as in PatchTST
//! (`pe = "zeros"`, learned). Measured effect on ETTh1 is in results/etth1_transformer/.

use std::marker::PhantomData;

use burn::module::{Module, ModuleDisplay};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::blocks::{Dropout, RevIn, RevInConfig, dense, rows};
use crate::error::ConfigError;
use crate::options::{ModelOption, ModelOptions};
use crate::registry::{Architecture, TaskShape};
use crate::sequence_model::{Forecaster, SequenceModel};
use crate::token_adapter::TokenRecipe;

/// What a backbone's file implements (on a marker type, the `…Spec` of its registry line) to sit
/// behind the adapter; [`Patched`] makes it an [`Architecture`].
pub trait Backbone {
    /// The backbone's configuration.
    type Config: BackboneConfig;
    /// One line for `archzoo list`.
    const ABOUT: &'static str;
    /// The backbone's own options; the adapter adds `--patch-len`, `--stride` and `--params`.
    const OPTIONS: &'static [ModelOption];
    /// Depths of the size ladder.
    const LADDER_DEPTHS: &'static [usize] = &[1, 2, 3, 4, 6];

    /// The backbone's configuration from the options given (the `Config`'s defaults for the
    /// rest). `patching` is the adapter's, already set from the task and the patch options; a
    /// backbone may adjust it (its `--dropout` may be the head's).
    fn configure(
        options: &ModelOptions,
        patching: &mut Patching,
    ) -> Result<Self::Config, ConfigError>;

    /// The options of the ladder point `width × depth`.
    fn ladder_point(width: usize, depth: usize, options: &mut ModelOptions) {
        options.d_model = Some(width);
        options.layers = Some(depth);
    }

    /// The token adapter's recipe around this backbone as its probing reference builds it
    /// (initialisation, embedding dropout; see [`crate::token_adapter`]); it may also set the
    /// backbone's own token-model settings in `config` (already causal, without dropout).
    /// Default: the backbone's own initialisation and no dropout.
    fn token_recipe(config: &mut Self::Config) -> TokenRecipe {
        let _ = config;
        TokenRecipe::default()
    }
}

/// A backbone's configuration: what the adapter asks of it.
pub trait BackboneConfig: Clone + core::fmt::Debug + Serialize + DeserializeOwned {
    /// The built backbone.
    type Model: Module + ModuleDisplay + SequenceModel;
    /// Width `d` (the patch embedding's output).
    fn d_model(&self) -> usize;
    /// Forward FLOPs over one sequence of `tokens` positions (see [`crate::flops`]).
    fn forward_flops(&self, tokens: usize) -> u64;
    /// Check ranges before building.
    fn validate(&self) -> Result<(), ConfigError>;
    /// Build on `device` (the config has passed [`Self::validate`]).
    fn init(&self, device: &Device) -> Self::Model;
    /// Whether the backbone's output is normalised (a final norm, or post-norm blocks), so a
    /// language-model head can read it directly (the token adapter adds a norm otherwise).
    fn ends_normalised(&self) -> bool {
        true
    }
}

/// The registry entry of backbone `B` behind the adapter.
pub struct Patched<B>(PhantomData<B>);

impl<B: Backbone> Architecture for Patched<B> {
    type Config = PatchForecasterConfig<B::Config>;
    type Model = PatchForecaster<<B::Config as BackboneConfig>::Model>;

    const ABOUT: &'static str = B::ABOUT;
    const BACKBONE: bool = true;

    fn options() -> Vec<ModelOption> {
        let adapter = [
            ModelOption::Params,
            ModelOption::PatchLen,
            ModelOption::Stride,
        ];
        adapter
            .into_iter()
            .chain(B::OPTIONS.iter().copied())
            .collect()
    }

    fn ladder_depths() -> &'static [usize] {
        B::LADDER_DEPTHS
    }

    fn ladder_point(width: usize, depth: usize, options: &mut ModelOptions) {
        B::ladder_point(width, depth, options);
    }

    fn config(task: TaskShape, options: &ModelOptions) -> Result<Self::Config, ConfigError> {
        let mut patching = Patching::new(task.seq_len, task.pred_len, task.channels);
        patching.patch_len = options.patch_len.unwrap_or(patching.patch_len);
        patching.stride = options.stride.unwrap_or(patching.stride);
        patching.validate()?;
        let backbone = B::configure(options, &mut patching)?;
        Ok(PatchForecasterConfig { patching, backbone })
    }

    fn validate(config: &Self::Config) -> Result<(), ConfigError> {
        config.patching.validate()?;
        config.backbone.validate()
    }

    fn forward_flops(config: &Self::Config) -> u64 {
        config.forward_flops()
    }

    fn init(config: &Self::Config, device: &Device) -> Self::Model {
        config.init(device)
    }

    fn sequence_params(model: &Self::Model) -> usize {
        model.backbone.num_params()
    }
}

/// The adapter's own hyperparameters.
#[derive(Config, Debug)]
pub struct Patching {
    /// Lookback `L`.
    pub seq_len: usize,
    /// Horizon `H`.
    pub pred_len: usize,
    /// Channels `c` (RevIN's affine map).
    pub channels: usize,
    /// Time steps per patch.
    #[config(default = 16)]
    pub patch_len: usize,
    /// Steps between patch starts.
    #[config(default = 8)]
    pub stride: usize,
    /// Instance normalisation (RevIN with affine map).
    #[config(default = true)]
    pub revin: bool,
    /// Dropout before the flatten head.
    #[config(default = 0.0)]
    pub head_dropout: f64,
}

impl Patching {
    /// Whether the input is end-padded by `stride` (patching) or not (point embedding).
    pub fn padded(&self) -> bool {
        !(self.patch_len == 1 && self.stride == 1)
    }

    /// Tokens per channel: `(L + stride − patch_len) / stride + 1` with padding, `L` without.
    pub fn n_patches(&self) -> usize {
        let padded_len = self.seq_len + if self.padded() { self.stride } else { 0 };
        (padded_len - self.patch_len) / self.stride + 1
    }

    /// Check ranges before building.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.seq_len == 0 || self.pred_len == 0 || self.channels == 0 {
            return Err(ConfigError::Invalid(
                "seq_len, pred_len and channels must be positive".into(),
            ));
        }
        if self.patch_len == 0 || self.stride == 0 {
            return Err(ConfigError::Invalid(
                "patch_len and stride must be positive".into(),
            ));
        }
        if self.patch_len > self.seq_len {
            return Err(ConfigError::Invalid(format!(
                "patch_len ({}) is longer than the lookback seq_len ({})",
                self.patch_len, self.seq_len
            )));
        }
        if !(0.0..1.0).contains(&self.head_dropout) {
            return Err(ConfigError::Invalid(format!(
                "head dropout must be in [0, 1) (got {})",
                self.head_dropout
            )));
        }
        Ok(())
    }
}

/// Hyperparameters of a [`PatchForecaster`]: the adapter's and its backbone's.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "C: BackboneConfig")]
pub struct PatchForecasterConfig<C> {
    /// Patching, normalisation and head.
    pub patching: Patching,
    /// The backbone; its width is the embedding width.
    pub backbone: C,
}

impl<C: BackboneConfig> PatchForecasterConfig<C> {
    /// Forward FLOPs for one window (see [`crate::flops`]): per channel, the patch embedding
    /// `2·n·patch_len·d`, the backbone over `n` tokens, and the flatten head `2·n·d·H`.
    pub fn forward_flops(&self) -> u64 {
        let p = &self.patching;
        let (n, d) = (p.n_patches(), self.backbone.d_model());
        let backbone = self.backbone.forward_flops(n);
        let (n, d, len, h) = (n as u64, d as u64, p.patch_len as u64, p.pred_len as u64);
        p.channels as u64 * (2 * n * len * d + backbone + 2 * n * d * h)
    }

    /// Build on `device`.
    ///
    /// # Panics
    ///
    /// If the patching or the backbone does not validate.
    pub fn init(&self, device: &Device) -> PatchForecaster<C::Model> {
        let p = &self.patching;
        if let Err(e) = p.validate().and_then(|()| self.backbone.validate()) {
            panic!("invalid PatchForecasterConfig: {e}");
        }
        let d = self.backbone.d_model();
        let n = p.n_patches();
        PatchForecaster {
            revin: p.revin.then(|| RevInConfig::new(p.channels).init(device)),
            embedding: LinearConfig::new(p.patch_len, d).init(device),
            backbone: self.backbone.init(device),
            head_dropout: Dropout::new(p.head_dropout),
            head: LinearConfig::new(n * d, p.pred_len).init(device),
            seq_len: p.seq_len,
            pred_len: p.pred_len,
            patch_len: p.patch_len,
            stride: p.stride,
            padded: p.padded(),
            n_patches: n,
        }
    }
}

/// Backbone-agnostic forecaster, `[b, L, c] -> [b, H, c]`.
#[derive(Module, Debug)]
pub struct PatchForecaster<M: Module> {
    revin: Option<RevIn>,
    /// `patch_len -> d`.
    embedding: Linear,
    /// The sequence model over patches.
    pub backbone: M,
    head_dropout: Dropout,
    /// `n · d -> H`.
    head: Linear,
    seq_len: usize,
    pred_len: usize,
    patch_len: usize,
    stride: usize,
    padded: bool,
    n_patches: usize,
}

impl<M: Module + SequenceModel> Forecaster for PatchForecaster<M> {
    fn forecast(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, l, c] = x.dims();
        assert_eq!(
            l, self.seq_len,
            "window length {l}, model built for {}",
            self.seq_len
        );
        let device = x.device();
        let (x, stats) = match &self.revin {
            Some(r) => {
                let (x, s) = r.normalize(x);
                (x, Some(s))
            }
            None => (x, None),
        };
        let series = x.swap_dims(1, 2).reshape([b * c, l]); // [b·c, L]
        let series = if self.padded {
            let last = series
                .clone()
                .narrow(1, l - 1, 1)
                .repeat_dim(1, self.stride);
            Tensor::cat(vec![series, last], 1) // [b·c, L + stride]
        } else {
            series
        };
        let (n, p) = (self.n_patches, self.patch_len);
        let index: Vec<i64> = (0..n)
            .flat_map(|i| (i * self.stride..i * self.stride + p).map(|j| j as i64))
            .collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n * p]), &device);
        let patches = series.select(1, index).reshape([b * c, n, p]); // [b·c, n, patch_len]
        let tokens = rows(&self.embedding, patches); // [b·c, n, d]
        let hidden = self.backbone.forward(tokens); // [b·c, n, d]
        let d = hidden.dims()[2];
        let flat = self.head_dropout.forward(hidden.reshape([b * c, n * d]));
        let y = dense(&self.head, flat)
            .reshape([b, c, self.pred_len])
            .swap_dims(1, 2); // [b, H, c]
        match (&self.revin, stats) {
            (Some(r), Some(s)) => r.denormalize(y, &s),
            _ => y,
        }
    }
}

/// As a sequence model the adapter is its backbone (the contract tests and the cost benchmarks
/// run the backbone on its own width).
impl<M: Module + SequenceModel> SequenceModel for PatchForecaster<M> {
    type State = M::State;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.backbone.forward(x)
    }

    fn init_state(&self, batch: usize, device: &Device) -> M::State {
        self.backbone.init_state(batch, device)
    }

    fn step(&self, x: Tensor<2>, state: M::State) -> (Tensor<2>, M::State) {
        self.backbone.step(x, state)
    }

    fn state_size(&self, len: usize) -> usize {
        self.backbone.state_size(len)
    }

    fn width(&self) -> Option<usize> {
        self.backbone.width()
    }

    fn max_len(&self) -> Option<usize> {
        self.backbone.max_len()
    }

    fn is_causal(&self) -> bool {
        self.backbone.is_causal()
    }
}
