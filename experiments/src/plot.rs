//! `archzoo plot`: report charts drawn from stored results only (run directories and a
//! `bench scaling` CSV), as SVG and PNG.
//!
//! Building a chart ([`charts`]) and drawing it ([`render`]) are separate: the first turns stored
//! results into [`Chart`]s (titles, axis labels with units, scales and the plotted series, each
//! point with its spread), which the tests check on fixture results; the second only draws them
//! with plotters. Every architecture has one colour ([`arch_colour`]) in every chart.
//!
//! Per setting (dataset, features, L, H) of the runs: (a) test MSE against parameters, (b) against
//! training FLOPs, (g) a Pareto chart of test MSE against training time, each point a config's
//! mean over seeds with ± one sample standard deviation; (f) one stored test forecast against the
//! truth, one panel per architecture (its best config, lowest seed), standardised or in the
//! data's units ([`ForecastScale`]), the forecast in the architecture's colour, never the
//! lookback's grey. From a scaling CSV:
//! (c) training and inference throughput, (d) peak heap, both against sequence length, and
//! (e) `step` latency against context position.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use architectures::ArchName;
use clap::ValueEnum;
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::element::{Drawable, PointCollection};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};
use plotters_backend::DrawingErrorKind;

use crate::config::RunConfig;
use crate::error::{Result, RunError};
use crate::evaluate::ForecastSamples;
use crate::predict::RunScaler;
use crate::report::{self, Leaderboard, Setting, StoredRun};
use crate::scaling::ScalingRow;

/// The colour of an architecture in every chart (Tableau 10, then four darker tones, in registry
/// order).
pub fn arch_colour(arch: &str) -> RGBColor {
    const PALETTE: [RGBColor; 14] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        // Tableau's grey replaced: the lookback in forecast charts is grey.
        RGBColor(0, 128, 96),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
        RGBColor(57, 59, 121),
        RGBColor(140, 109, 49),
        RGBColor(132, 60, 57),
        RGBColor(82, 84, 163),
    ];
    let index = ArchName::value_variants()
        .iter()
        .position(|a| a.as_str() == arch)
        .unwrap_or(PALETTE.len() - 1);
    PALETTE[index % PALETTE.len()]
}

/// Who a chart series is: an architecture, and where the run's model departs from the
/// architecture's default, that variant (`learned positions`), drawn dashed in the
/// architecture's colour and place. Keys order as charts list them: by the registry, each
/// architecture's default before its variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeriesKey<'a> {
    /// Architecture name, as the registry writes it.
    pub arch: &'a str,
    /// The model's variant, if any.
    pub variant: Option<&'a str>,
}

impl Ord for SeriesKey<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // The name breaks ties between architectures the registry does not know.
        (registry_order(self.arch), self.arch, self.variant).cmp(&(
            registry_order(other.arch),
            other.arch,
            other.variant,
        ))
    }
}

impl PartialOrd for SeriesKey<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<'a> SeriesKey<'a> {
    /// The architecture's default model.
    pub fn arch(arch: &'a str) -> Self {
        Self {
            arch,
            variant: None,
        }
    }

    /// The legend's name: `transformer`, `transformer (learned positions)`.
    pub fn name(&self) -> String {
        match self.variant {
            None => self.arch.to_string(),
            Some(variant) => format!("{} ({variant})", self.arch),
        }
    }

    /// The series drawn: its name, colour and style, with `points`.
    pub fn series(&self, points: Vec<Point>) -> Series {
        Series {
            name: self.name(),
            colour: arch_colour(self.arch),
            style: match self.variant {
                None => Style::LinePoints,
                Some(_) => Style::DashedPoints,
            },
            points,
        }
    }
}

/// Colour of the truth in forecast charts.
pub const TRUTH: RGBColor = RGBColor(0, 0, 0);
/// Colour of the lookback in forecast charts.
pub const LOOKBACK: RGBColor = RGBColor(150, 150, 150);
/// Colour of the fine grid lines (between labelled ticks).
pub const GRID_FINE: RGBColor = RGBColor(244, 244, 244);
/// Colour of the grid lines at labelled ticks.
pub const GRID_BOLD: RGBColor = RGBColor(205, 205, 205);
/// Colour of a legend's border.
pub const LEGEND_BORDER: RGBColor = RGBColor(160, 160, 160);

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Markers joined by a line.
    LinePoints,
    /// A dashed line with markers.
    DashedPoints,
    /// A line.
    Line,
    /// Markers.
    Points,
}

/// One plotted point; `spread` is the (low, high) error bar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Horizontal value.
    pub x: f64,
    /// Vertical value.
    pub y: f64,
    /// Error bar, low and high.
    pub spread: Option<(f64, f64)>,
}

impl Point {
    /// A mean over seeds at `x`, with ± one standard deviation as its error bar when there are
    /// several seeds.
    pub fn mean_std(x: f64, s: report::Spread, seeds: usize) -> Self {
        Self {
            x,
            y: s.mean,
            spread: (seeds > 1).then_some((s.mean - s.std, s.mean + s.std)),
        }
    }
}

