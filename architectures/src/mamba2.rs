//! Mamba-2 backbone: residual blocks `x + Mamba2(RMSNorm(x))` and a final RMSNorm (Dao & Gu 2024,
//! "Transformers are SSMs", <https://arxiv.org/abs/2405.21060>; reference state-spaces/mamba
//! `modules/mamba2_simple.py` class `Mamba2Simple`, `modules/ssd_minimal.py`
//! `ssd_minimal_discrete`, and the block order of `models/mixer_seq_simple.py`;
//! reference/architectures.md §1.6).
//!
//! One Mamba-2 block, `u: [b, l, d] -> [b, l, d]`, with `i = expand · d` split into `h = i / p`
//! heads of width `p = head_dim`, `g` groups sharing `B` and `C` (`h` divisible by `g`) and
//! `N = d_state`:
//!
//! 1. `[z, xBC, dt] = in_proj(u)` (no bias), widths `i`, `i + 2gN`, `h`;
//! 2. `xBC = SiLU(conv(xBC))`, one causal depthwise convolution of width `d_conv` with bias over
//!    `x`, `B` and `C` together, then `[x, B, C]` split, widths `i, gN, gN`;
//! 3. `Δ = softplus(dt + dt_bias)`, one step size per head;
//! 4. `A = −exp(A_log)`, one scalar per head;
//! 5. the state-space recurrence per head, state `S_t: [p, N]`:
//!    `S_t = exp(Δ_t A) S_{t−1} + Δ_t x_t B_tᵀ`, `y_t = S_t C_t + D x_t`;
//! 6. the gated RMSNorm, gate before the norm (`norm_before_gate=False`):
//!    `y = RMSNorm(y ⊙ SiLU(z)) ⊙ w`;
//! 7. `out_proj(y)` (no bias).
//!
//! Step 5 is computed three ways ([`ScanPath`]), checked against each other in values and
//! gradients. The state-space dual ([`ssd`]): the sequence cut into chunks of `chunk_size`
//! positions, within a chunk the masked quadratic form `(C Bᵀ ∘ L) (Δ x)` with the segment-sum
//! decay `L[t, s] = exp(Σ_{s<k≤t} Δ_k A)`, across chunks the chunk-final states passed on by a
//! recurrence over chunks, all as batched matrix products: the path off the CPU, as the
//! reference's GPU kernels. On the CPU backends the fast path is the host scan
//! [`kernels::ssd_scan`] (a scalar decay per head makes a step `3pN` multiply-adds over a state
//! that stays in L1: 2.6x faster than the dual's tensor operations here, `archzoo bench block
//! --arch mamba2`). [`ssd_recurrent`] is the per-step recurrence in tensor operations, the
//! reference path of [`Mamba2::reference`].
//!
//! Initialisation as the reference: `A_log = ln U(1, 16)` per head, `D = 1`,
//! `dt_bias = softplus⁻¹(dt)` with `dt` log-uniform in `[dt_min, dt_max]` floored at
//! `dt_init_floor`, the gated norm's weight 1; PyTorch's default (Kaiming-uniform) for the
//! projections and the convolution. The reference gives `A_log`, `D` and `dt_bias` no weight
//! decay; archzoo's forecasting trains with Adam without weight decay, and the token probes' AdamW
//! decays every parameter alike.
//!
//! `step` keeps the last `d_conv − 1` inputs of the convolution and the `[b, h, p, N]` state per
//! layer, O(1) per token.
//!
//! Shapes: b batch, l length, d d_model, i d_inner, h heads, p head_dim, g groups, r = h / g heads
//! per group, n d_state, k d_conv, c chunks, s chunk length.

