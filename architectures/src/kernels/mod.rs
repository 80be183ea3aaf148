//! Custom operations with hand-written backward passes, run on the host for the CPU backends.
//!
//! Each op is a burn backend extension implemented for Flex, NdArray and `Autodiff` over them
//! (reference/burn.md §custom op). The public functions check the device and fall back to burn's
//! composite operations elsewhere (wgpu), so every backend computes the same function.

pub mod activation;
pub mod attention;
pub mod causal_conv;
pub mod delta_rule;
pub mod layer_norm;
pub mod linear;
pub mod rg_lru;
pub mod rms_norm;
pub mod selective_scan;
pub mod ssd_scan;

pub use activation::{Activation, gated, gated_reference, gelu, gelu_tanh, silu, softplus};
pub use attention::{Mask, attention, attention_weights, reference_attention};
pub use causal_conv::{causal_conv1d, causal_conv1d_reference};
pub use delta_rule::{gated_delta_rule, gated_delta_rule_reference};
pub use layer_norm::{layer_norm, layer_norm_reference};
pub use linear::{linear, linear_reference};
pub use rg_lru::{rg_lru, rg_lru_reference, rg_lru_step};
pub use rms_norm::{rms_norm, rms_norm_layer, rms_norm_reference};
pub use selective_scan::{
    DeltaInput, ScanInputs, selective_scan_fn, selective_scan_fn_reference,
    selective_scan_reference,
};
pub use ssd_scan::{ssd_scan, ssd_scan_reference};

use std::any::Any;
use std::marker::PhantomData;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex};
use burn::prelude::*;
use burn::tensor::{DType, TensorData, read_sync};

/// Whether `device` runs one of the CPU backends the host kernels serve (with or without autodiff).
pub(crate) fn on_host_backend(device: &Device) -> bool {
    #[allow(deprecated)] // burn-ndarray is deprecated upstream but stays selectable here
    let ndarray = Device::ndarray();
    *device == Device::flex() || *device == ndarray
}

/// A float tensor's values on the host, row-major f32: Flex's own storage when the tensor is a
/// contiguous f32 Flex tensor (no copy), otherwise a converted copy.
pub(crate) enum HostData {
    /// A contiguous f32 Flex tensor, read in place.
    Flex(FloatTensor<Flex>),
    /// Values read back through the backend (NdArray, other dtypes).
    Copied(TensorData),
}

/// Read a float tensor's values on the host. Flex's `into_data` copies a shared buffer twice
/// (into a `Vec`, then into an aligned allocation), and the tensors a custom op reads are always
/// shared with the autodiff graph; borrowing Flex's storage avoids both copies.
pub(crate) fn host_data<B: Backend>(x: FloatTensor<B>) -> HostData {
    let mut slot = Some(x);
    if let Some(flex) = (&mut slot as &mut dyn Any).downcast_mut::<Option<FloatTensor<Flex>>>()
        && let Some(tensor) = flex.take()
    {
        if tensor.dtype() != DType::F32 {
            return HostData::Copied(tensor.into_data().convert::<f32>());
        }
        if tensor.as_slice::<f32>().is_some() {
            return HostData::Flex(tensor);
        }
        return HostData::Flex(tensor.to_contiguous());
    }
    let x = slot.expect("taken only when the backend is Flex");
    // The CPU backends read synchronously and cannot fail; a failure is a broken invariant.
    let data = read_sync(B::float_into_data(x)).expect("reading a CPU tensor cannot fail");
    HostData::Copied(data.convert::<f32>())
}

/// The f32 values of data read by [`host_data`].
pub(crate) fn values(data: &HostData) -> &[f32] {
    match data {
        HostData::Flex(tensor) => tensor
            .as_slice::<f32>()
            .expect("host_data keeps contiguous f32 Flex tensors"),
        HostData::Copied(data) => data.as_slice::<f32>().expect("host_data converts to f32"),
    }
}

/// Lanes of the partial sums in [`dot`] and [`sum`]: one 512-bit vector.
pub(crate) const LANES: usize = 16;

/// `a·b` over 16 independent partial sums, so the loop vectorises (a single running sum is a
/// serial dependency the compiler may not reorder). Every loop here is a plain `for`:
/// iterator adapters that end in `fold` (`sum`, `for_each`, `collect`) run through a function
/// that is not inlined into pulp's SIMD context, so they compile for baseline x86-64 and cost a
/// call each (measured: attention over 12 keys of width 32 was 2-3x slower than composite ops).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let full = n / LANES * LANES;
    let mut partial = [0.0f32; LANES];
    for start in (0..full).step_by(LANES) {
        let (a, b) = (&a[start..][..LANES], &b[start..][..LANES]);
        for lane in 0..LANES {
            partial[lane] += a[lane] * b[lane];
        }
    }
    let mut total = 0.0f32;
    for j in full..n {
        total += a[j] * b[j];
    }
    total + horizontal_sum(&partial)
}

