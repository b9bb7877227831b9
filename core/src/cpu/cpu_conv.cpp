// CpuConv3x3: the public handle on the engine's convolution. See include/sprint/cpu_conv.h.
#include "sprint/cpu_conv.h"

#include <utility>

#include "fast_conv.h"

namespace sprint {

CpuConv3x3::CpuConv3x3(torch::nn::Conv2d conv) : impl_(std::make_shared<cpu::Conv>(std::move(conv))) {}

torch::Tensor CpuConv3x3::operator()(const torch::Tensor& x) const { return (*impl_)(x); }

bool CpuConv3x3::winograd() const { return impl_->winograd(); }

}  // namespace sprint
