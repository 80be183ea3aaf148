//! The forecasting protocol on the real ETT files: window counts, train-only scaler statistics,
//! and the pinned checksums. Skips, saying why, when ../shared/datasets is absent.

mod common;

use datasets::{DataSource, Features, ForecastData, ForecastSpec, SplitRule};

fn prepare(dir: &std::path::Path, name: &str, seq_len: usize, pred_len: usize) -> ForecastData {
    let series = DataSource::parse(name).unwrap().load(dir, "OT").unwrap();
    let spec = ForecastSpec {
        seq_len,
        pred_len,
        features: Features::M,
        split: SplitRule::for_dataset(name),
    };
    ForecastData::new(&series, spec).unwrap()
}

fn window_counts(data: &ForecastData) -> [usize; 3] {
    [
        data.splits[0].windows,
        data.splits[1].windows,
        data.splits[2].windows,
    ]
}

#[test]
#[ignore = "needs the ETT CSVs ($ARCHZOO_DATA or ../shared/datasets): run with -- --include-ignored"]
fn window_counts_match_the_protocol() {
    let dir = common::ett_dir();
    assert_eq!(
        window_counts(&prepare(&dir, "ETTh1", 96, 96)),
        [8449, 2785, 2785]
    );
    assert_eq!(
        window_counts(&prepare(&dir, "ETTh1", 336, 96)),
        [8209, 2785, 2785]
    );
    assert_eq!(
        window_counts(&prepare(&dir, "ETTm1", 96, 96)),
        [34369, 11425, 11425]
    );
    assert_eq!(
        window_counts(&prepare(&dir, "ETTh2", 96, 720)),
        [7825, 2161, 2161]
    );
}

/// Recompute mean and population std of the first 8640 rows straight from the text of the file,
/// independently of the loader, and check the scaler and the scaled values against them.
#[test]
#[ignore = "needs the ETT CSVs ($ARCHZOO_DATA or ../shared/datasets): run with -- --include-ignored"]
fn scaler_statistics_come_from_train_rows_only() {
    let dir = common::ett_dir();
    let text = std::fs::read_to_string(dir.join("ETT-small/ETTh1.csv")).unwrap();
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').skip(1).map(|v| v.parse().unwrap()).collect())
        .collect();
    let train = &rows[..8640];
    let data = prepare(&dir, "ETTh1", 96, 96);
    for c in 0..7 {
        let mean = train.iter().map(|r| r[c]).sum::<f64>() / 8640.0;
        let var = train.iter().map(|r| (r[c] - mean).powi(2)).sum::<f64>() / 8640.0;
        let std = var.sqrt();
        assert!(
            (data.scaler.mean[c] - mean).abs() < 1e-9 * mean.abs().max(1.0),
            "channel {c}"
        );
        assert!((data.scaler.std[c] - std).abs() < 1e-9 * std, "channel {c}");
        // Statistics of all rows differ: the test would catch a scaler fit on everything.
        let all_mean = rows.iter().map(|r| r[c]).sum::<f64>() / rows.len() as f64;
        assert!(
            (all_mean - mean).abs() > 1e-6,
            "channel {c}: train and full means coincide"
        );
        for row in [0, 8639, 8640, 12000, 14399] {
            let expected = ((rows[row][c] - mean) / std) as f32;
            assert!(
                (data.scaled(row, c) - expected).abs() < 1e-5,
                "row {row} channel {c}"
            );
        }
    }
}

#[test]
#[ignore = "needs the ETT CSVs ($ARCHZOO_DATA or ../shared/datasets): run with -- --include-ignored"]
fn files_match_their_pinned_checksums() {
    let dir = common::ett_dir();
    for file in datasets::download::ETT_FILES {
        let actual = datasets::download::sha256_file(&dir.join(file.path)).unwrap();
        assert_eq!(Some(actual.as_str()), file.sha256, "{}", file.path);
    }
}
