//! Transformer backbone: pre-norm multi-head self-attention blocks with a GELU MLP (Vaswani et
//! al. 2017, <https://arxiv.org/abs/1706.03762>; pre-norm as in GPT-2 and nanoGPT `model.py`
//! @ 3adf61e), rotary (Su et al. 2021, <https://arxiv.org/abs/2104.09864>) or learned positions,
//! LayerNorm, RMSNorm or BatchNorm, and a `causal` switch. Post-norm blocks (the original
//! Transformer's order) with BatchNorm are PatchTST's encoder (Nie et al. 2023,
//! <https://arxiv.org/abs/2211.14730>; yuqinie98/PatchTST `PatchTST_backbone.py` @ 204c21e:
//! `TSTEncoderLayer` with `pre_norm=False`, `norm='BatchNorm'`).
//!
//! The attention is written here rather than taken from burn's `MultiHeadAttention`, so masking,
//! positions and the KV cache stay under our control: `step` appends one position's keys and
//! values per layer (burn's `MhaCache` wants the whole prefix on each call). Attention runs as
//! one fused kernel ([`kernels::attention`]) unless attention dropout is on.
//!
//! Shapes: b batch, l length, d d_model, h heads, k = d / h head width.

// `NormKind`'s variants all end in `Norm`: the names are in every saved run config and on the
// command line, and the lint fires on code the `Config` derive generates, out of an item
// attribute's reach.
#![allow(clippy::enum_variant_names)]

use burn::module::Param;
use burn::nn::{
    BatchNorm, BatchNormConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, RmsNorm,
    RmsNormConfig, RotaryEncoding, RotaryEncodingConfig,
};
use burn::prelude::*;

use crate::blocks::{Dropout, rows};
use crate::error::ConfigError;
use crate::forecast_adapter::{Backbone, BackboneConfig, Patching};
use crate::kernels::{self, Mask, gelu};
use crate::options::{ModelOption, ModelOptions};
use crate::sequence_model::SequenceModel;
use crate::token_adapter::{TokenInit, TokenRecipe};

/// Normalisation layer of the blocks.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum NormKind {
    /// LayerNorm (eps 1e-5).
    LayerNorm,
    /// RMSNorm (eps 1e-5).
    RmsNorm,
    /// BatchNorm over the width with statistics over every token of the batch (PatchTST's
    /// `BatchNorm1d(d_model)` on `[batch·channels, d_model, patches]`; eps 1e-5, momentum 0.1,
    /// running statistics at evaluation). Bidirectional encoders only: batch statistics mix
    /// positions, so an output would depend on later inputs.
    BatchNorm,
}

/// Position information.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum PositionKind {
    /// Rotary embedding of queries and keys (theta 10000).
    Rotary,
    /// A learned vector per position added to the input, `[max_len, d]`.
    Learned,
}

/// Hyperparameters of a [`Transformer`].
#[derive(Config, Debug)]
pub struct TransformerConfig {
    /// Width `d`.
    #[config(default = 64)]
    pub d_model: usize,
    /// Blocks.
    #[config(default = 2)]
    pub n_layers: usize,
    /// Heads `h` (must divide `d_model`).
    #[config(default = 4)]
    pub n_heads: usize,
    /// MLP hidden width.
    #[config(default = 128)]
    pub d_ff: usize,
    /// Dropout on the residual branches, the MLP and the input.
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Dropout on the attention weights (PatchTST's `attn_dropout`, 0 by default; it is also the
    /// costliest dropout: one sample per query-key pair).
    #[config(default = 0.0)]
    pub attention_dropout: f64,
    /// Normalisation.
    #[config(default = "NormKind::LayerNorm")]
    pub norm: NormKind,
    /// Positions.
    #[config(default = "PositionKind::Rotary")]
    pub positions: PositionKind,
    /// Longest sequence (learned positions, rotary table).
    #[config(default = 8192)]
    pub max_len: usize,
    /// Mask attention to earlier positions only.
    #[config(default = true)]
    pub causal: bool,
    /// Post-norm blocks, `x = Norm(x + Attn(x))`, `x = Norm(x + MLP(x))`, without a final norm
    /// (the original Transformer and PatchTST), instead of pre-norm.
    #[config(default = false)]
    pub post_norm: bool,
}

impl TransformerConfig {
    fn init_block(&self, device: &Device) -> Block {
        let d = self.d_model;
        Block {
            norm_attention: Norm::new(self.norm, d, device),
            qkv: LinearConfig::new(d, 3 * d).init(device),
            out: LinearConfig::new(d, d).init(device),
            norm_mlp: Norm::new(self.norm, d, device),
            mlp_in: LinearConfig::new(d, self.d_ff).init(device),
            mlp_out: LinearConfig::new(self.d_ff, d).init(device),
            dropout: Dropout::new(self.dropout),
            attention_dropout: Dropout::new(self.attention_dropout),
        }
    }
}

/// The registry entry: the Transformer behind the forecasting adapter.
pub struct TransformerSpec;

/// Rotary table of a causal backbone: it also runs as a sequence model of any length up to it.
const CAUSAL_MAX_LEN: usize = 16_384;

impl Backbone for TransformerSpec {
    type Config = TransformerConfig;