use burn::module::Param;
use burn::nn::{Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use burn::tensor::Distribution;

use crate::blocks::{CausalConv1d, ScanPath, dt_bias, rows};
use crate::error::ConfigError;
use crate::forecast_adapter::{Backbone, BackboneConfig, Patching};
use crate::kernels::{self, silu, softplus};
use crate::options::{ModelOption, ModelOptions};
use crate::sequence_model::SequenceModel;

/// Hyperparameters of a [`Mamba2`] backbone.
#[derive(Config, Debug)]
pub struct Mamba2Config {
    /// Width `d` (Mamba-1's default width here).
    #[config(default = 128)]
    pub d_model: usize,
    /// Residual blocks.
    #[config(default = 2)]
    pub n_layers: usize,
    /// State size `N` per head (`Mamba2Simple`'s default).
    #[config(default = 64)]
    pub d_state: usize,
    /// `d_inner = expand · d_model`.
    #[config(default = 2)]
    pub expand: usize,
    /// Head width `p` (`headdim`; `Mamba2`'s default).
    #[config(default = 64)]
    pub head_dim: usize,
    /// Groups `g` sharing `B` and `C` (`ngroups`).
    #[config(default = 1)]
    pub n_groups: usize,
    /// Width of the causal depthwise convolution.
    #[config(default = 4)]
    pub d_conv: usize,
    /// Chunk length of the state-space dual. The reference's GPU kernels use 256; on the CPU the
    /// quadratic part of a chunk costs `2·s·(N + p)` per position and head against `4·N·p` for
    /// the chunk states, so 64 keeps the two comparable.
    #[config(default = 64)]
    pub chunk_size: usize,
    /// Lower end of the initial `−A` (`A_init_range`).
    #[config(default = 1.0)]
    pub a_init_min: f64,
    /// Upper end of the initial `−A`.
    #[config(default = 16.0)]
    pub a_init_max: f64,
    /// Smallest initial Δ.
    #[config(default = 0.001)]
    pub dt_min: f64,
    /// Largest initial Δ.
    #[config(default = 0.1)]
    pub dt_max: f64,
    /// Floor of the initial Δ.
    #[config(default = 1e-4)]
    pub dt_init_floor: f64,
}

/// The registry entry: Mamba-2 behind the forecasting adapter.
pub struct Mamba2Spec;

impl Backbone for Mamba2Spec {
    type Config = Mamba2Config;

    const ABOUT: &'static str = "Mamba-2 (SSD) blocks over patches (host scan kernel on the CPU, chunked SSD elsewhere; same adapter)";
    const OPTIONS: &'static [ModelOption] = &[
        ModelOption::DModel,
        ModelOption::Layers,
        ModelOption::DState,
        ModelOption::Expand,
        ModelOption::HeadDim,
        ModelOption::Dropout,
    ];

    /// Mamba-2 has no dropout of its own: `--dropout` is the adapter head's.
    fn configure(
        options: &ModelOptions,
        patching: &mut Patching,
    ) -> Result<Mamba2Config, ConfigError> {
        patching.head_dropout = options.dropout.unwrap_or(patching.head_dropout);
        let config = Mamba2Config::new();
        Ok(Mamba2Config {
            d_model: options.d_model.unwrap_or(config.d_model),
            n_layers: options.layers.unwrap_or(config.n_layers),
            d_state: options.d_state.unwrap_or(config.d_state),
            expand: options.expand.unwrap_or(config.expand),
            head_dim: options.head_dim.unwrap_or(config.head_dim),
            ..config
        })
    }

    /// The width and depth, and the head width that divides `d_inner` (the default 64 where it
    /// does; 32 at width 16).
    fn ladder_point(width: usize, depth: usize, options: &mut ModelOptions) {
        let d_inner = Mamba2Config::new().expand * width;
        options.d_model = Some(width);
        options.layers = Some(depth);
        options.head_dim = Some(gcd(Mamba2Config::new().head_dim, d_inner));
    }
}

impl BackboneConfig for Mamba2Config {
    type Model = Mamba2;

    fn d_model(&self) -> usize {
        self.d_model
    }

    /// Forward FLOPs over one sequence of `tokens` positions (see [`crate::flops`]), counting the
    /// chunked form that runs. Per block and token, with `i = d_inner`, `h` heads of width `p`,
    /// `g` groups, `n = d_state`, `k = d_conv`, `s = min(chunk_size, tokens)`: the projections
    /// `2·d·(2i + 2gn + h)` (in) `+ 2·i·d` (out), the convolution `2·k·(i + 2gn)`, and the state
    /// space dual: `C Bᵀ` within a chunk `2·s·n` per group, its product with `Δx` `2·s·p`, the
    /// chunk-final states `2·p·n` and their output `2·p·n` per head.
    fn forward_flops(&self, tokens: usize) -> u64 {
        let (d, i, h, p, g, n, k) = (
            self.d_model as u64,
            self.d_inner() as u64,
            self.n_heads() as u64,
            self.head_dim as u64,
            self.n_groups as u64,
            self.d_state as u64,
            self.d_conv as u64,
        );
        let s = self.chunk_size.min(tokens.max(1)) as u64;
        let projections = 2 * d * (2 * i + 2 * g * n + h) + 2 * i * d;
        let conv = 2 * k * (i + 2 * g * n);
        let ssd = g * 2 * s * n + h * (2 * s * p + 4 * p * n);
        self.n_layers as u64 * tokens as u64 * (projections + conv + ssd)
    }

