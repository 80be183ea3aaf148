//! Griffin's Real-Gated Linear Recurrent Unit after its gate projections (De et al. 2024,
//! <https://arxiv.org/abs/2402.19427> §2.4; reference google-deepmind/recurrentgemma
//! `torch/layers.py::RGLRU`, `rnn_scan`, `SqrtBoundDerivative`):
//!
//! ```text
//! i_t = σ(gx_t)                 input gate
//! r_t = σ(ga_t)                 recurrence gate
//! log a_t = −8 · r_t · softplus(Λ)
//! m_t = sqrt(1 − a_t²)          (1 at t = 0: the reference resets at segment position 0)
//! h_t = a_t ⊙ h_{t−1} + m_t ⊙ i_t ⊙ x_t,   h_{−1} = 0,   y_t = h_t
//! ```
//!
//! with `x, gx, ga: [b, l, c]` (`gx`, `ga` the gate logits `W x + b`) and `Λ: [c]` (the
//! reference's `a_param`). `a_t²` is `exp(2 log a_t)` as in the reference, and the square root's
//! derivative is bounded as `SqrtBoundDerivative` does: `d sqrt(w) = dw / sqrt(max(4w, 10⁻⁶))`
//! (at most 1000), which keeps the gradient finite as `a_t → 1`.
//!
//! Two paths, one function: [`rg_lru_reference`] is burn tensor operations and a per-time-step
//! loop (autodiff builds a graph per step); [`rg_lru`] is one backend extension that runs the
//! gates, the decay and the scan as a single pass over host memory, parallel over the batch with
//! the channels in SIMD lanes. Its backward keeps only the inputs and `y` (which is the state
//! `h`): it recomputes the gates in one reverse pass, `G_t = dy_t + a_{t+1} G_{t+1}`,
//! `dx_t = G_t i_t m_t`, `d log a_t = G_t h_{t−1} a_t − 2 a_t² G_t x_t i_t / sqrt(max(4w_t, 10⁻⁶))`,
//! then through the sigmoids and softplus.

#![allow(deprecated)] // burn-ndarray is deprecated upstream; it stays a selectable backend.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, NdArray, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::sigmoid;

use super::{
    HostBackward, autodiff_op, exp_f32, host_data, on_host_backend, parallel, softplus, sum_parts,
    values,
};

/// The reference's `c` in `log a_t = −c · r_t · softplus(Λ)`.
pub const C: f32 = 8.0;

/// `SqrtBoundDerivative`'s bound on the square root's derivative (`_MAX_SQRT_GRADIENT`).
const MAX_SQRT_GRADIENT: f32 = 1000.0;

/// The smallest `4w` the bounded derivative `1/sqrt(4w)` divides by: `1/1000²`.
const MIN_SQRT_ARGUMENT: f32 = 1.0 / (MAX_SQRT_GRADIENT * MAX_SQRT_GRADIENT);

/// RG-LRU output `y: [b, l, c]` of `x`, the gate logits `gate_x`, `gate_a` (all `[b, l, c]`) and
/// `a_param: [c]`, on the fused path (host kernel on the CPU backends, the reference elsewhere).
pub fn rg_lru(x: Tensor<3>, gate_x: Tensor<3>, gate_a: Tensor<3>, a_param: Tensor<1>) -> Tensor<3> {
    if !on_host_backend(&x.device()) {
        return rg_lru_reference(x, gate_x, gate_a, a_param);
    }
    Tensor::from_dispatch(<Dispatch as RgLruBackend>::rg_lru(
        x.into_dispatch(),
        gate_x.into_dispatch(),
        gate_a.into_dispatch(),
        a_param.into_dispatch(),
    ))
}

