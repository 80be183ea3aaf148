//! The registry: [`ArchName`] (the command-line value) -> [`ArchConfig`] (serialized in every run)
//! -> [`Arch`] (the module) -> [`ArchState`] (its recurrent state). Enums, not strings, so a new
//! architecture is wired everywhere or the build fails.

use std::fmt;

use burn::module::Module;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::forecast_adapter::{
    BackboneConfig, BackboneState, PatchForecaster, PatchForecasterConfig,
};
use crate::griffin::{GriffinConfig, TemporalKind};
use crate::linear::{LinearForecaster, LinearForecasterConfig, LinearKind};
use crate::mamba::MambaConfig;
use crate::repeat::{Repeat, RepeatConfig};
use crate::sequence_model::{Forecaster, SequenceModel, WindowState};
use crate::transformer::{NormKind, PositionKind, TransformerConfig};

/// Architectures selectable with `--arch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ArchName {
    /// `Linear(L -> H)` per channel (LTSF-Linear).
    Linear,
    /// Last-value normalised linear (LTSF-Linear).
    Nlinear,
    /// Trend/seasonal decomposition linear (LTSF-Linear).
    Dlinear,
    /// RevIN + linear (RTSF).
    Rlinear,
    /// Repeat the last value: the no-training baseline.
    Repeat,
    /// Self-attention backbone behind the patch forecasting adapter (PatchTST-style).
    Transformer,
    /// Mamba-1 selective SSM backbone behind the patch forecasting adapter.
    Mamba,
    /// Griffin (RG-LRU recurrent blocks and local attention, 2:1) behind the same adapter.
    Griffin,
    /// Hawk (Griffin with recurrent blocks only) behind the same adapter.
    Hawk,
}

/// Model hyperparameters as given on the command line; `None` means "not given".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelOptions {
    /// `--d-model`.
    pub d_model: Option<usize>,
    /// `--layers`.
    pub layers: Option<usize>,
    /// `--heads`.
    pub heads: Option<usize>,
    /// `--d-ff`.
    pub d_ff: Option<usize>,
    /// `--d-state`.
    pub d_state: Option<usize>,
    /// `--expand`.
    pub expand: Option<usize>,
    /// `--patch-len`.
    pub patch_len: Option<usize>,
    /// `--stride`.
    pub stride: Option<usize>,
    /// `--dropout`.
    pub dropout: Option<f64>,
    /// `--individual`.
    pub individual: Option<bool>,
    /// `--moving-avg`.
    pub moving_avg: Option<usize>,
    /// Constant `1/L` initial weights (set by the `tslib` preset for DLinear, as TSLib does).
    pub mean_init: Option<bool>,
    /// Causal backbone (attention to earlier positions only); forecasting default: bidirectional.
    pub causal: Option<bool>,
    /// `--window`.
    pub window: Option<usize>,
    /// `--params`: a target parameter count; width and depth come from the size ladder.
    pub params: Option<usize>,
    /// `--norm`: the Transformer's normalisation.
    pub norm: Option<NormKind>,
    /// `--post-norm`: the Transformer's post-norm blocks.
    pub post_norm: Option<bool>,
}

impl ModelOptions {
    /// Fill the options not given here from `defaults`, for the flags in `accepted` only (a
    /// preset's model settings apply to the architectures that have them).
    pub fn with_defaults(self, defaults: &ModelOptions, accepted: &[&str]) -> ModelOptions {
        fn pick<T: Copy>(
            own: Option<T>,
            default: Option<T>,
            flag: &str,
            accepted: &[&str],
        ) -> Option<T> {
            own.or(default.filter(|_| accepted.contains(&flag)))
        }
        ModelOptions {
            d_model: pick(self.d_model, defaults.d_model, "d-model", accepted),
            layers: pick(self.layers, defaults.layers, "layers", accepted),
            heads: pick(self.heads, defaults.heads, "heads", accepted),
            d_ff: pick(self.d_ff, defaults.d_ff, "d-ff", accepted),
            d_state: pick(self.d_state, defaults.d_state, "d-state", accepted),
            expand: pick(self.expand, defaults.expand, "expand", accepted),
            patch_len: pick(self.patch_len, defaults.patch_len, "patch-len", accepted),
            stride: pick(self.stride, defaults.stride, "stride", accepted),
            dropout: pick(self.dropout, defaults.dropout, "dropout", accepted),
            individual: pick(self.individual, defaults.individual, "individual", accepted),
            moving_avg: pick(self.moving_avg, defaults.moving_avg, "moving-avg", accepted),
            mean_init: self.mean_init.or(defaults.mean_init),
            causal: pick(self.causal, defaults.causal, "causal", accepted),
            window: pick(self.window, defaults.window, "window", accepted),
            params: self.params,
            norm: pick(self.norm, defaults.norm, "norm", accepted),
            post_norm: pick(self.post_norm, defaults.post_norm, "post-norm", accepted),
        }
    }

