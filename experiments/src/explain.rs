//! `archzoo explain`: which lags and channels a trained forecaster uses, by three attribution
//! methods, with each method's faithfulness measured on the same windows.
//!
//! Methods ([`Method`]); each gives, per explained window, an array `[targets, L, C]` over the
//! normalised input:
//! - **saliency**: the gradient ∂y/∂x at the input (Simonyan et al. 2014);
//! - **integrated gradients**: (x − x′) ⊙ ∫₀¹ ∂y/∂x(x′ + α(x − x′)) dα over `steps` points, by
//!   Gauss–Legendre quadrature with its nodes clustered toward the baseline (default; see
//!   [`Quadrature`]), plain Gauss–Legendre (Captum's default) or the trapezoid rule (Sundararajan
//!   et al. 2017, "Axiomatic Attribution for Deep Networks");
//! - **occlusion**: y(x) − y(x with `len` consecutive steps of one channel set to the baseline),
//!   for every such patch (stride 1), each input's attribution the mean over the patches that
//!   cover it (Zeiler & Fergus 2014; Captum's `Occlusion`). Forward passes only.
//!
//! Targets ([`TargetSpec`]): the forecast's mean over the horizon, one target per scored
//! channel, or one output (horizon step `h`, channel `c`).
//!
//! Faithfulness ([`Faithfulness`]) on the explained windows, beside random orders of the same
//! inputs (Samek et al. 2017; DeYoung et al. 2020, ERASER, with absolute changes of a regression
//! output in place of class probabilities), the inputs ranked by |attribution|:
//! - deletion: |y(x) − y(x with the top k% set to the baseline)| for k = 0, 5, …, 100; its area
//!   over k ∈ [0, 1] (higher: the ranking found what moves the output);
//! - insertion: |y(x) − y(the baseline with the top k% restored)|; its area (lower: the ranking
//!   found what suffices);
//! - comprehensiveness and sufficiency at 5, 10 and 20%: the two curves at those points;
//! - integrated gradients' completeness error |Σ attributions − (y(x) − y(x′))|.
//!
//! Gradients are taken through the model frozen on the autodiff device (`Module::freeze`: dropout
//! off, BatchNorm on its running statistics, parameters untracked). Rows for every target and
//! interpolation point go through the model together, `batch` at a time: each row's loss picks
//! its own target and rows do not interact, so one backward pass gives every row's gradient.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use architectures::{Arch, ArchConfig, Forecaster};
use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use clap::ValueEnum;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RunError};

/// An attribution method.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ValueEnum,
)]
pub enum Method {
    /// Integrated gradients.
    #[value(name = "ig")]
    #[serde(rename = "ig")]
    IntegratedGradients,
    /// The input gradient.
    #[value(name = "saliency")]
    #[serde(rename = "saliency")]
    Saliency,
    /// Sliding-patch occlusion.
    #[value(name = "occlusion")]
    #[serde(rename = "occlusion")]
    Occlusion,
}

impl Method {
    /// Every method, in the order tables list them.
    pub const ALL: [Method; 3] = [
        Method::IntegratedGradients,
        Method::Saliency,
        Method::Occlusion,
    ];

    /// The command-line and file name: `ig`, `saliency`, `occlusion`.
    pub fn name(self) -> &'static str {
        match self {
            Method::IntegratedGradients => "ig",
            Method::Saliency => "saliency",
            Method::Occlusion => "occlusion",
        }
    }

    /// The name in charts and tables.
    pub fn label(self) -> &'static str {
        match self {
            Method::IntegratedGradients => "integrated gradients",
            Method::Saliency => "saliency",
            Method::Occlusion => "occlusion",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The reference input x′ that integrated gradients starts from and that deletion, insertion and
/// occlusion put in place of an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Baseline {
    /// Zero in the normalised space: every channel at its train-split mean.
    Zero,
    /// Each channel held at its own mean over the window's lookback.
    Mean,
}

impl Baseline {
    /// The baseline of the window `x`, `[L, C]` row-major.
    pub fn of(self, x: &[f32], c: usize) -> Vec<f32> {
        match self {
            Baseline::Zero => vec![0.0; x.len()],
            Baseline::Mean => {
                let l = x.len() / c;
                let means: Vec<f32> = (0..c)
                    .map(|j| {
                        let sum: f64 = (0..l).map(|t| f64::from(x[t * c + j])).sum();
                        (sum / l as f64) as f32
                    })
                    .collect();
                (0..l).flat_map(|_| means.iter().copied()).collect()
            }
        }
    }
}