/// The same function from burn tensor operations, the recurrence as a loop over time (the test
/// reference, and the path on other backends).
pub fn rg_lru_reference(
    x: Tensor<3>,
    gate_x: Tensor<3>,
    gate_a: Tensor<3>,
    a_param: Tensor<1>,
) -> Tensor<3> {
    let [b, l, c] = x.dims();
    let (a, multiplier) = decay(gate_a, a_param.reshape([1, 1, c]));
    // Position 0 starts a segment: the reference's multiplier there is 1 (and h_{−1} = 0).
    let multiplier = if l > 1 {
        Tensor::cat(
            vec![
                Tensor::ones([b, 1, c], &x.device()),
                multiplier.narrow(1, 1, l - 1),
            ],
            1,
        )
    } else {
        Tensor::ones([b, 1, c], &x.device())
    };
    let normalized = x * sigmoid(gate_x) * multiplier; // [b, l, c]
    let mut h = Tensor::<2>::zeros([b, c], &normalized.device());
    let mut ys = Vec::with_capacity(l);
    for t in 0..l {
        let at = a.clone().narrow(1, t, 1).reshape([b, c]);
        h = at * h + normalized.clone().narrow(1, t, 1).reshape([b, c]);
        ys.push(h.clone().unsqueeze_dim::<3>(1));
    }
    Tensor::cat(ys, 1)
}

/// One recurrent step of the reference on `x, gate_x, gate_a: [b, c]` with the state `h: [b, c]`
/// at sequence position `position` (0 resets: multiplier 1). Returns the new state, which is also
/// the output.
pub fn rg_lru_step(
    x: Tensor<2>,
    gate_x: Tensor<2>,
    gate_a: Tensor<2>,
    a_param: Tensor<1>,
    h: Tensor<2>,
    position: usize,
) -> Tensor<2> {
    let c = a_param.dims()[0];
    let (a, multiplier) = decay(gate_a, a_param.reshape([1, c]));
    let gated = x * sigmoid(gate_x);
    if position == 0 {
        gated
    } else {
        a * h + gated * multiplier
    }
}

/// `(a_t, sqrt(1 − a_t²))` from the recurrence-gate logits and `Λ` (broadcast to their rank),
/// the square root with the reference's bounded derivative.
fn decay<const D: usize>(gate_a: Tensor<D>, a_param: Tensor<D>) -> (Tensor<D>, Tensor<D>) {
    let log_a = sigmoid(gate_a) * softplus(a_param).mul_scalar(-C);
    let a = log_a.clone().exp();
    let w = log_a.mul_scalar(2.0).exp().neg() + 1.0; // 1 − a², a² = exp(2 log a) as the reference
    (a, sqrt_bounded(w))
}

/// `sqrt(w)` whose derivative is `1 / sqrt(max(4w, 1/1000²))`: the value through a detached
/// square root, the gradient through `(w − w.detach()) · bound.detach()`, which is 0 in value.
fn sqrt_bounded<const D: usize>(w: Tensor<D>) -> Tensor<D> {
    let slope = w
        .clone()
        .mul_scalar(4.0)
        .clamp_min(MIN_SQRT_ARGUMENT)
        .sqrt()
        .recip()
        .detach();
    w.clone().sqrt().detach() + (w.clone() - w.detach()) * slope
}

/// Backend extension: the RG-LRU on host memory.
#[backend_extension(NdArray, Flex, Autodiff)]
pub trait RgLruBackend: Backend {
    /// Forward only (inference); see [`rg_lru`].
    fn rg_lru(
        x: FloatTensor<Self>,
        gate_x: FloatTensor<Self>,
        gate_a: FloatTensor<Self>,
        a_param: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        forward_host::<Self>(x, gate_x, gate_a, a_param)
    }
}

impl RgLruBackend for Flex {}
impl RgLruBackend for NdArray {}

/// Sizes: batch, length, channels.
#[derive(Clone, Copy, Debug)]
struct Dims {
    batch: usize,
    l: usize,
    c: usize,
}

impl Dims {
    fn of<B: Backend>(x: &FloatTensor<B>) -> Self {
        let [batch, l, c] = x.shape().dims::<3>();
        Self { batch, l, c }
    }
}

