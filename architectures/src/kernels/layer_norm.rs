//! LayerNorm (Ba, Kiros & Hinton 2016, <https://arxiv.org/abs/1607.06450>) over the last axis,
//! exactly as burn's `LayerNorm` computes it:
//!
//! `y = (x − mean(x)) / sqrt(var(x) + ε) ⊙ γ + β`, with the biased variance, `x: [.., d]`,
//! `γ, β: [d]`.
//!
//! Burn composes it from about eight tensor operations (mean, subtract, square, mean, add, sqrt,
//! divide, scale and shift), each a full pass over `x` with its own output, and its backward from
//! more than a dozen; here the forward and the hand-written backward are one pass over the rows
//! each. With `r = (var + ε)^−½` and `x̂ = (x − μ) r` per row and `g = dy ⊙ γ`:
//! `dx = r (g − mean(g) − x̂ mean(g ⊙ x̂))`, `dγ = Σ_rows dy ⊙ x̂`, `dβ = Σ_rows dy`; the backward
//! recomputes `μ` and `r` (two passes over the row) instead of keeping them.

#![allow(deprecated)] // burn-ndarray is deprecated upstream; it stays a selectable backend.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, NdArray, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::TensorData;

use super::{
    HostBackward, LANES, autodiff_op, host_data, on_host_backend, parallel, sum, sum_parts, values,
};

/// Rows per parallel task; fixed, so `dγ` and `dβ` (partial sums per task, added in task order)
/// do not depend on the thread count.
const ROWS: usize = 64;

/// `(x − mean(x)) / sqrt(var(x) + epsilon) ⊙ gamma + beta` over the last axis (burn's
/// `LayerNorm::forward`): one host kernel on the CPU backends, [`layer_norm_reference`]
/// elsewhere.
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    if !on_host_backend(&x.device()) {
        return layer_norm_reference(x, gamma, beta, epsilon);
    }
    Tensor::from_dispatch(<Dispatch as LayerNormBackend>::fused_layer_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    ))
}

/// The same function from burn tensor operations, as burn's `layer_norm` writes it (the test
/// reference, and the path for other backends).
pub fn layer_norm_reference<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> Tensor<D> {
    let (var, mean) = x.clone().var_mean_bias(D - 1);
    let normalized = x.sub(mean).div(var.add_scalar(epsilon).sqrt());
    normalized.mul(gamma.unsqueeze()).add(beta.unsqueeze())
}

/// Backend extension: [`layer_norm`] on host memory.
#[backend_extension(NdArray, Flex, Autodiff)]
pub trait LayerNormBackend: Backend {
    /// Forward only (inference); see [`layer_norm`].
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        forward_host::<Self>(x, gamma, beta, epsilon)
    }
}

impl LayerNormBackend for Flex {}
impl LayerNormBackend for NdArray {}

/// `(mean, 1 / sqrt(var + ε))` of one row, the variance biased (divided by `d`).
#[inline(always)]
fn moments(x: &[f32], epsilon: f32) -> (f32, f32) {
    let d = x.len() as f32;
    let mean = sum(x) / d;
    let mut centred = [0.0f32; LANES];
    let full = x.len() / LANES * LANES;
    for start in (0..full).step_by(LANES) {
        let x = &x[start..][..LANES];
        for lane in 0..LANES {
            let c = x[lane] - mean;
            centred[lane] += c * c;
        }
    }
    let mut tail = 0.0f32;
    for &v in &x[full..] {
        tail += (v - mean) * (v - mean);
    }
    let var = (sum(&centred) + tail) / d;
    (mean, 1.0 / (var + epsilon).sqrt())
}

/// The forward over a group of rows as a pulp SIMD operation.
struct ForwardRows<'a> {
    epsilon: f32,
    gamma: &'a [f32],
    beta: &'a [f32],
    x: &'a [f32],
    y: &'a mut [f32],
}

impl pulp::WithSimd for ForwardRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let d = self.gamma.len();
        let (gamma, beta) = (self.gamma, &self.beta[..d]);
        for (x, y) in self.x.chunks_exact(d).zip(self.y.chunks_exact_mut(d)) {
            let (mean, r) = moments(x, self.epsilon);
            let y = &mut y[..d];
            for j in 0..d {
                y[j] = (x[j] - mean) * r * gamma[j] + beta[j];
            }
        }
    }
}

