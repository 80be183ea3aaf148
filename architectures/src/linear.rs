//! The linear forecasters: Linear, NLinear, DLinear (Zeng et al., "Are Transformers Effective for
//! Time Series Forecasting?", AAAI 2023, <https://arxiv.org/abs/2205.13504>) and RLinear (Li et
//! al., "Revisiting Long-term Time Series Forecasting: An Investigation on Linear Mapping", 2023,
//! <https://arxiv.org/abs/2305.10721>).
//!
//! References: cure-lab/LTSF-Linear `models/{Linear,NLinear,DLinear}.py` @ 0c11366 and
//! plumprc/RTSF `models/RLinear.py` @ 0fec001.
//!
//! - **Linear**: `Linear(L -> H)` along time, per channel.
//! - **NLinear**: subtract the last input value, `Linear`, add it back.
//! - **DLinear**: trend = moving average (kernel 25, stride 1, replicate padding of `(k-1)/2` steps at
//!   both ends), seasonal = input − trend; output = `Linear_S(seasonal) + Linear_T(trend)`.
//! - **RLinear**: RevIN (affine) → dropout → `Linear` → RevIN⁻¹.
//!
//! Each takes `individual` (one weight matrix per channel). Weights default to PyTorch's `nn.Linear`
//! initialisation; `mean_init` gives TSLib DLinear's constant `1/L` weights.
//!
//! Deviation: none in the maths. The moving average is a fixed `[L, L]` averaging matrix `Mᵀ` (the
//! same numbers as AvgPool1d over the replicate-padded window). Because every DLinear step is
//! linear, the fast path folds the decomposition into one effective weight,
//! `W = W_S + Mᵀ (W_T − W_S)`, computed once per call from the parameters (`[L, L] × [L, H]`)
//! instead of averaging every window of the batch (`[b·c, L] × [L, L]`); gradients reach `W_S`
//! and `W_T` through it. [`LinearForecaster::dlinear_reference`] keeps the explicit
//! decomposition, and a test holds the two equal in values and gradients.
//!
//! As a [`SequenceModel`] a linear forecaster is a causal filter over the last `w = L` positions:
//! the output at `t` is its one-step-ahead forecast from the window ending at `t`.

use burn::prelude::*;

use crate::blocks::{Dropout, RevIn, RevInConfig, TimeLinear, TimeLinearConfig, time_linear};
use crate::error::ConfigError;
use crate::options::{ModelOption, ModelOptions};
use crate::registry::{Architecture, TaskShape};
use crate::sequence_model::{Forecaster, SequenceModel, WindowState, rolling};

