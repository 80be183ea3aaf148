//! Mamba's selective scan (Gu & Dao 2023, <https://arxiv.org/abs/2312.00752>; reference
//! state-spaces/mamba `selective_scan_ref` / `selective_scan_fn`) with what the reference fuses
//! around it: Δ through `softplus(Δ + Δ_bias)`, the `D` skip and the `SiLU(z)` gate,
//!
//! `h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t u_t`, `y_t = Σ_n h_t[·, n] C_t[n]`,
//! `out_t = (y_t + D ⊙ u_t) ⊙ SiLU(z_t)`,
//!
//! with `u, Δ, z: [b, l, d]`, `A: [d, N]`, `B, C: [b, l, N]`, `h_t: [b, d, N]`, `D: [d]`.
//!
//! Two paths, one function: [`selective_scan_fn_reference`] wraps the readable per-time-step
//! loop of burn tensor ops ([`selective_scan_reference`]; autodiff builds a graph per step);
//! [`selective_scan_fn`] is one backend extension whose forward and hand-written backward run
//! on host memory, parallel over the batch. Within a sequence, the kernels go chunk by chunk;
//! a chunk's rows are staged block-major in order (a block is one SIMD vector of channels),
//! then scanned block by block, each block's `N` states carried across chunks in L1, as each
//! CUDA thread of the reference kernel keeps its channel's state in registers.
//! With Δ in Mamba's low rank ([`DeltaInput::LowRank`], `dt_proj` without its bias) it
//! forms the product in the kernel, as the reference's `mamba_inner_fn` keeps `delta_proj`
//! inside its one autograd function. Following the paper's
//! hardware-aware scan, the backward does not keep `[b, l, d, N]` states from the forward: the
//! forward saves the state every [`CHUNK`] steps (`[b, l/CHUNK, N, d]`) and the output before
//! the gate, and the backward recomputes the states chunk by chunk from those checkpoints, then
//! runs the reverse recurrence, with `dy` the gradient that reaches `y` through the gate,
//! `g_t = C_t dy_t + exp(Δ_{t+1} A) ⊙ g_{t+1}` and
//! `dA = Σ_t g_t Δ_t exp(Δ_t A) h_{t−1}`, `dΔ_t = Σ_n g_t (A exp(Δ_t A) h_{t−1} + B_t u_t)`,
//! `dB_t = Σ_d g_t Δ_t u_t`, `du_t = Σ_n g_t Δ_t B_t + D dy_t`, `dC_t = Σ_d dy_t h_t`; `dΔ`
//! then leaves through the softplus's slope `σ(Δ + Δ_bias)`.

#![allow(deprecated)] // burn-ndarray is deprecated upstream; it stays a selectable backend.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Backend, Dispatch, ExtensionType, Flex, NdArray, TensorMetadata, backend_extension,
};
use burn::prelude::*;
use burn::tensor::TensorData;

use super::{
    HostBackward, HostData, autodiff_op, host_data, on_host_backend, parallel, sum_parts,
    transpose_padded, values,
};

/// Time steps between the state checkpoints the backward pass recomputes from.
pub const CHUNK: usize = 64;

/// Δ as the scan function takes it, before its bias and softplus.
#[derive(Clone, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per call and moved straight into the kernel; boxing adds an allocation"
)]
pub enum DeltaInput {
    /// Δ itself, `[b, l, d]`.
    Full(Tensor<3>),
    /// Δ in Mamba's low rank, `delta = dt_low · dt_weight` with `dt_low: [b, l, r]` and
    /// `dt_weight: [r, d]` (`dt_proj` without its bias, which is `delta_bias`). The fused kernel
    /// forms the product chunk by chunk and its gradients (`d dt_low = dΔ · dt_weightᵀ`,
    /// `d dt_weight = dt_lowᵀ · dΔ`) in the backward, so `[b, l, d]` Δ and its gradient never
    /// exist as tensors: the reference's `mamba_inner_fn` likewise keeps `delta_proj` inside its
    /// one autograd function.
    LowRank {
        /// `[b, l, r]`.
        dt_low: Tensor<3>,
        /// `[r, d]`.
        dt_weight: Tensor<2>,
    },
}

/// The inputs of Mamba's selective-scan function, named as the reference names them
/// (`selective_scan_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus=True)`).
#[derive(Clone, Debug)]
pub struct ScanInputs {
    /// The scanned input `u: [b, l, d]`.
    pub u: Tensor<3>,
    /// Δ before `delta_bias` and the softplus.
    pub delta: DeltaInput,
    /// `A: [d, N]` (negative).
    pub a: Tensor<2>,
    /// `B: [b, l, N]`.
    pub b: Tensor<3>,
    /// `C: [b, l, N]`.
    pub c: Tensor<3>,
    /// The skip `D: [d]`.
    pub d_skip: Tensor<1>,
    /// The gate's input `z: [b, l, d]`.
    pub z: Tensor<3>,
    /// Δ's bias, `[d]`, added before the softplus.
    pub delta_bias: Tensor<1>,
}

/// Mamba's selective-scan function as the reference CUDA kernel fuses it:
///
/// `out = (scan(u, softplus(delta + delta_bias), A, B, C) + D ⊙ u) ⊙ SiLU(z)`,
///
/// `[b, l, d]`. One host kernel on the CPU backends (the softplus, skip and gate cost no tensor
/// passes of their own; a low-rank Δ is projected inside it), [`selective_scan_fn_reference`]
/// elsewhere.
pub fn selective_scan_fn(inputs: ScanInputs) -> Tensor<3> {
    if !on_host_backend(&inputs.u.device()) {
        return selective_scan_fn_reference(inputs);
    }
    let ScanInputs {
        u,
        delta,
        a,
        b,
        c,
        d_skip,
        z,
        delta_bias,
    } = inputs;
    let [u, b, c, z] = [u, b, c, z].map(Tensor::into_dispatch);
    let (a, d_skip, delta_bias) = (
        a.into_dispatch(),
        d_skip.into_dispatch(),
        delta_bias.into_dispatch(),
    );
    Tensor::from_dispatch(match delta {
        DeltaInput::Full(delta) => <Dispatch as ScanBackend>::selective_scan_fn(ScanPrimitives {
            u,
            delta: delta.into_dispatch(),
            a,
            b,
            c,
            d_skip,
            z,
            delta_bias,
        }),
        DeltaInput::LowRank { dt_low, dt_weight } => {
            <Dispatch as ScanBackend>::selective_scan_fn_projected(ProjectedScanPrimitives {
                u,
                dt_low: dt_low.into_dispatch(),
                dt_weight: dt_weight.into_dispatch(),
                a,
                b,
                c,
                d_skip,
                z,
                delta_bias,
            })
        }
    })
}

/// [`selective_scan_fn`] from burn tensor operations (a low-rank Δ as a burn matrix product)
/// around the per-step [`selective_scan_reference`] (the test reference).
pub fn selective_scan_fn_reference(inputs: ScanInputs) -> Tensor<3> {
    use burn::tensor::activation::{silu, softplus};
    let ScanInputs {
        u,
        delta,
        a,
        b,
        c,
        d_skip,
        z,
        delta_bias,
    } = inputs;
    let [batch, l, d] = u.dims();
    let delta = match delta {
        DeltaInput::Full(delta) => delta,
        DeltaInput::LowRank { dt_low, dt_weight } => {
            let rank = dt_low.dims()[2];
            dt_low
                .reshape([batch * l, rank])
                .matmul(dt_weight)
                .reshape([batch, l, d])
        }
    };
    let delta = softplus(delta + delta_bias.reshape([1, 1, d]), 1.0);
    let y = selective_scan_reference(u.clone(), delta, a, b, c) + u * d_skip.reshape([1, 1, d]);
    y * silu(z)
}

