// See include/sprint/picture_io.h.
#include "sprint/picture_io.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "sprint/config.h"
#include "sprint/error.h"

namespace fs = std::filesystem;

namespace sprint {
namespace {

// ---- headers --------------------------------------------------------------------------------------------------------

// Exactly n bytes at an offset, or false (past the end, read error).
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual bool read(uint64_t offset, void* out, size_t n) const = 0;
};

class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string_view bytes) : bytes_(bytes) {}
  bool read(uint64_t offset, void* out, size_t n) const override {
    if (offset > bytes_.size() || n > bytes_.size() - offset) return false;
    std::memcpy(out, bytes_.data() + offset, n);
    return true;
  }

 private:
  std::string_view bytes_;
};

class FileSource final : public ByteSource {
 public:
  explicit FileSource(const std::string& path) : in_(path, std::ios::binary) {}
  bool is_open() const { return in_.is_open(); }
  bool read(uint64_t offset, void* out, size_t n) const override {
    if (offset > static_cast<uint64_t>(LLONG_MAX)) return false;
    in_.clear();
    in_.seekg(static_cast<std::streamoff>(offset));
    in_.read(static_cast<char*>(out), static_cast<std::streamsize>(n));
    return in_.gcount() == static_cast<std::streamsize>(n);
  }

 private:
  mutable std::ifstream in_;
};

uint32_t be16(const uint8_t* p) { return uint32_t{p[0]} << 8 | p[1]; }
uint32_t be32(const uint8_t* p) { return be16(p) << 16 | be16(p + 2); }
uint32_t le16(const uint8_t* p) { return uint32_t{p[1]} << 8 | p[0]; }
uint32_t le24(const uint8_t* p) { return uint32_t{p[2]} << 16 | le16(p); }
uint32_t le32(const uint8_t* p) { return le16(p + 2) << 16 | le16(p); }

// The single-valued SHORT and LONG tags of the first directory (IFD0) of a TIFF structure: a TIFF file, or the Exif
// block of a JPEG.
std::map<uint32_t, uint32_t> tiff_ifd0(const ByteSource& src) {
  uint8_t h[8];
  SPRINT_CHECK(src.read(0, h, 8), "truncated TIFF header");
  const bool little = h[0] == 'I' && h[1] == 'I';
  SPRINT_CHECK(little || (h[0] == 'M' && h[1] == 'M'), "corrupt TIFF header (byte order)");
  const auto u16 = [little](const uint8_t* p) { return little ? le16(p) : be16(p); };
  const auto u32 = [little](const uint8_t* p) { return little ? le32(p) : be32(p); };
  SPRINT_CHECK(u16(h + 2) == 42, "corrupt TIFF header (magic)");
  const uint64_t ifd = u32(h + 4);
  uint8_t c[2];
  SPRINT_CHECK(src.read(ifd, c, 2), "truncated TIFF directory");
  std::map<uint32_t, uint32_t> tags;
  for (uint32_t i = 0, n = u16(c); i < n; ++i) {
    uint8_t e[12];  // tag, type, count, value
    SPRINT_CHECK(src.read(ifd + 2 + 12 * uint64_t{i}, e, 12), "truncated TIFF directory");
    if (u32(e + 4) != 1) continue;
    if (u16(e + 2) == 3) tags[u16(e)] = u16(e + 8);       // SHORT
    else if (u16(e + 2) == 4) tags[u16(e)] = u32(e + 8);  // LONG
  }
  return tags;
}

// Exif orientation from an APP1 payload after "Exif\0\0"; 1 when it has none or is unreadable (the decoder ignores a
// broken Exif block too).
int exif_orientation(std::string_view tiff) {
  try {
    const auto tags = tiff_ifd0(MemorySource(tiff));
    const auto it = tags.find(0x0112);
    return it != tags.end() && it->second >= 1 && it->second <= 8 ? static_cast<int>(it->second) : 1;
  } catch (const Error&) {
    return 1;
  }
}

