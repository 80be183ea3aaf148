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
//! The registry ([`registry`]) is one line per architecture: adding one is its file (an
//! [`Architecture`], or a [`Backbone`], which serves the forecasting adapter and the token
//! adapter) and one line in the registry's lists; [`ArchName`], [`ArchConfig`], [`Arch`],
//! [`ArchState`], [`TokenConfig`], [`TokenArch`] and their dispatch are derived from it. Model
//! options are declared once ([`options`]).

pub mod blocks;
pub mod error;
pub mod flops;
pub mod forecast_adapter;
pub mod gated_deltanet;
pub mod griffin;
pub mod kernels;
pub mod linear;
pub mod lstm;
pub mod mamba;
pub mod mamba2;
pub mod options;
pub mod registry;
pub mod repeat;
pub mod sequence_model;
pub mod token_adapter;
pub mod transformer;

pub use error::ConfigError;
pub use forecast_adapter::{
    Backbone, BackboneConfig, PatchForecaster, PatchForecasterConfig, Patched, Patching,
};
pub use gated_deltanet::{GatedDeltaNet, GatedDeltaNetConfig, GatedDeltaNetState};
pub use griffin::{Griffin, GriffinConfig, GriffinState, TemporalKind};
pub use linear::{LinearForecaster, LinearForecasterConfig, LinearKind};
pub use mamba::{Mamba, MambaConfig, MambaState};
pub use mamba2::{Mamba2, Mamba2Config, Mamba2State};
pub use options::{ModelOption, ModelOptions};
pub use registry::{
    Arch, ArchConfig, ArchName, ArchState, Architecture, TaskShape, TokenArch, TokenConfig,
};
pub use repeat::{Repeat, RepeatConfig};
pub use sequence_model::{Forecaster, SequenceModel, WindowState};
pub use token_adapter::{TokenInit, TokenModel, TokenModelConfig, TokenRecipe};
pub use transformer::{KvCache, NormKind, PositionKind, Transformer, TransformerConfig};

/// Whether `value` is its type's default: the `skip_serializing_if` of a config field added after
/// runs were written with its default, so that their serialized configs, and the run ids hashed
/// from them, stay as they were.
pub fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}
