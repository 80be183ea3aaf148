//! Element-wise activations as fused host passes, forward and backward, vectorised: exact (erf)
//! GELU, tanh-approximate GELU, SiLU and softplus.
//!
//! - GELU `x·Φ(x) = x/2·(1 + erf(x/√2))`, `gelu' = Φ(x) + x·φ(x)`;
//! - tanh GELU `x/2·(1 + tanh u) = x·σ(2u)`, `u = √(2/π)(x + 0.044715x³)`,
//!   `' = σ(2u) + 2x·σ(2u)(1 − σ(2u))·√(2/π)(1 + 3·0.044715x²)` (Griffin's activation);
//! - SiLU `x·σ(x)`, `silu' = σ(x)·(1 + x·(1 − σ(x)))`;
//! - softplus `ln(1 + eˣ) = max(x, 0) + ln(1 + e^−|x|)`, `softplus' = σ(x)`;
//! - gated (GLU-style, [`gated`]): `act(a) · b` over the two halves `[a, b]` of the last axis,
//!   as Griffin's gated GeLU MLP and the SwiGLU MLP compute from one up-projection; one pass each
//!   way, where `narrow` twice, the activation and a product leave the two halves' copies, the
//!   slices' zero-filled full-width gradients and their sum to the backward.
//!
//! burn-flex evaluates these with libm's scalar `erff`, `expf` and `log1pf` per element: GELU
//! measured ~8% of a PatchTST training step at d_model 512, SiLU and softplus ~20% of a Mamba
//! step. The branch-free [`erf_f32`], [`exp_f32`] and [`ln_f32`] let the loops vectorise.

// burn-ndarray is deprecated upstream; it stays a selectable backend (the design card names it).
#![allow(deprecated)]

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, NdArray, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::TensorData;

use super::{
    HostBackward, autodiff_op, erf_f32, exp_f32, host_data, ln_f32, on_host_backend, values,
};

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1/√(2π).
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// An element-wise activation with a host kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU.
    Gelu,
    /// SiLU (swish).
    Silu,
    /// Softplus with β = 1.
    Softplus,
    /// GELU with the tanh approximation (PyTorch's `approximate="tanh"`).
    GeluTanh,
}

impl Activation {
    /// The code passed through the backend extension (its scalar arguments are plain numbers).
    fn code(self) -> usize {
        self as usize
    }

    fn from_code(code: usize) -> Self {
        match code {
            0 => Self::Gelu,
            1 => Self::Silu,
            2 => Self::Softplus,
            _ => Self::GeluTanh,
        }
    }

    /// burn's composite op: the reference, and the path on other backends.
    pub fn reference<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        use burn::tensor::activation as burn_activation;
        match self {
            Self::Gelu => burn_activation::gelu(x),
            Self::Silu => burn_activation::silu(x),
            Self::Softplus => burn_activation::softplus(x, 1.0),
            Self::GeluTanh => burn_activation::gelu_approximate(x),
        }
    }

    #[inline(always)]
    pub(crate) fn value(self, x: f32) -> f32 {
        match self {
            Self::Gelu => 0.5 * x * (1.0 + erf_f32(x * FRAC_1_SQRT_2)),
            Self::Silu => x * sigmoid(x),
            Self::Softplus => x.max(0.0) + ln_f32(1.0 + exp_f32(-x.abs())),
            Self::GeluTanh => x * gelu_tanh_gate(x).0,
        }
    }

    #[inline(always)]
    pub(crate) fn derivative(self, x: f32) -> f32 {
        match self {
            Self::Gelu => {
                let cdf = 0.5 * (1.0 + erf_f32(x * FRAC_1_SQRT_2));
                cdf + x * INV_SQRT_2PI * exp_f32(-0.5 * x * x)
            }
            Self::Silu => {
                let s = sigmoid(x);
                s * (1.0 + x * (1.0 - s))
            }
            Self::Softplus => sigmoid(x),
            Self::GeluTanh => {
                let (s, one_minus_s) = gelu_tanh_gate(x);
                let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_CUBIC * x * x);
                s + 2.0 * x * s * one_minus_s * du
            }
        }
    }
}

/// √(2/π).
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of the tanh approximation.
const GELU_CUBIC: f32 = 0.044_715;

