//! The gated delta rule (Yang, Kautz & Hatamizadeh 2024, <https://arxiv.org/abs/2412.06464>;
//! reference fla-org/flash-linear-attention `fla/ops/gated_delta_rule`, `naive.py` and
//! `fused_recurrent.py`) as one recurrence over time on the host:
//!
//! `S' = α_t S_{t−1}`, `r_t = S'ᵀ k_t`, `u_t = β_t (v_t − r_t)`, `S_t = S' + k_t u_tᵀ`,
//! `o_t = S_tᵀ q_t`, `S_{−1} = 0`,
//!
//! with `q, k: [b, h, l, dk]`, `v: [b, h, l, dv]`, `β, g = ln α: [b, h, l]` and the state
//! `S_t: [b, h, dk, dv]` (the reference's layout).
//!
//! Two paths, one function: [`gated_delta_rule_reference`] is the per-step loop of burn tensor
//! operations (autodiff builds a graph per step), the test reference and the path on other
//! backends; [`gated_delta_rule`] is one backend extension whose forward and hand-written
//! backward run on host memory, parallel over the sequences and heads. Why a recurrence on the
//! CPU where the GPU reference runs the chunked WY form (`gated_deltanet::gated_delta_rule`):
//! a step costs two passes over one head's `[dk, dv]` state (the recall `Sᵀ k`, then the write
//! with the read `Sᵀ q` fused: `3·dk·dv` multiply-adds), about what the chunked form spends per
//! position at chunk 64, without its `[.., s, s]` products, the UT transform's inversion, and
//! the sequential loop over chunks in tensor operations; the state (32 KiB at 64 × 128) stays
//! in L1.
//!
//! The backward keeps no `[b, h, l, dk, dv]` states: the forward saves the state every
//! [`CHUNK`] steps, and the backward recomputes a chunk's states from its checkpoint, then runs
//! the reverse recurrence with `G = dL/dS_t`:
//! `G += q_t do_tᵀ`, `dq_t = S_t do_t`; `du = Gᵀ k_t`, `dk_t = G u_t`; `dv_t = β_t du`,
//! `dβ_t = ⟨du, v_t − r_t⟩`, `dr = −β_t du`; `G' = G + k_t drᵀ` (the gradient of `S'`),
//! `dk_t += S' dr`, `dg_t = α_t ⟨G', S_{t−1}⟩`; and `S_{t−1}` receives `α_t G'`.

#![allow(deprecated)] // burn-ndarray is deprecated upstream; it stays a selectable backend.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, NdArray, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::TensorData;

use super::{
    HostBackward, autodiff_op, axpy_simd, decay_axpy_simd, dot_simd, host_data, on_host_backend,
    parallel, values,
};

/// Time steps between the state checkpoints the backward pass recomputes from.
pub const CHUNK: usize = 64;

/// `o: [b, h, l, dv]` of the recurrence above on the fast path: the host kernel on the CPU
/// backends, [`gated_delta_rule_reference`] elsewhere.
pub fn gated_delta_rule(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    beta: Tensor<3>,
    log_decay: Tensor<3>,
) -> Tensor<4> {
    if !on_host_backend(&q.device()) {
        return gated_delta_rule_reference(q, k, v, beta, log_decay);
    }
    Tensor::from_dispatch(<Dispatch as DeltaRuleBackend>::gated_delta_rule(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        beta.into_dispatch(),
        log_decay.into_dispatch(),
    ))
}

/// The same recurrence as a loop of burn tensor operations over time (the reference's
/// `naive_recurrent_gated_delta_rule`; the test reference).
pub fn gated_delta_rule_reference(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    beta: Tensor<3>,
    log_decay: Tensor<3>,
) -> Tensor<4> {
    let [b, h, l, dk] = q.dims();
    let dv = v.dims()[3];
    let decay = log_decay.exp();
    let mut state = Tensor::<4>::zeros([b, h, dk, dv], &q.device());
    let mut outputs = Vec::with_capacity(l);
    for t in 0..l {
        let row = |x: &Tensor<4>| x.clone().narrow(2, t, 1); // [b, h, 1, ·]
        let scalar = |x: &Tensor<3>| x.clone().narrow(2, t, 1).reshape([b, h, 1, 1]);
        state = state * scalar(&decay);
        let recalled = row(&k).matmul(state.clone()); // [b, h, 1, dv]
        let u = (row(&v) - recalled) * scalar(&beta);
        state = state + row(&k).swap_dims(2, 3).matmul(u);
        outputs.push(row(&q).matmul(state.clone()));
    }
    Tensor::cat(outputs, 2)
}