/// A named series.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// Colour.
    pub colour: RGBColor,
    /// How it is drawn.
    pub style: Style,
    /// Points, in drawing order.
    pub points: Vec<Point>,
}

/// One set of axes.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    /// Caption above the axes.
    pub title: String,
    /// Horizontal axis label, with its unit.
    pub x_label: String,
    /// Vertical axis label, with its unit.
    pub y_label: String,
    /// Logarithmic horizontal axis.
    pub x_log: bool,
    /// Logarithmic vertical axis.
    pub y_log: bool,
    /// A fixed vertical range (accuracy: 0 to 1) instead of the data's; `None` fits the data.
    /// A chart whose panels all have one has its legend beside them (no room above the data).
    pub y_range: Option<(f64, f64)>,
    /// On a log horizontal axis, ticks at the data's values, each labelled (a few widths or
    /// lengths: 64 and 128 rather than plotters' 100), instead of plotters' ticks.
    pub x_ticks_at_data: bool,
    /// What is drawn.
    pub series: Vec<Series>,
}

/// One figure: a title and its panels (drawn in a grid, two columns when there are several).
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// File name without extension.
    pub name: String,
    /// Figure title.
    pub title: String,
    /// Panels.
    pub panels: Vec<Panel>,
}

/// `ETTh1, M, L=96, H=96` and its file-name form `ETTh1-M-L96-H96`.
fn setting_names(s: &Setting) -> (String, String) {
    (
        format!(
            "{}, {}, L={}, H={}",
            s.dataset, s.features, s.seq_len, s.pred_len
        ),
        format!(
            "{}-{}-L{}-H{}",
            s.dataset, s.features, s.seq_len, s.pred_len
        ),
    )
}

/// The units forecast charts are drawn in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ForecastScale {
    /// The model's inputs: each channel standardised with its train split's statistics (as
    /// `forecasts.json` stores them).
    Standardised,
    /// The data's own units: the run's scaling inverted, from its `scaler.json`, or for runs
    /// written before runs kept one, recomputed from the run's data under `data_dir`.
    Raw {
        /// Where known datasets live (`ARCHZOO_DATA`).
        data_dir: PathBuf,
    },
}

/// Every chart the stored results allow (see the module doc). `dir` holds the run directories
/// (for `forecasts.json`); `forecast` picks the stored test window drawn, `scale` its units.
pub fn charts(
    runs: &[StoredRun],
    dir: &Path,
    scaling: &[ScalingRow],
    forecast: usize,
    scale: &ForecastScale,
) -> Result<Vec<Chart>> {
    let board = report::leaderboard(runs);
    let mut charts = accuracy_charts(&board);
    for (setting, rows) in &board {
        if let Some(chart) = forecast_chart(setting, rows, dir, forecast, scale)? {
            charts.push(chart);
        }
    }
    charts.extend(scaling_charts(scaling));
    Ok(charts)
}

/// Per architecture, its rows' points `(x, mean MSE ± std)` sorted by `x`, for the rows where
/// `x` is known.
fn per_arch(rows: &[report::Row], x: impl Fn(&report::Row) -> Option<f64>) -> Vec<Series> {
    arch_series(rows.iter().filter_map(|row| {
        let point = Point::mean_std(x(row)?, row.mse, row.seeds.len());
        Some((SeriesKey::arch(&row.arch), point))
    }))
}

/// One series per key (architecture and variant) from `(key, point)` pairs, each sorted by `x`,
/// the series in registry order.
pub fn arch_series<'a>(points: impl IntoIterator<Item = (SeriesKey<'a>, Point)>) -> Vec<Series> {
    let mut by_key: BTreeMap<SeriesKey<'a>, Vec<Point>> = BTreeMap::new();
    for (key, point) in points {
        by_key.entry(key).or_default().push(point);
    }
    by_key
        .into_iter()
        .map(|(key, mut points)| {
            points.sort_by(|a, b| a.x.total_cmp(&b.x));
            key.series(points)
        })
        .collect()
}

/// Position of `arch` in the registry (charts list architectures in this order).
pub fn registry_order(arch: &str) -> usize {
    ArchName::value_variants()
        .iter()
        .position(|a| a.as_str() == arch)
        .unwrap_or(usize::MAX)
}

