//! `archzoo bench scaling`: cost against sequence length at a matched parameter count.
//!
//! Each architecture runs as a sequence model ([`SequenceModel`]) on random tokens `[b, l, w]`
//! (`w` its width): the backbones of the Transformer (causal, rotary positions, so it can decode),
//! Mamba and Griffin without the forecasting adapter, and the linear family as the one-step-ahead
//! forecaster over a window of [`LINEAR_WINDOW`] steps of [`LINEAR_CHANNELS`] channels (its
//! rolling view). For each length `l` it measures
//!
//! - training: forward + MSE against random targets + backward + Adam step, tokens/s = `b·l / t`;
//! - inference: the parallel `forward` without autodiff, tokens/s;
//! - the peak heap of each (the counting allocator, [`crate::memory`]: everything live during
//!   the step, model, optimizer state and inputs included);
//! - decoding: the latency of recurrent `step` at position `l − 1` (median of the 9 steps ending
//!   there, one decode of the longest length) and the state it carries.
//!
//! Sizes come from the size ladder at a target count of the sequence model's own parameters
//! (the ladder is asked for a task whose adapter adds only ~19·d parameters). Before each length,
//! the training peak is extrapolated from the lengths already measured (a power law through the
//! last two, exponent at least 1; exponent 2 from a single point); a length predicted above
//! `max_mem_mib` is recorded as skipped, with the prediction, and longer ones are not tried.

use std::path::Path;
use std::time::Instant;

use architectures::{
    Arch, ArchConfig, ArchName, ModelOption, ModelOptions, SequenceModel, TaskShape,
};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::Distribution;
use serde::{Deserialize, Serialize};

use crate::backend::BackendName;
use crate::bench::{self, DecodeBench, Timing, sync};
use crate::error::{Result, RunError};
use crate::{files, memory, sysinfo};

/// Window of the linear family's rolling view.
pub const LINEAR_WINDOW: usize = 96;
/// Channels of the linear family's rolling view (ETT's 7).
pub const LINEAR_CHANNELS: usize = 7;

/// What to measure: a `bench scaling` config file (`experiments/configs/*.toml`) or its flags.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingSpec {
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// Architectures.
    pub arch: Vec<ArchName>,
    /// Sequence lengths, ascending.
    pub seq_lens: Vec<usize>,
    /// Target parameter count of each sequence model (size ladder); the registry default size
    /// when absent. Ignored by the linear family, whose size is fixed by its window.
    #[serde(default)]
    pub params: Option<usize>,
    /// Sequences per step.
    #[serde(default = "one")]
    pub batch: usize,
    /// Skip lengths whose predicted training peak heap exceeds this many MiB.
    #[serde(default)]
    pub max_mem_mib: Option<u64>,
    /// Measure `step` decoding too.
    #[serde(default = "yes")]
    pub decode: bool,
    /// Timed repetitions per measurement (at least), after one untimed warm-up.
    #[serde(default = "three")]
    pub repeats: usize,
    /// Keep repeating until this many seconds have been timed (at most 20 repetitions).
    #[serde(default = "one_second")]
    pub min_seconds: f64,
    /// Backend.
    #[serde(default)]
    pub backend: BackendName,
    /// Seed of the models and the inputs.
    #[serde(default)]
    pub seed: u64,
}

fn one() -> usize {
    1
}
fn three() -> usize {
    3
}
fn yes() -> bool {
    true
}
fn one_second() -> f64 {
    1.0
}

