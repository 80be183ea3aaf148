//! What `--data` names: a known dataset under the data folder, a CSV path, or the synthetic
//! series.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::series::{TimeSeries, load_csv};
use crate::synthetic::{SyntheticConfig, generate};

/// A dataset with a conventional place in the TSLib folder layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownDataset {
    /// Name used on the command line and in results (`ETTh1`).
    pub name: &'static str,
    /// Path below the data folder (`ETT-small/ETTh1.csv`).
    pub path: &'static str,
    /// One line for `archzoo list`.
    pub about: &'static str,
}

/// Datasets archzoo can find by name below `$ARCHZOO_DATA` (the TSLib / Autoformer layout).
pub const KNOWN_DATASETS: [KnownDataset; 9] = [
    KnownDataset {
        name: "ETTh1",
        path: "ETT-small/ETTh1.csv",
        about: "electricity transformer, region 1, hourly, 7 channels (`data download ett`)",
    },
    KnownDataset {
        name: "ETTh2",
        path: "ETT-small/ETTh2.csv",
        about: "electricity transformer, region 2, hourly, 7 channels (`data download ett`)",
    },
    KnownDataset {
        name: "ETTm1",
        path: "ETT-small/ETTm1.csv",
        about: "electricity transformer, region 1, 15 min, 7 channels (`data download ett`)",
    },
    KnownDataset {
        name: "ETTm2",
        path: "ETT-small/ETTm2.csv",
        about: "electricity transformer, region 2, 15 min, 7 channels (`data download ett`)",
    },
    KnownDataset {
        name: "weather",
        path: "weather/weather.csv",
        about: "Jena weather 2020, 10 min, 21 channels (`data download weather`)",
    },
    KnownDataset {
        name: "electricity",
        path: "electricity/electricity.csv",
        about: "ECL, hourly, 321 channels (`data download electricity`)",
    },
    KnownDataset {
        name: "traffic",
        path: "traffic/traffic.csv",
        about: "PeMS occupancy, hourly, 862 channels (`data download traffic`)",
    },
    KnownDataset {
        name: "exchange_rate",
        path: "exchange_rate/exchange_rate.csv",
        about: "daily FX rates, 8 channels (`data download exchange_rate`)",
    },
    KnownDataset {
        name: "illness",
        path: "illness/national_illness.csv",
        about: "ILI, weekly, 7 channels (`data download illness`)",
    },
];

/// Where a run's series comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum DataSource {
    /// A known dataset, read from `<data dir>/<path>`.
    Known(KnownDataset),
    /// Any TSLib-format CSV.
    Csv(PathBuf),
    /// The seeded synthetic series.
    Synthetic(SyntheticConfig),
}

impl DataSource {
    /// Interpret a `--data` value: `synthetic`, a known name (case-insensitive), or a path to a
    /// CSV file.
    pub fn parse(value: &str) -> Result<Self> {
        if value.eq_ignore_ascii_case("synthetic") {
            return Ok(Self::Synthetic(SyntheticConfig::default()));
        }
        if let Some(known) = KNOWN_DATASETS
            .iter()
            .find(|k| k.name.eq_ignore_ascii_case(value))
        {
            return Ok(Self::Known(*known));
        }
        let path = Path::new(value);
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
            || value.contains(std::path::MAIN_SEPARATOR)
        {
            return Ok(Self::Csv(path.to_path_buf()));
        }
        let names: Vec<&str> = KNOWN_DATASETS.iter().map(|k| k.name).collect();
        Err(DataError::Invalid(format!(
            "unknown dataset `{value}`: expected `synthetic`, one of {}, or a path to a .csv file",
            names.join(", ")
        )))
    }

    /// Name recorded in results: the known name, the file stem, or `synthetic`.
    pub fn name(&self) -> String {
        match self {
            Self::Known(k) => k.name.to_string(),
            Self::Csv(p) => p.file_stem().map_or_else(
                || p.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            ),
            Self::Synthetic(_) => "synthetic".into(),
        }
    }

    /// The file this source reads, if any, given the data folder.
    pub fn path(&self, data_dir: &Path) -> Option<PathBuf> {
        match self {
            Self::Known(k) => Some(data_dir.join(k.path)),
            Self::Csv(p) => Some(p.clone()),
            Self::Synthetic(_) => None,
        }
    }

    /// Load the series, moving `target` last.
    pub fn load(&self, data_dir: &Path, target: &str) -> Result<TimeSeries> {
        match self {
            Self::Known(k) => {
                let mut series = load_csv(&data_dir.join(k.path), target)?;
                series.name = k.name.to_string();
                Ok(series)
            }
            Self::Csv(p) => load_csv(p, target),
            Self::Synthetic(config) => {
                let mut series = generate(config);
                if target != "OT" {
                    return Err(DataError::Invalid(format!(
                        "the synthetic series has target `OT`; --target `{target}` does not apply"
                    )));
                }
                series.name = "synthetic".into();
                Ok(series)
            }
        }
    }
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}
