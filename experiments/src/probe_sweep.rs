//! Probe sweeps: a sweep file that sets `task` ([`crate::sweep::is_probe_sweep`]) expands into
//! probe runs ([`ProbeRequest`]) instead of forecasting runs, with the same rules as
//! [`crate::sweep`]: the product of the lists (unions of `[[grid]]`s), a model option only for the
//! architectures whose token model takes it, runs deduplicated by id, finished runs skipped,
//! failures recorded in `failed.json` without stopping the sweep, `--shard i/n`, and
//! `ledger.csv` rewritten atomically after each run. The time limit pauses the run in training at
//! the end of the first epoch past it (its checkpoint kept) and starts no further run; the same
//! command resumes it.
//!
//! A list of learning rates is the built-in learning-rate sweep: every lr's run is kept, and the
//! report takes the best per configuration (Zoology reports the best of 4).

use std::path::Path;
use std::time::Instant;

use crate::error::{Result, io_at};
use crate::files::{csv_text, read_json_if_exists, write_json_atomic, write_text_atomic};
use crate::probe::{ProbeConfig, ProbeRequest};
use crate::probe_train::{ProbeDir, ProbeSummary, ProbeTrained, run_probe};
use crate::progress::Progress;
use crate::runner::RunOptions;
use crate::sweep::{Failure, Shard, SweepFile, SweepOptions, error_chain};

/// One planned probe run.
#[derive(Clone, Debug)]
pub struct PlannedProbe {
    /// Its run id.
    pub run_id: String,
    /// Its full config.
    pub config: ProbeConfig,
}

/// Every run of a probe sweep, resolved.
pub struct ProbePlan {
    /// The runs, duplicates removed.
    pub runs: Vec<PlannedProbe>,
}

impl ProbePlan {
    /// Resolve `file`'s runs; a setting that does not apply or is out of range is reported with
    /// the run it belongs to, before anything runs.
    pub fn new(file: &SweepFile<ProbeRequest>) -> Result<Self> {
        let mut seen = std::collections::HashSet::new();
        let mut runs = Vec::new();
        for request in file.requests()? {
            let config = request.resolve().map_err(|e| {
                crate::RunError::Invalid(format!(
                    "{} {:?} seed {}: {e}",
                    request.arch, request.task, request.seed
                ))
            })?;
            let run_id = config.run_id();
            if seen.insert(run_id.clone()) {
                runs.push(PlannedProbe { run_id, config });
            }
        }
        Ok(Self { runs })
    }

    /// The runs of `shard`.
    pub fn shard(&self, shard: Shard) -> Vec<&PlannedProbe> {
        self.runs.iter().filter(|r| shard.owns(&r.run_id)).collect()
    }
}

