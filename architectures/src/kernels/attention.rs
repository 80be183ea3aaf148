//! Fused scaled dot-product attention, `softmax(scale · Q Kᵀ + mask) V`, forward and backward on
//! the host, never materialising the `[b, h, lq, lk]` score or weight tensors.
//!
//! Composite attention in burn allocates and sweeps the scores four or five times (matmul, scale,
//! mask, softmax's max/exp/sum/divide, and as many passes backward); at PatchTST's ETTh1 recipe
//! (42 patches, head width 4) that made the exponentials and the page faults of those tensors the
//! largest costs of a training step. Like FlashAttention (Dao et al. 2022), the forward keeps only
//! the row log-sum-exp and the backward recomputes the weights from it:
//!
//! - forward, per query row `i`: `s_ij = scale · q_i·k_j`, `lse_i = log Σ_j exp(s_ij)`,
//!   `o_i = Σ_j exp(s_ij − lse_i) v_j`;
//! - backward: `p_ij = exp(s_ij − lse_i)`, `D_i = dO_i·o_i`, `ds_ij = p_ij (dO_i·v_j − D_i)`,
//!   `dq_i = scale Σ_j ds_ij k_j`, `dk_j = scale Σ_i ds_ij q_i`, `dv_j = Σ_i p_ij dO_i`.
//!
//! Query `i` sits at position `i + lk − lq` (the queries are the last `lq` positions). With a
//! causal [`Mask`] it sees keys `j ≤ i + lk − lq`; a local mask (Griffin's sliding window) also
//! hides keys more than `window` positions back, and the loops then touch only the visible keys,
//! so local attention costs `O(l · window)`, not `O(l²)`. Work is split over (batch, head) slabs on scoped threads, each slab compiled for
//! the CPU's widest SIMD through pulp's run-time dispatch.

#![allow(deprecated)] // burn-ndarray is deprecated upstream; it stays a selectable backend.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, NdArray, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::{Shape, TensorData};

use super::{
    HostBackward, autodiff_op, axpy, dot, exp_f32, exp_shifted, host_data, max, on_host_backend,
    parallel, sum, transpose_padded, values,
};

/// Which keys each query sees. Query `i` of `lq` sits at position `p = i + lk − lq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mask {
    /// Every key (a bidirectional encoder).
    Full,
    /// Keys at positions `≤ p`.
    Causal,
    /// Keys at positions in `[p − window, p]`: `window + 1` keys with the query's own, as
    /// recurrentgemma's local attention (`q_pos ≥ k_pos` and `q_pos ≤ k_pos + window`).
    Local(usize),
}

impl Mask {
    /// `(causal, window)` as the backend extension carries them; `usize::MAX` is no window.
    fn encode(self) -> (bool, usize) {
        match self {
            Self::Full => (false, usize::MAX),
            Self::Causal => (true, usize::MAX),
            Self::Local(window) => (true, window),
        }
    }
}

/// Attention of `q: [b, h, lq, e]` over `k: [b, h, lk, e]`, `v: [b, h, lk, ev]` with weights
/// `softmax(scale · q kᵀ)` under `mask`. Returns `[b, h, lq, ev]`. Off the CPU backends it runs
/// the same function as composite burn ops.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Mask, scale: f32) -> Tensor<4> {
    if !on_host_backend(&q.device()) {
        return reference_attention(q, k, v, mask, scale);
    }
    let (causal, window) = mask.encode();
    Tensor::from_dispatch(<Dispatch as AttentionBackend>::fused_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        causal,
        window,
        scale,
    ))
}

/// The same attention from burn tensor operations: the reference the fused path is tested
/// against, and the path for other backends.
pub fn reference_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Mask,
    scale: f32,
) -> Tensor<4> {
    attention_weights(q, k, mask, scale).matmul(v)
}

/// The attention weights `softmax(scale · q kᵀ)`, `[b, h, lq, lk]`, materialised (for the
/// reference, and for attention dropout, which acts on them).
pub fn attention_weights(q: Tensor<4>, k: Tensor<4>, mask: Mask, scale: f32) -> Tensor<4> {
    let [b, h, lq, _] = q.dims();
    let lk = k.dims()[2];
    let device = q.device();
    let scores = q.matmul(k.swap_dims(2, 3)).mul_scalar(scale); // [b, h, lq, lk]
    // Query i sits at position i + lk − lq: tril_mask(offset) is true for keys strictly after
    // it, triu_mask(offset − w) for keys more than w before it.
    let offset = lk as i64 - lq as i64;
    let hidden = match mask {
        Mask::Full => return burn::tensor::activation::softmax(scores, 3),
        Mask::Causal => Tensor::<2, Bool>::tril_mask([lq, lk], offset, &device),
        Mask::Local(window) => Tensor::<2, Bool>::tril_mask([lq, lk], offset, &device).bool_or(
            Tensor::<2, Bool>::triu_mask([lq, lk], offset - window as i64, &device),
        ),
    };
    let scores = scores.mask_fill(
        hidden.reshape([1, 1, lq, lk]).expand([b, h, lq, lk]),
        f32::NEG_INFINITY,
    );
    burn::tensor::activation::softmax(scores, 3)
}