    /// The flags that were given, by name (without dashes), except `mean_init` (preset-only).
    fn given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        let mut push = |present: bool, name| {
            if present {
                given.push(name);
            }
        };
        push(self.d_model.is_some(), "d-model");
        push(self.layers.is_some(), "layers");
        push(self.heads.is_some(), "heads");
        push(self.d_ff.is_some(), "d-ff");
        push(self.d_state.is_some(), "d-state");
        push(self.expand.is_some(), "expand");
        push(self.patch_len.is_some(), "patch-len");
        push(self.stride.is_some(), "stride");
        push(self.dropout.is_some(), "dropout");
        push(self.individual.is_some(), "individual");
        push(self.moving_avg.is_some(), "moving-avg");
        push(self.causal.is_some(), "causal");
        push(self.window.is_some(), "window");
        push(self.params.is_some(), "params");
        push(self.norm.is_some(), "norm");
        push(self.post_norm.is_some(), "post-norm");
        given
    }
}

/// The data-determined dimensions of a forecasting model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskShape {
    /// Lookback `L`.
    pub seq_len: usize,
    /// Horizon `H`.
    pub pred_len: usize,
    /// Channels `c`.
    pub channels: usize,
}

impl ArchName {
    /// Every registered architecture.
    pub const ALL: [ArchName; 9] = [
        Self::Linear,
        Self::Nlinear,
        Self::Dlinear,
        Self::Rlinear,
        Self::Repeat,
        Self::Transformer,
        Self::Mamba,
        Self::Griffin,
        Self::Hawk,
    ];

