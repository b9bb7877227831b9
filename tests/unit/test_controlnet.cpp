// ControlNet construction on a Sprint transformer (guidance embeds + QK norm): zero-init leaves the model unchanged.
#include <gtest/gtest.h>

#include "sprint/controlnet.h"
#include "test_util.h"

using namespace sprint;

namespace {
TransformerConfig tiny_sprint() { return sprint::test::tiny_sprint_config(/*num_layers=*/4); }
}  // namespace

TEST(ControlNet, InitFromTransformerIsAnIdentityInBothOrders) {
  torch::NoGradGuard ng;
  torch::manual_seed(3);
  SanaTransformer2DModel t(tiny_sprint());
  auto x = torch::randn({2, 4, 3, 5}), enc = torch::randn({2, 5, 6}), cond = torch::randn({2, 4, 3, 5});
  auto s = torch::tensor({0.2f, 0.9f}), g = torch::tensor({0.45f, 0.45f});
  auto plain = t->forward(x, enc, s, g);
  for (auto inj : {ControlInjection::AfterBlock, ControlInjection::BeforeBlock}) {
    SanaControlNetModel cn(ControlNetConfig::for_transformer(t->config, 2, inj));
    cn->init_from_transformer(*t);
    auto out = controlled_forward(*t, *cn, x, enc, s, g, {}, cond, 1.0);
    EXPECT_TRUE(torch::allclose(out, plain, 0, 0)) << "zero-initialised projections must not change the output";
    // Once the projections are non-zero the condition matters.
    for (auto& p : cn->controlnet_blocks->parameters()) p.normal_(0, 0.1);
    for (auto& p : cn->input_block->parameters()) p.normal_(0, 0.1);
    auto moved = controlled_forward(*t, *cn, x, enc, s, g, {}, cond, 1.0);
    EXPECT_GT(sprint::test::nmse(moved, plain), 1e-6);
    auto zero_scale = controlled_forward(*t, *cn, x, enc, s, g, {}, cond, 0.0);
    EXPECT_TRUE(torch::allclose(zero_scale, plain, 1e-6, 1e-6)) << "conditioning scale 0 disables the ControlNet";
  }
}

TEST(ControlNet, CopiesTheTransformersWeights) {
  torch::manual_seed(4);
  SanaTransformer2DModel t(tiny_sprint());
  SanaControlNetModel cn(ControlNetConfig::for_transformer(t->config, 2));
  cn->init_from_transformer(*t);
  auto tp = t->named_parameters();
  int shared = 0;
  for (const auto& p : cn->named_parameters()) {
    if (auto* v = tp.find(p.key())) {
      EXPECT_TRUE(torch::equal(p.value(), *v)) << p.key();
      ++shared;
    }
  }
  EXPECT_GT(shared, 20);
  EXPECT_TRUE(cn->named_parameters().contains("transformer_blocks.1.attn1.norm_q.weight"));
  EXPECT_FALSE(cn->named_parameters().contains("transformer_blocks.2.attn1.to_q.weight"));
}

TEST(ControlNet, MismatchedSizesAreRejected) {
  torch::manual_seed(5);
  SanaTransformer2DModel t(tiny_sprint());
  auto other = tiny_sprint();
  other.caption_channels = 7;
  SanaControlNetModel cn(ControlNetConfig::for_transformer(other, 2));
  EXPECT_TRUE(sprint::test::throws_with(
      [&] {
        controlled_forward(*t, *cn, torch::randn({1, 4, 2, 2}), torch::randn({1, 3, 6}), torch::tensor({0.5f}),
                           torch::tensor({0.45f}), {}, torch::randn({1, 4, 2, 2}), 1.0);
      },
      {"does not fit the transformer", "caption 7"}));
  EXPECT_TRUE(sprint::test::throws_with([&] { ControlNetConfig::for_transformer(t->config, 4); }, {"1 to 3 blocks"}));
}
