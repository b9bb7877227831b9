#include "sprint/training/sketch_style.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "sprint/error.h"
#include "sprint/scribble.h"

namespace sprint::training {
namespace {

constexpr double kPi = 3.14159265358979323846;

cv::Mat mat_u8(const torch::Tensor& t) {  // (H, W) or (H, W, C) uint8, contiguous, CPU
  const int c = t.dim() == 3 ? static_cast<int>(t.size(2)) : 1;
  return cv::Mat(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_8UC(c), t.data_ptr<uint8_t>());
}

torch::Tensor from_mat(const cv::Mat& m) {
  const auto h = m.rows, w = m.cols, c = m.channels();
  auto out = c == 1 ? torch::empty({h, w}, torch::kUInt8) : torch::empty({h, w, c}, torch::kUInt8);
  const size_t row = static_cast<size_t>(w) * c;
  for (int y = 0; y < h; ++y) std::memcpy(out.data_ptr<uint8_t>() + y * row, m.ptr<uint8_t>(y), row);
  return out;
}

// Keeps the line pixels whose angle around the lines' centroid lies in [start, start + fraction * 2 pi): what a pen
// going once around the figure has drawn so far.
void keep_arc(cv::Mat& lines, double start, double fraction) {
  cv::Moments mo = cv::moments(lines, true);
  if (mo.m00 <= 0) return;
  const double cx = mo.m10 / mo.m00, cy = mo.m01 / mo.m00, span = fraction * 2 * kPi;
  for (int y = 0; y < lines.rows; ++y) {
    auto* row = lines.ptr<uint8_t>(y);
    for (int x = 0; x < lines.cols; ++x) {
      if (!row[x]) continue;
      double a = std::atan2(y - cy, x - cx) - start;
      a = std::fmod(a + 4 * kPi, 2 * kPi);
      if (a >= span) row[x] = 0;
    }
  }
}

}  // namespace

uint64_t RowRng::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

double RowRng::uniform(double lo, double hi) {
  return lo + (hi - lo) * static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0);
}

int64_t RowRng::below(int64_t n) {
  SPRINT_CHECK(n > 0, "RowRng::below: n = ", n, " must be positive");
  return static_cast<int64_t>(next() % static_cast<uint64_t>(n));
}

std::pair<torch::Tensor, torch::Tensor> smooth_warp_maps(int64_t h, int64_t w, double amplitude, int grid,
                                                         RowRng& rng) {
  SPRINT_CHECK(h > 0 && w > 0 && grid >= 2 && amplitude >= 0, "smooth_warp_maps: bad arguments (", h, "x", w,
               ", grid ", grid, ", amplitude ", amplitude, ")");
  cv::Mat coarse[2];
  for (auto& c : coarse) {
    c.create(grid, grid, CV_32F);
    for (int i = 0; i < grid; ++i)
      for (int j = 0; j < grid; ++j) c.at<float>(i, j) = static_cast<float>(rng.uniform(-amplitude, amplitude));
  }
  auto mx = torch::empty({h, w}, torch::kFloat32), my = torch::empty({h, w}, torch::kFloat32);
  cv::Mat dx, dy;
  cv::resize(coarse[0], dx, cv::Size(static_cast<int>(w), static_cast<int>(h)), 0, 0, cv::INTER_CUBIC);
  cv::resize(coarse[1], dy, cv::Size(static_cast<int>(w), static_cast<int>(h)), 0, 0, cv::INTER_CUBIC);
  auto* px = mx.data_ptr<float>();
  auto* py = my.data_ptr<float>();
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) {
      px[y * w + x] = static_cast<float>(x) + dx.at<float>(static_cast<int>(y), static_cast<int>(x));
      py[y * w + x] = static_cast<float>(y) + dy.at<float>(static_cast<int>(y), static_cast<int>(x));
    }
  return {mx, my};
}

