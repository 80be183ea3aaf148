//! Griffin and Hawk: residual blocks whose temporal mixing is either a recurrent block (RG-LRU)
//! or local multi-query attention, in a repeating pattern (De et al. 2024, "Griffin: Mixing
//! Gated Linear Recurrences with Local Attention for Efficient Language Models",
//! <https://arxiv.org/abs/2402.19427>; reference google-deepmind/recurrentgemma, `torch/modules.py`,
//! `torch/layers.py`, `torch/griffin.py`; reference/architectures.md §2).
//!
//! One residual block, `x: [b, l, d] -> [b, l, d]`:
//!
//! ```text
//! r = temporal(RMSNorm(x)) + x             temporal = recurrent block or local attention
//! y = MLP(RMSNorm(r)) + r                  MLP = down(GeLU(up_gate(·)) ⊙ up(·)), expansion 3
//! ```
//!
//! - **Recurrent block** (Fig 2c): `GeLU(linear_y(x)) ⊙ RG-LRU(conv(linear_x(x)))`, then
//!   `linear_out`; the convolution is depthwise, causal, width 4, with no activation after it.
//! - **RG-LRU** ([`kernels::rg_lru`]): block-diagonal input and recurrence gates (one block per
//!   head), `log a_t = −8 r_t softplus(Λ)`, `h_t = a_t h_{t−1} + sqrt(1 − a_t²) (i_t ⊙ x_t)`.
//! - **Local attention**: `proj_q: d → d`, one key/value head `proj_k, proj_v: d → e`
//!   (`e = d / heads`), rotary positions on the first half of each head's width (rotate-half
//!   convention, wavelength 10 000), scale `e^−½`, each query seeing itself and the `window`
//!   positions before it; `proj_final: d → d` with bias.
//!
//! Where the paper and the code differ, this follows the code (architectures.md §2.2):
//!
//! - `Λ` is initialised so that the base decay `exp(−softplus(Λ)) = r` has `r²` uniform in
//!   `[0.9², 0.999²]` (`rnn_param_init`), not the paper's "`a^c` uniform in `[0.9, 0.999]`";
//! - the square root's derivative is bounded at 1000 (`SqrtBoundDerivative`);
//! - the first position of a sequence is a segment start: its RG-LRU multiplier is 1;
//! - GeLU is the tanh approximation; RMSNorm is `x / rms(x) · (1 + scale)` with eps 1e-6 (here
//!   burn's `RmsNorm` with its scale initialised to 1: the same function and gradients, run by
//!   the fused [`kernels::rms_norm`]);
//! - initialisation: `linear_x`, `linear_y`, `proj_q/k/v` and the MLP's up projections
//!   `N(0, 1/d)`; `linear_out`, `proj_final` and the MLP's down projection
//!   `N(0, (2 / layers) / fan_in)`; gates `N(0, 1/block width)`; convolution `N(0, 0.01/4)`;
//!   biases 0.
//!
//! Storage choices that do not change the function: `linear_x` and `linear_y` are one `d → 2c`
//! matrix, the MLP's two up projections (the reference's `Einsum` `w: (2, d, 3d)`) one
//! `d → 2·3d` matrix, split after the product (one matrix product instead of two).
//!
//! Hawk is the same model with the pattern `[recurrent]`. No dropout: the paper trains without
//! it (the forecasting adapter's head dropout still applies).
//!
//! `step` keeps per recurrent block the convolution's last 3 inputs and the `[b, c]` RG-LRU
//! state, per attention block the keys and values of the last `window` positions: constant in
//! the length beyond the window.
//!
//! Shapes: b batch, l length, d d_model, c lru_width, h heads, e = d / h head width,
//! w window, m = 3d MLP width.

use burn::module::Param;
use burn::nn::{Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};

use crate::blocks::{CausalConv1d, rows};
use crate::error::ConfigError;
use crate::forecast_adapter::{Backbone, BackboneConfig, Patching};
use crate::kernels::{self, Activation, Mask, gelu_tanh};
use crate::options::{ModelOption, ModelOptions};
use crate::sequence_model::SequenceModel;

/// Temporal-mixing block of a residual block.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum TemporalKind {
    /// RG-LRU recurrent block.
    Recurrent,
    /// Local multi-query attention.
    Attention,
}

