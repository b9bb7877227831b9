// (image, caption, condition map) training data from a dataset folder made by training/data/build_emoji_dataset.py:
//   manifest.jsonl   {"id", "file", "caption", "captions": [...], "split": "train" | "heldout"} per line
//   images/<id>.png  square RGB pictures on white
// Batches are made on the fly: augmentation (flip, shift, scale, rotation, aspect stretch, a smooth elastic warp, and
// cutting a picture into another item's silhouette: geometry only, so colours named in captions stay true), then the
// condition map of the augmented picture, drawn as a person would sketch it (sketch_style.h) through the app's stroke
// path, and scribble_to_condition (the pipeline's condition transform), so training and the app's live sketching
// produce conditions the same way.
// Every random choice comes from the caller's generator: batches are a pure function of (seed, step, generator
// state), which makes --resume bit-identical.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "sprint/picture_edges.h"
#include "sprint/training/sketch_style.h"

namespace sprint::training {

struct DataItem {
  std::string id;
  std::string base_id;                // the emoji this picture draws (manifest "base_id"; = id when absent)
  std::vector<std::string> captions;  // [0] = the canonical caption
  torch::Tensor image;                // (S, S, 3) uint8
};

class ImageCaptionDataset {
 public:
  // split: "train", "heldout" or "all". Throws naming the file for a missing/corrupt manifest line or image, and
  // when the split is empty. limit > 0 keeps the first `limit` items (smoke runs).
  static ImageCaptionDataset load(const std::string& dir, const std::string& split, int64_t limit = 0);

  int64_t size() const { return static_cast<int64_t>(items_.size()); }
  const DataItem& item(int64_t i) const { return items_.at(static_cast<size_t>(i)); }
  const std::string& dir() const { return dir_; }
  std::vector<std::string> all_captions() const;

 private:
  std::string dir_;
  std::vector<DataItem> items_;
};

struct AugmentOptions {
  bool flip = true;            // horizontal; never for captions that name a side (left/right)
  double max_shift = 0.06;     // fraction of the side
  double min_scale = 0.85, max_scale = 1.1;
  double max_rotate = 0.0;       // degrees, uniform in [-max, max]
  double max_stretch = 0.0;      // aspect stretch: x and y scaled by (1 + a) and 1 / (1 + a), a uniform in +-max
  double elastic = 0.0;          // smooth warp (smooth_warp_maps, 4 x 4 lattice), amplitude as a fraction of the side
  double shape_transfer = 0.0;   // probability of cut_into_silhouette with a random other item's shape
  double caption_dropout = 0.0;  // probability of the empty caption (classifier-free guidance)
  bool caption_variants = true;  // draw among the item's captions, else always the canonical one
  bool enabled = true;
  SketchStyleOptions sketch;     // how condition maps are drawn (off: the exact picture_to_scribble map)
};

struct Batch {
  torch::Tensor images;      // (B, 3, R, R) float32 in [-1, 1]
  torch::Tensor conditions;  // (B, 3, R, R) float32 in [-1, 1], or undefined when not requested
  std::vector<std::string> captions;
  std::vector<int64_t> indices;
};

// Indices of the batch at `step`: epochs are seeded permutations (seed + epoch), consumed in order, so the batch of a
// step does not depend on anything but (size, batch, step, seed).
std::vector<int64_t> batch_indices(int64_t dataset_size, int64_t batch, int64_t step, uint64_t seed);

// resolution: the model's pixel size R. conditions: build condition maps with `edges`.
Batch make_batch(const ImageCaptionDataset& data, const std::vector<int64_t>& indices, int64_t resolution,
                 at::Generator& gen, const AugmentOptions& aug, bool conditions, const PictureEdgeOptions& edges);
// Rows [first, first + count) of that batch (a data-parallel rank's slice of the global batch): the augmentation
// and caption choice of EVERY row of `indices` is drawn from `gen` in order, exactly as for the whole batch, but
// only the kept rows are built. So the kept rows equal those rows of the whole batch, and `gen` ends where the
// whole batch would leave it. first = 0, count = indices.size() is make_batch itself.
Batch make_batch_rows(const ImageCaptionDataset& data, const std::vector<int64_t>& indices, int64_t first,
                      int64_t count, int64_t resolution, at::Generator& gen, const AugmentOptions& aug,
                      bool conditions, const PictureEdgeOptions& edges);

// The same without augmentation or caption choice: canonical caption, centred picture (evaluation).
Batch make_eval_batch(const ImageCaptionDataset& data, const std::vector<int64_t>& indices, int64_t resolution,
                      bool conditions, const PictureEdgeOptions& edges);

// (S, S, 3) uint8 picture -> (1, 3, R, R) float in [-1, 1] (area resize).
torch::Tensor picture_to_tensor(const torch::Tensor& picture, int64_t resolution);

}  // namespace sprint::training
