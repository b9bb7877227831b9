// DC-AE autoencoder (diffusers `AutoencoderDC`), the SANA / SANA-Sprint VAE.
// Reference: diffusers models/autoencoders/autoencoder_dc.py (+ SanaMultiscaleLinearAttention in
// attention_processor.py, GLUMBConv in transformers/sana_transformer.py); docs/maths.md#dc-ae.
//
// Module and parameter names equal the diffusers checkpoint keys (`encoder.down_blocks.3.1.attn.to_q.weight`,
// `decoder.up_blocks.2.0.conv.weight`, `decoder.norm_out.bias`), so `vae/diffusion_pytorch_model.safetensors` binds
// with sprint::load_state_dict unchanged.
//
// Implemented: ResBlock (rms_norm), EfficientViTBlock (multi-scale ReLU linear attention with the quadratic path for
// H*W <= attention_head_dim, scores in fp32; GLUMBConv + rms_norm + residual), DCDownBlock2d ("Conv" and
// "pixel_unshuffle") and DCUpBlock2d ("interpolate" nearest and "pixel_shuffle") with their shortcuts, encoder
// out-shortcut, decoder in-shortcut, per-stage decoder activations.
// Missing (rejected at config time): batch_norm / layer_norm stages, stages with 0 layers, tiling.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sprint/fast_conv.h"
#include "sprint/loader.h"
#include "sprint/transformer.h"  // sprint::RMSNorm

namespace sprint {

// diffusers AutoencoderDC config. Defaults are the class defaults; the per-stage string options (block types,
// decoder norm types and act fns) accept a single string or a list and are stored expanded to one per stage.
struct VaeConfig {
  int in_channels = 3;
  int latent_channels = 32;
  int attention_head_dim = 32;
  std::vector<std::string> encoder_block_types;  // "ResBlock" | "EfficientViTBlock", one per stage
  std::vector<std::string> decoder_block_types;
  std::vector<int> encoder_block_out_channels{128, 256, 512, 512, 1024, 1024};
  std::vector<int> decoder_block_out_channels{128, 256, 512, 512, 1024, 1024};
  std::vector<int> encoder_layers_per_block{2, 2, 2, 3, 3, 3};
  std::vector<int> decoder_layers_per_block{3, 3, 3, 3, 3, 3};
  std::vector<std::vector<int>> encoder_qkv_multiscales{{}, {}, {}, {5}, {5}, {5}};
  std::vector<std::vector<int>> decoder_qkv_multiscales{{}, {}, {}, {5}, {5}, {5}};
  std::string upsample_block_type = "pixel_shuffle";      // or "interpolate" (nearest)
  std::string downsample_block_type = "pixel_unshuffle";  // or "Conv" (strided conv)
  std::vector<std::string> decoder_norm_types;            // only "rms_norm"
  std::vector<std::string> decoder_act_fns;               // "silu"/"swish", "relu", "gelu", "mish"
  bool encoder_out_shortcut = true;
  bool decoder_in_shortcut = true;
  std::string decoder_conv_act_fn = "relu";
  double scaling_factor = 1.0;

  // 2^(stages - 1): image side / latent side.
  int spatial_compression() const { return 1 << (static_cast<int>(encoder_block_out_channels.size()) - 1); }

  static VaeConfig from_json(const nlohmann::json& j, const std::string& source);
  nlohmann::json to_json() const;  // diffusers AutoencoderDC config.json, loadable by diffusers
  static VaeConfig load(const std::string& path);  // a config.json file or a folder holding one
  void validate(const std::string& source) const;  // throws naming the key

