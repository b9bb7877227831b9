// fuzz_png: the input bytes as a PNG file go to sprint::decode_png (with a 1-megapixel limit, so the fuzzer does
// not spend its time allocating); a decoded picture's text chunks go to settings_from_png_text, as when the app or
// sprint-generate --from reads a picture's settings, and an embedded condition picture ("sprint:condition") is
// decoded in turn. Accepted settings must survive to_png_text -> settings_from_png_text, the way they travel from
// one picture to the next.
#include <torch/torch.h>

#include <cstdint>
#include <exception>
#include <string>

#include "fuzz_common.h"
#include "sprint/error.h"
#include "sprint/generation_settings.h"
#include "sprint/image_io.h"
#include "settings_checks.h"

using sprint_fuzz::invariant_broken;

namespace {

constexpr int64_t kMaxPixels = int64_t{1} << 20;

// decode_png's promise: (H, W, C) uint8, C in {1, 3, 4} (gray, RGB, RGBA), at most max_pixels pixels.
void check_pixels(const sprint::PngImage& png) {
  const torch::Tensor& p = png.pixels;
  if (!p.defined() || p.dim() != 3 || p.scalar_type() != torch::kUInt8 || !p.is_contiguous())
    invariant_broken("decode_png returned pixels that are not a contiguous (H, W, C) uint8 tensor");
  const int64_t h = p.size(0), w = p.size(1), c = p.size(2);
  if (h < 1 || w < 1 || h * w > kMaxPixels || (c != 1 && c != 3 && c != 4))
    invariant_broken(sprint::str("decode_png returned ", h, "x", w, "x", c, " pixels"));
  // Every byte must have been written by libpng (ASan does not see uninitialised reads, but a short row would
  // leave the tensor's tail as it came from the allocator; reading it at least proves it is in bounds).
  const uint8_t* b = p.data_ptr<uint8_t>();
  volatile uint64_t sum = 0;
  for (int64_t i = 0; i < h * w * c; ++i) sum = sum + b[i];
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    const sprint::PngImage png = sprint::decode_png(bytes, "fuzz", kMaxPixels);
    check_pixels(png);
    try {
      const sprint::SettingsRecord r = sprint::settings_from_png_text(png.text, "fuzz");
      sprint_fuzz::check_png_text_round_trip(r);
      if (!r.condition_png.empty()) check_pixels(sprint::decode_png(r.condition_png, "fuzz condition", kMaxPixels));
    } catch (const std::exception&) {
      // Settings or a condition that do not parse: refused with a message, the correct outcome.
    }
  } catch (const std::exception&) {
    // Not a PNG, a corrupt or a too large one: refused with a message, the correct outcome.
  }
  return 0;
}
