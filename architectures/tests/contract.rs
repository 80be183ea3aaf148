//! Contract tests, looped over the whole registry: every architecture given a line in the
//! registry is held to them automatically, with extra variants for the options it takes.
//!
//! - shapes of `forecast` and of the `SequenceModel` view;
//! - causality: changing the input at position `t` leaves every output before `t` unchanged;
//! - `forward` equals `step` run position by position (max abs diff ≤ 1e-4 in f32);
//! - `state_size` grows linearly for a KV cache and is constant beyond any window otherwise;
//! - gradients finite and non-zero for every parameter;
//! - the training loss falls on a small synthetic task.

use architectures::{ArchName, Forecaster, ModelOption, ModelOptions, SequenceModel, TaskShape};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::{Distribution, Gradients};

const TASK: TaskShape = TaskShape {
    seq_len: 24,
    pred_len: 4,
    channels: 3,
};

fn options_for(name: ArchName) -> Vec<ModelOptions> {
    let mut variants = vec![ModelOptions::default()];
    if name.accepts(ModelOption::Individual) {
        variants.push(ModelOptions {
            individual: true,
            ..ModelOptions::default()
        });
    }
    if name.accepts(ModelOption::Causal) {
        variants.push(ModelOptions {
            causal: true,
            d_model: Some(16),
            heads: Some(2),
            d_ff: Some(32),
            ..ModelOptions::default()
        });
    }
    if name.accepts(ModelOption::DState) {
        variants.push(ModelOptions {
            d_model: Some(12),
            d_state: Some(5),
            layers: Some(3),
            expand: Some(3),
            // Three heads of 12 for d_inner 36.
            head_dim: name.accepts(ModelOption::HeadDim).then_some(12),
            ..ModelOptions::default()
        });
    }
    if name.accepts(ModelOption::Window) {
        // A window shorter than the test sequences, so `step` must slide it.
        variants.push(ModelOptions {
            d_model: Some(16),
            heads: Some(2),
            window: Some(5),
            layers: Some(4),
            ..ModelOptions::default()
        });
    }
    if name.is_backbone() && !name.accepts(ModelOption::Window) {
        // Small and shallow: another width and depth than the default's.
        variants.push(ModelOptions {
            d_model: Some(8),
            heads: name.accepts(ModelOption::Heads).then_some(2),
            head_dim: name.accepts(ModelOption::HeadDim).then_some(8),
            layers: Some(2),
            ..ModelOptions::default()
        });
    }
    if name.accepts(ModelOption::MovingAvg) {
        variants.push(ModelOptions {
            moving_avg: Some(5),
            ..ModelOptions::default()
        });
    }
    variants
}

fn each_model(device: &Device, mut check: impl FnMut(String, architectures::Arch)) {
    for &name in ArchName::ALL {
        for options in options_for(name) {
            device.seed(7);
            let config = name.config(TASK, &options).expect("valid config");
            check(format!("{name} {options:?}"), config.init(device));
        }
    }
}

/// Width of the sequence view: the model's own, or the channel count for width-free models.
fn width(model: &architectures::Arch) -> usize {
    model.width().unwrap_or(TASK.channels)
}

