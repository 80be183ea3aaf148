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

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::blocks::{Dropout, RevIn, RevInConfig, dense, rows};
use crate::error::ConfigError;
use crate::griffin::{Griffin, GriffinConfig, GriffinState};
use crate::mamba::{Mamba, MambaConfig, MambaState};
use crate::sequence_model::{Forecaster, SequenceModel};
use crate::transformer::{KvCache, Transformer, TransformerConfig};

/// A backbone's configuration.
#[derive(Config, Debug)]
pub enum BackboneConfig {
    /// Self-attention blocks.
    Transformer(TransformerConfig),
    /// Mamba-1 selective SSM blocks.
    Mamba(MambaConfig),
    /// Griffin / Hawk residual blocks.
    Griffin(GriffinConfig),
}

/// A built backbone.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // one per model, never in collections: boxing buys nothing
pub enum Backbone {
    /// Self-attention blocks.
    Transformer(Transformer),
    /// Mamba-1 selective SSM blocks.
    Mamba(Mamba),
    /// Griffin / Hawk residual blocks.
    Griffin(Griffin),
}

/// Recurrent state of a backbone.
#[derive(Clone, Debug)]
pub enum BackboneState {
    /// KV cache.
    Transformer(KvCache),
    /// Convolution inputs and SSM states.
    Mamba(MambaState),
    /// Convolution inputs, RG-LRU states and local key/value windows.
    Griffin(GriffinState),
}

/// Hyperparameters of a [`PatchForecaster`].
#[derive(Config, Debug)]
pub struct PatchForecasterConfig {
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
    /// The backbone; its width is the embedding width.
    pub backbone: BackboneConfig,
}

impl PatchForecasterConfig {
    /// Whether the input is end-padded by `stride` (patching) or not (point embedding).
    pub fn padded(&self) -> bool {
        !(self.patch_len == 1 && self.stride == 1)
    }

    /// Tokens per channel: `(L + stride − patch_len) / stride + 1` with padding, `L` without.
    pub fn n_patches(&self) -> usize {
        let padded_len = self.seq_len + if self.padded() { self.stride } else { 0 };
        (padded_len - self.patch_len) / self.stride + 1
    }

    /// Width of the backbone.
    pub fn d_model(&self) -> usize {
        match &self.backbone {
            BackboneConfig::Transformer(c) => c.d_model,
            BackboneConfig::Mamba(c) => c.d_model,
            BackboneConfig::Griffin(c) => c.d_model,
        }
    }

    /// Forward FLOPs for one window (see [`crate::flops`]): per channel, the patch embedding
    /// `2·n·patch_len·d`, the backbone over `n` tokens, and the flatten head `2·n·d·H`.
    pub fn forward_flops(&self) -> u64 {
        let (n, d) = (self.n_patches(), self.d_model());
        let backbone = match &self.backbone {
            BackboneConfig::Transformer(c) => c.forward_flops(n),
            BackboneConfig::Mamba(c) => c.forward_flops(n),
            BackboneConfig::Griffin(c) => c.forward_flops(n),
        };
        let (n, d, p, h) = (
            n as u64,
            d as u64,
            self.patch_len as u64,
            self.pred_len as u64,
        );
        self.channels as u64 * (2 * n * p * d + backbone + 2 * n * d * h)
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
        match &self.backbone {
            BackboneConfig::Transformer(c) => c.validate(),
            BackboneConfig::Mamba(c) => c.validate(),
            BackboneConfig::Griffin(c) => c.validate(),
        }
    }

    /// Build on `device`.
    ///
    /// # Panics
    ///
    /// If the config does not pass [`Self::validate`].
    pub fn init(&self, device: &Device) -> PatchForecaster {
        if let Err(e) = self.validate() {
            panic!("invalid PatchForecasterConfig: {e}");
        }
        let d = self.d_model();
        let n = self.n_patches();
        PatchForecaster {
            revin: self
                .revin
                .then(|| RevInConfig::new(self.channels).init(device)),
            embedding: LinearConfig::new(self.patch_len, d).init(device),
            backbone: match &self.backbone {
                BackboneConfig::Transformer(c) => Backbone::Transformer(c.init(device)),
                BackboneConfig::Mamba(c) => Backbone::Mamba(c.init(device)),
                BackboneConfig::Griffin(c) => Backbone::Griffin(c.init(device)),
            },
            head_dropout: Dropout::new(self.head_dropout),
            head: LinearConfig::new(n * d, self.pred_len).init(device),
            seq_len: self.seq_len,
            pred_len: self.pred_len,
            patch_len: self.patch_len,
            stride: self.stride,
            padded: self.padded(),
            n_patches: n,
        }
    }
}

/// Backbone-agnostic forecaster, `[b, L, c] -> [b, H, c]`.
#[derive(Module, Debug)]
pub struct PatchForecaster {
    revin: Option<RevIn>,
    /// `patch_len -> d`.
    embedding: Linear,
    /// The sequence model over patches.
    pub backbone: Backbone,
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

impl PatchForecaster {
    /// The backbone as a sequence model (for the contract and for decoding benchmarks).
    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }
}

impl Forecaster for PatchForecaster {
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

impl SequenceModel for Backbone {
    type State = BackboneState;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Transformer(m) => m.forward(x),
            Self::Mamba(m) => m.forward(x),
            Self::Griffin(m) => m.forward(x),
        }
    }

    fn init_state(&self, batch: usize, device: &Device) -> BackboneState {
        match self {
            Self::Transformer(m) => BackboneState::Transformer(m.init_state(batch, device)),
            Self::Mamba(m) => BackboneState::Mamba(m.init_state(batch, device)),
            Self::Griffin(m) => BackboneState::Griffin(m.init_state(batch, device)),
        }
    }

    fn step(&self, x: Tensor<2>, state: BackboneState) -> (Tensor<2>, BackboneState) {
        match (self, state) {
            (Self::Transformer(m), BackboneState::Transformer(s)) => {
                let (y, s) = m.step(x, s);
                (y, BackboneState::Transformer(s))
            }
            (Self::Mamba(m), BackboneState::Mamba(s)) => {
                let (y, s) = m.step(x, s);
                (y, BackboneState::Mamba(s))
            }
            (Self::Griffin(m), BackboneState::Griffin(s)) => {
                let (y, s) = m.step(x, s);
                (y, BackboneState::Griffin(s))
            }
            (backbone, state) => panic!("state {state:?} does not belong to {backbone:?}"),
        }
    }

    fn state_size(&self, len: usize) -> usize {
        match self {
            Self::Transformer(m) => m.state_size(len),
            Self::Mamba(m) => m.state_size(len),
            Self::Griffin(m) => m.state_size(len),
        }
    }

    fn width(&self) -> Option<usize> {
        match self {
            Self::Transformer(m) => m.width(),
            Self::Mamba(m) => m.width(),
            Self::Griffin(m) => m.width(),
        }
    }

    fn max_len(&self) -> Option<usize> {
        match self {
            Self::Transformer(m) => m.max_len(),
            Self::Mamba(m) => m.max_len(),
            Self::Griffin(m) => m.max_len(),
        }
    }

    fn is_causal(&self) -> bool {
        match self {
            Self::Transformer(m) => m.is_causal(),
            Self::Mamba(m) => m.is_causal(),
            Self::Griffin(m) => m.is_causal(),
        }
    }
}
