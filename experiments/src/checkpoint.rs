//! Training checkpoints: a run that stops (killed, out of its time limit) resumes from the end of
//! its last completed epoch and finishes with bit-for-bit the numbers of an uninterrupted run.
//! Forecasting runs ([`TrainState`]) and probe runs ([`crate::probe_train::ProbeLoopState`])
//! share the layout; each stores its own loop state.
//!
//! Layout under `<run>/checkpoint/`:
//! - `state.json` (a [`LoopState`]): the epochs completed, their records, early-stopping state;
//! - `model-<e>.bpk`: the training weights after epoch `e` (burnpack, full precision, with
//!   BatchNorm's running statistics);
//! - `optimizer-<e>.bpk`: Adam's moments and step counts after epoch `e`;
//! - `best-<b>.bpk`: the best-validation weights, from epoch `b`.
//!
//! Every file goes through a temporary file and a rename, and `state.json` (which names the files)
//! last, so a checkpoint is always the previous one or the new one; files no longer named are
//! removed afterwards.
//!
//! Two pieces of state are replayed rather than stored: the window order (epoch `e` shuffles the
//! previous order with the seeded ChaCha stream, so `e` shuffles of the identity restore it) and
//! the device generator that draws dropout masks (burn keeps it private; its state is the seed
//! plus the number of mask seeds drawn since, see `architectures::blocks::dropout`).

use std::path::{Path, PathBuf};

use burn::optim::OptimizerRecord;
use burn::store::{ModuleRecord, RecordError};
use burn::tensor::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Result, RunError, io_at};
use crate::evaluate::EpochRecord;
use crate::files::{read_json_if_exists, write_bytes_atomic, write_json_atomic};

/// The loop state of a training run after a completed epoch (`state.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Run id the checkpoint belongs to.
    pub run_id: String,
    /// Commit of the code that wrote the checkpoint.
    pub git_commit: String,
    /// Epochs completed.
    pub epoch: usize,
    /// The records of epochs `1..=epoch`, as `metrics.jsonl` holds them.
    pub records: Vec<EpochRecord>,
    /// Epoch of the best-validation weights (their validation metrics are recomputed on resume
    /// rather than read back from JSON, which need not return the exact f64 written).
    pub best_epoch: usize,
    /// Epochs since the validation MSE last improved.
    pub epochs_without_improvement: usize,
    /// Dropout mask seeds drawn from the device generator since the run seeded it.
    pub dropout_draws: u64,
    /// Seconds of training so far, over every segment.
    pub train_seconds: f64,
    /// Epochs after which the run was resumed, in order.
    pub resumed_after: Vec<usize>,
}

/// What a training loop stores in `state.json`: it names the epoch of the training weights and
/// of the best weights, which select the files beside it.
pub trait LoopState: Serialize + DeserializeOwned {
    /// Epochs completed (the training weights' and the optimizer's file).
    fn epoch(&self) -> usize;
    /// Epoch of the best weights (their file).
    fn best_epoch(&self) -> usize;
}

impl LoopState for TrainState {
    fn epoch(&self) -> usize {
        self.epoch
    }

    fn best_epoch(&self) -> usize {
        self.best_epoch
    }
}

/// The one field [`Checkpoint::epochs_done`] reads from any loop state.
#[derive(Deserialize)]
struct EpochsDone {
    epoch: usize,
}

/// A checkpoint read back: the state and the records to load into a freshly initialised model
/// and optimizer.
pub struct Saved<S = TrainState> {
    /// The checkpoint's `state.json`, which errors about it name.
    pub path: PathBuf,
    /// Loop state.
    pub state: S,
    /// Training weights.
    pub model: ModuleRecord,
    /// Optimizer state.
    pub optimizer: OptimizerRecord,
    /// Best-validation weights.
    pub best: ModuleRecord,
}

/// The records one [`Checkpoint::save`] writes.
pub struct ToSave<S = TrainState> {
    /// Loop state after the epoch.
    pub state: S,
    /// Training weights.
    pub model: ModuleRecord,
    /// Optimizer state.
    pub optimizer: OptimizerRecord,
    /// Best-validation weights, when this epoch improved them (otherwise the stored ones stay).
    pub best: Option<ModuleRecord>,
}

