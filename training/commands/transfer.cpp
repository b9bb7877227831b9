#include "transfer.h"

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <map>

#include "sprint/error.h"
#include "sprint/scribble.h"
#include "sprint/training/metrics.h"
#include "sprint/training/sketch_style.h"

namespace sprint::training::cli {
namespace {

// (H, W) uint8 mask -> (r, r) uint8 mask (area resize, then > half).
torch::Tensor resize_mask(const torch::Tensor& m, int64_t r) {
  auto in = m.contiguous();
  cv::Mat src(static_cast<int>(in.size(0)), static_cast<int>(in.size(1)), CV_8U, in.data_ptr<uint8_t>()), dst;
  cv::resize(src, dst, cv::Size(static_cast<int>(r), static_cast<int>(r)), 0, 0, cv::INTER_AREA);
  cv::threshold(dst, dst, 127, 255, cv::THRESH_BINARY);
  return torch::from_blob(dst.data, {dst.rows, dst.cols}, torch::kUInt8).clone();
}

std::string percent_kind(double f) { return str("partial ", static_cast<int>(std::lround(f * 100)), " %"); }

}  // namespace

torch::Tensor as_picture(const torch::Tensor& image) {
  return image[0].detach().to(torch::kCPU, torch::kFloat32).clamp(-1, 1).add(1).mul(127.5).round().to(torch::kUInt8)
      .permute({1, 2, 0}).contiguous();
}

torch::Tensor picture_at(const torch::Tensor& pic, int64_t r) {
  if (pic.size(0) == r) return pic;
  auto in = pic.contiguous();
  cv::Mat src(static_cast<int>(in.size(0)), static_cast<int>(in.size(1)), CV_8UC3, in.data_ptr<uint8_t>()), dst;
  cv::resize(src, dst, cv::Size(static_cast<int>(r), static_cast<int>(r)), 0, 0,
             r < src.rows ? cv::INTER_AREA : cv::INTER_CUBIC);
  return torch::from_blob(dst.data, {dst.rows, dst.cols, 3}, torch::kUInt8).clone();
}

TransferOptions read_transfer_options(ConfigFile& cfg) {
  TransferOptions o;
  o.enabled = cfg.get<bool>("transfer.enabled", o.enabled);
  o.mismatched_per_item = cfg.get_range("transfer.mismatched_per_item", o.mismatched_per_item, 0, 100);
  o.hand_drawn = cfg.get_range("transfer.hand_drawn", o.hand_drawn, 0, 100000);
  o.partial = cfg.get<std::vector<double>>("transfer.partial", o.partial);
  for (double f : o.partial)
    if (!(f > 0 && f < 1)) cfg.reject("transfer.partial", str("value ", f, " must be a fraction in (0, 1)"));
  o.max_shape_iou = cfg.get_range("transfer.max_shape_iou", o.max_shape_iou, 0.0, 1.0);
  o.paper_luma = static_cast<int>(cfg.get_range("transfer.paper_luma", int64_t{o.paper_luma}, 1, 255));
  o.top_k = cfg.get_range("transfer.top_k", o.top_k, 1, 1000);
  o.limit = cfg.get_range("transfer.limit", o.limit, 0, int64_t{1} << 30);
  return o;
}

std::vector<std::string> transfer_kinds(const TransferOptions& o) {
  std::vector<std::string> k{"mismatched", "hand-drawn"};
  for (double f : o.partial) k.push_back(percent_kind(f));
  return k;
}

std::vector<TransferCase> make_transfer_cases(const ImageCaptionDataset& held, const PictureEdgeOptions& edges,
                                              const TransferOptions& o, uint64_t seed) {
  std::vector<TransferCase> cases;
  if (!o.enabled) return cases;
  const int64_t n = held.size();
  RowRng rng(seed * 7919 + 13);
  // Figures at canvas size: the mismatched pairs' silhouettes and the "different shape" test.
  std::vector<torch::Tensor> figures;
  for (int64_t i = 0; i < n; ++i) {
    auto fig = figure_mask(held.item(i).image);
    figures.push_back(resize_mask(fig, edges.canvas));
  }
  int64_t made = 0;
  for (int64_t i = 0; i < n && o.mismatched_per_item > 0; ++i) {
    auto map = picture_to_scribble(held.item(i).image, edges);
    for (int64_t k = 0; k < o.mismatched_per_item; ++k) {
      if (o.limit > 0 && made >= o.limit) break;
      // A prompt item of another emoji whose figure differs from this one (tries in a seeded order).
      int64_t j = -1;
      for (int attempt = 0; attempt < 64 && j < 0; ++attempt) {
        const int64_t cand = rng.below(n);
        if (held.item(cand).base_id == held.item(i).base_id) continue;
        if (silhouette_iou(figures[static_cast<size_t>(cand)], figures[static_cast<size_t>(i)]) >= o.max_shape_iou)
          continue;
        j = cand;
      }
      if (j < 0) continue;
      TransferCase c;
      c.kind = "mismatched";
      c.shape = held.item(i).id;
      c.prompt_item = j;
      c.prompt = held.item(j).captions.front();
      c.map = map;
      c.silhouette = figures[static_cast<size_t>(i)];
      cases.push_back(std::move(c));
      ++made;
    }
  }
  const auto& names = hand_drawn_shape_names();
  const int64_t drawn = o.limit > 0 ? std::min(o.limit, o.hand_drawn) : o.hand_drawn;
  std::vector<TransferCase> partials;
  for (int64_t h = 0; h < drawn; ++h) {
    const auto& name = names[static_cast<size_t>(h) % names.size()];
    const int64_t j = rng.below(n);
    auto strokes = hand_drawn_shape(name, edges.canvas, rng);
    auto full = rasterise_strokes(strokes, edges.canvas, 1.0);
    TransferCase c;
    c.kind = "hand-drawn";
    c.shape = name;
    c.prompt_item = j;
    c.prompt = held.item(j).captions.front();
    c.map = stroke_mask_to_scribble(full, edges.thickness);
    c.silhouette = fill_line_silhouette(full);
    for (double f : o.partial) {
      TransferCase p = c;
      p.kind = percent_kind(f);
      p.map = stroke_mask_to_scribble(rasterise_strokes(strokes, edges.canvas, f), edges.thickness);
      partials.push_back(std::move(p));
    }
    cases.push_back(std::move(c));
  }
  // Partial sketches after the whole ones, grouped by fraction.
  for (double f : o.partial)
    for (const auto& p : partials)
      if (p.kind == percent_kind(f)) cases.push_back(p);
  return cases;
}

TransferScorer::TransferScorer(const ImageCaptionDataset& held, int64_t resolution, const TransferOptions& o)
    : resolution_(resolution), o_(o) {
  std::map<std::string, int64_t> label_of;
  std::vector<torch::Tensor> hs;
  for (int64_t i = 0; i < held.size(); ++i) {
    auto pic = picture_at(held.item(i).image, resolution);
    hs.push_back(colour_histogram(pic, figure_mask(pic)));
    labels_.push_back(label_of.emplace(held.item(i).base_id, static_cast<int64_t>(label_of.size())).first->second);
  }
  gallery_ = torch::stack(hs, 0);
}

double TransferScorer::iou(const TransferCase& c, const torch::Tensor& image) const {
  auto fig = figure_mask(as_picture(image), o_.paper_luma);
  return silhouette_iou(resize_mask(c.silhouette, resolution_), fig);
}

double TransferScorer::fidelity(int64_t prompt_item, const torch::Tensor& image) const {
  auto pic = as_picture(image);
  auto h = colour_histogram(pic, figure_mask(pic, o_.paper_luma));
  return colour_retrieval_rank(h, gallery_, labels_, labels_.at(static_cast<size_t>(prompt_item))) <= o_.top_k ? 1.0
                                                                                                               : 0.0;
}

}  // namespace sprint::training::cli
