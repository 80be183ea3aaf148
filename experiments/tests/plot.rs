//! `archzoo plot`: the plotted series are the stored results' (tested on the series, not on
//! pixels), and the command writes every chart as SVG and PNG.

mod common;

use std::path::Path;

use common::{archzoo, read_json, stderr, stdout};
use experiments::plot::{self, Chart, Style};
use experiments::report;
use experiments::scaling::{self, ScalingRow};
use plotters::style::RGBColor;

/// Train `arch` for one epoch on the synthetic series (L = 48, H = 24) with `seed`.
fn train(out: &Path, arch: &str, seed: &str, extra: &[&str]) {
    let mut args = vec![
        "train",
        "--arch",
        arch,
        "--seq-len",
        "48",
        "--pred-len",
        "24",
        "--epochs",
        "1",
        "--seed",
        seed,
        "--out",
    ];
    args.push(out.to_str().unwrap());
    args.extend_from_slice(extra);
    let output = archzoo(&args, None);
    assert!(output.status.success(), "{}", stderr(&output));
}

fn chart<'a>(charts: &'a [Chart], prefix: &str) -> &'a Chart {
    charts
        .iter()
        .find(|c| c.name.starts_with(prefix))
        .unwrap_or_else(|| panic!("no chart {prefix}"))
}

fn scaling_row(arch: &str, seq_len: usize, tokens_per_s: Option<f64>) -> ScalingRow {
    ScalingRow {
        arch: arch.into(),
        params: 1000,
        width: 8,
        seq_len,
        batch: 1,
        train_ms: tokens_per_s.map(|t| seq_len as f64 / t * 1e3),
        train_tokens_per_s: tokens_per_s,
        train_peak_bytes: tokens_per_s.map(|_| 1048576 * seq_len as u64),
        infer_ms: tokens_per_s.map(|t| seq_len as f64 / t * 1e2),
        infer_tokens_per_s: tokens_per_s.map(|t| 10.0 * t),
        infer_peak_bytes: tokens_per_s.map(|_| 524288 * seq_len as u64),
        decode_ms: tokens_per_s.map(|_| 0.5),
        decode_state_floats: tokens_per_s.map(|_| 64),
        skipped: if tokens_per_s.is_some() {
            String::new()
        } else {
            "predicted training peak 9 MiB > max 8 MiB".into()
        },
    }
}

