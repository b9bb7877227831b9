// SCM schedule construction and the TrigFlow transform.
#include <gtest/gtest.h>

#include <cmath>

#include "sprint/scm.h"
#include "sprint/transformer.h"
#include "test_util.h"

using namespace sprint;
using sprint::test::throws_with;

TEST(ScmTimesteps, DefaultsFollowDiffusers) {
  auto one = scm_timesteps(1);
  ASSERT_EQ(one.size(0), 2);
  EXPECT_FLOAT_EQ(one[0].item<float>(), 1.5708f);
  EXPECT_FLOAT_EQ(one[1].item<float>(), 0.f);
  auto two = scm_timesteps(2);
  EXPECT_FLOAT_EQ(two[1].item<float>(), 1.3f);
  auto four = scm_timesteps(4);
  std::vector<float> expect = {1.5708f, 1.1781f, 0.7854f, 0.3927f, 0.f};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(four[i].item<float>(), expect[i], 1e-6);
  EXPECT_FLOAT_EQ(scm_timesteps(2, kScmMaxTimestep, 1.0)[1].item<float>(), 1.0f);
}

TEST(ScmTimesteps, CustomListsAreValidated) {
  EXPECT_FLOAT_EQ(scm_timesteps(3, kScmMaxTimestep, std::nullopt, {1.4, 1.3, 1.1})[3].item<float>(), 0.f);
  EXPECT_TRUE(throws_with([] { scm_timesteps(2, kScmMaxTimestep, std::nullopt, {1.4, 1.3, 1.1}); }, {"3 values"}));
  EXPECT_TRUE(throws_with([] { scm_timesteps(2, kScmMaxTimestep, std::nullopt, {1.0, 1.2, 0}); }, {"decreasing"}));
  EXPECT_TRUE(throws_with([] { scm_timesteps(1, kScmMaxTimestep, std::nullopt, {2.0, 0}); }, {"outside [0, pi/2]"}));
  EXPECT_TRUE(throws_with([] { scm_timesteps(4, kScmMaxTimestep, 1.3); }, {"only used with 2 steps"}));
  EXPECT_TRUE(throws_with([] { scm_timesteps(0); }, {"steps must be >= 1"}));
  EXPECT_TRUE(throws_with([] { scm_timesteps(2, kScmMaxTimestep, 1.6); }, {"intermediate"}));
}

TEST(TrigFlow, TimeMapEndpoints) {
  auto s = trig_to_flow_time(torch::tensor({0.f, static_cast<float>(M_PI / 4), static_cast<float>(M_PI / 2)}));
  EXPECT_NEAR(s[0].item<float>(), 0.f, 1e-7);
  EXPECT_NEAR(s[1].item<float>(), 0.5f, 1e-6);
  EXPECT_NEAR(s[2].item<float>(), 1.f, 1e-6);
}

TEST(TrigFlow, TransformOfAnAnalyticFlowIsTheTrigFlowVelocity) {
  // For data x0' and noise eps', the exact flow velocity is v = eps' - x0' (a "perfect" model that knows the
  // pair). The transformed output must then be the TrigFlow velocity -sin(t) x0' + cos(t) eps'
  // (docs/maths.md#trigflow-transform).
  auto g = at::make_generator<at::CPUGeneratorImpl>(5);
  auto x0 = torch::randn({3, 4, 2, 2}, g, torch::kFloat64), eps = torch::randn({3, 4, 2, 2}, g, torch::kFloat64);
  auto t = torch::tensor({0.2, 0.9, 1.5}, torch::kFloat64);
  auto te = t.view({-1, 1, 1, 1});
  auto x_scaled = torch::cos(te) * x0 + torch::sin(te) * eps;  // x_t / sigma_d in unit-variance space
  FlowModel perfect = [&](const torch::Tensor&, const torch::Tensor&) { return eps - x0; };
  auto F = trigflow_forward(perfect, x_scaled, t);
  auto expect = -torch::sin(te) * x0 + torch::cos(te) * eps;
  // float32 result of float64 inputs: relative error at the float32 rounding level.
  EXPECT_LT(sprint::test::max_abs_diff(F, expect), 1e-5);
}

namespace {
// A tiny random Sprint transformer as a smooth, nonlinear flow model.
SanaTransformer2DModel tiny_model() {
  torch::manual_seed(11);
  SanaTransformer2DModel m(sprint::test::tiny_sprint_config());
  m->to(torch::kFloat64);
  // Scale the output layer down so the velocity field is gentle and the ODE well-conditioned.
  torch::NoGradGuard ng;
  m->proj_out->weight.mul_(0.2);
  return m;
}
}  // namespace

TEST(TrigFlow, FlowEulerAndTrigFlowEulerReachTheSameEndpoint) {
  // Paper Table 1: the TrigFlow transform is lossless. Integrate the flow ODE dx/ds = v(x, s) from s = 1 to 0 and
  // the transformed ODE dx/dt = F(x, t) from t = pi/2 to 0 (x in units of sigma_d) from the same noise. Both are
  // the same ODE under a change of variables, so the endpoints agree up to Euler's O(1/N) error on each path.
  // We check (a) the gap is small at N = 2000 and (b) it shrinks ~linearly with N (a real mismatch would not).
  torch::NoGradGuard ng;
  auto m = tiny_model();
  auto g = at::make_generator<at::CPUGeneratorImpl>(9);
  auto enc = torch::randn({1, 5, 6}, g, torch::kFloat64);
  auto guid = torch::full({1}, 0.45, torch::kFloat64);
  FlowModel v = [&](const torch::Tensor& x, const torch::Tensor& s) {
    return m->forward(x, enc, s.to(torch::kFloat64), guid).to(torch::kFloat64);
  };
  auto noise = torch::randn({1, 4, 3, 3}, g, torch::kFloat64);

  auto flow_euler = [&](int n) {
    auto x = noise.clone();
    for (int i = 0; i < n; ++i) {
      double s = 1.0 - static_cast<double>(i) / n, s_next = 1.0 - static_cast<double>(i + 1) / n;
      x = x + (s_next - s) * v(x, torch::full({1}, s, torch::kFloat64));
    }
    return x;
  };
  auto trig_euler = [&](int n) {
    auto x = noise.clone();  // at t = pi/2, x_t / sigma_d = eps' = the flow ODE's start
    for (int i = 0; i < n; ++i) {
      double t = M_PI / 2 * (1.0 - static_cast<double>(i) / n), t_next = M_PI / 2 * (1.0 - static_cast<double>(i + 1) / n);
      // trigflow_forward returns float32; keep the state in float64 and accept its 1e-7 relative rounding.
      x = x + (t_next - t) * trigflow_forward(v, x, torch::full({1}, t, torch::kFloat64)).to(torch::kFloat64);
    }
    return x;
  };
  double gap500 = sprint::test::nmse(trig_euler(500), flow_euler(500));
  double gap2000 = sprint::test::nmse(trig_euler(2000), flow_euler(2000));
  std::cout << "[ TrigFlow ] endpoint NMSE flow vs trig: N=500 " << gap500 << ", N=2000 " << gap2000 << "\n";
  // Tolerance: NMSE 1e-5 at N = 2000 (Euler error ~1/N on each path, measured ~1e-7); and at least a 4x drop from
  // N = 500 to 2000 (NMSE goes as the square of an O(1/N) error, ideally 16x).
  EXPECT_LT(gap2000, 1e-5);
  EXPECT_LT(gap2000 * 4, gap500);
  EXPECT_GT(sprint::test::nmse(flow_euler(2000), noise), 1e-3);  // the ODE actually moved the sample
}
