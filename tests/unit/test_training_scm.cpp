// sCM target and loss, CFG folding, time sampling, LADD losses/heads, flow-matching loss (docs/maths.md#scm, #ladd,
// #teacher).
//
// Analytic case: data x0 ~ N(0, a^2 I) in TrigFlow units, noise eps ~ N(0, sd^2 I), x_t = cos t x0 + sin t eps with
// Var(x_t) = v(t) = a^2 cos^2 t + sd^2 sin^2 t. In flow units (z = x0 / sd ~ N(0, b^2), b = a / sd) the ideal
// flow-matching velocity is linear: v(x, s) = x (s - (1 - s) b^2) / ((1 - s)^2 b^2 + s^2). Its TrigFlow velocity is
// dx/dt = x (1/2) d ln v / dt, so the PF-ODE solution is x_t ~ sqrt(v(t)), and with CFG between an unconditional
// (a_u) and a conditional (a_c) Gaussian, dx/dt = x [(1 - w) k_u + w k_c], k = (1/2) d ln v / dt, the consistency
// function is f(x_t, t) = x_t (v_u(t) / a_u^2)^((w - 1) / 2) (v_c(t) / a_c^2)^(-w / 2). The exact student is
// F = (cos t x_t - f) / (sd sin t), and its sCM target g = cos t df/dt must vanish.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "sprint/training/training.h"
#include "test_util.h"

using namespace sprint;
using namespace sprint::training;

namespace {

constexpr double kSd = kSigmaData;

// Ideal flow velocity for z ~ N(0, b^2) per row: b_rows (B,) (rows may differ: the CFG pair).
FlowModel gaussian_flow(torch::Tensor b_rows) {
  return [b_rows](const torch::Tensor& x, const torch::Tensor& s) {
    auto b2 = (b_rows * b_rows).to(x.dtype()).view({-1, 1, 1, 1});
    auto se = s.view({-1, 1, 1, 1});
    return x * (se - (1 - se) * b2) / ((1 - se) * (1 - se) * b2 + se * se);
  };
}

torch::Tensor var_t(const torch::Tensor& t, double a) {
  return a * a * torch::cos(t).pow(2) + kSd * kSd * torch::sin(t).pow(2);
}

// Exact student for CFG scale w (B,) between N(0, a_u^2) and N(0, a_c^2); `scale` != 1 perturbs it.
TrigModel exact_student(double a_u, double a_c, torch::Tensor w, double scale = 1.0) {
  return [=](const torch::Tensor& x_s, const torch::Tensor& t) {
    auto tb = t.view({-1, 1, 1, 1});
    auto wb = w.to(x_s.dtype()).view({-1, 1, 1, 1});
    auto m = torch::pow(var_t(tb, a_u) / (a_u * a_u), (wb - 1) / 2) * torch::pow(var_t(tb, a_c) / (a_c * a_c), -wb / 2);
    // F(x_s, t) with x_t = sd x_s: (cos t x_t - m x_t) / (sd sin t) = x_s (cos t - m) / sin t.
    return TrigOutput{scale * x_s * (torch::cos(tb) - m) / torch::sin(tb), {}};
  };
}

struct GaussianCase {
  torch::Tensor x0, eps, t, w;
  double a_u = 0.9, a_c = 0.3;  // data std in TrigFlow units (sd * latent std)
};

GaussianCase gaussian_case(int64_t B) {
  auto gen = make_generator(3);
  auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  GaussianCase c;
  c.x0 = randn(gen, {B, 2, 4, 4}, opt) * c.a_c;
  c.eps = randn(gen, {B, 2, 4, 4}, opt) * kSd;
  // Away from t = 0 (w(t) and F blow up there) and inside (0, pi/2).
  c.t = 0.15 + torch::rand({B}, gen, opt) * 1.35;
  c.w = sample_cfg_scale(gen, B, {4.0, 4.5, 5.0}, opt);
  return c;
}

VelocityFn cfg_teacher(const GaussianCase& c) {
  const int64_t B = c.x0.size(0);
  auto b_rows = torch::cat({torch::full({B}, c.a_u / kSd, torch::kFloat64), torch::full({B}, c.a_c / kSd, torch::kFloat64)});
  auto pair = as_trig_model(gaussian_flow(b_rows));
  auto w = c.w;
  return [pair, w](const torch::Tensor& x_t, const torch::Tensor& t) { return cfg_velocity(pair, x_t, t, w, kSd); };
}

// Scale of the terms g is built from, to make "g == 0" relative.
double term_scale(const ScmStepResult& r, const torch::Tensor& t) {
  auto tb = t.view({-1, 1, 1, 1});
  return (torch::cos(tb) * torch::sin(tb) * r.x_t).norm().item<double>() + (kSd * r.J).norm().item<double>();
}

}  // namespace

