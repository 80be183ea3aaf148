//! Mamba-2's state-space recurrence (Dao & Gu 2024, <https://arxiv.org/abs/2405.21060>; the
//! recurrence `ssd_minimal.py` computes in chunks, with the step size folded in as the
//! reference's `mamba_chunk_scan_combined` does) as one scan over time on the host:
//!
//! `S_t = exp(Δ_t A) S_{t−1} + Δ_t x_t B_tᵀ`, `y_t = S_t C_t`, `S_{−1} = 0`,
//!
//! with `x: [b, l, h, p]`, `Δ: [b, l, h]` (after the softplus), `A: [h]` (negative),
//! `B, C: [b, l, g, N]` (head `j` reads group `j / (h/g)`) and the state `S_t: [b, h, p, N]`.
//!
//! Two paths, one function: [`ssd_scan_reference`] is the per-step loop of burn tensor
//! operations (autodiff builds a graph per step), the test reference and the path on other
//! backends; [`ssd_scan`] is one backend extension whose forward and hand-written backward run
//! on host memory, parallel over the batch. Why a scan on the CPU where the GPU reference runs
//! the chunked dual (`mamba2::ssd`): a scalar decay per head makes a step cost `3pN`
//! multiply-adds over one head's `[N, p]` state (decay, write, read), about what the dual spends
//! per position in its matrix products at chunk 64, `p = N = 64`, but without the dual's
//! `[.., s, s]` masks and reshuffled copies; one head's state (16 KiB at `p = N = 64`) stays in L1
//! for the whole sequence.
//!
//! The backward keeps no `[b, l, h, p, N]` states: the forward saves each head's state every
//! [`CHUNK`] steps, and the backward recomputes a chunk's states from its checkpoint, then runs
//! the reverse recurrence with `G_t = dL/dS_t = C_t dy_tᵀ + exp(Δ_{t+1} A) G_{t+1}`:
//! `dX_t = G_t B_t` (`X = Δ x`), `dB_t = G_tᵀ X_t`, `dC_t = S_tᵀ dy_t`,
//! `d(Δ_t A) = exp(Δ_t A) ⟨G_t, S_{t−1}⟩`; then `dx = Δ dX`, `dΔ = ⟨dX, x⟩ + A d(ΔA)`,
//! `dA = Σ Δ d(ΔA)`. `B` and `C` gradients add over the heads of a group.

#![allow(deprecated)] // burn-ndarray is deprecated upstream; it stays a selectable backend.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, NdArray, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::TensorData;

use super::{
    HostBackward, autodiff_op, axpy_simd, decay_axpy_simd, dot_simd, host_data, on_host_backend,
    parallel, sum_parts, values,
};

/// Time steps between the state checkpoints the backward pass recomputes from.
pub const CHUNK: usize = 64;

/// `y: [b, l, h, p]` of the recurrence above (without the `D` skip) on the fast path: the host
/// kernel on the CPU backends, [`ssd_scan_reference`] elsewhere.
pub fn ssd_scan(
    x: Tensor<4>,
    dt: Tensor<3>,
    a: Tensor<1>,
    b: Tensor<4>,
    c: Tensor<4>,
) -> Tensor<4> {
    if !on_host_backend(&x.device()) {
        return ssd_scan_reference(x, dt, a, b, c);
    }
    Tensor::from_dispatch(<Dispatch as SsdScanBackend>::ssd_scan(
        x.into_dispatch(),
        dt.into_dispatch(),
        a.into_dispatch(),
        b.into_dispatch(),
        c.into_dispatch(),
    ))
}

