//! Leaderboards from stored results only: `archzoo report DIR` reads every `DIR/*/summary.json`
//! (and its `config.json`) and writes `leaderboard.md` and `leaderboard.csv`.
//!
//! Runs are grouped into tables by setting (dataset, features, L, H) and, within a table, into
//! rows by their whole config except the seed: one row per architecture and size, with test
//! MSE and MAE as mean ± sample std over its seeds, parameters, the median training time, the
//! best mean per metric marked, and the published numbers (reference/forecasting.md §3, the
//! papers' own tables, as PROTOCOL.md lists them) for the settings that match.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::backend::BackendName;
use crate::config::RunConfig;
use crate::error::{Result, RunError, io_at};
use crate::results::Summary;

/// A published result: `model` at lookback `seq_len` on `dataset` (M) at horizon `pred_len`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Published {
    /// The paper's model name.
    pub model: &'static str,
    /// The archzoo architecture that reproduces it.
    pub arch: &'static str,
    /// Dataset.
    pub dataset: &'static str,
    /// Lookback.
    pub seq_len: usize,
    /// Horizon.
    pub pred_len: usize,
    /// Test MSE.
    pub mse: f64,
    /// Test MAE.
    pub mae: f64,
}

const fn published(
    model: &'static str,
    arch: &'static str,
    dataset: &'static str,
    (seq_len, pred_len): (usize, usize),
    (mse, mae): (f64, f64),
) -> Published {
    Published {
        model,
        arch,
        dataset,
        seq_len,
        pred_len,
        mse,
        mae,
    }
}