/// Per channel: `−8 · softplus(Λ)` (the decay's log-rate at `r = 1`) and `σ(Λ)` (softplus').
fn channel_constants(a_param: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let softplus = |v: f32| v.max(0.0) + (-v.abs()).exp().ln_1p();
    let rate = a_param.iter().map(|&v| -C * softplus(v)).collect();
    let slope = a_param.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect();
    (rate, slope)
}

/// Inputs `x, gate_x, gate_a` of one sequence (`[l, c]` each) or, after [`Sequence::row`], of
/// one time step (`[c]` each), with the channel constants `rate: [c]`.
#[derive(Clone, Copy)]
struct Sequence<'a> {
    x: &'a [f32],
    gate_x: &'a [f32],
    gate_a: &'a [f32],
    rate: &'a [f32],
}

impl<'a> Sequence<'a> {
    fn of(dims: Dims, index: usize, all: [&'a [f32]; 3], rate: &'a [f32]) -> Self {
        let lc = dims.l * dims.c;
        let [x, gate_x, gate_a] = all.map(|v| &v[index * lc..][..lc]);
        Self {
            x,
            gate_x,
            gate_a,
            rate,
        }
    }

    /// Time step `t` of a sequence with `c` channels.
    fn row(self, t: usize, c: usize) -> Self {
        Self {
            x: &self.x[t * c..][..c],
            gate_x: &self.gate_x[t * c..][..c],
            gate_a: &self.gate_a[t * c..][..c],
            rate: &self.rate[..c],
        }
    }
}

/// The gates at one element: `(i, r, a, a², m)`. `later` is 0 at a segment start (`m = 1`) and 1
/// after it: a factor rather than a branch, so the channel loops stay branch-free and vectorise.
#[inline(always)]
fn gates(gate_x: f32, gate_a: f32, rate: f32, later: f32) -> (f32, f32, f32, f32, f32) {
    let i = 1.0 / (1.0 + exp_f32(-gate_x));
    let r = 1.0 / (1.0 + exp_f32(-gate_a));
    let log_a = rate * r;
    let a = exp_f32(log_a);
    let a2 = exp_f32(2.0 * log_a);
    let m = (1.0 - later * a2).sqrt();
    (i, r, a, a2, m)
}

fn forward_host<B: Backend>(
    x: FloatTensor<B>,
    gate_x: FloatTensor<B>,
    gate_a: FloatTensor<B>,
    a_param: FloatTensor<B>,
) -> FloatTensor<B> {
    let device = x.device();
    let dims = Dims::of::<B>(&x);
    let data = [x, gate_x, gate_a].map(host_data::<B>);
    let all = [0, 1, 2].map(|i| values(&data[i]));
    let (rate, _) = channel_constants(values(&host_data::<B>(a_param)));
    let mut y = vec![0.0f32; dims.batch * dims.l * dims.c];
    let items = y.chunks_mut(dims.l * dims.c).enumerate().collect();
    parallel(items, |(index, y)| {
        let seq = Sequence::of(dims, index, all, &rate);
        pulp::Arch::new().dispatch(ForwardSequence { dims, seq, y });
    });
    B::float_from_data(TensorData::new(y, [dims.batch, dims.l, dims.c]), &device)
}

/// The forward scan over one sequence as a pulp SIMD operation.
struct ForwardSequence<'a> {
    dims: Dims,
    seq: Sequence<'a>,
    y: &'a mut [f32],
}

impl pulp::WithSimd for ForwardSequence<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let (c, seq) = (self.dims.c, self.seq);
        let mut h = vec![0.0f32; c];
        for t in 0..self.dims.l {
            let row = seq.row(t, c);
            forward_row(
                row,
                if t == 0 { 0.0 } else { 1.0 },
                &mut h,
                &mut self.y[t * c..][..c],
            );
        }
    }
}

