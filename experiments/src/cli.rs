//! Command-line arguments (clap derive). What the user typed lives here; `main.rs` resolves it
//! into validated configs.

use std::path::PathBuf;

use architectures::{ArchName, ModelOptions};
use clap::{Args, Parser, Subcommand};
use experiments::bench::HeadPositions;
use experiments::explain::{Baseline, Method, Quadrature, Settings, TargetSpec};
use experiments::probe::ProbeRequest;
use experiments::request::DataArgs;
use experiments::{BackendName, RunRequest};

/// archzoo: a reproducible architecture zoo for sequence models. Trains forecasters under the
/// standard long-horizon protocol and writes every run's config, metrics and summary to disk.
#[derive(Debug, Parser)]
#[command(name = "archzoo", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train one model on one dataset and test its best-validation weights.
    Train(Box<TrainArgs>),
    /// Train one token model on a token probe (associative recall, selective copying, induction
    /// heads) and test its accuracy.
    Probe(Box<ProbeArgs>),
    /// Run a grid of runs from a TOML file: resumable, shardable, failures recorded; ends with
    /// the leaderboard and charts of the output folder.
    Sweep(SweepArgs),
    /// Forecast the horizon after the last row of a CSV with a completed run's best weights, in
    /// the data's own units, dates continued.
    Predict(PredictArgs),
    /// Attribute completed runs' test forecasts to their inputs (integrated gradients, saliency,
    /// occlusion), measure each method's faithfulness against random order, and compare the runs
    /// (faithfulness table, per-lag profiles, heatmaps).
    Explain(Box<ExplainArgs>),
    /// Leaderboard (leaderboard.md, leaderboard.csv) from the runs stored under a folder, and the
    /// papers' datasets x horizons table (table.md) when they cover more than one setting.
    Report(ReportArgs),
    /// Charts (SVG and PNG) from stored results: accuracy against parameters, FLOPs and time,
    /// sampled forecasts against the truth, and `bench scaling` cost curves.
    Plot(PlotArgs),
    /// List architectures, datasets, presets and backends.
    List(ListArgs),
    /// Inspect or download data.
    #[command(subcommand)]
    Data(DataCommand),
    /// Measure the cost of training steps and of matmuls.
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// `archzoo probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The run's settings.
    #[command(flatten)]
    pub run: ProbeRequest,
    /// Output folder: the run writes `<out>/<run id>/`; a finished run there is not repeated,
    /// an interrupted one resumes from its last completed epoch.
    #[arg(long, default_value = "runs/probes")]
    pub out: PathBuf,
    /// Re-train from scratch even if this exact config already has a completed summary or a
    /// checkpoint.
    #[arg(long)]
    pub force: bool,
    /// Pause at the end of the first epoch that ends this many minutes or more into training,
    /// keeping the run's checkpoint; the same command run again resumes it. Decimals allowed;
    /// 0 pauses after one epoch.
    #[arg(long, value_name = "MINUTES", allow_negative_numbers = true, value_parser = parse_minutes)]
    pub time_limit: Option<std::time::Duration>,
}

/// `archzoo sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The sweep file (TOML; every key a run setting, one value or a list to sweep).
    pub file: PathBuf,
    /// List the expanded runs, their ids and states, and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Run only this machine's share `i/n` (0-based): shards are disjoint and cover the sweep.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Output folder (default: runs/<file stem>); completed runs there are skipped.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Run again the runs recorded as failed.
    #[arg(long)]
    pub retry_failed: bool,
    /// Copy completed runs with a planned run's id (the same config, hence the same numbers)
    /// from this folder (searched two levels deep) instead of training them; their data
    /// checksum must match. Repeatable.
    #[arg(long, value_name = "DIR")]
    pub reuse: Vec<PathBuf>,
    /// Stop after this many minutes: the run in training pauses at the end of the first epoch
    /// past the limit (keeping its checkpoint) and no further run starts; the same command run
    /// again resumes it. Decimals allowed; 0 trains one epoch of one run.
    #[arg(long, value_name = "MINUTES", allow_negative_numbers = true, value_parser = parse_minutes)]
    pub time_limit: Option<std::time::Duration>,
    /// Do not end with the leaderboard and charts of the runs in the output folder.
    #[arg(long)]
    pub no_report: bool,
    #[command(flatten)]
    pub data_dir: DataDirArg,
}

