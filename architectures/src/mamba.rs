//! Mamba-1 backbone: residual blocks `x + Mamba(RMSNorm(x))` and a final RMSNorm (Gu & Dao 2023,
//! <https://arxiv.org/abs/2312.00752>; reference state-spaces/mamba `modules/mamba_simple.py`
//! class `Mamba`, `ops/selective_scan_interface.py::selective_scan_ref`, and the block order of
//! `models/mixer_seq_simple.py`; reference/architectures.md §1).
//!
//! One Mamba block, `x: [b, l, d] -> [b, l, d]`, with `d_inner = expand · d`, `N = d_state`,
//! `R = dt_rank`:
//!
//! 1. `[x, z] = in_proj(x)` (no bias), `[b, l, 2·d_inner]`;
//! 2. `x = SiLU(conv(x))`, a causal depthwise convolution of width `d_conv` with bias;
//! 3. `[dt, B, C] = x_proj(x)` (no bias), widths `R, N, N`;
//! 4. `Δ = softplus(dt_proj(dt))` (its bias is the dt bias, added before the softplus as the
//!    reference scan does with `delta_bias`);
//! 5. `A = −exp(A_log)`, `[d_inner, N]`;
//! 6. `y = selective_scan(x, Δ, A, B, C) + D ⊙ x`, then `y ⊙ SiLU(z)` (steps 4–6 are one
//!    fused function, the reference's `selective_scan_fn` with `delta_softplus`, which also
//!    forms `dt_proj`'s product, as the reference's `mamba_inner_fn` keeps it inside its one
//!    autograd function);
//! 7. `out_proj(y)` (no bias).
//!
//! Initialisation as the reference: `A_log = log(1..N)` per channel (S4D-real), `D = 1`,
//! `dt_proj.weight ~ U(±R^-½)`, `dt_proj.bias = softplus⁻¹(dt)` with `dt` log-uniform in
//! `[dt_min, dt_max]` floored at `dt_init_floor`; PyTorch's default (Kaiming-uniform) for the
//! other weights and the convolution. The LM wrapper's `out_proj` rescaling is not applied: this is
//! a backbone behind the forecasting adapter, not `MambaLMHeadModel`. `A_log`, `D` and the dt bias
//! would get no weight decay; archzoo trains with Adam without weight decay, so nothing does.
//!
//! `forward` runs the fused scan function ([`kernels::selective_scan_fn`]) unless
//! [`Mamba::reference`] asks for the per-step reference (tests, benchmarks); `step` keeps the last `d_conv − 1` inputs of the
//! convolution and the `[b, d_inner, N]` SSM state per layer, O(1) per token.
//!
//! Shapes: b batch, l length, d d_model, i d_inner, n d_state, r dt_rank, k d_conv.

use burn::module::Param;
use burn::nn::{Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};

use crate::blocks::{CausalConv1d, dt_bias, rows};
use crate::error::ConfigError;
use crate::forecast_adapter::{Backbone, BackboneConfig, Patching};
use crate::kernels::{self, DeltaInput, ScanInputs, silu, softplus};
use crate::options::{ModelOption, ModelOptions};
use crate::sequence_model::SequenceModel;

/// Hyperparameters of a [`Mamba`] backbone.
#[derive(Config, Debug)]
pub struct MambaConfig {
    /// Width `d` (TSLib's MambaSimple ETTh1 script: 128).
    #[config(default = 128)]
    pub d_model: usize,
    /// Residual blocks.
    #[config(default = 2)]
    pub n_layers: usize,
    /// SSM state size `N`.
    #[config(default = 16)]
    pub d_state: usize,
    /// `d_inner = expand · d_model`.
    #[config(default = 2)]
    pub expand: usize,
    /// Width of the causal depthwise convolution.
    #[config(default = 4)]
    pub d_conv: usize,
    /// Rank of the Δ projection; `None` is the reference's `ceil(d_model / 16)`.
    #[config(default = "None")]
    pub dt_rank: Option<usize>,
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

/// The registry entry: Mamba behind the forecasting adapter.
pub struct MambaSpec;

impl Backbone for MambaSpec {
    type Config = MambaConfig;

