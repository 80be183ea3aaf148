//! The long-horizon forecasting protocol (PROTOCOL.md, TSLib `data_provider/data_loader.py`):
//! fixed ETT borders or the 70/10/20 rule, a per-channel z-score fitted on the train rows only,
//! stride-1 windows of `seq_len` inputs and `pred_len` targets, and the M / S / MS feature modes.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::series::TimeSeries;

/// How a series is cut into train, validation and test rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitRule {
    /// ETTh1/ETTh2: 12/4/4 months of 30 days at one row per hour (8640/2880/2880 rows).
    EttHour,
    /// ETTm1/ETTm2: the same months at four rows per hour.
    EttMinute,
    /// Every other dataset: `floor(0.7 N)` / rest / `floor(0.2 N)`, no unused rows.
    Ratio,
}

impl SplitRule {
    /// The rule the protocol prescribes for a dataset name (`ETTh*`, `ETTm*`, otherwise ratio).
    pub fn for_dataset(name: &str) -> Self {
        if name.starts_with("ETTh") {
            Self::EttHour
        } else if name.starts_with("ETTm") {
            Self::EttMinute
        } else {
            Self::Ratio
        }
    }

    /// Half-open row ranges `[start, end)` of train, val and test for a series of `rows` rows and a
    /// lookback of `seq_len`. Val and test start `seq_len` rows early so their first target has a
    /// full input window; `start` can be negative when the series is too short (checked later).
    pub fn borders(self, rows: usize, seq_len: usize) -> [(i64, i64); 3] {
        let l = seq_len as i64;
        let (train, val, test_end) = match self {
            Self::EttHour | Self::EttMinute => {
                let per_month = if self == Self::EttHour {
                    30 * 24
                } else {
                    30 * 24 * 4
                };
                (12 * per_month, 4 * per_month, 20 * per_month)
            }
            Self::Ratio => {
                let n = rows as i64;
                let n_train = (rows * 7 / 10) as i64;
                let n_test = (rows * 2 / 10) as i64;
                (n_train, n - n_train - n_test, n)
            }
        };
        let test_start = test_end - (test_end - train - val);
        [
            (0, train),
            (train - l, train + val),
            (test_start - l, test_end),
        ]
    }
}

impl fmt::Display for SplitRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EttHour => "ett-hour",
            Self::EttMinute => "ett-minute",
            Self::Ratio => "ratio",
        })
    }
}

impl FromStr for SplitRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ett-hour" => Ok(Self::EttHour),
            "ett-minute" => Ok(Self::EttMinute),
            "ratio" => Ok(Self::Ratio),
            _ => Err(format!(
                "unknown split `{s}` (expected ett-hour, ett-minute or ratio)"
            )),
        }
    }
}

/// Which channels go in and which are forecast (TSLib `--features`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Features {
    /// All channels in, all channels out (the headline setting).
    M,
    /// The target only, in and out.
    S,
    /// All channels in, the target (last channel) out.
    MS,
}

impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::M => "M",
            Self::S => "S",
            Self::MS => "MS",
        })
    }
}

impl FromStr for Features {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "M" => Ok(Self::M),
            "S" => Ok(Self::S),
            "MS" => Ok(Self::MS),
            _ => Err(format!("unknown feature mode `{s}` (expected M, S or MS)")),
        }
    }
}

/// Per-channel z-score, `(x - mean) / std`, with population std as sklearn's `StandardScaler`
/// (a zero std is replaced by 1, as sklearn does).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StandardScaler {
    /// Mean of every channel over the fitting rows.
    pub mean: Vec<f64>,
    /// Population standard deviation of every channel over the fitting rows.
    pub std: Vec<f64>,
}

impl StandardScaler {
    /// Fit on `rows` of a row-major `[_, channels]` matrix.
    pub fn fit(values: &[f64], channels: usize, rows: Range<usize>) -> Self {
        let n = rows.len() as f64;
        let mut mean = vec![0.0; channels];
        for r in rows.clone() {
            for (c, m) in mean.iter_mut().enumerate() {
                *m += values[r * channels + c];
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; channels];
        for r in rows {
            for (c, v) in var.iter_mut().enumerate() {
                let d = values[r * channels + c] - mean[c];
                *v += d * d;
            }
        }
        let std = var
            .iter()
            .map(|v| {
                let s = (v / n).sqrt();
                if s > 0.0 { s } else { 1.0 }
            })
            .collect();
        Self { mean, std }
    }

    /// Scale a row-major `[_, channels]` matrix to f32.
    pub fn transform(&self, values: &[f64]) -> Vec<f32> {
        let channels = self.mean.len();
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let c = i % channels;
                ((v - self.mean[c]) / self.std[c]) as f32
            })
            .collect()
    }
}