/// Every horizon of ETTh1, ETTh2, ETTm1, ETTm2 and Weather, M, from reference/forecasting.md §3
/// (LTSF-Linear Table 2, PatchTST Table 3, RLinear's table, iTransformer Table 10, S-Mamba), for
/// the models the zoo has a match for. PatchTST is matched to `transformer` and S-Mamba to
/// `mamba`: the zoo's backbones behind the patch adapter, not the papers' exact models.
pub const PUBLISHED: &[Published] = &[
    published("DLinear", "dlinear", "ETTh1", (336, 96), (0.375, 0.399)),
    published("DLinear", "dlinear", "ETTh1", (336, 192), (0.405, 0.416)),
    published("DLinear", "dlinear", "ETTh1", (336, 336), (0.439, 0.443)),
    published("DLinear", "dlinear", "ETTh1", (336, 720), (0.472, 0.490)),
    published("NLinear", "nlinear", "ETTh1", (336, 96), (0.374, 0.394)),
    published("NLinear", "nlinear", "ETTh1", (336, 192), (0.408, 0.415)),
    published("NLinear", "nlinear", "ETTh1", (336, 336), (0.429, 0.427)),
    published("NLinear", "nlinear", "ETTh1", (336, 720), (0.440, 0.453)),
    published("Linear", "linear", "ETTh1", (336, 96), (0.375, 0.397)),
    published("Linear", "linear", "ETTh1", (336, 192), (0.418, 0.429)),
    published("Linear", "linear", "ETTh1", (336, 336), (0.479, 0.476)),
    published("Linear", "linear", "ETTh1", (336, 720), (0.624, 0.592)),
    published(
        "PatchTST/42",
        "transformer",
        "ETTh1",
        (336, 96),
        (0.375, 0.399),
    ),
    published(
        "PatchTST/42",
        "transformer",
        "ETTh1",
        (336, 192),
        (0.414, 0.421),
    ),
    published(
        "PatchTST/42",
        "transformer",
        "ETTh1",
        (336, 336),
        (0.431, 0.436),
    ),
    published(
        "PatchTST/42",
        "transformer",
        "ETTh1",
        (336, 720),
        (0.449, 0.466),
    ),
    published("RLinear", "rlinear", "ETTh1", (336, 96), (0.366, 0.391)),
    published("RLinear", "rlinear", "ETTh1", (336, 192), (0.404, 0.412)),
    published("RLinear", "rlinear", "ETTh1", (336, 336), (0.420, 0.423)),
    published("RLinear", "rlinear", "ETTh1", (336, 720), (0.442, 0.456)),
    published("RLinear", "rlinear", "ETTh1", (96, 96), (0.386, 0.395)),
    published("RLinear", "rlinear", "ETTh1", (96, 192), (0.437, 0.424)),
    published("RLinear", "rlinear", "ETTh1", (96, 336), (0.479, 0.446)),
    published("RLinear", "rlinear", "ETTh1", (96, 720), (0.481, 0.470)),
    published("PatchTST", "transformer", "ETTh1", (96, 96), (0.414, 0.419)),
    published(
        "PatchTST",
        "transformer",
        "ETTh1",
        (96, 192),
        (0.460, 0.445),
    ),
    published(
        "PatchTST",
        "transformer",
        "ETTh1",
        (96, 336),
        (0.501, 0.466),
    ),
    published(
        "PatchTST",
        "transformer",
        "ETTh1",
        (96, 720),
        (0.500, 0.488),
    ),
    published("DLinear", "dlinear", "ETTh1", (96, 96), (0.386, 0.400)),
    published("DLinear", "dlinear", "ETTh1", (96, 192), (0.437, 0.432)),
    published("DLinear", "dlinear", "ETTh1", (96, 336), (0.481, 0.459)),
    published("DLinear", "dlinear", "ETTh1", (96, 720), (0.519, 0.516)),
    published("S-Mamba", "mamba", "ETTh1", (96, 96), (0.386, 0.405)),
    published("S-Mamba", "mamba", "ETTh1", (96, 192), (0.443, 0.437)),
    published("S-Mamba", "mamba", "ETTh1", (96, 336), (0.489, 0.468)),
    published("S-Mamba", "mamba", "ETTh1", (96, 720), (0.502, 0.489)),
    published("DLinear", "dlinear", "ETTh2", (336, 96), (0.289, 0.353)),
    published("DLinear", "dlinear", "ETTh2", (336, 192), (0.383, 0.418)),
    published("DLinear", "dlinear", "ETTh2", (336, 336), (0.448, 0.465)),
    published("DLinear", "dlinear", "ETTh2", (336, 720), (0.605, 0.551)),
    published("NLinear", "nlinear", "ETTh2", (336, 96), (0.277, 0.338)),
    published("NLinear", "nlinear", "ETTh2", (336, 192), (0.344, 0.381)),
    published("NLinear", "nlinear", "ETTh2", (336, 336), (0.357, 0.400)),
    published("NLinear", "nlinear", "ETTh2", (336, 720), (0.394, 0.436)),
    published("Linear", "linear", "ETTh2", (336, 96), (0.288, 0.352)),
    published("Linear", "linear", "ETTh2", (336, 192), (0.377, 0.413)),
    published("Linear", "linear", "ETTh2", (336, 336), (0.452, 0.461)),
    published("Linear", "linear", "ETTh2", (336, 720), (0.698, 0.595)),
    published(
        "PatchTST/42",
        "transformer",
        "ETTh2",
        (336, 96),
        (0.274, 0.336),
    ),
    published(
        "PatchTST/42",
        "transformer",
        "ETTh2",
        (336, 192),
        (0.339, 0.379),
    ),
    published(
        "PatchTST/42",
        "transformer",
        "ETTh2",
        (336, 336),
        (0.331, 0.380),
    ),
    published(
        "PatchTST/42",
        "transformer",
        "ETTh2",
        (336, 720),
        (0.379, 0.422),
    ),
    published("RLinear", "rlinear", "ETTh2", (336, 96), (0.262, 0.331)),
    published("RLinear", "rlinear", "ETTh2", (336, 192), (0.320, 0.374)),
    published("RLinear", "rlinear", "ETTh2", (336, 336), (0.325, 0.386)),
    published("RLinear", "rlinear", "ETTh2", (336, 720), (0.372, 0.421)),
    published("RLinear", "rlinear", "ETTh2", (96, 96), (0.288, 0.338)),
    published("RLinear", "rlinear", "ETTh2", (96, 192), (0.374, 0.390)),
    published("RLinear", "rlinear", "ETTh2", (96, 336), (0.415, 0.426)),
    published("RLinear", "rlinear", "ETTh2", (96, 720), (0.420, 0.440)),
    published("PatchTST", "transformer", "ETTh2", (96, 96), (0.302, 0.348)),
    published(
        "PatchTST",
        "transformer",
        "ETTh2",
        (96, 192),
        (0.388, 0.400),
    ),
    published(
        "PatchTST",
        "transformer",
        "ETTh2",
        (96, 336),
        (0.426, 0.433),
    ),
    published(
        "PatchTST",
        "transformer",
        "ETTh2",
        (96, 720),
        (0.431, 0.446),
    ),
    published("DLinear", "dlinear", "ETTh2", (96, 96), (0.333, 0.387)),
    published("DLinear", "dlinear", "ETTh2", (96, 192), (0.477, 0.476)),
    published("DLinear", "dlinear", "ETTh2", (96, 336), (0.594, 0.541)),
    published("DLinear", "dlinear", "ETTh2", (96, 720), (0.831, 0.657)),
    published("S-Mamba", "mamba", "ETTh2", (96, 96), (0.296, 0.348)),
    published("S-Mamba", "mamba", "ETTh2", (96, 192), (0.376, 0.396)),
    published("S-Mamba", "mamba", "ETTh2", (96, 336), (0.424, 0.431)),
    published("S-Mamba", "mamba", "ETTh2", (96, 720), (0.426, 0.444)),
    published("DLinear", "dlinear", "ETTm1", (336, 96), (0.299, 0.343)),
    published("DLinear", "dlinear", "ETTm1", (336, 192), (0.335, 0.365)),
    published("DLinear", "dlinear", "ETTm1", (336, 336), (0.369, 0.386)),
    published("DLinear", "dlinear", "ETTm1", (336, 720), (0.425, 0.421)),
    published("NLinear", "nlinear", "ETTm1", (336, 96), (0.306, 0.348)),
    published("NLinear", "nlinear", "ETTm1", (336, 192), (0.349, 0.375)),
    published("NLinear", "nlinear", "ETTm1", (336, 336), (0.375, 0.388)),
    published("NLinear", "nlinear", "ETTm1", (336, 720), (0.433, 0.422)),
    published("Linear", "linear", "ETTm1", (336, 96), (0.308, 0.352)),
    published("Linear", "linear", "ETTm1", (336, 192), (0.340, 0.369)),
    published("Linear", "linear", "ETTm1", (336, 336), (0.376, 0.393)),
    published("Linear", "linear", "ETTm1", (336, 720), (0.440, 0.435)),
    published(
        "PatchTST/42",
        "transformer",
        "ETTm1",
        (336, 96),
        (0.290, 0.342),
    ),
    published(
        "PatchTST/42",
        "transformer",
        "ETTm1",
        (336, 192),
        (0.332, 0.369),
    ),
    published(
        "PatchTST/42",
        "transformer",
        "ETTm1",
        (336, 336),
        (0.366, 0.392),
    ),
    published(
        "PatchTST/42",
        "transformer",
        "ETTm1",
        (336, 720),
        (0.420, 0.424),
    ),
    published("RLinear", "rlinear", "ETTm1", (336, 96), (0.301, 0.342)),
    published("RLinear", "rlinear", "ETTm1", (336, 192), (0.335, 0.363)),
    published("RLinear", "rlinear", "ETTm1", (336, 336), (0.370, 0.383)),
    published("RLinear", "rlinear", "ETTm1", (336, 720), (0.425, 0.414)),
    published("RLinear", "rlinear", "ETTm1", (96, 96), (0.355, 0.376)),
    published("RLinear", "rlinear", "ETTm1", (96, 192), (0.391, 0.392)),
    published("RLinear", "rlinear", "ETTm1", (96, 336), (0.424, 0.415)),
    published("RLinear", "rlinear", "ETTm1", (96, 720), (0.487, 0.450)),
    published("PatchTST", "transformer", "ETTm1", (96, 96), (0.329, 0.367)),
    published(
        "PatchTST",
        "transformer",
        "ETTm1",
        (96, 192),
        (0.367, 0.385),
    ),
    published(
        "PatchTST",
        "transformer",
        "ETTm1",
        (96, 336),
        (0.399, 0.410),
    ),
    published(
        "PatchTST",
        "transformer",
        "ETTm1",
        (96, 720),
        (0.454, 0.439),
    ),
    published("DLinear", "dlinear", "ETTm1", (96, 96), (0.345, 0.372)),
    published("DLinear", "dlinear", "ETTm1", (96, 192), (0.380, 0.389)),
    published("DLinear", "dlinear", "ETTm1", (96, 336), (0.413, 0.413)),
    published("DLinear", "dlinear", "ETTm1", (96, 720), (0.474, 0.453)),
    published("S-Mamba", "mamba", "ETTm1", (96, 96), (0.333, 0.368)),
    published("S-Mamba", "mamba", "ETTm1", (96, 192), (0.376, 0.390)),
    published("S-Mamba", "mamba", "ETTm1", (96, 336), (0.408, 0.413)),
    published("S-Mamba", "mamba", "ETTm1", (96, 720), (0.475, 0.448)),
    published("DLinear", "dlinear", "ETTm2", (336, 96), (0.167, 0.260)),
    published("DLinear", "dlinear", "ETTm2", (336, 192), (0.224, 0.303)),
    published("DLinear", "dlinear", "ETTm2", (336, 336), (0.281, 0.342)),
    published("DLinear", "dlinear", "ETTm2", (336, 720), (0.397, 0.421)),
    published("NLinear", "nlinear", "ETTm2", (336, 96), (0.167, 0.255)),
    published("NLinear", "nlinear", "ETTm2", (336, 192), (0.221, 0.293)),
    published("NLinear", "nlinear", "ETTm2", (336, 336), (0.274, 0.327)),
    published("NLinear", "nlinear", "ETTm2", (336, 720), (0.368, 0.384)),
    published("Linear", "linear", "ETTm2", (336, 96), (0.168, 0.262)),
    published("Linear", "linear", "ETTm2", (336, 192), (0.232, 0.308)),
    published("Linear", "linear", "ETTm2", (336, 336), (0.320, 0.373)),
    published("Linear", "linear", "ETTm2", (336, 720), (0.413, 0.435)),
    published(
        "PatchTST/42",
        "transformer",
        "ETTm2",
        (336, 96),
        (0.165, 0.255),
    ),
    published(
        "PatchTST/42",
        "transformer",
        "ETTm2",
        (336, 192),
        (0.220, 0.292),
    ),
    published(
        "PatchTST/42",
        "transformer",
        "ETTm2",
        (336, 336),
        (0.278, 0.329),
    ),
    published(
        "PatchTST/42",
        "transformer",
        "ETTm2",
        (336, 720),
        (0.367, 0.385),
    ),
    published("RLinear", "rlinear", "ETTm2", (336, 96), (0.164, 0.253)),
    published("RLinear", "rlinear", "ETTm2", (336, 192), (0.219, 0.290)),
    published("RLinear", "rlinear", "ETTm2", (336, 336), (0.273, 0.326)),
    published("RLinear", "rlinear", "ETTm2", (336, 720), (0.366, 0.385)),
    published("RLinear", "rlinear", "ETTm2", (96, 96), (0.182, 0.265)),
    published("RLinear", "rlinear", "ETTm2", (96, 192), (0.246, 0.304)),
    published("RLinear", "rlinear", "ETTm2", (96, 336), (0.307, 0.342)),
    published("RLinear", "rlinear", "ETTm2", (96, 720), (0.407, 0.398)),
    published("PatchTST", "transformer", "ETTm2", (96, 96), (0.175, 0.259)),
    published(
        "PatchTST",
        "transformer",
        "ETTm2",
        (96, 192),
        (0.241, 0.302),
    ),
    published(
        "PatchTST",
        "transformer",
        "ETTm2",
        (96, 336),
        (0.305, 0.343),
    ),
    published(
        "PatchTST",
        "transformer",
        "ETTm2",
        (96, 720),
        (0.402, 0.400),
    ),
    published("DLinear", "dlinear", "ETTm2", (96, 96), (0.193, 0.292)),
    published("DLinear", "dlinear", "ETTm2", (96, 192), (0.284, 0.362)),
    published("DLinear", "dlinear", "ETTm2", (96, 336), (0.369, 0.427)),
    published("DLinear", "dlinear", "ETTm2", (96, 720), (0.554, 0.522)),
    published("S-Mamba", "mamba", "ETTm2", (96, 96), (0.179, 0.263)),
    published("S-Mamba", "mamba", "ETTm2", (96, 192), (0.250, 0.309)),
    published("S-Mamba", "mamba", "ETTm2", (96, 336), (0.312, 0.349)),
    published("S-Mamba", "mamba", "ETTm2", (96, 720), (0.411, 0.406)),
    published("DLinear", "dlinear", "weather", (336, 96), (0.176, 0.237)),
    published("DLinear", "dlinear", "weather", (336, 192), (0.220, 0.282)),
    published("DLinear", "dlinear", "weather", (336, 336), (0.265, 0.319)),
    published("DLinear", "dlinear", "weather", (336, 720), (0.323, 0.362)),
    published("NLinear", "nlinear", "weather", (336, 96), (0.182, 0.232)),
    published("NLinear", "nlinear", "weather", (336, 192), (0.225, 0.269)),
    published("NLinear", "nlinear", "weather", (336, 336), (0.271, 0.301)),
    published("NLinear", "nlinear", "weather", (336, 720), (0.338, 0.348)),
    published("Linear", "linear", "weather", (336, 96), (0.176, 0.236)),
    published("Linear", "linear", "weather", (336, 192), (0.218, 0.276)),
    published("Linear", "linear", "weather", (336, 336), (0.262, 0.312)),
    published("Linear", "linear", "weather", (336, 720), (0.326, 0.365)),
    published(
        "PatchTST/42",
        "transformer",
        "weather",
        (336, 96),
        (0.152, 0.199),
    ),
    published(
        "PatchTST/42",
        "transformer",
        "weather",
        (336, 192),
        (0.197, 0.243),
    ),
    published(
        "PatchTST/42",
        "transformer",
        "weather",
        (336, 336),
        (0.249, 0.283),
    ),
    published(
        "PatchTST/42",
        "transformer",
        "weather",
        (336, 720),
        (0.320, 0.335),
    ),
    published("RLinear", "rlinear", "weather", (336, 96), (0.175, 0.225)),
    published("RLinear", "rlinear", "weather", (336, 192), (0.218, 0.260)),
    published("RLinear", "rlinear", "weather", (336, 336), (0.265, 0.294)),
    published("RLinear", "rlinear", "weather", (336, 720), (0.329, 0.339)),
    published("RLinear", "rlinear", "weather", (96, 96), (0.192, 0.232)),
    published("RLinear", "rlinear", "weather", (96, 192), (0.240, 0.271)),
    published("RLinear", "rlinear", "weather", (96, 336), (0.292, 0.307)),
    published("RLinear", "rlinear", "weather", (96, 720), (0.364, 0.353)),
    published(
        "PatchTST",
        "transformer",
        "weather",
        (96, 96),
        (0.177, 0.218),
    ),
    published(
        "PatchTST",
        "transformer",
        "weather",
        (96, 192),
        (0.225, 0.259),
    ),
    published(
        "PatchTST",
        "transformer",
        "weather",
        (96, 336),
        (0.278, 0.297),
    ),
    published(
        "PatchTST",
        "transformer",
        "weather",
        (96, 720),
        (0.354, 0.348),
    ),
    published("DLinear", "dlinear", "weather", (96, 96), (0.196, 0.255)),
    published("DLinear", "dlinear", "weather", (96, 192), (0.237, 0.296)),
    published("DLinear", "dlinear", "weather", (96, 336), (0.283, 0.335)),
    published("DLinear", "dlinear", "weather", (96, 720), (0.345, 0.381)),
    published("S-Mamba", "mamba", "weather", (96, 96), (0.165, 0.210)),
    published("S-Mamba", "mamba", "weather", (96, 192), (0.214, 0.252)),
    published("S-Mamba", "mamba", "weather", (96, 336), (0.274, 0.297)),
    published("S-Mamba", "mamba", "weather", (96, 720), (0.350, 0.345)),
];

