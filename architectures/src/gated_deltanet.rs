//! Gated DeltaNet backbone: blocks `x + GDN(RMSNorm(x))`, `x + SwiGLU(RMSNorm(x))` and a final
//! RMSNorm (Yang, Kautz & Hatamizadeh 2024, "Gated Delta Networks: Improving Mamba2 with Delta
//! Rule", <https://arxiv.org/abs/2412.06464>; reference fla-org/flash-linear-attention
//! `fla/layers/gated_deltanet.py` class `GatedDeltaNet`, `fla/ops/gated_delta_rule/naive.py`
//! (the per-step recurrence and the chunked WY form), and the block of
//! `fla/models/gated_deltanet/modeling_gated_deltanet.py`).
//!
//! One Gated DeltaNet layer, `x: [b, l, d] -> [b, l, d]`, with `h` heads, key width `dk =
//! head_dim` and value width `dv = expand_v · dk`:
//!
//! 1. `q, k, v = SiLU(conv(q_proj x)), SiLU(conv(k_proj x)), SiLU(conv(v_proj x))`, short causal
//!    depthwise convolutions of width `conv_size` without bias (one convolution over the three,
//!    as the reference fuses them); `q, k` L2-normalised per head, `q` scaled by `dk^−½`;
//! 2. `β = sigmoid(b_proj x)`, `g = −exp(A_log) · softplus(a_proj x + dt_bias)`, `α = exp(g)`,
//!    one of each per head and position;
//! 3. the gated delta rule per head, state `S_t: [dk, dv]` (the reference's layout):
//!    `S_t = α_t S_{t−1} + k_t β_t (v_t − α_t S_{t−1}ᵀ k_t)ᵀ`, that is
//!    `S_tᵀ = α_t S_{t−1}ᵀ (I − β_t k_t k_tᵀ) + β_t v_t k_tᵀ`; `o_t = S_tᵀ q_t`;
//! 4. `o = RMSNorm(o) ⊙ w ⊙ SiLU(g_proj x)` per head over `dv` (`FusedRMSNormGated`, norm then
//!    gate), then `o_proj` (no bias anywhere).
//!
//! Step 3 is computed three ways ([`ScanPath`]), checked against each other in values and
//! gradients. Chunked ([`gated_delta_rule`]), as the reference's GPU training kernels do, and
//! the path off the CPU: within a chunk of `s` positions the delta rule's corrections form the
//! unit lower-triangular system `(I + M) U = V_β − W̃ S₀` with `M[t, u] = β_t e^{γ_t − γ_u}
//! k_tᵀ k_u` (`u < t`, `γ` the cumulative log-decay), whose inverse `T` (the UT transform) is
//! computed for all chunks at once by recursive 2×2 block inversion (stable as forward
//! substitution, `log₂ s` batched steps); across chunks the state passes sequentially. On the
//! CPU backends the fast path is the host recurrence [`kernels::gated_delta_rule`] (three passes
//! over an L1-resident state per step, no chunk products or inversion). [`gated_delta_rule_recurrent`]
//! is the per-step recurrence in tensor operations, the reference path of
//! [`GatedDeltaNet::reference`].
//!
//! Initialisation as the reference layer: `A = U(0, 16)` per head (`A_log = ln A`), `dt_bias =
//! softplus⁻¹(dt)` with `dt` log-uniform in `[0.001, 0.1]` floored at 1e-4, the norm weights 1,
//! PyTorch's default (Kaiming-uniform) for the projections and the convolution. The MLP is
//! fla's `GatedMLP` (SwiGLU, `hidden_ratio` 4: width `⌈(8d/3) / 256⌉ · 256`).
//!
//! `step` keeps the last `conv_size − 1` inputs of the convolution and the `[b, h, dk, dv]` state
//! per layer, O(1) per token.
//!
//! Shapes: b batch, l length, d d_model, h heads, k key width (`dk`), v value width (`dv`),
//! m MLP width, c chunks, s chunk length.

