// Python-compatible prompt text handling (lower-casing, stripping) and diffusers' resolution binning.
// See include/sprint/pipeline.h.
#include <unicode/locid.h>
#include <unicode/unistr.h>

#include <cmath>
#include <string>

#include "sprint/error.h"
#include "sprint/pipeline.h"

namespace sprint {

namespace {
// Python 3.11 str.isspace() code points (Py_UNICODE_ISSPACE: category Zs, or bidirectional class WS, B or S), as
// listed by `[hex(c) for c in range(0x110000) if chr(c).isspace()]` with the pinned Python 3.11.7 (Unicode 14.0).
bool python_isspace(char32_t c) {
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x1C: case 0x1D: case 0x1E: case 0x1F: case 0x20:
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

// Decodes the code point at s[i] (s already validated) and returns its length in bytes.
size_t decode_at(const std::string& s, size_t i, char32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  const size_t n = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
  cp = b0 & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return n;
}
}  // namespace

void check_utf8(const std::string& s, const std::string& what) {
  // Strict UTF-8 as Python's bytes.decode("utf-8") accepts it: no overlong forms, no surrogates, <= U+10FFFF.
  size_t i = 0;
  const size_t n = s.size();
  auto fail = [&](const char* why) {
    throw Error(str(what, " is not valid UTF-8: ", why, " at byte offset ", i, " (byte 0x", std::hex,
                    static_cast<int>(static_cast<unsigned char>(s[i])), ")"));
  };
  while (i < n) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      if (b0 == 0xE0) lo = 0xA0;  // overlong
      if (b0 == 0xED) hi = 0x9F;  // surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      if (b0 == 0xF0) lo = 0x90;  // overlong
      if (b0 == 0xF4) hi = 0x8F;  // > U+10FFFF
    } else {
      fail(b0 >= 0x80 && b0 <= 0xBF ? "unexpected continuation byte" : "invalid start byte");
    }
    if (i + len > n) fail("truncated multi-byte sequence");
    for (size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF))
        fail("invalid continuation byte in the sequence starting");
    }
    i += len;
  }
}

std::string python_strip(const std::string& s) {
  check_utf8(s, "text");
  size_t b = 0, e = s.size();
  while (b < e) {
    char32_t cp;
    const size_t len = decode_at(s, b, cp);
    if (!python_isspace(cp)) break;
    b += len;
  }
  while (e > b) {
    size_t start = e - 1;
    while (start > b && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
    char32_t cp;
    decode_at(s, start, cp);
    if (!python_isspace(cp)) break;
    e = start;
  }
  return s.substr(b, e - b);
}

std::string python_lower(const std::string& s) {
  check_utf8(s, "text");
  // ICU's full default (root locale) case mapping: the Unicode SpecialCasing.txt rules Python's str.lower() uses,
  // including 'İ' -> "i̇" and the final-sigma context.
  auto u = icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())));
  u.toLower(icu::Locale::getRoot());
  std::string out;
  u.toUTF8String(out);
  return out;
}

std::string python_lower_strip(const std::string& s) { return python_strip(python_lower(s)); }

// ---- resolution binning ---------------------------------------------------------------------------------------