/// The same scan as a loop of burn tensor operations over time (the test reference).
pub fn selective_scan_reference(
    u: Tensor<3>,
    delta: Tensor<3>,
    a: Tensor<2>,
    b: Tensor<3>,
    c: Tensor<3>,
) -> Tensor<3> {
    let [batch, l, d] = u.dims();
    let n = a.dims()[1];
    let a = a.reshape([1, d, n]);
    let mut h = Tensor::<3>::zeros([batch, d, n], &u.device());
    let mut ys = Vec::with_capacity(l);
    for t in 0..l {
        let dt = delta.clone().narrow(1, t, 1).reshape([batch, d, 1]);
        let ut = u.clone().narrow(1, t, 1).reshape([batch, d, 1]);
        let bt = b.clone().narrow(1, t, 1); // [batch, 1, n]
        let ct = c.clone().narrow(1, t, 1); // [batch, 1, n]
        h = (dt.clone() * a.clone()).exp() * h + dt * ut * bt;
        ys.push((h.clone() * ct).sum_dim(2).reshape([batch, 1, d])); // [batch, 1, d]
    }
    Tensor::cat(ys, 1)
}

/// [`ScanInputs`] with Δ given, as backend primitives (the extension's argument).
#[derive(ExtensionType)]
pub struct ScanPrimitives<B: Backend> {
    /// `u`.
    pub u: FloatTensor<B>,
    /// Δ.
    pub delta: FloatTensor<B>,
    /// `A`.
    pub a: FloatTensor<B>,
    /// `B`.
    pub b: FloatTensor<B>,
    /// `C`.
    pub c: FloatTensor<B>,
    /// `D`.
    pub d_skip: FloatTensor<B>,
    /// `z`.
    pub z: FloatTensor<B>,
    /// Δ's bias.
    pub delta_bias: FloatTensor<B>,
}

/// [`ScanInputs`] with Δ in low rank, as backend primitives (the extension's argument).
#[derive(ExtensionType)]
pub struct ProjectedScanPrimitives<B: Backend> {
    /// `u`.
    pub u: FloatTensor<B>,
    /// Δ's low-rank factor `[b, l, r]`.
    pub dt_low: FloatTensor<B>,
    /// Δ's projection `[r, d]`.
    pub dt_weight: FloatTensor<B>,
    /// `A`.
    pub a: FloatTensor<B>,
    /// `B`.
    pub b: FloatTensor<B>,
    /// `C`.
    pub c: FloatTensor<B>,
    /// `D`.
    pub d_skip: FloatTensor<B>,
    /// `z`.
    pub z: FloatTensor<B>,
    /// Δ's bias.
    pub delta_bias: FloatTensor<B>,
}

impl<B: Backend> ScanPrimitives<B> {
    /// The inputs in the kernels' order.
    fn into_array(self) -> [FloatTensor<B>; 8] {
        let Self {
            u,
            delta,
            a,
            b,
            c,
            d_skip,
            z,
            delta_bias,
        } = self;
        [u, delta, a, b, c, d_skip, z, delta_bias]
    }

    fn from_array([u, delta, a, b, c, d_skip, z, delta_bias]: [FloatTensor<B>; 8]) -> Self {
        Self {
            u,
            delta,
            a,
            b,
            c,
            d_skip,
            z,
            delta_bias,
        }
    }
}

impl<B: Backend> ProjectedScanPrimitives<B> {
    /// The inputs in the kernels' order (the projection's weight after its low-rank factor).
    fn into_array(self) -> [FloatTensor<B>; 9] {
        let Self {
            u,
            dt_low,
            dt_weight,
            a,
            b,
            c,
            d_skip,
            z,
            delta_bias,
        } = self;
        [u, dt_low, dt_weight, a, b, c, d_skip, z, delta_bias]
    }

    fn from_array(
        [u, dt_low, dt_weight, a, b, c, d_skip, z, delta_bias]: [FloatTensor<B>; 9],
    ) -> Self {
        Self {
            u,
            dt_low,
            dt_weight,
            a,
            b,
            c,
            d_skip,
            z,
            delta_bias,
        }
    }
}

/// Backend extension: [`selective_scan_fn`] on host memory.
#[backend_extension(NdArray, Flex, Autodiff)]
pub trait ScanBackend: Backend {
    /// Forward only (inference), Δ given; see [`selective_scan_fn`].
    fn selective_scan_fn(#[extension_type] inputs: ScanPrimitives<Self>) -> FloatTensor<Self> {
        forward_host::<Self>(inputs.into_array().to_vec(), false).0
    }

    /// Forward only (inference), Δ in low rank; see [`selective_scan_fn`].
    fn selective_scan_fn_projected(
        #[extension_type] inputs: ProjectedScanPrimitives<Self>,
    ) -> FloatTensor<Self> {
        forward_host::<Self>(inputs.into_array().to_vec(), false).0
    }
}

impl ScanBackend for Flex {}
impl ScanBackend for NdArray {}

/// Sizes: batch, length, channels `d`, state `n`.
#[derive(Clone, Copy, Debug)]
struct Dims {
    batch: usize,
    l: usize,
    d: usize,
    n: usize,
}

impl Dims {
    /// Sizes from either function's inputs: `u` first, `A` sixth from the end (third, or
    /// fourth after a projected Δ's weight).
    fn of<B: Backend>(inputs: &[FloatTensor<B>]) -> Self {
        let [batch, l, d] = inputs[0].shape().dims::<3>();
        let [_, n] = inputs[inputs.len() - 6].shape().dims::<2>();
        Self { batch, l, d, n }
    }

    /// Checkpointed chunks of the sequence.
    fn chunks(&self) -> usize {
        self.l.div_ceil(CHUNK)
    }
}

/// Δ before the bias and the softplus: given, `[l, d]` per sequence, or in low rank, `low:
/// [l, rank]` per sequence times the shared `weight: [rank, d]`.
#[derive(Clone, Copy)]
enum Delta<'a> {
    Given(&'a [f32]),
    Projected {
        low: &'a [f32],
        rank: usize,
        weight: &'a [f32],
    },
}

impl<'a> Delta<'a> {
    /// The low rank of a projected Δ.
    fn rank(self) -> Option<usize> {
        match self {
            Self::Given(_) => None,
            Self::Projected { rank, .. } => Some(rank),
        }
    }

    /// Sequence `index`'s share of the whole batch's Δ.
    fn of_sequence(self, dims: Dims, index: usize) -> Self {
        match self {
            Self::Given(delta) => {
                let ld = dims.l * dims.d;
                Self::Given(&delta[index * ld..][..ld])
            }
            Self::Projected { low, rank, weight } => {
                let lr = dims.l * rank;
                Self::Projected {
                    low: &low[index * lr..][..lr],
                    rank,
                    weight,
                }
            }
        }
    }
}

/// One batch element's inputs: `u: [l, d]`, Δ, `b, c: [l, n]`, and `A` transposed to `at:
/// [n, d]`, so a block of channels reads each state index's `A` as one contiguous vector.
#[derive(Clone, Copy)]
struct Sequence<'a> {
    u: &'a [f32],
    delta: Delta<'a>,
    at: &'a [f32],
    b: &'a [f32],
    c: &'a [f32],
}

