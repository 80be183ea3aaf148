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
//! A file may also hold `[[grid]]` tables: then the runs are the union of one product per grid,
//! each grid's own settings joined to the top-level ones (a key may not be in both), runs that
//! come out the same counted once. That is how one table holds, say, three seeds at H = 96 and
//! one seed at the longer horizons:
//!
//! ```toml
//! arch = "mamba"
//! data = "ETTh1"
//! preset = "tslib"
//!
//! [[grid]]
//! pred_len = 96
//! seed = [2021, 2022, 2023]
//!
//! [[grid]]
//! pred_len = [192, 336, 720]
//! seed = 2021
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

use architectures::{ArchName, ModelOption};
use datasets::ForecastData;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::RunConfig;
use crate::error::{Result, RunError, io_at};
use crate::files::{csv_text, read_json_if_exists, write_json_atomic, write_text_atomic};
use crate::probe::ProbeRequest;
use crate::progress::Progress;
use crate::request::{RunRequest, TRAINING};
use crate::results::{RunDir, Summary};
use crate::runner::{self, RunOptions, RunStatus};

/// What a sweep file's keys parse as: the settings of one run of a command (`archzoo train`'s
/// [`RunRequest`], `archzoo probe`'s [`ProbeRequest`]), declared once for clap and the sweep.
pub trait SweepRequest: clap::Args + clap::FromArgMatches + Sized {
    /// The command whose flags the keys are (`train`).
    const COMMAND: &'static str;

    /// The settings as a clap command of their own.
    fn command() -> clap::Command {
        Self::augment_args(clap::Command::new(Self::COMMAND).no_binary_name(true))
    }

    /// One run's settings from flags (`["--arch", "mamba", "--d-model", "64"]`); the ones not
    /// given take the command's defaults.
    fn parse(args: &[String]) -> std::result::Result<Self, clap::Error> {
        let matches = Self::command().try_get_matches_from(args)?;
        Self::from_arg_matches(&matches)
    }

    /// The run's architecture.
    fn arch(&self) -> ArchName;
    /// Whether the setting `argument` applies to `arch` (a sweep sets it only where it does).
    fn applies(arch: ArchName, argument: &clap::Arg) -> bool;
}

impl SweepRequest for RunRequest {
    const COMMAND: &'static str = "train";

    fn arch(&self) -> ArchName {
        self.arch
    }

    /// A model option only for the architectures that take it, a training setting only for the
    /// trainable ones.
    fn applies(arch: ArchName, argument: &clap::Arg) -> bool {
        let option = ModelOption::from_key(argument.get_id().as_str());
        let training = argument.get_help_heading() == Some(TRAINING);
        option.is_none_or(|o| arch.accepts(o)) && (!training || arch.trainable())
    }
}

impl SweepRequest for ProbeRequest {
    const COMMAND: &'static str = "probe";

    fn arch(&self) -> ArchName {
        self.arch
    }

    /// A model option only for the architectures whose token model takes it.
    fn applies(arch: ArchName, argument: &clap::Arg) -> bool {
        let option = ModelOption::from_key(argument.get_id().as_str());
        option.is_none_or(|o| arch.token_options().is_some_and(|a| a.contains(&o)))
    }
}

/// Whether the sweep file at `path` is a probe sweep: it sets `task` (at the top level or in a
/// grid), which only `archzoo probe` takes.
pub fn is_probe_sweep(path: &Path) -> Result<bool> {
    let text = std::fs::read_to_string(path).map_err(io_at(path))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| RunError::Invalid(format!("{}: {e}", path.display())))?;
    let in_grid = table
        .get("grid")
        .and_then(toml::Value::as_array)
        .is_some_and(|grids| {
            grids
                .iter()
                .any(|g| g.as_table().is_some_and(|t| t.contains_key("task")))
        });
    Ok(table.contains_key("task") || in_grid)
}

/// A sweep file: an optional `description`, then run settings, each one value or a list.
///
/// The keys are the settings of `archzoo train` ([`RunRequest`], the same declaration clap
/// parses), or of `archzoo probe` for a probe sweep, with underscores: a value becomes the flag's
/// argument, `true` a switch given and `false` one left out. A key the command does not know is
/// an error naming it and its line.
#[derive(Clone, Debug)]
pub struct SweepFile<R = RunRequest> {
    /// Free text.
    pub description: Option<String>,
    /// The top-level settings in the file's order, each with its values and line.
    settings: Vec<Setting>,
    /// The `[[grid]]` tables' settings, one list per grid (empty: the top level is the grid).
    grids: Vec<Vec<Setting>>,
    /// Where it was read from (for messages).
    source: String,
    request: std::marker::PhantomData<R>,
}

