// A convolution of a mirror model prepared for float32 CPU inference by the CPU engine (core/src/cpu/, private to
// core): for models outside core that make the engine choice once, when they are set up for inference
// (HEDImpl::prepare_for_inference); docs/architecture.md#cpu-engine. The DC-AE's engine is reached through
// AutoencoderDCImpl::prepare_for_inference instead.
#pragma once

#include <torch/torch.h>

#include <memory>

namespace sprint {

namespace cpu {
class Conv;
}

class CpuConv3x3 {
 public:
  // Holds `conv` (its weight and bias are read at every call). Whether Winograd applies is decided here, from the
  // convolution's shape: 3x3, stride 1, padding 1, dilation 1, groups 1, zero padding, at least 8 channels in and out.
  explicit CpuConv3x3(torch::nn::Conv2d conv);
  // conv(x) for a float32 CPU x: by Winograd F(4x4, 3x3) or F(6x6, 3x3) (docs/maths.md#winograd; the result is
  // channels-last and equals torch's up to float32 rounding) where it applies, torch's convolution otherwise. The
  // transformed filters are cached and follow in-place weight updates. No gradients.
  torch::Tensor operator()(const torch::Tensor& x) const;
  bool winograd() const;

 private:
  std::shared_ptr<cpu::Conv> impl_;
};

}  // namespace sprint
