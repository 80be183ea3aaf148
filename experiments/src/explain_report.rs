//! `archzoo explain RUN_DIR...`: explain stored runs ([`explain_run`]), store each explanation
//! ([`write_explanation`]) and compare them ([`write_comparison`]).
//!
//! Per run, under `<out>/<run id>/`:
//! - `explain.json` ([`ExplainFile`]): the settings (methods, target, baseline, steps, seed,
//!   commit), the explained test windows, and per method its faithfulness beside random order,
//!   integrated gradients' completeness error, seconds and batched passes per window, and the
//!   attribution profiles over lags and channels;
//! - `attributions-<method>.npy`: `[windows, targets, L, C]` f32 (`numpy.load`), normalised input
//!   space, lookback oldest first;
//! - `heatmap.svg|png`: the first explained window, lookback × channel, one heatmap per method,
//!   under the explained channel's input, forecast and truth.
//!
//! Over every `explain.json` under `<out>`: `faithfulness.md` and `.csv` (method × architecture,
//! random order beside) and `lags.svg|png` (one panel per method, one line per architecture).
//!
//! The explained windows are the test windows `forecasts.json` samples
//! ([`evaluate::sampled_windows`]), so every run of a setting is explained on the same inputs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::error::{Result, RunError, io_at};
use crate::evaluate;
use crate::explain::{
    self, Baseline, Curves, Explainer, Faithfulness, Method, Settings, Shape, TargetSpec, Verdict,
};
use crate::files::{read_json_if_exists, write_bytes_atomic, write_json_atomic, write_text_atomic};
use crate::plot::{self, Chart, Figure, LegendSample, Panel, Point, Series, Style};
use crate::predict::MODEL_FILE;
use crate::results::Summary;
use crate::runner;
use crate::sysinfo;

/// What to explain and how.
#[derive(Clone, Debug, PartialEq)]
pub struct ExplainRequest {
    /// Methods, in order.
    pub methods: Vec<Method>,
    /// Test windows explained (evenly spaced, as `forecasts.json` samples them).
    pub windows: usize,
    /// The explained outputs.
    pub target: TargetSpec,
    /// The reference input.
    pub baseline: Baseline,
    /// Method settings.
    pub settings: Settings,
    /// Random orders per window and target that the rankings are compared with.
    pub random_orders: usize,
    /// Seed of the random orders.
    pub seed: u64,
}

/// `explain.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplainFile {
    /// The run explained.
    pub run_id: String,
    /// Its architecture.
    pub arch: String,
    /// Its dataset.
    pub dataset: String,
    /// Lookback.
    pub seq_len: usize,
    /// Horizon.
    pub pred_len: usize,
    /// Input channels, in the model's order.
    pub columns: Vec<String>,
    /// The run's test MSE.
    pub test_mse: f64,
    /// Explained test windows (0-based, stride 1).
    pub windows: Vec<usize>,
    /// `--target`.
    pub target: String,
    /// The explained targets, in the arrays' order.
    pub targets: Vec<String>,
    /// `--baseline`.
    pub baseline: Baseline,
    /// Method settings.
    pub settings: Settings,
    /// Random orders per window and target.
    pub random_orders: usize,
    /// Seed of the random orders.
    pub seed: u64,
    /// Rows per batched pass (the run's batch size).
    pub batch: usize,
    /// Commit of the code that explained.
    pub git_commit: String,
    /// Backend.
    pub backend: String,
    /// Random order's faithfulness on the same windows and targets.
    pub random: Faithfulness,
    /// Per method.
    pub methods: Vec<MethodResult>,
}

/// One method on one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodResult {
    /// The method.
    pub method: Method,
    /// Its attributions file, beside `explain.json`.
    pub file: String,
    /// `[windows, targets, L, C]`.
    pub shape: Vec<usize>,
    /// Wall seconds per window of the attribution alone.
    pub seconds_per_window: f64,
    /// Batched passes per window (forward and backward for gradients; forward for occlusion).
    pub passes_per_window: f64,
    /// Faithfulness of its ranking.
    pub faithfulness: Faithfulness,
    /// Against random order.
    pub verdict: Verdict,
    /// Integrated gradients' completeness.
    pub completeness: Option<Completeness>,
    /// Share of |attribution| per lookback step, oldest first.
    pub lag_profile: Vec<f64>,
    /// Share of |attribution| per input channel.
    pub channel_profile: Vec<f64>,
}

