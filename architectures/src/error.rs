//! Errors in building a model from user-supplied options.

/// A model configuration that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// An option was given to an architecture that has no such hyperparameter.
    #[error("{option} does not apply to `{arch}` (it takes: {accepted})")]
    NotApplicable {
        /// The architecture (`dlinear`).
        arch: &'static str,
        /// The option (displayed as its flag, `--d-model`).
        option: crate::options::ModelOption,
        /// The flags this architecture accepts.
        accepted: String,
    },
    /// A token task was asked of an architecture without a causal backbone.
    #[error(
        "`{arch}` is a window forecaster with no causal backbone, so it cannot run token tasks (those that can: {token_models})"
    )]
    NoTokenModel {
        /// The architecture (`dlinear`).
        arch: &'static str,
        /// The architectures that can.
        token_models: String,
    },
    /// A value is out of its valid range.
    #[error("{0}")]
    Invalid(String),
}
