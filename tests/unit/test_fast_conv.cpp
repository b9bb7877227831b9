// The CPU engine (core/src/cpu/, private to core; this target adds core/src to its include path): Winograd F(4x4, 3x3)
// and F(6x6, 3x3) convolution (cpu/fast_conv.cpp) against torch's direct convolution, the DC-AE engine's fused
// blocks (cpu/dcae_engine.cpp) against their definitions and the mirror, and the one decision point
// (AutoencoderDCImpl::prepare_for_inference).
//
// Reference: the same convolution in float64. Tolerance for F(4x4): NMSE <= 5e-11 against it. The Winograd transforms are
// exact in real arithmetic, so the error is float32 rounding only, but more of it than a direct sum has: the
// input and output transforms multiply by up to 5 and 8 and the filter transform by 1/24, and the 36 products are
// summed over C_in before the output transform. Measured with unit-variance inputs and 1/sqrt(9 C_in) filters
// (printed per case): 2e-14 with one channel, 1e-12 at C_in = 70, 6e-12 at 1024 and 1.2e-11 for 256 -> 64 on
// 8x8 (torch's direct float32 convolution: 2e-15 to 1e-13 on the same cases). 5e-11 is about 4x the largest
// measured value; a wrong transform entry, a shifted tile or a lost border gives NMSE > 1e-3.
// F(6x6) multiplies by up to 21/4 and 32 in its transforms and by 32/45 and 1/90 in the filter's, and rounds more:
// on the same cases it measured 1.5-5x F(4x4)'s NMSE and 3.6e-11 at most (256 -> 64 on 8x8, printed); its bound,
// 2e-10, is about 5x the largest measured value, and the same wrong-entry errors still exceed it by 1e7.
#include <gtest/gtest.h>

#include "cpu/dcae_engine.h"
#include "cpu/fast_conv.h"
#include "sprint/cpu_conv.h"
#include "sprint/vae.h"
#include "test_util.h"

using namespace sprint;
using namespace sprint::cpu;
using sprint::test::close_nmse;
using sprint::test::nmse;