/// `⟨a, b⟩` (equal lengths) in the vectors of `simd` with fused multiply-adds and one horizontal
/// sum: for rows reduced one after another in an already dispatched kernel, where [`dot`]'s
/// lane array can compile to 2-wide vectors (measured in the Mamba-2 scan's backward).
#[inline(always)]
pub(crate) fn dot_simd<S: pulp::Simd>(simd: S, a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let (a_vectors, a_tail) = S::as_simd_f32s(a);
    let (b_vectors, b_tail) = S::as_simd_f32s(b);
    let mut acc = simd.splat_f32s(0.0);
    for (&x, &y) in a_vectors.iter().zip(b_vectors) {
        acc = simd.mul_add_f32s(x, y, acc);
    }
    let mut total = simd.reduce_sum_f32s(acc);
    for (x, y) in a_tail.iter().zip(b_tail) {
        total += x * y;
    }
    total
}

/// `y ← a·x + y` (equal lengths) in the vectors of `simd`, with fused multiply-adds.
#[inline(always)]
pub(crate) fn axpy_simd<S: pulp::Simd>(simd: S, a: f32, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    let (x_vectors, x_tail) = S::as_simd_f32s(x);
    let (y_vectors, y_tail) = S::as_mut_simd_f32s(y);
    let a_vector = simd.splat_f32s(a);
    for (y, &x) in y_vectors.iter_mut().zip(x_vectors) {
        *y = simd.mul_add_f32s(a_vector, x, *y);
    }
    for (y, &x) in y_tail.iter_mut().zip(x_tail) {
        *y += a * x;
    }
}

/// `y ← decay·y + a·x` (equal lengths) in the vectors of `simd`: a decaying state row written
/// to (Mamba-2's scan, the gated delta rule).
#[inline(always)]
pub(crate) fn decay_axpy_simd<S: pulp::Simd>(
    simd: S,
    decay: f32,
    a: f32,
    x: &[f32],
    y: &mut [f32],
) {
    debug_assert_eq!(x.len(), y.len());
    let (x_vectors, x_tail) = S::as_simd_f32s(x);
    let (y_vectors, y_tail) = S::as_mut_simd_f32s(y);
    let (decay_vector, a_vector) = (simd.splat_f32s(decay), simd.splat_f32s(a));
    for (y, &x) in y_vectors.iter_mut().zip(x_vectors) {
        *y = simd.mul_add_f32s(a_vector, x, simd.mul_f32s(decay_vector, *y));
    }
    for (y, &x) in y_tail.iter_mut().zip(x_tail) {
        *y = decay * *y + a * x;
    }
}

/// `Σ x`, vectorised as [`dot`].
#[inline(always)]
pub(crate) fn sum(x: &[f32]) -> f32 {
    let full = x.len() / LANES * LANES;
    let mut partial = [0.0f32; LANES];
    for start in (0..full).step_by(LANES) {
        let x = &x[start..][..LANES];
        for lane in 0..LANES {
            partial[lane] += x[lane];
        }
    }
    let mut total = 0.0f32;
    for &v in &x[full..] {
        total += v;
    }
    total + horizontal_sum(&partial)
}

/// `max x` (−∞ for an empty slice), vectorised as [`dot`].
#[inline(always)]
pub(crate) fn max(x: &[f32]) -> f32 {
    let full = x.len() / LANES * LANES;
    let mut partial = [f32::NEG_INFINITY; LANES];
    for start in (0..full).step_by(LANES) {
        let x = &x[start..][..LANES];
        for lane in 0..LANES {
            partial[lane] = partial[lane].max(x[lane]);
        }
    }
    for &v in &x[full..] {
        partial[0] = partial[0].max(v);
    }
    reduce_lanes(partial, f32::max)
}

/// `x ← exp(x − shift)` element-wise.
#[inline(always)]
pub(crate) fn exp_shifted(x: &mut [f32], shift: f32) {
    for v in x.iter_mut() {
        *v = exp_f32(*v - shift);
    }
}

/// The 16 partial sums added as a halving tree (lanes `i` and `i + 8`, then `i + 4`, ...): a
/// fixed order, so results stay deterministic, with 4 dependent vector adds where a left-to-right
/// sum chains 16 scalar ones (~64 cycles of latency per reduction, which dominated attention at
/// PatchTST's head width 4, where every query row ends in six reductions).
#[inline(always)]
fn horizontal_sum(partial: &[f32; LANES]) -> f32 {
    reduce_lanes(*partial, |a, b| a + b)
}