impl<'a> Sequence<'a> {
    fn of(dims: Dims, index: usize, all: [&'a [f32]; 3], delta: Delta<'a>, at: &'a [f32]) -> Self {
        let [u, b, c] = all;
        let (ld, ln) = (dims.l * dims.d, dims.l * dims.n);
        Self {
            u: &u[index * ld..][..ld],
            delta: delta.of_sequence(dims, index),
            at,
            b: &b[index * ln..][..ln],
            c: &c[index * ln..][..ln],
        }
    }
}

/// The host values of either function's inputs, in the order of [`selective_scan_fn`]
/// (with a low-rank Δ: its factor, then its weight, in Δ's place).
struct HostInputs {
    u: HostData,
    delta: HostData,
    dt_weight: Option<HostData>,
    a: HostData,
    b: HostData,
    c: HostData,
    d_skip: HostData,
    z: HostData,
    delta_bias: HostData,
}

impl HostInputs {
    fn read<B: Backend>(inputs: Vec<FloatTensor<B>>) -> Self {
        let projected = inputs.len() == 9;
        let mut data = inputs.into_iter().map(host_data::<B>);
        let mut next = || data.next().expect("8 or 9 inputs");
        let (u, delta) = (next(), next());
        let dt_weight = projected.then(&mut next);
        Self {
            u,
            delta,
            dt_weight,
            a: next(),
            b: next(),
            c: next(),
            d_skip: next(),
            z: next(),
            delta_bias: next(),
        }
    }

    fn delta(&self, dims: Dims) -> Delta<'_> {
        match &self.dt_weight {
            None => Delta::Given(values(&self.delta)),
            Some(weight) => Delta::Projected {
                low: values(&self.delta),
                rank: values(weight).len().checked_div(dims.d).unwrap_or(0),
                weight: values(weight),
            },
        }
    }
}

/// One batch element's inputs around the scan: the gate `z: [l, d]`, and the per-channel `D`
/// and Δ bias, `[d]` each.
#[derive(Clone, Copy)]
struct Gate<'a> {
    z: &'a [f32],
    d_skip: &'a [f32],
    delta_bias: &'a [f32],
}

impl<'a> Gate<'a> {
    fn of(dims: Dims, index: usize, z: &'a [f32], d_skip: &'a [f32], bias: &'a [f32]) -> Self {
        let ld = dims.l * dims.d;
        Self {
            z: &z[index * ld..][..ld],
            d_skip,
            delta_bias: bias,
        }
    }
}

/// `[rows, cols]` to `[cols, rows]`.
fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    transpose_padded(x, rows, cols, rows)
}

/// What the forward keeps for the backward: the states before every [`CHUNK`]-th step,
/// `[b, chunks, n, d]` (so the backward need not rescan to find them), and the output before
/// the gate, `scan + D ⊙ u`, `[b, l, d]`.
type Saved<B> = (FloatTensor<B>, FloatTensor<B>);

/// The fused function's output and, when `keep`, what the backward needs ([`Saved`]). Inputs
/// in [`selective_scan_fn`]'s order (9 inputs with a low-rank Δ).
fn forward_host<B: Backend>(
    inputs: Vec<FloatTensor<B>>,
    keep: bool,
) -> (FloatTensor<B>, Option<Saved<B>>) {
    let device = inputs[0].device();
    let dims = Dims::of::<B>(&inputs);
    let host = HostInputs::read::<B>(inputs);
    let all = [&host.u, &host.b, &host.c].map(values);
    let delta = host.delta(dims);
    let (z, d_skip) = (values(&host.z), values(&host.d_skip));
    let delta_bias = values(&host.delta_bias);
    let at = transpose(values(&host.a), dims.d, dims.n); // [n, d]
    let ld = dims.l * dims.d;
    let mut out = vec![0.0f32; dims.batch * ld];
    let mut ys = vec![0.0f32; if keep { dims.batch * ld } else { 0 }];
    let per_sequence = dims.chunks() * dims.n * dims.d;
    let mut checkpoints = vec![0.0f32; if keep { dims.batch * per_sequence } else { 0 }];
    let mut saved: Vec<Option<(&mut [f32], &mut [f32])>> = if keep {
        checkpoints
            .chunks_mut(per_sequence)
            .zip(ys.chunks_mut(ld))
            .map(Some)
            .collect()
    } else {
        (0..dims.batch).map(|_| None).collect()
    };
    let items = out
        .chunks_mut(ld)
        .zip(saved.drain(..))
        .enumerate()
        .collect();
    parallel(items, |(index, (out, saved))| {
        let (checkpoints, ys) = saved.unzip();
        pulp::Arch::new().dispatch(ForwardSequence {
            dims,
            seq: Sequence::of(dims, index, all, delta, &at),
            gate: Gate::of(dims, index, z, d_skip, delta_bias),
            out,
            ys,
            checkpoints,
        });
    });
    let tensor = |values: Vec<f32>, shape: [usize; 3]| {
        B::float_from_data(TensorData::new(values, shape), &device)
    };
    let out = tensor(out, [dims.batch, dims.l, dims.d]);
    let saved = keep.then(|| {
        (
            B::float_from_data(
                TensorData::new(checkpoints, [dims.batch, dims.chunks(), dims.n, dims.d]),
                &device,
            ),
            tensor(ys, [dims.batch, dims.l, dims.d]),
        )
    });
    (out, saved)
}

/// `σ(x)` on a vector.
#[inline(always)]
fn sigmoid_simd<S: pulp::Simd>(simd: S, x: S::f32s) -> S::f32s {
    let one = simd.splat_f32s(1.0);
    simd.div_f32s(one, simd.add_f32s(one, exp_simd(simd, simd.neg_f32s(x))))
}

/// `softplus(x) = max(x, 0) + ln(1 + e)` on a vector, with `e = exp(−|x|)`, and its slope
/// `σ(x)`, `1 / (1 + e)` for `x ≥ 0` and `e / (1 + e)` below: one `exp` for both. The logarithm
/// is [`super::ln_f32`]'s series: `1 + e` lies in `(1, 2]`, so its exponent is 0, or 1 at and
/// above `√2`.
#[inline(always)]
fn softplus_simd<S: pulp::Simd>(simd: S, x: S::f32s) -> (S::f32s, S::f32s) {
    let splat = |v: f32| simd.splat_f32s(v);
    let (zero, one) = (splat(0.0), splat(1.0));
    let e = exp_simd(simd, simd.neg_f32s(simd.abs_f32s(x)));
    let w = simd.add_f32s(one, e);
    let above = simd.greater_than_or_equal_f32s(w, splat(std::f32::consts::SQRT_2));
    let m = simd.select_f32s(above, simd.mul_f32s(w, splat(0.5)), w);
    let exponent = simd.select_f32s(above, splat(std::f32::consts::LN_2), zero);
    let t = simd.div_f32s(simd.sub_f32s(m, one), simd.add_f32s(m, one));
    let t2 = simd.mul_f32s(t, t);
    let mut p = simd.mul_add_f32s(t2, splat(1.0 / 11.0), splat(1.0 / 9.0));
    for coefficient in [1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0, 1.0] {
        p = simd.mul_add_f32s(p, t2, splat(coefficient));
    }
    let ln = simd.mul_add_f32s(simd.add_f32s(t, t), p, exponent);
    let value = simd.add_f32s(simd.max_f32s(x, zero), ln);
    let inverse = simd.div_f32s(one, w);
    let nonnegative = simd.greater_than_or_equal_f32s(x, zero);
    let slope = simd.select_f32s(nonnegative, inverse, simd.mul_f32s(e, inverse));
    (value, slope)
}