/// One key of a sweep file.
#[derive(Clone, Debug)]
struct Setting {
    key: String,
    values: Vec<toml::Value>,
    line: usize,
}

impl<R: SweepRequest> SweepFile<R> {
    /// Read and parse `path`; a syntax error or an unknown key names the file, line and column.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io_at(path))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse the text of a sweep file read from `source`.
    pub fn parse(text: &str, source: &str) -> Result<Self> {
        let invalid = |line: usize, message: String| {
            RunError::Invalid(format!("{source}, line {line}: {message}"))
        };
        let table: toml::Table =
            toml::from_str(text).map_err(|e| RunError::Invalid(format!("{source}: {e}")))?;
        let mut description = None;
        let mut grids = Vec::new();
        let mut top = toml::Table::new();
        for (key, value) in table {
            match (key.as_str(), value) {
                ("description", toml::Value::String(text)) => description = Some(text),
                ("description", _) => {
                    return Err(invalid(
                        line_of(text, &key, 0),
                        "`description` must be a string".into(),
                    ));
                }
                ("grid", toml::Value::Array(tables)) => grids = tables,
                ("grid", _) => {
                    return Err(invalid(
                        line_of(text, &key, 0),
                        "`grid` must be `[[grid]]` tables".into(),
                    ));
                }
                (_, value) => {
                    top.insert(key, value);
                }
            }
        }
        let settings = settings_of::<R>(top, text, 0, &invalid)?;
        // Each `[[grid]]` header's line, so that a key is looked up below its own grid's header.
        let headers: Vec<usize> = text
            .lines()
            .enumerate()
            .filter(|(_, line)| line.trim_start().starts_with("[[grid]]"))
            .map(|(i, _)| i + 1)
            .collect();
        let grids = grids
            .into_iter()
            .enumerate()
            .map(|(i, grid)| {
                let header = headers.get(i).copied().unwrap_or(0);
                let toml::Value::Table(grid) = grid else {
                    return Err(invalid(header, "`grid` must be `[[grid]]` tables".into()));
                };
                let grid = settings_of::<R>(grid, text, header, &invalid)?;
                if let Some(both) = grid
                    .iter()
                    .find(|g| settings.iter().any(|s| s.key == g.key))
                {
                    return Err(invalid(
                        both.line,
                        format!(
                            "`{}` is set at the top level too: set it in one place",
                            both.key
                        ),
                    ));
                }
                Ok(grid)
            })
            .collect::<Result<Vec<_>>>()?;
        let file = Self {
            description,
            settings,
            grids,
            source: source.to_string(),
            request: std::marker::PhantomData,
        };
        // Each value checked once, here, where its line is known (not once per run it reaches).
        let command = R::command();
        for setting in file.settings.iter().chain(file.grids.iter().flatten()) {
            for value in &setting.values {
                let flags = file.flags(&command, setting, value)?;
                file.request(&flags, setting.line)?;
            }
        }
        Ok(file)
    }

    /// The requests of the sweep: for each grid (the top level alone when there is no
    /// `[[grid]]`), the product of its lists; duplicates are removed later, by run id.
    pub fn requests(&self) -> Result<Vec<R>> {
        if self.grids.is_empty() {
            return self.product(&self.settings);
        }
        let mut requests = Vec::new();
        for grid in &self.grids {
            let settings: Vec<Setting> = self.settings.iter().chain(grid).cloned().collect();
            requests.extend(self.product(&settings)?);
        }
        Ok(requests)
    }

