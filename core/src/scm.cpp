// TrigFlow wrapper and SCM sampler; the operations and their order follow diffusers' SanaSprintPipeline and
// SCMScheduler so that fp32 CPU runs reproduce the reference bit for bit where LibTorch uses the same kernels.
#include "sprint/scm.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "sprint/error.h"

namespace sprint {

torch::Tensor trig_to_flow_time(const torch::Tensor& t) {
  auto tf = t.to(torch::kFloat32);
  return torch::sin(tf) / (torch::cos(tf) + torch::sin(tf));
}

torch::Tensor trigflow_forward(const FlowModel& model, const torch::Tensor& x_scaled, const torch::Tensor& t) {
  auto s = trig_to_flow_time(t.reshape({-1}));
  auto se = s.view({-1, 1, 1, 1});
  auto c = torch::sqrt(se.pow(2) + (1 - se).pow(2));
  auto x_fm = x_scaled * c;
  auto v = model(x_fm, s);
  auto out = ((1 - 2 * se) * x_fm + (1 - 2 * se + 2 * se.pow(2)) * v) / c;
  return out.to(torch::kFloat32);
}

torch::Tensor scm_timesteps(int steps, double max_t, std::optional<double> intermediate, const std::vector<double>& custom) {
  SPRINT_CHECK(steps >= 1, "steps must be >= 1, got ", steps);
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  if (!custom.empty()) {
    std::vector<double> ts = custom;
    if (ts.back() != 0.0) ts.push_back(0.0);
    SPRINT_CHECK(static_cast<int>(ts.size()) == steps + 1, "custom timesteps: ", steps, " steps need ", steps + 1,
                 " values ending in 0, got ", ts.size());
    for (size_t i = 0; i < ts.size(); ++i) {
      SPRINT_CHECK(std::isfinite(ts[i]) && ts[i] >= 0 && ts[i] <= M_PI / 2 + 1e-4,
                   "custom timesteps: value ", ts[i], " is outside [0, pi/2]");
      SPRINT_CHECK(i == 0 || ts[i] < ts[i - 1], "custom timesteps must be strictly decreasing, got ", ts[i - 1],
                   " then ", ts[i]);
    }
    SPRINT_CHECK(!intermediate, "give either custom timesteps or an intermediate timestep, not both");
    return torch::tensor(std::vector<float>(ts.begin(), ts.end()), f32);
  }
  SPRINT_CHECK(std::isfinite(max_t) && max_t > 0 && max_t <= M_PI / 2 + 1e-4, "max timestep ", max_t,
               " is outside (0, pi/2]");
  if (steps == 2) {
    double mid = intermediate.value_or(kScmIntermediateTimestep);
    SPRINT_CHECK(mid > 0 && mid < max_t, "intermediate timestep ", mid, " must lie in (0, ", max_t, ")");
    return torch::tensor(std::vector<float>{static_cast<float>(max_t), static_cast<float>(mid), 0.f}, f32);
  }
  SPRINT_CHECK(!intermediate, "an intermediate timestep is only used with 2 steps (got ", steps, " steps)");
  return torch::linspace(max_t, 0.0, steps + 1, f32);
}

NoiseSource seeded_cpu_noise(uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return [gen](const std::vector<int64_t>& shape) mutable {
    return torch::randn(shape, gen, torch::TensorOptions().dtype(torch::kFloat32));
  };
}

torch::Tensor scm_sample(const FlowModel& model, const std::vector<int64_t>& shape, const NoiseSource& noise,
                         const ScmSampleOptions& opt) {
  SPRINT_CHECK(opt.timesteps.defined() && opt.timesteps.dim() == 1 && opt.timesteps.size(0) >= 2,
               "scm_sample: timesteps must hold at least 2 values (from scm_timesteps)");
  const double sd = opt.sigma_data;
  const auto T = opt.timesteps.to(torch::kCPU, torch::kFloat32);
  const int steps = static_cast<int>(T.size(0)) - 1;
  const int64_t B = shape[0];

  auto latents = noise(shape).to(opt.device) * sd;
  torch::Tensor denoised;
  for (int i = 0; i < steps; ++i) {
    auto s_t = T[i].to(opt.device);       // 0-dim float32, like the scheduler's timesteps[i]
    auto t_next = T[i + 1].to(opt.device);
    auto timestep = s_t.expand({B});
    auto flow_s = torch::sin(timestep) / (torch::cos(timestep) + torch::sin(timestep));
    auto se = flow_s.view({-1, 1, 1, 1});
    auto c = torch::sqrt(se.pow(2) + (1 - se).pow(2));
    auto x_in = (latents / sd) * c;
    auto v = model(x_in.to(opt.model_dtype), flow_s);
    auto F = ((1 - 2 * se) * x_in + (1 - 2 * se + 2 * se.pow(2)) * v) / c;
    F = F.to(torch::kFloat32) * sd;
    denoised = torch::cos(s_t) * latents - torch::sin(s_t) * F;  // scheduler step, "trigflow"
    auto eps = noise(shape).to(opt.device) * sd;
    latents = torch::cos(t_next) * denoised + torch::sin(t_next) * eps;
    if (opt.on_step && !opt.on_step(i, steps, denoised / sd)) throw Cancelled();
  }
  return denoised / sd;
}

}  // namespace sprint