/// `exp(x)` on a vector: [`super::exp_f32`]'s range reduction and polynomial in pulp's SIMD ops.
#[inline(always)]
fn exp_simd<S: pulp::Simd>(simd: S, x: S::f32s) -> S::f32s {
    const ROUND: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to the nearest integer
    let splat = |v: f32| simd.splat_f32s(v);
    let x = simd.min_f32s(simd.max_f32s(x, splat(-87.0)), splat(88.0));
    let shifted = simd.mul_add_f32s(x, splat(std::f32::consts::LOG2_E), splat(ROUND));
    let n = simd.sub_f32s(shifted, splat(ROUND));
    // The low mantissa bits of `shifted` hold n as an integer: no float-to-int conversion.
    let n_bits = simd.sub_u32s(
        simd.transmute_u32s_f32s(shifted),
        simd.splat_u32s(ROUND.to_bits()),
    );
    let r = simd.negate_mul_add_f32s(n, splat(0.693_145_75), x); // ln2 split in two parts
    let r = simd.negate_mul_add_f32s(n, splat(1.428_606_8e-6), r);
    let mut p = simd.mul_add_f32s(r, splat(1.0 / 720.0), splat(1.0 / 120.0));
    for coefficient in [1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = simd.mul_add_f32s(p, r, splat(coefficient));
    }
    let exponent = simd.add_u32s(n_bits, simd.splat_u32s(127));
    let two_n = simd.transmute_f32s_u32s(simd.wrapping_dyn_shl_u32s(exponent, simd.splat_u32s(23)));
    simd.mul_f32s(p, two_n)
}

/// Channels `start..start + w` of one sequence: one SIMD vector of lanes, the last block
/// partial. The kernels scan block by block, so a block's `n` states (`n` vectors) stay in L1
/// for the whole sequence, instead of streaming the `[n, d]` state through the cache each step.
#[derive(Clone, Copy)]
struct Block {
    start: usize,
    w: usize,
}

impl Block {
    /// The blocks covering `d` channels, `lanes` wide.
    fn all(d: usize, lanes: usize) -> impl Iterator<Item = Self> {
        (0..d).step_by(lanes).map(move |start| Self {
            start,
            w: lanes.min(d - start),
        })
    }

    /// Row `row` of a row-major `[rows, d]` array, this block's lanes (zero beyond `w`: a zero
    /// Δ and input keep the padding lanes' states at zero).
    #[inline(always)]
    fn load<S: pulp::Simd>(&self, simd: S, x: &[f32], d: usize, row: usize) -> S::f32s {
        let src = &x[row * d + self.start..][..self.w];
        // pulp's partial loads call out of line: full blocks take a plain vector load.
        match S::as_simd_f32s(src) {
            ([full], _) => *full,
            _ => simd.partial_load_f32s(src),
        }
    }

    /// Store this block's lanes into row `row` of a row-major `[rows, d]` array.
    #[inline(always)]
    fn store<S: pulp::Simd>(&self, simd: S, x: &mut [f32], d: usize, row: usize, v: S::f32s) {
        let dst = &mut x[row * d + self.start..][..self.w];
        match S::as_mut_simd_f32s(dst) {
            ([full], _) => *full = v,
            (_, dst) => simd.partial_store_f32s(dst, v),
        }
    }
}

/// A chunk's rows of one `[l, d]` input or output, staged block-major (`[blocks, span]` vectors:
/// block `j`'s lanes of row `τ` at `j · span + τ`). Rows are read and written in order, all
/// blocks of a row at once, so memory is streamed; the scans then read each block's lanes from
/// this buffer. (Read block by block instead, each row's load waited on memory: rows are `d`
/// floats apart, and the step's long state loop hid nothing.)
struct Staged<V> {
    span: usize,
    rows: Vec<V>,
}

impl<V: Copy> Staged<V> {
    fn new(blocks: usize, span: usize, zero: V) -> Self {
        Self {
            span,
            rows: vec![zero; blocks * span],
        }
    }

    /// Block `j`'s lanes of the chunk's rows.
    #[inline(always)]
    fn block(&self, j: usize) -> &[V] {
        &self.rows[j * self.span..][..self.span]
    }

    #[inline(always)]
    fn block_mut(&mut self, j: usize) -> &mut [V] {
        &mut self.rows[j * self.span..][..self.span]
    }

    /// Stage rows `first..first + len` of a row-major `[rows, d]` array.
    #[inline(always)]
    fn gather<S: pulp::Simd<f32s = V>>(
        &mut self,
        simd: S,
        blocks: &[Block],
        x: &[f32],
        d: usize,
        first: usize,
        len: usize,
    ) {
        for tau in 0..len {
            for (j, block) in blocks.iter().enumerate() {
                self.rows[j * self.span + tau] = block.load(simd, x, d, first + tau);
            }
        }
    }

    /// Stage Δ's rows `first..first + len` from its low rank: `low: [l, rank]` times the weight,
    /// staged as `[blocks, rank]` vectors.
    #[inline(always)]
    fn project<S: pulp::Simd<f32s = V>>(
        &mut self,
        simd: S,
        weight: &[V],
        low: &[f32],
        rank: usize,
        first: usize,
        len: usize,
    ) {
        for tau in 0..len {
            let row = &low[(first + tau) * rank..][..rank];
            for (j, w) in weight.chunks_exact(rank.max(1)).enumerate() {
                let mut delta = simd.splat_f32s(0.0);
                for (&low, &w) in row.iter().zip(w) {
                    delta = simd.mul_add_f32s(simd.splat_f32s(low), w, delta);
                }
                self.rows[j * self.span + tau] = delta;
            }
        }
    }

    /// Write the staged rows back to rows `first..first + len` of a row-major `[rows, d]` array.
    #[inline(always)]
    fn scatter<S: pulp::Simd<f32s = V>>(
        &self,
        simd: S,
        blocks: &[Block],
        x: &mut [f32],
        d: usize,
        first: usize,
        len: usize,
    ) {
        for tau in 0..len {
            for (j, block) in blocks.iter().enumerate() {
                block.store(simd, x, d, first + tau, self.rows[j * self.span + tau]);
            }
        }
    }
}

/// The inputs both kernels stage chunk by chunk: Δ (given, or formed from its low rank and the
/// weight, held here as `[blocks, rank]` vectors, empty for a given Δ), `u` and `z`.
struct StagedInputs<V> {
    weight: Vec<V>,
    delta: Staged<V>,
    u: Staged<V>,
    z: Staged<V>,
}

impl<V: Copy> StagedInputs<V> {
    fn new<S: pulp::Simd<f32s = V>>(
        simd: S,
        delta: Delta,
        blocks: &[Block],
        d: usize,
        span: usize,
    ) -> Self {
        let mut weight = Vec::new();
        if let Delta::Projected {
            rank, weight: w, ..
        } = delta
        {
            for block in blocks {
                for r in 0..rank {
                    weight.push(block.load(simd, w, d, r));
                }
            }
        }
        let staged = || Staged::new(blocks.len(), span, simd.splat_f32s(0.0));
        Self {
            weight,
            delta: staged(),
            u: staged(),
            z: staged(),
        }
    }

    /// Stage rows `rows` (one chunk) of Δ, `u` and the gate `z: [l, d]`.
    #[inline(always)]
    fn stage<S: pulp::Simd<f32s = V>>(
        &mut self,
        simd: S,
        seq: &Sequence,
        z: &[f32],
        blocks: &[Block],
        d: usize,
        rows: std::ops::Range<usize>,
    ) {
        let (first, len) = (rows.start, rows.len());
        match seq.delta {
            Delta::Given(delta) => self.delta.gather(simd, blocks, delta, d, first, len),
            Delta::Projected { low, rank, .. } => {
                self.delta
                    .project(simd, &self.weight, low, rank, first, len)
            }
        }
        self.u.gather(simd, blocks, seq.u, d, first, len);
        self.z.gather(simd, blocks, z, d, first, len);
    }
}