/// `v` folded with `combine` as a halving tree: lane `i` with lane `i + 8`, then `i + 4`, ...
#[inline(always)]
fn reduce_lanes(mut v: [f32; LANES], combine: impl Fn(f32, f32) -> f32) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for lane in 0..width {
            v[lane] = combine(v[lane], v[lane + width]);
        }
        width /= 2;
    }
    v[0]
}

/// `y += a · x`.
#[inline(always)]
pub(crate) fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// `Σ` of per-sequence partial gradients of a shared parameter, `[batch, len]` to `[len]`
/// (summed in sequence order after the parallel pass, so the result does not depend on the
/// thread count).
pub(crate) fn sum_parts(parts: &[f32], len: usize) -> Vec<f32> {
    let mut total = vec![0.0f32; len];
    for part in parts.chunks_exact(len) {
        axpy(1.0, part, &mut total);
    }
    total
}

/// Row-major `[rows, cols]` (the first `rows` rows of `x`) to `[cols, stride]`, zero in columns
/// `rows..stride`; `stride = rows` is a plain transpose.
#[inline(always)]
pub(crate) fn transpose_padded(x: &[f32], rows: usize, cols: usize, stride: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; cols * stride];
    for (r, row) in x.chunks_exact(cols).take(rows).enumerate() {
        for (c, &value) in row.iter().enumerate() {
            t[c * stride + r] = value;
        }
    }
    t
}

/// The hand-written backward of a host kernel with `N` differentiable inputs: from what its
/// forward kept and the output's gradient, the input gradients in input order, each `Some` at
/// least where `wanted` (the inputs autodiff tracks; a kernel may skip the others). This and
/// [`autodiff_op`] are the whole autodiff side of a kernel: a kernel file holds its forward, this
/// backward, and a five-line `Autodiff` impl of its backend extension that calls [`autodiff_op`].
pub(crate) trait HostBackward<const N: usize>: core::fmt::Debug + Send + 'static {
    /// What the forward keeps for the backward (inputs, outputs, settings).
    type State<B: Backend>: Clone + Send + core::fmt::Debug + 'static;

    /// The input gradients.
    fn backward<B: Backend>(
        state: Self::State<B>,
        dy: FloatTensor<B>,
        wanted: [bool; N],
    ) -> [Option<FloatTensor<B>>; N];
}

/// burn's autodiff node of a [`HostBackward`] kernel: hands the computed gradients to the
/// inputs that are tracked.
#[derive(Debug)]
struct HostNode<K>(PhantomData<fn() -> K>);

impl<B: Backend, K: HostBackward<N>, const N: usize> Backward<B, N> for HostNode<K> {
    type State = K::State<B>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<B>(&ops.node);
        let wanted = ops.parents.each_ref().map(Option::is_some);
        let computed = K::backward::<B>(ops.state, dy, wanted);
        for (parent, grad) in ops.parents.into_iter().zip(computed) {
            if let (Some(parent), Some(grad)) = (parent, grad) {
                grads.register::<B>(parent.id, grad);
            }
        }
    }
}

/// A kernel `K` as an operation of `Autodiff<B, C>`: when some input needs a gradient, `tracked`
/// computes the output on the inner backend together with the state `K`'s backward reads;
/// otherwise `untracked` computes the output alone and nothing is kept.
pub(crate) fn autodiff_op<K, B, C, const N: usize>(
    inputs: [FloatTensor<Autodiff<B, C>>; N],
    tracked: impl FnOnce([FloatTensor<B>; N]) -> (FloatTensor<B>, K::State<B>),
    untracked: impl FnOnce([FloatTensor<B>; N]) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>>
where
    K: HostBackward<N>,
    B: Backend,
    C: CheckpointStrategy,
{
    let prep = HostNode::<K>(PhantomData)
        .prepare::<C>(inputs.each_ref().map(|t| t.node()))
        .compute_bound()
        .stateful();
    let inputs = inputs.map(|t| t.into_primitive());
    match prep {
        OpsKind::Tracked(prep) => {
            let (output, state) = tracked(inputs);
            prep.finish(state, output)
        }
        OpsKind::UnTracked(prep) => prep.finish(untracked(inputs)),
    }
}

/// Run `work` on every item on rayon's persistent pool (`RAYON_NUM_THREADS` threads, as burn's
/// own kernels), one item per task, instead of spawning scoped threads on each of the several
/// kernel calls per layer and step.
pub(crate) fn parallel<T: Send>(items: Vec<T>, work: impl Fn(T) + Sync + Send) {
    use rayon::prelude::*;
    items.into_par_iter().with_max_len(1).for_each(work);
}

/// `erf(x)` in f32 without branches or libm calls, so loops over it vectorise: Eigen's rational
/// approximation (also XLA's and TVM's), max abs error ~1e-7 over the clamped range; beyond
/// |x| = 4, erf is ±1 in f32.
#[inline(always)]
pub(crate) fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329_3e-3;
    q = x2 * q + -1.426_474e-2;
    x * p / q
}

