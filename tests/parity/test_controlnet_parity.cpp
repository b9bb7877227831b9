// SanaControlNetModel vs diffusers (tests/fixtures/fx_controlnet.py), in both injection orders.
//
// Tolerance NMSE <= 1e-10 in fp32, the transformer's (see test_transformer_parity.cpp): the ControlNet reuses the
// same blocks, so only summation-order noise (~1e-14) is expected.
#include <gtest/gtest.h>

#include "sprint/controlnet.h"
#include "sprint/error.h"
#include "test_util.h"

using namespace sprint;
using sprint::test::close_nmse;
using sprint::test::fixture_path;

namespace {
constexpr double kFp32Nmse = 1e-10;

struct Fixture : sprint::test::FixtureCases {
  Fixture() : FixtureCases("controlnet/cases.safetensors") {}
  SanaTransformer2DModel main = load_transformer(fixture_path("controlnet/tiny_cn/transformer"));
  SanaControlNetModel cn = load_controlnet(fixture_path("controlnet/tiny_cn/controlnet"));
  double scale() const { return (*this)["scale"].item<double>(); }
};
}  // namespace

TEST(ControlNetParity, DiffusersConfigDefaultsToAfterBlock) {
  Fixture f;
  EXPECT_EQ(f.cn->config.injection, ControlInjection::AfterBlock);
  EXPECT_EQ(f.cn->config.base.num_layers, 2);
}

TEST(ControlNetParity, ResidualsMatchDiffusers) {
  torch::NoGradGuard ng;
  Fixture f;
  auto res = f.cn->forward(f["x"], f["enc"], f["t"] * 1000, {}, f["cond"], f.scale(), f["mask"]);
  ASSERT_EQ(res.size(), 2u);
  for (int j = 0; j < 2; ++j) EXPECT_TRUE(close_nmse(res[j], f[str("after.res", j)], kFp32Nmse)) << j;
}

TEST(ControlNetParity, AfterBlockControlledOutputMatchesDiffusers) {
  torch::NoGradGuard ng;
  Fixture f;
  auto out = controlled_forward(*f.main, *f.cn, f["x"], f["enc"], f["t"] * 1000, {}, f["mask"], f["cond"], f.scale());
  EXPECT_TRUE(close_nmse(out, f["after.out"], kFp32Nmse));
}

TEST(ControlNetParity, BeforeBlockControlledOutputMatchesNvlabsOrder) {
  torch::NoGradGuard ng;
  Fixture f;
  f.cn->config.injection = ControlInjection::BeforeBlock;
  auto out = controlled_forward(*f.main, *f.cn, f["x"], f["enc"], f["t"] * 1000, {}, f["mask"], f["cond"], f.scale());
  EXPECT_TRUE(close_nmse(out, f["before.out"], kFp32Nmse));
  EXPECT_GT(sprint::test::nmse(f["before.out"], f["after.out"]), 1e-6);  // the two orders really differ
}

TEST(ControlNetParity, InjectionIsReadFromTheCheckpointConfig) {
  auto j = ControlNetConfig::load(fixture_path("controlnet/tiny_cn/controlnet")).to_json();
  EXPECT_EQ(j["control_injection"], "after_block");
  j["control_injection"] = "before_block";
  EXPECT_EQ(ControlNetConfig::from_json(j, "cfg").injection, ControlInjection::BeforeBlock);
  j["control_injection"] = "sideways";
  EXPECT_TRUE(sprint::test::throws_with([&] { ControlNetConfig::from_json(j, "cfg"); }, {"control_injection", "sideways"}));
}