/// Hyperparameters of a [`Griffin`] backbone.
#[derive(Config, Debug)]
pub struct GriffinConfig {
    /// Width `d` (the Mamba default's width).
    #[config(default = 128)]
    pub d_model: usize,
    /// Residual blocks; the pattern repeats over them.
    #[config(default = 3)]
    pub n_layers: usize,
    /// Temporal blocks in order, cycled: Griffin `[recurrent, recurrent, attention]`, Hawk
    /// `[recurrent]`.
    #[config(
        default = "vec![TemporalKind::Recurrent, TemporalKind::Recurrent, TemporalKind::Attention]"
    )]
    pub pattern: Vec<TemporalKind>,
    /// RG-LRU width `c`; `None` is `d_model` (RecurrentGemma's choice).
    #[config(default = "None")]
    pub lru_width: Option<usize>,
    /// Attention heads, which are also the RG-LRU gates' diagonal blocks (the reference's
    /// `num_heads`).
    #[config(default = 4)]
    pub n_heads: usize,
    /// Earlier positions each attention query sees besides its own.
    #[config(default = 1024)]
    pub window: usize,
    /// Width of the recurrent block's causal convolution.
    #[config(default = 4)]
    pub conv_width: usize,
    /// MLP width as a multiple of `d_model`.
    #[config(default = 3)]
    pub mlp_expansion: usize,
}

/// The registry entry of Griffin: one `[recurrent, recurrent, attention]` pattern per three
/// residual blocks, behind the forecasting adapter.
pub struct GriffinSpec;

/// The registry entry of Hawk: recurrent blocks only.
pub struct HawkSpec;

impl Backbone for GriffinSpec {
    type Config = GriffinConfig;

    const ABOUT: &'static str =
        "Griffin: RG-LRU, RG-LRU, local MQA blocks over patches (fused scan; same adapter)";
    const OPTIONS: &'static [ModelOption] = &[
        ModelOption::DModel,
        ModelOption::Layers,
        ModelOption::Heads,
        ModelOption::Window,
        ModelOption::Dropout,
    ];
    /// Whole patterns of three.
    const LADDER_DEPTHS: &'static [usize] = &[3, 6];

    fn configure(
        options: &ModelOptions,
        patching: &mut Patching,
    ) -> Result<GriffinConfig, ConfigError> {
        let config = configure(GriffinConfig::new(), options, patching);
        if (1..3).contains(&config.n_layers) {
            // The pattern cycles over the layers: fewer than 3 would be Hawk under Griffin's name.
            return Err(ConfigError::Invalid(format!(
                "griffin with {} layer(s) has no attention block (its pattern is recurrent, recurrent, attention); use --layers 3 or more, or --arch hawk",
                config.n_layers
            )));
        }
        Ok(GriffinConfig {
            window: options.window.unwrap_or(config.window),
            ..config
        })
    }
}

impl Backbone for HawkSpec {
    type Config = GriffinConfig;

    const ABOUT: &'static str = "Hawk: RG-LRU recurrent blocks only over patches (same adapter)";
    /// Heads are the RG-LRU gates' diagonal blocks.
    const OPTIONS: &'static [ModelOption] = &[
        ModelOption::DModel,
        ModelOption::Layers,
        ModelOption::Heads,
        ModelOption::Dropout,
    ];

    fn configure(
        options: &ModelOptions,
        patching: &mut Patching,
    ) -> Result<GriffinConfig, ConfigError> {
        Ok(configure(GriffinConfig::hawk(), options, patching))
    }
}

/// The options Griffin and Hawk share. No dropout of their own, as in the paper: `--dropout` is
/// the adapter head's.
fn configure(
    config: GriffinConfig,
    options: &ModelOptions,
    patching: &mut Patching,
) -> GriffinConfig {
    patching.head_dropout = options.dropout.unwrap_or(patching.head_dropout);
    GriffinConfig {
        d_model: options.d_model.unwrap_or(config.d_model),
        n_layers: options.layers.unwrap_or(config.n_layers),
        n_heads: options.heads.unwrap_or(config.n_heads),
        ..config
    }
}

impl BackboneConfig for GriffinConfig {
    type Model = Griffin;

    fn d_model(&self) -> usize {
        self.d_model
    }

