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
//
// This file and vae.cpp are the mirror: diffusers' arithmetic in torch operations on NCHW tensors, what training
// (autograd) and every device run. On the CPU in float32 inference, AutoencoderDCImpl::prepare_for_inference hands
// encode and decode to the CPU engine instead (core/src/cpu/dcae_engine.h: Winograd convolutions, channels-last
// activations, fused passes), which reads these modules' parameters and gives the same result up to float32
// rounding (docs/architecture.md#cpu-engine, docs/performance.md#dc-ae-cpu-engine).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sprint/loader.h"
#include "sprint/norm.h"

namespace sprint {

namespace cpu {
class DcaeEngine;  // core/src/cpu/dcae_engine.h (private to core)
}

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
  double parameter_estimate() const;               // weights this config describes, within a small factor

  // mit-han-lab/dc-ae-f32c32-sana-1.0/1.1-diffusers (the SANA / SANA-Sprint VAE).
  static VaeConfig dc_ae_f32c32();
};

enum class Activation { SiLU, ReLU, GELU, Mish };

// The activation function `a` applied to x (torch's silu, relu, gelu, mish).
torch::Tensor activate(Activation a, const torch::Tensor& x);

// RMSNorm over the channel dimension of an NCHW tensor, plus `residual` when given: diffusers moves C last,
// normalises, moves back; we reduce over dim 1 in place of the two permutes (same maths, no copies).
torch::Tensor rms_norm_channels(const torch::Tensor& x, const RMSNorm& norm, const torch::Tensor& residual = {});

// conv1 (3x3, bias) -> act -> conv2 (3x3, no bias) -> RMSNorm over channels -> + x.
struct DCResBlockImpl : torch::nn::Module {
  DCResBlockImpl(int64_t channels, Activation act);
  torch::Tensor forward(const torch::Tensor& x);
  Activation act;
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
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

// SanaMultiscaleLinearAttention with rms_norm and residual, as EfficientViTBlock builds it (docs/maths.md#dc-ae-attention).
struct DCMultiscaleAttentionImpl : torch::nn::Module {
  static constexpr double kEps = 1e-15;  // SanaMultiscaleLinearAttention eps

