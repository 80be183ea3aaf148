//! Dense layer `y = x·W + b` with `x: [m, k]`, `W: [k, n]`, `b: [n]`, as burn's `Linear`
//! computes it, in one `gemm` call forward and two backward.
//!
//! Burn's composite costs more than its products: every matmul output is allocated zero-filled
//! as bytes and then copied once more to realign it (together 18% of Mamba's projections), the
//! bias is a second pass with a second output, and its gradient a third. Here the output starts
//! as the bias rows and the product accumulates into it (without a bias, gemm writes fresh,
//! unfilled memory); backward, `dx = dy·Wᵀ` and `dW = xᵀ·dy` read the transposes through
//! strides (no copies), and `db = Σ_rows dy` is summed in fixed row groups, so it does not
//! depend on the thread count. The gemm call is one of the workspace's audited `unsafe`
//! exceptions: both operands' extents are checked against their slices before it.

#![allow(deprecated)] // burn-ndarray is deprecated upstream; it stays a selectable backend.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, NdArray, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::TensorData;

use super::{
    HostBackward, autodiff_op, axpy, host_data, on_host_backend, parallel, sum_parts, values,
};

/// `m·n·k` from which a product runs on all threads: burn-flex's own threshold (192³), so
/// small products stay on the calling thread exactly as they did through burn.
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

/// Rows per partial sum of `db`; fixed, so the result does not depend on the thread count.
const BIAS_ROWS: usize = 1024;

/// `x·weight + bias` for `x: [m, k]`, `weight: [k, n]`, `bias: [n]`: one host kernel on the
/// CPU backends, [`linear_reference`] elsewhere.
pub fn linear(x: Tensor<2>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    if !on_host_backend(&x.device()) {
        return linear_reference(x, weight, bias);
    }
    let (x, weight) = (x.into_dispatch(), weight.into_dispatch());
    Tensor::from_dispatch(match bias {
        Some(bias) => <Dispatch as LinearBackend>::dense_bias(x, weight, bias.into_dispatch()),
        None => <Dispatch as LinearBackend>::dense(x, weight),
    })
}

/// The same function from burn tensor operations, as `burn::nn::Linear` writes it for a 2-D
/// input (the test reference, and the path for other backends).
pub fn linear_reference(x: Tensor<2>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<2> {
    let y = x.matmul(weight);
    match bias {
        Some(bias) => y + bias.unsqueeze(),
        None => y,
    }
}

/// Backend extension: [`linear`] on host memory.
#[backend_extension(NdArray, Flex, Autodiff)]
pub trait LinearBackend: Backend {
    /// `x·weight`, forward only (inference); see [`linear`].
    fn dense(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        forward_host::<Self>(x, weight, None)
    }

    /// `x·weight + bias`, forward only (inference); see [`linear`].
    fn dense_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        forward_host::<Self>(x, weight, Some(bias))
    }
}

impl LinearBackend for Flex {}
impl LinearBackend for NdArray {}

/// A read-only matrix: element `(r, c)` at `values[r·row_stride + c·col_stride]`.
#[derive(Clone, Copy)]
struct View<'a> {
    values: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> View<'a> {
    fn row_major(values: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            values,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, read through swapped strides.
    fn transposed(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Whether every element lies inside `values`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.values.len()
    }
}

/// `dst += lhs·rhs`, `dst` row-major `[m, n]`.
#[allow(unsafe_code)] // audited: see `gemm_raw`
fn product_into(dst: &mut [f32], lhs: View<'_>, rhs: View<'_>) {
    let (m, n) = (lhs.rows, rhs.cols);
    assert_eq!(
        dst.len(),
        m * n,
        "product_into: [{m}, {n}] into {} values",
        dst.len()
    );
    // SAFETY: `dst` holds m·n initialised values, borrowed exclusively.
    unsafe { gemm_raw(dst.as_mut_ptr(), true, lhs, rhs) };
}

/// `lhs·rhs` as a new row-major `[m, n]`, written by gemm into fresh memory (zero-filling it
/// first measured 1.3% of a Mamba training step, all of it wasted).
#[allow(unsafe_code)] // audited: see `gemm_raw`
fn product(lhs: View<'_>, rhs: View<'_>) -> Vec<f32> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if m == 0 || n == 0 || k == 0 {
        return vec![0.0f32; m * n];
    }
    let mut out = Vec::<f32>::with_capacity(m * n);
    // SAFETY: `out` has capacity for m·n values; with `accumulate` false gemm only writes them.
    unsafe {
        gemm_raw(out.as_mut_ptr(), false, lhs, rhs);
        // Every (r, c), r < m, c < n, was written: with `read_dst` false gemm stores
        // `lhs·rhs` into each element of the [m, n] destination (k > 0).
        out.set_len(m * n);
    }
    out
}

