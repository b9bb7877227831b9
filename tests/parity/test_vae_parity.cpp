// AutoencoderDC encode/decode vs diffusers on tiny seeded random-init models (tests/fixtures/fx_vae.py).
//
// Tolerance: NMSE <= 1e-10 in fp32 on the CPU. Both sides run the same float32 maths; the differences come from
// summation order only (RMSNorm reduces over dim 1 instead of after a permute, to_q/to_k/to_v run as one stacked
// 1x1 convolution, to_out as a 1x1 convolution instead of Linear), i.e. a few ulps per element. The measured NMSE
// is printed by each check (1e-14 .. 3e-13 through torch's convolutions; 1e-13 .. 3e-12 on the default CPU path,
// whose Winograd 3x3 convolutions add their own float32 rounding, see tests/unit/test_fast_conv.cpp); 1e-10
// leaves over an order of magnitude of margin while any real error (a wrong eps, an ignored norm weight, a
// swapped shortcut or h/w) gives NMSE > 1e-4. The linear and quadratic attention
// paths are the same function in exact arithmetic; both are exercised so that each is known to be right.
#include <gtest/gtest.h>

#include "sprint/error.h"
#include "sprint/vae.h"
#include "test_util.h"

using namespace sprint;
using sprint::test::close_nmse_printed;
using sprint::test::fixture_path;
using sprint::test::FixtureCases;

namespace {
constexpr double kFp32Nmse = 1e-10;

struct Cases : FixtureCases {
  Cases() : FixtureCases("vae/cases.safetensors") {}
};

// Set up as the pipeline sets it up by default (PipelineOptions::fast_cpu_vae): the CPU engine.
AutoencoderDC load(const std::string& name) {
  auto model = load_vae(fixture_path("vae/" + name + "/vae"));
  model->prepare_for_inference(torch::kCPU, torch::kFloat32);
  return model;
}

void check(const torch::Tensor& out, const torch::Tensor& ref, const std::string& what) {
  EXPECT_TRUE(close_nmse_printed(what, out, ref, kFp32Nmse)) << what;
}
}  // namespace

TEST(VaeParity, TinyDcaeConfigAndKeys) {
  auto model = load("tiny_dcae");
  EXPECT_EQ(model->config.spatial_compression(), 4);
  EXPECT_DOUBLE_EQ(model->config.scaling_factor, 0.41407);
  auto params = model->named_parameters();
  for (const char* k : {"encoder.conv_in.weight", "encoder.down_blocks.0.0.conv1.bias", "encoder.down_blocks.0.1.conv.weight",
                        "encoder.down_blocks.1.0.attn.to_qkv_multiscale.0.proj_out.weight",
                        "encoder.down_blocks.2.0.conv_out.norm.bias", "decoder.up_blocks.1.0.conv.weight",
                        "decoder.up_blocks.2.0.attn.norm_out.weight", "decoder.norm_out.bias", "decoder.conv_out.weight"})
    EXPECT_TRUE(params.contains(k)) << k;
}

TEST(VaeParity, EncodeLinearAttention) {
  torch::NoGradGuard ng;
  Cases c;
  auto model = load("tiny_dcae");
  check(model->encode(c["dcae.enc.lin.x"]), c["dcae.enc.lin.out"], "encode lin");
}

// The default CPU path is the engine (Winograd 3x3 convolutions, channels-last activations, fused norms); the
// checks above run it. This runs the same cases through the mirror, torch's NCHW operations as diffusers runs them,
// which PipelineOptions::fast_cpu_vae = false selects, under the same bound.
TEST(VaeParity, TorchConvolutionPathToo) {
  torch::NoGradGuard ng;
  Cases c;
  auto model = load("tiny_dcae");
  ASSERT_TRUE(model->uses_cpu_engine());
  model->prepare_for_inference(torch::kCPU, torch::kFloat32, {/*fast_cpu=*/false});
  ASSERT_FALSE(model->uses_cpu_engine());
  check(model->encode(c["dcae.enc.lin.x"]), c["dcae.enc.lin.out"], "encode lin, torch conv");
  check(model->encode(c["dcae.enc.quad.x"]), c["dcae.enc.quad.out"], "encode quad, torch conv");
  check(model->decode(c["dcae.dec.lin.z"]), c["dcae.dec.lin.out"], "decode lin, torch conv");
  check(model->decode(c["dcae.dec.quad.z"]), c["dcae.dec.quad.out"], "decode quad, torch conv");
  model->prepare_for_inference(torch::kCPU, torch::kFloat32);
  check(model->decode(c["dcae.dec.lin.z"]), c["dcae.dec.lin.out"], "decode lin, fast again");
}

TEST(VaeParity, EncodeQuadraticAttention) {
  torch::NoGradGuard ng;
  Cases c;
  auto model = load("tiny_dcae");
  check(model->encode(c["dcae.enc.quad.x"]), c["dcae.enc.quad.out"], "encode quad");
}

TEST(VaeParity, DecodeLinearAttention) {
  torch::NoGradGuard ng;
  Cases c;
  auto model = load("tiny_dcae");
  auto out = model->decode(c["dcae.dec.lin.z"]);
  EXPECT_EQ(out.sizes(), torch::IntArrayRef({2, 3, 24, 16}));
  check(out, c["dcae.dec.lin.out"], "decode lin");
}

TEST(VaeParity, DecodeQuadraticAttention) {
  torch::NoGradGuard ng;
  Cases c;
  auto model = load("tiny_dcae");
  check(model->decode(c["dcae.dec.quad.z"]), c["dcae.dec.quad.out"], "decode quad");
}

TEST(VaeParity, PixelShuffleVariantWithoutShortcuts) {
  // pixel_unshuffle / pixel_shuffle sampling, no latent shortcuts, two multiscale kernels, EViT at full size,
  // two layers per stage (DCDownBlock2d at index 2, DCUpBlock2d at 0 followed by blocks 1 and 2).
  torch::NoGradGuard ng;
  Cases c;
  auto model = load("tiny_dcae_ps");
  check(model->encode(c["ps.enc.lin.x"]), c["ps.enc.lin.out"], "ps encode lin");
  check(model->encode(c["ps.enc.quad.x"]), c["ps.enc.quad.out"], "ps encode quad");
  check(model->decode(c["ps.dec.z"]), c["ps.dec.out"], "ps decode");
}

TEST(VaeParity, RejectsImageSizeNotMultipleOfCompression) {
  auto model = load("tiny_dcae");
  EXPECT_TRUE(sprint::test::throws_with([&] { model->encode(torch::zeros({1, 3, 10, 8})); },
                                        {"10x8", "compression factor 4"}));
  EXPECT_TRUE(sprint::test::throws_with([&] { model->decode(torch::zeros({1, 3, 2, 2})); }, {"latent must be (B, 4"}));
}
