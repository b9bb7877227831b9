// Exact JVP (docs/maths.md#jvp): forward-mode AD and the double-backward identity against an analytic
// derivative and against central finite differences of the tiny Sana student in float64.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "sprint/training/training.h"
#include "test_util.h"

using namespace sprint;
using namespace sprint::training;

namespace {

double rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

// f(x, t) = sin(x) t^2 + x^2 exp(-t), t broadcast per sample.
TrigOutput analytic(const torch::Tensor& x, const torch::Tensor& t) {
  auto tb = t.view({-1, 1, 1, 1});
  return {torch::sin(x) * tb * tb + x * x * torch::exp(-tb), {}};
}

TransformerConfig tiny_config(bool guidance) {
  TransformerConfig c;
  c.in_channels = 4;
  c.out_channels = 4;
  c.num_attention_heads = 2;
  c.attention_head_dim = 8;  // D = 16
  c.num_layers = 2;
  c.num_cross_attention_heads = 2;
  c.cross_attention_head_dim = 8;
  c.cross_attention_dim = 16;
  c.caption_channels = 12;
  c.sample_size = 4;
  c.guidance_embeds = guidance;
  c.qk_norm = "rms_norm_across_heads";
  return c;
}

struct TinyStudent {
  SanaStudent student{nullptr};
  TextCondition text;
  torch::Tensor w;
  TrigModel model;
};

TinyStudent make_tiny_student(torch::Dtype dtype) {
  torch::manual_seed(7);
  TinyStudent s;
  // zero_init_guidance off so that the guidance path is part of what the JVP is checked on.
  s.student = SanaStudent(SanaTransformer2DModel(tiny_config(true)), /*zero_init_guidance=*/false);
  s.student->to(dtype);
  s.student->eval();
  s.student->transformer->set_explicit_attention(true);
  auto opt = torch::TensorOptions().dtype(dtype);
  s.text.enc = torch::randn({2, 5, 12}, opt);
  s.text.mask = torch::tensor({1, 1, 1, 1, 0, 1, 1, 1, 0, 0}, opt).view({2, 5});
  s.w = torch::tensor({4.0, 5.0}, opt);
  s.model = bind_student(s.student, s.text, s.w);
  return s;
}

}  // namespace

TEST(TrainingJvp, AnalyticFunctionExact) {
  torch::manual_seed(1);
  auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  auto x = torch::randn({3, 2, 4, 4}, opt), vx = torch::randn({3, 2, 4, 4}, opt);
  auto t = torch::rand({3}, opt) * 1.5, vt = torch::randn({3}, opt);
  auto tb = t.view({-1, 1, 1, 1}), vtb = vt.view({-1, 1, 1, 1});
  auto expected = (torch::cos(x) * tb * tb + 2 * x * torch::exp(-tb)) * vx +
                  (2 * tb * torch::sin(x) - x * x * torch::exp(-tb)) * vtb;
  for (auto method : {JvpMethod::Forward, JvpMethod::DoubleBackward}) {
    auto r = jvp(analytic, x, t, vx, vt, method);
    // Both are exact up to float64 rounding of a handful of elementwise ops: ~1e-16 relative; 1e-13 leaves room.
    EXPECT_LT(rel_err(r.tangent, expected), 1e-13) << static_cast<int>(method);
    EXPECT_LT(rel_err(r.F, analytic(x, t).F), 1e-15);
    EXPECT_FALSE(r.tangent.requires_grad());
  }
}

