//! RMSNorm (Zhang & Sennrich 2019, <https://arxiv.org/abs/1910.07467>) over the last axis,
//! exactly as burn's `RmsNorm` computes it:
//!
//! `y = x / sqrt(mean(x²) + ε) ⊙ γ`, with `x: [.., d]`, `γ: [d]`.
//!
//! Burn composes it from six tensor operations (square, mean, add, sqrt, divide, scale), each a
//! full pass over `x` with its own output, and its backward from a dozen more; here the forward
//! and the hand-written backward are one pass over the rows each. With `r = (mean(x²) + ε)^−½`
//! per row, `dx = r γ ⊙ dy − x r³/d · Σ_j dy_j γ_j x_j` and `dγ = Σ_rows dy ⊙ x r`; the backward
//! recomputes `r` (one dot product per row) instead of keeping it.

#![allow(deprecated)] // burn-ndarray is deprecated upstream; it stays a selectable backend.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, NdArray, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::TensorData;

use super::{
    HostBackward, LANES, autodiff_op, dot, host_data, on_host_backend, parallel, sum_parts, values,
};

/// Rows per parallel task; fixed, so `dγ`'s partial sums (one per task, added in task order) do
/// not depend on the thread count.
const ROWS: usize = 64;

/// `x / sqrt(mean(x²) + epsilon) ⊙ gamma` over the last axis (burn's `RmsNorm::forward` with
/// `gamma` its scale): one host kernel on the CPU backends, [`rms_norm_reference`] elsewhere.
pub fn rms_norm<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, epsilon: f64) -> Tensor<D> {
    if !on_host_backend(&x.device()) {
        return rms_norm_reference(x, gamma, epsilon);
    }
    Tensor::from_dispatch(<Dispatch as RmsNormBackend>::rms_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        epsilon,
    ))
}

/// [`rms_norm`] with the scale and ε of a `burn::nn::RmsNorm`: the same function as its
/// `forward`, so models keep burn's module (parameters, init, records) and run this kernel.
pub fn rms_norm_layer<const D: usize>(norm: &burn::nn::RmsNorm, x: Tensor<D>) -> Tensor<D> {
    rms_norm(x, norm.gamma.val(), norm.epsilon)
}

/// The same function from burn tensor operations, as `burn::nn::RmsNorm` writes it (the test
/// reference).
pub fn rms_norm_reference<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    let rms = (x.clone().square().mean_dim(D - 1) + epsilon).sqrt();
    (x / rms) * gamma.unsqueeze()
}

/// Backend extension: [`rms_norm`] on host memory.
#[backend_extension(NdArray, Flex, Autodiff)]
pub trait RmsNormBackend: Backend {
    /// Forward only (inference); see [`rms_norm`].
    fn rms_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        forward_host::<Self>(x, gamma, epsilon)
    }
}

impl RmsNormBackend for Flex {}
impl RmsNormBackend for NdArray {}

/// `1 / sqrt(mean(x²) + ε)` of one row.
#[inline(always)]
fn inverse_rms(x: &[f32], epsilon: f32) -> f32 {
    1.0 / (dot(x, x) / x.len() as f32 + epsilon).sqrt()
}

/// The forward over a group of rows as a pulp SIMD operation.
struct ForwardRows<'a> {
    d: usize,
    epsilon: f32,
    gamma: &'a [f32],
    x: &'a [f32],
    y: &'a mut [f32],
}

impl pulp::WithSimd for ForwardRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let d = self.d;
        let gamma = &self.gamma[..d];
        for (x, y) in self.x.chunks_exact(d).zip(self.y.chunks_exact_mut(d)) {
            let r = inverse_rms(x, self.epsilon);
            let y = &mut y[..d];
            for j in 0..d {
                y[j] = x[j] * r * gamma[j];
            }
        }
    }
}

fn forward_host<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    epsilon: f64,
) -> FloatTensor<B> {
    let (device, shape) = (x.device(), x.shape());
    let d = gamma.shape().num_elements();
    let (x, gamma) = (host_data::<B>(x), host_data::<B>(gamma));
    let (x, gamma) = (values(&x), values(&gamma));
    let mut y = vec![0.0f32; x.len()];
    let items = y.chunks_mut(ROWS * d).zip(x.chunks(ROWS * d)).collect();
    parallel(items, |(y, x)| {
        pulp::Arch::new().dispatch(ForwardRows {
            d,
            epsilon: epsilon as f32,
            gamma,
            x,
            y,
        });
    });
    B::float_from_data(TensorData::new(y, shape), &device)
}

/// The backward over a group of rows as a pulp SIMD operation: `dx` and this group's share of
/// `dγ`.
struct BackwardRows<'a> {
    d: usize,
    epsilon: f32,
    gamma: &'a [f32],
    x: &'a [f32],
    dy: &'a [f32],
    dx: &'a mut [f32],
    dgamma: &'a mut [f32],
}