/// The checkpoint directory of one run.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    dir: PathBuf,
}

impl Checkpoint {
    /// The checkpoint of the run whose directory is `run_dir`.
    pub fn new(run_dir: &Path) -> Self {
        Self {
            dir: run_dir.join("checkpoint"),
        }
    }

    /// `state.json`.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn file(&self, kind: &str, epoch: usize) -> PathBuf {
        self.dir.join(format!("{kind}-{epoch}.bpk"))
    }

    /// The stored checkpoint, if there is one.
    pub fn load<S: LoopState>(&self) -> Result<Option<Saved<S>>> {
        let Some(state) = read_json_if_exists::<S>(&self.state_path())? else {
            return Ok(None);
        };
        let path = self.state_path();
        let model = self.read(&self.file("model", state.epoch()), ModuleRecord::from_bytes)?;
        let optimizer = self.read(
            &self.file("optimizer", state.epoch()),
            OptimizerRecord::from_bytes,
        )?;
        let best = self.read(
            &self.file("best", state.best_epoch()),
            ModuleRecord::from_bytes,
        )?;
        Ok(Some(Saved {
            path,
            state,
            model,
            optimizer,
            best,
        }))
    }

    fn read<T>(
        &self,
        path: &Path,
        parse: impl FnOnce(Bytes) -> Result<T, RecordError>,
    ) -> Result<T> {
        let bytes = std::fs::read(path).map_err(io_at(path))?;
        parse(Bytes::from_bytes_vec(bytes)).map_err(|error| RunError::Checkpoint {
            path: path.to_path_buf(),
            message: error.to_string(),
        })
    }

    /// The checkpoint a run resumes from: the stored one, or none when `force` (which deletes
    /// it, so the run starts over).
    pub fn resume<S: LoopState>(&self, force: bool) -> Result<Option<Saved<S>>> {
        if force {
            self.remove()?;
            Ok(None)
        } else {
            self.load()
        }
    }

    /// Write the checkpoint after `saved.state.epoch`, then remove the files it replaces.
    pub fn save<S: LoopState>(&self, saved: ToSave<S>) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(io_at(&self.dir))?;
        let (epoch, best_epoch) = (saved.state.epoch(), saved.state.best_epoch());
        self.write(&self.file("model", epoch), saved.model.into_bytes())?;
        self.write(&self.file("optimizer", epoch), saved.optimizer.into_bytes())?;
        if let Some(best) = saved.best {
            self.write(&self.file("best", best_epoch), best.into_bytes())?;
        }
        write_json_atomic(&self.state_path(), &saved.state)?;
        let keep = [
            self.file("model", epoch),
            self.file("optimizer", epoch),
            self.file("best", best_epoch),
        ];
        for entry in std::fs::read_dir(&self.dir).map_err(io_at(&self.dir))? {
            let path = entry.map_err(io_at(&self.dir))?.path();
            if path.extension().is_some_and(|e| e == "bpk") && !keep.contains(&path) {
                std::fs::remove_file(&path).map_err(io_at(&path))?;
            }
        }
        Ok(())
    }

    fn write(&self, path: &Path, bytes: Result<Bytes, RecordError>) -> Result<()> {
        let bytes = bytes.map_err(|error| RunError::Checkpoint {
            path: path.to_path_buf(),
            message: error.to_string(),
        })?;
        write_bytes_atomic(path, &bytes)
    }

    /// The epochs the stored checkpoint has completed; `None` when there is none, or when its
    /// `state.json` cannot be read (resuming then reports why, see [`Checkpoint::load`]).
    pub fn epochs_done(&self) -> Option<usize> {
        read_json_if_exists::<EpochsDone>(&self.state_path())
            .ok()
            .flatten()
            .map(|state| state.epoch)
    }

    /// Delete the checkpoint (the run completed, or starts over).
    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                Err(io_at(&self.dir)(error))
            }
            _ => Ok(()),
        }
    }
}