use burn::module::Param;
use burn::nn::{Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::activation::sigmoid;

use crate::blocks::{CausalConv1d, ScanPath, dt_bias, rows};
use crate::error::ConfigError;
use crate::forecast_adapter::{Backbone, BackboneConfig, Patching};
use crate::kernels::{self, Activation, silu, softplus};
use crate::options::{ModelOption, ModelOptions};
use crate::sequence_model::SequenceModel;

/// Hyperparameters of a [`GatedDeltaNet`] backbone.
#[derive(Config, Debug)]
pub struct GatedDeltaNetConfig {
    /// Width `d`.
    #[config(default = 128)]
    pub d_model: usize,
    /// Blocks (each a Gated DeltaNet layer and an MLP).
    #[config(default = 2)]
    pub n_layers: usize,
    /// Heads `h`.
    #[config(default = 2)]
    pub n_heads: usize,
    /// Key width per head `dk` (`head_dim`).
    #[config(default = 64)]
    pub head_dim: usize,
    /// Value width per head `dv = expand_v · dk`.
    #[config(default = 2)]
    pub expand_v: usize,
    /// Width of the short convolutions.
    #[config(default = 4)]
    pub conv_size: usize,
    /// MLP width before rounding, as a multiple of `d` (fla's `hidden_ratio`).
    #[config(default = 4)]
    pub mlp_ratio: usize,
    /// Chunk length of the chunked form, a power of two (the reference's kernels use 64).
    #[config(default = 64)]
    pub chunk_size: usize,
}

/// The registry entry: Gated DeltaNet behind the forecasting adapter.
pub struct GatedDeltaNetSpec;

impl Backbone for GatedDeltaNetSpec {
    type Config = GatedDeltaNetConfig;

    const ABOUT: &'static str = "Gated DeltaNet blocks over patches (host delta-rule kernel on the CPU, chunked UT form elsewhere; same adapter)";
    const OPTIONS: &'static [ModelOption] = &[
        ModelOption::DModel,
        ModelOption::Layers,
        ModelOption::Heads,
        ModelOption::HeadDim,
        ModelOption::Dropout,
    ];

    /// Gated DeltaNet has no dropout of its own: `--dropout` is the adapter head's.
    fn configure(
        options: &ModelOptions,
        patching: &mut Patching,
    ) -> Result<GatedDeltaNetConfig, ConfigError> {
        patching.head_dropout = options.dropout.unwrap_or(patching.head_dropout);
        let config = GatedDeltaNetConfig::new();
        Ok(GatedDeltaNetConfig {
            d_model: options.d_model.unwrap_or(config.d_model),
            n_layers: options.layers.unwrap_or(config.n_layers),
            n_heads: options.heads.unwrap_or(config.n_heads),
            head_dim: options.head_dim.unwrap_or(config.head_dim),
            ..config
        })
    }

    /// The width and depth; heads of `dk` 64 (one head of `d` below 64), as many as cover `d`
    /// (the default's `h · dk = d`).
    fn ladder_point(width: usize, depth: usize, options: &mut ModelOptions) {
        let head_dim = GatedDeltaNetConfig::new().head_dim.min(width);
        options.d_model = Some(width);
        options.layers = Some(depth);
        options.head_dim = Some(head_dim);
        options.heads = Some(width.div_ceil(head_dim));
    }
}

impl BackboneConfig for GatedDeltaNetConfig {
    type Model = GatedDeltaNet;

    fn d_model(&self) -> usize {
        self.d_model
    }

    /// Forward FLOPs over one sequence of `tokens` positions (see [`crate::flops`]), counting the
    /// chunked form. Per block and token, with `h` heads, `k = dk`, `v = dv`, `m` the MLP width,
    /// `w = conv_size`, `s` the chunk length: the projections `2·d·(2hk + hv)` (q, k, v)
    /// `+ 2·d·2h` (a, b) `+ 2·d·hv` (gate) `+ 2·hv·d` (out), the convolution `2·w·(2hk + hv)`,
    /// the MLP `2·d·2m + 2·m·d`; per head the chunk's products `k kᵀ` and `q kᵀ` `2·2·s·k`,
    /// `T V_β` `2·s·v`, `T W̃` `2·s·k`, the intra-chunk output `2·s·v`, the three state products
    /// `3·2·k·v`, and the block inversion `2·Σ m²` over the block sizes `m = 1, 2, …, s/2`.
    fn forward_flops(&self, tokens: usize) -> u64 {
        let (d, h, k, v, m, w) = (
            self.d_model as u64,
            self.n_heads as u64,
            self.head_dim as u64,
            self.value_dim() as u64,
            self.mlp_width() as u64,
            self.conv_size as u64,
        );
        let s = chunk_len(self.chunk_size, tokens.max(1)) as u64;
        let inversion: u64 = (0..s.trailing_zeros())
            .map(|j| 2 * (1u64 << j).pow(2))
            .sum();
        let projections =
            2 * d * (2 * h * k + h * v) + 2 * d * 2 * h + 2 * d * h * v + 2 * h * v * d;
        let conv = 2 * w * (2 * h * k + h * v);
        let mlp = 2 * d * 2 * m + 2 * m * d;
        let rule = h * (2 * 2 * s * k + 2 * s * v + 2 * s * k + 2 * s * v + 6 * k * v + inversion);
        self.n_layers as u64 * tokens as u64 * (projections + conv + mlp + rule)
    }