/// `archzoo predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A completed run's folder (config.json, model.bpk, scaler.json).
    pub run_dir: PathBuf,
    /// A TSLib-format CSV (`date` first) with the run's columns; its last L rows are the input.
    #[arg(long)]
    pub data: PathBuf,
    /// Write the forecast here (CSV: date, then the forecast columns) instead of to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `archzoo explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Completed runs' folders (config.json, summary.json, model.bpk), e.g. one per architecture
    /// at the same setting.
    #[arg(required = true)]
    pub run_dirs: Vec<PathBuf>,
    /// Attribution methods (repeat the flag or separate by commas).
    #[arg(long = "method", value_enum, value_delimiter = ',',
          default_values_t = Method::ALL)]
    pub methods: Vec<Method>,
    /// Test windows explained, evenly spaced over the test split as forecasts.json samples them.
    #[arg(long, default_value_t = 8)]
    pub windows: usize,
    /// What is explained: `mean` (the forecast's mean over the horizon, one target per forecast
    /// channel) or `h:c` (horizon step h from 1, channel c by name or 0-based index).
    #[arg(long, default_value = "mean")]
    pub target: TargetSpec,
    /// Reference input: `zero` (every channel at its train mean) or `mean` (each channel at its
    /// mean over the window).
    #[arg(long, value_enum, default_value_t = Baseline::Zero)]
    pub baseline: Baseline,
    /// Integrated gradients' points along the path.
    #[arg(long, default_value_t = Settings::default().steps)]
    pub steps: usize,
    /// Integrated gradients' rule.
    #[arg(long, value_enum, default_value_t = Settings::default().quadrature)]
    pub quadrature: Quadrature,
    /// Occlusion patch: consecutive steps of one channel set to the baseline.
    #[arg(long, default_value_t = Settings::default().occlusion_len)]
    pub occlusion_len: usize,
    /// Random orders per window and target that each method's ranking is compared with.
    #[arg(long, default_value_t = 4)]
    pub random_orders: usize,
    /// Seed of the random orders.
    #[arg(long, default_value_t = 2021)]
    pub seed: u64,
    /// Output folder: `<out>/<run id>/` per run, the comparison in `<out>` (default:
    /// `<RUN_DIR>/explain` for one run; required for several).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub data_dir: DataDirArg,
}

/// `archzoo report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Folder of run directories (each with summary.json and config.json), e.g. a sweep's.
    pub dir: PathBuf,
    /// Where to write leaderboard.md and leaderboard.csv (default: DIR).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Where known datasets live.
#[derive(Debug, Args)]
pub struct DataDirArg {
    /// Folder holding known datasets in the TSLib layout (ETT files in its `ETT-small/`).
    #[arg(long, env = "ARCHZOO_DATA", default_value = "data")]
    pub data_dir: PathBuf,
}

/// `archzoo train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// Results folder; the run goes to `<out>/<run id>/`.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Re-train from scratch even if this exact config already has a completed summary or a
    /// checkpoint (without it, an interrupted run resumes from its last completed epoch).
    #[arg(long)]
    pub force: bool,
    /// Pause at the end of the first epoch that ends this many minutes or more into training,
    /// keeping the run's checkpoint; the same command run again resumes it. Decimals allowed;
    /// 0 pauses after one epoch.
    #[arg(long, value_name = "MINUTES", allow_negative_numbers = true, value_parser = parse_minutes)]
    pub time_limit: Option<std::time::Duration>,
    /// Replay a run from its `config.json` (every other run setting is taken from the file).
    #[arg(long, value_name = "CONFIG_JSON")]
    pub config: Option<PathBuf>,
    /// The run's settings (last: its model options end the help).
    #[command(flatten)]
    pub run: RunRequest,
}

