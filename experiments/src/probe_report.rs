//! The probe leaderboard and charts, from stored probe runs only.
//!
//! A row is one configuration (task and its settings, architecture and model, recipe) over its
//! learning rates and seeds: per seed the best accuracy over the learning rates tried (Zoology
//! reports the best of its sweep), then the mean ± sample std over seeds. Charts: accuracy
//! against `d_model`, one panel per task setting; accuracy against the recurrent state size
//! (floats per sequence; Zoology's recall–memory figure); induction accuracy against the test
//! length, one panel per width.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use datasets::ProbeTask;

use crate::error::{Result, RunError, io_at};
use crate::files::is_probe_run;
use crate::plot::{Chart, Panel, Point, Series, SeriesKey, arch_series};
use crate::probe::ProbeConfig;
use crate::probe_train::ProbeSummary;
use crate::report::Spread;

/// A finished probe run read back from its folder.
#[derive(Clone, Debug)]
pub struct StoredProbe {
    /// `config.json`.
    pub config: ProbeConfig,
    /// `summary.json`.
    pub summary: ProbeSummary,
}

/// The finished probe runs under `dir`, by run id. A probe folder whose files do not read is an
/// error naming the file.
pub fn load_probes(dir: &Path) -> Result<Vec<StoredProbe>> {
    let entries = std::fs::read_dir(dir).map_err(io_at(dir))?;
    let mut runs = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_at(dir))?.path();
        if !path.join("summary.json").exists() || !is_probe_run(&path) {
            continue;
        }
        let read = |name: &str| -> Result<String> {
            let file = path.join(name);
            std::fs::read_to_string(&file).map_err(io_at(&file))
        };
        let json_error = |name: &str| {
            let path = path.join(name);
            move |source| RunError::Json { path, source }
        };
        let config =
            serde_json::from_str(&read("config.json")?).map_err(json_error("config.json"))?;
        let summary =
            serde_json::from_str(&read("summary.json")?).map_err(json_error("summary.json"))?;
        runs.push(StoredProbe { config, summary });
    }
    runs.sort_by(|a, b| a.summary.run_id.cmp(&b.summary.run_id));
    Ok(runs)
}

/// What a table is for: a task at its settings (`mqar`, `L = 64, K = 4, V = 8192`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TaskSetting {
    /// `mqar`, `selective_copy`, `induction`.
    pub task: String,
    /// Training length.
    pub seq_len: usize,
    /// Its settings, readable.
    pub label: String,
}

impl TaskSetting {
    fn of(task: &ProbeTask) -> Self {
        let label = match *task {
            ProbeTask::Mqar {
                vocab,
                len,
                pairs,
                random_non_queries,
            } => format!(
                "L = {len}, K = {pairs}, V = {vocab}{}",
                if random_non_queries {
                    ", random non-queries"
                } else {
                    ""
                }
            ),
            ProbeTask::SelectiveCopy {
                alphabet,
                len,
                tokens,
            } => format!(
                "L = {} ({len} blanks + 2 × {tokens}), M = {tokens}, A = {alphabet}",
                len + 2 * tokens
            ),
            ProbeTask::Induction { vocab, len } => format!("L = {len}, V = {vocab}"),
        };
        Self {
            task: task.name().into(),
            seq_len: task.seq_len(),
            label,
        }
    }

    /// File-name form, `mqar-L64-K4`.
    fn file(&self) -> String {
        let compact: String = self
            .label
            .split(',')
            .filter_map(|part| {
                let (key, value) = part.split_once('=')?;
                let value = value.split_whitespace().next()?;
                Some(format!("{}{value}", key.trim()))
            })
            .collect::<Vec<_>>()
            .join("-");
        format!("{}-{compact}", self.task)
    }
}

/// One row: a configuration, best learning rate per seed, mean ± std over seeds.
#[derive(Clone, Debug)]
pub struct ProbeRow {
    /// Architecture.
    pub arch: String,
    /// Where the token model departs from the architecture's default: `learned positions`.
    pub variant: Option<&'static str>,
    /// Width.
    pub d_model: usize,
    /// Backbone parameters.
    pub backbone_params: usize,
    /// Floats of state per sequence at the training length.
    pub state_floats: usize,
    /// Best-over-lr accuracy.
    pub accuracy: Spread,
    /// Seeds, ascending.
    pub seeds: Vec<u64>,
    /// The learning rate that won, per seed.
    pub best_lrs: Vec<f64>,
    /// Every learning rate tried.
    pub lrs: Vec<f64>,
    /// Accuracy by test length of the winning runs, ascending by length.
    pub lengths: Vec<(usize, Spread)>,
    /// Examples tested at each of `lengths`.
    pub examples: Vec<usize>,
    /// Median over seeds of the reported run's seconds (each seed's best learning rate).
    pub train_seconds: f64,
}

impl ProbeRow {
    /// Its series in charts and its name in the leaderboard.
    pub fn key(&self) -> SeriesKey<'_> {
        SeriesKey {
            arch: &self.arch,
            variant: self.variant,
        }
    }
}

