#include "sprint/training/teacher_sampling.h"

#include <cmath>

#include "sprint/error.h"
#include "sprint/training/trigflow.h"

namespace sprint::training {

torch::Tensor sample_teacher(const FlowModel& cond, const FlowModel& uncond, const torch::Tensor& noise, int steps,
                             double guidance, TeacherSolver solver) {
  SPRINT_CHECK(steps >= 1 && steps <= 10000, "teacher steps = ", steps, " must be in 1..10000");
  SPRINT_CHECK(guidance > 0 && std::isfinite(guidance), "guidance = ", guidance, " must be a positive number");
  SPRINT_CHECK(guidance == 1.0 || uncond, "guidance != 1 needs the unconditional model");
  torch::NoGradGuard ng;
  const int64_t B = noise.size(0);
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(noise.device());
  auto guided = [&](const FlowModel& fc, const FlowModel& fu, const torch::Tensor& x, const torch::Tensor& tt) {
    auto vc = fc(x, tt);
    if (guidance == 1.0) return vc;
    auto vu = fu(x, tt);
    return vu + guidance * (vc - vu);
  };
  if (solver == TeacherSolver::FlowEuler) {
    auto x = noise.clone();
    for (int i = 0; i < steps; ++i) {
      const double s0 = 1.0 - static_cast<double>(i) / steps, s1 = 1.0 - static_cast<double>(i + 1) / steps;
      auto v = guided(cond, uncond, x, torch::full({B}, s0, opts));
      x = x + (s1 - s0) * v.to(x.scalar_type());
    }
    return x;
  }
  // TrigFlow-Euler on x_t = cos t x0 + sin t sd eps (sd units), via the TrigFlow transform of both models.
  const double sd = kSigmaData;
  auto fc = [&](const torch::Tensor& x, const torch::Tensor& t) { return trigflow_output(cond, x / sd, t); };
  auto fu = [&](const torch::Tensor& x, const torch::Tensor& t) { return trigflow_output(uncond, x / sd, t); };
  auto x = noise * sd;
  for (int i = 0; i < steps; ++i) {
    const double t0 = M_PI_2 * (1.0 - static_cast<double>(i) / steps);
    const double t1 = M_PI_2 * (1.0 - static_cast<double>(i + 1) / steps);
    auto F = guided(fc, fu, x, torch::full({B}, t0, opts));
    x = x + (t1 - t0) * sd * F.to(x.scalar_type());
  }
  return x / sd;
}

}  // namespace sprint::training
