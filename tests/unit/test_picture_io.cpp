// picture_io: JPEG, PNG, WebP, BMP and TIFF probed and decoded to RGB (alpha over white, gray spread, 16-bit scaled,
// Exif orientation applied), the pixel limit enforced from the header before decoding, and broken data refused naming
// it. Every picture is written here with OpenCV.
#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "picture_samples.h"
#include "sprint/error.h"
#include "sprint/picture_io.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace sprint;
using sprint::test::pattern;
using sprint::test::rgb_of;
using sprint::test::throws_with;

namespace {

std::string encode(const std::string& ext, const cv::Mat& m, const std::vector<int>& params = {}) {
  std::vector<uint8_t> buf;
  if (!cv::imencode(ext, m, buf, params)) throw Error("cv::imencode failed for " + ext);
  return std::string(buf.begin(), buf.end());
}

// Mean and largest absolute difference of two (H, W, 3) uint8 pictures.
std::pair<double, int> difference(const torch::Tensor& a, const torch::Tensor& b) {
  const auto d = (a.to(torch::kInt32) - b.to(torch::kInt32)).abs();
  return {d.to(torch::kFloat64).mean().item<double>(), d.max().item<int>()};
}

// JPEG and lossy WebP at quality 95 (4:2:0 chroma subsampling) move the pattern's smooth gradients by a few levels
// (measured at 300 x 200: JPEG mean 0.53, max 4; WebP mean 0.85, max 5). Tolerance mean 1.5, max 12: far below the
// ~100 levels a channel swap, flip or turn would give.
void expect_lossy_close(const torch::Tensor& decoded, const torch::Tensor& expected, const std::string& what) {
  ASSERT_EQ(decoded.sizes(), expected.sizes()) << what;
  const auto [mean, max] = difference(decoded, expected);
  EXPECT_LE(mean, 1.5) << what;
  EXPECT_LE(max, 12) << what;
}

}  // namespace

TEST(PictureIo, EveryFormatRoundTripsWithItsHeader) {
  const cv::Mat pic = pattern(300, 200);
  const auto expected = rgb_of(pic);
  // Lossy WebP is VP8X only with transparency (libwebp writes an opaque picture as plain VP8): one clear column,
  // white once composited.
  cv::Mat bgra;
  cv::cvtColor(pic, bgra, cv::COLOR_BGR2BGRA);
  bgra.col(3).setTo(cv::Scalar(0, 0, 0, 0));
  const auto expected_clear = expected.clone();
  expected_clear.select(1, 3).fill_(255);
  struct Case {
    std::string name, ext;
    cv::Mat m;
    std::vector<int> params;
    std::string format, chunk;  // chunk: a WebP's first chunk
    bool lossless;
    torch::Tensor expected;
  };
  const std::vector<Case> cases{
      {"PNG", ".png", pic, {}, "PNG", "", true, expected},
      {"BMP", ".bmp", pic, {}, "BMP", "", true, expected},
      {"TIFF", ".tiff", pic, {}, "TIFF", "", true, expected},
      {"lossless WebP", ".webp", pic, {}, "WebP", "VP8L", true, expected},  // OpenCV's default quality: lossless
      {"lossy WebP", ".webp", pic, {cv::IMWRITE_WEBP_QUALITY, 95}, "WebP", "VP8 ", false, expected},
      {"lossy WebP with alpha", ".webp", bgra, {cv::IMWRITE_WEBP_QUALITY, 95}, "WebP", "VP8X", false, expected_clear},
      {"JPEG", ".jpg", pic, {cv::IMWRITE_JPEG_QUALITY, 95}, "JPEG", "", false, expected},
  };
  for (const auto& c : cases) {
    const std::string bytes = encode(c.ext, c.m, c.params);
    if (!c.chunk.empty()) {
      EXPECT_EQ(bytes.substr(12, 4), c.chunk) << c.name;
    }
    const PictureHeader h = probe_picture(bytes, c.name);
    EXPECT_EQ(h.format, c.format) << c.name;
    EXPECT_EQ(std::pair(h.width, h.height), std::pair(int64_t{300}, int64_t{200})) << c.name;
    EXPECT_EQ(h.orientation, 1) << c.name;
    const auto decoded = decode_picture(bytes, c.name);
    EXPECT_EQ(decoded.dtype(), torch::kUInt8) << c.name;
    EXPECT_TRUE(decoded.is_contiguous()) << c.name;
    if (c.lossless) {
      EXPECT_TRUE(torch::equal(decoded, c.expected)) << c.name;
    } else {
      expect_lossy_close(decoded, c.expected, c.name);
    }
  }
}