    const ABOUT: &'static str = "self-attention over patches, pre-norm or PatchTST's post-norm BatchNorm (PatchTST-style adapter)";
    const OPTIONS: &'static [ModelOption] = &[
        ModelOption::DModel,
        ModelOption::Layers,
        ModelOption::Heads,
        ModelOption::DFf,
        ModelOption::Dropout,
        ModelOption::Causal,
        ModelOption::Norm,
        ModelOption::PostNorm,
        ModelOption::PositionEncoding,
    ];

    /// Behind the adapter the encoder is bidirectional (PatchTST) and learns one position per
    /// patch, unless `--causal`, which gives it rotary positions; `--position-encoding` chooses. A
    /// learned table has one row per patch; a causal rotary table is longer, so that the
    /// backbone also runs as a sequence model of any length up to it.
    fn configure(
        options: &ModelOptions,
        patching: &mut Patching,
    ) -> Result<TransformerConfig, ConfigError> {
        let config = TransformerConfig::new();
        let positions = options.position_encoding.unwrap_or(if options.causal {
            PositionKind::Rotary
        } else {
            PositionKind::Learned
        });
        let max_len = if options.causal && positions == PositionKind::Rotary {
            CAUSAL_MAX_LEN
        } else {
            patching.n_patches()
        };
        Ok(TransformerConfig {
            d_model: options.d_model.unwrap_or(config.d_model),
            n_layers: options.layers.unwrap_or(config.n_layers),
            n_heads: options.heads.unwrap_or(config.n_heads),
            d_ff: options.d_ff.unwrap_or(config.d_ff),
            dropout: options.dropout.unwrap_or(config.dropout),
            norm: options.norm.unwrap_or(config.norm),
            post_norm: options.post_norm,
            causal: options.causal,
            positions,
            max_len,
            ..config
        })
    }

    /// The MLP follows the width: `d_ff = 2·width` unless given.
    fn ladder_point(width: usize, depth: usize, options: &mut ModelOptions) {
        options.d_model = Some(width);
        options.layers = Some(depth);
        options.d_ff = options.d_ff.or(Some(2 * width));
    }

    /// Zoology's attention baseline (figure 2: `MHA` with `dropout 0.1`, `embed_dropout` 0.1,
    /// `_init_weights`): dropout 0.1 on the attention weights and the embeddings, GPT-2's
    /// initialisation with the attention output and the MLP's second layer (Zoology's
    /// `out_proj` and `fc2`) at `0.02/√(2·layers)`. Without them this model stays at 1/K on
    /// MQAR (128, 8) at width 64 (see the token adapter).
    fn token_recipe(config: &mut TransformerConfig) -> TokenRecipe {
        const STD: f64 = 0.02;
        const DROPOUT: f64 = 0.1;
        config.attention_dropout = DROPOUT;
        TokenRecipe {
            init: TokenInit::Gpt2 {
                std: STD,
                residual_outputs: vec!["out".into(), "mlp_out".into()],
                residual_std: STD / ((2 * config.n_layers) as f64).sqrt(),
            },
            embedding_dropout: DROPOUT,
        }
    }
}

impl BackboneConfig for TransformerConfig {
    type Model = Transformer;

    fn d_model(&self) -> usize {
        self.d_model
    }