TEST(TrainingScm, ExactConsistencyFunctionGivesZeroTarget) {
  auto c = gaussian_case(6);
  auto teacher = cfg_teacher(c);
  for (auto method : {JvpMethod::Forward, JvpMethod::DoubleBackward}) {
    ScmConfig cfg;
    cfg.jvp_method = method;
    auto r = scm_step(exact_student(c.a_u, c.a_c, c.w), teacher, c.x0, c.eps, c.t, /*r=*/1.0, cfg);
    const double rel = r.g_norm.item<double>() * std::sqrt(6.0) / term_scale(r, c.t);
    std::printf("[scm] exact student (%s): mean ||g|| = %.3e, relative to its terms %.3e\n",
                method == JvpMethod::Forward ? "forward AD" : "double backward", r.g_norm.item<double>(), rel);
    // g is a sum of O(1) float64 terms that cancel exactly: residue ~1e-16 relative. 1e-12 allows the pow/exp chain.
    EXPECT_LT(rel, 1e-12);
    // With g = 0 the loss reduces to mean w(t) (F - F_minus)^2 = 0 (no logvar head here).
    EXPECT_LT(r.loss.item<double>(), 1e-24);
  }
}

TEST(TrainingScm, PerturbedStudentHasNonZeroTarget) {
  auto c = gaussian_case(6);
  auto teacher = cfg_teacher(c);
  auto r = scm_step(exact_student(c.a_u, c.a_c, c.w, /*scale=*/1.01), teacher, c.x0, c.eps, c.t, 1.0);
  const double rel = r.g_norm.item<double>() * std::sqrt(6.0) / term_scale(r, c.t);
  std::printf("[scm] 1%% perturbed student: relative ||g|| = %.3e\n", rel);
  EXPECT_GT(rel, 1e-4);  // a 1e-2 change of F gives a ~1e-2 residue; 1e-4 is far above rounding (1e-16)
  // Wrong guidance scale (the student distilled for another w): also non-zero.
  auto r2 = scm_step(exact_student(c.a_u, c.a_c, c.w + 0.5), teacher, c.x0, c.eps, c.t, 1.0);
  EXPECT_GT(r2.g_norm.item<double>() * std::sqrt(6.0) / term_scale(r2, c.t), 1e-4);
}

TEST(TrainingScm, CfgFoldingIsLinearInW) {
  auto c = gaussian_case(4);
  const int64_t B = 4;
  auto b_rows = torch::cat({torch::full({B}, c.a_u / kSd, torch::kFloat64), torch::full({B}, c.a_c / kSd, torch::kFloat64)});
  auto pair = as_trig_model(gaussian_flow(b_rows));
  auto x_t = trigflow_noise(c.x0, c.eps, c.t);
  auto unc = plain_velocity(as_trig_model(gaussian_flow(torch::full({B}, c.a_u / kSd, torch::kFloat64))), x_t, c.t);
  auto con = plain_velocity(as_trig_model(gaussian_flow(torch::full({B}, c.a_c / kSd, torch::kFloat64))), x_t, c.t);
  auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  // w = 0 -> unconditional, w = 1 -> conditional, w = 4.5 -> extrapolation; float64 rounding only.
  EXPECT_LT(test::max_abs_diff(cfg_velocity(pair, x_t, c.t, torch::zeros({B}, opt)), unc), 1e-14);
  EXPECT_LT(test::max_abs_diff(cfg_velocity(pair, x_t, c.t, torch::ones({B}, opt)), con), 1e-14);
  EXPECT_LT(test::max_abs_diff(cfg_velocity(pair, x_t, c.t, torch::full({B}, 4.5, opt)), unc + 4.5 * (con - unc)),
            1e-13);
  // The TrigFlow teacher velocity is the analytic (1/2) d ln v/dt x_t for the conditional Gaussian.
  auto tb = c.t.view({-1, 1, 1, 1});
  auto k = torch::sin(tb) * torch::cos(tb) * (kSd * kSd - c.a_c * c.a_c) / var_t(tb, c.a_c);
  EXPECT_LT(test::max_abs_diff(con, k * x_t), 1e-14);
}

