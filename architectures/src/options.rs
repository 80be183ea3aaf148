//! The model options, each declared once.
//!
//! One declaration per option (below, in [`model_options!`]) is the clap flag of `archzoo
//! train` and the benches (its doc comment is the help text), the sweep-file key (the field
//! name), the typed [`ModelOption`] an architecture lists as accepted, and the line of
//! `archzoo list`. An architecture rejects the options it does not take by name
//! ([`crate::ConfigError::NotApplicable`]); the values it leaves unset come from its `Config`.

#[cfg(feature = "clap")]
use std::str::FromStr;

use crate::transformer::{NormKind, PositionKind};

/// Declares [`ModelOptions`] (one field per option) and [`ModelOption`] (one variant per option)
/// from one list, so that a new option is one entry.
macro_rules! model_options {
    ($(
        $(#[doc = $doc:literal])+
        #[arg($($arg:tt)*)]
        $field:ident: $ty:ty => $variant:ident;
    )*) => {
        /// Model hyperparameters as given (command line, sweep file, preset); an option not given
        /// takes the architecture's default.
        #[derive(Clone, Debug, Default, PartialEq)]
        #[cfg_attr(feature = "clap", derive(clap::Args))]
        pub struct ModelOptions {
            $(
                $(#[doc = $doc])+
                #[cfg_attr(feature = "clap", arg($($arg)*))]
                pub $field: $ty,
            )*
            /// Constant `1/L` initial weights for DLinear: set by the `tslib` preset (TSLib's
            /// DLinear does this), not a flag.
            #[cfg_attr(feature = "clap", arg(skip))]
            pub mean_init: bool,
        }

        /// One model option, by name: what an architecture lists as accepted.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ModelOption {
            $($(#[doc = $doc])+ $variant,)*
        }

        impl ModelOption {
            /// Every option, in declaration order.
            pub const ALL: &[ModelOption] = &[$(Self::$variant),*];

            /// The sweep-file key and field name, `d_model`.
            pub fn key(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($field),)*
                }
            }

            /// The help text (the declaration's doc comment).
            pub fn help(self) -> String {
                let text = match self {
                    $(Self::$variant => concat!($($doc),+),)*
                };
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            }
        }

        impl ModelOptions {
            /// The options given, in declaration order (not `mean_init`, which is no flag).
            pub fn given(&self) -> Vec<ModelOption> {
                let mut given = Vec::new();
                $(if Given::is_given(&self.$field) {
                    given.push(ModelOption::$variant);
                })*
                given
            }

            /// These options, with the ones not given here taken from `defaults` where
            /// `accepted` lists them (a preset's model settings apply to the architectures that
            /// have them).
            pub fn with_defaults(self, defaults: &ModelOptions, accepted: &[ModelOption]) -> Self {
                ModelOptions {
                    $($field: Given::or_default(
                        self.$field,
                        &defaults.$field,
                        accepted.contains(&ModelOption::$variant),
                    ),)*
                    mean_init: self.mean_init || defaults.mean_init,
                }
            }
        }
    };
}

model_options! {
    /// Target parameter count: width and depth from the architecture's size ladder (the closest
    /// count; see `archzoo list`).
    #[arg(long, value_parser = positive)]
    params: Option<usize> => Params;
    /// Model width.
    #[arg(long, value_parser = positive)]
    d_model: Option<usize> => DModel;
    /// Number of layers (blocks).
    #[arg(long, value_parser = positive)]
    layers: Option<usize> => Layers;
    /// Attention heads.
    #[arg(long, value_parser = positive)]
    heads: Option<usize> => Heads;
    /// Feed-forward width.
    #[arg(long, value_parser = positive)]
    d_ff: Option<usize> => DFf;
    /// SSM state size.
    #[arg(long, value_parser = positive)]
    d_state: Option<usize> => DState;
    /// Expansion factor.
    #[arg(long, value_parser = positive)]
    expand: Option<usize> => Expand;
    /// Head width (Mamba-2's `headdim`; Gated DeltaNet's key width).
    #[arg(long, value_parser = positive)]
    head_dim: Option<usize> => HeadDim;
    /// Patch length.
    #[arg(long, value_parser = positive)]
    patch_len: Option<usize> => PatchLen;
    /// Patch stride.
    #[arg(long, value_parser = positive)]
    stride: Option<usize> => Stride;
    /// Dropout probability in [0, 1).
    #[arg(long, allow_negative_numbers = true)]
    dropout: Option<f64> => Dropout;
    /// One set of weights per channel (linear family).
    #[arg(long)]
    individual: bool => Individual;
    /// DLinear moving-average kernel (odd).
    #[arg(long, value_parser = positive)]
    moving_avg: Option<usize> => MovingAvg;
    /// Causal backbone: attention to earlier positions only (forecasting default:
    /// bidirectional).
    #[arg(long)]
    causal: bool => Causal;
    /// Local-attention window: earlier positions each query sees (Griffin).
    #[arg(long, value_parser = positive)]
    window: Option<usize> => Window;
    /// Transformer normalisation (default layer-norm; batch-norm: PatchTST's, bidirectional
    /// encoders only).
    #[arg(long, value_enum)]
    norm: Option<NormKind> => Norm;
    /// Transformer post-norm blocks, Norm(x + branch), without a final norm (the original
    /// Transformer and PatchTST; default: pre-norm).
    #[arg(long)]
    post_norm: bool => PostNorm;
    /// Transformer positions: rotary (default of a causal model) or a learned vector per
    /// position (default of a bidirectional encoder; Zoology's attention baseline).
    #[arg(long, value_enum)]
    position_encoding: Option<PositionKind> => PositionEncoding;
}

impl ModelOption {
    /// The command-line flag, `--d-model`.
    pub fn flag(self) -> String {
        format!("--{}", self.key().replace('_', "-"))
    }

    /// The option whose sweep-file key is `key`.
    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|o| o.key() == key)
    }
}

