//! Runs on disk: the files a run writes, skipping completed runs, bit-identical repeats, replay
//! from `config.json`, and the other subcommands.

mod common;

use common::{archzoo, read_json, single_run, stderr, stdout};

/// Two epochs of `arch` on the synthetic series at L = 48, H = 24.
fn quick_train_arch(arch: &str, out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--arch", arch, "--epochs", "2"];
    args.extend_from_slice(extra);
    common::train_synthetic(out, &args)
}

fn quick_train(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    quick_train_arch("dlinear", out, extra)
}

#[test]
fn a_run_writes_config_metrics_and_summary() {
    let tmp = common::tempdir();
    let out = tmp.path().join("runs");
    let output = quick_train(&out, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("test MSE"),
        "one-line result: {}",
        stdout(&output)
    );
    let run = single_run(&out);
    let config = read_json(&run.join("config.json"));
    assert_eq!(config["data"]["seq_len"], 48);
    assert_eq!(config["seed"], 2021);
    assert_eq!(config["backend"], "flex");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for key in ["epoch", "train_loss", "val_mse", "lr", "seconds"] {
        assert!(lines[0].get(key).is_some(), "metrics line lacks {key}");
    }
    let summary = read_json(&run.join("summary.json"));
    for key in [
        "arch",
        "dataset",
        "seq_len",
        "pred_len",
        "features",
        "preset",
        "seed",
        "test_mse",
        "test_mae",
        "val_mse",
        "n_test_windows",
        "params",
        "epochs_run",
        "wall_seconds",
        "peak_rss_bytes",
        "backend",
        "git_commit",
    ] {
        assert!(
            summary.get(key).is_some_and(|v| !v.is_null()),
            "summary lacks {key}"
        );
    }
    assert_eq!(summary["arch"], "dlinear");
    assert_eq!(summary["dataset"], "synthetic");
    assert!(summary["test_mse"].as_f64().unwrap().is_finite());
    // The run id is derived from the config: the directory name ends in its hash.
    assert!(
        run.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("dlinear-synthetic-L48-H24-s2021-")
    );
    // Sampled test forecasts for charts: 8 windows spread over the test split, first and last
    // included, each with L lookback values and H truth and forecast values.
    let forecasts = read_json(&run.join("forecasts.json"));
    assert_eq!(forecasts["split"], "test");
    let samples = forecasts["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 8);
    let n_test = summary["n_test_windows"].as_u64().unwrap();
    assert_eq!(samples[0]["window"], 0);
    assert_eq!(samples[7]["window"], n_test - 1);
    for sample in samples {
        let values = |key: &str| sample[key].as_array().unwrap().clone();
        assert_eq!(values("lookback").len(), 48);
        assert_eq!(values("truth").len(), 24);
        assert_eq!(values("forecast").len(), 24);
        assert!(
            values("forecast")
                .iter()
                .all(|v| v.as_f64().unwrap().is_finite())
        );
    }
    // Consecutive windows overlap: the truth of window w is the series after its lookback.
    let first = samples[0]["first_row"].as_u64().unwrap();
    assert_eq!(
        samples[1]["first_row"].as_u64().unwrap() - first,
        samples[1]["window"].as_u64().unwrap()
    );
}

#[test]
fn completed_runs_are_skipped_unless_forced_and_repeats_are_bit_identical() {
    let tmp = common::tempdir();
    let out = tmp.path().join("runs");
    assert!(quick_train(&out, &[]).status.success());
    let run = single_run(&out);
    let first = read_json(&run.join("summary.json"));
    let again = quick_train(&out, &[]);
    assert!(
        stdout(&again).contains("already completed"),
        "{}",
        stdout(&again)
    );
    assert_eq!(
        read_json(&run.join("summary.json")),
        first,
        "a skipped run rewrote its summary"
    );
    let forced = quick_train(&out, &["--force"]);
    assert!(forced.status.success());
    let second = read_json(&run.join("summary.json"));
    assert_eq!(
        first["test_mse"].as_f64().unwrap().to_bits(),
        second["test_mse"].as_f64().unwrap().to_bits()
    );
    assert_eq!(first["val_mse"], second["val_mse"]);
    // A different seed is a different run with different numbers.
    assert!(quick_train(&out, &["--seed", "7"]).status.success());
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
}

#[test]
fn replaying_config_json_reproduces_the_run() {
    let tmp = common::tempdir();
    let out = tmp.path().join("runs");
    assert!(quick_train_arch("rlinear", &out, &[]).status.success());
    let run = single_run(&out);
    let replay_out = tmp.path().join("replay");
    let config = run.join("config.json");
    let output = archzoo(
        &[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--out",
            replay_out.to_str().unwrap(),
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let replayed = single_run(&replay_out);
    assert_eq!(
        replayed.file_name(),
        run.file_name(),
        "same config, same run id"
    );
    assert_eq!(
        read_json(&run.join("summary.json"))["test_mse"],
        read_json(&replayed.join("summary.json"))["test_mse"]
    );
}

#[test]
fn list_names_architectures_datasets_and_presets() {
    let output = archzoo(&["list"], None);
    assert!(output.status.success());
    let text = stdout(&output);
    for name in [
        "dlinear",
        "nlinear",
        "rlinear",
        "linear",
        "repeat",
        "ETTh1",
        "synthetic",
        "tslib",
        "ltsf",
        "flex",
        "ndarray",
    ] {
        assert!(text.contains(name), "`{name}` missing from list:\n{text}");
    }
}

#[test]
fn bench_train_step_reports_json() {
    let output = archzoo(
        &[
            "bench",
            "train-step",
            "--arch",
            "dlinear",
            "--steps",
            "3",
            "--warmup",
            "1",
            "--json",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["arch"], "dlinear");
    assert_eq!(report["step"]["samples"], 3);
    assert!(report["step"]["median_ms"].as_f64().unwrap() > 0.0);
    assert!(report["peak_rss_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn ndarray_backend_is_selectable() {
    let tmp = common::tempdir();
    let out = tmp.path().join("runs");
    let output = quick_train(&out, &["--backend", "ndarray"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        read_json(&single_run(&out).join("summary.json"))["backend"],
        "ndarray"
    );
}
