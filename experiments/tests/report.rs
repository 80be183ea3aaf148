//! `archzoo report`: the leaderboard's numbers are the stored summaries' (mean ± sample std over
//! seeds), best marked, published numbers beside matching settings.

mod common;

use std::path::Path;

use common::{archzoo, read_json, stderr, stdout};

/// Train `arch` for one epoch on the synthetic series at L = H = 96 with `seed`.
fn train(out: &Path, arch: &str, seed: &str) {
    train_at(out, arch, "96", seed);
}

#[test]
fn leaderboard_aggregates_seeds_marks_the_best_and_matches_published_numbers() {
    let tmp = common::tempdir();
    let out = tmp.path().join("runs");
    for arch in ["dlinear", "nlinear"] {
        for seed in ["1", "2", "3"] {
            train(&out, arch, seed);
        }
    }
    // Present the DLinear runs as ETTh1 ones (L = H = 96) so the published row must match.
    let mut mse = std::collections::HashMap::<String, Vec<f64>>::new();
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path().join("summary.json");
        let mut summary = read_json(&path);
        let arch = summary["arch"].as_str().unwrap().to_string();
        summary["dataset"] = "ETTh1".into();
        std::fs::write(&path, serde_json::to_string(&summary).unwrap()).unwrap();
        mse.entry(arch)
            .or_default()
            .push(summary["test_mse"].as_f64().unwrap());
    }
    let output = archzoo(&["report", out.to_str().unwrap()], None);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("6 runs in 2 rows over 1 settings"));

    let csv = std::fs::read_to_string(out.join("leaderboard.csv")).unwrap();
    let lines: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let header = &lines[0];
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    assert_eq!(lines.len(), 3, "{csv}");
    let mut best_count = 0;
    for row in &lines[1..] {
        let arch = row[col("arch")];
        let values = &mse[arch];
        let mean = values.iter().sum::<f64>() / 3.0;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        let got_mean: f64 = row[col("test_mse_mean")].parse().unwrap();
        let got_std: f64 = row[col("test_mse_std")].parse().unwrap();
        assert!(
            (got_mean - mean).abs() < 1e-12,
            "{arch}: {got_mean} vs {mean}"
        );
        assert!((got_std - std).abs() < 1e-12, "{arch}: {got_std} vs {std}");
        assert_eq!(row[col("n_seeds")], "3");
        assert_eq!(row[col("seeds")], "1 2 3");
        let other = mse.iter().find(|(a, _)| *a != arch).unwrap().1;
        let other_mean = other.iter().sum::<f64>() / 3.0;
        assert_eq!(row[col("best_mse")] == "true", mean <= other_mean, "{arch}");
        best_count += usize::from(row[col("best_mse")] == "true");
        let published = row[col("published_mse")];
        match arch {
            // DLinear at L = 96, H = 96 on ETTh1: iTransformer's table, 0.386 / 0.400.
            "dlinear" => assert_eq!((published, row[col("published_mae")]), ("0.386", "0.4")),
            // No NLinear number at L = 96.
            _ => assert_eq!(published, ""),
        }
    }
    assert_eq!(best_count, 1);
    let md = std::fs::read_to_string(out.join("leaderboard.md")).unwrap();
    assert!(md.contains("## ETTh1 (M), L = 96, H = 96"), "{md}");
    assert!(md.contains("0.386 / 0.400 (DLinear)"), "{md}");
    let bold: usize = md
        .lines()
        .filter(|l| l.starts_with("| "))
        .map(|l| l.matches("**").count())
        .sum();
    assert_eq!(bold, 4, "one bold MSE and one bold MAE: {md}");
}

#[test]
fn report_of_an_empty_folder_is_a_clear_error() {
    let tmp = common::tempdir();
    let output = archzoo(&["report", tmp.path().to_str().unwrap()], None);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no completed runs"),
        "{}",
        stderr(&output)
    );
    let missing = tmp.path().join("nope");
    let output = archzoo(&["report", missing.to_str().unwrap()], None);
    assert!(!output.status.success());
    assert!(!stderr(&output).contains("panicked"), "{}", stderr(&output));
}

/// Train `arch` for one epoch on the synthetic series at L = 96, horizon `pred_len`, `seed`.
fn train_at(out: &Path, arch: &str, pred_len: &str, seed: &str) {
    let output = archzoo(
        &[
            "train",
            "--arch",
            arch,
            "--epochs",
            "1",
            "--pred-len",
            pred_len,
            "--seed",
            seed,
            "--out",
            out.to_str().unwrap(),
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn the_papers_table_has_a_line_per_horizon_the_average_and_first_places() {
    let tmp = common::tempdir();
    let out = tmp.path().join("runs");
    train_at(&out, "dlinear", "24", "1");
    train_at(&out, "dlinear", "24", "2");
    train_at(&out, "dlinear", "48", "1");
    train_at(&out, "nlinear", "24", "1");
    train_at(&out, "nlinear", "48", "1");
    let output = archzoo(&["report", out.to_str().unwrap()], None);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    let line = |prefix: &str| {
        table
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line `{prefix}` in\n{table}"))
            .split('|')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let header = line("| dataset |");
    // NLinear precedes DLinear in the registry.
    assert_eq!(header[2], "nlinear (tslib, L 96) MSE");
    assert_eq!(header[4], "dlinear (tslib, L 96) MSE");
    let h24 = line("| synthetic | 24 |");
    let h48 = line("| synthetic | 48 |");
    let avg = line("| synthetic | Avg |");
    // Two seeds at H 24 for DLinear: no dagger; one seed elsewhere.
    assert!(!h24[4].contains('†') && h48[4].contains('†') && h24[2].contains('†'));
    // Each metric of each line has exactly one best and one second among two columns (or a tie).
    for cells in [&h24, &h48, &avg] {
        for metric in [2, 3] {
            let pair = [&cells[metric], &cells[metric + 2]];
            let bold = pair.iter().filter(|c| c.starts_with("**")).count();
            let under = pair.iter().filter(|c| c.starts_with("<u>")).count();
            assert!(bold >= 1 && bold + under == 2, "{cells:?}");
        }
    }
    // The average is the mean of the two horizon cells (as printed, to rounding).
    let number = |cell: &str| -> f64 {
        cell.trim_matches(|c: char| !c.is_ascii_digit() && c != '.')
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let mean = (number(&h24[4]) + number(&h48[4])) / 2.0;
    assert!((number(&avg[4]) - mean).abs() <= 0.0011, "{avg:?}");
    let firsts: usize = line("| 1st count |")
        .iter()
        .skip(1)
        .map(|c| c.parse::<usize>().unwrap())
        .sum();
    assert!(firsts >= 4, "two lines, two metrics: {table}");
    assert!(table.contains("| synthetic (M) | 5 |"), "{table}");
}
