//! LSTM backbone: stacked LSTM layers, one per block, as PyTorch's `nn.LSTM(num_layers)`
//! (Hochreiter & Schmidhuber 1997; the forget-gate form of Gers et al. 2000; reference PyTorch
//! `torch.nn.LSTM`, whose documented equations this follows exactly, gate order `i, f, g, o`).
//!
//! One layer, `x: [b, l, d] -> h: [b, l, d]`, from `h_0 = c_0 = 0`:
//!
//! ```text
//! [i, f, g, o] = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh
//! c_t = σ(f) ⊙ c_{t−1} + σ(i) ⊙ tanh(g)
//! h_t = σ(o) ⊙ tanh(c_t)
//! ```
//!
//! The input products `W_ih x_t + b_ih` of every position are one matrix product before the
//! recurrence; the recurrence itself runs position by position (it is not associative, so there
//! is no parallel scan). Initialisation as PyTorch: every weight and bias `U(±1/√d)` (burn's
//! default linear initialisation with fan-in `d`). No residual connections or norms, as
//! `nn.LSTM`; no dropout of its own (`--dropout` is the forecasting adapter head's).
//!
//! `step` carries `(h, c)` per layer: `2·d·layers` floats, constant in the length.
//!
//! Shapes: b batch, l length, d d_model (the hidden width, equal to the input width).

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;

use crate::blocks::{dense, rows};
use crate::error::ConfigError;
use crate::forecast_adapter::{Backbone, BackboneConfig, Patching};
use crate::options::{ModelOption, ModelOptions};
use crate::sequence_model::SequenceModel;

/// Hyperparameters of an [`Lstm`] backbone.
#[derive(Config, Debug)]
pub struct LstmConfig {
    /// Width `d`: input and hidden size of every layer (Mamba's default width).
    #[config(default = 128)]
    pub d_model: usize,
    /// Stacked layers.
    #[config(default = 2)]
    pub n_layers: usize,
}

/// The registry entry: the LSTM behind the forecasting adapter.
pub struct LstmSpec;

impl Backbone for LstmSpec {
    type Config = LstmConfig;

    const ABOUT: &'static str = "stacked LSTM layers over patches (nn.LSTM; same adapter)";
    const OPTIONS: &'static [ModelOption] = &[
        ModelOption::DModel,
        ModelOption::Layers,
        ModelOption::Dropout,
    ];

    fn configure(
        options: &ModelOptions,
        patching: &mut Patching,
    ) -> Result<LstmConfig, ConfigError> {
        patching.head_dropout = options.dropout.unwrap_or(patching.head_dropout);
        let config = LstmConfig::new();
        Ok(LstmConfig {
            d_model: options.d_model.unwrap_or(config.d_model),
            n_layers: options.layers.unwrap_or(config.n_layers),
        })
    }
}

impl BackboneConfig for LstmConfig {
    type Model = Lstm;

    fn d_model(&self) -> usize {
        self.d_model
    }

    /// Per layer and token: the input and hidden products `2·2·d·4d` (see [`crate::flops`]).
    fn forward_flops(&self, tokens: usize) -> u64 {
        let d = self.d_model as u64;
        self.n_layers as u64 * tokens as u64 * 2 * 2 * d * 4 * d
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.d_model == 0 || self.n_layers == 0 {
            return Err(ConfigError::Invalid(format!(
                "d_model and layers must be positive (got {}, {})",
                self.d_model, self.n_layers
            )));
        }
        Ok(())
    }

    /// `nn.LSTM` has no norm: its outputs are `σ(o) ⊙ tanh(c)`.
    fn ends_normalised(&self) -> bool {
        false
    }

    fn init(&self, device: &Device) -> Lstm {
        let (d, gates) = (self.d_model, 4 * self.d_model);
        Lstm {
            layers: (0..self.n_layers)
                .map(|_| LstmLayer {
                    input: LinearConfig::new(d, gates).init(device),
                    hidden: LinearConfig::new(d, gates).init(device),
                })
                .collect(),
            d_model: d,
        }
    }
}

/// One layer: `W_ih, b_ih` and `W_hh, b_hh`, each `d -> 4d` with the gates in the order
/// `i, f, g, o`.
#[derive(Module, Debug)]
pub struct LstmLayer {
    /// `W_ih x + b_ih`.
    input: Linear,
    /// `W_hh h + b_hh`.
    hidden: Linear,
}

