//! The token adapter every causal backbone shares for the token probes (associative recall,
//! selective copying, induction heads): a language model around the backbone, as Zoology's
//! `LanguageModel` (HazyResearch/zoology `zoology/model.py`) and Mamba's `MambaLMHeadModel`
//! (state-spaces/mamba `mamba_ssm/models/mixer_seq_simple.py`) build one:
//!
//! ```text
//! tokens [b, l] → embedding E [V, d] → backbone (causal) → final norm → logits = h Eᵀ
//! ```
//!
//! - The head is tied to the embedding (both references tie it) and has no bias; the embedding is
//!   initialised `N(0, 0.02²)` (both references' `initializer_range`).
//! - The final norm is the backbone's own where it ends in one (Mamba's `norm_f`, Griffin's final
//!   RMSNorm, the pre-norm Transformer's final LayerNorm, post-norm blocks, which end normalised);
//!   the adapter adds a LayerNorm only after a backbone that does not (the LSTM).
//! - No positions of the adapter's own: the Transformer brings rotary positions, the recurrent
//!   backbones need none.
//! - Logits are computed at the labelled positions only ([`TokenModel::logits_at`]): MQAR labels
//!   K of L positions, so projecting every position onto a vocabulary of 8 192 would spend most
//!   of a step on outputs no loss reads.

use burn::module::{Module, ModuleDisplay};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::forecast_adapter::{Backbone, BackboneConfig, Patching};
use crate::options::{ModelOption, ModelOptions};
use crate::sequence_model::SequenceModel;

/// The options a backbone takes under the token adapter: its structural ones. The adapter has
/// no patching, no dropout (see [`token_config`]) and is causal by construction, so
/// `--patch-len`, `--stride`, `--dropout`, `--causal` and `--params` are rejected by name.
const TOKEN_OPTIONS: &[ModelOption] = &[
    ModelOption::DModel,
    ModelOption::Layers,
    ModelOption::Heads,
    ModelOption::DFf,
    ModelOption::DState,
    ModelOption::Expand,
    ModelOption::HeadDim,
    ModelOption::Window,
    ModelOption::Norm,
    ModelOption::PostNorm,
];

/// The options backbone `B` takes under the token adapter.
pub fn token_options<B: Backbone>() -> Vec<ModelOption> {
    B::OPTIONS
        .iter()
        .copied()
        .filter(|o| TOKEN_OPTIONS.contains(o))
        .collect()
}

/// The token-model configuration of backbone `B` over a vocabulary of `vocab` tokens (the
/// options have been checked against [`token_options`]): the backbone's forecasting
/// configuration with `--causal` set, which gives the Transformer rotary positions (its table
/// bounds the length: [`SequenceModel::max_len`]), and dropout 0: the Mamba paper's probe
/// models have none, and Zoology's figure 2 gives only its attention baseline any (0.1 on the
/// attention weights), so every backbone here trains without rather than one with a
/// regulariser the others lack. The patching it is configured against is discarded (no option
/// that reaches it is accepted here).
pub fn token_config<B: Backbone>(
    vocab: usize,
    options: &ModelOptions,
) -> Result<TokenModelConfig<B::Config>, ConfigError> {
    let causal = ModelOptions {
        causal: true,
        dropout: Some(0.0),
        ..options.clone()
    };
    let mut unused = Patching::new(1, 1, 1);
    let config = TokenModelConfig {
        vocab,
        backbone: B::configure(&causal, &mut unused)?,
    };
    config.validate()?;
    Ok(config)
}

/// Hyperparameters of a [`TokenModel`]: the vocabulary and its backbone's.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "C: BackboneConfig")]
pub struct TokenModelConfig<C> {
    /// Vocabulary size `V`.
    pub vocab: usize,
    /// The causal backbone; its width is the embedding width.
    pub backbone: C,
}

impl<C: BackboneConfig> TokenModelConfig<C> {
    /// Check ranges before building.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vocab < 2 {
            return Err(ConfigError::Invalid(format!(
                "the vocabulary needs at least 2 tokens (got {})",
                self.vocab
            )));
        }
        self.backbone.validate()
    }

    /// Forward FLOPs for one sequence of `l` positions with logits at `labelled` of them (see
    /// [`crate::flops`]): the backbone, and the tied head `2·d·V` per labelled position.
    pub fn forward_flops(&self, l: usize, labelled: usize) -> u64 {
        let (d, v) = (self.backbone.d_model() as u64, self.vocab as u64);
        self.backbone.forward_flops(l) + labelled as u64 * 2 * d * v
    }

    /// Build on `device`.
    ///
    /// # Panics
    ///
    /// If the configuration does not validate.
    pub fn init(&self, device: &Device) -> TokenModel<C::Model> {
        if let Err(e) = self.validate() {
            panic!("invalid TokenModelConfig: {e}");
        }
        let d = self.backbone.d_model();
        let embedding = EmbeddingConfig::new(self.vocab, d)
            .with_initializer(Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            })
            .init(device);
        TokenModel {
            embedding,
            backbone: self.backbone.init(device),
            norm: (!self.backbone.ends_normalised()).then(|| LayerNormConfig::new(d).init(device)),
        }
    }
}

