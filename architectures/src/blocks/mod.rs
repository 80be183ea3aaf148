//! Pieces shared by several architectures.

pub mod revin;
pub mod time_linear;

pub use revin::{RevIn, RevInConfig, RevInStats};
pub use time_linear::{TimeLinear, TimeLinearConfig};
