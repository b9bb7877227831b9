// Internal: hand-written CPU kernels shared by fast_conv.cpp and vae.cpp (float32, channels-last, inference).
#pragma once

#include <torch/torch.h>

#include <cstdint>

namespace sprint {

// Rows [begin, end) of channels-last float32 data (rows of C values): y = x * rsqrt(mean(x^2) + eps) * w (+ b)
// (+ r), in that order, as diffusers' RMSNorm and then the residual add compute it. b and r may be null.
void rms_norm_rows(const float* __restrict x, const float* __restrict r, const float* __restrict w,
                   const float* __restrict b, float eps, int64_t C, int64_t begin, int64_t end, float* __restrict y);

// rms_norm_rows(winograd_conv3x3(x, filter, bias), residual) with the norm done in the output transform, tile by
// tile, while the tile is in cache: the DC-AE ResBlock's second convolution, its RMSNorm over channels and its
// residual add as one pass. norm_weight (C_out) float32; norm_bias (C_out) or undefined; residual: the output's
// shape, float32 channels-last.
torch::Tensor winograd_conv3x3_norm(const torch::Tensor& x, const torch::Tensor& filter, const torch::Tensor& bias,
                                   const torch::Tensor& norm_weight, const torch::Tensor& norm_bias, double eps,
                                   const torch::Tensor& residual);

}  // namespace sprint