  // mit-han-lab/dc-ae-f32c32-sana-1.0/1.1-diffusers (the SANA / SANA-Sprint VAE).
  static VaeConfig dc_ae_f32c32();
};

enum class Activation { SiLU, ReLU, GELU, Mish };

// RMSNorm over the channel dimension of an NCHW tensor, plus `residual` when given: diffusers moves C last,
// normalises, moves back; we reduce over dim 1 in place of the two permutes (same maths, no copies). A
// channels-last float32 CPU tensor in inference takes one fused pass per pixel.
torch::Tensor rms_norm_channels(const torch::Tensor& x, const RMSNorm& norm, const torch::Tensor& residual = {});

// conv1 (3x3, bias) -> act -> conv2 (3x3, no bias) -> RMSNorm over channels -> + x.
struct DCResBlockImpl : torch::nn::Module {
  DCResBlockImpl(int64_t channels, Activation act);
  torch::Tensor forward(const torch::Tensor& x);
  Activation act;
  FastConv2d conv1{nullptr}, conv2{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(DCResBlock);

// One `to_qkv_multiscale.{k}` entry: depthwise kxk conv then grouped 1x1 conv (3 * heads groups), both bias-free.
struct DCMultiscaleProjectionImpl : torch::nn::Module {
  DCMultiscaleProjectionImpl(int64_t inner, int64_t heads, int64_t kernel);
  torch::Tensor forward(const torch::Tensor& qkv);
  torch::nn::Conv2d proj_in{nullptr}, proj_out{nullptr};
};
TORCH_MODULE(DCMultiscaleProjection);

// SanaMultiscaleLinearAttention with rms_norm and residual, as EfficientViTBlock builds it.
struct DCMultiscaleAttentionImpl : torch::nn::Module {
  DCMultiscaleAttentionImpl(int64_t channels, int64_t head_dim, const std::vector<int>& kernel_sizes);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t channels, head_dim;
  torch::nn::Linear to_q{nullptr}, to_k{nullptr}, to_v{nullptr}, to_out{nullptr};
  torch::nn::ModuleList to_qkv_multiscale;
  std::vector<DCMultiscaleProjection> scales;  // typed views of to_qkv_multiscale
  RMSNorm norm_out{nullptr};
};
TORCH_MODULE(DCMultiscaleAttention);

// GLUMBConv(c, c, expand 4, rms_norm, residual) on NCHW (the transformer's sprint::GLUMBConv works on tokens and
// has no norm).
struct DCGLUMBConvImpl : torch::nn::Module {
  explicit DCGLUMBConvImpl(int64_t channels);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t hidden;
  torch::nn::Conv2d conv_inverted{nullptr}, conv_depth{nullptr}, conv_point{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(DCGLUMBConv);

struct EfficientViTBlockImpl : torch::nn::Module {
  EfficientViTBlockImpl(int64_t channels, int64_t head_dim, const std::vector<int>& kernel_sizes);
  torch::Tensor forward(const torch::Tensor& x) { return conv_out(attn(x)); }
  DCMultiscaleAttention attn{nullptr};
  DCGLUMBConv conv_out{nullptr};
};
TORCH_MODULE(EfficientViTBlock);

// 2x downsampling: strided 3x3 conv ("Conv") or 3x3 conv + pixel_unshuffle; shortcut = pixel_unshuffle then mean
// over consecutive channel groups.
struct DCDownBlock2dImpl : torch::nn::Module {
  DCDownBlock2dImpl(int64_t in_channels, int64_t out_channels, bool pixel_unshuffle, bool shortcut);
  torch::Tensor forward(const torch::Tensor& x);
  bool pixel_unshuffle, shortcut;
  int64_t group_size;
  FastConv2d conv{nullptr};

 private:
  DerivedWeight fast_filter_;  // im2col_filter(conv->weight) for the CPU fast path (conv3x3_stride2)
};
TORCH_MODULE(DCDownBlock2d);

// 2x upsampling: nearest + 3x3 conv ("interpolate") or 3x3 conv + pixel_shuffle; shortcut = repeat_interleave of
// channels then pixel_shuffle.
struct DCUpBlock2dImpl : torch::nn::Module {
  DCUpBlock2dImpl(int64_t in_channels, int64_t out_channels, bool interpolate, bool shortcut);
  torch::Tensor forward(const torch::Tensor& x);
  bool interpolate, shortcut;
  int64_t repeats;
  FastConv2d conv{nullptr};
};
TORCH_MODULE(DCUpBlock2d);

struct DCEncoderImpl : torch::nn::Module {
  explicit DCEncoderImpl(const VaeConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  bool out_shortcut;
  int64_t out_group;  // channels averaged per latent channel by the out-shortcut
  FastConv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down_blocks;  // each a Sequential: blocks, then DCDownBlock2d (not after the last stage)
  std::vector<torch::nn::Sequential> stages;
};
TORCH_MODULE(DCEncoder);

struct DCDecoderImpl : torch::nn::Module {
  explicit DCDecoderImpl(const VaeConfig& c);
  torch::Tensor forward(const torch::Tensor& z);
  bool in_shortcut;
  int64_t in_repeats;
  Activation conv_act;
  FastConv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList up_blocks;  // each a Sequential: DCUpBlock2d (not for the last stage), then blocks; run last to first
  std::vector<torch::nn::Sequential> stages;
  RMSNorm norm_out{nullptr};
};
TORCH_MODULE(DCDecoder);

struct AutoencoderDCImpl : torch::nn::Module {
  explicit AutoencoderDCImpl(const VaeConfig& config);
  // x: (B, in_channels, H, W) in [-1, 1], H and W multiples of spatial_compression(). Returns the raw latent
  // (B, latent_channels, H/f, W/f), not multiplied by scaling_factor. Input is cast to the model's dtype/device.
  torch::Tensor encode(const torch::Tensor& x);
  // z: raw latent (already divided by scaling_factor). Returns (B, in_channels, H*f, W*f), nominally in [-1, 1].
  torch::Tensor decode(const torch::Tensor& z);
  // On (default): on the CPU in float32 inference the 3x3 convolutions run by Winograd F(4x4, 3x3) and the
  // activations stay channels-last between layers (sprint/fast_conv.h); the result equals torch's convolution up
  // to float32 rounding. Off: torch's convolutions on NCHW tensors, the arithmetic diffusers runs. CUDA and
  // training (autograd) always take torch's convolutions.
  void set_fast_cpu(bool on);
  bool fast_cpu() const { return fast_cpu_; }
  VaeConfig config;
  DCEncoder encoder{nullptr};
  DCDecoder decoder{nullptr};

 private:
  torch::Tensor prepare(const torch::Tensor& x, const torch::Tensor& like) const;
  bool fast_cpu_ = true;
};
TORCH_MODULE(AutoencoderDC);

// Loads `dir/config.json` and `dir/diffusion_pytorch_model*.safetensors` in diffusers layout; dtype/device from
// `options`. Errors name the folder, file and tensor.
AutoencoderDC load_vae(const std::string& dir, const LoadOptions& options = {});

}  // namespace sprint