/// One stored run.
#[derive(Clone, Debug)]
pub struct StoredRun {
    /// Its summary.
    pub summary: Summary,
    /// Its config (for the learning rate and the seed-free grouping).
    pub config: RunConfig,
}

/// Read every `dir/*/summary.json` with its `config.json`, sorted by run id. Incomplete or
/// failed runs (no summary) and token-probe runs are left out.
pub fn load_runs(dir: &Path) -> Result<Vec<StoredRun>> {
    let entries = std::fs::read_dir(dir).map_err(io_at(dir))?;
    let mut runs = Vec::new();
    for entry in entries {
        let path = entry.map_err(io_at(dir))?.path();
        let summary_path = path.join("summary.json");
        if !summary_path.exists() || crate::files::is_probe_run(&path) {
            continue;
        }
        let text = std::fs::read_to_string(&summary_path).map_err(io_at(&summary_path))?;
        let mut summary: Summary =
            serde_json::from_str(&text).map_err(|source| RunError::Json {
                path: summary_path.clone(),
                source,
            })?;
        // The folder names the run: a run a sweep adopted from the id an earlier archzoo gave it
        // keeps the summary it was written with (`sweep::adopt_renamed_runs`).
        summary.run_id = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let config = RunConfig::load(&path.join("config.json"))?;
        runs.push(StoredRun { summary, config });
    }
    runs.sort_by(|a, b| a.summary.run_id.cmp(&b.summary.run_id));
    Ok(runs)
}