namespace {
constexpr double kNmse = 5e-11;
constexpr double kNmse6 = 2e-10;
double bound(int tile) { return tile == 4 ? kNmse : kNmse6; }

torch::Tensor direct(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  return torch::conv2d(x, w, b, 1, 1);
}

// A resampling convolution's case: shapes, and the shortcut's repeats or group (0: none).
struct ResampleCase {
  int64_t B, C, O, H, W, shortcut;
};

// Random input, 1/sqrt(9 C)-scaled filter and bias for a case.
struct ConvInputs {
  torch::Tensor x, w, b;
};
ConvInputs random_inputs(const ResampleCase& c) {
  return {torch::randn({c.B, c.C, c.H, c.W}), torch::randn({c.O, c.C, 3, 3}) / std::sqrt(9.0 * c.C),
          torch::randn({c.O})};
}

// Prints the case's NMSE against the float64 reference and checks shape, layout and the bound.
void expect_matches(const ResampleCase& c, const torch::Tensor& out, const torch::Tensor& ref, double bound) {
  std::printf("  B%lld C%lld O%lld %lldx%lld shortcut %lld: NMSE vs float64 %.3e\n", (long long)c.B, (long long)c.C,
              (long long)c.O, (long long)c.H, (long long)c.W, (long long)c.shortcut, nmse(out, ref));
  EXPECT_EQ(out.sizes(), ref.sizes());
  EXPECT_TRUE(out.is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(close_nmse(out, ref, bound)) << c.C << " " << c.O << " " << c.H << "x" << c.W << " " << c.shortcut;
}
}  // namespace

TEST(FastConv, MatchesDirectConvolutionOnEveryShape) {
  torch::NoGradGuard ng;
  torch::manual_seed(1);
  struct Case {
    int64_t B, C, O, H, W;
    bool bias;
  };
  // Sizes that are and are not multiples of the 4x4 and 6x6 tiles, 1-pixel images, a single channel, more
  // channels than one 64-channel block (and not a multiple of it), and batches.
  for (const Case& c : {Case{1, 3, 8, 16, 16, true}, Case{2, 5, 7, 13, 9, false}, Case{1, 1, 1, 1, 1, true},
                        Case{1, 4, 3, 2, 7, true}, Case{3, 70, 130, 11, 6, true}, Case{1, 256, 64, 8, 8, false},
                        Case{1, 128, 128, 33, 31, true}, Case{1, 1024, 512, 8, 8, true}}) {
    auto x = torch::randn({c.B, c.C, c.H, c.W});
    auto w = torch::randn({c.O, c.C, 3, 3}) / std::sqrt(9.0 * c.C);
    auto b = c.bias ? torch::randn({c.O}) : torch::Tensor();
    auto ref = direct(x.to(torch::kFloat64), w.to(torch::kFloat64), c.bias ? b.to(torch::kFloat64) : b);
    for (int tile : {4, 6}) {
      auto out = winograd_conv3x3(x, winograd_filter(w, tile), b);
      std::printf("  F(%dx%d) B%lld C%lld O%lld %lldx%lld  NMSE vs float64: Winograd %.3e, torch float32 %.3e\n",
                  tile, tile, (long long)c.B, (long long)c.C, (long long)c.O, (long long)c.H, (long long)c.W,
                  nmse(out, ref), nmse(direct(x, w, b), ref));
      EXPECT_EQ(out.sizes(), ref.sizes());
      EXPECT_TRUE(close_nmse(out, ref, bound(tile)))
          << tile << ": " << c.B << " " << c.C << " " << c.O << " " << c.H << "x" << c.W;
      // Channels-last input (what the DC-AE passes along) gives the same values.
      EXPECT_TRUE(torch::equal(
          winograd_conv3x3(x.contiguous(at::MemoryFormat::ChannelsLast), winograd_filter(w, tile), b), out));
    }
  }
}

TEST(FastConv, NonContiguousInputIsReadCorrectly) {
  torch::NoGradGuard ng;
  torch::manual_seed(2);
  auto big = torch::randn({2, 6, 20, 20});
  auto x = big.narrow(1, 1, 4).narrow(2, 3, 10).transpose(2, 3);  // strided view
  auto w = torch::randn({5, 4, 3, 3}) / 6.0;
  for (int tile : {4, 6})
    EXPECT_TRUE(close_nmse(winograd_conv3x3(x, winograd_filter(w, tile), {}), direct(x, w, {}), bound(tile))) << tile;
}

// F(6x6) from 96 x 96 on (fast_conv.cpp has the measurements), and the engine's convolution takes the tile its input
// asks for.
TEST(FastConv, LargeImagesUseTheLargeTile) {
  EXPECT_EQ(winograd_tile(96, 96), 6);
  EXPECT_EQ(winograd_tile(512, 1024), 6);
  EXPECT_EQ(winograd_tile(95, 512), 4);
  EXPECT_EQ(winograd_tile(64, 64), 4);
  EXPECT_EQ(winograd_tile(1, 1), 4);
  torch::NoGradGuard ng;
  torch::manual_seed(11);
  torch::nn::Conv2d module(torch::nn::Conv2dOptions(8, 8, 3).padding(1));
  Conv conv(module);
  for (int64_t side : {20, 101}) {
    auto x = torch::randn({1, 8, side, side + 3});
    const int tile = winograd_tile(side, side + 3);
    EXPECT_TRUE(torch::equal(conv(x), winograd_conv3x3(x, winograd_filter(module->weight, tile), module->bias))) << side;
    EXPECT_TRUE(close_nmse(conv(x), direct(x, module->weight, module->bias), bound(tile))) << side;
  }
}

// The engine's convolution (and its public handle, CpuConv3x3) is for inference; the mirror's module it reads stays
// torch's convolution, which training differentiates.
TEST(FastConv, ModuleStaysTorchsConvolutionForTraining) {
  torch::manual_seed(3);
  torch::nn::Conv2d module(torch::nn::Conv2dOptions(8, 12, 3).padding(1));
  auto x = torch::randn({1, 8, 9, 9});
  {
    torch::NoGradGuard ng;
    for (const auto& y_inf : {Conv(module)(x), CpuConv3x3(module)(x)}) {
      // The Winograd path returns channels-last; torch's NCHW convolution returns contiguous NCHW.
      EXPECT_TRUE(y_inf.is_contiguous(at::MemoryFormat::ChannelsLast));
      EXPECT_TRUE(close_nmse(y_inf, direct(x, module->weight, module->bias), kNmse));
    }
  }
  // With autograd (training), the module is torch's convolution and gradients reach the weights.
  auto y = module(x);
  EXPECT_TRUE(y.requires_grad());
  EXPECT_TRUE(y.is_contiguous());
  y.sum().backward();
  ASSERT_TRUE(module->weight.grad().defined());
  EXPECT_GT(module->weight.grad().abs().sum().item<double>(), 0.0);
}

TEST(FastConv, CachedFilterFollowsWeightUpdates) {
  torch::NoGradGuard ng;
  torch::manual_seed(4);
  torch::nn::Conv2d module(torch::nn::Conv2dOptions(8, 8, 3).padding(1));
  Conv conv(module);
  auto x = torch::randn({1, 8, 8, 8});
  auto before = conv(x);
  module->weight.mul_(-2.0);  // in place, as an optimiser step or load_state_dict does
  auto after = conv(x);
  EXPECT_TRUE(close_nmse(after, direct(x, module->weight, module->bias), kNmse));
  EXPECT_GT(nmse(after, before), 0.1);
}

// Which convolutions the engine runs by Winograd is decided from their shape when it is built. The device and dtype
// are not looked at per call: the engine exists only where prepare_for_inference chose it (the CPU, float32).
TEST(FastConv, OtherConvolutionsKeepTorchsPath) {
  torch::NoGradGuard ng;
  auto x = torch::randn({1, 8, 8, 8});
  auto o = torch::nn::Conv2dOptions(8, 8, 3).padding(1);
  auto applies = [&](const torch::nn::Conv2dOptions& options) {
    return winograd_applies(torch::nn::Conv2d(options)->options);
  };
  EXPECT_TRUE(applies(o));
  EXPECT_FALSE(applies(torch::nn::Conv2dOptions(8, 8, 3).padding(1).stride(2)));
  EXPECT_FALSE(applies(torch::nn::Conv2dOptions(8, 8, 3).padding(0)));
  EXPECT_FALSE(applies(torch::nn::Conv2dOptions(8, 8, 3).padding(1).groups(8)));
  EXPECT_FALSE(applies(torch::nn::Conv2dOptions(8, 8, 5).padding(2)));
  EXPECT_FALSE(applies(torch::nn::Conv2dOptions(8, 8, 3).padding(1).padding_mode(torch::kReflect)));
  // RGB in or out: too few channels for the transforms to pay.
  EXPECT_FALSE(applies(torch::nn::Conv2dOptions(3, 8, 3).padding(1)));
  EXPECT_FALSE(applies(torch::nn::Conv2dOptions(8, 3, 3).padding(1)));

  // The engine's convolution follows that choice: torch's convolution (an NCHW result for an NCHW input) where
  // Winograd does not apply.
  torch::nn::Conv2d strided(torch::nn::Conv2dOptions(8, 8, 3).padding(1).stride(2));
  EXPECT_TRUE(Conv(torch::nn::Conv2d(o)).winograd());
  EXPECT_FALSE(Conv(strided).winograd());
  EXPECT_FALSE(CpuConv3x3(strided).winograd());
  auto y = Conv(strided)(x);
  EXPECT_TRUE(y.is_contiguous());
  EXPECT_TRUE(torch::equal(y, strided(x)));
}

TEST(FastConv, RejectsMismatchedFilter) {
  using sprint::test::throws_with;
  EXPECT_TRUE(throws_with(
      [] { winograd_conv3x3(torch::randn({1, 4, 8, 8}), winograd_filter(torch::randn({2, 5, 3, 3})), {}); },
      {"winograd_conv3x3", "4 channels"}));
  EXPECT_TRUE(throws_with([] { winograd_filter(torch::randn({2, 5, 5, 5})); }, {"winograd_filter", "3, 3"}));
  EXPECT_TRUE(throws_with([] { winograd_filter(torch::randn({2, 5, 3, 3}), 5); }, {"winograd_filter", "got 5"}));
  EXPECT_TRUE(throws_with([] { winograd_conv3x3(torch::randn({1, 4, 8, 8}), torch::randn({49, 4, 2}), {}); },
                          {"winograd_conv3x3", "(36 or 64, C_in, C_out)", "[49, 4, 2]"}));
}

// SiLU in the output transform: silu of the float64 convolution. The activation's own error (a Cephes exp
// polynomial, relative error about 1e-7) is far below the transforms', so the Winograd bound holds.
TEST(FastConv, FusedSiluMatchesTheDefinition) {
  torch::NoGradGuard ng;
  torch::manual_seed(7);
  for (int64_t C : {8, 70}) {
    // Wide values reach both tails of silu (x = +-30 and beyond the exp's clamp at 87).
    auto x = torch::randn({2, C, 9, 7}) * 10.0;
    auto w = torch::randn({C + 3, C, 3, 3}) / std::sqrt(9.0 * C) * 4.0;
    auto b = torch::randn({C + 3});
    auto ref = torch::silu(direct(x.to(torch::kFloat64), w.to(torch::kFloat64), b.to(torch::kFloat64)));
    for (int tile : {4, 6}) {
      auto out = winograd_conv3x3(x, winograd_filter(w, tile), b, /*silu=*/true);
      std::printf("  F(%dx%d) C %lld: NMSE silu(Winograd) vs float64 %.3e, value range [%.1f, %.1f]\n", tile, tile,
                  (long long)C, nmse(out, ref), ref.min().item<double>(), ref.max().item<double>());
      EXPECT_TRUE(close_nmse(out, ref, bound(tile))) << tile << " " << C;
      EXPECT_FALSE(out.isnan().any().item<bool>());
    }
  }
  // The engine convolution's fused form equals silu(conv) on both paths (Winograd and torch's).
  torch::nn::Conv2d module(torch::nn::Conv2dOptions(8, 8, 3).padding(1));
  auto x = torch::randn({1, 8, 6, 6});
  EXPECT_TRUE(close_nmse(Conv(module).silu(x), torch::silu(direct(x, module->weight, module->bias)), kNmse));
  torch::nn::Conv2d strided(torch::nn::Conv2dOptions(8, 8, 3).padding(1).stride(2));
  ASSERT_FALSE(Conv(strided).winograd());
  EXPECT_TRUE(torch::allclose(Conv(strided).silu(x), torch::silu(torch::conv2d(x, strided->weight, strided->bias, 2, 1))));
}

// The DC-AE up block's fast path: the upsampled tiles read straight from x, and the shortcut added in the output
// transform, against nearest upsampling, the convolution and pixel_shuffle(repeat_interleave(x)) in float64. Same
// Winograd arithmetic as above (the gather only changes addresses; the shortcut is one float32 add), so the same
// bound.
TEST(FastConv, UpsamplingConvolutionMatchesItsDefinition) {
  namespace F = torch::nn::functional;
  torch::NoGradGuard ng;
  torch::manual_seed(8);
  // repeats 4 (C == O), 2 (O == C / 2), 1 (O == C / 4), no shortcut; odd and tile-unaligned sizes; batches.
  for (const ResampleCase& c : {ResampleCase{1, 16, 16, 8, 8, 4}, ResampleCase{2, 32, 16, 5, 7, 2},
                                ResampleCase{1, 64, 16, 3, 3, 1}, ResampleCase{1, 8, 12, 9, 4, 0},
                                ResampleCase{1, 128, 64, 6, 10, 2}, ResampleCase{1, 8, 8, 1, 1, 4}}) {
    const auto [x, w, b] = random_inputs(c);
    auto x64 = x.to(torch::kFloat64);
    auto up = F::interpolate(x64, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
    auto ref = direct(up, w.to(torch::kFloat64), b.to(torch::kFloat64));
    if (c.shortcut > 0) ref = ref + F::pixel_shuffle(x64.repeat_interleave(c.shortcut, 1), 2);
    for (int tile : {4, 6}) expect_matches(c, winograd_upsample_conv3x3(x, winograd_filter(w, tile), b, c.shortcut), ref, bound(tile));
  }
}

// The DC-AE down block's fast path: im2col GEMMs with the bias and the shortcut (groups of pixel_unshuffle(x)
// averaged) as the GEMM's starting value, against torch in float64. Tolerance 1e-12: the GEMM sums the same 9 C
// products as a direct convolution, in the BLAS's order (torch's float32 convolution measures 1e-14 to 1e-13 here,
// as does this path, printed); a wrong tap, stride or shortcut channel gives NMSE > 1e-3.
TEST(FastConv, StridedConvolutionMatchesItsDefinition) {
  namespace F = torch::nn::functional;
  torch::NoGradGuard ng;
  torch::manual_seed(9);
  // Groups of 2 (O == 2 C) and 4 (O == C), no shortcut on odd sizes, a 2x2 image, a batch.
  for (const ResampleCase& c : {ResampleCase{1, 16, 32, 8, 8, 2}, ResampleCase{2, 24, 24, 6, 10, 4},
                                ResampleCase{1, 8, 5, 7, 9, 0}, ResampleCase{1, 32, 64, 2, 2, 2},
                                ResampleCase{1, 128, 256, 12, 8, 2}}) {
    const auto [x, w, b] = random_inputs(c);
    auto x64 = x.to(torch::kFloat64);
    auto ref = torch::conv2d(x64, w.to(torch::kFloat64), b.to(torch::kFloat64), 2, 1);
    std::printf("  (torch's float32 convolution: NMSE vs float64 %.3e)\n", nmse(torch::conv2d(x, w, b, 2, 1), ref));
    if (c.shortcut > 0) ref = ref + F::pixel_unshuffle(x64, 2).unflatten(1, {-1, c.shortcut}).mean(2);
    expect_matches(c, conv3x3_stride2(x, im2col_filter(w), b, c.shortcut), ref, 1e-12);
  }
}

TEST(FastConv, ResamplingConvolutionsRejectBadShapes) {
  using sprint::test::throws_with;
  auto w = torch::randn({16, 8, 3, 3});
  // The down-shortcut needs 4 C_in == group * C_out and an even size.
  EXPECT_TRUE(throws_with([&] { conv3x3_stride2(torch::randn({1, 8, 8, 8}), im2col_filter(w), {}, 4); },
                          {"conv3x3_stride2", "4 * C_in (32) == 4 * C_out (16)"}));
  EXPECT_TRUE(throws_with([&] { conv3x3_stride2(torch::randn({1, 8, 7, 8}), im2col_filter(w), {}, 2); },
                          {"conv3x3_stride2", "even size", "7x8"}));
  EXPECT_TRUE(throws_with([&] { conv3x3_stride2(torch::randn({1, 4, 8, 8}), im2col_filter(w), {}, 0); },
                          {"conv3x3_stride2", "4 channels"}));
  // The up-shortcut needs C_in * repeats == 4 C_out.
  EXPECT_TRUE(throws_with([&] { winograd_upsample_conv3x3(torch::randn({1, 8, 4, 4}), winograd_filter(w), {}, 4); },
                          {"winograd_upsample_conv3x3", "C_in * repeats (32) == 4 * C_out (64)"}));
  EXPECT_TRUE(throws_with([&] { winograd_upsample_conv3x3(torch::randn({1, 8, 4, 4}), winograd_filter(w), torch::randn({3}), 0); },
                          {"winograd_upsample_conv3x3", "bias must hold 16"}));
}

// The DC-AE engine's ResBlock step (SiLU in conv1's output transform; conv2, the RMSNorm over channels and the
// residual in conv2's) against its definition in float64. Two Winograd convolutions in a row, so the bound is the
// single convolution's for the tile the block picks (F(6x6) on the 97 x 100 case); measured 1e-13 to 1.4e-12
// (printed). Odd sizes make border tiles and partial tile rows; 70 channels is not a multiple of the 64-channel
// blocks.
TEST(FastConv, FusedResBlockMatchesItsDefinition) {
  torch::NoGradGuard ng;
  torch::manual_seed(10);
  struct Case {
    int64_t C, H, W;
  };
  for (const Case& c : {Case{16, 7, 9}, Case{70, 7, 9}, Case{128, 7, 9}, Case{16, 97, 100}}) {
    const int64_t C = c.C;
    DCResBlock block(C, Activation::SiLU);
    for (auto& p : block->parameters()) p.normal_().mul_(p.dim() == 4 ? 1.0 / std::sqrt(9.0 * C) : 1.0);
    auto x = torch::randn({2, C, c.H, c.W}).contiguous(at::MemoryFormat::ChannelsLast);
    auto d = [](const torch::Tensor& t) { return t.defined() ? t.to(torch::kFloat64) : t; };
    auto h = torch::silu(direct(d(x), d(block->conv1->weight), d(block->conv1->bias)));
    h = direct(h, d(block->conv2->weight), d(block->conv2->bias));
    auto ref = h * torch::rsqrt(h.pow(2).mean(1, true) + block->norm->eps) * d(block->norm->weight).view({1, -1, 1, 1}) +
               d(block->norm->bias).view({1, -1, 1, 1}) + d(x);
    auto out = res_block_step(block)(x);
    const int tile = winograd_tile(c.H, c.W);
    std::printf("  C %lld %lldx%lld, F(%dx%d): NMSE fused ResBlock vs float64 %.3e\n", (long long)C, (long long)c.H,
                (long long)c.W, tile, tile, nmse(out, ref));
    EXPECT_TRUE(out.is_contiguous(at::MemoryFormat::ChannelsLast));
    EXPECT_TRUE(close_nmse(out, ref, bound(tile))) << C << " " << c.H << "x" << c.W;
    // The mirror, torch's operations: the same values within float32.
    EXPECT_TRUE(close_nmse(block->forward(x), ref, kNmse)) << C << " " << c.H << "x" << c.W;
  }
}

// The DC-AE engine's fused RMSNorm-over-channels pass (channels-last float32 CPU) against the mirror's element-wise
// path (rms_norm_channels) on the same values in NCHW. Tolerance 1e-12: the same float32 operations in the same
// order per element; only the sum of squares is accumulated in another order (16 lanes against ATen's reduction),
// a few ulps on the scale. Measured: about 1e-14 (printed).
TEST(FastConv, FusedChannelNormMatchesTheGenericPath) {
  torch::NoGradGuard ng;
  torch::manual_seed(5);
  for (int64_t C : {1, 7, 16, 70, 512}) {
    RMSNorm norm(C, 1e-5, true, /*bias=*/true);
    norm->weight.normal_();
    norm->bias.normal_();
    auto x = torch::randn({2, C, 5, 6}) * 3.0;
    auto r = torch::randn({2, C, 5, 6});
    auto generic = rms_norm_channels(x, norm, r);  // NCHW: the element-wise path
    EXPECT_TRUE(generic.is_contiguous());
    auto fused = rms_norm_channels_last(x.contiguous(at::MemoryFormat::ChannelsLast), *norm, r);
    EXPECT_TRUE(fused.is_contiguous(at::MemoryFormat::ChannelsLast));
    std::printf("  C %lld: NMSE fused vs generic %.3e\n", static_cast<long long>(C), nmse(fused, generic));
    EXPECT_TRUE(close_nmse(fused, generic, 1e-12)) << C;
    // Without the residual, and against the definition.
    auto ms = x.pow(2).mean(1, true);
    auto expect = x / torch::sqrt(ms + 1e-5) * norm->weight.view({1, -1, 1, 1}) + norm->bias.view({1, -1, 1, 1});
    EXPECT_TRUE(close_nmse(rms_norm_channels_last(x.contiguous(at::MemoryFormat::ChannelsLast), *norm), expect, 1e-12)) << C;
  }
}

// Training goes through the mirror with autograd on. A model prepared for CPU inference with the fast path on runs
// the engine, which computes no gradients: train() returns it to the mirror, whose gradients must equal those of a
// model that was never prepared, and an engine call that autograd would record is refused instead of returning a
// result without gradients. 4 x 4 inputs make the tiny DC-AE's last stage 1 x 1, where a tensor is channels-last and
// NCHW at once. Tolerance 1e-10 on the gradients' NMSE: the same float32 operations either way (measured 0).
TEST(FastConv, DcaeGradientsAreTorchsWithTheFastPathOn) {
  using sprint::test::throws_with;
  const auto dir = sprint::test::fixture_path("vae/tiny_dcae/vae");
  auto vae = load_vae(dir), never_prepared = load_vae(dir);
  ASSERT_FALSE(vae->uses_cpu_engine());  // a loaded model runs the mirror until prepared
  torch::manual_seed(6);
  for (int64_t side : {4, 8}) {
    auto x = torch::randn({1, 3, side, side});
    vae->prepare_for_inference(torch::kCPU, torch::kFloat32);
    ASSERT_TRUE(vae->uses_cpu_engine());
    EXPECT_TRUE(throws_with([&] { vae->encode(x); }, {"prepare_for_inference", "no gradients", "train()"}));
    {
      torch::NoGradGuard ng;
      EXPECT_EQ(vae->decode(vae->encode(x)).sizes(), x.sizes());  // the engine, in inference
    }
    auto grads = [&](AutoencoderDCImpl& m) {
      m.train();
      m.zero_grad();
      m.decode(m.encode(x)).square().mean().backward();
      std::vector<torch::Tensor> g;
      for (const auto& p : m.parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
      return g;
    };
    const auto fast = grads(*vae), torch_path = grads(*never_prepared);
    EXPECT_FALSE(vae->uses_cpu_engine());
    ASSERT_EQ(fast.size(), torch_path.size());
    for (size_t i = 0; i < fast.size(); ++i) {
      if (torch_path[i].abs().sum().item<double>() == 0) continue;  // a parameter this input does not reach
      EXPECT_TRUE(close_nmse(fast[i], torch_path[i], 1e-10)) << side << " #" << i;
    }
  }
}

// The decision is made once, by prepare_for_inference: the engine on the CPU in float32 with fast_cpu, the mirror
// otherwise (another dtype, or fast_cpu off as PipelineOptions::fast_cpu_vae = false and sprint-bench --no-winograd
// ask). Where each path's values stand against diffusers is tests/parity/test_vae_parity.cpp's subject.
TEST(FastConv, PrepareForInferenceMakesTheOneDecision) {
  auto vae = load_vae(sprint::test::fixture_path("vae/tiny_dcae/vae"));
  EXPECT_FALSE(vae->uses_cpu_engine());
  vae->prepare_for_inference(torch::kCPU, torch::kFloat32, {/*fast_cpu=*/false});
  EXPECT_FALSE(vae->uses_cpu_engine());
  vae->prepare_for_inference(torch::kCPU, torch::kFloat64);
  EXPECT_FALSE(vae->uses_cpu_engine());
  vae->prepare_for_inference(torch::kCPU, torch::kFloat32);
  EXPECT_TRUE(vae->uses_cpu_engine());
  EXPECT_FALSE(vae->is_training());
  vae->eval();  // eval mode keeps it
  EXPECT_TRUE(vae->uses_cpu_engine());
  vae->train();
  EXPECT_FALSE(vae->uses_cpu_engine());
}
