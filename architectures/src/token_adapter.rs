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
//! - The rest is initialised as the backbone's probing reference does ([`TokenRecipe`], chosen by
//!   [`Backbone::token_recipe`]): the recurrent backbones keep their own initialisers (PyTorch's
//!   defaults, as `MambaLMHeadModel` keeps them for its linear layers); the Transformer is
//!   Zoology's attention baseline: GPT-2's initialisation ([`TokenInit::Gpt2`]) and dropout 0.1
//!   on the embeddings and the attention weights. Measured in a PyTorch model of this adapter's
//!   Transformer at MQAR (L 128, K 8, width 64, batch 32): with PyTorch's default linear
//!   initialisation and no dropout it stays at 1/K through 11 000 steps, with GPT-2's
//!   initialisation alone through 10 000, with the dropout alone through 13 000; with both it
//!   leaves 1/K within 3 000 (README, token probes).
//! - The final norm is the backbone's own where it ends in one (Mamba's `norm_f`, Griffin's final
//!   RMSNorm, the pre-norm Transformer's final LayerNorm, post-norm blocks, which end normalised);
//!   the adapter adds a LayerNorm only after a backbone that does not (the LSTM).
//! - No positions of the adapter's own: the Transformer brings rotary positions (or learned ones,
//!   `--position-encoding learned`, as Zoology's attention baseline), the recurrent backbones need none.
//! - Logits are computed at the labelled positions only ([`TokenModel::logits_at`]): MQAR labels
//!   K of L positions, so projecting every position onto a vocabulary of 8 192 would spend most
//!   of a step on outputs no loss reads.

use burn::module::{Module, ModuleDisplay, ModuleMapper, Param};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use serde::{Deserialize, Serialize};

use crate::blocks::Dropout;
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
    ModelOption::PositionEncoding,
];

/// The options backbone `B` takes under the token adapter.
pub fn token_options<B: Backbone>() -> Vec<ModelOption> {
    B::OPTIONS
        .iter()
        .copied()
        .filter(|o| TOKEN_OPTIONS.contains(o))
        .collect()
}

/// The token-model configuration of backbone `B` over a vocabulary of `vocab` tokens, for
/// sequences of at most `max_len` tokens (the options have been checked against
/// [`token_options`]): the backbone's forecasting configuration with `--causal` set, which gives
/// the Transformer rotary positions unless `--position-encoding learned` (either table bounds the
/// length: [`SequenceModel::max_len`]), without the forecasting dropout (the Mamba paper's
/// probe models have none), then the recipe of the backbone's probing reference
/// ([`Backbone::token_recipe`]). It is configured against a patching of one token per patch, so
/// that a learned position table has `max_len` rows (Zoology's `max_position_embeddings` is the
/// sequence length); no option that reaches the patching otherwise is accepted here.
pub fn token_config<B: Backbone>(
    vocab: usize,
    max_len: usize,
    options: &ModelOptions,
) -> Result<TokenModelConfig<B::Config>, ConfigError> {
    let causal = ModelOptions {
        causal: true,
        dropout: Some(0.0),
        ..options.clone()
    };
    let mut tokens = Patching::new(max_len, 1, 1)
        .with_patch_len(1)
        .with_stride(1);
    let mut backbone = B::configure(&causal, &mut tokens)?;
    let recipe = B::token_recipe(&mut backbone);
    let config = TokenModelConfig {
        vocab,
        backbone,
        recipe,
    };
    config.validate()?;
    Ok(config)
}

/// What the token adapter does around a backbone beyond the embedding and the head: how the
/// backbone is initialised and the dropout on the embeddings. Each field is left out of a
/// serialized config at its default (configs written before it existed had the default, and keep
/// their run ids).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenRecipe {
    /// Initialisation of the backbone's linear layers (default: the backbone's own).
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub init: TokenInit,
    /// Dropout on the embeddings (Zoology's `embed_dropout`; default: none).
    #[serde(default, skip_serializing_if = "crate::is_default")]
    pub embedding_dropout: f64,
}

/// How a token model's backbone is initialised.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenInit {
    /// The backbone's own initialisers (burn's, which are PyTorch's defaults).
    #[default]
    Backbone,
    /// GPT-2's, as Zoology's `_init_weights` (HazyResearch/zoology `zoology/model.py`): every
    /// linear layer's weight `N(0, std²)` and bias 0, the layers that write into the residual
    /// stream (Zoology's `out_proj` and `fc2`) `N(0, residual_std²)` with
    /// `residual_std = std / √(2·layers)`.
    Gpt2 {
        /// Standard deviation of the weights (`initializer_range`, 0.02).
        std: f64,
        /// Field names of the linear layers writing into the residual stream.
        residual_outputs: Vec<String>,
        /// Their standard deviation.
        residual_std: f64,
    },
}

