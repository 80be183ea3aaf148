//! Typed errors of the runner. The binary prints them with their cause chain.

use std::path::PathBuf;

/// Everything a run can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Reading or preparing the data failed.
    #[error(transparent)]
    Data(#[from] datasets::DataError),
    /// The model configuration is invalid.
    #[error(transparent)]
    Config(#[from] architectures::ConfigError),
    /// A setting of the run is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing a results file failed.
    #[error("{path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A results file is not valid JSON of the expected shape.
    #[error("{path}: {source}")]
    Json {
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        source: serde_json::Error,
    },
    /// A checkpoint file cannot be read, or no longer fits the model (written by another
    /// version of the code).
    #[error(
        "checkpoint {path}: {message} (run again with --force to discard the checkpoint and start over)"
    )]
    Checkpoint {
        /// File involved.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The training loss became NaN or infinite.
    #[error("training diverged: loss {loss} at epoch {epoch}, batch {batch}")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 0-based batch within the epoch.
        batch: usize,
        /// The loss value.
        loss: f64,
    },
    /// The requested backend is not compiled into this binary.
    #[error("backend `{0}` is not available in this build (rebuild with `--features {0}`)")]
    BackendUnavailable(&'static str),
}

impl RunError {
    /// `loss`, or [`RunError::Diverged`] when it is NaN or infinite (a training loop's check
    /// after each batch).
    pub fn unless_finite(loss: f64, epoch: usize, batch: usize) -> Result<f64> {
        if loss.is_finite() {
            Ok(loss)
        } else {
            Err(RunError::Diverged { epoch, batch, loss })
        }
    }

    /// `lr` when it is a positive number, or the error naming `--lr`.
    pub fn unless_positive_lr(lr: f64) -> Result<f64> {
        if lr.is_finite() && lr > 0.0 {
            Ok(lr)
        } else {
            Err(RunError::Invalid(format!(
                "--lr must be a positive number (got {lr})"
            )))
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = RunError> = std::result::Result<T, E>;

/// Attach a path to an I/O error.
pub(crate) fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RunError {
    let path = path.into();
    move |source| RunError::Io { path, source }
}