    /// Forward FLOPs over one sequence of `tokens` positions (see [`crate::flops`]), with
    /// `c = lru_width`, `h` heads, `e = d/h`, `m = mlp_expansion·d`, `k = conv_width`. Every
    /// block has the gated MLP, `2·d·2m + 2·m·d` per token. A recurrent block adds, per token,
    /// the branches `2·d·2c`, the convolution `2·k·c`, the block-diagonal gates `2·2·c·c/h`,
    /// the recurrence `2·c` (`a·h + x`) and `linear_out` `2·c·d`. An attention block adds, per
    /// token, `2·d·d` (q) `+ 2·d·2e` (k, v) `+ 2·d·d` (final), and `2·2·d` per visible
    /// query-key pair (each query sees itself and up to `window` earlier positions).
    fn forward_flops(&self, tokens: usize) -> u64 {
        let (l, d, c) = (tokens as u64, self.d_model as u64, self.lru() as u64);
        let (h, k, w) = (
            self.n_heads as u64,
            self.conv_width as u64,
            self.window as u64,
        );
        let (e, m) = (d / h, self.mlp_expansion as u64 * d);
        let mlp = l * (2 * d * 2 * m + 2 * m * d);
        // Visible keys: position t sees min(t, w) earlier ones and itself.
        let pairs: u64 = (0..l).map(|t| t.min(w) + 1).sum();
        (0..self.n_layers)
            .map(|index| {
                mlp + match self.kind(index) {
                    TemporalKind::Recurrent => {
                        l * (2 * d * 2 * c + 2 * k * c + 2 * 2 * c * c / h + 2 * c + 2 * c * d)
                    }
                    TemporalKind::Attention => {
                        l * (2 * d * d + 2 * d * 2 * e + 2 * d * d) + 2 * 2 * d * pairs
                    }
                }
            })
            .sum()
    }

    /// Check ranges before building.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let sizes = [
            ("d_model", self.d_model),
            ("layers", self.n_layers),
            ("lru_width", self.lru()),
            ("heads", self.n_heads),
            ("window", self.window),
            ("conv_width", self.conv_width),
            ("mlp_expansion", self.mlp_expansion),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return invalid(format!("{name} must be positive"));
        }
        if self.pattern.is_empty() {
            return invalid("the block pattern must not be empty".into());
        }
        for (name, width) in [("d_model", self.d_model), ("lru_width", self.lru())] {
            if !width.is_multiple_of(self.n_heads) {
                return invalid(format!(
                    "{name} ({width}) must be divisible by heads ({})",
                    self.n_heads
                ));
            }
        }
        let head = self.d_model / self.n_heads;
        if self.pattern.contains(&TemporalKind::Attention) && !head.is_multiple_of(4) {
            return invalid(format!(
                "rotary positions on half of each head need a head width (d_model / heads = {head}) divisible by 4"
            ));
        }
        Ok(())
    }

    /// Build on `device`.
    ///
    /// # Panics
    ///
    /// If the config does not pass [`Self::validate`].
    fn init(&self, device: &Device) -> Griffin {
        if let Err(e) = self.validate() {
            panic!("invalid GriffinConfig: {e}");
        }
        let d = self.d_model;
        let norm = || RmsNormConfig::new(d).with_epsilon(1e-6).init(device);
        Griffin {
            blocks: (0..self.n_layers)
                .map(|index| ResidualBlock {
                    temporal_norm: norm(),
                    temporal: match self.kind(index) {
                        TemporalKind::Recurrent => Temporal::Recurrent(self.init_recurrent(device)),
                        TemporalKind::Attention => Temporal::Attention(self.init_attention(device)),
                    },
                    channel_norm: norm(),
                    mlp: self.init_mlp(device),
                })
                .collect(),
            norm: norm(),
            d_model: d,
            reference_scan: false,
        }
    }
}

impl GriffinConfig {
    /// Hawk: recurrent blocks only.
    pub fn hawk() -> Self {
        Self::new().with_pattern(vec![TemporalKind::Recurrent])
    }

    /// RG-LRU width `c`, resolved.
    pub fn lru(&self) -> usize {
        self.lru_width.unwrap_or(self.d_model)
    }

    /// The temporal block of residual block `index`.
    pub fn kind(&self, index: usize) -> TemporalKind {
        self.pattern[index % self.pattern.len()]
    }

    /// `(2 / layers)`: the variance scale of every projection back into the residual stream.
    fn final_scale(&self) -> f64 {
        2.0 / self.n_layers as f64
    }

