// Hostile input, in-process: each test is one class of input that used to be accepted silently, wrapped, read
// without bound or clobbered something, and must now be refused in one line naming the file, key or flag (or, for
// outputs, be checked for NaN/Inf). The out-of-process counterpart, over many seeded cases, is tests/fuzz.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <c10/util/Exception.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <new>

#include "sprint/atomic_file.h"
#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/generation_settings.h"
#include "sprint/image_io.h"
#include "sprint/loader.h"
#include "sprint/memory_limits.h"
#include "sprint/model_folder.h"
#include "sprint/pipeline.h"
#include "sprint/runtime.h"
#include "sprint/safetensors.h"
#include "sprint/strict_parse.h"
#include "sprint/text_encoder.h"
#include "sprint/training/run.h"
#include "sprint/transformer.h"
#include "sprint/vae.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace sprint;
using sprint::test::throws_with;

namespace {

// A private copy of the tiny parity pipeline that a test may damage.
std::string tiny_copy(const std::string& tag) {
  const auto dir = fs::path(sprint::test::temp_dir(tag)) / "tiny";
  fs::copy(sprint::test::fixture_path("pipeline/tiny_pipeline"), dir, fs::copy_options::recursive);
  return dir.string();
}

void write_text(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

void edit_json(const fs::path& p, const std::function<void(nlohmann::json&)>& f) {
  auto j = read_json_file(p.string());
  f(j);
  write_text(p, j.dump(2));
}

}  // namespace

// ---- numbers as people type them -----------------------------------------------------------------------------

TEST(HostileInput, NumbersAreDecimalWholeAndInRange) {
  EXPECT_EQ(parse_integer("12", "--frames", 0, 100), 12);
  EXPECT_EQ(parse_integer("-3", "n", -5, 5), -3);
  for (const char* bad : {"0x10", "+7", " 7", "7 ", "", "1e3", "7.0", "abc", "99999999999999999999999"})
    EXPECT_TRUE(throws_with([&] { parse_integer(bad, "--frames", 0, 1 << 30); }, {"--frames", "whole number"})) << bad;
  EXPECT_TRUE(throws_with([&] { parse_integer("-3", "--threads", 0, 1024); }, {"--threads '-3'", "0 to 1024"}));

  EXPECT_DOUBLE_EQ(parse_decimal("4.5", "g", 0, 30), 4.5);
  EXPECT_DOUBLE_EQ(parse_decimal(".5", "g", 0, 30), 0.5);
  EXPECT_DOUBLE_EQ(parse_decimal("1e1", "g", 0, 30), 10.0);
  for (const char* bad : {"0x10", "nan", "inf", "1e400", "-", ".", "4.5x", "4,5", "1e", " 1"})
    EXPECT_TRUE(throws_with([&] { parse_decimal(bad, "--guidance", -1e9, 1e9); }, {"--guidance"})) << bad;
  EXPECT_TRUE(throws_with([&] { parse_decimal("31", "--guidance", 0, 30); }, {"from 0 to 30"}));
}

TEST(HostileInput, SeedsAreBelowTwoToTheSixtyThreeOrRandom) {
  EXPECT_EQ(parse_seed("0", "--seed"), 0u);
  EXPECT_EQ(parse_seed("9223372036854775807", "--seed"), kMaxSeed);
  // These all used to become 18446744073709551615.
  for (const char* bad : {"-1", "18446744073709551615", "18446744073709551616", "1180591620717411303424",
                          "9223372036854775808", "0x10", "1.5", ""})
    EXPECT_TRUE(throws_with([&] { parse_seed(bad, "--seed"); }, {"--seed", "0 to 9223372036854775807"})) << bad;
  for (int i = 0; i < 20; ++i) EXPECT_LE(parse_seed("random", "--seed"), kMaxSeed);
  EXPECT_TRUE(throws_with([&] { parse_seed("random", "sprint:seed", /*allow_random=*/false); }, {"sprint:seed"}));
}

TEST(HostileInput, SettingsAreCheckedTheSameFromFlagsJsonAndPngText) {
  GenerationSettings s;
  EXPECT_TRUE(throws_with([&] { set_setting_from_text(s, "steps", "0.5", "--steps"); }, {"--steps '0.5'", "1 to 4"}));
  EXPECT_TRUE(throws_with([&] { set_setting_from_text(s, "guidance", "0x10", "--guidance"); }, {"--guidance"}));
  EXPECT_TRUE(throws_with([&] { set_setting_from_text(s, "control_scale", "nan", "--control-scale"); }, {"--control-scale"}));
  EXPECT_TRUE(throws_with([&] { set_setting_from_text(s, "size", "100000x100000", "--size"); }, {"--size", "16384"}));
  for (const char* bad : {"64x64 ", " 64x64", "+64x64", "64x", "x64", "-64x64", "0x64", "64x64x64", "6.4x64"})
    EXPECT_TRUE(throws_with([&] { parse_size(bad); }, {"--size"})) << bad;
  EXPECT_EQ(parse_size("96X64"), (ImageSize{96, 64}));

  // Replay "set" events and JSON: 0.5 steps were truncated to 0.
  EXPECT_TRUE(throws_with([&] { update_settings_from_json(s, {{"steps", 0.5}}, "replay"); }, {"replay", "steps"}));
  EXPECT_TRUE(throws_with([&] { update_settings_from_json(s, {{"steps", 9}}, "replay"); }, {"steps", "1 to 4"}));
  EXPECT_TRUE(throws_with([&] { update_settings_from_json(s, {{"seed", -1}}, "replay"); }, {"seed"}));
  EXPECT_TRUE(throws_with([&] { update_settings_from_json(s, {{"guidance", 1e300}}, "replay"); }, {"guidance"}));

  // PNG text chunks (sprint-generate --from).
  std::map<std::string, std::string> text = {{"sprint:prompt", "a fox"}, {"sprint:seed", "18446744073709551616"}};
  EXPECT_TRUE(throws_with([&] { settings_from_png_text(text, "--from 'x.png'"); }, {"x.png", "sprint:seed"}));
  text["sprint:seed"] = "7";
  text["sprint:guidance"] = "0x10";
  EXPECT_TRUE(throws_with([&] { settings_from_png_text(text, "--from 'x.png'"); }, {"sprint:guidance"}));
  text["sprint:guidance"] = "4.5";
  EXPECT_EQ(settings_from_png_text(text, "x").settings.seed, 7u);
}

TEST(HostileInput, ThreadCountsAreNeverNegative) {
  EXPECT_TRUE(throws_with([] { init_threads(-3); }, {"threads", "-3"}));
  EXPECT_TRUE(throws_with([] { init_threads(kMaxThreads + 1); }, {"threads"}));
}

// ---- config files ----------------------------------------------------------------------------------------------

TEST(HostileInput, ConfigIntegersNeverWrap) {
  auto j = sprint::test::tiny_sprint_config().to_json();
  j["num_layers"] = 4294967302ull;  // ran as 6
  EXPECT_TRUE(throws_with([&] { TransformerConfig::from_json(j, "t.json"); }, {"t.json", "num_layers", "larger than"}));
  j = sprint::test::tiny_sprint_config().to_json();
  j["cross_attention_dim"] = 4294967304ull;  // became 8
  EXPECT_TRUE(throws_with([&] { TransformerConfig::from_json(j, "t.json"); }, {"cross_attention_dim"}));
  j = sprint::test::tiny_sprint_config().to_json();
  j["num_layers"] = 1e9;  // built layers until memory ran out
  EXPECT_TRUE(throws_with([&] { TransformerConfig::from_json(j, "t.json"); }, {"num_layers", "at most 1024"}));
  j = sprint::test::tiny_sprint_config().to_json();
  j["sample_size"] = 100000;
  EXPECT_TRUE(throws_with([&] { TransformerConfig::from_json(j, "t.json"); }, {"sample_size"}));
  j = sprint::test::tiny_sprint_config().to_json();
  j["guidance_embeds_scale"] = 1e308;  // a black picture
  EXPECT_TRUE(throws_with([&] { TransformerConfig::from_json(j, "t.json"); }, {"guidance_embeds_scale"}));
  j = sprint::test::tiny_sprint_config().to_json();
  j["timestep_scale"] = 0;
  EXPECT_TRUE(throws_with([&] { TransformerConfig::from_json(j, "t.json"); }, {"timestep_scale"}));
  j = sprint::test::tiny_sprint_config().to_json();
  j["norm_elementwise_affine"] = true;  // failed later as "unexpected key" tensors
  EXPECT_TRUE(throws_with([&] { TransformerConfig::from_json(j, "t.json"); }, {"norm_elementwise_affine"}));
  j = sprint::test::tiny_sprint_config().to_json();
  j["num_layer"] = 3;  // a misspelt key
  EXPECT_TRUE(throws_with([&] { TransformerConfig::from_json(j, "t.json"); }, {"t.json", "unknown key 'num_layer'"}));
}

TEST(HostileInput, ModelsTooLargeForMemoryAreRefusedBeforeAllocation) {
  auto c = sprint::test::tiny_sprint_config();
  c.num_attention_heads = 1024;  // D = 1024 x 1024: every weight matrix alone would be terabytes
  c.attention_head_dim = 1024;
  c.num_cross_attention_heads = 1024;
  c.cross_attention_head_dim = 1024;
  c.cross_attention_dim = c.inner_dim();
  c.num_layers = 1000;
  EXPECT_TRUE(throws_with([&] { SanaTransformer2DModel m(c); }, {"transformer", "million parameters", "memory"}));
}

TEST(HostileInput, AllowLargeLiftsOnlyTheMemoryRefusals) {
  const double memory = machine_memory_bytes();
  ASSERT_GT(memory, 0) << "sysconf reports no physical memory";
  EXPECT_TRUE(throws_with([&] { check_fits_memory(2 * memory, "this request", "ask for less"); },
                          {"this request needs about", "more than this machine's", "--allow-large"}));
  EXPECT_NO_THROW(check_fits_memory(memory / 4, "a small request", "ask for less"));
  EXPECT_NO_THROW(check_model_size("transformer", memory / 16, "t.json"));  // in float32: a quarter of the memory
  EXPECT_THROW(check_model_size("transformer", memory, "t.json"), Error);  // 4 bytes a parameter: 4x the memory
  set_allow_large(true);
  EXPECT_NO_THROW(check_fits_memory(2 * memory, "this request", "ask for less"));
  EXPECT_NO_THROW(check_model_size("transformer", memory, "t.json"));
  // Not a size but an inconsistency, and not a number at all: refused either way.
  EXPECT_THROW(check_fits_memory(std::numeric_limits<double>::infinity(), "x", "y"), Error);
  set_allow_large(false);
}

TEST(HostileInput, GenerationWorkingMemoryIsEstimatedBeforeGenerating) {
  // SANA 1600M's transformer width with SANA's DC-AE. The decoder's full-resolution stage holds tensors of 128
  // channels x H x W x 4 bytes: 0.5 GiB each at 1024 px, 8 GiB at 4096 px; a decoder block keeps a few alive.
  auto tc = sprint::test::tiny_sprint_config();
  tc.num_attention_heads = 70;
  tc.attention_head_dim = 32;
  tc.mlp_ratio = 2.5;
  tc.patch_size = 1;
  const auto vc = VaeConfig::dc_ae_f32c32();
  const double gib = double(1 << 30);
  const double at_1024 = working_memory_bytes(tc, vc, 1024, 1024, false) / gib;
  const double at_4096 = working_memory_bytes(tc, vc, 4096, 4096, true) / gib;
  // 2 to 20 such tensors at 1024 px; at 4096 px with a condition to encode, at least 4 (encoder and decoder).
  EXPECT_GT(at_1024, 0.5 * 2);
  EXPECT_LT(at_1024, 0.5 * 20);
  EXPECT_GT(at_4096, 8.0 * 4);
  // And such a request is refused on a machine that has less, unless --allow-large.
  if (at_4096 * gib > machine_memory_bytes()) {
    EXPECT_TRUE(throws_with([&] { check_fits_memory(at_4096 * gib, "size 4096x4096: one generation", "smaller"); },
                            {"size 4096x4096", "--allow-large"}));
  }
  // The tiny pipeline at its largest allowed side is not refused.
  auto pipe = Pipeline::load(sprint::test::fixture_path("pipeline/tiny_pipeline"));
  GenerateRequest r;
  r.prompt = "x";
  r.steps = 1;
  r.width = r.height = pipe->max_side();
  EXPECT_NO_THROW(pipe->generate(r));
}

TEST(HostileInput, ConfigsThatDoNotMatchTheirWeightsAreRefusedBeforeAllocation) {
  const auto dir = tiny_copy("hostile_widths");
  edit_json(fs::path(dir) / "transformer" / "config.json", [](nlohmann::json& j) {
    j["attention_head_dim"] = 1000;  // D = 2000 instead of 16: fits memory, but not the weights
    j["cross_attention_dim"] = 2000;
  });
  EXPECT_TRUE(throws_with([&] { load_transformer(dir + "/transformer", {}); },
                          {"config.json", "million parameters", "do not match the weights"}));
}

TEST(HostileInput, ModelFoldersOfOtherPipelinesAndSchedulersAreRefused) {
  const auto dir = tiny_copy("hostile_index");
  edit_json(fs::path(dir) / "model_index.json", [](nlohmann::json& j) { j["_class_name"] = "FluxPipeline"; });
  EXPECT_TRUE(throws_with([&] { read_model_folder(dir); }, {"model_index.json", "FluxPipeline"}));
  edit_json(fs::path(dir) / "model_index.json", [](nlohmann::json& j) {
    j["_class_name"] = "SanaSprintPipeline";
    j["transformer"] = {"diffusers", "FluxTransformer2DModel"};
  });
  EXPECT_TRUE(throws_with([&] { read_model_folder(dir); }, {"model_index.json", "'transformer'", "SanaTransformer2DModel"}));
  edit_json(fs::path(dir) / "model_index.json", [](nlohmann::json& j) { j["transformer"] = {"diffusers", "SanaTransformer2DModel"}; });

  const auto sched = fs::path(dir) / "scheduler" / "scheduler_config.json";
  write_text(sched, R"({"_class_name": "SCMScheduler", "prediction_type": "epsilon", "sigma_data": 0.5})");
  EXPECT_TRUE(throws_with([&] { SchedulerSettings::load(dir); }, {"scheduler_config.json", "prediction_type"}));
  write_text(sched, R"({"_class_name": "SCMScheduler", "prediction_type": "trigflow", "sigma_data": -1})");
  EXPECT_TRUE(throws_with([&] { SchedulerSettings::load(dir); }, {"sigma_data"}));
  write_text(sched, R"({"_class_name": "SCMScheduler", "prediction_type": "trigflow", "sigma_data": 0.7})");
  EXPECT_DOUBLE_EQ(SchedulerSettings::load(dir).sigma_data, 0.7);  // read, and used by the pipeline

  write_text(fs::path(dir) / "sprint_pipeline.json", R"({"max_sequence_length": 1000000000})");
  EXPECT_TRUE(throws_with([&] { PromptOptions::load(dir); }, {"sprint_pipeline.json", "max_sequence_length"}));
  write_text(fs::path(dir) / "sprint_pipeline.json", R"({"lowercase": true, "sketch_size": 256})");
  EXPECT_TRUE(throws_with([&] { PromptOptions::load(dir); }, {"sprint_pipeline.json", "unknown key 'sketch_size'"}));
}

TEST(HostileInput, SpecialFilesInPlaceOfConfigsAreRefusedWithoutBlocking) {
  const auto dir = fs::path(sprint::test::temp_dir("hostile_files"));
  const auto fifo = dir / "fifo.json";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_TRUE(throws_with([&] { read_json_file(fifo.string()); }, {"fifo.json", "not a regular file", "FIFO"}));
  const auto zero = dir / "zero.json";
  fs::create_symlink("/dev/zero", zero);  // was read until memory ran out
  EXPECT_TRUE(throws_with([&] { read_json_file(zero.string()); }, {"zero.json", "device"}));
  EXPECT_TRUE(throws_with([&] { read_json_file(dir.string()); }, {"folder"}));
  const auto big = dir / "big.json";
  write_text(big, std::string(200, ' '));
  EXPECT_TRUE(throws_with([&] { read_small_file(big.string(), 100); }, {"big.json", "200 bytes"}));
  EXPECT_TRUE(throws_with([&] { read_png(fifo.string()); }, {"fifo.json", "not a regular file"}));
}

TEST(HostileInput, DeeplyNestedJsonIsRefusedWhileParsing) {
  // Printing or freeing a value nested this deep recursed past the stack (SIGSEGV in a config, a safetensors header).
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const auto dir = fs::path(sprint::test::temp_dir("hostile_deep"));
  write_text(dir / "config.json", R"({"in_channels": )" + deep + "}");
  EXPECT_TRUE(throws_with([&] { read_json_file((dir / "config.json").string()); }, {"config.json", "64 deep"}));
  const std::string header = R"({"w": {"dtype": "F32", "shape": )" + deep + R"(, "data_offsets": [0, 0]}})";
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((header.size() >> (8 * i)) & 255);
  write_text(dir / "deep.safetensors", file + header);
  EXPECT_TRUE(throws_with([&] { safetensors::File::open((dir / "deep.safetensors").string()); },
                          {"deep.safetensors", "nested"}));
  write_text(dir / "huge.json", R"({"x": -1e400})");  // past double: escaped the parse-error handler
  EXPECT_TRUE(throws_with([&] { read_json_file((dir / "huge.json").string()); }, {"huge.json", "not valid JSON"}));
}

TEST(HostileInput, ValuesThatOverflowLaterAreRefusedAtTheKey) {
  Gemma2Config g;
  g.layer_types = Gemma2Config::default_layer_types(g.num_hidden_layers);
  g.query_pre_attn_scalar = 1e300;  // validated, then cast to int64 when written back (undefined behaviour)
  EXPECT_TRUE(throws_with([&] { g.validate("te.json"); }, {"query_pre_attn_scalar"}));
  auto j = sprint::test::tiny_sprint_config().to_json();
  j["num_layers"] = 9223372036854775808.0;  // 2^63 as a float: wrapped in the cast
  EXPECT_TRUE(throws_with([&] { TransformerConfig::from_json(j, "t.json"); }, {"num_layers", "out of range"}));
  // A tiny value written by the JSON side reads back from its text (strtod flags underflow as a range error).
  EXPECT_DOUBLE_EQ(parse_decimal("1e-310", "g", 0, 30), 1e-310);
}

// ---- images ----------------------------------------------------------------------------------------------------

TEST(HostileInput, ImagesPastThePixelLimitAreRefusedBeforeDecoding) {
  const auto path = sprint::test::temp_dir("hostile_png") + "/wide.png";
  write_png(path, torch::zeros({10, 300, 1}, torch::kUInt8));
  EXPECT_EQ(read_png(path, 3000).pixels.size(1), 300);
  EXPECT_TRUE(throws_with([&] { read_png(path, 2999); }, {"wide.png", "300x10", "limit of 2999 pixels"}));
}

TEST(HostileInput, ChunksLongerThanTheFileAreRefusedBeforeLibpngAllocatesThem) {
  // A text chunk declaring 2 GB in a tiny file: libpng allocated and zeroed the declared length before noticing.
  std::string png = encode_png(torch::zeros({2, 2, 1}, torch::kUInt8));
  const std::string chunk = std::string("\x7f\xff\xff\xf0", 4) + "tEXt" + "key";
  png.insert(33, chunk);  // after the signature (8) and IHDR (25)
  EXPECT_TRUE(throws_with([&] { decode_png(png, "'bomb.png'"); }, {"bomb.png", "tEXt", "2147483632 bytes"}));
}

// ---- outputs ---------------------------------------------------------------------------------------------------

TEST(HostileInput, WritesNeverReplaceLinksDevicesFoldersOrFifos) {
  const auto dir = fs::path(sprint::test::temp_dir("hostile_out"));
  const auto target = dir / "kept.png";
  write_png(target.string(), torch::full({2, 2, 1}, 7, torch::kUInt8));
  const auto link = dir / "link.png";
  fs::create_symlink(target, link);
  EXPECT_TRUE(throws_with([&] { write_png(link.string(), torch::zeros({2, 2, 1}, torch::kUInt8)); },
                          {"link.png", "symbolic link"}));
  EXPECT_TRUE(fs::is_symlink(link));  // the link is still a link, and its target is untouched
  EXPECT_EQ(read_png(target.string()).pixels[0][0][0].item<int>(), 7);

  const auto fifo = dir / "fifo.png";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_TRUE(throws_with([&] { write_png(fifo.string(), torch::zeros({2, 2, 1}, torch::kUInt8)); }, {"FIFO"}));
  EXPECT_TRUE(fs::is_fifo(fifo));
  fs::create_directories(dir / "folder.png");
  EXPECT_TRUE(throws_with([&] { check_replaceable((dir / "folder.png").string()); }, {"folder"}));
  EXPECT_TRUE(throws_with([&] { check_replaceable("/dev/null"); }, {"/dev/null", "device"}));
  EXPECT_TRUE(throws_with([&] { write_png((dir / "x.jpg").string(), torch::zeros({2, 2, 1}, torch::kUInt8)); },
                          {"x.jpg", ".png"}));
  EXPECT_FALSE(fs::exists(dir / "x.jpg"));
}

TEST(HostileInput, OverflowingWeightsFailNamingTheStageInsteadOfABlackPicture) {
  const auto dir = tiny_copy("hostile_overflow");
  const auto file = fs::path(dir) / "transformer" / "diffusion_pytorch_model.safetensors";
  auto sd = safetensors::load_all(file.string());
  for (auto& [k, v] : sd)
    if (k.find("proj_out.weight") != std::string::npos) v = torch::full_like(v, 3e38);  // finite, so it loads
  safetensors::save(file.string(), sd);
  auto pipe = Pipeline::load(dir);
  GenerateRequest r;
  r.prompt = "a cat";
  r.steps = 1;
  r.width = r.height = 32;
  // The message names the stage and the weight that is far out of range.
  EXPECT_TRUE(throws_with([&] { pipe->generate(r); }, {"transformer", "NaN or Inf", "proj_out.weight holds 3e+38",
                                                      "no picture"}));
}

TEST(HostileInput, RequestSizesAreBoundedByTheModel) {
  auto pipe = Pipeline::load(sprint::test::fixture_path("pipeline/tiny_pipeline"));
  GenerateRequest r;
  r.prompt = "a cat";
  r.steps = 1;
  r.width = r.height = 4096;  // ran for minutes at 7 GB on a 64 px model
  EXPECT_TRUE(throws_with([&] { pipe->generate(r); }, {"4096x4096", "at most 128 px"}));
}

// ---- messages --------------------------------------------------------------------------------------------------

TEST(HostileInput, MessagesAreOneLineWithoutBacktraces) {
  try {
    (void)torch::ones({2, 3}).matmul(torch::ones({4, 5}));
    FAIL() << "no error";
  } catch (const c10::Error& e) {
    const std::string m = message_of(e);
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    EXPECT_EQ(m.find("Exception raised from"), std::string::npos) << m;
    EXPECT_NE(m.find("2x3"), std::string::npos) << m;
  }
  EXPECT_EQ(message_of(std::bad_alloc()), "out of memory (an allocation failed)");
  EXPECT_EQ(message_of(Error("a\nb")), "a; b");
}

// ---- training --------------------------------------------------------------------------------------------------

TEST(HostileInput, TrainingRemovesUnfinishedCheckpointWritesAndNamesTheEarlierCheckpoint) {
  using sprint::training::CheckpointContents;
  using sprint::training::RunFolder;
  const auto out = sprint::test::temp_dir("hostile_run");
  auto lin = torch::nn::Linear(2, 2);
  CheckpointContents c;
  c.modules["lin"] = lin.ptr().get();
  torch::optim::Adam opt(lin->parameters());
  c.optimizers["adam"] = &opt;
  {
    RunFolder run(out, false, true);
    run.save_checkpoint(1, c, 3);
    run.save_checkpoint(2, c, 3);
  }
  const auto ck = fs::path(out) / "checkpoints";
  fs::create_directories(ck / ".step-0000003.tmp-99999");  // a write killed with -9
  write_text(ck / "latest.tmp-99999-0", "step-0000003\n");
  {
    RunFolder run(out, true, true);
    EXPECT_FALSE(fs::exists(ck / ".step-0000003.tmp-99999"));
    EXPECT_FALSE(fs::exists(ck / "latest.tmp-99999-0"));
    write_text(ck / "step-0000002" / "optimizers.pt", "PK\x03\x04 truncated");
    EXPECT_TRUE(throws_with([&] { run.load_latest(c); },
                            {"step-0000002", "optimizers.pt", "earlier checkpoint 'step-0000001'", "latest"}));
  }
}
