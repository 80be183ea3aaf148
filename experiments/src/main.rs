//! The `archzoo` binary: parses the command line, resolves it into validated configs, runs, and
//! is the only place that prints. Errors are printed with their cause chain and exit non-zero.

mod cli;

/// burn-flex allocates a fresh buffer for every op result; glibc returns large blocks to the OS
/// and page-faults them back in on the next step, which measured ~15% of a Transformer training
/// step. mimalloc keeps freed memory for reuse (see [`keep_freed_memory`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (include/mimalloc.h, v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Never hand freed pages back to the OS: a training step frees and reallocates the same sizes,
/// and purging made each step page-fault ~20 000 times (`perf stat`, d_model 512 PatchTST).
#[allow(unsafe_code)]
fn keep_freed_memory() {
    // SAFETY: mi_option_set only stores an integer option; -1 means "never purge".
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use architectures::{ArchName, TaskShape};
use clap::Parser;
use datasets::{DataSource, ForecastData, ForecastSpec, KNOWN_DATASETS};
use experiments::bench::{self, DecodeBench, TrainStepBench};
use experiments::progress::Bars;
use experiments::runner::{self, RunStatus};
use experiments::{BackendName, DataConfig, Preset, RunConfig, TrainConfig};

use crate::cli::{BenchCommand, Cli, Command, DataCommand, InspectArgs, TrainArgs};

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "error: {error}");
            for cause in error.chain().skip(1) {
                let _ = writeln!(stderr, "  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(args) => train(*args),
        Command::List(args) => {
            list(&args.data_dir.data_dir);
            Ok(())
        }
        Command::Data(DataCommand::Inspect(args)) => inspect(&args),
        Command::Data(DataCommand::Download(args)) => {
            let dir = &args.dir;
            let fetched = datasets::download::download_all(
                &args.base_url,
                &datasets::download::ETT_FILES,
                dir,
            )?;
            for f in fetched {
                match f {
                    datasets::download::Fetched::Downloaded { path, bytes } => say(format!(
                        "downloaded {} ({bytes} bytes, sha256 verified)",
                        path.display()
                    )),
                    datasets::download::Fetched::AlreadyPresent { path } => say(format!(
                        "{} already present (sha256 verified)",
                        path.display()
                    )),
                }
            }
            say(format!("set ARCHZOO_DATA={} to use it", dir.display()));
            Ok(())
        }
        Command::Bench(BenchCommand::TrainStep(args)) => bench_train_step(&args),
        Command::Bench(BenchCommand::Decode(args)) => bench_decode(&args),
        Command::Bench(BenchCommand::MambaBlock(args)) => bench_mamba_block(&args),
        Command::Bench(BenchCommand::Matmul(args)) => {
            let report = bench::matmul(
                args.backend,
                args.batch as usize,
                args.n as usize,
                args.repeats as usize,
            )?;
            if args.json {
                say(serde_json::to_string_pretty(&report)?);
            } else {
                say(format!(
                    "matmul {}x[{n}x{n}] on {}: median {:.3} ms (min {:.3}, max {:.3}) = {:.1} GFLOP/s",
                    report.batch,
                    report.backend,
                    report.time.median_ms,
                    report.time.min_ms,
                    report.time.max_ms,
                    report.gflops,
                    n = report.n
                ));
            }
            Ok(())
        }
    }
}

/// `123.4 MB`, or `n/a` where the platform gives no peak RSS.
fn megabytes(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".into(), |b| format!("{:.1} MB", b as f64 / 1e6))
}

/// The only way this binary writes to stdout.
#[allow(clippy::print_stdout)]
fn say(line: impl AsRef<str>) {
    println!("{}", line.as_ref());
}