/// `h ← a ⊙ h + m ⊙ i ⊙ x`, `y = h` over one row. The outputs are separate `&mut` arguments so
/// the compiler knows they alias nothing and vectorises the channel loop (slices carried inside
/// one struct lose that and the loop stays scalar: measured 3x slower).
#[inline(always)]
fn forward_row(row: Sequence<'_>, later: f32, h: &mut [f32], y: &mut [f32]) {
    let c = h.len();
    let (x, gate_x, gate_a, rate, y) = (
        &row.x[..c],
        &row.gate_x[..c],
        &row.gate_a[..c],
        &row.rate[..c],
        &mut y[..c],
    );
    for j in 0..c {
        let (i, _, a, _, m) = gates(gate_x[j], gate_a[j], rate[j], later);
        h[j] = a * h[j] + m * i * x[j];
        y[j] = h[j];
    }
}

/// One reverse step over one row (see the module doc): reads `h_{t−1}` and `dy_t`, turns
/// `carry = a_{t+1} G_{t+1}` into `a_t G_t`, writes `dx, dgate_x, dgate_a` and accumulates
/// `drate`. Separate `&mut` arguments for the reason given at [`forward_row`].
#[inline(always)]
fn backward_row(
    (row, later): (Sequence<'_>, f32),
    (h_prev, dy): (&[f32], &[f32]),
    carry: &mut [f32],
    dx: &mut [f32],
    dgate_x: &mut [f32],
    dgate_a: &mut [f32],
    drate: &mut [f32],
) {
    let c = carry.len();
    let (x, gate_x, gate_a, rate) = (
        &row.x[..c],
        &row.gate_x[..c],
        &row.gate_a[..c],
        &row.rate[..c],
    );
    let (h_prev, dy) = (&h_prev[..c], &dy[..c]);
    let (dx, dgate_x, dgate_a, drate) = (
        &mut dx[..c],
        &mut dgate_x[..c],
        &mut dgate_a[..c],
        &mut drate[..c],
    );
    for j in 0..c {
        let (i, r, a, a2, m) = gates(gate_x[j], gate_a[j], rate[j], later);
        let g = dy[j] + carry[j];
        dx[j] = g * i * m;
        let di = g * x[j] * m;
        // Through a_t h_{t−1}, and (after the first position) through m = sqrt(1 − a²) with
        // its bounded derivative: d(a²)/d log a = 2a².
        let bound = (4.0 * (1.0 - a2)).max(MIN_SQRT_ARGUMENT);
        let through_m = later * g * x[j] * i / bound.sqrt() * 2.0 * a2;
        let dlog_a = g * h_prev[j] * a - through_m;
        dgate_x[j] = di * i * (1.0 - i);
        dgate_a[j] = dlog_a * rate[j] * r * (1.0 - r);
        drate[j] += dlog_a * r;
        carry[j] = a * g;
    }
}

/// Gradients of one sequence: `dx, dgate_x, dgate_a: [l, c]`, and `drate: [c]` accumulated
/// (`d/d(−8 softplus Λ)`, turned into `dΛ` after the sum over the batch).
struct SequenceGrads<'a> {
    dx: &'a mut [f32],
    dgate_x: &'a mut [f32],
    dgate_a: &'a mut [f32],
    drate: &'a mut [f32],
}

/// The backward of one sequence as a pulp SIMD operation.
struct BackwardSequence<'a> {
    dims: Dims,
    seq: Sequence<'a>,
    y: &'a [f32],
    dy: &'a [f32],
    grads: SequenceGrads<'a>,
}

impl pulp::WithSimd for BackwardSequence<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Self {
            dims,
            seq,
            y,
            dy,
            grads,
        } = self;
        let c = dims.c;
        let zeros = vec![0.0f32; c];
        // a_{t+1} G_{t+1}: what dL/dh_t receives from the next step.
        let mut carry = vec![0.0f32; c];
        for t in (0..dims.l).rev() {
            let h_prev = if t == 0 {
                &zeros[..]
            } else {
                &y[(t - 1) * c..][..c]
            };
            backward_row(
                (seq.row(t, c), if t == 0 { 0.0 } else { 1.0 }),
                (h_prev, &dy[t * c..][..c]),
                &mut carry,
                &mut grads.dx[t * c..][..c],
                &mut grads.dgate_x[t * c..][..c],
                &mut grads.dgate_a[t * c..][..c],
                grads.drate,
            );
        }
    }
}