fn max_abs_diff(a: Tensor<3>, b: Tensor<3>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

#[test]
fn forecast_and_sequence_shapes() {
    let device = Device::flex();
    each_model(&device, |label, model| {
        let x = Tensor::<3>::random(
            [2, TASK.seq_len, TASK.channels],
            Distribution::Default,
            &device,
        );
        assert_eq!(
            model.forecast(x).dims(),
            [2, TASK.pred_len, TASK.channels],
            "{label}"
        );
        // Short enough for a bidirectional encoder's learned positions (one per patch).
        let (d, len) = (width(&model), 3);
        let seq = Tensor::<3>::random([2, len, d], Distribution::Default, &device);
        assert_eq!(
            SequenceModel::forward(&model, seq).dims(),
            [2, len, d],
            "{label}"
        );
    });
}

#[test]
fn outputs_never_depend_on_later_inputs() {
    let device = Device::flex();
    let len = 20;
    each_model(&device, |label, model| {
        if !model.is_causal() {
            return; // bidirectional encoders (the forecasting default) make no causal claim
        }
        let d = width(&model);
        let x = Tensor::<3>::random([2, len, d], Distribution::Default, &device);
        let y = SequenceModel::forward(&model, x.clone());
        for t in [0, 5, 13, len - 1] {
            let bump = Tensor::<3>::ones([2, 1, d], &device).mul_scalar(10.0);
            let x2 = x
                .clone()
                .slice_assign(s![.., t..t + 1, ..], x.clone().narrow(1, t, 1) + bump);
            let y2 = SequenceModel::forward(&model, x2);
            if t > 0 {
                let before = max_abs_diff(y.clone().narrow(1, 0, t), y2.clone().narrow(1, 0, t));
                assert_eq!(before, 0.0, "{label}: output before {t} changed");
            }
            // The position itself must react (the model is not constant).
            let at = max_abs_diff(y.clone().narrow(1, t, 1), y2.narrow(1, t, 1));
            assert!(at > 0.0, "{label}: output at {t} ignores its input");
        }
    });
}

#[test]
fn forward_equals_step_by_step() {
    let device = Device::flex();
    let len = 30;
    each_model(&device, |label, model| {
        if !model.is_causal() {
            return; // no recurrent form without causality
        }
        let d = width(&model);
        let x = Tensor::<3>::random([2, len, d], Distribution::Default, &device);
        let y = SequenceModel::forward(&model, x.clone());
        let mut state = model.init_state(2, &device);
        let mut steps = Vec::with_capacity(len);
        for t in 0..len {
            let xt = x.clone().narrow(1, t, 1).reshape([2, d]);
            let (yt, next) = model.step(xt, state);
            state = next;
            steps.push(yt.unsqueeze_dim::<3>(1));
        }
        let diff = max_abs_diff(y, Tensor::cat(steps, 1));
        assert!(diff <= 1e-4, "{label}: forward vs step max abs diff {diff}");
        if label.starts_with("transformer") {
            // A KV cache grows linearly with the length.
            assert_eq!(2 * model.state_size(512), model.state_size(1024), "{label}");
            assert!(model.state_size(1) > 0, "{label}");
        } else {
            // Recurrent or windowed: bounded, constant beyond any window (Griffin's local
            // attention fills its window first).
            assert_eq!(
                model.state_size(4096),
                model.state_size(1 << 20),
                "{label}: state grows"
            );
            assert!(
                model.state_size(16) <= model.state_size(4096),
                "{label}: state shrinks"
            );
        }
    });
}

/// Collects, for every parameter, whether its gradient exists, is finite and is non-zero.
struct GradCheck<'a> {
    grads: &'a Gradients,
    problems: Vec<String>,
    count: usize,
}

impl ModuleVisitor for GradCheck<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.count += 1;
        match param.val().grad(self.grads) {
            None => self.problems.push(format!("{:?}: no gradient", param.id)),
            Some(g) => {
                let values = g.into_data().try_to_vec::<f32>().unwrap();
                if values.iter().any(|v| !v.is_finite()) {
                    self.problems
                        .push(format!("{:?}: non-finite gradient", param.id));
                } else if values.iter().all(|v| *v == 0.0) {
                    self.problems
                        .push(format!("{:?}: all-zero gradient", param.id));
                }
            }
        }
    }
}

#[test]
fn gradients_are_finite_and_nonzero_for_every_parameter() {
    let device = Device::flex().autodiff();
    each_model(&device, |label, model| {
        if model.num_params() == 0 {
            return; // nothing to differentiate (repeat)
        }
        let x = Tensor::<3>::random(
            [4, TASK.seq_len, TASK.channels],
            Distribution::Default,
            &device,
        );
        let target = Tensor::<3>::random(
            [4, TASK.pred_len, TASK.channels],
            Distribution::Default,
            &device,
        );
        let loss = (model.forecast(x) - target).powi_scalar(2).mean();
        let grads = loss.backward();
        let mut check = GradCheck {
            grads: &grads,
            problems: Vec::new(),
            count: 0,
        };
        model.visit(&mut check);
        assert!(check.problems.is_empty(), "{label}: {:?}", check.problems);
        assert_eq!(
            check.count > 0,
            model.num_params() > 0,
            "{label}: parameters not visited"
        );
    });
}