/// What a forecasting experiment asks of the data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForecastSpec {
    /// Lookback `L`: input rows per window.
    pub seq_len: usize,
    /// Horizon `H`: target rows per window.
    pub pred_len: usize,
    /// Feature mode.
    pub features: Features,
    /// Split rule.
    pub split: SplitRule,
}

/// One of the three splits, as a half-open row range of the scaled series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// `train`, `val` or `test`.
    pub name: &'static str,
    /// Rows `[start, end)` of the series.
    pub rows: Range<usize>,
    /// Number of stride-1 windows, `rows - seq_len - pred_len + 1`.
    pub windows: usize,
}

/// A series prepared for forecasting: scaled with train statistics, split, windowed.
#[derive(Clone, Debug)]
pub struct ForecastData {
    /// Dataset name.
    pub name: String,
    /// Input channel names (target last).
    pub columns: Vec<String>,
    /// The protocol settings this data was prepared with.
    pub spec: ForecastSpec,
    /// Statistics of the train rows.
    pub scaler: StandardScaler,
    /// Scaled values, row-major `[rows, channels]`.
    scaled: Vec<f32>,
    /// Train, val and test.
    pub splits: [Split; 3],
    /// SHA-256 of the file the series was read from, if any.
    pub sha256: Option<String>,
}

impl ForecastData {
    /// Apply the protocol to `series`.
    pub fn new(series: &TimeSeries, spec: ForecastSpec) -> Result<Self> {
        if spec.seq_len == 0 || spec.pred_len == 0 {
            return Err(DataError::Invalid(format!(
                "seq_len and pred_len must be positive (got seq_len {}, pred_len {})",
                spec.seq_len, spec.pred_len
            )));
        }
        // S keeps the target only; M and MS keep every channel.
        let (columns, values) = match spec.features {
            Features::S => {
                let c = series.channels();
                let target: Vec<f64> = (0..series.rows())
                    .map(|r| series.values[r * c + c - 1])
                    .collect();
                (vec![series.columns[c - 1].clone()], target)
            }
            Features::M | Features::MS => (series.columns.clone(), series.values.clone()),
        };
        let channels = columns.len();
        let rows = series.rows();
        let borders = spec.split.borders(rows, spec.seq_len);
        let needed = spec.seq_len + spec.pred_len;
        let names = ["train", "val", "test"];
        let mut splits = Vec::with_capacity(3);
        for (name, (start, end)) in names.into_iter().zip(borders) {
            let available = end.min(rows as i64) - start;
            if start < 0 || end > rows as i64 || available < needed as i64 {
                return Err(DataError::TooShort {
                    dataset: series.name.clone(),
                    split: name,
                    start,
                    end,
                    rows: if start < 0 || end > rows as i64 {
                        (end.min(rows as i64) - start.max(0)).max(0)
                    } else {
                        available
                    },
                    needed,
                });
            }
            let rows = start as usize..end as usize;
            let windows = rows.len() - needed + 1;
            splits.push(Split {
                name,
                rows,
                windows,
            });
        }
        let splits: [Split; 3] = splits.try_into().expect("three splits");
        let scaler = StandardScaler::fit(&values, channels, splits[0].rows.clone());
        let scaled = scaler.transform(&values);
        Ok(Self {
            name: series.name.clone(),
            columns,
            spec,
            scaler,
            scaled,
            splits,
            sha256: series.sha256.clone(),
        })
    }

    /// Channels fed to the model.
    pub fn input_channels(&self) -> usize {
        self.columns.len()
    }

    /// Channels of the model output that are scored: all (M, S) or the target only (MS).
    pub fn scored_channels(&self) -> Range<usize> {
        let c = self.input_channels();
        match self.spec.features {
            Features::M | Features::S => 0..c,
            Features::MS => c - 1..c,
        }
    }

    /// Train (0), val (1) or test (2).
    pub fn split(&self, index: usize) -> &Split {
        &self.splits[index]
    }

