// 3x3 convolution by Winograd's minimal filtering F(4x4, 3x3) for float32 CPU inference.
//
// A direct 3x3 convolution costs 9 multiply-adds per output and input channel. F(4x4, 3x3) computes a 4x4 output
// tile from a 6x6 input tile with 36 products per channel pair instead of 144: the input tile and the filter are
// transformed (V = B^T d B, U = G g G^T), multiplied element-wise and summed over input channels, which is 36
// independent GEMMs (tiles x C_in) * (C_in x C_out), and the result is transformed back (Y = A^T M A).
// References: Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016), with the interpolation
// points 0, +-1, +-2 and infinity; the matrices are written out in fast_conv.cpp.
//
// The 3x3 convolutions are 85-90 % of the DC-AE's work. On the 2-core development machine the DC-AE f32c32's
// shapes at 256x256 took 0.40-0.85x of torch's direct (oneDNN, NCHW) time each, 0.62x weighted over one encode
// and decode (sprint-bench --conv); 128 -> 128 channels at full resolution gains least (memory-bound transforms).
// The result equals the direct convolution up to float32 rounding (the transforms are exact in real arithmetic);
// tests/unit/test_fast_conv.cpp bounds the difference against float64.
//
// Memory: the transformed tiles of up to 64 MiB of work per chunk, kept per calling thread between calls.
//
// FastConv2d is a torch::nn::Conv2d (same parameters, same state-dict keys) whose forward takes this path when
// it can: kernel 3x3, stride 1, padding 1, dilation 1, groups 1, zero padding, at least 8 input and 8 output
// channels (below that the transforms cost more than they save), float32 CPU tensors and no autograd
// (GradMode off or nothing requiring grad). Everything else, training included, is torch's convolution. The
// transformed filter is cached and rebuilt when the weight changes (its version counter or storage).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <initializer_list>
#include <mutex>

namespace sprint {

// U = G g G^T for a (C_out, C_in, 3, 3) filter, as (36, C_in, C_out) float32, computed in double.
torch::Tensor winograd_filter(const torch::Tensor& weight);

// y = conv2d(x, weight, bias, stride 1, padding 1) given U = winograd_filter(weight). x: (B, C_in, H, W) float32 on
// the CPU, any H, W >= 1; bias: (C_out) or undefined. The result is channels-last (memory format), like oneDNN's
// output for a channels-last input; x is read channels-last too (a contiguous NCHW x is converted once).
torch::Tensor winograd_conv3x3(const torch::Tensor& x, const torch::Tensor& filter, const torch::Tensor& bias);

// True when none of `tensors` will need a gradient: GradMode is off, or none of the defined ones requires grad.
// The CPU fast paths (Winograd here, the DC-AE's fused passes) run only then; training keeps torch's operations.
bool inference_only(std::initializer_list<const torch::Tensor*> tensors);

// Whether the Winograd path applies to this convolution and input (see the file comment).
bool winograd_applies(const torch::nn::detail::ConvNdOptions<2>& options, const torch::Tensor& weight, const torch::Tensor& bias,
                      const torch::Tensor& x);

struct FastConv2dImpl : torch::nn::Conv2dImpl {
  using torch::nn::Conv2dImpl::Conv2dImpl;
  torch::Tensor forward(const torch::Tensor& x);

  bool winograd = true;  // false: always torch's convolution (the exact diffusers arithmetic)

 private:
  std::mutex mutex_;  // guards the cache: a model may be run from more than one thread
  torch::Tensor filter_;
  const void* filter_of_ = nullptr;  // weight data and version the cache was built from
  int64_t filter_version_ = -1;
};
TORCH_MODULE(FastConv2d);

// Sets FastConv2dImpl::winograd on every FastConv2d in `module` (recursively). Returns how many it set.
int set_winograd(torch::nn::Module& module, bool on);

}  // namespace sprint
