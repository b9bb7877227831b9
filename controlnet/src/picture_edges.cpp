#include "sprint/picture_edges.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "sprint/error.h"

namespace sprint {
namespace {

cv::Mat as_mat(const torch::Tensor& t) {
  return cv::Mat(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_8UC(static_cast<int>(t.size(2))),
                 t.data_ptr<uint8_t>());
}

}  // namespace

namespace {

// Figure canvas (blurred, at canvas size) plus the validation of the options.
cv::Mat edge_canvas(const torch::Tensor& picture, const PictureEdgeOptions& o, const char* fn,
                    torch::Tensor& rgb_keepalive) {
  SPRINT_CHECK(picture.dim() == 3 && (picture.size(2) == 3 || picture.size(2) == 4), fn,
               ": expected an (H, W, 3) RGB or (H, W, 4) RGBA image, got shape ", shape_str(picture.sizes().vec()));
  SPRINT_CHECK(picture.scalar_type() == torch::kUInt8, fn, ": expected uint8 pixels, got ", picture.scalar_type());
  SPRINT_CHECK(picture.size(0) > 0 && picture.size(1) > 0, fn, ": the image is empty");
  SPRINT_CHECK(o.canvas >= 16 && o.canvas <= 8192, fn, ": canvas = ", o.canvas, " must be in 16..8192");
  SPRINT_CHECK(o.pen_width >= 1 && o.pen_width <= 64, fn, ": pen_width = ", o.pen_width, " must be in 1..64");
  SPRINT_CHECK(o.low >= 0 && o.high >= o.low, fn, ": Canny thresholds (", o.low, ", ", o.high, ") must be 0 <= low <= high");
  SPRINT_CHECK(o.paper_luma >= 0 && o.paper_luma <= 255, fn, ": paper_luma = ", o.paper_luma, " must be in 0..255");

  rgb_keepalive = to_rgb(picture.cpu());  // RGBA composited on white, as the app's canvas
  cv::Mat src = as_mat(rgb_keepalive);
  const double scale = static_cast<double>(o.canvas) / std::max(src.rows, src.cols);
  const int h = std::max(1, static_cast<int>(std::lround(src.rows * scale)));
  const int w = std::max(1, static_cast<int>(std::lround(src.cols * scale)));
  cv::Mat canvas;
  cv::resize(src, canvas, cv::Size(w, h), 0, 0, scale >= 1 ? cv::INTER_CUBIC : cv::INTER_AREA);
  if (o.blur_sigma > 0) cv::GaussianBlur(canvas, canvas, cv::Size(0, 0), o.blur_sigma);
  return canvas;
}

// Colour edges (Canny per channel, OR-ed) and the figure's outline against the paper (which catches light colours
// whose edge against white is weak), both 1 px wide.
void edge_layers(const cv::Mat& canvas, const PictureEdgeOptions& o, cv::Mat& edges, cv::Mat& outline) {
  cv::Mat channels[3], e;
  edges = cv::Mat::zeros(canvas.rows, canvas.cols, CV_8U);
  cv::split(canvas, channels);
  for (auto& c : channels) {
    cv::Canny(c, e, o.low, o.high, 3, /*L2gradient=*/true);
    cv::bitwise_or(edges, e, edges);
  }
  cv::Mat paper, eroded;
  cv::inRange(canvas, cv::Scalar(o.paper_luma, o.paper_luma, o.paper_luma), cv::Scalar(255, 255, 255), paper);
  cv::Mat figure = 255 - paper;
  cv::erode(figure, eroded, cv::getStructuringElement(cv::MORPH_CROSS, cv::Size(3, 3)));
  outline = figure - eroded;
}

torch::Tensor to_tensor(const cv::Mat& m) {
  auto out = torch::empty({m.rows, m.cols}, torch::kUInt8);
  for (int y = 0; y < m.rows; ++y) std::memcpy(out.data_ptr<uint8_t>() + static_cast<size_t>(y) * m.cols, m.ptr<uint8_t>(y), m.cols);
  return out;
}

cv::Mat gray_mat(const torch::Tensor& t, const char* fn) {
  SPRINT_CHECK(t.dim() == 2 && t.scalar_type() == torch::kUInt8 && t.size(0) > 0 && t.size(1) > 0, fn,
               ": expected a non-empty (H, W) uint8 map, got ", t.scalar_type(), " ", shape_str(t.sizes().vec()));
  return cv::Mat(static_cast<int>(t.size(0)), static_cast<int>(t.size(1)), CV_8U, t.data_ptr<uint8_t>());
}

// Fills the holes of a binary mask: everything not reachable from the border through zeros becomes 255.
cv::Mat fill_holes(const cv::Mat& mask) {
  cv::Mat padded;
  cv::copyMakeBorder(mask, padded, 1, 1, 1, 1, cv::BORDER_CONSTANT, cv::Scalar(0));
  cv::Mat outside = padded.clone();
  cv::floodFill(outside, cv::Point(0, 0), cv::Scalar(255));  // zeros connected to the border -> 255
  cv::Mat inside = padded | (255 - outside);
  return inside(cv::Rect(1, 1, mask.cols, mask.rows)).clone();
}

}  // namespace

torch::Tensor picture_to_stroke_mask(const torch::Tensor& picture, const PictureEdgeOptions& o) {
  torch::Tensor keep;
  cv::Mat canvas = edge_canvas(picture, o, "picture_to_stroke_mask", keep), edges, outline;
  edge_layers(canvas, o, edges, outline);
  cv::bitwise_or(edges, outline, edges);
  // Ink the lines with a round pen.
  if (o.pen_width > 1) {
    cv::dilate(edges, edges, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(o.pen_width, o.pen_width)));
  }
  return to_tensor(edges);
}

