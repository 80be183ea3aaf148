//! Pieces shared by several architectures.

pub mod causal_conv;
pub mod dropout;
pub mod revin;
pub mod time_linear;

pub use causal_conv::CausalConv1d;
pub use dropout::Dropout;
pub use revin::{RevIn, RevInConfig, RevInStats};
pub use time_linear::{TimeLinear, TimeLinearConfig};

use burn::nn::Linear;
use burn::prelude::*;

use crate::kernels;

/// How a recurrent block computes its sequence mixing in training: the same function three ways,
/// checked against each other (values and gradients) in each architecture's tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanPath {
    /// The fastest form on the device: a host kernel on the CPU backends, the chunked form
    /// elsewhere.
    Fast,
    /// The chunked (matrix-product) form in burn tensor operations, whatever the device.
    Chunked,
    /// The per-time-step recurrence in burn tensor operations: the reference.
    PerStep,
}

impl ScanPath {
    /// [`ScanPath::PerStep`] for a model built as its reference, [`ScanPath::Fast`] otherwise.
    pub fn of_reference(reference: bool) -> Self {
        if reference { Self::PerStep } else { Self::Fast }
    }
}

/// Apply `linear` to every row of `x: [b, l, i]` as one `[b·l, i] × [i, o]` product through
/// the host linear kernel ([`kernels::linear`]; burn's composite off the CPU backends). burn's
/// `Linear` on a 3-D input runs a batch of small products instead, which measured 1.3-1.6x
/// slower on a Transformer training step.
pub fn rows(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [b, l, i] = x.dims();
    let y = dense(linear, x.reshape([b * l, i])); // [b·l, o]
    let o = y.dims()[1];
    y.reshape([b, l, o])
}

/// Mamba's step-size bias: `softplus⁻¹(Δ)` for `count` step sizes `Δ = exp(U(0, 1) · (ln max −
/// ln min) + ln min)` floored at `floor` (log-uniform in `[min, max]`), so that
/// `softplus(bias) = Δ` at initialisation (Mamba's `dt_proj.bias`, Mamba-2's and Gated
/// DeltaNet's `dt_bias`).
pub fn dt_bias(count: usize, [min, max]: [f64; 2], floor: f64, device: &Device) -> Tensor<1> {
    let dt = Tensor::<1>::random([count], burn::tensor::Distribution::Default, device)
        .mul_scalar(max.ln() - min.ln())
        .add_scalar(min.ln())
        .exp()
        .clamp_min(floor);
    dt.clone() + (dt.neg().exp().neg() + 1.0).log() // dt + log(1 − e^−dt)
}

/// `linear` on `x: [m, i]`: the function of `Linear::forward`, run by [`kernels::linear`].
pub fn dense(linear: &Linear, x: Tensor<2>) -> Tensor<2> {
    kernels::linear(
        x,
        linear.weight.val(),
        linear.bias.as_ref().map(|b| b.val()),
    )
}
