//! Sweeps: one TOML file expanded into runs, run resumably, shardable across machines.
//!
//! A sweep file sets every run setting either to one value (fixed for all runs) or to a list
//! (swept); the runs are the Cartesian product of the lists, in file-independent order (arch,
//! data, features, target, L, H, preset, lr, batch, epochs, patience, backend, the model flags,
//! seed). A model flag is swept only for the architectures that accept it, so
//! `arch = ["dlinear", "mamba"]` with `d_model = [64, 128]` is 1 + 2 runs, not 4.
//!
//! ```toml
//! description = "ETTh1 H=96 at two widths"   # optional
//! arch = ["dlinear", "transformer", "mamba", "griffin"]
//! data = "ETTh1"
//! pred_len = 96
//! preset = "tslib"
//! d_model = [32, 64]
//! seed = [2021, 2022, 2023]
//! ```
//!
//! Each run is resolved exactly as `archzoo train` resolves its flags ([`RunRequest`]), so it has
//! the same config and run id, and writes the same run directory. Running a sweep:
//!
//! - a run whose `summary.json` exists is skipped, so a sweep killed at any point resumes where it
//!   stopped (the summary is written atomically, last);
//! - a run that fails (diverged, bad setting, I/O) leaves `failed.json` with the reason and the
//!   sweep goes on; failed runs are not retried unless asked ([`SweepOptions::retry_failed`]);
//! - `--shard i/n` keeps the runs whose id hashes to `i` modulo `n`: shards are disjoint, cover the
//!   sweep, and do not depend on run order, so `n` machines share one output folder or merge theirs;
//! - with a time limit ([`SweepOptions::time_limit`]) the run in training pauses at the end of the
//!   first epoch past it, keeping its checkpoint, and no further run starts; the same command
//!   resumes the paused run (same numbers as one go) and goes on;
//! - `ledger.csv` lists every run of the sweep with its state and metrics, rewritten atomically
//!   from the run directories after each run that trains or fails and at the end, so it never
//!   holds duplicate or partial rows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use architectures::{ArchName, ModelOptions};
use datasets::{Features, ForecastData, SplitRule};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backend::BackendName;
use crate::config::RunConfig;
use crate::error::{Result, RunError, io_at};
use crate::preset::Preset;
use crate::progress::Progress;
use crate::request::RunRequest;
use crate::results::{RunDir, Summary, csv_text, write_json_atomic, write_text_atomic};
use crate::runner::{self, RunOptions, RunStatus};