    /// The command-line spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Nlinear => "nlinear",
            Self::Dlinear => "dlinear",
            Self::Rlinear => "rlinear",
            Self::Repeat => "repeat",
            Self::Transformer => "transformer",
            Self::Mamba => "mamba",
            Self::Griffin => "griffin",
            Self::Hawk => "hawk",
        }
    }

    /// One line for `archzoo list`.
    pub fn about(self) -> &'static str {
        match self {
            Self::Linear => "Linear(L->H) along time per channel (LTSF-Linear, Zeng et al. 2023)",
            Self::Nlinear => "last-value normalisation + Linear (LTSF-Linear)",
            Self::Dlinear => {
                "moving-average trend/seasonal decomposition, one Linear each (LTSF-Linear)"
            }
            Self::Rlinear => "RevIN + dropout + Linear (Li et al. 2023)",
            Self::Repeat => "repeat the last input value over the horizon; no training",
            Self::Transformer => {
                "self-attention over patches, pre-norm or PatchTST's post-norm BatchNorm (PatchTST-style adapter)"
            }
            Self::Mamba => "Mamba-1 selective SSM blocks over patches (fused scan; same adapter)",
            Self::Griffin => {
                "Griffin: RG-LRU, RG-LRU, local MQA blocks over patches (fused scan; same adapter)"
            }
            Self::Hawk => "Hawk: RG-LRU recurrent blocks only over patches (same adapter)",
        }
    }

    /// Whether the architecture has parameters to train.
    pub fn trainable(self) -> bool {
        !matches!(self, Self::Repeat)
    }

    /// Model flags this architecture accepts (without dashes).
    pub fn accepted_options(self) -> &'static [&'static str] {
        match self {
            Self::Linear | Self::Nlinear => &["individual"],
            Self::Dlinear => &["individual", "moving-avg"],
            Self::Rlinear => &["individual", "dropout"],
            Self::Repeat => &[],
            Self::Transformer => &[
                "params",
                "d-model",
                "layers",
                "heads",
                "d-ff",
                "dropout",
                "patch-len",
                "stride",
                "causal",
                "norm",
                "post-norm",
            ],
            Self::Mamba => &[
                "params",
                "d-model",
                "layers",
                "d-state",
                "expand",
                "dropout",
                "patch-len",
                "stride",
            ],
            Self::Griffin => &[
                "params",
                "d-model",
                "layers",
                "heads",
                "window",
                "dropout",
                "patch-len",
                "stride",
            ],
            // Heads are the RG-LRU gates' diagonal blocks.
            Self::Hawk => &[
                "params",
                "d-model",
                "layers",
                "heads",
                "dropout",
                "patch-len",
                "stride",
            ],
        }
    }

    /// The accepted options as flags, `--individual, --moving-avg`, or `no model options`.
    pub fn accepted_flags(self) -> String {
        let accepted = self.accepted_options();
        if accepted.is_empty() {
            return "no model options".into();
        }
        let flags: Vec<String> = accepted.iter().map(|o| format!("--{o}")).collect();
        flags.join(", ")
    }

    /// Build the configuration for a task from command-line options, rejecting options that do not
    /// apply and values out of range.
    pub fn config(
        self,
        task: TaskShape,
        options: &ModelOptions,
    ) -> Result<ArchConfig, ConfigError> {
        let accepted = self.accepted_options();
        if let Some(option) = options.given().into_iter().find(|o| !accepted.contains(o)) {
            return Err(ConfigError::NotApplicable {
                arch: self.as_str(),
                option,
                accepted: self.accepted_flags(),
            });
        }
        if let Some(target) = options.params {
            return self.sized(task, options, target);
        }
        let linear = |kind| {
            LinearForecasterConfig::new(kind, task.seq_len, task.pred_len, task.channels)
                .with_individual(options.individual.unwrap_or(false))
                .with_moving_avg(options.moving_avg.unwrap_or(25))
                // RTSF's RLinear default input dropout.
                .with_dropout(options.dropout.unwrap_or(if kind == LinearKind::RLinear {
                    0.1
                } else {
                    0.0
                }))
                .with_mean_init(options.mean_init.unwrap_or(false) && kind == LinearKind::DLinear)
        };
        let config = match self {
            Self::Linear => ArchConfig::Linear(linear(LinearKind::Linear)),
            Self::Nlinear => ArchConfig::Linear(linear(LinearKind::NLinear)),
            Self::Dlinear => ArchConfig::Linear(linear(LinearKind::DLinear)),
            Self::Rlinear => ArchConfig::Linear(linear(LinearKind::RLinear)),
            Self::Repeat => ArchConfig::Repeat(RepeatConfig::new(task.seq_len, task.pred_len)),
            Self::Transformer => {
                let patch_len = options.patch_len.unwrap_or(16);
                let stride = options.stride.unwrap_or(8);
                let mut adapter = PatchForecasterConfig::new(
                    task.seq_len,
                    task.pred_len,
                    task.channels,
                    BackboneConfig::Transformer(TransformerConfig::new(0)),
                )
                .with_patch_len(patch_len)
                .with_stride(stride);
                // The bidirectional encoder (PatchTST) learns one position per patch; a causal
                // backbone uses rotary positions, so it also runs as a sequence model of any
                // length up to its table. An invalid patching is reported by validate() below,
                // so guard the patch count here.
                let causal = options.causal.unwrap_or(false);
                let n_patches = if patch_len <= task.seq_len && stride > 0 {
                    adapter.n_patches()
                } else {
                    1
                };
                let (positions, max_len) = if causal {
                    (PositionKind::Rotary, 16_384)
                } else {
                    (PositionKind::Learned, n_patches)
                };
                adapter.backbone = BackboneConfig::Transformer(
                    TransformerConfig::new(options.d_model.unwrap_or(64))
                        .with_n_layers(options.layers.unwrap_or(2))
                        .with_n_heads(options.heads.unwrap_or(4))
                        .with_d_ff(options.d_ff.unwrap_or(128))
                        .with_dropout(options.dropout.unwrap_or(0.1))
                        .with_positions(positions)
                        .with_max_len(max_len)
                        .with_causal(causal)
                        .with_norm(options.norm.unwrap_or(NormKind::LayerNorm))
                        .with_post_norm(options.post_norm.unwrap_or(false)),
                );
                ArchConfig::Patch(adapter)
            }
            // TSLib's MambaSimple ETTh1 script: d_model 128, 2 layers, d_state 16, expand 2,
            // d_conv 4. Mamba has no dropout of its own; --dropout is the head's.
            Self::Mamba => ArchConfig::Patch(
                PatchForecasterConfig::new(
                    task.seq_len,
                    task.pred_len,
                    task.channels,
                    BackboneConfig::Mamba(
                        MambaConfig::new(options.d_model.unwrap_or(128))
                            .with_n_layers(options.layers.unwrap_or(2))
                            .with_d_state(options.d_state.unwrap_or(16))
                            .with_expand(options.expand.unwrap_or(2)),
                    ),
                )
                .with_patch_len(options.patch_len.unwrap_or(16))
                .with_stride(options.stride.unwrap_or(8))
                .with_head_dropout(options.dropout.unwrap_or(0.0)),
            ),
            // Griffin and Hawk at the Mamba default's width and three residual blocks (one full
            // pattern); no dropout of their own, as in the paper; --dropout is the head's.
            Self::Griffin | Self::Hawk => {
                let layers = options.layers.unwrap_or(3);
                if self == Self::Griffin && (1..3).contains(&layers) {
                    // The pattern [rec, rec, att] cycles over the layers: fewer than 3 would be
                    // Hawk under Griffin's name.
                    return Err(ConfigError::Invalid(format!(
                        "griffin with {layers} layer(s) has no attention block (its pattern is recurrent, recurrent, attention); use --layers 3 or more, or --arch hawk"
                    )));
                }
                let d_model = options.d_model.unwrap_or(128);
                let backbone = if self == Self::Hawk {
                    GriffinConfig::hawk(d_model)
                } else {
                    GriffinConfig::new(d_model).with_window(options.window.unwrap_or(1024))
                };
                ArchConfig::Patch(
                    PatchForecasterConfig::new(
                        task.seq_len,
                        task.pred_len,
                        task.channels,
                        BackboneConfig::Griffin(
                            backbone
                                .with_n_layers(layers)
                                .with_n_heads(options.heads.unwrap_or(4)),
                        ),
                    )
                    .with_patch_len(options.patch_len.unwrap_or(16))
                    .with_stride(options.stride.unwrap_or(8))
                    .with_head_dropout(options.dropout.unwrap_or(0.0)),
                )
            }
        };
        config.validate()?;
        Ok(config)
    }
}