/// The same recurrence as a loop of burn tensor operations over time (the test reference).
pub fn ssd_scan_reference(
    x: Tensor<4>,
    dt: Tensor<3>,
    a: Tensor<1>,
    b: Tensor<4>,
    c: Tensor<4>,
) -> Tensor<4> {
    let [bsz, l, h, p] = x.dims();
    let [_, _, g, n] = b.dims();
    let per_head = |t: Tensor<4>| {
        t.reshape([bsz, l, g, 1, n])
            .repeat_dim(3, h / g)
            .reshape([bsz, l, h, n])
    };
    let (b, c) = (per_head(b), per_head(c));
    let decay = (dt.clone() * a.reshape([1, 1, h])).exp(); // [b, l, h]
    let mut state = Tensor::<4>::zeros([bsz, h, p, n], &x.device());
    let mut ys = Vec::with_capacity(l);
    for t in 0..l {
        let at = |v: &Tensor<4>, w| v.clone().narrow(1, t, 1).reshape([bsz, h, w]);
        let (xt, bt, ct) = (at(&x, p), at(&b, n), at(&c, n));
        let dt_t = dt.clone().narrow(1, t, 1).reshape([bsz, h, 1]);
        let decay_t = decay.clone().narrow(1, t, 1).reshape([bsz, h, 1, 1]);
        state = state * decay_t + (xt * dt_t).reshape([bsz, h, p, 1]) * bt.reshape([bsz, h, 1, n]);
        ys.push(
            state
                .clone()
                .matmul(ct.reshape([bsz, h, n, 1]))
                .reshape([bsz, 1, h, p]),
        );
    }
    Tensor::cat(ys, 1)
}

/// Backend extension: the scan on host memory.
#[backend_extension(NdArray, Flex, Autodiff)]
pub trait SsdScanBackend: Backend {
    /// Forward only (inference); see [`ssd_scan`].
    fn ssd_scan(
        x: FloatTensor<Self>,
        dt: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        forward_host::<Self>([x, dt, a, b, c], false).0
    }
}

impl SsdScanBackend for Flex {}
impl SsdScanBackend for NdArray {}

/// Sizes: batch, length, heads, head width, groups, state width.
#[derive(Clone, Copy, Debug)]
struct Dims {
    batch: usize,
    l: usize,
    h: usize,
    p: usize,
    g: usize,
    n: usize,
}

impl Dims {
    fn of<B: Backend>(x: &FloatTensor<B>, b: &FloatTensor<B>) -> Self {
        let [batch, l, h, p] = x.shape().dims::<4>();
        let [_, _, g, n] = b.shape().dims::<4>();
        Self {
            batch,
            l,
            h,
            p,
            g,
            n,
        }
    }

    fn chunks(self) -> usize {
        self.l.div_ceil(CHUNK)
    }

    /// Floats of one head's state.
    fn state(self) -> usize {
        self.p * self.n
    }

    /// Floats of one sequence's checkpoints: `[h, chunks, N, p]`.
    fn checkpoints(self) -> usize {
        self.h * self.chunks() * self.state()
    }
}

/// One sequence's inputs: `x: [l, h, p]`, `dt: [l, h]`, `b, c: [l, g, N]`, and `A: [h]`.
#[derive(Clone, Copy)]
struct Sequence<'a> {
    dims: Dims,
    x: &'a [f32],
    dt: &'a [f32],
    a: &'a [f32],
    b: &'a [f32],
    c: &'a [f32],
}

