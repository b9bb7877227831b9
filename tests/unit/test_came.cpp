// CAME optimizer (training/src/came.cpp) against the reference came-pytorch 0.1.3, save/load of its state, and the
// options it refuses.
//
// Reference: tests/fixtures/came/came_steps.safetensors (make_came_fixture.py there): five steps of came-pytorch's
// CAME on a (6, 5) weight and a (6,) bias (group 0: reference defaults, lr 0.05, the RMS clip active) and a
// (4, 3, 2, 2) conv-like weight (group 1: lr 0.02, betas (0.8, 0.99, 0.999), clip_threshold 40 so the clip is
// inactive, weight_decay 0.1), with seeded gradients of a different scale each step.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "sprint/training/came.h"
#include "test_util.h"

using sprint::test::FixtureCases;
using sprint::test::throws_with;
using sprint::training::Came;
using sprint::training::CameOptions;
using sprint::training::CameParamState;

namespace {

const std::vector<std::string> kNames = {"weight", "bias", "conv"};

// The fixture's two groups (make_came_fixture.py GROUPS) over params ordered as kNames.
std::vector<torch::optim::OptimizerParamGroup> fixture_groups(const std::vector<torch::Tensor>& p) {
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{p[0], p[1]}, std::make_unique<CameOptions>(0.05));
  groups.emplace_back(std::vector<torch::Tensor>{p[2]},
                      std::make_unique<CameOptions>(CameOptions(0.02)
                                                        .betas(std::make_tuple(0.8, 0.99, 0.999))
                                                        .clip_threshold(40.0)
                                                        .weight_decay(0.1)));
  return groups;
}

std::vector<torch::Tensor> leaf_copies(const std::vector<torch::Tensor>& ts) {
  std::vector<torch::Tensor> out;
  for (const auto& t : ts) out.push_back(t.detach().clone().requires_grad_(true));
  return out;
}

// max |a - ref| / max |ref|, in float64.
double rel_err(const torch::Tensor& a, const torch::Tensor& ref) {
  return sprint::test::max_abs_diff(a, ref) / ref.detach().abs().max().to(torch::kFloat64).item<double>();
}

const CameParamState& state_of(const Came& opt, const torch::Tensor& p) {
  return static_cast<const CameParamState&>(*opt.state().at(p.unsafeGetTensorImpl()));
}

std::map<std::string, torch::Tensor> state_tensors(const CameParamState& s) {
  std::map<std::string, torch::Tensor> out{{"exp_avg", s.exp_avg()},
                                           {"exp_avg_sq_row", s.exp_avg_sq_row()},
                                           {"exp_avg_sq_col", s.exp_avg_sq_col()},
                                           {"exp_avg_res_row", s.exp_avg_res_row()},
                                           {"exp_avg_res_col", s.exp_avg_res_col()},
                                           {"exp_avg_sq", s.exp_avg_sq()}};
  std::erase_if(out, [](const auto& kv) { return !kv.second.defined(); });
  return out;
}

}  // namespace

TEST(Came, MatchesCamePytorch) {
  torch::set_num_threads(1);  // as the fixture was made; the bound below was measured so
  FixtureCases fx("came/came_steps.safetensors");
  std::vector<torch::Tensor> init;
  for (const auto& n : kNames) init.push_back(fx["init." + n]);
  auto params = leaf_copies(init);
  Came opt(fixture_groups(params), CameOptions(1.0));  // every group has its own options; the defaults go unused

  // Relative error max |c++ - ref| / max |ref| per tensor. Both sides run LibTorch's float32 kernels op by op; they
  // differ only where a reduction (mean, norm) sums in another order, as another CPU's vector width does. Measured:
  // 0 with the fixture's kernels (AVX-512 and AVX2 alike), 1.5e-7 between the scalar kernels
  // (ATEN_CPU_CAPABILITY=default) and the vectorised ones, either way round. The bound is a few times that; a wrong
  // term is far above it (the instability's sign flipped: >= 0.047, the confidence term dropped: >= 0.13).
  const double tol = 1e-6;
  double worst = 0;
  for (int k = 1; k <= 5; ++k) {
    for (size_t i = 0; i < kNames.size(); ++i)
      params[i].mutable_grad() = fx["grad." + std::to_string(k) + "." + kNames[i]].clone();
    opt.step();
    for (size_t i = 0; i < kNames.size(); ++i) {
      double e = rel_err(params[i], fx["param." + std::to_string(k) + "." + kNames[i]]);
      worst = std::max(worst, e);
      EXPECT_LE(e, tol) << kNames[i] << " after step " << k;
    }
  }
  for (size_t i = 0; i < kNames.size(); ++i) {
    const auto& st = state_of(opt, params[i]);
    EXPECT_EQ(st.step(), 5);
    auto tensors = state_tensors(st);
    EXPECT_EQ(tensors.size(), kNames[i] == "bias" ? 2u : 5u) << kNames[i];
    for (const auto& [key, t] : tensors) {
      const auto ref_key = "state." + kNames[i] + "." + key;
      ASSERT_TRUE(fx.contains(ref_key)) << ref_key << " is not in the reference's state";
      ASSERT_EQ(t.sizes(), fx[ref_key].sizes()) << ref_key;
      double e = rel_err(t, fx[ref_key]);
      worst = std::max(worst, e);
      EXPECT_LE(e, tol) << ref_key;
    }
  }
  std::cout << "[ metric   ] CAME vs came-pytorch 0.1.3: max relative error " << worst << "\n";
}

