//! `archzoo explain`: attributions that are exact where the model is linear, complete for every
//! architecture, independent of how rows are batched, stored and charted from a run folder; bad
//! input is a clear error.

mod common;

use std::path::Path;

use architectures::{ArchConfig, ArchName, ModelOption, ModelOptions, NormKind, TaskShape};
use burn::module::Module;
use burn::prelude::*;
use burn::tensor::Distribution;
use common::{archzoo, single_run, stderr, stdout};
use experiments::explain::{Baseline, Explainer, Method, Quadrature, Settings, Shape, TargetSpec};

const TASK: TaskShape = TaskShape {
    seq_len: 24,
    pred_len: 8,
    channels: 3,
};

fn shape() -> Shape {
    Shape {
        l: TASK.seq_len,
        h: TASK.pred_len,
        c: TASK.channels,
    }
}

fn columns() -> Vec<String> {
    ["a", "b", "OT"].iter().map(|s| s.to_string()).collect()
}

/// Held while seeding the device generator and drawing from it: the generator is process-wide
/// and the tests of this binary run in parallel, so without it a test could draw another test's
/// numbers and its models and windows would change from run to run.
static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The weights of a freshly initialised `config` (burnpack bytes), seeded.
fn weights(config: &ArchConfig) -> Vec<u8> {
    let _held = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    device.seed(11);
    config
        .init(&device)
        .into_record()
        .into_bytes()
        .expect("a record")
        .to_vec()
}

/// An explainer of `config` with `weights`, `batch` rows per pass, over the horizon means of
/// every channel and one single output.
fn explainer_of(config: &ArchConfig, weights: &[u8], batch: usize) -> Explainer {
    let mut targets = TargetSpec::Mean
        .resolve(TASK.pred_len, &columns(), 0..TASK.channels)
        .unwrap();
    targets.extend(
        TargetSpec::Output {
            step: 5,
            channel: "b".into(),
        }
        .resolve(TASK.pred_len, &columns(), 0..TASK.channels)
        .unwrap(),
    );
    Explainer::new(config, weights, &Device::flex(), batch, shape(), targets).expect("weights load")
}

/// An explainer of a freshly initialised `config`.
fn explainer(config: &ArchConfig, batch: usize) -> Explainer {
    explainer_of(config, &weights(config), batch)
}

/// A standard-normal window `[L, C]`, seeded.
fn window(seed: u64) -> Vec<f32> {
    let _held = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex();
    device.seed(seed);
    Tensor::<2>::random(
        [TASK.seq_len, TASK.channels],
        Distribution::Normal(0.0, 1.0),
        &device,
    )
    .into_data()
    .try_to_vec::<f32>()
    .unwrap()
}

/// The effective weight `[targets, L·C]` of an affine model: y_t(e_i) − y_t(0), by forward
/// passes only (exact up to f32 rounding when the model is affine).
fn effective_weight(explainer: &Explainer) -> Vec<f64> {
    let n = TASK.seq_len * TASK.channels;
    let mut inputs = vec![0.0f32; n];
    for i in 0..n {
        let mut unit = vec![0.0f32; n];
        unit[i] = 1.0;
        inputs.extend(unit);
    }
    let (out, _) = explainer.outputs(&inputs);
    let out = &out;
    explainer
        .targets()
        .iter()
        .flat_map(|target| {
            let zero = explainer.value(out, 0, target);
            (0..n).map(move |i| explainer.value(out, 1 + i, target) - zero)
        })
        .collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tolerance: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(g) - w).abs() <= tolerance * w.abs().max(1.0),
            "{what}: element {i}: {g} against {w}"
        );
    }
}

