// Scribble condition maps for the HED/scribble ControlNet: white (255) lines on black, the way the NVlabs sketch
// demo's `get_scribble_map(det="Scribble_HED", thickness=t)` produces them, and their conversion into the image
// tensor the VAE encoder takes.
// Reference: https://github.com/NVlabs/Sana/blob/main/tools/controlnet/utils.py (get_scribble_map,
//            transform_control_signal);
//            https://github.com/huggingface/controlnet_aux/blob/master/src/controlnet_aux/util.py (HWC3, nms).
// Maths: docs/maths.md#scribble and #condition-image.
//
// Reference pipeline (photo or sketch, see hed.h: photo_to_scribble):
//   HWC3 -> HED network -> soft edge map e (uint8) -> nms(e, 127, 3.0) -> GaussianBlur(sigma 3) -> > 4 ? 255 : 0
//   -> thickness: 0 erode 4x4; 1 unchanged; t > 1 dilate (t/2)x(t/2)  (so 2 and 3 change nothing, 4 dilates 2x2).
// nms: blur e as float32 with sigma 3 (25 taps), keep a pixel that equals the max of its 3-pixel line through it in
// any of 4 directions (horizontal, vertical, both diagonals) and is > 127. Its output is a thin (about 1-2 px) ridge
// line, which the following 19-tap uint8 blur + "> 4" widens to a band of 11 px (|d| <= 5 around a straight 1-px
// ridge: the blurred profile is 34 32 28 20 14 9 4 ..., so |d| = 6 gives exactly 4; an isolated pixel peaks at 4 and
// disappears). All OpenCV calls here use the reference's arguments and
// default borders (reflect-101 for the blurs), so the post-processing is the reference's, bit for bit on uint8.
//
// Our own strokes (sketch_to_scribble, stroke_mask_to_scribble) do NOT go through an edge network
// (docs/maths.md#stroke-scribble: the live app calls this on every stroke change; HED at 1024^2 costs far more than
// a frame's budget on a CPU). We replace "HED + nms" by a geometric stand-in and keep the rest of the
// post-processing unchanged:
//   1. ink mask: luma < 128 (BT.601, RGBA composited on white as HWC3 does), or the caller's binary mask;
//   2. rim = ink minus its erosion by a radius-4 octagon (3x3 square / 3x3 cross alternately, 4 times). Strokes up
//      to 8 px wide have no interior and stay whole; wider shapes keep a 4 px band along their outline. This is
//      what HED does: on a thin line (< ~6 px at 1024) its two side responses merge into one ridge under nms's
//      sigma-3 blur (two Gaussians closer than 2 sigma have one maximum), while a wide or filled shape gives its
//      outline, not its medial axis;
//   3. thin the rim to a 1-px 8-connected skeleton (Zhang-Suen, bit-parallel; the tip of a 2-px diagonal counts as
//      an end point so such lines do not unravel; 4-connected staircases are cleaned to 8-connected lines so
//      diagonal strokes do not blur wider than straight ones);
//   4. the reference's GaussianBlur(sigma 3) -> > 4 -> thickness, unchanged.
// Deviations from real HED-scribble on the same drawing (not measured against the real HED weights here; compare
// when ControlNetHED.pth is available):
//   - line placement: our line is the stroke's centreline (thin strokes) or sits ~2 px inside the outline (wide
//     shapes); HED's ridge is at the centreline / on the boundary;
//   - nms's plateau quirk: for exactly horizontal, vertical or 45-degree straight strokes the reference keeps every
//     pixel of HED's ridge > 127 (the blurred map is constant along the line, so each pixel "equals its dilation"),
//     making such strokes a few px wider than curved ones. Ours have the same width at every orientation;
//   - HED's response strength varies with local contrast and stroke width; ours is binary: every ink pixel counts,
//     light-grey strokes (luma >= 128) and anti-aliasing fringes do not;
//   - dots: an isolated 2x2 dot vanishes in the thinning, a slightly larger one thins to a few pixels, and a single
//     pixel does not survive the blur + "> 4" (it peaks at 4); HED-scribble drops small dots too (nms's blur takes
//     them below 127), but the size limits differ;
//   - no response to texture, shading or the canvas border, which HED can pick up on an imported photo (use
//     photo_to_scribble in hed.h for those).
// The result depends only on the input pixels (no randomness, no thread-count dependence). Thread-safe; each calling
// thread keeps ~5 bytes per pixel of scratch buffers between calls (fresh buffers cost page faults on every call).
// Measured at 1024^2 (one core, `taskset -c 0`, shared machine): ~3.9 ms from a mask, ~4.2 ms from an RGB canvas;
// the 19-tap blur is about half of it (see Scribble.TimingAt1024Printed).
//
// Resolution: the map is made at the input's size and the line width is fixed in pixels (11 px for a straight
// horizontal line at thickness 1-3), as the reference makes it at detect_resolution = min(h, w) of the generation
// size. Draw the canvas at the generation size (or min side ~1024) for the trained look; scribble_to_condition
// resizes to (h, w) afterwards.
#pragma once