/// |Σ attributions − (y(x) − y(x′))| over the (window, target) pairs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Completeness {
    /// Largest absolute error.
    pub max_error: f64,
    /// Largest error relative to its pair's |y(x) − y(x′)| (large where that change is near
    /// zero, so read it with the two figures below).
    pub max_relative_error: f64,
    /// Median of the relative errors.
    pub median_relative_error: f64,
    /// Pairs whose error is within 1% of their change.
    pub within_one_percent: usize,
    /// Pairs.
    pub pairs: usize,
    /// Mean |y(x) − y(x′)|, for scale.
    pub mean_change: f64,
}

/// An explained run: the stored file and what the charts need.
pub struct Explained {
    /// `explain.json`.
    pub file: ExplainFile,
    /// Per method, `[windows, targets, L, C]`.
    pub attributions: Vec<Vec<f32>>,
    /// The explained inputs `[windows, L, C]`.
    pub inputs: Vec<f32>,
    /// The model's forecasts `[windows, H, C]`.
    pub forecasts: Vec<f32>,
    /// The truth `[windows, H, scored]`.
    pub truth: Vec<f32>,
    /// Index of the first scored channel.
    pub first_scored: usize,
}

/// Explain the completed run in `run_dir` on its test windows (data from `data_dir`).
pub fn explain_run(run_dir: &Path, data_dir: &Path, request: &ExplainRequest) -> Result<Explained> {
    if request.windows == 0 {
        return Err(RunError::Invalid(
            "--windows 0: explain at least one test window".into(),
        ));
    }
    if request.methods.is_empty() {
        return Err(RunError::Invalid("no --method given".into()));
    }
    if request.random_orders == 0 {
        return Err(RunError::Invalid(
            "--random-orders 0: faithfulness is measured against at least one random order".into(),
        ));
    }
    let config = RunConfig::load(&run_dir.join("config.json"))?;
    let summary_path = run_dir.join("summary.json");
    let summary: Summary = read_json_if_exists(&summary_path)?.ok_or_else(|| {
        RunError::Invalid(format!(
            "{}: missing; the run has not completed (finish it with `archzoo train --config {}`)",
            summary_path.display(),
            run_dir.join("config.json").display()
        ))
    })?;
    let model_path = run_dir.join(MODEL_FILE);
    if !model_path.exists() {
        return Err(RunError::Invalid(format!(
            "{} has no {MODEL_FILE}: the run completed before runs kept their weights; train it \
             again with `archzoo train --config {} --force --out {}` (the same config gives the \
             same numbers) and explain the new run",
            run_dir.display(),
            run_dir.join("config.json").display(),
            run_dir
                .parent()
                .map_or_else(|| ".".into(), |p| p.display().to_string())
        )));
    }
    let data = runner::prepare_data(&config, data_dir)?;
    if summary.data_sha256.is_some() && data.sha256 != summary.data_sha256 {
        return Err(RunError::Invalid(format!(
            "the data under {} differs from the data {} was trained on (sha256 {} against {})",
            data_dir.display(),
            summary.run_id,
            data.sha256.as_deref().unwrap_or("none"),
            summary.data_sha256.as_deref().unwrap_or("none"),
        )));
    }
    let (l, h, c) = (
        config.data.seq_len,
        config.data.pred_len,
        data.input_channels(),
    );
    request.settings.validate(l)?;
    let scored = data.scored_channels();
    let targets = request.target.resolve(h, &data.columns, scored.clone())?;
    let weights = std::fs::read(&model_path).map_err(io_at(&model_path))?;
    let device = config.backend.device()?;
    let explainer = Explainer::new(
        &config.arch,
        &weights,
        &device,
        config.train.batch_size,
        Shape { l, h, c },
        targets,
    )
    .map_err(|message| RunError::Checkpoint {
        path: model_path.clone(),
        message,
    })?;

    let test = &data.splits[2];
    let windows = evaluate::sampled_windows(test.windows, request.windows);
    let (mut inputs, mut truth) = (Vec::new(), Vec::new());
    data.fill_batch(test, &windows, &mut inputs, &mut truth);
    let (forecasts, _) = explainer.outputs(&inputs);

    let n_targets = explainer.targets().len();
    let row = l * c;
    let mut tallies = vec![Tally::default(); request.methods.len()];
    let mut random_curves = Vec::new();
    for (w, x) in windows.iter().zip(inputs.chunks(row)) {
        let baseline = request.baseline.of(x, c);
        for (tally, &method) in tallies.iter_mut().zip(&request.methods) {
            let started = Instant::now();
            let attribution = explainer.attribute(method, &request.settings, x, &baseline);
            tally.seconds += started.elapsed().as_secs_f64();
            tally.passes += attribution.passes;
            let order = explain::ranking(&attribution.values, n_targets);
            tally.curves.extend(explainer.curves(x, &baseline, &order));
            tally
                .completeness
                .extend(attribution.completeness.unwrap_or_default());
            tally.attributions.extend(attribution.values);
        }
        let mut rng = explain::window_rng(request.seed, *w);
        for _ in 0..request.random_orders {
            let order = explain::random_orders(&mut rng, n_targets, row);
            random_curves.extend(explainer.curves(x, &baseline, &order));
        }
    }
    let random = Faithfulness::of(&random_curves);
    let k = windows.len() as f64;
    let methods = request
        .methods
        .iter()
        .zip(&tallies)
        .map(|(&method, tally)| {
            let faithfulness = Faithfulness::of(&tally.curves);
            let (lag_profile, channel_profile) = explain::profiles(&tally.attributions, l, c);
            MethodResult {
                method,
                file: format!("attributions-{method}.npy"),
                shape: vec![windows.len(), n_targets, l, c],
                seconds_per_window: tally.seconds / k,
                passes_per_window: tally.passes as f64 / k,
                verdict: faithfulness.verdict(&random),
                faithfulness,
                completeness: (method == Method::IntegratedGradients)
                    .then(|| completeness_of(&tally.completeness)),
                lag_profile,
                channel_profile,
            }
        })
        .collect();
    let file = ExplainFile {
        run_id: summary.run_id.clone(),
        arch: summary.arch.clone(),
        dataset: summary.dataset.clone(),
        seq_len: l,
        pred_len: h,
        columns: data.columns.clone(),
        test_mse: summary.test_mse,
        windows,
        target: request.target.to_string(),
        targets: explainer.targets().iter().map(|t| t.name.clone()).collect(),
        baseline: request.baseline,
        settings: request.settings,
        random_orders: request.random_orders,
        seed: request.seed,
        batch: config.train.batch_size,
        git_commit: sysinfo::git_commit().to_string(),
        backend: config.backend.to_string(),
        random,
        methods,
    };
    Ok(Explained {
        file,
        attributions: tallies.into_iter().map(|t| t.attributions).collect(),
        inputs,
        forecasts,
        truth,
        first_scored: scored.start,
    })
}

