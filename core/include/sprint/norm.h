// RMSNorm as diffusers defines it, shared by the SANA transformer and the DC-AE (docs/maths.md#rmsnorm). Gemma-2's
// offset form is GemmaRMSNorm in text_encoder.h.
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace sprint {

// y = x * rsqrt(mean(x^2) + eps) * weight (+ bias) over the last dimension, statistics in fp32 (diffusers RMSNorm).
// Keys: weight (when affine), bias (when affine and bias).
struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps, bool affine = true, bool bias = false);
  torch::Tensor forward(const torch::Tensor& x);
  double eps;
  torch::Tensor weight, bias;  // undefined when absent
};
TORCH_MODULE(RMSNorm);

}  // namespace sprint