    const ABOUT: &'static str =
        "Mamba-1 selective SSM blocks over patches (fused scan; same adapter)";
    const OPTIONS: &'static [ModelOption] = &[
        ModelOption::DModel,
        ModelOption::Layers,
        ModelOption::DState,
        ModelOption::Expand,
        ModelOption::Dropout,
    ];

    /// Mamba has no dropout of its own: `--dropout` is the adapter head's.
    fn configure(
        options: &ModelOptions,
        patching: &mut Patching,
    ) -> Result<MambaConfig, ConfigError> {
        patching.head_dropout = options.dropout.unwrap_or(patching.head_dropout);
        let config = MambaConfig::new();
        Ok(MambaConfig {
            d_model: options.d_model.unwrap_or(config.d_model),
            n_layers: options.layers.unwrap_or(config.n_layers),
            d_state: options.d_state.unwrap_or(config.d_state),
            expand: options.expand.unwrap_or(config.expand),
            ..config
        })
    }
}

impl BackboneConfig for MambaConfig {
    type Model = Mamba;

    fn d_model(&self) -> usize {
        self.d_model
    }

    /// Forward FLOPs over one sequence of `tokens` positions (see [`crate::flops`]). Per block
    /// and token, with `i = d_inner`, `n = d_state`, `r = dt_rank`, `k = d_conv`: the projections
    /// `2·d·2i` (in) `+ 2·i·(r + 2n)` (x) `+ 2·r·i` (dt) `+ 2·i·d` (out), the convolution `2·k·i`,
    /// and the selective scan `8·i·n` (per state: `Δ·A`, its exponential, the decay product, the
    /// input term `Δu·B` and its add, `C·h` and its add).
    fn forward_flops(&self, tokens: usize) -> u64 {
        let (d, i, n, r, k) = (
            self.d_model as u64,
            self.d_inner() as u64,
            self.d_state as u64,
            self.rank() as u64,
            self.d_conv as u64,
        );
        let per_token =
            2 * d * 2 * i + 2 * i * (r + 2 * n) + 2 * r * i + 2 * i * d + 2 * k * i + 8 * i * n;
        self.n_layers as u64 * tokens as u64 * per_token
    }

    /// Check ranges before building.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let sizes = [
            ("d_model", self.d_model),
            ("layers", self.n_layers),
            ("d_state", self.d_state),
            ("expand", self.expand),
            ("d_conv", self.d_conv),
            ("dt_rank", self.rank()),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return invalid(format!("{name} must be positive"));
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
    fn init(&self, device: &Device) -> Mamba {
        if let Err(e) = self.validate() {
            panic!("invalid MambaConfig: {e}");
        }
        Mamba {
            layers: (0..self.n_layers)
                .map(|_| MambaLayer {
                    norm: RmsNormConfig::new(self.d_model).init(device),
                    mixer: self.init_block(device),
                })
                .collect(),
            norm: RmsNormConfig::new(self.d_model).init(device),
            d_model: self.d_model,
            reference_scan: false,
        }
    }
}

impl MambaConfig {
    /// `d_inner = expand · d_model`.
    pub fn d_inner(&self) -> usize {
        self.expand * self.d_model
    }

    /// `dt_rank`, resolved.
    pub fn rank(&self) -> usize {
        self.dt_rank.unwrap_or(self.d_model.div_ceil(16))
    }