fn forward_host<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    epsilon: f64,
) -> FloatTensor<B> {
    let (device, shape) = (x.device(), x.shape());
    let d = gamma.shape().num_elements();
    let [x, gamma, beta] = [x, gamma, beta].map(host_data::<B>);
    let (x, gamma, beta) = (values(&x), values(&gamma), values(&beta));
    let mut y = vec![0.0f32; x.len()];
    let items = y
        .chunks_mut(ROWS * d.max(1))
        .zip(x.chunks(ROWS * d.max(1)))
        .collect();
    parallel(items, |(y, x)| {
        pulp::Arch::new().dispatch(ForwardRows {
            epsilon: epsilon as f32,
            gamma,
            beta,
            x,
            y,
        });
    });
    B::float_from_data(TensorData::new(y, shape), &device)
}

/// The backward over a group of rows as a pulp SIMD operation: `dx` and this group's shares of
/// `dγ` and `dβ`.
struct BackwardRows<'a> {
    epsilon: f32,
    gamma: &'a [f32],
    x: &'a [f32],
    dy: &'a [f32],
    dx: &'a mut [f32],
    dgamma: &'a mut [f32],
    dbeta: &'a mut [f32],
}

impl pulp::WithSimd for BackwardRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let d = self.gamma.len();
        let gamma = self.gamma;
        let (dgamma, dbeta) = (&mut self.dgamma[..d], &mut self.dbeta[..d]);
        let rows = self.x.chunks_exact(d).zip(self.dy.chunks_exact(d));
        for ((x, dy), dx) in rows.zip(self.dx.chunks_exact_mut(d)) {
            let (x, dy, dx) = (&x[..d], &dy[..d], &mut dx[..d]);
            let (mean, r) = moments(x, self.epsilon);
            // mean(g) and mean(g ⊙ x̂) over 16 partial sums each, as `dot`.
            let (mut g_sum, mut gx_sum) = ([0.0f32; LANES], [0.0f32; LANES]);
            let full = d / LANES * LANES;
            for start in (0..full).step_by(LANES) {
                let (x, dy) = (&x[start..][..LANES], &dy[start..][..LANES]);
                let gamma = &gamma[start..][..LANES];
                for lane in 0..LANES {
                    let g = dy[lane] * gamma[lane];
                    g_sum[lane] += g;
                    gx_sum[lane] += g * (x[lane] - mean) * r;
                }
            }
            let (mut g_tail, mut gx_tail) = (0.0f32, 0.0f32);
            for j in full..d {
                let g = dy[j] * gamma[j];
                g_tail += g;
                gx_tail += g * (x[j] - mean) * r;
            }
            let g_mean = (sum(&g_sum) + g_tail) / d as f32;
            let gx_mean = (sum(&gx_sum) + gx_tail) / d as f32;
            for j in 0..d {
                let normalized = (x[j] - mean) * r;
                dx[j] = r * (dy[j] * gamma[j] - g_mean - normalized * gx_mean);
                dgamma[j] += dy[j] * normalized;
                dbeta[j] += dy[j];
            }
        }
    }
}

/// What the backward needs: the input and the scale (the row statistics are recomputed; `β`
/// does not enter any gradient).
#[derive(Clone, Debug)]
struct NormState<B: Backend> {
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    epsilon: f64,
}

#[derive(Debug)]
struct LayerNormBackward;

impl HostBackward<3> for LayerNormBackward {
    type State<B: Backend> = NormState<B>;

    /// `dx`, `dγ` and `dβ`.
    fn backward<B: Backend>(
        state: NormState<B>,
        dy: FloatTensor<B>,
        _: [bool; 3],
    ) -> [Option<FloatTensor<B>>; 3] {
        let (device, shape) = (state.x.device(), state.x.shape());
        let d = state.gamma.shape().num_elements();
        let [x, gamma, dy] = [state.x, state.gamma, dy].map(host_data::<B>);
        let (x, gamma, dy) = (values(&x), values(&gamma), values(&dy));
        let mut dx = vec![0.0f32; x.len()];
        let group = ROWS * d.max(1);
        let tasks = x.len().div_ceil(group);
        let (mut dgamma_parts, mut dbeta_parts) =
            (vec![0.0f32; tasks * d], vec![0.0f32; tasks * d]);
        let items = dx
            .chunks_mut(group)
            .zip(x.chunks(group).zip(dy.chunks(group)))
            .zip(
                dgamma_parts
                    .chunks_mut(d.max(1))
                    .zip(dbeta_parts.chunks_mut(d.max(1))),
            )
            .collect();
        let epsilon = state.epsilon as f32;
        parallel(items, |((dx, (x, dy)), (dgamma, dbeta))| {
            pulp::Arch::new().dispatch(BackwardRows {
                epsilon,
                gamma,
                x,
                dy,
                dx,
                dgamma,
                dbeta,
            });
        });
        [
            B::float_from_data(TensorData::new(dx, shape), &device),
            B::float_from_data(TensorData::new(sum_parts(&dgamma_parts, d), [d]), &device),
            B::float_from_data(TensorData::new(sum_parts(&dbeta_parts, d), [d]), &device),
        ]
        .map(Some)
    }
}

