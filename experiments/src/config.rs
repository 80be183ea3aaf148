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
    #[serde(deserialize_with = "legacy::arch")]
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

/// Run configs written before the one-level registry (committed results and earlier runs)
/// tagged the model by family, `{"Patch": {…, "backbone": {"Mamba": {…}}}}` or
/// `{"Linear": {"kind": "DLinear", …}}`; they read as the current form, `{"mamba": {…}}`. The
/// model is the same (same fields, same values), so a replay gives the same numbers; its run id
/// is the current form's hash.
mod legacy {
    use architectures::{
        ArchConfig, GriffinConfig, LinearForecasterConfig, LinearKind, MambaConfig,
        PatchForecasterConfig, Patching, RepeatConfig, TemporalKind, TransformerConfig,
    };
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    enum Family {
        Linear(LinearForecasterConfig),
        Repeat(RepeatConfig),
        Patch(Patch),
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Patch {
        seq_len: usize,
        pred_len: usize,
        channels: usize,
        patch_len: usize,
        stride: usize,
        revin: bool,
        head_dropout: f64,
        backbone: Backbone,
    }

    #[derive(Deserialize)]
    enum Backbone {
        #[serde(deserialize_with = "transformer")]
        Transformer(TransformerConfig),
        Mamba(MambaConfig),
        Griffin(GriffinConfig),
    }

    /// A Transformer written before `norm` and `post_norm` existed ran pre-norm LayerNorm blocks,
    /// what those fields say when absent.
    fn transformer<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<TransformerConfig, D::Error> {
        let mut value = serde_json::Value::deserialize(deserializer)?;
        if let Some(fields) = value.as_object_mut() {
            fields.entry("norm").or_insert("LayerNorm".into());
            fields.entry("post_norm").or_insert(false.into());
        }
        serde_json::from_value(value).map_err(serde::de::Error::custom)
    }

    /// `arch` of a config.json, in either form.
    pub fn arch<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ArchConfig, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let is_legacy = value.as_object().is_some_and(|o| {
            o.len() == 1
                && ["Linear", "Repeat", "Patch"]
                    .iter()
                    .any(|k| o.contains_key(*k))
        });
        let converted = if is_legacy {
            serde_json::from_value::<Family>(value).map(convert)
        } else {
            serde_json::from_value::<ArchConfig>(value)
        };
        converted.map_err(serde::de::Error::custom)
    }

    fn convert(family: Family) -> ArchConfig {
        match family {
            Family::Linear(c) => match c.kind {
                LinearKind::Linear => ArchConfig::Linear(c),
                LinearKind::NLinear => ArchConfig::Nlinear(c),
                LinearKind::DLinear => ArchConfig::Dlinear(c),
                LinearKind::RLinear => ArchConfig::Rlinear(c),
            },
            Family::Repeat(c) => ArchConfig::Repeat(c),
            Family::Patch(p) => {
                let patching = Patching {
                    seq_len: p.seq_len,
                    pred_len: p.pred_len,
                    channels: p.channels,
                    patch_len: p.patch_len,
                    stride: p.stride,
                    revin: p.revin,
                    head_dropout: p.head_dropout,
                };
                match p.backbone {
                    Backbone::Transformer(backbone) => {
                        ArchConfig::Transformer(PatchForecasterConfig { patching, backbone })
                    }
                    Backbone::Mamba(backbone) => {
                        ArchConfig::Mamba(PatchForecasterConfig { patching, backbone })
                    }
                    Backbone::Griffin(backbone) => {
                        let griffin = backbone.pattern.contains(&TemporalKind::Attention);
                        let config = PatchForecasterConfig { patching, backbone };
                        if griffin {
                            ArchConfig::Griffin(config)
                        } else {
                            ArchConfig::Hawk(config)
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed run config of the scaling sweep (written in the family-tagged form, the
    /// folders since renamed to the current ids by the sweep's adoption) loads, as the run its
    /// folder names, and writes back in the current form.
    #[test]
    fn committed_legacy_configs_load_as_their_architecture() {
        let runs =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/forecasting/ETTh1/scaling");
        let (mut loaded, mut legacy) = (0, 0);
        for entry in std::fs::read_dir(&runs).unwrap() {
            let path = entry.unwrap().path().join("config.json");
            if !path.exists() {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            legacy += usize::from(text.contains("\"Linear\"") || text.contains("\"Patch\""));
            let config = RunConfig::load(&path).unwrap();
            let folder = path
                .parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy();
            assert_eq!(config.run_id(), folder, "{}", path.display());
            let json = serde_json::to_value(&config).unwrap();
            assert!(
                json["arch"][config.arch.name().as_str()].is_object(),
                "{json}"
            );
            let again: RunConfig = serde_json::from_value(json).unwrap();
            assert_eq!(again.run_id(), config.run_id());
            loaded += 1;
        }
        assert!(
            loaded >= 60 && legacy == loaded,
            "{loaded} configs, {legacy} legacy"
        );
    }
}