/// One method's results over the explained windows, as they accumulate.
#[derive(Clone, Default)]
struct Tally {
    /// `[windows, targets, L, C]`.
    attributions: Vec<f32>,
    seconds: f64,
    passes: usize,
    /// One per window and target.
    curves: Vec<Curves>,
    /// (error, change) per window and target (integrated gradients).
    completeness: Vec<(f64, f64)>,
}

fn completeness_of(errors: &[(f64, f64)]) -> Completeness {
    let n = errors.len().max(1) as f64;
    let relative: Vec<f64> = errors
        .iter()
        .map(|(e, change)| e.abs() / change.abs().max(f64::MIN_POSITIVE))
        .collect();
    Completeness {
        max_error: errors.iter().map(|(e, _)| e.abs()).fold(0.0, f64::max),
        max_relative_error: relative.iter().copied().fold(0.0, f64::max),
        median_relative_error: crate::bench::median(&relative),
        within_one_percent: relative.iter().filter(|&&r| r <= 0.01).count(),
        pairs: errors.len(),
        mean_change: errors.iter().map(|(_, change)| change.abs()).sum::<f64>() / n,
    }
}

/// Write an explanation under `out/<run id>/`; returns the files written.
pub fn write_explanation(out: &Path, explained: &Explained) -> Result<Vec<PathBuf>> {
    let file = &explained.file;
    let dir = out.join(&file.run_id);
    std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
    let mut written = Vec::new();
    for (result, values) in file.methods.iter().zip(&explained.attributions) {
        let path = dir.join(&result.file);
        write_bytes_atomic(&path, &explain::npy_f32(&result.shape, values))?;
        written.push(path);
    }
    written.extend(plot::render(&heatmap(explained), &dir)?);
    let json = dir.join("explain.json");
    write_json_atomic(&json, file)?;
    written.push(json);
    Ok(written)
}