/// The setting a table is for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Setting {
    /// Dataset name.
    pub dataset: String,
    /// Feature mode.
    pub features: String,
    /// Lookback.
    pub seq_len: usize,
    /// Horizon.
    pub pred_len: usize,
}

/// Mean and sample standard deviation (0 for one value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub std: f64,
}

impl Spread {
    /// Of `values` (non-empty).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Self { mean, std }
    }
}

/// One row: a config (all but the seed) and its seeds.
#[derive(Clone, Debug)]
pub struct Row {
    /// Architecture.
    pub arch: String,
    /// Backend the runs trained on.
    pub backend: BackendName,
    /// Parameters.
    pub params: usize,
    /// Preset.
    pub preset: String,
    /// Learning rate.
    pub lr: f64,
    /// Seeds, ascending.
    pub seeds: Vec<u64>,
    /// The runs' ids, in the order of `seeds`.
    pub run_ids: Vec<String>,
    /// Test MSE over the seeds.
    pub mse: Spread,
    /// Test MAE over the seeds.
    pub mae: Spread,
    /// Median training seconds.
    pub train_seconds: f64,
    /// Median analytic training FLOPs (`None` for runs that predate the count).
    pub train_flops: Option<f64>,
    /// Whether this row has the table's lowest mean MSE / MAE.
    pub best: (bool, bool),
    /// The matching published result, if any.
    pub published: Option<Published>,
}