/// `dst = lhs·rhs`, or `dst += lhs·rhs` with `accumulate`; `dst` row-major `[m, n]`.
///
/// # Safety
/// `dst` must be valid for writes of `m·n` f32 (and for reads, initialised, with
/// `accumulate`), and alias neither input.
#[allow(unsafe_code)] // audited: the one call into gemm, bounds checked before it
unsafe fn gemm_raw(dst: *mut f32, accumulate: bool, lhs: View<'_>, rhs: View<'_>) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(
        rhs.rows == k && lhs.in_bounds() && rhs.in_bounds(),
        "product: [{m}, {k}] x [{}, {n}]",
        rhs.rows
    );
    if m == 0 || n == 0 || k == 0 {
        return; // nothing to add (gemm is not called with an empty dimension)
    }
    let parallelism = if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD {
        gemm::Parallelism::Rayon(0) // rayon's pool: RAYON_NUM_THREADS, as burn's kernels
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: gemm reads lhs (r, c) for r < m, c < k and rhs (r, c) for r < k, c < n at
    // `r·row_stride + c·col_stride`, all inside their slices (`in_bounds` above, with m, k, n
    // non-zero); it writes (and with `accumulate` reads) dst (r, c) at `r·n + c`, r < m, c < n,
    // which the caller guarantees. f32 is one of gemm's element types; strides fit isize as
    // they index live slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            lhs.values.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.values.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0, // dst's own scale (read only when accumulating)
            1.0, // the product's scale
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `[m, k]`, `[k, n]` of a call.
fn dims<B: Backend>(x: &FloatTensor<B>, weight: &FloatTensor<B>) -> [usize; 3] {
    let [m, k] = x.shape().dims::<2>();
    let n = weight.shape().dims::<2>()[1];
    [m, k, n]
}

/// `y: [m, n]` starting as the bias rows (or zeros), the product accumulated into it.
fn forward_host<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
) -> FloatTensor<B> {
    let device = x.device();
    let [m, k, n] = dims::<B>(&x, &weight);
    let (x, weight) = (host_data::<B>(x), host_data::<B>(weight));
    let bias = bias.map(host_data::<B>);
    let (x, weight) = (
        View::row_major(values(&x), m, k),
        View::row_major(values(&weight), k, n),
    );
    let y = match &bias {
        Some(bias) => {
            let mut y = values(bias).repeat(m);
            product_into(&mut y, x, weight);
            y
        }
        None => product(x, weight),
    };
    B::float_from_data(TensorData::new(y, [m, n]), &device)
}

/// What the backward needs: the input and the weight (`db` needs neither).
#[derive(Clone, Debug)]
struct LinearState<B: Backend> {
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
}

/// Backward of a layer with `N` inputs: `[x, W]` or `[x, W, b]`.
#[derive(Debug)]
struct LinearBackward<const N: usize>;

impl<const N: usize> HostBackward<N> for LinearBackward<N> {
    type State<B: Backend> = LinearState<B>;

    /// `[dx, dW]` or `[dx, dW, db]`, each only where `wanted` (an input autodiff tracks).
    fn backward<B: Backend>(
        state: LinearState<B>,
        dy: FloatTensor<B>,
        wanted: [bool; N],
    ) -> [Option<FloatTensor<B>>; N] {
        let wanted = |i: usize| wanted.get(i).copied().unwrap_or(false);
        let device = dy.device();
        let [m, k, n] = dims::<B>(&state.x, &state.weight);
        let [x, weight, dy] = [state.x, state.weight, dy].map(host_data::<B>);
        let (x, weight, dy) = (values(&x), values(&weight), values(&dy));
        let dy_view = View::row_major(dy, m, n);
        let tensor = |values: Vec<f32>, shape: Vec<usize>| {
            B::float_from_data(TensorData::new(values, shape), &device)
        };
        let dx = wanted(0).then(|| {
            let dx = product(dy_view, View::row_major(weight, k, n).transposed());
            tensor(dx, vec![m, k])
        });
        let dweight = wanted(1).then(|| {
            let dweight = product(View::row_major(x, m, k).transposed(), dy_view);
            tensor(dweight, vec![k, n])
        });
        let dbias = wanted(2).then(|| {
            let mut parts = vec![0.0f32; m.div_ceil(BIAS_ROWS) * n];
            let items = parts
                .chunks_mut(n.max(1))
                .zip(dy.chunks(BIAS_ROWS * n.max(1)))
                .collect();
            parallel(items, |(part, rows)| {
                for row in rows.chunks_exact(n) {
                    axpy(1.0, row, part);
                }
            });
            tensor(sum_parts(&parts, n), vec![n])
        });
        let mut all = [dx, dweight, dbias].into_iter();
        std::array::from_fn(|_| all.next().flatten())
    }
}