/// One value or a list of values.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A fixed value.
    One(T),
    /// Swept values.
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    fn values(&self) -> Vec<T> {
        match self {
            Self::One(v) => vec![v.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

/// A sweep file: every key is a run setting, one value or a list.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    /// Free text.
    pub description: Option<String>,
    /// Architectures (required).
    pub arch: Option<OneOrMany<ArchName>>,
    /// `synthetic`, known dataset names, CSV paths. Default `synthetic`.
    pub data: Option<OneOrMany<String>>,
    /// Target column. Default `OT`.
    pub target: Option<OneOrMany<String>>,
    /// `M`, `S`, `MS`. Default `M`.
    pub features: Option<OneOrMany<Features>>,
    /// Split rule; default the protocol's for each dataset.
    pub split: Option<OneOrMany<SplitRule>>,
    /// Lookback `L`; default the preset's.
    pub seq_len: Option<OneOrMany<usize>>,
    /// Horizon `H`. Default 96.
    pub pred_len: Option<OneOrMany<usize>>,
    /// Training recipe. Default `tslib`.
    pub preset: Option<OneOrMany<Preset>>,
    /// Learning rate; default the preset's.
    pub lr: Option<OneOrMany<f64>>,
    /// Batch size; default the preset's.
    pub batch: Option<OneOrMany<usize>>,
    /// Maximum epochs; default the preset's.
    pub epochs: Option<OneOrMany<usize>>,
    /// Early-stopping patience; default the preset's.
    pub patience: Option<OneOrMany<usize>>,
    /// Seeds. Default 2021.
    pub seed: Option<OneOrMany<u64>>,
    /// Backend. Default `flex`.
    pub backend: Option<OneOrMany<BackendName>>,
    /// Target parameter counts (the size ladder picks width and depth).
    pub params: Option<OneOrMany<usize>>,
    /// Model width.
    pub d_model: Option<OneOrMany<usize>>,
    /// Layers.
    pub layers: Option<OneOrMany<usize>>,
    /// Attention heads.
    pub heads: Option<OneOrMany<usize>>,
    /// Feed-forward width.
    pub d_ff: Option<OneOrMany<usize>>,
    /// SSM state size.
    pub d_state: Option<OneOrMany<usize>>,
    /// Expansion factor.
    pub expand: Option<OneOrMany<usize>>,
    /// Patch length.
    pub patch_len: Option<OneOrMany<usize>>,
    /// Patch stride.
    pub stride: Option<OneOrMany<usize>>,
    /// Dropout.
    pub dropout: Option<OneOrMany<f64>>,
    /// Local-attention window.
    pub window: Option<OneOrMany<usize>>,
    /// DLinear moving-average kernel.
    pub moving_avg: Option<OneOrMany<usize>>,
    /// One set of weights per channel.
    pub individual: Option<OneOrMany<bool>>,
    /// Causal backbone.
    pub causal: Option<OneOrMany<bool>>,
}

impl SweepFile {
    /// Read and parse `path`; a syntax error or an unknown key names the file, line and column.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io_at(path))?;
        toml::from_str(&text).map_err(|e| RunError::Invalid(format!("{}: {e}", path.display())))
    }

    /// The requests of the grid, in the order of the module doc.
    pub fn requests(&self) -> Result<Vec<RunRequest>> {
        let archs = self
            .arch
            .as_ref()
            .ok_or_else(|| RunError::Invalid("a sweep needs `arch`".into()))?
            .values();
        let mut runs: Vec<RunRequest> = archs.into_iter().map(RunRequest::new).collect();
        let always = |_: &RunRequest| true;
        runs = expand(runs, &self.data, always, |r, v| r.data = v);
        runs = expand(runs, &self.features, always, |r, v| r.features = v);
        runs = expand(runs, &self.target, always, |r, v| r.target = v);
        runs = expand(runs, &self.split, always, |r, v| r.split = Some(v));
        runs = expand(runs, &self.seq_len, always, |r, v| r.seq_len = Some(v));
        runs = expand(runs, &self.pred_len, always, |r, v| r.pred_len = v);
        runs = expand(runs, &self.preset, always, |r, v| r.preset = v);
        let trainable = |r: &RunRequest| r.arch.trainable();
        runs = expand(runs, &self.lr, trainable, |r, v| r.lr = Some(v));
        runs = expand(runs, &self.batch, trainable, |r, v| r.batch = Some(v));
        runs = expand(runs, &self.epochs, trainable, |r, v| r.epochs = Some(v));
        runs = expand(runs, &self.patience, trainable, |r, v| r.patience = Some(v));
        runs = expand(runs, &self.backend, always, |r, v| r.backend = v);
        runs = self.expand_model(runs);
        runs = expand(runs, &self.seed, always, |r, v| r.seed = v);
        Ok(runs)
    }

    /// Sweep the model flags, each only for the architectures that accept it.
    fn expand_model(&self, runs: Vec<RunRequest>) -> Vec<RunRequest> {
        fn accepts(flag: &'static str) -> impl Fn(&RunRequest) -> bool {
            move |r: &RunRequest| r.arch.accepted_options().contains(&flag)
        }
        fn model(r: &mut RunRequest) -> &mut ModelOptions {
            &mut r.model
        }
        let mut runs = runs;
        runs = expand(runs, &self.params, accepts("params"), |r, v| {
            model(r).params = Some(v)
        });
        runs = expand(runs, &self.d_model, accepts("d-model"), |r, v| {
            model(r).d_model = Some(v)
        });
        runs = expand(runs, &self.layers, accepts("layers"), |r, v| {
            model(r).layers = Some(v)
        });
        runs = expand(runs, &self.heads, accepts("heads"), |r, v| {
            model(r).heads = Some(v)
        });
        runs = expand(runs, &self.d_ff, accepts("d-ff"), |r, v| {
            model(r).d_ff = Some(v)
        });
        runs = expand(runs, &self.d_state, accepts("d-state"), |r, v| {
            model(r).d_state = Some(v)
        });
        runs = expand(runs, &self.expand, accepts("expand"), |r, v| {
            model(r).expand = Some(v)
        });
        runs = expand(runs, &self.patch_len, accepts("patch-len"), |r, v| {
            model(r).patch_len = Some(v)
        });
        runs = expand(runs, &self.stride, accepts("stride"), |r, v| {
            model(r).stride = Some(v)
        });
        runs = expand(runs, &self.dropout, accepts("dropout"), |r, v| {
            model(r).dropout = Some(v)
        });
        runs = expand(runs, &self.window, accepts("window"), |r, v| {
            model(r).window = Some(v)
        });
        runs = expand(runs, &self.moving_avg, accepts("moving-avg"), |r, v| {
            model(r).moving_avg = Some(v)
        });
        runs = expand(runs, &self.individual, accepts("individual"), |r, v| {
            model(r).individual = v.then_some(true)
        });
        expand(runs, &self.causal, accepts("causal"), |r, v| {
            model(r).causal = v.then_some(true)
        })
    }
}

/// Each run times each value of `axis` (for the runs `applies` to; the others pass unchanged).
fn expand<T: Clone>(
    runs: Vec<RunRequest>,
    axis: &Option<OneOrMany<T>>,
    applies: impl Fn(&RunRequest) -> bool,
    set: impl Fn(&mut RunRequest, T),
) -> Vec<RunRequest> {
    let Some(axis) = axis else {
        return runs;
    };
    let values = axis.values();
    let mut out = Vec::with_capacity(runs.len() * values.len());
    for run in runs {
        if !applies(&run) {
            out.push(run);
            continue;
        }
        for value in &values {
            let mut run = run.clone();
            set(&mut run, value.clone());
            out.push(run);
        }
    }
    out
}

/// `i/n`: this machine's share of a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based index, `< count`.
    pub index: u64,
    /// Number of shards.
    pub count: u64,
}

