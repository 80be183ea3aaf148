//! The `archzoo` binary: parses the command line, resolves it into validated configs, runs, and
//! is the only place that prints. Errors are printed with their cause chain and exit non-zero.

mod cli;

/// burn-flex allocates a fresh buffer for every op result; glibc returns large blocks to the OS
/// and page-faults them back in on the next step, which measured ~15% of a Transformer training
/// step. mimalloc keeps freed memory for reuse (see [`keep_freed_memory`]). The counting wrapper
/// gives the benchmarks the peak heap of one operation (two relaxed atomics per allocation).
#[global_allocator]
static ALLOCATOR: experiments::memory::CountingAllocator<mimalloc::MiMalloc> =
    experiments::memory::CountingAllocator(mimalloc::MiMalloc);

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
use architectures::{ArchName, ModelOption, TaskShape};
use clap::Parser;
use datasets::{ForecastData, ForecastSpec, KNOWN_DATASETS};
use experiments::bench::{self, DecodeBench, ProbeStepBench, TrainStepBench};
use experiments::probe::ProbeRequest;
use experiments::probe_sweep::{self, ProbeOutcome, ProbePlan, ProbeState};
use experiments::probe_train::ProbeTrained;
use experiments::progress::Bars;
use experiments::runner::{self, RunOptions, RunStatus};
use experiments::scaling::{self, ScalingSpec};
use experiments::suite::{self, CaseCommand, SuiteFile};
use experiments::sweep::{self, Outcome, Plan, RunState, Shard, SweepFile, SweepOptions};
use experiments::{BackendName, Preset, RunConfig};
use experiments::{files, plot, probe_report, probe_train, report};

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
        Command::Probe(args) => probe(&args),
        Command::Sweep(args) => sweep(&args),
        Command::Predict(args) => predict(&args),
        Command::Explain(args) => explain(&args),
        Command::Report(args) => report_dir(&args),
        Command::Plot(args) => plot_dir(&args),
        Command::List(args) => {
            list(&args.data_dir.data_dir);
            Ok(())
        }
        Command::Data(DataCommand::Inspect(args)) => inspect(&args),
        Command::Data(DataCommand::Download(args)) => {
            let dir = &args.dir;
            let bundle = args.bundle.files();
            let base_url = args.base_url.as_deref().unwrap_or(bundle.base_url());
            let fetched = datasets::download::download_all(base_url, bundle.files(), dir)?;
            for f in fetched {
                match f {
                    datasets::download::Fetched::Downloaded {
                        path,
                        bytes,
                        verified: true,
                        ..
                    } => say(format!(
                        "downloaded {} ({bytes} bytes, sha256 verified)",
                        path.display()
                    )),
                    datasets::download::Fetched::Downloaded {
                        path,
                        bytes,
                        sha256,
                        verified: false,
                    } => say(format!(
                        "downloaded {} ({bytes} bytes) UNVERIFIED: no checksum is known for it; sha256 {sha256} recorded in {}",
                        path.display(),
                        datasets::download::checksum_record(&path).display()
                    )),
                    datasets::download::Fetched::AlreadyPresent {
                        path,
                        verified: true,
                    } => say(format!(
                        "{} already present (sha256 verified)",
                        path.display()
                    )),
                    datasets::download::Fetched::AlreadyPresent {
                        path,
                        verified: false,
                    } => say(format!(
                        "{} already present (unverified: no checksum is known for it)",
                        path.display()
                    )),
                }
            }
            say(format!("set ARCHZOO_DATA={} to use it", dir.display()));
            Ok(())
        }
        Command::Bench(BenchCommand::TrainStep(args)) => bench_train_step(&args),
        Command::Bench(BenchCommand::ProbeStep(args)) => bench_probe_step(&args),
        Command::Bench(BenchCommand::Decode(args)) => bench_decode(&args),
        Command::Bench(BenchCommand::Block(args)) => bench_block(&args),
        Command::Bench(BenchCommand::Scaling(args)) => bench_scaling(&args),
        Command::Bench(BenchCommand::Suite(args)) => bench_suite(&args),
        Command::Bench(BenchCommand::GemmFloor(args)) => {
            let report = bench::gemm_floor(
                args.backend,
                &args.products,
                args.gradients,
                args.repeats as usize,
            )?;
            if args.json {
                say(serde_json::to_string_pretty(&report)?);
            } else {
                for p in &report.products {
                    say(format!(
                        "{:>16} {:<14} median {:>9.3} ms  {:>6.1} GFLOP/s",
                        p.product.to_string(),
                        format!("{:?}", p.role),
                        p.time.median_ms,
                        p.gflops
                    ));
                }
                say(format!(
                    "{} products on {}: median {:.3} ms per pass (min {:.3}, max {:.3}), {:.3} GFLOP, {:.1} GFLOP/s",
                    report.products.len(),
                    report.backend,
                    report.time.median_ms,
                    report.time.min_ms,
                    report.time.max_ms,
                    report.flops / 1e9,
                    report.gflops
                ));
            }
            Ok(())
        }
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