/// The explanations stored under `out` (`<out>/*/explain.json`), in registry order.
pub fn load_explanations(out: &Path) -> Result<Vec<ExplainFile>> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(out).map_err(io_at(out))?;
    for entry in entries {
        let path = entry.map_err(io_at(out))?.path().join("explain.json");
        if let Some(file) = read_json_if_exists::<ExplainFile>(&path)? {
            files.push(file);
        }
    }
    files.sort_by(|a, b| {
        (plot::registry_order(&a.arch), &a.run_id).cmp(&(plot::registry_order(&b.arch), &b.run_id))
    });
    Ok(files)
}

/// `faithfulness.md`, `faithfulness.csv` and the cross-architecture `lags` chart of the
/// explanations `files`, into `out`; returns the files written.
pub fn write_comparison(out: &Path, files: &[ExplainFile]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let md = out.join("faithfulness.md");
    write_text_atomic(&md, &faithfulness_markdown(files))?;
    written.push(md);
    let csv = out.join("faithfulness.csv");
    write_text_atomic(&csv, &faithfulness_csv(files))?;
    written.push(csv);
    let methods: Vec<Method> = Method::ALL
        .into_iter()
        .filter(|m| {
            files
                .iter()
                .any(|f| f.methods.iter().any(|r| r.method == *m))
        })
        .collect();
    let panels = methods
        .iter()
        .map(|&method| {
            lag_panel(
                method.label(),
                files.iter().filter_map(|f| {
                    f.methods
                        .iter()
                        .find(|r| r.method == method)
                        .map(|r| (f.arch.clone(), plot::arch_colour(&f.arch), &r.lag_profile))
                }),
            )
        })
        .collect();
    if let Some(first) = files.first() {
        let chart = Chart {
            name: "lags".into(),
            title: format!(
                "Share of |attribution| per lag: {}, L = {}, H = {}, target {}, {} test windows",
                first.dataset,
                first.seq_len,
                first.pred_len,
                first.target,
                first.windows.len()
            ),
            panels,
        };
        written.extend(plot::render(&chart, out)?);
    }
    Ok(written)
}

/// One panel of lag profiles: x is the lag (1 = the last input), y the share of |attribution|.
fn lag_panel<'a>(
    title: &str,
    lines: impl Iterator<Item = (String, RGBColor, &'a Vec<f64>)>,
) -> Panel {
    let series = lines
        .map(|(name, colour, profile)| {
            let l = profile.len();
            Series {
                name,
                colour,
                style: Style::Line,
                points: profile
                    .iter()
                    .enumerate()
                    .map(|(t, &share)| Point {
                        x: (l - t) as f64,
                        y: share,
                        spread: None,
                    })
                    .collect(),
            }
        })
        .collect();
    Panel {
        title: title.into(),
        x_label: "lag (steps before the forecast)".into(),
        y_label: "share of |attribution|".into(),
        x_log: false,
        y_log: false,
        y_range: None,
        x_ticks_at_data: false,
        series,
    }
}

