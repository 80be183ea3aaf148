//! Token probes end to end through the binary: `archzoo probe` writes a run that learns, a probe
//! sweep (a sweep file that sets `task`) runs every lr and seed, skips finished runs when run
//! again, writes its ledger, leaderboard (best lr per seed) and charts, a run paused by
//! `--time-limit` resumes to the numbers of one trained in one go, and bad settings fail before
//! anything is written.

mod common;

use std::path::Path;

use common::{archzoo, metrics_without_seconds, read_json, stderr, stdout};

/// Write `text` as a sweep file under `dir`.
fn sweep_file(dir: &Path, text: &str) -> String {
    let path = dir.join("probes.toml");
    std::fs::write(&path, text).expect("writable");
    path.to_str().unwrap().to_string()
}

fn run_dirs(out: &Path) -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// A small induction-heads task (vocabulary 6, length 12; the answer is one of 4 ordinary
/// tokens, so chance is 0.25) is learned by Mamba-2 under the reference's recipe (one fixed set,
/// the loss on every next token): it passes 0.99 and stops early (1.0 in epoch 17 on flex).
/// (The Transformer did this test until its token model took Zoology's initialisation and
/// dropout, f1d730e: with them it stays at 0.28 on this fixed set of 2 000 in 30 epochs, where it
/// reached 0.445 before.)
#[test]
fn a_probe_run_learns_induction_heads_and_writes_its_folder() {
    let tmp = common::tempdir();
    let out = tmp.path().join("out");
    let output = archzoo(
        &[
            "probe",
            "--task",
            "induction",
            "--arch",
            "mamba2",
            "--vocab",
            "6",
            "--seq-len",
            "12",
            "--test-lens",
            "24",
            "--d-model",
            "32",
            "--train-examples",
            "2000",
            "--test-examples",
            "400",
            "--epochs",
            "30",
            "--batch",
            "32",
            "--lr",
            "3e-3",
            "--examples",
            "fixed",
            "--loss",
            "labelled",
            "--length-test-examples",
            "400",
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let dirs = run_dirs(&out);
    assert_eq!(dirs.len(), 1);
    let summary = read_json(&dirs[0].join("summary.json"));
    let accuracy = summary["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.99, "accuracy {accuracy}: {}", stdout(&output));
    assert_eq!(summary["stopped_early"], true);
    let lengths = summary["lengths"].as_array().unwrap();
    assert_eq!(lengths.len(), 2);
    assert_eq!(lengths[1]["len"], 24);
    let config = read_json(&dirs[0].join("config.json"));
    assert_eq!(config["task"]["induction"]["len"], 12);
    let epochs = std::fs::read_to_string(dirs[0].join("metrics.jsonl")).unwrap();
    assert_eq!(
        epochs.lines().count(),
        summary["epochs_run"].as_u64().unwrap() as usize
    );
}

/// A small induction run of `arch` (width 16, 3 epochs) with `--examples` as given, into `out`.
fn small_induction(out: &Path, arch: &str, examples: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "probe",
        "--task",
        "induction",
        "--arch",
        arch,
        "--vocab",
        "6",
        "--seq-len",
        "12",
        "--test-lens",
        "24",
        "--length-test-examples",
        "64",
        "--d-model",
        "16",
        "--train-examples",
        "256",
        "--test-examples",
        "64",
        "--epochs",
        "3",
        "--batch",
        "32",
        "--lr",
        "3e-3",
        "--examples",
        examples,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    archzoo(&args, None)
}

/// A probe run paused after every epoch (`--time-limit 0`) keeps a checkpoint, resumes from it,
/// and ends with exactly the numbers of the same run trained in one go: every epoch's loss and
/// accuracy, the best epoch, the accuracy at each test length. Both with one fixed training set
/// (the shuffles are replayed) and a fresh set each epoch (drawn from the epoch's seed), and for
/// the Transformer, whose token model has dropout (the mask seeds drawn before the pause are
/// replayed).
#[test]
fn a_paused_probe_run_resumes_to_the_numbers_of_one_trained_in_one_go() {
    for (arch, examples) in [
        ("mamba", "fixed"),
        ("mamba", "fresh"),
        ("transformer", "fresh"),
    ] {
        let tmp = common::tempdir();
        let (whole, paused) = (tmp.path().join("whole"), tmp.path().join("paused"));
        let output = small_induction(&whole, arch, examples, &[]);
        assert!(output.status.success(), "{}", stderr(&output));
        for epoch in 1..=2 {
            let output = small_induction(&paused, arch, examples, &["--time-limit", "0"]);
            assert!(output.status.success(), "{}", stderr(&output));
            assert!(
                stdout(&output).contains(&format!("paused after epoch {epoch} of 3")),
                "{}",
                stdout(&output)
            );
            let run = &run_dirs(&paused)[0];
            assert!(run.join("checkpoint/state.json").exists());
            assert!(!run.join("summary.json").exists());
            assert_eq!(metrics_without_seconds(run).len(), epoch);
        }
        let output = small_induction(&paused, arch, examples, &["--time-limit", "0"]);
        assert!(output.status.success(), "{}", stderr(&output));
        let (a, b) = (&run_dirs(&whole)[0], &run_dirs(&paused)[0]);
        assert_eq!(a.file_name(), b.file_name());
        assert!(
            !b.join("checkpoint").exists(),
            "a finished run drops its checkpoint"
        );
        assert_eq!(
            metrics_without_seconds(a),
            metrics_without_seconds(b),
            "{arch} {examples}"
        );
        let (whole, resumed) = (
            read_json(&a.join("summary.json")),
            read_json(&b.join("summary.json")),
        );
        for key in [
            "accuracy",
            "best_epoch",
            "epochs_run",
            "lengths",
            "params",
            "state_floats",
        ] {
            assert_eq!(whole[key], resumed[key], "{arch} {examples}: {key}");
        }
        assert!(whole.get("resumed_after").is_none());
        assert_eq!(resumed["resumed_after"], serde_json::json!([1, 2]));
    }
}

/// A probe sweep under `--time-limit 0` pauses its first run after one epoch (the ledger says
/// so), and the same command resumes it and goes on until every run is done.
#[test]
fn a_probe_sweep_pauses_at_its_time_limit_and_resumes() {
    let tmp = common::tempdir();
    let file = sweep_file(
        tmp.path(),
        "task = \"mqar\"\n\
         arch = \"lstm\"\n\
         vocab = 64\nseq_len = 16\npairs = 2\n\
         d_model = 16\n\
         train_examples = 64\ntest_examples = 32\nepochs = 2\n\
         lr = [1e-3, 3e-3]\n",
    );
    let out = tmp.path().join("out");
    let out_arg = out.to_str().unwrap();
    let first = archzoo(
        &["sweep", &file, "--out", out_arg, "--time-limit", "0"],
        None,
    );
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).contains("paused   after epoch 1 of 2"),
        "{}",
        stdout(&first)
    );
    assert!(
        stdout(&first).contains("time limit: 1 run paused, 1 not started"),
        "{}",
        stdout(&first)
    );
    let ledger = std::fs::read_to_string(out.join("ledger.csv")).unwrap();
    assert_eq!(ledger.matches(",paused,").count(), 1, "{ledger}");
    assert_eq!(ledger.matches(",pending,").count(), 1, "{ledger}");
    let mut rounds = 1;
    while !std::fs::read_to_string(out.join("ledger.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .all(|row| row.contains(",done,"))
    {
        let again = archzoo(
            &["sweep", &file, "--out", out_arg, "--time-limit", "0"],
            None,
        );
        assert!(again.status.success(), "{}", stderr(&again));
        rounds += 1;
        assert!(rounds <= 4, "two runs of two epochs take four rounds");
    }
    assert_eq!(rounds, 4);
    for run in run_dirs(&out) {
        let summary = read_json(&run.join("summary.json"));
        assert_eq!(summary["epochs_run"], 2);
        assert_eq!(summary["resumed_after"], serde_json::json!([1]));
    }
}

#[test]
fn a_probe_sweep_keeps_every_lr_and_reports_the_best_per_seed() {
    let tmp = common::tempdir();
    let file = sweep_file(
        tmp.path(),
        "description = \"tiny MQAR\"\n\
         task = \"mqar\"\n\
         arch = [\"mamba\", \"lstm\"]\n\
         vocab = 64\nseq_len = 16\npairs = 2\n\
         d_model = 16\nd_state = 4\n\
         train_examples = 64\ntest_examples = 32\nepochs = 1\n\
         lr = [1e-3, 3e-3]\n",
    );
    let out = tmp.path().join("out");
    let out_arg = out.to_str().unwrap();
    let output = archzoo(&["sweep", &file, "--out", out_arg], None);
    assert!(output.status.success(), "{}", stderr(&output));
    // mamba takes --d-state, the LSTM does not: 2 archs × 2 lrs, the option set for mamba only.
    assert_eq!(run_dirs(&out).len(), 4);
    let ledger = std::fs::read_to_string(out.join("ledger.csv")).unwrap();
    assert_eq!(ledger.lines().count(), 5, "{ledger}");
    assert_eq!(ledger.matches(",done,").count(), 4, "{ledger}");
    let board = std::fs::read_to_string(out.join("leaderboard.md")).unwrap();
    assert!(board.contains("## mqar (L = 16, K = 2, V = 64)"), "{board}");
    assert!(board.contains("| mamba | 16 |"), "{board}");
    assert!(board.contains("| lstm | 16 |"), "{board}");
    for chart in ["mqar-accuracy_vs_width", "mqar-accuracy_vs_state"] {
        assert!(out.join(format!("{chart}.svg")).exists(), "{chart}");
    }
    // The best lr per seed is each row's best run.
    let csv = std::fs::read_to_string(out.join("leaderboard.csv")).unwrap();
    for run in run_dirs(&out) {
        let summary = read_json(&run.join("summary.json"));
        let config = read_json(&run.join("config.json"));
        let arch = config["model"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone();
        let row = csv
            .lines()
            .find(|l| l.contains(&format!(",{arch},")))
            .unwrap();
        let best: f64 = row.split(',').nth(8).unwrap().parse().unwrap();
        assert!(best >= summary["accuracy"].as_f64().unwrap(), "{row}");
    }
    // Run again: every run is skipped, nothing retrained.
    let again = archzoo(&["sweep", &file, "--out", out_arg], None);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("0 trained, 4 skipped, 0 failed"),
        "{}",
        stdout(&again)
    );
    // `report` and `plot` read the same folder.
    let report = archzoo(&["report", out_arg], None);
    assert!(report.status.success(), "{}", stderr(&report));
    let plot = archzoo(&["plot", out_arg], None);
    assert!(plot.status.success(), "{}", stderr(&plot));
    for chart in ["mqar-accuracy_vs_width", "mqar-accuracy_vs_state"] {
        for ext in ["svg", "png"] {
            let file = out.join(format!("{chart}.{ext}"));
            assert!(file.is_file(), "{} missing", file.display());
        }
    }
}

/// Zoology's attention baseline (learned positions, one per token of the sequence) is a row of
/// its own beside the rotary Transformer, and `position_encoding = "rotary"`, the default, keeps the
/// default's run id.
#[test]
fn learned_positions_are_a_transformer_variant_of_their_own() {
    let tmp = common::tempdir();
    let file = sweep_file(
        tmp.path(),
        "task = \"mqar\"\n\
         arch = \"transformer\"\n\
         position_encoding = [\"rotary\", \"learned\"]\n\
         vocab = 64\nseq_len = 16\npairs = 2\nd_model = 16\nheads = 1\n\
         train_examples = 64\ntest_examples = 32\nepochs = 1\n",
    );
    let out = tmp.path().join("out");
    let out_arg = out.to_str().unwrap();
    let output = archzoo(&["sweep", &file, "--out", out_arg], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let runs = run_dirs(&out);
    assert_eq!(runs.len(), 2);
    let backbone = |run: &std::path::PathBuf| {
        read_json(&run.join("config.json"))["model"]["transformer"]["backbone"].clone()
    };
    let learned = runs
        .iter()
        .find(|r| backbone(r)["positions"] == "Learned")
        .expect("a learned-positions run");
    assert_eq!(backbone(learned)["max_len"], 16);
    let board = std::fs::read_to_string(out.join("leaderboard.md")).unwrap();
    assert!(board.contains("| transformer | 16 |"), "{board}");
    assert!(
        board.contains("| transformer (learned positions) | 16 |"),
        "{board}"
    );

    let default = tmp.path().join("default");
    let flags = [
        "probe",
        "--task",
        "mqar",
        "--arch",
        "transformer",
        "--vocab",
        "64",
        "--seq-len",
        "16",
        "--pairs",
        "2",
        "--d-model",
        "16",
        "--heads",
        "1",
        "--train-examples",
        "64",
        "--test-examples",
        "32",
        "--epochs",
        "1",
        "--out",
    ];
    let mut args = flags.to_vec();
    args.push(default.to_str().unwrap());
    let output = archzoo(&args, None);
    assert!(output.status.success(), "{}", stderr(&output));
    let rotary = runs
        .iter()
        .find(|r| backbone(r)["positions"] == "Rotary")
        .expect("a rotary run");
    assert_eq!(run_dirs(&default)[0].file_name(), rotary.file_name());
}

#[test]
fn bad_probe_settings_fail_before_anything_is_written() {
    let tmp = common::tempdir();
    let out = tmp.path().join("out");
    for (flags, needle) in [
        (
            &["--task", "mqar", "--seq-len", "64", "--pairs", "17"][..],
            "pairs = 17",
        ),
        (&["--task", "mqar", "--seq-len", "63"][..], "len = 63"),
        (
            &["--task", "mqar", "--vocab", "64", "--seq-len", "64"][..],
            "vocab = 64",
        ),
        (
            &[
                "--task",
                "selective-copy",
                "--seq-len",
                "16",
                "--tokens",
                "16",
            ][..],
            "tokens = 16",
        ),
        (
            &["--task", "mqar", "--arch", "dlinear"][..],
            "window forecaster",
        ),
        (&["--task", "mqar", "--patch-len", "8"][..], "--patch-len"),
    ] {
        let mut args = vec!["probe"];
        args.extend_from_slice(flags);
        args.extend(["--out", out.to_str().unwrap()]);
        let output = archzoo(&args, None);
        assert!(!output.status.success(), "{flags:?}");
        assert!(
            stderr(&output).contains(needle),
            "{flags:?}: {}",
            stderr(&output)
        );
        assert!(!out.exists(), "{flags:?} wrote {}", out.display());
    }
}