/// The family's registry entries: one marker type per member, each an [`Architecture`].
macro_rules! members {
    ($($(#[doc = $doc:literal])+ $spec:ident: $kind:ident, $about:literal, [$($option:ident),*];)+) => {$(
        $(#[doc = $doc])+
        pub struct $spec;

        impl Architecture for $spec {
            type Config = LinearForecasterConfig;
            type Model = LinearForecaster;

            const ABOUT: &'static str = $about;

            fn options() -> Vec<ModelOption> {
                vec![$(ModelOption::$option),*]
            }

            fn config(task: TaskShape, options: &ModelOptions) -> Result<Self::Config, ConfigError> {
                Ok(LinearForecasterConfig::from_options(LinearKind::$kind, task, options))
            }

            fn validate(config: &Self::Config) -> Result<(), ConfigError> {
                config.validate()
            }

            fn forward_flops(config: &Self::Config) -> u64 {
                config.forward_flops()
            }

            fn init(config: &Self::Config, device: &Device) -> Self::Model {
                config.init(device)
            }
        }
    )+};
}

members! {
    /// Linear (LTSF-Linear).
    LinearSpec: Linear, "Linear(L->H) along time per channel (LTSF-Linear, Zeng et al. 2023)", [Individual];
    /// NLinear (LTSF-Linear).
    NlinearSpec: NLinear, "last-value normalisation + Linear (LTSF-Linear)", [Individual];
    /// DLinear (LTSF-Linear).
    DlinearSpec: DLinear, "moving-average trend/seasonal decomposition, one Linear each (LTSF-Linear)", [Individual, MovingAvg];
    /// RLinear (RTSF).
    RlinearSpec: RLinear, "RevIN + dropout + Linear (Li et al. 2023)", [Individual, Dropout];
}

/// RTSF's RLinear input dropout, its default (the other members have no dropout).
const RLINEAR_DROPOUT: f64 = 0.1;

/// Which member of the linear family.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum LinearKind {
    /// `Linear(L -> H)`.
    Linear,
    /// Last-value normalisation around `Linear`.
    NLinear,
    /// Trend/seasonal decomposition with one `Linear` each.
    DLinear,
    /// RevIN around dropout and `Linear`.
    RLinear,
}

/// Hyperparameters of a [`LinearForecaster`].
#[derive(Config, Debug)]
pub struct LinearForecasterConfig {
    /// Family member.
    pub kind: LinearKind,
    /// Lookback `L`.
    pub seq_len: usize,
    /// Horizon `H`.
    pub pred_len: usize,
    /// Channels `c` (needed for `individual` weights and RevIN).
    pub channels: usize,
    /// One set of weights per channel.
    #[config(default = false)]
    pub individual: bool,
    /// DLinear moving-average kernel (odd).
    #[config(default = 25)]
    pub moving_avg: usize,
    /// RLinear input dropout probability.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// RLinear: learn RevIN's affine map.
    #[config(default = true)]
    pub revin_affine: bool,
    /// Constant `1/L` initial weights (TSLib's DLinear) instead of PyTorch's uniform default.
    #[config(default = false)]
    pub mean_init: bool,
}

/// A linear forecaster, `[b, L, c] -> [b, H, c]`.
#[derive(Module, Debug)]
pub struct LinearForecaster {
    /// The time map (DLinear: the seasonal head).
    pub head: TimeLinear,
    /// DLinear's trend head.
    pub trend_head: Option<TimeLinear>,
    /// RLinear's normalisation.
    pub revin: Option<RevIn>,
    /// RLinear's input dropout.
    pub dropout: Dropout,
    /// DLinear's moving average as a matrix `Mᵀ`, `[L, L]`: `trend = x · Mᵀ` (a constant).
    pub moving_avg: Option<Tensor<2>>,
    #[module(skip)]
    kind: LinearKind,
    seq_len: usize,
    pred_len: usize,
    channels: usize,
}

impl LinearForecasterConfig {
    /// The configuration of member `kind` for `task`, from the options given (the registry has
    /// rejected the ones the member does not take).
    pub fn from_options(kind: LinearKind, task: TaskShape, options: &ModelOptions) -> Self {
        let config = Self::new(kind, task.seq_len, task.pred_len, task.channels);
        let dropout = if kind == LinearKind::RLinear {
            RLINEAR_DROPOUT
        } else {
            config.dropout
        };
        Self {
            individual: options.individual,
            moving_avg: options.moving_avg.unwrap_or(config.moving_avg),
            dropout: options.dropout.unwrap_or(dropout),
            // TSLib's constant initialisation is DLinear's (set by its preset).
            mean_init: options.mean_init && kind == LinearKind::DLinear,
            ..config
        }
    }

    /// Forward FLOPs for one window (multiply-adds count 2; see [`crate::flops`]): one `L -> H`
    /// map per channel, `2·L·H·c`; DLinear has two (seasonal and trend), `4·L·H·c` (its moving
    /// average and the folding of both maps into one are not counted).
    pub fn forward_flops(&self) -> u64 {
        let maps = if self.kind == LinearKind::DLinear {
            2
        } else {
            1
        };
        (maps * 2 * self.seq_len * self.pred_len * self.channels) as u64
    }

    /// Check ranges before building.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.seq_len == 0 || self.pred_len == 0 || self.channels == 0 {
            return Err(ConfigError::Invalid(format!(
                "seq_len, pred_len and channels must be positive (got {}, {}, {})",
                self.seq_len, self.pred_len, self.channels
            )));
        }
        if self.kind == LinearKind::DLinear && self.moving_avg.is_multiple_of(2) {
            return Err(ConfigError::Invalid(format!(
                "moving_avg must be odd so the trend keeps the window length (got {})",
                self.moving_avg
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ConfigError::Invalid(format!(
                "dropout must be in [0, 1) (got {})",
                self.dropout
            )));
        }
        Ok(())
    }

    /// Build on `device`.
    ///
    /// # Panics
    ///
    /// If the config does not pass [`Self::validate`].
    pub fn init(&self, device: &Device) -> LinearForecaster {
        if let Err(e) = self.validate() {
            panic!("invalid LinearForecasterConfig: {e}");
        }
        let time_linear = TimeLinearConfig::new(self.seq_len, self.pred_len, self.channels)
            .with_individual(self.individual)
            .with_mean_init(self.mean_init);
        let is = |k| self.kind == k;
        LinearForecaster {
            head: time_linear.init(device),
            trend_head: is(LinearKind::DLinear).then(|| time_linear.init(device)),
            revin: is(LinearKind::RLinear).then(|| {
                RevInConfig::new(self.channels)
                    .with_affine(self.revin_affine)
                    .init(device)
            }),
            dropout: Dropout::new(if is(LinearKind::RLinear) {
                self.dropout
            } else {
                0.0
            }),
            moving_avg: is(LinearKind::DLinear)
                .then(|| moving_average_matrix(self.seq_len, self.moving_avg, device)),
            kind: self.kind,
            seq_len: self.seq_len,
            pred_len: self.pred_len,
            channels: self.channels,
        }
    }
}

impl LinearForecaster {
    /// Family member.
    pub fn kind(&self) -> LinearKind {
        self.kind
    }

    /// Lookback `L`.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Horizon `H`.
    pub fn pred_len(&self) -> usize {
        self.pred_len
    }
}

impl Forecaster for LinearForecaster {
    /// `x: [b, L, c] -> [b, H, c]`.
    fn forecast(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, l, _] = x.dims();
        assert_eq!(
            l, self.seq_len,
            "window length {l}, model built for {}",
            self.seq_len
        );
        match self.kind {
            LinearKind::Linear => self.head.forward(x.swap_dims(1, 2)).swap_dims(1, 2),
            LinearKind::NLinear => {
                let last = x.clone().narrow(1, l - 1, 1); // [b, 1, c]
                let y = self.head.forward((x - last.clone()).swap_dims(1, 2)); // [b, c, H]
                y.swap_dims(1, 2) + last
            }
            LinearKind::DLinear => {
                let ma = self
                    .moving_avg
                    .as_ref()
                    .expect("DLinear has a moving average");
                let trend_head = self.trend_head.as_ref().expect("DLinear has a trend head");
                let (w_s, w_t) = (self.head.weight.val(), trend_head.weight.val());
                // W = W_S + Mᵀ (W_T − W_S): [1, L, L] × [g, L, H] -> [g, L, H].
                let weight = w_s.clone() + ma.clone().unsqueeze::<3>().matmul(w_t - w_s);
                let bias = self.head.bias.val() + trend_head.bias.val(); // [g, H]
                time_linear::apply(x.swap_dims(1, 2), weight, bias).swap_dims(1, 2)
            }
            LinearKind::RLinear => {
                let revin = self.revin.as_ref().expect("RLinear has RevIN");
                let (xn, stats) = revin.normalize(x);
                let xn = self.dropout.forward(xn);
                let y = self.head.forward(xn.swap_dims(1, 2)).swap_dims(1, 2); // [b, H, c]
                revin.denormalize(y, &stats)
            }
        }
    }
}

