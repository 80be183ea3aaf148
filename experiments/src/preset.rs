//! Training presets of PROTOCOL.md: `tslib` (Time-Series-Library's long-term forecasting recipe)
//! and `ltsf` (LTSF-Linear's per-dataset recipe for its linear models).

use std::fmt;

use architectures::{ModelOptions, NormKind};
use serde::{Deserialize, Serialize};

/// A named training recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// TSLib: L = 96, Adam lr 1e-4, batch 32, 10 epochs, lr halving, patience 3.
    Tslib,
    /// LTSF-Linear: L = 336, Adam with per-dataset lr and batch, 10 epochs, lr halving, patience 3.
    Ltsf,
    /// PatchTST/42's official ETTh1 recipe: L = 336, 3 layers, 4 heads, d_model 16, d_ff 128,
    /// dropout 0.3, post-norm BatchNorm blocks, batch 128, lr 1e-4, 100 epochs, schedule type3,
    /// patience 100.
    Patchtst,
}

/// Learning-rate schedule by epoch (TSLib / PatchTST `adjust_learning_rate`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `type1`: called after each epoch with `lr0 · 0.5^(epoch − 1)`: epochs 1 and 2 at `lr0`,
    /// then halved every epoch.
    Type1,
    /// `type3`: `lr0` while the adjusted epoch is below 3, then `lr0 · 0.9^(epoch − 3)`.
    Type3,
}

impl LrSchedule {
    /// Learning rate of 1-based `epoch`. The reference adjusts after epoch `e` (0-based) with
    /// argument `e + 1`, so 1-based epoch `k ≥ 2` trains at the value for argument `k − 1`.
    pub fn lr(self, lr0: f64, epoch: usize) -> f64 {
        let adjusted = epoch.saturating_sub(1).max(1) as i32; // the argument in force
        match self {
            Self::Type1 => lr0 * 0.5f64.powi(adjusted - 1),
            Self::Type3 if adjusted < 3 => lr0,
            Self::Type3 => lr0 * 0.9f64.powi(adjusted - 3),
        }
    }
}

/// What a preset fixes for one dataset and horizon; command-line flags override each field.
#[derive(Clone, Debug, PartialEq)]
pub struct PresetValues {
    /// Lookback `L`.
    pub seq_len: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Training batch size.
    pub batch_size: usize,
    /// Maximum epochs.
    pub epochs: usize,
    /// Early-stopping patience (epochs without validation improvement).
    pub patience: usize,
    /// Constant `1/L` initial weights for DLinear (TSLib's `models/DLinear.py` does this).
    pub dlinear_mean_init: bool,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Model hyperparameters the preset fixes (flags override them).
    pub model: ModelOptions,
}