PictureLines picture_lines(const torch::Tensor& picture, const PictureEdgeOptions& o) {
  torch::Tensor keep;
  cv::Mat canvas = edge_canvas(picture, o, "picture_lines", keep), edges, outline, near_outline;
  edge_layers(canvas, o, edges, outline);
  // The silhouette's outline is the boundary of the figure with its holes filled; the boundaries of paper-coloured
  // areas inside it (white eyes, a white stripe) are inner lines like the colour edges.
  cv::Mat paper, eroded;
  cv::inRange(canvas, cv::Scalar(o.paper_luma, o.paper_luma, o.paper_luma), cv::Scalar(255, 255, 255), paper);
  cv::Mat filled = fill_holes(255 - paper);
  cv::erode(filled, eroded, cv::getStructuringElement(cv::MORPH_CROSS, cv::Size(3, 3)));
  cv::Mat silhouette_outline = filled - eroded;
  cv::dilate(silhouette_outline, near_outline, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(5, 5)));
  cv::Mat inner = (edges | outline) & (255 - near_outline);
  return {to_tensor(silhouette_outline), to_tensor(inner)};
}

torch::Tensor ink_lines(const torch::Tensor& lines, int pen_width) {
  SPRINT_CHECK(pen_width >= 1 && pen_width <= 64, "ink_lines: pen_width = ", pen_width, " must be in 1..64");
  auto in = lines.contiguous();
  cv::Mat m = gray_mat(in, "ink_lines"), out = m.clone();
  if (pen_width > 1) cv::dilate(m, out, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(pen_width, pen_width)));
  return to_tensor(out);
}

torch::Tensor figure_mask(const torch::Tensor& picture, int paper_luma) {
  SPRINT_CHECK(paper_luma >= 0 && paper_luma <= 255, "figure_mask: paper_luma = ", paper_luma, " must be in 0..255");
  SPRINT_CHECK(picture.dim() == 3 && (picture.size(2) == 3 || picture.size(2) == 4) &&
                   picture.scalar_type() == torch::kUInt8 && picture.size(0) > 0 && picture.size(1) > 0,
               "figure_mask: expected a non-empty (H, W, 3|4) uint8 image, got ", picture.scalar_type(), " ",
               shape_str(picture.sizes().vec()));
  auto rgb = to_rgb(picture.cpu());
  cv::Mat paper;
  cv::inRange(as_mat(rgb), cv::Scalar(paper_luma, paper_luma, paper_luma), cv::Scalar(255, 255, 255), paper);
  return to_tensor(fill_holes(255 - paper));
}

torch::Tensor fill_line_silhouette(const torch::Tensor& lines, int close_px) {
  SPRINT_CHECK(close_px >= 0 && close_px <= 64, "fill_line_silhouette: close_px = ", close_px, " must be in 0..64");
  auto in = lines.contiguous();
  cv::Mat m = gray_mat(in, "fill_line_silhouette"), bin;
  cv::threshold(m, bin, 0, 255, cv::THRESH_BINARY);
  if (close_px > 0) {
    const int k = 2 * close_px + 1;
    cv::morphologyEx(bin, bin, cv::MORPH_CLOSE, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(k, k)));
  }
  return to_tensor(fill_holes(bin));
}

torch::Tensor picture_to_scribble(const torch::Tensor& picture, const PictureEdgeOptions& o) {
  return stroke_mask_to_scribble(picture_to_stroke_mask(picture, o), o.thickness);
}

}  // namespace sprint
