// PNG reading and writing with text chunks (the generation settings travel inside the image).
#pragma once

#include <torch/types.h>

#include <map>
#include <string>

namespace sprint {

struct PngImage {
  torch::Tensor pixels;                      // (H, W, C) uint8, C = 1, 3 or 4
  std::map<std::string, std::string> text;   // tEXt / iTXt chunks
};

// Writes an 8-bit PNG atomically (temporary file + rename). `pixels` is (H, W, C) uint8 with C in {1, 3, 4}.
// Text values are stored as UTF-8 iTXt chunks. Throws sprint::Error naming the file on failure.
void write_png(const std::string& path, const torch::Tensor& pixels, const std::map<std::string, std::string>& text = {});

// Reads any PNG libpng understands, converted to 8-bit gray, RGB or RGBA. Throws sprint::Error naming the file
// when it is missing, truncated or not a PNG.
PngImage read_png(const std::string& path);

// (B, 3, H, W) float in [-1, 1] (decoder output) -> (H, W, 3) uint8 of sample `index`, the diffusers way:
// clamp(x * 0.5 + 0.5, 0, 1) * 255, rounded, computed in fp32 on the image's device.
torch::Tensor to_uint8_image(const torch::Tensor& image, int64_t index = 0);

}  // namespace sprint