/// Backend extension: the recurrence on host memory.
#[backend_extension(NdArray, Flex, Autodiff)]
pub trait DeltaRuleBackend: Backend {
    /// Forward only (inference); see [`gated_delta_rule`].
    fn gated_delta_rule(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        log_decay: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        forward_host::<Self>([q, k, v, beta, log_decay], false).0
    }
}

impl DeltaRuleBackend for Flex {}
impl DeltaRuleBackend for NdArray {}

/// Sizes: sequences × heads, length, key and value widths.
#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    h: usize,
    l: usize,
    dk: usize,
    dv: usize,
}

impl Dims {
    fn of<B: Backend>(q: &FloatTensor<B>, v: &FloatTensor<B>) -> Self {
        let [b, h, l, dk] = q.shape().dims::<4>();
        let dv = v.shape().dims::<4>()[3];
        Self { b, h, l, dk, dv }
    }

    /// Independent recurrences: one per sequence and head.
    fn items(self) -> usize {
        self.b * self.h
    }

    fn chunks(self) -> usize {
        self.l.div_ceil(CHUNK)
    }

    /// Floats of one state.
    fn state(self) -> usize {
        self.dk * self.dv
    }
}

/// One head of one sequence: `q, k: [l, dk]`, `v: [l, dv]`, `beta, log_decay: [l]`.
#[derive(Clone, Copy)]
struct Sequence<'a> {
    dims: Dims,
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    beta: &'a [f32],
    log_decay: &'a [f32],
}

impl<'a> Sequence<'a> {
    fn of(dims: Dims, index: usize, [q, k, v, beta, log_decay]: [&'a [f32]; 5]) -> Self {
        let Dims { l, dk, dv, .. } = dims;
        Self {
            dims,
            q: &q[index * l * dk..][..l * dk],
            k: &k[index * l * dk..][..l * dk],
            v: &v[index * l * dv..][..l * dv],
            beta: &beta[index * l..][..l],
            log_decay: &log_decay[index * l..][..l],
        }
    }

    /// Step `t`: `(α, β, q: [dk], k: [dk], v: [dv])`.
    #[inline(always)]
    fn at(self, t: usize) -> (f32, f32, &'a [f32], &'a [f32], &'a [f32]) {
        let Dims { dk, dv, .. } = self.dims;
        (
            self.log_decay[t].exp(),
            self.beta[t],
            &self.q[t * dk..][..dk],
            &self.k[t * dk..][..dk],
            &self.v[t * dv..][..dv],
        )
    }
}

/// The output and, when `keep`, the checkpoints `[b, h, chunks, dk, dv]` the backward
/// recomputes from. Inputs in [`gated_delta_rule`]'s order.
fn forward_host<B: Backend>(
    inputs: [FloatTensor<B>; 5],
    keep: bool,
) -> (FloatTensor<B>, Option<FloatTensor<B>>) {
    let device = inputs[0].device();
    let dims = Dims::of::<B>(&inputs[0], &inputs[2]);
    let data = inputs.map(host_data::<B>);
    let all = [0, 1, 2, 3, 4].map(|i| values(&data[i]));
    let per_item = dims.l * dims.dv;
    let saved_per_item = dims.chunks() * dims.state();
    let mut o = vec![0.0f32; dims.items() * per_item];
    let mut checkpoints = vec![
        0.0f32;
        if keep {
            dims.items() * saved_per_item
        } else {
            0
        }
    ];
    let mut saved: Vec<Option<&mut [f32]>> = if keep {
        checkpoints.chunks_mut(saved_per_item).map(Some).collect()
    } else {
        (0..dims.items()).map(|_| None).collect()
    };
    let items = o
        .chunks_mut(per_item)
        .zip(saved.drain(..))
        .enumerate()
        .collect();
    parallel(items, |(index, (o, checkpoints))| {
        pulp::Arch::new().dispatch(ForwardSequence {
            seq: Sequence::of(dims, index, all),
            o,
            checkpoints,
        });
    });
    let Dims { b, h, l, dk, dv } = dims;
    let o = B::float_from_data(TensorData::new(o, [b, h, l, dv]), &device);
    let checkpoints = keep.then(|| {
        B::float_from_data(
            TensorData::new(checkpoints, [b, h, dims.chunks(), dk, dv]),
            &device,
        )
    });
    (o, checkpoints)
}

/// The forward recurrence over one head of one sequence as a pulp SIMD operation.
struct ForwardSequence<'a> {
    seq: Sequence<'a>,
    o: &'a mut [f32],
    checkpoints: Option<&'a mut [f32]>,
}