/// The faithfulness table: one row per architecture and method, random order after each
/// architecture's methods.
pub fn faithfulness_markdown(files: &[ExplainFile]) -> String {
    let mut text = String::from(
        "# Faithfulness of the attributions\n\n\
         Written by `archzoo explain`. Output changes are in the normalised units of the target \
         (|Δy| of the explained target), means over the explained windows and targets. Deletion \
         sets the top-k% inputs by |attribution| to the baseline (area: higher is better); \
         insertion restores them into the baseline (area: lower is better); comprehensiveness \
         and sufficiency are the two curves at 5, 10 and 20%. `random` ranks the inputs in \
         random order.\n\n",
    );
    if let Some(first) = files.first() {
        text.push_str(&format!(
            "{}, L = {}, H = {}, target `{}`, baseline `{}`, {} test windows, integrated \
             gradients with {} {} points, occlusion patches of {} steps, {} random orders, \
             seed {}.\n\n",
            first.dataset,
            first.seq_len,
            first.pred_len,
            first.target,
            first.baseline,
            first.windows.len(),
            first.settings.steps,
            first.settings.quadrature,
            first.settings.occlusion_len,
            first.random_orders,
            first.seed
        ));
    }
    text.push_str(
        "| architecture | test MSE | method | deletion AUC | insertion AUC | comp. 5/10/20% | suff. 5/10/20% | against random | IG completeness: median rel. error, max, pairs within 1% | s / window | passes / window |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let points = |f: &Faithfulness, pick: fn(&explain::AtFraction) -> f64| {
        f.at.iter()
            .map(|a| format!("{:.3}", pick(a)))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    for file in files {
        for result in &file.methods {
            let f = &result.faithfulness;
            text.push_str(&format!(
                "| {} | {:.4} | {} | {:.4} | {:.4} | {} | {} | {} | {} | {:.3} | {:.1} |\n",
                file.arch,
                file.test_mse,
                result.method.label(),
                f.deletion_auc,
                f.insertion_auc,
                points(f, |a| a.comprehensiveness),
                points(f, |a| a.sufficiency),
                result.verdict,
                result.completeness.map_or_else(
                    || "–".into(),
                    |c| format!(
                        "{:.1e}, {:.1e}, {}/{}",
                        c.median_relative_error,
                        c.max_relative_error,
                        c.within_one_percent,
                        c.pairs
                    )
                ),
                result.seconds_per_window,
                result.passes_per_window,
            ));
        }
        let r = &file.random;
        text.push_str(&format!(
            "| {} | {:.4} | random | {:.4} | {:.4} | {} | {} | – | – | – | – |\n",
            file.arch,
            file.test_mse,
            r.deletion_auc,
            r.insertion_auc,
            points(r, |a| a.comprehensiveness),
            points(r, |a| a.sufficiency),
        ));
    }
    text.push_str("\nRuns: ");
    text.push_str(
        &files
            .iter()
            .map(|f| format!("`{}`", f.run_id))
            .collect::<Vec<_>>()
            .join(", "),
    );
    text.push('\n');
    text
}

/// The same table as CSV, one row per run and method (`random` included), every point.
pub fn faithfulness_csv(files: &[ExplainFile]) -> String {
    let mut text = String::from(
        "run_id,arch,test_mse,method,deletion_auc,insertion_auc,comprehensiveness_5,comprehensiveness_10,comprehensiveness_20,sufficiency_5,sufficiency_10,sufficiency_20,verdict,ig_median_relative_completeness_error,ig_max_relative_completeness_error,ig_pairs_within_1_percent,seconds_per_window,passes_per_window\n",
    );
    for file in files {
        let rows = file
            .methods
            .iter()
            .map(|r| {
                (
                    r.method.name().to_string(),
                    &r.faithfulness,
                    r.verdict.to_string(),
                    r.completeness.map_or_else(
                        || ",,".to_string(),
                        |c| {
                            format!(
                                "{},{},{}/{}",
                                c.median_relative_error,
                                c.max_relative_error,
                                c.within_one_percent,
                                c.pairs
                            )
                        },
                    ),
                    r.seconds_per_window.to_string(),
                    r.passes_per_window.to_string(),
                )
            })
            .chain(std::iter::once((
                "random".to_string(),
                &file.random,
                String::new(),
                ",,".to_string(),
                String::new(),
                String::new(),
            )));
        for (method, f, verdict, completeness, seconds, passes) in rows {
            let at: Vec<String> =
                f.at.iter()
                    .map(|a| a.comprehensiveness.to_string())
                    .chain(f.at.iter().map(|a| a.sufficiency.to_string()))
                    .collect();
            text.push_str(&format!(
                "{},{},{},{method},{},{},{},{verdict},{completeness},{seconds},{passes}\n",
                file.run_id,
                file.arch,
                file.test_mse,
                f.deletion_auc,
                f.insertion_auc,
                at.join(",")
            ));
        }
    }
    text
}

/// The heatmap figure of the first explained window, one heatmap per method.
fn heatmap(explained: &Explained) -> Heatmap<'_> {
    let file = &explained.file;
    let (l, h, c) = (file.seq_len, file.pred_len, file.columns.len());
    // The target channel (last input column) when it is explained, else the first target.
    let target = file
        .targets
        .iter()
        .position(|t| t.ends_with(&format!(" {}", file.columns[c - 1])))
        .unwrap_or(0);
    let channel = file.targets[target]
        .rsplit(' ')
        .next()
        .and_then(|name| file.columns.iter().position(|c| c == name))
        .unwrap_or(c - 1);
    let scored = explained.truth.len() / (file.windows.len() * h);
    Heatmap {
        title: format!(
            "{} ({}): target `{}`, test window {}",
            file.arch, file.run_id, file.targets[target], file.windows[0]
        ),
        columns: &file.columns,
        l,
        h,
        lookback: (0..l).map(|t| explained.inputs[t * c + channel]).collect(),
        forecast: (0..h)
            .map(|t| explained.forecasts[t * c + channel])
            .collect(),
        truth: (0..h)
            .map(|t| explained.truth[t * scored + channel - explained.first_scored])
            .collect(),
        maps: file
            .methods
            .iter()
            .zip(&explained.attributions)
            .map(|(result, values)| (result.method, &values[target * l * c..][..l * c]))
            .collect(),
        colour: plot::arch_colour(&file.arch),
        channel_name: &file.columns[channel],
    }
}

