//! The registry: one line per architecture in [`registry!`] below, in one of two lists. A window
//! forecaster's line names an [`Architecture`]; a causal backbone's names a [`Backbone`], which
//! serves both adapters: the forecasting one ([`Patched`]) and the token one
//! ([`crate::token_adapter`]). Each is implemented in the architecture's own file (its config,
//! its options, its FLOPs, its size ladder, its module). The macro derives from the lists the
//! command-line names ([`ArchName`]), the serialized configurations ([`ArchConfig`] in every
//! forecasting run's `config.json`, [`TokenConfig`] in every probe run's), the modules ([`Arch`],
//! [`TokenArch`]) and their recurrent states ([`ArchState`]), with every dispatch between them.
//! Enums, not strings: an entry whose type lacks a piece does not compile.

use std::fmt;

use burn::module::{Module, ModuleDisplay};
use burn::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::forecast_adapter::{Backbone, BackboneConfig, Patched};
use crate::options::{ModelOption, ModelOptions};
use crate::sequence_model::{Forecaster, SequenceModel};
use crate::token_adapter::{TokenModel, TokenModelConfig, token_config, token_options};
use crate::transformer::PositionKind;

/// What the registry needs of an architecture, implemented in its file on a marker type (the
/// `…Spec` named in the registry line).
pub trait Architecture {
    /// The full configuration, serialized in every run.
    type Config: Clone + fmt::Debug + Serialize + DeserializeOwned;
    /// The built model: a forecaster, and a causal sequence model for the contract tests and
    /// the cost benchmarks.
    type Model: Module + ModuleDisplay + Forecaster + SequenceModel;

    /// One line for `archzoo list`.
    const ABOUT: &'static str;
    /// Whether it has parameters to train.
    const TRAINABLE: bool = true;
    /// Whether it is a backbone behind the forecasting adapter (measured as a sequence model of
    /// its own width), rather than a window forecaster.
    const BACKBONE: bool = false;

    /// The options it takes; the registry rejects the others by name before [`Self::config`].
    fn options() -> Vec<ModelOption>;