impl fmt::Display for Baseline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Baseline::Zero => "zero",
            Baseline::Mean => "mean",
        })
    }
}

/// How integrated gradients integrates along the path.
///
/// Every baseline here is a constant series, the singular point of the per-window normalisation
/// (RevIN) the deep models start with: near it the normalisation turns from ÷ std into ÷ √ε, a
/// boundary layer a few thousandths of the path wide at α = 0. Plain Gauss–Legendre at 50 points
/// misses Σ attributions = y(x) − y(x′) there by up to 4% (small Mamba-2, measured);
/// `clustered` moves the nodes toward α = 0 and holds it within 1% for every architecture
/// (`experiments/tests/explain.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Quadrature {
    /// Gauss–Legendre in u with α = u² (weights 2u·w): nodes dense near the baseline; exact for
    /// integrands polynomial in α of degree < `steps`.
    Clustered,
    /// Gauss–Legendre nodes and weights on [0, 1], Captum's default (exact for polynomials of
    /// degree < 2·steps).
    GaussLegendre,
    /// The trapezoid rule on `steps` equally spaced points, both ends included.
    Riemann,
}

impl Quadrature {
    /// The points α ∈ [0, 1] and weights (summing to 1) of a rule with `steps` points; `steps`
    /// is at least 1 (2 for the trapezoid rule), which [`Settings::validate`] checks.
    pub fn nodes(self, steps: usize) -> Vec<(f64, f64)> {
        match self {
            Quadrature::Riemann => {
                let n = steps.max(2);
                let h = 1.0 / (n - 1) as f64;
                (0..n)
                    .map(|k| {
                        let end = k == 0 || k == n - 1;
                        (k as f64 * h, if end { h / 2.0 } else { h })
                    })
                    .collect()
            }
            Quadrature::GaussLegendre => gauss_legendre(steps.max(1)),
            Quadrature::Clustered => gauss_legendre(steps.max(1))
                .into_iter()
                .map(|(u, w)| (u * u, 2.0 * u * w))
                .collect(),
        }
    }
}

impl fmt::Display for Quadrature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Quadrature::Clustered => "clustered",
            Quadrature::GaussLegendre => "gauss-legendre",
            Quadrature::Riemann => "riemann",
        })
    }
}

/// Gauss–Legendre nodes on [0, 1], ascending, with weights summing to 1: the roots of the
/// Legendre polynomial P_n by Newton's method from Tricomi's initial guesses.
fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    let mut nodes: Vec<(f64, f64)> = (1..=n)
        .map(|i| {
            let mut x = (std::f64::consts::PI * (i as f64 - 0.25) / (n as f64 + 0.5)).cos();
            let mut derivative = 1.0;
            for _ in 0..100 {
                // P_n(x) and P_{n−1}(x) by the three-term recurrence.
                let (mut p, mut previous) = (x, 1.0);
                for k in 2..=n {
                    let next = ((2 * k - 1) as f64 * x * p - (k - 1) as f64 * previous) / k as f64;
                    previous = p;
                    p = next;
                }
                if n == 1 {
                    previous = 1.0;
                }
                derivative = n as f64 * (x * p - previous) / (x * x - 1.0);
                let step = p / derivative;
                x -= step;
                if step.abs() < 1e-15 {
                    break;
                }
            }
            let weight = 2.0 / ((1.0 - x * x) * derivative * derivative);
            ((1.0 - x) / 2.0, weight / 2.0)
        })
        .collect();
    nodes.sort_by(|a, b| a.0.total_cmp(&b.0));
    nodes
}

/// What to explain: `mean` (the forecast's mean over the horizon, one target per scored channel)
/// or `h:c`, one output (horizon step `h`, 1-based; channel `c`, a column name or 0-based index).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetSpec {
    /// The mean over the horizon, per scored channel.
    Mean,
    /// One output.
    Output {
        /// Horizon step, 1-based.
        step: usize,
        /// Channel: a column name or a 0-based index.
        channel: String,
    },
}