/// Hyperparameters of a [`TokenModel`]: the vocabulary, its backbone's, and the recipe around it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "C: BackboneConfig")]
pub struct TokenModelConfig<C> {
    /// Vocabulary size `V`.
    pub vocab: usize,
    /// The causal backbone; its width is the embedding width.
    pub backbone: C,
    /// Initialisation and embedding dropout, serialized beside the fields above.
    #[serde(flatten)]
    pub recipe: TokenRecipe,
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
        if !(0.0..1.0).contains(&self.recipe.embedding_dropout) {
            return Err(ConfigError::Invalid(format!(
                "embedding dropout must be in [0, 1) (got {})",
                self.recipe.embedding_dropout
            )));
        }
        if let TokenInit::Gpt2 {
            std, residual_std, ..
        } = self.recipe.init
            && !(std > 0.0 && residual_std > 0.0)
        {
            return Err(ConfigError::Invalid(format!(
                "GPT-2 initialisation needs positive standard deviations (got {std} and {residual_std})"
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
        let backbone = self.backbone.init(device);
        let backbone = match &self.recipe.init {
            TokenInit::Backbone => backbone,
            TokenInit::Gpt2 {
                std,
                residual_outputs,
                residual_std,
            } => backbone.map(&mut Gpt2Init {
                path: Vec::new(),
                std: *std,
                residual_outputs,
                residual_std: *residual_std,
            }),
        };
        TokenModel {
            embedding,
            embedding_dropout: (self.recipe.embedding_dropout > 0.0)
                .then(|| Dropout::new(self.recipe.embedding_dropout)),
            backbone,
            norm: (!self.backbone.ends_normalised()).then(|| LayerNormConfig::new(d).init(device)),
        }
    }
}

/// [`TokenInit::Gpt2`] over a built backbone: redraws the parameters of every burn `Linear`,
/// recognised by the path the mapper walks (`…, (layer field, Struct:…), (weight | bias,
/// Struct:Linear)`), and leaves every other parameter (norms, convolutions, recurrences) as
/// the backbone drew it.
struct Gpt2Init<'a> {
    /// `(field name, container type)` from the root to the parameter being mapped.
    path: Vec<(String, String)>,
    std: f64,
    residual_outputs: &'a [String],
    residual_std: f64,
}

impl ModuleMapper for Gpt2Init<'_> {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let [.., (layer, _), (field, container)] = self.path.as_slice() else {
            return param;
        };
        if container != "Struct:Linear" {
            return param;
        }
        let std = if self.residual_outputs.contains(layer) {
            self.residual_std
        } else {
            self.std
        };
        let is_bias = field == "bias";
        param.map(|value| {
            let fresh = if is_bias {
                value.zeros_like()
            } else {
                Tensor::random(
                    value.shape(),
                    Distribution::Normal(0.0, std),
                    &value.device(),
                )
            };
            if value.is_require_grad() {
                fresh.require_grad()
            } else {
                fresh
            }
        })
    }
}

/// A language model around a causal backbone: `[b, l]` tokens in, logits over `V` out.
#[derive(Module, Debug)]
pub struct TokenModel<M: Module> {
    /// `E: [V, d]`, also the head (tied).
    embedding: Embedding,
    /// Dropout on the embeddings, where the recipe has any (absent otherwise, so that the
    /// checkpoints of models without it keep their layout).
    embedding_dropout: Option<Dropout>,
    /// The causal sequence model.
    pub backbone: M,
    /// Final norm, for a backbone that does not end in one.
    norm: Option<LayerNorm>,
}