/// (a) MSE against parameters, (b) against training FLOPs, (g) Pareto of MSE against time.
fn accuracy_charts(board: &Leaderboard) -> Vec<Chart> {
    let mut charts = Vec::new();
    for (setting, rows) in board {
        let (label, file) = setting_names(setting);
        let y_label = "test MSE (standardised)".to_string();
        let seeds = rows.iter().map(|r| r.seeds.len()).max().unwrap_or(1);
        let spread_note = if seeds > 1 {
            format!(", mean ± std over {seeds} seeds")
        } else {
            String::new()
        };
        charts.push(Chart {
            name: format!("mse_vs_params-{file}"),
            title: format!("Test MSE against model size ({label}{spread_note})"),
            panels: vec![Panel {
                title: String::new(),
                x_label: "trainable parameters".into(),
                y_label: y_label.clone(),
                x_log: true,
                y_log: false,
                y_range: None,
                x_ticks_at_data: false,
                series: per_arch(rows, |r| Some(r.params as f64)),
            }],
        });
        let flops = per_arch(rows, |r| r.train_flops);
        if !flops.is_empty() {
            charts.push(Chart {
                name: format!("mse_vs_flops-{file}"),
                title: format!("Test MSE against training compute ({label}{spread_note})"),
                panels: vec![Panel {
                    title: String::new(),
                    x_label: "training FLOPs (analytic, 3 × forward × windows × epochs)".into(),
                    y_label: y_label.clone(),
                    x_log: true,
                    y_log: false,
                    y_range: None,
                    x_ticks_at_data: false,
                    series: flops,
                }],
            });
        }
        let mut pareto = per_arch(rows, |r| Some(r.train_seconds));
        for series in &mut pareto {
            series.style = Style::Points;
        }
        let front = pareto_front(rows.iter().map(|r| (r.train_seconds, r.mse.mean)));
        pareto.push(Series {
            name: "Pareto front".into(),
            colour: TRUTH,
            style: Style::Line,
            points: front
                .into_iter()
                .map(|(x, y)| Point { x, y, spread: None })
                .collect(),
        });
        charts.push(Chart {
            name: format!("pareto_time-{file}"),
            title: format!("Test MSE against training time ({label}{spread_note})"),
            panels: vec![Panel {
                title: String::new(),
                x_label: "training time, median over seeds (s)".into(),
                y_label,
                x_log: true,
                y_log: false,
                y_range: None,
                x_ticks_at_data: false,
                series: pareto,
            }],
        });
    }
    charts
}

/// The points no other point beats in both cost and error (lower is better in both), by cost.
pub fn pareto_front(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut sorted: Vec<(f64, f64)> = points.collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut front: Vec<(f64, f64)> = Vec::new();
    for p in sorted {
        if front.last().is_none_or(|last| p.1 < last.1) {
            front.push(p);
        }
    }
    front
}

/// (f) the stored test forecast `index` of each architecture's best config (lowest seed).
fn forecast_chart(
    setting: &Setting,
    rows: &[report::Row],
    dir: &Path,
    index: usize,
    scale: &ForecastScale,
) -> Result<Option<Chart>> {
    // Rows are sorted by mean MSE: the first row of an architecture is its best.
    let mut best: Vec<&report::Row> = Vec::new();
    for row in rows {
        if !best.iter().any(|b| b.arch == row.arch) {
            best.push(row);
        }
    }
    best.sort_by_key(|r| registry_order(&r.arch));
    let mut panels = Vec::new();
    let mut window = None;
    for row in best {
        let path = dir.join(&row.run_ids[0]).join("forecasts.json");
        if !path.exists() {
            continue; // runs written before forecasts were stored
        }
        let text = std::fs::read_to_string(&path).map_err(crate::error::io_at(&path))?;
        let stored: ForecastSamples =
            serde_json::from_str(&text).map_err(|source| RunError::Json {
                path: path.clone(),
                source,
            })?;
        let Some(sample) = stored.samples.get(index) else {
            return Err(RunError::Invalid(format!(
                "{}: no stored forecast {index} (it has {}: choose --forecast 0..{})",
                path.display(),
                stored.samples.len(),
                stored.samples.len().saturating_sub(1)
            )));
        };
        window = Some((sample.window, sample.first_row, stored.channel.clone()));
        let (mean, std, units) = match scale {
            ForecastScale::Standardised => (0.0, 1.0, "standardised"),
            ForecastScale::Raw { data_dir } => {
                let run = dir.join(&row.run_ids[0]);
                let (mean, std) = channel_scaling(&run, &stored.channel, data_dir)?;
                (mean, std, "data units")
            }
        };
        let l = sample.lookback.len() as f64;
        let line = |values: &[f32], offset: f64| -> Vec<Point> {
            values
                .iter()
                .enumerate()
                .map(|(t, &v)| Point {
                    x: t as f64 + offset,
                    y: f64::from(v) * std + mean,
                    spread: None,
                })
                .collect()
        };
        panels.push(Panel {
            title: format!(
                "{} ({} params, test MSE {:.4})",
                row.arch, row.params, row.mse.mean
            ),
            x_label: "steps from the forecast start".into(),
            y_label: format!("{} ({units})", stored.channel),
            x_log: false,
            y_log: false,
            y_range: None,
            x_ticks_at_data: false,
            series: vec![
                Series {
                    name: "lookback".into(),
                    colour: LOOKBACK,
                    style: Style::Line,
                    points: line(&sample.lookback, -l),
                },
                Series {
                    name: "truth".into(),
                    colour: TRUTH,
                    style: Style::Line,
                    points: line(&sample.truth, 0.0),
                },
                Series {
                    name: "forecast".into(),
                    colour: arch_colour(&row.arch),
                    style: Style::Line,
                    points: line(&sample.forecast, 0.0),
                },
            ],
        });
    }
    let Some((window, first_row, channel)) = window else {
        return Ok(None);
    };
    let (label, file) = setting_names(setting);
    Ok(Some(Chart {
        name: format!("forecast-{file}"),
        title: format!(
            "Forecast against truth, {label}: test window {window} (series row {first_row}), {channel}"
        ),
        panels,
    }))
}

