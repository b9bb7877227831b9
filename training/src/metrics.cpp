#include "sprint/training/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include <ATen/CPUGeneratorImpl.h>

#include "sprint/error.h"

namespace sprint::training {
namespace {

// Eigenvalues of a symmetric PSD matrix below eigh's rounding floor (D x eps x the largest one) set to 0: they are
// indistinguishable from 0, and left in place their square roots (~sqrt(eps) each) would add up to a visible bias in
// Tr(sqrt(.)) when the matrix is singular (fewer samples than dimensions).
torch::Tensor floor_eigenvalues(const torch::Tensor& l) {
  const double floor = static_cast<double>(l.size(0)) * std::numeric_limits<double>::epsilon() *
                       l.abs().max().item<double>();
  return torch::where(l > floor, l, torch::zeros_like(l));
}

// Symmetric PSD square root through eigh: V diag(sqrt(l)) V^T with the eigenvalues floored as above.
torch::Tensor psd_sqrt(const torch::Tensor& c) {
  auto [l, v] = torch::linalg_eigh(c);
  return (v * floor_eigenvalues(l).sqrt().unsqueeze(0)).matmul(v.transpose(0, 1));
}

void check_features(const torch::Tensor& x, const char* name) {
  SPRINT_CHECK(x.defined(), "frechet_distance: feature set '", name, "' is undefined");
  SPRINT_CHECK(x.dim() == 2, "frechet_distance: feature set '", name, "' must be (N, D), got ", x.dim(), " dims ",
               shape_str(x.sizes().vec()));
  SPRINT_CHECK(x.is_floating_point(), "frechet_distance: feature set '", name, "' must be floating point");
  SPRINT_CHECK(x.size(0) >= 2, "frechet_distance: feature set '", name, "' has ", x.size(0),
               " rows; a covariance needs at least 2");
  SPRINT_CHECK(x.size(1) >= 1, "frechet_distance: feature set '", name, "' has no feature columns");
  SPRINT_CHECK(torch::isfinite(x).all().item<bool>(), "frechet_distance: feature set '", name,
               "' holds NaN or Inf values");
}

void check_map(const torch::Tensor& m, const char* name) {
  SPRINT_CHECK(m.defined(), "edge_f1: '", name, "' is undefined");
  SPRINT_CHECK(m.dim() == 2 && m.scalar_type() == torch::kUInt8, "edge_f1: '", name,
               "' must be an (H, W) uint8 map, got ", m.dim(), " dims ", shape_str(m.sizes().vec()), " of ",
               m.scalar_type());
}

// Pixels within `t` (Chebyshev) of a line pixel of `mask`: max_pool2d with a (2t + 1)^2 window.
torch::Tensor dilate(const torch::Tensor& mask, int t) {
  if (t == 0) return mask;
  auto f = mask.to(torch::kFloat32).unsqueeze(0).unsqueeze(0);
  return torch::max_pool2d(f, {2 * t + 1, 2 * t + 1}, {1, 1}, {t, t}).squeeze(0).squeeze(0).gt(0.5);
}

}  // namespace

FrechetTerms frechet_terms(const torch::Tensor& a, const torch::Tensor& b) {
  check_features(a, "a");
  check_features(b, "b");
  SPRINT_CHECK(a.size(1) == b.size(1), "frechet_distance: the feature sets differ in dimension: a is ",
               shape_str(a.sizes().vec()), ", b is ", shape_str(b.sizes().vec()), " (same feature net?)");
  torch::NoGradGuard ng;
  auto x = a.to(torch::kCPU, torch::kFloat64);
  auto y = b.to(torch::kCPU, torch::kFloat64);
  auto mu_a = x.mean(0), mu_b = y.mean(0);
  auto xc = x - mu_a, yc = y - mu_b;
  auto ca = xc.transpose(0, 1).matmul(xc) / static_cast<double>(x.size(0) - 1);
  auto cb = yc.transpose(0, 1).matmul(yc) / static_cast<double>(y.size(0) - 1);
  auto sa = psd_sqrt(ca);
  auto m = sa.matmul(cb).matmul(sa);
  m = (m + m.transpose(0, 1)) * 0.5;  // exact symmetry for eigh
  const double tr_sqrt = floor_eigenvalues(torch::linalg_eigvalsh(m)).sqrt().sum().item<double>();
  FrechetTerms t;
  t.mean_term = (mu_a - mu_b).pow(2).sum().item<double>();
  t.cov_term = ca.trace().item<double>() + cb.trace().item<double>() - 2.0 * tr_sqrt;
  return t;
}

double silhouette_iou(const torch::Tensor& a, const torch::Tensor& b) {
  SPRINT_CHECK(a.defined() && b.defined() && a.dim() == 2 && a.sizes() == b.sizes(),
               "silhouette_iou: expected two (H, W) masks of one size, got ", shape_str(a.sizes().vec()), " and ",
               shape_str(b.sizes().vec()));
  auto x = a.ne(0), y = b.ne(0);
  const double inter = (x & y).sum().item<double>(), uni = (x | y).sum().item<double>();
  return uni == 0 ? 1.0 : inter / uni;
}

torch::Tensor colour_histogram(const torch::Tensor& picture, const torch::Tensor& figure) {
  SPRINT_CHECK(picture.dim() == 3 && picture.size(2) == 3 && picture.scalar_type() == torch::kUInt8 &&
                   figure.dim() == 2 && figure.size(0) == picture.size(0) && figure.size(1) == picture.size(1),
               "colour_histogram: expected an (H, W, 3) uint8 picture and an (H, W) figure, got ",
               shape_str(picture.sizes().vec()), " and ", shape_str(figure.sizes().vec()));
  auto px = picture.reshape({-1, 3}).to(torch::kInt64).div(64, "floor");  // 4 levels per channel
  auto bins = px.select(1, 0) * 16 + px.select(1, 1) * 4 + px.select(1, 2);
  auto keep = figure.reshape({-1}).ne(0);
  auto h = torch::zeros({64}, torch::kFloat64);
  auto chosen = bins.masked_select(keep);
  if (chosen.numel() == 0) return h;
  h.index_add_(0, chosen, torch::ones({chosen.numel()}, torch::kFloat64));
  return h / h.sum();
}

double histogram_distance(const torch::Tensor& a, const torch::Tensor& b) {
  SPRINT_CHECK(a.numel() == 64 && b.numel() == 64, "histogram_distance: expected two 64-bin histograms");
  const double bc = (a.to(torch::kFloat64) * b.to(torch::kFloat64)).clamp_min(0).sqrt().sum().item<double>();
  return std::sqrt(std::max(0.0, 1.0 - bc));
}

int64_t colour_retrieval_rank(const torch::Tensor& query, const torch::Tensor& gallery,
                              const std::vector<int64_t>& labels, int64_t target) {
  SPRINT_CHECK(gallery.dim() == 2 && gallery.size(1) == 64 && gallery.size(0) == static_cast<int64_t>(labels.size()),
               "colour_retrieval_rank: gallery ", shape_str(gallery.sizes().vec()), " with ", labels.size(),
               " labels");
  std::map<int64_t, double> best;  // label -> nearest distance
  for (int64_t g = 0; g < gallery.size(0); ++g) {
    const double d = histogram_distance(query, gallery[g]);
    auto [it, fresh] = best.emplace(labels[static_cast<size_t>(g)], d);
    if (!fresh) it->second = std::min(it->second, d);
  }
  auto t = best.find(target);
  SPRINT_CHECK(t != best.end(), "colour_retrieval_rank: target label ", target, " is not in the gallery");
  int64_t rank = 1;
  for (const auto& [label, d] : best)
    if (label != target && (d < t->second || (d == t->second && label < target))) ++rank;
  return rank;
}

Interval bootstrap_ci(int64_t n, const std::function<double(const std::vector<int64_t>&)>& stat, double level,
                      int resamples, uint64_t seed) {
  SPRINT_CHECK(n >= 1 && level > 0 && level < 1 && resamples >= 10, "bootstrap_ci: n = ", n, ", level = ", level,
               ", resamples = ", resamples);
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[static_cast<size_t>(i)] = i;
  Interval out;
  out.value = stat(idx);
  std::vector<double> draws;
  draws.reserve(static_cast<size_t>(resamples));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (int r = 0; r < resamples; ++r) {
    auto pick = torch::randint(n, {n}, gen, torch::kInt64);
    const auto* p = pick.data_ptr<int64_t>();
    std::vector<int64_t> sample(p, p + n);
    draws.push_back(stat(sample));
  }
  std::sort(draws.begin(), draws.end());
  auto at_q = [&](double q) {
    const double pos = q * static_cast<double>(draws.size() - 1);
    const auto lo = static_cast<size_t>(std::floor(pos));
    const auto hi = std::min(draws.size() - 1, lo + 1);
    return draws[lo] + (pos - static_cast<double>(lo)) * (draws[hi] - draws[lo]);
  };
  out.lo = at_q((1 - level) / 2);
  out.hi = at_q(1 - (1 - level) / 2);
  return out;
}

Interval bootstrap_mean(const std::vector<double>& values, double level, int resamples, uint64_t seed) {
  SPRINT_CHECK(!values.empty(), "bootstrap_mean: no values");
  for (double v : values) SPRINT_CHECK(std::isfinite(v), "bootstrap_mean: a value is not finite");
  return bootstrap_ci(static_cast<int64_t>(values.size()), [&](const std::vector<int64_t>& idx) {
    double sum = 0;
    for (auto i : idx) sum += values[static_cast<size_t>(i)];
    return sum / static_cast<double>(idx.size());
  }, level, resamples, seed);
}

double frechet_distance(const torch::Tensor& a, const torch::Tensor& b) {
  const auto t = frechet_terms(a, b);
  return std::max(0.0, t.mean_term + t.cov_term);
}

EdgeScores edge_scores(const torch::Tensor& reference_map, const torch::Tensor& output_map, int tolerance_px) {
  SPRINT_CHECK(tolerance_px >= 0, "edge_f1: tolerance_px = ", tolerance_px, " must be >= 0");
  check_map(reference_map, "reference_map");
  check_map(output_map, "output_map");
  SPRINT_CHECK(reference_map.sizes() == output_map.sizes(), "edge_f1: the maps differ in size: reference ",
               shape_str(reference_map.sizes().vec()), ", output ", shape_str(output_map.sizes().vec()));
  torch::NoGradGuard ng;
  auto ref = reference_map.to(torch::kCPU).ge(128);
  auto out = output_map.to(torch::kCPU).ge(128);
  const double n_ref = static_cast<double>(ref.sum().item<int64_t>());
  const double n_out = static_cast<double>(out.sum().item<int64_t>());
  EdgeScores s;
  if (n_ref == 0 && n_out == 0) {
    s.precision = s.recall = s.f1 = 1.0;
    return s;
  }
  if (n_ref == 0 || n_out == 0) {
    // Nothing to match against: the non-empty side scores 0, the empty side's ratio is undefined and set to 0 too.
    return s;
  }
  s.precision = static_cast<double>(out.logical_and(dilate(ref, tolerance_px)).sum().item<int64_t>()) / n_out;
  s.recall = static_cast<double>(ref.logical_and(dilate(out, tolerance_px)).sum().item<int64_t>()) / n_ref;
  s.f1 = s.precision + s.recall > 0 ? 2 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
  return s;
}

double edge_f1(const torch::Tensor& reference_map, const torch::Tensor& output_map, int tolerance_px) {
  return edge_scores(reference_map, output_map, tolerance_px).f1;
}

void FeatureNetConfig::validate(const std::string& where) const {
  SPRINT_CHECK(in_channels >= 1 && in_channels <= 16, where, ": 'in_channels' = ", in_channels, " must be in 1..16");
  SPRINT_CHECK(!widths.empty() && widths.size() <= 8, where, ": 'widths' must list 1 to 8 layer widths");
  for (auto w : widths) SPRINT_CHECK(w >= 1 && w <= 4096, where, ": 'widths' value ", w, " must be in 1..4096");
  SPRINT_CHECK(num_classes >= 1, where, ": 'num_classes' = ", num_classes, " must be >= 1");
  SPRINT_CHECK(resolution >= 8, where, ": 'resolution' = ", resolution, " must be >= 8");
}

nlohmann::json FeatureNetConfig::to_json() const {
  return {{"_class_name", "FeatureNet"},
          {"in_channels", in_channels},
          {"widths", widths},
          {"num_classes", num_classes},
          {"resolution", resolution},
          {"feature_dim", feature_dim()}};
}

FeatureNetConfig FeatureNetConfig::from_json(const nlohmann::json& j, const std::string& where) {
  SPRINT_CHECK(j.is_object(), where, ": a FeatureNet config must be a JSON object");
  FeatureNetConfig c;
  auto read_int = [&](const char* key, int64_t& out) {
    SPRINT_CHECK(j.contains(key), where, ": '", key, "' is missing");
    SPRINT_CHECK(j[key].is_number_integer(), where, ": '", key, "' must be an integer, got ", j[key].dump());
    out = j[key].get<int64_t>();
  };
  read_int("in_channels", c.in_channels);
  read_int("num_classes", c.num_classes);
  read_int("resolution", c.resolution);
  SPRINT_CHECK(j.contains("widths") && j["widths"].is_array(), where, ": 'widths' must be a list of integers");
  c.widths.clear();
  for (const auto& w : j["widths"]) {
    SPRINT_CHECK(w.is_number_integer(), where, ": 'widths' holds ", w.dump(), ", not an integer");
    c.widths.push_back(w.get<int64_t>());
  }
  if (j.contains("feature_dim"))
    SPRINT_CHECK(j["feature_dim"].is_number_integer() && j["feature_dim"].get<int64_t>() == c.feature_dim(), where,
                 ": 'feature_dim' = ", j["feature_dim"].dump(), " disagrees with the last width ", c.feature_dim());
  c.validate(where);
  return c;
}

FeatureNetImpl::FeatureNetImpl(FeatureNetConfig c) : config(std::move(c)) {
  config.validate("FeatureNet");
  body = torch::nn::Sequential();
  int64_t in = config.in_channels;
  for (auto w : config.widths) {
    body->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, w, 3).stride(2).padding(1)));
    body->push_back(torch::nn::SiLU());
    in = w;
  }
  register_module("body", body);
  head = register_module("head", torch::nn::Linear(in, config.num_classes));
}

torch::Tensor FeatureNetImpl::features(const torch::Tensor& images) {
  SPRINT_CHECK(images.defined() && images.dim() == 4 && images.size(1) == config.in_channels,
               "FeatureNet: images must be (B, ", config.in_channels, ", H, W), got ",
               images.defined() ? shape_str(images.sizes().vec()) : std::string("undefined"));
  return body->forward(images).mean({2, 3});
}

torch::Tensor FeatureNetImpl::forward(const torch::Tensor& images) { return head->forward(features(images)); }

}  // namespace sprint::training