/// How one run of a sweep ended in this invocation (its closing tally).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ended {
    Trained,
    Skipped,
    Failed,
    Paused,
}

/// A sweep's closing lines: how its `total` runs in this shard ended (those without an outcome
/// came after a pause, or were not started because the time limit had passed), and the ledger.
/// Returns the runs that failed.
fn say_tally(ended: impl Iterator<Item = Ended>, total: usize, out: &Path) -> usize {
    let ended: Vec<Ended> = ended.collect();
    let count = |kind: Ended| ended.iter().filter(|&&e| e == kind).count();
    let paused = count(Ended::Paused);
    let not_reached = total - ended.len();
    say(format!(
        "{} trained, {} skipped, {} failed; ledger {}",
        count(Ended::Trained),
        count(Ended::Skipped),
        count(Ended::Failed),
        out.join("ledger.csv").display()
    ));
    if paused + not_reached > 0 {
        say(format!(
            "time limit: {paused} run paused, {not_reached} not started; the same command resumes the sweep"
        ));
    }
    count(Ended::Failed)
}

/// The only way this binary writes to stdout. A closed stdout (`archzoo ... | head`) is not an
/// error of the command: the work goes on and its results are still written to disk (`println!`
/// would panic on the broken pipe).
fn say(line: impl AsRef<str>) {
    let _ = writeln!(std::io::stdout().lock(), "{}", line.as_ref());
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let data_dir = &args.data_dir.data_dir;
    let mut bars = Bars::new();
    let options = RunOptions {
        force: args.force,
        time_limit: args.time_limit,
    };
    if let Some(path) = &args.config {
        let config = RunConfig::load(path)?;
        let status = runner::run(&config, data_dir, &args.out, options, &mut bars)
            .with_context(|| format!("run {} failed", config.run_id()))?;
        report(&status, &args.out);
        return Ok(());
    }
    let request = &args.run;
    let (source, series) = runner::load_series(&request.data, data_dir, &request.data_args.target)?;
    let (config, data) = request.resolve(&source.name(), &series)?;
    let status = runner::run_prepared(&config, &data, &args.out, options, &mut bars, started)
        .with_context(|| format!("run {} failed", config.run_id()))?;
    report(&status, &args.out);
    Ok(())
}

fn probe(args: &cli::ProbeArgs) -> anyhow::Result<()> {
    let config = args.run.resolve()?;
    let run_id = config.run_id();
    let trained = probe_train::run_probe(
        &config,
        &args.out,
        RunOptions {
            force: args.force,
            time_limit: args.time_limit,
        },
        &mut Bars::new(),
    )
    .with_context(|| format!("run {run_id} failed"))?;
    let summary = match trained {
        ProbeTrained::Finished(summary) => summary,
        ProbeTrained::Paused { epoch, epochs } => {
            say(format!(
                "{run_id}: paused after epoch {epoch} of {epochs} (time limit); the same command resumes it from {}",
                args.out.join(&run_id).join("checkpoint").display()
            ));
            return Ok(());
        }
    };
    let lengths: Vec<String> = summary
        .lengths
        .iter()
        .map(|l| format!("L {} {:.4}", l.len, l.accuracy))
        .collect();
    say(format!(
        "{run_id}: accuracy {:.4} (epoch {} of {}{}), {} backbone parameters, {} state floats, {:.0} tokens/s, {:.1} s",
        summary.accuracy,
        summary.best_epoch,
        summary.epochs_run,
        if summary.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        summary.backbone_params,
        summary.state_floats,
        summary.train_tokens_per_second,
        summary.train_seconds
    ));
    if lengths.len() > 1 {
        say(format!("  by length: {}", lengths.join(", ")));
    }
    say(format!("  wrote {}", args.out.join(&run_id).display()));
    Ok(())
}

