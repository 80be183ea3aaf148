//! Reversible instance normalisation (RevIN; Kim et al., ICLR 2022,
//! <https://openreview.net/forum?id=cGDAkQo1C0p>).
//!
//! Reference: plumprc/RTSF `models/RLinear.py` (`RevIN`) @ 0fec001. Each window is normalised by
//! its own per-channel mean and standard deviation over time (population variance, `eps` inside
//! the square root), optionally followed by a learned per-channel affine map; the inverse is
//! applied to the forecast.

use burn::module::Param;
use burn::prelude::*;

/// Hyperparameters of [`RevIn`].
#[derive(Config, Debug)]
pub struct RevInConfig {
    /// Channels `c`.
    pub channels: usize,
    /// Added to the variance before the square root, and (squared) to the affine weight in the
    /// inverse, as in the reference.
    #[config(default = 1e-5)]
    pub eps: f64,
    /// Learn a per-channel affine map (weight 1, bias 0 at init).
    #[config(default = true)]
    pub affine: bool,
}

/// Reversible instance normalisation over the time axis of `[b, L, c]` windows.
#[derive(Module, Debug)]
pub struct RevIn {
    /// `[c]`, ones at init.
    pub affine_weight: Option<Param<Tensor<1>>>,
    /// `[c]`, zeros at init.
    pub affine_bias: Option<Param<Tensor<1>>>,
    eps: f64,
}

/// Statistics of one batch of windows, kept to invert the normalisation.
#[derive(Clone, Debug)]
pub struct RevInStats {
    /// `[b, 1, c]`.
    pub mean: Tensor<3>,
    /// `[b, 1, c]`.
    pub std: Tensor<3>,
}

impl RevInConfig {
    /// Build on `device`.
    pub fn init(&self, device: &Device) -> RevIn {
        let (affine_weight, affine_bias) = if self.affine {
            (
                Some(Param::from_tensor(Tensor::ones([self.channels], device))),
                Some(Param::from_tensor(Tensor::zeros([self.channels], device))),
            )
        } else {
            (None, None)
        };
        RevIn {
            affine_weight,
            affine_bias,
            eps: self.eps,
        }
    }
}

impl RevIn {
    /// Normalise `x: [b, L, c]`; returns the normalised windows and their statistics.
    pub fn normalize(&self, x: Tensor<3>) -> (Tensor<3>, RevInStats) {
        let (var, mean) = x.clone().var_mean_bias(1); // [b, 1, c] each
        let std = var.add_scalar(self.eps).sqrt();
        let mut y = (x - mean.clone()) / std.clone();
        if let (Some(w), Some(bias)) = (&self.affine_weight, &self.affine_bias) {
            y = y * w.val().unsqueeze::<3>() + bias.val().unsqueeze::<3>();
        }
        (y, RevInStats { mean, std })
    }

    /// Invert [`Self::normalize`] on a forecast `y: [b, H, c]`.
    pub fn denormalize(&self, y: Tensor<3>, stats: &RevInStats) -> Tensor<3> {
        let mut y = y;
        if let (Some(w), Some(bias)) = (&self.affine_weight, &self.affine_bias) {
            y = (y - bias.val().unsqueeze::<3>())
                / w.val().add_scalar(self.eps * self.eps).unsqueeze::<3>();
        }
        y * stats.std.clone() + stats.mean.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_identity() {
        let device = Device::flex();
        let revin = RevInConfig::new(3).init(&device);
        let x = Tensor::<3>::random([2, 16, 3], burn::tensor::Distribution::Default, &device);
        let (y, stats) = revin.normalize(x.clone());
        let back = revin.denormalize(y, &stats);
        back.into_data()
            .assert_approx_eq::<f32>(&x.into_data(), burn::tensor::Tolerance::absolute(1e-4));
    }
}
