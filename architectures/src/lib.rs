//! The architecture zoo: one [`SequenceModel`] trait, an enum registry, one file per architecture.
//!
//! # Shape glossary
//!
//! Every shape in this crate uses these letters:
//!
//! | letter | meaning |
//! |---|---|
//! | `b` | batch size |
//! | `l` | sequence length (positions of a [`SequenceModel`]) |
//! | `d` | model width (channels of a [`SequenceModel`]) |
//! | `c` | time-series channels (variates) of a forecasting window |
//! | `L` | forecasting lookback, `seq_len` |
//! | `H` | forecasting horizon, `pred_len` |
//! | `w` | window of past positions a causal filter sees |
//!
//! # Contracts
//!
//! - [`SequenceModel`]: the backbone contract, `[b, l, d] -> [b, l, d]`, causal, with a recurrent
//!   `step` that reproduces `forward` position by position.
//! - [`Forecaster`]: the forecasting contract, `[b, L, c] -> [b, H, c]`.
//!
//! The registry ([`ArchName`] -> [`ArchConfig`] -> [`Arch`] -> [`ArchState`]) is exhaustive: adding
//! an architecture is one file plus one variant in each enum, and the compiler points at every
//! `match` left to extend.

pub mod blocks;
pub mod error;
pub mod flops;
pub mod forecast_adapter;
pub mod griffin;
pub mod kernels;
pub mod linear;
pub mod mamba;
pub mod registry;
pub mod repeat;
pub mod sequence_model;
pub mod transformer;

pub use error::ConfigError;
pub use forecast_adapter::{Backbone, BackboneConfig, PatchForecaster, PatchForecasterConfig};
pub use griffin::{Griffin, GriffinConfig, GriffinState, TemporalKind};
pub use linear::{LinearForecaster, LinearForecasterConfig, LinearKind};
pub use mamba::{Mamba, MambaConfig, MambaState};
pub use registry::{Arch, ArchConfig, ArchName, ArchState, ModelOptions, TaskShape};
pub use repeat::{Repeat, RepeatConfig};
pub use sequence_model::{Forecaster, SequenceModel, WindowState};
pub use transformer::{KvCache, NormKind, PositionKind, Transformer, TransformerConfig};