/// Backend extension: fused attention on host memory.
#[backend_extension(NdArray, Flex, Autodiff)]
pub trait AttentionBackend: Backend {
    /// Forward only (inference); see [`attention`].
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        causal: bool,
        window: usize,
        scale: f32,
    ) -> FloatTensor<Self> {
        forward_host::<Self>(q, k, v, (causal, window), scale).0
    }
}

impl AttentionBackend for Flex {}
impl AttentionBackend for NdArray {}

/// Sizes of one call: `n = b·h` slabs of `lq` queries over `lk` keys, widths `e` and `ev`, and
/// the mask as [`Mask::encode`] gives it.
#[derive(Clone, Copy, Debug)]
struct Dims {
    n: usize,
    lq: usize,
    lk: usize,
    e: usize,
    ev: usize,
    causal: bool,
    window: usize,
    scale: f32,
}

impl Dims {
    fn of(q: &Shape, v: &Shape, (causal, window): (bool, usize), scale: f32) -> (Self, [usize; 2]) {
        let [b, h, lq, e] = q.dims::<4>();
        let [_, _, lk, ev] = v.dims::<4>();
        let dims = Self {
            n: b * h,
            lq,
            lk,
            e,
            ev,
            causal,
            window,
            scale,
        };
        (dims, [b, h])
    }

    /// Keys query `i` sees: `lo..hi`.
    #[inline(always)]
    fn visible(&self, i: usize) -> (usize, usize) {
        let hi = if self.causal {
            (i + 1 + self.lk).saturating_sub(self.lq).min(self.lk)
        } else {
            self.lk
        };
        (hi.saturating_sub(self.window.saturating_add(1)), hi)
    }

    /// The visible keys of query `i` widened to whole vectors: `(lo, hi, a, z)` with
    /// `a ≤ lo ≤ hi ≤ z`, `a` and `z` multiples of [`VECTOR`] (or `z` the padded length).
    #[inline(always)]
    fn span(&self, i: usize, stride: usize) -> (usize, usize, usize, usize) {
        let (lo, hi) = self.visible(i);
        let a = lo / VECTOR * VECTOR;
        (lo, hi, a, hi.next_multiple_of(VECTOR).clamp(a, stride))
    }
}

/// Output `[b, h, lq, ev]` and row log-sum-exp `[b, h, lq]`.
fn forward_host<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    mask: (bool, usize),
    scale: f32,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let device = q.device();
    let (d, [b, h]) = Dims::of(&q.shape(), &v.shape(), mask, scale);
    let (q, k, v) = (host_data::<B>(q), host_data::<B>(k), host_data::<B>(v));
    let (q, k, v) = (values(&q), values(&k), values(&v));
    let mask = LaneMask::of(&d); // the same for every slab
    let mut out = vec![0.0f32; d.n * d.lq * d.ev];
    let mut lse = vec![0.0f32; d.n * d.lq];
    let slabs = out
        .chunks_mut(d.lq * d.ev)
        .zip(lse.chunks_mut(d.lq))
        .enumerate();
    parallel(slabs.collect(), |(s, (out, lse))| {
        let q = &q[s * d.lq * d.e..][..d.lq * d.e];
        let k = &k[s * d.lk * d.e..][..d.lk * d.e];
        let v = &v[s * d.lk * d.ev..][..d.lk * d.ev];
        pulp::Arch::new().dispatch(ForwardSlab {
            d,
            mask: &mask,
            q,
            k,
            v,
            out,
            lse,
        });
    });
    (
        B::float_from_data(TensorData::new(out, [b, h, d.lq, d.ev]), &device),
        B::float_from_data(TensorData::new(lse, [b, h, d.lq]), &device),
    )
}

/// [`forward_slab`] as a pulp SIMD operation.
struct ForwardSlab<'a> {
    d: Dims,
    /// Visible keys per query (the lane kernels').
    mask: &'a LaneMask,
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    out: &'a mut [f32],
    lse: &'a mut [f32],
}

impl pulp::WithSimd for ForwardSlab<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Self {
            d,
            mask,
            q,
            k,
            v,
            out,
            lse,
        } = self;
        match d.e.max(d.ev) {
            0..=4 => forward_slab_narrow::<4>(d, mask, q, k, v, out, lse),
            5..=NARROW => forward_slab_narrow::<NARROW>(d, mask, q, k, v, out, lse),
            _ => forward_slab(d, q, k, v, out, lse),
        }
    }
}