/// The forward over one sequence as a pulp SIMD operation: Δ through the softplus, the scan,
/// the skip and the gate; `ys` receives the output before the gate and `checkpoints` the state
/// before every [`CHUNK`]-th step, `[chunks, n, d]`, when the backward will need them.
struct ForwardSequence<'a> {
    dims: Dims,
    seq: Sequence<'a>,
    gate: Gate<'a>,
    out: &'a mut [f32],
    ys: Option<&'a mut [f32]>,
    checkpoints: Option<&'a mut [f32]>,
}

impl pulp::WithSimd for ForwardSequence<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Dims { l, d, n, .. } = self.dims;
        let (seq, gate) = (self.seq, self.gate);
        let (mut checkpoints, mut ys) = (self.checkpoints, self.ys);
        let zero = simd.splat_f32s(0.0);
        let blocks: Vec<Block> = Block::all(d, S::F32_LANES).collect();
        // Each block's `n` states, carried across chunks: `[blocks, n]` vectors.
        let mut h_all = vec![zero; blocks.len() * n];
        let mut a = vec![zero; n];
        let span = CHUNK.min(l);
        let mut dt_block = vec![zero; span]; // Δ after the softplus, the block's chunk
        let mut inputs = StagedInputs::new(simd, seq.delta, &blocks, d, span);
        let staged = || Staged::new(blocks.len(), span, zero);
        let (mut y_rows, mut out_rows) = (staged(), staged());
        for chunk in 0..self.dims.chunks() {
            let first = chunk * CHUNK;
            let len = CHUNK.min(l - first);
            inputs.stage(simd, &seq, gate.z, &blocks, d, first..first + len);
            for (j, block) in blocks.iter().enumerate() {
                let h = &mut h_all[j * n..][..n];
                if let Some(saved) = checkpoints.as_deref_mut() {
                    for (k, &h) in h.iter().enumerate() {
                        block.store(simd, saved, d, chunk * n + k, h);
                    }
                }
                for (k, a) in a.iter_mut().enumerate() {
                    *a = block.load(simd, seq.at, d, k);
                }
                let d_skip = block.load(simd, gate.d_skip, d, 0);
                let delta_bias = block.load(simd, gate.delta_bias, d, 0);
                let (delta, u) = (inputs.delta.block(j), inputs.u.block(j));
                let z = inputs.z.block(j);
                // The point-wise work before and after the scan runs in loops of its own: its
                // iterations are independent, so they overlap, where inside the step loop each
                // step's softplus and gate (two divisions, two exps) delayed the state loop.
                for tau in 0..len {
                    dt_block[tau] = softplus_simd(simd, simd.add_f32s(delta[tau], delta_bias)).0;
                }
                let y_block = y_rows.block_mut(j);
                for tau in 0..len {
                    let t = first + tau;
                    let dt = dt_block[tau];
                    let x = simd.mul_f32s(dt, u[tau]);
                    let (bt, ct) = (&seq.b[t * n..][..n], &seq.c[t * n..][..n]);
                    let mut y = simd.mul_f32s(d_skip, u[tau]);
                    for (((h, &a), &b), &c) in h.iter_mut().zip(&a).zip(bt).zip(ct) {
                        let decay = exp_simd(simd, simd.mul_f32s(dt, a));
                        let input = simd.mul_f32s(x, simd.splat_f32s(b));
                        *h = simd.mul_add_f32s(decay, *h, input);
                        y = simd.mul_add_f32s(*h, simd.splat_f32s(c), y);
                    }
                    y_block[tau] = y;
                }
                let (y_block, out_block) = (y_rows.block(j), out_rows.block_mut(j));
                for tau in 0..len {
                    let z = z[tau];
                    out_block[tau] =
                        simd.mul_f32s(y_block[tau], simd.mul_f32s(z, sigmoid_simd(simd, z)));
                }
            }
            if let Some(ys) = ys.as_deref_mut() {
                y_rows.scatter(simd, &blocks, ys, d, first, len);
            }
            out_rows.scatter(simd, &blocks, self.out, d, first, len);
        }
    }
}

/// The gradient of one sequence's Δ: `[l, d]` when given; when projected, that of its low rank,
/// `[l, rank]`, and the sequence's share of the weight's, `[rank, d]`.
enum DeltaGrads<'a> {
    Given(&'a mut [f32]),
    Projected {
        low: &'a mut [f32],
        weight: &'a mut [f32],
    },
}

/// Gradients of one sequence: `du, dz: [l, d]`, Δ's ([`DeltaGrads`]), `db, dc: [l, n]`,
/// `da: [n, d]` (transposed), and this sequence's share of `dD` and the Δ bias's gradient,
/// `[d]` each.
struct SequenceGrads<'a> {
    du: &'a mut [f32],
    delta: DeltaGrads<'a>,
    dz: &'a mut [f32],
    db: &'a mut [f32],
    dc: &'a mut [f32],
    da: &'a mut [f32],
    d_skip: &'a mut [f32],
    delta_bias: &'a mut [f32],
}

/// The backward of one sequence as a pulp SIMD operation, from the forward's checkpoints
/// (`[chunks, n, d]`) and its output before the gate `ys: [l, d]`, block of channels by block:
/// per chunk, recompute the chunk's states and decays from its checkpoint, then run the reverse
/// recurrence over the chunk (module doc), entering through the gate and leaving through the
/// softplus.
struct BackwardSequence<'a> {
    dims: Dims,
    seq: Sequence<'a>,
    gate: Gate<'a>,
    ys: &'a [f32],
    dout: &'a [f32],
    checkpoints: &'a [f32],
    grads: SequenceGrads<'a>,
}

