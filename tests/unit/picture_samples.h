// Test pictures shared by test_picture_io.cpp and test_imagefolder.cpp: a pattern that shows every channel swap, flip
// and turn, its RGB tensor, and a JPEG given an Exif orientation.
#pragma once

#include <gtest/gtest.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <string>

namespace sprint::test {

// A smooth BGR picture whose three channels differ (R across, G down, B fixed): a BGR/RGB swap, a flip or a turn all
// show.
inline cv::Mat pattern(int width, int height) {
  cv::Mat m(height, width, CV_8UC3);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      m.at<cv::Vec3b>(y, x) = cv::Vec3b(90, static_cast<uint8_t>(y * 255 / std::max(height - 1, 1)),
                                        static_cast<uint8_t>(x * 255 / std::max(width - 1, 1)));
  return m;
}

// (H, W, 3) uint8 RGB of a BGR picture.
inline torch::Tensor rgb_of(const cv::Mat& bgr) {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8).clone();
}

// A JPEG's bytes with an Exif APP1 segment holding `orientation` inserted after its JFIF APP0 segment.
inline std::string with_exif_orientation(const std::string& jpeg, int orientation) {
  std::string tiff("Exif\0\0II*\0\x08\0\0\0", 14);             // little-endian TIFF, IFD0 at 8
  tiff += std::string("\x01\0", 2);                            // one entry
  tiff += std::string("\x12\x01\x03\0\x01\0\0\0", 8);          // tag 0x0112, SHORT, count 1
  tiff += std::string{static_cast<char>(orientation), '\0', '\0', '\0'};
  tiff += std::string(4, '\0');                                // no next IFD
  const size_t len = tiff.size() + 2;
  const std::string app1 = std::string("\xFF\xE1") + static_cast<char>(len >> 8) + static_cast<char>(len & 0xFF) + tiff;
  EXPECT_EQ(static_cast<uint8_t>(jpeg[2]), 0xFF);
  EXPECT_EQ(static_cast<uint8_t>(jpeg[3]), 0xE0);  // OpenCV writes JFIF APP0 first
  const size_t app0_end = 4 + (static_cast<uint8_t>(jpeg[4]) << 8 | static_cast<uint8_t>(jpeg[5]));
  return jpeg.substr(0, app0_end) + app1 + jpeg.substr(app0_end);
}

}  // namespace sprint::test