impl ScalingSpec {
    /// Read a config file; errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(crate::error::io_at(path))?;
        let spec: Self = toml::from_str(&text)
            .map_err(|e| RunError::Invalid(format!("{}: {e}", path.display())))?;
        spec.validate()
            .map_err(|e| RunError::Invalid(format!("{}: {e}", path.display())))?;
        Ok(spec)
    }

    /// Check ranges.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(RunError::Invalid(m));
        if self.arch.is_empty() {
            return fail("`arch`: give at least one architecture".into());
        }
        if let Some(a) = self.arch.iter().find(|a| !a.trainable()) {
            return fail(format!("`arch`: `{a}` has no parameters to train"));
        }
        if self.seq_lens.is_empty() || self.seq_lens.contains(&0) {
            return fail("`seq_lens`: give positive lengths".into());
        }
        if !self.seq_lens.is_sorted_by(|a, b| a < b) {
            return fail(format!(
                "`seq_lens` must be strictly ascending (got {:?})",
                self.seq_lens
            ));
        }
        if self.batch == 0 || self.repeats == 0 {
            return fail("`batch` and `repeats` must be positive".into());
        }
        if !(self.min_seconds >= 0.0 && self.min_seconds.is_finite()) {
            return fail(format!(
                "`min_seconds` must be ≥ 0 (got {})",
                self.min_seconds
            ));
        }
        if self.max_mem_mib == Some(0) {
            return fail("`max_mem_mib` must be positive".into());
        }
        Ok(())
    }

    /// The configuration `arch` is measured with (see the module doc).
    pub fn arch_config(&self, arch: ArchName) -> Result<ArchConfig> {
        let config = match arch {
            arch if !arch.is_backbone() => {
                let task = TaskShape {
                    seq_len: LINEAR_WINDOW,
                    pred_len: 1,
                    channels: LINEAR_CHANNELS,
                };
                arch.config(task, &ModelOptions::default())?
            }
            _ => {
                // The smallest valid adapter around the backbone: one channel, one 16-step patch
                // (two tokens with end padding), horizon 1.
                let task = TaskShape {
                    seq_len: 16,
                    pred_len: 1,
                    channels: 1,
                };
                // A backbone with a causal switch (attention) runs causal, as a sequence model.
                let options = ModelOptions {
                    params: self.params,
                    causal: arch.accepts(ModelOption::Causal),
                    ..ModelOptions::default()
                };
                arch.config(task, &options)?
            }
        };
        Ok(config)
    }
}

/// One row of `scaling.csv`: one architecture at one length.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalingRow {
    /// Architecture name.
    pub arch: String,
    /// Parameters of the sequence model measured.
    pub params: usize,
    /// Token width.
    pub width: usize,
    /// Sequence length.
    pub seq_len: usize,
    /// Sequences per step.
    pub batch: usize,
    /// Median training step, ms.
    pub train_ms: Option<f64>,
    /// Training tokens per second.
    pub train_tokens_per_s: Option<f64>,
    /// Peak heap during the training steps, bytes.
    pub train_peak_bytes: Option<u64>,
    /// Median inference forward, ms.
    pub infer_ms: Option<f64>,
    /// Inference tokens per second.
    pub infer_tokens_per_s: Option<f64>,
    /// Peak heap during the inference forwards, bytes.
    pub infer_peak_bytes: Option<u64>,
    /// Median `step` latency at position `seq_len − 1`, ms.
    pub decode_ms: Option<f64>,
    /// Floats of recurrent state after `seq_len` steps, per sequence.
    pub decode_state_floats: Option<usize>,
    /// Why the length was not measured (empty when it was).
    pub skipped: String,
}

impl ScalingRow {
    /// A row with nothing measured yet.
    pub fn unmeasured(
        arch: &str,
        params: usize,
        width: usize,
        seq_len: usize,
        batch: usize,
    ) -> Self {
        Self {
            arch: arch.to_string(),
            params,
            width,
            seq_len,
            batch,
            train_ms: None,
            train_tokens_per_s: None,
            train_peak_bytes: None,
            infer_ms: None,
            infer_tokens_per_s: None,
            infer_peak_bytes: None,
            decode_ms: None,
            decode_state_floats: None,
            skipped: String::new(),
        }
    }
}

/// Everything about a `bench scaling` run besides its rows (`scaling.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScalingMeta {
    /// What was asked for.
    pub spec: ScalingSpec,
    /// Each architecture's measured configuration.
    pub configs: Vec<ArchConfig>,
    /// CPU and threads.
    pub machine: String,
    /// Code commit.
    pub git_commit: String,
}

/// Columns of `scaling.csv`: the fields of [`ScalingRow`], in order.
pub const CSV_COLUMNS: [&str; 14] = [
    "arch",
    "params",
    "width",
    "seq_len",
    "batch",
    "train_ms",
    "train_tokens_per_s",
    "train_peak_bytes",
    "infer_ms",
    "infer_tokens_per_s",
    "infer_peak_bytes",
    "decode_ms",
    "decode_state_floats",
    "skipped",
];