  DCMultiscaleAttentionImpl(int64_t channels, int64_t head_dim, const std::vector<int>& kernel_sizes);
  torch::Tensor forward(const torch::Tensor& x);
  // Steps 1-3: [q | k | v] of x and of every multiscale projection, concatenated: (B, groups * 3 * head_dim, H, W).
  torch::Tensor multiscale_qkv(const torch::Tensor& x);
  // Step 4: every group's attention over the H * W pixels of `all` (multiscale_qkv's result): the linear form in
  // fp32, as diffusers upcasts it, or the quadratic one when H * W <= head_dim. (B, groups, head_dim, H * W) in
  // all's dtype.
  torch::Tensor attend(const torch::Tensor& all);

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
  // conv_inverted -> SiLU -> conv_depth -> a * SiLU(gate) -> conv_point: everything before the norm and residual.
  torch::Tensor gated_convs(const torch::Tensor& x);
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
// over consecutive channel groups (docs/maths.md#dc-ae-resampling).
struct DCDownBlock2dImpl : torch::nn::Module {
  DCDownBlock2dImpl(int64_t in_channels, int64_t out_channels, bool pixel_unshuffle, bool shortcut);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor shortcut_of(const torch::Tensor& x) const;  // the shortcut term added to the main path
  bool pixel_unshuffle, shortcut;
  int64_t group_size;
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(DCDownBlock2d);

// 2x upsampling: nearest + 3x3 conv ("interpolate") or 3x3 conv + pixel_shuffle; shortcut = repeat_interleave of
// channels then pixel_shuffle.
struct DCUpBlock2dImpl : torch::nn::Module {
  DCUpBlock2dImpl(int64_t in_channels, int64_t out_channels, bool interpolate, bool shortcut);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor shortcut_of(const torch::Tensor& x) const;  // the shortcut term added to the main path
  bool interpolate, shortcut;
  int64_t repeats;
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(DCUpBlock2d);

struct DCEncoderImpl : torch::nn::Module {
  explicit DCEncoderImpl(const VaeConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor out_shortcut_of(const torch::Tensor& h) const;  // the mean over groups of out_group channels
  bool out_shortcut;
  int64_t out_group;  // channels averaged per latent channel by the out-shortcut
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down_blocks;  // each a Sequential: blocks, then DCDownBlock2d (not after the last stage)
  std::vector<torch::nn::Sequential> stages;
};
TORCH_MODULE(DCEncoder);

struct DCDecoderImpl : torch::nn::Module {
  explicit DCDecoderImpl(const VaeConfig& c);
  torch::Tensor forward(const torch::Tensor& z);
  torch::Tensor in_shortcut_of(const torch::Tensor& z) const;  // z's channels, each repeated in_repeats times
  bool in_shortcut;
  int64_t in_repeats;
  Activation conv_act;
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList up_blocks;  // each a Sequential: DCUpBlock2d (not for the last stage), then blocks; run last to first
  std::vector<torch::nn::Sequential> stages;
  RMSNorm norm_out{nullptr};
};
TORCH_MODULE(DCDecoder);

// How AutoencoderDCImpl::prepare_for_inference sets the model up.
struct VaeInferenceOptions {
  // true (default): on the CPU in float32, encode and decode run the CPU engine (Winograd 3x3 convolutions,
  // channels-last activations, fused passes; docs/performance.md#dc-ae-cpu-engine), whose result equals the
  // mirror's up to float32 rounding. false: the mirror, torch's NCHW operations as diffusers runs them
  // (PipelineOptions::fast_cpu_vae, sprint-bench --no-winograd). No effect on other devices and dtypes.
  bool fast_cpu = true;
};

struct AutoencoderDCImpl : torch::nn::Module {
  explicit AutoencoderDCImpl(const VaeConfig& config);
  // x: (B, in_channels, H, W) in [-1, 1], H and W multiples of spatial_compression(). Returns the raw latent
  // (B, latent_channels, H/f, W/f), not multiplied by scaling_factor. Input is cast to the model's dtype/device.
  torch::Tensor encode(const torch::Tensor& x);
  // z: raw latent (already divided by scaling_factor). Returns (B, in_channels, H*f, W*f), nominally in [-1, 1].
  torch::Tensor decode(const torch::Tensor& z);

  // Sets the model up for inference: moves it to `device` and `dtype`, switches it to eval mode and makes the one
  // choice of how encode and decode run (docs/architecture.md#cpu-engine): the CPU engine when `device` is the CPU,
  // `dtype` float32 and options.fast_cpu, the mirror otherwise. Until then (a freshly built or loaded model, or
  // one in training) they run the mirror. The engine computes no gradients: train() returns the model to the
  // mirror, and an engine call that autograd would record is refused (sprint::Error). Call it again after moving
  // the model.
  void prepare_for_inference(torch::Device device, torch::Dtype dtype, const VaeInferenceOptions& options = {});
  bool uses_cpu_engine() const { return engine_ != nullptr; }
  // torch::nn::Module::train; train(true) also drops the CPU engine (training runs the mirror).
  void train(bool on = true) override;

  VaeConfig config;
  DCEncoder encoder{nullptr};
  DCDecoder decoder{nullptr};

 private:
  torch::Tensor prepare(const torch::Tensor& x, const torch::Tensor& like) const;
  void check_engine_call(const torch::Tensor& x) const;
  std::shared_ptr<cpu::DcaeEngine> engine_;  // set by prepare_for_inference; null: the mirror
};
TORCH_MODULE(AutoencoderDC);

// Loads `dir/config.json` and `dir/diffusion_pytorch_model*.safetensors` in diffusers layout; dtype/device from
// `options`; eval mode, running the mirror (prepare_for_inference chooses the CPU engine). Errors name the folder,
// file and tensor.
AutoencoderDC load_vae(const std::string& dir, const LoadOptions& options = {});

}  // namespace sprint