impl LinearForecaster {
    /// DLinear exactly as written in LTSF-Linear: decompose every window into trend and seasonal
    /// parts, apply one head to each, add. The reference for the folded fast path in
    /// [`Forecaster::forecast`]. `x: [b, L, c] -> [b, H, c]`.
    ///
    /// # Panics
    ///
    /// If the model is not a DLinear.
    pub fn dlinear_reference(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, l, c] = x.dims();
        let ma = self
            .moving_avg
            .as_ref()
            .expect("DLinear has a moving average");
        let trend_head = self.trend_head.as_ref().expect("DLinear has a trend head");
        let xt = x.swap_dims(1, 2); // [b, c, L]
        let trend = xt
            .clone()
            .reshape([b * c, l])
            .matmul(ma.clone())
            .reshape([b, c, l]);
        let seasonal = xt - trend.clone();
        (self.head.forward(seasonal) + trend_head.forward(trend)).swap_dims(1, 2)
    }
}

impl SequenceModel for LinearForecaster {
    type State = WindowState;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        rolling::forward(|w| self.forecast(w), self.seq_len, x)
    }

    fn init_state(&self, batch: usize, device: &Device) -> WindowState {
        rolling::init_state(self.seq_len, batch, self.channels, device)
    }

    fn step(&self, x: Tensor<2>, state: WindowState) -> (Tensor<2>, WindowState) {
        rolling::step(|w| self.forecast(w), x, state)
    }

    fn state_size(&self, _len: usize) -> usize {
        (self.seq_len - 1) * self.channels
    }

    fn width(&self) -> Option<usize> {
        Some(self.channels)
    }
}

