#include "sprint/training/data.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "sprint/error.h"
#include "sprint/image_io.h"
#include "sprint/scribble.h"
#include "sprint/training/sampling.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace sprint::training {
namespace {

torch::Tensor read_picture(const fs::path& file) {
  auto pixels = read_png(file.string()).pixels;  // throws naming the file when missing or not a PNG
  SPRINT_CHECK(pixels.size(0) == pixels.size(1) && pixels.size(0) >= 16, "image '", file.string(), "' is ",
               pixels.size(1), "x", pixels.size(0), ": the dataset builder writes square pictures of at least 16 px");
  // Gray is spread to RGB; an alpha channel is dropped, not composited (the builder writes opaque RGB).
  if (pixels.size(2) == 1) pixels = pixels.expand({-1, -1, 3});
  return pixels.narrow(2, 0, 3).contiguous();
}

cv::Mat as_mat(const torch::Tensor& t) {
  return cv::Mat(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_8UC3, t.data_ptr<uint8_t>());
}

bool names_a_side(const std::string& caption) {
  for (const char* w : {"left", "right", "clockwise", "leftwards", "rightwards"})
    if (caption.find(w) != std::string::npos) return true;
  return false;
}

double uniform(at::Generator& gen, double lo, double hi) {
  return lo + (hi - lo) * torch::rand({1}, gen, torch::kFloat64).item<double>();
}

}  // namespace

ImageCaptionDataset ImageCaptionDataset::load(const std::string& dir, const std::string& split, int64_t limit) {
  SPRINT_CHECK(split == "train" || split == "heldout" || split == "all", "dataset split '", split,
               "' must be train, heldout or all");
  const fs::path manifest = fs::path(dir) / "manifest.jsonl";
  SPRINT_CHECK(fs::is_directory(dir), "dataset folder '", dir, "' does not exist (build it with "
               "training/data/build_emoji_dataset.py --out ", dir, ")");
  std::ifstream in(manifest);
  SPRINT_CHECK(in, "dataset '", dir, "' has no manifest.jsonl");
  ImageCaptionDataset ds;
  ds.dir_ = dir;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    const std::string where = str(manifest.string(), ":", lineno);
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      throw Error(str(where, ": not valid JSON: ", e.what()));
    }
    SPRINT_CHECK(j.is_object() && j.contains("id") && j.contains("file") && j.contains("split") &&
                     (j.contains("captions") || j.contains("caption")),
                 where, ": a manifest line needs id, file, split and caption(s)");
    if (split != "all" && j["split"] != split) continue;
    DataItem it;
    it.id = j["id"].get<std::string>();
    it.base_id = j.contains("base_id") && j["base_id"].is_string() ? j["base_id"].get<std::string>() : it.id;
    if (j.contains("captions") && j["captions"].is_array())
      for (const auto& c : j["captions"]) it.captions.push_back(c.get<std::string>());
    if (it.captions.empty()) it.captions.push_back(j["caption"].get<std::string>());
    it.image = with_context(where, [&] { return read_picture(fs::path(dir) / j["file"].get<std::string>()); });
    ds.items_.push_back(std::move(it));
    if (limit > 0 && ds.size() >= limit) break;
  }
  SPRINT_CHECK(!ds.items_.empty(), "dataset '", dir, "' has no items in split '", split, "'");
  const auto side = ds.items_.front().image.size(0);
  for (const auto& it : ds.items_)
    SPRINT_CHECK(it.image.size(0) == side, "dataset '", dir, "': image of '", it.id, "' is ", it.image.size(0),
                 " px but the first is ", side, " px");
  return ds;
}

std::vector<std::string> ImageCaptionDataset::all_captions() const {
  std::vector<std::string> out;
  for (const auto& it : items_) out.insert(out.end(), it.captions.begin(), it.captions.end());
  return out;
}

std::vector<int64_t> batch_indices(int64_t n, int64_t batch, int64_t step, uint64_t seed) {
  SPRINT_CHECK(n > 0 && batch > 0, "batch_indices: empty dataset or batch");
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(batch));
  int64_t pos = step * batch;
  int64_t epoch = -1;
  torch::Tensor perm;
  while (static_cast<int64_t>(out.size()) < batch) {
    const int64_t e = pos / n;
    if (e != epoch) {
      auto gen = make_generator(seed * 1000003ULL + static_cast<uint64_t>(e));
      perm = torch::randperm(n, gen, torch::kInt64);
      epoch = e;
    }
    out.push_back(perm[pos % n].item<int64_t>());
    ++pos;
  }
  return out;
}

torch::Tensor picture_to_tensor(const torch::Tensor& picture, int64_t resolution) {
  cv::Mat src = as_mat(picture.contiguous()), dst;
  cv::resize(src, dst, cv::Size(static_cast<int>(resolution), static_cast<int>(resolution)), 0, 0,
             resolution < src.rows ? cv::INTER_AREA : cv::INTER_CUBIC);
  auto t = torch::from_blob(dst.data, {resolution, resolution, 3}, torch::kUInt8).clone();
  return t.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32).div(127.5).sub(1.0);
}

