// Condition maps drawn the way people sketch, and the geometry that keeps shape and caption apart.
//
// The first bundled model learnt to ignore the sketch: its condition maps were exact edge maps of the very picture
// the caption names, so the caption alone already fixed the shape. Two things break that link here:
//   - the picture and its condition are warped together (rotation, aspect stretch, a smooth elastic warp: see
//     data.cpp), and some pictures are cut into another item's silhouette (cut_into_silhouette), so the same caption
//     comes with many shapes;
//   - the condition is a sketch, not an edge map: the outline alone for a share of samples, inner lines dropped at
//     random, wobbly lines of varying pen width, and unfinished sketches (the part of the lines a pen sweeping
//     around the figure would have drawn so far), as the canvas looks while someone draws.
// Every random choice comes from a RowRng seeded by the caller (one seed per batch row, drawn from the batch
// generator), so the batch stays a pure function of (seed, step) and the draws never depend on which rows a
// data-parallel rank keeps.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sprint/picture_edges.h"

namespace sprint::training {

// splitmix64: a tiny, portable, seedable stream (the same numbers on every platform and library version).
class RowRng {
 public:
  explicit RowRng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  double uniform(double lo = 0.0, double hi = 1.0);  // [lo, hi)
  int64_t below(int64_t n);                          // [0, n)
  bool chance(double p) { return uniform() < p; }

 private:
  uint64_t state_;
};

struct SketchStyleOptions {
  bool enabled = false;        // off: the plain picture_to_scribble map (the first model's conditions)
  double outline_only = 0.0;   // probability that a sketch is the figure's outline alone
  double drop_inner = 0.0;     // probability of dropping each inner line piece (8-connected component)
  double jitter = 0.0;         // wobble of the lines, amplitude as a fraction of the canvas side
  int min_pen = 4, max_pen = 4;  // pen width range, px at canvas size (uniform)
  double partial = 0.0;        // probability of an unfinished sketch
  double min_partial = 0.3;    // an unfinished sketch keeps an arc of this fraction .. 1 of a full turn
  int min_thickness = kDefaultScribbleThickness, max_thickness = kDefaultScribbleThickness;  // app slider range
};

// A smooth random displacement of an (h, w) image: a coarse `grid` x `grid` lattice of offsets uniform in
// [-amplitude, amplitude] px, upsampled bicubically. Returns the remap tables (x + dx, y + dy) as two (h, w) float32
// OpenCV-ready tensors. amplitude 0 gives the identity.
std::pair<torch::Tensor, torch::Tensor> smooth_warp_maps(int64_t h, int64_t w, double amplitude, int grid, RowRng& rng);

// (H, W, 3) uint8 picture on white -> the scribble map (Hc, Wc) uint8 of a person's sketch of it, per `style`
// (with style.enabled false: picture_to_scribble(picture, edges), no draws).
torch::Tensor sketch_of_picture(const torch::Tensor& picture, const PictureEdgeOptions& edges,
                                const SketchStyleOptions& style, RowRng& rng);

// The content of `picture` (its figure's bounding box, stretched) laid into the silhouette of `shape` (another
// picture of the same size): white outside that silhouette. Both (S, S, 3) uint8 on white. Teaches that a caption's
// colours and texture can fill any outline the user draws.
torch::Tensor cut_into_silhouette(const torch::Tensor& picture, const torch::Tensor& shape);

// ---- Hand-drawn outlines (evaluation) ------------------------------------------------------------------------------

// One pen stroke: points in canvas pixels and the pen radius at each point (uneven pressure).
struct PenStroke {
  std::vector<float> x, y, radius;
};

// The simple shapes and objects of the sketch-transfer evaluation, drawn as an artist would on the app's canvas:
// a few strokes each, with wobble, uneven pressure, a random size, position and tilt. Names: circle, square,
// triangle, star, heart, house, diamond, crescent, cloud, arrow, tree, fish, cup, flag, lightning.
const std::vector<std::string>& hand_drawn_shape_names();
std::vector<PenStroke> hand_drawn_shape(const std::string& name, int canvas, RowRng& rng);

// The strokes rasterised with round caps ((canvas, canvas) uint8, 255 = ink), keeping the first `fraction` of
// their total length in drawing order (1 = the whole sketch; 0.3 = what the canvas shows after 30 % of the drawing).
torch::Tensor rasterise_strokes(const std::vector<PenStroke>& strokes, int canvas, double fraction = 1.0);

}  // namespace sprint::training
