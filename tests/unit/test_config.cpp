// diffusers config.json -> TransformerConfig: defaults, validation, error messages that name the key.
#include <gtest/gtest.h>

#include <fstream>

#include "sprint/config.h"
#include "sprint/log.h"
#include "test_util.h"

using namespace sprint;
using nlohmann::json;
using sprint::test::throws_with;

namespace {
json sprint06b() {  // the released Sana_Sprint_0.6B_1024px transformer/config.json (diffusers 0.33)
  return json::parse(R"({
    "_class_name": "SanaTransformer2DModel", "_diffusers_version": "0.33.0.dev0",
    "attention_bias": false, "attention_head_dim": 32, "caption_channels": 2304, "cross_attention_dim": 1152,
    "cross_attention_head_dim": 72, "dropout": 0.0, "guidance_embeds": true, "guidance_embeds_scale": 0.1,
    "in_channels": 32, "interpolation_scale": null, "mlp_ratio": 2.5, "norm_elementwise_affine": false,
    "norm_eps": 1e-06, "num_attention_heads": 36, "num_cross_attention_heads": 16, "num_layers": 28,
    "out_channels": 32, "patch_size": 1, "qk_norm": "rms_norm_across_heads", "sample_size": 32,
    "timestep_scale": 1.0})");
}
}  // namespace

TEST(TransformerConfig, ParsesReleasedSprintConfig) {
  auto c = TransformerConfig::from_json(sprint06b(), "config.json");
  EXPECT_EQ(c.inner_dim(), 1152);
  EXPECT_EQ(c.cross_inner_dim(), 1152);
  EXPECT_EQ(c.ff_hidden(), 2880);
  EXPECT_EQ(c.num_layers, 28);
  EXPECT_TRUE(c.guidance_embeds);
  EXPECT_EQ(c.qk_norm, "rms_norm_across_heads");
  EXPECT_FALSE(c.interpolation_scale.has_value());
  auto ref = TransformerConfig::sprint_600m();
  EXPECT_EQ(ref.to_json().dump(), c.to_json().dump());
  EXPECT_EQ(TransformerConfig::sprint_1600m().ff_hidden(), 5600);
}

TEST(TransformerConfig, RoundTripsThroughJson) {
  auto c = TransformerConfig::sprint_1600m();
  auto back = TransformerConfig::from_json(c.to_json(), "roundtrip");
  EXPECT_EQ(back.to_json().dump(), c.to_json().dump());
}

// Every key is honoured or refused (a misspelt key must not be silently ignored); diffusers' bookkeeping keys
// (_class_name, _diffusers_version) and dropout, which inference ignores, are fine.
TEST(TransformerConfig, UnknownKeysAreRefusedByName) {
  auto j = sprint06b();
  j["_diffusers_version"] = "0.42.1";
  j["dropout"] = 0.0;
  EXPECT_NO_THROW(TransformerConfig::from_json(j, "config.json"));
  j["some_future_option"] = 3;
  EXPECT_TRUE(throws_with([&] { TransformerConfig::from_json(j, "config.json"); },
                          {"config.json", "unknown key 'some_future_option'"}));
}

TEST(TransformerConfig, MissingRequiredKeyNamesIt) {
  for (const char* key : {"num_layers", "num_attention_heads", "attention_head_dim", "caption_channels", "in_channels"}) {
    auto j = sprint06b();
    j.erase(key);
    EXPECT_TRUE(throws_with([&] { TransformerConfig::from_json(j, "my/config.json"); },
                            {"my/config.json", key, "missing"}))
        << key;
  }
}

TEST(TransformerConfig, ImpossibleValuesAreRejectedWithTheKey) {
  struct Bad { const char* key; json value; const char* why; };
  std::vector<Bad> cases = {
      {"num_layers", 0, "num_layers"},
      {"num_attention_heads", -4, "num_attention_heads"},
      {"attention_head_dim", "32", "expected an integer"},
      {"mlp_ratio", 0.0, "mlp_ratio"},
      {"norm_eps", -1.0, "norm_eps"},
      {"cross_attention_dim", 999, "cross_attention_dim"},
      {"qk_norm", "layer_norm", "qk_norm"},
      {"interpolation_scale", 1.0, "interpolation_scale"},
      {"guidance_embeds", 1, "expected true or false"},
      {"patch_size", 2.5, "expected an integer"},
  };
  for (const auto& b : cases) {
    auto j = sprint06b();
    j[b.key] = b.value;
    EXPECT_TRUE(throws_with([&] { TransformerConfig::from_json(j, "config.json"); }, {b.key, b.why})) << b.key;
  }
}

TEST(TransformerConfig, NotAnObjectOrNotJson) {
  EXPECT_TRUE(throws_with([] { TransformerConfig::from_json(json::array(), "cfg"); }, {"cfg", "object"}));
  auto dir = sprint::test::temp_dir("config");
  std::ofstream(dir + "/config.json") << "{ \"num_layers\": 3, oops }";
  EXPECT_TRUE(throws_with([&] { TransformerConfig::load(dir); }, {"config.json", "not valid JSON"}));
  EXPECT_TRUE(throws_with([&] { TransformerConfig::load(dir + "/nope"); }, {"nope", "cannot open"}));
}