/// [`backward_slab`] as a pulp SIMD operation.
struct BackwardSlab<'a> {
    d: Dims,
    /// Visible keys per query (the lane kernels').
    mask: &'a LaneMask,
    x: Slab<'a>,
    dq: &'a mut [f32],
    dk: &'a mut [f32],
    dv: &'a mut [f32],
}

impl pulp::WithSimd for BackwardSlab<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Self {
            d,
            mask,
            x,
            dq,
            dk,
            dv,
        } = self;
        match d.e.max(d.ev) {
            0..=4 => backward_slab_narrow::<4>(d, mask, x, dq, dk, dv),
            5..=NARROW => backward_slab_narrow::<NARROW>(d, mask, x, dq, dk, dv),
            _ => backward_slab(d, x, dq, dk, dv),
        }
    }
}

/// Key rows are laid out `[width, stride]` with `stride = lk` rounded up to a whole number of
/// 16-float vectors and zero padding, so every inner loop runs on full vectors; weights beyond
/// the visible keys are set to exactly zero.
const VECTOR: usize = 16;

/// One (batch, head) slab's forward: `out: [lq, ev]`, `lse: [lq]`.
#[inline(always)] // inlined into pulp's dispatch, so it compiles with the detected SIMD features
fn forward_slab(d: Dims, q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], lse: &mut [f32]) {
    let stride = d.lk.next_multiple_of(VECTOR);
    let kt = transpose_padded(k, d.lk, d.e, stride); // [e, stride]
    // Narrow heads sum values along the keys (dots over the transposed layout); wide ones as
    // weighted rows (see combine_rows).
    let narrow = d.ev < VECTOR;
    let vt = if narrow {
        transpose_padded(v, d.lk, d.ev, stride) // [ev, stride]
    } else {
        Vec::new()
    };
    let mut buffer = vec![0.0f32; stride];
    for i in 0..d.lq {
        let (lo, hi, a, z) = d.span(i, stride);
        let p = &mut buffer[a..z];
        scores(&q[i * d.e..][..d.e], &kt, (a, stride), d.scale, p);
        let max = max(&p[lo - a..hi - a]);
        exp_shifted(p, max);
        p[..lo - a].fill(0.0);
        p[hi - a..].fill(0.0);
        let sum = sum(p);
        let o = &mut out[i * d.ev..][..d.ev];
        if narrow {
            for (c, o) in o.iter_mut().enumerate() {
                *o = dot(p, &vt[c * stride + a..c * stride + z]);
            }
        } else {
            combine_rows(&p[lo - a..hi - a], &v[lo * d.ev..hi * d.ev], o);
        }
        for o in o.iter_mut() {
            *o /= sum;
        }
        lse[i] = max + sum.ln();
    }
}

/// One slab's saved forward values and output gradient.
#[derive(Clone, Copy)]
struct Slab<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    o: &'a [f32],
    lse: &'a [f32],
    dout: &'a [f32],
}

/// One slab's backward: `dq: [lq, e]`, `dk: [lk, e]`, `dv: [lk, ev]`.
#[inline(always)] // see forward_slab
fn backward_slab(d: Dims, x: Slab<'_>, dq: &mut [f32], dk: &mut [f32], dv: &mut [f32]) {
    let stride = d.lk.next_multiple_of(VECTOR);
    let kt = transpose_padded(x.k, d.lk, d.e, stride); // [e, stride]
    let vt = transpose_padded(x.v, d.lk, d.ev, stride); // [ev, stride]
    let mut dkt = vec![0.0f32; d.e * stride]; // [e, stride]
    let mut dvt = vec![0.0f32; d.ev * stride]; // [ev, stride]
    let (mut p_buffer, mut ds_buffer) = (vec![0.0f32; stride], vec![0.0f32; stride]);
    for i in 0..d.lq {
        let (lo, hi, a, z) = d.span(i, stride);
        let (p, ds) = (&mut p_buffer[a..z], &mut ds_buffer[a..z]);
        let (qi, doi) = (&x.q[i * d.e..][..d.e], &x.dout[i * d.ev..][..d.ev]);
        scores(qi, &kt, (a, stride), d.scale, p);
        exp_shifted(p, x.lse[i]);
        p[..lo - a].fill(0.0);
        p[hi - a..].fill(0.0);
        // ds_j = p_j (dO_i·v_j − D_i), the dot products accumulated column by column.
        combine_columns(doi, &vt, (a, stride), ds);
        for (c, &g) in doi.iter().enumerate() {
            axpy(g, p, &mut dvt[c * stride + a..c * stride + z]);
        }
        let d_i = dot(doi, &x.o[i * d.ev..][..d.ev]);
        for (ds, &p) in ds.iter_mut().zip(p.iter()) {
            *ds = p * (*ds - d_i) * d.scale;
        }
        let dq = &mut dq[i * d.e..][..d.e];
        if d.e < VECTOR {
            for (c, dq) in dq.iter_mut().enumerate() {
                *dq = dot(ds, &kt[c * stride + a..c * stride + z]);
            }
        } else {
            combine_rows(&ds[lo - a..hi - a], &x.k[lo * d.e..hi * d.e], dq);
        }
        for (c, &qc) in qi.iter().enumerate() {
            axpy(qc, ds, &mut dkt[c * stride + a..c * stride + z]);
        }
    }
    untranspose(&dkt, d.lk, d.e, stride, dk);
    untranspose(&dvt, d.lk, d.ev, stride, dv);
}

