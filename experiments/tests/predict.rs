//! `archzoo predict`: a completed run keeps its weights and scaler and forecasts past the end of
//! any CSV with its columns, in the data's units, dates continued; mismatched columns and runs
//! without weights are clear errors.

mod common;

use std::path::{Path, PathBuf};

use common::{archzoo, single_run, stderr, stdout};

/// Rows of the fixture: enough for TSLib's 70/10/20 split at L 48, H 24.
const ROWS: usize = 600;

/// An hourly CSV, `date,a,b,OT`, each column a daily sinusoid around its own level (100, −50,
/// 1 000) so that a forecast in the wrong units cannot pass. `drop` leaves a column out.
fn write_fixture(path: &Path, drop: Option<&str>) {
    let columns = [("a", 100.0, 5.0), ("b", -50.0, 2.0), ("OT", 1000.0, 20.0)];
    let kept: Vec<_> = columns.iter().filter(|c| Some(c.0) != drop).collect();
    let mut text = String::from("date");
    for (name, _, _) in &kept {
        text.push_str(&format!(",{name}"));
    }
    text.push('\n');
    for r in 0..ROWS {
        let (day, hour) = (1 + r / 24, r % 24);
        text.push_str(&format!("2020-01-{day:02} {hour:02}:00:00"));
        for (i, (_, level, amplitude)) in kept.iter().enumerate() {
            let phase = std::f64::consts::TAU * (r as f64 / 24.0) + i as f64;
            text.push_str(&format!(",{:.4}", level + amplitude * phase.sin()));
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Train one epoch of DLinear on the fixture, returning the run directory.
fn trained_run(dir: &Path, features: &str) -> (PathBuf, PathBuf) {
    let csv = dir.join("series.csv");
    write_fixture(&csv, None);
    let out = dir.join("runs");
    let output = archzoo(
        &[
            "train",
            "--arch",
            "dlinear",
            "--data",
            csv.to_str().unwrap(),
            "--features",
            features,
            "--seq-len",
            "48",
            "--pred-len",
            "24",
            "--epochs",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    (single_run(&out), csv)
}

/// `archzoo predict RUN --data CSV [extra...]`.
fn predict(run: &Path, csv: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "predict",
        run.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    archzoo(&args, None)
}

#[test]
fn a_run_forecasts_past_the_end_in_the_data_units() {
    let tmp = common::tempdir();
    let (run, csv) = trained_run(tmp.path(), "M");
    for file in ["model.bpk", "scaler.json"] {
        assert!(run.join(file).exists(), "a completed run keeps {file}");
    }
    assert!(
        !run.join("checkpoint").exists(),
        "the checkpoint is gone once the run completed"
    );
    let output = predict(&run, &csv, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "date,a,b,OT");
    assert_eq!(lines.len(), 1 + 24, "H rows after the header");
    // The last row is 2020-01-25 23:00 (row 599); the forecast starts an hour later.
    assert!(lines[1].starts_with("2020-01-26 00:00:00,"), "{}", lines[1]);
    assert!(
        lines[24].starts_with("2020-01-26 23:00:00,"),
        "{}",
        lines[24]
    );
    for line in &lines[1..] {
        let values: Vec<f64> = line
            .split(',')
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect();
        // Each column near its own level: the scaling was inverted.
        for (value, (level, spread)) in
            values
                .iter()
                .zip([(100.0, 15.0), (-50.0, 6.0), (1000.0, 60.0)])
        {
            assert!(
                (value - level).abs() < spread,
                "{value} is not in the data's units (level {level}): {line}"
            );
        }
    }
    // The same forecast through --out.
    let file = tmp.path().join("forecast.csv");
    let output = predict(&run, &csv, &["--out", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn ms_forecasts_the_target_alone() {
    let tmp = common::tempdir();
    let (run, csv) = trained_run(tmp.path(), "MS");
    let output = predict(&run, &csv, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(text.lines().next(), Some("date,OT"));
    assert_eq!(text.lines().count(), 25);
}

#[test]
fn bad_input_is_a_clear_error() {
    let tmp = common::tempdir();
    let (run, _) = trained_run(tmp.path(), "M");
    let predict = |data: &Path| predict(&run, data, &[]);
    // A column removed: named.
    let missing = tmp.path().join("missing.csv");
    write_fixture(&missing, Some("b"));
    let output = predict(&missing);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("missing `b`"),
        "{}",
        stderr(&output)
    );
    // Too few rows for the lookback.
    let short = tmp.path().join("short.csv");
    let full = std::fs::read_to_string(tmp.path().join("series.csv")).unwrap();
    let head: Vec<&str> = full.lines().take(1 + 10).collect();
    std::fs::write(&short, head.join("\n") + "\n").unwrap();
    let output = predict(&short);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("10 rows"), "{}", stderr(&output));
    // A run without weights (completed before runs kept them): says how to retrain.
    std::fs::remove_file(run.join("model.bpk")).unwrap();
    let output = predict(&tmp.path().join("series.csv"));
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("model.bpk") && message.contains("--force"),
        "{message}"
    );
}