    fn init_recurrent(&self, device: &Device) -> RecurrentBlock {
        let (d, c, h) = (self.d_model, self.lru(), self.n_heads);
        let block = c / h;
        let gate = || {
            Param::from_tensor(Tensor::random(
                [h, block, block],
                Distribution::Normal(0.0, (1.0 / block as f64).sqrt()),
                device,
            ))
        };
        let zeros = || Param::from_tensor(Tensor::zeros([c], device));
        // One `[d, 2c]` draw, split: the initial values (and the random stream after them) of
        // the fused projection this block once had, so seeded runs are unchanged.
        let [linear_y, linear_x] = split_columns(normal_linear(d, 2 * c, 1.0 / d as f64, device));
        RecurrentBlock {
            linear_y,
            linear_x,
            conv: CausalConv1d::new(
                Tensor::random(
                    [self.conv_width, c],
                    Distribution::Normal(0.0, (0.01 / self.conv_width as f64).sqrt()),
                    device,
                ),
                Tensor::zeros([c], device),
            ),
            lru: RgLru {
                input_gate: gate(),
                input_gate_bias: zeros(),
                a_gate: gate(),
                a_gate_bias: zeros(),
                a_param: Param::from_tensor(lru_a_param(c, device)),
            },
            linear_out: normal_linear(c, d, self.final_scale() / c as f64, device),
            lru_width: c,
        }
    }

    fn init_attention(&self, device: &Device) -> LocalAttention {
        let (d, h) = (self.d_model, self.n_heads);
        let e = d / h;
        let without_bias = |out| {
            let mut linear = normal_linear(d, out, 1.0 / d as f64, device);
            linear.bias = None;
            linear
        };
        LocalAttention {
            proj_q: without_bias(d),
            proj_kv: without_bias(2 * e),
            proj_final: normal_linear(d, d, self.final_scale() / d as f64, device),
            n_heads: h,
            window: self.window,
        }
    }

    fn init_mlp(&self, device: &Device) -> Mlp {
        let (d, m) = (self.d_model, self.mlp_expansion * self.d_model);
        Mlp {
            up: normal_linear(d, 2 * m, 1.0 / d as f64, device),
            down: normal_linear(m, d, self.final_scale() / m as f64, device),
        }
    }
}

/// A `d_in -> d_out` linear with weight `N(0, variance)` and zero bias.
fn normal_linear(d_in: usize, d_out: usize, variance: f64, device: &Device) -> Linear {
    let mut linear = LinearConfig::new(d_in, d_out).init(device);
    linear.weight = Param::from_tensor(Tensor::random(
        [d_in, d_out],
        Distribution::Normal(0.0, variance.sqrt()),
        device,
    ));
    linear.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
    linear
}

/// The two column halves of `linear`, `d_in -> d_out/2` each, as separate linears.
fn split_columns(linear: Linear) -> [Linear; 2] {
    /// Through TensorData: a contiguous copy, not a strided view of the whole.
    fn own<const D: usize>(t: Tensor<D>) -> Param<Tensor<D>> {
        let device = t.device();
        Param::from_tensor(Tensor::from_data(t.into_data(), &device))
    }
    let weight = linear.weight.val();
    let bias = linear.bias.map(|b| b.val());
    let half = weight.dims()[1] / 2;
    [0, half].map(|start| Linear {
        weight: own(weight.clone().narrow(1, start, half)),
        bias: bias.clone().map(|b| own(b.narrow(0, start, half))),
    })
}

/// `Λ` as recurrentgemma's `rnn_param_init(min_rad = 0.9, max_rad = 0.999)`: `r² ~ U[0.81,
/// 0.998]`, `Λ = ln(1/r − 1)`, so that `exp(−softplus(Λ)) = r`.
fn lru_a_param(c: usize, device: &Device) -> Tensor<1> {
    const EPS: f64 = 1e-8;
    let r2 = Tensor::<1>::random(
        [c],
        Distribution::Uniform(0.9f64.powi(2) + EPS, 0.999f64.powi(2) + EPS),
        device,
    );
    (r2.log().mul_scalar(-0.5).exp() - 1.0).log()
}

/// RG-LRU parameters: block-diagonal gates (one `[c/h, c/h]` block per head) and `Λ`.
#[derive(Module, Debug)]
pub struct RgLru {
    /// `[h, c/h, c/h]`: `W_x`.
    input_gate: Param<Tensor<3>>,
    /// `[c]`.
    input_gate_bias: Param<Tensor<1>>,
    /// `[h, c/h, c/h]`: `W_a`.
    a_gate: Param<Tensor<3>>,
    /// `[c]`.
    a_gate_bias: Param<Tensor<1>>,
    /// `[c]`: `Λ`, the reference's `a_param`.
    a_param: Param<Tensor<1>>,
}