    /// One Mamba block (the mixer) on its own, as the benchmarks time it.
    pub fn init_block(&self, device: &Device) -> MambaBlock {
        let (d, i, n, r, k) = (
            self.d_model,
            self.d_inner(),
            self.d_state,
            self.rank(),
            self.d_conv,
        );
        // PyTorch Conv1d default for a depthwise kernel: U(±1/sqrt(fan_in)), fan_in = k.
        let conv_bound = 1.0 / (k as f64).sqrt();
        let dt_bound = 1.0 / (r as f64).sqrt();
        let inv_softplus_dt = dt_bias(i, [self.dt_min, self.dt_max], self.dt_init_floor, device);
        let s4d_real: Vec<f32> = (0..i)
            .flat_map(|_| (1..=n).map(|v| (v as f32).ln()))
            .collect();
        let a_log = Tensor::<2>::from_data(TensorData::new(s4d_real, [i, n]), device); // [i, n]
        let mut dt_proj = LinearConfig::new(r, i).init(device);
        dt_proj.weight = Param::from_tensor(Tensor::random(
            [r, i],
            Distribution::Uniform(-dt_bound, dt_bound),
            device,
        ));
        dt_proj.bias = Some(Param::from_tensor(inv_softplus_dt));
        MambaBlock {
            in_proj: LinearConfig::new(d, 2 * i).with_bias(false).init(device),
            conv: CausalConv1d::new(
                Tensor::random(
                    [k, i],
                    Distribution::Uniform(-conv_bound, conv_bound),
                    device,
                ),
                Tensor::random([i], Distribution::Uniform(-conv_bound, conv_bound), device),
            ),
            x_proj: LinearConfig::new(i, r + 2 * n)
                .with_bias(false)
                .init(device),
            dt_proj,
            a_log: Param::from_tensor(a_log),
            d_skip: Param::from_tensor(Tensor::ones([i], device)),
            out_proj: LinearConfig::new(i, d).with_bias(false).init(device),
            d_inner: i,
            d_state: n,
            dt_rank: r,
        }
    }
}

/// One Mamba block (the mixer).
#[derive(Module, Debug)]
pub struct MambaBlock {
    /// `d -> 2i`: the scan input `x` and the gate `z`.
    in_proj: Linear,
    /// Depthwise causal convolution, width `k`, over the scan input.
    conv: CausalConv1d,
    /// `i -> r + 2n`: Δ's low-rank input, `B`, `C`.
    x_proj: Linear,
    /// `r -> i`, bias = the dt bias.
    dt_proj: Linear,
    /// `[i, n]`, `A = −exp(A_log)`.
    a_log: Param<Tensor<2>>,
    /// `[i]`, the skip `D`.
    d_skip: Param<Tensor<1>>,
    /// `i -> d`.
    out_proj: Linear,
    d_inner: usize,
    d_state: usize,
    dt_rank: usize,
}

/// Pre-norm residual layer: `x + mixer(RMSNorm(x))` (burn's `RmsNorm` module, run by the fused
/// [`kernels::rms_norm`]).
#[derive(Module, Debug)]
pub struct MambaLayer {
    norm: RmsNorm,
    mixer: MambaBlock,
}

/// Mamba backbone, `[b, l, d] -> [b, l, d]`.
#[derive(Module, Debug)]
pub struct Mamba {
    layers: Vec<MambaLayer>,
    /// Final normalisation.
    norm: RmsNorm,
    d_model: usize,
    reference_scan: bool,
}

/// One layer's state: the convolution's last `k − 1` inputs `[b, k − 1, i]` (`None` when
/// `k = 1`) and the SSM state `[b, i, n]`.
pub type MambaLayerState = (Option<Tensor<3>>, Tensor<3>);

/// Recurrent state: one [`MambaLayerState`] per layer.
#[derive(Clone, Debug)]
pub struct MambaState {
    /// One `(conv inputs, ssm state)` per layer.
    pub layers: Vec<MambaLayerState>,
}

impl MambaBlock {
    /// `A = −exp(A_log)`, `[i, n]`.
    fn a(&self) -> Tensor<2> {
        self.a_log.val().exp().neg()
    }

    /// Δ, B, C from the convolved input `x: [b, l, i]`: `[b, l, i]`, `[b, l, n]`, `[b, l, n]`.
    fn selection(&self, x: Tensor<3>) -> [Tensor<3>; 3] {
        let (r, n) = (self.dt_rank, self.d_state);
        let x_dbl = rows(&self.x_proj, x); // [b, l, r + 2n]
        let dt = x_dbl.clone().narrow(2, 0, r);
        let delta = softplus(rows(&self.dt_proj, dt)); // [b, l, i]
        [
            delta,
            x_dbl.clone().narrow(2, r, n),
            x_dbl.narrow(2, r + n, n),
        ]
    }