/// Leaderboard tables, one per setting.
pub type Leaderboard = BTreeMap<Setting, Vec<Row>>;

/// Group `runs` into tables and rows (see the module doc); rows sorted by mean MSE.
pub fn leaderboard(runs: &[StoredRun]) -> Leaderboard {
    let mut groups: BTreeMap<(Setting, String), Vec<&StoredRun>> = BTreeMap::new();
    for run in runs {
        let s = &run.summary;
        let setting = Setting {
            dataset: s.dataset.clone(),
            features: s.features.clone(),
            seq_len: s.seq_len,
            pred_len: s.pred_len,
        };
        let mut seedless = run.config.clone();
        seedless.seed = 0;
        let key = serde_json::to_string(&seedless).expect("RunConfig serializes");
        groups.entry((setting, key)).or_default().push(run);
    }
    let mut board = Leaderboard::new();
    for ((setting, _), members) in groups {
        let mut members = members;
        members.sort_by_key(|r| r.summary.seed);
        let first = &members[0].summary;
        let seeds: Vec<u64> = members.iter().map(|r| r.summary.seed).collect();
        let run_ids = members.iter().map(|r| r.summary.run_id.clone()).collect();
        let times: Vec<f64> = members.iter().map(|r| r.summary.train_seconds).collect();
        let flops: Vec<f64> = members
            .iter()
            .filter_map(|r| r.summary.train_flops)
            .collect();
        let train_flops = (flops.len() == members.len()).then(|| crate::bench::median(&flops));
        let published = PUBLISHED.iter().copied().find(|p| {
            p.arch == first.arch
                && p.dataset == setting.dataset
                && p.seq_len == setting.seq_len
                && p.pred_len == setting.pred_len
                && setting.features == "M"
        });
        let row = Row {
            arch: first.arch.clone(),
            backend: members[0].config.backend,
            params: first.params,
            preset: first.preset.clone(),
            lr: members[0].config.train.lr,
            seeds,
            run_ids,
            mse: Spread::of(
                &members
                    .iter()
                    .map(|r| r.summary.test_mse)
                    .collect::<Vec<_>>(),
            ),
            mae: Spread::of(
                &members
                    .iter()
                    .map(|r| r.summary.test_mae)
                    .collect::<Vec<_>>(),
            ),
            train_seconds: crate::bench::median(&times),
            train_flops,
            best: (false, false),
            published,
        };
        board.entry(setting).or_default().push(row);
    }
    for rows in board.values_mut() {
        rows.sort_by(|a, b| a.mse.mean.total_cmp(&b.mse.mean));
        let best_mse = rows
            .iter()
            .map(|r| r.mse.mean)
            .fold(f64::INFINITY, f64::min);
        let best_mae = rows
            .iter()
            .map(|r| r.mae.mean)
            .fold(f64::INFINITY, f64::min);
        for row in rows.iter_mut() {
            row.best = (row.mse.mean == best_mse, row.mae.mean == best_mae);
        }
    }
    board
}