TEST(TrainingScm, TargetAndLossFormulas) {
  auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  torch::manual_seed(5);
  auto F = torch::randn({2, 3, 2, 2}, opt), dxdt = torch::randn({2, 3, 2, 2}, opt);
  auto x_t = torch::randn({2, 3, 2, 2}, opt), J = torch::randn({2, 3, 2, 2}, opt);
  auto t = torch::tensor({0.5, 1.1}, opt);
  const double r = 0.25;
  auto tg = scm_target(F, dxdt, x_t, J, t, r, kSd, 0.1);
  for (int b = 0; b < 2; ++b) {
    const double ct = std::cos(t[b].item<double>()), st = std::sin(t[b].item<double>());
    auto g = -ct * ct * (kSd * F[b] - dxdt[b]) - r * (ct * st * x_t[b] + kSd * J[b]);
    EXPECT_LT(test::max_abs_diff(tg.g[b], g), 1e-14);
    EXPECT_NEAR(tg.g_norm[b].item<double>(), g.norm().item<double>(), 1e-13);
    EXPECT_LT(test::max_abs_diff(tg.g_hat[b], g / (g.norm() + 0.1)), 1e-14);
  }
  auto F_theta = (F + 0.01 * torch::randn_like(F)).requires_grad_(true);
  auto logvar = torch::tensor({0.3, -0.2}, opt).view({2, 1, 1, 1}).requires_grad_(true);
  auto terms = scm_loss_terms(F_theta, logvar, F, tg.g_hat, t, kSd);
  auto w = 1.0 / (kSd * torch::tan(t)).view({-1, 1, 1, 1});
  auto sq = (F_theta - F - tg.g_hat).pow(2);
  EXPECT_NEAR(terms.loss.item<double>(), ((w / logvar.exp()) * sq + logvar).mean().item<double>(), 1e-14);
  EXPECT_NEAR(terms.loss_no_logvar.item<double>(), (w * sq).mean().item<double>(), 1e-14);
  terms.loss.backward();
  EXPECT_TRUE(logvar.grad().defined());
  // The loss pulls F_theta towards F_minus + g_hat: the gradient is -2 (w / e^logvar) (g_hat - (F_theta - F)) / n.
  auto expected = (2.0 / static_cast<double>(F.numel())) * (w / logvar.exp()) * (F_theta - F - tg.g_hat);
  EXPECT_LT(test::max_abs_diff(F_theta.grad(), expected.detach()), 1e-14);
  EXPECT_DOUBLE_EQ(tangent_warmup(0, 4000), 0.0);
  EXPECT_DOUBLE_EQ(tangent_warmup(1000, 4000), 0.25);
  EXPECT_DOUBLE_EQ(tangent_warmup(10000, 4000), 1.0);
  EXPECT_DOUBLE_EQ(tangent_warmup(3, 0), 1.0);
}

TEST(TrainingScm, TimeSamplingMedian) {
  auto gen = make_generator(42);
  const int64_t n = 20001;
  auto t = sample_trigflow_time(gen, n, 0.2, 1.6, 0.5, torch::TensorOptions().dtype(torch::kFloat64));
  EXPECT_GT(t.min().item<double>(), 0.0);
  EXPECT_LT(t.max().item<double>(), M_PI / 2);
  const double median = std::get<0>(t.sort())[n / 2].item<double>();
  const double expected = std::atan(std::exp(0.2) / 0.5);  // 1.1822
  // The sample median of n normals has sd 1.2533 / sqrt(n) = 0.0089 in n; times P_std 1.6 in log sigma and
  // dt/dlog(sigma) = q / (1 + q^2) = 0.35 at q = e^0.2 / 0.5 = 2.44 -> sd 0.005 in t. 0.025 = 5 sd.
  std::printf("[scm] sCM time median %.4f (expected %.4f)\n", median, expected);
  EXPECT_NEAR(median, expected, 0.025);
  auto tD = sample_trigflow_time(gen, n, -0.6, 1.0, 0.5, torch::TensorOptions().dtype(torch::kFloat64));
  const double median_D = std::get<0>(tD.sort())[n / 2].item<double>();
  // sd: 0.0089 * 1.0 * q / (1 + q^2) with q = e^-0.6 / 0.5 = 1.098 -> 0.0044; 5 sd = 0.022.
  EXPECT_NEAR(median_D, std::atan(std::exp(-0.6) / 0.5), 0.022);
  // Seeded: the same seed gives the same draws.
  auto g1 = make_generator(9), g2 = make_generator(9);
  EXPECT_TRUE(torch::equal(sample_trigflow_time(g1, 16, 0.2, 1.6), sample_trigflow_time(g2, 16, 0.2, 1.6)));
}