/// `archzoo list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub data_dir: DataDirArg,
}

/// `archzoo data ...`.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Rows, columns, date range, split borders and window counts of a dataset.
    Inspect(InspectArgs),
    /// Download a dataset bundle, verifying every file's SHA-256.
    Download(DownloadArgs),
}

/// `archzoo data inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A CSV path, a known dataset name, or `synthetic`.
    pub file: String,
    #[command(flatten)]
    pub data_dir: DataDirArg,
    #[command(flatten)]
    pub data_args: DataArgs,
    /// Lookback L for the window counts.
    #[arg(long, default_value_t = 96, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    pub seq_len: i64,
    /// Horizon H for the window counts.
    #[arg(long, default_value_t = 96, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    pub pred_len: i64,
}

/// Bundles `data download` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Bundle {
    /// ETTh1, ETTh2, ETTm1, ETTm2 from zhouhaoyi/ETDataset (pinned commit, CC BY-ND 4.0).
    Ett,
    /// Jena weather (Autoformer/TSLib file, pinned mirror, SHA-256 verified).
    Weather,
    /// Exchange rates (Autoformer/TSLib file, pinned mirror, SHA-256 verified).
    #[value(name = "exchange_rate")]
    ExchangeRate,
    /// National ILI (Autoformer/TSLib file, pinned mirror, SHA-256 verified).
    Illness,
    /// Electricity, ~91 MB (pinned mirror; no checksum known: recorded, reported unverified).
    Electricity,
    /// Traffic, ~130 MB (pinned mirror; no checksum known: recorded, reported unverified).
    Traffic,
}

impl Bundle {
    /// The library's bundle.
    pub fn files(self) -> datasets::download::Bundle {
        use datasets::download::Bundle as B;
        match self {
            Self::Ett => B::Ett,
            Self::Weather => B::Weather,
            Self::ExchangeRate => B::ExchangeRate,
            Self::Illness => B::Illness,
            Self::Electricity => B::Electricity,
            Self::Traffic => B::Traffic,
        }
    }
}

/// `archzoo data download`.
#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// What to download.
    #[arg(value_enum)]
    pub bundle: Bundle,
    /// Destination folder, in the TSLib layout (`<dir>/ETT-small/`, `<dir>/weather/`, ...); point
    /// ARCHZOO_DATA at it.
    #[arg(long, default_value = "data")]
    pub dir: PathBuf,
    /// Mirror serving the same layout (default: the bundle's pinned GitHub raw URL).
    #[arg(long)]
    pub base_url: Option<String>,
}

/// The stored test forecast drawn unless `--forecast` says otherwise (a window in the middle).
pub const DEFAULT_FORECAST: usize = 3;

/// `archzoo plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// Folder of run directories (each with summary.json, config.json, forecasts.json), e.g. a
    /// sweep's output; a `scaling.csv` in it is drawn too.
    pub dir: PathBuf,
    /// A `bench scaling` CSV to draw (default: DIR/scaling.csv when present).
    #[arg(long)]
    pub scaling: Option<PathBuf>,
    /// Which stored test forecast to draw (0 = the first test window, 7 = the last).
    #[arg(long, default_value_t = DEFAULT_FORECAST)]
    pub forecast: usize,
    /// Units of the forecast charts: the model's standardised inputs, or the data's own units
    /// (each run's train-split scaling inverted).
    #[arg(long, value_enum, default_value = "standardised")]
    pub scale: ScaleArg,
    #[command(flatten)]
    pub data_dir: DataDirArg,
    /// Where to write the charts (default: DIR).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `archzoo plot --scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScaleArg {
    /// Standardised with the train split's statistics, as the model sees the data.
    Standardised,
    /// The data's units (for runs without `scaler.json`, recomputed from the data under
    /// `--data-dir`).
    Raw,
}

