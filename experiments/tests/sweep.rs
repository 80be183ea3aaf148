//! `archzoo sweep`: resuming after SIGKILL, shards that partition the sweep, failed runs recorded
//! while the others finish, a time limit that pauses the sweep. All on the synthetic series (no
//! download).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{archzoo, stderr, stdout};

/// Write `text` as a sweep file under `dir`.
fn sweep_file(dir: &Path, text: &str) -> String {
    let path = dir.join("sweep.toml");
    std::fs::write(&path, text).expect("writable");
    path.to_str().unwrap().to_string()
}

/// `ledger.csv` as rows of fields (the header first), parsed as RFC 4180.
fn ledger(out: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(out.join("ledger.csv"))
        .expect("ledger written");
    reader
        .records()
        .map(|r| r.expect("valid CSV").iter().map(str::to_string).collect())
        .collect()
}

/// Run ids of a `--dry-run` listing that are marked as in the shard.
fn marked(listing: &str) -> BTreeSet<String> {
    listing
        .lines()
        .filter_map(|line| line.strip_prefix("* "))
        .map(|rest| rest.split_whitespace().nth(1).unwrap().to_string())
        .collect()
}

#[test]
fn shards_are_disjoint_and_cover_the_sweep() {
    let tmp = common::tempdir();
    let file = sweep_file(
        tmp.path(),
        "arch = [\"dlinear\", \"nlinear\", \"rlinear\", \"linear\"]\n\
         pred_len = [24, 48]\nseq_len = 96\nseed = [1, 2, 3]\n",
    );
    let out = tmp.path().join("out");
    let listing = |shard: &str| {
        let mut args = vec!["sweep", &file, "--dry-run", "--out", out.to_str().unwrap()];
        if !shard.is_empty() {
            args.extend(["--shard", shard]);
        }
        let output = archzoo(&args, None);
        assert!(output.status.success(), "{}", stderr(&output));
        marked(&stdout(&output))
    };
    let all = listing("");
    assert_eq!(all.len(), 4 * 2 * 3);
    for n in [2, 3] {
        let shards: Vec<BTreeSet<String>> = (0..n).map(|i| listing(&format!("{i}/{n}"))).collect();
        let union: BTreeSet<String> = shards.iter().flatten().cloned().collect();
        assert_eq!(union, all, "n = {n}: union differs from the sweep");
        let total: usize = shards.iter().map(BTreeSet::len).sum();
        assert_eq!(total, all.len(), "n = {n}: shards overlap");
    }
    // Nothing ran.
    assert!(!out.join("ledger.csv").exists());
}