/// `0.3824 ± 0.0010` (just the mean for one seed), bold when best.
fn cell(spread: Spread, seeds: usize, best: bool) -> String {
    let text = if seeds > 1 {
        format!("{:.4} ± {:.4}", spread.mean, spread.std)
    } else {
        format!("{:.4}", spread.mean)
    };
    if best { format!("**{text}**") } else { text }
}

/// The leaderboard as Markdown.
pub fn markdown(board: &Leaderboard, source: &Path) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Leaderboard\n");
    let _ = writeln!(
        md,
        "From the runs under `{}` (`archzoo report`). Test MSE / MAE on the normalised scale, mean ± sample std over seeds; **bold**: best mean in the table. Published: the papers' own numbers for the same dataset, L and H (reference/forecasting.md §3; PatchTST is matched to `transformer`, S-Mamba to `mamba`).\n",
        source.display()
    );
    for (setting, rows) in board {
        let _ = writeln!(
            md,
            "## {} ({}), L = {}, H = {}\n",
            setting.dataset, setting.features, setting.seq_len, setting.pred_len
        );
        let _ = writeln!(
            md,
            "| arch | params | preset | lr | seeds | test MSE | test MAE | train s (median) | train FLOPs | published MSE / MAE |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
        for r in rows {
            let published = r.published.map_or("–".to_string(), |p| {
                format!("{:.3} / {:.3} ({})", p.mse, p.mae, p.model)
            });
            // The backend is named where it is not the default, so rows that differ only in it
            // are told apart.
            let arch = if r.backend == BackendName::default() {
                r.arch.clone()
            } else {
                format!("{} ({})", r.arch, r.backend.as_str())
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:e} | {} | {} | {} | {:.1} | {} | {} |",
                arch,
                r.params,
                r.preset,
                r.lr,
                r.seeds
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                cell(r.mse, r.seeds.len(), r.best.0),
                cell(r.mae, r.seeds.len(), r.best.1),
                r.train_seconds,
                r.train_flops
                    .map_or("–".to_string(), |f| format!("{f:.2e}")),
                published
            );
        }
        md.push('\n');
    }
    md
}

/// A column of the papers' table: an architecture under a preset and lookback.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Column {
    order: usize,
    arch: String,
    preset: String,
    seq_len: usize,
}

impl Column {
    fn of(row: &Row, seq_len: usize) -> Self {
        Self {
            order: crate::plot::registry_order(&row.arch),
            arch: row.arch.clone(),
            preset: row.preset.clone(),
            seq_len,
        }
    }

    fn header(&self) -> String {
        format!("{} ({}, L {})", self.arch, self.preset, self.seq_len)
    }
}