TEST(TrainingLadd, MaxTimeWeightingFrequency) {
  const int64_t n = 20000;
  for (double p : {0.0, 0.5, 0.7}) {
    auto gen = make_generator(static_cast<uint64_t>(100 * p) + 1);
    auto t = sample_trigflow_time(gen, n, 0.2, 1.6, 0.5, torch::TensorOptions().dtype(torch::kFloat64));
    auto t2 = apply_max_time(gen, t, p, kScmMaxTimestep);
    auto hit = (t2 == kScmMaxTimestep);
    const double frac = hit.to(torch::kFloat64).mean().item<double>();
    // Binomial(n, p): sd sqrt(p (1 - p) / n) <= 0.0035 at n = 20000; 5 sd (false-failure odds ~6e-7 per p).
    const double bound = 5 * std::sqrt(p * (1 - p) / static_cast<double>(n));
    std::printf("[ladd] max-time p=%.1f: observed %.4f (bound %.4f)\n", p, frac, bound);
    EXPECT_NEAR(frac, p, bound + 1e-12);
    // Samples that were not picked are unchanged.
    EXPECT_TRUE(torch::equal(t2.masked_select(~hit), t.masked_select(~hit)));
  }
}

TEST(TrainingLadd, HingeLossSigns) {
  auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  // A perfect discriminator (real >= 1, fake <= -1) has zero loss.
  auto d0 = hinge_discriminator_loss(torch::full({2, 3}, 2.0, opt), torch::full({2, 3}, -3.0, opt));
  EXPECT_EQ(d0.loss.item<double>(), 0.0);
  // Both at 0: 0.5 (1 + 1) = 1.
  auto real = torch::zeros({2, 3}, opt).requires_grad_(true), fake = torch::zeros({2, 3}, opt).requires_grad_(true);
  auto d = hinge_discriminator_loss(real, fake);
  EXPECT_DOUBLE_EQ(d.loss.item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(d.loss_real.item<double>(), 1.0);
  EXPECT_DOUBLE_EQ(d.loss_fake.item<double>(), 1.0);
  d.loss.backward();
  EXPECT_TRUE((real.grad() < 0).all().item<bool>());  // descent raises real logits
  EXPECT_TRUE((fake.grad() > 0).all().item<bool>());  // descent lowers fake logits
  auto fake_g = torch::tensor({-0.5, 0.25}, opt).requires_grad_(true);
  auto g = hinge_generator_loss(fake_g);
  EXPECT_DOUBLE_EQ(g.item<double>(), 0.125);
  g.backward();
  EXPECT_TRUE((fake_g.grad() < 0).all().item<bool>());  // the generator raises its logits
}

TEST(TrainingLadd, BatchNormLocalAndSpectralNorm) {
  torch::manual_seed(2);
  BatchNormLocal bn(3, /*virtual_batch=*/2);
  auto x = torch::randn({4, 3, 10}) * 3 + 1;
  auto y = bn(x).view({2, 2, 3, 10});
  // Per group and channel: mean 0, biased variance 1 - eps / (var + eps); fp32 sums of 20 values -> 1e-5.
  EXPECT_LT(y.mean({1, 3}).abs().max().item<double>(), 1e-5);
  EXPECT_LT((y.pow(2).mean({1, 3}) - 1).abs().max().item<double>(), 1e-4);
  EXPECT_TRUE(test::throws_with([&] { bn(torch::randn({3, 3, 10})); }, {"equal groups"}));

  SpectralConv1d conv(6, 5, 9);
  conv->train();
  for (int i = 0; i < 200; ++i) conv->normalized_weight();
  auto sv = torch::linalg_svdvals(conv->normalized_weight().flatten(1).detach());
  // Power iteration converges geometrically (ratio (s2/s1)^2); after 200 steps the top singular value is 1 to fp32.
  EXPECT_NEAR(sv[0].item<double>(), 1.0, 1e-4);
  EXPECT_EQ(conv(torch::randn({2, 6, 7})).sizes(), (std::vector<int64_t>{2, 5, 7}));  // circular padding keeps N
}

TEST(TrainingLadd, DiscriminatorOnTinyTeacher) {
  torch::manual_seed(4);
  TransformerConfig c;
  c.in_channels = 4;
  c.out_channels = 4;
  c.num_attention_heads = 2;
  c.attention_head_dim = 8;
  c.num_layers = 3;
  c.num_cross_attention_heads = 2;
  c.cross_attention_head_dim = 8;
  c.cross_attention_dim = 16;
  c.caption_channels = 12;
  c.qk_norm = "rms_norm_across_heads";
  SanaTransformer2DModel teacher(c);
  for (auto& p : teacher->parameters()) p.requires_grad_(false);
  SanaDiscriminator disc(teacher, std::vector<int>{0, 2}, /*virtual_batch=*/2);
  EXPECT_EQ(disc->parameters().size(), 2u * 10u);  // 2 heads x (3 convs x 2 + 2 norms x 2), teacher excluded

  const int64_t B = 4;
  TextCondition text;
  text.enc = torch::randn({B, 5, 12});
  text.mask = torch::ones({B, 5});
  auto gen = make_generator(8);
  auto x0 = (randn(gen, {B, 4, 4, 4}) * kSd).requires_grad_(true);
  auto tD = sample_trigflow_time(gen, B, -0.6, 1.0);
  auto xn = renoise(gen, x0, tD);
  auto logits = disc(xn / kSd, tD, text);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{B, 16 * 2}));  // N = 16 tokens x 2 heads
  hinge_generator_loss(logits).backward();
  // Gradients reach the generator's x0 through the frozen teacher, not the teacher's weights.
  EXPECT_GT(x0.grad().abs().sum().item<double>(), 0.0);
  for (auto& p : teacher->parameters()) EXPECT_FALSE(p.grad().defined());
  EXPECT_TRUE(disc->heads[0]->parameters()[0].grad().defined());
  EXPECT_TRUE(test::throws_with([&] { auto d = SanaDiscriminator(teacher, std::vector<int>{3}); (void)d; }, {"block id 3"}));
}