#[test]
fn a_sweep_killed_mid_run_completes_only_the_missing_runs() {
    let tmp = common::tempdir();
    // Mamba runs take seconds each here, long enough to be killed in the middle of one.
    let file = sweep_file(
        tmp.path(),
        "arch = \"mamba\"\nd_model = 16\nlayers = 1\nseq_len = 48\npred_len = 24\n\
         epochs = 2\nseed = [1, 2, 3]\n",
    );
    let out = tmp.path().join("out");
    let mut child = Command::new(env!("CARGO_BIN_EXE_archzoo"))
        .args(["sweep", &file, "--out", out.to_str().unwrap()])
        .env_remove("ARCHZOO_DATA")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("archzoo starts");
    // Kill (SIGKILL) once one run is complete and the next has started writing.
    let started = Instant::now();
    loop {
        let summaries = count_files(&out, "summary.json");
        let begun = count_files(&out, "config.json");
        if summaries >= 1 && begun > summaries {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "sweep made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL delivered");
    child.wait().expect("reaped");
    let done_before = count_files(&out, "summary.json");
    assert!(done_before < 3, "killed too late to test resuming");

    let output = archzoo(&["sweep", &file, "--out", out.to_str().unwrap()], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert_eq!(
        text.matches("skipped  already done").count(),
        done_before,
        "{text}"
    );
    assert_eq!(text.matches("] ").count(), 3, "{text}");
    assert!(
        text.contains(&format!("{} trained", 3 - done_before)),
        "{text}"
    );

    // The ledger: one header, one row per run, each done, no duplicates, no temporary files.
    let rows = ledger(&out);
    assert_eq!(rows[0][0], "run_id");
    let ids: BTreeSet<&String> = rows[1..].iter().map(|r| &r[0]).collect();
    assert_eq!((rows.len() - 1, ids.len()), (3, 3));
    assert!(rows[1..].iter().all(|r| r[1] == "done"), "{rows:?}");
    assert_eq!(count_files(&out, "summary.json"), 3);
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_diverging_run_is_recorded_and_the_others_finish() {
    let tmp = common::tempdir();
    let file = sweep_file(
        tmp.path(),
        "arch = [\"dlinear\", \"rlinear\"]\nseq_len = 48\npred_len = 24\nepochs = 2\n\
         lr = [1e-3, 1e30]\nseed = 1\n",
    );
    let out = tmp.path().join("out");
    let output = archzoo(&["sweep", &file, "--out", out.to_str().unwrap()], None);
    assert!(!output.status.success(), "a failed run must fail the sweep");
    assert!(
        stderr(&output).contains("2 of 4 runs failed"),
        "{}",
        stderr(&output)
    );
    let rows = ledger(&out);
    let states: Vec<(&str, &str)> = rows[1..]
        .iter()
        .map(|r| (r[1].as_str(), r[7].as_str()))
        .collect();
    for (state, lr) in &states {
        let diverging = lr.parse::<f64>().unwrap() > 1.0;
        assert_eq!(
            *state,
            if diverging { "failed" } else { "done" },
            "{states:?}"
        );
    }
    let failed = rows[1..].iter().find(|r| r[1] == "failed").unwrap();
    assert!(
        failed.last().unwrap().contains("diverged"),
        "reason recorded: {failed:?}"
    );
    // Failed runs are not retried by default; the sweep still reports them.
    let again = archzoo(&["sweep", &file, "--out", out.to_str().unwrap()], None);
    assert!(!again.status.success());
    assert!(stdout(&again).contains("0 trained"), "{}", stdout(&again));
}

#[test]
fn a_time_limited_sweep_pauses_and_the_same_command_resumes_it() {
    let tmp = common::tempdir();
    let file = sweep_file(
        tmp.path(),
        "arch = \"rlinear\"\nseq_len = 48\npred_len = 24\nepochs = 3\nseed = [1, 2]\n",
    );
    let sweep = |out: &Path, limit: Option<&str>| {
        let mut args = vec![
            "sweep",
            &file,
            "--out",
            out.to_str().unwrap(),
            "--no-report",
        ];
        args.extend(
            limit
                .map(|minutes| ["--time-limit", minutes])
                .iter()
                .flatten(),
        );
        let output = archzoo(&args, None);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    // (state, epochs_run, test_mse) per ledger row.
    let states = |out: &Path| -> Vec<(String, String, String)> {
        ledger(out)[1..]
            .iter()
            .map(|r| (r[1].clone(), r[13].clone(), r[11].clone()))
            .collect()
    };
    let out = tmp.path().join("limited");

    // A zero limit trains one epoch of the first run, pauses it and starts nothing else.
    let text = sweep(&out, Some("0"));
    assert!(
        text.contains("paused   after epoch 1/3 (time limit)"),
        "{text}"
    );
    assert!(
        text.contains("1 run paused, 1 not started; the same command resumes the sweep"),
        "{text}"
    );
    let rows = states(&out);
    assert_eq!(rows[0].0, "paused", "{rows:?}");
    assert_eq!(rows[0].1, "1", "{rows:?}");
    assert_eq!(rows[1].0, "pending", "{rows:?}");

    // Again: the paused run resumes for one more epoch and pauses again.
    let text = sweep(&out, Some("0"));
    assert!(
        text.contains("paused   after epoch 2/3 (time limit)"),
        "{text}"
    );
    let dry = archzoo(
        &["sweep", &file, "--out", out.to_str().unwrap(), "--dry-run"],
        None,
    );
    assert!(
        stdout(&dry).contains("paused after epoch 2 (resumes from its checkpoint)"),
        "{}",
        stdout(&dry)
    );
    // Without a limit the sweep finishes, with the numbers of one uninterrupted sweep.
    let text = sweep(&out, None);
    assert!(text.contains("2 trained"), "{text}");
    let resumed = states(&out);
    let reference = tmp.path().join("one-go");
    sweep(&reference, None);
    assert_eq!(resumed, states(&reference));
    assert!(
        resumed
            .iter()
            .all(|(state, epochs, _)| state == "done" && epochs == "3")
    );
}

/// Files named `name` one level under `out`.
fn count_files(out: &Path, name: &str) -> usize {
    std::fs::read_dir(out).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(name).exists())
            .count()
    })
}

/// A completed run whose folder carries the id an earlier archzoo gave its config (configs were
/// tagged by family, `{"Linear": {"kind": "DLinear", ...}}`, so their hash differed) is renamed
/// to its current id and counted done, not trained again.
#[test]
fn runs_stored_under_an_earlier_id_are_adopted_not_retrained() {
    let tmp = common::tempdir();
    let file = sweep_file(
        tmp.path(),
        "arch = \"dlinear\"\nseq_len = 96\npred_len = 24\nseed = 1\n",
    );
    let out = tmp.path().join("out");
    let args = [
        "sweep",
        &file,
        "--no-report",
        "--out",
        out.to_str().unwrap(),
    ];
    let first = archzoo(&args, None);
    assert!(first.status.success(), "{}", stderr(&first));
    let id = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|name| name.starts_with("dlinear-"))
        .expect("the run's folder");
    let summary = std::fs::read_to_string(out.join(&id).join("summary.json")).unwrap();
    // The same run as an earlier version stored it: family-tagged config, another folder name.
    let earlier = "dlinear-synthetic-L96-H24-s1-0123abcd";
    std::fs::rename(out.join(&id), out.join(earlier)).unwrap();
    let config_path = out.join(earlier).join("config.json");
    let config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        config.replacen("\"dlinear\": {", "\"Linear\": {", 1),
    )
    .unwrap();

    let listing = archzoo(
        &["sweep", &file, "--dry-run", "--out", out.to_str().unwrap()],
        None,
    );
    assert!(
        stdout(&listing).contains(&format!("done, stored as {earlier}")),
        "{}",
        stdout(&listing)
    );
    let second = archzoo(&args, None);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stdout(&second).contains(&format!("{earlier} -> {id}")),
        "{}",
        stdout(&second)
    );
    assert!(!out.join(earlier).exists());
    let after = std::fs::read_to_string(out.join(&id).join("summary.json")).unwrap();
    assert_eq!(after, summary, "adopted, not retrained");
}