namespace {

Batch assemble(const ImageCaptionDataset& data, const std::vector<int64_t>& indices, int64_t first, int64_t count,
               int64_t resolution, bool conditions, const PictureEdgeOptions& edges, at::Generator* gen,
               const AugmentOptions* aug) {
  SPRINT_CHECK(resolution >= 8, "resolution = ", resolution, " is too small");
  const auto n = static_cast<int64_t>(indices.size());
  SPRINT_CHECK(first >= 0 && count >= 1 && first + count <= n, "make_batch: rows [", first, ", ", first + count,
               ") of a batch of ", n);
  Batch b;
  std::vector<torch::Tensor> imgs, conds;
  for (int64_t row = 0; row < n; ++row) {
    const int64_t idx = indices[static_cast<size_t>(row)];
    const auto& item = data.item(idx);
    const bool keep = row >= first && row < first + count;
    torch::Tensor pic = item.image;
    std::string caption = item.captions.front();
    uint64_t row_seed = 0;
    if (gen && aug && aug->enabled) {
      // The draws (their number and order) depend only on the item and the options, never on `keep`: a rank that
      // builds other rows still advances the generator exactly as the whole batch does. Draws of options that are
      // off are not made, so configs without them give the batches they always gave.
      if (aug->caption_variants && item.captions.size() > 1)
        caption = item.captions[static_cast<size_t>(
            torch::randint(static_cast<int64_t>(item.captions.size()), {1}, *gen).item<int64_t>())];
      const bool flip = aug->flip && !names_a_side(item.captions.front()) && uniform(*gen, 0, 1) < 0.5;
      const double s = uniform(*gen, aug->min_scale, aug->max_scale);
      const double side = static_cast<double>(pic.size(0));
      const double dx = uniform(*gen, -aug->max_shift, aug->max_shift) * side;
      const double dy = uniform(*gen, -aug->max_shift, aug->max_shift) * side;
      const double angle = aug->max_rotate > 0 ? uniform(*gen, -aug->max_rotate, aug->max_rotate) : 0.0;
      const double stretch = aug->max_stretch > 0 ? uniform(*gen, -aug->max_stretch, aug->max_stretch) : 0.0;
      const bool per_row = aug->elastic > 0 || aug->shape_transfer > 0 || (conditions && aug->sketch.enabled);
      if (per_row) row_seed = static_cast<uint64_t>(
          torch::randint(std::numeric_limits<int64_t>::max(), {1}, *gen, torch::kInt64).item<int64_t>());
      if (keep) {
        RowRng rng(row_seed);
        if (aug->shape_transfer > 0 && rng.chance(aug->shape_transfer)) {
          const auto& other = data.item(rng.below(data.size()));
          if (other.image.sizes() == pic.sizes()) pic = cut_into_silhouette(pic, other.image);
        }
        // x' = c + R (S F (x - c)) + d: F flips x, S scales (with the aspect stretch), R rotates.
        const double c = (side - 1) / 2, sx = s * (1 + stretch) * (flip ? -1 : 1), sy = s / (1 + stretch);
        const double th = angle * 3.14159265358979323846 / 180, co = std::cos(th), si = std::sin(th);
        const double a00 = co * sx, a01 = -si * sy, a10 = si * sx, a11 = co * sy;
        cv::Mat m = (cv::Mat_<double>(2, 3) << a00, a01, c - a00 * c - a01 * c + dx, a10, a11,
                     c - a10 * c - a11 * c + dy);
        cv::Mat src = as_mat(pic.contiguous()), dst;
        cv::warpAffine(src, dst, m, src.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar(255, 255, 255));
        if (aug->elastic > 0) {
          auto [mx, my] = smooth_warp_maps(dst.rows, dst.cols, aug->elastic * side, 4, rng);
          cv::Mat cx(dst.rows, dst.cols, CV_32F, mx.data_ptr<float>()), cy(dst.rows, dst.cols, CV_32F, my.data_ptr<float>());
          cv::Mat warped;
          cv::remap(dst, warped, cx, cy, cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar(255, 255, 255));
          dst = warped;
        }
        pic = torch::from_blob(dst.data, {dst.rows, dst.cols, 3}, torch::kUInt8).clone();
      }
      if (aug->caption_dropout > 0 && uniform(*gen, 0, 1) < aug->caption_dropout) caption.clear();
    }
    if (!keep) continue;
    imgs.push_back(picture_to_tensor(pic, resolution));
    if (conditions) {
      // The row's stream continues after the augmentation's draws: a fresh RowRng from the row's seed offset by one,
      // so the sketch's draws never shift the picture's.
      RowRng sketch_rng(row_seed ^ 0x5DEECE66DULL);
      const auto& style = (gen && aug && aug->enabled) ? aug->sketch : SketchStyleOptions{};
      conds.push_back(scribble_to_condition(sketch_of_picture(pic, edges, style, sketch_rng), resolution, resolution));
    }
    b.captions.push_back(caption);
    b.indices.push_back(idx);
  }
  b.images = torch::cat(imgs, 0);
  if (conditions) b.conditions = torch::cat(conds, 0);
  return b;
}

}  // namespace

Batch make_batch(const ImageCaptionDataset& data, const std::vector<int64_t>& indices, int64_t resolution,
                 at::Generator& gen, const AugmentOptions& aug, bool conditions, const PictureEdgeOptions& edges) {
  return assemble(data, indices, 0, static_cast<int64_t>(indices.size()), resolution, conditions, edges, &gen, &aug);
}

Batch make_batch_rows(const ImageCaptionDataset& data, const std::vector<int64_t>& indices, int64_t first,
                      int64_t count, int64_t resolution, at::Generator& gen, const AugmentOptions& aug,
                      bool conditions, const PictureEdgeOptions& edges) {
  return assemble(data, indices, first, count, resolution, conditions, edges, &gen, &aug);
}

Batch make_eval_batch(const ImageCaptionDataset& data, const std::vector<int64_t>& indices, int64_t resolution,
                      bool conditions, const PictureEdgeOptions& edges) {
  return assemble(data, indices, 0, static_cast<int64_t>(indices.size()), resolution, conditions, edges, nullptr,
                  nullptr);
}

}  // namespace sprint::training
