// Scribble maps. See include/sprint/scribble.h and docs/maths.md#scribble.
#include "sprint/scribble.h"

#include <torch/torch.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "sprint/error.h"

namespace sprint {

namespace {

constexpr double kScribbleSigma = 3.0;   // get_scribble_map: GaussianBlur(map, (0, 0), 3.0) and nms(map, 127, 3.0)
constexpr double kNmsThreshold = 127.0;
constexpr double kLineThreshold = 4.0;   // blurred lines: > 4 -> 255

void check_thickness(int thickness, const char* fn) {
  SPRINT_CHECK(thickness >= 0 && thickness <= kMaxScribbleThickness, fn, ": thickness must be in 0..",
               kMaxScribbleThickness, " (the Sana slider uses 1..4), got ", thickness);
}

// A single-channel (H, W) or (H, W, 1) uint8 map, contiguous on the CPU, as (H, W).
torch::Tensor checked_map(const torch::Tensor& t, const char* fn) {
  SPRINT_CHECK(t.defined(), fn, ": no map (undefined tensor)");
  SPRINT_CHECK(t.scalar_type() == torch::kUInt8, fn, ": expected a uint8 map, got dtype ", t.scalar_type());
  SPRINT_CHECK(t.dim() == 2 || (t.dim() == 3 && t.size(2) == 1), fn, ": expected an (H, W) map, got shape ",
               t.sizes());
  check_image_size(t, fn);
  return t.to(torch::kCPU).reshape({t.size(0), t.size(1)}).contiguous();
}

int channels(const torch::Tensor& img) { return img.dim() == 3 ? static_cast<int>(img.size(2)) : 1; }

// Header over a contiguous CPU uint8 tensor (no copy; the tensor must outlive the Mat).
cv::Mat as_mat(const torch::Tensor& t) {
  return cv::Mat(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_8UC(channels(t)), t.data_ptr());
}

torch::Tensor new_map(int64_t h, int64_t w) { return torch::empty({h, w}, torch::kUInt8); }

// 255 where the sketch is ink (luma < 128), 0 elsewhere.
void ink_from_image(const torch::Tensor& img, cv::Mat& ink) {
  const cv::Mat src = as_mat(img);
  const int c = channels(img);
  if (c == 1) {
    cv::threshold(src, ink, kInkLumaThreshold - 1, 255, cv::THRESH_BINARY_INV);  // v <= 127 -> 255
    return;
  }
  if (c == 3) {
    cv::cvtColor(src, ink, cv::COLOR_RGB2GRAY);  // BT.601 in 14-bit fixed point, rounded
    cv::threshold(ink, ink, kInkLumaThreshold - 1, 255, cv::THRESH_BINARY_INV);
    return;
  }
  // RGBA: composite on white as HWC3 does (integer form of c * a / 255 + 255 * (1 - a / 255), truncated), then the
  // same fixed-point luma as cvtColor. A transparent canvas with opaque dark strokes is the usual case.
  constexpr int kR = 4899, kG = 9617, kB = 1868, kShift = 14;  // OpenCV's RGB2GRAY weights, sum 2^14
  for (int y = 0; y < src.rows; ++y) {
    const uint8_t* p = src.ptr<uint8_t>(y);
    uint8_t* m = ink.ptr<uint8_t>(y);
    for (int x = 0; x < src.cols; ++x, p += 4) {
      const int a = p[3];
      const int r = (p[0] * a + 255 * (255 - a)) / 255;
      const int g = (p[1] * a + 255 * (255 - a)) / 255;
      const int b = (p[2] * a + 255 * (255 - a)) / 255;
      const int luma = (r * kR + g * kG + b * kB + (1 << (kShift - 1))) >> kShift;
      m[x] = luma < kInkLumaThreshold ? 255 : 0;
    }
  }
}

// ---- Thinning ----------------------------------------------------------------------------------------------------
// Zhang & Suen, "A fast parallel algorithm for thinning digital patterns", CACM 27(3), 1984, run bit-parallel: 64
// pixels per uint64, one boolean formula per rule, no per-pixel branches (a per-pixel table version cost ~10 ms on a
// dense 1024^2 sketch, mostly branch misses). Neighbour i of a pixel is P(i + 2) in the paper's clockwise order from
// north: N, NE, E, SE, S, SW, W, NW; even i are the 4-neighbours.

// A binary image, bit-packed: pixel (y, x) is bit x & 63 of word x >> 6 of row y. One zero word on each side of every
// row and one zero row above and below, so neighbour words always exist.
struct BitImage {
  int h = 0, w = 0, nw = 0;  // nw words per row
  ptrdiff_t stride = 0;      // nw + 2
  std::vector<uint64_t> bits;