    /// The product of `settings`' lists, expanded in the order the command declares its
    /// settings (the seed last), each setting only for the architectures it applies to
    /// ([`SweepRequest::applies`]).
    fn product(&self, settings: &[Setting]) -> Result<Vec<R>> {
        let command = R::command();
        let find = |key: &str| settings.iter().find(|s| s.key == key);
        let arch = find("arch")
            .ok_or_else(|| RunError::Invalid(format!("{}: a sweep needs `arch`", self.source)))?;
        // Each run as (architecture, flags so far).
        let mut runs: Vec<(ArchName, Vec<String>)> = Vec::new();
        for value in &arch.values {
            let flags = self.flags(&command, arch, value)?;
            let request = self.request(&flags, arch.line)?;
            runs.push((request.arch(), flags));
        }
        // The seed last, so the seeds of one configuration are neighbours.
        let (seeds, others): (Vec<_>, Vec<_>) =
            command.get_arguments().partition(|a| a.get_id() == "seed");
        for argument in others.into_iter().chain(seeds) {
            let Some(setting) = find(argument.get_id().as_str()).filter(|s| s.key != "arch") else {
                continue;
            };
            let mut expanded = Vec::with_capacity(runs.len() * setting.values.len());
            for (arch, flags) in runs {
                if !R::applies(arch, argument) {
                    expanded.push((arch, flags));
                    continue;
                }
                for value in &setting.values {
                    let mut flags = flags.clone();
                    flags.extend(self.flags(&command, setting, value)?);
                    expanded.push((arch, flags));
                }
            }
            runs = expanded;
        }
        runs.iter()
            .map(|(_, flags)| self.request(flags, 0))
            .collect()
    }

    /// The flags that give `setting` the value `value`.
    fn flags(
        &self,
        command: &clap::Command,
        setting: &Setting,
        value: &toml::Value,
    ) -> Result<Vec<String>> {
        let argument = command
            .get_arguments()
            .find(|a| a.get_id() == setting.key.as_str())
            .expect("keys are checked on load");
        let flag = format!(
            "--{}",
            argument.get_long().expect("run settings are long flags")
        );
        let switch = matches!(argument.get_action(), clap::ArgAction::SetTrue);
        let invalid = |message: String| {
            RunError::Invalid(format!("{}, line {}: {message}", self.source, setting.line))
        };
        let text = match value {
            toml::Value::Boolean(on) if switch => return Ok(if *on { vec![flag] } else { vec![] }),
            _ if switch => {
                return Err(invalid(format!(
                    "`{}` is a switch: true or false",
                    setting.key
                )));
            }
            toml::Value::String(text) => text.clone(),
            toml::Value::Integer(n) => n.to_string(),
            // Rust prints the shortest decimal that reads back as the same f64.
            toml::Value::Float(x) => x.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(invalid(format!(
                    "`{}` takes a value or a list of values",
                    setting.key
                )));
            }
        };
        Ok(vec![flag, text])
    }

    /// Parse one run's flags; a bad value names the setting's line (`line` 0: the run's flags).
    fn request(&self, flags: &[String], line: usize) -> Result<R> {
        R::parse(flags).map_err(|e| {
            let message = e.render().to_string();
            let message = message
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            if line > 0 {
                RunError::Invalid(format!("{}, line {line}: {message}", self.source))
            } else {
                let run = flags.join(" ");
                RunError::Invalid(format!("{}: {message} (run: {run})", self.source))
            }
        })
    }
}

/// The keys a sweep file may set, for messages.
fn setting_keys<R: SweepRequest>() -> String {
    let command = R::command();
    let keys: Vec<&str> = command
        .get_arguments()
        .map(|a| a.get_id().as_str())
        .collect();
    keys.join(", ")
}

/// A table's keys as settings, checked to be the command's settings, with their lines (looked
/// up from line `from`, 1-based, on).
fn settings_of<R: SweepRequest>(
    table: toml::Table,
    text: &str,
    from: usize,
    invalid: &dyn Fn(usize, String) -> RunError,
) -> Result<Vec<Setting>> {
    let command = R::command();
    let mut settings = Vec::new();
    for (key, value) in table {
        let line = line_of(text, &key, from);
        if !command.get_arguments().any(|a| a.get_id() == key.as_str()) {
            return Err(invalid(
                line,
                format!(
                    "unknown setting `{key}` (the keys are `archzoo {}`'s flags with underscores: {})",
                    R::COMMAND,
                    setting_keys::<R>()
                ),
            ));
        }
        let values = match value {
            toml::Value::Array(values) if values.is_empty() => {
                return Err(invalid(line, format!("`{key}` has an empty list")));
            }
            toml::Value::Array(values) => values,
            value => vec![value],
        };
        settings.push(Setting { key, values, line });
    }
    Ok(settings)
}

