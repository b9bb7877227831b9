// The evaluation metrics of `sprint-train eval` (training/include/sprint/training/metrics.h): Fréchet distance
// against closed forms and an independent eigenvalue route, edge F1 on hand-drawn maps with known answers, and the
// FeatureNet's shapes and config round trip.
//
// Closed forms need feature sets whose SAMPLE mean and covariance are exactly the chosen ones (a random sample of a
// Gaussian only matches its population moments up to O(1/sqrt(N))). make_set() builds them: random rows, centred
// and whitened with the Cholesky factor of their own sample covariance (sample covariance = I up to rounding), then
// coloured with L (covariance L L^T) and shifted by mu. Everything is float64, so the expected agreement is ~1e-10
// relative; the tolerances below are 1e-8 relative, loose enough for eigh rounding at D <= 16 and tight enough that
// any wrong term (a missing factor 2, a biased covariance, an unsquared mean) fails by orders of magnitude.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "sprint/training/metrics.h"
#include "sprint/training/sampling.h"
#include "test_util.h"

using namespace sprint;
using namespace sprint::training;

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kFloat64);

// (n, d) rows with sample mean `mu` (d,) and sample covariance (N - 1 denominator) l l^T exactly.
torch::Tensor make_set(int64_t n, const torch::Tensor& mu, const torch::Tensor& l, uint64_t seed) {
  auto gen = make_generator(seed);
  const int64_t d = mu.size(0);
  auto z = randn(gen, {n, d}, kF64);
  z = z - z.mean(0);
  auto c = z.transpose(0, 1).matmul(z) / static_cast<double>(n - 1);
  auto chol = torch::linalg_cholesky(c);
  // w = z chol^-T: sample covariance chol^-1 c chol^-T = I.
  auto w = torch::linalg_solve_triangular(chol, z.transpose(0, 1), /*upper=*/false).transpose(0, 1);
  return w.matmul(l.transpose(0, 1)) + mu;
}

// Tr((Ca Cb)^(1/2)) the other way: the eigenvalues of the (non-symmetric) product Ca Cb are real and >= 0 (up to
// rounding, which also leaves ~eps-sized values where they are 0: those are dropped like frechet_distance does).
double trace_sqrt_product(const torch::Tensor& ca, const torch::Tensor& cb) {
  auto ev = torch::real(torch::linalg_eigvals(ca.matmul(cb)));
  const double floor = static_cast<double>(ev.size(0)) * 1e-14 * ev.abs().max().item<double>();
  return torch::where(ev > floor, ev, torch::zeros_like(ev)).sqrt().sum().item<double>();
}

torch::Tensor random_lower(int64_t d, uint64_t seed) {
  auto gen = make_generator(seed);
  auto a = randn(gen, {d, d}, kF64);
  return torch::linalg_cholesky(a.matmul(a.transpose(0, 1)) / d + 0.1 * torch::eye(d, kF64));
}

torch::Tensor blank(int64_t h, int64_t w) { return torch::zeros({h, w}, torch::kUInt8); }

// Vertical band of `width` columns starting at column `x0`, rows 4..h-5.
torch::Tensor band(int64_t h, int64_t w, int64_t x0, int64_t width) {
  auto m = blank(h, w);
  m.slice(0, 4, h - 4).slice(1, x0, x0 + width).fill_(255);
  return m;
}

}  // namespace

TEST(MetricsFrechet, IdenticalSetsAreZero) {
  // Same rows: mean term exactly 0; covariance term Tr(2C - 2 sqrt(C^1/2 C C^1/2)) = 0 up to eigh rounding, which is
  // ~D * eps * Tr(C) (here D = 12, Tr(C) ~ 10): 1e-9 x Tr(C) leaves six orders of magnitude of margin.
  auto gen = make_generator(11);
  auto a = randn(gen, {200, 12}, kF64) * 0.9 + 0.3;
  const double tr = torch::cov(a.transpose(0, 1)).trace().item<double>();
  EXPECT_LE(frechet_distance(a, a), 1e-9 * tr);
  EXPECT_NEAR(frechet_terms(a, a).cov_term, 0.0, 1e-9 * tr);
  EXPECT_EQ(frechet_terms(a, a).mean_term, 0.0);
  // float32 input is computed in float64 too.
  EXPECT_LE(frechet_distance(a.to(torch::kFloat32), a.to(torch::kFloat32)), 1e-9 * tr);
}