impl pulp::WithSimd for BackwardSequence<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Self {
            dims,
            seq,
            gate,
            ys,
            dout,
            checkpoints,
            mut grads,
        } = self;
        let Dims { l, d, n, .. } = dims;
        let (zero, one) = (simd.splat_f32s(0.0), simd.splat_f32s(1.0));
        let span = CHUNK.min(l);
        let blocks: Vec<Block> = Block::all(d, S::F32_LANES).collect();
        let mut inputs = StagedInputs::new(simd, seq.delta, &blocks, d, span);
        // A projected Δ's gradients: its low rank's, summed over the blocks lane by lane as dC,
        // `[l, rank]` vectors, and the weight's, per block, `[blocks, rank]` vectors.
        let rank = seq.delta.rank().unwrap_or(0);
        let mut dlow_lanes = vec![zero; l * rank];
        let mut dweight_all = vec![zero; inputs.weight.len()];
        // h_t and exp(Δ_t A) of the block and chunk being reversed, `[span, n]` vectors each.
        let (mut states, mut decays) = (vec![zero; span * n], vec![zero; span * n]);
        // Per state index: A, the state before the chunk (its checkpoint) and the running state
        // of the recomputation.
        let mut a = vec![zero; n];
        let (mut h0, mut h) = (vec![zero; n], vec![zero; n]);
        // Carried across chunks, per block: g (exp(Δ_{t+1} A) ⊙ dL/dh_{t+1}, carried backwards)
        // and dA, `[blocks, n]` vectors each; dD and the Δ bias's gradient, `[blocks]`.
        let (mut g_all, mut da_all) = (vec![zero; blocks.len() * n], vec![zero; blocks.len() * n]);
        let (mut d_skip_all, mut bias_all) = (vec![zero; blocks.len()], vec![zero; blocks.len()]);
        // dC_t[k] and dB_t[k] summed over the blocks lane by lane, `[l, n]` vectors each: one
        // horizontal sum per (t, k) at the end instead of two per block.
        let (mut dc_lanes, mut db_lanes) = (vec![zero; l * n], vec![zero; l * n]);
        // The block's Δ after the softplus and the softplus's slope over the chunk.
        let (mut dt_block, mut slope_block) = (vec![zero; span], vec![zero; span]);
        let mut dy_block = vec![zero; span]; // the gradient at the output before the gate
        let staged = || Staged::new(blocks.len(), span, zero);
        let (mut dout_rows, mut ys_rows) = (staged(), staged());
        let (mut du_rows, mut ddelta_rows, mut dz_rows) = (staged(), staged(), staged());
        for chunk in (0..dims.chunks()).rev() {
            let first = chunk * CHUNK;
            let len = CHUNK.min(l - first);
            inputs.stage(simd, &seq, gate.z, &blocks, d, first..first + len);
            dout_rows.gather(simd, &blocks, dout, d, first, len);
            ys_rows.gather(simd, &blocks, ys, d, first, len);
            for (j, block) in blocks.iter().enumerate() {
                for (k, a) in a.iter_mut().enumerate() {
                    *a = block.load(simd, seq.at, d, k);
                }
                let d_skip = block.load(simd, gate.d_skip, d, 0);
                let delta_bias = block.load(simd, gate.delta_bias, d, 0);
                let (g, da) = (&mut g_all[j * n..][..n], &mut da_all[j * n..][..n]);
                let (u_block, z_block) = (inputs.u.block(j), inputs.z.block(j));
                let (dout_block, ys_block) = (dout_rows.block(j), ys_rows.block(j));
                let delta_block = inputs.delta.block(j);
                for tau in 0..len {
                    (dt_block[tau], slope_block[tau]) =
                        softplus_simd(simd, simd.add_f32s(delta_block[tau], delta_bias));
                }
                for k in 0..n {
                    h0[k] = block.load(simd, checkpoints, d, chunk * n + k);
                    h[k] = h0[k];
                }
                for tau in 0..len {
                    let t = first + tau;
                    let dt = dt_block[tau];
                    let x = simd.mul_f32s(dt, u_block[tau]);
                    let bt = &seq.b[t * n..][..n];
                    let states_t = &mut states[tau * n..][..n];
                    let decays_t = &mut decays[tau * n..][..n];
                    for k in 0..n {
                        let decay = exp_simd(simd, simd.mul_f32s(dt, a[k]));
                        let input = simd.mul_f32s(x, simd.splat_f32s(bt[k]));
                        h[k] = simd.mul_add_f32s(decay, h[k], input);
                        states_t[k] = h[k];
                        decays_t[k] = decay;
                    }
                }
                // Through the gate, in a loop of its own (see the forward): out = ys ⊙ z σ(z),
                // SiLU' = σ(z)(1 + z(1 − σ(z))); dy_block receives the gradient at ys.
                let dz_block = dz_rows.block_mut(j);
                for tau in 0..len {
                    let (z, dout_t) = (z_block[tau], dout_block[tau]);
                    let sz = sigmoid_simd(simd, z);
                    dy_block[tau] = simd.mul_f32s(dout_t, simd.mul_f32s(z, sz));
                    let silu_slope =
                        simd.mul_f32s(sz, simd.mul_add_f32s(z, simd.sub_f32s(one, sz), one));
                    dz_block[tau] = simd.mul_f32s(simd.mul_f32s(dout_t, ys_block[tau]), silu_slope);
                }
                let (mut d_skip_grad, mut bias_grad) = (d_skip_all[j], bias_all[j]);
                for tau in (0..len).rev() {
                    let t = first + tau;
                    let (dt, u) = (dt_block[tau], u_block[tau]);
                    let x = simd.mul_f32s(dt, u);
                    let dy_t = dy_block[tau];
                    d_skip_grad = simd.mul_add_f32s(dy_t, u, d_skip_grad);
                    let (bt, ct) = (&seq.b[t * n..][..n], &seq.c[t * n..][..n]);
                    // Σ_n g_t A exp(Δ_t A) h_{t−1} and Σ_n g_t B_t: dΔ_t = the first + u_t · the
                    // second, du_t = Δ_t · the second (+ the skip's share).
                    let (mut through_decays, mut through_inputs) = (zero, zero);
                    // Row slices of length n, so the loop over k indexes without bounds checks.
                    let (states_t, decays_t) = (&states[tau * n..][..n], &decays[tau * n..][..n]);
                    let prev = if tau > 0 {
                        &states[(tau - 1) * n..][..n]
                    } else {
                        &h0[..n]
                    };
                    let (dc_t, db_t) = (&mut dc_lanes[t * n..][..n], &mut db_lanes[t * n..][..n]);
                    let a = &a[..n];
                    for k in 0..n {
                        // dL/dh_t for this state index, then its share carried to h_{t−1}.
                        let g_t = simd.mul_add_f32s(dy_t, simd.splat_f32s(ct[k]), g[k]);
                        let carried = simd.mul_f32s(g_t, decays_t[k]);
                        dc_t[k] = simd.mul_add_f32s(dy_t, states_t[k], dc_t[k]);
                        db_t[k] = simd.mul_add_f32s(g_t, x, db_t[k]);
                        // dL/d(Δ_t A) before the factor A.
                        let through_decay = simd.mul_f32s(carried, prev[k]);
                        through_decays = simd.mul_add_f32s(through_decay, a[k], through_decays);
                        through_inputs =
                            simd.mul_add_f32s(g_t, simd.splat_f32s(bt[k]), through_inputs);
                        da[k] = simd.mul_add_f32s(through_decay, dt, da[k]);
                        g[k] = carried;
                    }
                    // Through the softplus to the raw Δ, and the skip's share of du.
                    let ddelta = simd.mul_add_f32s(through_inputs, u, through_decays);
                    let ddelta = simd.mul_f32s(ddelta, slope_block[tau]);
                    bias_grad = simd.add_f32s(bias_grad, ddelta);
                    ddelta_rows.block_mut(j)[tau] = ddelta;
                    du_rows.block_mut(j)[tau] =
                        simd.mul_add_f32s(through_inputs, dt, simd.mul_f32s(dy_t, d_skip));
                }
                (d_skip_all[j], bias_all[j]) = (d_skip_grad, bias_grad);
            }
            du_rows.scatter(simd, &blocks, grads.du, d, first, len);
            match (&mut grads.delta, seq.delta) {
                (DeltaGrads::Given(ddelta), _) => {
                    ddelta_rows.scatter(simd, &blocks, ddelta, d, first, len);
                }
                (DeltaGrads::Projected { .. }, Delta::Projected { low, .. }) => {
                    // dlow_t = Σ_d dΔ_t W[·, d] (lane by lane), dW = Σ_t low_t dΔ_t (per block).
                    for tau in 0..len {
                        let t = first + tau;
                        let low_t = &low[t * rank..][..rank];
                        let dlow_t = &mut dlow_lanes[t * rank..][..rank];
                        let per_block = inputs
                            .weight
                            .chunks_exact(rank.max(1))
                            .zip(dweight_all.chunks_exact_mut(rank.max(1)));
                        for (j, (w, dw)) in per_block.enumerate() {
                            let ddelta = ddelta_rows.rows[j * span + tau];
                            for r in 0..rank {
                                dlow_t[r] = simd.mul_add_f32s(ddelta, w[r], dlow_t[r]);
                                dw[r] = simd.mul_add_f32s(simd.splat_f32s(low_t[r]), ddelta, dw[r]);
                            }
                        }
                    }
                }
                (DeltaGrads::Projected { .. }, Delta::Given(_)) => {
                    unreachable!("a projected Δ's gradients for a given Δ")
                }
            }
            dz_rows.scatter(simd, &blocks, grads.dz, d, first, len);
        }
        for (j, block) in blocks.iter().enumerate() {
            for (k, &da) in da_all[j * n..][..n].iter().enumerate() {
                block.store(simd, grads.da, d, k, da);
            }
            block.store(simd, grads.d_skip, d, 0, d_skip_all[j]);
            block.store(simd, grads.delta_bias, d, 0, bias_all[j]);
        }
        for (j, (dc, db)) in dc_lanes.iter().zip(&db_lanes).enumerate() {
            grads.dc[j] = simd.reduce_sum_f32s(*dc);
            grads.db[j] = simd.reduce_sum_f32s(*db);
        }
        if let DeltaGrads::Projected { low, weight } = grads.delta {
            for (out, lanes) in low.iter_mut().zip(&dlow_lanes) {
                *out = simd.reduce_sum_f32s(*lanes);
            }
            for (block, dw) in blocks.iter().zip(dweight_all.chunks_exact(rank.max(1))) {
                for (r, &dw) in dw.iter().enumerate() {
                    block.store(simd, weight, d, r, dw);
                }
            }
        }
    }
}