  void reset(int rows, int cols) {
    h = rows;
    w = cols;
    nw = (cols + 63) / 64;
    stride = nw + 2;
    bits.assign(static_cast<size_t>(h + 2) * static_cast<size_t>(stride), 0);  // keeps the capacity
  }
  size_t index(int y, int i) const { return static_cast<size_t>((y + 1) * stride + 1 + i); }
};

// Eight 0x00/0xFF bytes (byte k = pixel k) -> 8 bits (bit k = pixel k). The multiply gathers bit 0 of byte k into
// bit 56 + k; the partial products never overlap, so nothing carries.
inline uint64_t pack8(uint64_t bytes) { return (((bytes >> 7) & 0x0101010101010101ull) * 0x0102040810204080ull) >> 56; }

// 8 bits -> eight 0x00/0xFF bytes: replicate into every byte, keep bit k in byte k, spread each nonzero byte to 0xFF
// (adding 0x7F to a byte <= 0x80 never carries into the next byte).
inline uint64_t unpack8(uint64_t bits8) {
  const uint64_t x = (bits8 * 0x0101010101010101ull) & 0x8040201008040201ull;
  return (((x + 0x7F7F7F7F7F7F7F7Full) & 0x8080808080808080ull) >> 7) * 0xFF;
}

void pack(const cv::Mat& m, BitImage& b) {  // m: (H, W) uint8, 0 or 255
  b.reset(m.rows, m.cols);
  for (int y = 0; y < m.rows; ++y) {
    const uint8_t* src = m.ptr<uint8_t>(y);
    uint64_t* dst = b.bits.data() + b.index(y, 0);
    int x = 0;
    for (; x + 8 <= m.cols; x += 8) {
      uint64_t v;
      std::memcpy(&v, src + x, 8);
      if (v) dst[x >> 6] |= pack8(v) << (x & 63);
    }
    for (; x < m.cols; ++x)
      if (src[x]) dst[x >> 6] |= 1ull << (x & 63);
  }
}

void unpack(const BitImage& b, cv::Mat& m) {  // -> (H, W) uint8, 0 or 255
  m.create(b.h, b.w, CV_8U);
  for (int y = 0; y < b.h; ++y) {
    const uint64_t* src = b.bits.data() + b.index(y, 0);
    uint8_t* dst = m.ptr<uint8_t>(y);
    int x = 0;
    for (; x + 8 <= b.w; x += 8) {
      const uint64_t v = unpack8((src[x >> 6] >> (x & 63)) & 0xFF);
      std::memcpy(dst + x, &v, 8);
    }
    for (; x < b.w; ++x) dst[x] = ((src[x >> 6] >> (x & 63)) & 1) ? 255 : 0;
  }
}

// The eight neighbour bits of the 64 pixels of word c.
inline void neighbours(const uint64_t* c, ptrdiff_t stride, uint64_t n[8]) {
  const uint64_t* u = c - stride;
  const uint64_t* d = c + stride;
  n[0] = u[0];                              // N
  n[1] = (u[0] >> 1) | (u[1] << 63);        // NE: bit x holds pixel x + 1
  n[2] = (c[0] >> 1) | (c[1] << 63);        // E
  n[3] = (d[0] >> 1) | (d[1] << 63);        // SE
  n[4] = d[0];                              // S
  n[5] = (d[0] << 1) | (d[-1] >> 63);       // SW: bit x holds pixel x - 1
  n[6] = (c[0] << 1) | (c[-1] >> 63);       // W
  n[7] = (u[0] << 1) | (u[-1] >> 63);       // NW
}

// Bit-sliced count of the eight neighbours of 64 pixels: B = 8 s3 + 4 s2 + 2 s1 + s0 (a carry-save adder tree).
struct NeighbourCount {
  uint64_t s0, s1, s2, s3;
  explicit NeighbourCount(const uint64_t n[8]) {
    auto full_add = [](uint64_t a, uint64_t b, uint64_t c, uint64_t& sum, uint64_t& carry) {
      const uint64_t u = a ^ b;
      sum = u ^ c;
      carry = (a & b) | (u & c);
    };
    uint64_t sa, ca, sb, cb, ta, tc;
    full_add(n[0], n[1], n[2], sa, ca);
    full_add(n[3], n[4], n[5], sb, cb);
    const uint64_t sc = n[6] ^ n[7], cc = n[6] & n[7];
    uint64_t cd;
    full_add(sa, sb, sc, s0, cd);    // ones
    full_add(ca, cb, cc, ta, tc);    // twos -> ta, fours -> tc
    s1 = ta ^ cd;
    const uint64_t te = ta & cd;     // fours
    s2 = tc ^ te;
    s3 = tc & te;                    // eights
  }
  uint64_t at_least_2() const { return s1 | s2 | s3; }
  uint64_t at_least_3() const { return s2 | s3 | (s1 & s0); }
  uint64_t at_least_7() const { return s3 | (s2 & s1 & s0); }
  uint64_t exactly_2() const { return s1 & ~s0 & ~s2 & ~s3; }
};

// Pixels of `p` that Zhang-Suen sub-iteration `sub` deletes. One change: the tip of a 2-px-thick diagonal line has
// exactly two neighbours, next to each other on the ring; plain Zhang-Suen deletes it, exposing a new such tip, and
// unravels the whole line from both ends, so such a tip counts as an end point here.
inline uint64_t zhang_suen_deletable(const uint64_t n[8], uint64_t p, int sub) {
  const NeighbourCount b(n);
  uint64_t one = 0, two = 0, adjacent = 0;  // one / two or more 0 -> 1 transitions around the ring
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    const uint64_t v = n[i], next = n[(i + 1) & 7];
    const uint64_t t = ~v & next;
    two |= one & t;
    one |= t;
    adjacent |= v & next;
  }
  const uint64_t tip = b.exactly_2() & adjacent;
  // 2 <= B <= 6 (not an end point, not inside), A == 1 (removal keeps the neighbours connected), not a tip.
  const uint64_t d = p & b.at_least_2() & ~b.at_least_7() & one & ~two & ~tip;
  if (sub == 0) return d & ~(n[0] & n[2] & n[4]) & ~(n[2] & n[4] & n[6]);  // south-east boundary, north-west corner
  return d & ~(n[0] & n[2] & n[6]) & ~(n[0] & n[4] & n[6]);                // north-west boundary, south-east corner
}

// Pixels of `p` that are simple (Yokoi's 8-connectivity number is 1: removal changes no connectivity) and have at
// least 3 neighbours (not an end, not the tip of a 2-px diagonal).
inline uint64_t redundant(const uint64_t n[8], uint64_t p) {
  uint64_t one = 0, two = 0;
#pragma GCC unroll 4
  for (int k = 0; k < 8; k += 2) {
    const uint64_t t = ~n[k] & (n[k + 1] | n[(k + 2) & 7]);  // (1 - x_k) - (1 - x_k)(1 - x_k+1)(1 - x_k+2)
    two |= one & t;
    one |= t;
  }
  return p & NeighbourCount(n).at_least_3() & one & ~two;
}

// Buffers for the stroke path, kept per thread between calls: the app calls it on every stroke change at the same
// size, and fresh multi-megabyte buffers cost a page fault per first-touched page. About 5 bytes per pixel stay
// allocated.
struct StrokeWorkspace {
  cv::Mat ink, eroded_a, eroded_b, rim, lines;
  BitImage image;
  std::array<std::vector<uint8_t>, 2> dirty;  // per word: re-examine under rule 0 / 1
  std::vector<uint64_t> deleted;              // per word: pixels a pass deletes
  std::vector<size_t> changed;                // words a pass changes
};

StrokeWorkspace& stroke_workspace() {
  thread_local StrokeWorkspace ws;
  return ws;
}

// Thins ws.image to a 1-px 8-connected skeleton, in place:
//  1. Zhang-Suen, both sub-iterations in parallel semantics as published (that keeps the skeleton centred), with the
//     tip rule above. A word is re-examined under a rule only after a pixel in it or in a word around it changed.
//  2. Zhang-Suen leaves 4-connected staircases on diagonals, which have twice the pixels of an 8-connected line and
//     so would blur into a wider line. One sweep deletes the simple, non-end pixels, in four interleaved subfields
//     (x and y parity): pixels of one subfield are never neighbours, so deleting them in parallel is as safe as
//     deleting them one at a time.
// Known loss, shared with the reference: an isolated blob of about 2 x 2 px vanishes (Zhang-Suen deletes all four
// pixels at once), as a dot that small also disappears from HED-scribble (nms's blur takes it below 127).
void thin(StrokeWorkspace& ws) {
  BitImage& b = ws.image;
  uint64_t* bits = b.bits.data();
  const ptrdiff_t s = b.stride;
  const size_t words = b.bits.size();
  for (auto& d : ws.dirty) d.assign(words, 1);
  ws.deleted.resize(words);
  uint64_t n[8];
  for (bool changed_round = true; changed_round;) {
    changed_round = false;
    for (int sub = 0; sub < 2; ++sub) {
      uint8_t* dirty = ws.dirty[sub].data();
      ws.changed.clear();
      for (int y = 0; y < b.h; ++y) {
        for (size_t k = b.index(y, 0), end = k + static_cast<size_t>(b.nw); k < end; ++k) {
          if (!dirty[k]) continue;
          dirty[k] = 0;
          if (!bits[k]) continue;
          neighbours(bits + k, s, n);
          if (const uint64_t d = zhang_suen_deletable(n, bits[k], sub)) {
            ws.deleted[k] = d;
            ws.changed.push_back(k);
          }
        }
      }
      for (size_t k : ws.changed) bits[k] &= ~ws.deleted[k];
      for (size_t k : ws.changed) {
        for (ptrdiff_t row : {-s, ptrdiff_t{0}, s}) {
          uint8_t* d0 = ws.dirty[0].data() + k + row;
          uint8_t* d1 = ws.dirty[1].data() + k + row;
          d0[-1] = d0[0] = d0[1] = 1;
          d1[-1] = d1[0] = d1[1] = 1;
        }
      }
      changed_round |= !ws.changed.empty();
    }
  }
  constexpr uint64_t kEvenX = 0x5555555555555555ull;
  for (int py = 0; py < 2; ++py) {
    for (uint64_t mask : {kEvenX, ~kEvenX}) {
      for (int y = py; y < b.h; y += 2) {
        for (size_t k = b.index(y, 0), end = k + static_cast<size_t>(b.nw); k < end; ++k) {
          if (!(bits[k] & mask)) continue;
          neighbours(bits + k, s, n);
          bits[k] &= ~redundant(n, bits[k] & mask);
        }
      }
    }
  }
}

// ws.ink (0/255) -> the HED-like 1-px line map in ws.lines (continuous, (H, W), 0/255).
void ink_to_lines(StrokeWorkspace& ws) {
  // Interior = erosion by a radius-4 octagon (3x3 square, 3x3 cross, twice): where a 9-px-wide brush fits inside the
  // ink. The default border value for erode counts the outside as ink, so shapes touching the image edge get no
  // outline there (HED sees no edge at the canvas border either).
  static const cv::Mat square = cv::getStructuringElement(cv::MORPH_RECT, cv::Size(3, 3));
  static const cv::Mat cross = cv::getStructuringElement(cv::MORPH_CROSS, cv::Size(3, 3));
  cv::erode(ws.ink, ws.eroded_a, square);
  cv::erode(ws.eroded_a, ws.eroded_b, cross);
  cv::erode(ws.eroded_b, ws.eroded_a, square);
  cv::erode(ws.eroded_a, ws.eroded_b, cross);
  cv::subtract(ws.ink, ws.eroded_b, ws.rim);  // ink minus interior (interior is a subset of ink)
  pack(ws.rim, ws.image);
  thin(ws);
  unpack(ws.image, ws.lines);
}

// The thickness rule, in place on a 0/255 map.
void thicken(cv::Mat& m, int thickness) {
  if (thickness == 0) {
    cv::erode(m, m, cv::Mat::ones(4, 4, CV_8U));
  } else if (thickness / 2 > 1) {  // 1 is "unchanged"; 2 and 3 would dilate with a 1x1 kernel, also unchanged
    const int k = thickness / 2;
    cv::dilate(m, m, cv::Mat::ones(k, k, CV_8U));
  }
}

// The reference's tail: GaussianBlur(sigma 3) on uint8, > 4 -> 255, thickness. BORDER_ISOLATED: should `lines` be a
// view into a larger buffer, it is still blurred as a whole image (reflect-101 at its own edges, and the bit-exact
// fixed-point path OpenCV takes for a standalone uint8 matrix).
torch::Tensor finish_lines(const cv::Mat& lines, int thickness) {
  auto out = new_map(lines.rows, lines.cols);
  cv::Mat o = as_mat(out);
  cv::GaussianBlur(lines, o, cv::Size(0, 0), kScribbleSigma, kScribbleSigma,
                   cv::BORDER_REFLECT_101 | cv::BORDER_ISOLATED);
  cv::threshold(o, o, kLineThreshold, 255, cv::THRESH_BINARY);
  thicken(o, thickness);
  return out;
}

// ws.ink -> scribble map.
torch::Tensor ink_to_scribble(StrokeWorkspace& ws, int thickness) {
  ink_to_lines(ws);
  return finish_lines(ws.lines, thickness);
}

}  // namespace

