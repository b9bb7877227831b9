// Condition images. See include/sprint/condition_image.h and docs/maths.md#condition-image.
#include "sprint/condition_image.h"

#include <torch/torch.h>

#include <algorithm>

#include "sprint/error.h"

namespace sprint {

namespace {
int channels(const torch::Tensor& img) { return img.dim() == 3 ? static_cast<int>(img.size(2)) : 1; }
}  // namespace

void check_image_size(const torch::Tensor& t, const char* fn) {
  SPRINT_CHECK(t.size(0) > 0 && t.size(1) > 0, fn, ": empty image, shape ", t.sizes());
  SPRINT_CHECK(t.size(0) <= kMaxImageSide && t.size(1) <= kMaxImageSide, fn, ": image ", t.sizes(), " is larger than ",
               kMaxImageSide, " px on a side");
}

torch::Tensor checked_image(const torch::Tensor& t, const char* fn) {
  SPRINT_CHECK(t.defined(), fn, ": no image (undefined tensor)");
  SPRINT_CHECK(t.scalar_type() == torch::kUInt8, fn, ": expected a uint8 image, got dtype ", t.scalar_type());
  const bool ok_rank = t.dim() == 2 || (t.dim() == 3 && (t.size(2) == 1 || t.size(2) == 3 || t.size(2) == 4));
  SPRINT_CHECK(ok_rank, fn, ": expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got shape ", t.sizes());
  check_image_size(t, fn);
  return t.to(torch::kCPU).contiguous();
}

torch::Tensor to_rgb(const torch::Tensor& image) {
  const auto img = checked_image(image, "to_rgb");
  const int c = channels(img);
  if (c == 3) return img;
  const int64_t h = img.size(0), w = img.size(1);
  if (c == 1) return img.reshape({h, w, 1}).expand({h, w, 3}).contiguous();
  // HWC3's float32 maths: color * alpha + 255 * (1 - alpha), alpha = a / 255, clipped, truncated to uint8.
  auto out = torch::empty({h, w, 3}, torch::kUInt8);
  const uint8_t* p = img.data_ptr<uint8_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  for (int64_t i = 0; i < h * w; ++i, p += 4, o += 3) {
    const float alpha = static_cast<float>(p[3]) / 255.0f;
    const float rest = 255.0f * (1.0f - alpha);
    for (int k = 0; k < 3; ++k) {
      const float v = static_cast<float>(p[k]) * alpha + rest;
      o[k] = static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f));
    }
  }
  return out;
}

torch::Tensor scribble_to_condition(const torch::Tensor& map, int64_t h, int64_t w) {
  constexpr const char* fn = "scribble_to_condition";
  SPRINT_CHECK(h > 0 && w > 0 && h <= kMaxImageSide && w <= kMaxImageSide, fn, ": target size must be positive, got (", h, ", ",
               w, ")");
  auto x = to_rgb(map).permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32);  // (1, 3, H, W), 0..255
  namespace F = torch::nn::functional;
  // PIL resamples in two passes, rounding to uint8 after each; torch's antialiased bicubic uses PIL's filter (a = -0.5,
  // support widened by the scale when shrinking). Pillow 13 runs the vertical pass first when the height shrinks and
  // the width grows, else the horizontal pass first (found by experiment: the C source of older Pillows is always
  // horizontal-first; see scribble.h for the cases this rule misses).
  auto pass = [&](int64_t ph, int64_t pw) {
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{ph, pw})
                              .mode(torch::kBicubic)
                              .align_corners(false)
                              .antialias(true))
            .round()
            .clamp(0, 255);
  };
  const int64_t in_h = x.size(2), in_w = x.size(3);
  const bool vertical_first = h < in_h && w > in_w;
  if (vertical_first) {
    pass(h, in_w);
    pass(h, w);
  } else {
    if (w != in_w) pass(in_h, w);
    if (h != in_h) pass(h, w);
  }
  // CenterCrop((h, w)) is a no-op after the exact resize. ToTensor + Normalize([0.5], [0.5]):
  return x.div(255.0).sub(0.5).div(0.5).contiguous();  // (1, 3, h, w)
}

}  // namespace sprint