impl pulp::WithSimd for BackwardRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let d = self.d;
        let (gamma, dgamma) = (&self.gamma[..d], &mut self.dgamma[..d]);
        let rows = self.x.chunks_exact(d).zip(self.dy.chunks_exact(d));
        for ((x, dy), dx) in rows.zip(self.dx.chunks_exact_mut(d)) {
            let (x, dy, dx) = (&x[..d], &dy[..d], &mut dx[..d]);
            let r = inverse_rms(x, self.epsilon);
            // Σ_j dy_j γ_j x_j over 16 partial sums, as `dot`.
            let full = d / LANES * LANES;
            let mut partial = [0.0f32; LANES];
            for start in (0..full).step_by(LANES) {
                let (dy, gamma) = (&dy[start..][..LANES], &gamma[start..][..LANES]);
                let x = &x[start..][..LANES];
                for lane in 0..LANES {
                    partial[lane] += dy[lane] * gamma[lane] * x[lane];
                }
            }
            let mut total = 0.0f32;
            for j in full..d {
                total += dy[j] * gamma[j] * x[j];
            }
            for &p in &partial {
                total += p;
            }
            let coefficient = r * r * r * total / d as f32;
            for j in 0..d {
                dx[j] = r * gamma[j] * dy[j] - x[j] * coefficient;
                dgamma[j] += dy[j] * x[j] * r;
            }
        }
    }
}

/// What the backward needs: the inputs (the per-row scale is recomputed).
#[derive(Clone, Debug)]
struct NormState<B: Backend> {
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    epsilon: f64,
}

#[derive(Debug)]
struct RmsNormBackward;

impl HostBackward<2> for RmsNormBackward {
    type State<B: Backend> = NormState<B>;

    /// `dx` and `dγ`.
    fn backward<B: Backend>(
        state: NormState<B>,
        dy: FloatTensor<B>,
        _: [bool; 2],
    ) -> [Option<FloatTensor<B>>; 2] {
        let (device, shape) = (state.x.device(), state.x.shape());
        let d = state.gamma.shape().num_elements();
        let [x, gamma, dy] = [state.x, state.gamma, dy].map(host_data::<B>);
        let (x, gamma, dy) = (values(&x), values(&gamma), values(&dy));
        let mut dx = vec![0.0f32; x.len()];
        let tasks = x.len().div_ceil(ROWS * d);
        let mut dgamma_parts = vec![0.0f32; tasks * d];
        let items = dx
            .chunks_mut(ROWS * d)
            .zip(x.chunks(ROWS * d).zip(dy.chunks(ROWS * d)))
            .zip(dgamma_parts.chunks_mut(d))
            .collect();
        let epsilon = state.epsilon as f32;
        parallel(items, |((dx, (x, dy)), dgamma)| {
            pulp::Arch::new().dispatch(BackwardRows {
                d,
                epsilon,
                gamma,
                x,
                dy,
                dx,
                dgamma,
            });
        });
        [
            B::float_from_data(TensorData::new(dx, shape), &device),
            B::float_from_data(TensorData::new(sum_parts(&dgamma_parts, d), [d]), &device),
        ]
        .map(Some)
    }
}

impl<B: Backend + RmsNormBackend, C: CheckpointStrategy> RmsNormBackend for Autodiff<B, C> {
    fn rms_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        autodiff_op::<RmsNormBackward, B, C, 2>(
            [x, gamma],
            |[x, gamma]| {
                let y = B::rms_norm(x.clone(), gamma.clone(), epsilon);
                (y, NormState { x, gamma, epsilon })
            },
            |[x, gamma]| B::rms_norm(x, gamma, epsilon),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{assert_close, flat, max_rel};
    use burn::tensor::Distribution;

    /// Both paths: output and the gradients of `x` and `γ` under the same output weights.
    fn run<const D: usize>(
        fused: bool,
        x: &Tensor<D>,
        gamma: &Tensor<1>,
        weights: &Tensor<D>,
    ) -> [Vec<f32>; 3] {
        let (x, gamma) = (x.clone().require_grad(), gamma.clone().require_grad());
        let f = if fused { rms_norm } else { rms_norm_reference };
        let y = f(x.clone(), gamma.clone(), 1e-5);
        let grads = (y.clone() * weights.clone()).sum().backward();
        [
            flat(y),
            flat(x.grad(&grads).unwrap()),
            flat(gamma.grad(&grads).unwrap()),
        ]
    }

    fn check<const D: usize>(shape: [usize; D]) {
        let device = Device::flex().autodiff();
        device.seed(shape.iter().product::<usize>() as u64);
        let x = Tensor::<D>::random(shape, Distribution::Normal(0.0, 2.0), &device);
        let gamma = Tensor::<1>::random([shape[D - 1]], Distribution::Uniform(0.5, 1.5), &device);
        let weights = Tensor::<D>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let fused = run(true, &x, &gamma, &weights);
        let reference = run(false, &x, &gamma, &weights);
        let names = ["y", "dx", "dgamma"];
        assert_close(&names, &fused, &reference, 1e-5, &format!("{shape:?}"));
    }

    #[test]
    fn fused_equals_burn_values_and_gradients() {
        check([1, 1, 5]); // one row
        check([3, 7, 16]); // one SIMD vector per row
        check([2, 70, 37]); // more rows than one task, width not a multiple of 16
        check([130, 128]); // rank 2, a partial last task
    }

    #[test]
    fn inference_path_matches_burn() {
        let device = Device::flex();
        device.seed(3);
        let x = Tensor::<3>::random([2, 9, 20], Distribution::Normal(0.0, 1.0), &device);
        let gamma = Tensor::<1>::random([20], Distribution::Uniform(0.5, 1.5), &device);
        let got = flat(rms_norm(x.clone(), gamma.clone(), 1e-6));
        let want = flat(rms_norm_reference(x, gamma, 1e-6));
        assert!(max_rel(&got, &want) < 1e-5);
    }
}