impl Shard {
    /// The whole sweep.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parse `i/n` with `0 <= i < n`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = || {
            RunError::Invalid(format!(
                "--shard must be i/n with 0 <= i < n (got `{text}`)"
            ))
        };
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (u64, u64) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }

    /// Whether the run `run_id` belongs to this shard: its id's SHA-256, as a number, modulo `n`.
    pub fn owns(&self, run_id: &str) -> bool {
        let digest = Sha256::digest(run_id.as_bytes());
        let head = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        head % self.count == self.index
    }
}

/// One planned run.
#[derive(Clone, Debug)]
pub struct PlannedRun {
    /// Its run id.
    pub run_id: String,
    /// Its full config.
    pub config: RunConfig,
    /// Index of its prepared data in [`Plan::data`].
    data: usize,
}

/// Every run of a sweep, resolved, with the data they use (each dataset loaded once).
pub struct Plan {
    /// The runs, duplicates (the same config twice) removed.
    pub runs: Vec<PlannedRun>,
    data: Vec<ForecastData>,
}

impl Plan {
    /// Resolve `file`'s runs, loading datasets from `data_dir`. A setting that does not apply or
    /// is out of range is reported with the run it belongs to, before anything runs.
    pub fn new(file: &SweepFile, data_dir: &Path) -> Result<Self> {
        let mut series = HashMap::new();
        let mut data = Vec::new();
        let mut prepared: HashMap<String, usize> = HashMap::new();
        let mut runs = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for request in file.requests()? {
            let key = (request.data.clone(), request.target.clone());
            if !series.contains_key(&key) {
                let loaded = runner::load_series(&request.data, data_dir, &request.target)?;
                series.insert(key.clone(), loaded);
            }
            let (source, loaded) = &series[&key];
            let (config, forecast) = request.resolve(&source.name(), loaded).map_err(|e| {
                RunError::Invalid(format!(
                    "{} {} seed {}: {e}",
                    request.arch, request.data, request.seed
                ))
            })?;
            let run_id = config.run_id();
            if !seen.insert(run_id.clone()) {
                continue;
            }
            // Runs with the same data settings share one prepared copy.
            let data_key = serde_json::to_string(&config.data).expect("DataConfig serializes");
            let index = *prepared.entry(data_key).or_insert_with(|| {
                data.push(forecast);
                data.len() - 1
            });
            runs.push(PlannedRun {
                run_id,
                config,
                data: index,
            });
        }
        Ok(Self { runs, data })
    }

    /// The runs of `shard`.
    pub fn shard(&self, shard: Shard) -> Vec<&PlannedRun> {
        self.runs.iter().filter(|r| shard.owns(&r.run_id)).collect()
    }
}

/// Where a run of the sweep stands on disk.
#[derive(Clone, Debug)]
pub enum RunState {
    /// `summary.json` exists.
    Done(Box<Summary>),
    /// `failed.json` exists (and no summary).
    Failed(String),
    /// Stopped after a completed epoch (time limit, or killed), with a checkpoint to resume from.
    Paused {
        /// Epochs completed.
        epochs_done: usize,
    },
    /// Not run, or interrupted before its first checkpoint.
    Pending,
}