impl RgLru {
    /// Gate logits `(W_x x + b_x, W_a x + b_a)` of `x: [n, c]`, `[n, c]` each: each
    /// block-diagonal product as one batched product over the blocks. (Two products rather than
    /// one over concatenated weights: the concatenation's and the halves' slices would cost more
    /// in copies and zero-filled gradients than the products themselves at these widths.)
    fn gate_logits(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let [n, c] = x.dims();
        let [h, block, _] = self.input_gate.dims();
        let per_block = x.reshape([n, h, block]).swap_dims(0, 1); // [h, n, c/h]
        let gate = |weight: Tensor<3>, bias: Tensor<1>| {
            per_block
                .clone()
                .matmul(weight) // [h, n, c/h]
                .swap_dims(0, 1)
                .reshape([n, c])
                + bias.reshape([1, c])
        };
        (
            gate(self.input_gate.val(), self.input_gate_bias.val()),
            gate(self.a_gate.val(), self.a_gate_bias.val()),
        )
    }

    /// The RG-LRU over a whole sequence `x: [b, l, c]` from a zero state.
    fn forward(&self, x: Tensor<3>, reference: bool) -> Tensor<3> {
        let [b, l, c] = x.dims();
        let (gate_x, gate_a) = self.gate_logits(x.clone().reshape([b * l, c]));
        let (gate_x, gate_a) = (gate_x.reshape([b, l, c]), gate_a.reshape([b, l, c]));
        let scan = if reference {
            kernels::rg_lru_reference
        } else {
            kernels::rg_lru
        };
        scan(x, gate_x, gate_a, self.a_param.val())
    }

    /// One position `x: [b, c]` with state `h: [b, c]` at sequence position `position`.
    fn step(&self, x: Tensor<2>, h: Tensor<2>, position: usize) -> Tensor<2> {
        let (gate_x, gate_a) = self.gate_logits(x.clone());
        kernels::rg_lru_step(x, gate_x, gate_a, self.a_param.val(), h, position)
    }
}

/// Recurrent block (Fig 2c).
#[derive(Module, Debug)]
pub struct RecurrentBlock {
    /// `d -> c`: the GeLU branch.
    linear_y: Linear,
    /// `d -> c`: the recurrent branch. (Two products rather than one `d -> 2c` split in halves:
    /// the halves' copies and zero-filled slice gradients cost more than the wider product saves.)
    linear_x: Linear,
    /// Depthwise causal convolution over the recurrent branch.
    conv: CausalConv1d,
    lru: RgLru,
    /// `c -> d`.
    linear_out: Linear,
    lru_width: usize,
}

impl RecurrentBlock {
    fn forward(&self, x: Tensor<3>, reference: bool) -> Tensor<3> {
        let y = gelu_tanh(rows(&self.linear_y, x.clone())); // [b, l, c]
        let x = self
            .lru
            .forward(self.conv.forward(rows(&self.linear_x, x)), reference); // [b, l, c]
        rows(&self.linear_out, x * y)
    }

    fn step(
        &self,
        x: Tensor<2>,
        state: RecurrentState,
        position: usize,
    ) -> (Tensor<2>, RecurrentState) {
        let y = gelu_tanh(self.linear_y.forward(x.clone())); // [b, c]
        let (x, conv) = self.conv.step(self.linear_x.forward(x), state.conv);
        let h = self.lru.step(x, state.h, position);
        let out = self.linear_out.forward(h.clone() * y);
        (out, RecurrentState { conv, h })
    }
}

/// Local multi-query attention with rotary positions on half of each head.
#[derive(Module, Debug)]
pub struct LocalAttention {
    /// `d -> d`, no bias.
    proj_q: Linear,
    /// `d -> 2e`: the single key head, then the single value head; no bias.
    proj_kv: Linear,
    /// `d -> d`.
    proj_final: Linear,
    n_heads: usize,
    window: usize,
}

impl LocalAttention {
    /// Queries `[b, h, l, e]` and the shared key and value `[b, 1, l, e]` of `x: [b, l, d]` at
    /// positions `start..`, rotated.
    fn project(&self, x: Tensor<3>, start: usize) -> [Tensor<4>; 3] {
        let [b, l, d] = x.dims();
        let (h, e) = (self.n_heads, d / self.n_heads);
        let q = rows(&self.proj_q, x.clone())
            .reshape([b, l, h, e])
            .swap_dims(1, 2); // [b, h, l, e]
        let kv = rows(&self.proj_kv, x); // [b, l, 2e]
        let k = kv.clone().narrow(2, 0, e).reshape([b, 1, l, e]);
        let v = kv.narrow(2, e, e).reshape([b, 1, l, e]);
        [rope(q, start), rope(k, start), v]
    }