/// A language model around a causal backbone: `[b, l]` tokens in, logits over `V` out.
#[derive(Module, Debug)]
pub struct TokenModel<M: Module> {
    /// `E: [V, d]`, also the head (tied).
    embedding: Embedding,
    /// The causal sequence model.
    pub backbone: M,
    /// Final norm, for a backbone that does not end in one.
    norm: Option<LayerNorm>,
}

impl<M: Module + ModuleDisplay + SequenceModel> TokenModel<M> {
    /// Final hidden states, `[b, l] -> [b, l, d]`.
    pub fn hidden(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let x = self.embedding.forward(tokens); // [b, l, d]
        let h = self.backbone.forward(x);
        match &self.norm {
            Some(norm) => norm.forward(h),
            None => h,
        }
    }

    /// Logits at the flattened positions `positions` (indices into `b·l`, row-major), `[n, V]`:
    /// the head applied to those positions only.
    pub fn logits_at(&self, tokens: Tensor<2, Int>, positions: Tensor<1, Int>) -> Tensor<2> {
        let h = self.hidden(tokens);
        let [b, l, d] = h.dims();
        let picked = h.reshape([b * l, d]).select(0, positions); // [n, d]
        self.head(picked)
    }

    /// Logits at every position, `[b, l, V]` (what [`Self::logits_at`] avoids; kept to measure
    /// the difference and for callers that need every position).
    pub fn logits(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let h = self.hidden(tokens);
        let [b, l, d] = h.dims();
        let logits = self.head(h.reshape([b * l, d])); // [b·l, V]
        let v = logits.dims()[1];
        logits.reshape([b, l, v])
    }

    /// The tied head, `[n, d] -> [n, V]`: `h Eᵀ`.
    fn head(&self, h: Tensor<2>) -> Tensor<2> {
        h.matmul(self.embedding.weight.val().transpose())
    }

    /// Parameters of the backbone alone (the embedding and head are the task's).
    pub fn backbone_params(&self) -> usize {
        Module::num_params(&self.backbone)
    }

    /// Floats of recurrent state per sequence after `len` positions.
    pub fn state_size(&self, len: usize) -> usize {
        self.backbone.state_size(len)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use crate::mamba::MambaSpec;
    use crate::transformer::TransformerSpec;

    fn tokens(b: usize, l: usize, vocab: usize, device: &Device) -> Tensor<2, Int> {
        Tensor::<2>::random([b, l], Distribution::Uniform(0.0, vocab as f64), device).int()
    }

    #[test]
    fn logits_at_equal_the_full_logits_at_those_positions() {
        let device = Device::flex();
        let options = ModelOptions {
            d_model: Some(16),
            layers: Some(2),
            ..ModelOptions::default()
        };
        let model = token_config::<MambaSpec>(40, &options)
            .unwrap()
            .init(&device);
        let x = tokens(3, 12, 40, &device);
        let all = model.logits(x.clone()); // [3, 12, 40]
        assert_eq!(all.dims(), [3, 12, 40]);
        let picked = [0i64, 5, 13, 35];
        let at = model.logits_at(
            x,
            Tensor::from_data(TensorData::new(picked.to_vec(), [4]), &device),
        );
        let expected = all.reshape([36, 40]).select(
            0,
            Tensor::from_data(TensorData::new(picked.to_vec(), [4]), &device),
        );
        let diff = (at - expected).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn the_transformer_is_causal_with_rotary_positions_and_no_dropout() {
        let config = token_config::<TransformerSpec>(16, &ModelOptions::default()).unwrap();
        assert!(config.backbone.causal);
        assert_eq!(config.backbone.dropout, 0.0);
        assert_eq!(
            config.backbone.positions,
            crate::transformer::PositionKind::Rotary
        );
    }

    #[test]
    fn options_of_the_forecasting_adapter_are_not_token_options() {
        let accepted = token_options::<MambaSpec>();
        assert!(accepted.contains(&ModelOption::DState));
        for option in [
            ModelOption::PatchLen,
            ModelOption::Dropout,
            ModelOption::Causal,
            ModelOption::Params,
        ] {
            assert!(!accepted.contains(&option), "{option}");
        }
    }
}