    /// The block on `x: [b, l, d]`, with the reference or the fused scan.
    pub fn forward(&self, x: Tensor<3>, reference_scan: bool) -> Tensor<3> {
        let (i, r, n) = (self.d_inner, self.dt_rank, self.d_state);
        // in_proj as two products with the halves of its weight `[d, 2i]`: slicing the small
        // weight instead of the `[b, l, 2i]` output spares two strided copies forward and two
        // zero-filled slice assignments backward.
        let [b, l, d] = x.dims();
        let x = x.reshape([b * l, d]);
        let in_weight = self.in_proj.weight.val(); // [d, 2i]
        let half = |start| {
            kernels::linear(x.clone(), in_weight.clone().narrow(1, start, i), None)
                .reshape([b, l, i])
        };
        let (x, z) = (half(0), half(i)); // [b, l, i] each
        let x = self.conv.forward_silu(x); // [b, l, i]
        let x_dbl = rows(&self.x_proj, x.clone()); // [b, l, r + 2n]
        // dt_proj without its bias runs inside the scan function (Δ = dt · W never exists as a
        // tensor), which adds the bias before the softplus, as the reference does with
        // `delta_bias`.
        let dt = x_dbl.clone().narrow(2, 0, r); // [b, l, r]
        let delta_bias = self
            .dt_proj
            .bias
            .as_ref()
            .expect("dt_proj has the dt bias")
            .val();
        let scan = if reference_scan {
            kernels::selective_scan_fn_reference
        } else {
            kernels::selective_scan_fn
        };
        // y = (scan(x, softplus(dt·W + bias), A, B, C) + D ⊙ x) ⊙ SiLU(z)
        let y = scan(ScanInputs {
            u: x,
            delta: DeltaInput::LowRank {
                dt_low: dt,
                dt_weight: self.dt_proj.weight.val(), // [r, i]
            },
            a: self.a(),
            b: x_dbl.clone().narrow(2, r, n),
            c: x_dbl.narrow(2, r + n, n),
            d_skip: self.d_skip.val(),
            z,
            delta_bias,
        }); // [b, l, i]
        rows(&self.out_proj, y)
    }

    /// The block's four projections alone (`in_proj`, `x_proj`, `dt_proj`, `out_proj`, chained
    /// shape-correctly, no convolution, scan or gating): the cost floor the scan is measured
    /// against in `archzoo bench mamba-block`.
    pub fn projections(&self, x: Tensor<3>) -> Tensor<3> {
        let i = self.d_inner;
        let x = rows(&self.in_proj, x).narrow(2, 0, i); // [b, l, i]
        let x_dbl = rows(&self.x_proj, x.clone()); // [b, l, r + 2n]
        let delta = rows(&self.dt_proj, x_dbl.narrow(2, 0, self.dt_rank)); // [b, l, i]
        rows(&self.out_proj, x + delta)
    }

    /// One token `x: [b, d]` with this layer's `(conv inputs, ssm state)`.
    fn step(&self, x: Tensor<2>, state: MambaLayerState) -> (Tensor<2>, MambaLayerState) {
        let [b, _] = x.dims();
        let (i, n) = (self.d_inner, self.d_state);
        let (past, h) = state;
        let xz = self.in_proj.forward(x); // [b, 2i]
        let z = xz.clone().narrow(1, i, i);
        let (conv, past) = self.conv.step(xz.narrow(1, 0, i), past);
        let x = silu(conv); // [b, i]
        let [delta, bm, cm] = self.selection(x.clone().reshape([b, 1, i]));
        let delta = delta.reshape([b, i, 1]);
        let decay = (delta.clone() * self.a().reshape([1, i, n])).exp(); // [b, i, n]
        let h = decay * h + (delta * x.clone().reshape([b, i, 1])) * bm.reshape([b, 1, n]);
        let y = (h.clone() * cm.reshape([b, 1, n]))
            .sum_dim(2)
            .reshape([b, i])
            + x * self.d_skip.val().reshape([1, i]);
        let out = self.out_proj.forward(y * silu(z));
        (out, (past, h))
    }
}