impl<'a> Sequence<'a> {
    fn of(dims: Dims, index: usize, [x, dt, a, b, c]: [&'a [f32]; 5]) -> Self {
        let Dims { l, h, p, g, n, .. } = dims;
        Self {
            dims,
            x: &x[index * l * h * p..][..l * h * p],
            dt: &dt[index * l * h..][..l * h],
            a,
            b: &b[index * l * g * n..][..l * g * n],
            c: &c[index * l * g * n..][..l * g * n],
        }
    }

    /// Step `t` of head `head`: `(Δ, exp(Δ A), x: [p], B: [N], C: [N])`.
    #[inline(always)]
    fn at(self, t: usize, head: usize) -> (f32, f32, &'a [f32], &'a [f32], &'a [f32]) {
        let Dims { h, p, g, n, .. } = self.dims;
        let group = head / (h / g);
        let dt = self.dt[t * h + head];
        (
            dt,
            (dt * self.a[head]).exp(),
            &self.x[(t * h + head) * p..][..p],
            &self.b[(t * g + group) * n..][..n],
            &self.c[(t * g + group) * n..][..n],
        )
    }
}

/// The scan's output and, when `keep`, the checkpoints `[b, h, chunks, N, p]` the backward
/// recomputes from. Inputs in [`ssd_scan`]'s order.
fn forward_host<B: Backend>(
    inputs: [FloatTensor<B>; 5],
    keep: bool,
) -> (FloatTensor<B>, Option<FloatTensor<B>>) {
    let device = inputs[0].device();
    let dims = Dims::of::<B>(&inputs[0], &inputs[3]);
    let data = inputs.map(host_data::<B>);
    let all = [0, 1, 2, 3, 4].map(|i| values(&data[i]));
    let per_sequence = dims.l * dims.h * dims.p;
    let mut y = vec![0.0f32; dims.batch * per_sequence];
    let mut checkpoints = vec![
        0.0f32;
        if keep {
            dims.batch * dims.checkpoints()
        } else {
            0
        }
    ];
    let mut saved: Vec<Option<&mut [f32]>> = if keep {
        checkpoints
            .chunks_mut(dims.checkpoints())
            .map(Some)
            .collect()
    } else {
        (0..dims.batch).map(|_| None).collect()
    };
    let items = y
        .chunks_mut(per_sequence)
        .zip(saved.drain(..))
        .enumerate()
        .collect();
    parallel(items, |(index, (y, checkpoints))| {
        pulp::Arch::new().dispatch(ForwardSequence {
            seq: Sequence::of(dims, index, all),
            y,
            checkpoints,
        });
    });
    let Dims {
        batch, l, h, p, n, ..
    } = dims;
    let y = B::float_from_data(TensorData::new(y, [batch, l, h, p]), &device);
    let checkpoints = keep.then(|| {
        B::float_from_data(
            TensorData::new(checkpoints, [batch, h, dims.chunks(), n, p]),
            &device,
        )
    });
    (y, checkpoints)
}

/// The forward scan over one sequence as a pulp SIMD operation, head by head (one head's state
/// stays in L1 through the whole sequence).
struct ForwardSequence<'a> {
    seq: Sequence<'a>,
    y: &'a mut [f32],
    checkpoints: Option<&'a mut [f32]>,
}

impl pulp::WithSimd for ForwardSequence<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Self {
            seq,
            y,
            mut checkpoints,
        } = self;
        let Dims { l, h, p, .. } = seq.dims;
        let size = seq.dims.state();
        let mut state = vec![0.0f32; size]; // [N, p]
        for head in 0..h {
            state.fill(0.0);
            for t in 0..l {
                if t % CHUNK == 0
                    && let Some(saved) = checkpoints.as_deref_mut()
                {
                    let slot = head * seq.dims.chunks() + t / CHUNK;
                    saved[slot * size..][..size].copy_from_slice(&state);
                }
                let (dt, decay, x, b, c) = seq.at(t, head);
                let y = &mut y[(t * h + head) * p..][..p];
                step(simd, (decay, dt), (x, b), &mut state, Some((c, y)));
            }
        }
    }
}

/// `S ← decay · S + Δ x Bᵀ` on a state stored `[N, p]`, and with `read = (C, y)` also
/// `y = S C` in the same pass.
#[inline(always)]
fn step<S: pulp::Simd>(
    simd: S,
    (decay, dt): (f32, f32),
    (x, b): (&[f32], &[f32]),
    state: &mut [f32],
    read: Option<(&[f32], &mut [f32])>,
) {
    let p = x.len();
    match read {
        None => {
            for (row, &bn) in state.chunks_exact_mut(p).zip(b) {
                decay_axpy_simd(simd, decay, bn * dt, x, row);
            }
        }
        Some((c, y)) => {
            y.fill(0.0);
            for ((row, &bn), &cn) in state.chunks_exact_mut(p).zip(b).zip(c) {
                decay_axpy_simd(simd, decay, bn * dt, x, row);
                axpy_simd(simd, cn, row, y);
            }
        }
    }
}

/// Gradients of one sequence: `dx: [l, h, p]`, `ddt: [l, h]`, `db, dc: [l, g, N]`, and the
/// sequence's part of `dA: [h]`.
struct SequenceGrads<'a> {
    dx: &'a mut [f32],
    ddt: &'a mut [f32],
    db: &'a mut [f32],
    dc: &'a mut [f32],
    da: &'a mut [f32],
}

