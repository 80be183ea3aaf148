//! Training presets of PROTOCOL.md: `tslib` (Time-Series-Library's long-term forecasting recipe)
//! and `ltsf` (LTSF-Linear's per-dataset recipe for its linear models).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A named training recipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// TSLib: L = 96, Adam lr 1e-4, batch 32, 10 epochs, lr halving, patience 3.
    Tslib,
    /// LTSF-Linear: L = 336, Adam with per-dataset lr and batch, 10 epochs, lr halving, patience 3.
    Ltsf,
}

/// What a preset fixes for one dataset and horizon; command-line flags override each field.
#[derive(Clone, Copy, Debug, PartialEq)]
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
}

impl Preset {
    /// The command-line spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tslib => "tslib",
            Self::Ltsf => "ltsf",
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
                }
            }
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