/// Rows per task setting, by architecture (registry order) then width.
pub type ProbeBoard = BTreeMap<TaskSetting, Vec<ProbeRow>>;

/// The leaderboard of `runs`.
pub fn probe_board(runs: &[StoredProbe]) -> ProbeBoard {
    // Configurations: the config with lr and seed cleared.
    let mut groups: BTreeMap<String, Vec<&StoredProbe>> = BTreeMap::new();
    for run in runs {
        let mut key = run.config.clone();
        key.train.lr = 0.0;
        key.seed = 0;
        groups
            .entry(serde_json::to_string(&key).expect("configs serialize"))
            .or_default()
            .push(run);
    }
    let mut board = ProbeBoard::new();
    for group in groups.values() {
        let first = group[0];
        let mut by_seed: BTreeMap<u64, &StoredProbe> = BTreeMap::new();
        for &run in group {
            let best = by_seed.entry(run.config.seed).or_insert(run);
            if run.summary.accuracy > best.summary.accuracy {
                *best = run;
            }
        }
        let winners: Vec<&StoredProbe> = by_seed.values().copied().collect();
        let mut lrs: Vec<f64> = group.iter().map(|r| r.config.train.lr).collect();
        lrs.sort_by(f64::total_cmp);
        lrs.dedup();
        let accuracies: Vec<f64> = winners.iter().map(|r| r.summary.accuracy).collect();
        // The time of the runs reported: each seed's best learning rate.
        let seconds: Vec<f64> = winners.iter().map(|r| r.summary.train_seconds).collect();
        let lengths = first
            .summary
            .lengths
            .iter()
            .map(|l| {
                let values: Vec<f64> = winners
                    .iter()
                    .filter_map(|w| w.summary.lengths.iter().find(|x| x.len == l.len))
                    .map(|x| x.accuracy)
                    .collect();
                (l.len, Spread::of(&values))
            })
            .collect();
        board
            .entry(TaskSetting::of(&first.config.task))
            .or_default()
            .push(ProbeRow {
                arch: first.config.model.name().to_string(),
                variant: first.config.model.variant(),
                d_model: first.config.model.d_model(),
                backbone_params: first.summary.backbone_params,
                state_floats: first.summary.state_floats,
                accuracy: Spread::of(&accuracies),
                seeds: by_seed.keys().copied().collect(),
                best_lrs: winners.iter().map(|w| w.config.train.lr).collect(),
                lrs,
                lengths,
                examples: first.summary.lengths.iter().map(|l| l.examples).collect(),
                train_seconds: crate::bench::median(&seconds),
            });
    }
    for rows in board.values_mut() {
        rows.sort_by(|a, b| (a.key(), a.d_model).cmp(&(b.key(), b.d_model)));
    }
    board
}

