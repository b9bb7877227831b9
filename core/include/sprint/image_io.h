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

// Writes an 8-bit PNG atomically (temporary file + rename; AtomicFile refuses to replace anything but a regular
// file). The name must end in .png (require_png_name). `pixels` is (H, W, C) uint8 with C in {1, 3, 4}.
// Text values are stored as UTF-8 iTXt chunks. Throws sprint::Error naming the file on failure.
void write_png(const std::string& path, const torch::Tensor& pixels, const std::map<std::string, std::string>& text = {});

// Reads any PNG libpng understands, converted to 8-bit gray, RGB or RGBA. Throws sprint::Error naming the file
// when it is missing, not a regular file, truncated or not a PNG, and, before decoding anything, when its header
// declares more than `max_pixels` pixels (a decompression bomb: a 20000 x 20000 PNG can be 1 MB on disk).
constexpr int64_t kDefaultMaxImagePixels = int64_t{64} << 20;  // 64 megapixels, e.g. 8192 x 8192
PngImage read_png(const std::string& path, int64_t max_pixels = kDefaultMaxImagePixels);

// The same from and to memory (an embedded picture, a PNG sent elsewhere). `what` names the data in errors.
std::string encode_png(const torch::Tensor& pixels, const std::map<std::string, std::string>& text = {},
                       const std::string& what = "encode_png");
PngImage decode_png(const std::string& bytes, const std::string& what, int64_t max_pixels = kDefaultMaxImagePixels);

// Writes go to PNG files only: throws sprint::Error naming `path` (and `what`, e.g. "--out") unless its extension
// is .png (any case).
void require_png_name(const std::string& path, const std::string& what);

// (B, 3, H, W) float in [-1, 1] (decoder output) -> (H, W, 3) uint8 of sample `index`, the diffusers way:
// clamp(x * 0.5 + 0.5, 0, 1) * 255, rounded, computed in fp32 on the image's device.
torch::Tensor to_uint8_image(const torch::Tensor& image, int64_t index = 0);

}  // namespace sprint