TEST(MetricsFrechet, DiagonalGaussiansMatchTheClosedForm) {
  // Diagonal covariances commute: FD = ||mu_a - mu_b||^2 + sum_i (sqrt(va_i) - sqrt(vb_i))^2.
  const int64_t d = 6;
  auto va = torch::tensor({0.5, 1.0, 2.0, 0.1, 3.0, 1.5}, kF64);
  auto vb = torch::tensor({1.5, 0.25, 2.0, 0.4, 0.3, 4.0}, kF64);
  auto mu_a = torch::tensor({0.0, 1.0, -2.0, 0.5, 0.0, 3.0}, kF64);
  auto mu_b = torch::tensor({0.3, -1.0, -2.0, 1.5, 0.2, 2.0}, kF64);
  auto a = make_set(300, mu_a, torch::diag(va.sqrt()), 1);
  auto b = make_set(150, mu_b, torch::diag(vb.sqrt()), 2);
  ASSERT_EQ(a.size(1), d);
  const double mean_term = (mu_a - mu_b).pow(2).sum().item<double>();
  const double cov_term = (va.sqrt() - vb.sqrt()).pow(2).sum().item<double>();
  const auto t = frechet_terms(a, b);
  EXPECT_NEAR(t.mean_term, mean_term, 1e-8 * mean_term);
  EXPECT_NEAR(t.cov_term, cov_term, 1e-8 * (cov_term + 1));
  EXPECT_NEAR(frechet_distance(a, b), mean_term + cov_term, 1e-8 * (mean_term + cov_term));
}

TEST(MetricsFrechet, OneDimensionalCase) {
  // D = 1: FD = (m_a - m_b)^2 + (s_a - s_b)^2.
  auto a = make_set(50, torch::tensor({2.0}, kF64), torch::tensor({{3.0}}, kF64), 3);
  auto b = make_set(70, torch::tensor({-1.0}, kF64), torch::tensor({{0.5}}, kF64), 4);
  const double expected = 9.0 + 2.5 * 2.5;
  EXPECT_NEAR(frechet_distance(a, b), expected, 1e-9 * expected);
}

TEST(MetricsFrechet, FullCovariancesMatchTheEigenvalueRoute) {
  // Non-commuting covariances: compare with Tr((Ca Cb)^1/2) from the eigenvalues of the product itself.
  const int64_t d = 10;
  auto la = random_lower(d, 5), lb = random_lower(d, 6);
  auto gen = make_generator(7);
  auto mu_a = randn(gen, {d}, kF64), mu_b = randn(gen, {d}, kF64);
  auto a = make_set(400, mu_a, la, 8);
  auto b = make_set(90, mu_b, lb, 9);
  auto ca = la.matmul(la.transpose(0, 1)), cb = lb.matmul(lb.transpose(0, 1));
  const double expected = (mu_a - mu_b).pow(2).sum().item<double>() + ca.trace().item<double>() +
                          cb.trace().item<double>() - 2 * trace_sqrt_product(ca, cb);
  EXPECT_NEAR(frechet_distance(a, b), expected, 1e-8 * expected);
}