TEST(Came, SaveLoadRoundTripIsBitExact) {
  torch::manual_seed(7);
  std::vector<torch::Tensor> init = {torch::randn({6, 5}), torch::randn({6}), torch::randn({4, 3, 2, 2})};
  auto grads = [&](int step) {
    torch::manual_seed(100 + step);
    std::vector<torch::Tensor> g;
    for (const auto& t : init) g.push_back(torch::randn(t.sizes()));
    return g;
  };
  auto run = [&](Came& opt, std::vector<torch::Tensor>& params, int from, int to) {
    for (int k = from; k < to; ++k) {
      auto g = grads(k);
      for (size_t i = 0; i < params.size(); ++i) params[i].mutable_grad() = g[i];
      opt.step();
    }
  };

  auto a_params = leaf_copies(init);
  Came a(fixture_groups(a_params));
  run(a, a_params, 0, 3);

  std::stringstream buffer;
  {
    torch::serialize::OutputArchive out;
    a.save(out);
    out.save_to(buffer);
  }
  auto b_params = leaf_copies(a_params);
  // Other options than a's: load() must bring back a's per-group options with the state.
  Came b(std::vector<torch::Tensor>{b_params[0], b_params[1]}, CameOptions(0.5));
  b.add_param_group(torch::optim::OptimizerParamGroup({b_params[2]}, std::make_unique<CameOptions>(0.5)));
  {
    torch::serialize::InputArchive in;
    in.load_from(buffer);
    b.load(in);
  }
  for (size_t g = 0; g < 2; ++g) {
    const auto& oa = static_cast<const CameOptions&>(a.param_groups()[g].options());
    const auto& ob = static_cast<const CameOptions&>(b.param_groups()[g].options());
    EXPECT_EQ(oa.lr(), ob.lr());
    EXPECT_EQ(oa.betas(), ob.betas());
    EXPECT_EQ(oa.eps(), ob.eps());
    EXPECT_EQ(oa.clip_threshold(), ob.clip_threshold());
    EXPECT_EQ(oa.weight_decay(), ob.weight_decay());
  }

  run(a, a_params, 3, 6);
  run(b, b_params, 3, 6);
  for (size_t i = 0; i < init.size(); ++i) {
    EXPECT_TRUE(torch::equal(a_params[i], b_params[i])) << "param " << kNames[i];
    const auto& sa = state_of(a, a_params[i]);
    const auto& sb = state_of(b, b_params[i]);
    EXPECT_EQ(sa.step(), 6);
    EXPECT_EQ(sb.step(), 6);
    auto ta = state_tensors(sa), tb = state_tensors(sb);
    ASSERT_EQ(ta.size(), tb.size()) << kNames[i];
    for (const auto& [key, t] : ta) EXPECT_TRUE(torch::equal(t, tb.at(key))) << kNames[i] << " " << key;
  }
}

TEST(Came, GroupsKeepTheirOptions) {
  std::vector<torch::Tensor> p = {torch::zeros({6, 5}), torch::zeros({6}), torch::zeros({4, 3, 2, 2})};
  Came opt(fixture_groups(p), CameOptions(1.0));
  const auto& o = static_cast<const CameOptions&>(opt.param_groups()[1].options());
  EXPECT_EQ(o.lr(), 0.02);
  EXPECT_EQ(o.betas(), std::make_tuple(0.8, 0.99, 0.999));
  EXPECT_EQ(o.clip_threshold(), 40.0);
  EXPECT_EQ(o.weight_decay(), 0.1);
  opt.add_param_group(torch::optim::OptimizerParamGroup({torch::zeros({2})}, std::make_unique<CameOptions>(0.25)));
  EXPECT_EQ(opt.param_groups()[2].options().get_lr(), 0.25);
  opt.add_param_group(torch::optim::OptimizerParamGroup({torch::zeros({2})}));  // no options: the defaults
  EXPECT_EQ(opt.param_groups()[3].options().get_lr(), 1.0);
}

