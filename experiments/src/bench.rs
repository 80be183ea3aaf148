//! Benchmarks: the cost of one training step of an architecture, the latency of recurrent `step`
//! decoding against position, raw matmul throughput of a backend, and the matrix products of a
//! step timed alone (the floor under it). Timings are medians over repeated measurements after
//! warm-up; report them with their spread, measured in release on a quiet machine.

use std::time::Instant;

use architectures::blocks::ScanPath;
use architectures::gated_deltanet::GatedDeltaNetBlock;
use architectures::mamba::MambaBlock;
use architectures::mamba2::Mamba2Block;
use architectures::{
    ArchConfig, BackboneConfig, Forecaster, GatedDeltaNetConfig, Mamba2Config, MambaConfig,
    SequenceModel,
};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use serde::{Deserialize, Serialize};

use crate::backend::BackendName;
use crate::error::{Result, RunError};
use crate::sysinfo;

/// Summary statistics of repeated timings, milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Median.
    pub median_ms: f64,
    /// Fastest.
    pub min_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// 10th percentile.
    pub p10_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Measurements.
    pub samples: usize,
}

impl Timing {
    /// Statistics of `samples_ms` (at least one).
    pub fn of(samples_ms: &[f64]) -> Self {
        let sorted = sorted(samples_ms);
        Self {
            median_ms: quantile(&sorted, 0.5),
            min_ms: sorted[0],
            max_ms: sorted[sorted.len() - 1],
            p10_ms: quantile(&sorted, 0.1),
            p90_ms: quantile(&sorted, 0.9),
            samples: sorted.len(),
        }
    }
}

/// The median of a non-empty list (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    quantile(&sorted(values), 0.5)
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// The `q`-quantile of non-empty ascending `sorted`, interpolated linearly between neighbours.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (position.floor() as usize, position.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (position - lo as f64)
}

/// What `bench train-step` measures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainStepBench {
    /// The model.
    pub arch: ArchConfig,
    /// Batch size.
    pub batch: usize,
    /// Timed steps.
    pub steps: usize,
    /// Untimed warm-up steps.
    pub warmup: usize,
    /// Backend.
    pub backend: BackendName,
    /// Seed of the model and the random batch.
    pub seed: u64,
}

/// Result of `bench train-step`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainStepReport {
    /// Architecture name.
    pub arch: String,
    /// Backend.
    pub backend: String,
    /// Batch, lookback, horizon, channels.
    pub batch: usize,
    /// Lookback `L`.
    pub seq_len: usize,
    /// Horizon `H`.
    pub pred_len: usize,
    /// Channels `c`.
    pub channels: usize,
    /// Trainable parameters.
    pub params: usize,
    /// Forward + backward + Adam step, ms.
    pub step: Timing,
    /// Analytic FLOPs of one step: `3 · batch ·` the forward FLOPs of one window
    /// ([`architectures::flops`]: matrix products, attention and scans; element-wise work left
    /// out, so the achieved rate is a lower bound on the work done).
    pub flops: f64,
    /// `flops / median`, GFLOP/s: read against `bench matmul`'s peak, the step's utilisation.
    pub gflops: f64,
    /// Peak resident memory of the process, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// CPU and threads.
    pub machine: String,
    /// Code commit.
    pub git_commit: String,
    /// The full configuration measured.
    pub config: TrainStepBench,
}

