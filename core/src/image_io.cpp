#include "sprint/image_io.h"

#include <png.h>
#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "sprint/error.h"

namespace sprint {

namespace {
struct FileCloser {
  void operator()(FILE* f) const { if (f) std::fclose(f); }
};

// libpng reports errors through longjmp by default; route them into a C++ exception-safe path instead.
void png_error_fn(png_structp png, png_const_charp msg) {
  auto* err = static_cast<std::string*>(png_get_error_ptr(png));
  if (err) *err = msg;
  png_longjmp(png, 1);
}
void png_warning_fn(png_structp, png_const_charp) {}
}  // namespace

void write_png(const std::string& path, const torch::Tensor& pixels_in, const std::map<std::string, std::string>& text) {
  SPRINT_CHECK(pixels_in.dim() == 3 && pixels_in.scalar_type() == torch::kUInt8,
               "write_png('", path, "'): expected (H, W, C) uint8 pixels, got ", pixels_in.sizes(), " ", pixels_in.scalar_type());
  const int64_t H = pixels_in.size(0), W = pixels_in.size(1), C = pixels_in.size(2);
  SPRINT_CHECK(C == 1 || C == 3 || C == 4, "write_png('", path, "'): ", C, " channels (need 1, 3 or 4)");
  SPRINT_CHECK(H > 0 && W > 0, "write_png('", path, "'): empty image");
  auto pixels = pixels_in.to(torch::kCPU).contiguous();

  static std::atomic<int> counter{0};
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  std::unique_ptr<FILE, FileCloser> f(std::fopen(tmp.c_str(), "wb"));
  SPRINT_CHECK(f, "cannot write '", path, "': ", std::strerror(errno));

  std::string err;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_error_fn, png_warning_fn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_write_struct(&png, &info);
    std::remove(tmp.c_str());
    throw Error(str("cannot write '", path, "': libpng initialisation failed"));
  }
  std::vector<png_bytep> rows(H);
  std::vector<png_text> chunks;
  std::vector<std::string> keys;  // libpng wants mutable char* keys
  keys.reserve(text.size());
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    f.reset();
    std::remove(tmp.c_str());
    throw Error(str("cannot write '", path, "': ", err));
  }
  png_init_io(png, f.get());
  const int color = C == 1 ? PNG_COLOR_TYPE_GRAY : C == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGB_ALPHA;
  png_set_IHDR(png, info, static_cast<png_uint_32>(W), static_cast<png_uint_32>(H), 8, color, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  for (const auto& [k, v] : text) {
    keys.push_back(k.substr(0, 79));  // PNG keywords are 1-79 bytes
    png_text t{};
    t.compression = PNG_ITXT_COMPRESSION_NONE;
    t.key = keys.back().data();
    t.text = const_cast<char*>(v.c_str());
    t.itxt_length = v.size();
    chunks.push_back(t);
  }
  if (!chunks.empty()) png_set_text(png, info, chunks.data(), static_cast<int>(chunks.size()));
  png_write_info(png, info);
  auto* base = pixels.data_ptr<uint8_t>();
  for (int64_t y = 0; y < H; ++y) rows[y] = base + y * W * C;
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  bool ok = std::fflush(f.get()) == 0 && ::fsync(fileno(f.get())) == 0;
  int saved = errno;
  f.reset();
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    if (ok) saved = errno;
    std::remove(tmp.c_str());
    throw Error(str("cannot write '", path, "': ", std::strerror(saved)));
  }
}

PngImage read_png(const std::string& path) {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  SPRINT_CHECK(f, "cannot open image '", path, "': ", std::strerror(errno));
  unsigned char sig[8] = {};
  SPRINT_CHECK(std::fread(sig, 1, 8, f.get()) == 8 && png_sig_cmp(sig, 0, 8) == 0, "'", path, "' is not a PNG file");
  std::string err;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_error_fn, png_warning_fn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  SPRINT_CHECK(png && info, "cannot read '", path, "': libpng initialisation failed");
  PngImage out;
  std::vector<png_bytep> rows;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error(str("cannot read PNG '", path, "': ", err.empty() ? "corrupt data" : err));
  }
  png_init_io(png, f.get());
  png_set_sig_bytes(png, 8);
  png_read_info(png, info);
  // Normalise to 8-bit gray / RGB / RGBA.
  png_set_strip_16(png);
  png_set_packing(png);
  const int ct = png_get_color_type(png, info);
  if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (ct == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_read_update_info(png, info);
  const int64_t H = png_get_image_height(png, info), W = png_get_image_width(png, info);
  const int64_t C = png_get_channels(png, info);
  out.pixels = torch::empty({H, W, C}, torch::kUInt8);
  rows.resize(H);
  for (int64_t y = 0; y < H; ++y) rows[y] = out.pixels.data_ptr<uint8_t>() + y * W * C;
  png_read_image(png, rows.data());
  png_read_end(png, info);
  png_textp texts = nullptr;
  int n = png_get_text(png, info, &texts, nullptr);
  for (int i = 0; i < n; ++i) {
    size_t len = texts[i].compression >= PNG_ITXT_COMPRESSION_NONE ? texts[i].itxt_length : texts[i].text_length;
    out.text[texts[i].key] = std::string(texts[i].text, len);
  }
  png_destroy_read_struct(&png, &info, nullptr);
  return out;
}

torch::Tensor to_uint8_image(const torch::Tensor& image, int64_t index) {
  SPRINT_CHECK(image.dim() == 4 && image.size(1) == 3, "expected (B, 3, H, W) image, got ", image.sizes());
  auto x = (image[index].to(torch::kFloat32) * 0.5 + 0.5).clamp(0, 1);
  return (x * 255).round().to(torch::kUInt8).permute({1, 2, 0}).contiguous();
}

}  // namespace sprint