/// The train split's `(mean, std)` of `channel` for the run in `run_dir`: from its
/// `scaler.json`, or recomputed from its data (under `data_dir`) for a run without one.
fn channel_scaling(run_dir: &Path, channel: &str, data_dir: &Path) -> Result<(f64, f64)> {
    let stored: Option<RunScaler> =
        crate::files::read_json_if_exists(&run_dir.join(crate::predict::SCALER_FILE))?;
    let (columns, scaler) = match stored {
        Some(stored) => (stored.columns, stored.scaler),
        None => {
            let config = RunConfig::load(&run_dir.join("config.json"))?;
            let data = crate::runner::prepare_data(&config, data_dir).map_err(|e| {
                RunError::Invalid(format!(
                    "{}: no {}, and its data could not be read to recompute the scaler ({e}); \
                     set ARCHZOO_DATA or --data-dir",
                    run_dir.display(),
                    crate::predict::SCALER_FILE
                ))
            })?;
            (data.columns, data.scaler)
        }
    };
    let j = columns.iter().position(|c| c == channel).ok_or_else(|| {
        RunError::Invalid(format!(
            "{}: the stored forecasts' channel `{channel}` is not among the run's columns",
            run_dir.display()
        ))
    })?;
    Ok((scaler.mean[j], scaler.std[j]))
}

/// (c) throughput, (d) peak heap, (e) decoding latency, from `bench scaling` rows.
fn scaling_charts(rows: &[ScalingRow]) -> Vec<Chart> {
    if rows.is_empty() {
        return Vec::new();
    }
    let series = |value: &dyn Fn(&ScalingRow) -> Option<f64>| -> Vec<Series> {
        let mut by_arch: BTreeMap<&str, (usize, Vec<Point>)> = BTreeMap::new();
        for row in rows {
            let entry = by_arch.entry(&row.arch).or_insert((row.params, Vec::new()));
            if let Some(y) = value(row) {
                entry.1.push(Point {
                    x: row.seq_len as f64,
                    y,
                    spread: None,
                });
            }
        }
        let mut out: Vec<(usize, Series)> = by_arch
            .into_iter()
            .filter(|(_, (_, points))| !points.is_empty())
            .map(|(arch, (params, mut points))| {
                points.sort_by(|a, b| a.x.total_cmp(&b.x));
                let series = Series {
                    name: format!("{arch} ({params} params)"),
                    colour: arch_colour(arch),
                    style: Style::LinePoints,
                    points,
                };
                (registry_order(arch), series)
            })
            .collect();
        out.sort_by_key(|(order, _)| *order);
        out.into_iter().map(|(_, series)| series).collect()
    };
    let batch = rows[0].batch;
    let panel = |title: &str, x_label: &str, y_label: &str, s: Vec<Series>| Panel {
        title: title.into(),
        x_label: x_label.into(),
        y_label: y_label.into(),
        x_log: true,
        y_log: true,
        y_range: None,
        x_ticks_at_data: false,
        series: s,
    };
    let mib = |b: Option<u64>| b.map(|b| b as f64 / 1048576.0);
    let length = "sequence length (tokens)";
    vec![
        Chart {
            name: "throughput_vs_length".into(),
            title: format!("Throughput against sequence length (batch {batch})"),
            panels: vec![
                panel(
                    "training: forward + backward + Adam step",
                    length,
                    "tokens per second",
                    series(&|r| r.train_tokens_per_s),
                ),
                panel(
                    "inference: parallel forward",
                    length,
                    "tokens per second",
                    series(&|r| r.infer_tokens_per_s),
                ),
            ],
        },
        Chart {
            name: "memory_vs_length".into(),
            title: format!(
                "Peak heap against sequence length (batch {batch}; model, optimizer state and inputs included)"
            ),
            panels: vec![
                panel(
                    "training step",
                    length,
                    "peak heap (MiB)",
                    series(&|r| mib(r.train_peak_bytes)),
                ),
                panel(
                    "inference forward",
                    length,
                    "peak heap (MiB)",
                    series(&|r| mib(r.infer_peak_bytes)),
                ),
            ],
        },
        Chart {
            name: "decode_latency".into(),
            title: format!(
                "Recurrent step decoding latency against context position (batch {batch})"
            ),
            panels: vec![
                panel(
                    "latency of one step (median of the 9 steps ending there)",
                    "context position (tokens seen)",
                    "ms per step",
                    series(&|r| r.decode_ms),
                ),
                panel(
                    "state carried per sequence",
                    "context position (tokens seen)",
                    "state (floats)",
                    series(&|r| r.decode_state_floats.map(|f| f as f64)),
                ),
            ],
        },
    ]
}