impl FromStr for TargetSpec {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        if text == "mean" {
            return Ok(TargetSpec::Mean);
        }
        let (step, channel) = text.split_once(':').ok_or_else(|| {
            format!("`{text}`: a target is `mean` or `h:c` (horizon step h from 1, channel c)")
        })?;
        let step = step
            .parse::<usize>()
            .map_err(|_| format!("`{text}`: the horizon step `{step}` is not a whole number"))?;
        if channel.is_empty() {
            return Err(format!("`{text}`: no channel after `:`"));
        }
        Ok(TargetSpec::Output {
            step,
            channel: channel.to_string(),
        })
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Mean => f.write_str("mean"),
            TargetSpec::Output { step, channel } => write!(f, "{step}:{channel}"),
        }
    }
}

/// One explained scalar: the mean of the forecast of `channel` over horizon steps `steps`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// `mean OT`, `h24 OT`.
    pub name: String,
    /// Output channel.
    pub channel: usize,
    /// Horizon steps averaged (0-based).
    pub steps: Range<usize>,
}

impl TargetSpec {
    /// The targets of a model with horizon `h`, output columns `columns`, of which `scored` are
    /// scored. A step outside the horizon or a channel that is not scored is an error naming
    /// what there is.
    pub fn resolve(
        &self,
        h: usize,
        columns: &[String],
        scored: Range<usize>,
    ) -> Result<Vec<Target>> {
        match self {
            TargetSpec::Mean => Ok(scored
                .map(|c| Target {
                    name: format!("mean {}", columns[c]),
                    channel: c,
                    steps: 0..h,
                })
                .collect()),
            TargetSpec::Output { step, channel } => {
                if *step == 0 || *step > h {
                    return Err(RunError::Invalid(format!(
                        "--target {self}: horizon step {step} is outside the run's horizon 1..={h}"
                    )));
                }
                let index = columns
                    .iter()
                    .position(|c| c == channel)
                    .or_else(|| channel.parse::<usize>().ok());
                let names = || {
                    scored
                        .clone()
                        .map(|c| format!("`{}` ({c})", columns[c]))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                match index {
                    Some(c) if scored.contains(&c) => Ok(vec![Target {
                        name: format!("h{step} {}", columns[c]),
                        channel: c,
                        steps: step - 1..*step,
                    }]),
                    _ => Err(RunError::Invalid(format!(
                        "--target {self}: channel `{channel}` is not among the run's forecast channels {}",
                        names()
                    ))),
                }
            }
        }
    }
}

/// A forecasting task's dimensions: lookback, horizon, channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Lookback `L`.
    pub l: usize,
    /// Horizon `H`.
    pub h: usize,
    /// Channels `C` (input and output).
    pub c: usize,
}

/// Method settings.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Integrated gradients' points.
    pub steps: usize,
    /// Integrated gradients' rule.
    pub quadrature: Quadrature,
    /// Occlusion patch length in steps.
    pub occlusion_len: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            steps: 50,
            quadrature: Quadrature::Clustered,
            occlusion_len: 4,
        }
    }
}

impl Settings {
    /// Reject settings no method can run with on a lookback of `l`.
    pub fn validate(&self, l: usize) -> Result<()> {
        let minimum = match self.quadrature {
            Quadrature::Clustered | Quadrature::GaussLegendre => 1,
            Quadrature::Riemann => 2,
        };
        if self.steps < minimum {
            return Err(RunError::Invalid(format!(
                "--steps {}: integrated gradients needs at least {minimum} point(s) with {}",
                self.steps, self.quadrature
            )));
        }
        if self.occlusion_len == 0 || self.occlusion_len > l {
            return Err(RunError::Invalid(format!(
                "--occlusion-len {}: the patch must cover 1..={l} steps of the lookback",
                self.occlusion_len
            )));
        }
        Ok(())
    }
}

/// One window's attributions by one method.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribution {
    /// `[targets, L, C]`, row-major.
    pub values: Vec<f32>,
    /// Batched passes through the model (forward and backward for the gradient methods, forward
    /// only for occlusion), `batch` rows each at most.
    pub passes: usize,
    /// Integrated gradients only: Σ attributions − (y(x) − y(x′)) per target, and y(x) − y(x′).
    pub completeness: Option<Vec<(f64, f64)>>,
}