/// Where a probe run stands on disk.
#[derive(Clone, Debug)]
pub enum ProbeState {
    /// `summary.json` exists.
    Done(Box<ProbeSummary>),
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

/// The state of `run` under `out`.
pub fn state(out: &Path, run: &PlannedProbe) -> Result<ProbeState> {
    let dir = ProbeDir::new(out, &run.config);
    if let Some(summary) = dir.completed()? {
        return Ok(ProbeState::Done(Box::new(summary)));
    }
    if let Some(failure) = read_json_if_exists::<Failure>(&dir.path.join("failed.json"))? {
        return Ok(ProbeState::Failed(failure.reason));
    }
    Ok(match dir.checkpoint().epochs_done() {
        Some(epochs_done) => ProbeState::Paused { epochs_done },
        None => ProbeState::Pending,
    })
}

/// What happened to one probe run in this invocation.
#[derive(Clone, Debug)]
pub enum ProbeOutcome {
    /// Trained now.
    Completed(Box<ProbeSummary>),
    /// Already done, or failed before (without `retry_failed`).
    Skipped(ProbeState),
    /// Failed now, with the reason.
    Failed(String),
    /// Paused by the time limit after `epoch` of `epochs`; the sweep stops here.
    Paused {
        /// Epochs completed.
        epoch: usize,
        /// Epochs configured.
        epochs: usize,
    },
}

/// Run the shard's runs of `plan` under `out`, calling `event` after each; the outcomes in run
/// order. Never stops at a failed run; at the time limit the run in training pauses and no
/// further run starts (the runs not reached have no outcome).
pub fn run(
    plan: &ProbePlan,
    options: SweepOptions,
    out: &Path,
    progress: &mut dyn Progress,
    mut event: impl FnMut(&PlannedProbe, &ProbeOutcome),
) -> Result<Vec<ProbeOutcome>> {
    let began = Instant::now();
    let mut trained_any = false;
    let mut outcomes = Vec::new();
    for planned in plan.shard(options.shard) {
        let time_left = options
            .time_limit
            .map(|limit| limit.saturating_sub(began.elapsed()));
        let outcome = match state(out, planned)? {
            ProbeState::Done(summary) => ProbeOutcome::Skipped(ProbeState::Done(summary)),
            ProbeState::Failed(reason) if !options.retry_failed => {
                ProbeOutcome::Skipped(ProbeState::Failed(reason))
            }
            // The budget is spent: leave this run (and the rest) for the next invocation.
            _ if trained_any && time_left.is_some_and(|t| t.is_zero()) => break,
            ProbeState::Failed(_) | ProbeState::Paused { .. } | ProbeState::Pending => {
                trained_any = true;
                let failed = out.join(&planned.run_id).join("failed.json");
                let options = RunOptions {
                    force: false,
                    time_limit: time_left,
                };
                match run_probe(&planned.config, out, options, progress) {
                    Ok(ProbeTrained::Finished(summary)) => {
                        if failed.exists() {
                            std::fs::remove_file(&failed).map_err(io_at(&failed))?;
                        }
                        ProbeOutcome::Completed(summary)
                    }
                    Ok(ProbeTrained::Paused { epoch, epochs }) => {
                        ProbeOutcome::Paused { epoch, epochs }
                    }
                    Err(error) => {
                        let reason = error_chain(&error);
                        let dir = out.join(&planned.run_id);
                        std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
                        let failure = Failure {
                            run_id: planned.run_id.clone(),
                            reason: reason.clone(),
                        };
                        write_json_atomic(&failed, &failure)?;
                        ProbeOutcome::Failed(reason)
                    }
                }
            }
        };
        if !matches!(outcome, ProbeOutcome::Skipped(_)) {
            write_ledger(plan, out)?;
        }
        event(planned, &outcome);
        let paused = matches!(outcome, ProbeOutcome::Paused { .. });
        outcomes.push(outcome);
        if paused {
            break;
        }
    }
    write_ledger(plan, out)?;
    Ok(outcomes)
}

/// Columns of a probe sweep's `ledger.csv`.
pub const LEDGER_COLUMNS: [&str; 15] = [
    "run_id",
    "state",
    "arch",
    "task",
    "seq_len",
    "vocab",
    "d_model",
    "lr",
    "seed",
    "backbone_params",
    "state_floats",
    "accuracy",
    "epochs_run",
    "train_seconds",
    "reason",
];

/// Rewrite `out/ledger.csv`: one row per run of the whole sweep (every shard).
pub fn write_ledger(plan: &ProbePlan, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).map_err(io_at(out))?;
    let mut rows = Vec::with_capacity(plan.runs.len());
    for run in &plan.runs {
        let c = &run.config;
        let mut row = vec![
            run.run_id.clone(),
            String::new(),
            c.model.name().to_string(),
            c.task.name().to_string(),
            c.task.seq_len().to_string(),
            c.task.vocab().to_string(),
            c.model.d_model().to_string(),
            c.train.lr.to_string(),
            c.seed.to_string(),
        ];
        let (state, rest): (&str, [String; 6]) = match state(out, run)? {
            ProbeState::Done(s) => (
                "done",
                [
                    s.backbone_params.to_string(),
                    s.state_floats.to_string(),
                    s.accuracy.to_string(),
                    s.epochs_run.to_string(),
                    format!("{:.1}", s.train_seconds),
                    String::new(),
                ],
            ),
            ProbeState::Failed(reason) => {
                let mut rest: [String; 6] = Default::default();
                rest[5] = reason;
                ("failed", rest)
            }
            ProbeState::Paused { epochs_done } => {
                let mut rest: [String; 6] = Default::default();
                rest[3] = epochs_done.to_string();
                ("paused", rest)
            }
            ProbeState::Pending => ("pending", Default::default()),
        };
        row[1] = state.into();
        row.extend(rest);
        rows.push(row);
    }
    write_text_atomic(&out.join("ledger.csv"), &csv_text(&LEDGER_COLUMNS, rows))
}