#[test]
fn completed_runs_of_another_folder_are_reused_not_retrained() {
    let tmp = common::tempdir();
    let file = sweep_file(
        tmp.path(),
        "arch = [\"dlinear\", \"nlinear\"]\ndata = \"synthetic\"\nseq_len = 48\npred_len = 12\nepochs = 1\nseed = [1, 2]\n",
    );
    let first = tmp.path().join("results").join("group");
    let output = archzoo(
        &[
            "sweep",
            &file,
            "--out",
            first.to_str().unwrap(),
            "--no-report",
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    // A second sweep over the same grid plus one more run, reusing the first folder's runs (found
    // one level below the folder given).
    let wider = sweep_file(
        tmp.path(),
        "arch = [\"dlinear\", \"nlinear\"]\ndata = \"synthetic\"\nseq_len = 48\npred_len = 12\nepochs = 1\nseed = [1, 2, 3]\n",
    );
    let second = tmp.path().join("second");
    let results = tmp.path().join("results");
    let reuse = || {
        archzoo(
            &[
                "sweep",
                &wider,
                "--out",
                second.to_str().unwrap(),
                "--reuse",
                results.to_str().unwrap(),
                "--no-report",
            ],
            None,
        )
    };
    let output = reuse();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("4 completed runs of this sweep copied from"),
        "{text}"
    );
    assert_eq!(text.matches("already done").count(), 4, "{text}");
    assert_eq!(
        text.matches("done     test MSE").count(),
        2,
        "seed 3 trains: {text}"
    );
    for entry in std::fs::read_dir(&first).unwrap() {
        let run = entry.unwrap().path();
        if run.join("summary.json").exists() {
            let name = run.file_name().unwrap();
            for file in ["summary.json", "config.json", "metrics.jsonl", "model.bpk"] {
                assert_eq!(
                    std::fs::read(run.join(file)).unwrap(),
                    std::fs::read(second.join(name).join(file)).unwrap(),
                    "{file} copied as it was"
                );
            }
        }
    }
    // Nothing left to reuse on a second invocation.
    let output = reuse();
    assert!(
        stdout(&output).contains("0 completed runs of this sweep copied"),
        "{}",
        stdout(&output)
    );
}
