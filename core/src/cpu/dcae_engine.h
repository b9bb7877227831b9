// Private to core (core/src/cpu/): the DC-AE's CPU inference engine. AutoencoderDCImpl::prepare_for_inference
// builds one when the model is set up on the CPU in float32 with VaeInferenceOptions::fast_cpu (the single decision
// point, docs/architecture.md#cpu-engine); encode and decode then run it instead of the mirror (sprint/vae.h).
//
// The engine computes what the mirror computes, from the mirror's own modules and parameters (nothing is copied:
// weight updates and load_state_dict are seen), as a plan of steps built once: activations are channels-last
// float32 between steps, so oneDNN's 1x1 and depthwise convolutions and the Winograd path run without reorders, and
// a block's pieces are fused where that saves passes over memory (docs/performance.md#dc-ae-cpu-engine):
//   - 3x3 convolutions by Winograd F(4x4)/F(6x6) (fast_conv.h) where their shape allows;
//   - ResBlock: SiLU in conv1's output transform; conv2, the RMSNorm over channels and the residual add as one
//     output transform;
//   - RMSNorm over channels (+ residual) as one pass per pixel;
//   - multiscale linear attention reading q, k and v where they lie in the channels-last qkv tensor;
//   - down blocks ("Conv"): the strided convolution as im2col GEMMs starting from the bias plus the shortcut;
//   - up blocks ("interpolate"): the nearest-upsampled tiles gathered straight from the input and the shortcut added
//     in the output transform.
// The result equals the mirror's up to float32 rounding (tests/unit/test_fast_conv.cpp per block,
// tests/parity/test_vae_parity.cpp end to end against diffusers). No autograd: AutoencoderDCImpl refuses engine
// calls that would need gradients, and train() drops the engine.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <vector>

#include "sprint/norm.h"
#include "sprint/vae.h"

namespace sprint::cpu {

// One step of the plan: a channels-last float32 CPU activation in, one out.
using Step = std::function<torch::Tensor(const torch::Tensor&)>;

class DcaeEngine {
 public:
  // Walks the model's modules once and builds the encoder's and the decoder's plans. The model must outlive the
  // engine (AutoencoderDCImpl owns it).
  explicit DcaeEngine(AutoencoderDCImpl& model);
  // x, z: float32 CPU (B, C, H, W), any memory format, already checked by AutoencoderDCImpl. Contiguous NCHW out.
  torch::Tensor encode(const torch::Tensor& x) const;
  torch::Tensor decode(const torch::Tensor& z) const;

 private:
  std::vector<Step> encoder_, decoder_;
};

// The steps of single blocks, as the plans use them (exposed for tests/unit/test_fast_conv.cpp). Each holds the
// block and reads its parameters at every call.
Step res_block_step(const DCResBlock& block);
Step efficientvit_block_step(const EfficientViTBlock& block);
Step down_block_step(const DCDownBlock2d& block);
Step up_block_step(const DCUpBlock2d& block);

// rms_norm_channels (sprint/vae.h) in one pass per pixel over channels-last float32 CPU tensors: x (B, C, H, W),
// residual undefined or of x's shape; the norm must have a weight. The result is channels-last.
torch::Tensor rms_norm_channels_last(const torch::Tensor& x, const RMSNormImpl& norm,
                                     const torch::Tensor& residual = {});

}  // namespace sprint::cpu