/// Widths of the size ladder (multiples of 16, so 4 heads keep a head width divisible by 4).
pub const LADDER_WIDTHS: [usize; 9] = [16, 32, 64, 96, 128, 192, 256, 384, 512];

impl ArchName {
    /// Depths of the size ladder: Griffin in whole `[rec, rec, att]` patterns, the others 1 to 6.
    pub fn ladder_depths(self) -> &'static [usize] {
        match self {
            Self::Griffin => &[3, 6],
            _ => &[1, 2, 3, 4, 6],
        }
    }

    /// The configuration with the parameter count closest to `target` (in ratio) among the
    /// ladder's widths × depths ([`LADDER_WIDTHS`], [`Self::ladder_depths`]), the other options
    /// as given (the Transformer's `d_ff` is 2·width unless given; 4 heads unless given). Ties go
    /// to the shallower model. Width and depth come from the ladder, so `--d-model` and
    /// `--layers` cannot be given with it. Counted exactly, by building each candidate (widths
    /// past twice the target are not tried).
    pub fn sized(
        self,
        task: TaskShape,
        options: &ModelOptions,
        target: usize,
    ) -> Result<ArchConfig, ConfigError> {
        if options.d_model.is_some() || options.layers.is_some() {
            return Err(ConfigError::Invalid(
                "--params picks width and depth from the size ladder: give it without --d-model and --layers".into(),
            ));
        }
        if target == 0 {
            return Err(ConfigError::Invalid("--params must be positive".into()));
        }
        let device = Device::flex();
        let mut best: Option<(f64, ArchConfig)> = None;
        let mut first_error = None;
        for &depth in self.ladder_depths() {
            for &width in &LADDER_WIDTHS {
                let mut candidate = options.clone();
                candidate.params = None;
                candidate.d_model = Some(width);
                candidate.layers = Some(depth);
                if self == Self::Transformer && options.d_ff.is_none() {
                    candidate.d_ff = Some(2 * width);
                }
                let config = match self.config(task, &candidate) {
                    Ok(config) => config,
                    Err(e) => {
                        first_error.get_or_insert(e);
                        continue;
                    }
                };
                let params = config.init(&device).num_params();
                let distance = (params as f64 / target as f64).ln().abs();
                if best.as_ref().is_none_or(|(d, _)| distance < *d) {
                    best = Some((distance, config));
                }
                // Counts grow with the width: wider ones at this depth are only farther.
                if params > 2 * target {
                    break;
                }
            }
        }
        match (best, first_error) {
            (Some((_, config)), _) => Ok(config),
            (None, Some(e)) => Err(e),
            (None, None) => Err(ConfigError::Invalid(format!("`{self}` has no size ladder"))),
        }
    }
}

