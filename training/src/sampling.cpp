// See include/sprint/training/sampling.h.
#include "sprint/training/sampling.h"

#include <ATen/CPUGeneratorImpl.h>

#include "sprint/error.h"

namespace sprint::training {

namespace {
torch::TensorOptions cpu_f32() { return torch::TensorOptions().dtype(torch::kFloat32).device(torch::kCPU); }
torch::TensorOptions float_or(const torch::TensorOptions& o) {
  return o.has_dtype() ? o : o.dtype(torch::kFloat32);
}
}  // namespace

at::Generator make_generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

torch::Tensor randn(at::Generator& gen, at::IntArrayRef shape, const torch::TensorOptions& options) {
  return torch::randn(shape, gen, cpu_f32()).to(float_or(options));
}

torch::Tensor sample_trigflow_time(at::Generator& gen, int64_t batch, double mean, double std, double time_sigma,
                                   const torch::TensorOptions& options) {
  SPRINT_CHECK(batch >= 1 && std >= 0 && time_sigma > 0, "sample_trigflow_time: bad arguments (batch ", batch,
               ", std ", std, ", time_sigma ", time_sigma, ")");
  auto n = torch::randn({batch}, gen, cpu_f32().dtype(torch::kFloat64));
  auto t = torch::atan(torch::exp(mean + std * n) / time_sigma);
  return t.to(float_or(options));
}

torch::Tensor apply_max_time(at::Generator& gen, const torch::Tensor& t, double prob, double max_t) {
  SPRINT_CHECK(prob >= 0 && prob <= 1, "max-time probability must lie in [0, 1], got ", prob);
  auto u = torch::rand({t.numel()}, gen, cpu_f32().dtype(torch::kFloat64));
  auto pick = (u < prob).to(t.device()).view(t.sizes());
  return torch::where(pick, torch::full_like(t, max_t), t);
}

torch::Tensor sample_cfg_scale(at::Generator& gen, int64_t batch, const std::vector<double>& choices,
                               const torch::TensorOptions& options) {
  SPRINT_CHECK(!choices.empty(), "sample_cfg_scale: no CFG scales to choose from");
  auto idx = torch::randint(static_cast<int64_t>(choices.size()), {batch}, gen,
                            torch::TensorOptions().dtype(torch::kLong));
  auto table = torch::tensor(choices, torch::TensorOptions().dtype(torch::kFloat64));
  return table.index_select(0, idx).to(float_or(options));
}

torch::Tensor sample_flow_time(at::Generator& gen, int64_t batch, FlowTimeScheme scheme, double mean, double std,
                               const torch::TensorOptions& options) {
  torch::Tensor s;
  if (scheme == FlowTimeScheme::Uniform) {
    s = torch::rand({batch}, gen, cpu_f32().dtype(torch::kFloat64));
  } else {
    s = torch::sigmoid(mean + std * torch::randn({batch}, gen, cpu_f32().dtype(torch::kFloat64)));
  }
  return s.to(float_or(options));
}

}  // namespace sprint::training