    /// Depths of its size ladder (`--params`); empty when it has none.
    fn ladder_depths() -> &'static [usize] {
        &[]
    }

    /// The options of the ladder point `width × depth` (`--d-model`, `--layers`, and whatever
    /// else follows the width).
    fn ladder_point(width: usize, depth: usize, options: &mut ModelOptions) {
        options.d_model = Some(width);
        options.layers = Some(depth);
    }

    /// The configuration for `task`: the options given, the `Config`'s defaults for the rest.
    fn config(task: TaskShape, options: &ModelOptions) -> Result<Self::Config, ConfigError>;

    /// Check every value before anything is built.
    fn validate(config: &Self::Config) -> Result<(), ConfigError>;

    /// Forward FLOPs for one input window (see [`crate::flops`]).
    fn forward_flops(config: &Self::Config) -> u64;

    /// Build on `device` (the config has passed [`Self::validate`]).
    fn init(config: &Self::Config, device: &Device) -> Self::Model;

    /// Parameters of the model's [`SequenceModel`] view (the backbone alone, for a backbone).
    fn sequence_params(model: &Self::Model) -> usize {
        model.num_params()
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

/// Widths of the size ladder (multiples of 16, so 4 heads keep a head width divisible by 4).
pub const LADDER_WIDTHS: [usize; 9] = [16, 32, 64, 96, 128, 192, 256, 384, 512];

/// Builds the registry from its two lists: the window forecasters (an [`Architecture`] each)
/// and the causal backbones (a [`Backbone`] each, which serve the forecasting adapter and the
/// token adapter).
macro_rules! registry {
    (
        forecasters {
            $($(#[doc = $fdoc:literal])+ $fname:ident => $fspec:ty,)+
        }
        backbones {
            $($(#[doc = $bdoc:literal])+ $bname:ident => $bspec:ty,)+
        }
    ) => {
        architectures! {
            $($(#[doc = $fdoc])+ $fname => $fspec,)+
            $($(#[doc = $bdoc])+ $bname => Patched<$bspec>,)+
        }
        token_models! {
            $($(#[doc = $bdoc])+ $bname => $bspec,)+
        }
    };
}

/// Builds the forecasting registry's enums and their dispatch from the `Name => Architecture`
/// lines.
macro_rules! architectures {
    ($($(#[doc = $doc:literal])+ $name:ident => $spec:ty,)+) => {
        /// Architectures selectable with `--arch`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
        #[cfg_attr(feature = "clap", value(rename_all = "lower"))]
        #[serde(rename_all = "lowercase")]
        pub enum ArchName {
            $($(#[doc = $doc])+ $name,)+
        }

        /// The full configuration of an architecture, tagged by its name; serialized in every
        /// run's `config.json`.
        #[derive(Clone, Debug, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum ArchConfig {
            $($(#[doc = $doc])+ $name(<$spec as Architecture>::Config),)+
        }

        /// A built architecture.
        #[derive(Module, Debug)]
        #[allow(
            clippy::large_enum_variant,
            reason = "one model per run, moved rarely; boxing would only add indirection to every call"
        )]
        pub enum Arch {
            $($(#[doc = $doc])+ $name(<$spec as Architecture>::Model),)+
        }

        /// Recurrent state of an [`Arch`].
        #[derive(Clone, Debug)]
        #[allow(
            clippy::large_enum_variant,
            reason = "a handful of tensor handles passed by value each step; boxing adds an allocation per step"
        )]
        pub enum ArchState {
            $($(#[doc = $doc])+ $name(<<$spec as Architecture>::Model as SequenceModel>::State),)+
        }

        impl ArchName {
            /// Every registered architecture.
            pub const ALL: &[ArchName] = &[$(Self::$name),+];

            /// The command-line spelling, the variant in lowercase (`dlinear`), as clap and
            /// serde spell it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$name => {
                        const BYTES: [u8; stringify!($name).len()] = lowercase(stringify!($name));
                        const NAME: &str = match std::str::from_utf8(&BYTES) {
                            Ok(name) => name,
                            Err(_) => panic!("registry names are ASCII"),
                        };
                        NAME
                    })+
                }
            }

            /// One line for `archzoo list`.
            pub fn about(self) -> &'static str {
                match self {
                    $(Self::$name => <$spec as Architecture>::ABOUT,)+
                }
            }

            /// Whether the architecture has parameters to train.
            pub fn trainable(self) -> bool {
                match self {
                    $(Self::$name => <$spec as Architecture>::TRAINABLE,)+
                }
            }

            /// Whether it is a backbone behind the forecasting adapter.
            pub fn is_backbone(self) -> bool {
                match self {
                    $(Self::$name => <$spec as Architecture>::BACKBONE,)+
                }
            }

            /// The model options it accepts.
            pub fn accepted(self) -> Vec<ModelOption> {
                match self {
                    $(Self::$name => <$spec as Architecture>::options(),)+
                }
            }

            /// Depths of the size ladder; empty when it has none.
            pub fn ladder_depths(self) -> &'static [usize] {
                match self {
                    $(Self::$name => <$spec as Architecture>::ladder_depths(),)+
                }
            }

            fn ladder_point(self, width: usize, depth: usize, options: &mut ModelOptions) {
                match self {
                    $(Self::$name => <$spec as Architecture>::ladder_point(width, depth, options),)+
                }
            }

            fn build(self, task: TaskShape, options: &ModelOptions) -> Result<ArchConfig, ConfigError> {
                match self {
                    $(Self::$name => <$spec as Architecture>::config(task, options).map(ArchConfig::$name),)+
                }
            }
        }

        impl ArchConfig {
            /// The registry name this configuration builds.
            pub fn name(&self) -> ArchName {
                match self {
                    $(Self::$name(_) => ArchName::$name,)+
                }
            }

            /// Forward FLOPs for one input window (see [`crate::flops`]).
            pub fn forward_flops(&self) -> u64 {
                match self {
                    $(Self::$name(c) => <$spec as Architecture>::forward_flops(c),)+
                }
            }

            /// Check every value before anything is built.
            pub fn validate(&self) -> Result<(), ConfigError> {
                match self {
                    $(Self::$name(c) => <$spec as Architecture>::validate(c),)+
                }
            }

            /// Build on `device`.
            ///
            /// # Panics
            ///
            /// If the config does not pass [`Self::validate`].
            pub fn init(&self, device: &Device) -> Arch {
                if let Err(e) = self.validate() {
                    panic!("invalid {} config: {e}", self.name());
                }
                match self {
                    $(Self::$name(c) => Arch::$name(<$spec as Architecture>::init(c, device)),)+
                }
            }
        }

        impl Forecaster for Arch {
            fn forecast(&self, x: Tensor<3>) -> Tensor<3> {
                match self {
                    $(Self::$name(m) => m.forecast(x),)+
                }
            }
        }

        impl SequenceModel for Arch {
            type State = ArchState;

            fn forward(&self, x: Tensor<3>) -> Tensor<3> {
                match self {
                    $(Self::$name(m) => SequenceModel::forward(m, x),)+
                }
            }

            fn init_state(&self, batch: usize, device: &Device) -> ArchState {
                match self {
                    $(Self::$name(m) => ArchState::$name(m.init_state(batch, device)),)+
                }
            }

            fn step(&self, x: Tensor<2>, state: ArchState) -> (Tensor<2>, ArchState) {
                match (self, state) {
                    $((Self::$name(m), ArchState::$name(s)) => {
                        let (y, s) = m.step(x, s);
                        (y, ArchState::$name(s))
                    })+
                    #[allow(unreachable_patterns, reason = "reachable once there are two entries")]
                    (model, state) => panic!("state {state:?} does not belong to {}", model.name()),
                }
            }

            fn state_size(&self, len: usize) -> usize {
                match self {
                    $(Self::$name(m) => m.state_size(len),)+
                }
            }

            fn width(&self) -> Option<usize> {
                match self {
                    $(Self::$name(m) => m.width(),)+
                }
            }

            fn max_len(&self) -> Option<usize> {
                match self {
                    $(Self::$name(m) => m.max_len(),)+
                }
            }

            fn is_causal(&self) -> bool {
                match self {
                    $(Self::$name(m) => m.is_causal(),)+
                }
            }
        }

        impl Arch {
            /// The registry name of this model.
            pub fn name(&self) -> ArchName {
                match self {
                    $(Self::$name(_) => ArchName::$name,)+
                }
            }

            /// Parameters of its [`SequenceModel`] view (the backbone alone, for a backbone).
            pub fn sequence_params(&self) -> usize {
                match self {
                    $(Self::$name(m) => <$spec as Architecture>::sequence_params(m),)+
                }
            }
        }
    };
}
/// Builds the token models' enums and their dispatch from the `Name => Backbone` lines.
macro_rules! token_models {
    ($($(#[doc = $doc:literal])+ $name:ident => $spec:ty,)+) => {
        /// A token model's configuration (the token adapter around a causal backbone), tagged
        /// by its architecture's name; serialized in every probe run's `config.json`.
        #[derive(Clone, Debug, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum TokenConfig {
            $($(#[doc = $doc])+ $name(TokenModelConfig<<$spec as Backbone>::Config>),)+
        }

        /// A built token model.
        #[derive(Module, Debug)]
        #[allow(
            clippy::large_enum_variant,
            reason = "one model per run, moved rarely"
        )]
        pub enum TokenArch {
            $($(#[doc = $doc])+ $name(TokenModel<<<$spec as Backbone>::Config as BackboneConfig>::Model>),)+
        }

        impl ArchName {
            /// The options it takes under the token adapter; `None` for a window forecaster,
            /// which has no causal backbone.
            pub fn token_options(self) -> Option<Vec<ModelOption>> {
                match self {
                    $(Self::$name => Some(token_options::<$spec>()),)+
                    #[allow(unreachable_patterns, reason = "reachable while there are forecasters")]
                    _ => None,
                }
            }

            fn build_tokens(self, vocab: usize, max_len: usize, options: &ModelOptions) -> Option<Result<TokenConfig, ConfigError>> {
                match self {
                    $(Self::$name => Some(token_config::<$spec>(vocab, max_len, options).map(TokenConfig::$name)),)+
                    #[allow(unreachable_patterns, reason = "reachable while there are forecasters")]
                    _ => None,
                }
            }
        }

        impl TokenConfig {
            /// The registry name of its backbone.
            pub fn name(&self) -> ArchName {
                match self {
                    $(Self::$name(_) => ArchName::$name,)+
                }
            }

            /// Vocabulary size `V`.
            pub fn vocab(&self) -> usize {
                match self {
                    $(Self::$name(c) => c.vocab,)+
                }
            }

            /// Model width `d`.
            pub fn d_model(&self) -> usize {
                match self {
                    $(Self::$name(c) => c.backbone.d_model(),)+
                }
            }

            /// Check every value before anything is built.
            pub fn validate(&self) -> Result<(), ConfigError> {
                match self {
                    $(Self::$name(c) => c.validate(),)+
                }
            }

            /// Forward FLOPs of one sequence of `l` positions with logits at `labelled` of them.
            pub fn forward_flops(&self, l: usize, labelled: usize) -> u64 {
                match self {
                    $(Self::$name(c) => c.forward_flops(l, labelled),)+
                }
            }

            /// Build on `device`.
            ///
            /// # Panics
            ///
            /// If the config does not pass [`Self::validate`].
            pub fn init(&self, device: &Device) -> TokenArch {
                match self {
                    $(Self::$name(c) => TokenArch::$name(c.init(device)),)+
                }
            }
        }

        impl TokenArch {
            /// The registry name of its backbone.
            pub fn name(&self) -> ArchName {
                match self {
                    $(Self::$name(_) => ArchName::$name,)+
                }
            }

            /// Logits at the flattened positions `positions` of `tokens: [b, l]`, `[n, V]`
            /// ([`TokenModel::logits_at`]).
            pub fn logits_at(&self, tokens: Tensor<2, Int>, positions: Tensor<1, Int>) -> Tensor<2> {
                match self {
                    $(Self::$name(m) => m.logits_at(tokens, positions),)+
                }
            }

            /// Logits at every position, `[b, l, V]` ([`TokenModel::logits`]).
            pub fn logits(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
                match self {
                    $(Self::$name(m) => m.logits(tokens),)+
                }
            }

            /// Parameters of the backbone alone.
            pub fn backbone_params(&self) -> usize {
                match self {
                    $(Self::$name(m) => m.backbone_params(),)+
                }
            }

            /// Floats of recurrent state per sequence after `len` positions.
            pub fn state_size(&self, len: usize) -> usize {
                match self {
                    $(Self::$name(m) => m.state_size(len),)+
                }
            }

            /// Longest sequence the backbone can process, `None` if unbounded.
            pub fn max_len(&self) -> Option<usize> {
                match self {
                    $(Self::$name(m) => m.backbone.max_len(),)+
                }
            }
        }
    };
}

registry! {
    forecasters {
    /// `Linear(L -> H)` per channel (LTSF-Linear).
    Linear => crate::linear::LinearSpec,
    /// Last-value normalised linear (LTSF-Linear).
    Nlinear => crate::linear::NlinearSpec,
    /// Trend/seasonal decomposition linear (LTSF-Linear).
    Dlinear => crate::linear::DlinearSpec,
    /// RevIN + linear (RTSF).
    Rlinear => crate::linear::RlinearSpec,
    /// Repeat the last value: the no-training baseline.
    Repeat => crate::repeat::RepeatSpec,
    }
    backbones {
    /// Self-attention backbone (PatchTST-style behind the forecasting adapter).
    Transformer => crate::transformer::TransformerSpec,
    /// Mamba-1 selective SSM backbone.
    Mamba => crate::mamba::MambaSpec,
    /// Mamba-2 (SSD) backbone.
    Mamba2 => crate::mamba2::Mamba2Spec,
    /// Gated DeltaNet backbone.
    GatedDeltanet => crate::gated_deltanet::GatedDeltaNetSpec,
    /// Griffin (RG-LRU recurrent blocks and local attention, 2:1).
    Griffin => crate::griffin::GriffinSpec,
    /// Hawk (Griffin with recurrent blocks only).
    Hawk => crate::griffin::HawkSpec,
    /// LSTM backbone.
    Lstm => crate::lstm::LstmSpec,
    }
}

/// `name` in ASCII lowercase, at compile time (`N` is its length; the registry's names are
/// ASCII identifiers).
const fn lowercase<const N: usize>(name: &str) -> [u8; N] {
    let bytes = name.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i].to_ascii_lowercase();
        i += 1;
    }
    out
}

impl ArchName {
    /// Whether the architecture takes `option`.
    pub fn accepts(self, option: ModelOption) -> bool {
        self.accepted().contains(&option)
    }

    /// The accepted options as flags, `--individual, --moving-avg`, or `no model options`.
    pub fn accepted_flags(self) -> String {
        flags(&self.accepted())
    }

    /// Whether it has a causal backbone, so it runs the token tasks.
    pub fn has_token_model(self) -> bool {
        self.token_options().is_some()
    }

    /// The token model (the token adapter around its causal backbone) over a vocabulary of
    /// `vocab` tokens for sequences of at most `max_len` tokens (the rows of a learned position
    /// table) from the options given, rejecting a window forecaster, options that do not apply
    /// to the token adapter and values out of range.
    pub fn token_config(
        self,
        vocab: usize,
        max_len: usize,
        options: &ModelOptions,
    ) -> Result<TokenConfig, ConfigError> {
        let accepted = self
            .token_options()
            .ok_or_else(|| ConfigError::NoTokenModel {
                arch: self.as_str(),
                token_models: names(ArchName::ALL.iter().filter(|a| a.has_token_model())),
            })?;
        if let Some(option) = options.given().into_iter().find(|o| !accepted.contains(o)) {
            return Err(ConfigError::NotApplicable {
                arch: self.as_str(),
                option,
                accepted: flags(&accepted),
            });
        }
        self.build_tokens(vocab, max_len, options)
            .expect("a token model: its options exist")
    }

    /// The configuration for a task from the options given, rejecting options that do not apply
    /// and values out of range; `--params` picks width and depth from the size ladder.
    pub fn config(
        self,
        task: TaskShape,
        options: &ModelOptions,
    ) -> Result<ArchConfig, ConfigError> {
        let accepted = self.accepted();
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
        let config = self.build(task, options)?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration with the parameter count closest to `target` (in ratio) among the
    /// ladder's widths × depths ([`LADDER_WIDTHS`], [`Self::ladder_depths`]), the other options
    /// as given. Ties go to the shallower model. Width and depth come from the ladder, so
    /// `--d-model` and `--layers` cannot be given with it. Counted exactly, by building each
    /// candidate (widths past twice the target are not tried).
    fn sized(
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
        let device = Device::flex();
        let mut best: Option<(f64, ArchConfig)> = None;
        let mut first_error = None;
        for &depth in self.ladder_depths() {
            for &width in &LADDER_WIDTHS {
                let mut candidate = options.clone();
                candidate.params = None;
                self.ladder_point(width, depth, &mut candidate);
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

/// Options as flags, `--individual, --moving-avg`, or `no model options`.
fn flags(options: &[ModelOption]) -> String {
    if options.is_empty() {
        return "no model options".into();
    }
    let flags: Vec<String> = options.iter().map(|o| o.flag()).collect();
    flags.join(", ")
}

impl TokenConfig {
    /// Where the token model departs from the architecture's default, as leaderboards and
    /// charts name it beside the architecture: `learned positions` (Zoology's attention
    /// baseline, against rotary).
    pub fn variant(&self) -> Option<&'static str> {
        match self {
            Self::Transformer(c) if c.backbone.positions == PositionKind::Learned => {
                Some("learned positions")
            }
            _ => None,
        }
    }
}

/// Architecture names joined, `transformer, mamba`.
fn names<'a>(names: impl Iterator<Item = &'a ArchName>) -> String {
    names.map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for ArchName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    fn names_are_the_lowercase_variants() {
        assert_eq!(ArchName::Dlinear.as_str(), "dlinear");
        assert_eq!(ArchName::Transformer.to_string(), "transformer");
        // Several words run together, the same for clap as for `as_str` (and serde's `lowercase`).
        let name = ArchName::GatedDeltanet;
        assert_eq!(name.as_str(), "gateddeltanet");
        #[cfg(feature = "clap")]
        assert_eq!(
            clap::ValueEnum::to_possible_value(&name)
                .unwrap()
                .get_name(),
            "gateddeltanet"
        );
    }

    #[test]
    fn size_ladder_picks_the_closest_count_and_grows_with_the_target() {
        for &arch in ArchName::ALL
            .iter()
            .filter(|a| !a.ladder_depths().is_empty())
        {
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