/// Deletion and insertion curves of one window and target, at [`fractions`].
#[derive(Clone, Debug, PartialEq)]
pub struct Curves {
    /// |y(x) − y(x with the top k% at the baseline)|.
    pub deletion: Vec<f64>,
    /// |y(x) − y(the baseline with the top k% restored)|.
    pub insertion: Vec<f64>,
}

/// Points of the deletion and insertion curves: k = 0, 5, …, 100%.
pub fn fractions() -> Vec<f64> {
    (0..=20).map(|j| j as f64 / 20.0).collect()
}

/// The fractions comprehensiveness and sufficiency are reported at.
pub const REPORTED_FRACTIONS: [f64; 3] = [0.05, 0.10, 0.20];

/// A trained forecaster ready to be explained: the model for forward passes, its frozen twin on
/// the autodiff device for gradients, and the targets.
pub struct Explainer {
    plain: Arch,
    tracked: Arch,
    device: Device,
    autodiff: Device,
    batch: usize,
    shape: Shape,
    targets: Vec<Target>,
}

impl Explainer {
    /// The model `config` with the weights `weights` (a burnpack record, `model.bpk`) on
    /// `device`, run `batch` rows at a time.
    pub fn new(
        config: &ArchConfig,
        weights: &[u8],
        device: &Device,
        batch: usize,
        shape: Shape,
        targets: Vec<Target>,
    ) -> std::result::Result<Self, String> {
        let record = || {
            ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights.to_vec()))
                .map_err(|e| e.to_string())
        };
        let plain = config
            .init(device)
            .try_load_record(record()?)
            .map_err(|e| e.to_string())?;
        let autodiff = device.clone().autodiff();
        let tracked = config
            .init(&autodiff)
            .try_load_record(record()?)
            .map_err(|e| e.to_string())?
            .freeze();
        Ok(Self {
            plain,
            tracked,
            device: device.clone(),
            autodiff,
            batch: batch.max(1),
            shape,
            targets,
        })
    }

    /// The explained targets.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Full forecasts `[n, H, C]` of the inputs `[n, L, C]`, and the batched passes they took.
    pub fn outputs(&self, inputs: &[f32]) -> (Vec<f32>, usize) {
        let Shape { l, h, c } = self.shape;
        let row = l * c;
        let mut out = Vec::with_capacity(inputs.len() / row * h * c);
        let mut passes = 0;
        for chunk in inputs.chunks(self.batch * row) {
            let b = chunk.len() / row;
            let x =
                Tensor::<3>::from_data(TensorData::new(chunk.to_vec(), [b, l, c]), &self.device);
            out.extend(read(self.plain.forecast(x)));
            passes += 1;
        }
        (out, passes)
    }

    /// The value of `target` in forecast `row` of `forecasts` (`[n, H, C]`, as [`Self::outputs`]
    /// returns them).
    pub fn value(&self, forecasts: &[f32], row: usize, target: &Target) -> f64 {
        let Shape { h, c, .. } = self.shape;
        let forecast = &forecasts[row * h * c..][..h * c];
        let sum: f64 = target
            .steps
            .clone()
            .map(|s| f64::from(forecast[s * c + target.channel]))
            .sum();
        sum / target.steps.len() as f64
    }

    /// The gradient `[n, L, C]` of each row's target (`targets[row]`, an index into
    /// [`Self::targets`]) with respect to its input, and the batched passes it took.
    pub fn gradients(&self, inputs: &[f32], targets: &[usize]) -> (Vec<f32>, usize) {
        let Shape { l, h, c } = self.shape;
        let row = l * c;
        let mut out = Vec::with_capacity(inputs.len());
        let mut passes = 0;
        for (chunk, chunk_targets) in inputs
            .chunks(self.batch * row)
            .zip(targets.chunks(self.batch))
        {
            let b = chunk_targets.len();
            let x =
                Tensor::<3>::from_data(TensorData::new(chunk.to_vec(), [b, l, c]), &self.autodiff)
                    .require_grad();
            // Each row's loss weight puts 1/|steps| on its target's outputs, 0 elsewhere.
            let mut weights = vec![0.0f32; b * h * c];
            for (i, &t) in chunk_targets.iter().enumerate() {
                let target = &self.targets[t];
                let w = 1.0 / target.steps.len() as f32;
                for s in target.steps.clone() {
                    weights[(i * h + s) * c + target.channel] = w;
                }
            }
            let weights =
                Tensor::<3>::from_data(TensorData::new(weights, [b, h, c]), &self.autodiff);
            let grads = (self.tracked.forecast(x.clone()) * weights)
                .sum()
                .backward();
            out.extend(read(x.grad(&grads).expect("the input is tracked")));
            passes += 1;
        }
        (out, passes)
    }

    /// The attributions of the window `x` (`[L, C]`) against `baseline` by `method`.
    pub fn attribute(
        &self,
        method: Method,
        settings: &Settings,
        x: &[f32],
        baseline: &[f32],
    ) -> Attribution {
        let n_targets = self.targets.len();
        match method {
            Method::Saliency => {
                let inputs = x.repeat(n_targets);
                let (values, passes) = self.gradients(&inputs, &(0..n_targets).collect::<Vec<_>>());
                Attribution {
                    values,
                    passes,
                    completeness: None,
                }
            }
            Method::IntegratedGradients => self.integrated_gradients(settings, x, baseline),
            Method::Occlusion => self.occlusion(settings.occlusion_len, x, baseline),
        }
    }

    fn integrated_gradients(
        &self,
        settings: &Settings,
        x: &[f32],
        baseline: &[f32],
    ) -> Attribution {
        let nodes = settings.quadrature.nodes(settings.steps);
        let n_targets = self.targets.len();
        let row = x.len();
        // Rows target-major: target t, point k is x′ + α_k (x − x′).
        let mut inputs = Vec::with_capacity(n_targets * nodes.len() * row);
        let mut row_targets = Vec::with_capacity(n_targets * nodes.len());
        for t in 0..n_targets {
            for &(alpha, _) in &nodes {
                let alpha = alpha as f32;
                inputs.extend(
                    x.iter()
                        .zip(baseline)
                        .map(|(&xi, &bi)| bi + alpha * (xi - bi)),
                );
                row_targets.push(t);
            }
        }
        let (gradients, passes) = self.gradients(&inputs, &row_targets);
        let mut values = vec![0.0f32; n_targets * row];
        for t in 0..n_targets {
            let mut integral = vec![0.0f64; row];
            for (k, &(_, weight)) in nodes.iter().enumerate() {
                let g = &gradients[(t * nodes.len() + k) * row..][..row];
                for (sum, &gi) in integral.iter_mut().zip(g) {
                    *sum += weight * f64::from(gi);
                }
            }
            for (i, value) in values[t * row..][..row].iter_mut().enumerate() {
                *value = (f64::from(x[i] - baseline[i]) * integral[i]) as f32;
            }
        }
        let ends: Vec<f32> = x.iter().chain(baseline).copied().collect();
        let (forecasts, _) = self.outputs(&ends);
        let completeness = self
            .targets
            .iter()
            .enumerate()
            .map(|(t, target)| {
                let change = self.value(&forecasts, 0, target) - self.value(&forecasts, 1, target);
                let total: f64 = values[t * row..][..row].iter().map(|&v| f64::from(v)).sum();
                (total - change, change)
            })
            .collect();
        Attribution {
            values,
            passes,
            completeness: Some(completeness),
        }
    }

    fn occlusion(&self, len: usize, x: &[f32], baseline: &[f32]) -> Attribution {
        let Shape { l, c, .. } = self.shape;
        let starts = l - len + 1;
        // Row 0 is x; row 1 + j·starts + s has channel j occluded over steps s..s + len.
        let mut inputs = x.to_vec();
        for j in 0..c {
            for s in 0..starts {
                let mut occluded = x.to_vec();
                for t in s..s + len {
                    occluded[t * c + j] = baseline[t * c + j];
                }
                inputs.extend(occluded);
            }
        }
        let (forecasts, passes) = self.outputs(&inputs);
        let mut values = vec![0.0f32; self.targets.len() * l * c];
        for (t, target) in self.targets.iter().enumerate() {
            let full = self.value(&forecasts, 0, target);
            for j in 0..c {
                let changes: Vec<f64> = (0..starts)
                    .map(|s| full - self.value(&forecasts, 1 + j * starts + s, target))
                    .collect();
                for i in 0..l {
                    // Patches covering step i start at max(0, i + 1 − len)..=min(i, starts − 1).
                    let covering = (i + 1).saturating_sub(len)..=i.min(starts - 1);
                    let count = covering.clone().count() as f64;
                    let mean = covering.map(|s| changes[s]).sum::<f64>() / count;
                    values[(t * l + i) * c + j] = mean as f32;
                }
            }
        }
        Attribution {
            values,
            passes,
            completeness: None,
        }
    }

    /// Deletion and insertion curves of the window `x` for each target, the inputs taken in
    /// `orders[t]` (a permutation of `0..L·C`, most important first).
    pub fn curves(&self, x: &[f32], baseline: &[f32], orders: &[Vec<usize>]) -> Vec<Curves> {
        let fractions = fractions();
        let n = x.len();
        let counts: Vec<usize> = fractions
            .iter()
            .map(|f| (f * n as f64).round() as usize)
            .collect();
        // Row 0 is x; then per target, per fraction, the deleted and the inserted input.
        let mut inputs = x.to_vec();
        for order in orders {
            for &k in &counts {
                let mut deleted = x.to_vec();
                let mut inserted = baseline.to_vec();
                for &i in &order[..k] {
                    deleted[i] = baseline[i];
                    inserted[i] = x[i];
                }
                inputs.extend(deleted);
                inputs.extend(inserted);
            }
        }
        let (forecasts, _) = self.outputs(&inputs);
        self.targets
            .iter()
            .enumerate()
            .map(|(t, target)| {
                let full = self.value(&forecasts, 0, target);
                let change = |r: usize| (full - self.value(&forecasts, r, target)).abs();
                let first = 1 + t * 2 * counts.len();
                Curves {
                    deletion: (0..counts.len()).map(|j| change(first + 2 * j)).collect(),
                    insertion: (0..counts.len())
                        .map(|j| change(first + 2 * j + 1))
                        .collect(),
                }
            })
            .collect()
    }
}