    /// Attention of `q: [b, h, lq, e]` over the shared `k, v: [b, 1, lk, e]`, back to `[b, lq, d]`
    /// through `proj_final`.
    fn attend(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Mask) -> Tensor<3> {
        let [b, h, lq, e] = q.dims();
        let lk = k.dims()[2];
        let scale = 1.0 / (e as f32).sqrt();
        let (k, v) = (k.expand([b, h, lk, e]), v.expand([b, h, lk, e]));
        let y = kernels::attention(q, k, v, mask, scale); // [b, h, lq, e]
        rows(&self.proj_final, y.swap_dims(1, 2).reshape([b, lq, h * e]))
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [q, k, v] = self.project(x, 0);
        self.attend(q, k, v, Mask::Local(self.window))
    }

    fn step(
        &self,
        x: Tensor<2>,
        cache: Option<KeyValues>,
        position: usize,
    ) -> (Tensor<2>, KeyValues) {
        let [b, d] = x.dims();
        let [q, k, v] = self.project(x.reshape([b, 1, d]), position);
        let (k, v) = match cache {
            Some(cache) => (
                Tensor::cat(vec![cache.keys, k], 2),
                Tensor::cat(vec![cache.values, v], 2),
            ),
            None => (k, v),
        }; // [b, 1, n, e], n ≤ window + 1: the cache holds the window already
        let y = self
            .attend(q, k.clone(), v.clone(), Mask::Full)
            .reshape([b, d]);
        let n = k.dims()[2];
        let kept = n.min(self.window);
        let cache = KeyValues {
            keys: k.narrow(2, n - kept, kept),
            values: v.narrow(2, n - kept, kept),
        };
        (y, cache)
    }
}

/// Rotary embedding on the first half of the last dimension of `x: [b, h, l, e]` for positions
/// `start..start + l`, as recurrentgemma's `apply_rope`: with `r = e/2` rotated dims split in
/// halves `x₁, x₂` (`r/2` each), `[x₁ cos θ − x₂ sin θ, x₂ cos θ + x₁ sin θ, rest]`,
/// `θ_{t,j} = t · 10000^(−2j/r)`.
fn rope(x: Tensor<4>, start: usize) -> Tensor<4> {
    let [_, _, l, e] = x.dims();
    let (r, half) = (e / 2, e / 4);
    let mut cos = Vec::with_capacity(l * half);
    let mut sin = Vec::with_capacity(l * half);
    for t in start..start + l {
        for j in 0..half {
            let angle = t as f64 * 10_000f64.powf(-2.0 * j as f64 / r as f64);
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    let device = x.device();
    let table = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [1, 1, l, half]), &device);
    let (cos, sin) = (table(cos), table(sin));
    let first = x.clone().narrow(3, 0, half);
    let second = x.clone().narrow(3, half, half);
    let rest = x.narrow(3, r, e - r);
    Tensor::cat(
        vec![
            first.clone() * cos.clone() - second.clone() * sin.clone(),
            second * cos + first * sin,
            rest,
        ],
        3,
    )
}

/// Gated MLP ("GeGeLU"): `down(GeLU(x W₀ + b₀) ⊙ (x W₁ + b₁))`.
#[derive(Module, Debug)]
pub struct Mlp {
    /// `d -> 2m`: the gate branch, then the value branch.
    up: Linear,
    /// `m -> d`.
    down: Linear,
}

impl Mlp {
    /// `x: [b, l, d] -> [b, l, d]`.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let up = rows(&self.up, x); // [b, l, 2m]: the gate branch, then the value branch
        rows(&self.down, kernels::gated(Activation::GeluTanh, up)) // GeLU(gate) · value
    }
}

/// Temporal mixing of a residual block.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)] // one per block, built once
pub enum Temporal {
    /// RG-LRU recurrent block.
    Recurrent(RecurrentBlock),
    /// Local multi-query attention.
    Attention(LocalAttention),
}

/// Residual block (Fig 2a).
#[derive(Module, Debug)]
pub struct ResidualBlock {
    temporal_norm: RmsNorm,
    temporal: Temporal,
    channel_norm: RmsNorm,
    mlp: Mlp,
}

/// Griffin (or Hawk) backbone, `[b, l, d] -> [b, l, d]`.
#[derive(Module, Debug)]
pub struct Griffin {
    blocks: Vec<ResidualBlock>,
    /// Final normalisation.
    norm: RmsNorm,
    d_model: usize,
    reference_scan: bool,
}