    /// Forward FLOPs over one sequence of `tokens` positions (see [`crate::flops`]). Per block:
    /// the projections `2·l·d·3d` (q, k, v) `+ 2·l·d·d` (out), the MLP `2·2·l·d·d_ff`, and the
    /// attention products `2·2·d·p` (scores and the weighted sum over the `p` visible query-key
    /// pairs: `l²` bidirectional, `l(l+1)/2` causal).
    fn forward_flops(&self, tokens: usize) -> u64 {
        let (l, d, f) = (tokens as u64, self.d_model as u64, self.d_ff as u64);
        let pairs = if self.causal { l * (l + 1) / 2 } else { l * l };
        let per_block = 2 * l * d * 3 * d + 2 * l * d * d + 2 * 2 * l * d * f + 2 * 2 * d * pairs;
        self.n_layers as u64 * per_block
    }

    /// Check ranges before building.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.d_model == 0 || self.n_layers == 0 || self.n_heads == 0 || self.d_ff == 0 {
            return invalid(format!(
                "d_model, layers, heads and d_ff must be positive (got {}, {}, {}, {})",
                self.d_model, self.n_layers, self.n_heads, self.d_ff
            ));
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return invalid(format!(
                "d_model ({}) must be divisible by heads ({})",
                self.d_model, self.n_heads
            ));
        }
        if self.positions == PositionKind::Rotary
            && !(self.d_model / self.n_heads).is_multiple_of(2)
        {
            return invalid(format!(
                "rotary positions need an even head width (d_model / heads = {})",
                self.d_model / self.n_heads
            ));
        }
        if self.norm == NormKind::BatchNorm && self.causal {
            return invalid(
                "batch norm needs a bidirectional encoder: its batch statistics mix positions, so a causal model's outputs would depend on later inputs".to_string(),
            );
        }
        for (name, p) in [
            ("dropout", self.dropout),
            ("attention dropout", self.attention_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return invalid(format!("{name} must be in [0, 1) (got {p})"));
            }
        }
        Ok(())
    }

    /// Build on `device`.
    ///
    /// # Panics
    ///
    /// If the config does not pass [`Self::validate`].
    fn init(&self, device: &Device) -> Transformer {
        if let Err(e) = self.validate() {
            panic!("invalid TransformerConfig: {e}");
        }
        let d_head = self.d_model / self.n_heads;
        Transformer {
            blocks: (0..self.n_layers)
                .map(|_| self.init_block(device))
                .collect(),
            norm: (!self.post_norm).then(|| Norm::new(self.norm, self.d_model, device)),
            post_norm: self.post_norm,
            rotary: (self.positions == PositionKind::Rotary)
                .then(|| RotaryEncodingConfig::new(self.max_len, d_head).init(device)),
            position_embedding: (self.positions == PositionKind::Learned).then(|| {
                Param::from_tensor(Tensor::random(
                    [self.max_len, self.d_model],
                    burn::tensor::Distribution::Normal(0.0, 0.02),
                    device,
                ))
            }),
            dropout: Dropout::new(self.dropout),
            d_model: self.d_model,
            n_heads: self.n_heads,
            causal: self.causal,
            max_len: self.max_len,
        }
    }
}

/// LayerNorm's ε: set on the module and passed to the kernel (burn keeps the module's private).
const LAYER_NORM_EPSILON: f64 = 1e-5;

/// LayerNorm or RMSNorm, both run by host kernels ([`kernels::layer_norm`],
/// [`kernels::rms_norm`]) with burn's modules holding the parameters, or burn's BatchNorm.
#[derive(Module, Debug)]
pub enum Norm {
    /// LayerNorm.
    Layer(LayerNorm),
    /// RMSNorm.
    Rms(RmsNorm),
    /// BatchNorm (its running statistics are module state).
    Batch(BatchNorm),
}

impl Norm {
    fn new(kind: NormKind, d: usize, device: &Device) -> Self {
        match kind {
            NormKind::LayerNorm => Self::Layer(
                LayerNormConfig::new(d)
                    .with_epsilon(LAYER_NORM_EPSILON)
                    .init(device),
            ),
            NormKind::RmsNorm => Self::Rms(RmsNormConfig::new(d).init(device)),
            NormKind::BatchNorm => Self::Batch(BatchNormConfig::new(d).init(device)),
        }
    }

    fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Layer(n) => match &n.beta {
                Some(beta) => kernels::layer_norm(x, n.gamma.val(), beta.val(), LAYER_NORM_EPSILON),
                None => n.forward(x),
            },
            Self::Rms(n) => kernels::rms_norm_layer(n, x),
            Self::Batch(n) => {
                // Every token is a sample of the width's `d` features: `[rows, d]`.
                let dims = x.dims();
                let d = dims[D - 1];
                let rows = dims.iter().product::<usize>() / d.max(1);
                n.forward(x.reshape([rows, d])).reshape(dims)
            }
        }
    }
}

/// One block: pre-norm `x + Attn(Norm(x))`, then `x + MLP(Norm(x))`, or post-norm
/// `Norm(x + Attn(x))`, then `Norm(x + MLP(x))`.
#[derive(Module, Debug)]
pub struct Block {
    norm_attention: Norm,
    /// `d -> 3d`: queries, keys, values.
    qkv: Linear,
    /// `d -> d`.
    out: Linear,
    norm_mlp: Norm,
    /// `d -> d_ff`.
    mlp_in: Linear,
    /// `d_ff -> d`.
    mlp_out: Linear,
    dropout: Dropout,
    attention_dropout: Dropout,
}

/// Transformer backbone, `[b, l, d] -> [b, l, d]`.
#[derive(Module, Debug)]
pub struct Transformer {
    blocks: Vec<Block>,
    /// Final normalisation (pre-norm blocks only).
    norm: Option<Norm>,
    post_norm: bool,
    rotary: Option<RotaryEncoding>,
    /// `[max_len, d]`.
    position_embedding: Option<Param<Tensor<2>>>,
    dropout: Dropout,
    d_model: usize,
    n_heads: usize,
    causal: bool,
    max_len: usize,
}

/// Keys and values of every layer so far: `[b, h, t, k]` each, `None` before the first step.
#[derive(Clone, Debug)]
pub struct KvCache {
    /// One `(keys, values)` per layer.
    pub layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// Positions consumed.
    pub position: usize,
}

impl Transformer {
    /// Width `d`.
    pub fn d_model(&self) -> usize {
        self.d_model
    }

    /// Add learned positions `start..start + l` (no-op with rotary). `x: [b, l, d]`.
    fn add_positions(&self, x: Tensor<3>, start: usize) -> Tensor<3> {
        match &self.position_embedding {
            Some(p) => {
                let [_, l, d] = x.dims();
                x + p.val().narrow(0, start, l).reshape([1, l, d])
            }
            None => x,
        }
    }

    /// Split `[b, l, d]` into heads `[b, h, l, k]`.
    fn heads(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, l, d] = x.dims();
        x.reshape([b, l, self.n_heads, d / self.n_heads])
            .swap_dims(1, 2)
    }

    /// Queries, keys and values of one block, rotated for positions `start..`. `x: [b, l, d]`.
    fn qkv(&self, block: &Block, x: Tensor<3>, start: usize) -> [Tensor<4>; 3] {
        let d = self.d_model;
        let qkv = rows(&block.qkv, x); // [b, l, 3d]
        let q = self.heads(qkv.clone().narrow(2, 0, d)); // [b, h, l, k]
        let k = self.heads(qkv.clone().narrow(2, d, d));
        let v = self.heads(qkv.narrow(2, 2 * d, d));
        match &self.rotary {
            Some(table) => {
                let angles = Angles::new(table, start, q.dims()[2], &q.device());
                [angles.rotate(q), angles.rotate(k), v]
            }
            None => [q, k, v],
        }
    }

    /// Scaled dot-product attention, `causal` hiding later keys (the queries are the last
    /// positions). Returns `[b, lq, d]`. Runs the fused kernel unless attention dropout is active,
    /// which needs the weights materialised.
    fn attend(
        &self,
        block: &Block,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        causal: bool,
    ) -> Tensor<3> {
        let [b, h, lq, kw] = q.dims();
        let scale = 1.0 / (kw as f32).sqrt();
        let mask = if causal { Mask::Causal } else { Mask::Full };
        let y = if block.attention_dropout.is_active(&q.device()) {
            let weights = kernels::attention_weights(q, k, mask, scale); // [b, h, lq, lk]
            block.attention_dropout.forward(weights).matmul(v)
        } else {
            kernels::attention(q, k, v, mask, scale)
        }; // [b, h, lq, k]
        y.swap_dims(1, 2).reshape([b, lq, h * kw])
    }

    fn mlp(block: &Block, x: Tensor<3>) -> Tensor<3> {
        let hidden = block.dropout.forward(gelu(rows(&block.mlp_in, x)));
        block.dropout.forward(rows(&block.mlp_out, hidden))
    }

    /// The input of a residual branch: `Norm(x)` pre-norm, `x` post-norm.
    fn branch_input(&self, norm: &Norm, x: Tensor<3>) -> Tensor<3> {
        if self.post_norm { x } else { norm.forward(x) }
    }

    /// `x` with a residual branch added: `x + branch` pre-norm, `Norm(x + branch)` post-norm.
    fn add_branch(&self, norm: &Norm, x: Tensor<3>, branch: Tensor<3>) -> Tensor<3> {
        if self.post_norm {
            norm.forward(x + branch)
        } else {
            x + branch
        }
    }

    /// One block's MLP half: `x + MLP(Norm(x))` or `Norm(x + MLP(x))`.
    fn mlp_half(&self, block: &Block, x: Tensor<3>) -> Tensor<3> {
        let branch = Self::mlp(block, self.branch_input(&block.norm_mlp, x.clone()));
        self.add_branch(&block.norm_mlp, x, branch)
    }

    /// The final norm of pre-norm blocks (post-norm blocks end normalised).
    fn final_norm(&self, x: Tensor<3>) -> Tensor<3> {
        match &self.norm {
            Some(norm) => norm.forward(x),
            None => x,
        }
    }
}