impl<M: Module + ModuleDisplay + SequenceModel> TokenModel<M> {
    /// Final hidden states, `[b, l] -> [b, l, d]`.
    pub fn hidden(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let mut x = self.embedding.forward(tokens); // [b, l, d]
        if let Some(dropout) = &self.embedding_dropout {
            x = dropout.forward(x);
        }
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
        let model = token_config::<MambaSpec>(40, 12, &options)
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
    fn the_transformer_is_zoologys_attention_baseline_with_rotary_positions() {
        let options = ModelOptions {
            layers: Some(2),
            ..ModelOptions::default()
        };
        let config = token_config::<TransformerSpec>(16, 64, &options).unwrap();
        assert!(config.backbone.causal);
        assert_eq!(config.backbone.dropout, 0.0);
        assert_eq!(config.backbone.attention_dropout, 0.1);
        assert_eq!(config.recipe.embedding_dropout, 0.1);
        assert_eq!(
            config.backbone.positions,
            crate::transformer::PositionKind::Rotary
        );
        assert_eq!(
            config.recipe.init,
            TokenInit::Gpt2 {
                std: 0.02,
                residual_outputs: vec!["out".into(), "mlp_out".into()],
                residual_std: 0.01,
            }
        );
    }

    /// Rotary's table is the causal maximum whatever the task (a rotary model runs at any length
    /// up to it); a learned table has one row per token of the longest sequence, as Zoology's
    /// `max_position_embeddings`, and the model refuses to run longer.
    #[test]
    fn learned_positions_cover_the_longest_sequence_given() {
        use crate::transformer::PositionKind;
        let device = Device::flex();
        let rotary = token_config::<TransformerSpec>(16, 48, &ModelOptions::default()).unwrap();
        assert_eq!(rotary.backbone.positions, PositionKind::Rotary);
        assert_eq!(rotary.backbone.max_len, 16_384);
        let options = ModelOptions {
            d_model: Some(16),
            position_encoding: Some(PositionKind::Learned),
            ..ModelOptions::default()
        };
        let config = token_config::<TransformerSpec>(16, 48, &options).unwrap();
        assert_eq!(config.backbone.positions, PositionKind::Learned);
        assert_eq!(config.backbone.max_len, 48);
        assert!(config.backbone.causal);
        let model = config.init(&device);
        assert_eq!(model.backbone.max_len(), Some(48));
        assert_eq!(model.logits(tokens(2, 48, 16, &device)).dims(), [2, 48, 16]);
    }

    #[test]
    fn recurrent_backbones_keep_their_own_initialisation_without_dropout() {
        let config = token_config::<MambaSpec>(16, 64, &ModelOptions::default()).unwrap();
        assert_eq!(config.recipe.init, TokenInit::Backbone);
        assert_eq!(config.recipe.embedding_dropout, 0.0);
    }

    /// Every float parameter of a module with its path (`blocks.0.qkv.weight`).
    #[derive(Default)]
    struct Params {
        path: Vec<String>,
        found: Vec<(String, Vec<f32>)>,
    }

    impl burn::module::ModuleVisitor for Params {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }

        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }

        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let values = param.val().into_data().try_into_vec::<f32>().unwrap();
            self.found.push((self.path.join("."), values));
        }
    }

    fn moments(values: &[f32]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var.sqrt())
    }

    /// GPT-2's initialisation redraws the linear layers only: weights at 0.02 (the attention
    /// output and the MLP's second layer at 0.02/√4 with 2 layers), biases 0, the norms as
    /// built (gain 1, shift 0), and the gradient still reaches every redrawn weight.
    #[test]
    fn gpt2_initialisation_redraws_the_linear_layers_only() {
        let device = Device::flex().autodiff();
        let options = ModelOptions {
            d_model: Some(64),
            layers: Some(2),
            heads: Some(1),
            ..ModelOptions::default()
        };
        let model = token_config::<TransformerSpec>(32, 64, &options)
            .unwrap()
            .init(&device);
        let mut params = Params::default();
        model.backbone.visit(&mut params);
        let mut linear_weights = 0;
        for (path, values) in &params.found {
            let (mean, std) = moments(values);
            let leaf = path.rsplit('.').nth(1).unwrap_or("");
            let field = path.rsplit('.').next().unwrap();
            match (leaf, field) {
                ("qkv" | "mlp_in", "weight") | ("out" | "mlp_out", "weight") => {
                    let expected = if matches!(leaf, "out" | "mlp_out") {
                        0.01
                    } else {
                        0.02
                    };
                    assert!(mean.abs() < 3.0 * expected / 50.0, "{path}: mean {mean}");
                    assert!((std / expected - 1.0).abs() < 0.06, "{path}: std {std}");
                    linear_weights += 1;
                }
                ("qkv" | "mlp_in" | "out" | "mlp_out", "bias") => {
                    assert!(values.iter().all(|&v| v == 0.0), "{path}");
                }
                (_, "gamma") => assert!(values.iter().all(|&v| v == 1.0), "{path}"),
                (_, "beta") => assert!(values.iter().all(|&v| v == 0.0), "{path}"),
                _ => {}
            }
        }
        assert_eq!(
            linear_weights,
            8,
            "{:?}",
            params.found.iter().map(|p| &p.0).collect::<Vec<_>>()
        );

        let x = tokens(2, 8, 32, &device);
        let loss = model.logits(x).powi_scalar(2).mean();
        let grads = loss.backward();
        struct Grads<'a>(&'a burn::tensor::Gradients, usize);
        impl burn::module::ModuleVisitor for Grads<'_> {
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                if param.val().grad(self.0).is_some() {
                    self.1 += 1;
                }
            }
        }
        let mut visitor = Grads(&grads, 0);
        model.backbone.visit(&mut visitor);
        assert_eq!(
            visitor.1,
            params.found.len(),
            "every backbone parameter gets a gradient"
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