impl Preset {
    /// The command-line spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tslib => "tslib",
            Self::Ltsf => "ltsf",
            Self::Patchtst => "patchtst",
        }
    }

    /// One line for `archzoo list`.
    pub fn about(self) -> &'static str {
        match self {
            Self::Tslib => {
                "Time-Series-Library: L=96, Adam 1e-4, batch 32, 10 epochs, lr halving, patience 3"
            }
            Self::Ltsf => {
                "LTSF-Linear: L=336, Adam with per-dataset lr/batch (ETTh1 0.005/32, ETTh2 0.05/32, ETTm1 1e-4/8, ETTm2 1e-3|0.01/32), 10 epochs, patience 3"
            }
            Self::Patchtst => {
                "PatchTST/42 ETTh1 recipe: L=336, 3 layers, 4 heads, d_model 16, d_ff 128, dropout 0.3, post-norm BatchNorm blocks, batch 128, lr 1e-4, 100 epochs, type3 schedule, patience 100"
            }
        }
    }

    /// Values for `dataset` (a known name, a file stem or `synthetic`) at horizon `pred_len`.
    pub fn values(self, dataset: &str, pred_len: usize) -> PresetValues {
        let illness = dataset.eq_ignore_ascii_case("illness") || dataset == "national_illness";
        match self {
            Self::Tslib => PresetValues {
                seq_len: if illness { 36 } else { 96 },
                lr: 1e-4,
                batch_size: 32,
                epochs: 10,
                patience: 3,
                dlinear_mean_init: true,
                schedule: LrSchedule::Type1,
                model: ModelOptions::default(),
            },
            Self::Ltsf => {
                // LTSF-Linear scripts/EXP-LongForecasting/Linear/*.sh (reference/forecasting.md §1.8).
                let (batch_size, lr) = match dataset {
                    "ETTh1" => (32, 0.005),
                    "ETTh2" => (32, 0.05),
                    "ETTm1" => (8, 1e-4),
                    "ETTm2" => (32, if pred_len <= 192 { 1e-3 } else { 0.01 }),
                    "weather" => (16, 1e-4),
                    "exchange_rate" => (if pred_len <= 192 { 8 } else { 32 }, 5e-4),
                    "electricity" => (16, 1e-3),
                    "traffic" => (16, 0.05),
                    _ if illness => (32, 0.01),
                    _ => (32, 1e-4), // run_longExp.py defaults
                };
                PresetValues {
                    seq_len: if illness { 104 } else { 336 },
                    lr,
                    batch_size,
                    epochs: 10,
                    patience: 3,
                    dlinear_mean_init: false,
                    schedule: LrSchedule::Type1,
                    model: ModelOptions::default(),
                }
            }
            // yuqinie98/PatchTST PatchTST_supervised/scripts/PatchTST/etth1.sh @ 204c21e.
            Self::Patchtst => PresetValues {
                seq_len: if illness { 104 } else { 336 },
                lr: 1e-4,
                batch_size: 128,
                epochs: 100,
                patience: 100,
                dlinear_mean_init: false,
                schedule: LrSchedule::Type3,
                model: ModelOptions {
                    d_model: Some(16),
                    layers: Some(3),
                    heads: Some(4),
                    d_ff: Some(128),
                    dropout: Some(0.3),
                    patch_len: Some(16),
                    stride: Some(8),
                    // PatchTST_backbone.py's TSTEncoderLayer defaults: pre_norm=False,
                    // norm='BatchNorm'.
                    norm: Some(NormKind::BatchNorm),
                    post_norm: true,
                    ..ModelOptions::default()
                },
            },
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::{LrSchedule, Preset};

    #[test]
    fn type1_schedule_matches_tslib() {
        // TSLib: adjust_learning_rate(epoch + 1) after each 0-based epoch, lr0 * 0.5^(e - 1).
        let lrs: Vec<f64> = (1..=5).map(|e| LrSchedule::Type1.lr(1.0, e)).collect();
        assert_eq!(lrs, [1.0, 1.0, 0.5, 0.25, 0.125]);
    }

    /// The preset builds PatchTST's encoder: its sizes, bidirectional, post-norm BatchNorm.
    #[test]
    fn patchtst_builds_patchtsts_encoder() {
        use architectures::{ArchConfig, ArchName, ModelOptions, NormKind, TaskShape};
        let values = Preset::Patchtst.values("ETTh1", 96);
        let task = TaskShape {
            seq_len: values.seq_len,
            pred_len: 96,
            channels: 7,
        };
        let options =
            ModelOptions::default().with_defaults(&values.model, &ArchName::Transformer.accepted());
        let config = ArchName::Transformer.config(task, &options).unwrap();
        let ArchConfig::Transformer(adapter) = config else {
            panic!("a Transformer")
        };
        let encoder = adapter.backbone;
        assert_eq!(
            (
                encoder.d_model,
                encoder.n_layers,
                encoder.n_heads,
                encoder.d_ff
            ),
            (16, 3, 4, 128)
        );
        assert_eq!(encoder.norm, NormKind::BatchNorm);
        assert!(encoder.post_norm && !encoder.causal);
        assert_eq!(
            (
                adapter.patching.seq_len,
                adapter.patching.patch_len,
                adapter.patching.stride
            ),
            (336, 16, 8)
        );
    }

    #[test]
    fn type3_schedule_matches_patchtst() {
        // lr0 while the argument is below 3, then 0.9^(arg - 3); argument in force = epoch - 1.
        let lrs: Vec<f64> = (1..=6).map(|e| LrSchedule::Type3.lr(1.0, e)).collect();
        let expected = [1.0, 1.0, 1.0, 1.0, 0.9, 0.81];
        for (got, want) in lrs.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{lrs:?}");
        }
    }
}
