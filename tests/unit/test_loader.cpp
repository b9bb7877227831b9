// load_state_dict: binds by exact key and reports name, expected and actual shape.
#include <gtest/gtest.h>

#include <limits>

#include "sprint/loader.h"
#include "sprint/transformer.h"
#include "test_util.h"

using namespace sprint;
using sprint::test::throws_with;

namespace {
TransformerConfig tiny() { return sprint::test::tiny_sprint_config(); }

safetensors::StateDict state_of(torch::nn::Module& m) {
  safetensors::StateDict sd;
  for (const auto& p : m.named_parameters()) sd[p.key()] = p.value().detach().clone();
  return sd;
}

std::string write(const safetensors::StateDict& sd) {
  auto path = sprint::test::temp_dir("loader") + "/model.safetensors";
  safetensors::save(path, sd);
  return path;
}
}  // namespace

TEST(Loader, ModuleNamesAreDiffusersKeys) {
  SanaTransformer2DModel m(tiny());
  auto sd = state_of(*m);
  for (const char* k : {"patch_embed.proj.weight", "time_embed.timestep_embedder.linear_1.weight",
                        "time_embed.guidance_embedder.linear_2.bias", "time_embed.linear.weight",
                        "caption_projection.linear_1.weight", "caption_norm.weight",
                        "transformer_blocks.1.scale_shift_table", "transformer_blocks.0.attn1.to_q.weight",
                        "transformer_blocks.0.attn1.norm_q.weight", "transformer_blocks.0.attn1.to_out.0.bias",
                        "transformer_blocks.0.attn2.to_k.bias", "transformer_blocks.0.ff.conv_inverted.weight",
                        "transformer_blocks.0.ff.conv_depth.bias", "transformer_blocks.0.ff.conv_point.weight",
                        "scale_shift_table", "proj_out.weight"})
    EXPECT_TRUE(sd.count(k)) << k;
  EXPECT_FALSE(sd.count("transformer_blocks.0.attn1.to_q.bias"));   // attention_bias = false
  EXPECT_FALSE(sd.count("transformer_blocks.0.ff.conv_point.bias"));  // GLUMBConv point conv has no bias
  EXPECT_EQ(sd.at("transformer_blocks.0.ff.conv_inverted.weight").sizes(), torch::IntArrayRef({40, 8, 1, 1}));
}

TEST(Loader, RoundTripLoadsEveryTensor) {
  SanaTransformer2DModel a(tiny()), b(tiny());
  auto sd = state_of(*a);
  auto report = load_state_dict(*b, safetensors::Archive::open(write(sd)), {});
  EXPECT_EQ(report.loaded.size(), sd.size());
  for (const auto& p : b->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), sd.at(p.key()))) << p.key();
}

TEST(Loader, ShapeMismatchSaysNameExpectedAndGot) {
  SanaTransformer2DModel m(tiny());
  auto sd = state_of(*m);
  sd["transformer_blocks.1.attn1.to_q.weight"] = torch::zeros({6, 8});
  auto path = write(sd);
  EXPECT_TRUE(throws_with([&] { load_state_dict(*m, safetensors::Archive::open(path), {}); },
                          {path, "tensor 'transformer_blocks.1.attn1.to_q.weight': expected [8, 8], got [6, 8]"}));
}

TEST(Loader, NonFiniteWeightsAreRefusedByName) {
  // NaN or Inf weights would make every picture black without a word; each such tensor is named with its count.
  SanaTransformer2DModel m(tiny());
  auto sd = state_of(*m);
  auto w = sd["transformer_blocks.0.attn1.to_k.weight"].clone();
  w[0][0] = std::numeric_limits<float>::quiet_NaN();
  w[1][2] = std::numeric_limits<float>::infinity();
  sd["transformer_blocks.0.attn1.to_k.weight"] = w;
  auto b = sd["proj_out.bias"].clone();
  b[0] = -std::numeric_limits<float>::infinity();
  sd["proj_out.bias"] = b;
  auto path = write(sd);
  EXPECT_TRUE(throws_with([&] { load_state_dict(*m, safetensors::Archive::open(path), {}); },
                          {path, "2 problems", "tensor 'transformer_blocks.0.attn1.to_k.weight' holds 2 NaN or Inf values",
                           "tensor 'proj_out.bias' holds 1 NaN or Inf value"}));
}