impl std::fmt::Display for ModelOption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.flag())
    }
}

/// What "given" means for an option's type: `Some` for a value, `true` for a switch.
trait Given: Sized {
    fn is_given(&self) -> bool;
    fn or_default(self, default: &Self, applies: bool) -> Self;
}

impl<T: Clone> Given for Option<T> {
    fn is_given(&self) -> bool {
        self.is_some()
    }

    fn or_default(self, default: &Self, applies: bool) -> Self {
        self.or_else(|| default.clone().filter(|_| applies))
    }
}

impl Given for bool {
    fn is_given(&self) -> bool {
        *self
    }

    fn or_default(self, default: &Self, applies: bool) -> Self {
        self || (*default && applies)
    }
}

/// A positive integer (clap value parser shared by every size flag).
#[cfg(feature = "clap")]
pub fn positive(text: &str) -> Result<usize, String> {
    match usize::from_str(text) {
        Ok(0) => Err("must be at least 1".into()),
        Ok(value) => Ok(value),
        Err(_) => Err(format!("`{text}` is not a positive whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_flags_and_given_follow_the_declaration() {
        assert_eq!(ModelOption::DModel.key(), "d_model");
        assert_eq!(ModelOption::PostNorm.flag(), "--post-norm");
        assert_eq!(
            ModelOption::from_key("moving_avg"),
            Some(ModelOption::MovingAvg)
        );
        assert_eq!(ModelOption::from_key("learning_rate"), None);
        assert_eq!(
            ModelOption::Window.help(),
            "Local-attention window: earlier positions each query sees (Griffin)."
        );
        let options = ModelOptions {
            d_model: Some(8),
            causal: true,
            ..ModelOptions::default()
        };
        assert_eq!(options.given(), [ModelOption::DModel, ModelOption::Causal]);
    }

    #[test]
    fn defaults_fill_only_accepted_options_not_given() {
        let defaults = ModelOptions {
            d_model: Some(16),
            layers: Some(3),
            post_norm: true,
            ..ModelOptions::default()
        };
        let given = ModelOptions {
            d_model: Some(32),
            ..ModelOptions::default()
        };
        let filled = given.with_defaults(&defaults, &[ModelOption::DModel, ModelOption::PostNorm]);
        assert_eq!(filled.d_model, Some(32));
        assert_eq!(filled.layers, None);
        assert!(filled.post_norm);
    }
}