/// Time forward + MSE + backward + Adam step on a fixed random batch.
pub fn train_step(
    bench: &TrainStepBench,
    seq_len: usize,
    pred_len: usize,
    channels: usize,
) -> Result<TrainStepReport> {
    bench.arch.validate()?;
    let device = bench.backend.device()?;
    device.seed(bench.seed);
    let autodiff = device.clone().autodiff();
    let mut model = bench.arch.init(&autodiff);
    let params = model.num_params();
    if params == 0 {
        return Err(RunError::Invalid(format!(
            "`{}` has no parameters: there is no training step to time",
            bench.arch.name()
        )));
    }
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let x = Tensor::<3>::random(
        [bench.batch, seq_len, channels],
        Distribution::Default,
        &autodiff,
    );
    let y = Tensor::<3>::random(
        [bench.batch, pred_len, channels],
        Distribution::Default,
        &autodiff,
    );
    let mut samples = Vec::with_capacity(bench.steps);
    for i in 0..bench.warmup + bench.steps {
        let started = Instant::now();
        let loss = (model.forecast(x.clone()) - y.clone())
            .powi_scalar(2)
            .mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-4, model, grads);
        sync(&device)?;
        if i >= bench.warmup {
            samples.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    let step = Timing::of(&samples);
    let flops = architectures::flops::train_flops(bench.arch.forward_flops(), bench.batch, 1);
    Ok(TrainStepReport {
        arch: bench.arch.name().to_string(),
        backend: bench.backend.to_string(),
        batch: bench.batch,
        seq_len,
        pred_len,
        channels,
        params,
        flops,
        gflops: flops / (step.median_ms * 1e-3) / 1e9,
        step,
        peak_rss_bytes: sysinfo::peak_rss_bytes(),
        machine: sysinfo::machine(),
        git_commit: sysinfo::git_commit().to_string(),
        config: bench.clone(),
    })
}

/// What `bench decode` measures.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DecodeBench {
    /// The model (its backbone is stepped).
    pub arch: ArchConfig,
    /// Sequences decoded side by side.
    pub batch: usize,
    /// Positions (0-based step index) to report; decoding runs to the largest.
    pub positions: Vec<usize>,
    /// Times each reported window of steps is decoded (the first time in the full pass, then
    /// again from the state that entered it), so a position's figure is not one noisy sample.
    pub repeats: usize,
    /// Backend.
    pub backend: BackendName,
    /// Seed of the model and the inputs.
    pub seed: u64,
}

/// Latency of `step` around one position.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PositionLatency {
    /// 0-based index of the step: it sees `position + 1` tokens.
    pub position: usize,
    /// Steps `position − 8 ..= position` (clipped at 0), each decoded `repeats` times.
    pub step: Timing,
    /// Floats of recurrent state after this step ([`SequenceModel::state_size`]).
    pub state_floats: usize,
}

/// Result of `bench decode`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DecodeReport {
    /// Architecture name.
    pub arch: String,
    /// Backend.
    pub backend: String,
    /// Sequences decoded side by side.
    pub batch: usize,
    /// Width of one token.
    pub width: usize,
    /// Parameters.
    pub params: usize,
    /// Per-position latencies.
    pub positions: Vec<PositionLatency>,
    /// All steps `0 ..= max(positions)`, ms.
    pub total_ms: f64,
    /// CPU and threads.
    pub machine: String,
    /// Code commit.
    pub git_commit: String,
    /// The full configuration measured.
    pub config: DecodeBench,
}