TEST(Loader, MissingAndUnexpectedKeysAreAllListed) {
  SanaTransformer2DModel m(tiny());
  auto sd = state_of(*m);
  sd.erase("proj_out.bias");
  sd.erase("caption_norm.weight");
  sd["logvar_linear.weight"] = torch::zeros({1, 8});
  auto path = write(sd);
  EXPECT_TRUE(throws_with([&] { load_state_dict(*m, safetensors::Archive::open(path), {}); },
                          {"3 problems", "'proj_out.bias' is missing", "'caption_norm.weight' is missing",
                           "'logvar_linear.weight' is not used"}));
  // Non-strict: unexpected keys are tolerated and reported, missing ones are still errors.
  LoadOptions lenient;
  lenient.strict = false;
  EXPECT_TRUE(throws_with([&] { load_state_dict(*m, safetensors::Archive::open(path), lenient); },
                          {"2 problems", "proj_out.bias"}));
  lenient.optional = {"proj_out.bias", "caption_norm.weight"};
  auto report = load_state_dict(*m, safetensors::Archive::open(path), lenient);
  EXPECT_EQ(report.unexpected, std::vector<std::string>{"logvar_linear.weight"});
  EXPECT_EQ(report.missing_optional.size(), 2u);
}

TEST(Loader, IntegerDtypeForAFloatParameterIsRejected) {
  SanaTransformer2DModel m(tiny());
  auto sd = state_of(*m);
  sd["scale_shift_table"] = torch::zeros({2, 8}, torch::kInt64);
  auto path = write(sd);
  EXPECT_TRUE(throws_with([&] { load_state_dict(*m, safetensors::Archive::open(path), {}); },
                          {"tensor 'scale_shift_table': expected a floating-point dtype, got I64"}));
}

TEST(Loader, CastsToTheRunDtype) {
  SanaTransformer2DModel a(tiny()), b(tiny());
  safetensors::StateDict sd;
  for (const auto& p : a->named_parameters()) sd[p.key()] = p.value().detach().to(torch::kBFloat16);
  LoadOptions o;
  o.dtype = torch::kFloat32;
  load_state_dict(*b, safetensors::Archive::open(write(sd)), o);
  for (const auto& p : b->named_parameters()) {
    EXPECT_EQ(p.value().scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(p.value(), sd.at(p.key()).to(torch::kFloat32))) << p.key();
  }
  o.dtype = torch::kBFloat16;
  load_state_dict(*b, safetensors::Archive::open(write(sd)), o);
  for (const auto& p : b->named_parameters()) EXPECT_EQ(p.value().scalar_type(), torch::kBFloat16) << p.key();
}

TEST(Loader, ConfigThatDisagreesWithWeightsIsCaught) {
  // A checkpoint of a 2-layer model loaded into a 3-layer config: the missing block is named.
  SanaTransformer2DModel small(tiny());
  auto cfg = tiny();
  cfg.num_layers = 3;
  SanaTransformer2DModel big(cfg);
  auto path = write(state_of(*small));
  EXPECT_TRUE(throws_with([&] { load_state_dict(*big, safetensors::Archive::open(path), {}); },
                          {"transformer_blocks.2.attn1.to_q.weight' is missing"}));
  EXPECT_EQ(count_numbered_children(safetensors::Archive::open(path), "transformer_blocks."), 2);
  EXPECT_TRUE(throws_with([&] { check_block_count(safetensors::Archive::open(path), "transformer_blocks.", 3, "cfg.json", "num_layers"); },
                          {"cfg.json: 'num_layers' = 3 but", "holds 2 transformer_blocks (transformer_blocks.0-1)"}));
}