/// A window's attributions `[L, C]` per method as lookback × channel heatmaps (diverging: blue
/// negative, red positive, white zero, each scaled to its largest |value|), under the explained
/// channel's lookback, forecast and truth on the same time axis.
struct Heatmap<'a> {
    title: String,
    columns: &'a [String],
    l: usize,
    h: usize,
    lookback: Vec<f32>,
    forecast: Vec<f32>,
    truth: Vec<f32>,
    maps: Vec<(Method, &'a [f32])>,
    colour: RGBColor,
    channel_name: &'a str,
}

/// Height of the series panel and of each heatmap, pixels.
const SERIES_HEIGHT: u32 = 280;
const MAP_HEIGHT: u32 = 230;

/// Blue–white–red at `v ∈ [−1, 1]`.
fn diverging(v: f64) -> RGBColor {
    let v = v.clamp(-1.0, 1.0);
    let (end, t) = if v < 0.0 {
        ((59.0, 76.0, 192.0), -v)
    } else {
        ((180.0, 4.0, 38.0), v)
    };
    let mix = |e: f64| (255.0 + (e - 255.0) * t).round() as u8;
    RGBColor(mix(end.0), mix(end.1), mix(end.2))
}

impl Figure for Heatmap<'_> {
    fn name(&self) -> &str {
        "heatmap"
    }

    fn size(&self) -> (u32, u32) {
        (
            1100,
            40 + SERIES_HEIGHT + MAP_HEIGHT * self.maps.len() as u32,
        )
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let text = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(text)?;
        let body = root
            .titled(&self.title, (plot::FONT, 19).into_font().color(&BLACK))
            .map_err(text)?;
        let (top, mut rest) = body.split_vertically(SERIES_HEIGHT);
        let (l, h) = (self.l as f64, self.h as f64);
        let x_range = -l + 0.5..h + 0.5;

        let series: Vec<f32> = self
            .lookback
            .iter()
            .chain(&self.forecast)
            .chain(&self.truth)
            .copied()
            .collect();
        let lo = f64::from(series.iter().copied().fold(f32::INFINITY, f32::min));
        let hi = f64::from(series.iter().copied().fold(f32::NEG_INFINITY, f32::max));
        let pad = ((hi - lo) * 0.08).max(1e-3);
        let mut chart = ChartBuilder::on(&top)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(110)
            .build_cartesian_2d(x_range.clone(), lo - pad..hi + pad)
            .map_err(text)?;
        chart
            .configure_mesh()
            .y_desc(format!("{} (standardised)", self.channel_name))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&plot::tick_label)
            .label_style((plot::FONT, 13))
            .axis_desc_style((plot::FONT, 14))
            .light_line_style(plot::GRID_FINE)
            .draw()
            .map_err(text)?;
        let at = |offset: f64, values: &[f32]| -> Vec<(f64, f64)> {
            values
                .iter()
                .enumerate()
                .map(|(t, &v)| (offset + t as f64, f64::from(v)))
                .collect()
        };
        for (name, points, colour) in [
            ("input", at(-l + 1.0, &self.lookback), plot::LOOKBACK),
            ("truth", at(1.0, &self.truth), plot::TRUTH),
            ("forecast", at(1.0, &self.forecast), self.colour),
        ] {
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                .map_err(text)?
                .label(name)
                .legend(move |at| LegendSample {
                    at,
                    style: Style::Line,
                    colour,
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(plot::LEGEND_BORDER)
            .label_font((plot::FONT, 13))
            .draw()
            .map_err(text)?;

        let c = self.columns.len();
        let columns = self.columns;
        let channel_label = move |y: &f64| {
            let i = y.round();
            if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < columns.len() {
                columns[i as usize].clone()
            } else {
                String::new()
            }
        };
        for (k, (method, values)) in self.maps.iter().enumerate() {
            let (area, below) = rest.split_vertically(MAP_HEIGHT);
            rest = below;
            let scale = values
                .iter()
                .map(|v| f64::from(v.abs()))
                .fold(0.0, f64::max)
                .max(f64::MIN_POSITIVE);
            let last = k + 1 == self.maps.len();
            let mut grid = ChartBuilder::on(&area)
                .margin(8)
                .x_label_area_size(if last { 44 } else { 22 })
                .y_label_area_size(110)
                .caption(
                    format!(
                        "{}: red raises the target, blue lowers it (±{} at full colour)",
                        method.label(),
                        plot::tick_label(&scale)
                    ),
                    (plot::FONT, 14),
                )
                .build_cartesian_2d(x_range.clone(), -0.5..c as f64 - 0.5)
                .map_err(text)?;
            let mut mesh = grid.configure_mesh();
            mesh.disable_mesh()
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_labels(c.min(24))
                .y_label_formatter(&channel_label)
                .label_style((plot::FONT, 12))
                .axis_desc_style((plot::FONT, 14));
            if last {
                mesh.x_desc("step relative to the forecast start (lookback ≤ 0, horizon > 0)");
            }
            mesh.draw().map_err(text)?;
            // Cells that would be drawn white are left out (most of them for a channel-independent
            // model), which keeps the SVG small.
            grid.draw_series((0..self.l).flat_map(|t| {
                (0..c).filter_map(move |j| {
                    let x = t as f64 - l + 1.0;
                    let v = f64::from(values[t * c + j]) / scale;
                    (v.abs() >= 0.5 / 255.0).then(|| {
                        Rectangle::new(
                            [(x - 0.5, j as f64 - 0.5), (x + 0.5, j as f64 + 0.5)],
                            diverging(v).filled(),
                        )
                    })
                })
            }))
            .map_err(text)?;
        }
        root.present().map_err(text)
    }
}