/// A tensor's values as f32.
fn read<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 values")
}

/// The inputs of each target's attributions `[targets, L·C]`, by |attribution| descending (ties
/// by position, so the order is deterministic).
pub fn ranking(values: &[f32], targets: usize) -> Vec<Vec<usize>> {
    let row = values.len() / targets.max(1);
    values
        .chunks(row)
        .map(|a| {
            let mut order: Vec<usize> = (0..row).collect();
            order.sort_by(|&i, &j| a[j].abs().total_cmp(&a[i].abs()).then(i.cmp(&j)));
            order
        })
        .collect()
}

/// One random order of `0..n` per target, from `rng`.
pub fn random_orders(rng: &mut ChaCha8Rng, targets: usize, n: usize) -> Vec<Vec<usize>> {
    (0..targets)
        .map(|_| {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(rng);
            order
        })
        .collect()
}

/// The seeded generator of the random orders of window `w`.
pub fn window_rng(seed: u64, window: usize) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ (window as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Comprehensiveness and sufficiency at one fraction.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AtFraction {
    /// Fraction of the inputs, the most attributed first.
    pub fraction: f64,
    /// Output change with them deleted (higher is better).
    pub comprehensiveness: f64,
    /// Output change with only them kept (lower is better).
    pub sufficiency: f64,
}

/// Faithfulness of one ranking on the explained windows: mean curves over windows and targets,
/// their areas, and the reported points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Faithfulness {
    /// Curves evaluated (windows × targets, × random orders for random).
    pub curves: usize,
    /// Mean deletion curve at [`fractions`].
    pub deletion: Vec<f64>,
    /// Mean insertion curve at [`fractions`].
    pub insertion: Vec<f64>,
    /// Area under the deletion curve over fractions 0–1 (trapezoid).
    pub deletion_auc: f64,
    /// Area under the insertion curve.
    pub insertion_auc: f64,
    /// At 5, 10 and 20%.
    pub at: Vec<AtFraction>,
}

