// Evaluation metrics of the bundled model's report (`sprint-train eval`) that need no outside weights:
//
//   frechet_distance  Fréchet distance between two feature sets, each modelled as a Gaussian (the FID formula):
//                       FD = ||mu_a - mu_b||^2 + Tr(Ca + Cb - 2 (Ca Cb)^(1/2))
//                     with sample means and unbiased (N - 1) covariances, all in float64. Tr((Ca Cb)^(1/2)) is taken
//                     through the symmetric form Tr(sqrt(Ca^(1/2) Cb Ca^(1/2))), which has the same eigenvalues as
//                     Ca Cb but is symmetric positive semi-definite, so two torch::linalg_eigh calls suffice (no
//                     general matrix square root, no complex values). Eigenvalues below eigh's rounding floor
//                     (D x eps x the largest, which includes the slightly negative ones rounding makes) are set to 0,
//                     and the result is clamped to >= 0 (FD is a squared distance). Works for
//                     singular covariances (N <= D), as a small evaluation set gives; the value is then biased
//                     upwards like any small-N FID, so only numbers with the same N and feature net are comparable.
//
//   edge_f1           Edge adherence: F1 between a reference line map (the condition the model was given) and the
//                     line map of its output. A line pixel of one map counts as matched when the other map has a line
//                     pixel within `tolerance_px` in the Chebyshev sense (a (2 t + 1)^2 square: dilation by
//                     max_pool2d). precision = matched output pixels / output pixels, recall = matched reference
//                     pixels / reference pixels, F1 = 2 P R / (P + R).
//
//   FeatureNet        Our own "Inception" stand-in for the Fréchet distance: a tiny conv net (stride-2 3x3 convs with
//                     SiLU, global average pool -> feature, linear head), trained by `sprint-train classifier` to tell
//                     the dataset's training pictures apart (one class per picture) under the training augmentation.
//                     Its pooled activations are the features; the head is only there for training.
//
//   silhouette_iou    Shape adherence: intersection over union of two (H, W) masks (the filled sketch against the
//                     output's figure, figure_mask in picture_edges.h).
//
//   colour_histogram  A shape-independent descriptor of what a picture shows: the normalised histogram of its figure's
//                     pixels over a 4 x 4 x 4 RGB grid (paper excluded). Prompt fidelity on mismatched sketches is
//                     measured by retrieval with it (colour_retrieval_rank): when the sketch fixes the shape, the
//                     prompt can only show in the colours and the marks inside the outline, and an emoji's palette
//                     names it well (red apple, yellow face, blue heart).
//
//   bootstrap_ci      Percentile bootstrap intervals: a statistic recomputed on resamples (with replacement) of the
//                     evaluation cases, seeded, so each number of the report carries its 95 % interval.
//
// Library code: no I/O; bad input throws sprint::Error naming the argument.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <functional>
#include <vector>

namespace sprint::training {

// a (Na, D), b (Nb, D), any floating dtype, Na, Nb >= 2, all finite. Returns FD >= 0.
double frechet_distance(const torch::Tensor& a, const torch::Tensor& b);

// Per-term breakdown (mean term ||mu_a - mu_b||^2 and covariance term Tr(...)); frechet_distance() is their sum.
struct FrechetTerms {
  double mean_term = 0, cov_term = 0;
};
FrechetTerms frechet_terms(const torch::Tensor& a, const torch::Tensor& b);

// reference_map, output_map: (H, W) uint8, same size; pixels >= 128 are line (maps are 0 / 255). tolerance_px >= 0.
// Empty maps: both empty -> 1 (nothing to draw, nothing drawn); exactly one empty -> 0.
double edge_f1(const torch::Tensor& reference_map, const torch::Tensor& output_map, int tolerance_px);

struct EdgeScores {
  double precision = 0, recall = 0, f1 = 0;
};
EdgeScores edge_scores(const torch::Tensor& reference_map, const torch::Tensor& output_map, int tolerance_px);

// masks (H, W), same size, any dtype; nonzero = inside. Both empty -> 1.
double silhouette_iou(const torch::Tensor& a, const torch::Tensor& b);

// picture (H, W, 3) uint8; figure (H, W) nonzero where the picture's figure is. Returns a (64,) float64 histogram
// summing to 1 (all zeros for an empty figure).
torch::Tensor colour_histogram(const torch::Tensor& picture, const torch::Tensor& figure);

// Hellinger distance between two colour histograms, in [0, 1].
double histogram_distance(const torch::Tensor& a, const torch::Tensor& b);

// The rank (1 = nearest) of `target` among the distinct labels of `gallery` ordered by their nearest histogram's
// distance to `query`: gallery (G, 64) histograms with labels (G) (several pictures may share a label, e.g. two
// drawing styles of one emoji; a label counts once, at its nearest picture). Throws when target is not a label.
int64_t colour_retrieval_rank(const torch::Tensor& query, const torch::Tensor& gallery,
                              const std::vector<int64_t>& labels, int64_t target);

struct Interval {
  double value = 0, lo = 0, hi = 0;  // the statistic on all cases and its percentile interval
};
// Mean of `values` with its bootstrap interval at `level` (e.g. 0.95), from `resamples` resamples seeded by `seed`.
// NaN entries are not allowed; one value gives [v, v].
Interval bootstrap_mean(const std::vector<double>& values, double level = 0.95, int resamples = 2000,
                        uint64_t seed = 0);
// Any statistic of a case set: stat(indices) on the identity and on `resamples` resamples of [0, n).
Interval bootstrap_ci(int64_t n, const std::function<double(const std::vector<int64_t>&)>& stat, double level = 0.95,
                      int resamples = 2000, uint64_t seed = 0);

struct FeatureNetConfig {
  int64_t in_channels = 3;
  std::vector<int64_t> widths{32, 64, 128};  // one stride-2 3x3 conv + SiLU per entry; the last is the feature size
  int64_t num_classes = 1;                   // classifier head (training pictures)
  int64_t resolution = 64;                   // the pixel size it was trained at (and features must be taken at)

  int64_t feature_dim() const { return widths.empty() ? 0 : widths.back(); }
  void validate(const std::string& where) const;  // throws naming `where` and the field
  nlohmann::json to_json() const;
  static FeatureNetConfig from_json(const nlohmann::json& j, const std::string& where);
};

struct FeatureNetImpl : torch::nn::Module {
  explicit FeatureNetImpl(FeatureNetConfig config);
  // images (B, in_channels, H, W) in [-1, 1] -> features (B, feature_dim). Throws on a wrong shape.
  torch::Tensor features(const torch::Tensor& images);
  // images -> class logits (B, num_classes).
  torch::Tensor forward(const torch::Tensor& images);

  FeatureNetConfig config;
  torch::nn::Sequential body{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(FeatureNet);

}  // namespace sprint::training