#[test]
fn linear_models_are_attributed_exactly() {
    for name in [ArchName::Linear, ArchName::Dlinear] {
        let config = name.config(TASK, &ModelOptions::default()).unwrap();
        let explainer = explainer(&config, 16);
        let weight = effective_weight(&explainer);
        let x = window(3);
        let zero = Baseline::Zero.of(&x, TASK.channels);
        let times_input: Vec<f64> = weight
            .chunks(x.len())
            .flat_map(|w| w.iter().zip(&x).map(|(w, &xi)| w * f64::from(xi)))
            .collect();
        let settings = Settings::default();
        let saliency = explainer.attribute(Method::Saliency, &settings, &x, &zero);
        assert_close(&format!("{name} saliency"), &saliency.values, &weight, 1e-5);
        let ig = explainer.attribute(Method::IntegratedGradients, &settings, &x, &zero);
        assert_close(
            &format!("{name} integrated gradients"),
            &ig.values,
            &times_input,
            1e-5,
        );
        // The trapezoid rule is exact on a linear path too.
        let riemann = Settings {
            quadrature: Quadrature::Riemann,
            steps: 7,
            ..settings
        };
        let ig = explainer.attribute(Method::IntegratedGradients, &riemann, &x, &zero);
        assert_close(
            &format!("{name} trapezoid IG"),
            &ig.values,
            &times_input,
            1e-5,
        );
        // Occluding one input of a linear model removes exactly its share.
        let single = Settings {
            occlusion_len: 1,
            ..settings
        };
        let occlusion = explainer.attribute(Method::Occlusion, &single, &x, &zero);
        assert_close(
            &format!("{name} occlusion"),
            &occlusion.values,
            &times_input,
            1e-5,
        );
        // A channel-shared linear map attributes nothing across channels.
        let (l, c) = (TASK.seq_len, TASK.channels);
        for (t, target) in explainer.targets().iter().enumerate() {
            for i in 0..l * c {
                if i % c != target.channel {
                    assert_eq!(
                        saliency.values[t * l * c + i],
                        0.0,
                        "{name}: {i} crosses channels"
                    );
                }
            }
        }
    }
}

/// Small options for `name`: another width and depth than the default's where it takes them.
fn small(name: ArchName) -> ModelOptions {
    let accepts = |o| name.accepts(o);
    ModelOptions {
        d_model: accepts(ModelOption::DModel).then_some(16),
        // Griffin's pattern needs three blocks for its attention block.
        layers: accepts(ModelOption::Layers).then_some(if name == ArchName::Griffin {
            3
        } else {
            2
        }),
        heads: accepts(ModelOption::Heads).then_some(2),
        head_dim: accepts(ModelOption::HeadDim).then_some(8),
        ..ModelOptions::default()
    }
}

/// Completeness at the default 50 points against the zero baseline (the bar: within 1%
/// of |y(x) − y(x′)|), and convergence under the window-mean baseline. Under the mean baseline a
/// model that removes the window mean (RevIN) barely changes its horizon mean (hawk: 6e-6), so a
/// relative bar at 50 points measures rounding; at 400 points the error is under 0.1% of it.
#[test]
fn integrated_gradients_are_complete_for_every_architecture() {
    for &name in ArchName::ALL {
        let config = name.config(TASK, &small(name)).unwrap();
        let explainer = explainer(&config, 32);
        for (seed, baseline, steps, tolerance) in [
            (5, Baseline::Zero, 50, 0.01),
            (6, Baseline::Mean, 400, 0.001),
        ] {
            let x = window(seed);
            let reference = baseline.of(&x, TASK.channels);
            let settings = Settings {
                steps,
                ..Settings::default()
            };
            let ig = explainer.attribute(Method::IntegratedGradients, &settings, &x, &reference);
            for (target, (error, change)) in
                explainer.targets().iter().zip(ig.completeness.unwrap())
            {
                assert!(
                    error.abs() <= tolerance * change.abs() + 1e-6,
                    "{name}, {baseline} baseline, {steps} points, {}: Σ attributions misses y(x) − y(x′) = {change:.6} by {error:.3e}",
                    target.name
                );
            }
            // `steps` points × 4 targets in batches of 32.
            assert_eq!(ig.passes, (4 * steps).div_ceil(32), "{name}");
        }
    }
}

#[test]
fn rows_do_not_interact_and_frozen_models_are_deterministic() {
    // PatchTST's BatchNorm blocks with dropout: frozen, BatchNorm uses its running statistics
    // and dropout drops nothing, so a row's gradient does not depend on its batch.
    let options = ModelOptions {
        norm: Some(NormKind::BatchNorm),
        post_norm: true,
        dropout: Some(0.3),
        d_model: Some(16),
        ..ModelOptions::default()
    };
    let transformer = ArchName::Transformer.config(TASK, &options).unwrap();
    let mamba = ArchName::Mamba
        .config(TASK, &small(ArchName::Mamba))
        .unwrap();
    for config in [transformer, mamba] {
        let x = window(9);
        let zero = Baseline::Zero.of(&x, TASK.channels);
        let settings = Settings {
            steps: 9,
            ..Settings::default()
        };
        let weights = weights(&config);
        let ig = |batch: usize| {
            explainer_of(&config, &weights, batch).attribute(
                Method::IntegratedGradients,
                &settings,
                &x,
                &zero,
            )
        };
        let (one, many, again) = (ig(1), ig(13), ig(13));
        assert_eq!(many.values, again.values, "{}: repeatable", config.name());
        for (a, b) in one.values.iter().zip(&many.values) {
            assert!(
                (a - b).abs() <= 1e-5 * a.abs().max(1e-2),
                "{}: {a} against {b}",
                config.name()
            );
        }
        assert_eq!(one.passes, 4 * 9);
        assert_eq!(many.passes, (4usize * 9).div_ceil(13));
    }
}