impl fmt::Display for ArchName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The full configuration of an architecture; serialized in every run's `config.json`.
#[derive(Config, Debug)]
pub enum ArchConfig {
    /// The linear family.
    Linear(LinearForecasterConfig),
    /// The repeat-last-value baseline.
    Repeat(RepeatConfig),
    /// A backbone behind the patch forecasting adapter.
    Patch(PatchForecasterConfig),
}

impl ArchConfig {
    /// The registry name this configuration builds.
    pub fn name(&self) -> ArchName {
        match self {
            Self::Linear(c) => match c.kind {
                LinearKind::Linear => ArchName::Linear,
                LinearKind::NLinear => ArchName::Nlinear,
                LinearKind::DLinear => ArchName::Dlinear,
                LinearKind::RLinear => ArchName::Rlinear,
            },
            Self::Repeat(_) => ArchName::Repeat,
            Self::Patch(c) => match c.backbone {
                BackboneConfig::Transformer(_) => ArchName::Transformer,
                BackboneConfig::Mamba(_) => ArchName::Mamba,
                BackboneConfig::Griffin(ref g) if g.pattern.contains(&TemporalKind::Attention) => {
                    ArchName::Griffin
                }
                BackboneConfig::Griffin(_) => ArchName::Hawk,
            },
        }
    }

    /// Forward FLOPs for one input window (see [`crate::flops`]); 0 for the repeat baseline.
    pub fn forward_flops(&self) -> u64 {
        match self {
            Self::Linear(c) => c.forward_flops(),
            Self::Repeat(_) => 0,
            Self::Patch(c) => c.forward_flops(),
        }
    }

    /// Check every value before anything is built.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            Self::Linear(c) => c.validate(),
            Self::Repeat(c) if c.seq_len == 0 || c.pred_len == 0 => Err(ConfigError::Invalid(
                "seq_len and pred_len must be positive".into(),
            )),
            Self::Repeat(_) => Ok(()),
            Self::Patch(c) => c.validate(),
        }
    }

    /// Build on `device`.
    pub fn init(&self, device: &Device) -> Arch {
        match self {
            Self::Linear(c) => Arch::Linear(c.init(device)),
            Self::Repeat(c) => Arch::Repeat(c.init(device)),
            Self::Patch(c) => Arch::Patch(c.init(device)),
        }
    }
}

/// A built architecture.
#[derive(Module, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one model per run, moved rarely; boxing would only add indirection to every call"
)]
pub enum Arch {
    /// The linear family.
    Linear(LinearForecaster),
    /// The repeat-last-value baseline.
    Repeat(Repeat),
    /// A backbone behind the patch forecasting adapter.
    Patch(PatchForecaster),
}

/// Recurrent state of an [`Arch`].
#[derive(Clone, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "a handful of tensor handles passed by value each step; boxing adds an allocation per step"
)]
pub enum ArchState {
    /// Input window of a window forecaster.
    Window(WindowState),
    /// State of a backbone.
    Backbone(BackboneState),
}

impl Forecaster for Arch {
    fn forecast(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Linear(m) => m.forecast(x),
            Self::Repeat(m) => m.forecast(x),
            Self::Patch(m) => m.forecast(x),
        }
    }
}