/// Load a data source, with a hint when a known dataset is missing from the data folder.
fn load_source(
    value: &str,
    data_dir: &Path,
    target: &str,
) -> anyhow::Result<(DataSource, datasets::TimeSeries)> {
    let source = DataSource::parse(value)?;
    if let (DataSource::Known(known), Some(path)) = (&source, source.path(data_dir))
        && !path.exists()
    {
        bail!(
            "dataset `{}` not found at {} (set ARCHZOO_DATA or --data-dir to the folder holding `{}`{})",
            known.name,
            path.display(),
            known.path,
            if known.name.starts_with("ETT") {
                ", or fetch it with `archzoo data download ett --dir data`"
            } else {
                ""
            }
        );
    }
    let series = source.load(data_dir, target)?;
    Ok((source, series))
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let data_dir = &args.data_dir.data_dir;
    let mut bars = Bars::new();
    if let Some(path) = &args.config {
        let config = RunConfig::load(path)?;
        let status = runner::run(&config, data_dir, &args.out, args.force, &mut bars)
            .with_context(|| format!("run {} failed", config.run_id()))?;
        report(&status, &args.out);
        return Ok(());
    }
    let (source, series) = load_source(&args.data, data_dir, &args.data_args.target)?;
    let name = source.name();
    let pred_len = args.pred_len as usize;
    let preset = args.preset.values(&name, pred_len);
    let seq_len = args.seq_len.map_or(preset.seq_len, |l| l as usize);
    if !args.arch.trainable() {
        for (given, flag) in [
            (args.lr.is_some(), "lr"),
            (args.epochs.is_some(), "epochs"),
            (args.batch.is_some(), "batch"),
            (args.patience.is_some(), "patience"),
        ] {
            if given {
                bail!(
                    "--{flag} does not apply to `{}`: it has nothing to train",
                    args.arch
                );
            }
        }
    }
    let lr = args.lr.unwrap_or(preset.lr);
    if !(lr.is_finite() && lr > 0.0) {
        bail!("--lr must be a positive number (got {lr})");
    }
    let spec = ForecastSpec {
        seq_len,
        pred_len,
        features: args.data_args.features.into(),
        split: args.data_args.split.resolve(&name),
    };
    let data = ForecastData::new(&series, spec.clone())?;
    let mut options = args
        .model
        .options()
        .with_defaults(&preset.model, args.arch.accepted_options());
    options.mean_init = Some(preset.dlinear_mean_init);
    let task = TaskShape {
        seq_len,
        pred_len,
        channels: data.input_channels(),
    };
    let arch = args.arch.config(task, &options)?;
    let config = RunConfig {
        arch,
        data: DataConfig {
            data: args.data.clone(),
            target: args.data_args.target.clone(),
            features: spec.features,
            split: spec.split,
            seq_len,
            pred_len,
        },
        train: TrainConfig {
            preset: args.preset,
            lr,
            schedule: preset.schedule,
            batch_size: args.batch.map_or(preset.batch_size, |b| b as usize),
            eval_batch_size: 256,
            epochs: args.epochs.map_or(preset.epochs, |e| e as usize),
            patience: args.patience.map_or(preset.patience, |p| p as usize),
            adam_epsilon: 1e-8,
        },
        seed: args.seed,
        backend: args.backend,
    };
    let status = runner::run_prepared(&config, &data, &args.out, args.force, &mut bars, started)
        .with_context(|| format!("run {} failed", config.run_id()))?;
    report(&status, &args.out);
    Ok(())
}

fn report(status: &RunStatus, out: &Path) {
    let (summary, note) = match status {
        RunStatus::Completed(s) => (s, ""),
        RunStatus::Skipped(s) => (s, " (already completed; --force to re-train)"),
    };
    say(format!(
        "{} {} L={} H={} {} {} seed {}: test MSE {:.4} MAE {:.4} ({} windows) | val MSE {:.4} | {} params, {} epochs (best {}), {:.1} s -> {}{note}",
        summary.arch,
        summary.dataset,
        summary.seq_len,
        summary.pred_len,
        summary.features,
        summary.preset,
        summary.seed,
        summary.test_mse,
        summary.test_mae,
        summary.n_test_windows,
        summary.val_mse,
        summary.params,
        summary.epochs_run,
        summary.best_epoch,
        summary.wall_seconds,
        out.join(&summary.run_id).display(),
    ));
}

fn list(data_dir: &Path) {
    say("Architectures (--arch):");
    for name in ArchName::ALL {
        let options = name.accepted_flags();
        say(format!(
            "  {:<9} {}  [{options}]",
            name.as_str(),
            name.about()
        ));
    }
    say(format!(
        "\nDatasets (--data; known names resolve under {}):",
        data_dir.display()
    ));
    say("  synthetic  seeded multivariate series, 10000 hourly rows, 7 channels; no download");
    for known in KNOWN_DATASETS {
        let present = if data_dir.join(known.path).exists() {
            "present"
        } else {
            "missing"
        };
        say(format!("  {:<13} [{present}] {}", known.name, known.about));
    }
    say("  <path.csv>  any TSLib-format CSV (`date` first, numeric columns, target --target)");
    say("\nPresets (--preset):");
    for preset in [Preset::Tslib, Preset::Ltsf, Preset::Patchtst] {
        say(format!("  {:<8} {}", preset.as_str(), preset.about()));
    }
    say("\nBackends (--backend):");
    for (backend, about) in [
        (BackendName::Flex, "pure-Rust CPU (default)"),
        (BackendName::Ndarray, "CPU, deprecated upstream"),
        (
            BackendName::Wgpu,
            if cfg!(feature = "wgpu") {
                "GPU via WebGPU"
            } else {
                "GPU via WebGPU (not in this build: --features wgpu)"
            },
        ),
    ] {
        say(format!("  {:<8} {about}", backend.as_str()));
    }
}