/// `(s, 1 − s)` with `s = (1 + tanh u)/2 = σ(2u)`, `u = √(2/π)(x + 0.044715x³)`, both from
/// `e = exp(−2u)` (`s = 1/(1 + e)`, `1 − s = e·s`) so neither tail loses digits to
/// cancellation: tanh GELU is `x·s`, its derivative `s + 2x·s(1 − s)·u'`.
#[inline(always)]
fn gelu_tanh_gate(x: f32) -> (f32, f32) {
    let u = SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x);
    let e = exp_f32(-2.0 * u);
    let s = 1.0 / (1.0 + e);
    (s, e * s)
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// Exact GELU of `x` (any shape).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    activate(Activation::Gelu, x)
}

/// Tanh-approximate GELU of `x` (any shape).
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    activate(Activation::GeluTanh, x)
}

/// SiLU of `x` (any shape).
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    activate(Activation::Silu, x)
}

/// Softplus (β = 1) of `x` (any shape).
pub fn softplus<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    activate(Activation::Softplus, x)
}

/// `activation(a) · b`, where `[a, b]` are the two halves of `x`'s last axis (width `2m`):
/// `[..., 2m] -> [..., m]`. The gated MLP's hidden layer from its fused up-projection (GeGLU
/// with [`Activation::GeluTanh`] in Griffin, SwiGLU with [`Activation::Silu`]).
///
/// # Panics
///
/// If the last axis is odd.
pub fn gated<const D: usize>(activation: Activation, x: Tensor<D>) -> Tensor<D> {
    let width = x.dims()[D - 1];
    assert!(width.is_multiple_of(2), "gated: odd last axis {width}");
    if !on_host_backend(&x.device()) {
        return gated_reference(activation, x);
    }
    Tensor::from_dispatch(<Dispatch as ActivationBackend>::gated_activation(
        x.into_dispatch(),
        activation.code(),
    ))
}

/// [`gated`] in burn's ops: `activation(x[..., :m]) · x[..., m:]`.
pub fn gated_reference<const D: usize>(activation: Activation, x: Tensor<D>) -> Tensor<D> {
    let m = x.dims()[D - 1] / 2;
    activation.reference(x.clone().narrow(D - 1, 0, m)) * x.narrow(D - 1, m, m)
}

/// `activation(x)` on the host kernel; burn's composite op on backends without it.
pub fn activate<const D: usize>(activation: Activation, x: Tensor<D>) -> Tensor<D> {
    if !on_host_backend(&x.device()) {
        return activation.reference(x);
    }
    Tensor::from_dispatch(<Dispatch as ActivationBackend>::activation(
        x.into_dispatch(),
        activation.code(),
    ))
}

/// Backend extension: element-wise activations and their backward on host memory.
#[backend_extension(NdArray, Flex, Autodiff)]
pub trait ActivationBackend: Backend {
    /// `activation(x)` element-wise; `code` is [`Activation::code`].
    fn activation(x: FloatTensor<Self>, code: usize) -> FloatTensor<Self> {
        let (device, shape) = (x.device(), x.shape());
        let data = host_data::<Self>(x);
        let y = forward(Activation::from_code(code), values(&data), 1, 1);
        Self::float_from_data(TensorData::new(y, shape), &device)
    }

    /// [`gated`]: `activation(a) · b` over the halves of the last axis; `code` as above.
    fn gated_activation(x: FloatTensor<Self>, code: usize) -> FloatTensor<Self> {
        let (device, mut shape) = (x.device(), x.shape());
        let last = shape.num_dims() - 1;
        let width = shape[last];
        let data = host_data::<Self>(x);
        let y = forward(Activation::from_code(code), values(&data), width, width / 2);
        shape[last] = width / 2;
        Self::float_from_data(TensorData::new(y, shape), &device)
    }
}

/// Floats below which a kernel runs on the calling thread: a rayon task costs more than it
/// saves on a decoding step's few rows.
const PARALLEL_MIN: usize = 1 << 15;

/// Rows per task when `rows` rows of `width` floats are split across rayon's threads.
fn rows_per_task(rows: usize, width: usize) -> usize {
    let threads = rayon::current_num_threads();
    if rows * width < PARALLEL_MIN || threads == 1 {
        rows.max(1)
    } else {
        rows.div_ceil(threads)
    }
}

