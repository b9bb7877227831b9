// The sketch-transfer set of `sprint-train eval`: what an artist does, which the matched held-out pairs cannot show.
// A model that draws the caption's usual picture and ignores the sketch scores well on matched pairs (the caption
// already gives the shape); these cases give it a shape the caption does not:
//   mismatched   the condition map of one held-out item with the caption of another held-out item of a different
//                shape (figure IoU below `transfer.max_shape_iou`);
//   hand-drawn   simple shapes and objects drawn as strokes with wobble and uneven pressure (sketch_style.h
//                hand_drawn_shape), rasterised and turned into a condition map by the app's stroke path
//                (stroke_mask_to_scribble), with the caption of a random held-out item;
//   partial N %  the same hand-drawn sketches cut after the first N % of their stroke length, as the canvas looks
//                while someone draws (their target silhouette stays the whole shape: what the artist is drawing).
// Metrics per case: silhouette IoU (the filled sketch against the output's figure), edge F1 against the sketch, and
// prompt fidelity (colour retrieval of the prompt's item among the held-out items, top 5; metrics.h).
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "sprint/picture_edges.h"
#include "sprint/training/config_file.h"
#include "sprint/training/data.h"

namespace sprint::training::cli {

struct TransferOptions {
  bool enabled = true;
  int64_t mismatched_per_item = 2;     // mismatched pairs per held-out item (as the shape)
  int64_t hand_drawn = 120;            // hand-drawn sketches (shapes cycle through hand_drawn_shape_names())
  std::vector<double> partial{0.3, 0.6};
  double max_shape_iou = 0.6;          // a mismatched pair's two figures overlap less than this
  int paper_luma = 235;                // output pixels with every channel >= this are paper (figure_mask)
  int64_t top_k = 5;                   // prompt fidelity: the prompt's item among the k nearest
  int64_t limit = 0;                   // > 0: only the first `limit` cases of each kind (smoke runs)
};
// Reads the `transfer.*` keys.
TransferOptions read_transfer_options(ConfigFile& cfg);

struct TransferCase {
  std::string kind;     // "mismatched", "hand-drawn", "partial 30 %", ...
  std::string shape;    // the shape's name: an item id or a hand-drawn shape name
  std::string prompt;
  int64_t prompt_item = -1;  // held-out index of the prompt's item
  torch::Tensor map;         // (canvas, canvas) uint8 scribble map the model is given
  torch::Tensor silhouette;  // (canvas, canvas) uint8 target silhouette (255 inside)
};
std::vector<TransferCase> make_transfer_cases(const ImageCaptionDataset& held, const PictureEdgeOptions& edges,
                                              const TransferOptions& o, uint64_t seed);
// (1, 3, R, R) in [-1, 1] -> (R, R, 3) uint8 on the CPU.
torch::Tensor as_picture(const torch::Tensor& image);
// (S, S, 3) uint8 -> (r, r, 3) (area resize when shrinking, bicubic when growing; the same tensor when S = r).
torch::Tensor picture_at(const torch::Tensor& picture, int64_t r);

// The kinds in report order.
std::vector<std::string> transfer_kinds(const TransferOptions& o);

// Scores outputs: the gallery of held-out colour histograms (labels: the items' base ids, so an emoji's two drawing
// styles count as one) and the output-side figure extraction.
class TransferScorer {
 public:
  TransferScorer(const ImageCaptionDataset& held, int64_t resolution, const TransferOptions& o);
  // image (1, 3, R, R) in [-1, 1].
  double iou(const TransferCase& c, const torch::Tensor& image) const;
  // 1 when the prompt item's label is among the top_k nearest labels of the output's colours, else 0.
  double fidelity(int64_t prompt_item, const torch::Tensor& image) const;

 private:
  torch::Tensor gallery_;
  std::vector<int64_t> labels_;
  int64_t resolution_;
  TransferOptions o_;
};

}  // namespace sprint::training::cli