impl<B: Backend + LayerNormBackend, C: CheckpointStrategy> LayerNormBackend for Autodiff<B, C> {
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        autodiff_op::<LayerNormBackward, B, C, 3>(
            [x, gamma, beta],
            |[x, gamma, beta]| {
                let y = B::fused_layer_norm(x.clone(), gamma.clone(), beta, epsilon);
                (y, NormState { x, gamma, epsilon })
            },
            |[x, gamma, beta]| B::fused_layer_norm(x, gamma, beta, epsilon),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{assert_close, flat, max_rel};
    use burn::nn::LayerNormConfig;
    use burn::tensor::Distribution;

    /// Both paths: output and the gradients of `x`, `γ` and `β` under the same output weights.
    fn run<const D: usize>(
        fused: bool,
        x: &Tensor<D>,
        gamma: &Tensor<1>,
        beta: &Tensor<1>,
        weights: &Tensor<D>,
    ) -> [Vec<f32>; 4] {
        let (x, gamma, beta) = (
            x.clone().require_grad(),
            gamma.clone().require_grad(),
            beta.clone().require_grad(),
        );
        let f = if fused {
            layer_norm
        } else {
            layer_norm_reference
        };
        let y = f(x.clone(), gamma.clone(), beta.clone(), 1e-5);
        let grads = (y.clone() * weights.clone()).sum().backward();
        [
            flat(y),
            flat(x.grad(&grads).unwrap()),
            flat(gamma.grad(&grads).unwrap()),
            flat(beta.grad(&grads).unwrap()),
        ]
    }

    fn check<const D: usize>(shape: [usize; D]) {
        let device = Device::flex().autodiff();
        device.seed(shape.iter().product::<usize>() as u64 + 17);
        // Every input drawn once, before either path runs (tests share flex's generator).
        let x = Tensor::<D>::random(shape, Distribution::Normal(0.5, 2.0), &device);
        let gamma = Tensor::<1>::random([shape[D - 1]], Distribution::Uniform(0.5, 1.5), &device);
        let beta = Tensor::<1>::random([shape[D - 1]], Distribution::Normal(0.0, 1.0), &device);
        let weights = Tensor::<D>::random(shape, Distribution::Normal(0.0, 1.0), &device);
        let fused = run(true, &x, &gamma, &beta, &weights);
        let reference = run(false, &x, &gamma, &beta, &weights);
        let names = ["y", "dx", "dgamma", "dbeta"];
        assert_close(&names, &fused, &reference, 1e-5, &format!("{shape:?}"));
    }

    #[test]
    fn fused_equals_burn_values_and_gradients() {
        check([1, 1, 5]); // one row
        check([3, 7, 16]); // one SIMD vector per row
        check([2, 70, 37]); // more rows than one task, width not a multiple of 16
        check([130, 128]); // rank 2, a partial last task
    }

    /// The reference is burn's own module: `LayerNorm::forward` and [`layer_norm`] agree.
    #[test]
    fn matches_burn_layer_norm_module() {
        let device = Device::flex();
        device.seed(8);
        let norm = LayerNormConfig::new(24).init(&device);
        let x = Tensor::<3>::random([2, 9, 24], Distribution::Normal(1.0, 3.0), &device);
        let beta = norm.beta.as_ref().expect("LayerNorm has a shift").val();
        let got = flat(layer_norm(x.clone(), norm.gamma.val(), beta, 1e-5));
        let want = flat(norm.forward(x));
        assert!(max_rel(&got, &want) < 1e-5);
    }
}
