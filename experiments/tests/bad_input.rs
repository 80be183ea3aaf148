//! Every user mistake gets a clear message naming the file, line and column where they apply, a
//! non-zero exit, no panic, and leaves results already written untouched.

mod common;

use std::path::{Path, PathBuf};

use common::{archzoo, stderr};

const HEADER: &str = "date,HUFL,HULL,OT";

/// A valid CSV of `rows` hourly rows.
fn good_rows(rows: usize) -> Vec<String> {
    (0..rows)
        .map(|i| {
            format!(
                "2020-01-{:02} {:02}:00:00,{},{},{}",
                1 + i / 24,
                i % 24,
                (i as f64 * 0.3).sin(),
                (i as f64 * 0.1).cos(),
                i % 7
            )
        })
        .collect()
}

fn write_csv(dir: &Path, name: &str, header: &str, rows: &[String]) -> PathBuf {
    let path = dir.join(name);
    let mut text = format!("{header}\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// Train on `csv` with a small window; returns (exit success, stderr).
fn train_on(csv: &Path, out: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec![
        "train",
        "--arch",
        "dlinear",
        "--data",
        csv.to_str().unwrap(),
        "--seq-len",
        "24",
        "--pred-len",
        "12",
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let output = archzoo(&args, None);
    (output.status.success(), stderr(&output))
}

fn assert_clean_failure(ok: bool, err: &str, expected: &[&str]) {
    assert!(!ok, "expected failure, stderr: {err}");
    assert!(
        !err.contains("panicked"),
        "panic instead of an error: {err}"
    );
    for piece in expected {
        assert!(err.contains(piece), "`{piece}` missing from: {err}");
    }
}

/// Replace row `index` (0-based data row, so file line index + 2) of a good file.
fn with_row(index: usize, row: &str) -> Vec<String> {
    let mut rows = good_rows(400);
    rows[index] = row.to_string();
    rows
}

#[test]
fn non_numeric_cell() {
    let tmp = common::tempdir();
    let csv = write_csv(
        tmp.path(),
        "bad.csv",
        HEADER,
        &with_row(5, "2020-01-01 05:00:00,1.0,abc,3"),
    );
    let (ok, err) = train_on(&csv, &tmp.path().join("runs"), &[]);
    assert_clean_failure(
        ok,
        &err,
        &[
            "bad.csv:7:",
            "column `HULL`",
            "`abc` is not a finite number",
        ],
    );
}

#[test]
fn nan_cell() {
    let tmp = common::tempdir();
    let csv = write_csv(
        tmp.path(),
        "nan.csv",
        HEADER,
        &with_row(9, "2020-01-01 09:00:00,NaN,1,3"),
    );
    let (ok, err) = train_on(&csv, &tmp.path().join("runs"), &[]);
    assert_clean_failure(
        ok,
        &err,
        &["nan.csv:11:", "column `HUFL`", "not a finite number"],
    );
}

#[test]
fn empty_cell() {
    let tmp = common::tempdir();
    let csv = write_csv(
        tmp.path(),
        "empty.csv",
        HEADER,
        &with_row(0, "2020-01-01 00:00:00,1.0,,3"),
    );
    let (ok, err) = train_on(&csv, &tmp.path().join("runs"), &[]);
    assert_clean_failure(ok, &err, &["empty.csv:2:", "column `HULL`", "empty cell"]);
}

#[test]
fn wrong_number_of_fields() {
    let tmp = common::tempdir();
    let csv = write_csv(
        tmp.path(),
        "fields.csv",
        HEADER,
        &with_row(99, "2020-01-05 03:00:00,1.0,2.0"),
    );
    let (ok, err) = train_on(&csv, &tmp.path().join("runs"), &[]);
    assert_clean_failure(
        ok,
        &err,
        &["fields.csv:101:", "expected 4 fields", "found 3"],
    );
}

#[test]
fn missing_target_column() {
    let tmp = common::tempdir();
    let csv = write_csv(
        tmp.path(),
        "target.csv",
        "date,HUFL,HULL,TEMP",
        &good_rows(400),
    );
    let (ok, err) = train_on(&csv, &tmp.path().join("runs"), &[]);
    assert_clean_failure(ok, &err, &["target.csv:1:", "target column `OT` not found"]);
    // The same file works once the right target is named.
    let (ok, err) = train_on(&csv, &tmp.path().join("runs"), &["--target", "TEMP"]);
    assert!(ok, "{err}");
}

#[test]
fn missing_date_column() {
    let tmp = common::tempdir();
    let rows: Vec<String> = (0..400).map(|i| format!("{i},1,2")).collect();
    let csv = write_csv(tmp.path(), "nodate.csv", "HUFL,HULL,OT", &rows);
    let (ok, err) = train_on(&csv, &tmp.path().join("runs"), &[]);
    assert_clean_failure(
        ok,
        &err,
        &["nodate.csv:1:", "first column must be `date`", "`HUFL`"],
    );
}

#[test]
fn unparsable_date() {
    let tmp = common::tempdir();
    let csv = write_csv(
        tmp.path(),
        "date.csv",
        HEADER,
        &with_row(3, "not-a-date,1,2,3"),
    );
    let (ok, err) = train_on(&csv, &tmp.path().join("runs"), &[]);
    assert_clean_failure(ok, &err, &["date.csv:5:", "column `date`", "`not-a-date`"]);
}

#[test]
fn series_too_short_for_a_split() {
    let tmp = common::tempdir();
    // 100 rows: val gets 10 rows + the lookback, too few for L + H = 36.
    let csv = write_csv(tmp.path(), "short.csv", HEADER, &good_rows(100));
    let (ok, err) = train_on(&csv, &tmp.path().join("runs"), &[]);
    assert_clean_failure(ok, &err, &["short", "val split", "seq_len + pred_len = 36"]);
}

#[test]
fn file_that_does_not_exist() {
    let tmp = common::tempdir();
    let (ok, err) = train_on(
        &tmp.path().join("nowhere.csv"),
        &tmp.path().join("runs"),
        &[],
    );
    assert_clean_failure(ok, &err, &["nowhere.csv", "No such file"]);
}

#[test]
fn known_dataset_missing_from_the_data_folder() {
    let tmp = common::tempdir();
    let output = archzoo(
        &[
            "train",
            "--data",
            "ETTh1",
            "--data-dir",
            tmp.path().to_str().unwrap(),
        ],
        None,
    );
    assert_clean_failure(
        output.status.success(),
        &stderr(&output),
        &["ETTh1", "not found", "data download ett"],
    );
}

#[test]
fn unknown_architecture_and_dataset() {
    let output = archzoo(&["train", "--arch", "rwkv"], None);
    assert_clean_failure(
        output.status.success(),
        &stderr(&output),
        &["invalid value 'rwkv'", "dlinear"],
    );
    let output = archzoo(&["train", "--data", "ETTh9"], None);
    assert_clean_failure(
        output.status.success(),
        &stderr(&output),
        &["unknown dataset `ETTh9`", "ETTh1"],
    );
}

#[test]
fn non_positive_lookback_or_horizon() {
    for (flag, value) in [
        ("--seq-len", "0"),
        ("--seq-len", "-5"),
        ("--pred-len", "0"),
        ("--pred-len", "-1"),
    ] {
        let output = archzoo(&["train", flag, value], None);
        assert_clean_failure(output.status.success(), &stderr(&output), &[flag, value]);
    }
}

#[test]
fn option_that_does_not_apply_to_the_architecture() {
    let output = archzoo(&["train", "--arch", "dlinear", "--d-model", "64"], None);
    assert_clean_failure(
        output.status.success(),
        &stderr(&output),
        &["--d-model does not apply to `dlinear`", "--moving-avg"],
    );
    let output = archzoo(&["train", "--arch", "repeat", "--lr", "0.01"], None);
    assert_clean_failure(
        output.status.success(),
        &stderr(&output),
        &["--lr does not apply to `repeat`"],
    );
    let output = archzoo(&["train", "--arch", "dlinear", "--moving-avg", "24"], None);
    assert_clean_failure(
        output.status.success(),
        &stderr(&output),
        &["moving_avg must be odd"],
    );
    let output = archzoo(&["train", "--arch", "mamba", "--norm", "batch-norm"], None);
    assert_clean_failure(
        output.status.success(),
        &stderr(&output),
        &["--norm does not apply to `mamba`"],
    );
    let output = archzoo(
        &[
            "train",
            "--arch",
            "transformer",
            "--causal",
            "--norm",
            "batch-norm",
        ],
        None,
    );
    assert_clean_failure(
        output.status.success(),
        &stderr(&output),
        &["batch norm needs a bidirectional encoder"],
    );
}

#[test]
fn a_failed_run_keeps_results_already_written() {
    let tmp = common::tempdir();
    let out = tmp.path().join("runs");
    let good = write_csv(tmp.path(), "good.csv", HEADER, &good_rows(400));
    let (ok, err) = train_on(&good, &out, &[]);
    assert!(ok, "{err}");
    let run = common::single_run(&out);
    let before: Vec<(PathBuf, Vec<u8>)> = ["config.json", "metrics.jsonl", "summary.json"]
        .iter()
        .map(|f| (run.join(f), std::fs::read(run.join(f)).unwrap()))
        .collect();
    let bad = write_csv(
        tmp.path(),
        "bad.csv",
        HEADER,
        &with_row(5, "2020-01-01 05:00:00,x,1,2"),
    );
    let (ok, _) = train_on(&bad, &out, &[]);
    assert!(!ok);
    assert_eq!(
        common::single_run(&out),
        run,
        "the failed run left a directory behind"
    );
    for (path, bytes) in before {
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "{} changed",
            path.display()
        );
    }
}

#[test]
fn bad_transformer_config_is_rejected_before_training() {
    let tmp = common::tempdir();
    let out = tmp.path().join("runs");
    let out = out.to_str().unwrap();
    for (args, expected) in [
        (
            vec!["--d-model", "10", "--heads", "3"],
            "divisible by heads",
        ),
        (
            vec!["--patch-len", "200"],
            "patch_len (200) is longer than the lookback seq_len (96)",
        ),
        (vec!["--layers", "0"], "--layers"),
    ] {
        let mut full = vec!["train", "--arch", "transformer", "--out", out];
        full.extend(args);
        let output = archzoo(&full, None);
        assert_clean_failure(output.status.success(), &stderr(&output), &[expected]);
    }
    assert!(
        !tmp.path().join("runs").exists(),
        "a rejected config wrote results"
    );
}

#[test]
fn decoding_beyond_what_a_model_can_step_is_an_error() {
    let output = archzoo(
        &[
            "bench",
            "decode",
            "--arch",
            "transformer",
            "--causal",
            "--d-model",
            "16",
            "--heads",
            "2",
            "--positions",
            "20000",
        ],
        None,
    );
    assert_clean_failure(
        output.status.success(),
        &stderr(&output),
        &["position 20000 is beyond `transformer`'s position table (16384 positions"],
    );
    let output = archzoo(&["bench", "decode", "--arch", "transformer"], None);
    assert_clean_failure(
        output.status.success(),
        &stderr(&output),
        &["bidirectional", "--causal"],
    );
}

#[test]
fn bad_mamba_config_is_rejected() {
    for (args, expected) in [
        (vec!["--d-state", "0"], "--d-state"),
        (vec!["--layers", "0"], "--layers"),
        (vec!["--heads", "2"], "--heads does not apply to `mamba`"),
    ] {
        let mut full = vec!["train", "--arch", "mamba", "--data", "synthetic"];
        full.extend_from_slice(&args);
        let output = archzoo(&full, None);
        assert_clean_failure(output.status.success(), &stderr(&output), &[expected]);
    }
}

#[test]
fn bad_griffin_config_is_rejected() {
    for (arch, args, expected) in [
        ("griffin", vec!["--layers", "2"], "no attention block"),
        ("griffin", vec!["--heads", "3"], "divisible by heads"),
        (
            "griffin",
            vec!["--d-model", "20", "--heads", "2"],
            "divisible by 4",
        ),
        (
            "hawk",
            vec!["--window", "8"],
            "--window does not apply to `hawk`",
        ),
        (
            "mamba",
            vec!["--window", "8"],
            "--window does not apply to `mamba`",
        ),
    ] {
        let mut full = vec!["train", "--arch", arch, "--data", "synthetic"];
        full.extend_from_slice(&args);
        let output = archzoo(&full, None);
        assert_clean_failure(output.status.success(), &stderr(&output), &[expected]);
    }
}

#[test]
fn bad_sweep_files_are_rejected_before_any_run() {
    let tmp = common::tempdir();
    for (text, expected) in [
        (
            "arch = \"dlinear\"\nlearning_rate = 1e-3\n",
            "sweep.toml, line 2: unknown setting `learning_rate`",
        ),
        ("seed = 1\n", "a sweep needs `arch`"),
        (
            "arch = \"dlinear\"\nd_model = [16]\nseed = \"x\"\n",
            "sweep.toml",
        ),
        (
            "arch = \"mamba\"\nd_state = 0\n",
            "sweep.toml, line 2: invalid value '0' for '--d-state <D_STATE>'",
        ),
        ("arch = [\"dlinear\"\n", "sweep.toml"),
    ] {
        let path = tmp.path().join("sweep.toml");
        std::fs::write(&path, text).unwrap();
        let out = tmp.path().join("out");
        let output = archzoo(
            &[
                "sweep",
                path.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            None,
        );
        assert_clean_failure(output.status.success(), &stderr(&output), &[expected]);
        assert!(!out.exists(), "{text}: wrote results before failing");
    }
    let path = tmp.path().join("sweep.toml");
    std::fs::write(&path, "arch = \"dlinear\"\n").unwrap();
    let output = archzoo(&["sweep", path.to_str().unwrap(), "--shard", "2/2"], None);
    assert_clean_failure(
        output.status.success(),
        &stderr(&output),
        &["--shard must be i/n"],
    );
}
