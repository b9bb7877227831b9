// SANA ControlNet (diffusers `SanaControlNetModel`), extended so it can also carry the SANA-Sprint features
// (guidance embedding, QK RMSNorm) that our own Sprint ControlNets use.
// Reference: https://github.com/huggingface/diffusers/blob/main/src/diffusers/models/controlnets/controlnet_sana.py
//            https://github.com/NVlabs/Sana/blob/main/diffusion/model/nets/sana_multi_scale_controlnet.py
//
// Structure: the transformer's front end (patch embed, time embed, caption projection + norm) and num_layers
// (default 7) copies of its first blocks, a zero-initialised `input_block` (Linear D -> D) on the embedded
// condition latent, and one zero-initialised `controlnet_blocks.{j}` (Linear D -> D) per block whose outputs,
// times the conditioning scale, are added to the main transformer's residual stream.
//
// Injection point (see docs/maths.md#control-injection), chosen by the checkpoint's config key "control_injection":
//   "after_block"  (diffusers, the default for configs without the key): control stream starts at
//                  patch_embed(x) + input_block(patch_embed(cond)); residual j is added after main block j+1.
//   "before_block" (NVlabs original): control stream starts at main block 0's output + input_block(...);
//                  residual j is added before main block j+1.
#pragma once

#include <torch/torch.h>

#include "sprint/transformer.h"

namespace sprint {

struct ControlNetConfig {
  TransformerConfig base;  // same keys as the transformer's config.json; num_layers = copied blocks
  ControlInjection injection = ControlInjection::AfterBlock;

  static ControlNetConfig from_json(const nlohmann::json& j, const std::string& source);
  static ControlNetConfig load(const std::string& path);  // config.json or a folder holding it
  nlohmann::json to_json() const;
  double parameter_estimate() const;  // weights this config describes, within a small factor
  // The ControlNet that belongs to a transformer: the same sizes and features, `num_layers` copied blocks.
  static ControlNetConfig for_transformer(const TransformerConfig& t, int num_layers = 7,
                                          ControlInjection injection = ControlInjection::BeforeBlock);
};

struct SanaControlNetModelImpl : torch::nn::Module {
  explicit SanaControlNetModelImpl(const ControlNetConfig& config);

  // diffusers semantics. x: (B, C, h, w) latent; cond_latent: (B, C, h, w) encoded condition (already times the
  // VAE scaling factor); timestep/guidance as the ControlNet expects them (see controlled_forward). Returns
  // num_layers residuals (B, N, D), each times `scale`.
  std::vector<torch::Tensor> forward(const torch::Tensor& x, const torch::Tensor& enc, const torch::Tensor& timestep,
                                     const torch::Tensor& guidance, const torch::Tensor& cond_latent, double scale,
                                     const torch::Tensor& enc_mask = {});

  // Runs the control stream from `start` tokens (B, N, D) (= the stream input without the condition term):
  // c_0 = start + input_block(patch_embed(cond_latent)); c_j = block_j(c_{j-1}); r_j = controlnet_blocks[j](c_j) * scale.
  std::vector<torch::Tensor> control_stream(const torch::Tensor& start, const torch::Tensor& cond_latent,
                                            const SanaConditioning& cond, double scale);

  // Copies the matching weights of a transformer (front end and its first num_layers blocks) into this
  // ControlNet and zeroes input_block and controlnet_blocks: the paper's initialisation, after which the
  // controlled model computes exactly what the transformer computes.
  void init_from_transformer(const SanaTransformer2DModelImpl& transformer);

  ControlNetConfig config;
  SanaFrontEnd front;
  torch::nn::Linear input_block{nullptr};
  torch::nn::ModuleList controlnet_blocks;
};
TORCH_MODULE(SanaControlNetModel);

SanaControlNetModel load_controlnet(const std::string& dir, const LoadOptions& options = {});

// The one check that a ControlNet can drive a transformer: the same hidden width, caption and latent channels, and
// fewer blocks than the transformer (its residuals join main blocks 1 .. num_layers). Throws sprint::Error naming
// both sides' values. controlled_forward, the pipeline's loader and the training student all call it.
void check_controlnet_fits(const TransformerConfig& controlnet, const TransformerConfig& transformer);

// The transformer's velocity with a ControlNet attached, in the ControlNet's injection order.
// timestep/guidance are the transformer's (Sprint: flow time s in [0, 1], guidance times guidance_embeds_scale).
// A Sana 1.0 ControlNet (no guidance embeds) attached to a Sprint transformer gets 1000 * timestep (its training
// range) and no guidance (experimental: such pairs were never trained together); otherwise it gets the same values
// as the transformer.
torch::Tensor controlled_forward(SanaTransformer2DModelImpl& transformer, SanaControlNetModelImpl& controlnet,
                                 const torch::Tensor& x, const torch::Tensor& enc, const torch::Tensor& timestep,
                                 const torch::Tensor& guidance, const torch::Tensor& enc_mask,
                                 const torch::Tensor& cond_latent, double scale);

}  // namespace sprint
