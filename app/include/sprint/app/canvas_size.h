// The sketch canvas size for a generation size: the canvas the user draws on (raster, brush, stroke coordinates,
// condition view, replay) is the size the model's ControlNet was trained with, not necessarily the size it generates.
//
//   sketch_canvas = 0 (SANA releases, the tiny test model): canvas = generation size (1024 canvas for 1024 images);
//   sketch_canvas = S > 0 (sprint_pipeline.json, e.g. 256 for our 64 px emoji model): canvas has the generation
//   aspect with its longer side S; the scribble map is made at that size and the pipeline resizes the request's
//   condition map to the generation size (scribble_to_condition).
// Header-only, no LibTorch: the app and the unit tests share it.
#pragma once

#include <algorithm>
#include <cmath>
#include <utility>

namespace sprint {

// {canvas_width, canvas_height}. gen_w, gen_h > 0. The shorter side is rounded to the nearest pixel (at least 1).
inline std::pair<int, int> sketch_canvas_size(int sketch_canvas, int gen_w, int gen_h) {
  if (sketch_canvas <= 0 || gen_w <= 0 || gen_h <= 0) return {gen_w, gen_h};
  if (gen_w >= gen_h) {
    const int h = std::max(1, static_cast<int>(std::lround(static_cast<double>(sketch_canvas) * gen_h / gen_w)));
    return {sketch_canvas, h};
  }
  const int w = std::max(1, static_cast<int>(std::lround(static_cast<double>(sketch_canvas) * gen_w / gen_h)));
  return {w, sketch_canvas};
}

// The default brush radius for a canvas: a little under 1 % of its longer side (about 8 px at 1024, 2 px at 256:
// a 4 px pen, the width picture_to_scribble inks training pictures with), never below 1 px.
inline float default_brush_radius(int canvas_w, int canvas_h) {
  return std::max(1.0f, static_cast<float>(std::max(canvas_w, canvas_h)) / 128.0f);
}

}  // namespace sprint