pub(crate) const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

fn register_embedded_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(RunError::Invalid(
            "the embedded chart font does not load".into(),
        ))
    }
}

/// Something drawn into an SVG and a PNG file of the same name: a [`Chart`], or a figure of its
/// own kind (the explanation heatmap).
pub trait Figure {
    /// File name without extension.
    fn name(&self) -> &str;
    /// Size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draw onto `root`.
    fn draw<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String>;
}

impl Figure for Chart {
    fn name(&self) -> &str {
        &self.name
    }

    fn size(&self) -> (u32, u32) {
        let columns = self.columns();
        let grid_rows = self.panels.len().div_ceil(columns).max(1);
        let legend = if self.legend_beside() {
            LEGEND_WIDTH
        } else {
            0
        };
        (
            if columns == 1 { 900 } else { 1400 } + legend,
            (80 + 520 * grid_rows) as u32,
        )
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let columns = self.columns();
        draw(
            root,
            self,
            (self.panels.len().div_ceil(columns).max(1), columns),
        )
    }
}

/// Width of a legend drawn beside the panels, in pixels.
const LEGEND_WIDTH: u32 = 280;

impl Chart {
    /// Panels per row: two when there are several.
    fn columns(&self) -> usize {
        if self.panels.len() > 1 { 2 } else { 1 }
    }

    /// One legend beside the panels rather than one inside each: where every panel's vertical
    /// range is fixed (accuracy from 0 to 1), there is no room above the data for it.
    fn legend_beside(&self) -> bool {
        !self.panels.is_empty() && self.panels.iter().all(|p| p.y_range.is_some())
    }

    /// Every panel's series once (by name), each panel's order kept: a series missing from the
    /// earlier panels goes before the first series after it in its own panel that is listed.
    fn legend_entries(&self) -> Vec<&Series> {
        let mut entries: Vec<&Series> = Vec::new();
        let listed = |entries: &[&Series], name: &str| entries.iter().position(|e| e.name == name);
        for panel in &self.panels {
            for (i, series) in panel.series.iter().enumerate() {
                if listed(&entries, &series.name).is_some() {
                    continue;
                }
                let before = panel.series[i + 1..]
                    .iter()
                    .find_map(|next| listed(&entries, &next.name));
                entries.insert(before.unwrap_or(entries.len()), series);
            }
        }
        entries
    }
}

/// Draw `figure` into `out/<name>.svg` and `out/<name>.png`; returns the paths written.
pub fn render(figure: &impl Figure, out: &Path) -> Result<Vec<PathBuf>> {
    register_embedded_font()?;
    let name = figure.name();
    let size = figure.size();
    let svg = out.join(format!("{name}.svg"));
    let png = out.join(format!("{name}.png"));
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |e: String| RunError::Invalid(format!("{}: drawing failed: {e}", path.display()))
    };
    // Write through temporary names and rename, as every result file, so a reader never sees
    // half a chart.
    let tmp = |path: &Path| {
        path.with_file_name(format!(
            ".{name}.{}.tmp.{}",
            std::process::id(),
            path.extension().unwrap_or_default().to_string_lossy()
        ))
    };
    let (svg_tmp, png_tmp) = (tmp(&svg), tmp(&png));
    figure
        .draw(SVGBackend::new(&svg_tmp, size).into_drawing_area())
        .map_err(failed(&svg))?;
    figure
        .draw(BitMapBackend::new(&png_tmp, size).into_drawing_area())
        .map_err(failed(&png))?;
    for (from, to) in [(&svg_tmp, &svg), (&png_tmp, &png)] {
        std::fs::rename(from, to).map_err(crate::error::io_at(to))?;
    }
    Ok(vec![svg, png])
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    chart: &Chart,
    grid: (usize, usize),
) -> std::result::Result<(), String> {
    let text = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(text)?;
    let body = root
        .titled(&chart.title, (FONT, 22).into_font().color(&BLACK))
        .map_err(text)?;
    let body = if chart.legend_beside() {
        let width = body.dim_in_pixel().0;
        let (panels, side) = body.split_horizontally(width.saturating_sub(LEGEND_WIDTH));
        draw_legend(&side, &chart.legend_entries()).map_err(text)?;
        panels
    } else {
        body
    };
    let areas = body.split_evenly(grid);
    for (panel, area) in chart.panels.iter().zip(&areas) {
        let x = axis(panel, |p| p.x, false);
        let (y, legend) = match panel.y_range {
            Some(range) => (range, None),
            None => (
                with_headroom(axis(panel, |p| p.y, true), panel.y_log, panel.series.len()),
                Some(legend_corner(panel, x)),
            ),
        };
        let x_ticks: Option<Vec<f64>> = panel.x_ticks_at_data.then(|| {
            let mut values: Vec<f64> = panel
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.x))
                .collect();
            values.sort_by(f64::total_cmp);
            values.dedup();
            values
        });
        let (x_range, y_range) = (x.0..x.1, y.0..y.1);
        let result = match (panel.x_log, x_ticks, panel.y_log) {
            (false, _, false) => draw_panel(area, panel, legend, x_range, y_range),
            (false, _, true) => draw_panel(area, panel, legend, x_range, y_range.log_scale()),
            (true, None, false) => draw_panel(area, panel, legend, x_range.log_scale(), y_range),
            (true, None, true) => draw_panel(
                area,
                panel,
                legend,
                x_range.log_scale(),
                y_range.log_scale(),
            ),
            (true, Some(at), false) => draw_panel(
                area,
                panel,
                legend,
                x_range.log_scale().with_key_points(at),
                y_range,
            ),
            (true, Some(at), true) => draw_panel(
                area,
                panel,
                legend,
                x_range.log_scale().with_key_points(at),
                y_range.log_scale(),
            ),
        };
        result.map_err(text)?;
    }
    root.present().map_err(text)
}