/// LSTM backbone, `[b, l, d] -> [b, l, d]`.
#[derive(Module, Debug)]
pub struct Lstm {
    layers: Vec<LstmLayer>,
    d_model: usize,
}

/// Recurrent state: `(h, c)`, each `[b, d]`, per layer.
#[derive(Clone, Debug)]
pub struct LstmState {
    /// One `(h, c)` per layer.
    pub layers: Vec<(Tensor<2>, Tensor<2>)>,
}

impl SequenceModel for Lstm {
    type State = LstmState;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, l, d] = x.dims();
        let mut x = x;
        for layer in &self.layers {
            let inputs = rows(&layer.input, x); // W_ih x_t + b_ih for every t: [b, l, 4d]
            let mut h = Tensor::zeros([b, d], &inputs.device());
            let mut c = h.clone();
            let mut outputs = Vec::with_capacity(l);
            for t in 0..l {
                let input = inputs.clone().narrow(1, t, 1).reshape([b, 4 * d]);
                (h, c) = layer.cell(input, h, c);
                outputs.push(h.clone());
            }
            x = Tensor::stack(outputs, 1); // [b, l, d]
        }
        x
    }

    fn init_state(&self, batch: usize, device: &Device) -> LstmState {
        let zeros = Tensor::zeros([batch, self.d_model], device);
        LstmState {
            layers: vec![(zeros.clone(), zeros); self.layers.len()],
        }
    }

    fn step(&self, x: Tensor<2>, state: LstmState) -> (Tensor<2>, LstmState) {
        let mut x = x;
        let mut layers = Vec::with_capacity(self.layers.len());
        for (layer, (h, c)) in self.layers.iter().zip(state.layers) {
            let (h, c) = layer.cell(dense(&layer.input, x), h, c);
            x = h.clone();
            layers.push((h, c));
        }
        (x, LstmState { layers })
    }

    fn state_size(&self, _len: usize) -> usize {
        2 * self.d_model * self.layers.len()
    }

    fn width(&self) -> Option<usize> {
        Some(self.d_model)
    }
}

impl LstmLayer {
    /// One position of the recurrence, from the input's products `W_ih x_t + b_ih`, `[b, 4d]`,
    /// and the previous `(h, c)`, each `[b, d]`; returns the new `(h, c)`.
    fn cell(&self, input: Tensor<2>, h: Tensor<2>, c: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let gates = input + dense(&self.hidden, h); // [b, 4d]
        let [i, f, g, o] = <[Tensor<2>; 4]>::try_from(gates.chunk(4, 1)).expect("four gates");
        let c = sigmoid(f) * c + sigmoid(i) * g.tanh();
        let h = sigmoid(o) * c.clone().tanh();
        (h, c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recurrence against the equations written out for one unit with hand-set weights.
    #[test]
    fn one_unit_follows_the_equations() {
        let device = Device::flex();
        let mut model = LstmConfig::new()
            .with_d_model(1)
            .with_n_layers(1)
            .init(&device);
        let set = |linear: &mut Linear, w: [f32; 4], b: [f32; 4]| {
            linear.weight = burn::module::Param::from_tensor(Tensor::from_floats([w], &device));
            linear.bias = Some(burn::module::Param::from_tensor(Tensor::from_floats(
                b, &device,
            )));
        };
        let (wi, bi) = ([0.5, -0.3, 0.8, 0.2], [0.1, 0.2, -0.1, 0.05]);
        let (wh, bh) = ([0.4, 0.6, -0.7, 0.3], [0.0, 0.1, 0.2, -0.2]);
        set(&mut model.layers[0].input, wi, bi);
        set(&mut model.layers[0].hidden, wh, bh);
        let xs = [0.7f32, -1.2, 0.4];
        let y = model.forward(Tensor::<1>::from_floats(xs, &device).reshape([1, 3, 1]));
        let got = y.into_data().try_into_vec::<f32>().unwrap();
        let s = |v: f32| 1.0 / (1.0 + (-v).exp());
        let (mut h, mut c) = (0.0f32, 0.0f32);
        for (t, &x) in xs.iter().enumerate() {
            let gate = |k: usize| wi[k] * x + bi[k] + wh[k] * h + bh[k];
            c = s(gate(1)) * c + s(gate(0)) * gate(2).tanh();
            h = s(gate(3)) * c.tanh();
            assert!((got[t] - h).abs() < 1e-6, "t {t}: {} vs {h}", got[t]);
        }
    }
}