impl pulp::WithSimd for ForwardSequence<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Self {
            seq,
            o,
            mut checkpoints,
        } = self;
        let Dims { l, dv, .. } = seq.dims;
        let size = seq.dims.state();
        let mut state = vec![0.0f32; size]; // [dk, dv]
        let mut residual = vec![0.0f32; dv];
        for t in 0..l {
            if t % CHUNK == 0
                && let Some(saved) = checkpoints.as_deref_mut()
            {
                saved[t / CHUNK * size..][..size].copy_from_slice(&state);
            }
            let (alpha, beta, q, k, v) = seq.at(t);
            let o = &mut o[t * dv..][..dv];
            write(
                simd,
                (alpha, beta),
                (k, v),
                &mut state,
                &mut residual,
                Some((q, o)),
            );
        }
    }
}

/// One step on a state stored `[dk, dv]`: `residual = v − α Sᵀ k` (returned), then
/// `S ← α S + β k residualᵀ`; with `read = (q, o)` also `o = Sᵀ q` in the same pass.
#[inline(always)]
fn write<S: pulp::Simd>(
    simd: S,
    (alpha, beta): (f32, f32),
    (k, v): (&[f32], &[f32]),
    state: &mut [f32],
    residual: &mut [f32],
    read: Option<(&[f32], &mut [f32])>,
) {
    let dv = v.len();
    // r = α Σ_i k_i S_i, then residual = v − r.
    residual.fill(0.0);
    for (row, &ki) in state.chunks_exact(dv).zip(k) {
        axpy_simd(simd, alpha * ki, row, residual);
    }
    for (r, &vj) in residual.iter_mut().zip(v) {
        *r = vj - *r;
    }
    match read {
        None => {
            for (row, &ki) in state.chunks_exact_mut(dv).zip(k) {
                decay_axpy_simd(simd, alpha, beta * ki, residual, row);
            }
        }
        Some((q, o)) => {
            o.fill(0.0);
            for ((row, &ki), &qi) in state.chunks_exact_mut(dv).zip(k).zip(q) {
                decay_axpy_simd(simd, alpha, beta * ki, residual, row);
                axpy_simd(simd, qi, row, o);
            }
        }
    }
}

/// Gradients of one head of one sequence: `dq, dk: [l, dk]`, `dv: [l, dv]`,
/// `dbeta, dlog_decay: [l]`.
struct SequenceGrads<'a> {
    dq: &'a mut [f32],
    dk: &'a mut [f32],
    dv: &'a mut [f32],
    dbeta: &'a mut [f32],
    dlog_decay: &'a mut [f32],
}

/// The backward of one head of one sequence as a pulp SIMD operation.
struct BackwardSequence<'a> {
    seq: Sequence<'a>,
    checkpoints: &'a [f32],
    dout: &'a [f32],
    grads: SequenceGrads<'a>,
}