    /// Check ranges before building.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let sizes = [
            ("d_model", self.d_model),
            ("layers", self.n_layers),
            ("d_state", self.d_state),
            ("expand", self.expand),
            ("head_dim", self.head_dim),
            ("n_groups", self.n_groups),
            ("d_conv", self.d_conv),
            ("chunk_size", self.chunk_size),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return invalid(format!("{name} must be positive"));
        }
        if !self.d_inner().is_multiple_of(self.head_dim) {
            return invalid(format!(
                "d_inner = expand · d_model = {} must be divisible by head_dim ({})",
                self.d_inner(),
                self.head_dim
            ));
        }
        if !self.n_heads().is_multiple_of(self.n_groups) {
            return invalid(format!(
                "the {} heads must be divisible by n_groups ({})",
                self.n_heads(),
                self.n_groups
            ));
        }
        if !(0.0 < self.a_init_min && self.a_init_min <= self.a_init_max) {
            return invalid(format!(
                "need 0 < a_init_min <= a_init_max (got {}, {})",
                self.a_init_min, self.a_init_max
            ));
        }
        if !(0.0 < self.dt_min && self.dt_min <= self.dt_max && self.dt_init_floor > 0.0) {
            return invalid(format!(
                "need 0 < dt_min <= dt_max and dt_init_floor > 0 (got {}, {}, {})",
                self.dt_min, self.dt_max, self.dt_init_floor
            ));
        }
        Ok(())
    }

    /// Build on `device`.
    ///
    /// # Panics
    ///
    /// If the config does not pass [`Self::validate`].
    fn init(&self, device: &Device) -> Mamba2 {
        if let Err(e) = self.validate() {
            panic!("invalid Mamba2Config: {e}");
        }
        Mamba2 {
            layers: (0..self.n_layers)
                .map(|_| Mamba2Layer {
                    norm: RmsNormConfig::new(self.d_model).init(device),
                    mixer: self.init_block(device),
                })
                .collect(),
            norm: RmsNormConfig::new(self.d_model).init(device),
            d_model: self.d_model,
            reference: false,
        }
    }
}

impl Mamba2Config {
    /// `d_inner = expand · d_model`.
    pub fn d_inner(&self) -> usize {
        self.expand * self.d_model
    }

    /// Heads `h = d_inner / head_dim`.
    pub fn n_heads(&self) -> usize {
        self.d_inner() / self.head_dim
    }

    /// One Mamba-2 block (the mixer) on its own, as the benchmarks time it.
    pub fn init_block(&self, device: &Device) -> Mamba2Block {
        let (d, i, h, gn, k) = (
            self.d_model,
            self.d_inner(),
            self.n_heads(),
            self.n_groups * self.d_state,
            self.d_conv,
        );
        let conv_dim = i + 2 * gn;
        // PyTorch Conv1d default for a depthwise kernel: U(±1/sqrt(fan_in)), fan_in = k.
        let conv_bound = 1.0 / (k as f64).sqrt();
        let dt_bias = dt_bias(h, [self.dt_min, self.dt_max], self.dt_init_floor, device);
        let a = Tensor::<1>::random(
            [h],
            Distribution::Uniform(self.a_init_min, self.a_init_max),
            device,
        );
        Mamba2Block {
            in_proj: LinearConfig::new(d, i + conv_dim + h)
                .with_bias(false)
                .init(device),
            conv: CausalConv1d::new(
                Tensor::random(
                    [k, conv_dim],
                    Distribution::Uniform(-conv_bound, conv_bound),
                    device,
                ),
                Tensor::random(
                    [conv_dim],
                    Distribution::Uniform(-conv_bound, conv_bound),
                    device,
                ),
            ),
            a_log: Param::from_tensor(a.log()),
            dt_bias: Param::from_tensor(dt_bias),
            d_skip: Param::from_tensor(Tensor::ones([h], device)),
            gated_norm: RmsNormConfig::new(i).with_epsilon(1e-5).init(device),
            out_proj: LinearConfig::new(i, d).with_bias(false).init(device),
            d_inner: i,
            head_dim: self.head_dim,
            n_groups: self.n_groups,
            d_state: self.d_state,
            chunk_size: self.chunk_size,
        }
    }
}

