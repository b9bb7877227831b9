// See include/sprint/training/came.h. Each line of step() is one operation of came-pytorch 0.1.3's CAME.step, in
// its order, so float32 results match the reference up to the kernels' reduction order.
//
// Where the reference differs from what is done here, on purpose:
//  - it asserts lr > 0 and betas in [0, 1]; here lr = 0 is allowed (a warmup may start there) and a beta of 1 is
//    refused (it freezes its average at zero: beta2 = 1 divides by zero).
//  - it also stores state["RMS"] = rms(p), which nothing reads; not kept.
//
// NVlabs/Sana's CAMEWrapper (diffusion/utils/optimizer.py; the 1.6B SANA-Sprint config trains with it) is the same
// algorithm except for which tensors are factored: exactly-2-D tensors and 1x1 convs (O, I, 1, 1), the latter over
// (O, I), while every other tensor (1-D, 3-D, k x k convs such as GLUMBConv's depthwise 3x3) keeps a full
// exp_avg_sq and skips the confidence term (its update is exp_avg itself). came-pytorch, and this class, factor every
// tensor of >= 2 dims over its last two dims and apply the confidence term to all of them. For 1-D and 2-D tensors
// the two agree.
#include "sprint/training/came.h"

#include <cmath>

#include "sprint/error.h"

namespace sprint::training {

namespace {

void check_options(const CameOptions& o) {
  SPRINT_CHECK(o.lr() >= 0, "CAME: lr must be >= 0, got ", o.lr());
  const auto [beta1, beta2, beta3] = o.betas();
  SPRINT_CHECK(beta1 >= 0 && beta1 < 1, "CAME: betas[0] (momentum) must be in [0, 1), got ", beta1);
  SPRINT_CHECK(beta2 >= 0 && beta2 < 1, "CAME: betas[1] (squared gradient) must be in [0, 1), got ", beta2);
  SPRINT_CHECK(beta3 >= 0 && beta3 < 1, "CAME: betas[2] (instability) must be in [0, 1), got ", beta3);
  const auto [eps1, eps2] = o.eps();
  SPRINT_CHECK(eps1 >= 0, "CAME: eps[0] must be >= 0, got ", eps1);
  SPRINT_CHECK(eps2 >= 0, "CAME: eps[1] must be >= 0, got ", eps2);
  SPRINT_CHECK(o.clip_threshold() > 0, "CAME: clip_threshold must be > 0, got ", o.clip_threshold());
  SPRINT_CHECK(o.weight_decay() >= 0, "CAME: weight_decay must be >= 0, got ", o.weight_decay());
}

// Root mean square, as a 0-dim tensor: ||t||_2 / numel^0.5.
torch::Tensor rms(const torch::Tensor& t) { return t.norm(2) / std::pow(static_cast<double>(t.numel()), 0.5); }

// The factored estimate of a running average of squares from its row and column averages:
// (row / mean(row))^-1/2 (x) col^-1/2, an outer product over the last two dims.
torch::Tensor approx_sq_grad(const torch::Tensor& row, const torch::Tensor& col) {
  auto r_factor = (row / row.mean(-1, /*keepdim=*/true)).rsqrt_().unsqueeze(-1);
  auto c_factor = col.unsqueeze(-2).rsqrt();
  return torch::mul(r_factor, c_factor);
}

}  // namespace

void CameOptions::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(lr);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(betas);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(eps);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(clip_threshold);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(weight_decay);
}

void CameOptions::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, lr);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(betas_t, betas);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(eps_t, eps);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, clip_threshold);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(double, weight_decay);
}

void CameParamState::serialize(torch::serialize::OutputArchive& archive) const {
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(step);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq_row);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq_col);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_res_row);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_res_col);
  _TORCH_OPTIM_SERIALIZE_TORCH_ARG(exp_avg_sq);
}

void CameParamState::serialize(torch::serialize::InputArchive& archive) {
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(int64_t, step);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq_row);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq_col);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_res_row);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_res_col);
  _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(torch::Tensor, exp_avg_sq);
}