impl pulp::WithSimd for BackwardSequence<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Self {
            seq,
            checkpoints,
            dout,
            grads,
        } = self;
        let Dims { l, dk, dv, .. } = seq.dims;
        let size = seq.dims.state();
        // states[j]: the state before step `start + j` of the chunk, j = 0..=len; residuals[j],
        // that step's `v − r`.
        let mut states = vec![0.0f32; (CHUNK + 1) * size];
        let mut residuals = vec![0.0f32; CHUNK * dv];
        let mut gradient = vec![0.0f32; size]; // G, [dk, dv]
        let mut du = vec![0.0f32; dv];
        let mut u = vec![0.0f32; dv];
        let mut products = vec![0.0f32; dv]; // Σ_i G'_i ⊙ S_{t−1, i}
        for chunk in (0..seq.dims.chunks()).rev() {
            let start = chunk * CHUNK;
            let len = CHUNK.min(l - start);
            states[..size].copy_from_slice(&checkpoints[chunk * size..][..size]);
            for j in 0..len {
                let (alpha, beta, _, k, v) = seq.at(start + j);
                let (before, after) = states.split_at_mut((j + 1) * size);
                let next = &mut after[..size];
                next.copy_from_slice(&before[j * size..]);
                let residual = &mut residuals[j * dv..][..dv];
                write(simd, (alpha, beta), (k, v), next, residual, None);
            }
            for j in (0..len).rev() {
                let t = start + j;
                let (alpha, beta, q, k, _) = seq.at(t);
                let (before, after) = states.split_at(size * (j + 1));
                let (previous, current) = (&before[j * size..], &after[..size]);
                let residual = &residuals[j * dv..][..dv];
                for m in 0..dv {
                    u[m] = beta * residual[m];
                }
                let dq = &mut grads.dq[t * dk..][..dk];
                let dk_t = &mut grads.dk[t * dk..][..dk];
                read_back(
                    simd,
                    (q, k, &u, &dout[t * dv..][..dv]),
                    current,
                    &mut gradient,
                    &mut du,
                    (dq, dk_t),
                );
                // dv = β du; dβ = ⟨du, v − r⟩; du becomes dr = −β du.
                let dv_t = &mut grads.dv[t * dv..][..dv];
                for m in 0..dv {
                    dv_t[m] = beta * du[m];
                }
                grads.dbeta[t] = dot_simd(simd, &du, residual);
                for value in du.iter_mut() {
                    *value *= -beta;
                }
                let inner = write_back(
                    simd,
                    alpha,
                    (k, &du),
                    previous,
                    &mut gradient,
                    dk_t,
                    &mut products,
                );
                grads.dlog_decay[t] = alpha * inner;
            }
        }
    }
}

/// The first reverse pass over the rows of `G` (see the module doc): `G_i += q_i do`,
/// `dq_i = ⟨S_t,i, do⟩`, `du = Σ_i k_i G_i`, `dk_i = ⟨G_i, u⟩`.
#[inline(always)]
fn read_back<S: pulp::Simd>(
    simd: S,
    (q, k, u, dout): (&[f32], &[f32], &[f32], &[f32]),
    current: &[f32],
    gradient: &mut [f32],
    du: &mut [f32],
    (dq, dk): (&mut [f32], &mut [f32]),
) {
    let dv = dout.len();
    du.fill(0.0);
    let (do_vectors, do_tail) = S::as_simd_f32s(dout);
    let (u_vectors, u_tail) = S::as_simd_f32s(u);
    let (du_vectors, du_tail) = S::as_mut_simd_f32s(du);
    for (i, (row, state)) in gradient
        .chunks_exact_mut(dv)
        .zip(current.chunks_exact(dv))
        .enumerate()
    {
        dq[i] = dot_simd(simd, state, dout);
        let (qi, ki) = (q[i], k[i]);
        let (q_vector, k_vector) = (simd.splat_f32s(qi), simd.splat_f32s(ki));
        let (row_vectors, row_tail) = S::as_mut_simd_f32s(row);
        let mut acc = simd.splat_f32s(0.0);
        for m in 0..row_vectors.len() {
            let g = simd.mul_add_f32s(q_vector, do_vectors[m], row_vectors[m]);
            row_vectors[m] = g;
            du_vectors[m] = simd.mul_add_f32s(k_vector, g, du_vectors[m]);
            acc = simd.mul_add_f32s(g, u_vectors[m], acc);
        }
        let mut dk_i = simd.reduce_sum_f32s(acc);
        for m in 0..row_tail.len() {
            let g = row_tail[m] + qi * do_tail[m];
            row_tail[m] = g;
            du_tail[m] += ki * g;
            dk_i += g * u_tail[m];
        }
        dk[i] = dk_i;
    }
}