/// The forward pass over rows of `x`: `activation(x)` element-wise when `width == out_width`
/// (any row width; 1 is used), the gated `activation(a) · b` over each row's halves when
/// `width == 2 · out_width`. Rows are split across rayon's threads.
fn forward(activation: Activation, x: &[f32], width: usize, out_width: usize) -> Vec<f32> {
    let rows = x.len() / width;
    let mut y = vec![0.0f32; rows * out_width];
    let per = rows_per_task(rows, width);
    let tasks: Vec<_> = x
        .chunks(per * width)
        .zip(y.chunks_mut(per * out_width))
        .collect();
    super::parallel(tasks, |(x, y)| {
        pulp::Arch::new().dispatch(Forward {
            activation,
            x,
            y,
            gated_width: (width != out_width).then_some(out_width),
        })
    });
    y
}

/// The backward pass, `(x, grad) -> dx`, laid out as [`forward`]'s.
fn backward(
    activation: Activation,
    x: &[f32],
    grad: &[f32],
    width: usize,
    out_width: usize,
) -> Vec<f32> {
    let rows = x.len() / width;
    let mut dx = vec![0.0f32; x.len()];
    let per = rows_per_task(rows, width);
    let tasks: Vec<_> = x
        .chunks(per * width)
        .zip(grad.chunks(per * out_width))
        .zip(dx.chunks_mut(per * width))
        .collect();
    super::parallel(tasks, |((x, g), dx)| {
        pulp::Arch::new().dispatch(Backward {
            activation,
            x,
            g,
            dx,
            gated_width: (width != out_width).then_some(out_width),
        })
    });
    dx
}

/// One task of [`forward`] as a pulp SIMD operation (compiled for the CPU's widest vectors);
/// the activation is matched once, outside the loops.
struct Forward<'a> {
    activation: Activation,
    x: &'a [f32],
    y: &'a mut [f32],
    /// `Some(m)`: gated over rows `[a, b]` of width `2m`.
    gated_width: Option<usize>,
}

impl pulp::WithSimd for Forward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let (x, y) = (self.x, self.y);
        macro_rules! run {
            ($act:expr) => {
                match self.gated_width {
                    None => map(x, y, |x| $act.value(x)),
                    Some(m) => gated_map(x, y, m, |x| $act.value(x)),
                }
            };
        }
        match self.activation {
            Activation::Gelu => run!(Activation::Gelu),
            Activation::Silu => run!(Activation::Silu),
            Activation::Softplus => run!(Activation::Softplus),
            Activation::GeluTanh => run!(Activation::GeluTanh),
        }
    }
}

/// One task of [`backward`] as a pulp SIMD operation.
struct Backward<'a> {
    activation: Activation,
    x: &'a [f32],
    g: &'a [f32],
    dx: &'a mut [f32],
    /// As [`Forward::gated_width`].
    gated_width: Option<usize>,
}

impl pulp::WithSimd for Backward<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let (x, g, dx) = (self.x, self.g, self.dx);
        macro_rules! run {
            ($act:expr) => {
                match self.gated_width {
                    None => map_grad(x, g, dx, |x| $act.derivative(x)),
                    Some(m) => gated_grad(x, g, dx, m, |x| ($act.value(x), $act.derivative(x))),
                }
            };
        }
        match self.activation {
            Activation::Gelu => run!(Activation::Gelu),
            Activation::Silu => run!(Activation::Silu),
            Activation::Softplus => run!(Activation::Softplus),
            Activation::GeluTanh => run!(Activation::GeluTanh),
        }
    }
}

/// `y = f(x)`; generic (not a function pointer) so `f` inlines into the vector loop. An indexed
/// loop rather than `map().collect()`: the collect runs through `Iterator::fold`, a separate
/// function that is not inlined into pulp's SIMD context and so compiled for baseline x86-64
/// (measured: the GELU backward scalar, ~5% of a Griffin step).
#[inline(always)]
fn map(x: &[f32], y: &mut [f32], f: impl Fn(f32) -> f32) {
    let n = x.len();
    let y = &mut y[..n];
    for j in 0..n {
        y[j] = f(x[j]);
    }
}

/// `dx = g · f'(x)` element-wise; see [`map`].
#[inline(always)]
fn map_grad(x: &[f32], g: &[f32], dx: &mut [f32], derivative: impl Fn(f32) -> f32) {
    let n = x.len();
    let (g, dx) = (&g[..n], &mut dx[..n]);
    for j in 0..n {
        dx[j] = g[j] * derivative(x[j]);
    }
}

