// sCM (continuous-time consistency) loss of SANA-Sprint (docs/maths.md#scm), and the flow-matching loss used to
// fine-tune the teacher (docs/maths.md#flow-matching-loss).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <vector>

#include "sprint/scm.h"
#include "sprint/training/jvp.h"
#include "sprint/training/sampling.h"
#include "sprint/training/trigflow.h"

namespace sprint::training {

// Hyperparameters of the sCM part; defaults are the official 1.6B config (docs/maths.md#scm).
struct ScmConfig {
  double sigma_data = kSigmaData;
  double p_mean = 0.2;                  // logit_mean
  double p_std = 1.6;                   // logit_std
  double time_sigma = 0.5;              // the hard-coded 0.5 in t = arctan(sigma / 0.5)
  int64_t tangent_warmup_steps = 4000;  // r = min(1, step / warmup); counted over G and D steps
  double tangent_norm_c = 0.1;          // g_hat = g / (||g|| + c)
  std::vector<double> cfg_scales{4.0, 4.5, 5.0};
  double t_min = 0.0;                   // optional clamp of t from below; 0 = off (the reference does not clamp)
  JvpMethod jvp_method = JvpMethod::Forward;
};

// r = min(1, step / warmup_steps); 1 when warmup_steps <= 0.
double tangent_warmup(int64_t step, int64_t warmup_steps);

// TrigFlow forward process x_t = cos t x0 + sin t eps (t (B,) broadcast over the rest). eps already ~ N(0, sd^2).
torch::Tensor trigflow_noise(const torch::Tensor& x0, const torch::Tensor& eps, const torch::Tensor& t);
// Clean estimate x0 = cos t x_t - sin t sd F.
torch::Tensor trigflow_x0(const torch::Tensor& x_t, const torch::Tensor& F, const torch::Tensor& t,
                          double sigma_data = kSigmaData);

struct ScmTarget {
  torch::Tensor g;       // raw target (B, ...)
  torch::Tensor g_hat;   // g / (||g|| + c)
  torch::Tensor g_norm;  // ||g|| per sample, (B,)
};

// g = -cos^2 t (sd F_minus - dxdt) - r (cos t sin t x_t + sd J), norms per sample over all non-batch dims
// (docs/maths.md#scm-target). J is the tangent of F along (cos t sin t dxdt / sd, cos t sin t) (docs/maths.md#jvp).
// All inputs detached by the caller.
ScmTarget scm_target(const torch::Tensor& F_minus, const torch::Tensor& dxdt, const torch::Tensor& x_t,
                     const torch::Tensor& J, const torch::Tensor& t, double r, double sigma_data = kSigmaData,
                     double norm_c = 0.1);

struct ScmLossTerms {
  torch::Tensor loss;            // mean[(w / e^logvar) (F_theta - F_minus - g_hat)^2 + logvar], with grad
  torch::Tensor loss_no_logvar;  // mean[w (...)^2], detached (logged)
  torch::Tensor loss_no_weight;  // mean[(...)^2], detached (logged)
};

// w(t) = 1 / (sd tan t). logvar (B, 1, 1, 1) or undefined (then treated as 0, i.e. no adaptive weighting).
ScmLossTerms scm_loss_terms(const torch::Tensor& F_theta, const torch::Tensor& logvar, const torch::Tensor& F_minus,
                            const torch::Tensor& g_hat, const torch::Tensor& t, double sigma_data = kSigmaData);

// The teacher's PF-ODE velocity dx_t/dt in latent units at (x_t, t), CFG already folded in (see cfg_velocity).
using VelocityFn = std::function<torch::Tensor(const torch::Tensor& x_t, const torch::Tensor& t)>;

struct ScmStepResult {
  torch::Tensor loss;            // scalar, with grad into the student (and its logvar head)
  torch::Tensor loss_no_logvar;  // scalar, detached
  torch::Tensor loss_no_weight;  // scalar, detached
  torch::Tensor g_norm;          // mean ||g|| over the batch, detached
  torch::Tensor x_t, dxdt, J;    // detached intermediates (for logging and tests)
  torch::Tensor F_theta;         // student output with grad
  torch::Tensor logvar;          // with grad (or undefined)
};

// One sCM loss evaluation (docs/maths.md#scm; G steps 2-4 of docs/maths.md#distill-step):
//   x_t = cos t x0 + sin t eps; dxdt = teacher(x_t, t) (no grad);
//   J = jvp(student, (x_t/sd, t), (cos t sin t dxdt/sd, cos t sin t)) (no grad);
//   (F_theta, logvar) = student(x_t/sd, t) with grad; F_minus = stopgrad(F_theta); g, g_hat, loss.
// x0: sd-scaled clean latent (B, ...); eps: noise ~ N(0, sd^2) like x0; t: (B,). r: tangent warm-up factor.
// A Sana student must have set_explicit_attention(true) for JvpMethod::Forward.
ScmStepResult scm_step(const TrigModel& student, const VelocityFn& teacher_velocity, const torch::Tensor& x0,
                       const torch::Tensor& eps, const torch::Tensor& t, double r, const ScmConfig& config = {});

// Flow-matching loss (docs/maths.md#flow-matching-loss): x_s = (1 - s) z + s e, target v = e - z,
// loss = mean (v_hat(x_s, s) - v)^2. z: unit-variance latent (B, ...), e ~ N(0, 1) like z, s (B,) in (0, 1) (the
// dense time fed to the model).
torch::Tensor flow_matching_loss(const FlowModel& model, const torch::Tensor& z, const torch::Tensor& e,
                                 const torch::Tensor& s);

}  // namespace sprint::training
