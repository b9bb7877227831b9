// CAME optimizer (Luo et al. 2023, "CAME: Confidence-guided Adaptive Memory Efficient Optimization"), which SANA and
// SANA-Sprint train with. Like Adafactor it keeps the second moment of a matrix gradient as running averages of its
// row and column means and rebuilds it as their (normalised) outer product; the update g / sqrt(v) is clipped to
// RMS <= clip_threshold and smoothed into a momentum m. CAME adds a confidence term: the "instability" (u - m)^2,
// factored the same way with its own beta3, scales each entry of m down where the update disagrees with the
// momentum. No bias correction; weight decay is decoupled: p <- p (1 - lr wd) - lr update.
//
// Memory per parameter tensor, besides the parameter and its gradient: AdamW keeps 2 full copies (exp_avg,
// exp_avg_sq). CAME keeps exp_avg (1 full copy) and, for a tensor of >= 2 dims (..., R, C), 2 (R + C) values per
// trailing R x C matrix (exp_avg_sq_row/col and exp_avg_res_row/col); a 1-D tensor keeps a full exp_avg_sq instead.
// For a D x D linear weight that is about D^2 + 4 D values against AdamW's 2 D^2.
//
// Mirrors came-pytorch 0.1.3 (the authors' `CAME` class) operation by operation, state names included. Notes on the
// reference (training/src/came.cpp has the details): tensors of > 2 dims are factored over their last two dims only
// (a 1x1 conv weight (O, I, 1, 1) gets rows and columns of one entry each: 4 O I values besides exp_avg, against
// AdamW's O I); half and bfloat16 gradients are computed in float32 with float32 state.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <tuple>
#include <vector>

namespace sprint::training {

// Options of one parameter group. Defaults are came-pytorch's; its lr has none (2e-4 is its README's example).
struct CameOptions : public torch::optim::OptimizerCloneableOptions<CameOptions> {
  CameOptions(double lr = 2e-4) : lr_(lr) {}  // not explicit: `Came(params, {})` and LibTorch's loader build it
  TORCH_ARG(double, lr) = 2e-4;
  using betas_t = std::tuple<double, double, double>;  // momentum, squared gradient, instability
  TORCH_ARG(betas_t, betas) = std::make_tuple(0.9, 0.999, 0.9999);
  using eps_t = std::tuple<double, double>;  // added to g^2 and to the instability (u - m)^2
  TORCH_ARG(eps_t, eps) = std::make_tuple(1e-30, 1e-16);
  TORCH_ARG(double, clip_threshold) = 1.0;  // bound on the RMS of g / sqrt(v)
  TORCH_ARG(double, weight_decay) = 0.0;    // decoupled: p <- p (1 - lr wd)

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
};

// Per-parameter state, named as the reference's. Factored (>= 2 dims, shape (..., R, C)): exp_avg_sq_row and
// exp_avg_res_row (..., R), exp_avg_sq_col and exp_avg_res_col (..., C). Unfactored (1-D): exp_avg_sq. Tensors
// that do not apply stay undefined and are not written by serialize().
struct CameParamState : public torch::optim::OptimizerCloneableParamState<CameParamState> {
  TORCH_ARG(int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, exp_avg);
  TORCH_ARG(torch::Tensor, exp_avg_sq_row);
  TORCH_ARG(torch::Tensor, exp_avg_sq_col);
  TORCH_ARG(torch::Tensor, exp_avg_res_row);
  TORCH_ARG(torch::Tensor, exp_avg_res_col);
  TORCH_ARG(torch::Tensor, exp_avg_sq);

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

// The optimizer. Every group's options must be CameOptions. Options are checked at construction and at every step
// (a schedule may have changed them): lr >= 0, betas in [0, 1), eps >= 0, clip_threshold > 0, weight_decay >= 0;
// a violation throws sprint::Error naming the option. Sparse gradients are refused.
class Came : public torch::optim::Optimizer {
 public:
  explicit Came(const std::vector<torch::optim::OptimizerParamGroup>& param_groups, CameOptions defaults = {});
  explicit Came(std::vector<torch::Tensor> params, CameOptions defaults = {})
      : Came({torch::optim::OptimizerParamGroup(std::move(params))}, std::move(defaults)) {}

  // Adds a group, keeping its own options (checked as above). Call it on the Came, not through an Optimizer&:
  // LibTorch 2.15's Optimizer::add_param_group (not virtual) replaces the options of a custom optimizer's group by
  // the defaults, as its merging of group options knows only the built-in optimizers.
  void add_param_group(const torch::optim::OptimizerParamGroup& param_group);

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

 private:
  template <typename Self, typename Archive>
  static void serialize(Self& self, Archive& archive) {
    _TORCH_OPTIM_SERIALIZE_WITH_TEMPLATE_ARG(Came);
  }
};

}  // namespace sprint::training