/// Decode `max(positions) + 1` random tokens one `step` at a time (inference, no autodiff) and
/// report the latency of the 9 steps ending at each requested position, each window decoded
/// `repeats` times from the state that entered it.
pub fn decode(bench: &DecodeBench, channels: usize) -> Result<DecodeReport> {
    bench.arch.validate()?;
    let Some(&last) = bench.positions.iter().max() else {
        return Err(RunError::Invalid("no positions to report".into()));
    };
    let device = bench.backend.device()?;
    device.seed(bench.seed);
    let model = bench.arch.init(&device);
    if !model.is_causal() {
        return Err(RunError::Invalid(format!(
            "`{}` is configured bidirectional: it has no step-by-step form (pass --causal)",
            bench.arch.name()
        )));
    }
    if let Some(max_len) = model.max_len().filter(|&m| last >= m) {
        return Err(RunError::Invalid(format!(
            "position {last} is beyond `{}`'s position table ({max_len} positions, 0..{})",
            bench.arch.name(),
            max_len - 1
        )));
    }
    let width = model.width().unwrap_or(channels);
    let inputs = Tensor::<3>::random(
        [last + 1, bench.batch, width],
        Distribution::Default,
        &device,
    );
    // One step at position `t` from `state`: its latency in ms and the next state.
    let timed_step = |t: usize, state| -> Result<(f64, _)> {
        let x = inputs.clone().narrow(0, t, 1).reshape([bench.batch, width]);
        let started = Instant::now();
        let (y, next) = model.step(x, state);
        sync(&device)?;
        let ms = started.elapsed().as_secs_f64() * 1e3;
        drop(y);
        Ok((ms, next))
    };
    // Each reported window `first..=p`, and the state entering it, kept for the repeats.
    let windows: Vec<(usize, usize)> = bench
        .positions
        .iter()
        .map(|&p| (p.saturating_sub(8), p))
        .collect();
    let mut entering = vec![None; windows.len()];
    let mut state = model.init_state(bench.batch, &device);
    let mut samples = Vec::with_capacity(last + 1);
    let started_all = Instant::now();
    for t in 0..=last {
        for (kept, &(first, _)) in entering.iter_mut().zip(&windows) {
            if first == t && bench.repeats > 1 {
                *kept = Some(state.clone());
            }
        }
        let (ms, next) = timed_step(t, state)?;
        samples.push(ms);
        state = next;
    }
    let total_ms = started_all.elapsed().as_secs_f64() * 1e3;
    let mut positions = Vec::with_capacity(windows.len());
    for ((first, p), kept) in windows.into_iter().zip(entering) {
        let mut window = samples[first..=p].to_vec();
        if let Some(kept) = kept {
            for _ in 1..bench.repeats {
                let mut state = kept.clone();
                for t in first..=p {
                    let (ms, next) = timed_step(t, state)?;
                    window.push(ms);
                    state = next;
                }
            }
        }
        positions.push(PositionLatency {
            position: p,
            step: Timing::of(&window),
            state_floats: model.state_size(p + 1),
        });
    }
    Ok(DecodeReport {
        arch: bench.arch.name().to_string(),
        backend: bench.backend.to_string(),
        batch: bench.batch,
        width,
        params: model.num_params(),
        positions,
        total_ms,
        machine: sysinfo::machine(),
        git_commit: sysinfo::git_commit().to_string(),
        config: bench.clone(),
    })
}

/// Which recurrent block `bench block` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BlockArch {
    /// The Mamba-1 block (selective scan).
    Mamba,
    /// The Mamba-2 block (state-space dual).
    Mamba2,
    /// The Gated DeltaNet layer (chunked gated delta rule).
    #[value(name = "gateddeltanet")]
    GatedDeltanet,
}

/// What `bench block` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BlockPath {
    /// The block as it trains: Mamba's fused selective scan, Mamba-2's host scan, Gated
    /// DeltaNet's host recurrence (the chunked forms off the CPU).
    #[value(alias = "fused")]
    #[serde(alias = "fused")]
    Fast,
    /// Mamba-2's and Gated DeltaNet's chunked forms in burn tensor operations (the path off the
    /// CPU).
    Chunked,
    /// The block with the per-time-step reference recurrence.
    Reference,
    /// The block's projections alone: the floor.
    Projections,
}

/// The configuration of the block timed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockConfig {
    /// A Mamba-1 block.
    Mamba(MambaConfig),
    /// A Mamba-2 block.
    Mamba2(Mamba2Config),
    /// A Gated DeltaNet layer.
    GatedDeltanet(GatedDeltaNetConfig),
}

/// Result of `bench block`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlockReport {
    /// What was timed.
    pub path: BlockPath,
    /// The block's configuration.
    pub config: BlockConfig,
    /// Batch.
    pub batch: usize,
    /// Sequence length.
    pub seq_len: usize,
    /// Forward + backward, ms.
    pub time: Timing,
    /// Peak resident memory of the process, bytes.
    pub peak_rss_bytes: Option<u64>,
    /// CPU and threads.
    pub machine: String,
    /// Code commit.
    pub git_commit: String,
}