/// A recurrent block's state: the convolution's last `k − 1` inputs `[b, k − 1, c]` and the
/// RG-LRU state `[b, c]`.
#[derive(Clone, Debug)]
pub struct RecurrentState {
    /// `None` when the convolution has width 1.
    pub conv: Option<Tensor<3>>,
    /// `h`.
    pub h: Tensor<2>,
}

/// Keys and values of the last positions, at most `window`: `[b, 1, n, e]` each.
#[derive(Clone, Debug)]
pub struct KeyValues {
    /// Rotated keys.
    pub keys: Tensor<4>,
    /// Values.
    pub values: Tensor<4>,
}

/// One residual block's state.
#[derive(Clone, Debug)]
pub enum BlockState {
    /// Recurrent block.
    Recurrent(RecurrentState),
    /// Attention block; `None` before the first position.
    Attention(Option<KeyValues>),
}

/// Recurrent state of a [`Griffin`]: the position reached and one [`BlockState`] per block.
#[derive(Clone, Debug)]
pub struct GriffinState {
    /// Positions consumed (the next position's index).
    pub position: usize,
    /// One per residual block.
    pub blocks: Vec<BlockState>,
}

impl Griffin {
    /// The same model running the reference (`true`) or the fused (`false`) RG-LRU.
    pub fn reference(mut self, reference_scan: bool) -> Self {
        self.reference_scan = reference_scan;
        self
    }
}

