// VaeConfig parsing/validation and AutoencoderDC weight binding errors.
#include <gtest/gtest.h>

#include "sprint/loader.h"
#include "sprint/vae.h"
#include "test_util.h"

using namespace sprint;
using nlohmann::json;
using sprint::test::throws_with;

namespace {
// The released dc-ae-f32c32-sana-1.1-diffusers vae/config.json, as diffusers writes it.
json released() {
  return json::parse(R"({
    "_class_name": "AutoencoderDC", "_diffusers_version": "0.32.0.dev0",
    "attention_head_dim": 32, "decoder_act_fns": "silu",
    "decoder_block_out_channels": [128, 256, 512, 512, 1024, 1024],
    "decoder_block_types": ["ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock", "EfficientViTBlock", "EfficientViTBlock"],
    "decoder_layers_per_block": [3, 3, 3, 3, 3, 3], "decoder_norm_types": "rms_norm",
    "decoder_qkv_multiscales": [[], [], [], [5], [5], [5]], "downsample_block_type": "Conv",
    "encoder_block_out_channels": [128, 256, 512, 512, 1024, 1024],
    "encoder_block_types": ["ResBlock", "ResBlock", "ResBlock", "EfficientViTBlock", "EfficientViTBlock", "EfficientViTBlock"],
    "encoder_layers_per_block": [2, 2, 2, 3, 3, 3], "encoder_qkv_multiscales": [[], [], [], [5], [5], [5]],
    "in_channels": 3, "latent_channels": 32, "scaling_factor": 0.41407, "upsample_block_type": "interpolate"
  })");
}

json tiny() {
  return json::parse(R"({
    "in_channels": 3, "latent_channels": 4, "attention_head_dim": 8,
    "encoder_block_types": ["ResBlock", "EfficientViTBlock"], "decoder_block_types": "ResBlock",
    "encoder_block_out_channels": [8, 16], "decoder_block_out_channels": [8, 16],
    "encoder_layers_per_block": [1, 1], "decoder_layers_per_block": [1, 1],
    "encoder_qkv_multiscales": [[], [5]], "decoder_qkv_multiscales": [[], []],
    "upsample_block_type": "interpolate", "downsample_block_type": "Conv"
  })");
}

// Expects from_json(j with key = value) to throw naming the key and `why`.
::testing::AssertionResult rejects(json j, const std::string& key, const json& value, const std::string& why) {
  j[key] = value;
  return throws_with([&] { VaeConfig::from_json(j, "vae/config.json"); }, {"vae/config.json", "'" + key + "'", why});
}
}  // namespace

TEST(VaeConfig, ParsesReleasedConfigLikeTheBuiltIn) {
  auto c = VaeConfig::from_json(released(), "released");
  auto d = VaeConfig::dc_ae_f32c32();
  EXPECT_EQ(c.encoder_block_types, d.encoder_block_types);
  EXPECT_EQ(c.decoder_block_types, d.decoder_block_types);
  EXPECT_EQ(c.encoder_block_out_channels, d.encoder_block_out_channels);
  EXPECT_EQ(c.encoder_layers_per_block, d.encoder_layers_per_block);
  EXPECT_EQ(c.decoder_layers_per_block, d.decoder_layers_per_block);
  EXPECT_EQ(c.encoder_qkv_multiscales, d.encoder_qkv_multiscales);
  EXPECT_EQ(c.decoder_norm_types, d.decoder_norm_types);  // "rms_norm" expanded to 6 entries
  EXPECT_EQ(c.decoder_act_fns, d.decoder_act_fns);
  EXPECT_EQ(c.upsample_block_type, "interpolate");
  EXPECT_EQ(c.downsample_block_type, "Conv");
  EXPECT_TRUE(c.encoder_out_shortcut && c.decoder_in_shortcut);  // class defaults
  EXPECT_EQ(c.decoder_conv_act_fn, "relu");
  EXPECT_DOUBLE_EQ(c.scaling_factor, 0.41407);
  EXPECT_EQ(c.spatial_compression(), 32);
}

