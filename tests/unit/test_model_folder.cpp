// Bad model folders: each defect gets one clear message that names the file (and the tensor or key).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "sprint/atomic_file.h"
#include "sprint/error.h"
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