/// `p_j = scale · q·k_{a+j}` for the key slots `a..a + p.len()`; `kt` is `[e, stride]`.
#[inline(always)]
fn scores(q: &[f32], kt: &[f32], (a, stride): (usize, usize), scale: f32, p: &mut [f32]) {
    combine_columns(q, kt, (a, stride), p);
    for v in p.iter_mut() {
        *v *= scale;
    }
}

/// `out_j = Σ_c w_c · cols[c·stride + a + j]` for `j < out.len()` (a multiple of [`VECTOR`]).
/// One vector of keys at a time with its sum in a local array, which stays in a register across
/// the whole sum over `c`: accumulating into `out` in memory instead chains every step through a
/// store and a reload (measured ~2x slower at 12 keys of width 32).
#[inline(always)]
fn combine_columns(weights: &[f32], cols: &[f32], (a, stride): (usize, usize), out: &mut [f32]) {
    for block in (0..out.len()).step_by(VECTOR) {
        let mut acc = [0.0f32; VECTOR];
        for (c, &w) in weights.iter().enumerate() {
            let col = &cols[c * stride + a + block..][..VECTOR];
            for lane in 0..VECTOR {
                acc[lane] += w * col[lane];
            }
        }
        out[block..][..VECTOR].copy_from_slice(&acc);
    }
}

/// `out = Σ_j w_j · rows[j]` with `rows` row-major `[w.len(), out.len()]`: the weighted sum of
/// value (or key) rows, one vector of output columns at a time, its sum kept in a register
/// (see [`combine_columns`]). For heads at least one vector wide it replaces one dot product per
/// output column, whose horizontal reductions dominated the forward at 12 keys of width 32
/// (forward 8.0 -> 4.4 ms at batch·heads 896).
#[inline(always)]
fn combine_rows(weights: &[f32], rows: &[f32], out: &mut [f32]) {
    let width = out.len();
    let full = width / VECTOR * VECTOR;
    for block in (0..full).step_by(VECTOR) {
        let mut acc = [0.0f32; VECTOR];
        for (j, &w) in weights.iter().enumerate() {
            let row = &rows[j * width + block..][..VECTOR];
            for lane in 0..VECTOR {
                acc[lane] += w * row[lane];
            }
        }
        out[block..][..VECTOR].copy_from_slice(&acc);
    }
    for (c, o) in out.iter_mut().enumerate().skip(full) {
        let mut total = 0.0f32;
        for (j, &w) in weights.iter().enumerate() {
            total += w * rows[j * width + c];
        }
        *o = total;
    }
}

/// `[cols, stride]` back to row-major `[rows, cols]` into `out`.
#[inline(always)]
fn untranspose(t: &[f32], rows: usize, cols: usize, stride: usize, out: &mut [f32]) {
    for (r, row) in out.chunks_exact_mut(cols).take(rows).enumerate() {
        for (c, value) in row.iter_mut().enumerate() {
            *value = t[c * stride + r];
        }
    }
}

// ---- Narrow heads: queries (forward, dq) or keys (dk, dv) across the vector lanes ----
//
// At PatchTST's head width 4 the row-at-a-time loops above end every query row in six
// horizontal reductions (max, sum, one dot per output column), and those reductions, not the
// arithmetic, set the speed. With 16 queries in the lanes instead, every product, exponential
// and sum runs down the lanes and no reduction is left; the backward adds a second sweep with 16
// keys in the lanes for dk and dv, recomputing the weights there (one more exponential per
// pair). Rows are padded to width `W` with zeros, which add nothing to any dot product.

/// Widest head (`max(e, ev)`) the lane kernels serve: `W = 8` keeps a sweep's accumulators
/// (2·W vectors) in registers.
const NARROW: usize = 8;

/// Rows of `[rows, width]` padded to `W` columns with zeros.
#[inline(always)]
fn padded_rows<const W: usize>(x: &[f32], rows: usize, width: usize) -> Vec<[f32; W]> {
    let mut out = vec![[0.0f32; W]; rows];
    for (padded, row) in out.iter_mut().zip(x.chunks_exact(width)) {
        padded[..width].copy_from_slice(row);
    }
    out
}

