//! Backend selection. A run names its backend and the backend is recorded in its results.

use std::fmt;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Backends selectable with `--backend`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum BackendName {
    /// burn-flex: pure-Rust CPU (gemm, rayon, SIMD). The default: fastest measured on CPU.
    #[default]
    Flex,
    /// burn-ndarray: the CPU backend named in the design card (deprecated upstream).
    Ndarray,
    /// burn-wgpu: GPUs through WebGPU (needs the `wgpu` Cargo feature).
    Wgpu,
}

impl BackendName {
    /// The command-line spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Flex => "flex",
            Self::Ndarray => "ndarray",
            Self::Wgpu => "wgpu",
        }
    }

    /// The (non-autodiff) device of this backend.
    pub fn device(self) -> Result<Device> {
        match self {
            Self::Flex => Ok(Device::flex()),
            #[allow(deprecated)] // named in the design card; kept selectable on purpose
            Self::Ndarray => Ok(Device::ndarray()),
            #[cfg(feature = "wgpu")]
            Self::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(not(feature = "wgpu"))]
            Self::Wgpu => Err(crate::error::RunError::BackendUnavailable("wgpu")),
        }
    }
}

impl fmt::Display for BackendName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