/// Time forward + backward (no optimizer) of one recurrent block on a fixed random
/// `[batch, l, d]`.
pub fn block(
    path: BlockPath,
    config: &BlockConfig,
    batch: usize,
    seq_len: usize,
    (steps, warmup): (usize, usize),
    backend: BackendName,
) -> Result<BlockReport> {
    let d_model = match config {
        BlockConfig::Mamba(c) => c.validate().map(|()| c.d_model)?,
        BlockConfig::Mamba2(c) => c.validate().map(|()| c.d_model)?,
        BlockConfig::GatedDeltanet(c) => c.validate().map(|()| c.d_model)?,
    };
    if path == BlockPath::Chunked && matches!(config, BlockConfig::Mamba(_)) {
        return Err(RunError::Invalid(
            "--path chunked: Mamba-1's scan has no chunked form (Mamba-2 and Gated DeltaNet do)"
                .into(),
        ));
    }
    let device = backend.device()?;
    device.seed(0);
    let autodiff = device.clone().autodiff();
    enum Block {
        Mamba(Box<MambaBlock>),
        Mamba2(Box<Mamba2Block>),
        GatedDeltanet(Box<GatedDeltaNetBlock>),
    }
    let block = match config {
        BlockConfig::Mamba(c) => Block::Mamba(Box::new(c.init_block(&autodiff))),
        BlockConfig::Mamba2(c) => Block::Mamba2(Box::new(c.init_block(&autodiff))),
        BlockConfig::GatedDeltanet(c) => Block::GatedDeltanet(Box::new(c.init_block(&autodiff))),
    };
    let shape = [batch, seq_len, d_model];
    let x = Tensor::<3>::random(shape, Distribution::Default, &autodiff);
    let w = Tensor::<3>::random(shape, Distribution::Default, &autodiff);
    let mut samples = Vec::with_capacity(steps);
    for i in 0..warmup + steps {
        let started = Instant::now();
        let x = x.clone().require_grad();
        let scan = match path {
            BlockPath::Fast | BlockPath::Projections => ScanPath::Fast,
            BlockPath::Chunked => ScanPath::Chunked,
            BlockPath::Reference => ScanPath::PerStep,
        };
        let y = match (&block, path) {
            (Block::Mamba(b), BlockPath::Projections) => b.projections(x.clone()),
            (Block::Mamba2(b), BlockPath::Projections) => b.projections(x.clone()),
            (Block::GatedDeltanet(b), BlockPath::Projections) => b.projections(x.clone()),
            (Block::Mamba(b), _) => b.forward(x.clone(), path == BlockPath::Reference),
            (Block::Mamba2(b), _) => b.forward(x.clone(), scan),
            (Block::GatedDeltanet(b), _) => b.forward(x.clone(), scan),
        };
        let grads = (y * w.clone()).sum().backward();
        drop(x.grad(&grads));
        sync(&device)?;
        if i >= warmup {
            samples.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(BlockReport {
        path,
        config: config.clone(),
        batch,
        seq_len,
        time: Timing::of(&samples),
        peak_rss_bytes: sysinfo::peak_rss_bytes(),
        machine: sysinfo::machine(),
        git_commit: sysinfo::git_commit().to_string(),
    })
}

/// Result of `bench matmul`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MatmulReport {
    /// Backend.
    pub backend: String,
    /// Batched matmul `[batch, n, n] x [batch, n, n]`.
    pub batch: usize,
    /// Matrix side.
    pub n: usize,
    /// Per matmul, ms.
    pub time: Timing,
    /// `2 · batch · n³ / median`, GFLOP/s.
    pub gflops: f64,
    /// CPU and threads.
    pub machine: String,
}

/// Throughput of f32 `[batch, n, n] × [batch, n, n]` matmuls.
pub fn matmul(
    backend: BackendName,
    batch: usize,
    n: usize,
    repeats: usize,
) -> Result<MatmulReport> {
    let device = backend.device()?;
    device.seed(0);
    let a = Tensor::<3>::random([batch, n, n], Distribution::Default, &device);
    let b = Tensor::<3>::random([batch, n, n], Distribution::Default, &device);
    let mut samples = Vec::with_capacity(repeats);
    for i in 0..repeats + 2 {
        let started = Instant::now();
        let c = a.clone().matmul(b.clone());
        sync(&device)?;
        drop(c);
        if i >= 2 {
            samples.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    let time = Timing::of(&samples);
    let flops = 2.0 * batch as f64 * (n as f64).powi(3);
    Ok(MatmulReport {
        backend: backend.to_string(),
        batch,
        n,
        gflops: flops / (time.median_ms * 1e-3) / 1e9,
        time,
        machine: sysinfo::machine(),
    })
}

/// One f32 matrix product `[batch, m, k] × [batch, k, n]`, written `MxKxN` or `BxMxKxN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// Independent products computed together (a batched product; 1 for a plain one).
    pub batch: usize,
    /// Rows of the left factor and of the result.
    pub m: usize,
    /// The contracted dimension.
    pub k: usize,
    /// Columns of the right factor and of the result.
    pub n: usize,
}

impl Product {
    /// `2 · batch · m · k · n`.
    pub fn flops(&self) -> f64 {
        2.0 * (self.batch * self.m * self.k * self.n) as f64
    }

    /// The two products of its backward, for `C = A B`: the left factor's gradient
    /// `dA = dC Bᵀ` (`[m, n] × [n, k]`) and the right factor's `dB = Aᵀ dC` (`[k, m] × [m, n]`).
    pub fn gradients(&self) -> [Product; 2] {
        let Self { batch, m, k, n } = *self;
        [
            Self {
                batch,
                m,
                k: n,
                n: k,
            },
            Self {
                batch,
                m: k,
                k: m,
                n,
            },
        ]
    }
}

impl std::fmt::Display for Product {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.batch > 1 {
            write!(f, "{}x", self.batch)?;
        }
        write!(f, "{}x{}x{}", self.m, self.k, self.n)
    }
}

impl std::str::FromStr for Product {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let sides: Vec<usize> = text
            .split('x')
            .map(|side| side.trim().parse().ok().filter(|&n| n > 0))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                format!("`{text}`: sides are positive integers, `MxKxN` or `BxMxKxN`")
            })?;
        match sides[..] {
            [m, k, n] => Ok(Self { batch: 1, m, k, n }),
            [batch, m, k, n] => Ok(Self { batch, m, k, n }),
            _ => Err(format!("`{text}`: a product is `MxKxN` or `BxMxKxN`")),
        }
    }
}