impl SequenceModel for Arch {
    type State = ArchState;

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Linear(m) => SequenceModel::forward(m, x),
            Self::Repeat(m) => SequenceModel::forward(m, x),
            Self::Patch(m) => m.backbone().forward(x),
        }
    }

    fn init_state(&self, batch: usize, device: &Device) -> ArchState {
        match self {
            Self::Linear(m) => ArchState::Window(m.init_state(batch, device)),
            Self::Repeat(m) => ArchState::Window(m.init_state(batch, device)),
            Self::Patch(m) => ArchState::Backbone(m.backbone().init_state(batch, device)),
        }
    }

    fn step(&self, x: Tensor<2>, state: ArchState) -> (Tensor<2>, ArchState) {
        match (self, state) {
            (Self::Linear(m), ArchState::Window(s)) => {
                let (y, s) = m.step(x, s);
                (y, ArchState::Window(s))
            }
            (Self::Repeat(m), ArchState::Window(s)) => {
                let (y, s) = m.step(x, s);
                (y, ArchState::Window(s))
            }
            (Self::Patch(m), ArchState::Backbone(s)) => {
                let (y, s) = m.backbone().step(x, s);
                (y, ArchState::Backbone(s))
            }
            (model, state) => panic!("state {state:?} does not belong to {model}"),
        }
    }

    fn state_size(&self, len: usize) -> usize {
        match self {
            Self::Linear(m) => m.state_size(len),
            Self::Repeat(m) => m.state_size(len),
            Self::Patch(m) => m.backbone().state_size(len),
        }
    }

    fn width(&self) -> Option<usize> {
        match self {
            Self::Linear(m) => m.width(),
            Self::Repeat(m) => m.width(),
            Self::Patch(m) => m.backbone().width(),
        }
    }

    fn max_len(&self) -> Option<usize> {
        match self {
            Self::Linear(m) => m.max_len(),
            Self::Repeat(m) => m.max_len(),
            Self::Patch(m) => m.backbone().max_len(),
        }
    }

    fn is_causal(&self) -> bool {
        match self {
            Self::Linear(m) => m.is_causal(),
            Self::Repeat(m) => m.is_causal(),
            Self::Patch(m) => m.backbone().is_causal(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: TaskShape = TaskShape {
        seq_len: 96,
        pred_len: 24,
        channels: 7,
    };

    fn params_of(config: &ArchConfig) -> usize {
        config.init(&Device::flex()).num_params()
    }

    #[test]
    fn size_ladder_picks_the_closest_count_and_grows_with_the_target() {
        for arch in [
            ArchName::Transformer,
            ArchName::Mamba,
            ArchName::Griffin,
            ArchName::Hawk,
        ] {
            let ask = |params| ModelOptions {
                params: Some(params),
                ..ModelOptions::default()
            };
            let mut previous = 0;
            for target in [20_000, 200_000, 2_000_000] {
                let chosen = params_of(&arch.config(TASK, &ask(target)).unwrap());
                assert!(chosen >= previous, "{arch}: {chosen} after {previous}");
                previous = chosen;
                // Asking for exactly the chosen count returns the same model.
                let again = params_of(&arch.config(TASK, &ask(chosen)).unwrap());
                assert_eq!(again, chosen, "{arch}");
            }
            // Within the ladder's reach the pick lands within a factor of 2 of the target.
            let chosen = params_of(&arch.config(TASK, &ask(200_000)).unwrap()) as f64;
            assert!((chosen / 200_000.0 - 1.0).abs() < 1.0, "{arch}: {chosen}");
        }
    }

    #[test]
    fn size_ladder_rejects_explicit_sizes_and_sizeless_models() {
        let both = ModelOptions {
            params: Some(10_000),
            d_model: Some(32),
            ..ModelOptions::default()
        };
        assert!(ArchName::Mamba.config(TASK, &both).is_err());
        let linear = ModelOptions {
            params: Some(10_000),
            ..ModelOptions::default()
        };
        assert!(matches!(
            ArchName::Dlinear.config(TASK, &linear),
            Err(ConfigError::NotApplicable { .. })
        ));
    }
}