fn inspect(args: &InspectArgs) -> anyhow::Result<()> {
    let data_dir = &args.data_dir.data_dir;
    let (source, series) = load_source(&args.file, data_dir, &args.data_args.target)?;
    let name = source.name();
    match source.path(data_dir) {
        Some(path) => say(format!(
            "file     {} (sha256 {})",
            path.display(),
            series.sha256.as_deref().unwrap_or("-")
        )),
        None => say(format!("source   {name} (generated)")),
    }
    say(format!("rows     {}", series.rows()));
    say(format!(
        "columns  {} ({}; target `{}` last)",
        series.channels(),
        series.columns.join(", "),
        args.data_args.target
    ));
    let (first, last) = (series.dates[0], series.dates[series.rows() - 1]);
    let steps: Vec<i64> = series
        .dates
        .windows(2)
        .map(|w| (w[1] - w[0]).num_seconds())
        .collect();
    let step = steps.first().copied().unwrap_or(0);
    let regular = steps.iter().all(|s| *s == step);
    say(format!(
        "dates    {first} .. {last}, step {}{}",
        human_step(step),
        if regular {
            " (constant)"
        } else {
            " (irregular)"
        }
    ));
    let spec = ForecastSpec {
        seq_len: args.seq_len as usize,
        pred_len: args.pred_len as usize,
        features: args.data_args.features.into(),
        split: args.data_args.split.resolve(&name),
    };
    say(format!(
        "split    {} (L={}, H={}, features {})",
        spec.split, spec.seq_len, spec.pred_len, spec.features
    ));
    let data = ForecastData::new(&series, spec)?;
    for split in &data.splits {
        say(format!(
            "  {:<5} rows [{}, {})  {} windows",
            split.name, split.rows.start, split.rows.end, split.windows
        ));
    }
    Ok(())
}

fn human_step(seconds: i64) -> String {
    match seconds {
        s if s % 86_400 == 0 && s > 0 => format!("{} d", s / 86_400),
        s if s % 3600 == 0 && s > 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

fn bench_mamba_block(args: &cli::MambaBlockArgs) -> anyhow::Result<()> {
    let config = architectures::MambaConfig::new(args.d_model as usize)
        .with_n_layers(1)
        .with_d_state(args.d_state as usize)
        .with_expand(args.expand as usize);
    let report = bench::mamba_block(
        args.path,
        &config,
        args.batch as usize,
        args.seq_len as usize,
        (args.steps as usize, args.warmup as usize),
        args.backend,
    )?;
    if args.json {
        say(serde_json::to_string_pretty(&report)?);
    } else {
        say(format!(
            "mamba block ({:?}) fwd+bwd on {} (batch {}, L={}, d_model {}, d_inner {}, d_state {}): median {:.3} ms [p10 {:.3}, p90 {:.3}] over {} steps; peak RSS {}",
            report.path,
            args.backend,
            report.batch,
            report.seq_len,
            config.d_model,
            config.d_inner(),
            config.d_state,
            report.time.median_ms,
            report.time.p10_ms,
            report.time.p90_ms,
            report.time.samples,
            megabytes(report.peak_rss_bytes),
        ));
    }
    Ok(())
}

fn bench_decode(args: &cli::DecodeArgs) -> anyhow::Result<()> {
    let task = TaskShape {
        seq_len: args.seq_len as usize,
        pred_len: args.pred_len as usize,
        channels: args.channels as usize,
    };
    let bench_config = DecodeBench {
        arch: args.arch.config(task, &args.model.options())?,
        batch: args.batch as usize,
        positions: args.positions.iter().map(|&p| p as usize).collect(),
        backend: args.backend,
        seed: args.seed,
    };
    let report = bench::decode(&bench_config, task.channels)?;
    if args.json {
        say(serde_json::to_string_pretty(&report)?);
    } else {
        say(format!(
            "{} step decoding on {} (batch {}, width {}, {} params), {:.1} ms for {} steps:",
            report.arch,
            report.backend,
            report.batch,
            report.width,
            report.params,
            report.total_ms,
            args.positions.iter().max().map_or(0, |m| m + 1),
        ));
        for p in &report.positions {
            say(format!(
                "  position {:>6}: median {:.3} ms [p10 {:.3}, p90 {:.3}], state {} floats",
                p.position, p.step.median_ms, p.step.p10_ms, p.step.p90_ms, p.state_floats
            ));
        }
    }
    Ok(())
}

fn bench_train_step(args: &cli::TrainStepArgs) -> anyhow::Result<()> {
    let task = TaskShape {
        seq_len: args.seq_len as usize,
        pred_len: args.pred_len as usize,
        channels: args.channels as usize,
    };
    let arch = args.arch.config(task, &args.model.options())?;
    let bench_config = TrainStepBench {
        arch,
        batch: args.batch as usize,
        steps: args.steps as usize,
        warmup: args.warmup as usize,
        backend: args.backend,
        seed: args.seed,
    };
    let report = bench::train_step(&bench_config, task.seq_len, task.pred_len, task.channels)?;
    if args.json {
        say(serde_json::to_string_pretty(&report)?);
    } else {
        let t = report.step;
        say(format!(
            "{} train step on {} (batch {}, L={}, H={}, c={}, {} params): median {:.3} ms [p10 {:.3}, p90 {:.3}, min {:.3}, max {:.3}] over {} steps; peak RSS {}",
            report.arch,
            report.backend,
            report.batch,
            report.seq_len,
            report.pred_len,
            report.channels,
            report.params,
            t.median_ms,
            t.p10_ms,
            t.p90_ms,
            t.min_ms,
            t.max_ms,
            t.samples,
            megabytes(report.peak_rss_bytes),
        ));
    }
    Ok(())
}