TEST(TrainingFlowMatching, LossFormulaAndIdealVelocity) {
  auto gen = make_generator(21);
  auto opt = torch::TensorOptions().dtype(torch::kFloat64);
  const double b = 0.6;
  const int64_t B = 4096;
  auto z = randn(gen, {B, 1, 2, 2}, opt) * b;
  auto e = randn(gen, {B, 1, 2, 2}, opt);
  auto s = sample_flow_time(gen, B, FlowTimeScheme::LogitNormal, 0.0, 1.0, opt);
  auto ideal = gaussian_flow(torch::full({B}, b, opt));
  // Formula on the first sample.
  auto zero_model = [](const torch::Tensor& x, const torch::Tensor&) { return torch::zeros_like(x); };
  auto l0 = flow_matching_loss(zero_model, z, e, s);
  EXPECT_NEAR(l0.item<double>(), (e - z).pow(2).mean().item<double>(), 1e-14);
  // The conditional expectation minimises the loss: the ideal velocity beats it scaled by 0.9 or 1.1.
  auto l_ideal = flow_matching_loss(ideal, z, e, s).item<double>();
  for (double k : {0.9, 1.1}) {
    auto scaled = [&](const torch::Tensor& x, const torch::Tensor& ss) { return k * ideal(x, ss); };
    EXPECT_LT(l_ideal, flow_matching_loss(scaled, z, e, s).item<double>());
  }
  auto su = sample_flow_time(gen, 1000, FlowTimeScheme::Uniform);
  EXPECT_GE(su.min().item<double>(), 0.0);
  EXPECT_LT(su.max().item<double>(), 1.0);
}