/// The papers' layout of the long-horizon table (`table.md`): one line per dataset and horizon,
/// one MSE/MAE column pair per architecture under a preset and lookback, the mean over the
/// dataset's horizons (`Avg`, where the column has every one of them), the best value of a line
/// **bold** and the second <u>underlined</u>, the papers' number beside ours in parentheses
/// where one exists, a count of first places over the horizon lines (MSE and MAE), and the
/// training wall time each dataset took. Where a column has several configs at one setting (a
/// learning-rate variant beside the preset's), the one with the most seeds stands, then the
/// first by run id. `board` is [`leaderboard`] of `runs`. `None` when the runs cover a single
/// dataset and horizon.
pub fn paper_table(board: &Leaderboard, runs: &[StoredRun], source: &Path) -> Option<String> {
    let lines: std::collections::BTreeSet<(String, String, usize)> = board
        .keys()
        .map(|s| (s.dataset.clone(), s.features.clone(), s.pred_len))
        .collect();
    if lines.len() < 2 {
        return None;
    }
    // (dataset, features, H) -> column -> row.
    let mut cells: BTreeMap<(String, String, usize), BTreeMap<Column, &Row>> = BTreeMap::new();
    for (setting, rows) in board {
        let line = cells
            .entry((
                setting.dataset.clone(),
                setting.features.clone(),
                setting.pred_len,
            ))
            .or_default();
        for row in rows {
            let column = Column::of(row, setting.seq_len);
            let better = |old: &&Row| {
                (row.seeds.len(), std::cmp::Reverse(&row.run_ids))
                    > (old.seeds.len(), std::cmp::Reverse(&old.run_ids))
            };
            if line.get(&column).is_none_or(better) {
                line.insert(column, row);
            }
        }
    }
    let columns: Vec<Column> = {
        let mut all: Vec<Column> = cells.values().flat_map(|l| l.keys().cloned()).collect();
        all.sort();
        all.dedup();
        all
    };
    let mut md = String::from(
        "# Long-horizon forecasting: the papers' layout

",
    );
    let _ = writeln!(
        md,
        "From the runs under `{}` (`archzoo report`). Test MSE and MAE on the normalised scale, means over seeds (†: one seed; seeds per cell in leaderboard.md); the papers' own number in parentheses where one exists for the same dataset, L and H (reference/forecasting.md §3). Per line, **bold** is the best and <u>underlined</u> the second; `Avg` is the mean over the dataset's horizons where the column has all of them; `1st count` counts bold cells over the horizon lines. –: not run.
",
        source.display()
    );
    let mut header = String::from("| dataset | H |");
    let mut rule = String::from("|---|---|");
    for column in &columns {
        let _ = write!(header, " {} MSE | MAE |", column.header());
        rule.push_str("---|---|");
    }
    let _ = writeln!(
        md,
        "{header}
{rule}"
    );
    let mut firsts = vec![0usize; columns.len()];
    let datasets: Vec<(String, String)> = {
        let mut d: Vec<(String, String)> = cells
            .keys()
            .map(|(d, f, _)| (d.clone(), f.clone()))
            .collect();
        d.dedup();
        d
    };
    for (dataset, features) in &datasets {
        let horizons: Vec<usize> = cells
            .keys()
            .filter(|(d, f, _)| d == dataset && f == features)
            .map(|(_, _, h)| *h)
            .collect();
        let name = if features == "M" {
            dataset.clone()
        } else {
            format!("{dataset} ({features})")
        };
        for &h in &horizons {
            let line = &cells[&(dataset.clone(), features.clone(), h)];
            let values: Vec<Option<(f64, f64)>> = columns
                .iter()
                .map(|c| line.get(c).map(|r| (r.mse.mean, r.mae.mean)))
                .collect();
            let marks = rank_marks(&values);
            let _ = write!(md, "| {name} | {h} |");
            for (k, column) in columns.iter().enumerate() {
                match line.get(column) {
                    Some(row) => {
                        let single = if row.seeds.len() == 1 { "†" } else { "" };
                        let published = |v: fn(&Published) -> f64| {
                            row.published
                                .map_or(String::new(), |p| format!(" ({:.3})", v(&p)))
                        };
                        let _ = write!(
                            md,
                            " {}{single}{} | {}{single}{} |",
                            marks[k].0.apply(row.mse.mean),
                            published(|p| p.mse),
                            marks[k].1.apply(row.mae.mean),
                            published(|p| p.mae),
                        );
                        firsts[k] += usize::from(marks[k].0 == Mark::First)
                            + usize::from(marks[k].1 == Mark::First);
                    }
                    None => md.push_str(" – | – |"),
                }
            }
            md.push('\n');
        }
        if horizons.len() > 1 {
            let averages: Vec<Option<(f64, f64)>> = columns
                .iter()
                .map(|c| {
                    let rows: Vec<&Row> = horizons
                        .iter()
                        .filter_map(|&h| {
                            cells[&(dataset.clone(), features.clone(), h)]
                                .get(c)
                                .copied()
                        })
                        .collect();
                    (rows.len() == horizons.len()).then(|| {
                        let n = rows.len() as f64;
                        (
                            rows.iter().map(|r| r.mse.mean).sum::<f64>() / n,
                            rows.iter().map(|r| r.mae.mean).sum::<f64>() / n,
                        )
                    })
                })
                .collect();
            let marks = rank_marks(&averages);
            let _ = write!(md, "| {name} | Avg |");
            for (k, average) in averages.iter().enumerate() {
                match average {
                    Some((mse, mae)) => {
                        let _ = write!(
                            md,
                            " {} | {} |",
                            marks[k].0.apply(*mse),
                            marks[k].1.apply(*mae)
                        );
                    }
                    None => md.push_str(" – | – |"),
                }
            }
            md.push('\n');
        }
    }
    let _ = write!(md, "| 1st count | |");
    for count in &firsts {
        let _ = write!(md, " {count} | |");
    }
    md.push_str("\n\n| dataset | runs | training wall time |\n|---|---|---|\n");
    for (dataset, features) in &datasets {
        let members: Vec<&StoredRun> = runs
            .iter()
            .filter(|r| &r.summary.dataset == dataset && &r.summary.features == features)
            .collect();
        let seconds: f64 = members.iter().map(|r| r.summary.wall_seconds).sum();
        let _ = writeln!(
            md,
            "| {dataset} ({features}) | {} | {:.2} h ({:.0} s) |",
            members.len(),
            seconds / 3600.0,
            seconds
        );
    }
    Some(md)
}