/// `archzoo bench ...`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Time forward + backward + Adam step of one architecture on a random batch.
    TrainStep(Box<TrainStepArgs>),
    /// Time one AdamW training step of a token model on a batch of a probe's examples, the
    /// head's logits at the labelled positions only or at every position.
    ProbeStep(Box<ProbeStepArgs>),
    /// Latency of recurrent `step` decoding (inference) against the position decoded.
    Decode(Box<DecodeArgs>),
    /// Forward + backward of one Mamba, Mamba-2 or Gated DeltaNet block: as it trains (fused
    /// scan, chunked forms), with the per-step reference recurrence, or its projections alone.
    #[command(alias = "mamba-block")]
    Block(BlockArgs),
    /// f32 matmul throughput of a backend, GFLOP/s.
    Matmul(MatmulArgs),
    /// The matrix products of a training step timed alone, at their shapes (with `--gradients`,
    /// each one's two backward products too): the floor under any implementation of the step
    /// on this backend.
    GemmFloor(GemmFloorArgs),
    /// Cost against sequence length at a matched parameter count: training and inference
    /// throughput, their peak heap, and `step` decoding latency, one CSV row per arch and length.
    Scaling(Box<ScalingArgs>),
    /// The measurements named in a suite file (experiments/configs/bench/*.toml), in interleaved
    /// rounds, each case in its own process; writes bench.jsonl and summary.md (medians over
    /// rounds, ranges, per-round ratios)
    Suite(SuiteArgs),
}

/// `archzoo bench suite`.
#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// The suite file (TOML: description, rounds, [[case]] tables, [[ratio]] tables).
    pub file: PathBuf,
    /// Output folder for bench.jsonl and summary.md.
    #[arg(long)]
    pub out: PathBuf,
    /// Check the file and list each case's command line; measure nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rewrite summary.md from the bench.jsonl already in --out (after a change to the
    /// summary's form); measure nothing.
    #[arg(long, conflicts_with = "dry_run")]
    pub summary_only: bool,
}

/// `archzoo bench scaling`.
#[derive(Debug, Args)]
pub struct ScalingArgs {
    /// A config file with these settings as keys (`arch`, `seq_lens`, `params`, `batch`,
    /// `max_mem_mib`, `decode`, `repeats`, `min_seconds`, `backend`, `seed`), e.g.
    /// experiments/configs/efficiency.toml; the flags below then may not be given.
    #[arg(long, conflicts_with_all = ["arch", "params", "max_mem", "no_decode"])]
    pub config: Option<PathBuf>,
    /// Architectures, comma-separated (the Transformer runs causal, with rotary positions).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        required_unless_present = "config"
    )]
    pub arch: Vec<ArchName>,
    /// Sequence lengths, comma-separated, ascending.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "128,256,512,1024,2048,4096,8192"
    )]
    pub seq_lens: Vec<u64>,
    /// Target parameter count of each sequence model (size ladder; default: registry sizes).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub params: Option<u64>,
    /// Sequences per step.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Skip lengths whose predicted training peak heap exceeds this many MiB (extrapolated from
    /// the shorter lengths measured).
    #[arg(long, value_name = "MiB", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_mem: Option<u64>,
    /// Leave out `step` decoding.
    #[arg(long)]
    pub no_decode: bool,
    /// Timed repetitions per measurement (at least; more until --min-seconds, at most 20).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub repeats: u64,
    /// Keep repeating a measurement until this many seconds are timed.
    #[arg(long, default_value_t = 1.0)]
    pub min_seconds: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendName,
    /// Output CSV (rewritten after each architecture); its settings and the measured configs go
    /// beside it, same name with `.json`.
    #[arg(long, default_value = "scaling.csv")]
    pub out: PathBuf,
}