/// One Mamba-2 block (the mixer).
#[derive(Module, Debug)]
pub struct Mamba2Block {
    /// `d -> i + (i + 2gn) + h`: the gate `z`, the convolved `xBC`, and `dt`.
    in_proj: Linear,
    /// Depthwise causal convolution, width `k`, over `xBC` (`i + 2gn` channels).
    conv: CausalConv1d,
    /// `[h]`, `A = −exp(A_log)`.
    a_log: Param<Tensor<1>>,
    /// `[h]`, added to `dt` before the softplus.
    dt_bias: Param<Tensor<1>>,
    /// `[h]`, the skip `D`.
    d_skip: Param<Tensor<1>>,
    /// The gated RMSNorm's scale over `i` (ε 1e-5, as `RMSNormGated`).
    gated_norm: RmsNorm,
    /// `i -> d`.
    out_proj: Linear,
    d_inner: usize,
    head_dim: usize,
    n_groups: usize,
    d_state: usize,
    chunk_size: usize,
}

/// Pre-norm residual layer: `x + mixer(RMSNorm(x))`.
#[derive(Module, Debug)]
pub struct Mamba2Layer {
    norm: RmsNorm,
    mixer: Mamba2Block,
}

/// Mamba-2 backbone, `[b, l, d] -> [b, l, d]`.
#[derive(Module, Debug)]
pub struct Mamba2 {
    layers: Vec<Mamba2Layer>,
    /// Final normalisation.
    norm: RmsNorm,
    d_model: usize,
    reference: bool,
}

/// One layer's state: the convolution's last `k − 1` inputs `[b, k − 1, i + 2gn]` (`None` when
/// `k = 1`) and the SSM state `[b, h, p, n]`.
pub type Mamba2LayerState = (Option<Tensor<3>>, Tensor<4>);

/// Recurrent state: one [`Mamba2LayerState`] per layer.
#[derive(Clone, Debug)]
pub struct Mamba2State {
    /// One `(conv inputs, ssm state)` per layer.
    pub layers: Vec<Mamba2LayerState>,
}

/// The state-space recurrence's inputs, per position.
#[derive(Clone, Debug)]
pub struct SsdInputs {
    /// `[b, l, h, p]`.
    pub x: Tensor<4>,
    /// Step sizes Δ (after the softplus), `[b, l, h]`.
    pub dt: Tensor<3>,
    /// `A` per head (negative), `[h]`.
    pub a: Tensor<1>,
    /// `[b, l, g, n]`.
    pub b: Tensor<4>,
    /// `[b, l, g, n]`.
    pub c: Tensor<4>,
}

impl Mamba2Block {
    /// Heads `h`.
    fn n_heads(&self) -> usize {
        self.d_inner / self.head_dim
    }

    /// `A = −exp(A_log)`, `[h]`.
    fn a(&self) -> Tensor<1> {
        self.a_log.val().exp().neg()
    }

    /// `Δ = softplus(dt + dt_bias)` for `dt: [.., h]` (any leading shape, rank `D`).
    fn delta<const D: usize>(&self, dt: Tensor<D>) -> Tensor<D> {
        let h = self.n_heads();
        let mut shape = [1; D];
        shape[D - 1] = h;
        softplus(dt + self.dt_bias.val().reshape(shape))
    }

    /// `out_proj(RMSNorm(y ⊙ SiLU(z)) ⊙ w)` for `y, z: [b, l, i]`.
    fn gated_output(&self, y: Tensor<3>, z: Tensor<3>) -> Tensor<3> {
        rows(
            &self.out_proj,
            kernels::rms_norm_layer(&self.gated_norm, y * silu(z)),
        )
    }