    /// Check ranges before building.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let sizes = [
            ("d_model", self.d_model),
            ("layers", self.n_layers),
            ("heads", self.n_heads),
            ("head_dim", self.head_dim),
            ("expand_v", self.expand_v),
            ("conv_size", self.conv_size),
            ("mlp_ratio", self.mlp_ratio),
            ("chunk_size", self.chunk_size),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return invalid(format!("{name} must be positive"));
        }
        if !self.chunk_size.is_power_of_two() {
            return invalid(format!(
                "chunk_size ({}) must be a power of two (the block inversion halves it)",
                self.chunk_size
            ));
        }
        Ok(())
    }

    /// Build on `device`.
    ///
    /// # Panics
    ///
    /// If the config does not pass [`Self::validate`].
    fn init(&self, device: &Device) -> GatedDeltaNet {
        if let Err(e) = self.validate() {
            panic!("invalid GatedDeltaNetConfig: {e}");
        }
        let (d, m) = (self.d_model, self.mlp_width());
        GatedDeltaNet {
            layers: (0..self.n_layers)
                .map(|_| GatedDeltaNetLayer {
                    mixer_norm: RmsNormConfig::new(d).with_epsilon(1e-5).init(device),
                    mixer: self.init_block(device),
                    mlp_norm: RmsNormConfig::new(d).with_epsilon(1e-5).init(device),
                    gate_up: LinearConfig::new(d, 2 * m).with_bias(false).init(device),
                    down: LinearConfig::new(m, d).with_bias(false).init(device),
                })
                .collect(),
            norm: RmsNormConfig::new(d).with_epsilon(1e-5).init(device),
            d_model: d,
            reference: false,
        }
    }
}

impl GatedDeltaNetConfig {
    /// Value width per head `dv = expand_v · dk`.
    pub fn value_dim(&self) -> usize {
        self.expand_v * self.head_dim
    }

    /// The MLP's width: `⌈(mlp_ratio · d · 2/3) / 256⌉ · 256`, as fla's `GatedMLP`.
    pub fn mlp_width(&self) -> usize {
        (self.mlp_ratio * self.d_model * 2 / 3).div_ceil(256) * 256
    }

    /// One Gated DeltaNet layer (the mixer) on its own, as the benchmarks time it.
    pub fn init_block(&self, device: &Device) -> GatedDeltaNetBlock {
        let (d, h, dk, dv, w) = (
            self.d_model,
            self.n_heads,
            self.head_dim,
            self.value_dim(),
            self.conv_size,
        );
        let channels = 2 * h * dk + h * dv;
        // PyTorch Conv1d default for a depthwise kernel: U(±1/sqrt(fan_in)), fan_in = w.
        let conv_bound = 1.0 / (w as f64).sqrt();
        // The reference hard-codes Mamba's Δ range: [0.001, 0.1], floored at 1e-4.
        let dt_bias = dt_bias(h, [0.001, 0.1], 1e-4, device);
        let a = Tensor::<1>::random([h], Distribution::Uniform(0.0, 16.0), device);
        let linear = |o| LinearConfig::new(d, o).with_bias(false).init(device);
        GatedDeltaNetBlock {
            qkv_proj: linear(channels),
            conv: CausalConv1d::without_bias(Tensor::random(
                [w, channels],
                Distribution::Uniform(-conv_bound, conv_bound),
                device,
            )),
            a_proj: linear(h),
            b_proj: linear(h),
            a_log: Param::from_tensor(a.log()),
            dt_bias: Param::from_tensor(dt_bias),
            gate_proj: linear(h * dv),
            out_norm: RmsNormConfig::new(dv).with_epsilon(1e-5).init(device),
            out_proj: LinearConfig::new(h * dv, d).with_bias(false).init(device),
            n_heads: h,
            head_dim: dk,
            value_dim: dv,
            chunk_size: self.chunk_size,
        }
    }
}

/// One Gated DeltaNet layer (the mixer).
#[derive(Module, Debug)]
pub struct GatedDeltaNetBlock {
    /// `d -> 2·h·dk + h·dv`: q, k and v (the reference's three projections side by side).
    qkv_proj: Linear,
    /// Short depthwise causal convolution over q, k and v, no bias.
    conv: CausalConv1d,
    /// `d -> h`: the decay's input.
    a_proj: Linear,
    /// `d -> h`: β's input.
    b_proj: Linear,
    /// `[h]`, `−exp(A_log)` scales the decay.
    a_log: Param<Tensor<1>>,
    /// `[h]`, added before the softplus.
    dt_bias: Param<Tensor<1>>,
    /// `d -> h·dv`: the output gate.
    gate_proj: Linear,
    /// RMSNorm over `dv`, shared by the heads.
    out_norm: RmsNorm,
    /// `h·dv -> d`.
    out_proj: Linear,
    n_heads: usize,
    head_dim: usize,
    value_dim: usize,
    chunk_size: usize,
}