PictureHeader probe_jpeg(const ByteSource& src) {
  uint64_t pos = 2;  // after SOI
  int orientation = 1;
  bool seen_exif = false;
  for (int markers = 0; markers < 65536; ++markers) {
    uint8_t m[2];
    SPRINT_CHECK(src.read(pos, m, 2), "truncated JPEG header (no frame header)");
    SPRINT_CHECK(m[0] == 0xFF, "corrupt JPEG header (no marker at byte ", pos, ")");
    if (m[1] == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    pos += 2;
    if (m[1] == 0x01 || (m[1] >= 0xD0 && m[1] <= 0xD8)) continue;  // markers without a length
    SPRINT_CHECK(m[1] != 0xD9 && m[1] != 0xDA, "corrupt JPEG header (image data before the frame header)");
    uint8_t l[2];
    SPRINT_CHECK(src.read(pos, l, 2), "truncated JPEG header");
    const uint32_t len = be16(l);
    SPRINT_CHECK(len >= 2, "corrupt JPEG header (segment length ", len, ")");
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): precision, height, width.
    if (m[1] >= 0xC0 && m[1] <= 0xCF && m[1] != 0xC4 && m[1] != 0xC8 && m[1] != 0xCC) {
      uint8_t f[5];
      SPRINT_CHECK(len >= 7 && src.read(pos + 2, f, 5), "truncated JPEG frame header");
      return {"JPEG", be16(f + 3), be16(f + 1), orientation};
    }
    if (m[1] == 0xE1 && !seen_exif && len >= 2 + 6 + 8) {
      std::string app(len - 2, '\0');
      if (src.read(pos + 2, app.data(), app.size()) && app.compare(0, 6, std::string("Exif\0\0", 6)) == 0) {
        seen_exif = true;
        orientation = exif_orientation(std::string_view(app).substr(6));
      }
    }
    pos += len;
  }
  throw Error("corrupt JPEG header (no frame header in 65536 markers)");
}

PictureHeader probe_webp(const ByteSource& src) {
  uint8_t h[30];  // RIFF size WEBP, the first chunk's fourcc and size, 10 bytes of its data
  SPRINT_CHECK(src.read(0, h, 30), "truncated WebP header");
  const uint8_t* d = h + 20;
  if (std::memcmp(h + 12, "VP8 ", 4) == 0) {  // lossy: frame tag (3), start code, 14-bit sizes
    SPRINT_CHECK(d[3] == 0x9D && d[4] == 0x01 && d[5] == 0x2A, "corrupt WebP (VP8) header");
    return {"WebP", le16(d + 6) & 0x3FFF, le16(d + 8) & 0x3FFF};
  }
  if (std::memcmp(h + 12, "VP8L", 4) == 0) {  // lossless: signature, 14-bit sizes minus one
    SPRINT_CHECK(d[0] == 0x2F, "corrupt WebP (VP8L) header");
    const uint32_t bits = le32(d + 1);
    return {"WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1};
  }
  if (std::memcmp(h + 12, "VP8X", 4) == 0) {  // extended: flags, 3 reserved, 24-bit canvas sizes minus one
    SPRINT_CHECK((d[0] & 0x02) == 0, "animated WebP is not supported");
    return {"WebP", int64_t{le24(d + 4)} + 1, int64_t{le24(d + 7)} + 1};
  }
  throw Error("corrupt WebP header (unknown first chunk)");
}

// The header of a JPEG, PNG, WebP, BMP or TIFF picture, checked against the pixel limit; throws saying what is wrong.
PictureHeader probe(const ByteSource& src, int64_t max_pixels) {
  uint8_t h[26];
  const bool has26 = src.read(0, h, 26);
  SPRINT_CHECK(has26 || src.read(0, h, 12), "not a JPEG, PNG, WebP, BMP or TIFF file (too short)");
  PictureHeader out;
  if (h[0] == 0xFF && h[1] == 0xD8 && h[2] == 0xFF) {
    out = probe_jpeg(src);
  } else if (std::memcmp(h, "\x89PNG\r\n\x1a\n", 8) == 0) {
    SPRINT_CHECK(has26, "truncated PNG header");
    SPRINT_CHECK(be32(h + 8) == 13 && std::memcmp(h + 12, "IHDR", 4) == 0, "corrupt PNG header (no IHDR)");
    out = {"PNG", be32(h + 16), be32(h + 20)};
  } else if (std::memcmp(h, "RIFF", 4) == 0 && std::memcmp(h + 8, "WEBP", 4) == 0) {
    out = probe_webp(src);
  } else if (h[0] == 'B' && h[1] == 'M') {
    SPRINT_CHECK(has26, "truncated BMP header");
    if (le32(h + 14) == 12) {  // OS/2 BITMAPCOREHEADER: 16-bit sizes
      out = {"BMP", le16(h + 18), le16(h + 20)};
    } else {                   // BITMAPINFOHEADER and later: signed 32-bit sizes, negative height = top-down
      out = {"BMP", static_cast<int32_t>(le32(h + 18)), std::abs(int64_t{static_cast<int32_t>(le32(h + 22))})};
    }
  } else if (std::memcmp(h, "II*\0", 4) == 0 || std::memcmp(h, "MM\0*", 4) == 0) {
    const auto tags = tiff_ifd0(src);
    SPRINT_CHECK(tags.count(256) && tags.count(257), "TIFF without ImageWidth / ImageLength");
    out = {"TIFF", tags.at(256), tags.at(257)};
  } else {
    throw Error("not a JPEG, PNG, WebP, BMP or TIFF file");
  }
  SPRINT_CHECK(out.width > 0 && out.height > 0, "corrupt ", out.format, " header (size ", out.width, "x", out.height,
               ")");
  SPRINT_CHECK(out.width <= max_pixels / out.height, out.format, " of ", out.width, "x", out.height, " = ",
               out.width * out.height, " pixels, more than the limit of ", max_pixels);
  return out;
}

// ---- decoding -------------------------------------------------------------------------------------------------------

// Straight alpha over white, per 8-bit channel: (c * a + 255 * (255 - a)) / 255, rounded.
cv::Mat over_white(const cv::Mat& bgra) {
  cv::Mat out(bgra.rows, bgra.cols, CV_8UC3);
  for (int y = 0; y < bgra.rows; ++y) {
    const uint8_t* s = bgra.ptr<uint8_t>(y);
    uint8_t* d = out.ptr<uint8_t>(y);
    for (int x = 0; x < bgra.cols; ++x, s += 4, d += 3) {
      const uint32_t a = s[3];
      for (int c = 0; c < 3; ++c) d[c] = static_cast<uint8_t>((s[c] * a + 255 * (255 - a) + 127) / 255);
    }
  }
  return out;
}

// Exif orientation 2..8 applied the way OpenCV's imread does it (ApplyExifOrientation).
cv::Mat oriented(const cv::Mat& m, int orientation) {
  cv::Mat out;
  switch (orientation) {
    case 2: cv::flip(m, out, 1); return out;
    case 3: cv::flip(m, out, -1); return out;
    case 4: cv::flip(m, out, 0); return out;
    default: break;
  }
  if (orientation < 5) return m;
  cv::transpose(m, out);
  if (orientation == 6) cv::flip(out, out, 1);
  if (orientation == 7) cv::flip(out, out, -1);
  if (orientation == 8) cv::flip(out, out, 0);
  return out;
}

// OpenCV decodes with IMREAD_UNCHANGED, which keeps alpha and 16-bit samples and leaves the Exif orientation to us.
cv::Mat decode_rgb(std::string_view bytes, int64_t max_pixels) {
  const PictureHeader h = probe(MemorySource(bytes), max_pixels);
  SPRINT_CHECK(bytes.size() <= static_cast<size_t>(INT_MAX), "file of ", bytes.size(), " bytes is too large to decode");
  const cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
  cv::Mat m = cv::imdecode(buf, cv::IMREAD_UNCHANGED);
  SPRINT_CHECK(!m.empty(), "cannot be decoded (corrupt or truncated ", h.format, ")");
  SPRINT_CHECK(m.cols == h.width && m.rows == h.height, h.format, " decodes to ", m.cols, "x", m.rows,
               " but its header says ", h.width, "x", h.height);
  if (m.depth() == CV_16U) m.convertTo(m, CV_8U, 1.0 / 257.0);
  SPRINT_CHECK(m.depth() == CV_8U, h.format, " with unsupported samples (OpenCV depth ", m.depth(), ")");
  cv::Mat rgb;
  switch (m.channels()) {
    case 1: cv::cvtColor(m, rgb, cv::COLOR_GRAY2RGB); break;
    case 3: cv::cvtColor(m, rgb, cv::COLOR_BGR2RGB); break;
    case 4: cv::cvtColor(over_white(m), rgb, cv::COLOR_BGR2RGB); break;
    default: throw Error(str(h.format, " with ", m.channels(), " channels is not supported"));
  }
  return oriented(rgb, h.orientation);
}

}  // namespace

