#include "sprint/image_io.h"

#include <cctype>
#include <filesystem>

#include <png.h>
#include <torch/torch.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "sprint/atomic_file.h"
#include "sprint/config.h"
#include "sprint/error.h"

namespace sprint {

namespace {
// libpng reports errors through longjmp by default; route them into a C++ exception-safe path instead.
void png_error_fn(png_structp png, png_const_charp msg) {
  auto* err = static_cast<std::string*>(png_get_error_ptr(png));
  if (err) *err = msg;
  png_longjmp(png, 1);
}
void png_warning_fn(png_structp, png_const_charp) {}
}  // namespace

std::string encode_png(const torch::Tensor& pixels_in, const std::map<std::string, std::string>& text,
                       const std::string& what) {
  SPRINT_CHECK(pixels_in.dim() == 3 && pixels_in.scalar_type() == torch::kUInt8,
               what, ": expected (H, W, C) uint8 pixels, got ", pixels_in.sizes(), " ", pixels_in.scalar_type());
  const int64_t H = pixels_in.size(0), W = pixels_in.size(1), C = pixels_in.size(2);
  SPRINT_CHECK(C == 1 || C == 3 || C == 4, what, ": ", C, " channels (need 1, 3 or 4)");
  SPRINT_CHECK(H > 0 && W > 0, what, ": empty image");
  auto pixels = pixels_in.to(torch::kCPU).contiguous();

  std::string err, out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_error_fn, png_warning_fn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_write_struct(&png, &info);
    throw Error(str(what, ": libpng initialisation failed"));
  }
  std::vector<png_bytep> rows(H);
  std::vector<png_text> chunks;
  std::vector<std::string> keys;  // libpng wants mutable char* keys
  keys.reserve(text.size());
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw Error(str(what, ": ", err));
  }
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, png_size_t n) {
        static_cast<std::string*>(png_get_io_ptr(p))->append(reinterpret_cast<const char*>(data), n);
      },
      [](png_structp) {});
  const int color = C == 1 ? PNG_COLOR_TYPE_GRAY : C == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGB_ALPHA;
  png_set_IHDR(png, info, static_cast<png_uint_32>(W), static_cast<png_uint_32>(H), 8, color, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  for (const auto& [k, v] : text) {
    keys.push_back(k.substr(0, 79));  // PNG keywords are 1-79 bytes
    png_text t{};
    // Long values (an embedded sketch) are deflated; short ones stay readable to any tool.
    t.compression = v.size() > 1024 ? PNG_ITXT_COMPRESSION_zTXt : PNG_ITXT_COMPRESSION_NONE;
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
  return out;
}

void write_png(const std::string& path, const torch::Tensor& pixels, const std::map<std::string, std::string>& text) {
  require_png_name(path, "write_png");
  const std::string bytes = encode_png(pixels, text, str("write_png('", path, "')"));
  write_file_atomically(path, bytes);  // AtomicFile: refuses to replace links, devices, FIFOs and folders
}

void require_png_name(const std::string& path, const std::string& what) {
  std::string ext = std::filesystem::path(path).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  SPRINT_CHECK(ext == ".png", what, " '", path, "': Sprint Studio writes PNG files; give a name ending in .png");
}

PngImage read_png(const std::string& path, int64_t max_pixels) {
  // read_small_file: a regular file only (a FIFO would block), read in one go; no size cap besides the pixel limit.
  return decode_png(read_small_file(path, SIZE_MAX), str("'", path, "'"), max_pixels);
}

PngImage decode_png(const std::string& bytes, const std::string& what, int64_t max_pixels) {
  SPRINT_CHECK(bytes.size() >= 8 && png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) == 0, what,
               " is not a PNG file");
  // Every chunk's declared length must fit in the bytes there are: libpng would otherwise allocate (and zero) a text
  // chunk's declared length, up to 2 GB, before noticing the data ends (a 60-byte file asking for 2 GB).
  for (size_t at = 8; at < bytes.size();) {
    SPRINT_CHECK(bytes.size() - at >= 12, "cannot read PNG ", what, ": the file ends inside a chunk header (truncated)");
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data() + at);
    const uint64_t length = (uint64_t{p[0]} << 24) | (uint64_t{p[1]} << 16) | (uint64_t{p[2]} << 8) | p[3];
    SPRINT_CHECK(length <= bytes.size() - at - 12, "cannot read PNG ", what, ": a '",
                 std::string(reinterpret_cast<const char*>(p + 4), 4), "' chunk declares ", length,
                 " bytes but the file ends sooner (truncated or corrupt)");
    if (std::memcmp(p + 4, "IEND", 4) == 0) break;
    at += 12 + length;
  }
  std::string err;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, png_error_fn, png_warning_fn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  SPRINT_CHECK(png && info, "cannot read ", what, ": libpng initialisation failed");
  PngImage out;
  std::vector<png_bytep> rows;
  struct Reader {
    const std::string* bytes;
    size_t at;
  } reader{&bytes, 8};
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error(str("cannot read PNG ", what, ": ", err.empty() ? "corrupt data" : err));
  }
  png_set_read_fn(png, &reader, [](png_structp p, png_bytep data, png_size_t n) {
    auto* r = static_cast<Reader*>(png_get_io_ptr(p));
    if (r->at + n > r->bytes->size()) png_error(p, "the file ends early (truncated)");
    std::memcpy(data, r->bytes->data() + r->at, n);
    r->at += n;
  });
  png_set_sig_bytes(png, 8);
  // Compressed text chunks inflate; no chunk may grow past 16 MiB (a prompt, an embedded condition map).
  png_set_chunk_malloc_max(png, 16u << 20);
  png_read_info(png, info);
  {
    const int64_t declared = int64_t{png_get_image_width(png, info)} * int64_t{png_get_image_height(png, info)};
    if (declared > max_pixels) {
      const auto w = png_get_image_width(png, info), h = png_get_image_height(png, info);
      png_destroy_read_struct(&png, &info, nullptr);
      throw Error(str("image ", what, " is ", w, "x", h, " (", declared, " pixels), more than the limit of ",
                      max_pixels, " pixels"));
    }
  }
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