    /// The scaled value at `row`, `channel`.
    pub fn scaled(&self, row: usize, channel: usize) -> f32 {
        self.scaled[row * self.input_channels() + channel]
    }

    /// Copy the windows `indices` of `split` into `x` (`[b, seq_len, channels]`) and `y`
    /// (`[b, pred_len, scored channels]`), both row-major, replacing their contents.
    pub fn fill_batch(&self, split: &Split, indices: &[usize], x: &mut Vec<f32>, y: &mut Vec<f32>) {
        let c = self.input_channels();
        let (l, h) = (self.spec.seq_len, self.spec.pred_len);
        let scored = self.scored_channels();
        x.clear();
        y.clear();
        for &w in indices {
            debug_assert!(w < split.windows, "window {w} out of range");
            let start = split.rows.start + w;
            x.extend_from_slice(&self.scaled[start * c..(start + l) * c]);
            for r in start + l..start + l + h {
                y.extend_from_slice(&self.scaled[r * c + scored.start..r * c + scored.end]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ett_borders_match_tslib() {
        assert_eq!(
            SplitRule::EttHour.borders(17420, 96),
            [(0, 8640), (8544, 11520), (11424, 14400)]
        );
        assert_eq!(
            SplitRule::EttMinute.borders(69680, 96),
            [(0, 34560), (34464, 46080), (45984, 57600)]
        );
    }

    #[test]
    fn ratio_borders_match_tslib() {
        // Exchange: N = 7588 -> 5311 / 760 / 1517.
        let [train, val, test] = SplitRule::Ratio.borders(7588, 96);
        assert_eq!(train, (0, 5311));
        assert_eq!(val, (5311 - 96, 5311 + 760));
        assert_eq!(test, (7588 - 1517 - 96, 7588));
    }

    /// A 3-channel series whose value encodes (row, channel): `row * 10 + channel`.
    fn coded_series(rows: usize) -> TimeSeries {
        let start = chrono::NaiveDate::from_ymd_opt(2020, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        TimeSeries {
            name: "coded".into(),
            columns: vec!["a".into(), "b".into(), "OT".into()],
            dates: (0..rows)
                .map(|r| start + chrono::Duration::hours(r as i64))
                .collect(),
            values: (0..rows)
                .flat_map(|r| (0..3).map(move |c| (r * 10 + c) as f64))
                .collect(),
            sha256: None,
        }
    }

    fn unscale(data: &ForecastData, value: f32, channel: usize) -> f64 {
        f64::from(value) * data.scaler.std[channel] + data.scaler.mean[channel]
    }

    #[test]
    fn feature_modes_select_inputs_and_targets() {
        let series = coded_series(200);
        let spec = |features| ForecastSpec {
            seq_len: 8,
            pred_len: 4,
            features,
            split: SplitRule::Ratio,
        };
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for (features, inputs, scored) in [
            (Features::M, 3, 0..3),
            (Features::S, 1, 0..1),
            (Features::MS, 3, 2..3),
        ] {
            let data = ForecastData::new(&series, spec(features)).unwrap();
            assert_eq!(data.input_channels(), inputs, "{features}");
            assert_eq!(data.scored_channels(), scored, "{features}");
            // Window 5 of the test split: inputs are rows start+5 .. start+13, targets the next 4.
            let test = data.split(2).clone();
            data.fill_batch(&test, &[5], &mut x, &mut y);
            assert_eq!(x.len(), 8 * inputs);
            assert_eq!(y.len(), 4 * scored.len());
            let first_row = test.rows.start + 5;
            let target_channel = if features == Features::S {
                0
            } else {
                inputs - 1
            };
            let original_channel = 2; // OT
            let got = unscale(&data, x[target_channel], target_channel);
            assert!((got - (first_row * 10 + original_channel) as f64).abs() < 1e-3);
            let last = y.len() - 1;
            let got = unscale(&data, y[last], target_channel);
            assert!((got - ((first_row + 11) * 10 + original_channel) as f64).abs() < 1e-3);
        }
    }

    #[test]
    fn scaler_uses_population_std_and_guards_zero() {
        let values = [1.0, 5.0, 3.0, 5.0, 100.0, 7.0];
        let s = StandardScaler::fit(&values, 2, 0..2);
        assert_eq!(s.mean, [2.0, 5.0]);
        assert_eq!(s.std, [1.0, 1.0]);
    }
}
