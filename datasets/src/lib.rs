//! Data for archzoo: TSLib-format CSV loading, the forecasting protocol (splits, train-only
//! scaling, stride-1 windows, feature modes), a seeded synthetic series, ETT download, and the
//! token probes' generators.
//!
//! This crate knows series, not models: it hands out plain `f32` buffers, and the runner turns
//! them into tensors.

pub mod download;
pub mod error;
pub mod forecast;
pub mod probes;
pub mod series;
pub mod source;
pub mod synthetic;

pub use error::{DataError, Result};
pub use forecast::{Features, ForecastData, ForecastSpec, Split, SplitRule, StandardScaler};
pub use probes::{ProbeError, ProbeTask, Scoring, TokenExamples};
pub use series::{TimeSeries, load_csv};
pub use source::{DataSource, KNOWN_DATASETS, KnownDataset};