/// One block: `x + GDN(RMSNorm(x))`, then `x + down(SiLU(gate) ⊙ up)(RMSNorm(x))`.
#[derive(Module, Debug)]
pub struct GatedDeltaNetLayer {
    mixer_norm: RmsNorm,
    mixer: GatedDeltaNetBlock,
    mlp_norm: RmsNorm,
    /// `d -> 2m`: the SwiGLU gate and up projections side by side.
    gate_up: Linear,
    /// `m -> d`.
    down: Linear,
}

/// Gated DeltaNet backbone, `[b, l, d] -> [b, l, d]`.
#[derive(Module, Debug)]
pub struct GatedDeltaNet {
    layers: Vec<GatedDeltaNetLayer>,
    /// Final normalisation.
    norm: RmsNorm,
    d_model: usize,
    reference: bool,
}

/// One layer's state: the convolution's last `conv_size − 1` inputs `[b, w − 1, 2hk + hv]`
/// (`None` when the width is 1) and the delta-rule state `[b, h, dk, dv]`.
pub type GatedDeltaNetLayerState = (Option<Tensor<3>>, Tensor<4>);

/// Recurrent state: one [`GatedDeltaNetLayerState`] per layer.
#[derive(Clone, Debug)]
pub struct GatedDeltaNetState {
    /// One `(conv inputs, delta-rule state)` per layer.
    pub layers: Vec<GatedDeltaNetLayerState>,
}

/// The gated delta rule's inputs per position, heads first.
#[derive(Clone, Debug)]
pub struct DeltaRuleInputs {
    /// Queries, L2-normalised and scaled, `[b, h, l, dk]`.
    pub q: Tensor<4>,
    /// Keys, L2-normalised, `[b, h, l, dk]`.
    pub k: Tensor<4>,
    /// Values, `[b, h, l, dv]`.
    pub v: Tensor<4>,
    /// Write strengths β in (0, 1), `[b, h, l]`.
    pub beta: Tensor<3>,
    /// Log-decays `g = ln α ≤ 0`, `[b, h, l]`.
    pub log_decay: Tensor<3>,
}

impl GatedDeltaNetBlock {
    /// The delta rule's inputs from the normalised block input `x: [b, l, d]`, and the output
    /// gate `[b, l, h, dv]`.
    fn inputs(&self, x: Tensor<3>) -> (DeltaRuleInputs, Tensor<4>) {
        let [b, l, _] = x.dims();
        let (h, dk, dv) = (self.n_heads, self.head_dim, self.value_dim);
        let qkv = self.conv.forward_silu(rows(&self.qkv_proj, x.clone())); // [b, l, 2hk + hv]
        let heads = |start, width| {
            qkv.clone()
                .narrow(2, start, h * width)
                .reshape([b, l, h, width])
                .swap_dims(1, 2) // [b, h, l, width]
        };
        let q = l2_normalise(heads(0, dk)).mul_scalar((dk as f64).powf(-0.5));
        let k = l2_normalise(heads(h * dk, dk));
        let v = heads(2 * h * dk, dv);
        let per_head = |t: Tensor<3>| t.swap_dims(1, 2); // [b, l, h] -> [b, h, l]
        let beta = per_head(sigmoid(rows(&self.b_proj, x.clone())));
        let log_decay = per_head(self.log_decay(rows(&self.a_proj, x.clone())));
        let gate = rows(&self.gate_proj, x).reshape([b, l, h, dv]);
        (
            DeltaRuleInputs {
                q,
                k,
                v,
                beta,
                log_decay,
            },
            gate,
        )
    }

    /// `g = −exp(A_log) · softplus(a + dt_bias)` for `a: [.., h]` (rank `D`).
    fn log_decay<const D: usize>(&self, a: Tensor<D>) -> Tensor<D> {
        let mut shape = [1; D];
        shape[D - 1] = self.n_heads;
        softplus(a + self.dt_bias.val().reshape(shape))
            * self.a_log.val().exp().neg().reshape(shape)
    }

    /// `out_proj(RMSNorm(o) ⊙ w ⊙ SiLU(gate))` for `o, gate: [b, l, h, dv]`.
    fn output(&self, o: Tensor<4>, gate: Tensor<4>) -> Tensor<3> {
        let [b, l, h, dv] = o.dims();
        let normed = kernels::rms_norm_layer(&self.out_norm, o) * silu(gate);
        rows(&self.out_proj, normed.reshape([b, l, h * dv]))
    }