    /// The block on `u: [b, l, d]`, its recurrence computed by `path`.
    pub fn forward(&self, u: Tensor<3>, path: ScanPath) -> Tensor<3> {
        let (i, h, p, g, n) = (
            self.d_inner,
            self.n_heads(),
            self.head_dim,
            self.n_groups,
            self.d_state,
        );
        let [bsz, l, d] = u.dims();
        // in_proj as three products with column blocks of its weight `[d, 2i + 2gn + h]`, so the
        // `[b, l, ·]` output is never sliced (as Mamba-1's in_proj).
        let u = u.reshape([bsz * l, d]);
        let weight = self.in_proj.weight.val();
        let part = |start, width| {
            kernels::linear(u.clone(), weight.clone().narrow(1, start, width), None)
                .reshape([bsz, l, width])
        };
        let z = part(0, i); // [b, l, i]
        let xbc = self.conv.forward_silu(part(i, i + 2 * g * n)); // [b, l, i + 2gn]
        let dt = part(2 * i + 2 * g * n, h); // [b, l, h]
        let inputs = SsdInputs {
            x: xbc.clone().narrow(2, 0, i).reshape([bsz, l, h, p]),
            dt: self.delta(dt),
            a: self.a(),
            b: xbc.clone().narrow(2, i, g * n).reshape([bsz, l, g, n]),
            c: xbc.narrow(2, i + g * n, g * n).reshape([bsz, l, g, n]),
        };
        let skip = inputs.x.clone() * self.d_skip.val().reshape([1, 1, h, 1]); // D x
        let host = kernels::on_host_backend(&u.device());
        let y = match path {
            ScanPath::Fast if host => {
                let SsdInputs { x, dt, a, b, c } = inputs;
                kernels::ssd_scan(x, dt, a, b, c)
            }
            ScanPath::Fast | ScanPath::Chunked => ssd(inputs, self.chunk_size),
            ScanPath::PerStep => ssd_recurrent(inputs),
        }; // [b, l, h, p]
        self.gated_output((y + skip).reshape([bsz, l, i]), z)
    }

    /// The block's two projections alone (`in_proj`, `out_proj`, chained shape-correctly, no
    /// convolution, dual or gating): the cost floor of `archzoo bench block --path projections`.
    pub fn projections(&self, u: Tensor<3>) -> Tensor<3> {
        rows(
            &self.out_proj,
            rows(&self.in_proj, u).narrow(2, 0, self.d_inner),
        )
    }

    /// One token `u: [b, d]` with this layer's `(conv inputs, ssm state)`.
    fn step(&self, u: Tensor<2>, state: Mamba2LayerState) -> (Tensor<2>, Mamba2LayerState) {
        let [bsz, _] = u.dims();
        let (i, h, p, g, n) = (
            self.d_inner,
            self.n_heads(),
            self.head_dim,
            self.n_groups,
            self.d_state,
        );
        let (past, s) = state;
        let zxbcdt = self.in_proj.forward(u); // [b, 2i + 2gn + h]
        let z = zxbcdt.clone().narrow(1, 0, i);
        let (xbc, past) = self
            .conv
            .step(zxbcdt.clone().narrow(1, i, i + 2 * g * n), past);
        let xbc = silu(xbc); // [b, i + 2gn]
        let delta = self.delta(zxbcdt.narrow(1, 2 * i + 2 * g * n, h)); // [b, h]
        let x = xbc.clone().narrow(1, 0, i).reshape([bsz, h, p]);
        let per_head = |t: Tensor<2>| {
            t.reshape([bsz, g, 1, n])
                .repeat_dim(2, h / g)
                .reshape([bsz, h, n])
        };
        let bm = per_head(xbc.clone().narrow(1, i, g * n)); // [b, h, n]
        let cm = per_head(xbc.narrow(1, i + g * n, g * n)); // [b, h, n]
        // S = exp(Δ A) S + Δ x Bᵀ;  y = S C + D x
        let decay = (delta.clone() * self.a().reshape([1, h])).exp(); // [b, h]
        let s = s * decay.reshape([bsz, h, 1, 1])
            + (x.clone() * delta.reshape([bsz, h, 1])).reshape([bsz, h, p, 1])
                * bm.reshape([bsz, h, 1, n]);
        let y = s
            .clone()
            .matmul(cm.reshape([bsz, h, n, 1]))
            .reshape([bsz, h, p])
            + x * self.d_skip.val().reshape([1, h, 1]);
        let out = self.gated_output(y.reshape([bsz, 1, i]), z.reshape([bsz, 1, i]));
        (
            out.reshape([bsz, self.out_proj.weight.dims()[1]]),
            (past, s),
        )
    }
}

impl Mamba2 {
    /// The same model running the per-step reference recurrence (`true`) or the fast path
    /// (`false`).
    pub fn reference(mut self, reference: bool) -> Self {
        self.reference = reference;
        self
    }
}

