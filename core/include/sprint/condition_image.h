// Condition images for the ControlNet, in core because the pipeline encodes its condition itself: a scribble map
// (white lines on black, see scribble.h in controlnet/) becomes the RGB image in [-1, 1] that the VAE encoder takes
// (Sana transform_control_signal, docs/maths.md#condition-image), plus the uint8 image checks the scribble and HED
// code share. LibTorch only, no OpenCV.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace sprint {

// Longest image side accepted (OpenCV's Mat sizes are int; anything larger is surely a caller bug).
constexpr int kMaxImageSide = 1 << 16;

// Throws sprint::Error naming `fn` for an empty image or one longer than kMaxImageSide on a side.
void check_image_size(const torch::Tensor& t, const char* fn);

// An 8-bit (H, W) or (H, W, 1|3|4) image, contiguous on the CPU; throws sprint::Error naming `fn` otherwise.
torch::Tensor checked_image(const torch::Tensor& t, const char* fn);

// controlnet_aux HWC3: (H, W) / (H, W, 1) gray -> replicated to 3 channels; (H, W, 3) as is; (H, W, 4) RGBA ->
// composited on white with the reference's float maths and truncation (uint8(c * a / 255 + 255 * (1 - a / 255))).
// Returns (H, W, 3) uint8, contiguous, on the CPU.
torch::Tensor to_rgb(const torch::Tensor& image);

// Sana transform_control_signal on a scribble map: (H, W) or (H, W, 1|3|4) uint8 -> RGB -> bicubic resize to exactly
// (h, w) -> centre crop (h, w) (a no-op after the exact resize) -> [0, 1] -> (x - 0.5) / 0.5.
// Returns (1, 3, h, w) float32 in [-1, 1] on the CPU, ready for the VAE encoder (move/cast it there).
// The resize is PIL's antialiased bicubic (a = -0.5) in two passes, each rounded to uint8 as PIL does, in Pillow 13's
// order: vertical first when the height shrinks and the width grows, horizontal first otherwise. Agrees with PIL to
// within 1/255 per pixel, on < 0.1 % of the pixels (PIL uses 22-bit fixed-point weights, we use float). Not
// reproduced: for some resizes that shrink both sides by different factors Pillow also goes vertical-first; there
// ~20 % of the pixels are 1/255 off (the app's cases, the same size or both sides scaled alike, are not affected).
torch::Tensor scribble_to_condition(const torch::Tensor& map, int64_t h, int64_t w);

}  // namespace sprint