/// `y = f(a) · b` per row `[a, b]` of `x` (rows of width `2m`); see [`map`].
#[inline(always)]
fn gated_map(x: &[f32], y: &mut [f32], m: usize, f: impl Fn(f32) -> f32) {
    for (out, row) in y.chunks_exact_mut(m).zip(x.chunks_exact(2 * m)) {
        let (a, b) = row.split_at(m);
        let (out, b) = (&mut out[..m], &b[..m]);
        for j in 0..m {
            out[j] = f(a[j]) * b[j];
        }
    }
}

/// `dx = [g · b · f'(a), g · f(a)]` per row, `f_and_slope(a) = (f(a), f'(a))`; see [`map`].
#[inline(always)]
fn gated_grad(
    x: &[f32],
    g: &[f32],
    dx: &mut [f32],
    m: usize,
    f_and_slope: impl Fn(f32) -> (f32, f32),
) {
    for ((out, row), g) in dx
        .chunks_exact_mut(2 * m)
        .zip(x.chunks_exact(2 * m))
        .zip(g.chunks_exact(m))
    {
        let (a, b) = row.split_at(m);
        let (da, db) = out.split_at_mut(m);
        let (b, da, db, g) = (&b[..m], &mut da[..m], &mut db[..m], &g[..m]);
        for j in 0..m {
            let (value, slope) = f_and_slope(a[j]);
            da[j] = g[j] * b[j] * slope;
            db[j] = g[j] * value;
        }
    }
}

impl ActivationBackend for Flex {}
impl ActivationBackend for NdArray {}

/// `dx` for either backward node from the stored input `x`, the incoming gradient and the
/// activation's code: element-wise, or `gated` over the halves of the last axis.
fn backward_on_host<B: Backend>(
    x: FloatTensor<B>,
    grad: FloatTensor<B>,
    code: usize,
    gated: bool,
) -> FloatTensor<B> {
    let (device, shape) = (x.device(), x.shape());
    let (width, out_width) = if gated {
        let width = shape[shape.num_dims() - 1];
        (width, width / 2)
    } else {
        (1, 1)
    };
    let (x, grad) = (host_data::<B>(x), host_data::<B>(grad));
    let dx = backward(
        Activation::from_code(code),
        values(&x),
        values(&grad),
        width,
        out_width,
    );
    B::float_from_data(TensorData::new(dx, shape), &device)
}

#[derive(Debug)]
struct ActivationBackward;

impl HostBackward<1> for ActivationBackward {
    /// The input `x` and the activation's code.
    type State<B: Backend> = (FloatTensor<B>, usize);

    /// `grad · activation'(x)` element-wise.
    fn backward<B: Backend>(
        (x, code): (FloatTensor<B>, usize),
        grad: FloatTensor<B>,
        _: [bool; 1],
    ) -> [Option<FloatTensor<B>>; 1] {
        [Some(backward_on_host::<B>(x, grad, code, false))]
    }
}

#[derive(Debug)]
struct GatedActivationBackward;

impl HostBackward<1> for GatedActivationBackward {
    /// The input `x: [..., 2m]` and the activation's code.
    type State<B: Backend> = (FloatTensor<B>, usize);

    /// `[g · b · act'(a), g · act(a)]` over the halves.
    fn backward<B: Backend>(
        (x, code): (FloatTensor<B>, usize),
        grad: FloatTensor<B>,
        _: [bool; 1],
    ) -> [Option<FloatTensor<B>>; 1] {
        [Some(backward_on_host::<B>(x, grad, code, true))]
    }
}

impl<B: Backend + ActivationBackend, C: CheckpointStrategy> ActivationBackend for Autodiff<B, C> {
    fn activation(x: FloatTensor<Self>, code: usize) -> FloatTensor<Self> {
        autodiff_op::<ActivationBackward, B, C, 1>(
            [x],
            |[x]| (B::activation(x.clone(), code), (x, code)),
            |[x]| B::activation(x, code),
        )
    }