impl SequenceModel for Mamba2 {
    type State = Mamba2State;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut x = x;
        for layer in &self.layers {
            x = x.clone()
                + layer.mixer.forward(
                    kernels::rms_norm_layer(&layer.norm, x),
                    ScanPath::of_reference(self.reference),
                );
        }
        kernels::rms_norm_layer(&self.norm, x)
    }

    fn init_state(&self, batch: usize, device: &Device) -> Mamba2State {
        Mamba2State {
            layers: self
                .layers
                .iter()
                .map(|layer| {
                    let m = &layer.mixer;
                    (
                        m.conv.init_state(batch, device),
                        Tensor::zeros([batch, m.n_heads(), m.head_dim, m.d_state], device),
                    )
                })
                .collect(),
        }
    }

    fn step(&self, x: Tensor<2>, state: Mamba2State) -> (Tensor<2>, Mamba2State) {
        let mut x = x;
        let mut layers = Vec::with_capacity(self.layers.len());
        for (layer, s) in self.layers.iter().zip(state.layers) {
            let (y, s) = layer
                .mixer
                .step(kernels::rms_norm_layer(&layer.norm, x.clone()), s);
            x = x + y;
            layers.push(s);
        }
        (
            kernels::rms_norm_layer(&self.norm, x),
            Mamba2State { layers },
        )
    }

    /// Per layer `(i + 2gn)·(k − 1)` convolution inputs and `h·p·n = i·n` state floats, whatever
    /// the length.
    fn state_size(&self, _len: usize) -> usize {
        self.layers
            .iter()
            .map(|l| {
                let m = &l.mixer;
                m.conv.channels() * (m.conv.width() - 1) + m.d_inner * m.d_state
            })
            .sum()
    }

    fn width(&self) -> Option<usize> {
        Some(self.d_model)
    }
}

/// The state-space dual, chunked (`ssd_minimal_discrete` with `Δ` folded in as the reference's
/// `mamba_chunk_scan_combined` does: `X = Δ x`, per-step log-decay `Δ A`): `y: [b, l, h, p]`,
/// without the `D` skip. Equal to [`ssd_recurrent`] up to rounding.
pub fn ssd(inputs: SsdInputs, chunk_size: usize) -> Tensor<4> {
    let SsdInputs { x, dt, a, b, c } = inputs;
    let [bsz, l, h, p] = x.dims();
    let [_, _, g, n] = b.dims();
    let r = h / g;
    let device = x.device();
    let s = chunk_size.min(l);
    let chunks = l.div_ceil(s);
    let padded = chunks * s;
    // Zeros after the end: Δ = 0 there (no decay, no input), and later positions never reach
    // earlier outputs.
    let pad = |t: Tensor<4>| -> Tensor<4> {
        if padded == l {
            return t;
        }
        let [b0, _, d2, d3] = t.dims();
        Tensor::cat(
            vec![
                t.clone(),
                Tensor::zeros([b0, padded - l, d2, d3], &t.device()),
            ],
            1,
        )
    };
    // Heads as `[g, r]`, positions as `[c, s]`.
    let x = pad(x)
        .reshape([bsz, padded, g, r, p])
        .permute([0, 2, 3, 1, 4])
        .reshape([bsz, g, r, chunks, s, p]);
    let dt = pad(dt.reshape([bsz, l, h, 1]))
        .reshape([bsz, padded, g, r])
        .permute([0, 2, 3, 1])
        .reshape([bsz, g, r, chunks, s]);
    let by_group = |t: Tensor<4>| {
        pad(t)
            .permute([0, 2, 1, 3])
            .reshape([bsz, g, 1, chunks, s, n])
    };
    let (b, c) = (by_group(b), by_group(c)); // [b, g, 1, c, s, n]
    let log_decay = dt.clone() * a.reshape([1, g, r, 1, 1]); // Δ A, [b, g, r, c, s]
    let x = x * dt.unsqueeze_dim::<6>(5); // Δ x, [b, g, r, c, s, p]
    let cumulative = log_decay.clone().cumsum(4); // [b, g, r, c, s]

    // 1. Within each chunk: y = (C Bᵀ ∘ L) X, the decay mask L = exp(segsum(Δ A)).
    let scores = c.clone().matmul(b.clone().swap_dims(4, 5)); // [b, g, 1, c, s, s]
    let y_within = (scores * segsum_exp(log_decay)).matmul(x.clone()); // [b, g, r, c, s, p]

    // 2. Each chunk's state at its end: Σ_s exp(Σ_{s<k≤end} Δ_k A) X_s B_sᵀ.
    let last = cumulative.clone().narrow(4, s - 1, 1); // [b, g, r, c, 1]
    let to_end = (last.clone() - cumulative.clone()).exp(); // [b, g, r, c, s]
    let states = x.swap_dims(4, 5).matmul(b * to_end.unsqueeze_dim::<6>(5)); // [b, g, r, c, p, n]

    // 3. Across chunks: the state entering chunk z, Σ_{y<z} exp(Σ_{y<k<z} a_k) states_y, as the
    //    reference writes it: a zero initial state prepended, one (c+1)×(c+1) segsum product.
    let chunk_decay = Tensor::cat(
        vec![
            Tensor::zeros([bsz, g, r, 1], &device),
            last.reshape([bsz, g, r, chunks]),
        ],
        3,
    )
    .reshape([bsz, g, r, 1, chunks + 1]); // [b, g, r, 1, c+1]
    let states = Tensor::cat(
        vec![
            Tensor::zeros([bsz, g, r, 1, p * n], &device),
            states.reshape([bsz, g, r, chunks, p * n]),
        ],
        3,
    )
    .reshape([bsz, g, r, 1, chunks + 1, p * n]);
    let entering = segsum_exp(chunk_decay)
        .matmul(states) // [b, g, r, 1, c+1, pn]
        .narrow(4, 0, chunks)
        .reshape([bsz, g, r, chunks, p, n]);

    // 4. The entering state's output within its chunk: exp(Σ_{k≤t} Δ_k A) · S C_t.
    let y_entering = c.matmul(entering.swap_dims(4, 5)) // [b, g, r, c, s, p]
        * cumulative.exp().unsqueeze_dim::<6>(5);

    (y_within + y_entering)
        .reshape([bsz, g, r, padded, p])
        .permute([0, 3, 1, 2, 4])
        .reshape([bsz, padded, h, p])
        .narrow(1, 0, l)
}