/// `archzoo bench block`.
#[derive(Debug, Args)]
pub struct BlockArgs {
    /// Which block.
    #[arg(long, value_enum, default_value = "mamba")]
    pub arch: experiments::bench::BlockArch,
    /// What to time.
    #[arg(long, value_enum, default_value = "fast")]
    pub path: experiments::bench::BlockPath,
    /// Batch.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Sequence length.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub seq_len: u64,
    /// Model width (d_inner = expand · d_model).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    pub d_model: u64,
    /// SSM state size (Mamba 16 and Mamba-2 64 by default).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub d_state: Option<u64>,
    /// Expansion factor (Mamba, Mamba-2).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub expand: u64,
    /// Gated DeltaNet: heads (default: as many of head_dim as cover d_model).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub heads: Option<u64>,
    /// Mamba-2 and Gated DeltaNet: head width (default 64).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub head_dim: Option<u64>,
    /// Mamba-2 and Gated DeltaNet: chunk length (default 64).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_size: Option<u64>,
    /// Timed repetitions.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: u64,
    /// Untimed warm-up repetitions.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendName,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `archzoo bench decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Architecture (its backbone is stepped; the Transformer needs --causal).
    #[arg(long, value_enum)]
    pub arch: ArchName,
    #[command(flatten)]
    pub model: ModelOptions,
    /// Sequences decoded side by side.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Positions (0-based steps) to report, comma-separated; decoding runs to the largest. Each
    /// is the median of the 9 steps ending there, decoded --repeats times.
    #[arg(long, value_delimiter = ',', default_value = "64,256,1024")]
    pub positions: Vec<u64>,
    /// Times each reported window of 9 steps is decoded: once in the full pass, then again from
    /// the state that entered it.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub repeats: u64,
    /// Channels of the forecasting task the model is built for (ETT has 7).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..))]
    pub channels: u64,
    /// Lookback L of the forecasting task the model is built for.
    #[arg(long, default_value_t = 96, value_parser = clap::value_parser!(u64).range(1..))]
    pub seq_len: u64,
    /// Horizon H of the forecasting task the model is built for.
    #[arg(long, default_value_t = 96, value_parser = clap::value_parser!(u64).range(1..))]
    pub pred_len: u64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendName,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `archzoo bench train-step`.
#[derive(Debug, Args)]
pub struct TrainStepArgs {
    /// Architecture.
    #[arg(long, value_enum)]
    pub arch: ArchName,
    #[command(flatten)]
    pub model: ModelOptions,
    /// Batch size.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Lookback L.
    #[arg(long, default_value_t = 96, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    pub seq_len: i64,
    /// Horizon H.
    #[arg(long, default_value_t = 96, allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    pub pred_len: i64,
    /// Channels (ETT has 7).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u64).range(1..))]
    pub channels: u64,
    /// Timed steps.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: u64,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendName,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `archzoo bench probe-step`.
#[derive(Debug, Args)]
pub struct ProbeStepArgs {
    /// The task, model and recipe (`archzoo probe`'s settings; `--batch` is the batch timed).
    #[command(flatten)]
    pub probe: ProbeRequest,
    /// Where the head's logits are computed.
    #[arg(long, value_enum, default_value = "labelled")]
    pub head: HeadPositions,
    /// Timed steps.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub steps: u64,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `archzoo bench matmul`.
#[derive(Debug, Args)]
pub struct MatmulArgs {
    /// Matrix side n of `[batch, n, n] x [batch, n, n]`.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub n: u64,
    /// Batch of matrices.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Timed repetitions.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub repeats: u64,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendName,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `archzoo bench gemm-floor`.
#[derive(Debug, Args)]
pub struct GemmFloorArgs {
    /// The forward products, `MxKxN` (`[m, k] x [k, n]`) or `BxMxKxN` (a batch of B),
    /// comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub products: Vec<experiments::bench::Product>,
    /// Also time each product's two gradients (`dC Bᵀ` and `Aᵀ dC`), as a training step's
    /// backward computes them.
    #[arg(long)]
    pub gradients: bool,
    /// Timed repetitions of the whole list.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub repeats: u64,
    /// Backend.
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendName,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `--time-limit`: a finite, non-negative number of minutes.
fn parse_minutes(text: &str) -> Result<std::time::Duration, String> {
    let minutes: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of minutes"))?;
    if !minutes.is_finite() || minutes < 0.0 {
        return Err(format!("`{text}`: minutes must be a finite number ≥ 0"));
    }
    Ok(std::time::Duration::from_secs_f64(minutes * 60.0))
}