torch::Tensor sketch_of_picture(const torch::Tensor& picture, const PictureEdgeOptions& edges,
                                const SketchStyleOptions& st, RowRng& rng) {
  if (!st.enabled) return picture_to_scribble(picture, edges);
  SPRINT_CHECK(st.min_pen >= 1 && st.max_pen >= st.min_pen && st.max_pen <= 64, "sketch style: pen width range [",
               st.min_pen, ", ", st.max_pen, "] must lie in 1..64");
  SPRINT_CHECK(st.min_thickness >= 0 && st.max_thickness >= st.min_thickness &&
                   st.max_thickness <= kMaxScribbleThickness,
               "sketch style: thickness range [", st.min_thickness, ", ", st.max_thickness, "] must lie in 0..",
               kMaxScribbleThickness);
  auto layers = picture_lines(picture, edges);
  cv::Mat outline = mat_u8(layers.outline), inner = mat_u8(layers.inner);
  if (rng.chance(st.outline_only)) {
    inner.setTo(0);
  } else if (st.drop_inner > 0) {
    cv::Mat labels;
    const int n = cv::connectedComponents(inner, labels, 8, CV_32S);
    std::vector<uint8_t> drop(static_cast<size_t>(n), 0);
    for (int k = 1; k < n; ++k) drop[static_cast<size_t>(k)] = rng.chance(st.drop_inner) ? 1 : 0;
    for (int y = 0; y < inner.rows; ++y) {
      auto* row = inner.ptr<uint8_t>(y);
      const auto* lab = labels.ptr<int>(y);
      for (int x = 0; x < inner.cols; ++x)
        if (drop[static_cast<size_t>(lab[x])]) row[x] = 0;
    }
  }
  cv::Mat lines = outline | inner;
  if (rng.chance(st.partial)) {
    const double fraction = rng.uniform(st.min_partial, 1.0);
    keep_arc(lines, rng.uniform(0, 2 * kPi), fraction);
  }
  const int pen = st.min_pen + static_cast<int>(rng.below(st.max_pen - st.min_pen + 1));
  auto ink = ink_lines(from_mat(lines), pen);
  if (st.jitter > 0) {
    const double amp = st.jitter * std::max(ink.size(0), ink.size(1));
    auto [mx, my] = smooth_warp_maps(ink.size(0), ink.size(1), amp, 5, rng);
    cv::Mat src = mat_u8(ink), dst;
    cv::Mat cx(static_cast<int>(mx.size(0)), static_cast<int>(mx.size(1)), CV_32F, mx.data_ptr<float>());
    cv::Mat cy(static_cast<int>(my.size(0)), static_cast<int>(my.size(1)), CV_32F, my.data_ptr<float>());
    cv::remap(src, dst, cx, cy, cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar(0));
    cv::threshold(dst, dst, 127, 255, cv::THRESH_BINARY);
    ink = from_mat(dst);
  }
  const int thickness = st.min_thickness + static_cast<int>(rng.below(st.max_thickness - st.min_thickness + 1));
  return stroke_mask_to_scribble(ink, thickness);
}

torch::Tensor cut_into_silhouette(const torch::Tensor& picture, const torch::Tensor& shape) {
  SPRINT_CHECK(picture.dim() == 3 && picture.size(2) == 3 && picture.sizes() == shape.sizes() &&
                   picture.scalar_type() == torch::kUInt8 && shape.scalar_type() == torch::kUInt8,
               "cut_into_silhouette: expected two (S, S, 3) uint8 pictures of one size, got ",
               shape_str(picture.sizes().vec()), " and ", shape_str(shape.sizes().vec()));
  auto pic = picture.contiguous();
  auto fig_a = figure_mask(pic), fig_b = figure_mask(shape.contiguous());
  cv::Mat a = mat_u8(pic), ma = mat_u8(fig_a), mb = mat_u8(fig_b);
  const cv::Rect ra = cv::boundingRect(ma), rb = cv::boundingRect(mb);
  if (ra.area() < 16 || rb.area() < 16) return picture;
  // Paper inside A's box takes the colour of the nearest figure pixel, so the stretched content fills B's outline.
  cv::Mat crop = a(ra).clone(), crop_mask = ma(ra), paper = 255 - crop_mask, dist, labels;
  cv::distanceTransform(paper, dist, labels, cv::DIST_L2, 3, cv::DIST_LABEL_PIXEL);
  std::map<int, cv::Vec3b> colour;
  for (int y = 0; y < crop.rows; ++y)
    for (int x = 0; x < crop.cols; ++x)
      if (crop_mask.at<uint8_t>(y, x)) colour[labels.at<int>(y, x)] = crop.at<cv::Vec3b>(y, x);
  for (int y = 0; y < crop.rows; ++y)
    for (int x = 0; x < crop.cols; ++x)
      if (!crop_mask.at<uint8_t>(y, x)) {
        auto it = colour.find(labels.at<int>(y, x));
        if (it != colour.end()) crop.at<cv::Vec3b>(y, x) = it->second;
      }
  cv::Mat placed(a.size(), CV_8UC3, cv::Scalar(255, 255, 255)), stretched;
  cv::resize(crop, stretched, rb.size(), 0, 0, cv::INTER_AREA);
  stretched.copyTo(placed(rb));
  // A soft silhouette edge (3x3 box) so the cut is anti-aliased like the pictures' own edges.
  cv::Mat alpha;
  cv::blur(mb, alpha, cv::Size(3, 3));
  cv::Mat out(a.size(), CV_8UC3);
  for (int y = 0; y < out.rows; ++y)
    for (int x = 0; x < out.cols; ++x) {
      const float t = alpha.at<uint8_t>(y, x) / 255.0f;
      const auto& p = placed.at<cv::Vec3b>(y, x);
      auto& o = out.at<cv::Vec3b>(y, x);
      for (int c = 0; c < 3; ++c) o[c] = static_cast<uint8_t>(std::lround(t * p[c] + (1 - t) * 255.0f));
    }
  return from_mat(out);
}