/// A cell's rank mark within its line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    First,
    Second,
    Plain,
}

impl Mark {
    fn apply(self, value: f64) -> String {
        match self {
            Mark::First => format!("**{value:.3}**"),
            Mark::Second => format!("<u>{value:.3}</u>"),
            Mark::Plain => format!("{value:.3}"),
        }
    }
}

/// First and second marks for each column's (MSE, MAE), lower is better; ties share a mark.
fn rank_marks(values: &[Option<(f64, f64)>]) -> Vec<(Mark, Mark)> {
    let marks = |pick: fn(&(f64, f64)) -> f64| -> Vec<Mark> {
        let mut distinct: Vec<f64> = values.iter().flatten().map(pick).collect();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        values
            .iter()
            .map(|v| match v.as_ref().map(pick) {
                Some(x) if Some(&x) == distinct.first() => Mark::First,
                Some(x) if Some(&x) == distinct.get(1) => Mark::Second,
                _ => Mark::Plain,
            })
            .collect()
    };
    marks(|v| v.0).into_iter().zip(marks(|v| v.1)).collect()
}

/// Columns of `leaderboard.csv`.
pub const CSV_COLUMNS: [&str; 22] = [
    "dataset",
    "features",
    "seq_len",
    "pred_len",
    "arch",
    "params",
    "preset",
    "lr",
    "n_seeds",
    "seeds",
    "test_mse_mean",
    "test_mse_std",
    "test_mae_mean",
    "test_mae_std",
    "train_seconds_median",
    "train_flops_median",
    "best_mse",
    "best_mae",
    "published_model",
    "published_mse",
    "published_mae",
    "backend",
];

/// The leaderboard as CSV, one line per row.
pub fn csv(board: &Leaderboard) -> String {
    let records = board.iter().flat_map(|(s, rows)| {
        rows.iter().map(move |r| {
            let (model, mse, mae) = r
                .published
                .map_or((String::new(), String::new(), String::new()), |p| {
                    (p.model.to_string(), p.mse.to_string(), p.mae.to_string())
                });
            let seeds: Vec<String> = r.seeds.iter().map(u64::to_string).collect();
            [
                s.dataset.clone(),
                s.features.clone(),
                s.seq_len.to_string(),
                s.pred_len.to_string(),
                r.arch.clone(),
                r.params.to_string(),
                r.preset.clone(),
                r.lr.to_string(),
                r.seeds.len().to_string(),
                seeds.join(" "),
                r.mse.mean.to_string(),
                r.mse.std.to_string(),
                r.mae.mean.to_string(),
                r.mae.std.to_string(),
                r.train_seconds.to_string(),
                r.train_flops.map_or(String::new(), |f| f.to_string()),
                r.best.0.to_string(),
                r.best.1.to_string(),
                model,
                mse,
                mae,
                r.backend.as_str().to_string(),
            ]
        })
    });
    crate::files::csv_text(&CSV_COLUMNS, records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_mean_and_sample_std() {
        let s = Spread::of(&[1.0, 2.0, 3.0]);
        assert_eq!(s.mean, 2.0);
        assert!((s.std - 1.0).abs() < 1e-12);
        assert_eq!(Spread::of(&[0.5]).std, 0.0);
    }

    #[test]
    fn rank_marks_bold_the_best_and_underline_the_second() {
        let marks = rank_marks(&[Some((0.4, 0.5)), None, Some((0.3, 0.5)), Some((0.35, 0.6))]);
        assert_eq!(marks[0], (Mark::Plain, Mark::First));
        assert_eq!(marks[1], (Mark::Plain, Mark::Plain));
        assert_eq!(marks[2], (Mark::First, Mark::First));
        assert_eq!(marks[3], (Mark::Second, Mark::Second));
    }

    #[test]
    fn published_rows_are_unique_per_setting() {
        for (i, a) in PUBLISHED.iter().enumerate() {
            for b in &PUBLISHED[i + 1..] {
                assert!(
                    (a.arch, a.dataset, a.seq_len, a.pred_len)
                        != (b.arch, b.dataset, b.seq_len, b.pred_len),
                    "{a:?} and {b:?} match the same runs"
                );
            }
        }
    }
}
