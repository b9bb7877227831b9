// diffusers' resolution binning (SanaSprintPipeline use_resolution_binning=True) in sprint::Pipeline.
//
// The tiny fixture pipeline's transformer has sample_size 8, which has no bin table, so diffusers cannot produce an
// end-to-end binned reference for it. The two steps are checked on their own instead:
//   * the bin choice: tests/unit/test_prompt_text.cpp against classify_height_width_bin;
//   * resize-and-crop: here, against PixArtImageProcessor.resize_and_crop_tensor on a fixed random tensor
//     (tests/fixtures/binning/resize.safetensors, fx_binning.py);
// and the glue: a copy of the tiny pipeline declared sample_size 16 (the 512 px table; with interpolation_scale
// None the transformer has no positional embedding, so sample_size changes nothing else) must give exactly the
// un-binned generation at the bin size, resized and cropped - with the noise drawn and cached at the bin size.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/pipeline.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace sprint;
using sprint::test::fixture_path;
using sprint::test::max_abs_diff;

TEST(BinningParity, ResizeAndCropMatchesDiffusers) {
  const sprint::test::FixtureCases c("binning/resize.safetensors");
  auto x = c["input"];
  int n = 0;
  for (int k = 0; c.contains(str("out.", k)); ++k, ++n) {
    auto size = c[str("size.", k)];
    const int h = static_cast<int>(size[0].item<int64_t>()), w = static_cast<int>(size[1].item<int64_t>());
    auto ref = c[str("out.", k)];
    auto got = resize_and_crop(x, h, w);
    ASSERT_EQ(got.sizes().vec(), ref.sizes().vec()) << "case " << k << " " << h << "x" << w;
    // Exact: the same ATen upsample_bilinear2d kernel of the same torch build (LibTorch comes from the pinned
    // venv's torch) with the same output size and crop; bilinear has no reductions whose order could vary. A
    // different size rounding, crop offset, align_corners or antialias moves values by far more than one ulp.
    EXPECT_EQ(max_abs_diff(got, ref), 0.0) << "case " << k << " " << h << "x" << w;
  }
  EXPECT_GE(n, 6);
}

TEST(BinningParity, BinnedGenerationIsUnbinnedAtTheBinThenResizedAndCropped) {
  // The tiny pipeline, declared a 512 px model (sample_size 16).
  const auto dir = fs::path(sprint::test::temp_dir("binning_pipeline")) / "tiny";
  fs::copy(fixture_path("pipeline/tiny_pipeline"), dir, fs::copy_options::recursive);
  auto cfg_path = dir / "transformer" / "config.json";
  auto cfg = read_json_file(cfg_path.string());
  ASSERT_TRUE(cfg.at("interpolation_scale").is_null());  // else sample_size would change the positional embedding
  cfg["sample_size"] = 16;
  std::ofstream(cfg_path) << cfg.dump(2);
  auto pipe = Pipeline::load(dir.string());

  GenerateRequest r;
  r.prompt = "a cat";
  r.seed = 11;
  r.steps = 1;
  r.width = 96;
  r.height = 64;  // h / w = 0.667 -> the 0.68 entry of ASPECT_RATIO_512_BIN: 416 x 608 (h x w)
  auto binned = pipe->generate(r);
  EXPECT_EQ(binned.gen_height, 416);
  EXPECT_EQ(binned.gen_width, 608);
  EXPECT_EQ(binned.image.sizes().vec(), (std::vector<int64_t>{1, 3, 64, 96}));
  EXPECT_EQ(binned.latent.sizes().vec(), (std::vector<int64_t>{1, 8, 104, 152}));  // the tiny VAE compresses 4x
  EXPECT_FALSE(binned.times.noise_cached);

  auto again = pipe->generate(r);  // the noise key is the binned shape: reused
  EXPECT_TRUE(again.times.noise_cached);

  GenerateRequest at_bin = r;
  at_bin.resolution_binning = false;
  at_bin.width = 608;
  at_bin.height = 416;
  auto full = pipe->generate(at_bin);
  EXPECT_TRUE(full.times.noise_cached);  // same seed and latent shape as the binned request
  EXPECT_EQ(full.gen_width, 608);
  // Exact: the same computation on the same CPU with the same noise; only the final resize differs.
  EXPECT_EQ(max_abs_diff(full.latent, binned.latent), 0.0);
  EXPECT_EQ(max_abs_diff(resize_and_crop(full.image, 64, 96), binned.image), 0.0);

  GenerateRequest off = r;
  off.resolution_binning = false;  // --no-binning: generated at 96 x 64 itself
  auto plain = pipe->generate(off);
  EXPECT_FALSE(plain.times.noise_cached);
  EXPECT_EQ(plain.gen_width, 96);
  EXPECT_EQ(plain.gen_height, 64);
  EXPECT_EQ(plain.latent.sizes().vec(), (std::vector<int64_t>{1, 8, 16, 24}));
  EXPECT_EQ(plain.image.sizes().vec(), binned.image.sizes().vec());
}