PictureHeader probe_picture(std::string_view bytes, const std::string& what, int64_t max_pixels) {
  return with_context(what, [&] { return probe(MemorySource(bytes), max_pixels); });
}

PictureHeader probe_picture_file(const std::string& path, const std::string& what, int64_t max_pixels) {
  return with_context(what, [&] {
    std::error_code ec;
    const auto st = fs::status(path, ec);
    SPRINT_CHECK(fs::exists(st), "does not exist");
    SPRINT_CHECK(fs::is_regular_file(st), "is not a regular file");
    const FileSource src(path);
    SPRINT_CHECK(src.is_open(), "cannot be opened");
    return probe(src, max_pixels);
  });
}

torch::Tensor decode_picture(std::string_view bytes, const std::string& what, int64_t max_pixels) {
  return with_context(what, [&] {
    const cv::Mat rgb = decode_rgb(bytes, max_pixels);
    SPRINT_CHECK(rgb.isContinuous(), "decoded picture is not contiguous");  // cvtColor, flip, transpose allocate
    // The tensor shares the matrix's memory and keeps it alive (the deleter holds a reference): no copy.
    return torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, [keep = rgb](void*) {}, torch::kUInt8);
  });
}

torch::Tensor read_picture(const std::string& path, int64_t max_pixels) {
  constexpr int64_t kMetadataBytes = int64_t{16} << 20;
  const int64_t max_bytes = std::clamp<int64_t>(max_pixels, 0, (INT64_MAX - kMetadataBytes) / 8) * 8 + kMetadataBytes;
  return decode_picture(read_small_file(path, static_cast<size_t>(max_bytes)), str("'", path, "'"), max_pixels);
}

}  // namespace sprint
