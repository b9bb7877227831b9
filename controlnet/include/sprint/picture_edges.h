// Flat-colour pictures (emoji, clip art) -> the pen drawing an artist would make of them -> the SAME stroke
// conversion the app applies to the user's strokes (stroke_mask_to_scribble in scribble.h).
//
// This is how the training data of our own ControlNets gets its condition maps, so what a model sees in training
// and what the app feeds it while someone draws come out of one function:
//   1. the picture (RGB on white, or RGBA composited on white) is resized to the sketch canvas (`canvas` px on its
//      longer side, bicubic), the size the app's canvas has for that model;
//   2. pen lines: colour edges, the maximum over R, G, B of Canny(blur(channel)) with hysteresis thresholds
//      (low, high) on the 8-bit gradient magnitude (L2 norm), plus the outline of everything that is not paper;
//   3. the lines are inked with a round pen of `pen_width` px (dilation by a disc), as a brush stroke would be;
//   4. stroke_mask_to_scribble(mask, thickness): the user-stroke path, unchanged.
// Deterministic (no randomness, no thread dependence).
#pragma once

#include <torch/types.h>

#include "sprint/scribble.h"

namespace sprint {

struct PictureEdgeOptions {
  int canvas = 256;        // longer side of the sketch canvas, px
  int pen_width = 4;       // px on that canvas (the app's default brush is ~ canvas / 64 wide)
  double low = 40, high = 100;  // Canny hysteresis thresholds
  double blur_sigma = 1.0;      // Gaussian blur before Canny, px at canvas size (0 = none)
  int paper_luma = 245;         // pixels with all channels >= this count as paper for the outline
  int thickness = kDefaultScribbleThickness;
};

// (H, W, 3) RGB or (H, W, 4) RGBA uint8 -> the binary pen-line mask (Hc, Wc) uint8 (255 = ink) at canvas size.
// Equals ink_lines(outline | inner, pen_width) of picture_lines.
torch::Tensor picture_to_stroke_mask(const torch::Tensor& picture, const PictureEdgeOptions& options = {});

// Step 2 alone, as two layers of 1-px lines at canvas size, (Hc, Wc) uint8 with 255 on a line: `outline` is the
// boundary of everything that is not paper, `inner` the colour edges (Canny) that do not lie on that boundary (pixels
// within 2 px of it are left to `outline`). Training draws sketches from these the way people do (outline only, some
// inner lines left out; training/src/sketch_style.cpp).
struct PictureLines {
  torch::Tensor outline, inner;
};
PictureLines picture_lines(const torch::Tensor& picture, const PictureEdgeOptions& options = {});

// Step 3: (H, W) uint8 lines inked with a round pen `pen_width` px wide (a disc dilation; 1 = unchanged).
torch::Tensor ink_lines(const torch::Tensor& lines, int pen_width);

// The figure of a picture on paper: (H, W) uint8, 255 where a pixel is not paper (some channel below paper_luma),
// with the holes that paper-coloured areas leave inside the figure filled (white eyes, a white stripe). The
// silhouette that a filled outline of the picture would have.
torch::Tensor figure_mask(const torch::Tensor& picture, int paper_luma = 245);

// A line drawing's silhouette: (H, W) uint8 lines (nonzero = line) -> 255 inside or on the outermost closed
// outlines, 0 outside. Gaps in an outline up to about `close_px` pixels are bridged (a morphological closing) before
// the inside is filled from the border, so a hand-drawn outline that does not quite meet itself still encloses.
torch::Tensor fill_line_silhouette(const torch::Tensor& lines, int close_px = 5);

// picture_to_stroke_mask then stroke_mask_to_scribble: (Hc, Wc) uint8 scribble map at canvas size (255 on lines).
torch::Tensor picture_to_scribble(const torch::Tensor& picture, const PictureEdgeOptions& options = {});

}  // namespace sprint