/// The backward of one sequence as a pulp SIMD operation.
struct BackwardSequence<'a> {
    seq: Sequence<'a>,
    checkpoints: &'a [f32],
    dy: &'a [f32],
    grads: SequenceGrads<'a>,
}

impl pulp::WithSimd for BackwardSequence<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, simd: S) {
        let Self {
            seq,
            checkpoints,
            dy,
            grads,
        } = self;
        let Dims { l, h, p, g, n, .. } = seq.dims;
        let size = seq.dims.state();
        // states[k]: the state before step `start + k` of the chunk, k = 0..=len.
        let mut states = vec![0.0f32; (CHUNK + 1) * size];
        let mut gradient = vec![0.0f32; size]; // G, [N, p]
        let mut dxs = vec![0.0f32; p]; // dX_t = G_t B_t
        let mut products = vec![0.0f32; p]; // Σ_N G_t ⊙ S_{t−1}, per p
        for head in 0..h {
            let group = head / (h / g);
            gradient.fill(0.0);
            for chunk in (0..seq.dims.chunks()).rev() {
                let start = chunk * CHUNK;
                let len = CHUNK.min(l - start);
                let slot = head * seq.dims.chunks() + chunk;
                states[..size].copy_from_slice(&checkpoints[slot * size..][..size]);
                for k in 0..len {
                    let (dt, decay, x, b, _) = seq.at(start + k, head);
                    let (before, after) = states.split_at_mut((k + 1) * size);
                    let next = &mut after[..size];
                    next.copy_from_slice(&before[k * size..]);
                    step(simd, (decay, dt), (x, b), next, None);
                }
                for k in (0..len).rev() {
                    let t = start + k;
                    let (dt, decay, x, b, c) = seq.at(t, head);
                    let (before, after) = states.split_at(size * (k + 1));
                    let (previous, current) = (&before[k * size..], &after[..size]);
                    let dy = &dy[(t * h + head) * p..][..p];
                    let (db, dc) = (
                        &mut grads.db[(t * g + group) * n..][..n],
                        &mut grads.dc[(t * g + group) * n..][..n],
                    );
                    // dC_t = S_tᵀ dy_t, added over the group's heads.
                    for (dcn, row) in dc.iter_mut().zip(current.chunks_exact(p)) {
                        *dcn += dot_simd(simd, row, dy);
                    }
                    reverse_step(
                        simd,
                        (dt, decay, b, c, x),
                        (previous, dy),
                        &mut gradient,
                        (&mut dxs, &mut products),
                        db,
                    );
                    let dlog = decay * super::sum(&products); // d(ΔA)
                    let dx = &mut grads.dx[(t * h + head) * p..][..p];
                    for j in 0..p {
                        dx[j] = dt * dxs[j];
                    }
                    grads.ddt[t * h + head] = dot_simd(simd, &dxs, x) + seq.a[head] * dlog;
                    grads.da[head] += dt * dlog;
                }
            }
        }
    }
}

/// One reverse step over one head's `[N, p]` rows: `G ← G + C dyᵀ` (now `G_t`), then
/// `dX = Σ_n B_n G_n`, `products = Σ_n G_n ⊙ S_{t−1, n}`, `db_n += Δ ⟨G_n, x⟩` (the group's
/// gradient, added over its heads), and `G ← exp(ΔA) G` (what `S_{t−1}` receives).
#[inline(always)]
fn reverse_step<S: pulp::Simd>(
    simd: S,
    (dt, decay, b, c, x): (f32, f32, &[f32], &[f32], &[f32]),
    (previous, dy): (&[f32], &[f32]),
    gradient: &mut [f32],
    (dxs, products): (&mut [f32], &mut [f32]),
    db: &mut [f32],
) {
    let p = dy.len();
    dxs.fill(0.0);
    products.fill(0.0);
    let (dy_vectors, dy_tail) = S::as_simd_f32s(dy);
    let (x_vectors, x_tail) = S::as_simd_f32s(x);
    let (dx_vectors, dx_tail) = S::as_mut_simd_f32s(dxs);
    let (product_vectors, product_tail) = S::as_mut_simd_f32s(products);
    let decay_vector = simd.splat_f32s(decay);
    for (nn, (row, prev)) in gradient
        .chunks_exact_mut(p)
        .zip(previous.chunks_exact(p))
        .enumerate()
    {
        let (bn, cn) = (b[nn], c[nn]);
        let (b_vector, c_vector) = (simd.splat_f32s(bn), simd.splat_f32s(cn));
        let (row_vectors, row_tail) = S::as_mut_simd_f32s(row);
        let (prev_vectors, prev_tail) = S::as_simd_f32s(prev);
        let mut acc = simd.splat_f32s(0.0);
        for j in 0..row_vectors.len() {
            let gj = simd.mul_add_f32s(c_vector, dy_vectors[j], row_vectors[j]);
            dx_vectors[j] = simd.mul_add_f32s(b_vector, gj, dx_vectors[j]);
            product_vectors[j] = simd.mul_add_f32s(gj, prev_vectors[j], product_vectors[j]);
            acc = simd.mul_add_f32s(gj, x_vectors[j], acc);
            row_vectors[j] = simd.mul_f32s(decay_vector, gj);
        }
        let mut db_n = simd.reduce_sum_f32s(acc);
        for j in 0..row_tail.len() {
            let gj = row_tail[j] + cn * dy_tail[j];
            dx_tail[j] += bn * gj;
            product_tail[j] += gj * prev_tail[j];
            db_n += gj * x_tail[j];
            row_tail[j] = decay * gj;
        }
        db[nn] += dt * db_n;
    }
}