fn sweep(args: &cli::SweepArgs) -> anyhow::Result<()> {
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args.file.file_stem().unwrap_or_default();
        Path::new("runs").join(stem)
    });
    let shard = match &args.shard {
        Some(text) => Shard::parse(text)?,
        None => Shard::ALL,
    };
    if sweep::is_probe_sweep(&args.file)? {
        return probe_sweep(args, &out, shard);
    }
    let file: SweepFile = SweepFile::load(&args.file)?;
    let plan = Plan::new(&file, &args.data_dir.data_dir)?;
    let mine = plan.shard(shard);
    say(format!(
        "sweep {}: {} runs{}, {} in shard {}/{} -> {}",
        args.file.display(),
        plan.runs.len(),
        file.description
            .as_ref()
            .map_or(String::new(), |d| format!(" ({d})")),
        mine.len(),
        shard.index,
        shard.count,
        out.display()
    ));
    let renamed = sweep::renamed_runs(&plan, &out)?;
    if args.dry_run {
        for (index, run) in plan.runs.iter().enumerate() {
            let stored = renamed.iter().find(|(_, id)| *id == run.run_id);
            let state = match sweep::state(&out, run)? {
                RunState::Pending if let Some((stored, _)) = stored => {
                    format!("done, stored as {stored} (renamed when the sweep runs)")
                }
                RunState::Done(s) => format!("done (test MSE {:.4})", s.test_mse),
                RunState::Failed(reason) => format!("failed: {reason}"),
                RunState::Paused { epochs_done } => {
                    format!("paused after epoch {epochs_done} (resumes from its checkpoint)")
                }
                RunState::Pending => "pending".into(),
            };
            let here = if shard.owns(&run.run_id) { "*" } else { " " };
            say(format!("{here} {index:>4}  {}  {state}", run.run_id));
        }
        say("(* = in this shard)");
        return Ok(());
    }
    sweep::adopt_renamed_runs(&out, &renamed)?;
    for (stored, id) in &renamed {
        say(format!(
            "{stored} -> {id}: a completed run stored under an earlier id"
        ));
    }
    if !args.reuse.is_empty() {
        std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
        let reusable = sweep::reusable_runs(&plan, &out, &args.reuse)?;
        for (from, run) in &reusable {
            sweep::reuse_run(from, &out, &run.run_id)?;
        }
        say(format!(
            "{} completed runs of this sweep copied from {}",
            reusable.len(),
            args.reuse
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let options = SweepOptions {
        shard,
        retry_failed: args.retry_failed,
        time_limit: args.time_limit,
    };
    let total = mine.len();
    let mut position = 0;
    let mut bars = Bars::new();
    let outcomes = sweep::run(&plan, options, &out, &mut bars, |run, outcome| {
        position += 1;
        let line = match outcome {
            Outcome::Completed(s) => format!(
                "done     test MSE {:.4} MAE {:.4}, {} epochs, {:.1} s",
                s.test_mse, s.test_mae, s.epochs_run, s.wall_seconds
            ),
            Outcome::Skipped(RunState::Done(s)) => {
                format!("skipped  already done (test MSE {:.4})", s.test_mse)
            }
            Outcome::Skipped(RunState::Failed(reason)) => {
                format!("skipped  failed before ({reason}; --retry-failed to rerun)")
            }
            Outcome::Skipped(RunState::Pending | RunState::Paused { .. }) => "skipped".into(),
            Outcome::Failed(reason) => format!("FAILED   {reason}"),
            Outcome::Paused { epoch, epochs } => {
                format!("paused   after epoch {epoch}/{epochs} (time limit)")
            }
        };
        say(format!("[{position}/{total}] {}  {line}", run.run_id));
    })?;
    let ended = outcomes.iter().map(|o| match o {
        Outcome::Completed(_) => Ended::Trained,
        Outcome::Failed(_) | Outcome::Skipped(RunState::Failed(_)) => Ended::Failed,
        Outcome::Paused { .. } => Ended::Paused,
        Outcome::Skipped(_) => Ended::Skipped,
    });
    let failed = say_tally(ended, total, &out);
    if !args.no_report {
        // Read the stored runs once for both the leaderboard and the charts.
        let runs = report::load_runs(&out)?;
        if !runs.is_empty() {
            write_leaderboard(&runs, &out, &out)?;
            write_charts(
                &runs,
                &out,
                &[],
                cli::DEFAULT_FORECAST,
                &plot::ForecastScale::Standardised,
                &out,
            )?;
        }
    }
    if failed > 0 {
        bail!("{failed} of {total} runs failed (reasons in the ledger and each run's failed.json)");
    }
    Ok(())
}

/// `archzoo sweep` of a file that sets `task`: token-probe runs.
fn probe_sweep(args: &cli::SweepArgs, out: &Path, shard: Shard) -> anyhow::Result<()> {
    let file: SweepFile<ProbeRequest> = SweepFile::load(&args.file)?;
    let plan = ProbePlan::new(&file)?;
    let mine = plan.shard(shard);
    say(format!(
        "probe sweep {}: {} runs{}, {} in shard {}/{} -> {}",
        args.file.display(),
        plan.runs.len(),
        file.description
            .as_ref()
            .map_or(String::new(), |d| format!(" ({d})")),
        mine.len(),
        shard.index,
        shard.count,
        out.display()
    ));
    if args.dry_run {
        for (index, run) in plan.runs.iter().enumerate() {
            let state = match probe_sweep::state(out, run)? {
                ProbeState::Done(s) => format!("done (accuracy {:.4})", s.accuracy),
                ProbeState::Failed(reason) => format!("failed: {reason}"),
                ProbeState::Paused { epochs_done } => {
                    format!("paused after epoch {epochs_done} (resumes from its checkpoint)")
                }
                ProbeState::Pending => "pending".into(),
            };
            let here = if shard.owns(&run.run_id) { "*" } else { " " };
            say(format!("{here} {index:>4}  {}  {state}", run.run_id));
        }
        say("(* = in this shard)");
        return Ok(());
    }
    let options = SweepOptions {
        shard,
        retry_failed: args.retry_failed,
        time_limit: args.time_limit,
    };
    let total = mine.len();
    let mut position = 0;
    let outcomes = probe_sweep::run(&plan, options, out, &mut Bars::new(), |run, outcome| {
        position += 1;
        let line = match outcome {
            ProbeOutcome::Completed(s) => format!(
                "done     accuracy {:.4}, {} epochs, {:.1} s",
                s.accuracy, s.epochs_run, s.train_seconds
            ),
            ProbeOutcome::Skipped(ProbeState::Done(s)) => {
                format!("skipped  already done (accuracy {:.4})", s.accuracy)
            }
            ProbeOutcome::Skipped(ProbeState::Failed(reason)) => {
                format!("skipped  failed before ({reason}; --retry-failed to rerun)")
            }
            ProbeOutcome::Skipped(ProbeState::Pending | ProbeState::Paused { .. }) => {
                "skipped".into()
            }
            ProbeOutcome::Failed(reason) => format!("FAILED   {reason}"),
            ProbeOutcome::Paused { epoch, epochs } => {
                format!("paused   after epoch {epoch} of {epochs} (time limit; checkpoint kept)")
            }
        };
        say(format!("[{position}/{total}] {}  {line}", run.run_id));
    })?;
    let ended = outcomes.iter().map(|o| match o {
        ProbeOutcome::Completed(_) => Ended::Trained,
        ProbeOutcome::Failed(_) | ProbeOutcome::Skipped(ProbeState::Failed(_)) => Ended::Failed,
        ProbeOutcome::Paused { .. } => Ended::Paused,
        ProbeOutcome::Skipped(_) => Ended::Skipped,
    });
    let failed = say_tally(ended, total, out);
    if !args.no_report {
        let runs = probe_report::load_probes(out)?;
        if !runs.is_empty() {
            let board = probe_report::probe_board(&runs);
            write_probe_report(&board, runs.len(), out, out)?;
            write_probe_charts(&board, out)?;
        }
    }
    if failed > 0 {
        bail!("{failed} of {total} runs failed (reasons in the ledger and each run's failed.json)");
    }
    Ok(())
}

/// The probe leaderboard `board` (of `runs` runs read from `dir`) into `out`.
fn write_probe_report(
    board: &probe_report::ProbeBoard,
    runs: usize,
    dir: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let markdown = probe_report::markdown(board, dir);
    files::write_text_atomic(&out.join("leaderboard.md"), &markdown)?;
    files::write_text_atomic(&out.join("leaderboard.csv"), &probe_report::csv(board))?;
    say(markdown.trim_end());
    say(format!(
        "\n{runs} runs in {} rows over {} task settings -> {}, {}",
        board.values().map(Vec::len).sum::<usize>(),
        board.len(),
        out.join("leaderboard.md").display(),
        out.join("leaderboard.csv").display()
    ));
    Ok(())
}

/// Every probe chart of `board`, as SVG and PNG into `out`.
fn write_probe_charts(board: &probe_report::ProbeBoard, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for chart in probe_report::probe_charts(board) {
        for path in plot::render(&chart, out)? {
            say(format!("wrote {}", path.display()));
        }
    }
    Ok(())
}

/// The forecasting runs and the probe runs stored under `dir`; a folder holds one kind.
fn load_stored(
    dir: &Path,
) -> anyhow::Result<(Vec<report::StoredRun>, Vec<probe_report::StoredProbe>)> {
    let runs = report::load_runs(dir)?;
    let probes = probe_report::load_probes(dir)?;
    if !runs.is_empty() && !probes.is_empty() {
        bail!(
            "{} holds both forecasting runs ({}) and token-probe runs ({}): keep them in separate folders, one leaderboard each",
            dir.display(),
            runs.len(),
            probes.len()
        );
    }
    Ok((runs, probes))
}

fn predict(args: &cli::PredictArgs) -> anyhow::Result<()> {
    let prediction = experiments::predict::predict(&args.run_dir, &args.data)?;
    match &args.out {
        Some(path) => {
            experiments::files::write_text_atomic(path, &prediction.to_csv())?;
            say(format!(
                "{} steps from {} to {} -> {}",
                prediction.dates.len(),
                prediction.dates[0],
                prediction.dates[prediction.dates.len() - 1],
                path.display()
            ));
        }
        None => say(prediction.to_csv().trim_end()),
    }
    Ok(())
}

fn explain(args: &cli::ExplainArgs) -> anyhow::Result<()> {
    use experiments::explain::Settings;
    use experiments::explain_report::{self, ExplainRequest};
    let out = match (&args.out, args.run_dirs.as_slice()) {
        (Some(out), _) => out.clone(),
        (None, [run]) => run.join("explain"),
        (None, _) => bail!(
            "{} runs: name the folder for their explanations with --out",
            args.run_dirs.len()
        ),
    };
    let request = ExplainRequest {
        methods: args.methods.clone(),
        windows: args.windows,
        target: args.target.clone(),
        baseline: args.baseline,
        settings: Settings {
            steps: args.steps,
            quadrature: args.quadrature,
            occlusion_len: args.occlusion_len,
        },
        random_orders: args.random_orders,
        seed: args.seed,
    };
    for run in &args.run_dirs {
        let started = Instant::now();
        let explained = explain_report::explain_run(run, &args.data_dir.data_dir, &request)?;
        explain_report::write_explanation(&out, &explained)?;
        let file = &explained.file;
        say(format!(
            "{} ({}), {} windows x {} targets, {:.1} s -> {}",
            file.run_id,
            file.arch,
            file.windows.len(),
            file.targets.len(),
            started.elapsed().as_secs_f64(),
            out.join(&file.run_id).display()
        ));
        for result in &file.methods {
            let completeness = result.completeness.map_or_else(String::new, |c| {
                format!(
                    ", completeness error {:.2e} of the change",
                    c.max_relative_error
                )
            });
            say(format!(
                "  {:<22} deletion AUC {:.4} (random {:.4}), insertion AUC {:.4} (random {:.4}): {}{completeness}; {:.3} s and {:.1} passes per window",
                result.method.label(),
                result.faithfulness.deletion_auc,
                file.random.deletion_auc,
                result.faithfulness.insertion_auc,
                file.random.insertion_auc,
                result.verdict,
                result.seconds_per_window,
                result.passes_per_window
            ));
        }
    }
    let files = explain_report::load_explanations(&out)?;
    for path in explain_report::write_comparison(&out, &files)? {
        say(format!("wrote {}", path.display()));
    }
    Ok(())
}

fn report_dir(args: &cli::ReportArgs) -> anyhow::Result<()> {
    let (runs, probes) = load_stored(&args.dir)?;
    if !probes.is_empty() {
        let board = probe_report::probe_board(&probes);
        let out = args.out.as_ref().unwrap_or(&args.dir);
        return write_probe_report(&board, probes.len(), &args.dir, out);
    }
    if runs.is_empty() {
        bail!(
            "no completed runs under {} (each run directory needs a summary.json)",
            args.dir.display()
        );
    }
    write_leaderboard(&runs, &args.dir, args.out.as_ref().unwrap_or(&args.dir))
}

/// `leaderboard.md` and `.csv` of `runs` (read from `dir`) into `out`, and the table on stdout.
fn write_leaderboard(runs: &[report::StoredRun], dir: &Path, out: &Path) -> anyhow::Result<()> {
    let board = report::leaderboard(runs);
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let markdown = report::markdown(&board, dir);
    files::write_text_atomic(&out.join("leaderboard.md"), &markdown)?;
    files::write_text_atomic(&out.join("leaderboard.csv"), &report::csv(&board))?;
    say(markdown.trim_end());
    say(format!(
        "\n{} runs in {} rows over {} settings -> {}, {}",
        runs.len(),
        board.values().map(Vec::len).sum::<usize>(),
        board.len(),
        out.join("leaderboard.md").display(),
        out.join("leaderboard.csv").display()
    ));
    if let Some(table) = report::paper_table(&board, runs, dir) {
        files::write_text_atomic(&out.join("table.md"), &table)?;
        say(format!(
            "the papers' layout (datasets x horizons) -> {}",
            out.join("table.md").display()
        ));
    }
    Ok(())
}

fn report(status: &RunStatus, out: &Path) {
    let (summary, note) = match status {
        RunStatus::Completed(s) if s.resumed_after_epochs.is_empty() => (s, String::new()),
        RunStatus::Completed(s) => (
            s,
            format!(
                " (resumed after epoch {})",
                s.resumed_after_epochs
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        RunStatus::Skipped(s) => (s, " (already completed; --force to re-train)".into()),
        RunStatus::Paused {
            run_id,
            epoch,
            epochs,
        } => {
            say(format!(
                "{run_id}: paused after epoch {epoch}/{epochs} (time limit); the same command resumes it -> {}",
                out.join(run_id).display()
            ));
            return;
        }
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
    let width = ArchName::ALL
        .iter()
        .map(|n| n.as_str().len())
        .max()
        .unwrap_or(0);
    for name in ArchName::ALL {
        let options = name.accepted_flags();
        say(format!(
            "  {:<width$} {}  [{options}]",
            name.as_str(),
            name.about()
        ));
    }
    say(
        "\nModel options (each architecture takes the ones listed above; sweep files use the names with underscores):",
    );
    for option in ModelOption::ALL {
        say(format!("  {:<13} {}", option.flag(), option.help()));
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
    let (source, series) = runner::load_series(&args.file, data_dir, &args.data_args.target)?;
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
    let replaced = series
        .columns
        .iter()
        .filter(|c| c.contains('\u{FFFD}'))
        .count();
    if replaced > 0 {
        say(format!(
            "         {replaced} column name{} hold U+FFFD replacement characters (bytes that were \
             not UTF-8 where the file was made); kept as given",
            if replaced == 1 { "" } else { "s" }
        ));
    }
    let (first, last) = (series.dates[0], series.dates[series.rows() - 1]);
    let dates = series.date_irregularities();
    say(format!(
        "dates    {first} .. {last}, step {}{}",
        human_step(dates.step_seconds),
        if dates.is_regular() {
            " (constant)"
        } else {
            " (the most common; irregular, below)"
        }
    ));
    // Reported, not repaired: the windows are cut by row, as the papers cut them.
    let at = |row: usize| format!("{} (row {row}, line {})", series.dates[row], row + 2);
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    // One line per kind: the count, then the first five places.
    let list = |noun: &str, after: &str, places: Vec<String>| {
        if places.is_empty() {
            return;
        }
        let more = places.len().saturating_sub(5);
        say(format!(
            "         {} {noun}{}{after}: {}{}",
            places.len(),
            plural(places.len()),
            places[..places.len() - more].join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        ));
    };
    list(
        "duplicated timestamp",
        "",
        dates.duplicates.iter().map(|&r| at(r)).collect(),
    );
    list(
        "gap",
        "",
        dates
            .gaps
            .iter()
            .map(|&(r, missing)| {
                format!(
                    "{missing} step{} missing before {}",
                    plural(missing as usize),
                    at(r)
                )
            })
            .collect(),
    );
    list(
        "step",
        " backwards or off the grid",
        dates.other.iter().map(|&r| at(r)).collect(),
    );
    if !dates.is_regular() {
        say("         kept as given: windows are cut by row, as the papers do");
    }
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

fn bench_block(args: &cli::BlockArgs) -> anyhow::Result<()> {
    use experiments::bench::{BlockArch, BlockConfig};
    let width = |v: Option<u64>, default: usize| v.map_or(default, |v| v as usize);
    let config = match args.arch {
        BlockArch::Mamba => {
            if args.head_dim.is_some() || args.chunk_size.is_some() || args.heads.is_some() {
                anyhow::bail!("--head-dim, --chunk-size and --heads are not Mamba's");
            }
            let base = architectures::MambaConfig::new();
            BlockConfig::Mamba(
                base.clone()
                    .with_d_model(args.d_model as usize)
                    .with_n_layers(1)
                    .with_d_state(width(args.d_state, base.d_state))
                    .with_expand(args.expand as usize),
            )
        }
        BlockArch::GatedDeltanet => {
            if args.d_state.is_some() {
                anyhow::bail!(
                    "--d-state is not Gated DeltaNet's (its state is heads x head_dim x 2 head_dim)"
                );
            }
            let base = architectures::GatedDeltaNetConfig::new();
            let head_dim = width(args.head_dim, base.head_dim);
            BlockConfig::GatedDeltanet(
                base.clone()
                    .with_d_model(args.d_model as usize)
                    .with_n_layers(1)
                    .with_head_dim(head_dim)
                    .with_n_heads(width(
                        args.heads,
                        (args.d_model as usize).div_ceil(head_dim),
                    ))
                    .with_chunk_size(width(args.chunk_size, base.chunk_size)),
            )
        }
        BlockArch::Mamba2 => {
            if args.heads.is_some() {
                anyhow::bail!(
                    "--heads is Gated DeltaNet's (Mamba-2's heads are d_inner / head_dim)"
                );
            }
            let base = architectures::Mamba2Config::new();
            BlockConfig::Mamba2(
                base.clone()
                    .with_d_model(args.d_model as usize)
                    .with_n_layers(1)
                    .with_d_state(width(args.d_state, base.d_state))
                    .with_expand(args.expand as usize)
                    .with_head_dim(width(args.head_dim, base.head_dim))
                    .with_chunk_size(width(args.chunk_size, base.chunk_size)),
            )
        }
    };
    let report = bench::block(
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
        let sizes = match &config {
            BlockConfig::Mamba(c) => format!(
                "mamba block, d_model {}, d_inner {}, d_state {}",
                c.d_model,
                c.d_inner(),
                c.d_state
            ),
            BlockConfig::GatedDeltanet(c) => format!(
                "gated deltanet layer, d_model {}, {} heads of {} (values {}), chunk {}",
                c.d_model,
                c.n_heads,
                c.head_dim,
                c.value_dim(),
                c.chunk_size
            ),
            BlockConfig::Mamba2(c) => format!(
                "mamba2 block, d_model {}, d_inner {}, {} heads of {}, d_state {}, chunk {}",
                c.d_model,
                c.d_inner(),
                c.n_heads(),
                c.head_dim,
                c.d_state,
                c.chunk_size
            ),
        };
        say(format!(
            "{sizes} ({:?}) fwd+bwd on {} (batch {}, L={}): median {:.3} ms [p10 {:.3}, p90 {:.3}] over {} steps; peak RSS {}",
            report.path,
            args.backend,
            report.batch,
            report.seq_len,
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
        arch: args.arch.config(task, &args.model)?,
        batch: args.batch as usize,
        positions: args.positions.iter().map(|&p| p as usize).collect(),
        repeats: args.repeats as usize,
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

fn bench_probe_step(args: &cli::ProbeStepArgs) -> anyhow::Result<()> {
    let bench = ProbeStepBench {
        probe: args.probe.resolve()?,
        head: args.head,
        steps: args.steps as usize,
        warmup: args.warmup as usize,
    };
    let report = bench::probe_step(&bench)?;
    if args.json {
        say(serde_json::to_string_pretty(&report)?);
    } else {
        let t = report.step;
        say(format!(
            "{} {} train step on {} (batch {}, L={}, V={}, d={}, {} labelled positions, head at {:?}): median {:.3} ms [p10 {:.3}, p90 {:.3}] over {} steps = {:.0} tokens/s; peak RSS {}",
            report.arch,
            report.task,
            report.backend,
            report.batch,
            report.seq_len,
            report.vocab,
            report.d_model,
            report.labelled,
            args.head,
            t.median_ms,
            t.p10_ms,
            t.p90_ms,
            t.samples,
            report.tokens_per_second,
            megabytes(report.peak_rss_bytes),
        ));
    }
    Ok(())
}

fn bench_train_step(args: &cli::TrainStepArgs) -> anyhow::Result<()> {
    let task = TaskShape {
        seq_len: args.seq_len as usize,
        pred_len: args.pred_len as usize,
        channels: args.channels as usize,
    };
    let arch = args.arch.config(task, &args.model)?;
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
            "{} train step on {} (batch {}, L={}, H={}, c={}, {} params): median {:.3} ms [p10 {:.3}, p90 {:.3}, min {:.3}, max {:.3}] over {} steps; {:.3} GFLOP per step (analytic), {:.1} GFLOP/s; peak RSS {}",
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
            report.flops / 1e9,
            report.gflops,
            megabytes(report.peak_rss_bytes),
        ));
    }
    Ok(())
}

fn bench_suite(args: &cli::SuiteArgs) -> anyhow::Result<()> {
    let suite = SuiteFile::load(&args.file)?;
    // Every archzoo case parses as this binary's command line before anything runs.
    for case in &suite.cases {
        if let CaseCommand::Archzoo(case_args) = &case.command {
            let argv = ["archzoo"]
                .into_iter()
                .chain(case_args.iter().map(String::as_str));
            if let Err(e) = Cli::try_parse_from(argv.chain(["--json"])) {
                let message = e.render().to_string();
                let first = message.lines().next().unwrap_or_default();
                anyhow::bail!("{}: case `{}`: {first}", args.file.display(), case.name);
            }
        }
    }
    if args.dry_run {
        for case in &suite.cases {
            let line = match &case.command {
                CaseCommand::Archzoo(case_args) => {
                    format!("archzoo {} --json", case_args.join(" "))
                }
                CaseCommand::External(argv) => argv.join(" "),
            };
            say(format!("{}: {line}", case.name));
        }
        return Ok(());
    }
    let command = format!(
        "archzoo bench suite {} --out {}",
        args.file.display(),
        args.out.display()
    );
    if args.summary_only {
        let measurements = suite::read(&args.out)?;
        let summary = suite::summary(&suite, &command, &measurements);
        files::write_text_atomic(&args.out.join("summary.md"), &summary)?;
        say(std::fs::read_to_string(args.out.join("summary.md"))?);
        return Ok(());
    }
    let exe = std::env::current_exe().context("cannot find the archzoo binary to run cases")?;
    suite::run(&suite, &args.out, &command, &exe, |line| {
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    })?;
    say(std::fs::read_to_string(args.out.join("summary.md"))?);
    Ok(())
}

fn bench_scaling(args: &cli::ScalingArgs) -> anyhow::Result<()> {
    let spec = match &args.config {
        Some(path) => ScalingSpec::load(path)?,
        None => ScalingSpec {
            description: None,
            arch: args.arch.clone(),
            seq_lens: args.seq_lens.iter().map(|&l| l as usize).collect(),
            params: args.params.map(|p| p as usize),
            batch: args.batch as usize,
            max_mem_mib: args.max_mem,
            decode: !args.no_decode,
            repeats: args.repeats as usize,
            min_seconds: args.min_seconds,
            backend: args.backend,
            seed: args.seed,
        },
    };
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let started = Instant::now();
    let mut rows = Vec::new();
    let meta = scaling::run(
        &spec,
        |config| {
            say(format!(
                "{}: lengths {:?}, batch {}",
                config.name(),
                spec.seq_lens,
                spec.batch
            ))
        },
        |row| {
            let fmt_ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2} ms"));
            let fmt_mib = |v: Option<u64>| {
                v.map_or("-".into(), |v| format!("{:.1} MiB", v as f64 / 1048576.0))
            };
            if row.skipped.is_empty() {
                say(format!(
                    "  {:>6}  {} params  train {} ({:.0} tok/s, {})  infer {} ({:.0} tok/s, {})  step {}",
                    row.seq_len,
                    row.params,
                    fmt_ms(row.train_ms),
                    row.train_tokens_per_s.unwrap_or(0.0),
                    fmt_mib(row.train_peak_bytes),
                    fmt_ms(row.infer_ms),
                    row.infer_tokens_per_s.unwrap_or(0.0),
                    fmt_mib(row.infer_peak_bytes),
                    fmt_ms(row.decode_ms),
                ));
            } else {
                say(format!("  {:>6}  skipped: {}", row.seq_len, row.skipped));
            }
            rows.push(row.clone());
            scaling::write_csv(&args.out, &rows)
        },
    )?;
    files::write_json_atomic(&args.out.with_extension("json"), &meta)?;
    say(format!(
        "wrote {} ({} rows) in {:.0} s",
        args.out.display(),
        rows.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn plot_dir(args: &cli::PlotArgs) -> anyhow::Result<()> {
    let out = args.out.clone().unwrap_or_else(|| args.dir.clone());
    let (runs, probes) = load_stored(&args.dir)?;
    if !probes.is_empty() {
        return write_probe_charts(&probe_report::probe_board(&probes), &out);
    }
    let scaling_path = args.scaling.clone().or_else(|| {
        let default = args.dir.join("scaling.csv");
        default.exists().then_some(default)
    });
    let scaling_rows = match &scaling_path {
        Some(path) => scaling::read_csv(path)?,
        None => Vec::new(),
    };
    if runs.is_empty() && scaling_rows.is_empty() {
        bail!(
            "{}: no completed runs (summary.json) and no scaling.csv to draw",
            args.dir.display()
        );
    }
    let scale = match args.scale {
        cli::ScaleArg::Standardised => plot::ForecastScale::Standardised,
        cli::ScaleArg::Raw => plot::ForecastScale::Raw {
            data_dir: args.data_dir.data_dir.clone(),
        },
    };
    write_charts(&runs, &args.dir, &scaling_rows, args.forecast, &scale, &out)
}

/// Every chart of `runs` (read from `dir`) and `scaling_rows`, as SVG and PNG into `out`.
fn write_charts(
    runs: &[report::StoredRun],
    dir: &Path,
    scaling_rows: &[scaling::ScalingRow],
    forecast: usize,
    scale: &plot::ForecastScale,
    out: &Path,
) -> anyhow::Result<()> {
    let charts = plot::charts(runs, dir, scaling_rows, forecast, scale)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for chart in &charts {
        let written = plot::render(chart, out)?;
        for path in written {
            say(format!("wrote {}", path.display()));
        }
    }
    Ok(())
}