#[test]
fn loss_falls_on_a_small_synthetic_task() {
    let device = Device::flex().autodiff();
    // Noisy sinusoids: forecastable, so a trainable model must improve on its initial loss.
    let (b, l, h, c) = (32, TASK.seq_len, TASK.pred_len, TASK.channels);
    let series: Vec<f32> = (0..b)
        .flat_map(|i| {
            (0..l + h).flat_map(move |t| {
                (0..c).map(move |ch| {
                    ((t as f32 + i as f32) * 0.5 + ch as f32).sin() * (1.0 + ch as f32)
                })
            })
        })
        .collect();
    let all = Tensor::<3>::from_data(TensorData::new(series, [b, l + h, c]), &device);
    let x = all.clone().narrow(1, 0, l);
    let y = all.narrow(1, l, h);
    for &name in ArchName::ALL.iter().filter(|n| n.trainable()) {
        device.seed(3);
        let mut model = name
            .config(TASK, &ModelOptions::default())
            .unwrap()
            .init(&device);
        let mut optim = AdamConfig::new().init();
        let loss_of =
            |m: &architectures::Arch| (m.forecast(x.clone()) - y.clone()).powi_scalar(2).mean();
        let first = loss_of(&model).into_scalar::<f32>();
        for _ in 0..100 {
            let loss = loss_of(&model);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-2, model, grads);
        }
        let last = loss_of(&model).into_scalar::<f32>();
        assert!(last < 0.5 * first, "{name}: loss {first} -> {last}");
    }
}

/// Every backbone runs under the token adapter: logits of the right shape, causal (a token
/// changed at position `t` leaves the logits before `t` unchanged), the labelled-position head
/// equal to the full one there; every window forecaster is
/// rejected by name.
#[test]
fn every_backbone_is_a_causal_token_model() {
    let device = Device::flex();
    let (vocab, len, t) = (24, 10, 6);
    let small = ModelOptions {
        d_model: Some(16),
        layers: Some(3),
        ..ModelOptions::default()
    };
    for &name in ArchName::ALL {
        let Some(accepted) = name.token_options() else {
            let error = name
                .token_config(vocab, len + 8, &small)
                .unwrap_err()
                .to_string();
            assert!(error.contains(name.as_str()), "{error}");
            continue;
        };
        let options = ModelOptions {
            heads: accepted.contains(&ModelOption::Heads).then_some(2),
            head_dim: accepted.contains(&ModelOption::HeadDim).then_some(8),
            ..small.clone()
        };
        device.seed(3);
        let model = name
            .token_config(vocab, len + 8, &options)
            .unwrap()
            .init(&device);
        let tokens: Vec<i64> = (0..2 * len as i64)
            .map(|i| (i * 7 + 3) % vocab as i64)
            .collect();
        let x = Tensor::<2, Int>::from_data(TensorData::new(tokens.clone(), [2, len]), &device);
        let logits = model.logits(x.clone());
        assert_eq!(logits.dims(), [2, len, vocab], "{name}");

        let mut changed = tokens.clone();
        changed[t] = (changed[t] + 1) % vocab as i64;
        let y = Tensor::<2, Int>::from_data(TensorData::new(changed, [2, len]), &device);
        let before = |l: Tensor<3>| l.narrow(1, 0, t);
        let diff = max_abs_diff(before(logits.clone()), before(model.logits(y)));
        assert!(diff < 1e-5, "{name}: logits before {t} moved by {diff}");

        let positions = [1i64, len as i64 + 4];
        let index =
            || Tensor::<1, Int>::from_data(TensorData::new(positions.to_vec(), [2]), &device);
        let at = model.logits_at(x.clone(), index());
        let full = logits.reshape([2 * len, vocab]).select(0, index());
        let diff = (at - full).abs().max().into_scalar::<f32>();
        assert!(
            diff < 1e-5,
            "{name}: labelled-position head differs by {diff}"
        );
    }
}