/// The gradients of the eight inputs, in [`selective_scan_fn`]'s order.
fn backward_host<B: Backend>(state: ScanState<B>, dout: FloatTensor<B>) -> Vec<FloatTensor<B>> {
    let inputs = state.inputs;
    let device = inputs[0].device();
    let dims = Dims::of::<B>(&inputs);
    let low_shape = inputs[1].shape();
    let host = HostInputs::read::<B>(inputs);
    let [checkpoints, ys, dout] = [state.checkpoints, state.ys, dout].map(host_data::<B>);
    let all = [&host.u, &host.b, &host.c].map(values);
    let delta = host.delta(dims);
    let (z, d_skip) = (values(&host.z), values(&host.d_skip));
    let delta_bias = values(&host.delta_bias);
    let (checkpoints, ys, dout) = (values(&checkpoints), values(&ys), values(&dout));
    let per_sequence = dims.chunks() * dims.n * dims.d;
    let at = transpose(values(&host.a), dims.d, dims.n); // [n, d]
    let (ld, ln, dn) = (dims.l * dims.d, dims.l * dims.n, dims.d * dims.n);
    let zeros = |len: usize| vec![0.0f32; dims.batch * len];
    let (mut du, mut dz) = (zeros(ld), zeros(ld));
    let (mut db, mut dc) = (zeros(ln), zeros(ln));
    let (mut da_parts, mut d_skip_parts, mut bias_parts) =
        (zeros(dn), zeros(dims.d), zeros(dims.d));
    // Δ's gradient: `[b, l, d]` when given; `[b, l, rank]` and per-sequence `[rank, d]` weight
    // parts when projected.
    let rank = delta.rank();
    let (mut ddelta, mut dweight_parts) = match rank {
        None => (zeros(ld), Vec::new()),
        Some(rank) => (zeros(dims.l * rank), zeros(rank * dims.d)),
    };
    let delta_grads: Vec<DeltaGrads> = match rank {
        None => ddelta.chunks_mut(ld).map(DeltaGrads::Given).collect(),
        Some(rank) => ddelta
            .chunks_mut((dims.l * rank).max(1))
            .zip(dweight_parts.chunks_mut((rank * dims.d).max(1)))
            .map(|(low, weight)| DeltaGrads::Projected { low, weight })
            .collect(),
    };
    let items = du
        .chunks_mut(ld)
        .zip(delta_grads)
        .zip(dz.chunks_mut(ld))
        .zip(db.chunks_mut(ln).zip(dc.chunks_mut(ln)))
        .zip(da_parts.chunks_mut(dn))
        .zip(
            d_skip_parts
                .chunks_mut(dims.d)
                .zip(bias_parts.chunks_mut(dims.d)),
        )
        .enumerate()
        .collect();
    parallel(
        items,
        |(index, (((((du, delta_grads), dz), (db, dc)), da), (d_skip_grad, bias_grad)))| {
            pulp::Arch::new().dispatch(BackwardSequence {
                dims,
                seq: Sequence::of(dims, index, all, delta, &at),
                gate: Gate::of(dims, index, z, d_skip, delta_bias),
                ys: &ys[index * ld..][..ld],
                dout: &dout[index * ld..][..ld],
                checkpoints: &checkpoints[index * per_sequence..][..per_sequence],
                grads: SequenceGrads {
                    du,
                    delta: delta_grads,
                    dz,
                    db,
                    dc,
                    da,
                    d_skip: d_skip_grad,
                    delta_bias: bias_grad,
                },
            });
        },
    );
    let da = transpose(&sum_parts(&da_parts, dn), dims.n, dims.d);
    let tensor = |values: Vec<f32>, shape: Vec<usize>| {
        B::float_from_data(TensorData::new(values, shape), &device)
    };
    let (sequence, states) = (
        vec![dims.batch, dims.l, dims.d],
        vec![dims.batch, dims.l, dims.n],
    );
    let mut grads = vec![tensor(du, sequence.clone())];
    match rank {
        None => grads.push(tensor(ddelta, sequence.clone())),
        Some(rank) => {
            grads.push(tensor(ddelta, low_shape.dims::<3>().to_vec()));
            let dweight = sum_parts(&dweight_parts, rank * dims.d);
            grads.push(tensor(dweight, vec![rank, dims.d]));
        }
    }
    grads.extend([
        tensor(da, vec![dims.d, dims.n]),
        tensor(db, states.clone()),
        tensor(dc, states),
        tensor(sum_parts(&d_skip_parts, dims.d), vec![dims.d]),
        tensor(dz, sequence),
        tensor(sum_parts(&bias_parts, dims.d), vec![dims.d]),
    ]);
    grads
}

/// What the backward pass needs: the inputs (8, or 9 with a projected Δ), the forward's state
/// checkpoints (the states in between are recomputed) and its output before the gate.
#[derive(Clone, Debug)]
struct ScanState<B: Backend> {
    inputs: Vec<FloatTensor<B>>,
    checkpoints: FloatTensor<B>,
    ys: FloatTensor<B>,
}

/// The backward of either function; `N` is its input count (8, or 9 with a projected Δ).
#[derive(Debug)]
struct ScanBackward<const N: usize>;

impl<const N: usize> HostBackward<N> for ScanBackward<N> {
    type State<B: Backend> = ScanState<B>;

    fn backward<B: Backend>(
        state: ScanState<B>,
        dout: FloatTensor<B>,
        _: [bool; N],
    ) -> [Option<FloatTensor<B>>; N] {
        let gradients: [FloatTensor<B>; N] = backward_host::<B>(state, dout)
            .try_into()
            .unwrap_or_else(|_| unreachable!("one gradient per input"));
        gradients.map(Some)
    }
}

/// Either function on the autodiff backend: tracked, the forward keeps [`ScanState`].
fn autodiff_scan<B: Backend + ScanBackend, C: CheckpointStrategy, const N: usize>(
    inputs: [FloatTensor<Autodiff<B, C>>; N],
    untracked: impl FnOnce([FloatTensor<B>; N]) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    autodiff_op::<ScanBackward<N>, B, C, N>(
        inputs,
        |inputs| {
            let (out, saved) = forward_host::<B>(inputs.to_vec(), true);
            let (checkpoints, ys) = saved.expect("asked for");
            let inputs = inputs.to_vec();
            (
                out,
                ScanState {
                    inputs,
                    checkpoints,
                    ys,
                },
            )
        },
        untracked,
    )
}

impl<B: Backend + ScanBackend, C: CheckpointStrategy> ScanBackend for Autodiff<B, C> {
    fn selective_scan_fn(inputs: ScanPrimitives<Self>) -> FloatTensor<Self> {
        autodiff_scan::<B, C, 8>(inputs.into_array(), |inputs| {
            B::selective_scan_fn(ScanPrimitives::from_array(inputs))
        })
    }