/// What the backward pass needs: the inputs and the output (the states).
#[derive(Clone, Debug)]
struct RgLruState<B: Backend> {
    x: FloatTensor<B>,
    gate_x: FloatTensor<B>,
    gate_a: FloatTensor<B>,
    a_param: FloatTensor<B>,
    y: FloatTensor<B>,
}

#[derive(Debug)]
struct RgLruBackward;

impl HostBackward<4> for RgLruBackward {
    type State<B: Backend> = RgLruState<B>;

    fn backward<B: Backend>(
        state: RgLruState<B>,
        dy: FloatTensor<B>,
        _: [bool; 4],
    ) -> [Option<FloatTensor<B>>; 4] {
        let device = state.x.device();
        let dims = Dims::of::<B>(&state.x);
        let data = [state.x, state.gate_x, state.gate_a, state.y, dy].map(host_data::<B>);
        let all = [0, 1, 2].map(|i| values(&data[i]));
        let (y, dy) = (values(&data[3]), values(&data[4]));
        let a_param = host_data::<B>(state.a_param);
        let a_param = values(&a_param);
        let (rate, slope) = channel_constants(a_param);
        let (lc, c) = (dims.l * dims.c, dims.c);
        let mut dx = vec![0.0f32; dims.batch * lc];
        let mut dgate_x = vec![0.0f32; dims.batch * lc];
        let mut dgate_a = vec![0.0f32; dims.batch * lc];
        let mut drate_per_sequence = vec![0.0f32; dims.batch * c];
        let items = dx
            .chunks_mut(lc)
            .zip(dgate_x.chunks_mut(lc))
            .zip(dgate_a.chunks_mut(lc))
            .zip(drate_per_sequence.chunks_mut(c))
            .enumerate()
            .collect();
        parallel(items, |(index, (((dx, dgate_x), dgate_a), drate))| {
            pulp::Arch::new().dispatch(BackwardSequence {
                dims,
                seq: Sequence::of(dims, index, all, &rate),
                y: &y[index * lc..][..lc],
                dy: &dy[index * lc..][..lc],
                grads: SequenceGrads {
                    dx,
                    dgate_x,
                    dgate_a,
                    drate,
                },
            });
        });
        let drate = sum_parts(&drate_per_sequence, c);
        // rate = −8 softplus(Λ): dΛ = drate · (−8) · σ(Λ).
        let da_param: Vec<f32> = drate.iter().zip(&slope).map(|(d, s)| -C * d * s).collect();
        let shape = [dims.batch, dims.l, dims.c];
        let tensor = |values: Vec<f32>, shape: Vec<usize>| {
            B::float_from_data(TensorData::new(values, shape), &device)
        };
        [
            tensor(dx, shape.to_vec()),
            tensor(dgate_x, shape.to_vec()),
            tensor(dgate_a, shape.to_vec()),
            tensor(da_param, vec![c]),
        ]
        .map(Some)
    }
}

