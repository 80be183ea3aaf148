//! What a run measures: MSE and MAE over a split ([`evaluate`]), the per-epoch record of
//! `metrics.jsonl` ([`EpochRecord`]), and the sampled test forecasts of `forecasts.json`.
//!
//! Metrics are MSE and MAE over every window, horizon step and scored channel, accumulated in f64
//! over elements, so they do not depend on the batch size (PROTOCOL.md).

use architectures::{Arch, Forecaster};
use burn::prelude::*;
use datasets::{ForecastData, Split};
use serde::{Deserialize, Serialize};

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Validation MSE after the epoch.
    pub val_mse: f64,
    /// Validation MAE after the epoch.
    pub val_mae: f64,
    /// Learning rate the epoch trained at.
    pub lr: f64,
    /// Wall seconds of the epoch (training and validation).
    pub seconds: f64,
    /// Whether this epoch's weights are the best so far.
    pub improved: bool,
}

impl EpochRecord {
    /// One line for the progress display: `train 0.4102 val mse 0.3921 mae 0.4010 * lr 1.00e-4
    /// (3.2 s)`, the star marking an improvement.
    pub fn describe(&self) -> String {
        format!(
            "train {:.4} val mse {:.4} mae {:.4}{} lr {:.2e} ({:.1} s)",
            self.train_loss,
            self.val_mse,
            self.val_mae,
            if self.improved { " *" } else { "" },
            self.lr,
            self.seconds
        )
    }
}

/// Error metrics over a split.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean squared error.
    pub mse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Windows evaluated.
    pub windows: usize,
}

/// MSE and MAE of `model` over every window of `split`, in order, `batch` windows at a time.
pub fn evaluate(
    model: &Arch,
    data: &ForecastData,
    split: &Split,
    batch: usize,
    device: &Device,
) -> Metrics {
    let scored = data.scored_channels();
    let (l, c) = (data.spec.seq_len, data.input_channels());
    let (mut x_buf, mut y_buf) = (Vec::new(), Vec::new());
    let (mut squared, mut absolute, mut count) = (0.0f64, 0.0f64, 0usize);
    let windows: Vec<usize> = (0..split.windows).collect();
    for indices in windows.chunks(batch.max(1)) {
        data.fill_batch(split, indices, &mut x_buf, &mut y_buf);
        let b = indices.len();
        let x = Tensor::<3>::from_data(TensorData::new(x_buf.clone(), [b, l, c]), device);
        let prediction = model
            .forecast(x)
            .narrow(2, scored.start, scored.len())
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 predictions");
        for (p, y) in prediction.iter().zip(&y_buf) {
            let e = f64::from(*p) - f64::from(*y);
            squared += e * e;
            absolute += e.abs();
        }
        count += prediction.len();
    }
    let n = count.max(1) as f64;
    Metrics {
        mse: squared / n,
        mae: absolute / n,
        windows: split.windows,
    }
}

/// Test windows whose forecasts a run stores (`forecasts.json`), for forecast-against-truth charts
/// drawn later from the results alone.
pub const STORED_FORECASTS: usize = 8;

/// The forecast of one window for the last input channel (the target), on the scaled axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForecastSample {
    /// Window index within the split (0-based, stride 1).
    pub window: usize,
    /// Series row of the window's first lookback step.
    pub first_row: usize,
    /// The lookback, `L` values.
    pub lookback: Vec<f32>,
    /// The truth over the horizon, `H` values.
    pub truth: Vec<f32>,
    /// The model's forecast, `H` values.
    pub forecast: Vec<f32>,
}

/// `forecasts.json`: sampled test-window forecasts of the tested weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForecastSamples {
    /// Split the windows come from (`test`).
    pub split: String,
    /// Name of the channel shown (the target, last input channel).
    pub channel: String,
    /// The windows, in order.
    pub samples: Vec<ForecastSample>,
}

/// The windows [`sample_forecasts`] stores: `count` evenly spaced over `0..windows`, first and
/// last included, without repeats.
pub fn sampled_windows(windows: usize, count: usize) -> Vec<usize> {
    if windows == 0 || count == 0 {
        return Vec::new();
    }
    let mut picked: Vec<usize> = (0..count)
        .map(|i| i * (windows - 1) / (count - 1).max(1))
        .collect();
    picked.dedup();
    picked
}

/// Forecasts of `model` for the target channel of `windows` of `split`.
pub fn sample_forecasts(
    model: &Arch,
    data: &ForecastData,
    split: &Split,
    windows: &[usize],
    device: &Device,
) -> ForecastSamples {
    let scored = data.scored_channels();
    let (l, h, c) = (data.spec.seq_len, data.spec.pred_len, data.input_channels());
    let target = c - 1;
    let (mut x_buf, mut y_buf) = (Vec::new(), Vec::new());
    data.fill_batch(split, windows, &mut x_buf, &mut y_buf);
    let b = windows.len();
    let x = Tensor::<3>::from_data(TensorData::new(x_buf.clone(), [b, l, c]), device);
    let forecast = model
        .forecast(x)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 predictions"); // [b, H, c]
    let scored_width = scored.len();
    let samples = windows
        .iter()
        .enumerate()
        .map(|(i, &window)| ForecastSample {
            window,
            first_row: split.rows.start + window,
            lookback: (0..l).map(|t| x_buf[(i * l + t) * c + target]).collect(),
            // y_buf is [b, H, scored]; the target is the last scored channel.
            truth: (0..h)
                .map(|t| y_buf[(i * h + t) * scored_width + scored_width - 1])
                .collect(),
            forecast: (0..h).map(|t| forecast[(i * h + t) * c + target]).collect(),
        })
        .collect();
    ForecastSamples {
        split: split.name.to_string(),
        channel: data.columns[target].clone(),
        samples,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_windows_span_the_split_without_repeats() {
        assert_eq!(
            sampled_windows(2785, 8),
            [0, 397, 795, 1193, 1590, 1988, 2386, 2784]
        );
        assert_eq!(sampled_windows(3, 8), [0, 1, 2]);
        assert_eq!(sampled_windows(1, 8), [0]);
        assert_eq!(sampled_windows(10, 1), [0]);
        assert!(sampled_windows(0, 8).is_empty());
    }
}