/// The second reverse pass, with `dr` the recall's gradient: `G_i += k_i dr` (now `G'`),
/// `dk_i += α ⟨S_{t−1},i, dr⟩`, `products += G'_i ⊙ S_{t−1},i`, `G_i ← α G'_i`. Returns
/// `⟨G', S_{t−1}⟩`.
#[inline(always)]
fn write_back<S: pulp::Simd>(
    simd: S,
    alpha: f32,
    (k, dr): (&[f32], &[f32]),
    previous: &[f32],
    gradient: &mut [f32],
    dk: &mut [f32],
    products: &mut [f32],
) -> f32 {
    let dv = dr.len();
    products.fill(0.0);
    let (dr_vectors, dr_tail) = S::as_simd_f32s(dr);
    let (product_vectors, product_tail) = S::as_mut_simd_f32s(products);
    let alpha_vector = simd.splat_f32s(alpha);
    for (i, (row, state)) in gradient
        .chunks_exact_mut(dv)
        .zip(previous.chunks_exact(dv))
        .enumerate()
    {
        let ki = k[i];
        let k_vector = simd.splat_f32s(ki);
        let (row_vectors, row_tail) = S::as_mut_simd_f32s(row);
        let (state_vectors, state_tail) = S::as_simd_f32s(state);
        let mut acc = simd.splat_f32s(0.0);
        for m in 0..row_vectors.len() {
            acc = simd.mul_add_f32s(state_vectors[m], dr_vectors[m], acc);
            let g = simd.mul_add_f32s(k_vector, dr_vectors[m], row_vectors[m]);
            product_vectors[m] = simd.mul_add_f32s(g, state_vectors[m], product_vectors[m]);
            row_vectors[m] = simd.mul_f32s(alpha_vector, g);
        }
        let mut recall = simd.reduce_sum_f32s(acc);
        for m in 0..row_tail.len() {
            recall += state_tail[m] * dr_tail[m];
            let g = row_tail[m] + ki * dr_tail[m];
            product_tail[m] += g * state_tail[m];
            row_tail[m] = alpha * g;
        }
        dk[i] += alpha * recall;
    }
    super::sum(products)
}

/// What the backward pass needs: the inputs and the forward's checkpoints.
#[derive(Clone, Debug)]
struct RuleState<B: Backend> {
    inputs: [FloatTensor<B>; 5],
    checkpoints: FloatTensor<B>,
}

#[derive(Debug)]
struct DeltaRuleBackward;

impl HostBackward<5> for DeltaRuleBackward {
    type State<B: Backend> = RuleState<B>;

    fn backward<B: Backend>(
        state: RuleState<B>,
        dout: FloatTensor<B>,
        _: [bool; 5],
    ) -> [Option<FloatTensor<B>>; 5] {
        let device = state.inputs[0].device();
        let dims = Dims::of::<B>(&state.inputs[0], &state.inputs[2]);
        let data = state.inputs.map(host_data::<B>);
        let all = [0, 1, 2, 3, 4].map(|i| values(&data[i]));
        let (checkpoints, dout) = (host_data::<B>(state.checkpoints), host_data::<B>(dout));
        let (checkpoints, dout) = (values(&checkpoints), values(&dout));
        let Dims { b, h, l, dk, dv } = dims;
        let saved_per_item = dims.chunks() * dims.state();
        let zeros = |len: usize| vec![0.0f32; dims.items() * len];
        let (mut dq, mut dkey, mut dval) = (zeros(l * dk), zeros(l * dk), zeros(l * dv));
        let (mut dbeta, mut dlog_decay) = (zeros(l), zeros(l));
        let items = dq
            .chunks_mut(l * dk)
            .zip(dkey.chunks_mut(l * dk))
            .zip(dval.chunks_mut(l * dv))
            .zip(dbeta.chunks_mut(l))
            .zip(dlog_decay.chunks_mut(l))
            .enumerate()
            .collect();
        parallel(items, |(index, ((((dq, dk), dv), dbeta), dlog_decay))| {
            pulp::Arch::new().dispatch(BackwardSequence {
                seq: Sequence::of(dims, index, all),
                checkpoints: &checkpoints[index * saved_per_item..][..saved_per_item],
                dout: &dout[index * l * dims.dv..][..l * dims.dv],
                grads: SequenceGrads {
                    dq,
                    dk,
                    dv,
                    dbeta,
                    dlog_decay,
                },
            });
        });
        let tensor = |values: Vec<f32>, shape: Vec<usize>| {
            B::float_from_data(TensorData::new(values, shape), &device)
        };
        [
            tensor(dq, vec![b, h, l, dk]),
            tensor(dkey, vec![b, h, l, dk]),
            tensor(dval, vec![b, h, l, dv]),
            tensor(dbeta, vec![b, h, l]),
            tensor(dlog_decay, vec![b, h, l]),
        ]
        .map(Some)
    }
}

