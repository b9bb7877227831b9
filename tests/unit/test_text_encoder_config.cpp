// Gemma2Config parsing/validation and text-encoder checkpoint binding (prefix detection, shards, shape errors).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/safetensors.h"
#include "sprint/text_encoder.h"
#include "test_util.h"

using namespace sprint;
using nlohmann::json;
using sprint::test::fixture_path;
using sprint::test::throws_with;
namespace fs = std::filesystem;

namespace {
// text_encoder/config.json of the SANA-Sprint diffusers releases (saved by transformers 4.x: top-level rope_theta,
// no layer_types, legacy hidden_act next to hidden_activation).
json released() {
  return json::parse(R"({
    "_name_or_path": "google/gemma-2-2b-it", "architectures": ["Gemma2Model"], "attention_bias": false,
    "attention_dropout": 0.0, "attn_logit_softcapping": 50.0, "bos_token_id": 2, "cache_implementation": "hybrid",
    "eos_token_id": [1, 107], "final_logit_softcapping": 30.0, "head_dim": 256, "hidden_act": "gelu_pytorch_tanh",
    "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304, "initializer_range": 0.02,
    "intermediate_size": 9216, "max_position_embeddings": 8192, "model_type": "gemma2", "num_attention_heads": 8,
    "num_hidden_layers": 26, "num_key_value_heads": 4, "pad_token_id": 0, "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-06, "rope_theta": 10000.0, "sliding_window": 4096, "torch_dtype": "bfloat16",
    "transformers_version": "4.47.0", "use_cache": true, "vocab_size": 256000})");
}

std::string tiny_dir() { return fixture_path("text_encoder/tiny_gemma2/text_encoder"); }

// A copy of the tiny fixture folder whose weights are `sd` (config.json unchanged).
std::string write_model(const safetensors::StateDict& sd, const std::string& tag) {
  auto dir = sprint::test::temp_dir(tag);
  fs::copy_file(tiny_dir() + "/config.json", dir + "/config.json");
  safetensors::save(dir + "/model.safetensors", sd);
  return dir;
}

void expect_same_weights(Gemma2ModelImpl& m, const safetensors::StateDict& ref, const std::string& prefix) {
  for (const auto& p : m.named_parameters()) EXPECT_TRUE(torch::equal(p.value(), ref.at(prefix + p.key()))) << p.key();
}
}  // namespace

TEST(TextEncoderConfig, ParsesReleasedConfig) {
  auto c = Gemma2Config::from_json(released(), "config.json");
  auto ref = Gemma2Config::gemma2_2b();
  EXPECT_EQ(c.hidden_size, ref.hidden_size);
  EXPECT_EQ(c.intermediate_size, 9216);
  EXPECT_EQ(c.num_hidden_layers, 26);
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.attn_logit_softcapping, 50.0);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{1, 107}));
  EXPECT_EQ(c.pad_token_id, 0);
  EXPECT_EQ(c.bos_token_id, 2);
  // No layer_types in the file: transformers 5.x alternates, sliding first.
  ASSERT_EQ(c.layer_types.size(), 26u);
  EXPECT_TRUE(c.is_sliding(0));
  EXPECT_FALSE(c.is_sliding(1));
  EXPECT_TRUE(c.is_sliding(24));
  EXPECT_FALSE(c.is_sliding(25));
  EXPECT_EQ(c.layer_types, ref.layer_types);
}

TEST(TextEncoderConfig, RopeThetaFromRopeParametersWins) {
  auto j = released();
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 500.0}};
  EXPECT_EQ(Gemma2Config::from_json(j, "config.json").rope_theta, 500.0);
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "default"}};
  EXPECT_EQ(Gemma2Config::from_json(j, "config.json").rope_theta, 10000.0);
  j["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 2.0}};
  EXPECT_TRUE(throws_with([&] { Gemma2Config::from_json(j, "config.json"); },
                          {"config.json", "'rope_parameters'", "linear", "not supported"}));
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", "big"}};
  EXPECT_TRUE(throws_with([&] { Gemma2Config::from_json(j, "config.json"); }, {"'rope_theta'", "expected a number"}));
}

TEST(TextEncoderConfig, NullMeansOffAbsentMeansDefault) {
  auto j = released();
  j["attn_logit_softcapping"] = nullptr;
  j.erase("sliding_window");
  j["layer_types"] = nullptr;
  auto c = Gemma2Config::from_json(j, "config.json");
  EXPECT_FALSE(c.attn_logit_softcapping.has_value());
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.layer_types.size(), 26u);
  j["sliding_window"] = nullptr;  // sliding layers without a window
  EXPECT_TRUE(throws_with([&] { Gemma2Config::from_json(j, "config.json"); }, {"'sliding_window'", "required"}));
  j["layer_types"] = std::vector<std::string>(26, "full_attention");  // ... is fine when no layer slides
  EXPECT_NO_THROW(Gemma2Config::from_json(j, "config.json"));
}

