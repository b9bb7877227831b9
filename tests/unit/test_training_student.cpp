// The distillation trains the student through SanaStudent::forward (TrigFlow output, logvar head, ControlNet
// injection); the app samples the published folder through controlled_forward + the SCM sampler. Both must compute
// the same F, or the published model is not the trained one.
#include <gtest/gtest.h>

#include "sprint/controlnet.h"
#include "sprint/scm.h"
#include "sprint/training/sampling.h"
#include "sprint/training/trigflow.h"
#include "test_util.h"

using namespace sprint;
using namespace sprint::training;

namespace {

void randomize(torch::nn::Module& m, uint64_t seed) {
  torch::NoGradGuard ng;
  auto gen = make_generator(seed);
  for (auto& p : m.parameters(true)) p.copy_(randn(gen, p.sizes()) * 0.3);
}

void check_student_matches_pipeline(ControlInjection injection) {
  auto tc = sprint::test::tiny_sprint_config(3);  // guidance embeds + QK norm, as the published student
  SanaTransformer2DModel tr(tc);
  auto cc = ControlNetConfig::for_transformer(tc, 2, injection);
  SanaControlNetModel cn(cc);
  randomize(*tr, 1);
  randomize(*cn, 2);  // nonzero projections, so the control path matters
  SanaStudent student(tr, /*zero_init_guidance=*/false);
  student->attach_controlnet(cn);
  student->eval();

  const int64_t B = 2;
  auto gen = make_generator(3);
  TextCondition text;
  text.enc = randn(gen, {B, 5, tc.caption_channels});
  text.mask = torch::ones({B, 5}, torch::kInt64);
  text.mask[1][4] = 0;
  text.control = randn(gen, {B, tc.in_channels, 4, 4});
  text.control_scale = 0.7;
  auto x = randn(gen, {B, tc.in_channels, 4, 4});
  auto t = torch::tensor({0.4f, 1.3f});
  auto w = torch::tensor({4.0f, 5.0f});

  torch::NoGradGuard ng;
  auto F_train = student->forward(x, t, text, w).F;
  FlowModel flow = [&](const torch::Tensor& x_fm, const torch::Tensor& s) {
    return controlled_forward(*tr, *cn, x_fm, text.enc, s, w * tc.guidance_embeds_scale, text.mask, text.control,
                              text.control_scale);
  };
  auto F_app = trigflow_forward(flow, x, t);
  // Same float32 ops in the same order except the TrigFlow wrapper's arithmetic (core casts times to float32 the
  // same way); 1e-10 NMSE is far below what a wrong injection point or a missing term gives (O(1e-2) and above).
  EXPECT_TRUE(sprint::test::close_nmse(F_train, F_app, 1e-10));
  // And the control path is live: without it F changes.
  auto no_control = trigflow_forward(
      [&](const torch::Tensor& x_fm, const torch::Tensor& s) {
        return tr->forward(x_fm, text.enc, s, w * tc.guidance_embeds_scale, text.mask);
      },
      x, t);
  EXPECT_GT(sprint::test::nmse(no_control, F_app), 1e-4);
}

}  // namespace

TEST(TrainingStudent, ControlNetStudentMatchesThePipelineBeforeBlock) {
  check_student_matches_pipeline(ControlInjection::BeforeBlock);
}

TEST(TrainingStudent, ControlNetStudentMatchesThePipelineAfterBlock) {
  check_student_matches_pipeline(ControlInjection::AfterBlock);
}
