//! Depthwise causal convolution over time as one host pass, optionally followed by SiLU (Mamba's
//! `conv1d` then `act`; Griffin's convolution has no activation):
//!
//! `pre_t = bias + Σ_j w[j] ⊙ x_{t − (k − 1) + j}` (zeros before the start), `y_t = act(pre_t)`,
//!
//! with `x, y: [b, l, c]`, `w: [k, c]`, `bias: [c]`. The backward recomputes `pre` from `x`
//! (nothing but the inputs is kept) and returns `dx_t = Σ_j w[j] ⊙ dpre_{t + (k − 1) − j}`,
//! `dw[j] = Σ_{b, t} dpre_t ⊙ x_{t − (k − 1) + j}` and `dbias = Σ_{b, t} dpre_t`.
//!
//! As burn tensor operations the convolution is a zero-padded concatenation, `k` slices, `k`
//! products and `k` sums forward, and a zero-filled slice assignment per tap backward: ~30
//! full-size passes per block, measured ~7% of a Mamba training step for the forward alone.

// burn-ndarray is deprecated upstream; it stays a selectable backend (the design card names it).
#![allow(deprecated)]

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, NdArray, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::TensorData;

use super::activation::Activation;
use super::{
    HostBackward, autodiff_op, axpy, host_data, on_host_backend, parallel, sum_parts, values,
};

/// `act(conv(x))`, `x: [b, l, c]`, `weight: [k, c]` (tap `k − 1` multiplies the current input),
/// `bias: [c]`; `silu` applies SiLU to the output. Host kernel on the CPU backends,
/// [`causal_conv1d_reference`] elsewhere.
pub fn causal_conv1d(x: Tensor<3>, weight: Tensor<2>, bias: Tensor<1>, silu: bool) -> Tensor<3> {
    if !on_host_backend(&x.device()) {
        return causal_conv1d_reference(x, weight, bias, silu);
    }
    Tensor::from_dispatch(<Dispatch as ConvBackend>::causal_conv1d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        usize::from(silu),
    ))
}

/// The same function from burn tensor operations (the test reference, and the path on other
/// backends).
pub fn causal_conv1d_reference(
    x: Tensor<3>,
    weight: Tensor<2>,
    bias: Tensor<1>,
    silu: bool,
) -> Tensor<3> {
    let [b, l, c] = x.dims();
    let k = weight.dims()[0];
    let padded = if k > 1 {
        Tensor::cat(vec![Tensor::zeros([b, k - 1, c], &x.device()), x], 1) // [b, l + k − 1, c]
    } else {
        x
    };
    let mut y = bias.reshape([1, 1, c]);
    for tap in 0..k {
        let w = weight.clone().narrow(0, tap, 1).reshape([1, 1, c]);
        y = y + padded.clone().narrow(1, tap, l) * w;
    }
    if silu {
        burn::tensor::activation::silu(y)
    } else {
        y
    }
}

/// Backend extension: the convolution on host memory.
#[backend_extension(NdArray, Flex, Autodiff)]
pub trait ConvBackend: Backend {
    /// Forward; `silu` is 0 or 1.
    fn causal_conv1d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        silu: usize,
    ) -> FloatTensor<Self> {
        let device = x.device();
        let [b, l, c] = x.shape().dims::<3>();
        let [x, weight, bias] = [x, weight, bias].map(host_data::<Self>);
        let (x, weight, bias) = (values(&x), values(&weight), values(&bias));
        let mut y = vec![0.0f32; b * l * c];
        let items = y.chunks_mut(l * c).zip(x.chunks_exact(l * c)).collect();
        parallel(items, |(y, x)| {
            pulp::Arch::new().dispatch(ForwardSequence {
                x,
                weight,
                bias,
                silu: silu == 1,
                y,
            });
        });
        Self::float_from_data(TensorData::new(y, [b, l, c]), &device)
    }
}

impl ConvBackend for Flex {}
impl ConvBackend for NdArray {}

/// `pre_t` (before the activation) into `out: [c]`.
#[inline(always)]
fn pre_activation(x: &[f32], weight: &[f32], bias: &[f32], t: usize, out: &mut [f32]) {
    let c = bias.len();
    let k = weight.len() / c;
    out.copy_from_slice(bias);
    // Tap j reads x_{t − (k − 1) + j}; taps before the start read zeros.
    for j in (k - 1).saturating_sub(t)..k {
        let src = t + j + 1 - k;
        axpy_lanes(&weight[j * c..][..c], &x[src * c..][..c], out);
    }
}

/// `out += w ⊙ x`, element-wise.
#[inline(always)]
fn axpy_lanes(w: &[f32], x: &[f32], out: &mut [f32]) {
    let n = out.len();
    let (w, x) = (&w[..n], &x[..n]);
    for i in 0..n {
        out[i] += w[i] * x[i];
    }
}

/// The forward over one sequence `x: [l, c]` as a pulp SIMD operation.
struct ForwardSequence<'a> {
    x: &'a [f32],
    weight: &'a [f32],
    bias: &'a [f32],
    silu: bool,
    y: &'a mut [f32],
}

impl pulp::WithSimd for ForwardSequence<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let c = self.bias.len();
        for (t, y) in self.y.chunks_exact_mut(c).enumerate() {
            pre_activation(self.x, self.weight, self.bias, t, y);
            if self.silu {
                for v in y.iter_mut() {
                    *v = Activation::Silu.value(*v);
                }
            }
        }
    }
}

/// The backward over one sequence as a pulp SIMD operation: `dx: [l, c]`, and this sequence's
/// share of `dw: [k, c]` and `dbias: [c]`.
struct BackwardSequence<'a> {
    x: &'a [f32],
    weight: &'a [f32],
    bias: &'a [f32],
    silu: bool,
    dy: &'a [f32],
    dx: &'a mut [f32],
    dw: &'a mut [f32],
    dbias: &'a mut [f32],
}

