//! Analytic FLOP counts, one formula per architecture (each documented beside its config:
//! `forward_flops`).
//!
//! Convention (Kaplan et al. 2020, Hoffmann et al. 2022): a multiply-add is 2 FLOPs; the count
//! covers the matrix products, the attention products and the recurrent scans, and leaves out
//! element-wise work (normalisation, activations, dropout, residual adds, biases), which is small
//! next to them and backend-dependent. A training step costs about 3× the forward (the backward
//! is ~2×), so [`train_flops`] is `3 · forward · windows seen`. Validation and test passes are
//! not training compute and are not counted.

/// Training FLOPs: `3 · forward_per_window · windows_per_epoch · epochs`.
pub fn train_flops(forward_per_window: u64, windows_per_epoch: usize, epochs: usize) -> f64 {
    3.0 * forward_per_window as f64 * windows_per_epoch as f64 * epochs as f64
}

#[cfg(test)]
mod tests {
    //! Each formula against a count done by hand on a tiny config.

    use crate::forecast_adapter::{BackboneConfig, PatchForecasterConfig, Patching};
    use crate::gated_deltanet::GatedDeltaNetConfig;
    use crate::griffin::{GriffinConfig, TemporalKind};
    use crate::linear::{LinearForecasterConfig, LinearKind};
    use crate::mamba::MambaConfig;
    use crate::mamba2::Mamba2Config;
    use crate::transformer::TransformerConfig;

    #[test]
    fn linear_family() {
        // L = 10, H = 5, c = 3: one map 2·10·5 per channel.
        let linear = LinearForecasterConfig::new(LinearKind::Linear, 10, 5, 3);
        assert_eq!(linear.forward_flops(), 300);
        let dlinear = LinearForecasterConfig::new(LinearKind::DLinear, 10, 5, 3);
        assert_eq!(dlinear.forward_flops(), 600);
    }

    #[test]
    fn transformer() {
        // d = 4, d_ff = 8, 1 layer, 3 tokens, bidirectional:
        // qkv 2·3·4·12 = 288, out 2·3·4·4 = 96, MLP 2·2·3·4·8 = 384, attention 2·2·4·9 = 144.
        let config = TransformerConfig::new()
            .with_d_model(4)
            .with_n_layers(1)
            .with_n_heads(2)
            .with_d_ff(8)
            .with_causal(false);
        assert_eq!(config.forward_flops(3), 288 + 96 + 384 + 144);
        // Causal: 6 visible pairs instead of 9 -> attention 96; two layers double it all.
        let causal = config.with_causal(true).with_n_layers(2);
        assert_eq!(causal.forward_flops(3), 2 * (288 + 96 + 384 + 96));
    }

    #[test]
    fn mamba() {
        // d = 4, expand 2 (i = 8), n = 2, r = 1, k = 4, one layer, 5 tokens. Per token:
        // in 2·4·16 = 128, x 2·8·5 = 80, dt 2·1·8 = 16, out 2·8·4 = 64, conv 2·4·8 = 64,
        // scan 8·8·2 = 128: 480.
        let config = MambaConfig::new()
            .with_d_model(4)
            .with_n_layers(1)
            .with_d_state(2)
            .with_dt_rank(Some(1));
        assert_eq!(config.forward_flops(5), 5 * 480);
    }

    #[test]
    fn mamba2() {
        // d = 4, expand 2 (i = 8), head_dim 4 (h = 2), g = 1, n = 2, k = 2, chunk 3, one layer,
        // 3 tokens. Per token: in 2·4·(16 + 4 + 2) = 176, out 2·8·4 = 64, conv 2·2·12 = 48,
        // C Bᵀ 2·3·2 = 12, per head 2·3·4 + 4·4·2 = 56 (112): 412.
        let config = Mamba2Config::new()
            .with_d_model(4)
            .with_n_layers(1)
            .with_head_dim(4)
            .with_d_state(2)
            .with_d_conv(2)
            .with_chunk_size(3);
        assert_eq!(config.forward_flops(3), 3 * 412);
    }

    #[test]
    fn gated_deltanet() {
        // d = 4, 1 head, dk = 2, dv = 4, conv 2, MLP width 256 (⌈10 / 256⌉ · 256), chunk 2, one
        // layer, 2 tokens. Per token: q, k, v 2·4·8 = 64, a and b 2·4·2 = 16, gate 2·4·4 = 32,
        // out 2·4·4 = 32, conv 2·2·8 = 32, MLP 2·4·512 + 2·256·4 = 6144; the rule
        // 16 + 16 + 8 + 16 + 48 + 2 (inverting 1×1 blocks into 2×2) = 106: 6426.
        let config = GatedDeltaNetConfig::new()
            .with_d_model(4)
            .with_n_layers(1)
            .with_n_heads(1)
            .with_head_dim(2)
            .with_conv_size(2)
            .with_chunk_size(2);
        assert_eq!(config.mlp_width(), 256);
        assert_eq!(config.forward_flops(2), 2 * 6426);
    }

    #[test]
    fn griffin() {
        // d = 8, c = 8, 2 heads (e = 4, gate blocks 4 wide), m = 24, k = 4, window 1, 3 tokens.
        // MLP per token 2·8·48 + 2·24·8 = 1152.
        // Recurrent per token: 2·8·16 + 2·4·8 + 2·2·8·4 + 2·8 + 2·8·8 = 256 + 64 + 128 + 16 + 128.
        // Attention per token 2·64 + 2·8·8 + 2·64 = 384; pairs with window 1: 1 + 2 + 2 = 5,
        // 2·2·8·5 = 160.
        let base = GriffinConfig::new()
            .with_d_model(8)
            .with_n_heads(2)
            .with_window(1)
            .with_n_layers(2);
        let mlp = 3 * 1152;
        let recurrent = 3 * (256 + 64 + 128 + 16 + 128);
        let attention = 3 * 384 + 160;
        let hawk = base.clone().with_pattern(vec![TemporalKind::Recurrent]);
        assert_eq!(hawk.forward_flops(3), 2 * (mlp + recurrent));
        let attention_only = base
            .with_pattern(vec![TemporalKind::Attention])
            .with_n_layers(1);
        assert_eq!(attention_only.forward_flops(3), mlp + attention);
    }

    #[test]
    fn patch_adapter_adds_embedding_and_head_per_channel() {
        // L = 16, patch 8, stride 8 (+ end padding): n = 3 tokens; d = 4; H = 2; c = 2.
        let backbone = TransformerConfig::new()
            .with_d_model(4)
            .with_n_layers(1)
            .with_n_heads(2)
            .with_d_ff(8)
            .with_causal(false);
        let per_channel_backbone = backbone.forward_flops(3);
        let config = PatchForecasterConfig {
            patching: Patching::new(16, 2, 2).with_patch_len(8).with_stride(8),
            backbone,
        };
        assert_eq!(config.patching.n_patches(), 3);
        // embedding 2·3·8·4 = 192, head 2·3·4·2 = 48.
        assert_eq!(
            config.forward_flops(),
            2 * (192 + per_channel_backbone + 48)
        );
    }
}