/// `[rows, width]` as blocks of [`VECTOR`] rows, each `[W][VECTOR]` (row `r` in lane
/// `r % VECTOR` of block `r / VECTOR`), zero beyond the rows and the width.
#[inline(always)]
fn lane_blocks<const W: usize>(x: &[f32], rows: usize, width: usize) -> Vec<[[f32; VECTOR]; W]> {
    let mut out = vec![[[0.0f32; VECTOR]; W]; rows.div_ceil(VECTOR)];
    for (r, row) in x.chunks_exact(width).take(rows).enumerate() {
        for (c, &value) in row.iter().enumerate() {
            out[r / VECTOR][c][r % VECTOR] = value;
        }
    }
    out
}

/// Per query, the visible keys `lo..hi` as floats (lane masks compare key indices against them),
/// padded to whole blocks with empty ranges; and each block's union of visible keys.
struct LaneMask {
    lo: Vec<f32>,
    hi: Vec<f32>,
    keys: Vec<(usize, usize)>,
}

impl LaneMask {
    fn of(d: &Dims) -> Self {
        let padded = d.lq.next_multiple_of(VECTOR);
        let (mut lo, mut hi) = (vec![0.0f32; padded], vec![0.0f32; padded]);
        let mut keys = vec![(usize::MAX, 0); padded / VECTOR];
        for i in 0..d.lq {
            let (l, h) = d.visible(i);
            (lo[i], hi[i]) = (l as f32, h as f32);
            let union = &mut keys[i / VECTOR];
            *union = (union.0.min(l), union.1.max(h));
        }
        for union in &mut keys {
            union.0 = union.0.min(union.1);
        }
        Self { lo, hi, keys }
    }
}

/// [`forward_slab`] for heads at most `W` wide: 16 queries at a time, scores of the visible keys
/// kept per lane, then weights and the weighted values down the lanes.
#[inline(always)]
fn forward_slab_narrow<const W: usize>(
    d: Dims,
    mask: &LaneMask,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &mut [f32],
    lse: &mut [f32],
) {
    let qt = lane_blocks::<W>(q, d.lq, d.e);
    let (k, v) = (
        padded_rows::<W>(k, d.lk, d.e),
        padded_rows::<W>(v, d.lk, d.ev),
    );
    let mut scores = vec![[0.0f32; VECTOR]; d.lk];
    for (block, qb) in qt.iter().enumerate() {
        let (first, last) = mask.keys[block];
        let lanes = block * VECTOR..(block + 1) * VECTOR;
        let (lo, hi) = (&mask.lo[lanes.clone()], &mask.hi[lanes]);
        let mut max = [f32::NEG_INFINITY; VECTOR];
        for j in first..last {
            // A local array, stored once: summing into `scores[j]` directly may alias and
            // compiles to scalar loads and stores.
            let mut s = [0.0f32; VECTOR];
            for c in 0..W {
                for lane in 0..VECTOR {
                    s[lane] += qb[c][lane] * k[j][c];
                }
            }
            let key = j as f32;
            for lane in 0..VECTOR {
                let visible = (key >= lo[lane]) & (key < hi[lane]);
                s[lane] = if visible {
                    s[lane] * d.scale
                } else {
                    f32::NEG_INFINITY
                };
                max[lane] = max[lane].max(s[lane]);
            }
            scores[j] = s;
        }
        // A lane that sees no key (padding) keeps max −∞: shift it by 0, not by −∞ (NaN).
        let shift = max.map(|m| if m == f32::NEG_INFINITY { 0.0 } else { m });
        let (mut total, mut acc) = ([0.0f32; VECTOR], [[0.0f32; VECTOR]; W]);
        for j in first..last {
            let mut p = [0.0f32; VECTOR];
            for lane in 0..VECTOR {
                let s = scores[j][lane];
                let weight = exp_f32(s - shift[lane]);
                p[lane] = if s == f32::NEG_INFINITY { 0.0 } else { weight };
                total[lane] += p[lane];
            }
            for c in 0..W {
                for lane in 0..VECTOR {
                    acc[c][lane] += p[lane] * v[j][c];
                }
            }
        }
        for lane in 0..VECTOR.min(d.lq - block * VECTOR) {
            let i = block * VECTOR + lane;
            for c in 0..d.ev {
                out[i * d.ev + c] = acc[c][lane] / total[lane];
            }
            lse[i] = max[lane] + total[lane].ln();
        }
    }
}

