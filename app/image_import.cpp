#include "image_import.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "sprint/error.h"
#include "sprint/hed.h"
#include "sprint/picture_io.h"
#include "sprint/picture_edges.h"
#include "sprint/scribble.h"

namespace sprint {

namespace {

namespace F = torch::nn::functional;

constexpr int kMaxImportSide = 16384;  // larger pictures are refused (memory), whatever their format says

// (H, W, 3) uint8 -> (h, w, 3) uint8, antialiased bilinear; a no-op at the same size.
torch::Tensor resize_rgb(const torch::Tensor& rgb, int64_t h, int64_t w) {
  if (rgb.size(0) == h && rgb.size(1) == w) return rgb;
  auto x = rgb.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32);
  x = F::interpolate(x, F::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{h, w})
                            .mode(torch::kBilinear)
                            .align_corners(false)
                            .antialias(true));
  return x.squeeze(0).permute({1, 2, 0}).round().clamp(0, 255).to(torch::kUInt8).contiguous();
}

// Pads (H, W, 3) with white to the aspect w:h, centred (no resampling).
torch::Tensor pad_to_aspect(const torch::Tensor& rgb, int w, int h) {
  const int64_t H = rgb.size(0), W = rgb.size(1);
  int64_t nh = H, nw = W;
  if (W * h > H * w) nh = std::max<int64_t>(H, std::llround(static_cast<double>(W) * h / w));
  else nw = std::max<int64_t>(W, std::llround(static_cast<double>(H) * w / h));
  if (nh == H && nw == W) return rgb;
  auto out = torch::full({nh, nw, 3}, 255, torch::kUInt8);
  out.slice(0, (nh - H) / 2, (nh - H) / 2 + H).slice(1, (nw - W) / 2, (nw - W) / 2 + W).copy_(rgb);
  return out;
}

// Centre-crops (H, W, 3) to the aspect w:h.
torch::Tensor crop_to_aspect(const torch::Tensor& rgb, int w, int h) {
  const int64_t H = rgb.size(0), W = rgb.size(1);
  int64_t nh = H, nw = W;
  if (W * h > H * w) nw = std::max<int64_t>(1, std::llround(static_cast<double>(H) * w / h));
  else nh = std::max<int64_t>(1, std::llround(static_cast<double>(W) * h / w));
  return rgb.slice(0, (H - nh) / 2, (H - nh) / 2 + nh).slice(1, (W - nw) / 2, (W - nw) / 2 + nw).contiguous();
}

// BT.601 luma of (H, W, 3) uint8 as float (H, W).
torch::Tensor luma(const torch::Tensor& rgb) {
  auto f = rgb.to(torch::kFloat32);
  return f.select(2, 0) * 0.299f + f.select(2, 1) * 0.587f + f.select(2, 2) * 0.114f;
}

// (h, w) mask (nonzero = ink) nearest-resized to (ch, cw).
torch::Tensor fit_mask(const torch::Tensor& mask, int cw, int ch) {
  if (mask.size(0) == ch && mask.size(1) == cw) return mask;
  auto x = mask.to(torch::kFloat32).unsqueeze(0).unsqueeze(0);
  x = F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{ch, cw}).mode(torch::kNearest));
  return x.squeeze(0).squeeze(0).gt(0.5);
}

// Binary mask dilated by a round pen: pixels whose centre is within `radius` of an ink pixel's centre.
torch::Tensor ink_with_pen(const torch::Tensor& mask, float radius) {
  const int r = std::max(0, static_cast<int>(std::floor(radius)));
  if (r == 0) return mask.gt(0);
  auto k = torch::zeros({1, 1, 2 * r + 1, 2 * r + 1}, torch::kFloat32);
  auto acc = k.accessor<float, 4>();
  for (int dy = -r; dy <= r; ++dy)
    for (int dx = -r; dx <= r; ++dx)
      if (dx * dx + dy * dy <= radius * radius) acc[0][0][dy + r][dx + r] = 1.0f;
  auto x = mask.gt(0).to(torch::kFloat32).unsqueeze(0).unsqueeze(0);
  return F::conv2d(x, k, F::Conv2dFuncOptions().padding(r)).squeeze(0).squeeze(0).gt(0.5);
}

ui::Canvas to_canvas(const torch::Tensor& ink) {  // (h, w) bool
  ui::Canvas c;
  c.width = static_cast<int>(ink.size(1));
  c.height = static_cast<int>(ink.size(0));
  auto px = torch::where(ink, torch::zeros({}, torch::kUInt8), torch::full({}, 255, torch::kUInt8)).contiguous();
  c.pixels.assign(px.data_ptr<uint8_t>(), px.data_ptr<uint8_t>() + px.numel());
  return c;
}

}  // namespace