/// What the backward pass needs: the inputs and the forward's checkpoints.
#[derive(Clone, Debug)]
struct ScanState<B: Backend> {
    inputs: [FloatTensor<B>; 5],
    checkpoints: FloatTensor<B>,
}

#[derive(Debug)]
struct SsdScanBackward;

impl HostBackward<5> for SsdScanBackward {
    type State<B: Backend> = ScanState<B>;

    fn backward<B: Backend>(
        state: ScanState<B>,
        dy: FloatTensor<B>,
        _: [bool; 5],
    ) -> [Option<FloatTensor<B>>; 5] {
        let device = state.inputs[0].device();
        let dims = Dims::of::<B>(&state.inputs[0], &state.inputs[3]);
        let data = state.inputs.map(host_data::<B>);
        let all = [0, 1, 2, 3, 4].map(|i| values(&data[i]));
        let (checkpoints, dy) = (host_data::<B>(state.checkpoints), host_data::<B>(dy));
        let (checkpoints, dy) = (values(&checkpoints), values(&dy));
        let Dims {
            batch,
            l,
            h,
            p,
            g,
            n,
        } = dims;
        let (lhp, lgn) = (l * h * p, l * g * n);
        let mut dx = vec![0.0f32; batch * lhp];
        let mut ddt = vec![0.0f32; batch * l * h];
        let mut db = vec![0.0f32; batch * lgn];
        let mut dc = vec![0.0f32; batch * lgn];
        let mut da_parts = vec![0.0f32; batch * h];
        let items = dx
            .chunks_mut(lhp)
            .zip(ddt.chunks_mut(l * h))
            .zip(db.chunks_mut(lgn))
            .zip(dc.chunks_mut(lgn))
            .zip(da_parts.chunks_mut(h))
            .enumerate()
            .collect();
        parallel(items, |(index, ((((dx, ddt), db), dc), da))| {
            pulp::Arch::new().dispatch(BackwardSequence {
                seq: Sequence::of(dims, index, all),
                checkpoints: &checkpoints[index * dims.checkpoints()..][..dims.checkpoints()],
                dy: &dy[index * lhp..][..lhp],
                grads: SequenceGrads {
                    dx,
                    ddt,
                    db,
                    dc,
                    da,
                },
            });
        });
        let da = sum_parts(&da_parts, h);
        let tensor = |values: Vec<f32>, shape: Vec<usize>| {
            B::float_from_data(TensorData::new(values, shape), &device)
        };
        [
            tensor(dx, vec![batch, l, h, p]),
            tensor(ddt, vec![batch, l, h]),
            tensor(da, vec![h]),
            tensor(db, vec![batch, l, g, n]),
            tensor(dc, vec![batch, l, g, n]),
        ]
        .map(Some)
    }
}