/// A legend beside the panels: each entry's sample and name, top to bottom.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[&Series],
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    const TOP: i32 = 60;
    const ROW: i32 = 24;
    for (i, series) in entries.iter().enumerate() {
        let y = TOP + ROW * i as i32;
        area.draw(&LegendSample::new(series, (8, y)))?;
        let label = Text::new(
            series.name.clone(),
            (8 + SAMPLE_WIDTH + 10, y),
            (FONT, 14)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        );
        area.draw(&label)?;
    }
    Ok(())
}

/// Width of a legend sample, in pixels: plotters' legend leaves 30 for it.
const SAMPLE_WIDTH: i32 = 22;

/// A series' legend sample, its left end at `at`, drawn the same in both legends: a line, the
/// line's dashes for a dashed series, a marker for markers alone.
pub(crate) struct LegendSample {
    pub(crate) at: (i32, i32),
    pub(crate) style: Style,
    pub(crate) colour: RGBColor,
}

impl LegendSample {
    fn new(series: &Series, at: (i32, i32)) -> Self {
        Self {
            at,
            style: series.style,
            colour: series.colour,
        }
    }
}

impl<'a> PointCollection<'a, (i32, i32)> for &'a LegendSample {
    type Point = &'a (i32, i32);
    type IntoIter = std::iter::Once<&'a (i32, i32)>;

    fn point_iter(self) -> Self::IntoIter {
        std::iter::once(&self.at)
    }
}

impl<DB: DrawingBackend> Drawable<DB> for LegendSample {
    fn draw<I: Iterator<Item = (i32, i32)>>(
        &self,
        mut at: I,
        backend: &mut DB,
        _: (u32, u32),
    ) -> std::result::Result<(), DrawingErrorKind<DB::ErrorType>> {
        let Some((x, y)) = at.next() else {
            return Ok(());
        };
        let stroke = self.colour.stroke_width(3);
        let mut line =
            |from: i32, to: i32| backend.draw_path([(x + from, y), (x + to, y)], &stroke);
        match self.style {
            Style::Line | Style::LinePoints => line(0, SAMPLE_WIDTH),
            // Two dashes with the gap of `DashedLineSeries::new(.., 8, 5, ..)` in `draw_panel`.
            Style::DashedPoints => {
                line(0, 9)?;
                line(14, SAMPLE_WIDTH)
            }
            Style::Points => {
                backend.draw_circle((x + SAMPLE_WIDTH / 2, y), 5, &self.colour.filled(), true)
            }
        }
    }
}

/// The axis range of a panel: the data (and error bars) with a margin; multiplicative on a log
/// axis (non-positive values are left out there).
fn axis(panel: &Panel, value: impl Fn(&Point) -> f64, with_spread: bool) -> (f64, f64) {
    let log = if with_spread {
        panel.y_log
    } else {
        panel.x_log
    };
    let mut values: Vec<f64> = Vec::new();
    for point in panel.series.iter().flat_map(|s| &s.points) {
        values.push(value(point));
        if with_spread && let Some((lo, hi)) = point.spread {
            values.extend([lo, hi]);
        }
    }
    values.retain(|v| v.is_finite() && (!log || *v > 0.0));
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return if log { (1.0, 10.0) } else { (0.0, 1.0) };
    }
    if log {
        let (lo, hi) = if hi / lo < 1.5 {
            (lo / 1.5, hi * 1.5)
        } else {
            (lo, hi)
        };
        (lo / 1.25, hi * 1.25)
    } else {
        let span = if hi > lo { hi - lo } else { lo.abs().max(1.0) };
        (lo - 0.06 * span, hi + 0.06 * span)
    }
}