/// Which product of a training step a timed product stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductRole {
    /// A product of the forward pass, as listed.
    Forward,
    /// Its left factor's gradient `dC Bᵀ`.
    LeftGradient,
    /// Its right factor's gradient `Aᵀ dC`.
    RightGradient,
}

/// One product's timing in a [`GemmFloorReport`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProductTiming {
    /// The shape timed.
    pub product: Product,
    /// What it stands for.
    pub role: ProductRole,
    /// Per product, ms.
    pub time: Timing,
    /// `flops / median`, GFLOP/s.
    pub gflops: f64,
}

/// Result of `bench gemm-floor`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GemmFloorReport {
    /// Backend.
    pub backend: String,
    /// Every product timed, forward ones first in the order given, each followed by its
    /// gradients when those were asked for.
    pub products: Vec<ProductTiming>,
    /// All products one after the other, ms: the floor.
    pub time: Timing,
    /// FLOPs of all products.
    pub flops: f64,
    /// `flops / median`, GFLOP/s.
    pub gflops: f64,
    /// CPU and threads.
    pub machine: String,
    /// The commit of the binary.
    pub git_commit: String,
}

/// Time `forward`'s products (and, with `gradients`, each one's two backward products) alone,
/// on inputs allocated once: what the matrix products of a step cost with nothing else around
/// them, the floor under any implementation of that step on this backend. Each repetition runs
/// every product once in order; the floor's timing is over the repetitions' sums.
pub fn gemm_floor(
    backend: BackendName,
    forward: &[Product],
    gradients: bool,
    repeats: usize,
) -> Result<GemmFloorReport> {
    if forward.is_empty() {
        return Err(RunError::Invalid(
            "gemm-floor needs at least one product".into(),
        ));
    }
    let device = backend.device()?;
    device.seed(0);
    let mut listed = Vec::new();
    for &product in forward {
        listed.push((product, ProductRole::Forward));
        if gradients {
            let [left, right] = product.gradients();
            listed.push((left, ProductRole::LeftGradient));
            listed.push((right, ProductRole::RightGradient));
        }
    }
    let factors: Vec<(Tensor<3>, Tensor<3>)> = listed
        .iter()
        .map(|(p, _)| {
            let random = |shape| Tensor::<3>::random(shape, Distribution::Default, &device);
            (random([p.batch, p.m, p.k]), random([p.batch, p.k, p.n]))
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(repeats); listed.len()];
    let mut totals = Vec::with_capacity(repeats);
    for repeat in 0..repeats + 2 {
        let mut total = 0.0;
        for ((a, b), samples) in factors.iter().zip(&mut samples) {
            let started = Instant::now();
            let c = a.clone().matmul(b.clone());
            sync(&device)?;
            drop(c);
            let ms = started.elapsed().as_secs_f64() * 1e3;
            total += ms;
            if repeat >= 2 {
                samples.push(ms);
            }
        }
        if repeat >= 2 {
            totals.push(total);
        }
    }
    let products = listed
        .iter()
        .zip(&samples)
        .map(|(&(product, role), samples)| {
            let time = Timing::of(samples);
            ProductTiming {
                product,
                role,
                gflops: product.flops() / (time.median_ms * 1e-3) / 1e9,
                time,
            }
        })
        .collect();
    let time = Timing::of(&totals);
    let flops: f64 = listed.iter().map(|(p, _)| p.flops()).sum();
    Ok(GemmFloorReport {
        backend: backend.to_string(),
        products,
        gflops: flops / (time.median_ms * 1e-3) / 1e9,
        flops,
        time,
        machine: sysinfo::machine(),
        git_commit: sysinfo::git_commit().to_string(),
    })
}

/// Wait for the device to finish queued work, so a timing covers it.
pub(crate) fn sync(device: &Device) -> Result<()> {
    device
        .sync()
        .map_err(|e| RunError::Invalid(format!("device sync failed: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_parse_and_name_their_gradients() {
        let p: Product = "448x12x256x12".parse().unwrap();
        assert_eq!(
            p,
            Product {
                batch: 448,
                m: 12,
                k: 256,
                n: 12
            }
        );
        assert_eq!(p.to_string(), "448x12x256x12");
        let plain: Product = "2688x512x2048".parse().unwrap();
        assert_eq!(plain.to_string(), "2688x512x2048");
        // C [2688, 2048] = A [2688, 512] B [512, 2048]: dA = dC Bᵀ, dB = Aᵀ dC.
        let [left, right] = plain.gradients();
        assert_eq!((left.m, left.k, left.n), (2688, 2048, 512));
        assert_eq!((right.m, right.k, right.n), (512, 2688, 2048));
        assert_eq!(left.flops(), plain.flops());
        assert_eq!(right.flops(), plain.flops());
        for bad in ["", "2x3", "1x2x3x4x5", "0x2x3", "ax2x3", "-1x2x3"] {
            assert!(bad.parse::<Product>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_floor_times_each_product_and_their_sum() {
        let forward = ["3x4x5".parse().unwrap(), "2x3x4x5".parse().unwrap()];
        let report = gemm_floor(BackendName::Flex, &forward, true, 3).unwrap();
        let roles: Vec<_> = report.products.iter().map(|p| p.role).collect();
        use ProductRole::*;
        assert_eq!(
            roles,
            [
                Forward,
                LeftGradient,
                RightGradient,
                Forward,
                LeftGradient,
                RightGradient
            ]
        );
        assert_eq!(report.flops, 3.0 * (2.0 * 60.0) + 3.0 * (2.0 * 120.0));
        assert_eq!(report.time.samples, 3);
        assert!(gemm_floor(BackendName::Flex, &[], false, 3).is_err());
    }

    #[test]
    fn timing_quantiles() {
        let t = Timing::of(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((t.median_ms, t.min_ms, t.max_ms), (3.0, 1.0, 5.0));
        assert!((t.p10_ms - 1.4).abs() < 1e-12 && (t.p90_ms - 4.6).abs() < 1e-12);
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
    }
}

/// Where `bench probe-step` computes the head's logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HeadPositions {
    /// At the labelled positions only (what training does).
    Labelled,
    /// At every position, `[b, l, V]`, then the labelled ones picked for the loss.
    All,
}

/// What `bench probe-step` measures: one AdamW training step of a token model on a batch of the
/// probe's examples.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeStepBench {
    /// Task and model (the recipe's lr and weight decay; its example counts are not used).
    pub probe: crate::probe::ProbeConfig,
    /// Where the logits are computed.
    pub head: HeadPositions,
    /// Timed steps.
    pub steps: usize,
    /// Untimed warm-up steps.
    pub warmup: usize,
}

/// What `bench probe-step` reports.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeStepReport {
    /// Architecture.
    pub arch: String,
    /// Task.
    pub task: String,
    /// Backend.
    pub backend: String,
    /// Batch size.
    pub batch: usize,
    /// Sequence length.
    pub seq_len: usize,
    /// Vocabulary.
    pub vocab: usize,
    /// Width.
    pub d_model: usize,
    /// Labelled positions in the batch (the loss reads these).
    pub labelled: usize,
    /// Parameters of the token model.
    pub params: usize,
    /// Step time.
    pub step: Timing,
    /// Tokens per second at the median step time.
    pub tokens_per_second: f64,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: Option<u64>,
    /// Where it ran.
    pub machine: String,
    /// Commit.
    pub git_commit: String,
    /// The measured configuration.
    pub config: ProbeStepBench,
}

/// Time the training step of `bench`.
pub fn probe_step(bench: &ProbeStepBench) -> Result<ProbeStepReport> {
    let config = &bench.probe;
    let device = config.backend.device()?;
    device.seed(config.seed);
    let autodiff = device.clone().autodiff();
    let mut model = config.model.init(&autodiff);
    let batch = config.train.batch_size;
    let examples = config
        .task
        .generate(batch, config.train.data_seed)
        .map_err(|e| RunError::Invalid(e.to_string()))?;
    let indices: Vec<usize> = (0..batch).collect();
    let tensors =
        crate::probe_train::Batch::for_loss(&examples, &indices, config.train.loss, &autodiff);
    let labelled = tensors.positions.dims()[0];
    let mut optim = burn::optim::AdamWConfig::new()
        .with_weight_decay(config.train.weight_decay as f32)
        .with_epsilon(config.train.adam_epsilon as f32)
        .init();
    let mut samples = Vec::with_capacity(bench.steps);
    for i in 0..bench.warmup + bench.steps {
        let started = Instant::now();
        let (tokens, positions) = (tensors.tokens.clone(), tensors.positions.clone());
        let logits = match bench.head {
            HeadPositions::Labelled => model.logits_at(tokens, positions),
            HeadPositions::All => {
                let all = model.logits(tokens); // [b, l, V]
                let [b, l, v] = all.dims();
                all.reshape([b * l, v]).select(0, positions)
            }
        };
        let loss = crate::probe_train::cross_entropy(logits, tensors.targets.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(config.train.lr, model, grads);
        sync(&device)?;
        if i >= bench.warmup {
            samples.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    let step = Timing::of(&samples);
    Ok(ProbeStepReport {
        arch: config.model.name().to_string(),
        task: config.task.name().to_string(),
        backend: config.backend.to_string(),
        batch,
        seq_len: examples.len,
        vocab: config.task.vocab(),
        d_model: config.model.d_model(),
        labelled,
        params: model.num_params(),
        tokens_per_second: (batch * examples.len) as f64 / (step.median_ms / 1e3),
        step,
        peak_rss_bytes: sysinfo::peak_rss_bytes(),
        machine: sysinfo::machine(),
        git_commit: sysinfo::git_commit().to_string(),
        config: bench.clone(),
    })
}