Came::Came(const std::vector<torch::optim::OptimizerParamGroup>& param_groups, CameOptions defaults)
    : Optimizer(std::vector<torch::optim::OptimizerParamGroup>{}, std::make_unique<CameOptions>(defaults)) {
  check_options(defaults);
  for (const auto& group : param_groups) add_param_group(group);
}

void Came::add_param_group(const torch::optim::OptimizerParamGroup& param_group) {
  if (param_group.has_options()) {
    const auto* o = dynamic_cast<const CameOptions*>(&param_group.options());
    SPRINT_CHECK(o, "CAME: a parameter group has options of another optimizer");
    check_options(*o);
  }
  Optimizer::add_param_group(param_group);  // checks the tensors; sets the group's options to the defaults
  if (param_group.has_options()) param_groups_.back().set_options(param_group.options().clone());
}

torch::Tensor Came::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups_) {
    const auto& o = static_cast<const CameOptions&>(group.options());
    check_options(o);
    const auto [beta1, beta2, beta3] = o.betas();
    const auto [eps1, eps2] = o.eps();
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto grad = p.grad();
      SPRINT_CHECK(!grad.is_sparse(), "CAME: sparse gradients are not supported (parameter of shape ", p.sizes(),
                   ")");
      if (grad.scalar_type() == torch::kHalf || grad.scalar_type() == torch::kBFloat16) grad = grad.to(torch::kFloat);
      const bool factored = grad.dim() >= 2;

      auto& slot = state_[p.unsafeGetTensorImpl()];
      if (!slot) {
        auto st = std::make_unique<CameParamState>();
        st->exp_avg(torch::zeros_like(grad));
        if (factored) {
          auto row_shape = grad.sizes().vec();  // (..., R, C) -> (..., R)
          row_shape.pop_back();
          auto col_shape = grad.sizes().vec();  // (..., R, C) -> (..., C)
          col_shape.erase(col_shape.end() - 2);
          st->exp_avg_sq_row(torch::zeros(row_shape, grad.options()));
          st->exp_avg_sq_col(torch::zeros(col_shape, grad.options()));
          st->exp_avg_res_row(torch::zeros(row_shape, grad.options()));
          st->exp_avg_res_col(torch::zeros(col_shape, grad.options()));
        } else {
          st->exp_avg_sq(torch::zeros_like(grad));
        }
        slot = std::move(st);
      }
      auto& state = static_cast<CameParamState&>(*slot);
      state.step(state.step() + 1);

      // u = g / sqrt(v), v the running average of g^2 + eps1 (factored: rebuilt from row and column averages).
      auto update = grad.pow(2) + eps1;
      if (factored) {
        state.exp_avg_sq_row().mul_(beta2).add_(update.mean(-1), 1.0 - beta2);
        state.exp_avg_sq_col().mul_(beta2).add_(update.mean(-2), 1.0 - beta2);
        update = approx_sq_grad(state.exp_avg_sq_row(), state.exp_avg_sq_col());
        update.mul_(grad);
      } else {
        state.exp_avg_sq().mul_(beta2).add_(update, 1.0 - beta2);
        update = state.exp_avg_sq().rsqrt().mul_(grad);
      }
      update.div_((rms(update) / o.clip_threshold()).clamp_(1.0));

      auto& exp_avg = state.exp_avg();
      exp_avg.mul_(beta1).add_(update, 1 - beta1);

      // Confidence: the running average of the instability (u - m)^2 + eps2 divides the momentum.
      auto res = (update - exp_avg).pow(2) + eps2;
      if (factored) {
        state.exp_avg_res_row().mul_(beta3).add_(res.mean(-1), 1.0 - beta3);
        state.exp_avg_res_col().mul_(beta3).add_(res.mean(-2), 1.0 - beta3);
        update = approx_sq_grad(state.exp_avg_res_row(), state.exp_avg_res_col()).mul_(exp_avg);
      } else {
        update = exp_avg.clone();
      }

      if (o.weight_decay() != 0) p.add_(p, -o.weight_decay() * o.lr());
      update.mul_(o.lr());
      p.add_(-update);
    }
  }
  return loss;
}

void Came::save(torch::serialize::OutputArchive& archive) const { serialize(*this, archive); }

void Came::load(torch::serialize::InputArchive& archive) { serialize(*this, archive); }

}  // namespace sprint::training