impl SequenceModel for Transformer {
    type State = KvCache;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut x = self.dropout.forward(self.add_positions(x, 0));
        for block in &self.blocks {
            let input = self.branch_input(&block.norm_attention, x.clone());
            let [q, k, v] = self.qkv(block, input, 0);
            let attended = self.attend(block, q, k, v, self.causal);
            let branch = block.dropout.forward(rows(&block.out, attended));
            x = self.add_branch(&block.norm_attention, x, branch);
            x = self.mlp_half(block, x);
        }
        self.final_norm(x)
    }

    fn init_state(&self, _batch: usize, _device: &Device) -> KvCache {
        KvCache {
            layers: vec![None; self.blocks.len()],
            position: 0,
        }
    }

    /// # Panics
    ///
    /// If the model is not causal: a bidirectional encoder has no recurrent form.
    fn step(&self, x: Tensor<2>, state: KvCache) -> (Tensor<2>, KvCache) {
        assert!(self.causal, "step needs a causal Transformer");
        let [b, d] = x.dims();
        let t = state.position;
        let mut x = self.add_positions(x.reshape([b, 1, d]), t);
        let mut layers = Vec::with_capacity(self.blocks.len());
        for (block, cache) in self.blocks.iter().zip(state.layers) {
            let input = self.branch_input(&block.norm_attention, x.clone());
            let [q, k, v] = self.qkv(block, input, t);
            let (k, v) = match cache {
                Some((ck, cv)) => (Tensor::cat(vec![ck, k], 2), Tensor::cat(vec![cv, v], 2)), // [b, h, t + 1, k]
                None => (k, v),
            };
            // The cache holds only the past: nothing to hide.
            let attended = self.attend(block, q, k.clone(), v.clone(), false);
            let branch = block.dropout.forward(rows(&block.out, attended));
            x = self.add_branch(&block.norm_attention, x, branch);
            x = self.mlp_half(block, x);
            layers.push(Some((k, v)));
        }
        let y = self.final_norm(x).reshape([b, d]);
        (
            y,
            KvCache {
                layers,
                position: t + 1,
            },
        )
    }

    /// Keys and values of every layer: `2 · layers · len · d`.
    fn state_size(&self, len: usize) -> usize {
        2 * self.blocks.len() * len * self.d_model
    }

    fn width(&self) -> Option<usize> {
        Some(self.d_model)
    }

    /// The position table's length (learned or rotary).
    fn max_len(&self) -> Option<usize> {
        Some(self.max_len)
    }

    fn is_causal(&self) -> bool {
        self.causal
    }
}