    fn selective_scan_fn_projected(inputs: ProjectedScanPrimitives<Self>) -> FloatTensor<Self> {
        autodiff_scan::<B, C, 9>(inputs.into_array(), |inputs| {
            B::selective_scan_fn_projected(ProjectedScanPrimitives::from_array(inputs))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{assert_close, flat, max_rel};
    use burn::tensor::Distribution;

    /// Random inputs in [`selective_scan_fn`]'s order: raw Δ around the softplus's bend, A < 0
    /// as −exp(A_log).
    fn inputs(batch: usize, l: usize, d: usize, n: usize, device: &Device) -> [Tensor<3>; 8] {
        let normal = Distribution::Normal(0.0, 1.0);
        let seq = |dist| Tensor::<3>::random([batch, l, d], dist, device);
        let states = || Tensor::<3>::random([batch, l, n], normal, device);
        let channels = |dist| Tensor::<1>::random([d], dist, device).reshape([1, 1, d]);
        [
            seq(normal),
            seq(Distribution::Uniform(-4.0, 1.0)),
            -Tensor::<3>::random([1, d, n], Distribution::Uniform(0.5, 4.0), device),
            states(),
            states(),
            channels(normal),
            seq(normal),
            channels(Distribution::Uniform(-2.0, 0.5)),
        ]
    }

    /// Both paths on the same inputs; `track` asks for the output and all eight gradients.
    fn run(
        fused: bool,
        inputs: &[Tensor<3>; 8],
        weights: &Tensor<3>,
        track: bool,
    ) -> Vec<Vec<f32>> {
        let inputs = inputs
            .clone()
            .map(|t| if track { t.require_grad() } else { t });
        let [u, delta, a, b, c, d_skip, z, bias] = inputs.clone();
        let [_, d, n] = a.dims();
        let f = if fused {
            selective_scan_fn
        } else {
            selective_scan_fn_reference
        };
        let out = f(ScanInputs {
            u,
            delta: DeltaInput::Full(delta),
            a: a.reshape([d, n]),
            b,
            c,
            d_skip: d_skip.reshape([d]),
            z,
            delta_bias: bias.reshape([d]),
        });
        let mut results = vec![flat(out.clone())];
        if track {
            let grads = (out * weights.clone()).sum().backward();
            results.extend(inputs.iter().map(|x| flat(x.grad(&grads).unwrap())));
        }
        results
    }

    /// Fused against the per-step reference: output and the gradients of all eight inputs.
    fn check(batch: usize, l: usize, d: usize, n: usize) {
        let device = Device::flex().autodiff();
        device.seed((batch * 10_000 + l * 100 + d) as u64);
        let inputs = inputs(batch, l, d, n, &device);
        let weights = Tensor::<3>::random([batch, l, d], Distribution::Normal(0.0, 1.0), &device);
        let fused = run(true, &inputs, &weights, true);
        let reference = run(false, &inputs, &weights, true);
        let names = [
            "out",
            "du",
            "ddelta",
            "dA",
            "dB",
            "dC",
            "dD",
            "dz",
            "ddelta_bias",
        ];
        let context = format!("b{batch} l{l} d{d} n{n}");
        assert_close(&names, &fused, &reference, 1e-4, &context);
    }

    /// The projected form against burn's product into the per-step reference: output and the
    /// gradients of all nine inputs.
    fn check_projected(batch: usize, l: usize, d: usize, n: usize, rank: usize) {
        let device = Device::flex().autodiff();
        device.seed((batch * 10_000 + l * 100 + d + rank) as u64);
        let [u, _, a, b, c, d_skip, z, bias] = inputs(batch, l, d, n, &device);
        let normal = Distribution::Normal(0.0, 1.0);
        let low = Tensor::<3>::random([batch, l, rank], normal, &device);
        let weight = Tensor::<2>::random([rank, d], Distribution::Uniform(-1.0, 1.0), &device);
        let weights = Tensor::<3>::random([batch, l, d], normal, &device);
        let run = |fused: bool| {
            let [u, low, b, c, z] = [&u, &low, &b, &c, &z].map(|t| t.clone().require_grad());
            let [a, d_skip, bias] = [&a, &d_skip, &bias].map(|t| t.clone().require_grad());
            let weight = weight.clone().require_grad();
            let f = if fused {
                selective_scan_fn
            } else {
                selective_scan_fn_reference
            };
            let out = f(ScanInputs {
                u: u.clone(),
                delta: DeltaInput::LowRank {
                    dt_low: low.clone(),
                    dt_weight: weight.clone(),
                },
                a: a.clone().reshape([d, n]),
                b: b.clone(),
                c: c.clone(),
                d_skip: d_skip.clone().reshape([d]),
                z: z.clone(),
                delta_bias: bias.clone().reshape([d]),
            });
            let grads = (out.clone() * weights.clone()).sum().backward();
            let mut results = vec![flat(out)];
            results.extend([&u, &low].map(|x| flat(x.grad(&grads).unwrap())));
            results.push(flat(weight.grad(&grads).unwrap()));
            results.extend([&a, &b, &c, &d_skip, &z, &bias].map(|x| flat(x.grad(&grads).unwrap())));
            results
        };
        let (fused, reference) = (run(true), run(false));
        let names = [
            "out",
            "du",
            "ddt_low",
            "ddt_weight",
            "dA",
            "dB",
            "dC",
            "dD",
            "dz",
            "ddelta_bias",
        ];
        let context = format!("b{batch} l{l} d{d} n{n} rank{rank}");
        assert_close(&names, &fused, &reference, 1e-4, &context);
    }

    #[test]
    fn projected_equals_reference_values_and_gradients() {
        check_projected(2, 1, 3, 4, 1); // length 1, rank 1
        check_projected(2, 7, 5, 16, 2);
        check_projected(3, CHUNK + 1, 3, 16, 3); // one step into the second chunk
        check_projected(2, CHUNK + 6, 37, 16, 4); // full SIMD blocks of channels and a partial one
    }

    #[test]
    fn fused_equals_reference_values_and_gradients() {
        check(2, 1, 3, 4); // length 1
        check(2, 7, 5, 16);
        check(1, CHUNK, 4, 8); // exactly one chunk
        check(3, CHUNK + 1, 3, 16); // one step into the second chunk
        check(2, 2 * CHUNK + 13, 2, 5); // not a multiple of anything
        check(2, CHUNK + 6, 37, 16); // full SIMD blocks of channels and a partial one
    }

    /// The vector softplus and its slope against f64 over [−30, 30] (one lane: pulp's scalar
    /// backend runs the same operations).
    #[test]
    fn softplus_and_slope_match_f64() {
        let simd = pulp::Scalar::new();
        let (mut value, mut slope) = (0.0f64, 0.0f64);
        for i in -30_000..=30_000 {
            let x = i as f32 * 1e-3;
            let (got, got_slope) = softplus_simd(simd, x);
            let x = f64::from(x);
            let want = x.max(0.0) + (-x.abs()).exp().ln_1p();
            let want_slope = 1.0 / (1.0 + (-x).exp());
            // Relative above 1, absolute below: ln(1 + e) rounds 1 + e in f32, as the scalar
            // softplus does.
            value = value.max((f64::from(got) - want).abs() / want.max(1.0));
            slope = slope.max((f64::from(got_slope) - want_slope).abs());
        }
        assert!(
            value < 1e-6 && slope < 1e-6,
            "value {value:e}, slope {slope:e}"
        );
    }

    #[test]
    fn inference_path_matches_reference() {
        let device = Device::flex();
        device.seed(9);
        let inputs = inputs(2, 9, 20, 6, &device);
        let weights = Tensor::<3>::ones([2, 9, 20], &device);
        let got = run(true, &inputs, &weights, false);
        let want = run(false, &inputs, &weights, false);
        assert!(max_rel(&got[0], &want[0]) < 1e-5);
    }
}