/// What `failed.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Failure {
    /// The run.
    pub run_id: String,
    /// The error, with its causes.
    pub reason: String,
}

/// The state of `run_id` under `out`.
pub fn state(out: &Path, run: &PlannedRun) -> Result<RunState> {
    let dir = RunDir::new(out, &run.config);
    if let Some(summary) = dir.completed()? {
        return Ok(RunState::Done(Box::new(summary)));
    }
    let failed = failure_path(out, &run.run_id);
    if failed.exists() {
        let text = std::fs::read_to_string(&failed).map_err(io_at(&failed))?;
        let failure: Failure = serde_json::from_str(&text).map_err(|source| RunError::Json {
            path: failed.clone(),
            source,
        })?;
        return Ok(RunState::Failed(failure.reason));
    }
    Ok(match dir.checkpoint().epochs_done() {
        Some(epochs_done) => RunState::Paused { epochs_done },
        None => RunState::Pending,
    })
}

fn failure_path(out: &Path, run_id: &str) -> PathBuf {
    out.join(run_id).join("failed.json")
}

/// How to run a sweep.
#[derive(Clone, Copy, Debug)]
pub struct SweepOptions {
    /// This machine's share.
    pub shard: Shard,
    /// Run again the runs that failed before.
    pub retry_failed: bool,
    /// Wall-clock budget of this invocation: the run in training when it runs out pauses at the
    /// end of that epoch (keeping its checkpoint) and no further run starts. The first run that
    /// trains always gets at least one epoch, so repeating the command always makes progress.
    pub time_limit: Option<Duration>,
}

/// What happened to one run in this invocation.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Trained now.
    Completed(Box<Summary>),
    /// Already done (or failed before, without `retry_failed`).
    Skipped(RunState),
    /// Failed now, with the reason.
    Failed(String),
    /// Paused by the time limit after `epoch` of `epochs`; the sweep stops here.
    Paused {
        /// Epochs completed.
        epoch: usize,
        /// Epochs planned.
        epochs: usize,
    },
}

/// Run the shard's runs of `plan` under `out`, calling `event` after each; returns the outcomes
/// in run order. Never stops at a failed run; stops early only at the time limit (the runs not
/// reached have no outcome).
pub fn run(
    plan: &Plan,
    options: SweepOptions,
    out: &Path,
    progress: &mut dyn Progress,
    mut event: impl FnMut(&PlannedRun, &Outcome),
) -> Result<Vec<Outcome>> {
    let began = Instant::now();
    let mut trained_any = false;
    let mut outcomes = Vec::new();
    for planned in plan.shard(options.shard) {
        let time_left = options
            .time_limit
            .map(|limit| limit.saturating_sub(began.elapsed()));
        let outcome = match state(out, planned)? {
            RunState::Done(summary) => Outcome::Skipped(RunState::Done(summary)),
            RunState::Failed(reason) if !options.retry_failed => {
                Outcome::Skipped(RunState::Failed(reason))
            }
            // The budget is spent: leave this run (and the rest) for the next invocation.
            _ if trained_any && time_left.is_some_and(|t| t.is_zero()) => break,
            RunState::Failed(_) | RunState::Paused { .. } | RunState::Pending => {
                trained_any = true;
                let failed = failure_path(out, &planned.run_id);
                let data = &plan.data[planned.data];
                let started = Instant::now();
                let options = RunOptions {
                    force: false,
                    time_limit: time_left,
                };
                match runner::run_prepared(&planned.config, data, out, options, progress, started) {
                    Ok(RunStatus::Completed(summary) | RunStatus::Skipped(summary)) => {
                        if failed.exists() {
                            std::fs::remove_file(&failed).map_err(io_at(&failed))?;
                        }
                        Outcome::Completed(Box::new(summary))
                    }
                    Ok(RunStatus::Paused { epoch, epochs, .. }) => {
                        Outcome::Paused { epoch, epochs }
                    }
                    Err(error) => {
                        let reason = error_chain(&error);
                        if let Some(dir) = failed.parent() {
                            std::fs::create_dir_all(dir).map_err(io_at(dir))?;
                        }
                        let failure = Failure {
                            run_id: planned.run_id.clone(),
                            reason: reason.clone(),
                        };
                        write_json_atomic(&failed, &failure)?;
                        Outcome::Failed(reason)
                    }
                }
            }
        };
        // A skipped run changed nothing on disk: rewriting the ledger (which reads every run
        // directory) only after a run that trained or failed keeps a resumed sweep linear.
        if !matches!(outcome, Outcome::Skipped(_)) {
            write_ledger(plan, out)?;
        }
        event(planned, &outcome);
        let paused = matches!(outcome, Outcome::Paused { .. });
        outcomes.push(outcome);
        if paused {
            break;
        }
    }
    // Once more at the end, for a sweep that only skipped (or whose other shards progressed).
    write_ledger(plan, out)?;
    Ok(outcomes)
}