/// The per-step recurrence `S_t = exp(Δ_t A) S_{t−1} + Δ_t x_t B_tᵀ`, `y_t = S_t C_t`, from
/// `S_0 = 0`, in tensor operations ([`kernels::ssd_scan_reference`]): the reference [`ssd`] and
/// the host scan are checked against. `y: [b, l, h, p]`, without the `D` skip.
pub fn ssd_recurrent(inputs: SsdInputs) -> Tensor<4> {
    let SsdInputs { x, dt, a, b, c } = inputs;
    kernels::ssd_scan_reference(x, dt, a, b, c)
}

/// `exp(segsum(a))` for `a: [.., s]`: `L[.., t, u] = exp(Σ_{u<k≤t} a_k)` for `u ≤ t` (1 on the
/// diagonal), 0 above it. The stable form of the reference's `segsum`: the cumulative sum of a
/// masked repeat, not a difference of two cumulative sums.
fn segsum_exp(a: Tensor<5>) -> Tensor<6> {
    let s = a.dims()[4];
    a.unsqueeze_dim::<6>(5) // [.., s(t), 1]
        .repeat_dim(5, s) // [.., t, u] = a_t
        .tril(-1) // keep u < t
        .cumsum(4) // Σ_{u<k≤t} a_k
        .exp()
        .tril(0)
}