/// `12 345` style labels: compact and exact enough for the ticks plotters picks.
pub(crate) fn tick_label(v: &f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        let exponent = a.log10().floor() as i32;
        format!("{:.3}e{exponent}", v / 10f64.powi(exponent))
            .replace(".000e", "e")
            .replace("00e", "e")
            .replace("0e", "e")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else if a >= 1e-3 {
        // 0.99999 rounds to `1.0000`: `1`, not `1.`.
        format!("{v:.4}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    } else {
        format!("{v:.1e}")
    }
}

/// Share of the plot height kept free of data at the top, for the legend.
const LEGEND_HEADROOM: f64 = 0.3;

/// Extend a vertical range so its top [`LEGEND_HEADROOM`] is empty (in log space on a log axis).
fn with_headroom((lo, hi): (f64, f64), log: bool, entries: usize) -> (f64, f64) {
    let share = (LEGEND_HEADROOM * entries.min(6) as f64 / 6.0).max(0.12);
    if log {
        let (l, h) = (lo.ln(), hi.ln());
        (lo, (l + (h - l) / (1.0 - share)).exp())
    } else {
        (lo, lo + (hi - lo) / (1.0 - share))
    }
}

/// The upper corner whose half of the plot has fewer points, for the legend.
fn legend_corner(panel: &Panel, x_range: (f64, f64)) -> SeriesLabelPosition {
    let middle = if panel.x_log {
        (x_range.0 * x_range.1).sqrt()
    } else {
        (x_range.0 + x_range.1) / 2.0
    };
    let points = panel.series.iter().flat_map(|s| &s.points);
    let right = points.clone().filter(|p| p.x > middle).count();
    let left = points.count() - right;
    if right <= left {
        SeriesLabelPosition::UpperRight
    } else {
        SeriesLabelPosition::UpperLeft
    }
}

/// On a log axis plotters puts a tick at every integer multiple of each power of ten; label only
/// 1, 2 and 5 × 10^k, so the labels do not overlap.
fn log_tick_label(v: &f64) -> String {
    if *v <= 0.0 {
        return String::new();
    }
    let mantissa = v / 10f64.powf(v.log10().floor());
    if [1.0, 2.0, 5.0, 10.0]
        .iter()
        .any(|m| (mantissa - m).abs() < 1e-6 * m)
    {
        tick_label(v)
    } else {
        String::new()
    }
}

fn draw_panel<DB, X, Y>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    legend: Option<SeriesLabelPosition>,
    x: X,
    y: Y,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(72);
    if !panel.title.is_empty() {
        builder.caption(&panel.title, (FONT, 17));
    }
    let mut axes = builder.build_cartesian_2d(x, y)?;
    // Ticks at the data are few and each labelled; plotters' log ticks are many.
    let x_ticks = if panel.x_log && !panel.x_ticks_at_data {
        log_tick_label
    } else {
        tick_label
    };
    let y_ticks = if panel.y_log {
        log_tick_label
    } else {
        tick_label
    };
    axes.configure_mesh()
        .x_desc(&panel.x_label)
        .y_desc(&panel.y_label)
        .x_label_formatter(&x_ticks)
        .y_label_formatter(&y_ticks)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(GRID_FINE)
        .bold_line_style(GRID_BOLD)
        .draw()?;
    for series in &panel.series {
        let colour = series.colour;
        let points: Vec<(f64, f64)> = series.points.iter().map(|p| (p.x, p.y)).collect();
        let line_style = colour.stroke_width(2);
        let drawn = match series.style {
            Style::Line | Style::LinePoints => {
                axes.draw_series(LineSeries::new(points.clone(), line_style))?
            }
            Style::DashedPoints => {
                axes.draw_series(DashedLineSeries::new(points.clone(), 8, 5, line_style))?
            }
            Style::Points => axes.draw_series(
                points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 5, colour.filled())),
            )?,
        };
        let sample = LegendSample::new(series, (0, 0));
        drawn
            .label(&series.name)
            .legend(move |at| LegendSample { at, ..sample });
        if matches!(series.style, Style::LinePoints | Style::DashedPoints) {
            axes.draw_series(
                points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 4, colour.filled())),
            )?;
        }
        axes.draw_series(series.points.iter().filter_map(|p| {
            p.spread.map(|(lo, hi)| {
                ErrorBar::new_vertical(p.x, lo, p.y, hi, colour.stroke_width(2), 10)
            })
        }))?;
    }
    if let Some(legend) = legend {
        axes.configure_series_labels()
            .position(legend)
            .background_style(WHITE.mix(0.85))
            .border_style(LEGEND_BORDER)
            .label_font((FONT, 14))
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_is_drawn_dashed_in_its_architectures_colour_and_place() {
        let default = SeriesKey::arch("transformer");
        let variant = SeriesKey {
            variant: Some("learned positions"),
            ..default
        };
        let (drawn, variant_drawn) = (default.series(vec![]), variant.series(vec![]));
        assert_eq!(variant_drawn.name, "transformer (learned positions)");
        assert_eq!(variant_drawn.colour, drawn.colour);
        assert_eq!(variant_drawn.style, Style::DashedPoints);
        assert_eq!(drawn.style, Style::LinePoints);
        assert_ne!(arch_colour("mamba"), drawn.colour);
        // The variant follows its architecture's default and comes before the next architecture.
        assert!(default < variant);
        assert!(variant < SeriesKey::arch("mamba"));
    }

    #[test]
    fn a_legend_beside_fixed_range_panels_lists_every_series_once_in_panel_order() {
        let panel = |names: &[&str], y_range| Panel {
            title: String::new(),
            x_label: "d_model".into(),
            y_label: "accuracy".into(),
            x_log: true,
            y_log: false,
            y_range,
            x_ticks_at_data: true,
            series: names
                .iter()
                .map(|&name| SeriesKey::arch(name).series(vec![]))
                .collect(),
        };
        let mut chart = Chart {
            name: "c".into(),
            title: "c".into(),
            panels: vec![
                panel(&["transformer", "mamba", "lstm"], Some((0.0, 1.0))),
                panel(&["transformer", "hawk", "lstm"], Some((0.0, 1.0))),
            ],
        };
        assert!(chart.legend_beside());
        let names: Vec<&str> = chart
            .legend_entries()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["transformer", "mamba", "hawk", "lstm"]);
        assert_eq!(chart.size().0, 1400 + LEGEND_WIDTH);
        // A panel fitted to its data has room above it: each panel keeps its own legend.
        chart.panels[1].y_range = None;
        assert!(!chart.legend_beside());
        assert_eq!(chart.size().0, 1400);
    }

    /// A backend that records the strokes and markers drawn on it.
    #[derive(Default)]
    struct Recorder {
        strokes: Vec<Vec<(i32, i32)>>,
        markers: Vec<((i32, i32), u32)>,
    }

    impl DrawingBackend for Recorder {
        type ErrorType = std::fmt::Error;

        fn get_size(&self) -> (u32, u32) {
            (100, 100)
        }

        fn ensure_prepared(
            &mut self,
        ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
            Ok(())
        }

        fn present(&mut self) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
            Ok(())
        }

        fn draw_pixel(
            &mut self,
            _: (i32, i32),
            _: plotters_backend::BackendColor,
        ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
            Ok(())
        }

        fn draw_path<S: plotters_backend::BackendStyle, I: IntoIterator<Item = (i32, i32)>>(
            &mut self,
            path: I,
            _: &S,
        ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.strokes.push(path.into_iter().collect());
            Ok(())
        }

        fn draw_circle<S: plotters_backend::BackendStyle>(
            &mut self,
            centre: (i32, i32),
            radius: u32,
            _: &S,
            _: bool,
        ) -> std::result::Result<(), DrawingErrorKind<Self::ErrorType>> {
            self.markers.push((centre, radius));
            Ok(())
        }
    }

    #[test]
    fn a_legend_sample_is_drawn_as_its_series_is() {
        let drawn = |style| {
            let series = Series {
                name: String::new(),
                colour: RGBColor(1, 2, 3),
                style,
                points: vec![],
            };
            let mut recorder = Recorder::default();
            let sample = LegendSample::new(&series, (10, 20));
            sample
                .draw(sample.point_iter().copied(), &mut recorder, (100, 100))
                .unwrap();
            (recorder.strokes, recorder.markers)
        };
        let line = vec![vec![(10, 20), (32, 20)]];
        assert_eq!(drawn(Style::Line), (line.clone(), vec![]));
        assert_eq!(drawn(Style::LinePoints), (line, vec![]));
        assert_eq!(
            drawn(Style::DashedPoints),
            (
                vec![vec![(10, 20), (19, 20)], vec![(24, 20), (32, 20)]],
                vec![]
            )
        );
        // Markers alone get a marker, not a line (the Pareto chart's runs).
        assert_eq!(drawn(Style::Points), (vec![], vec![((21, 20), 5)]));
    }

    #[test]
    fn pareto_front_keeps_only_undominated_points() {
        let points = [(1.0, 0.5), (2.0, 0.4), (3.0, 0.45), (4.0, 0.3), (0.5, 0.9)];
        assert_eq!(
            pareto_front(points.into_iter()),
            vec![(0.5, 0.9), (1.0, 0.5), (2.0, 0.4), (4.0, 0.3)]
        );
    }

    #[test]
    fn every_architecture_has_its_own_colour() {
        let colours: Vec<RGBColor> = ArchName::value_variants()
            .iter()
            .map(|a| arch_colour(a.as_str()))
            .collect();
        for (i, c) in colours.iter().enumerate() {
            assert!(!colours[..i].contains(c), "colour {c:?} used twice");
            assert_ne!(*c, TRUTH);
        }
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(&20000.0), "20000");
        assert_eq!(tick_label(&2.5e7), "2.5e7");
        assert_eq!(tick_label(&0.385), "0.385");
        assert_eq!(tick_label(&1.5), "1.5");
        assert_eq!(tick_label(&0.99999), "1");
        assert_eq!(log_tick_label(&20000.0), "20000");
        assert_eq!(log_tick_label(&70000.0), "");
        assert_eq!(log_tick_label(&0.5), "0.5");
    }
}
