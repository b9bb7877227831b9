// SCM sampler vs diffusers' SanaSprintPipeline (output_type="latent") on the tiny Sprint transformer.
//
// Two checks per step count: (1) our seeded CPU generator draws exactly the pipeline's noise tensors
// (bit-identical: LibTorch and PyTorch share the ATen CPU generator), and (2) the whole latent trajectory
// matches. Tolerance NMSE <= 1e-10 (fp32), the transformer's tolerance: the sampler's own arithmetic is
// elementwise in the same order as the reference, so only the transformer's summation-order noise propagates.
#include <gtest/gtest.h>

#include "sprint/error.h"
#include "sprint/scm.h"
#include "sprint/transformer.h"
#include "test_util.h"

using namespace sprint;
using sprint::test::close_nmse;
using sprint::test::fixture_path;

namespace {
constexpr double kFp32Nmse = 1e-10;

struct Fixture : sprint::test::FixtureCases {
  Fixture() : FixtureCases("transformer/sampler_cases.safetensors") {}
  SanaTransformer2DModel model = load_transformer(fixture_path("transformer/tiny_sprint/transformer"));

  FlowModel flow(double guidance_scale) {
    auto enc = (*this)["enc"], mask = (*this)["mask"];
    // diffusers: guidance = full(guidance_scale) cast to the text dtype, then times guidance_embeds_scale.
    auto g = torch::full({enc.size(0)}, guidance_scale, torch::kFloat32) * model->config.guidance_embeds_scale;
    return [this, enc, mask, g](const torch::Tensor& x, const torch::Tensor& t) {
      return model->forward(x, enc, t, g, mask);
    };
  }
};
}  // namespace

class SamplerParity : public ::testing::TestWithParam<int> {};

TEST_P(SamplerParity, TrajectoryMatchesDiffusersPipeline) {
  torch::NoGradGuard ng;
  Fixture f;
  const int steps = GetParam();
  const std::string p = str("steps", steps, ".");
  const auto seed = f[p + "seed"].item<int64_t>();
  auto shape = f[p + "out"].sizes().vec();

  // Schedule: identical float32 values.
  auto ts = scm_timesteps(steps);
  ASSERT_TRUE(torch::equal(ts, f[p + "timesteps"])) << ts << " vs " << f[p + "timesteps"];

  // Noise: bit-identical draws.
  auto noise = seeded_cpu_noise(static_cast<uint64_t>(seed));
  for (int i = 0; i <= steps; ++i) EXPECT_TRUE(torch::equal(noise(shape), f[p + str("noise", i)])) << "draw " << i;

  // Trajectory: after each step the renoised latents (what the pipeline's callback saw), then the output.
  ScmSampleOptions opt;
  opt.timesteps = ts;
  std::vector<torch::Tensor> x0s;
  opt.on_step = [&](int, int, const torch::Tensor& x0) { x0s.push_back(x0.clone()); return true; };
  auto out = scm_sample(f.flow(4.5), shape, seeded_cpu_noise(static_cast<uint64_t>(seed)), opt);
  EXPECT_TRUE(close_nmse(out, f[p + "out"], kFp32Nmse));
  ASSERT_EQ(static_cast<int>(x0s.size()), steps);
  // The final step lands at t = 0, where the renoised latent equals x0 exactly.
  EXPECT_TRUE(close_nmse(x0s.back() * kSigmaData, f[p + str("latents", steps - 1)], kFp32Nmse));
}

INSTANTIATE_TEST_SUITE_P(Steps, SamplerParity, ::testing::Values(1, 2, 4));

TEST(SamplerParityIntermediate, RenoisedLatentsAfterEachStepMatch) {
  // Re-run the 4-step loop one step at a time through custom schedules to compare every intermediate latent.
  torch::NoGradGuard ng;
  Fixture f;
  const auto seed = static_cast<uint64_t>(f["steps4.seed"].item<int64_t>());
  auto shape = f["steps4.out"].sizes().vec();
  auto T = f["steps4.timesteps"];
  auto flow = f.flow(4.5);
  auto noise = seeded_cpu_noise(seed);
  auto latents = noise(shape) * kSigmaData;
  for (int i = 0; i < 4; ++i) {
    auto t = T[i], tn = T[i + 1];
    auto F = trigflow_forward(flow, latents / kSigmaData, t.expand({shape[0]})) * kSigmaData;
    auto x0 = torch::cos(t) * latents - torch::sin(t) * F;
    latents = torch::cos(tn) * x0 + torch::sin(tn) * (noise(shape) * kSigmaData);
    EXPECT_TRUE(close_nmse(latents, f[str("steps4.latents", i)], kFp32Nmse)) << "after step " << i;
  }
}

TEST(SamplerParityCustom, CustomScheduleMatches) {
  torch::NoGradGuard ng;
  Fixture f;
  auto custom = f["custom.timesteps"];
  std::vector<double> values;
  for (int i = 0; i < custom.size(0); ++i) values.push_back(custom[i].item<double>());
  ScmSampleOptions opt;
  opt.timesteps = scm_timesteps(3, kScmMaxTimestep, std::nullopt, values);
  ASSERT_TRUE(torch::equal(opt.timesteps, custom));
  auto out = scm_sample(f.flow(3.0), f["custom.out"].sizes().vec(),
                        seeded_cpu_noise(static_cast<uint64_t>(f["custom.seed"].item<int64_t>())), opt);
  EXPECT_TRUE(close_nmse(out, f["custom.out"], kFp32Nmse));
}

TEST(SamplerDeterminism, SameSeedSameImageDifferentSeedDifferentImage) {
  torch::NoGradGuard ng;
  Fixture f;
  ScmSampleOptions opt;
  opt.timesteps = scm_timesteps(2);
  auto shape = f["steps2.out"].sizes().vec();
  auto a = scm_sample(f.flow(4.5), shape, seeded_cpu_noise(7), opt);
  auto b = scm_sample(f.flow(4.5), shape, seeded_cpu_noise(7), opt);
  auto c = scm_sample(f.flow(4.5), shape, seeded_cpu_noise(8), opt);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_GT(sprint::test::nmse(a, c), 1e-3);
}