impl SequenceModel for Griffin {
    type State = GriffinState;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut x = x;
        for block in &self.blocks {
            let normed = kernels::rms_norm_layer(&block.temporal_norm, x.clone());
            let mixed = match &block.temporal {
                Temporal::Recurrent(r) => r.forward(normed, self.reference_scan),
                Temporal::Attention(a) => a.forward(normed),
            };
            let residual = mixed + x;
            x = block.mlp.forward(kernels::rms_norm_layer(
                &block.channel_norm,
                residual.clone(),
            )) + residual;
        }
        kernels::rms_norm_layer(&self.norm, x)
    }

    fn init_state(&self, batch: usize, device: &Device) -> GriffinState {
        GriffinState {
            position: 0,
            blocks: self
                .blocks
                .iter()
                .map(|block| match &block.temporal {
                    Temporal::Recurrent(r) => BlockState::Recurrent(RecurrentState {
                        conv: r.conv.init_state(batch, device),
                        h: Tensor::zeros([batch, r.lru_width], device),
                    }),
                    Temporal::Attention(_) => BlockState::Attention(None),
                })
                .collect(),
        }
    }

    fn step(&self, x: Tensor<2>, state: GriffinState) -> (Tensor<2>, GriffinState) {
        let position = state.position;
        let mut x = x;
        let mut states = Vec::with_capacity(self.blocks.len());
        for (block, s) in self.blocks.iter().zip(state.blocks) {
            let normed = kernels::rms_norm_layer(&block.temporal_norm, x.clone());
            let (mixed, s) = match (&block.temporal, s) {
                (Temporal::Recurrent(r), BlockState::Recurrent(s)) => {
                    let (y, s) = r.step(normed, s, position);
                    (y, BlockState::Recurrent(s))
                }
                (Temporal::Attention(a), BlockState::Attention(cache)) => {
                    let (y, cache) = a.step(normed, cache, position);
                    (y, BlockState::Attention(Some(cache)))
                }
                (_, s) => panic!("state {s:?} does not belong to this block"),
            };
            let residual = (mixed + x).unsqueeze_dim::<3>(1); // [b, 1, d]
            let y = block.mlp.forward(kernels::rms_norm_layer(
                &block.channel_norm,
                residual.clone(),
            )) + residual;
            x = y.squeeze_dim(1);
            states.push(s);
        }
        let state = GriffinState {
            position: position + 1,
            blocks: states,
        };
        (kernels::rms_norm_layer(&self.norm, x), state)
    }

    /// Per recurrent block `c·(k − 1) + c` floats; per attention block `2·min(len, w)·e`: constant
    /// once the length passes the window.
    fn state_size(&self, len: usize) -> usize {
        self.blocks
            .iter()
            .map(|block| match &block.temporal {
                Temporal::Recurrent(r) => r.lru_width * r.conv.width(),
                Temporal::Attention(a) => 2 * len.min(a.window) * (self.d_model / a.n_heads),
            })
            .sum()
    }

    fn width(&self) -> Option<usize> {
        Some(self.d_model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{flat, max_rel};

    #[test]
    fn pattern_cycles_and_hawk_is_recurrent_only() {
        let griffin = GriffinConfig::new()
            .with_d_model(16)
            .with_n_layers(5)
            .init(&Device::flex());
        let kinds: Vec<bool> = griffin
            .blocks
            .iter()
            .map(|b| matches!(b.temporal, Temporal::Attention(_)))
            .collect();
        assert_eq!(kinds, vec![false, false, true, false, false]);
        let hawk = GriffinConfig::hawk().with_d_model(16).init(&Device::flex());
        assert!(
            hawk.blocks
                .iter()
                .all(|b| matches!(b.temporal, Temporal::Recurrent(_)))
        );
    }

    #[test]
    fn initialisation_follows_the_reference() {
        let device = Device::flex();
        device.seed(1);
        let model = GriffinConfig::new().with_d_model(64).init(&device);
        let Temporal::Recurrent(r) = &model.blocks[0].temporal else {
            panic!("block 0 is recurrent");
        };
        // exp(−softplus(Λ)) = r with r² in [0.81, 0.998].
        let base = flat(kernels::softplus(r.lru.a_param.val()).neg().exp());
        assert!(
            base.iter()
                .all(|&v| (0.9 - 1e-6..=0.999 + 1e-6).contains(&v)),
            "{base:?}"
        );
        let squares: Vec<f32> = base.iter().map(|v| v * v).collect();
        let mean = squares.iter().sum::<f32>() / squares.len() as f32;
        assert!((mean - (0.81 + 0.998) / 2.0).abs() < 0.03, "mean r² {mean}");
        // Gate blocks N(0, 1/16) for 4 blocks of 16: std 0.25.
        let gate = flat(r.lru.input_gate.val());
        let std = (gate.iter().map(|v| v * v).sum::<f32>() / gate.len() as f32).sqrt();
        assert!((std - 0.25).abs() < 0.02, "gate std {std}");
        // linear_out: N(0, (2/3)/64).
        let out = flat(r.linear_out.weight.val());
        let std = (out.iter().map(|v| v * v).sum::<f32>() / out.len() as f32).sqrt();
        let want = ((2.0 / 3.0) / 64.0f32).sqrt();
        assert!(
            (std - want).abs() < 0.1 * want,
            "linear_out std {std}, want {want}"
        );
    }

    #[test]
    fn fused_and_reference_lru_agree_in_the_model() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let fused = GriffinConfig::new().with_d_model(16).init(&device);
        let reference = fused.clone().reference(true);
        let x = Tensor::<3>::random([2, 11, 16], Distribution::Default, &device);
        let err = max_rel(&flat(fused.forward(x.clone())), &flat(reference.forward(x)));
        assert!(err < 1e-5, "{err:e}");
    }

    #[test]
    fn rope_rotates_the_first_half_only_and_keeps_norms() {
        let device = Device::flex();
        device.seed(6);
        let x = Tensor::<4>::random([1, 2, 5, 8], Distribution::Default, &device);
        let rotated = rope(x.clone(), 3);
        // Last half unchanged; position 0 is the identity.
        assert_eq!(
            flat(rotated.clone().narrow(3, 4, 4)),
            flat(x.clone().narrow(3, 4, 4))
        );
        let at_zero = rope(x.clone(), 0).narrow(2, 0, 1);
        assert!(max_rel(&flat(at_zero), &flat(x.clone().narrow(2, 0, 1))) < 1e-6);
        // A rotation: the norm of each (x_j, x_{j+2}) pair is kept.
        let pair_norms = |t: Tensor<4>| {
            let a = t.clone().narrow(3, 0, 2);
            let b = t.narrow(3, 2, 2);
            flat(a.powi_scalar(2) + b.powi_scalar(2))
        };
        assert!(max_rel(&pair_norms(rotated), &pair_norms(x)) < 1e-5);
    }

    #[test]
    fn state_is_constant_beyond_the_window() {
        let model = GriffinConfig::new()
            .with_d_model(16)
            .with_window(8)
            .init(&Device::flex());
        // Two recurrent blocks of 16 channels · (3 conv inputs + 1 state), one attention block
        // with 2 · window · head width (16 / 4).
        assert_eq!(model.state_size(100), 2 * 16 * 4 + 2 * 8 * 4);
        assert_eq!(model.state_size(8), model.state_size(10_000));
        assert!(model.state_size(3) < model.state_size(8));
    }
}
