// See include/sprint/training/scm_loss.h and docs/maths.md#scm.
#include "sprint/training/scm_loss.h"

#include <algorithm>

#include "sprint/error.h"

namespace sprint::training {

namespace {
// (B,) -> (B, 1, ..., 1) matching `like`'s rank.
torch::Tensor bview(const torch::Tensor& t, const torch::Tensor& like) {
  std::vector<int64_t> shape(static_cast<size_t>(like.dim()), 1);
  shape[0] = like.size(0);
  return t.reshape(shape);
}
}  // namespace

double tangent_warmup(int64_t step, int64_t warmup_steps) {
  if (warmup_steps <= 0) return 1.0;
  return std::min(1.0, static_cast<double>(std::max<int64_t>(step, 0)) / static_cast<double>(warmup_steps));
}

torch::Tensor trigflow_noise(const torch::Tensor& x0, const torch::Tensor& eps, const torch::Tensor& t) {
  SPRINT_CHECK(x0.sizes() == eps.sizes(), "trigflow_noise: x0 ", x0.sizes(), " and noise ", eps.sizes(), " differ");
  auto tb = bview(t.to(x0.dtype()), x0);
  return torch::cos(tb) * x0 + torch::sin(tb) * eps;
}

torch::Tensor trigflow_x0(const torch::Tensor& x_t, const torch::Tensor& F, const torch::Tensor& t, double sd) {
  auto tb = bview(t.to(x_t.dtype()), x_t);
  return torch::cos(tb) * x_t - torch::sin(tb) * sd * F;
}

ScmTarget scm_target(const torch::Tensor& F_minus, const torch::Tensor& dxdt, const torch::Tensor& x_t,
                     const torch::Tensor& J, const torch::Tensor& t, double r, double sd, double norm_c) {
  SPRINT_CHECK(F_minus.sizes() == dxdt.sizes() && F_minus.sizes() == x_t.sizes() && F_minus.sizes() == J.sizes(),
               "scm_target: F ", F_minus.sizes(), ", dxdt ", dxdt.sizes(), ", x_t ", x_t.sizes(), ", J ", J.sizes(),
               " must have one shape");
  auto tb = bview(t.to(F_minus.dtype()), F_minus);
  auto c = torch::cos(tb), s = torch::sin(tb);
  ScmTarget out;
  out.g = -c * c * (sd * F_minus - dxdt) - r * (c * s * x_t + sd * J);
  out.g_norm = out.g.flatten(1).norm(2, 1);
  out.g_hat = out.g / (bview(out.g_norm, out.g) + norm_c);
  return out;
}

ScmLossTerms scm_loss_terms(const torch::Tensor& F_theta, const torch::Tensor& logvar, const torch::Tensor& F_minus,
                            const torch::Tensor& g_hat, const torch::Tensor& t, double sd) {
  auto tb = bview(t.to(F_theta.dtype()), F_theta);
  auto weight = 1.0 / (sd * torch::tan(tb));
  auto sq = (F_theta - F_minus - g_hat).pow(2);
  ScmLossTerms out;
  if (logvar.defined()) {
    auto lv = bview(logvar.reshape({-1}), F_theta);
    out.loss = ((weight / torch::exp(lv)) * sq + lv).mean();
  } else {
    out.loss = (weight * sq).mean();
  }
  out.loss_no_logvar = (weight * sq).mean().detach();
  out.loss_no_weight = sq.mean().detach();
  return out;
}

ScmStepResult scm_step(const TrigModel& student, const VelocityFn& teacher_velocity, const torch::Tensor& x0,
                       const torch::Tensor& eps, const torch::Tensor& t_in, double r, const ScmConfig& cfg) {
  const double sd = cfg.sigma_data;
  auto t = t_in.reshape({-1}).to(x0.dtype());
  if (cfg.t_min > 0) t = t.clamp_min(cfg.t_min);
  SPRINT_CHECK(t.numel() == x0.size(0), "scm_step: ", t.numel(), " times for a batch of ", x0.size(0));
  ScmStepResult out;
  {
    torch::NoGradGuard no_grad;
    out.x_t = trigflow_noise(x0, eps, t).detach();
    out.dxdt = teacher_velocity(out.x_t, t).detach();
    auto cs = torch::cos(t) * torch::sin(t);
    auto v_x = bview(cs, out.x_t) * out.dxdt / sd;
    out.J = jvp(student, out.x_t / sd, t, v_x, cs, cfg.jvp_method).tangent;
  }
  auto pred = student(out.x_t / sd, t);
  out.F_theta = pred.F;
  out.logvar = pred.logvar;
  auto F_minus = pred.F.detach();
  auto target = scm_target(F_minus, out.dxdt, out.x_t, out.J, t, r, sd, cfg.tangent_norm_c);
  auto terms = scm_loss_terms(pred.F, pred.logvar, F_minus, target.g_hat, t, sd);
  out.loss = terms.loss;
  out.loss_no_logvar = terms.loss_no_logvar;
  out.loss_no_weight = terms.loss_no_weight;
  out.g_norm = target.g_norm.mean().detach();
  return out;
}

torch::Tensor flow_matching_loss(const FlowModel& model, const torch::Tensor& z, const torch::Tensor& e,
                                 const torch::Tensor& s) {
  SPRINT_CHECK(z.sizes() == e.sizes(), "flow_matching_loss: latent ", z.sizes(), " and noise ", e.sizes(), " differ");
  auto ss = s.reshape({-1}).to(z.dtype());
  SPRINT_CHECK(ss.numel() == z.size(0), "flow_matching_loss: ", ss.numel(), " times for a batch of ", z.size(0));
  auto sb = bview(ss, z);
  auto x_s = (1 - sb) * z + sb * e;
  auto v = model(x_s, ss);
  return (v - (e - z)).pow(2).mean();
}

}  // namespace sprint::training