    /// The layer on `x: [b, l, d]`, its recurrence computed by `path`.
    pub fn forward(&self, x: Tensor<3>, path: ScanPath) -> Tensor<3> {
        let host = kernels::on_host_backend(&x.device());
        let (inputs, gate) = self.inputs(x);
        let o = match path {
            ScanPath::Fast if host => {
                let DeltaRuleInputs {
                    q,
                    k,
                    v,
                    beta,
                    log_decay,
                } = inputs;
                kernels::gated_delta_rule(q, k, v, beta, log_decay)
            }
            ScanPath::Fast | ScanPath::Chunked => gated_delta_rule(inputs, self.chunk_size),
            ScanPath::PerStep => gated_delta_rule_recurrent(inputs),
        }; // [b, h, l, dv]
        self.output(o.swap_dims(1, 2), gate)
    }

    /// The layer's projections alone (q, k, v, gate and out, chained shape-correctly): the cost
    /// floor of `archzoo bench block --path projections`.
    pub fn projections(&self, x: Tensor<3>) -> Tensor<3> {
        let hv = self.n_heads * self.value_dim;
        let qkv = rows(&self.qkv_proj, x.clone());
        let [_, _, width] = qkv.dims();
        let v = qkv.narrow(2, width - hv, hv);
        rows(&self.out_proj, v * rows(&self.gate_proj, x))
    }

    /// One token `x: [b, d]` with this layer's `(conv inputs, state)`.
    fn step(
        &self,
        x: Tensor<2>,
        state: GatedDeltaNetLayerState,
    ) -> (Tensor<2>, GatedDeltaNetLayerState) {
        let [b, d] = x.dims();
        let (h, dk, dv) = (self.n_heads, self.head_dim, self.value_dim);
        let (past, s) = state;
        let (qkv, past) = self.conv.step(self.qkv_proj.forward(x.clone()), past);
        let qkv = silu(qkv); // [b, 2hk + hv]
        let head = |start, width| {
            qkv.clone()
                .narrow(1, start, h * width)
                .reshape([b, h, width])
        };
        let q = l2_normalise(head(0, dk)).mul_scalar((dk as f64).powf(-0.5));
        let k = l2_normalise(head(h * dk, dk));
        let v = head(2 * h * dk, dv);
        let beta = sigmoid(self.b_proj.forward(x.clone())).reshape([b, h, 1]);
        let decay = self.log_decay(self.a_proj.forward(x.clone())).exp(); // [b, h]
        // S = α S;  u = β (v − Sᵀ k);  S = S + k uᵀ;  o = Sᵀ q
        let s = s * decay.reshape([b, h, 1, 1]);
        let recalled = k
            .clone()
            .reshape([b, h, 1, dk])
            .matmul(s.clone())
            .reshape([b, h, dv]);
        let u = (v - recalled) * beta;
        let s = s + k.reshape([b, h, dk, 1]) * u.reshape([b, h, 1, dv]);
        let o = q
            .reshape([b, h, 1, dk])
            .matmul(s.clone())
            .reshape([b, 1, h, dv]);
        let gate = self.gate_proj.forward(x).reshape([b, 1, h, dv]);
        let out = self.output(o, gate).reshape([b, d]);
        (out, (past, s))
    }
}

impl GatedDeltaNetLayer {
    /// `x + down(SiLU(gate) ⊙ up)` on the normalised `x` (any rank: rows of width `d`).
    fn mlp(&self, x: Tensor<3>) -> Tensor<3> {
        let gate_up = rows(
            &self.gate_up,
            kernels::rms_norm_layer(&self.mlp_norm, x.clone()),
        );
        x + rows(&self.down, kernels::gated(Activation::Silu, gate_up)) // SiLU(gate) ⊙ up
    }
}

impl GatedDeltaNet {
    /// The same model running the per-step reference recurrence (`true`) or the fast path
    /// (`false`).
    pub fn reference(mut self, reference: bool) -> Self {
        self.reference = reference;
        self
    }
}