/// [`backward_slab`] for heads at most `W` wide: dq with 16 queries in the lanes, then dk and dv
/// with 16 keys in the lanes. Both sweeps form `s_ij` from the same products in the same order,
/// so they see the same weights.
#[inline(always)]
fn backward_slab_narrow<const W: usize>(
    d: Dims,
    mask: &LaneMask,
    x: Slab<'_>,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    // D_i = dO_i·o_i, padded to whole blocks (the padding's weights are all zero).
    let mut dot_do = vec![0.0f32; d.lq.next_multiple_of(VECTOR)];
    for (i, dd) in dot_do.iter_mut().enumerate().take(d.lq) {
        for c in 0..d.ev {
            *dd += x.dout[i * d.ev + c] * x.o[i * d.ev + c];
        }
    }
    let mut lse = vec![0.0f32; dot_do.len()];
    lse[..d.lq].copy_from_slice(x.lse);

    // dq_i = scale Σ_j ds_ij k_j, queries in the lanes.
    let (qt, dot) = (
        lane_blocks::<W>(x.q, d.lq, d.e),
        lane_blocks::<W>(x.dout, d.lq, d.ev),
    );
    let (k, v) = (
        padded_rows::<W>(x.k, d.lk, d.e),
        padded_rows::<W>(x.v, d.lk, d.ev),
    );
    for (block, (qb, dob)) in qt.iter().zip(&dot).enumerate() {
        let (first, last) = mask.keys[block];
        let lanes = block * VECTOR..(block + 1) * VECTOR;
        let (lo, hi) = (&mask.lo[lanes.clone()], &mask.hi[lanes.clone()]);
        let (lse, dd) = (&lse[lanes.clone()], &dot_do[lanes]);
        let mut acc = [[0.0f32; VECTOR]; W];
        for j in first..last {
            let (mut s, mut dp) = ([0.0f32; VECTOR], [0.0f32; VECTOR]);
            for c in 0..W {
                for lane in 0..VECTOR {
                    s[lane] += qb[c][lane] * k[j][c];
                    dp[lane] += dob[c][lane] * v[j][c];
                }
            }
            let key = j as f32;
            let mut ds = [0.0f32; VECTOR];
            for lane in 0..VECTOR {
                let p = exp_f32(s[lane] * d.scale - lse[lane]);
                let visible = (key >= lo[lane]) & (key < hi[lane]);
                ds[lane] = if visible {
                    p * (dp[lane] - dd[lane]) * d.scale
                } else {
                    0.0
                };
            }
            for c in 0..W {
                for lane in 0..VECTOR {
                    acc[c][lane] += ds[lane] * k[j][c];
                }
            }
        }
        let rows = dq[block * VECTOR * d.e..]
            .chunks_exact_mut(d.e.max(1))
            .take(VECTOR);
        for (lane, row) in rows.enumerate() {
            for (c, value) in row.iter_mut().enumerate() {
                *value = acc[c][lane];
            }
        }
    }

    // dk_j = scale Σ_i ds_ij q_i and dv_j = Σ_i p_ij dO_i, keys in the lanes.
    let (kt, vt) = (
        lane_blocks::<W>(x.k, d.lk, d.e),
        lane_blocks::<W>(x.v, d.lk, d.ev),
    );
    let (q, dout) = (
        padded_rows::<W>(x.q, d.lq, d.e),
        padded_rows::<W>(x.dout, d.lq, d.ev),
    );
    for (block, (kb, vb)) in kt.iter().zip(&vt).enumerate() {
        let first_key = block * VECTOR;
        let keys = first_key as f32;
        let (mut dk_acc, mut dv_acc) = ([[0.0f32; VECTOR]; W], [[0.0f32; VECTOR]; W]);
        for i in 0..d.lq {
            let (lo, hi) = (mask.lo[i], mask.hi[i]);
            if hi <= keys || lo >= keys + VECTOR as f32 {
                continue; // query i sees none of these keys
            }
            let (mut s, mut dp) = ([0.0f32; VECTOR], [0.0f32; VECTOR]);
            for c in 0..W {
                for lane in 0..VECTOR {
                    s[lane] += q[i][c] * kb[c][lane];
                    dp[lane] += dout[i][c] * vb[c][lane];
                }
            }
            let mut p = [0.0f32; VECTOR];
            let mut ds = [0.0f32; VECTOR];
            for lane in 0..VECTOR {
                let key = keys + lane as f32;
                let weight = exp_f32(s[lane] * d.scale - lse[i]);
                p[lane] = if (key >= lo) & (key < hi) {
                    weight
                } else {
                    0.0
                };
                ds[lane] = p[lane] * (dp[lane] - dot_do[i]) * d.scale;
            }
            for c in 0..W {
                for lane in 0..VECTOR {
                    dk_acc[c][lane] += ds[lane] * q[i][c];
                    dv_acc[c][lane] += p[lane] * dout[i][c];
                }
            }
        }
        for lane in 0..VECTOR.min(d.lk - first_key) {
            let j = first_key + lane;
            for c in 0..d.e {
                dk[j * d.e + c] = dk_acc[c][lane];
            }
            for c in 0..d.ev {
                dv[j * d.ev + c] = dv_acc[c][lane];
            }
        }
    }
}