impl Mamba {
    /// The same model running the reference (`true`) or the fused (`false`) scan.
    pub fn reference(mut self, reference_scan: bool) -> Self {
        self.reference_scan = reference_scan;
        self
    }
}

impl SequenceModel for Mamba {
    type State = MambaState;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let mut x = x;
        for layer in &self.layers {
            x = x.clone()
                + layer
                    .mixer
                    .forward(kernels::rms_norm_layer(&layer.norm, x), self.reference_scan);
        }
        kernels::rms_norm_layer(&self.norm, x)
    }

    fn init_state(&self, batch: usize, device: &Device) -> MambaState {
        MambaState {
            layers: self
                .layers
                .iter()
                .map(|layer| {
                    let m = &layer.mixer;
                    (
                        m.conv.init_state(batch, device),
                        Tensor::zeros([batch, m.d_inner, m.d_state], device),
                    )
                })
                .collect(),
        }
    }

    fn step(&self, x: Tensor<2>, state: MambaState) -> (Tensor<2>, MambaState) {
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
            MambaState { layers },
        )
    }

    /// Per layer `i·(k − 1) + i·n` floats, whatever the length.
    fn state_size(&self, _len: usize) -> usize {
        self.layers
            .iter()
            .map(|l| l.mixer.d_inner * (l.mixer.conv.width() - 1 + l.mixer.d_state))
            .sum()
    }

    fn width(&self) -> Option<usize> {
        Some(self.d_model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::flat;

    #[test]
    fn initialisation_follows_the_reference() {
        let device = Device::flex();
        device.seed(0);
        let config = MambaConfig::new().with_d_model(40).with_d_state(4);
        assert_eq!((config.d_inner(), config.rank()), (80, 3)); // ceil(40 / 16) = 3
        let model = config.init(&device);
        let block = &model.layers[0].mixer;
        assert_eq!(
            flat(block.a()),
            (0..80)
                .flat_map(|_| [-1.0, -2.0, -3.0, -4.0])
                .collect::<Vec<f32>>()
        );
        assert!(flat(block.d_skip.val()).iter().all(|&v| v == 1.0));
        // softplus(dt bias) recovers dt in [dt_min, dt_max].
        let bias = block.dt_proj.bias.as_ref().unwrap().val();
        let dt = flat(softplus(bias));
        assert!(
            dt.iter()
                .all(|&v| (0.001 * 0.999..=0.1 * 1.001).contains(&v)),
            "{dt:?}"
        );
        let w = flat(block.dt_proj.weight.val());
        let bound = 1.0 / 3f32.sqrt();
        assert!(w.iter().all(|v| v.abs() <= bound));
    }

    #[test]
    fn fused_and_reference_scans_agree_in_the_block() {
        let device = Device::flex().autodiff();
        device.seed(4);
        let fused = MambaConfig::new()
            .with_d_model(16)
            .with_d_state(8)
            .init(&device);
        let reference = fused.clone().reference(true);
        let x = Tensor::<3>::random([2, 11, 16], Distribution::Default, &device);
        let (a, b) = (flat(fused.forward(x.clone())), flat(reference.forward(x)));
        let err = a
            .iter()
            .zip(&b)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err < 1e-5, "{err:e}");
    }

    #[test]
    fn state_size_is_constant() {
        let model = MambaConfig::new()
            .with_d_model(8)
            .with_n_layers(3)
            .init(&Device::flex());
        // 3 layers · 16 channels · (3 conv inputs + 16 states)
        assert_eq!(model.state_size(1), 3 * 16 * 19);
        assert_eq!(model.state_size(10_000), model.state_size(1));
    }
}