/// The rotation of positions `start..start + l` from burn's rotary table (`freq_complex:
/// [max_len, k, 2]`, both elements of pair `i` holding `(cos pθᵢ, sin pθᵢ)`), read once per
/// block for its queries and keys: `[1, 1, l, k]` each, the sine signed `−` on the first
/// element of each pair and `+` on the second.
struct Angles {
    cos: Tensor<4>,
    signed_sin: Tensor<4>,
}

impl Angles {
    fn new(table: &RotaryEncoding, start: usize, l: usize, device: &Device) -> Self {
        let [_, k, _] = table.freq_complex.dims();
        let angles = table.freq_complex.clone().narrow(0, start, l); // [l, k, (cos, sin)]
        let signs = Tensor::<1>::from_floats([-1.0, 1.0], device)
            .reshape([1, 2])
            .repeat_dim(0, k / 2)
            .reshape([1, 1, 1, k]);
        Self {
            cos: angles.clone().narrow(2, 0, 1).reshape([1, 1, l, k]),
            signed_sin: angles.narrow(2, 1, 1).reshape([1, 1, l, k]) * signs,
        }
    }

    /// `x: [b, h, l, k]` with each pair `(x₂ᵢ, x₂ᵢ₊₁)` turned by its angle:
    /// `x·cos + exchange(x)·(∓sin)`, where `exchange` swaps the two elements of each pair.
    /// burn's `RotaryEncoding::apply` forms the same products through a batched
    /// `[.., 2] × [2, 4]` matrix product and a sum over a trailing axis of 2; elementwise, with
    /// the same values and gradients bit for bit (test below), the MQAR training step at
    /// width 64, L 128, batch 32 takes 35 ms instead of 46 (`archzoo bench probe-step`, median
    /// of 3 interleaved rounds).
    fn rotate(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, h, l, k] = x.dims();
        let exchanged = x
            .clone()
            .reshape([b, h, l, k / 2, 2])
            .flip([4])
            .reshape([b, h, l, k]);
        x * self.cos.clone() + exchanged * self.signed_sin.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// The elementwise rotation is burn's `RotaryEncoding::apply`, values and input gradients
    /// bit for bit, at a start offset (decoding) and from 0.
    #[test]
    fn rotation_is_burns_rotary_encoding_exactly() {
        let device = Device::default().autodiff();
        let table = RotaryEncodingConfig::new(64, 8).init(&device);
        for start in [0, 5] {
            let x = Tensor::<4>::random([2, 3, 7, 8], Distribution::Normal(0.0, 1.0), &device)
                .require_grad();
            let weights =
                Tensor::<4>::random([2, 3, 7, 8], Distribution::Normal(0.0, 1.0), &device);
            let ours = Angles::new(&table, start, 7, &device).rotate(x.clone());
            let burns = table.apply(x.clone(), start);
            assert_eq!(ours.to_data(), burns.to_data(), "values, start {start}");
            let grad_ours = (ours * weights.clone()).sum().backward();
            let grad_burns = (burns * weights).sum().backward();
            assert_eq!(
                x.grad(&grad_ours).unwrap().to_data(),
                x.grad(&grad_burns).unwrap().to_data(),
                "gradients, start {start}"
            );
        }
    }

    /// `x: [b, l, d]` through `step`, one position at a time: the outputs `[b, l, d]` and the
    /// final state.
    fn run_steps(model: &Transformer, x: Tensor<3>) -> (Tensor<3>, KvCache) {
        let [b, l, d] = x.dims();
        let mut state = model.init_state(b, &x.device());
        let mut steps = Vec::with_capacity(l);
        for t in 0..l {
            let (yt, next) = model.step(x.clone().narrow(1, t, 1).reshape([b, d]), state);
            state = next;
            steps.push(yt.unsqueeze_dim::<3>(1));
        }
        (Tensor::cat(steps, 1), state)
    }