#include <torch/types.h>

#include <cstdint>

#include "sprint/condition_image.h"  // to_rgb, scribble_to_condition (core: the pipeline encodes conditions)

namespace sprint {

// Sana sketch demo: "Sketch thickness" slider 1..4, default 2. The reference function accepts 0..24 (None picks a
// random value in that range during training); we accept the same range and reject anything else.
constexpr int kDefaultScribbleThickness = 2;
constexpr int kMaxScribbleThickness = 24;

// Luma below which a sketch pixel is ink.
constexpr int kInkLumaThreshold = 128;

// ---- Our strokes -> scribble map (fast path, < 5 ms at 1024^2 on one core) --------------------------------------

// sketch: (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA uint8, dark strokes on a light background (the app's
// canvas). Returns (H, W) uint8, 255 on the lines, 0 elsewhere. Throws sprint::Error naming the problem for a wrong
// dtype, rank, channel count, an empty image or a thickness outside 0..24.
torch::Tensor sketch_to_scribble(const torch::Tensor& sketch, int thickness = kDefaultScribbleThickness);

// mask: (H, W) bool or uint8, nonzero = ink. Same output and errors as sketch_to_scribble.
torch::Tensor stroke_mask_to_scribble(const torch::Tensor& mask, int thickness = kDefaultScribbleThickness);

// ---- Reference post-processing pieces (OpenCV semantics), shared with photo_to_scribble ---------------------------

// controlnet_aux `nms(x, t, s)` on a (H, W) uint8 soft edge map: GaussianBlur as float32 with sigma s (kernel size
// rule for float input: round(8 s + 1) | 1 taps, 25 for s = 3), keep local maxima along any of the 4 line
// directions, then > t -> 255 else 0. Returns (H, W) uint8. t must be >= 0 (the reference stores kept values in a
// zero-initialised array before comparing with t).
torch::Tensor scribble_nms(const torch::Tensor& edge, double t = 127.0, double sigma = 3.0);

// get_scribble_map's tail on a (H, W) uint8 line map (nms output): GaussianBlur((0, 0), 3.0) on uint8 (19 taps,
// OpenCV's bit-exact fixed-point path), > 4 -> 255 else 0, then the thickness rule. Returns (H, W) uint8.
torch::Tensor scribble_finish(const torch::Tensor& lines, int thickness = kDefaultScribbleThickness);

// The thickness rule alone on a (H, W) binary uint8 map: 0 -> erode 4x4; 1 -> unchanged; t > 1 -> dilate with a
// (t / 2) x (t / 2) kernel (OpenCV anchors even kernels at (k / 2, k / 2)).
torch::Tensor apply_scribble_thickness(const torch::Tensor& map, int thickness);

// scribble_finish(scribble_nms(edge, 127, 3), thickness): a soft edge map (HED output) -> scribble map.
torch::Tensor edge_to_scribble(const torch::Tensor& edge, int thickness = kDefaultScribbleThickness);


}  // namespace sprint