/// What the backward pass needs.
#[derive(Clone, Debug)]
struct AttentionState<B: Backend> {
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    out: FloatTensor<B>,
    lse: FloatTensor<B>,
    mask: (bool, usize),
    scale: f32,
}

#[derive(Debug)]
struct AttentionBackward;

impl HostBackward<3> for AttentionBackward {
    type State<B: Backend> = AttentionState<B>;

    /// Gradients `(dq, dk, dv)` from the saved inputs, output, log-sum-exp and `dout`.
    fn backward<B: Backend>(
        state: AttentionState<B>,
        dout: FloatTensor<B>,
        _: [bool; 3],
    ) -> [Option<FloatTensor<B>>; 3] {
        let device = state.q.device();
        let (q_shape, k_shape, v_shape) = (state.q.shape(), state.k.shape(), state.v.shape());
        let (d, _) = Dims::of(&q_shape, &v_shape, state.mask, state.scale);
        let [q, k, v, o, lse, dout] =
            [state.q, state.k, state.v, state.out, state.lse, dout].map(host_data::<B>);
        let (q, k, v, o, lse, dout) = (
            values(&q),
            values(&k),
            values(&v),
            values(&o),
            values(&lse),
            values(&dout),
        );
        let mask = LaneMask::of(&d); // the same for every slab
        let mut dq = vec![0.0f32; d.n * d.lq * d.e];
        let mut dk = vec![0.0f32; d.n * d.lk * d.e];
        let mut dv = vec![0.0f32; d.n * d.lk * d.ev];
        let slabs = dq
            .chunks_mut(d.lq * d.e)
            .zip(dk.chunks_mut(d.lk * d.e))
            .zip(dv.chunks_mut(d.lk * d.ev))
            .enumerate();
        parallel(slabs.collect(), |(s, ((dq, dk), dv))| {
            let slab = Slab {
                q: &q[s * d.lq * d.e..][..d.lq * d.e],
                k: &k[s * d.lk * d.e..][..d.lk * d.e],
                v: &v[s * d.lk * d.ev..][..d.lk * d.ev],
                o: &o[s * d.lq * d.ev..][..d.lq * d.ev],
                lse: &lse[s * d.lq..][..d.lq],
                dout: &dout[s * d.lq * d.ev..][..d.lq * d.ev],
            };
            pulp::Arch::new().dispatch(BackwardSlab {
                d,
                mask: &mask,
                x: slab,
                dq,
                dk,
                dv,
            });
        });
        [(dq, q_shape), (dk, k_shape), (dv, v_shape)]
            .map(|(grad, shape)| B::float_from_data(TensorData::new(grad, shape), &device))
            .map(Some)
    }
}