TEST(TrainingJvp, TinyStudentMatchesCentralDifference) {
  auto s = make_tiny_student(torch::kFloat64);
  auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  torch::manual_seed(11);
  auto x = torch::randn({2, 4, 4, 4}, opt), vx = torch::randn({2, 4, 4, 4}, opt);
  auto t = torch::tensor({0.4, 1.2}, opt), vt = torch::tensor({0.7, -0.5}, opt);

  auto fwd = jvp(s.model, x, t, vx, vt, JvpMethod::Forward);
  auto dbl = jvp(s.model, x, t, vx, vt, JvpMethod::DoubleBackward);
  torch::NoGradGuard no_grad;
  auto F0 = s.model(x, t);
  EXPECT_LT(rel_err(fwd.F, F0.F), 1e-15);
  EXPECT_LT(rel_err(fwd.logvar, F0.logvar), 1e-15);

  for (double hh : {1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 1e-5}) {
    auto f = (s.model(x + hh * vx, t + hh * vt).F - s.model(x - hh * vx, t - hh * vt).F) / (2 * hh);
    std::printf("[jvp] h = %.0e: |J_fwd - FD|/|FD| = %.3e\n", hh, rel_err(fwd.tangent, f));
  }
  const double h = 3e-4;
  auto fd = (s.model(x + h * vx, t + h * vt).F - s.model(x - h * vx, t - h * vt).F) / (2 * h);
  const double e_fwd = rel_err(fwd.tangent, fd), e_dbl = rel_err(dbl.tangent, fd), e_modes = rel_err(fwd.tangent, dbl.tangent);
  std::printf("[jvp] |J_fwd - FD|/|FD| = %.3e, |J_dbl - FD|/|FD| = %.3e, |J_fwd - J_dbl|/|J_dbl| = %.3e, |J| = %.3e\n",
              e_fwd, e_dbl, e_modes, fd.norm().item<double>());
  // Central differences here have three error sources, which the h sweep printed above shows as a V:
  //  - rounding: the float64 model still rounds to float32 inside (linear attention runs in fp32 by design, as do
  //    the timestep sinusoid and RMSNorm statistics), ~6e-8 relative noise on F, amplified as ~noise / h
  //    (5.8e-4 at h = 1e-5, 5.9e-5 at 1e-4);
  //  - ReLU kinks of the linear-attention feature maps crossed inside [-h, h]: O(h);
  //  - smooth truncation h^2 |F'''| / 6.
  // The minimum, 1.8e-5, lies at h = 3e-4; 2e-4 is a 10x margin over it. A wiring error (a tangent dropped or
  // scaled wrongly, see the time-only test below) gives O(1e-1..1).
  EXPECT_LT(e_fwd, 2e-4);
  EXPECT_LT(e_dbl, 2e-4);
  // The two exact methods differ only by the fp32 rounding of the tangents / cotangents inside: measured 2.1e-8.
  EXPECT_LT(e_modes, 1e-6);
  // The check is sharp enough to see the time tangent: dropping v_t must fail it by far.
  auto no_t = jvp(s.model, x, t, vx, torch::zeros_like(vt), JvpMethod::Forward);
  const double e_no_t = rel_err(no_t.tangent, fd);
  std::printf("[jvp] without the time tangent: |J - FD|/|FD| = %.3e\n", e_no_t);
  EXPECT_GT(e_no_t, 100 * 2e-4);
}

TEST(TrainingJvp, TimeTangentAloneMatchesCentralDifference) {
  // Separates the dF/dt path (TrigFlow time map, sinusoid, adaLN) from dF/dx: v_x = 0.
  auto s = make_tiny_student(torch::kFloat64);
  auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  torch::manual_seed(12);
  auto x = torch::randn({2, 4, 4, 4}, opt), vx = torch::zeros({2, 4, 4, 4}, opt);
  auto t = torch::tensor({0.3, 1.4}, opt), vt = torch::tensor({1.0, 1.0}, opt);
  auto fwd = jvp(s.model, x, t, vx, vt, JvpMethod::Forward);
  torch::NoGradGuard no_grad;
  const double h = 1e-3;
  auto fd = (s.model(x, t + h).F - s.model(x, t - h).F) / (2 * h);
  const double e = rel_err(fwd.tangent, fd);
  std::printf("[jvp] time-only |J - FD|/|FD| = %.3e\n", e);
  // Measured 4.6e-6 at h = 1e-3 (no ReLU kinks move with t alone at this size); the 2e-4 budget of the test above.
  EXPECT_LT(e, 2e-4);
}

TEST(TrainingJvp, FusedAttentionNeedsExplicitOrDoubleBackward) {
  auto s = make_tiny_student(torch::kFloat32);
  s.student->transformer->set_explicit_attention(false);  // fused SDPA: no forward-AD formula in LibTorch
  auto x = torch::randn({2, 4, 4, 4}), t = torch::tensor({0.4f, 1.2f});
  auto vx = torch::randn({2, 4, 4, 4}), vt = torch::ones({2});
  EXPECT_TRUE(test::throws_with([&] { jvp(s.model, x, t, vx, vt, JvpMethod::Forward); },
                                {"set_explicit_attention(true)", "forward AD"}));
  // The fused CPU kernel has no double-backward formula either, so both exact methods need explicit attention.
  EXPECT_ANY_THROW(jvp(s.model, x, t, vx, vt, JvpMethod::DoubleBackward));
  s.student->transformer->set_explicit_attention(true);
  auto fwd = jvp(s.model, x, t, vx, vt, JvpMethod::Forward);
  auto dbl = jvp(s.model, x, t, vx, vt, JvpMethod::DoubleBackward);
  // fp32 throughout; the two AD modes round differently: ~1e-6 relative expected, 1e-4 leaves a 100x margin.
  const double e = rel_err(fwd.tangent, dbl.tangent);
  std::printf("[jvp] fp32 |J_fwd - J_dbl|/|J_dbl| = %.3e\n", e);
  EXPECT_LT(e, 1e-4);
}

TEST(TrainingJvp, RejectsMismatchedTangents) {
  auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  auto x = torch::randn({2, 2, 2, 2}, opt);
  auto t = torch::rand({2}, opt);
  EXPECT_TRUE(test::throws_with([&] { jvp(analytic, x, t, torch::randn({2, 2, 2}, opt), t); }, {"v_x"}));
  EXPECT_TRUE(test::throws_with([&] { jvp(analytic, x, t, x, torch::rand({3}, opt)); }, {"one value per sample"}));
}