const char* import_mode_name(ImportMode m) {
  switch (m) {
    case ImportMode::Auto: return "auto";
    case ImportMode::Sketch: return "sketch";
    case ImportMode::Picture: return "picture";
    case ImportMode::Photo: return "photo";
  }
  return "?";
}

ImportMode parse_import_mode(const std::string& s) {
  for (ImportMode m : {ImportMode::Auto, ImportMode::Sketch, ImportMode::Picture, ImportMode::Photo})
    if (s == import_mode_name(m)) return m;
  throw Error(str("import mode '", s, "': expected auto, sketch, picture or photo"));
}

ImportMode detect_import_mode(const torch::Tensor& picture) {
  const auto rgb = to_rgb(picture);
  const double n = static_cast<double>(rgb.size(0) * rgb.size(1));
  const auto y = luma(rgb);
  const auto f = rgb.to(torch::kInt32);
  const auto chroma = std::get<0>(f.max(2)) - std::get<0>(f.min(2));
  // Sketch: nearly every pixel is grey paper or grey ink, and paper dominates.
  const double light = y.gt(200).logical_and(chroma.lt(40)).sum().template item<double>() / n;
  const double dark = y.lt(80).logical_and(chroma.lt(40)).sum().template item<double>() / n;
  if (light + dark >= 0.97 && light >= 0.5) return ImportMode::Sketch;
  // Picture: a few flat colours (5 bits per channel) cover most of it; a photo's noise and shading spread over many.
  const auto q = f.div(8, "floor");
  const auto code = (q.select(2, 0) * 1024 + q.select(2, 1) * 32 + q.select(2, 2)).flatten().to(torch::kInt64);
  const auto counts = torch::bincount(code, {}, 32768);
  const double top = std::get<0>(counts.topk(16)).sum().template item<double>() / n;
  return top >= 0.85 ? ImportMode::Picture : ImportMode::Photo;
}

ImportedSketch import_sketch_pixels(const torch::Tensor& picture, const std::string& source, int canvas_w,
                                    int canvas_h, ImportMode mode, float pen_radius, HEDImpl* hed) {
  return with_context(source, [&] {
    SPRINT_CHECK(canvas_w > 0 && canvas_h > 0, "canvas size ", canvas_w, "x", canvas_h, " is not positive");
    SPRINT_CHECK(picture.defined() && picture.dim() >= 2 && picture.numel() > 0, "the picture is empty");
    SPRINT_CHECK(picture.size(0) <= kMaxImportSide && picture.size(1) <= kMaxImportSide, "the picture is ",
                 picture.size(1), "x", picture.size(0), " px; at most ", kMaxImportSide, " px a side can be imported");
    const auto rgb = to_rgb(picture);  // throws for a wrong dtype or channel count
    ImportedSketch out;
    out.mode = mode == ImportMode::Auto ? detect_import_mode(rgb) : mode;
    torch::Tensor ink;  // (canvas_h, canvas_w) bool
    switch (out.mode) {
      case ImportMode::Auto:
      case ImportMode::Sketch: {
        const auto fitted = pad_to_aspect(rgb, canvas_w, canvas_h);
        ink = luma(resize_rgb(fitted, canvas_h, canvas_w)).lt(static_cast<float>(kInkLumaThreshold));
        break;
      }
      case ImportMode::Picture: {
        PictureEdgeOptions po;
        po.canvas = std::max(canvas_w, canvas_h);
        po.pen_width = std::max(1, static_cast<int>(std::lround(2 * pen_radius)));
        ink = fit_mask(picture_to_stroke_mask(pad_to_aspect(rgb, canvas_w, canvas_h), po), canvas_w, canvas_h).gt(0);
        break;
      }
      case ImportMode::Photo: {
        const auto fitted = resize_rgb(crop_to_aspect(rgb, canvas_w, canvas_h), canvas_h, canvas_w);
        const auto edge = hed ? hed_edge_map(*hed, fitted) : soft_edge_map(fitted);
        ink = ink_with_pen(scribble_nms(edge, 127.0, 3.0), pen_radius);
        break;
      }
    }
    out.ink_pixels = static_cast<size_t>(ink.sum().item<int64_t>());
    // An empty result would wipe the drawing for nothing: say so instead.
    SPRINT_CHECK(out.ink_pixels > 0, "found no lines to draw (read as a ", import_mode_name(out.mode),
                 "); try another import mode");
    out.canvas = to_canvas(ink);
    return out;
  });
}

ImportedSketch import_sketch_image(const std::string& path, int canvas_w, int canvas_h, ImportMode mode,
                                   float pen_radius, HEDImpl* hed) {
  const torch::Tensor picture = read_picture(path);  // names the file when missing, truncated or not a picture
  return import_sketch_pixels(picture, "importing '" + path + "'", canvas_w, canvas_h, mode, pen_radius, hed);
}

}  // namespace sprint
