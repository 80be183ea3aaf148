//! A seeded synthetic multivariate series: the offline default dataset.
//!
//! Each channel mixes three shared seasonal factors (daily, weekly and a ~monthly cycle at an
//! hourly step) with its own loadings and phases, adds a slow piecewise-linear trend and AR(1)
//! noise, and is coupled to the previous channel with a lag, so that other channels carry
//! information about the target. The last channel is named `OT`, as in ETT.
//!
//! ```
//! use datasets::synthetic::{SyntheticConfig, generate};
//! let a = generate(&SyntheticConfig::default());
//! let b = generate(&SyntheticConfig::default());
//! assert_eq!(a.values, b.values); // same seed, same bytes
//! assert_eq!(a.columns.last().unwrap(), "OT");
//! ```

use std::f64::consts::PI;

use chrono::{Duration, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::series::TimeSeries;

/// Shape and seed of the synthetic series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyntheticConfig {
    /// Rows (hourly steps).
    pub rows: usize,
    /// Channels, target last.
    pub channels: usize,
    /// Generator seed (independent of the training seed).
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            rows: 10_000,
            channels: 7,
            seed: 0,
        }
    }
}

/// Periods, in rows, of the shared seasonal factors.
const PERIODS: [f64; 3] = [24.0, 168.0, 24.0 * 30.5];
/// AR(1) coefficient of the noise.
const NOISE_AR: f64 = 0.8;
/// Lag, in rows, of the coupling to the previous channel.
const COUPLING_LAG: usize = 6;

/// Generate the series. The same config always gives the same values.
pub fn generate(config: &SyntheticConfig) -> TimeSeries {
    let (rows, channels) = (config.rows, config.channels.max(1));
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let normal = |rng: &mut ChaCha8Rng| {
        // Box-Muller: keeps the generator self-contained and bit-stable.
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()
    };

    struct Channel {
        loadings: [f64; 3],
        phases: [f64; 3],
        level: f64,
        scale: f64,
        trend_knots: Vec<f64>,
        noise: f64,
        coupling: f64,
    }
    let knots = 8;
    let specs: Vec<Channel> = (0..channels)
        .map(|_| Channel {
            loadings: [
                rng.random_range(0.5..1.5),
                rng.random_range(0.2..1.0),
                rng.random_range(0.0..0.8),
            ],
            phases: [
                rng.random_range(0.0..2.0 * PI),
                rng.random_range(0.0..2.0 * PI),
                rng.random_range(0.0..2.0 * PI),
            ],
            level: rng.random_range(-5.0..20.0),
            scale: rng.random_range(0.5..5.0),
            trend_knots: (0..=knots).map(|_| rng.random_range(-1.5..1.5)).collect(),
            noise: rng.random_range(0.1..0.4),
            coupling: rng.random_range(0.2..0.6),
        })
        .collect();

    let mut values = vec![0.0f64; rows * channels];
    let mut noise_state = vec![0.0f64; channels];
    for t in 0..rows {
        let position = t as f64 / rows.max(1) as f64 * knots as f64;
        let knot = (position.floor() as usize).min(knots - 1);
        let frac = position - knot as f64;
        for (c, spec) in specs.iter().enumerate() {
            let seasonal: f64 = (0..3)
                .map(|k| {
                    spec.loadings[k] * (2.0 * PI * t as f64 / PERIODS[k] + spec.phases[k]).sin()
                })
                .sum();
            let trend = spec.trend_knots[knot] * (1.0 - frac) + spec.trend_knots[knot + 1] * frac;
            noise_state[c] = NOISE_AR * noise_state[c] + spec.noise * normal(&mut rng);
            let coupled = if c > 0 && t >= COUPLING_LAG {
                // Previous channel, lagged, in its own standardised units.
                let prev = &specs[c - 1];
                (values[(t - COUPLING_LAG) * channels + c - 1] - prev.level) / prev.scale
            } else {
                0.0
            };
            let standardised = seasonal + trend + noise_state[c] + spec.coupling * coupled;
            values[t * channels + c] = spec.level + spec.scale * standardised;
        }
    }

    let start = NaiveDate::from_ymd_opt(2020, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("valid start date");
    let dates = (0..rows)
        .map(|t| start + Duration::hours(t as i64))
        .collect();
    let mut columns: Vec<String> = (0..channels - 1).map(|c| format!("x{c}")).collect();
    columns.push("OT".into());
    TimeSeries {
        name: "synthetic".into(),
        columns,
        dates,
        values,
        sha256: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_differ_and_values_are_finite() {
        let a = generate(&SyntheticConfig::default());
        let b = generate(&SyntheticConfig {
            seed: 1,
            ..SyntheticConfig::default()
        });
        assert_ne!(a.values, b.values);
        assert!(a.values.iter().all(|v| v.is_finite()));
        assert_eq!(a.values.len(), 10_000 * 7);
    }
}