TEST(MetricsFrechet, SingularCovarianceFewerRowsThanDims) {
  // N = 5 rows in D = 16 (rank-4 covariances), as a small held-out set gives. The eigenvalue route agrees and a
  // set against a shifted copy of itself gives exactly the mean term.
  auto gen = make_generator(12);
  auto a = randn(gen, {5, 16}, kF64);
  auto b = randn(gen, {5, 16}, kF64) * 1.7;
  auto ca = torch::cov(a.transpose(0, 1)), cb = torch::cov(b.transpose(0, 1));
  const double expected = (a.mean(0) - b.mean(0)).pow(2).sum().item<double>() + ca.trace().item<double>() +
                          cb.trace().item<double>() - 2 * trace_sqrt_product(ca, cb);
  EXPECT_NEAR(frechet_distance(a, b), expected, 1e-7 * expected);
  auto shift = torch::full({16}, 0.25, kF64);
  EXPECT_NEAR(frechet_distance(a, a + shift), 16 * 0.0625, 1e-8);
}

TEST(MetricsFrechet, Symmetric) {
  auto gen = make_generator(13);
  auto a = randn(gen, {80, 8}, kF64) * 2.0;
  auto b = randn(gen, {60, 8}, kF64).matmul(random_lower(8, 14).transpose(0, 1)) + 1.0;
  const double ab = frechet_distance(a, b), ba = frechet_distance(b, a);
  EXPECT_GT(ab, 1.0);
  EXPECT_NEAR(ab, ba, 1e-9 * ab);
}

TEST(MetricsFrechet, RejectsBadInput) {
  auto a = torch::randn({10, 4}, kF64), b = torch::randn({10, 5}, kF64);
  EXPECT_TRUE(test::throws_with([&] { frechet_distance(a, b); }, {"differ in dimension", "[10, 4]", "[10, 5]"}));
  EXPECT_TRUE(test::throws_with([&] { frechet_distance(torch::randn({10}), a); }, {"'a'", "(N, D)"}));
  EXPECT_TRUE(test::throws_with([&] { frechet_distance(a, torch::randn({1, 4})); }, {"'b'", "at least 2"}));
  auto nan = a.clone();
  nan[3][1] = std::nan("");
  EXPECT_TRUE(test::throws_with([&] { frechet_distance(nan, a); }, {"'a'", "NaN"}));
  EXPECT_TRUE(test::throws_with([&] { frechet_distance(a, torch::ones({10, 4}, torch::kInt64)); },
                                {"'b'", "floating point"}));
}

TEST(MetricsEdgeF1, IdenticalMapsScoreOne) {
  auto m = band(32, 32, 10, 3);
  m.slice(0, 20, 22).slice(1, 2, 30).fill_(255);
  for (int tol : {0, 1, 3}) EXPECT_DOUBLE_EQ(edge_f1(m, m, tol), 1.0) << "tolerance " << tol;
}

TEST(MetricsEdgeF1, FarApartMapsScoreZero) {
  EXPECT_DOUBLE_EQ(edge_f1(band(32, 48, 4, 2), band(32, 48, 40, 2), 3), 0.0);
}

TEST(MetricsEdgeF1, ShiftWithinAndBeyondTolerance) {
  // A 1-px line shifted by 1 px: fully matched at tolerance 1, not at all at tolerance 0.
  auto ref = band(24, 24, 8, 1), out = band(24, 24, 9, 1);
  EXPECT_DOUBLE_EQ(edge_f1(ref, out, 1), 1.0);
  EXPECT_DOUBLE_EQ(edge_f1(ref, out, 0), 0.0);
  // A 3-px band shifted by 3 px at tolerance 1: ref columns 8..10 dilate to 7..11, so 1 of the output's 3 columns
  // (11..13) matches; symmetrically 1 of 3 for recall: P = R = F1 = 1/3.
  auto ref3 = band(24, 24, 8, 3), out3 = band(24, 24, 11, 3);
  const auto s = edge_scores(ref3, out3, 1);
  EXPECT_NEAR(s.precision, 1.0 / 3, 1e-12);
  EXPECT_NEAR(s.recall, 1.0 / 3, 1e-12);
  EXPECT_NEAR(s.f1, 1.0 / 3, 1e-12);
  EXPECT_LT(edge_f1(ref, band(24, 24, 11, 1), 2), 1.0);
  // Asymmetric case: output = reference plus a far stray line of equal size: P = 1/2, R = 1, F1 = 2/3.
  auto stray = ref.clone();
  stray.slice(0, 4, 20).slice(1, 20, 21).fill_(255);
  const auto s2 = edge_scores(ref, stray, 1);
  EXPECT_NEAR(s2.precision, 0.5, 1e-12);
  EXPECT_NEAR(s2.recall, 1.0, 1e-12);
  EXPECT_NEAR(s2.f1, 2.0 / 3, 1e-12);
}