/// Render rows as `scaling.csv`: empty cells for absent values, times to 0.1 µs and rates to
/// 0.1 token/s (finer digits are below the timing noise).
pub fn csv(rows: &[ScalingRow]) -> String {
    fn cell<T: ToString>(v: Option<T>) -> String {
        v.map_or(String::new(), |v| v.to_string())
    }
    let records = rows.iter().map(|r| {
        [
            r.arch.clone(),
            r.params.to_string(),
            r.width.to_string(),
            r.seq_len.to_string(),
            r.batch.to_string(),
            cell(r.train_ms.map(|v| format!("{v:.4}"))),
            cell(r.train_tokens_per_s.map(|v| format!("{v:.1}"))),
            cell(r.train_peak_bytes),
            cell(r.infer_ms.map(|v| format!("{v:.4}"))),
            cell(r.infer_tokens_per_s.map(|v| format!("{v:.1}"))),
            cell(r.infer_peak_bytes),
            cell(r.decode_ms.map(|v| format!("{v:.4}"))),
            cell(r.decode_state_floats),
            r.skipped.clone(),
        ]
    });
    files::csv_text(&CSV_COLUMNS, records)
}

/// Read `scaling.csv` back (the charts' input); errors name the file, line and field.
pub fn read_csv(path: &Path) -> Result<Vec<ScalingRow>> {
    let file = std::fs::File::open(path).map_err(crate::error::io_at(path))?;
    let mut reader = csv::Reader::from_reader(file);
    let header = reader.headers().map_err(|e| csv_error(path, e))?;
    if !header.iter().eq(CSV_COLUMNS) {
        let expected = CSV_COLUMNS.join(",");
        return Err(invalid_at(
            path,
            1,
            format!("expected the header `{expected}`"),
        ));
    }
    reader
        .deserialize()
        .map(|row| row.map_err(|e| csv_error(path, e)))
        .collect()
}

/// A problem at `line` of `path`.
fn invalid_at(path: &Path, line: u64, problem: String) -> RunError {
    RunError::Invalid(format!("{}: line {line}: {problem}", path.display()))
}

/// A `csv` error as ours: I/O errors keep their kind; the rest name the line and field.
fn csv_error(path: &Path, error: csv::Error) -> RunError {
    let line = error.position().map_or(1, csv::Position::line);
    let problem = match error.into_kind() {
        csv::ErrorKind::Io(source) => return crate::error::io_at(path)(source),
        csv::ErrorKind::Deserialize { err, .. } => {
            let field = err
                .field()
                .and_then(|i| CSV_COLUMNS.get(i as usize))
                .map_or("?", |name| name);
            format!("field `{field}`: {}", err.kind())
        }
        csv::ErrorKind::UnequalLengths { len, .. } => {
            format!("expected {} fields, found {len}", CSV_COLUMNS.len())
        }
        csv::ErrorKind::Utf8 { err, .. } => format!("not UTF-8: {err}"),
        other => format!("{other:?}"),
    };
    invalid_at(path, line, problem)
}

/// Predicted peak at `len` from earlier `(length, peak bytes)` measurements, ascending (see the
/// module doc); `None` before any.
pub fn predict_peak(measured: &[(usize, u64)], len: usize) -> Option<f64> {
    let &(l1, m1) = measured.last()?;
    let exponent = match measured.len() {
        1 => 2.0,
        n => {
            let (l0, m0) = measured[n - 2];
            ((m1 as f64 / m0 as f64).ln() / (l1 as f64 / l0 as f64).ln()).max(1.0)
        }
    };
    Some(m1 as f64 * (len as f64 / l1 as f64).powf(exponent))
}