torch::Tensor sketch_to_scribble(const torch::Tensor& sketch, int thickness) {
  constexpr const char* fn = "sketch_to_scribble";
  check_thickness(thickness, fn);
  const auto img = checked_image(sketch, fn);
  auto& ws = stroke_workspace();
  ws.ink.create(static_cast<int>(img.size(0)), static_cast<int>(img.size(1)), CV_8U);
  ink_from_image(img, ws.ink);
  return ink_to_scribble(ws, thickness);
}

torch::Tensor stroke_mask_to_scribble(const torch::Tensor& mask, int thickness) {
  constexpr const char* fn = "stroke_mask_to_scribble";
  check_thickness(thickness, fn);
  SPRINT_CHECK(mask.defined(), fn, ": no mask (undefined tensor)");
  SPRINT_CHECK(mask.scalar_type() == torch::kBool || mask.scalar_type() == torch::kUInt8, fn,
               ": expected a bool or uint8 mask, got dtype ", mask.scalar_type());
  SPRINT_CHECK(mask.dim() == 2 || (mask.dim() == 3 && mask.size(2) == 1), fn, ": expected an (H, W) mask, got shape ",
               mask.sizes());
  check_image_size(mask, fn);
  const auto m = mask.to(torch::kCPU).reshape({mask.size(0), mask.size(1)}).contiguous();
  // A bool tensor stores one byte, 0 or 1, per element: read it as uint8.
  const cv::Mat src(static_cast<int>(m.size(0)), static_cast<int>(m.size(1)), CV_8U, m.data_ptr());
  auto& ws = stroke_workspace();
  cv::compare(src, 0, ws.ink, cv::CMP_NE);
  return ink_to_scribble(ws, thickness);
}

