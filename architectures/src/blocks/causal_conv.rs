//! Depthwise causal 1-D convolution over time, as Mamba (`conv1d` with `groups = d_inner`,
//! left padding `k − 1`) and Griffin (recurrentgemma `Conv1D`, temporal width 4) use it:
//! `y_t = bias + Σ_j w[j] ⊙ x_{t − (k − 1) + j}`, zeros before the start. Tap `k − 1` multiplies
//! the current input, as in both references. `step` keeps the last `k − 1` inputs.
//!
//! Shapes: b batch, l length, c channels, k width.

use burn::module::Param;
use burn::prelude::*;

use crate::kernels;

/// Depthwise causal convolution with weight `[k, c]` and bias `[c]` (or none).
#[derive(Module, Debug)]
pub struct CausalConv1d {
    /// `[k, c]`: tap `k − 1` multiplies the current input.
    weight: Param<Tensor<2>>,
    /// `[c]`, or `None` for a convolution without bias (Gated DeltaNet's `ShortConvolution`).
    bias: Option<Param<Tensor<1>>>,
}

impl CausalConv1d {
    /// From initial weight `[k, c]` (k ≥ 1) and bias `[c]`.
    pub fn new(weight: Tensor<2>, bias: Tensor<1>) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            bias: Some(Param::from_tensor(bias)),
        }
    }

    /// From initial weight `[k, c]` (k ≥ 1), without bias.
    pub fn without_bias(weight: Tensor<2>) -> Self {
        Self {
            weight: Param::from_tensor(weight),
            bias: None,
        }
    }

    /// The bias, zeros when there is none (a constant: no parameter, no gradient).
    fn bias(&self) -> Tensor<1> {
        match &self.bias {
            Some(bias) => bias.val(),
            None => Tensor::zeros([self.channels()], &self.weight.device()),
        }
    }

    /// Width `k`.
    pub fn width(&self) -> usize {
        self.weight.dims()[0]
    }

    /// Channels `c`.
    pub fn channels(&self) -> usize {
        self.weight.dims()[1]
    }

    /// `x: [b, l, c] -> [b, l, c]` (the fused host kernel, [`kernels::causal_conv1d`]).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        kernels::causal_conv1d(x, self.weight.val(), self.bias(), false)
    }

    /// `SiLU(conv(x))`, one fused pass (Mamba's convolution and activation).
    pub fn forward_silu(&self, x: Tensor<3>) -> Tensor<3> {
        kernels::causal_conv1d(x, self.weight.val(), self.bias(), true)
    }

    /// The last `k − 1` inputs before any position: zeros, `[b, k − 1, c]` (`None` when k = 1).
    pub fn init_state(&self, batch: usize, device: &Device) -> Option<Tensor<3>> {
        let k = self.width();
        (k > 1).then(|| Tensor::zeros([batch, k - 1, self.channels()], device))
    }

    /// One position `x: [b, c]` with the previous `k − 1` inputs; returns the output `[b, c]` and
    /// the updated inputs.
    pub fn step(&self, x: Tensor<2>, past: Option<Tensor<3>>) -> (Tensor<2>, Option<Tensor<3>>) {
        let [b, c] = x.dims();
        let k = self.width();
        let x = x.reshape([b, 1, c]);
        let window = match past {
            Some(past) => Tensor::cat(vec![past, x], 1), // [b, k, c]
            None => x,
        };
        let y = (window.clone() * self.weight.val().reshape([1, k, c]))
            .sum_dim(1)
            .reshape([b, c])
            + self.bias().reshape([1, c]);
        (y, (k > 1).then(|| window.narrow(1, 1, k - 1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{flat, max_rel};
    use burn::tensor::{Distribution, TensorData};

    #[test]
    fn forward_is_the_causal_sum_and_step_agrees() {
        let device = Device::flex();
        // c = 1, k = 3, weights [1, 10, 100], bias 0.5: y_t = 0.5 + x_{t−2} + 10 x_{t−1} + 100 x_t.
        let conv = CausalConv1d::new(
            Tensor::from_data(TensorData::new(vec![1.0f32, 10.0, 100.0], [3, 1]), &device),
            Tensor::from_data(TensorData::new(vec![0.5f32], [1]), &device),
        );
        let x = Tensor::<3>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 4, 1]),
            &device,
        );
        assert_eq!(flat(conv.forward(x)), vec![100.5, 210.5, 321.5, 432.5]);

        device.seed(3);
        let conv = CausalConv1d::new(
            Tensor::random([4, 5], Distribution::Default, &device),
            Tensor::random([5], Distribution::Default, &device),
        );
        let x = Tensor::<3>::random([2, 7, 5], Distribution::Default, &device);
        let want = flat(conv.forward(x.clone()));
        let mut past = conv.init_state(2, &device);
        let mut steps = Vec::new();
        for t in 0..7 {
            let (y, next) = conv.step(x.clone().narrow(1, t, 1).reshape([2, 5]), past);
            past = next;
            steps.push(y.unsqueeze_dim::<3>(1));
        }
        assert!(max_rel(&flat(Tensor::cat(steps, 1)), &want) < 1e-6);
    }
}