/// `Mᵀ` with `trend = x · Mᵀ` equal to AvgPool1d(kernel `k`, stride 1) over `x` replicate-padded by
/// `(k - 1) / 2` steps at both ends: `trend_t = (1/k) Σ_{j=-p..=p} x_{clamp(t + j, 0, L - 1)}`.
fn moving_average_matrix(l: usize, k: usize, device: &Device) -> Tensor<2> {
    let p = (k - 1) / 2;
    let mut m_t = vec![0.0f32; l * l]; // row s (input), column t (output)
    for t in 0..l {
        for j in 0..k {
            let s = (t + j).saturating_sub(p).min(l - 1);
            m_t[s * l + t] += 1.0 / k as f32;
        }
    }
    Tensor::from_data(TensorData::new(m_t, [l, l]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trend equals an explicit replicate-padded moving average.
    #[test]
    fn moving_average_matches_padded_avg_pool() {
        let device = Device::flex();
        let (l, k) = (10, 5);
        let x: Vec<f32> = (0..l).map(|i| (i * i) as f32).collect();
        let m = moving_average_matrix(l, k, &device);
        let got = Tensor::<2>::from_data(TensorData::new(x.clone(), [1, l]), &device)
            .matmul(m)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let mut padded = vec![x[0]; 2];
        padded.extend(&x);
        padded.extend(vec![x[l - 1]; 2]);
        for t in 0..l {
            let want: f32 = padded[t..t + k].iter().sum::<f32>() / k as f32;
            assert!((got[t] - want).abs() < 1e-4, "t={t}: {} vs {want}", got[t]);
        }
    }

    #[test]
    fn shapes_for_every_kind_and_individual() {
        let device = Device::flex();
        for kind in [
            LinearKind::Linear,
            LinearKind::NLinear,
            LinearKind::DLinear,
            LinearKind::RLinear,
        ] {
            for individual in [false, true] {
                let model = LinearForecasterConfig::new(kind, 12, 4, 3)
                    .with_individual(individual)
                    .with_moving_avg(5)
                    .init(&device);
                let x =
                    Tensor::<3>::random([2, 12, 3], burn::tensor::Distribution::Default, &device);
                assert_eq!(
                    model.forecast(x).dims(),
                    [2, 4, 3],
                    "{kind:?} individual={individual}"
                );
            }
        }
    }

    /// NLinear of a constant window forecasts that constant plus the bias.
    #[test]
    fn nlinear_is_shift_equivariant() {
        let device = Device::flex();
        let model = LinearForecasterConfig::new(LinearKind::NLinear, 8, 3, 2).init(&device);
        let x = Tensor::<3>::random([1, 8, 2], burn::tensor::Distribution::Default, &device);
        let shifted = model.forecast(x.clone().add_scalar(5.0));
        let base = model.forecast(x).add_scalar(5.0);
        shifted
            .into_data()
            .assert_approx_eq::<f32>(&base.into_data(), burn::tensor::Tolerance::absolute(1e-4));
    }

    /// The folded DLinear equals the explicit decomposition, in outputs and in the gradients of
    /// every parameter, shared and individual.
    #[test]
    fn folded_dlinear_equals_reference_values_and_gradients() {
        let device = Device::flex().autodiff();
        for individual in [false, true] {
            let model = LinearForecasterConfig::new(LinearKind::DLinear, 48, 12, 3)
                .with_individual(individual)
                .init(&device);
            let x = Tensor::<3>::random([4, 48, 3], burn::tensor::Distribution::Default, &device);
            let fast = model.forecast(x.clone());
            let reference = model.dlinear_reference(x);
            let tolerance = burn::tensor::Tolerance::<f32>::rel_abs(1e-4, 1e-5);
            fast.clone()
                .into_data()
                .assert_approx_eq::<f32>(&reference.clone().into_data(), tolerance);
            let (g_fast, g_ref) = (
                fast.powi_scalar(2).sum().backward(),
                reference.powi_scalar(2).sum().backward(),
            );
            let trend = model.trend_head.as_ref().unwrap();
            for p in [model.head.weight.val(), trend.weight.val()] {
                let (a, b) = (p.grad(&g_fast).unwrap(), p.grad(&g_ref).unwrap());
                a.into_data()
                    .assert_approx_eq::<f32>(&b.into_data(), tolerance);
            }
            for p in [model.head.bias.val(), trend.bias.val()] {
                let (a, b) = (p.grad(&g_fast).unwrap(), p.grad(&g_ref).unwrap());
                a.into_data()
                    .assert_approx_eq::<f32>(&b.into_data(), tolerance);
            }
        }
    }

    #[test]
    fn even_kernel_is_rejected() {
        let cfg = LinearForecasterConfig::new(LinearKind::DLinear, 8, 3, 2).with_moving_avg(4);
        assert!(cfg.validate().is_err());
    }
}