    fn gated_activation(x: FloatTensor<Self>, code: usize) -> FloatTensor<Self> {
        autodiff_op::<GatedActivationBackward, B, C, 1>(
            [x],
            |[x]| (B::gated_activation(x.clone(), code), (x, code)),
            |[x]| B::gated_activation(x, code),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::flat as values;

    #[test]
    fn matches_burn_in_value_and_gradient() {
        let device = Device::flex().autodiff();
        device.seed(1);
        // A grid over [-30, 30]: both tails, zero, the erf clamp at ±4√2, softplus' large x.
        let grid: Vec<f32> = (0..40 * 45)
            .map(|i| -30.0 + 60.0 * i as f32 / 1799.0)
            .collect();
        let x = Tensor::<2>::from_data(TensorData::new(grid, [40, 45]), &device);
        let weights = Tensor::<2>::random(
            x.dims(),
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        // burn's tanh GELU is a chain of f32 ops (cube, tanh, products) whose own rounding is
        // ~3e-6 in the gradient; ours is checked against f64 in `gelu_tanh_matches_f64`.
        for (activation, tolerance) in [
            (Activation::Gelu, 2e-6),
            (Activation::Silu, 2e-6),
            (Activation::Softplus, 2e-6),
            (Activation::GeluTanh, 1e-5),
        ] {
            let ours_x = x.clone().require_grad();
            let ours = activate(activation, ours_x.clone());
            let ours_grad = (ours.clone() * weights.clone()).sum().backward();
            let burn_x = x.clone().require_grad();
            let reference = activation.reference(burn_x.clone());
            let burn_grad = (reference.clone() * weights.clone()).sum().backward();
            // Relative to max(1, |value|): the activations grow like x.
            let worst = |a: Vec<f32>, b: Vec<f32>| {
                a.iter()
                    .zip(&b)
                    .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                    .fold(0.0f32, f32::max)
            };
            let v = worst(values(ours), values(reference));
            assert!(v < tolerance, "{activation:?} value max diff {v:e}");
            let g = worst(
                values(ours_x.grad(&ours_grad).unwrap()),
                values(burn_x.grad(&burn_grad).unwrap()),
            );
            assert!(g < tolerance, "{activation:?} gradient max diff {g:e}");
        }
    }

    #[test]
    fn gated_matches_its_reference_in_value_and_gradient() {
        let device = Device::flex().autodiff();
        device.seed(2);
        // [2, 5, 2m] with m = 37: rows longer than one vector and a ragged tail.
        let x = Tensor::<3>::random(
            [2, 5, 74],
            burn::tensor::Distribution::Normal(0.0, 3.0),
            &device,
        );
        let weights = Tensor::<3>::random(
            [2, 5, 37],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        for activation in [Activation::GeluTanh, Activation::Silu, Activation::Gelu] {
            let ours_x = x.clone().require_grad();
            let ours = gated(activation, ours_x.clone());
            assert_eq!(ours.dims(), [2, 5, 37]);
            let ours_grad = (ours.clone() * weights.clone()).sum().backward();
            let ref_x = x.clone().require_grad();
            let reference = gated_reference(activation, ref_x.clone());
            let ref_grad = (reference.clone() * weights.clone()).sum().backward();
            let worst = |a: Vec<f32>, b: Vec<f32>| {
                a.iter()
                    .zip(&b)
                    .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                    .fold(0.0f32, f32::max)
            };
            let v = worst(values(ours), values(reference));
            assert!(v < 1e-5, "{activation:?} value max diff {v:e}");
            let g = worst(
                values(ours_x.grad(&ours_grad).unwrap()),
                values(ref_x.grad(&ref_grad).unwrap()),
            );
            assert!(g < 1e-5, "{activation:?} gradient max diff {g:e}");
        }
    }

    #[test]
    fn gelu_tanh_matches_f64() {
        let (mut value, mut slope) = (0.0f64, 0.0f64);
        for i in -30_000..=30_000 {
            let x = f64::from(i as f32 * 1e-3); // [-30, 30], exactly the f32 input
            let k = (2.0 / std::f64::consts::PI).sqrt();
            let t = (k * (x + 0.044715 * x.powi(3))).tanh();
            let want = 0.5 * x * (1.0 + t);
            let want_slope =
                0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
            let got = f64::from(Activation::GeluTanh.value(x as f32));
            let got_slope = f64::from(Activation::GeluTanh.derivative(x as f32));
            // x as f32 is exact here: x came from an f32.
            value = value.max((got - want).abs() / want.abs().max(1.0));
            slope = slope.max((got_slope - want_slope).abs() / want_slope.abs().max(1.0));
        }
        assert!(
            value < 1e-6 && slope < 1e-6,
            "value {value:e}, slope {slope:e}"
        );
    }
}
