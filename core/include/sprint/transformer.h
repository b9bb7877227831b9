// SANA / SANA-Sprint diffusion transformer (diffusers `SanaTransformer2DModel`).
// Reference: https://github.com/huggingface/diffusers/blob/main/src/diffusers/models/transformers/sana_transformer.py
//
// Module and parameter names equal the diffusers checkpoint keys (`transformer_blocks.3.attn1.to_q.weight`), so a
// `transformer/diffusion_pytorch_model*.safetensors` binds with sprint::load_state_dict unchanged.
//
// Implemented: patch embed (no position embedding), AdaLN-single time embedding with or without the guidance
// embedding, caption projection + caption RMSNorm, linear ReLU self-attention (fp32 accumulation, ones-row
// normaliser, eps 1e-15), softmax cross-attention with key mask, QK RMSNorm across heads, GLUMBConv, final
// modulation, unpatchify, ControlNet residuals (after-block as diffusers, before-block as NVlabs).
// Missing: sin-cos position embeddings (no Sprint release uses them), PAG.
#pragma once

#include <torch/torch.h>

#include "sprint/config.h"
#include "sprint/loader.h"
#include "sprint/norm.h"  // RMSNorm

namespace sprint {

// 256-wide sinusoidal embedding, [cos, sin] order (diffusers Timesteps(256, flip_sin_to_cos=True, shift=0)).
torch::Tensor timestep_sinusoid(const torch::Tensor& t /* (B,) */, int64_t dim = 256);

// linear_1 -> SiLU -> linear_2 (diffusers TimestepEmbedding).
struct TimestepEmbeddingImpl : torch::nn::Module {
  TimestepEmbeddingImpl(int64_t in_dim, int64_t out_dim);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(TimestepEmbedding);

// Linear ReLU attention (attn1) and softmax cross-attention (attn2) share this parameter layout.
struct SanaAttentionImpl : torch::nn::Module {
  SanaAttentionImpl(int64_t query_dim, int64_t kv_dim, int64_t heads, int64_t head_dim, bool qkv_bias, bool qk_norm);
  // Linear self-attention. x: (B, N, D) -> (B, N, D).
  torch::Tensor linear_attention(const torch::Tensor& x);
  // Cross-attention. x: (B, N, D), enc: (B, L, D), bias: (B, 1, 1, L) additive or undefined.
  // `explicit_softmax` computes softmax(q k^T / sqrt(d) + bias) v with plain ops (forward-mode AD friendly).
  torch::Tensor cross_attention(const torch::Tensor& x, const torch::Tensor& enc, const torch::Tensor& bias,
                                bool explicit_softmax);
  int64_t heads, head_dim;
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr};
  RMSNorm norm_q{nullptr}, norm_k{nullptr};  // qk_norm only
  torch::nn::ModuleList to_out;                // [0] = Linear; [1] = Dropout in diffusers (no parameters)
};
TORCH_MODULE(SanaAttention);

// GLUMBConv without norm/residual as the transformer uses it; operates on tokens (B, N, C) of an h x w grid.
struct GLUMBConvImpl : torch::nn::Module {
  GLUMBConvImpl(int64_t in_channels, int64_t out_channels, int64_t hidden);
  torch::Tensor forward(const torch::Tensor& tokens, int64_t h, int64_t w);
  int64_t hidden;
  torch::nn::Conv2d conv_inverted{nullptr}, conv_depth{nullptr}, conv_point{nullptr};
};
TORCH_MODULE(GLUMBConv);

// Per-call conditioning shared by every block.
struct SanaConditioning {
  torch::Tensor temb6;              // (B, 6D) AdaLN-single modulation
  torch::Tensor embedded_timestep;  // (B, D)
  torch::Tensor encoder;            // (B, L, D) projected, normed caption
  torch::Tensor encoder_bias;       // (B, 1, 1, L) additive key mask, or undefined
  int64_t height = 0, width = 0;    // token grid
};

struct SanaTransformerBlockImpl : torch::nn::Module {
  SanaTransformerBlockImpl(const TransformerConfig& c);
  torch::Tensor forward(const torch::Tensor& x /* (B, N, D) */, const SanaConditioning& cond);
  double norm_eps;
  bool explicit_softmax = false;
  torch::Tensor scale_shift_table;  // (6, D)
  SanaAttention attn1{nullptr}, attn2{nullptr};
  GLUMBConv ff{nullptr};
};
TORCH_MODULE(SanaTransformerBlock);

// Time embedding: with guidance (Sprint) `timestep_embedder` + `guidance_embedder`; without (Sana 1.0 /
// ControlNet) `emb.timestep_embedder`. Both end in `linear` (D -> 6D).
struct SanaTimeEmbedImpl : torch::nn::Module {
  SanaTimeEmbedImpl(int64_t dim, bool with_guidance);
  // Returns {temb6 (B, 6D), embedded (B, D)}. guidance must be defined iff with_guidance.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& timestep, const torch::Tensor& guidance,
                                                  torch::Dtype dtype);
  bool with_guidance;
  TimestepEmbedding timestep_embedder{nullptr}, guidance_embedder{nullptr};
  torch::nn::Linear linear{nullptr};
};
TORCH_MODULE(SanaTimeEmbed);