// ---- Hand-drawn outlines -------------------------------------------------------------------------------------------

namespace {

using Poly = std::vector<std::pair<double, double>>;  // unit coordinates, about [-1, 1], y down

Poly polygon(std::initializer_list<std::pair<double, double>> pts, bool close) {
  Poly p(pts);
  if (close) p.push_back(p.front());
  return p;
}

Poly arc(double cx, double cy, double rx, double ry, double a0, double a1, int n = 48) {
  Poly p;
  for (int i = 0; i <= n; ++i) {
    const double a = a0 + (a1 - a0) * i / n;
    p.emplace_back(cx + rx * std::cos(a), cy + ry * std::sin(a));
  }
  return p;
}

Poly radial(double (*r)(double), int n = 96) {
  Poly p;
  for (int i = 0; i <= n; ++i) {
    const double a = 2 * kPi * i / n - kPi / 2;
    p.emplace_back(r(a) * std::cos(a), r(a) * std::sin(a));
  }
  return p;
}

std::vector<Poly> shape_polys(const std::string& name) {
  if (name == "circle") return {arc(0, 0, 1, 1, -kPi / 2, 1.5 * kPi + 0.15)};
  if (name == "square") return {polygon({{-0.85, -0.85}, {0.85, -0.85}, {0.85, 0.85}, {-0.85, 0.85}}, true)};
  if (name == "triangle") return {polygon({{0, -0.95}, {0.95, 0.8}, {-0.95, 0.8}}, true)};
  if (name == "diamond") return {polygon({{0, -1}, {0.65, 0}, {0, 1}, {-0.65, 0}}, true)};
  if (name == "star") {
    Poly p;
    for (int i = 0; i <= 10; ++i) {
      const double a = -kPi / 2 + i * kPi / 5, r = i % 2 ? 0.42 : 1.0;
      p.emplace_back(r * std::cos(a), r * std::sin(a) + 0.08);
    }
    return {p};
  }
  if (name == "heart") {
    Poly p;
    for (int i = 0; i <= 96; ++i) {
      const double t = 2 * kPi * i / 96;
      const double x = 16 * std::pow(std::sin(t), 3);
      const double y = 13 * std::cos(t) - 5 * std::cos(2 * t) - 2 * std::cos(3 * t) - std::cos(4 * t);
      p.emplace_back(x / 17.0, -y / 17.0 + 0.05);
    }
    return {p};
  }
  if (name == "house")
    return {polygon({{-0.75, -0.1}, {-0.75, 0.9}, {0.75, 0.9}, {0.75, -0.1}}, false),
            polygon({{-0.9, -0.05}, {0, -0.9}, {0.9, -0.05}}, false),
            polygon({{-0.2, 0.9}, {-0.2, 0.35}, {0.2, 0.35}, {0.2, 0.9}}, false)};
  if (name == "crescent") {
    // The outer circle from 54 to 306 degrees, then back along a circle through the same two end points, centred at
    // (0.45, 0) (radius 0.82, from +-80.3 degrees through 180): one closed stroke.
    auto p = arc(0, 0, 1, 1, 0.3 * kPi, 1.7 * kPi);
    auto q = arc(0.45, 0, 0.82, 0.82, (360 - 80.3) * kPi / 180, 80.3 * kPi / 180);
    p.insert(p.end(), q.begin(), q.end());
    return {p};
  }
  if (name == "cloud")
    return {radial([](double a) { return 0.72 + 0.2 * std::fabs(std::sin(3 * a)) - 0.1 * std::sin(a); })};
  if (name == "arrow")
    return {polygon({{-0.95, -0.22}, {0.2, -0.22}, {0.2, -0.6}, {0.95, 0}, {0.2, 0.6}, {0.2, 0.22}, {-0.95, 0.22}},
                    true)};
  if (name == "tree")
    return {polygon({{0, -0.95}, {0.75, 0.45}, {-0.75, 0.45}}, true),
            polygon({{-0.15, 0.45}, {-0.15, 0.95}, {0.15, 0.95}, {0.15, 0.45}}, false)};
  if (name == "fish")
    return {arc(-0.15, 0, 0.7, 0.45, 0, 2 * kPi), polygon({{0.5, 0}, {0.95, -0.4}, {0.95, 0.4}}, true),
            arc(-0.5, -0.08, 0.06, 0.06, 0, 2 * kPi, 12)};
  if (name == "cup")
    return {polygon({{-0.7, -0.7}, {-0.55, 0.85}, {0.45, 0.85}, {0.6, -0.7}, {-0.7, -0.7}}, false),
            arc(0.6, 0.05, 0.3, 0.32, -0.45 * kPi, 0.45 * kPi)};
  if (name == "flag")
    return {polygon({{-0.8, 0.95}, {-0.8, -0.95}}, false),
            polygon({{-0.8, -0.9}, {0.85, -0.75}, {0.85, 0.05}, {-0.8, -0.1}}, false)};
  if (name == "lightning")
    return {polygon({{0.15, -1}, {-0.55, 0.1}, {-0.05, 0.1}, {-0.3, 1}, {0.6, -0.2}, {0.1, -0.2}, {0.45, -1}}, true)};
  throw Error(str("hand_drawn_shape: unknown shape '", name, "'"));
}

// Points along a polyline every `step` units.
Poly resample(const Poly& p, double step) {
  Poly out;
  if (p.empty()) return out;
  out.push_back(p.front());
  for (size_t i = 1; i < p.size(); ++i) {
    const double dx = p[i].first - p[i - 1].first, dy = p[i].second - p[i - 1].second;
    const int n = std::max(1, static_cast<int>(std::ceil(std::hypot(dx, dy) / step)));
    for (int k = 1; k <= n; ++k) out.emplace_back(p[i - 1].first + dx * k / n, p[i - 1].second + dy * k / n);
  }
  return out;
}

}  // namespace

