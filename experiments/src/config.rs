//! A run is its serialized [`RunConfig`]: everything needed to replay it, hashed into its id.

use std::path::Path;

use architectures::ArchConfig;
use datasets::{Features, SplitRule};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backend::BackendName;
use crate::error::{Result, RunError, io_at};
use crate::preset::{LrSchedule, Preset};

/// Which data a forecasting run uses and how it is cut.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `synthetic`, a known dataset name (resolved under the data folder) or a CSV path.
    pub data: String,
    /// Target column, moved last.
    pub target: String,
    /// Feature mode.
    pub features: Features,
    /// Split rule.
    pub split: SplitRule,
    /// Lookback `L`.
    pub seq_len: usize,
    /// Horizon `H`.
    pub pred_len: usize,
}

/// How a model is trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The preset the values came from (flags may have overridden some).
    pub preset: Preset,
    /// Initial Adam learning rate.
    pub lr: f64,
    /// Learning-rate schedule by epoch.
    pub schedule: LrSchedule,
    /// Training batch size.
    pub batch_size: usize,
    /// Evaluation batch size (does not change the metrics: every window counts once).
    pub eval_batch_size: usize,
    /// Maximum epochs.
    pub epochs: usize,
    /// Stop after this many epochs without a better validation loss.
    pub patience: usize,
    /// Adam's epsilon (PyTorch's default, 1e-8, as in the reference recipes; burn's is 1e-5).
    pub adam_epsilon: f64,
}

/// Everything that determines a run's numbers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The model.
    pub arch: ArchConfig,
    /// The data.
    pub data: DataConfig,
    /// The training recipe.
    pub train: TrainConfig,
    /// Seed of initialisation, shuffling and dropout.
    pub seed: u64,
    /// Backend the run executes on (numbers are reproducible per backend).
    pub backend: BackendName,
}

impl RunConfig {
    /// Readable, unique id: `<arch>-<data>-L<seq>-H<pred>-s<seed>-<hash8>`, where the hash covers
    /// the whole serialized config, so no field can be left out of it.
    pub fn run_id(&self) -> String {
        let json = serde_json::to_string(self).expect("RunConfig serializes");
        let hash = format!("{:x}", Sha256::digest(json.as_bytes()));
        let data = datasets::DataSource::parse(&self.data.data)
            .map(|s| s.name())
            .unwrap_or_else(|_| "data".into());
        let data: String = data
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!(
            "{}-{}-L{}-H{}-s{}-{}",
            self.arch.name(),
            data,
            self.data.seq_len,
            self.data.pred_len,
            self.seed,
            &hash[..8]
        )
    }

    /// Read a `config.json` written by a previous run.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io_at(path))?;
        serde_json::from_str(&text).map_err(|source| RunError::Json {
            path: path.to_path_buf(),
            source,
        })
    }
}