/// `error` and its sources, `: `-joined.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Columns of `ledger.csv`.
pub const LEDGER_COLUMNS: [&str; 16] = [
    "run_id",
    "state",
    "arch",
    "data",
    "seq_len",
    "pred_len",
    "preset",
    "lr",
    "seed",
    "params",
    "train_flops",
    "test_mse",
    "test_mae",
    "epochs_run",
    "wall_seconds",
    "reason",
];

/// Rewrite `out/ledger.csv` from the run directories: one row per run of the whole sweep (every
/// shard), through a temporary file and a rename.
pub fn write_ledger(plan: &Plan, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(io_at(out))?;
    let mut rows = Vec::with_capacity(plan.runs.len());
    for run in &plan.runs {
        let c = &run.config;
        let fixed = [
            run.run_id.clone(),
            String::new(),
            c.arch.name().to_string(),
            c.data.data.clone(),
            c.data.seq_len.to_string(),
            c.data.pred_len.to_string(),
            c.train.preset.to_string(),
            c.train.lr.to_string(),
            c.seed.to_string(),
        ];
        let (state, rest) = match state(out, run)? {
            RunState::Done(s) => (
                "done",
                [
                    s.params.to_string(),
                    s.train_flops.map_or(String::new(), |f| f.to_string()),
                    s.test_mse.to_string(),
                    s.test_mae.to_string(),
                    s.epochs_run.to_string(),
                    format!("{:.1}", s.wall_seconds),
                    String::new(),
                ],
            ),
            RunState::Failed(reason) => (
                "failed",
                [
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    reason,
                ],
            ),
            RunState::Paused { epochs_done } => {
                let mut rest: [String; 7] = Default::default();
                rest[4] = epochs_done.to_string();
                ("paused", rest)
            }
            RunState::Pending => ("pending", Default::default()),
        };
        let mut fields: Vec<String> = fixed.to_vec();
        fields[1] = state.into();
        fields.extend(rest);
        rows.push(fields);
    }
    write_text_atomic(&out.join("ledger.csv"), &csv_text(&LEDGER_COLUMNS, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> SweepFile {
        toml::from_str(text).expect("valid sweep")
    }

    #[test]
    fn grid_multiplies_lists_and_skips_flags_an_arch_lacks() {
        let file = parse(
            r#"
            arch = ["dlinear", "mamba"]
            d_model = [16, 32]
            seed = [1, 2, 3]
            pred_len = 24
            "#,
        );
        let runs = file.requests().unwrap();
        // dlinear: 3 seeds; mamba: 2 widths x 3 seeds.
        assert_eq!(runs.len(), 3 + 6);
        assert!(runs.iter().all(|r| r.pred_len == 24));
        assert!(
            runs.iter()
                .filter(|r| r.arch == ArchName::Dlinear)
                .all(|r| r.model.d_model.is_none())
        );
    }

    #[test]
    fn unknown_keys_and_missing_arch_are_errors() {
        assert!(toml::from_str::<SweepFile>("arch = \"dlinear\"\nlearning_rate = 1").is_err());
        assert!(parse("seed = 1").requests().is_err());
    }

    #[test]
    fn shards_partition_any_id_set() {
        let ids: Vec<String> = (0..500).map(|i| format!("run-{i}")).collect();
        for count in [1, 2, 3, 7] {
            let mut owners = vec![0; ids.len()];
            for index in 0..count {
                let shard = Shard { index, count };
                for (i, id) in ids.iter().enumerate() {
                    owners[i] += usize::from(shard.owns(id));
                }
            }
            assert!(owners.iter().all(|&n| n == 1), "n = {count}");
        }
        assert_eq!(Shard::parse("1/2").unwrap(), Shard { index: 1, count: 2 });
        for bad in ["2/2", "0/0", "1", "a/b", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}
