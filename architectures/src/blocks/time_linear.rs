//! A linear map along the time axis, `Linear(L -> H)` applied to every channel, with weights shared
//! across channels or one set per channel (`individual`, as in LTSF-Linear).

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;

/// Hyperparameters of [`TimeLinear`].
#[derive(Config, Debug)]
pub struct TimeLinearConfig {
    /// Input length `L`.
    pub d_input: usize,
    /// Output length `H`.
    pub d_output: usize,
    /// Channels `c` (used when `individual`).
    pub channels: usize,
    /// One weight matrix per channel instead of one shared by all.
    #[config(default = false)]
    pub individual: bool,
    /// Initialise the weight to the constant `1 / L` (TSLib's DLinear) instead of PyTorch's
    /// default `U(-1/sqrt(L), 1/sqrt(L))`. The bias keeps the default either way.
    #[config(default = false)]
    pub mean_init: bool,
}

/// `[b, c, L] -> [b, c, H]`.
#[derive(Module, Debug)]
pub struct TimeLinear {
    /// `[L, H]` shared, or `[c, L, H]` individual.
    pub weight: Param<Tensor<3>>,
    /// `[1, H]` shared, or `[c, H]` individual.
    pub bias: Param<Tensor<2>>,
}

impl TimeLinearConfig {
    /// Build on `device`.
    pub fn init(&self, device: &Device) -> TimeLinear {
        let groups = if self.individual { self.channels } else { 1 };
        let (l, h) = (self.d_input, self.d_output);
        // PyTorch nn.Linear default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        let bound = 1.0 / (l as f64).sqrt();
        let uniform = Distribution::Uniform(-bound, bound);
        let weight = if self.mean_init {
            Tensor::full([groups, l, h], 1.0 / l as f64, device)
        } else {
            Tensor::random([groups, l, h], uniform, device)
        };
        let bias = Tensor::random([groups, h], uniform, device);
        TimeLinear {
            weight: Param::from_tensor(weight),
            bias: Param::from_tensor(bias),
        }
    }
}

impl TimeLinear {
    /// `x: [b, c, L] -> [b, c, H]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        apply(x, self.weight.val(), self.bias.val())
    }
}

/// The time map with explicit weights: `x: [b, c, L]`, `weight: [1 or c, L, H]`,
/// `bias: [1 or c, H]` -> `[b, c, H]`.
pub fn apply(x: Tensor<3>, weight: Tensor<3>, bias: Tensor<2>) -> Tensor<3> {
    let [b, c, l] = x.dims();
    let [groups, _, h] = weight.dims();
    if groups == 1 {
        let w = weight.reshape([l, h]);
        let y = x.reshape([b * c, l]).matmul(w) + bias; // [b·c, H]
        y.reshape([b, c, h])
    } else {
        debug_assert_eq!(
            groups, c,
            "individual weights for {groups} channels, got {c}"
        );
        let y = x.swap_dims(0, 1).matmul(weight); // [c, b, H]
        y.swap_dims(0, 1) + bias.unsqueeze::<3>() // [b, c, H]
    }
}