impl<B: Backend + SsdScanBackend, C: CheckpointStrategy> SsdScanBackend for Autodiff<B, C> {
    fn ssd_scan(
        x: FloatTensor<Self>,
        dt: FloatTensor<Self>,
        a: FloatTensor<Self>,
        b: FloatTensor<Self>,
        c: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        autodiff_op::<SsdScanBackward, B, C, 5>(
            [x, dt, a, b, c],
            |inputs| {
                let (y, checkpoints) = forward_host::<B>(inputs.clone(), true);
                let checkpoints = checkpoints.expect("asked for");
                (
                    y,
                    ScanState {
                        inputs,
                        checkpoints,
                    },
                )
            },
            |[x, dt, a, b, c]| B::ssd_scan(x, dt, a, b, c),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{assert_close, flat};
    use burn::tensor::Distribution;

    /// The host scan against the per-step reference: output and the gradients of x, Δ, A, B, C.
    fn check(device: &Device, [bsz, l, h, p, g, n]: [usize; 6]) {
        let x = Tensor::<4>::random([bsz, l, h, p], Distribution::Default, device);
        // Δ in (0, 0.5] and −A in [1, 4]: decays from about 0.14 to 1 per step.
        let dt = Tensor::<3>::random([bsz, l, h], Distribution::Uniform(0.01, 0.5), device);
        let a = Tensor::<1>::random([h], Distribution::Uniform(-4.0, -1.0), device);
        let b = Tensor::<4>::random([bsz, l, g, n], Distribution::Default, device);
        let c = Tensor::<4>::random([bsz, l, g, n], Distribution::Default, device);
        let weight = Tensor::<4>::random([bsz, l, h, p], Distribution::Default, device);
        let run = |host: bool| {
            let [x, b, c] = [x.clone(), b.clone(), c.clone()].map(Tensor::require_grad);
            let (dt, a) = (dt.clone().require_grad(), a.clone().require_grad());
            let f = if host { ssd_scan } else { ssd_scan_reference };
            let y = f(x.clone(), dt.clone(), a.clone(), b.clone(), c.clone());
            let grads = (y.clone() * weight.clone()).sum().backward();
            vec![
                flat(y),
                flat(x.grad(&grads).expect("dx")),
                flat(dt.grad(&grads).expect("ddt")),
                flat(a.grad(&grads).expect("dA")),
                flat(b.grad(&grads).expect("dB")),
                flat(c.grad(&grads).expect("dC")),
            ]
        };
        assert_close(
            &["y", "dx", "ddt", "dA", "dB", "dC"],
            &run(true),
            &run(false),
            1e-4,
            &format!("l {l}, heads {h}, p {p}, groups {g}, N {n}"),
        );
    }

    #[test]
    fn host_scan_equals_the_reference_in_values_and_gradients() {
        let device = Device::flex().autodiff();
        device.seed(7);
        // Length 1; shorter than a checkpoint interval; several intervals and a partial one;
        // widths that are not a multiple of a vector; several groups.
        for dims in [
            [2, 1, 2, 3, 1, 5],
            [2, 9, 4, 17, 2, 3],
            [3, 2 * CHUNK + 5, 2, 8, 1, 6],
            [1, CHUNK, 3, 5, 3, 4],
        ] {
            check(&device, dims);
        }
    }

    #[test]
    fn forward_without_autodiff_matches() {
        let device = Device::flex();
        device.seed(8);
        let [bsz, l, h, p, g, n] = [2, 70, 2, 4, 1, 3];
        let x = Tensor::<4>::random([bsz, l, h, p], Distribution::Default, &device);
        let dt = Tensor::<3>::random([bsz, l, h], Distribution::Uniform(0.01, 0.5), &device);
        let a = Tensor::<1>::random([h], Distribution::Uniform(-4.0, -1.0), &device);
        let b = Tensor::<4>::random([bsz, l, g, n], Distribution::Default, &device);
        let c = Tensor::<4>::random([bsz, l, g, n], Distribution::Default, &device);
        let host = ssd_scan(x.clone(), dt.clone(), a.clone(), b.clone(), c.clone());
        let reference = ssd_scan_reference(x, dt, a, b, c);
        assert_close(&["y"], &[flat(host)], &[flat(reference)], 1e-5, "inference");
    }
}