/// The 1-based line where `key` is set in `text`, looking from line `from` (1-based) on (0 when
/// it cannot be found, e.g. inside an inline table).
fn line_of(text: &str, key: &str, from: usize) -> usize {
    text.lines()
        .skip(from.saturating_sub(1))
        .position(|line| {
            let line = line.trim_start();
            line.strip_prefix(key)
                .or_else(|| line.strip_prefix(&format!("\"{key}\"")))
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(0, |i| i + from.max(1))
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
            let target = &request.data_args.target;
            let key = (request.data.clone(), target.clone());
            if !series.contains_key(&key) {
                let loaded = runner::load_series(&request.data, data_dir, target)?;
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
    if let Some(failure) = read_json_if_exists::<Failure>(&failure_path(out, &run.run_id))? {
        return Ok(RunState::Failed(failure.reason));
    }
    Ok(match dir.checkpoint().epochs_done() {
        Some(epochs_done) => RunState::Paused { epochs_done },
        None => RunState::Pending,
    })
}

/// Completed runs under `out` stored under the id an earlier archzoo gave the same config (run ids
/// hash the config's JSON, whose layout has changed since: e.g. configs tagged by family before
/// they were tagged by architecture): `(stored folder name, the planned run's id)` for each run of
/// `plan` whose own folder is missing but whose config, read back, is the planned one. Folders
/// that do not hold a readable config are not runs of this sweep and are left alone.
pub fn renamed_runs(plan: &Plan, out: &Path) -> Result<Vec<(String, String)>> {
    let planned: std::collections::HashSet<&str> =
        plan.runs.iter().map(|r| r.run_id.as_str()).collect();
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(Vec::new());
    };
    let mut renamed = Vec::new();
    for entry in entries {
        let dir = entry.map_err(io_at(out))?.path();
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if planned.contains(name.as_str()) || !dir.join("summary.json").exists() {
            continue;
        }
        let Ok(config) = RunConfig::load(&dir.join("config.json")) else {
            continue;
        };
        let id = config.run_id();
        if id != name && planned.contains(id.as_str()) && !out.join(&id).exists() {
            renamed.push((name, id));
        }
    }
    renamed.sort();
    Ok(renamed)
}

/// Give each run found by [`renamed_runs`] its planned id (a rename: its files are kept as they
/// were written), so the sweep counts it done instead of training it again.
pub fn adopt_renamed_runs(out: &Path, renamed: &[(String, String)]) -> Result<()> {
    for (stored, id) in renamed {
        let (from, to) = (out.join(stored), out.join(id));
        std::fs::rename(&from, &to).map_err(io_at(&to))?;
    }
    Ok(())
}

/// Completed runs of `plan` found under the folders `sources` (each searched two levels deep:
/// `DIR/<run id>/` and `DIR/<group>/<run id>/`) that `out` lacks: `(their folder, the planned
/// run)`. A run id hashes the whole config, so the folder holds the numbers this sweep would
/// train (the same config gives the same numbers on the same backend); its data checksum must
/// match the data the sweep loaded. The first source holding an id wins.
pub fn reusable_runs<'a>(
    plan: &'a Plan,
    out: &Path,
    sources: &[PathBuf],
) -> Result<Vec<(PathBuf, &'a PlannedRun)>> {
    let mut found: HashMap<String, PathBuf> = HashMap::new();
    for source in sources {
        let mut folders = vec![source.clone()];
        if let Ok(entries) = std::fs::read_dir(source) {
            for entry in entries {
                let path = entry.map_err(io_at(source))?.path();
                if path.is_dir() && !path.join("config.json").exists() {
                    folders.push(path);
                }
            }
        }
        for folder in folders {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries {
                let path = entry.map_err(io_at(&folder))?.path();
                if path.join("summary.json").exists() {
                    let name = path
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    found.entry(name).or_insert(path);
                }
            }
        }
    }
    let mut reusable = Vec::new();
    for run in &plan.runs {
        let Some(path) = found.get(&run.run_id) else {
            continue;
        };
        if out.join(&run.run_id).join("summary.json").exists() {
            continue;
        }
        let config = RunConfig::load(&path.join("config.json"))?;
        let summary: Summary = read_json_if_exists(&path.join("summary.json"))?
            .ok_or_else(|| RunError::Invalid(format!("{}: no summary.json", path.display())))?;
        if config.run_id() != run.run_id {
            return Err(RunError::Invalid(format!(
                "{}: its config.json hashes to another id than the planned run {}",
                path.display(),
                run.run_id
            )));
        }
        let planned = &plan.data[run.data].sha256;
        if summary.data_sha256 != *planned {
            return Err(RunError::Invalid(format!(
                "{}: trained on data with sha256 {}, but this sweep's data has {}",
                path.display(),
                summary.data_sha256.as_deref().unwrap_or("none"),
                planned.as_deref().unwrap_or("none")
            )));
        }
        reusable.push((path.clone(), run));
    }
    Ok(reusable)
}

/// Copy the run folder `from` to `out/<run id>` (its files, not its subfolders), through a
/// temporary folder and a rename, so the sweep counts it done.
pub fn reuse_run(from: &Path, out: &Path, run_id: &str) -> Result<()> {
    let tmp = out.join(format!(".{run_id}.reuse.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(io_at(&tmp))?;
    for entry in std::fs::read_dir(from).map_err(io_at(from))? {
        let path = entry.map_err(io_at(from))?.path();
        if path.is_file() {
            let to = tmp.join(path.file_name().unwrap_or_default());
            std::fs::copy(&path, &to).map_err(io_at(&to))?;
        }
    }
    let to = out.join(run_id);
    std::fs::rename(&tmp, &to).map_err(io_at(&to))
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
pub fn error_chain(error: &dyn std::error::Error) -> String {
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
        SweepFile::<RunRequest>::parse(text, "test.toml").expect("valid sweep")
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
        let error =
            SweepFile::<RunRequest>::parse("arch = \"dlinear\"\nlearning_rate = 1", "s.toml")
                .unwrap_err()
                .to_string();
        assert!(
            error.contains("s.toml, line 2") && error.contains("`learning_rate`"),
            "{error}"
        );
        assert!(parse("seed = 1").requests().is_err());
        let error = SweepFile::<RunRequest>::parse("arch = \"mamba\"\nd_model = 0", "test.toml")
            .unwrap_err()
            .to_string();
        assert!(error.contains("--d-model"), "{error}");
        let error =
            SweepFile::<RunRequest>::parse("arch = \"transformer\"\ncausal = 1", "test.toml")
                .unwrap_err()
                .to_string();
        assert!(
            error.contains("line 2") && error.contains("switch"),
            "{error}"
        );
    }

    /// `[[grid]]` tables: a union of products, each joined to the top level; a key set both at
    /// the top and in a grid, or unknown inside a grid, is an error naming its line.
    #[test]
    fn grids_are_a_union_of_products() {
        let file = parse(
            r#"
            arch = "mamba"
            data = "ETTh1"

            [[grid]]
            pred_len = 96
            seed = [1, 2, 3]

            [[grid]]
            pred_len = [192, 336]
            seed = 1
            "#,
        );
        let runs = file.requests().unwrap();
        let points: Vec<(usize, u64)> = runs.iter().map(|r| (r.pred_len, r.seed)).collect();
        assert_eq!(points, [(96, 1), (96, 2), (96, 3), (192, 1), (336, 1)]);
        let error = SweepFile::<RunRequest>::parse(
            "arch = \"mamba\"\nseed = 1\n\n[[grid]]\npred_len = 96\n\n[[grid]]\nseed = 2\n",
            "g.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("g.toml, line 8") && error.contains("`seed`"),
            "{error}"
        );
        let error = SweepFile::<RunRequest>::parse(
            "arch = \"mamba\"\n[[grid]]\nseed = 1\n[[grid]]\nseed = 2\nwidth = 3\n",
            "g.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("g.toml, line 6") && error.contains("`width`"),
            "{error}"
        );
        let error =
            SweepFile::<RunRequest>::parse("arch = \"mamba\"\n[[grid]]\nd_model = 0\n", "g.toml")
                .unwrap_err()
                .to_string();
        assert!(error.contains("g.toml, line 3"), "{error}");
    }

    /// Every flag of `train` is a sweep key, switches and value enums included.
    #[test]
    fn every_train_setting_can_be_swept() {
        let file = parse(
            r#"
            arch = "transformer"
            norm = ["layer-norm", "batch-norm"]
            post_norm = [false, true]
            features = "S"
            split = "ratio"
            lr = 1e-4
            "#,
        );
        let runs = file.requests().unwrap();
        assert_eq!(runs.len(), 4);
        assert!(
            runs.iter()
                .all(|r| r.lr == Some(1e-4) && r.data_args.target == "OT")
        );
        assert_eq!(runs.iter().filter(|r| r.model.post_norm).count(), 2);
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