TEST(Came, LrIsSetThroughTheBaseOptions) {
  auto p = torch::zeros({3}, torch::requires_grad());
  Came opt(std::vector<torch::Tensor>{p});
  torch::optim::OptimizerOptions& base = opt.param_groups()[0].options();
  base.set_lr(0.125);
  EXPECT_EQ(base.get_lr(), 0.125);
  EXPECT_EQ(static_cast<CameOptions&>(base).lr(), 0.125);
}

TEST(Came, SkipsParametersWithoutGradient) {
  auto p = torch::ones({2, 3}, torch::requires_grad());
  auto q = torch::ones({3}, torch::requires_grad());
  Came opt(std::vector<torch::Tensor>{p, q}, CameOptions(0.1).weight_decay(0.5));
  p.mutable_grad() = torch::ones({2, 3});
  opt.step();
  EXPECT_FALSE(torch::equal(p, torch::ones({2, 3})));
  EXPECT_TRUE(torch::equal(q, torch::ones({3})));  // no gradient: no weight decay either, as the reference
  EXPECT_EQ(opt.state().count(q.unsafeGetTensorImpl()), 0u);
}

// As the reference: a bfloat16 gradient is used in float32, the state is float32, and only the parameter update is
// rounded to bfloat16. One step from the same values equals the float32 run rounded.
TEST(Came, Bfloat16ParametersUseFloatState) {
  torch::manual_seed(3);
  auto init = torch::randn({4, 3}).to(torch::kBFloat16).to(torch::kFloat);
  auto grad = torch::randn({4, 3}).to(torch::kBFloat16);
  auto p16 = init.to(torch::kBFloat16).requires_grad_(true);
  auto p32 = init.clone().requires_grad_(true);
  Came opt16(std::vector<torch::Tensor>{p16}, CameOptions(0.1));
  Came opt32(std::vector<torch::Tensor>{p32}, CameOptions(0.1));
  p16.mutable_grad() = grad;
  p32.mutable_grad() = grad.to(torch::kFloat);
  opt16.step();
  opt32.step();
  EXPECT_EQ(p16.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(state_of(opt16, p16).exp_avg().scalar_type(), torch::kFloat);
  EXPECT_EQ(state_of(opt16, p16).exp_avg_sq_row().scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(p16, p32.to(torch::kBFloat16)));
  EXPECT_FALSE(torch::equal(p16, init.to(torch::kBFloat16)));
}

TEST(Came, RefusesBadOptions) {
  auto params = [] { return std::vector<torch::Tensor>{torch::zeros({2, 2}, torch::requires_grad())}; };
  auto make = [&](const CameOptions& o) { return [&params, o] { Came opt(params(), o); }; };
  EXPECT_TRUE(throws_with(make(CameOptions(-1e-3)), {"CAME", "lr"}));
  EXPECT_TRUE(throws_with(make(CameOptions().betas(std::make_tuple(1.0, 0.999, 0.9999))), {"betas[0]"}));
  EXPECT_TRUE(throws_with(make(CameOptions().betas(std::make_tuple(0.9, -0.1, 0.9999))), {"betas[1]"}));
  EXPECT_TRUE(throws_with(make(CameOptions().betas(std::make_tuple(0.9, 0.999, 1.5))), {"betas[2]"}));
  EXPECT_TRUE(throws_with(make(CameOptions().eps(std::make_tuple(-1e-30, 1e-16))), {"eps[0]"}));
  EXPECT_TRUE(throws_with(make(CameOptions().eps(std::make_tuple(1e-30, -1.0))), {"eps[1]"}));
  EXPECT_TRUE(throws_with(make(CameOptions().clip_threshold(0)), {"clip_threshold"}));
  EXPECT_TRUE(throws_with(make(CameOptions().weight_decay(-0.01)), {"weight_decay"}));

  // A group's own options are checked too, at construction and (after a change) at the next step.
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(params(), std::make_unique<CameOptions>(CameOptions().weight_decay(-1)));
  EXPECT_TRUE(throws_with([&] { Came opt(groups); }, {"weight_decay"}));
  std::vector<torch::optim::OptimizerParamGroup> adamw_groups;
  adamw_groups.emplace_back(params(), std::make_unique<torch::optim::AdamWOptions>(1e-3));
  EXPECT_TRUE(throws_with([&] { Came opt(adamw_groups); }, {"another optimizer"}));

  auto p = params();
  Came opt(p);
  p[0].mutable_grad() = torch::ones({2, 2});
  opt.param_groups()[0].options().set_lr(-1);
  EXPECT_TRUE(throws_with([&] { opt.step(); }, {"lr"}));

  opt.param_groups()[0].options().set_lr(1e-3);
  p[0].mutable_grad() = torch::ones({2, 2}).to_sparse();
  EXPECT_TRUE(throws_with([&] { opt.step(); }, {"sparse"}));
}