impl<B: Backend + DeltaRuleBackend, C: CheckpointStrategy> DeltaRuleBackend for Autodiff<B, C> {
    fn gated_delta_rule(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        log_decay: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        autodiff_op::<DeltaRuleBackward, B, C, 5>(
            [q, k, v, beta, log_decay],
            |inputs| {
                let (o, checkpoints) = forward_host::<B>(inputs.clone(), true);
                let checkpoints = checkpoints.expect("asked for");
                (
                    o,
                    RuleState {
                        inputs,
                        checkpoints,
                    },
                )
            },
            |[q, k, v, beta, log_decay]| B::gated_delta_rule(q, k, v, beta, log_decay),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{assert_close, flat};
    use burn::tensor::Distribution;

    /// Inputs as the layer makes them: unit-norm keys (the delta rule's stability needs
    /// `β ‖k‖² ≤ 2`), scaled unit-norm queries, β in (0, 1), α from 0.37 to 1.
    fn inputs(device: &Device, [b, h, l, dk, dv]: [usize; 5]) -> [Tensor<4>; 3] {
        let unit = |t: Tensor<4>| t.clone() / t.powi_scalar(2).sum_dim(3).sqrt();
        [
            unit(Tensor::random([b, h, l, dk], Distribution::Default, device)),
            unit(Tensor::random([b, h, l, dk], Distribution::Default, device)),
            Tensor::random([b, h, l, dv], Distribution::Default, device),
        ]
    }

    /// The host recurrence against the per-step reference: output and the gradients of q, k,
    /// v, β and g.
    fn check(device: &Device, dims: [usize; 5]) {
        let [b, h, l, _, dv] = dims;
        let [q, k, v] = inputs(device, dims);
        let beta = Tensor::<3>::random([b, h, l], Distribution::Uniform(0.0, 1.0), device);
        let log_decay = Tensor::<3>::random([b, h, l], Distribution::Uniform(-1.0, 0.0), device);
        let weight = Tensor::<4>::random([b, h, l, dv], Distribution::Default, device);
        let run = |host: bool| {
            let [q, k, v] = [q.clone(), k.clone(), v.clone()].map(Tensor::require_grad);
            let [beta, log_decay] = [beta.clone(), log_decay.clone()].map(Tensor::require_grad);
            let f = if host {
                gated_delta_rule
            } else {
                gated_delta_rule_reference
            };
            let o = f(
                q.clone(),
                k.clone(),
                v.clone(),
                beta.clone(),
                log_decay.clone(),
            );
            let grads = (o.clone() * weight.clone()).sum().backward();
            vec![
                flat(o),
                flat(q.grad(&grads).expect("dq")),
                flat(k.grad(&grads).expect("dk")),
                flat(v.grad(&grads).expect("dv")),
                flat(beta.grad(&grads).expect("dβ")),
                flat(log_decay.grad(&grads).expect("dg")),
            ]
        };
        assert_close(
            &["o", "dq", "dk", "dv", "dbeta", "dg"],
            &run(true),
            &run(false),
            1e-4,
            &format!("{dims:?}"),
        );
    }

    #[test]
    fn host_recurrence_equals_the_reference_in_values_and_gradients() {
        let device = Device::flex().autodiff();
        device.seed(9);
        // Length 1; shorter than a checkpoint interval; several intervals and a partial one;
        // widths that are not a multiple of a vector.
        for dims in [
            [2, 1, 1, 4, 6],
            [1, 2, 9, 17, 5],
            [2, 1, 2 * CHUNK + 3, 8, 16],
            [1, 3, CHUNK, 3, 7],
        ] {
            check(&device, dims);
        }
    }

    #[test]
    fn forward_without_autodiff_matches() {
        let device = Device::flex();
        device.seed(10);
        let dims @ [b, h, l, _, _] = [2, 2, 70, 4, 6];
        let [q, k, v] = inputs(&device, dims);
        let beta = Tensor::<3>::random([b, h, l], Distribution::Uniform(0.0, 1.0), &device);
        let log_decay = Tensor::<3>::random([b, h, l], Distribution::Uniform(-1.0, 0.0), &device);
        let host = gated_delta_rule(
            q.clone(),
            k.clone(),
            v.clone(),
            beta.clone(),
            log_decay.clone(),
        );
        let reference = gated_delta_rule_reference(q, k, v, beta, log_decay);
        assert_close(&["o"], &[flat(host)], &[flat(reference)], 1e-5, "inference");
    }
}