#[test]
fn charts_plot_the_stored_results() {
    let tmp = common::tempdir();
    let out = tmp.path().join("runs");
    // Two sizes of DLinear (shared, per channel) and one of NLinear, two seeds each.
    for seed in ["1", "2"] {
        train(&out, "dlinear", seed, &[]);
        train(&out, "dlinear", seed, &["--individual"]);
        train(&out, "nlinear", seed, &[]);
    }
    let runs = report::load_runs(&out).unwrap();
    assert_eq!(runs.len(), 6);
    let scaling_rows = vec![
        scaling_row("mamba", 128, Some(5000.0)),
        scaling_row("mamba", 256, Some(4000.0)),
        scaling_row("transformer", 128, Some(6000.0)),
        scaling_row("transformer", 256, None),
    ];
    let charts = plot::charts(
        &runs,
        &out,
        &scaling_rows,
        7,
        &plot::ForecastScale::Standardised,
    )
    .unwrap();

    // (a) one series per architecture, one point per config: mean ± std of its seeds' MSE.
    let by_params = chart(&charts, "mse_vs_params-synthetic-M-L48-H24");
    let panel = &by_params.panels[0];
    assert!(panel.x_log && panel.x_label.contains("parameters"));
    let names: Vec<&str> = panel.series.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["nlinear", "dlinear"], "registry order");
    for series in &panel.series {
        assert_eq!(series.colour, plot::arch_colour(&series.name));
        let expected_points = if series.name == "dlinear" { 2 } else { 1 };
        assert_eq!(series.points.len(), expected_points);
        assert!(series.points.windows(2).all(|w| w[0].x < w[1].x));
        for point in &series.points {
            let mse: Vec<f64> = runs
                .iter()
                .filter(|r| r.summary.arch == series.name && r.summary.params as f64 == point.x)
                .map(|r| r.summary.test_mse)
                .collect();
            assert_eq!(mse.len(), 2);
            let mean = (mse[0] + mse[1]) / 2.0;
            let std = (mse[0] - mse[1]).abs() / 2f64.sqrt();
            assert!((point.y - mean).abs() < 1e-12);
            let (lo, hi) = point.spread.unwrap();
            assert!((lo - (mean - std)).abs() < 1e-12 && (hi - (mean + std)).abs() < 1e-12);
        }
    }

    // (b) the same configs against their training FLOPs, as stored.
    let by_flops = chart(&charts, "mse_vs_flops-");
    for series in &by_flops.panels[0].series {
        for point in &series.points {
            assert!(
                runs.iter().any(
                    |r| r.summary.arch == series.name && r.summary.train_flops == Some(point.x)
                )
            );
        }
    }

    // (g) every config as a point, and a front no point beats in both time and MSE.
    let pareto = chart(&charts, "pareto_time-");
    let series = &pareto.panels[0].series;
    let front = series.iter().find(|s| s.name == "Pareto front").unwrap();
    let all: Vec<(f64, f64)> = series
        .iter()
        .filter(|s| s.style == Style::Points)
        .flat_map(|s| s.points.iter().map(|p| (p.x, p.y)))
        .collect();
    assert_eq!(all.len(), 3);
    for p in &front.points {
        assert!(
            !all.iter()
                .any(|q| q.0 <= p.x && q.1 < p.y || q.0 < p.x && q.1 <= p.y)
        );
    }

    // (f) each architecture's best config, lowest seed, stored forecast 7 (the last window).
    let forecast = chart(&charts, "forecast-");
    assert_eq!(forecast.panels.len(), 2);
    let board = report::leaderboard(&runs);
    let rows = board.values().next().unwrap();
    for panel in &forecast.panels {
        let arch = panel.title.split(' ').next().unwrap();
        let best = rows.iter().find(|r| r.arch == arch).unwrap();
        let stored = read_json(&out.join(&best.run_ids[0]).join("forecasts.json"));
        let sample = &stored["samples"][7];
        let series = |name: &str| panel.series.iter().find(|s| s.name == name).unwrap();
        for (name, key) in [
            ("lookback", "lookback"),
            ("truth", "truth"),
            ("forecast", "forecast"),
        ] {
            // Stored as f32: compare at that precision.
            let values: Vec<f32> = sample[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let plotted: Vec<f32> = series(name).points.iter().map(|p| p.y as f32).collect();
            assert_eq!(plotted, values, "{arch} {name}");
        }
        assert_eq!(series("lookback").points[0].x, -48.0);
        assert_eq!(series("truth").points[0].x, 0.0);
        assert_eq!(series("forecast").colour, plot::arch_colour(arch));
    }
    assert!(forecast.title.contains(&format!(
        "test window {}",
        runs[0].summary.n_test_windows - 1
    )));
    assert!(forecast.panels[0].y_label.ends_with("(standardised)"));

    // --scale raw: the same series in the data's units, each run's scaler.json inverted.
    let raw = plot::charts(
        &runs,
        &out,
        &[],
        7,
        &plot::ForecastScale::Raw {
            data_dir: tmp.path().join("unused"),
        },
    )
    .unwrap();
    let raw = chart(&raw, "forecast-");
    for (panel, standardised) in raw.panels.iter().zip(&forecast.panels) {
        assert!(panel.y_label.ends_with("(data units)"), "{}", panel.y_label);
        let arch = panel.title.split(' ').next().unwrap();
        let best = rows.iter().find(|r| r.arch == arch).unwrap();
        let scaler = read_json(&out.join(&best.run_ids[0]).join("scaler.json"));
        let target = scaler["columns"].as_array().unwrap().len() - 1;
        let mean = scaler["scaler"]["mean"][target].as_f64().unwrap();
        let std = scaler["scaler"]["std"][target].as_f64().unwrap();
        assert!(std != 1.0 || mean != 0.0, "a real scaler");
        for (raw, standardised) in panel.series.iter().zip(&standardised.series) {
            for (r, s) in raw.points.iter().zip(&standardised.points) {
                assert!((r.y - (s.y * std + mean)).abs() < 1e-9 * r.y.abs().max(1.0));
            }
        }
    }

    // (c), (d), (e) from the scaling rows; a skipped length is not plotted.
    let throughput = chart(&charts, "throughput_vs_length");
    let train = &throughput.panels[0];
    assert!(train.x_log && train.y_log && train.y_label.contains("tokens per second"));
    let mamba = train
        .series
        .iter()
        .find(|s| s.name.starts_with("mamba"))
        .unwrap();
    let points: Vec<(f64, f64)> = mamba.points.iter().map(|p| (p.x, p.y)).collect();
    assert_eq!(points, [(128.0, 5000.0), (256.0, 4000.0)]);
    let transformer = train
        .series
        .iter()
        .find(|s| s.name.starts_with("transformer"))
        .unwrap();
    assert_eq!(transformer.points.len(), 1);
    let memory = chart(&charts, "memory_vs_length");
    let mamba = memory.panels[0]
        .series
        .iter()
        .find(|s| s.name.starts_with("mamba"))
        .unwrap();
    let mib: Vec<f64> = mamba.points.iter().map(|p| p.y).collect();
    assert!(memory.panels[0].y_label.contains("MiB"));
    assert_eq!(mib, [128.0, 256.0]);
    assert!(
        chart(&charts, "decode_latency").panels[0]
            .y_label
            .contains("ms")
    );

    // The command draws them all, as SVG and PNG, from the stored files alone.
    scaling::write_csv(&out.join("scaling.csv"), &scaling_rows).unwrap();
    let figures = tmp.path().join("figures");
    let output = archzoo(
        &[
            "plot",
            out.to_str().unwrap(),
            "--out",
            figures.to_str().unwrap(),
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    for chart in &charts {
        let svg = std::fs::read_to_string(figures.join(format!("{}.svg", chart.name))).unwrap();
        assert!(svg.starts_with("<svg"), "{}", chart.name);
        let png = std::fs::read(figures.join(format!("{}.png", chart.name))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{}", chart.name);
    }
    assert_eq!(
        stdout(&output)
            .lines()
            .filter(|l| l.starts_with("wrote"))
            .count(),
        2 * charts.len()
    );

    // A forecast index beyond the stored ones is a clear error.
    let output = archzoo(&["plot", out.to_str().unwrap(), "--forecast", "8"], None);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("choose --forecast 0..7"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn no_architecture_is_drawn_in_the_lookback_or_truth_colour() {
    use clap::ValueEnum;
    for arch in architectures::ArchName::value_variants() {
        let colour = plot::arch_colour(arch.as_str());
        let RGBColor(r, g, b) = colour;
        let grey = r.max(g).max(b) - r.min(g).min(b) < 40;
        assert!(
            !grey,
            "{} is drawn in a grey, as the lookback",
            arch.as_str()
        );
        assert_ne!(colour, plot::TRUTH);
    }
}