impl pulp::WithSimd for BackwardSequence<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let c = self.bias.len();
        let k = self.weight.len() / c;
        let l = self.dy.len() / c;
        // dL/dpre for every position, through the activation.
        let mut dpre = self.dy.to_vec();
        if self.silu {
            let mut pre = vec![0.0f32; c];
            for t in 0..l {
                pre_activation(self.x, self.weight, self.bias, t, &mut pre);
                let row = &mut dpre[t * c..][..c];
                for i in 0..c {
                    row[i] *= Activation::Silu.derivative(pre[i]);
                }
            }
        }
        for t in 0..l {
            let row = &dpre[t * c..][..c];
            axpy(1.0, row, self.dbias);
            // pre_t reads x_{t − (k − 1) + j} with weight j: the same pairs give dx and dw.
            for j in (k - 1).saturating_sub(t)..k {
                let src = t + j + 1 - k;
                axpy_lanes(
                    &self.weight[j * c..][..c],
                    row,
                    &mut self.dx[src * c..][..c],
                );
                axpy_lanes(&self.x[src * c..][..c], row, &mut self.dw[j * c..][..c]);
            }
        }
    }
}

#[derive(Debug)]
struct ConvBackward;

impl HostBackward<3> for ConvBackward {
    /// The inputs and the activation flag.
    type State<B: Backend> = ([FloatTensor<B>; 3], usize);

    /// `dx`, `dW` and `dbias`.
    fn backward<B: Backend>(
        state: Self::State<B>,
        dy: FloatTensor<B>,
        _: [bool; 3],
    ) -> [Option<FloatTensor<B>>; 3] {
        let ([x, weight, bias], silu) = state;
        let device = x.device();
        let [b, l, c] = x.shape().dims::<3>();
        let k = weight.shape().dims::<2>()[0];
        let [x, weight, bias, dy] = [x, weight, bias, dy].map(host_data::<B>);
        let (x, weight, bias, dy) = (values(&x), values(&weight), values(&bias), values(&dy));
        let mut dx = vec![0.0f32; b * l * c];
        let (mut dw_parts, mut dbias_parts) = (vec![0.0f32; b * k * c], vec![0.0f32; b * c]);
        let items = dx
            .chunks_mut(l * c)
            .zip(dw_parts.chunks_mut(k * c).zip(dbias_parts.chunks_mut(c)))
            .enumerate()
            .collect();
        parallel(items, |(index, (dx, (dw, dbias)))| {
            pulp::Arch::new().dispatch(BackwardSequence {
                x: &x[index * l * c..][..l * c],
                weight,
                bias,
                silu: silu == 1,
                dy: &dy[index * l * c..][..l * c],
                dx,
                dw,
                dbias,
            });
        });
        let tensor = |values: Vec<f32>, shape: Vec<usize>| {
            B::float_from_data(TensorData::new(values, shape), &device)
        };
        [
            tensor(dx, vec![b, l, c]),
            tensor(sum_parts(&dw_parts, k * c), vec![k, c]),
            tensor(sum_parts(&dbias_parts, c), vec![c]),
        ]
        .map(Some)
    }
}

impl<B: Backend + ConvBackend, C: CheckpointStrategy> ConvBackend for Autodiff<B, C> {
    fn causal_conv1d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        silu: usize,
    ) -> FloatTensor<Self> {
        autodiff_op::<ConvBackward, B, C, 3>(
            [x, weight, bias],
            |inputs| {
                let [x, weight, bias] = inputs.clone();
                (B::causal_conv1d(x, weight, bias, silu), (inputs, silu))
            },
            |[x, weight, bias]| B::causal_conv1d(x, weight, bias, silu),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{assert_close, flat};
    use burn::tensor::Distribution;

    /// Host kernel against the tensor-op reference: output and the gradients of x, w, bias.
    fn check(b: usize, l: usize, c: usize, k: usize, silu: bool) {
        let device = Device::flex().autodiff();
        device.seed((l * 100 + c * 10 + k) as u64);
        let normal = Distribution::Normal(0.0, 1.0);
        let x = Tensor::<3>::random([b, l, c], normal, &device);
        let weight = Tensor::<2>::random([k, c], normal, &device);
        let bias = Tensor::<1>::random([c], normal, &device);
        let weights = Tensor::<3>::random([b, l, c], normal, &device);
        let run = |fused: bool| {
            let (x, weight, bias) = (
                x.clone().require_grad(),
                weight.clone().require_grad(),
                bias.clone().require_grad(),
            );
            let f = if fused {
                causal_conv1d
            } else {
                causal_conv1d_reference
            };
            let y = f(x.clone(), weight.clone(), bias.clone(), silu);
            let grads = (y.clone() * weights.clone()).sum().backward();
            [
                flat(y),
                flat(x.grad(&grads).unwrap()),
                flat(weight.grad(&grads).unwrap()),
                flat(bias.grad(&grads).unwrap()),
            ]
        };
        let (fused, reference) = (run(true), run(false));
        let context = format!("b{b} l{l} c{c} k{k} silu {silu}");
        assert_close(
            &["y", "dx", "dw", "dbias"],
            &fused,
            &reference,
            1e-5,
            &context,
        );
    }

    #[test]
    fn host_kernel_equals_reference_values_and_gradients() {
        check(2, 9, 5, 4, true);
        check(3, 2, 37, 4, false); // shorter than the kernel
        check(1, 17, 16, 1, true); // width 1: no past
        check(2, 33, 20, 3, false);
    }
}