const std::vector<std::string>& hand_drawn_shape_names() {
  static const std::vector<std::string> names{"circle", "square", "triangle", "star",  "heart",
                                              "house",  "diamond", "crescent", "cloud", "arrow",
                                              "tree",   "fish",    "cup",      "flag",  "lightning"};
  return names;
}

std::vector<PenStroke> hand_drawn_shape(const std::string& name, int canvas, RowRng& rng) {
  SPRINT_CHECK(canvas >= 32 && canvas <= 8192, "hand_drawn_shape: canvas = ", canvas, " must be in 32..8192");
  const auto polys = shape_polys(name);
  // Placement: size 55-85 % of the canvas, a tilt of up to 15 degrees, an offset of up to 8 % of the side, and an
  // aspect stretch of up to 15 %.
  const double half = canvas / 2.0;
  const double scale = rng.uniform(0.55, 0.85) * half * 0.95;
  const double tilt = rng.uniform(-15, 15) * kPi / 180, stretch = rng.uniform(-0.15, 0.15);
  const double ox = half + rng.uniform(-0.08, 0.08) * canvas, oy = half + rng.uniform(-0.08, 0.08) * canvas;
  const double sx = scale * (1 + stretch), sy = scale * (1 - stretch);
  const double base_radius = rng.uniform(0.8, 1.4) * canvas / 128.0;  // the app's default brush is ~canvas/64 wide
  std::vector<PenStroke> strokes;
  for (const auto& poly : polys) {
    const auto pts = resample(poly, 2.0 / scale);
    // Wobble: two low-frequency sines across the stroke direction, up to 1.5 % of the canvas; pressure: the pen
    // radius varies by +-35 % along the stroke.
    const double w1 = rng.uniform(-1, 1) * 0.015 * canvas, w2 = rng.uniform(-1, 1) * 0.008 * canvas;
    const double f1 = rng.uniform(1, 3), f2 = rng.uniform(4, 8), p1 = rng.uniform(0, 2 * kPi);
    const double pf = rng.uniform(1, 3), pp = rng.uniform(0, 2 * kPi);
    PenStroke s;
    const double n = static_cast<double>(pts.size());
    for (size_t i = 0; i < pts.size(); ++i) {
      const size_t a = i == 0 ? 0 : i - 1, b = std::min(pts.size() - 1, i + 1);
      double tx = pts[b].first - pts[a].first, ty = pts[b].second - pts[a].second;
      const double tl = std::hypot(tx, ty);
      if (tl > 0) tx /= tl, ty /= tl;
      const double u = i / n;
      const double off = w1 * std::sin(2 * kPi * f1 * u + p1) + w2 * std::sin(2 * kPi * f2 * u);
      const double ux = pts[i].first * sx, uy = pts[i].second * sy;
      const double rx = ux * std::cos(tilt) - uy * std::sin(tilt), ry = ux * std::sin(tilt) + uy * std::cos(tilt);
      s.x.push_back(static_cast<float>(ox + rx - ty * off));
      s.y.push_back(static_cast<float>(oy + ry + tx * off));
      s.radius.push_back(static_cast<float>(base_radius * (1 + 0.35 * std::sin(2 * kPi * pf * u + pp))));
    }
    strokes.push_back(std::move(s));
  }
  return strokes;
}

