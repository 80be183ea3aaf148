//! The archzoo runner: a forecasting run is its [`config::RunConfig`]; [`runner::run`] loads the
//! data under the protocol, trains ([`train`]), evaluates ([`evaluate`]) and writes the run
//! directory ([`results`]); an interrupted run resumes from its [`checkpoint`]. [`sweep`] runs
//! grids of runs, [`report`] and [`plot`] turn stored runs into leaderboards and charts, [`bench`],
//! [`scaling`] and [`suite`] measure cost. Only the `archzoo` binary prints; this library reports
//! through [`progress::Progress`] and returns typed errors ([`error::RunError`]).
//!
//! The modules form no cycle: `evaluate` (metrics, epoch records, sampled forecasts) and `files`
//! (atomic writes) are leaves that `checkpoint`, `results`, `progress` and `train` share.

pub mod backend;
pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod evaluate;
pub mod explain;
pub mod explain_report;
pub mod files;
pub mod memory;
pub mod plot;
pub mod predict;
pub mod preset;
pub mod probe;
pub mod probe_report;
pub mod probe_sweep;
pub mod probe_train;
pub mod progress;
pub mod report;
pub mod request;
pub mod results;
pub mod runner;
pub mod scaling;
pub mod suite;
pub mod sweep;
pub mod sysinfo;
pub mod train;

pub use backend::BackendName;
pub use config::{DataConfig, RunConfig, TrainConfig};
pub use error::{Result, RunError};
pub use preset::Preset;
pub use request::RunRequest;