impl<B: Backend + RgLruBackend, C: CheckpointStrategy> RgLruBackend for Autodiff<B, C> {
    fn rg_lru(
        x: FloatTensor<Self>,
        gate_x: FloatTensor<Self>,
        gate_a: FloatTensor<Self>,
        a_param: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        autodiff_op::<RgLruBackward, B, C, 4>(
            [x, gate_x, gate_a, a_param],
            |[x, gate_x, gate_a, a_param]| {
                let y =
                    forward_host::<B>(x.clone(), gate_x.clone(), gate_a.clone(), a_param.clone());
                let state = RgLruState {
                    x,
                    gate_x,
                    gate_a,
                    a_param,
                    y: y.clone(),
                };
                (y, state)
            },
            |[x, gate_x, gate_a, a_param]| B::rg_lru(x, gate_x, gate_a, a_param),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{assert_close, flat, max_rel};
    use burn::tensor::Distribution;

    /// Fused against the per-step reference: output and the gradients of x, both gates and Λ.
    fn check(batch: usize, l: usize, c: usize, a_param: Vec<f32>) {
        let device = Device::flex().autodiff();
        device.seed((batch * 10_000 + l * 100 + c) as u64);
        let normal = Distribution::Normal(0.0, 1.0);
        let x = Tensor::<3>::random([batch, l, c], normal, &device);
        let gate_x = Tensor::<3>::random([batch, l, c], normal, &device);
        let gate_a = Tensor::<3>::random([batch, l, c], Distribution::Normal(0.0, 2.0), &device);
        let a_param = Tensor::<1>::from_data(TensorData::new(a_param, [c]), &device);
        let w = Tensor::<3>::random([batch, l, c], normal, &device);
        let run = |fused: bool| {
            let [x, gx, ga] = [x.clone(), gate_x.clone(), gate_a.clone()].map(|t| t.require_grad());
            let ap = a_param.clone().require_grad();
            let f = if fused { rg_lru } else { rg_lru_reference };
            let y = f(x.clone(), gx.clone(), ga.clone(), ap.clone());
            let grads = (y.clone() * w.clone()).sum().backward();
            [
                flat(y),
                flat(x.grad(&grads).unwrap()),
                flat(gx.grad(&grads).unwrap()),
                flat(ga.grad(&grads).unwrap()),
                flat(ap.grad(&grads).unwrap()),
            ]
        };
        let (fused, reference) = (run(true), run(false));
        let names = ["y", "dx", "dgate_x", "dgate_a", "da_param"];
        assert_close(
            &names,
            &fused,
            &reference,
            1e-4,
            &format!("b{batch} l{l} c{c}"),
        );
    }

    /// `a_param` as the reference initialises it: `softplus(Λ) = −ln r`, `r² ~ U[0.81, 0.998]`.
    fn initial(c: usize) -> Vec<f32> {
        (0..c)
            .map(|j| {
                let r2 = 0.81 + (0.998 - 0.81) * (j as f32 + 0.5) / c as f32;
                let r = r2.sqrt();
                (1.0 / r - 1.0).ln()
            })
            .collect()
    }

    #[test]
    fn fused_equals_reference_values_and_gradients() {
        check(2, 1, 5, initial(5)); // length 1: only the reset position
        check(2, 7, 16, initial(16));
        check(3, 65, 17, initial(17)); // channels not a multiple of a vector
        check(1, 130, 8, initial(8));
    }

    #[test]
    fn bounded_sqrt_gradient_matches_reference_near_a_equal_one() {
        // Λ = −25: softplus(Λ) ~ 1e-11, a² rounds to exactly 1 on both paths, so 1 − a² = 0 and
        // the bound (1000) sets the whole gradient through the square root. Λ = −8: a ≈ 0.9987,
        // near 1 but with 1 − a² ~ 3e-3, well above f32 rounding (between the two, 1 − a² is a
        // few ulps of 1 and either path's last-ulp exp decides it). Λ = 3, 9: fast decay.
        check(2, 9, 4, vec![-25.0, -8.0, 3.0, 9.0]);
    }

    #[test]
    fn step_matches_the_sequence() {
        let device = Device::flex();
        device.seed(2);
        let (b, l, c) = (2, 6, 5);
        let t = || Tensor::<3>::random([b, l, c], Distribution::Default, &device);
        let (x, gx, ga) = (t(), t(), t());
        let a_param = Tensor::<1>::from_data(TensorData::new(initial(c), [c]), &device);
        let y = flat(rg_lru(x.clone(), gx.clone(), ga.clone(), a_param.clone()));
        let mut h = Tensor::<2>::zeros([b, c], &device);
        let mut steps = Vec::new();
        for p in 0..l {
            let at = |v: &Tensor<3>| v.clone().narrow(1, p, 1).reshape([b, c]);
            h = rg_lru_step(at(&x), at(&gx), at(&ga), a_param.clone(), h, p);
            steps.push(h.clone().unsqueeze_dim::<3>(1));
        }
        assert!(max_rel(&flat(Tensor::cat(steps, 1)), &y) < 1e-5);
    }
}