enum class ControlInjection {
  AfterBlock,   // diffusers: x = block_i(x); x += r_{i-1} for 1 <= i <= len(r)
  BeforeBlock,  // NVlabs:    x = block_i(x + r_{i-1}) for 1 <= i <= len(r)
};

// The part SanaTransformer2DModel and SanaControlNetModel share: patch embed, time embedding, caption projection +
// norm and the transformer blocks, registered into the owning module under the diffusers names.
struct SanaFrontEnd {
  void build(torch::nn::Module& owner, const TransformerConfig& c);

  torch::Tensor embed(const torch::Tensor& x /* (B, C, H, W) */);  // -> (B, N, D)
  // enc: (B, L, caption_channels); timestep: (B,) or scalar; guidance: (B,) or scalar, already times
  // guidance_embeds_scale (undefined without guidance embeds); enc_mask: (B, L) 0/1 or undefined.
  SanaConditioning condition(const torch::Tensor& enc, const torch::Tensor& timestep, const torch::Tensor& guidance,
                             const torch::Tensor& enc_mask, int64_t height, int64_t width, torch::Dtype dtype);
  void set_explicit_attention(bool on);

  TransformerConfig config;
  torch::nn::Conv2d patch_embed_proj{nullptr};                              // patch_embed.proj
  SanaTimeEmbed time_embed{nullptr};
  torch::nn::Linear caption_linear_1{nullptr}, caption_linear_2{nullptr};  // caption_projection.linear_{1,2}
  RMSNorm caption_norm{nullptr};
  torch::nn::ModuleList transformer_blocks;
  std::vector<SanaTransformerBlock> blocks;  // typed views of transformer_blocks
};

struct SanaTransformer2DModelImpl : torch::nn::Module {
  explicit SanaTransformer2DModelImpl(const TransformerConfig& config);

  // x: (B, C, H, W) latent; enc: (B, L, caption_channels); timestep: (B,) flow time (Sprint: s in [0, 1]);
  // guidance: (B,) already multiplied by guidance_embeds_scale (undefined for models without guidance embeds);
  // enc_mask: (B, L) 0/1 or undefined. Returns (B, out_channels, H, W).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& enc, const torch::Tensor& timestep,
                        const torch::Tensor& guidance = {}, const torch::Tensor& enc_mask = {},
                        const std::vector<torch::Tensor>& control_residuals = {},
                        ControlInjection injection = ControlInjection::AfterBlock);

  // The pieces of forward(), for ControlNet and the LADD discriminator: front.embed, front.condition, run_block
  // for each of front.blocks, finish.
  torch::Tensor run_block(size_t i, const torch::Tensor& tokens, const SanaConditioning& c) { return front.blocks[i]->forward(tokens, c); }
  torch::Tensor finish(const torch::Tensor& tokens, const SanaConditioning& cond);  // -> (B, C, H, W)
  size_t num_blocks() const { return front.blocks.size(); }

  // Softmax cross-attention through plain ops instead of the fused kernel (needed for forward-mode AD).
  void set_explicit_attention(bool on) { front.set_explicit_attention(on); }

  TransformerConfig config;
  SanaFrontEnd front;
  torch::Tensor scale_shift_table;  // (2, D)
  torch::nn::Linear proj_out{nullptr};
};
TORCH_MODULE(SanaTransformer2DModel);

// Loads `dir/config.json` and `dir/diffusion_pytorch_model*.safetensors` (single file or sharded) in diffusers
// layout; dtype/device from `options` (options.strict etc. apply). Errors name the folder, file and tensor.
SanaTransformer2DModel load_transformer(const std::string& dir, const LoadOptions& options = {});

}  // namespace sprint