impl Faithfulness {
    /// The summary of `curves` (at least one).
    pub fn of(curves: &[Curves]) -> Self {
        let points = fractions();
        let mean = |pick: &dyn Fn(&Curves) -> &Vec<f64>| -> Vec<f64> {
            (0..points.len())
                .map(|j| curves.iter().map(|c| pick(c)[j]).sum::<f64>() / curves.len() as f64)
                .collect()
        };
        let deletion = mean(&|c| &c.deletion);
        let insertion = mean(&|c| &c.insertion);
        let at = REPORTED_FRACTIONS
            .iter()
            .map(|&fraction| {
                let j = points
                    .iter()
                    .position(|&p| (p - fraction).abs() < 1e-12)
                    .expect("reported fractions lie on the curve's points");
                AtFraction {
                    fraction,
                    comprehensiveness: deletion[j],
                    sufficiency: insertion[j],
                }
            })
            .collect();
        Self {
            curves: curves.len(),
            deletion_auc: trapezoid(&points, &deletion),
            insertion_auc: trapezoid(&points, &insertion),
            deletion,
            insertion,
            at,
        }
    }

    /// How this ranking compares with `random`'s: better on both areas, on neither, or on one.
    pub fn verdict(&self, random: &Faithfulness) -> Verdict {
        let deletion = self.deletion_auc > random.deletion_auc;
        let insertion = self.insertion_auc < random.insertion_auc;
        match (deletion, insertion) {
            (true, true) => Verdict::BetterThanRandom,
            (false, false) => Verdict::NoBetterThanRandom,
            _ => Verdict::Mixed,
        }
    }
}

