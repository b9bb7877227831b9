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

torch::Tensor picture_to_stroke_mask(const torch::Tensor& picture, const PictureEdgeOptions& o) {
  constexpr const char* fn = "picture_to_stroke_mask";
  SPRINT_CHECK(picture.dim() == 3 && (picture.size(2) == 3 || picture.size(2) == 4), fn,
               ": expected an (H, W, 3) RGB or (H, W, 4) RGBA image, got shape ", shape_str(picture.sizes().vec()));
  SPRINT_CHECK(picture.scalar_type() == torch::kUInt8, fn, ": expected uint8 pixels, got ", picture.scalar_type());
  SPRINT_CHECK(picture.size(0) > 0 && picture.size(1) > 0, fn, ": the image is empty");
  SPRINT_CHECK(o.canvas >= 16 && o.canvas <= 8192, fn, ": canvas = ", o.canvas, " must be in 16..8192");
  SPRINT_CHECK(o.pen_width >= 1 && o.pen_width <= 64, fn, ": pen_width = ", o.pen_width, " must be in 1..64");
  SPRINT_CHECK(o.low >= 0 && o.high >= o.low, fn, ": Canny thresholds (", o.low, ", ", o.high, ") must be 0 <= low <= high");
  SPRINT_CHECK(o.paper_luma >= 0 && o.paper_luma <= 255, fn, ": paper_luma = ", o.paper_luma, " must be in 0..255");

  torch::Tensor rgb = to_rgb(picture.cpu());  // RGBA composited on white, as the app's canvas
  cv::Mat src = as_mat(rgb);
  const double scale = static_cast<double>(o.canvas) / std::max(src.rows, src.cols);
  const int h = std::max(1, static_cast<int>(std::lround(src.rows * scale)));
  const int w = std::max(1, static_cast<int>(std::lround(src.cols * scale)));
  cv::Mat canvas;
  cv::resize(src, canvas, cv::Size(w, h), 0, 0, scale >= 1 ? cv::INTER_CUBIC : cv::INTER_AREA);
  if (o.blur_sigma > 0) cv::GaussianBlur(canvas, canvas, cv::Size(0, 0), o.blur_sigma);

  // Colour edges: Canny per channel, OR-ed.
  cv::Mat channels[3], edges = cv::Mat::zeros(h, w, CV_8U), e;
  cv::split(canvas, channels);
  for (auto& c : channels) {
    cv::Canny(c, e, o.low, o.high, 3, /*L2gradient=*/true);
    cv::bitwise_or(edges, e, edges);
  }
  // Outline of the figure against the paper (catches light colours whose edge against white is weak).
  cv::Mat paper = cv::Mat::zeros(h, w, CV_8U);
  cv::inRange(canvas, cv::Scalar(o.paper_luma, o.paper_luma, o.paper_luma), cv::Scalar(255, 255, 255), paper);
  cv::Mat figure = 255 - paper, eroded;
  cv::erode(figure, eroded, cv::getStructuringElement(cv::MORPH_CROSS, cv::Size(3, 3)));
  cv::bitwise_or(edges, figure - eroded, edges);

  // Ink the lines with a round pen.
  if (o.pen_width > 1) {
    cv::dilate(edges, edges, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(o.pen_width, o.pen_width)));
  }
  auto out = torch::empty({h, w}, torch::kUInt8);
  std::memcpy(out.data_ptr<uint8_t>(), edges.ptr<uint8_t>(), static_cast<size_t>(h) * w);
  return out;
}

torch::Tensor picture_to_scribble(const torch::Tensor& picture, const PictureEdgeOptions& o) {
  return stroke_mask_to_scribble(picture_to_stroke_mask(picture, o), o.thickness);
}

}  // namespace sprint