TEST(PictureIo, AlphaGoesOverWhiteGraySpreadsAndSixteenBitsScale) {
  const cv::Mat pic = pattern(300, 200);
  const auto expected = rgb_of(pic).to(torch::kInt32);
  cv::Mat bgra;
  cv::cvtColor(pic, bgra, cv::COLOR_BGR2BGRA);
  for (int y = 0; y < bgra.rows; ++y)
    for (int x = 0; x < bgra.cols; ++x)
      bgra.at<cv::Vec4b>(y, x)[3] = static_cast<uint8_t>(x < 100 ? 0 : x < 200 ? 128 : 255);
  // Transparent -> white, opaque -> the colour, half -> (c * 128 + 255 * 127) / 255 rounded; PNG and lossless WebP.
  const auto half = (expected.slice(1, 100, 200) * 128 + 255 * 127 + 127).div(255, "floor");
  for (const std::string ext : {".png", ".webp"}) {
    const auto a = decode_picture(encode(ext, bgra), "alpha" + ext).to(torch::kInt32);
    EXPECT_TRUE(torch::equal(a.slice(1, 0, 100), torch::full({200, 100, 3}, 255, torch::kInt32))) << ext;
    EXPECT_TRUE(torch::equal(a.slice(1, 100, 200), half)) << ext;
    EXPECT_TRUE(torch::equal(a.slice(1, 200, 300), expected.slice(1, 200, 300))) << ext;
  }

  cv::Mat gray;
  cv::cvtColor(pic, gray, cv::COLOR_BGR2GRAY);
  const auto gray_rgb = torch::from_blob(gray.data, {200, 300, 1}, torch::kUInt8).expand({200, 300, 3});
  for (const std::string ext : {".png", ".bmp", ".tiff"})
    EXPECT_TRUE(torch::equal(decode_picture(encode(ext, gray), "gray" + ext), gray_rgb)) << ext;

  cv::Mat deep;
  pic.convertTo(deep, CV_16UC3, 257.0);  // 16-bit samples v * 257: scaled back to exactly v
  for (const std::string ext : {".png", ".tiff"})
    EXPECT_TRUE(torch::equal(decode_picture(encode(ext, deep), "deep" + ext), rgb_of(pic))) << ext;
}