impl SequenceModel for GatedDeltaNet {
    type State = GatedDeltaNetState;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut x = x;
        for layer in &self.layers {
            let mixed = layer.mixer.forward(
                kernels::rms_norm_layer(&layer.mixer_norm, x.clone()),
                ScanPath::of_reference(self.reference),
            );
            x = layer.mlp(x + mixed);
        }
        kernels::rms_norm_layer(&self.norm, x)
    }

    fn init_state(&self, batch: usize, device: &Device) -> GatedDeltaNetState {
        GatedDeltaNetState {
            layers: self
                .layers
                .iter()
                .map(|layer| {
                    let m = &layer.mixer;
                    (
                        m.conv.init_state(batch, device),
                        Tensor::zeros([batch, m.n_heads, m.head_dim, m.value_dim], device),
                    )
                })
                .collect(),
        }
    }

    fn step(&self, x: Tensor<2>, state: GatedDeltaNetState) -> (Tensor<2>, GatedDeltaNetState) {
        let [b, d] = x.dims();
        let mut x = x;
        let mut layers = Vec::with_capacity(self.layers.len());
        for (layer, s) in self.layers.iter().zip(state.layers) {
            let (y, s) = layer
                .mixer
                .step(kernels::rms_norm_layer(&layer.mixer_norm, x.clone()), s);
            x = layer.mlp((x + y).reshape([b, 1, d])).reshape([b, d]);
            layers.push(s);
        }
        (
            kernels::rms_norm_layer(&self.norm, x),
            GatedDeltaNetState { layers },
        )
    }

    /// Per layer `(2hk + hv)·(w − 1)` convolution inputs and `h·dk·dv` state floats, whatever
    /// the length.
    fn state_size(&self, _len: usize) -> usize {
        self.layers
            .iter()
            .map(|l| {
                let m = &l.mixer;
                m.conv.channels() * (m.conv.width() - 1) + m.n_heads * m.head_dim * m.value_dim
            })
            .sum()
    }

    fn width(&self) -> Option<usize> {
        Some(self.d_model)
    }
}

/// The gated delta rule, chunked (the reference's `chunk_gated_delta_rule` in tensor
/// operations): `o: [b, h, l, dv]`. Equal to [`gated_delta_rule_recurrent`] up to rounding.
///
/// Per chunk, with `γ` the cumulative log-decay from the chunk's start, `Γ[t, u] = e^{γ_t − γ_u}`
/// for `u ≤ t` and the entering state `S₀`:
/// `U = T (V_β − W̃ S₀)` with `T = (I + M)⁻¹`, `M = (K_β Kᵀ ∘ Γ)` strictly below the diagonal,
/// `W̃ = K_β ∘ e^{γ}`; `O = (Q ∘ e^{γ}) S₀ + (Q Kᵀ ∘ Γ) U`; the next state
/// `e^{γ_s} S₀ + (K ∘ e^{γ_s − γ})ᵀ U`.
pub fn gated_delta_rule(inputs: DeltaRuleInputs, chunk_size: usize) -> Tensor<4> {
    let DeltaRuleInputs {
        q,
        k,
        v,
        beta,
        log_decay,
    } = inputs;
    let [b, h, l, dk] = q.dims();
    let dv = v.dims()[3];
    let device = q.device();
    let s = chunk_len(chunk_size, l);
    let chunks = l.div_ceil(s);
    let padded = chunks * s;
    // Zeros after the end: no decay, no write, no read; later positions never reach earlier
    // outputs.
    let pad = |t: Tensor<4>| -> Tensor<4> {
        if padded == l {
            return t;
        }
        let [d0, d1, _, d3] = t.dims();
        Tensor::cat(vec![t, Tensor::zeros([d0, d1, padded - l, d3], &device)], 2)
    };
    let chunked = |t: Tensor<4>| {
        let width = t.dims()[3];
        pad(t).reshape([b, h, chunks, s, width])
    };
    let (q, k, v) = (chunked(q), chunked(k), chunked(v)); // [b, h, c, s, ·]
    let beta = chunked(beta.unsqueeze_dim::<4>(3)); // [b, h, c, s, 1]
    let gamma = chunked(log_decay.unsqueeze_dim::<4>(3)).cumsum(3); // [b, h, c, s, 1]

    // Γ[t, u] = e^{γ_t − γ_u} on and below the diagonal (masked before the exponential: above
    // it the difference is positive and unbounded).
    let within = (gamma.clone() - gamma.clone().swap_dims(3, 4))
        .tril(0)
        .exp()
        .tril(0); // [b, h, c, s, s]
    let k_beta = k.clone() * beta.clone();
    let m = (k_beta.clone().matmul(k.clone().swap_dims(3, 4)) * within.clone()).tril(-1);
    let t = unit_lower_inverse(m.reshape([b * h * chunks, s, s])).reshape([b, h, chunks, s, s]);
    let u = t.clone().matmul(v * beta); // T V_β, [b, h, c, s, dv]
    let w = t.matmul(k_beta * gamma.clone().exp()); // T W̃, [b, h, c, s, dk]
    let scores = q.clone().matmul(k.clone().swap_dims(3, 4)) * within; // [b, h, c, s, s]
    let last = gamma.clone().narrow(3, s - 1, 1); // [b, h, c, 1, 1]
    let q_decayed = q * gamma.clone().exp();
    let k_to_end = k * (last.clone() - gamma).exp();

    let at = |t: &Tensor<5>, i: usize| {
        let width = t.dims()[4];
        t.clone().narrow(2, i, 1).reshape([b, h, s, width])
    };
    let mut state = Tensor::<4>::zeros([b, h, dk, dv], &device);
    let mut outputs = Vec::with_capacity(chunks);
    for i in 0..chunks {
        let corrected = at(&u, i) - at(&w, i).matmul(state.clone()); // U, [b, h, s, dv]
        outputs.push(
            at(&q_decayed, i).matmul(state.clone()) + at(&scores, i).matmul(corrected.clone()),
        );
        let decay = last.clone().narrow(2, i, 1).reshape([b, h, 1, 1]).exp();
        state = state * decay + at(&k_to_end, i).swap_dims(2, 3).matmul(corrected);
    }
    Tensor::cat(outputs, 2).narrow(2, 0, l)
}