/// Rows of the fixture: enough for the 70/10/20 split at L 48, H 24.
const ROWS: usize = 600;

/// An hourly CSV `date,a,b,OT` of daily sinusoids with noise-free phases per column.
fn write_fixture(path: &Path) {
    let mut text = String::from("date,a,b,OT\n");
    for r in 0..ROWS {
        let (day, hour) = (1 + r / 24, r % 24);
        text.push_str(&format!("2020-01-{day:02} {hour:02}:00:00"));
        for i in 0..3 {
            let phase = std::f64::consts::TAU * (r as f64 / 24.0) + i as f64;
            text.push_str(&format!(",{:.4}", 10.0 * i as f64 + phase.sin()));
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn explain_stores_attributions_faithfulness_and_charts() {
    let tmp = common::tempdir();
    let csv = tmp.path().join("series.csv");
    write_fixture(&csv);
    let runs = tmp.path().join("runs");
    let trained = archzoo(
        &[
            "train",
            "--arch",
            "dlinear",
            "--data",
            csv.to_str().unwrap(),
            "--seq-len",
            "48",
            "--pred-len",
            "24",
            "--epochs",
            "1",
            "--out",
            runs.to_str().unwrap(),
        ],
        None,
    );
    assert!(trained.status.success(), "{}", stderr(&trained));
    let run = single_run(&runs);
    let out = tmp.path().join("explain");
    let explain = |extra: &[&str]| {
        let mut args = vec![
            "explain",
            run.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        archzoo(&args, None)
    };
    let output = explain(&["--windows", "3", "--steps", "20"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("integrated gradients"),
        "{}",
        stdout(&output)
    );
    let run_id = run.file_name().unwrap().to_str().unwrap();
    let dir = out.join(run_id);
    let file = common::read_json(&dir.join("explain.json"));
    assert_eq!(file["windows"].as_array().unwrap().len(), 3);
    assert_eq!(
        file["targets"].as_array().unwrap().len(),
        3,
        "mean per channel"
    );
    assert_eq!(file["settings"]["steps"], 20);
    for method in ["ig", "saliency", "occlusion"] {
        let npy = std::fs::read(dir.join(format!("attributions-{method}.npy"))).unwrap();
        // [3 windows, 3 targets, 48, 3] f32 after the header.
        let header = u16::from_le_bytes([npy[8], npy[9]]) as usize;
        assert_eq!(npy.len(), 10 + header + 4 * 3 * 3 * 48 * 3, "{method}");
    }
    for name in ["heatmap.svg", "heatmap.png"] {
        assert!(dir.join(name).exists(), "{name}");
    }
    let ig = &file["methods"][0];
    assert_eq!(ig["method"], "ig");
    let relative = ig["completeness"]["max_relative_error"].as_f64().unwrap();
    assert!(
        relative < 1e-3,
        "DLinear is linear: IG is complete ({relative})"
    );
    for name in [
        "faithfulness.md",
        "faithfulness.csv",
        "lags.svg",
        "lags.png",
    ] {
        assert!(out.join(name).exists(), "{name}");
    }
    let table = std::fs::read_to_string(out.join("faithfulness.md")).unwrap();
    assert!(
        table.contains("| dlinear |") && table.contains("| random |"),
        "{table}"
    );

    // Bad input: each a clear error, nothing panics.
    let fails_with = |extra: &[&str], needle: &str| {
        let output = explain(extra);
        assert!(!output.status.success(), "{extra:?} should fail");
        let message = stderr(&output);
        assert!(message.contains(needle), "{extra:?}: {message}");
        assert!(!message.contains("panicked"), "{message}");
    };
    fails_with(&["--windows", "0"], "--windows 0");
    fails_with(&["--target", "25:OT"], "outside the run's horizon 1..=24");
    fails_with(&["--target", "3:XYZ"], "`XYZ`");
    fails_with(&["--target", "soon"], "`soon`");
    fails_with(&["--occlusion-len", "49"], "--occlusion-len 49");
    std::fs::remove_file(run.join("model.bpk")).unwrap();
    fails_with(&[], "has no model.bpk");
    let output = archzoo(
        &["explain", run.to_str().unwrap(), run.to_str().unwrap()],
        None,
    );
    assert!(stderr(&output).contains("--out"), "{}", stderr(&output));
}