/// `ln(x)` in f32 for `x > 0` without branches or libm calls: `x = m·2ᵉ` with `m` in
/// `[√½, √2)`, `ln m = 2 atanh(s)`, `s = (m − 1)/(m + 1)`, by its odd series to `s¹¹` (relative
/// error ~1e-7 for |s| ≤ 0.172).
#[inline(always)]
pub(crate) fn ln_f32(x: f32) -> f32 {
    let bits = x.to_bits();
    // Exponent relative to [√½, √2): shift the mantissa boundary to √½ (0x3f3504f3).
    let offset = bits.wrapping_sub(0x3f35_04f3);
    let e = (offset as i32) >> 23;
    let m = f32::from_bits(bits.wrapping_sub((e as u32) << 23));
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut p = s2 * (1.0 / 11.0) + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0;
    2.0 * s * p + e as f32 * std::f32::consts::LN_2
}

/// `exp(x)` in f32 without branches or libm calls: Cody–Waite reduction `x = n·ln2 + r`,
/// |r| ≤ ln2/2, a degree-6 Taylor polynomial (relative error ~2e-7), and `2ⁿ` built from its
/// exponent bits. Inputs are clamped to [−87, 88] (the result underflows to ~1e-38 below).
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to the nearest integer
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // The low mantissa bits of `shifted` hold n as an integer: no float-to-int conversion.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6; // ln2 split in a high and a low part
    let mut p = r * (1.0 / 720.0) + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let two_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
    p * two_n
}

/// Helpers shared by the kernel and model tests.
#[cfg(test)]
pub(crate) mod testing {
    use burn::prelude::*;

    /// A tensor's values as f32, row-major.
    pub(crate) fn flat<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("converted to f32")
    }

    /// Largest absolute difference relative to the largest magnitude of `want`.
    pub(crate) fn max_rel(got: &[f32], want: &[f32]) -> f32 {
        let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-6);
        got.iter()
            .zip(want)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
            / scale
    }

    /// Each `got[i]` within `tolerance` of `want[i]` by [`max_rel`]; a failure names the result
    /// (`names[i]`) and the case (`context`).
    pub(crate) fn assert_close(
        names: &[&str],
        got: &[Vec<f32>],
        want: &[Vec<f32>],
        tolerance: f32,
        context: &str,
    ) {
        assert_eq!(
            (got.len(), want.len()),
            (names.len(), names.len()),
            "results to compare ({context})"
        );
        for ((name, got), want) in names.iter().zip(got).zip(want) {
            let err = max_rel(got, want);
            assert!(
                err < tolerance,
                "{name}: relative error {err:e} ({context})"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_libm() {
        let mut worst = 0.0f64;
        for i in -60_000..=60_000 {
            let x = i as f64 * 1e-4; // [-6, 6]
            let got = f64::from(erf_f32(x as f32));
            let want = libm_erf(x);
            worst = worst.max((got - want).abs());
        }
        assert!(worst < 5e-7, "max abs error {worst:e}");
    }

    #[test]
    fn ln_matches_std() {
        let mut worst = 0.0f64;
        let mut x = 1e-30f32;
        while x < 1e30 {
            let got = f64::from(ln_f32(x));
            let want = f64::from(x).ln();
            worst = worst.max((got - want).abs() / want.abs().max(1.0));
            x *= 1.001;
        }
        assert!(worst < 1e-6, "max error {worst:e}");
        assert_eq!(ln_f32(1.0), 0.0);
    }

    #[test]
    fn exp_matches_std() {
        let mut worst = 0.0f64;
        for i in -80_000..=80_000 {
            let x = i as f32 * 1e-3; // [-80, 80]
            let got = f64::from(exp_f32(x));
            let want = f64::from(x).exp();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 1e-6, "max relative error {worst:e}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) < 1e-37 && exp_f32(-1000.0) >= 0.0);
    }

    /// erf in f64 from its continued-fraction-free series / asymptotic forms, for the test only.
    fn libm_erf(x: f64) -> f64 {
        // Abramowitz & Stegun 7.1.5 series converges for all x; 200 terms suffice for |x| <= 6
        // in f64 when summed carefully near the origin; beyond 4 erf is 1 to f32 precision.
        if x.abs() > 4.0 {
            return x.signum() * (1.0 - erfc_asymptotic(x.abs()));
        }
        let mut sum = 0.0f64;
        let mut term = x;
        let mut n = 0.0;
        while term.abs() > 1e-18 * sum.abs().max(1e-300) || n < 5.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -x * x / n;
            if n > 400.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    fn erfc_asymptotic(x: f64) -> f64 {
        (-x * x).exp() / (x * std::f64::consts::PI.sqrt())
    }
}