TEST(PictureIo, JpegExifOrientationTurnsItAsOpenCVsImreadDoes) {
  const cv::Mat pic = pattern(30, 20);
  const std::string plain = encode(".jpg", pic, {cv::IMWRITE_JPEG_QUALITY, 95});
  const auto upright = decode_picture(plain, "plain.jpg");
  for (int o = 1; o <= 8; ++o) {
    const std::string bytes = test::with_exif_orientation(plain, o);
    const PictureHeader h = probe_picture(bytes, "turned.jpg");
    EXPECT_EQ(h.orientation, o);
    EXPECT_EQ(std::pair(h.width, h.height), std::pair(int64_t{30}, int64_t{20})) << o;  // as stored
    const auto shown = o >= 5 ? std::pair(int64_t{20}, int64_t{30}) : std::pair(int64_t{30}, int64_t{20});
    EXPECT_EQ(std::pair(h.shown_width(), h.shown_height()), shown) << o;
    // OpenCV's own reading (IMREAD_COLOR applies the Exif orientation): the same decoder, so exactly equal.
    const cv::Mat buf(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
    const auto decoded = decode_picture(bytes, "turned.jpg");
    EXPECT_TRUE(torch::equal(decoded, rgb_of(cv::imdecode(buf, cv::IMREAD_COLOR)))) << o;
    if (o == 6) {  // and by the Exif definition: orientation 6 is shown turned 90 degrees clockwise
      EXPECT_TRUE(torch::equal(decoded, upright.transpose(0, 1).flip({1}))) << o;
    }
  }
}

TEST(PictureIo, ThePixelLimitRefusesFromTheHeaderBeforeDecoding) {
  // A PNG header of 100000 x 100000 (10 G pixels) and no image data: decoding could only fail as "cannot be decoded".
  const std::string png = encode(".png", pattern(8, 8));
  const std::string huge = png.substr(0, 16) + std::string("\x00\x01\x86\xA0\x00\x01\x86\xA0", 8) + png.substr(24, 9);
  EXPECT_EQ(probe_picture(huge, "huge.png", INT64_MAX).width, 100000);
  const std::initializer_list<std::string> why{"huge.png: PNG of 100000x100000 = 10000000000 pixels",
                                               "more than the limit of 67108864"};
  EXPECT_TRUE(throws_with([&] { probe_picture(huge, "huge.png"); }, why));
  EXPECT_TRUE(throws_with([&] { decode_picture(huge, "huge.png"); }, why));
  // A JPEG whose frame header says 65535 x 65535 (its first SOF segment patched).
  std::string jpeg = encode(".jpg", pattern(8, 8));
  const size_t sof = jpeg.find("\xFF\xC0");
  ASSERT_NE(sof, std::string::npos);
  jpeg.replace(sof + 5, 4, "\xFF\xFF\xFF\xFF");
  EXPECT_TRUE(throws_with([&] { decode_picture(jpeg, "huge.jpg"); }, {"huge.jpg: JPEG of 65535x65535"}));
  // The limit is inclusive: a 300 x 200 picture needs 60000.
  const std::string bmp = encode(".bmp", pattern(300, 200));
  EXPECT_EQ(decode_picture(bmp, "a.bmp", 60000).size(1), 300);
  EXPECT_TRUE(throws_with([&] { decode_picture(bmp, "a.bmp", 59999); }, {"a.bmp", "limit of 59999"}));
}

TEST(PictureIo, TruncatedOrGarbageBytesAreRefusedNamingThem) {
  const cv::Mat pic = pattern(64, 48);
  const std::string png = encode(".png", pic), jpeg = encode(".jpg", pic), bmp = encode(".bmp", pic);
  const std::string webp = encode(".webp", pic, {cv::IMWRITE_WEBP_QUALITY, 90}), tiff = encode(".tiff", pic);
  std::mt19937 rng(7);
  std::string noise(2000, '\0');
  for (auto& c : noise) c = static_cast<char>(rng() & 0xFF);
  noise[0] = 'x';
  const std::vector<std::pair<std::string, std::string>> bad{  // bytes, what the message says
      {"", "too short"},
      {noise, "not a JPEG, PNG, WebP, BMP or TIFF file"},
      {"GIF89a" + noise, "not a JPEG, PNG, WebP, BMP or TIFF file"},
      {png.substr(0, 20), "truncated PNG header"},
      {png.substr(0, png.size() / 2), "cannot be decoded (corrupt or truncated PNG)"},
      {jpeg.substr(0, 40), "truncated JPEG header"},
      {webp.substr(0, 20), "truncated WebP header"},
      {webp.substr(0, webp.size() / 2), "cannot be decoded (corrupt or truncated WebP)"},
      {bmp.substr(0, 20), "truncated BMP header"},
      {tiff.substr(0, 16), "truncated TIFF directory"},
  };
  for (const auto& [bytes, why] : bad) {
    EXPECT_TRUE(throws_with([&] { decode_picture(bytes, "'bad.pic'"); }, {"'bad.pic': ", why})) << why;
    if (why.find("decoded") == std::string::npos) {  // header faults: the probe alone finds them
      EXPECT_TRUE(throws_with([&] { probe_picture(bytes, "'bad.pic'"); }, {"'bad.pic': ", why})) << why;
    }
  }
}

TEST(PictureIo, FilesAreReadAndNamed) {
  const fs::path dir = test::temp_dir("picture-io");
  const cv::Mat pic = pattern(40, 30);
  ASSERT_TRUE(cv::imwrite((dir / "pic.webp").string(), pic));
  EXPECT_TRUE(torch::equal(read_picture((dir / "pic.webp").string()), rgb_of(pic)));
  // The probe of a file reads its header only: a PNG cut right after IHDR still gives its size.
  const std::string png = encode(".png", pic);
  std::ofstream((dir / "head.png").string(), std::ios::binary) << png.substr(0, 33);
  const PictureHeader h = probe_picture_file((dir / "head.png").string(), "head.png");
  EXPECT_EQ(std::pair(h.width, h.height), std::pair(int64_t{40}, int64_t{30}));
  EXPECT_TRUE(throws_with([&] { read_picture((dir / "head.png").string()); }, {"head.png", "cannot be decoded"}));

  std::ofstream((dir / "text.jpg").string()) << "not a picture";
  EXPECT_TRUE(throws_with([&] { read_picture((dir / "text.jpg").string()); }, {"text.jpg", "not a JPEG"}));
  for (const std::string name : {"missing.png", ""}) {  // missing; a folder
    const std::string path = (dir / name).string();
    EXPECT_TRUE(throws_with([&] { read_picture(path); }, {path})) << name;
    EXPECT_TRUE(throws_with([&] { probe_picture_file(path, "'" + path + "'"); }, {path})) << name;
  }
  // A file larger than the pixel limit's picture at 8 bytes a pixel plus 16 MiB is refused without being read.
  std::ofstream((dir / "big.bmp").string(), std::ios::binary) << std::string(size_t{17} << 20, '\0');
  EXPECT_TRUE(throws_with([&] { read_picture((dir / "big.bmp").string(), 1); },
                          {"big.bmp", "is 17825792 bytes, more than the 16777224"}));
}