torch::Tensor scribble_nms(const torch::Tensor& edge, double t, double sigma) {
  constexpr const char* fn = "scribble_nms";
  SPRINT_CHECK(t >= 0, fn, ": threshold must be >= 0, got ", t);
  SPRINT_CHECK(sigma > 0, fn, ": sigma must be > 0, got ", sigma);
  const auto e = checked_map(edge, fn);
  cv::Mat x, blurred;
  as_mat(e).convertTo(x, CV_32F);
  cv::GaussianBlur(x, blurred, cv::Size(0, 0), sigma);  // float input: round(8 sigma + 1) | 1 taps, reflect-101
  // The four 3-pixel line kernels: horizontal, vertical, main diagonal, anti-diagonal.
  static const std::array<cv::Mat, 4> kernels = {
      (cv::Mat_<uint8_t>(3, 3) << 0, 0, 0, 1, 1, 1, 0, 0, 0),
      (cv::Mat_<uint8_t>(3, 3) << 0, 1, 0, 0, 1, 0, 0, 1, 0),
      (cv::Mat_<uint8_t>(3, 3) << 1, 0, 0, 0, 1, 0, 0, 0, 1),
      (cv::Mat_<uint8_t>(3, 3) << 0, 0, 1, 0, 1, 0, 1, 0, 0),
  };
  cv::Mat keep = cv::Mat::zeros(blurred.size(), CV_8U), dilated, equal;
  for (const auto& k : kernels) {
    cv::dilate(blurred, dilated, k);
    cv::compare(dilated, blurred, equal, cv::CMP_EQ);  // a maximum along this line (plateaus included)
    cv::bitwise_or(keep, equal, keep);
  }
  auto out = new_map(e.size(0), e.size(1));
  cv::Mat o = as_mat(out);
  cv::compare(blurred, t, o, cv::CMP_GT);
  cv::bitwise_and(o, keep, o);
  return out;
}

torch::Tensor apply_scribble_thickness(const torch::Tensor& map, int thickness) {
  constexpr const char* fn = "apply_scribble_thickness";
  check_thickness(thickness, fn);
  auto m = checked_map(map, fn);
  if (m.data_ptr() == map.data_ptr()) m = m.clone();  // a new map, never a view of the caller's tensor
  cv::Mat o = as_mat(m);
  thicken(o, thickness);
  return m;
}

torch::Tensor scribble_finish(const torch::Tensor& lines, int thickness) {
  constexpr const char* fn = "scribble_finish";
  check_thickness(thickness, fn);
  const auto l = checked_map(lines, fn);
  return finish_lines(as_mat(l), thickness);
}

torch::Tensor edge_to_scribble(const torch::Tensor& edge, int thickness) {
  check_thickness(thickness, "edge_to_scribble");
  return scribble_finish(scribble_nms(edge, kNmsThreshold, kScribbleSigma), thickness);
}

}  // namespace sprint