/// A method's faithfulness against random order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Larger deletion area and smaller insertion area than random order.
    BetterThanRandom,
    /// Better on one area only.
    Mixed,
    /// Better on neither.
    NoBetterThanRandom,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::BetterThanRandom => "better than random",
            Verdict::Mixed => "mixed (one area only)",
            Verdict::NoBetterThanRandom => "no better than random",
        })
    }
}

/// ∫ y dx by the trapezoid rule.
fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    x.windows(2)
        .zip(y.windows(2))
        .map(|(x, y)| (x[1] - x[0]) * (y[0] + y[1]) / 2.0)
        .sum()
}

/// Mean |attribution| per lookback step (oldest first) and per channel, over windows and
/// targets, each normalised to sum to 1: where a model's attribution mass lies.
pub fn profiles(attributions: &[f32], l: usize, c: usize) -> (Vec<f64>, Vec<f64>) {
    let mut steps = vec![0.0f64; l];
    let mut channels = vec![0.0f64; c];
    for (k, v) in attributions.iter().enumerate() {
        let (t, j) = ((k / c) % l, k % c);
        steps[t] += f64::from(v.abs());
        channels[j] += f64::from(v.abs());
    }
    let normalise = |v: &mut Vec<f64>| {
        let total: f64 = v.iter().sum();
        if total > 0.0 {
            v.iter_mut().for_each(|x| *x /= total);
        }
    };
    normalise(&mut steps);
    normalise(&mut channels);
    (steps, channels)
}