/// The per-step gated delta rule from `S₀ = 0`: `S = α S; u = β (v − Sᵀ k); S = S + k uᵀ;
/// o = Sᵀ q` (the reference's `naive_recurrent_gated_delta_rule`) in tensor operations
/// ([`kernels::gated_delta_rule_reference`]), `o: [b, h, l, dv]`.
pub fn gated_delta_rule_recurrent(inputs: DeltaRuleInputs) -> Tensor<4> {
    let DeltaRuleInputs {
        q,
        k,
        v,
        beta,
        log_decay,
    } = inputs;
    kernels::gated_delta_rule_reference(q, k, v, beta, log_decay)
}

/// `(I + M)⁻¹` for strictly lower-triangular `M: [n, s, s]` (`s` a power of two), by recursive
/// 2×2 block inversion: `[[A, 0], [C, B]]⁻¹ = [[A⁻¹, 0], [−B⁻¹ C A⁻¹, B⁻¹]]`, all blocks of one
/// size at once, from 1×1 blocks (`1`) up to `s`.
fn unit_lower_inverse(m: Tensor<3>) -> Tensor<3> {
    let [n, s, _] = m.dims();
    let device = m.device();
    // inverse: [n, s/size, size, size], the inverses of the diagonal blocks of size `size`.
    let mut inverse = Tensor::<4>::ones([n, s, 1, 1], &device);
    let mut size = 1;
    while size < s {
        let pairs = s / (2 * size);
        let halves = inverse.reshape([n, pairs, 2, size, size]);
        let first = halves
            .clone()
            .narrow(2, 0, 1)
            .reshape([n, pairs, size, size]);
        let second = halves.narrow(2, 1, 1).reshape([n, pairs, size, size]);
        // C: rows of the second half, columns of the first, of each diagonal block of 2·size.
        let lower = diagonal_blocks(m.clone(), 2 * size)
            .narrow(2, size, size)
            .narrow(3, 0, size);
        let corner = second.clone().matmul(lower).matmul(first.clone()).neg();
        let top = Tensor::cat(
            vec![first, Tensor::zeros([n, pairs, size, size], &device)],
            3,
        );
        let bottom = Tensor::cat(vec![corner, second], 3);
        inverse = Tensor::cat(vec![top, bottom], 2); // [n, pairs, 2·size, 2·size]
        size *= 2;
    }
    inverse.reshape([n, s, s])
}

/// The diagonal blocks of size `size` of `m: [n, s, s]`: `[n, s/size, size, size]`.
fn diagonal_blocks(m: Tensor<3>, size: usize) -> Tensor<4> {
    let [n, s, _] = m.dims();
    let blocks = s / size;
    if blocks == 1 {
        return m.reshape([n, 1, s, s]);
    }
    // [n, blocks, size, blocks, size]: keep block column = block row, sum the rest away.
    let eye = Tensor::<2>::eye(blocks, &m.device()).reshape([1, blocks, 1, blocks, 1]);
    (m.reshape([n, blocks, size, blocks, size]) * eye)
        .sum_dim(3)
        .reshape([n, blocks, size, size])
}

/// `x / sqrt(Σ x² + 1e-6)` over the last axis (fla's `l2norm`).
fn l2_normalise<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let norm = (x.clone().powi_scalar(2).sum_dim(D - 1) + 1e-6).sqrt();
    x / norm
}

