// SanaTransformer2DModel forward vs diffusers on tiny seeded random-init models (tests/fixtures/fx_transformer.py).
//
// Tolerance: NMSE <= 1e-10 in fp32 on the CPU. Both sides run the same maths in float32; the remaining
// differences come from summation order (our 1x1 convolutions are GEMMs over tokens, diffusers runs Conv2d), i.e.
// a few float32 ulps per element. Measured NMSE is ~1e-14 (printed by each check); 1e-10 leaves 4 orders of margin
// while still catching any real error (a wrong eps, a missing norm weight or a swapped h/w gives NMSE > 1e-4).
#include <gtest/gtest.h>

#include "sprint/error.h"
#include "sprint/transformer.h"
#include "test_util.h"

using namespace sprint;
using sprint::test::close_nmse;
using sprint::test::fixture_path;
using sprint::test::FixtureCases;

namespace {
constexpr double kFp32Nmse = 1e-10;

struct Cases : FixtureCases {
  Cases() : FixtureCases("transformer/forward_cases.safetensors") {}
};

SanaTransformer2DModel load(const std::string& name) {
  return load_transformer(fixture_path("transformer/" + name + "/transformer"));
}
}  // namespace

TEST(TransformerParity, SprintForwardSeveralTimestepsWithPaddedMask) {
  torch::NoGradGuard ng;
  Cases c;
  auto model = load("tiny_sprint");
  ASSERT_TRUE(model->config.guidance_embeds);
  ASSERT_EQ(model->config.qk_norm, "rms_norm_across_heads");
  for (int i = 0; i < 4; ++i) {
    auto out = model->forward(c["x"], c["enc"], c[str("sprint.t", i)], c["sprint.guidance"], c["mask"]);
    EXPECT_TRUE(close_nmse(out, c[str("sprint.out", i)], kFp32Nmse)) << "case " << i;
  }
}

TEST(TransformerParity, SprintForwardWithoutMask) {
  torch::NoGradGuard ng;
  Cases c;
  auto model = load("tiny_sprint");
  auto out = model->forward(c["x"], c["enc"], torch::tensor({0.3f, 0.9f}), c["sprint.guidance"]);
  EXPECT_TRUE(close_nmse(out, c["sprint.out_nomask"], kFp32Nmse));
  // The padded mask must matter: the masked and unmasked outputs of sample 1 differ clearly.
  EXPECT_GT(sprint::test::nmse(c["sprint.out_nomask"][1], c["sprint.out1"][1]), 1e-6);
}

TEST(TransformerParity, ControlNetResidualsAfterBlock) {
  torch::NoGradGuard ng;
  Cases c;
  auto model = load("tiny_sprint");
  auto out = model->forward(c["x"], c["enc"], torch::tensor({0.3f, 0.9f}), c["sprint.guidance"], c["mask"],
                            {c["sprint.res0"], c["sprint.res1"]}, ControlInjection::AfterBlock);
  EXPECT_TRUE(close_nmse(out, c["sprint.out_control"], kFp32Nmse));
  // Injecting before the block is a different computation (NVlabs order); it must not coincide.
  auto before = model->forward(c["x"], c["enc"], torch::tensor({0.3f, 0.9f}), c["sprint.guidance"], c["mask"],
                               {c["sprint.res0"], c["sprint.res1"]}, ControlInjection::BeforeBlock);
  EXPECT_GT(sprint::test::nmse(before, c["sprint.out_control"]), 1e-6);
}

TEST(TransformerParity, SanaWithoutGuidanceEmbedOrQkNorm) {
  torch::NoGradGuard ng;
  Cases c;
  auto model = load("tiny_sana");
  ASSERT_FALSE(model->config.guidance_embeds);
  ASSERT_TRUE(model->config.qk_norm.empty());
  for (int i = 0; i < 2; ++i) {
    auto out = model->forward(c["x"], c["enc"], c[str("sana.t", i)], {}, c["mask"]);
    EXPECT_TRUE(close_nmse(out, c[str("sana.out", i)], kFp32Nmse)) << "case " << i;
  }
}

TEST(TransformerParity, ExplicitSoftmaxMatchesFusedAttention) {
  // The plain-ops cross-attention (used under forward-mode AD in training) computes the same function.
  torch::NoGradGuard ng;
  Cases c;
  auto model = load("tiny_sprint");
  model->set_explicit_attention(true);
  auto out = model->forward(c["x"], c["enc"], c["sprint.t1"], c["sprint.guidance"], c["mask"]);
  EXPECT_TRUE(close_nmse(out, c["sprint.out1"], kFp32Nmse));
}