/// The `.npy` bytes (format 1.0, little-endian f32, C order) of an array of `shape`, which numpy
/// loads with `np.load`.
pub fn npy_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    debug_assert_eq!(shape.iter().product::<usize>(), values.len());
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let dims = match dims.len() {
        1 => format!("{},", dims[0]),
        _ => dims.join(", "),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
    // Magic (6) + version (2) + header length (2) + header + newline, padded to 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + 4 * values.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        for n in [1, 2, 5, 50] {
            let nodes = gauss_legendre(n);
            assert_eq!(nodes.len(), n);
            let total: f64 = nodes.iter().map(|&(_, w)| w).sum();
            assert!((total - 1.0).abs() < 1e-12, "n {n}: weights sum {total}");
            assert!(nodes.iter().all(|&(a, _)| a > 0.0 && a < 1.0));
            // ∫₀¹ α^d dα = 1/(d + 1), exact for d < 2n.
            for d in 0..(2 * n).min(40) {
                let integral: f64 = nodes.iter().map(|&(a, w)| w * a.powi(d as i32)).sum();
                assert!(
                    (integral - 1.0 / (d + 1) as f64).abs() < 1e-12,
                    "n {n}, degree {d}: {integral}"
                );
            }
        }
    }

    #[test]
    fn clustered_nodes_integrate_low_degrees_exactly_and_crowd_the_baseline() {
        let nodes = Quadrature::Clustered.nodes(50);
        for d in 0..50 {
            let integral: f64 = nodes.iter().map(|&(a, w)| w * a.powi(d)).sum();
            assert!(
                (integral - 1.0 / (d + 1) as f64).abs() < 1e-12,
                "degree {d}"
            );
        }
        let plain = Quadrature::GaussLegendre.nodes(50);
        let near = |nodes: &[(f64, f64)]| nodes.iter().filter(|(a, _)| *a < 0.01).count();
        assert!(near(&nodes) > 2 * near(&plain));
    }

    #[test]
    fn trapezoid_rule_spans_both_ends() {
        let nodes = Quadrature::Riemann.nodes(5);
        assert_eq!(
            nodes,
            vec![
                (0.0, 0.125),
                (0.25, 0.25),
                (0.5, 0.25),
                (0.75, 0.25),
                (1.0, 0.125)
            ]
        );
    }

    #[test]
    fn targets_parse_and_resolve_with_errors_naming_the_range() {
        let columns: Vec<String> = ["HUFL", "OT"].iter().map(|s| s.to_string()).collect();
        let mean = TargetSpec::from_str("mean")
            .unwrap()
            .resolve(96, &columns, 0..2)
            .unwrap();
        assert_eq!(mean.len(), 2);
        assert_eq!((mean[1].channel, mean[1].steps.clone()), (1, 0..96));
        let one = TargetSpec::from_str("24:OT")
            .unwrap()
            .resolve(96, &columns, 0..2)
            .unwrap();
        assert_eq!((one[0].channel, one[0].steps.clone()), (1, 23..24));
        let by_index = TargetSpec::from_str("1:0")
            .unwrap()
            .resolve(96, &columns, 0..2)
            .unwrap();
        assert_eq!(by_index[0].channel, 0);
        let late = TargetSpec::from_str("97:OT")
            .unwrap()
            .resolve(96, &columns, 0..2);
        assert!(
            late.unwrap_err()
                .to_string()
                .contains("outside the run's horizon 1..=96")
        );
        let zero = TargetSpec::from_str("0:OT")
            .unwrap()
            .resolve(96, &columns, 0..2);
        assert!(zero.is_err());
        let unknown = TargetSpec::from_str("1:XYZ")
            .unwrap()
            .resolve(96, &columns, 0..2);
        assert!(unknown.unwrap_err().to_string().contains("`XYZ`"));
        // MS scores the target only.
        let unscored = TargetSpec::from_str("1:HUFL")
            .unwrap()
            .resolve(96, &columns, 1..2);
        assert!(unscored.unwrap_err().to_string().contains("`OT` (1)"));
        assert!(TargetSpec::from_str("3").is_err());
        assert!(TargetSpec::from_str("x:OT").is_err());
    }

    #[test]
    fn ranking_is_by_magnitude_then_position() {
        let orders = ranking(&[0.1, -0.5, 0.5, 0.0, 0.2, -0.3], 2);
        assert_eq!(orders, vec![vec![1, 2, 0], vec![2, 1, 0]]);
    }

    #[test]
    fn faithfulness_areas_and_points() {
        let points = fractions().len();
        let rising: Vec<f64> = fractions();
        let curves = [Curves {
            deletion: rising.clone(),
            insertion: vec![1.0; points],
        }];
        let f = Faithfulness::of(&curves);
        assert!((f.deletion_auc - 0.5).abs() < 1e-12);
        assert!((f.insertion_auc - 1.0).abs() < 1e-12);
        assert_eq!(f.at[1].fraction, 0.10);
        assert!((f.at[1].comprehensiveness - 0.10).abs() < 1e-12);
        let random = Faithfulness::of(&[Curves {
            deletion: vec![0.25; points],
            insertion: vec![0.5; points],
        }]);
        assert_eq!(f.verdict(&random), Verdict::Mixed);
        assert_eq!(random.verdict(&random), Verdict::NoBetterThanRandom);
    }

    #[test]
    fn profiles_sum_to_one() {
        // [targets 1, L 2, C 2]
        let (steps, channels) = profiles(&[1.0, -1.0, 2.0, 0.0], 2, 2);
        assert_eq!(steps, vec![0.5, 0.5]);
        assert_eq!(channels, vec![0.75, 0.25]);
    }

    #[test]
    fn npy_header_is_numpy_format_1() {
        let bytes = npy_f32(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(bytes.len(), 10 + header_len + 24);
        assert_eq!(&bytes[10 + header_len + 4..][..4], &1.0f32.to_le_bytes());
        let vector = npy_f32(&[3], &[0.0; 3]);
        let len = u16::from_le_bytes([vector[8], vector[9]]) as usize;
        assert!(
            std::str::from_utf8(&vector[10..10 + len])
                .unwrap()
                .contains("'shape': (3,)")
        );
    }
}
