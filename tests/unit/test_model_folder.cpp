// Bad model folders: each defect gets one clear message that names the file (and the tensor or key).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "sprint/atomic_file.h"
#include "sprint/error.h"
#include "sprint/model_folder.h"
#include "sprint/pipeline.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace sprint;
using sprint::test::throws_with;

namespace {
// A writable copy of the tiny complete pipeline fixture.
std::string copy_model() {
  auto dir = sprint::test::temp_dir("model") + "/tiny";
  fs::copy(sprint::test::fixture_path("pipeline/tiny_pipeline"), dir, fs::copy_options::recursive);
  return dir;
}

safetensors::StateDict read_all(const std::string& file) { return safetensors::load_all(file); }
}  // namespace

TEST(ModelFolder, TheFixtureLoads) { EXPECT_NO_THROW(Pipeline::load(copy_model())); }

TEST(ModelFolder, MissingFolderOrSubfolderIsNamed) {
  EXPECT_TRUE(throws_with([] { Pipeline::load("/definitely/not/here"); }, {"/definitely/not/here", "does not exist"}));
  for (const char* sub : {"transformer", "vae", "text_encoder", "tokenizer"}) {
    auto dir = copy_model();
    sprint::remove_tree((fs::path(dir) / sub).string());
    EXPECT_TRUE(throws_with([&] { Pipeline::load(dir); }, {dir, std::string("no ") + sub + "/ subfolder"})) << sub;
  }
}

TEST(ModelFolder, WrongDtypeIsNamed) {
  auto dir = copy_model();
  auto file = dir + "/transformer/diffusion_pytorch_model.safetensors";
  auto sd = read_all(file);
  sd["proj_out.bias"] = sd["proj_out.bias"].to(torch::kInt32);
  safetensors::save(file, sd);
  EXPECT_TRUE(throws_with([&] { Pipeline::load(dir); },
                          {"transformer", "tensor 'proj_out.bias': expected a floating-point dtype, got I32"}));
}

TEST(ModelFolder, ShapeMismatchIsNamed) {
  auto dir = copy_model();
  auto file = dir + "/vae/diffusion_pytorch_model.safetensors";
  auto sd = read_all(file);
  sd["decoder.conv_out.weight"] = torch::zeros({3, 8, 1, 1});
  safetensors::save(file, sd);
  EXPECT_TRUE(throws_with([&] { Pipeline::load(dir); },
                          {"vae", "tensor 'decoder.conv_out.weight': expected [3, 8, 3, 3], got [3, 8, 1, 1]"}));
}

TEST(ModelFolder, TruncatedShardIsNamed) {
  auto dir = copy_model();
  auto file = dir + "/text_encoder/model.safetensors";
  ASSERT_TRUE(fs::exists(file));
  fs::resize_file(file, fs::file_size(file) / 2);
  EXPECT_TRUE(throws_with([&] { Pipeline::load(dir); }, {"text_encoder", "model.safetensors"}));
}

TEST(ModelFolder, ConfigThatDisagreesWithWeightsIsNamed) {
  auto dir = copy_model();
  auto cfg_path = dir + "/transformer/config.json";
  auto j = read_json_file(cfg_path);
  j["num_layers"] = 4;  // the checkpoint has 3 blocks
  std::ofstream(cfg_path) << j.dump(2);
  EXPECT_TRUE(throws_with([&] { Pipeline::load(dir); }, {"transformer/config.json", "'num_layers' = 4", "holds 3 transformer_blocks (transformer_blocks.0-2)"}));
}

TEST(ModelFolder, ComponentsThatDoNotFitTogetherAreNamed) {
  auto dir = copy_model();
  // A text encoder of another width: its own config and weights agree, but the transformer expects 24 channels.
  auto cfg_path = dir + "/transformer/config.json";
  auto j = read_json_file(cfg_path);
  j["caption_channels"] = 32;
  std::ofstream(cfg_path) << j.dump(2);
  auto file = dir + "/transformer/diffusion_pytorch_model.safetensors";
  auto sd = read_all(file);
  sd["caption_projection.linear_1.weight"] = torch::zeros({16, 32});
  safetensors::save(file, sd);
  EXPECT_TRUE(throws_with([&] { Pipeline::load(dir); }, {"caption_channels = 32", "hidden_size = 24"}));
}

TEST(ModelFolder, CorruptConfigIsNamed) {
  auto dir = copy_model();
  std::ofstream(dir + "/vae/config.json") << "{ not json";
  EXPECT_TRUE(throws_with([&] { Pipeline::load(dir); }, {"vae/config.json", "not valid JSON"}));
}

// The reader and the writer hold the same components: a folder read, written and read again has the same tensors.
TEST(ModelFolder, WriterAndReaderRoundTrip) {
  const auto src = copy_model();
  auto m = read_model_folder(src);
  ASSERT_TRUE(m.controlnet);
  ModelFolderParts parts;
  parts.transformer = m.transformer.get();
  parts.controlnet = m.controlnet.get();
  parts.vae = m.vae.get();
  parts.text_encoder = m.text_encoder.get();
  parts.tokenizer_model = src + "/tokenizer/tokenizer.model";
  parts.prompt_options = m.prompt_options;
  const auto dst = sprint::test::temp_dir("model-rt") + "/tiny";
  write_model_folder(dst, parts);
  auto back = read_model_folder(dst);
  const std::vector<std::pair<torch::nn::Module*, torch::nn::Module*>> modules = {
      {m.transformer.get(), back.transformer.get()},
      {m.controlnet.get(), back.controlnet.get()},
      {m.vae.get(), back.vae.get()},
      {m.text_encoder.get(), back.text_encoder.get()}};
  for (const auto& [a, b] : modules) {
    const auto sa = module_state_dict(*a), sb = module_state_dict(*b);
    ASSERT_EQ(sa.size(), sb.size());
    for (const auto& [k, t] : sa) EXPECT_TRUE(torch::equal(t, sb.at(k))) << k;
  }
  EXPECT_EQ(back.tokenizer.vocab_size(), m.tokenizer.vocab_size());
}

TEST(ModelFolder, ReadsOnlyTheComponentsAskedFor) {
  auto dir = copy_model();
  fs::remove_all(dir + "/vae");  // not needed for the text stack
  ModelFolderComponents text_only;
  text_only.transformer = text_only.vae = text_only.controlnet = false;
  auto m = read_model_folder(dir, {}, text_only);
  EXPECT_TRUE(m.text_encoder);
  EXPECT_FALSE(m.transformer);
  EXPECT_FALSE(m.vae);
  EXPECT_FALSE(m.controlnet);
}

// The ControlNet is optional in a folder, and a request with a condition needs one.
TEST(ModelFolder, AConditionNeedsAControlNet) {
  auto dir = copy_model();
  fs::remove_all(dir + "/controlnet");
  auto pipe = Pipeline::load(dir);
  EXPECT_FALSE(pipe->has_controlnet());
  GenerateRequest r;
  r.width = r.height = 64;
  r.steps = 1;
  r.condition = GenerateCondition{torch::zeros({64, 64}, torch::kUInt8), 1.0, 1};
  EXPECT_TRUE(throws_with([&] { pipe->generate(r); }, {dir, "no controlnet/ subfolder"}));
}
