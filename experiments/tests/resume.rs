//! Checkpoints: a run paused (`--time-limit`) or killed resumes from its last completed epoch and
//! ends with exactly the numbers, metrics and forecasts of the same run trained in one go.

mod common;

use std::path::Path;

use common::{metrics_without_seconds, read_json, single_run, stderr, stdout};

/// Three epochs on the synthetic series at L = 48, H = 24, with `model` options, into `out`.
fn train(model: &[&str], out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--epochs", "3", "--patience", "3"];
    args.extend_from_slice(model);
    args.extend_from_slice(extra);
    common::train_synthetic(out, &args)
}

/// Every architecture family whose training draws from the device generator: dropout in the
/// Transformer (attention, residual and head; PatchTST's post-norm BatchNorm, whose running
/// statistics the checkpoint must carry), Mamba's and Griffin's head dropout, RLinear's input
/// dropout.
const MODELS: [&[&str]; 4] = [
    &[
        "--arch",
        "transformer",
        "--d-model",
        "16",
        "--heads",
        "2",
        "--layers",
        "2",
        "--d-ff",
        "32",
        "--norm",
        "batch-norm",
        "--post-norm",
        "--dropout",
        "0.2",
    ],
    &[
        "--arch",
        "mamba",
        "--d-model",
        "16",
        "--layers",
        "1",
        "--dropout",
        "0.2",
    ],
    &[
        "--arch",
        "griffin",
        "--d-model",
        "16",
        "--layers",
        "3",
        "--heads",
        "2",
        "--dropout",
        "0.2",
    ],
    &["--arch", "rlinear"],
];

#[test]
fn a_run_paused_twice_ends_bit_identical_to_one_trained_in_one_go() {
    for model in MODELS {
        let tmp = common::tempdir();
        let whole = tmp.path().join("whole");
        let output = train(model, &whole, &[]);
        assert!(output.status.success(), "{model:?}: {}", stderr(&output));

        let parts = tmp.path().join("parts");
        for epoch in 1..=2 {
            let output = train(model, &parts, &["--time-limit", "0"]);
            assert!(output.status.success(), "{model:?}: {}", stderr(&output));
            assert!(
                stdout(&output).contains(&format!("paused after epoch {epoch}/3")),
                "{model:?}: {}",
                stdout(&output)
            );
            let run = single_run(&parts);
            assert!(!run.join("summary.json").exists());
            let state = read_json(&run.join("checkpoint/state.json"));
            assert_eq!(state["epoch"], epoch);
            assert_eq!(metrics_without_seconds(&run).len(), epoch);
        }
        // The last segment runs without a limit; a paused run never counts as complete.
        let output = train(model, &parts, &[]);
        assert!(output.status.success(), "{model:?}: {}", stderr(&output));
        assert!(
            stdout(&output).contains("resumed after epoch 1, 2"),
            "{}",
            stdout(&output)
        );

        let (a, b) = (single_run(&whole), single_run(&parts));
        assert_eq!(a.file_name(), b.file_name(), "same config, same run id");
        let (sa, sb) = (
            read_json(&a.join("summary.json")),
            read_json(&b.join("summary.json")),
        );
        for key in [
            "test_mse",
            "test_mae",
            "val_mse",
            "val_mae",
            "epochs_run",
            "best_epoch",
        ] {
            assert_eq!(sa[key], sb[key], "{model:?}: {key}");
        }
        assert_eq!(
            sa["test_mse"].as_f64().unwrap().to_bits(),
            sb["test_mse"].as_f64().unwrap().to_bits()
        );
        assert!(sa.get("resumed_after_epochs").is_none());
        assert_eq!(sb["resumed_after_epochs"], serde_json::json!([1, 2]));
        assert_eq!(
            metrics_without_seconds(&a),
            metrics_without_seconds(&b),
            "{model:?}: epoch by epoch"
        );
        assert_eq!(
            read_json(&a.join("forecasts.json")),
            read_json(&b.join("forecasts.json")),
            "{model:?}: stored forecasts"
        );
        assert!(
            !b.join("checkpoint").exists(),
            "a completed run drops its checkpoint"
        );
    }
}

const RLINEAR: &[&str] = &["--arch", "rlinear"];

/// An RLinear run under `out` paused after its first epoch; its directory.
fn paused_rlinear(out: &Path) -> std::path::PathBuf {
    let output = train(RLINEAR, out, &["--time-limit", "0"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let run = single_run(out);
    assert!(run.join("checkpoint/state.json").exists());
    run
}

#[test]
fn force_discards_a_checkpoint_and_starts_over() {
    let tmp = common::tempdir();
    let out = tmp.path().join("runs");
    let run = paused_rlinear(&out);
    let output = train(RLINEAR, &out, &["--force"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stdout(&output).contains("resumed"), "{}", stdout(&output));
    let summary = read_json(&run.join("summary.json"));
    assert!(summary.get("resumed_after_epochs").is_none());
    assert_eq!(metrics_without_seconds(&run).len(), 3);
}

#[test]
fn a_damaged_checkpoint_is_a_clear_error_that_keeps_the_run() {
    let tmp = common::tempdir();
    let out = tmp.path().join("runs");
    let run = paused_rlinear(&out);
    let weights = run.join("checkpoint/model-1.bpk");
    std::fs::write(&weights, b"not a burnpack file").unwrap();
    let output = train(RLINEAR, &out, &[]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("model-1.bpk"), "names the file: {err}");
    assert!(err.contains("--force"), "says how to start over: {err}");
    assert!(!err.contains("panicked"), "{err}");
    // Nothing already written is lost.
    assert_eq!(metrics_without_seconds(&run).len(), 1);
    assert!(run.join("checkpoint/state.json").exists());
}

#[test]
fn time_limit_must_be_minutes() {
    for bad in ["-1", "soon", "inf"] {
        let tmp = common::tempdir();
        let output = train(RLINEAR, tmp.path(), &["--time-limit", bad]);
        assert!(!output.status.success());
        assert!(
            stderr(&output).contains("--time-limit"),
            "{}",
            stderr(&output)
        );
    }
}