/// `500` at the training length alone, `500; 100 per other length` with extrapolation lengths
/// (each count listed when they differ).
fn examples_text(examples: &[usize]) -> String {
    match examples {
        [] => String::new(),
        [train] => train.to_string(),
        [train, other @ ..] if other.iter().all(|&n| n == other[0]) => {
            format!("{train}; {} per other length", other[0])
        }
        [train, other @ ..] => format!(
            "{train}; {}",
            other
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `0.9871 ± 0.0040` (the std only with several seeds).
fn spread_cell(s: Spread, seeds: usize) -> String {
    if seeds > 1 {
        format!("{:.4} ± {:.4}", s.mean, s.std)
    } else {
        format!("{:.4}", s.mean)
    }
}

fn lrs_text(lrs: &[f64]) -> String {
    lrs.iter()
        .map(|lr| format!("{lr:e}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The leaderboard as Markdown.
pub fn markdown(board: &ProbeBoard, source: &Path) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Probe leaderboard\n");
    let _ = writeln!(
        md,
        "From the runs under `{}` (`archzoo report`). Accuracy: the mean over test examples of the fraction of scored positions predicted exactly; per seed the best over the learning rates tried, then mean ± sample std over seeds. State: floats of recurrent state per sequence at the training length (a KV cache grows with the length).\n",
        source.display()
    );
    for (setting, rows) in board {
        let _ = writeln!(md, "## {} ({})\n", setting.task, setting.label);
        let extra: Vec<usize> = rows
            .first()
            .map(|r| r.lengths.iter().skip(1).map(|(l, _)| *l).collect())
            .unwrap_or_default();
        let mut header =
            "| arch | d_model | backbone params | state floats | seeds | accuracy | best lr | lrs tried | run s (median) | test examples |"
                .to_string();
        let mut rule = "|---|---|---|---|---|---|---|---|---|---|".to_string();
        for len in &extra {
            let _ = write!(header, " L = {len} |");
            rule.push_str("---|");
        }
        let _ = writeln!(md, "{header}\n{rule}");
        for r in rows {
            let mut line = format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |",
                r.key().name(),
                r.d_model,
                r.backbone_params,
                r.state_floats,
                r.seeds.len(),
                spread_cell(r.accuracy, r.seeds.len()),
                lrs_text(&r.best_lrs),
                lrs_text(&r.lrs),
                r.train_seconds,
                examples_text(&r.examples)
            );
            for (_, s) in r.lengths.iter().skip(1) {
                let _ = write!(line, " {} |", spread_cell(*s, r.seeds.len()));
            }
            let _ = writeln!(md, "{line}");
        }
        md.push('\n');
    }
    md
}

/// Columns of the probe `leaderboard.csv` (one line per row and test length).
pub const CSV_COLUMNS: [&str; 14] = [
    "task",
    "setting",
    "arch",
    "d_model",
    "backbone_params",
    "state_floats",
    "n_seeds",
    "test_len",
    "accuracy_mean",
    "accuracy_std",
    "best_lrs",
    "lrs",
    "train_seconds_median",
    "train_len",
];

/// The leaderboard as CSV, one line per row and test length (the training length first).
pub fn csv(board: &ProbeBoard) -> String {
    let records = board.iter().flat_map(|(s, rows)| {
        rows.iter().flat_map(move |r| {
            r.lengths.iter().map(move |(len, acc)| {
                vec![
                    s.task.clone(),
                    s.label.clone(),
                    r.key().name(),
                    r.d_model.to_string(),
                    r.backbone_params.to_string(),
                    r.state_floats.to_string(),
                    r.seeds.len().to_string(),
                    len.to_string(),
                    acc.mean.to_string(),
                    acc.std.to_string(),
                    lrs_text(&r.best_lrs),
                    lrs_text(&r.lrs),
                    r.train_seconds.to_string(),
                    s.seq_len.to_string(),
                ]
            })
        })
    });
    crate::files::csv_text(&CSV_COLUMNS, records)
}

/// Per architecture, `(x, accuracy ± std)` of `rows`, sorted by `x`.
fn per_arch(rows: &[&ProbeRow], x: impl Fn(&ProbeRow) -> f64) -> Vec<Series> {
    arch_series(rows.iter().map(|row| {
        let point = Point::mean_std(x(row), row.accuracy, row.seeds.len());
        (row.key(), point)
    }))
}

/// Every probe chart `board` allows (see the module doc).
pub fn probe_charts(board: &ProbeBoard) -> Vec<Chart> {
    let mut charts = Vec::new();
    let mut by_task: BTreeMap<&str, Vec<(&TaskSetting, &Vec<ProbeRow>)>> = BTreeMap::new();
    for (setting, rows) in board {
        by_task
            .entry(&setting.task)
            .or_default()
            .push((setting, rows));
    }
    for (task, settings) in &by_task {
        let panel = |setting: &TaskSetting, series| Panel {
            title: setting.label.clone(),
            x_label: String::new(),
            y_label: "accuracy".into(),
            x_log: true,
            y_log: false,
            y_range: Some((0.0, 1.0)),
            x_ticks_at_data: false,
            series,
        };
        let width_panels = settings
            .iter()
            .map(|(s, rows)| {
                let rows: Vec<&ProbeRow> = rows.iter().collect();
                Panel {
                    x_label: "d_model".into(),
                    x_ticks_at_data: true,
                    ..panel(s, per_arch(&rows, |r| r.d_model as f64))
                }
            })
            .collect();
        charts.push(Chart {
            name: format!("{task}-accuracy_vs_width"),
            title: format!("{task}: accuracy against model width (best lr per seed)"),
            panels: width_panels,
        });
        let state_panels = settings
            .iter()
            .map(|(s, rows)| {
                let rows: Vec<&ProbeRow> = rows.iter().collect();
                Panel {
                    x_label: "state per sequence at the training length (floats)".into(),
                    ..panel(s, per_arch(&rows, |r| r.state_floats as f64))
                }
            })
            .collect();
        charts.push(Chart {
            name: format!("{task}-accuracy_vs_state"),
            title: format!("{task}: accuracy against recurrent state size"),
            panels: state_panels,
        });
    }
    for (setting, rows) in board {
        if rows.iter().all(|r| r.lengths.len() < 2) {
            continue;
        }
        let mut widths: Vec<usize> = rows.iter().map(|r| r.d_model).collect();
        widths.sort_unstable();
        widths.dedup();
        let panels = widths
            .iter()
            .map(|&d| {
                let mut series = Vec::new();
                // Rows are in registry order (`probe_board`), so the series are too.
                for row in rows.iter().filter(|r| r.d_model == d) {
                    let points = row
                        .lengths
                        .iter()
                        .map(|&(len, s)| Point::mean_std(len as f64, s, row.seeds.len()))
                        .collect();
                    series.push(row.key().series(points));
                }
                Panel {
                    title: format!("d_model = {d}"),
                    x_label: format!("test length (trained at {})", setting.seq_len),
                    y_label: "accuracy".into(),
                    x_log: true,
                    y_log: false,
                    y_range: Some((0.0, 1.0)),
                    x_ticks_at_data: true,
                    series,
                }
            })
            .collect();
        charts.push(Chart {
            name: format!("{}-accuracy_vs_length", setting.file()),
            title: format!(
                "{}: accuracy against test length ({})",
                setting.task, setting.label
            ),
            panels,
        });
    }
    charts
}