impl<B: Backend + LinearBackend, C: CheckpointStrategy> LinearBackend for Autodiff<B, C> {
    fn dense(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        autodiff_op::<LinearBackward<2>, B, C, 2>(
            [x, weight],
            |[x, weight]| {
                (
                    B::dense(x.clone(), weight.clone()),
                    LinearState { x, weight },
                )
            },
            |[x, weight]| B::dense(x, weight),
        )
    }

    fn dense_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        autodiff_op::<LinearBackward<3>, B, C, 3>(
            [x, weight, bias],
            |[x, weight, bias]| {
                let y = B::dense_bias(x.clone(), weight.clone(), bias);
                (y, LinearState { x, weight })
            },
            |[x, weight, bias]| B::dense_bias(x, weight, bias),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{assert_close, flat, max_rel};
    use burn::tensor::Distribution;

    /// Output and the gradients of every tracked input, both paths under the same output
    /// weights; `track_x: false` leaves `x` a constant (a model's first layer).
    fn check(m: usize, k: usize, n: usize, with_bias: bool, track_x: bool) {
        let device = Device::flex().autodiff();
        device.seed((m * 10_000 + k * 100 + n) as u64);
        let normal = Distribution::Normal(0.0, 1.0);
        // Every input drawn once, before either path runs (tests share flex's generator).
        let x = Tensor::<2>::random([m, k], normal, &device);
        let weight = Tensor::<2>::random([k, n], normal, &device);
        let bias = Tensor::<1>::random([n], normal, &device);
        let out_weights = Tensor::<2>::random([m, n], normal, &device);
        let run = |fused: bool| {
            let x = if track_x {
                x.clone().require_grad()
            } else {
                x.clone()
            };
            let weight = weight.clone().require_grad();
            let bias = with_bias.then(|| bias.clone().require_grad());
            let f = if fused { linear } else { linear_reference };
            let y = f(x.clone(), weight.clone(), bias.clone());
            let grads = (y.clone() * out_weights.clone()).sum().backward();
            let mut results = vec![flat(y), flat(weight.grad(&grads).unwrap())];
            if track_x {
                results.push(flat(x.grad(&grads).unwrap()));
            } else {
                assert!(x.grad(&grads).is_none());
            }
            if let Some(bias) = bias {
                results.push(flat(bias.grad(&grads).unwrap()));
            }
            results
        };
        let (fused, reference) = (run(true), run(false));
        let mut names = vec!["y", "dweight"];
        names.extend(track_x.then_some("dx"));
        names.extend(with_bias.then_some("dbias"));
        let context = format!("[{m}, {k}] x [{k}, {n}]");
        assert_close(&names, &fused, &reference, 1e-5, &context);
    }

    #[test]
    fn fused_equals_burn_values_and_gradients() {
        check(1, 1, 1, true, true);
        check(37, 5, 3, false, true);
        check(300, 64, 48, true, true);
        check(2500, 7, 9, true, true); // more rows than one bias group, odd widths
        check(256, 256, 128, true, true); // above the threading threshold
        check(20, 16, 24, true, false); // constant input: weight and bias gradients only
    }

    #[test]
    fn inference_path_matches_burn() {
        let device = Device::flex();
        device.seed(9);
        let x = Tensor::<2>::random([33, 17], Distribution::Default, &device);
        let weight = Tensor::<2>::random([17, 6], Distribution::Default, &device);
        let bias = Tensor::<1>::random([6], Distribution::Default, &device);
        for bias in [Some(bias), None] {
            let got = flat(linear(x.clone(), weight.clone(), bias.clone()));
            let want = flat(linear_reference(x.clone(), weight.clone(), bias));
            assert!(max_rel(&got, &want) < 1e-6);
        }
    }

    /// A strided weight (a column slice, as Mamba's `in_proj` halves) reads as its values.
    #[test]
    fn sliced_weight_matches_burn() {
        let device = Device::flex();
        device.seed(4);
        let x = Tensor::<2>::random([12, 8], Distribution::Default, &device);
        let weight = Tensor::<2>::random([8, 10], Distribution::Default, &device).narrow(1, 5, 5);
        let got = flat(linear(x.clone(), weight.clone(), None));
        let want = flat(linear_reference(x, weight, None));
        assert!(max_rel(&got, &want) < 1e-6);
    }
}