TEST(VaeConfig, StringOrListPerStage) {
  auto c = VaeConfig::from_json(tiny(), "tiny");
  EXPECT_EQ(c.decoder_block_types, (std::vector<std::string>{"ResBlock", "ResBlock"}));
  EXPECT_EQ(c.decoder_act_fns, (std::vector<std::string>{"silu", "silu"}));
  auto j = tiny();
  j["decoder_act_fns"] = {"relu", "gelu"};
  EXPECT_EQ(VaeConfig::from_json(j, "tiny").decoder_act_fns, (std::vector<std::string>{"relu", "gelu"}));
}

TEST(VaeConfig, BadValuesAreNamedByKey) {
  auto j = tiny();
  EXPECT_TRUE(rejects(j, "encoder_block_types", json::array({"ResBlock"}), "one entry per stage"));
  EXPECT_TRUE(rejects(j, "decoder_block_types", "Attention", "not ResBlock or EfficientViTBlock"));
  EXPECT_TRUE(rejects(j, "downsample_block_type", "avgpool", "supported"));
  EXPECT_TRUE(rejects(j, "upsample_block_type", "bilinear", "supported"));
  EXPECT_TRUE(rejects(j, "decoder_norm_types", "batch_norm", "only \"rms_norm\""));
  EXPECT_TRUE(rejects(j, "decoder_act_fns", "relu6", "supported"));
  EXPECT_TRUE(rejects(j, "decoder_conv_act_fn", "tanh", "supported"));
  EXPECT_TRUE(rejects(j, "encoder_layers_per_block", {1, 0}, "stages without layers"));
  EXPECT_TRUE(rejects(j, "decoder_layers_per_block", json::array({1}), "one entry per stage"));
  EXPECT_TRUE(rejects(j, "encoder_qkv_multiscales", json::array({json::array(), json::array({4})}), "odd"));
  EXPECT_TRUE(rejects(j, "latent_channels", 0, "must be > 0"));
  EXPECT_TRUE(rejects(j, "decoder_block_out_channels", {8, 40}, "upsample shortcut"));
  EXPECT_TRUE(rejects(j, "encoder_block_out_channels", {2, 16}, "downsample shortcut"));
  // Channel/head mismatches are reported at the stage's channel list, which names the stage.
  auto k = j;
  k["attention_head_dim"] = 6;
  EXPECT_TRUE(throws_with([&] { VaeConfig::from_json(k, "c"); },
                          {"'encoder_block_out_channels'", "stage 1", "not a multiple of attention_head_dim 6"}));
  k = j;
  k["latent_channels"] = 3;
  EXPECT_TRUE(throws_with([&] { VaeConfig::from_json(k, "c"); }, {"'encoder_block_out_channels'", "multiple of latent_channels 3"}));
  EXPECT_TRUE(rejects(j, "scaling_factor", -1.0, "must be > 0"));
  EXPECT_TRUE(rejects(j, "encoder_out_shortcut", "yes", "expected true or false"));
  j.erase("latent_channels");
  EXPECT_TRUE(throws_with([&] { VaeConfig::from_json(j, "vae/config.json"); }, {"'latent_channels' is missing"}));
}

TEST(VaeConfig, WrongWeightShapeIsNamedByTensor) {
  auto c = VaeConfig::from_json(tiny(), "tiny");
  AutoencoderDC a(c), b(c);
  safetensors::StateDict sd;
  for (const auto& p : a->named_parameters()) sd[p.key()] = p.value().detach().clone();
  const std::string key = "encoder.down_blocks.1.0.attn.to_qkv_multiscale.0.proj_in.weight";
  ASSERT_TRUE(sd.count(key));
  EXPECT_EQ(sd.at(key).sizes(), torch::IntArrayRef({48, 1, 5, 5}));
  sd[key] = torch::zeros({48, 1, 3, 3});
  sd.erase("decoder.norm_out.bias");
  auto path = sprint::test::temp_dir("vae") + "/diffusion_pytorch_model.safetensors";
  safetensors::save(path, sd);
  EXPECT_TRUE(throws_with([&] { load_state_dict(*b, safetensors::Archive::open(path), {}); },
                          {key, "[48, 1, 5, 5]", "[48, 1, 3, 3]", "decoder.norm_out.bias"}));
}

TEST(VaeConfig, LoadVaeNamesTheFolder) {
  auto dir = sprint::test::temp_dir("vae-missing");
  EXPECT_TRUE(throws_with([&] { load_vae(dir); }, {"loading vae from '" + dir + "'", "config.json"}));
}
