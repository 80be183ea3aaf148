//! The two contracts every architecture meets: the causal backbone ([`SequenceModel`]) and the
//! forecaster ([`Forecaster`]).

use burn::prelude::*;

/// The backbone contract every architecture in the zoo satisfies.
///
/// `forward` maps `[b, l, d] -> [b, l, d]` causally: output `t` depends on inputs `0..=t` only.
/// `step` maps one position `[b, d] -> [b, d]` and threads `State`; running `step` over positions
/// `0..l` from `init_state` reproduces `forward` (tested for every registered architecture).
pub trait SequenceModel {
    /// Everything `step` carries between positions (KV cache, SSM state, input window).
    type State: Clone + core::fmt::Debug;

    /// Whole sequence, causal: `[b, l, d] -> [b, l, d]`.
    fn forward(&self, x: Tensor<3>) -> Tensor<3>;

    /// Fresh state for `batch` independent sequences.
    fn init_state(&self, batch: usize, device: &Device) -> Self::State;

    /// One position: `[b, d] -> [b, d]`; equals `forward` at that position.
    fn step(&self, x: Tensor<2>, state: Self::State) -> (Tensor<2>, Self::State);

    /// Floats of state held per sequence after `len` positions (a KV cache grows; a recurrent or
    /// windowed state does not).
    fn state_size(&self, len: usize) -> usize;

    /// Width `d` the model expects, or `None` when any width works (a parameter-free model).
    fn width(&self) -> Option<usize>;

    /// Longest sequence the model can process (a position table's size), `None` if unbounded.
    /// `step` beyond it is a caller error; callers check first.
    fn max_len(&self) -> Option<usize> {
        None
    }

    /// Whether outputs depend on earlier inputs only. Only causal models have a `step`.
    fn is_causal(&self) -> bool {
        true
    }
}

/// The long-horizon forecasting contract: a lookback window in, a horizon out.
pub trait Forecaster {
    /// `[b, L, c] -> [b, H, c]`.
    fn forecast(&self, x: Tensor<3>) -> Tensor<3>;
}

/// State of a window forecaster used as a [`SequenceModel`]: the last `w - 1` inputs.
#[derive(Clone, Debug)]
pub struct WindowState {
    /// `[b, w - 1, d]`, oldest first; `None` when `w == 1`.
    pub past: Option<Tensor<3>>,
}

/// A window forecaster as a causal sequence model: the output at position `t` is the one-step-ahead
/// forecast (horizon step 0) from the window of the last `w` inputs ending at `t`, with zeros
/// before the start of the sequence. It is causal by construction, and its state is the last
/// `w - 1` inputs, constant in the length.
pub(crate) mod rolling {
    use super::*;

    /// `forward` of the rolling view. `x: [b, l, d] -> [b, l, d]`.
    pub fn forward(forecast: impl Fn(Tensor<3>) -> Tensor<3>, w: usize, x: Tensor<3>) -> Tensor<3> {
        let [b, l, d] = x.dims();
        let device = x.device();
        let padded = if w > 1 {
            Tensor::cat(vec![Tensor::zeros([b, w - 1, d], &device), x], 1) // [b, l + w - 1, d]
        } else {
            x
        };
        // Window t covers padded rows t..t + w.
        let index: Vec<i64> = (0..l).flat_map(|t| (t..t + w).map(|i| i as i64)).collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [l * w]), &device);
        let windows = padded.select(1, index).reshape([b * l, w, d]); // [b·l, w, d]
        let y = forecast(windows).narrow(1, 0, 1); // [b·l, 1, d]
        y.reshape([b, l, d])
    }

    /// Fresh state: `w - 1` zero inputs.
    pub fn init_state(w: usize, batch: usize, d: usize, device: &Device) -> WindowState {
        WindowState {
            past: (w > 1).then(|| Tensor::zeros([batch, w - 1, d], device)),
        }
    }

    /// `step` of the rolling view. `x: [b, d] -> [b, d]`.
    pub fn step(
        forecast: impl Fn(Tensor<3>) -> Tensor<3>,
        x: Tensor<2>,
        state: WindowState,
    ) -> (Tensor<2>, WindowState) {
        let [b, d] = x.dims();
        let x = x.unsqueeze_dim::<3>(1); // [b, 1, d]
        let window = match state.past {
            Some(past) => Tensor::cat(vec![past, x], 1), // [b, w, d]
            None => x,
        };
        let w = window.dims()[1];
        let y = forecast(window.clone()).narrow(1, 0, 1).reshape([b, d]);
        let past = (w > 1).then(|| window.narrow(1, 1, w - 1));
        (y, WindowState { past })
    }
}