TEST(TextEncoderConfig, ErrorsNameTheKey) {
  struct Case {
    const char* key;
    json value;
    std::vector<std::string> needles;
  };
  const std::vector<Case> cases = {
      {"hidden_size", nullptr, {"required key 'hidden_size' is missing"}},
      {"num_hidden_layers", 0, {"'num_hidden_layers' = 0", "> 0"}},
      {"head_dim", 255, {"'head_dim' = 255", "even"}},
      {"head_dim", "256", {"'head_dim'", "expected an integer"}},
      {"num_key_value_heads", 3, {"'num_key_value_heads' = 3", "divide"}},
      {"hidden_size", 2305, {"'hidden_size' = 2305", "multiple of num_attention_heads"}},
      {"hidden_activation", "gelu", {"'hidden_activation'", "gelu_pytorch_tanh"}},
      {"rms_norm_eps", 0.0, {"'rms_norm_eps' = 0"}},
      {"query_pre_attn_scalar", -1, {"'query_pre_attn_scalar' = -1"}},
      {"attn_logit_softcapping", 0.0, {"'attn_logit_softcapping' = 0"}},
      {"sliding_window", 0, {"'sliding_window' = 0"}},
      {"layer_types", json::array({"sliding_attention"}), {"'layer_types'", "num_hidden_layers = 26"}},
      {"eos_token_id", "one", {"'eos_token_id'", "integer"}},
      {"bos_token_id", 256000, {"'bos_token_id' = 256000", "vocab_size"}},
      {"use_bidirectional_attention", true, {"'use_bidirectional_attention'", "not supported"}},
      {"rope_scaling", json{{"type", "dynamic"}, {"factor", 2.0}}, {"'rope_scaling'", "dynamic"}},
  };
  for (const auto& tc : cases) {
    auto j = released();
    if (tc.value.is_null() && std::string(tc.key) == "hidden_size") j.erase(tc.key);
    else j[tc.key] = tc.value;
    std::vector<std::string> needles = tc.needles;
    needles.push_back("my/config.json");
    bool ok = false;
    try {
      Gemma2Config::from_json(j, "my/config.json");
    } catch (const Error& e) {
      std::string msg = e.what();
      ok = true;
      for (const auto& n : needles) {
        if (msg.find(n) == std::string::npos) {
          ADD_FAILURE() << tc.key << ": message lacks '" << n << "': " << msg;
          ok = false;
        }
      }
    }
    EXPECT_TRUE(ok) << tc.key << " = " << tc.value.dump() << " was accepted or threw the wrong type";
  }
  // A layer type with a typo.
  auto j = released();
  auto types = Gemma2Config::default_layer_types(26);
  types[5] = "global_attention";
  j["layer_types"] = types;
  EXPECT_TRUE(throws_with([&] { Gemma2Config::from_json(j, "c.json"); }, {"'layer_types'", "[5]", "global_attention"}));
}

TEST(TextEncoderConfig, LoadNamesTheFile) {
  auto dir = sprint::test::temp_dir("te-config");
  std::ofstream(dir + "/config.json") << R"({"hidden_size": 32)";
  EXPECT_TRUE(throws_with([&] { load_text_encoder(dir); }, {"loading text encoder", dir + "/config.json", "JSON"}));
}

TEST(TextEncoderConfig, ModuleNamesAreCheckpointKeys) {
  Gemma2Model m(Gemma2Config::load(tiny_dir()));
  auto sd = safetensors::load_all(tiny_dir() + "/model.safetensors");
  std::set<std::string> names;
  for (const auto& p : m->named_parameters()) {
    names.insert(p.key());
    ASSERT_TRUE(sd.count(p.key())) << p.key();
    EXPECT_EQ(p.value().sizes(), sd.at(p.key()).sizes()) << p.key();
  }
  EXPECT_EQ(names.size(), sd.size());
  EXPECT_TRUE(names.count("layers.2.self_attn.k_proj.weight"));
  EXPECT_TRUE(names.count("layers.0.post_feedforward_layernorm.weight"));
  EXPECT_TRUE(names.count("norm.weight"));
  EXPECT_FALSE(names.count("layers.0.self_attn.q_proj.bias"));  // attention_bias = false
}