torch::Tensor rasterise_strokes(const std::vector<PenStroke>& strokes, int canvas, double fraction) {
  SPRINT_CHECK(canvas >= 1 && canvas <= 8192 && fraction >= 0 && fraction <= 1, "rasterise_strokes: canvas ", canvas,
               ", fraction ", fraction, " out of range");
  double total = 0;
  for (const auto& s : strokes)
    for (size_t i = 1; i < s.x.size(); ++i) total += std::hypot(s.x[i] - s.x[i - 1], s.y[i] - s.y[i - 1]);
  double budget = fraction * total;
  cv::Mat ink = cv::Mat::zeros(canvas, canvas, CV_8U);
  auto dot = [&](float x, float y, float r) {
    cv::circle(ink, cv::Point(static_cast<int>(std::lround(x * 16)), static_cast<int>(std::lround(y * 16))),
               std::max(1, static_cast<int>(std::lround(r * 16))), cv::Scalar(255), cv::FILLED, cv::LINE_8, 4);
  };
  for (const auto& s : strokes) {
    if (s.x.empty() || budget <= 0) break;
    dot(s.x[0], s.y[0], s.radius[0]);
    for (size_t i = 1; i < s.x.size() && budget > 0; ++i) {
      const double len = std::hypot(s.x[i] - s.x[i - 1], s.y[i] - s.y[i - 1]);
      budget -= len;
      // Round caps at every point, joined by a quadrilateral-free chain of discs spaced below the radius.
      const int n = std::max(1, static_cast<int>(std::ceil(len / std::max(0.5f, 0.5f * s.radius[i]))));
      for (int k = 1; k <= n; ++k) {
        const float t = static_cast<float>(k) / n;
        dot(s.x[i - 1] + t * (s.x[i] - s.x[i - 1]), s.y[i - 1] + t * (s.y[i] - s.y[i - 1]),
            s.radius[i - 1] + t * (s.radius[i] - s.radius[i - 1]));
      }
    }
  }
  return from_mat(ink);
}

}  // namespace sprint::training