/// Time `op` (after one untimed call): at least `repeats` calls and `min_seconds` in all, at most
/// 20 calls. Returns the median ms and the peak heap over the timed calls.
fn measure(
    spec: &ScalingSpec,
    device: &Device,
    mut op: impl FnMut(),
) -> Result<(f64, Option<u64>)> {
    op();
    sync(device)?;
    memory::reset_peak();
    let mut samples = Vec::new();
    let started = Instant::now();
    while samples.len() < spec.repeats
        || (started.elapsed().as_secs_f64() < spec.min_seconds && samples.len() < 20)
    {
        let t = Instant::now();
        op();
        sync(device)?;
        samples.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((Timing::of(&samples).median_ms, memory::peak_bytes()))
}

/// Parameters of the sequence model an [`Arch`] runs as (the backbone for adapter models).
pub fn sequence_params(model: &Arch) -> usize {
    model.sequence_params()
}

/// Measure every architecture of `spec` at every length; `on_row` sees each row as soon as it
/// exists (the binary rewrites the CSV), `on_start` each architecture before it starts.
pub fn run(
    spec: &ScalingSpec,
    mut on_start: impl FnMut(&ArchConfig),
    mut on_row: impl FnMut(&ScalingRow) -> Result<()>,
) -> Result<ScalingMeta> {
    spec.validate()?;
    let configs = spec
        .arch
        .iter()
        .map(|&a| spec.arch_config(a))
        .collect::<Result<Vec<_>>>()?;
    let device = spec.backend.device()?;
    for config in &configs {
        on_start(config);
        measure_arch(spec, config, &device, &mut on_row)?;
    }
    Ok(ScalingMeta {
        spec: spec.clone(),
        configs,
        machine: sysinfo::machine(),
        git_commit: sysinfo::git_commit().to_string(),
    })
}

fn measure_arch(
    spec: &ScalingSpec,
    config: &ArchConfig,
    device: &Device,
    on_row: &mut impl FnMut(&ScalingRow) -> Result<()>,
) -> Result<()> {
    device.seed(spec.seed);
    let autodiff = device.clone().autodiff();
    let mut model = Some(config.init(&autodiff));
    let inference = model.as_ref().expect("built").valid();
    let (params, width) = (
        sequence_params(&inference),
        inference.width().unwrap_or(LINEAR_CHANNELS),
    );
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mut measured: Vec<(usize, u64)> = Vec::new();
    let mut rows = Vec::new();
    let mut stop: Option<String> = None;
    for &len in &spec.seq_lens {
        let mut row =
            ScalingRow::unmeasured(config.name().as_str(), params, width, len, spec.batch);
        if let Some(max_len) = inference.max_len().filter(|&m| len > m) {
            row.skipped = format!("longer than the position table ({max_len})");
        } else if let Some(reason) = &stop {
            row.skipped = reason.clone();
        } else if let (Some(limit), Some(predicted)) =
            (spec.max_mem_mib, predict_peak(&measured, len))
            && predicted > (limit as f64) * 1048576.0
        {
            row.skipped = format!(
                "predicted training peak {:.0} MiB > max {limit} MiB",
                predicted / 1048576.0
            );
            stop = Some(format!("a shorter length was predicted above {limit} MiB"));
        }
        if row.skipped.is_empty() {
            let tokens = (spec.batch * len) as f64;
            let shape = [spec.batch, len, width];
            let x = Tensor::<3>::random(shape, Distribution::Default, &autodiff);
            let target = Tensor::<3>::random(shape, Distribution::Default, &autodiff);
            let (train_ms, train_peak) = measure(spec, device, || {
                let current = model.take().expect("the model is put back after each step");
                let loss = (SequenceModel::forward(&current, x.clone()) - target.clone())
                    .powi_scalar(2)
                    .mean();
                let grads = GradientsParams::from_grads(loss.backward(), &current);
                model = Some(optim.step(1e-4, current, grads));
            })?;
            let inference = model.as_ref().expect("built").valid();
            let x = Tensor::<3>::random(shape, Distribution::Default, device);
            let (infer_ms, infer_peak) = measure(spec, device, || {
                drop(SequenceModel::forward(&inference, x.clone()));
            })?;
            row.train_ms = Some(train_ms);
            row.train_tokens_per_s = Some(tokens / (train_ms * 1e-3));
            row.train_peak_bytes = train_peak;
            row.infer_ms = Some(infer_ms);
            row.infer_tokens_per_s = Some(tokens / (infer_ms * 1e-3));
            row.infer_peak_bytes = infer_peak;
            if let Some(peak) = train_peak {
                measured.push((len, peak));
            }
        }
        rows.push(row);
    }
    let decoded: Vec<usize> = rows
        .iter()
        .filter(|r| r.skipped.is_empty())
        .map(|r| r.seq_len)
        .collect();
    if spec.decode && !decoded.is_empty() {
        let report = bench::decode(
            &DecodeBench {
                arch: config.clone(),
                batch: spec.batch,
                positions: decoded.iter().map(|l| l - 1).collect(),
                // The scaling benchmark decodes every length once (its cost grows with length).
                repeats: 1,
                backend: spec.backend,
                seed: spec.seed,
            },
            width,
        )?;
        for (row, latency) in rows
            .iter_mut()
            .filter(|r| r.skipped.is_empty())
            .zip(&report.positions)
        {
            row.decode_ms = Some(latency.step.median_ms);
            row.decode_state_floats = Some(latency.state_floats);
        }
    }
    for row in &rows {
        on_row(row)?;
    }
    Ok(())
}

/// Write `rows` to `path` (atomically).
pub fn write_csv(path: &Path, rows: &[ScalingRow]) -> Result<()> {
    files::write_text_atomic(path, &csv(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_prediction_follows_the_last_two_lengths() {
        assert_eq!(predict_peak(&[], 128), None);
        // One point: quadratic, to be safe.
        assert_eq!(predict_peak(&[(100, 1000)], 200), Some(4000.0));
        // Linear growth extrapolates linearly, quadratic quadratically.
        let linear = predict_peak(&[(100, 1000), (200, 2000)], 800).unwrap();
        assert!((linear - 8000.0).abs() < 1e-6, "{linear}");
        let quadratic = predict_peak(&[(100, 1000), (200, 4000)], 400).unwrap();
        assert!((quadratic - 16000.0).abs() < 1e-6, "{quadratic}");
        // Sub-linear growth (fixed costs) is never extrapolated below linear.
        let flat = predict_peak(&[(100, 1000), (200, 1100)], 400).unwrap();
        assert!((flat - 2200.0).abs() < 1e-6, "{flat}");
    }

    #[test]
    fn csv_round_trips() {
        let row = ScalingRow {
            arch: "mamba".into(),
            params: 1234,
            width: 16,
            seq_len: 128,
            batch: 1,
            train_ms: Some(1.5),
            train_tokens_per_s: Some(85333.3),
            train_peak_bytes: Some(4096),
            infer_ms: Some(0.25),
            infer_tokens_per_s: Some(512000.0),
            infer_peak_bytes: Some(2048),
            decode_ms: Some(0.125),
            decode_state_floats: Some(640),
            skipped: String::new(),
        };
        // A reason with a comma and a quote survives the round trip (quoted, RFC 4180).
        let skipped = ScalingRow {
            skipped: "predicted training peak 9 MiB > max 8 MiB, \"--max-mib\"".into(),
            ..ScalingRow::unmeasured("mamba", 1234, 16, 256, 1)
        };
        let dir = std::env::temp_dir().join(format!("archzoo-scaling-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scaling.csv");
        write_csv(&path, &[row.clone(), skipped.clone()]).unwrap();
        assert_eq!(read_csv(&path).unwrap(), vec![row, skipped]);
        let header = CSV_COLUMNS.join(",");
        std::fs::write(&path, format!("{header}\nmamba,x,16,128,1,,,,,,,,,\n")).unwrap();
        let error = read_csv(&path).unwrap_err().to_string();
        assert!(
            error.contains("scaling.csv: line 2: field `params`"),
            "{error}"
        );
        std::fs::write(&path, format!("{header}\nmamba,1,16,128,1,,,,\n")).unwrap();
        let error = read_csv(&path).unwrap_err().to_string();
        assert!(
            error.contains("line 2: expected 14 fields, found 9"),
            "{error}"
        );
        std::fs::write(&path, "arch,params\nmamba,1\n").unwrap();
        let error = read_csv(&path).unwrap_err().to_string();
        assert!(
            error.contains("line 1: expected the header `arch,params,"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