TEST(TextEncoderConfig, CheckpointWithModelPrefixLoads) {
  // As saved from Gemma2ForCausalLM: every key under "model.", plus an lm_head outside the encoder.
  auto sd = safetensors::load_all(tiny_dir() + "/model.safetensors");
  safetensors::StateDict prefixed;
  for (const auto& [k, v] : sd) prefixed["model." + k] = v;
  prefixed["lm_head.weight"] = sd.at("embed_tokens.weight");
  auto model = load_text_encoder(write_model(prefixed, "te-prefix"));
  expect_same_weights(*model, sd, "");
  // Without the prefix it loads too (the fixture itself), and the result is the same function.
  auto plain = load_text_encoder(tiny_dir());
  torch::NoGradGuard ng;
  auto ids = torch::tensor({{2, 5, 9, 11}}, torch::kLong);
  EXPECT_TRUE(torch::equal(model->forward(ids), plain->forward(ids)));
}

TEST(TextEncoderConfig, ShardedCheckpointLoads) {
  auto sd = safetensors::load_all(tiny_dir() + "/model.safetensors");
  auto dir = sprint::test::temp_dir("te-shards");
  fs::copy_file(tiny_dir() + "/config.json", dir + "/config.json");
  safetensors::StateDict a, b;
  json index = {{"metadata", json::object()}, {"weight_map", json::object()}};
  for (const auto& [k, v] : sd) {
    bool first = k.rfind("layers.2.", 0) != 0 && k != "norm.weight";
    (first ? a : b)[k] = v;
    index["weight_map"][k] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  safetensors::save(dir + "/model-00001-of-00002.safetensors", a);
  safetensors::save(dir + "/model-00002-of-00002.safetensors", b);
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump(2);
  auto model = load_text_encoder(dir);
  expect_same_weights(*model, sd, "");
}

TEST(TextEncoderConfig, WrongShapeIsReportedWithNameExpectedAndGot) {
  auto sd = safetensors::load_all(tiny_dir() + "/model.safetensors");
  sd["layers.1.self_attn.k_proj.weight"] = torch::zeros({32, 32});
  auto dir = write_model(sd, "te-shape");
  EXPECT_TRUE(throws_with([&] { load_text_encoder(dir); },
                          {"loading text encoder", "tensor 'layers.1.self_attn.k_proj.weight': expected [16, 32], got [32, 32]"}));
  // The same with the prefix: the message names the key as stored.
  safetensors::StateDict prefixed;
  for (const auto& [k, v] : sd) prefixed["model." + k] = v;
  EXPECT_TRUE(throws_with([&] { load_text_encoder(write_model(prefixed, "te-shape-prefix")); },
                          {"tensor 'model.layers.1.self_attn.k_proj.weight': expected [16, 32], got [32, 32]"}));
}

TEST(TextEncoderConfig, MissingTensorsAndForeignCheckpoints) {
  auto sd = safetensors::load_all(tiny_dir() + "/model.safetensors");
  sd.erase("layers.0.pre_feedforward_layernorm.weight");
  EXPECT_TRUE(throws_with([&] { load_text_encoder(write_model(sd, "te-missing")); },
                          {"tensor 'layers.0.pre_feedforward_layernorm.weight' is missing"}));
  safetensors::StateDict foreign = {{"transformer_blocks.0.attn1.to_q.weight", torch::zeros({2, 2})}};
  EXPECT_TRUE(throws_with([&] { load_text_encoder(write_model(foreign, "te-foreign")); },
                          {"embed_tokens.weight", "not a Gemma-2 checkpoint"}));
}

TEST(TextEncoderConfig, ForwardRejectsBadInputs) {
  auto model = load_text_encoder(tiny_dir());
  torch::NoGradGuard ng;
  EXPECT_TRUE(throws_with([&] { model->forward(torch::tensor({{2, 300}}, torch::kLong)); }, {"token id 300", "[0, 300)"}));
  EXPECT_TRUE(throws_with([&] { model->forward(torch::tensor({2, 5}, torch::kLong)); }, {"input_ids must be (B, L)"}));
  EXPECT_TRUE(throws_with([&] { model->forward(torch::tensor({{2, 5}}, torch::kLong), torch::ones({1, 3})); },
                          {"attention_mask must be (B, L)"}));
}

TEST(TextEncoderConfig, SanaPaddedLength) {
  EXPECT_EQ(sana_padded_length(0), 300);
  EXPECT_EQ(sana_padded_length(120), 418);
  EXPECT_EQ(sana_padded_length(120, 8), 126);
}