impl<B: Backend + AttentionBackend, C: CheckpointStrategy> AttentionBackend for Autodiff<B, C> {
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        causal: bool,
        window: usize,
        scale: f32,
    ) -> FloatTensor<Self> {
        let mask = (causal, window);
        autodiff_op::<AttentionBackward, B, C, 3>(
            [q, k, v],
            |[q, k, v]| {
                let (out, lse) = forward_host::<B>(q.clone(), k.clone(), v.clone(), mask, scale);
                let state = AttentionState {
                    q,
                    k,
                    v,
                    out: out.clone(),
                    lse,
                    mask,
                    scale,
                };
                (out, state)
            },
            |[q, k, v]| B::fused_attention(q, k, v, causal, window, scale),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{flat, max_rel};
    use burn::tensor::Distribution;

    /// Fused against composite attention: values and the gradients of q, k and v.
    fn check(b: usize, h: usize, lq: usize, lk: usize, e: usize, ev: usize, mask: Mask) {
        let device = Device::flex().autodiff();
        device.seed((b * 1000 + lq * 10 + lk) as u64);
        let normal = Distribution::Normal(0.0, 1.0);
        let q = Tensor::<4>::random([b, h, lq, e], normal, &device);
        let k = Tensor::<4>::random([b, h, lk, e], normal, &device);
        let v = Tensor::<4>::random([b, h, lk, ev], normal, &device);
        let w = Tensor::<4>::random([b, h, lq, ev], normal, &device);
        let scale = 1.0 / (e as f32).sqrt();
        let run = |fused: bool| {
            let (q, k, v) = (
                q.clone().require_grad(),
                k.clone().require_grad(),
                v.clone().require_grad(),
            );
            let y = if fused {
                attention(q.clone(), k.clone(), v.clone(), mask, scale)
            } else {
                reference_attention(q.clone(), k.clone(), v.clone(), mask, scale)
            };
            let grads = (y.clone() * w.clone()).sum().backward();
            [
                flat(y),
                flat(q.grad(&grads).unwrap()),
                flat(k.grad(&grads).unwrap()),
                flat(v.grad(&grads).unwrap()),
            ]
        };
        let (fused, reference) = (run(true), run(false));
        // Gradients are measured against the largest gradient of the call: with a single visible
        // key the weights are constant, dq and dk are exactly zero, and the reference's values
        // are rounding noise of `dO·v − dO·o`, which no summation order reproduces.
        let largest = |x: &[f32]| x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let gradient_scale = reference[1..]
            .iter()
            .map(|g| largest(g))
            .fold(0.0f32, f32::max);
        for (index, (name, (got, want))) in ["out", "dq", "dk", "dv"]
            .iter()
            .zip(fused.iter().zip(&reference))
            .enumerate()
        {
            let scale = if index == 0 {
                largest(want)
            } else {
                gradient_scale
            };
            let diff = got
                .iter()
                .zip(want)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            let err = diff / scale.max(1e-6);
            assert!(
                err < 1e-4,
                "{name}: relative error {err:e} (b{b} h{h} lq{lq} lk{lk} e{e} {mask:?})"
            );
        }
    }

    #[test]
    fn fused_equals_reference_bidirectional() {
        check(2, 3, 7, 7, 4, 4, Mask::Full);
        check(1, 2, 42, 42, 4, 4, Mask::Full);
        check(3, 1, 5, 9, 8, 6, Mask::Full);
        check(1, 1, 1, 1, 3, 3, Mask::Full);
    }

    #[test]
    fn fused_equals_reference_causal() {
        check(2, 2, 13, 13, 8, 8, Mask::Causal);
        check(1, 3, 1, 17, 4, 4, Mask::Causal); // one new query over a cache
        check(2, 1, 4, 11, 5, 5, Mask::Causal);
        check(1, 1, 1, 1, 16, 16, Mask::Causal);
    }

    /// Heads wider than the lane kernels serve take the row-at-a-time loops; both paths, and
    /// the boundary between them, against the same reference.
    #[test]
    fn fused_equals_reference_across_head_widths() {
        check(2, 2, 12, 12, NARROW, NARROW, Mask::Full);
        check(2, 2, 12, 12, NARROW + 1, NARROW + 1, Mask::Full);
        check(1, 2, 20, 20, 4, NARROW + 3, Mask::Causal); // narrow keys, wide values
        check(2, 1, 33, 33, 32, 32, Mask::Full);
        check(1, 2, 40, 40, 16, 16, Mask::Local(5));
        // The token probes' shapes: one causal head as wide as the model, over several vectors
        // of keys (MQAR at L 128, widths 64 and 128).
        check(2, 1, 128, 128, 64, 64, Mask::Causal);
        check(1, 1, 70, 70, 128, 128, Mask::Causal);
    }

    #[test]
    fn fused_equals_reference_local() {
        check(2, 2, 13, 13, 8, 8, Mask::Local(3));
        check(1, 2, 70, 70, 4, 4, Mask::Local(20)); // windows crossing vector boundaries
        check(1, 1, 40, 40, 6, 6, Mask::Local(0)); // each query sees only itself
        check(2, 1, 5, 12, 4, 4, Mask::Local(4)); // queries over a longer cache
        check(1, 1, 9, 9, 4, 4, Mask::Local(100)); // window longer than the sequence
    }

    /// A local mask means what it says: the last query equals full attention over exactly the
    /// `window + 1` latest keys, checked against an independent slice rather than a mask.
    #[test]
    fn local_window_sees_exactly_the_latest_keys() {
        let device = Device::flex();
        device.seed(11);
        let (l, window) = (37, 9);
        let t = |e| Tensor::<4>::random([1, 2, l, e], Distribution::Default, &device);
        let (q, k, v) = (t(8), t(8), t(5));
        let last = q.clone().narrow(2, l - 1, 1);
        let got = attention(q, k.clone(), v.clone(), Mask::Local(window), 0.4).narrow(2, l - 1, 1);
        let recent = |x: Tensor<4>| x.narrow(2, l - 1 - window, window + 1);
        let want = reference_attention(last, recent(k), recent(v), Mask::Full, 0.4);
        assert!(max_rel(&flat(got), &flat(want)) < 1e-5);
    }

    #[test]
    fn inference_matches_training_forward() {
        let device = Device::flex();
        device.seed(5);
        let t = |l| Tensor::<4>::random([2, 2, l, 8], Distribution::Default, &device);
        let (q, k, v) = (t(6), t(6), t(6));
        let a = flat(attention(
            q.clone(),
            k.clone(),
            v.clone(),
            Mask::Causal,
            0.3,
        ));
        let b = flat(reference_attention(q, k, v, Mask::Causal, 0.3));
        assert!(max_rel(&a, &b) < 1e-5);
    }
}
