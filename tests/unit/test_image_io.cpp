// PNG writing/reading with text chunks: the generation settings must survive a round trip.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "sprint/image_io.h"
#include "test_util.h"

using namespace sprint;
using sprint::test::throws_with;

TEST(ImageIo, RoundTripPixelsAndUtf8Text) {
  auto dir = sprint::test::temp_dir("png");
  for (int64_t c : {1, 3, 4}) {
    auto px = torch::randint(0, 256, {5, 7, c}, torch::kUInt8);
    std::map<std::string, std::string> text = {{"sprint:prompt", "a red fox, 狐狸 🦊"}, {"sprint:seed", "42"}, {"empty", ""}};
    auto path = dir + "/img" + std::to_string(c) + ".png";
    write_png(path, px, text);
    auto back = read_png(path);
    EXPECT_TRUE(torch::equal(back.pixels, px)) << c << " channels";
    EXPECT_EQ(back.text, text);
  }
}

TEST(ImageIo, WriteIsAtomicAndValidatesInput) {
  auto dir = sprint::test::temp_dir("png");
  auto path = dir + "/a.png";
  write_png(path, torch::zeros({2, 2, 3}, torch::kUInt8));
  EXPECT_TRUE(throws_with([&] { write_png(path, torch::zeros({2, 2, 2}, torch::kUInt8)); }, {"a.png", "2 channels"}));
  EXPECT_TRUE(throws_with([&] { write_png(path, torch::zeros({2, 2, 3})); }, {"a.png", "uint8"}));
  EXPECT_TRUE(throws_with([&] { write_png(dir + "/no/such/dir/b.png", torch::zeros({2, 2, 3}, torch::kUInt8)); },
                          {"b.png"}));
  EXPECT_NO_THROW(read_png(path));  // the earlier file is intact
  for (auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

TEST(ImageIo, CorruptOrMissingFilesNameTheFile) {
  auto dir = sprint::test::temp_dir("png");
  EXPECT_TRUE(throws_with([&] { read_png(dir + "/missing.png"); }, {"missing.png"}));
  std::ofstream(dir + "/text.png") << "definitely not a png";
  EXPECT_TRUE(throws_with([&] { read_png(dir + "/text.png"); }, {"text.png", "not a PNG"}));
  // A real PNG cut in half.
  write_png(dir + "/full.png", torch::randint(0, 256, {64, 64, 3}, torch::kUInt8));
  std::ifstream in(dir + "/full.png", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::ofstream(dir + "/half.png", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  EXPECT_TRUE(throws_with([&] { read_png(dir + "/half.png"); }, {"half.png"}));
}

TEST(ImageIo, DecoderOutputToUint8FollowsDiffusers) {
  auto img = torch::tensor({-2.f, -1.f, 0.f, 0.5f, 1.f, 3.f}).view({1, 3, 1, 2});
  auto px = to_uint8_image(img);
  ASSERT_EQ(px.sizes(), torch::IntArrayRef({1, 2, 3}));
  // clamp(x/2 + 0.5) * 255, rounded: -2 -> 0, -1 -> 0, 0 -> 128 (127.5 rounds to even 128), 0.5 -> 191, 1 -> 255, 3 -> 255
  std::vector<int> expect = {0, 128, 255, 0, 191, 255};  // (H, W, C) order of channels (0: -2,-1), (1: 0,.5), (2: 1,3)
  auto flat = px.flatten();
  for (int i = 0; i < 6; ++i) EXPECT_EQ(flat[i].item<int>(), expect[i]) << i;
}

#include <nlohmann/json.hpp>

#include "sprint/generation_settings.h"

namespace {
GenerationSettings example_settings() {
  GenerationSettings s;
  s.prompt = "a red fox, 狐狸";
  s.seed = 9223372036854775807ull;  // the largest seed (2^63 - 1) survives
  s.steps = 4;
  s.guidance = 3.25;
  s.size = {512, 768};
  s.model = "/models/sprint";
  s.control_scale = 0.7;
  s.thickness = 3;
  return s;
}
}  // namespace

TEST(GenerationSettings, RoundTripThroughPngText) {
  SettingsRecord r;
  r.settings = example_settings();
  r.controlled = true;
  r.sketch = "/tmp/s.png";
  r.condition_png = encode_png(torch::randint(0, 256, {5, 7, 1}, torch::kUInt8));
  auto text = to_png_text(r);
  EXPECT_EQ(text.at("sprint:model"), "sprint");
  // Names, never this machine's folders: a shared picture must not carry them.
  EXPECT_EQ(text.at("sprint:model_path"), "sprint");
  EXPECT_EQ(text.at("sprint:sketch"), "s.png");
  for (const auto& [k, v] : text) {
    EXPECT_EQ(v.find("/tmp"), std::string::npos) << k;
    EXPECT_EQ(v.find("/models"), std::string::npos) << k;
  }
  auto dir = sprint::test::temp_dir("meta");
  write_png(dir + "/a.png", torch::zeros({2, 2, 3}, torch::kUInt8), text);
  auto back = settings_from_png_text(read_png(dir + "/a.png").text, "a.png");
  auto expected = r.settings;
  expected.model = "sprint";
  EXPECT_EQ(back.settings, expected);
  EXPECT_TRUE(back.controlled);
  EXPECT_EQ(back.sketch, "s.png");
  EXPECT_EQ(back.condition_png, r.condition_png);  // the condition travels inside the picture
  EXPECT_FALSE(png_has_setting(text, "timesteps"));
}

TEST(GenerationSettings, A1111ParametersAreWrittenAndRead) {
  SettingsRecord r;
  r.settings = example_settings();
  r.settings.prompt = "a red fox\nin the snow";
  r.controlled = true;
  const auto text = to_png_text(r);
  EXPECT_EQ(text.at("parameters"), "a red fox\nin the snow\nSteps: 4, Sampler: SCM, CFG scale: 3.25, "
                                   "Seed: 9223372036854775807, Size: 512x768, Model: sprint, Control scale: 0.7");
  // A PNG of another tool holds "parameters" only: what it has comes back, other keys are skipped.
  const auto other = settings_from_png_text(
      {{"parameters", "a cat\nNegative prompt: blurry\nSteps: 3, Sampler: Euler a, CFG scale: 7, Seed: 42, "
                      "Size: 512x512, Model hash: abc123, Model: sd15, Lora hashes: \"x: 1, y: 2\""}},
      "other.png");
  EXPECT_EQ(other.settings.prompt, "a cat");
  EXPECT_EQ(other.settings.steps, 3);
  EXPECT_DOUBLE_EQ(other.settings.guidance, 7.0);
  EXPECT_EQ(other.settings.seed, 42u);
  EXPECT_EQ(other.settings.size, (ImageSize{512, 512}));
  EXPECT_EQ(other.settings.model, "sd15");
  // Out of our ranges (30 steps): the default is kept; a bad seed is an error naming the file.
  EXPECT_EQ(settings_from_a1111_parameters("p\nSteps: 30, Seed: 1", "x").settings.steps, GenerationSettings{}.steps);
  EXPECT_TRUE(throws_with([] { settings_from_a1111_parameters("p\nSteps: 2, Seed: -1", "x.png"); }, {"x.png", "Seed"}));
  EXPECT_TRUE(throws_with([] { settings_from_png_text({{"parameters", "just a caption"}}, "c.png"); }, {"c.png", "Steps"}));
  // The prompt is held to the same length as everywhere (a 77 KB one came back through the fuzzer).
  EXPECT_TRUE(throws_with([] { settings_from_a1111_parameters(std::string(20000, 'a') + "\nSteps: 2", "l.png"); },
                          {"l.png", "prompt", "20000 bytes"}));
}

TEST(GenerationSettings, EmbeddedConditionMustBeBase64) {
  EXPECT_TRUE(throws_with([] { settings_from_png_text({{"sprint:prompt", "p"}, {"sprint:condition", "ab$d"}}, "e.png"); },
                          {"e.png", "sprint:condition", "base64"}));
  EXPECT_TRUE(throws_with([] { settings_from_png_text({{"sprint:prompt", "p"}, {"sprint:condition", "abc"}}, "e.png"); },
                          {"base64"}));
}

TEST(GenerationSettings, PngTextWithoutConditionLeavesItsSettingsOut) {
  SettingsRecord r;
  r.settings = example_settings();
  auto text = to_png_text(r);
  EXPECT_FALSE(png_has_setting(text, "control_scale"));
  EXPECT_FALSE(png_has_setting(text, "thickness"));
  auto back = settings_from_png_text(text, "plain.png");
  EXPECT_FALSE(back.controlled);
  EXPECT_EQ(back.settings.thickness, GenerationSettings{}.thickness);
}

TEST(GenerationSettings, BadOrMissingValuesAreNamed) {
  EXPECT_TRUE(throws_with([] { settings_from_png_text({{"Software", "x"}}, "x.png"); },
                          {"x.png", "no Sprint Studio settings"}));
  EXPECT_TRUE(throws_with([] { settings_from_png_text({{"sprint:seed", "12abc"}}, "y.png"); },
                          {"y.png", "'12abc'", "sprint:seed"}));
  EXPECT_TRUE(throws_with([] { settings_from_png_text({{"sprint:prompt", "p"}, {"sprint:size", "64by64"}}, "z.png"); },
                          {"z.png", "sprint:size"}));
}

TEST(GenerationSettings, RoundTripThroughJson) {
  const auto s = example_settings();
  const auto j = settings_to_json(s);
  EXPECT_EQ(j.at("size"), "512x768");
  GenerationSettings back;
  update_settings_from_json(back, j, "test");
  EXPECT_EQ(back, s);
  // A partial update keeps the rest; unknown keys and wrong types are named.
  update_settings_from_json(back, {{"steps", 1}}, "test");
  EXPECT_EQ(back.steps, 1);
  EXPECT_EQ(back.prompt, s.prompt);
  EXPECT_TRUE(throws_with([&] { update_settings_from_json(back, {{"stepz", 1}}, "r.json"); },
                          {"r.json", "unknown setting 'stepz'"}));
  EXPECT_TRUE(throws_with([&] { update_settings_from_json(back, {{"seed", "x"}}, "r.json"); }, {"r.json", "'seed'"}));
}