    #[test]
    fn bad_configs_are_rejected_before_building() {
        let e = TransformerConfig::new()
            .with_d_model(10)
            .with_n_heads(3)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("divisible by heads"), "{e}");
        let e = TransformerConfig::new()
            .with_d_model(16)
            .with_n_layers(0)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("must be positive"), "{e}");
        let e = TransformerConfig::new()
            .with_d_model(12)
            .with_n_heads(4)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("even head width"), "{e}");
        let e = TransformerConfig::new()
            .with_d_model(16)
            .with_norm(NormKind::BatchNorm)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("bidirectional encoder"), "{e}");
    }

    /// Post-norm blocks keep `forward` equal to `step` (a causal model with LayerNorm).
    #[test]
    fn forward_equals_step_with_post_norm() {
        let device = Device::flex();
        device.seed(2);
        let model = TransformerConfig::new()
            .with_d_model(16)
            .with_n_heads(2)
            .with_d_ff(32)
            .with_post_norm(true)
            .with_max_len(32)
            .init(&device);
        assert!(model.norm.is_none(), "post-norm blocks have no final norm");
        let x = Tensor::<3>::random([2, 9, 16], Distribution::Default, &device);
        let y = SequenceModel::forward(&model, x.clone());
        let (stepped, _) = run_steps(&model, x);
        let diff = (y - stepped).abs().max().into_scalar::<f32>();
        assert!(diff <= 1e-4, "max abs diff {diff}");
    }

    /// PatchTST's encoder (post-norm, BatchNorm): batch statistics while training, with
    /// gradients reaching the norms' scales and shifts and the running statistics updated;
    /// running statistics at evaluation, deterministic and different from the batch's.
    #[test]
    fn batch_norm_trains_on_batch_statistics_and_evaluates_on_running_ones() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let model = TransformerConfig::new()
            .with_d_model(16)
            .with_n_heads(4)
            .with_d_ff(32)
            .with_n_layers(2)
            .with_causal(false)
            .with_positions(PositionKind::Learned)
            .with_max_len(10)
            .with_norm(NormKind::BatchNorm)
            .with_post_norm(true)
            .init(&device);
        let x = Tensor::<3>::random([4, 10, 16], Distribution::Normal(1.0, 2.0), &device);
        let batch_of = |norm: &Norm| match norm {
            Norm::Batch(n) => n.clone(),
            _ => panic!("a BatchNorm model"),
        };
        let before = batch_of(&model.blocks[0].norm_attention)
            .running_mean
            .value()
            .into_data();
        let trained = SequenceModel::forward(&model, x.clone());
        let grads = trained.clone().powi_scalar(2).mean().backward();
        for block in &model.blocks {
            for norm in [&block.norm_attention, &block.norm_mlp] {
                let norm = batch_of(norm);
                for grad in [norm.gamma.grad(&grads), norm.beta.grad(&grads)] {
                    let values = grad
                        .expect("a gradient")
                        .into_data()
                        .try_to_vec::<f32>()
                        .unwrap();
                    assert!(values.iter().all(|v| v.is_finite()));
                    assert!(values.iter().any(|v| *v != 0.0));
                }
            }
        }
        let after = batch_of(&model.blocks[0].norm_attention)
            .running_mean
            .value_sync() // merges this thread's update
            .into_data();
        assert_ne!(before, after, "a training forward updates the running mean");

        let eval = model.valid();
        let x_eval = x.inner();
        let first = SequenceModel::forward(&eval, x_eval.clone()).into_data();
        let again = SequenceModel::forward(&eval, x_eval).into_data();
        assert_eq!(first, again, "evaluation uses fixed running statistics");
        let trained = trained.inner().into_data();
        assert_ne!(
            first, trained,
            "evaluation does not use the batch's statistics"
        );
    }

    /// The registry's causal variant uses rotary positions and LayerNorm; this covers the other
    /// settings: learned positions and RMSNorm.
    #[test]
    fn forward_equals_step_with_learned_positions_and_rms_norm() {
        let device = Device::flex();
        device.seed(1);
        let model = TransformerConfig::new()
            .with_d_model(16)
            .with_n_heads(2)
            .with_d_ff(32)
            .with_norm(NormKind::RmsNorm)
            .with_positions(PositionKind::Learned)
            .with_max_len(32)
            .init(&device);
        let x = Tensor::<3>::random([2, 12, 16], Distribution::Default, &device);
        let y = SequenceModel::forward(&model, x.clone());
        let (stepped, state) = run_steps(&model, x);
        let diff = (y - stepped).abs().max().into_scalar::<f32>();
        assert!(diff <= 1e-4, "max abs diff {diff}");
        assert_eq!(state.position, 12);
    }
}