TEST(MetricsEdgeF1, EmptyMapRules) {
  EXPECT_DOUBLE_EQ(edge_f1(blank(16, 16), blank(16, 16), 2), 1.0);
  EXPECT_DOUBLE_EQ(edge_f1(band(16, 16, 4, 2), blank(16, 16), 2), 0.0);
  EXPECT_DOUBLE_EQ(edge_f1(blank(16, 16), band(16, 16, 4, 2), 2), 0.0);
  // Values below 128 are paper.
  EXPECT_DOUBLE_EQ(edge_f1(band(16, 16, 4, 2), torch::full({16, 16}, 127, torch::kUInt8), 2), 0.0);
}

TEST(MetricsEdgeF1, RejectsBadInput) {
  EXPECT_TRUE(test::throws_with([] { edge_f1(blank(16, 16), blank(16, 17), 1); }, {"differ in size", "[16, 17]"}));
  EXPECT_TRUE(test::throws_with([] { edge_f1(torch::zeros({16, 16}), blank(16, 16), 1); },
                                {"reference_map", "uint8"}));
  EXPECT_TRUE(test::throws_with([] { edge_f1(blank(16, 16), torch::zeros({1, 16, 16}, torch::kUInt8), 1); },
                                {"output_map", "(H, W)"}));
  EXPECT_TRUE(test::throws_with([] { edge_f1(blank(16, 16), blank(16, 16), -1); }, {"tolerance_px", ">= 0"}));
}

TEST(MetricsFeatureNet, OutputShapes) {
  FeatureNetConfig c;
  c.widths = {8, 16, 24};
  c.num_classes = 7;
  FeatureNet net(c);
  auto x = torch::rand({5, 3, 64, 64}) * 2 - 1;
  auto f = net->features(x);
  EXPECT_EQ(f.sizes(), (std::vector<int64_t>{5, 24}));
  EXPECT_EQ(net->forward(x).sizes(), (std::vector<int64_t>{5, 7}));
  EXPECT_EQ(c.feature_dim(), 24);
  // Global pooling: any size works, one picture gives one row.
  EXPECT_EQ(net->features(x.slice(0, 0, 1).slice(2, 0, 32).slice(3, 0, 32)).sizes(), (std::vector<int64_t>{1, 24}));
  EXPECT_TRUE(test::throws_with([&] { net->features(torch::zeros({2, 1, 64, 64})); }, {"FeatureNet", "(B, 3, H, W)"}));
}

TEST(MetricsFeatureNet, ConfigRoundTripAndValidation) {
  FeatureNetConfig c;
  c.widths = {16, 32};
  c.num_classes = 12;
  c.resolution = 32;
  const auto back = FeatureNetConfig::from_json(c.to_json(), "test");
  EXPECT_EQ(back.widths, c.widths);
  EXPECT_EQ(back.num_classes, 12);
  EXPECT_EQ(back.resolution, 32);
  EXPECT_EQ(back.in_channels, 3);
  auto j = c.to_json();
  j["num_classes"] = 0;
  EXPECT_TRUE(test::throws_with([&] { FeatureNetConfig::from_json(j, "cfg.json"); }, {"cfg.json", "num_classes"}));
  j = c.to_json();
  j["feature_dim"] = 99;
  EXPECT_TRUE(test::throws_with([&] { FeatureNetConfig::from_json(j, "cfg.json"); }, {"feature_dim", "32"}));
  j = c.to_json();
  j.erase("widths");
  EXPECT_TRUE(test::throws_with([&] { FeatureNetConfig::from_json(j, "cfg.json"); }, {"widths"}));
}
