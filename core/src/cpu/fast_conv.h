// Private to core (core/src/cpu/, not installed): the CPU engine's convolutions and fused passes, float32 on the
// CPU, no autograd. The DC-AE engine (dcae_engine.h) and CpuConv3x3 (sprint/cpu_conv.h, for the HED network) are
// built on them; docs/architecture.md#cpu-engine says where the choice to use them is made.
//
// 3x3 convolution by Winograd's minimal filtering F(4x4, 3x3) and F(6x6, 3x3) (docs/maths.md#winograd).
//
// A direct 3x3 convolution costs 9 multiply-adds per output and input channel. F(m x m, 3x3) computes an m x m
// output tile from an (m + 2)^2 input tile with (m + 2)^2 products per channel pair instead of 9 m^2 (36 instead
// of 144 for m = 4, 64 instead of 324 for m = 6): the input tile and the filter are transformed (V = B^T d B,
// U = G g G^T), multiplied element-wise and summed over input channels, which is (m + 2)^2 independent GEMMs
// (tiles x C_in) * (C_in x C_out), and the result is transformed back (Y = A^T M A). References: Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks" (2016), with the interpolation points 0, +-1, +-2 and
// infinity (m = 4) and also +-1/2 (m = 6); the matrices are written out in fast_conv.cpp.
//
// The 3x3 convolutions are 85-90 % of the DC-AE's work. F(6x6) does 21 % fewer products per output than F(4x4)
// and moves 21 % less transformed data, and pays on large images (winograd_tile); its rounding error is about
// 1.5-5x F(4x4)'s (tests/unit/test_fast_conv.cpp), still float32 rounding only: the transforms are exact in real
// arithmetic, and tests/unit/test_fast_conv.cpp bounds the difference against float64.
//
// Memory: the transformed tiles of up to 64 MiB of work per chunk, kept per calling thread between calls.
//
// Conv holds one convolution of a mirror model (an nn::Conv2d, read at each call) for the engine: Winograd when its
// shape allows (kernel 3x3, stride 1, padding 1, dilation 1, groups 1, zero padding, at least 8 input and 8 output
// channels; below that the transforms cost more than they save), torch's convolution otherwise; decided when the
// Conv is built. The transformed filters are cached and rebuilt when the weight changes (its version counter or
// storage).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <mutex>

namespace sprint::cpu {

// U = G g G^T for a (C_out, C_in, 3, 3) filter, as ((tile + 2)^2, C_in, C_out) float32, computed in double:
// tile 4 is F(4x4, 3x3) (36 points), 6 is F(6x6, 3x3) (64 points). The filter's size picks the algorithm in the
// functions below.
torch::Tensor winograd_filter(const torch::Tensor& weight, int tile = 4);

// The faster tile for an output of height x width on the CPU: 6 from 96 x 96 on, else 4 (measurements in
// fast_conv.cpp).
int winograd_tile(int64_t height, int64_t width);

// y = conv2d(x, weight, bias, stride 1, padding 1) given U = winograd_filter(weight). x: (B, C_in, H, W) float32 on
// the CPU, any H, W >= 1; bias: (C_out) or undefined. The result is channels-last (memory format), like oneDNN's
// output for a channels-last input; x is read channels-last too (a contiguous NCHW x is converted once).
// silu: y = silu(conv2d(...)), applied in the output transform.
torch::Tensor winograd_conv3x3(const torch::Tensor& x, const torch::Tensor& filter, const torch::Tensor& bias,
                               bool silu = false);

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

// Whether the Winograd path applies to a convolution of these options: the shape conditions of the file comment.
bool winograd_applies(const torch::nn::detail::ConvNdOptions<2>& options);

// A tensor derived from a parameter (a transformed filter), cached and rebuilt when the parameter changes: its
// storage or its version counter (an in-place update: an optimizer step, load_state_dict). Thread-safe: a model
// may be run from more than one thread.
class DerivedWeight {
 public:
  torch::Tensor get(const torch::Tensor& weight, const std::function<torch::Tensor(const torch::Tensor&)>& make);

 private:
  std::mutex mutex_;
  torch::Tensor value_;
  const void* of_ = nullptr;  // weight data and version the value was built from
  int64_t version_ = -1;
};

// One convolution of a mirror model, run by the engine (see the file comment). Inputs are float32 CPU tensors; no
// gradients.
class Conv {
 public:
  explicit Conv(torch::nn::Conv2d conv);
  torch::Tensor operator()(const torch::Tensor& x);
  // silu(conv(x)), the activation fused into the Winograd path's output transform.
  torch::Tensor silu(const torch::Tensor& x);
  // winograd_filter(weight, tile), cached per tile.
  torch::Tensor filter(int tile);
  bool winograd() const { return winograd_; }

 private:
  torch::nn::Conv2d conv_;
  bool winograd_;
  DerivedWeight filter4_, filter6_;
};

// ---- The DC-AE's resampling convolutions -----------------------------------------------------------------------
//
// Channels-last float32 CPU inference, each fused with its block's bias and shortcut so that the block is one pass
// over its output; the result equals torch's operations up to float32 rounding (tests/unit/test_fast_conv.cpp).

// The (9 C_in, C_out) im2col filter of a (C_out, C_in, 3, 3) weight: row (ky * 3 + kx) * C_in + c.
torch::Tensor im2col_filter(const torch::Tensor& weight);

// conv2d(x, weight, bias, stride 2, padding 1) as GEMMs through the BLAS on im2col rows of x (in chunks of up to
// 16 MiB of rows), plus, when shortcut_group > 0, the DC-AE's down-shortcut: the mean
// of each group of shortcut_group consecutive channels of pixel_unshuffle(x, 2) (which needs an even H and W and
// 4 C_in == shortcut_group * C_out). x: (B, C_in, H, W) float32 on the CPU; filter = im2col_filter(weight); the
// result is channels-last.
torch::Tensor conv3x3_stride2(const torch::Tensor& x, const torch::Tensor& filter, const torch::Tensor& bias,
                              int64_t shortcut_group);

// conv2d(interpolate(x, 2x nearest), weight, bias, padding 1) by the Winograd path above, reading the input tiles
// straight from x (the 4x larger upsampled tensor is never made), plus, when shortcut_repeats > 0, the DC-AE's
// up-shortcut pixel_shuffle(repeat_interleave(x, shortcut_repeats, channels), 2) added in the output transform
// (which needs C_in * shortcut_repeats == 4 C_out). filter = winograd_filter(weight); the result is channels-last.
torch::Tensor winograd_upsample_conv3x3(const torch::Tensor& x, const torch::Tensor& filter, const torch::Tensor& bias,
                                        int64_t shortcut_repeats);

}  // namespace sprint::cpu
