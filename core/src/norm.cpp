// RMSNorm. See include/sprint/norm.h and docs/maths.md#rmsnorm.
#include "sprint/norm.h"

namespace sprint {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_, bool affine, bool with_bias) : eps(eps_) {
  if (affine) {
    weight = register_parameter("weight", torch::ones({dim}));
    if (with_bias) bias = register_parameter("bias", torch::zeros({dim}));
  }
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto input_dtype = x.scalar_type();
  auto variance = x.to(torch::kFloat32).pow(2).mean(-1, /*keepdim=*/true);
  auto h = x * torch::rsqrt(variance + eps);
  if (weight.defined()) {
    if (weight.scalar_type() == torch::kFloat16 || weight.scalar_type() == torch::kBFloat16) h = h.to(weight.scalar_type());
    h = h * weight;
    if (bias.defined()) h = h + bias;
  } else {
    h = h.to(input_dtype);
  }
  return h;
}

}  // namespace sprint