/// The chunk length for `len` positions: `chunk_size`, or the smallest power of two covering a
/// shorter sequence.
fn chunk_len(chunk_size: usize, len: usize) -> usize {
    chunk_size.min(len.next_power_of_two())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{assert_close, flat};

    fn inputs(device: &Device, [b, h, l, dk, dv]: [usize; 5]) -> DeltaRuleInputs {
        let random = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Default, device);
        DeltaRuleInputs {
            q: l2_normalise(random([b, h, l, dk])).require_grad(),
            k: l2_normalise(random([b, h, l, dk])).require_grad(),
            v: random([b, h, l, dv]).require_grad(),
            beta: Tensor::random([b, h, l], Distribution::Uniform(0.05, 0.95), device)
                .require_grad(),
            // α from about 0.2 to 1.
            log_decay: Tensor::random([b, h, l], Distribution::Uniform(-1.5, 0.0), device)
                .require_grad(),
        }
    }

    fn values_and_gradients(
        inputs: &DeltaRuleInputs,
        run: impl Fn(DeltaRuleInputs) -> Tensor<4>,
        weight: &Tensor<4>,
    ) -> Vec<Vec<f32>> {
        let o = run(inputs.clone());
        let grads = (o.clone() * weight.clone()).sum().backward();
        vec![
            flat(o),
            flat(inputs.q.grad(&grads).expect("gradient of q")),
            flat(inputs.k.grad(&grads).expect("gradient of k")),
            flat(inputs.v.grad(&grads).expect("gradient of v")),
            flat(inputs.beta.grad(&grads).expect("gradient of beta")),
            flat(inputs.log_decay.grad(&grads).expect("gradient of g")),
        ]
    }

    #[test]
    fn chunked_rule_equals_the_recurrence_in_values_and_gradients() {
        let device = Device::flex().autodiff();
        // Lengths 1, not a multiple of the chunk, several chunks, a chunk of one.
        for (l, chunk) in [(1, 4), (7, 4), (13, 4), (16, 8), (9, 16), (5, 1)] {
            device.seed(l as u64 + chunk as u64);
            let (b, h, dk, dv) = (2, 2, 4, 6);
            let inputs = inputs(&device, [b, h, l, dk, dv]);
            let weight = Tensor::<4>::random([b, h, l, dv], Distribution::Default, &device);
            let got = values_and_gradients(&inputs, |i| gated_delta_rule(i, chunk), &weight);
            let want = values_and_gradients(&inputs, gated_delta_rule_recurrent, &weight);
            assert_close(
                &["o", "dq", "dk", "dv", "dbeta", "dg"],
                &got,
                &want,
                1e-4,
                &format!("l {l}, chunk {chunk}"),
            );
        }
    }

    #[test]
    fn block_inversion_inverts() {
        let device = Device::flex();
        device.seed(5);
        let m = Tensor::<3>::random([3, 8, 8], Distribution::Default, &device).tril(-1);
        let product = (Tensor::<2>::eye(8, &device).unsqueeze::<3>() + m.clone())
            .matmul(unit_lower_inverse(m));
        let eye = flat(
            Tensor::<2>::eye(8, &device)
                .unsqueeze::<3>()
                .repeat_dim(0, 3),
        );
        assert_close(&["(I + M) T"], &[flat(product)], &[eye], 1e-5, "8×8");
    }

    #[test]
    fn fast_and_reference_layers_agree() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let config = GatedDeltaNetConfig::new()
            .with_d_model(16)
            .with_head_dim(4)
            .with_chunk_size(4);
        let fast = config.init(&device);
        let reference = fast.clone().reference(true);
        let x = Tensor::<3>::random([2, 11, 16], Distribution::Default, &device);
        assert_close(
            &["y"],
            &[flat(fast.forward(x.clone()))],
            &[flat(reference.forward(x))],
            1e-4,
            "backbone",
        );
    }

    #[test]
    fn initialisation_follows_the_reference() {
        let device = Device::flex();
        device.seed(0);
        let config = GatedDeltaNetConfig::new()
            .with_d_model(64)
            .with_head_dim(16);
        assert_eq!((config.value_dim(), config.mlp_width()), (32, 256));
        let block = config.init_block(&device);
        let a = flat(block.a_log.val().exp());
        assert!(a.iter().all(|v| (0.0..=16.0).contains(v)), "{a:?}");
        let dt = flat(softplus(block.dt_bias.val()));
        assert!(
            dt.iter()
                .all(|&v| (0.001 * 0.999..=0.1 * 1.001).contains(&v)),
            "{dt:?}"
        );
        // q and k (2 heads of 16), v (2 heads of 32); no convolution bias.
        assert_eq!(block.qkv_proj.weight.dims(), [64, 32 + 32 + 64]);
        assert_eq!(block.conv.channels(), 128);
        assert!(block.conv.num_params() == 4 * 128);
    }

    #[test]
    fn chunk_size_must_be_a_power_of_two() {
        let error = GatedDeltaNetConfig::new().with_chunk_size(48).validate();
        assert!(error.unwrap_err().to_string().contains("power of two"));
    }

    #[test]
    fn state_size_is_constant() {
        let model = GatedDeltaNetConfig::new()
            .with_d_model(16)
            .with_head_dim(4)
            .init(&Device::flex());
        // 2 layers · ((8 + 8 + 16) channels · 3 conv inputs + 2 heads · 4 · 8 states)
        assert_eq!(model.state_size(1), 2 * (32 * 3 + 2 * 4 * 8));
        assert_eq!(model.state_size(10_000), model.state_size(1));
    }
}