namespace {
struct AspectBin {
  double ratio;  // the table's key, float(key) in Python
  int height, width;
};
// diffusers 0.42.1 ASPECT_RATIO_512_BIN / ASPECT_RATIO_1024_BIN (pipelines/pixart_alpha/pipeline_pixart_alpha.py) and
// ASPECT_RATIO_2048_BIN (pipelines/pixart_alpha/pipeline_pixart_sigma.py), in the tables' order (ties go to the
// first entry, as Python's min() does). Values are (height, width).
const AspectBin k512[] = {
    {0.25, 256, 1024}, {0.28, 256, 928}, {0.32, 288, 896}, {0.33, 288, 864}, {0.35, 288, 832},
    {0.4, 320, 800}, {0.42, 320, 768}, {0.48, 352, 736}, {0.5, 352, 704}, {0.52, 352, 672},
    {0.57, 384, 672}, {0.6, 384, 640}, {0.68, 416, 608}, {0.72, 416, 576}, {0.78, 448, 576},
    {0.82, 448, 544}, {0.88, 480, 544}, {0.94, 480, 512}, {1.0, 512, 512}, {1.07, 512, 480},
    {1.13, 544, 480}, {1.21, 544, 448}, {1.29, 576, 448}, {1.38, 576, 416}, {1.46, 608, 416},
    {1.67, 640, 384}, {1.75, 672, 384}, {2.0, 704, 352}, {2.09, 736, 352}, {2.4, 768, 320},
    {2.5, 800, 320}, {3.0, 864, 288}, {4.0, 1024, 256},
};
const AspectBin k1024[] = {
    {0.25, 512, 2048}, {0.28, 512, 1856}, {0.32, 576, 1792}, {0.33, 576, 1728}, {0.35, 576, 1664},
    {0.4, 640, 1600}, {0.42, 640, 1536}, {0.48, 704, 1472}, {0.5, 704, 1408}, {0.52, 704, 1344},
    {0.57, 768, 1344}, {0.6, 768, 1280}, {0.68, 832, 1216}, {0.72, 832, 1152}, {0.78, 896, 1152},
    {0.82, 896, 1088}, {0.88, 960, 1088}, {0.94, 960, 1024}, {1.0, 1024, 1024}, {1.07, 1024, 960},
    {1.13, 1088, 960}, {1.21, 1088, 896}, {1.29, 1152, 896}, {1.38, 1152, 832}, {1.46, 1216, 832},
    {1.67, 1280, 768}, {1.75, 1344, 768}, {2.0, 1408, 704}, {2.09, 1472, 704}, {2.4, 1536, 640},
    {2.5, 1600, 640}, {3.0, 1728, 576}, {4.0, 2048, 512},
};
const AspectBin k2048[] = {
    {0.25, 1024, 4096}, {0.26, 1024, 3968}, {0.27, 1024, 3840}, {0.28, 1024, 3712}, {0.32, 1152, 3584},
    {0.33, 1152, 3456}, {0.35, 1152, 3328}, {0.4, 1280, 3200}, {0.42, 1280, 3072}, {0.48, 1408, 2944},
    {0.5, 1408, 2816}, {0.52, 1408, 2688}, {0.57, 1536, 2688}, {0.6, 1536, 2560}, {0.68, 1664, 2432},
    {0.72, 1664, 2304}, {0.78, 1792, 2304}, {0.82, 1792, 2176}, {0.88, 1920, 2176}, {0.94, 1920, 2048},
    {1.0, 2048, 2048}, {1.07, 2048, 1920}, {1.13, 2176, 1920}, {1.21, 2176, 1792}, {1.29, 2304, 1792},
    {1.38, 2304, 1664}, {1.46, 2432, 1664}, {1.67, 2560, 1536}, {1.75, 2688, 1536}, {2.0, 2816, 1408},
    {2.09, 2944, 1408}, {2.4, 3072, 1280}, {2.5, 3200, 1280}, {2.89, 3328, 1152}, {3.0, 3456, 1152},
    {3.11, 3584, 1152}, {3.62, 3712, 1024}, {3.75, 3840, 1024}, {3.88, 3968, 1024}, {4.0, 4096, 1024},
};

template <size_t N>
std::pair<int, int> classify(const AspectBin (&bins)[N], int height, int width) {
  // diffusers PixArtImageProcessor.classify_height_width_bin: the entry whose ratio is closest to height / width.
  const double ar = static_cast<double>(height) / static_cast<double>(width);
  const AspectBin* best = &bins[0];
  for (const auto& b : bins)
    if (std::abs(b.ratio - ar) < std::abs(best->ratio - ar)) best = &b;
  return {best->height, best->width};
}
}  // namespace

std::optional<std::pair<int, int>> resolution_bin(int sample_size, int height, int width) {
  SPRINT_CHECK(height > 0 && width > 0, "size ", width, "x", height, " must be positive");
  // The tables SanaPipeline picks by transformer sample_size (latent side at the native resolution). diffusers'
  // SanaSprintPipeline itself only knows sample_size 32 (1024 px) and raises for others; we also accept the 512 and
  // 2048 px models like SanaPipeline. Any other sample_size (our small models, e.g. the 64 px emoji model, and the
  // test fixtures): no table, no binning - the size is used as requested.
  switch (sample_size) {
    case 16: return classify(k512, height, width);
    case 32: return classify(k1024, height, width);
    case 64: return classify(k2048, height, width);
    default: return std::nullopt;
  }
}

torch::Tensor resize_and_crop(const torch::Tensor& images, int height, int width) {
  // diffusers PixArtImageProcessor.resize_and_crop_tensor: scale so both sides cover the target (int() truncation),
  // bilinear with align_corners=False and no antialias (F.interpolate's default), then centre crop.
  SPRINT_CHECK(images.dim() == 4, "resize_and_crop expects (N, C, H, W), got ", shape_str(images.sizes().vec()));
  const int64_t oh = images.size(2), ow = images.size(3);
  if (oh == height && ow == width) return images;
  const double ratio = std::max(static_cast<double>(height) / static_cast<double>(oh),
                                static_cast<double>(width) / static_cast<double>(ow));
  auto rw = static_cast<int64_t>(static_cast<double>(ow) * ratio);
  auto rh = static_cast<int64_t>(static_cast<double>(oh) * ratio);
  // (a / b) * b can land one ulp below a, and int() then gives a - 1; diffusers would then slice with a negative
  // start. Never smaller than the target here (identical whenever diffusers' result is well-formed).
  rw = std::max<int64_t>(rw, width);
  rh = std::max<int64_t>(rh, height);
  namespace F = torch::nn::functional;
  auto r = F::interpolate(images, F::InterpolateFuncOptions()
                                      .size(std::vector<int64_t>{rh, rw})
                                      .mode(torch::kBilinear)
                                      .align_corners(false));
  const int64_t x0 = (rw - width) / 2, y0 = (rh - height) / 2;  // Python // on non-negative values
  return r.slice(2, y0, y0 + height).slice(3, x0, x0 + width);
}

}  // namespace sprint