/// Greatest common divisor (the ladder's head width).
fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{assert_close, flat};

    fn inputs(device: &Device, [bsz, l, h, p, g, n]: [usize; 6]) -> SsdInputs {
        SsdInputs {
            x: Tensor::random([bsz, l, h, p], Distribution::Default, device).require_grad(),
            // Δ in (0, 0.5] and −A in [1, 4]: decays from about 0.14 to 1 per step.
            dt: Tensor::random([bsz, l, h], Distribution::Uniform(0.01, 0.5), device)
                .require_grad(),
            a: Tensor::random([h], Distribution::Uniform(-4.0, -1.0), device).require_grad(),
            b: Tensor::random([bsz, l, g, n], Distribution::Default, device).require_grad(),
            c: Tensor::random([bsz, l, g, n], Distribution::Default, device).require_grad(),
        }
    }

    /// Output and the gradient of every input of a fixed random projection of `y`.
    fn values_and_gradients(
        inputs: &SsdInputs,
        run: impl Fn(SsdInputs) -> Tensor<4>,
        weight: &Tensor<4>,
    ) -> Vec<Vec<f32>> {
        let y = run(inputs.clone());
        let grads = (y.clone() * weight.clone()).sum().backward();
        vec![
            flat(y),
            flat(inputs.x.grad(&grads).expect("gradient of x")),
            flat(inputs.dt.grad(&grads).expect("gradient of dt")),
            flat(inputs.a.grad(&grads).expect("gradient of A")),
            flat(inputs.b.grad(&grads).expect("gradient of B")),
            flat(inputs.c.grad(&grads).expect("gradient of C")),
        ]
    }

    #[test]
    fn chunked_dual_equals_the_recurrence_in_values_and_gradients() {
        let device = Device::flex().autodiff();
        // Lengths 1, not a multiple of the chunk, several chunks; one group and several.
        for (l, chunk, h, g) in [
            (1, 4, 2, 1),
            (7, 4, 2, 1),
            (13, 4, 4, 2),
            (16, 4, 3, 3),
            (9, 16, 2, 1),
        ] {
            device.seed(l as u64);
            let (bsz, p, n) = (2, 3, 5);
            let inputs = inputs(&device, [bsz, l, h, p, g, n]);
            let weight = Tensor::<4>::random([bsz, l, h, p], Distribution::Default, &device);
            let got = values_and_gradients(&inputs, |i| ssd(i, chunk), &weight);
            let want = values_and_gradients(&inputs, ssd_recurrent, &weight);
            assert_close(
                &["y", "dx", "ddt", "dA", "dB", "dC"],
                &got,
                &want,
                1e-4,
                &format!("l {l}, chunk {chunk}, heads {h}, groups {g}"),
            );
        }
    }

    #[test]
    fn fast_and_reference_blocks_agree() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let config = Mamba2Config::new()
            .with_d_model(16)
            .with_head_dim(8)
            .with_d_state(6)
            .with_n_groups(2)
            .with_chunk_size(4);
        let fast = config.init(&device);
        let reference = fast.clone().reference(true);
        let x = Tensor::<3>::random([2, 11, 16], Distribution::Default, &device);
        assert_close(
            &["y"],
            &[flat(fast.forward(x.clone()))],
            &[flat(reference.forward(x))],
            1e-4,
            "block",
        );
    }

    #[test]
    fn initialisation_follows_the_reference() {
        let device = Device::flex();
        device.seed(0);
        let config = Mamba2Config::new().with_d_model(64).with_head_dim(16);
        assert_eq!((config.d_inner(), config.n_heads()), (128, 8));
        let block = config.init_block(&device);
        let a = flat(block.a());
        assert!(a.iter().all(|v| (-16.0..=-1.0).contains(v)), "{a:?}");
        assert!(flat(block.d_skip.val()).iter().all(|&v| v == 1.0));
        let dt = flat(softplus(block.dt_bias.val()));
        assert!(
            dt.iter()
                .all(|&v| (0.001 * 0.999..=0.1 * 1.001).contains(&v)),
            "{dt:?}"
        );
        // in_proj: z (128), xBC (128 + 2·64), dt (8).
        assert_eq!(block.in_proj.weight.dims(), [64, 128 + 256 + 8]);
        assert_eq!(block.conv.channels(), 256);
    }

    #[test]
    fn bad_head_settings_are_errors() {
        let odd = Mamba2Config::new().with_d_model(20).with_head_dim(16);
        assert!(odd.validate().unwrap_err().to_string().contains("head_dim"));
        let groups = Mamba2Config::new().with_head_dim(64).with_n_groups(3);
        assert!(
            groups
                .validate()
                .unwrap_err()
                .to_string()
                .contains("n_groups")
        );
    }

    #[test]
    fn state_size_is_constant() {
        let model = Mamba2Config::new()
            .with_d_model(16)
            .with_head_dim(8)
            .with_d_state(4)
            .init(&Device::flex());
        // 2 layers · ((32 + 8) channels · 3 conv inputs + 32 · 4 states)
        assert_eq!(model.state_size(1), 2 * (40 * 3 + 32 * 4));
        assert_eq!(model.state_size(10_000), model.state_size(1));
    }
}
