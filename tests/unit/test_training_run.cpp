// The training commands' shared infrastructure: strict configs, atomic checkpoints and their resume, a full disk
// while saving, NaN detection, EMA, the dataset reader's errors and the picture -> scribble conversion.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "sprint/error.h"
#include "sprint/image_io.h"
#include "sprint/picture_edges.h"
#include "sprint/training/config_file.h"
#include "sprint/training/data.h"
#include "sprint/training/run.h"
#include "sprint/training/sampling.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace sprint;
using namespace sprint::training;
using sprint::test::temp_dir;
using sprint::test::throws_with;

namespace {

std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

// A picture: white paper with a filled disc of `rgb` at (cx, cy), radius r.
torch::Tensor disc_picture(int64_t side, int64_t cx, int64_t cy, int64_t r, std::array<uint8_t, 3> rgb) {
  auto img = torch::full({side, side, 3}, 255, torch::kUInt8);
  auto a = img.accessor<uint8_t, 3>();
  for (int64_t y = 0; y < side; ++y)
    for (int64_t x = 0; x < side; ++x)
      if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r)
        for (int c = 0; c < 3; ++c) a[y][x][c] = rgb[static_cast<size_t>(c)];
  return img;
}

// A dataset folder with `n` disc pictures (the last one held out).
std::string tiny_dataset(const std::string& tag, int n = 5, int64_t side = 32) {
  auto dir = temp_dir(tag);
  fs::create_directories(fs::path(dir) / "images");
  std::ofstream m(fs::path(dir) / "manifest.jsonl");
  for (int i = 0; i < n; ++i) {
    const std::string id = "item" + std::to_string(i);
    write_png((fs::path(dir) / "images" / (id + ".png")).string(),
              disc_picture(side, side / 2 + i - 2, side / 2, side / 4 + i % 3,
                           {static_cast<uint8_t>(40 * i), 90, static_cast<uint8_t>(200 - 30 * i)}));
    m << "{\"id\": \"" << id << "\", \"file\": \"images/" << id << ".png\", \"captions\": [\"disc " << i
      << "\", \"a disc\"], \"split\": \"" << (i == n - 1 ? "heldout" : "train") << "\"}\n";
  }
  return dir;
}

struct TinyNet : torch::nn::Module {
  TinyNet() {
    lin = register_module("lin", torch::nn::Linear(4, 3));
    register_buffer("counter", torch::zeros({1}));
  }
  torch::nn::Linear lin{nullptr};
};

}  // namespace

// ---- config ------------------------------------------------------------------------------------------------------

TEST(TrainingConfig, OverridesParseAsJsonAndReachNestedKeys) {
  auto dir = temp_dir("cfg_over");
  auto file = write_file(dir + "/c.json", R"({"steps": 10, "optim": {"lr": 0.001}})");
  auto c = ConfigFile::load(file, {"optim.lr=2e-4", "name=plain words", "list=[1, 2]"});
  EXPECT_EQ(c.get<int64_t>("steps", 0), 10);
  EXPECT_DOUBLE_EQ(c.get<double>("optim.lr", 0.0), 2e-4);
  EXPECT_EQ(c.get<std::string>("name", ""), "plain words");
  EXPECT_EQ(c.get<std::vector<int>>("list", {}), (std::vector<int>{1, 2}));
  EXPECT_EQ(c.get<int64_t>("absent", 7), 7);
  EXPECT_NO_THROW(c.finish());
  EXPECT_EQ(c.resolved()["absent"], 7);  // defaults that were read are recorded
}

TEST(TrainingConfig, TyposAreRejectedWithASuggestion) {
  auto c = ConfigFile::from_json({{"optim", {{"lrr", 0.1}}}, {"steps", 3}, {"_comment", "ignored"}}, "run.json");
  c.get<double>("optim.lr", 1e-4);
  c.get<int64_t>("steps", 1);
  EXPECT_TRUE(throws_with([&] { c.finish(); }, {"run.json", "unknown key 'optim.lrr'", "did you mean 'optim.lr'"}));
}

TEST(TrainingConfig, WrongTypesAndRangesNameTheKey) {
  auto c = ConfigFile::from_json({{"steps", "many"}, {"lr", -1.0}, {"batch", 2.5}, {"mode", "fast"}}, "x.json");
  EXPECT_TRUE(throws_with([&] { c.get<int64_t>("steps", 1); }, {"x.json", "'steps'", "wrong type", "\"many\""}));
  EXPECT_TRUE(throws_with([&] { c.get_range("lr", 1e-4, 0.0, 1.0); }, {"'lr'", "-1", "[0, 1]"}));
  EXPECT_TRUE(throws_with([&] { c.get<int64_t>("batch", 1); }, {"'batch'", "2.5"}));
  EXPECT_TRUE(throws_with([&] { c.get_choice("mode", "scm", {"scm", "ladd"}); }, {"'mode'", "fast", "scm, ladd"}));
}

TEST(TrainingConfig, BadFilesAndOverridesAreClearErrors) {
  auto dir = temp_dir("cfg_bad");
  EXPECT_TRUE(throws_with([&] { ConfigFile::load(dir + "/missing.json"); }, {"cannot open config file", "missing.json"}));
  auto broken = write_file(dir + "/broken.json", "{\"steps\": 3,,}");
  EXPECT_TRUE(throws_with([&] { ConfigFile::load(broken); }, {"broken.json", "not valid JSON"}));
  auto list = write_file(dir + "/list.json", "[1, 2]");
  EXPECT_TRUE(throws_with([&] { ConfigFile::load(list); }, {"list.json", "JSON object"}));
  EXPECT_TRUE(throws_with([&] { ConfigFile::load("", {"novalue"}); }, {"override 'novalue'", "key=value"}));
}

TEST(TrainingConfig, CommandLineFlagsMapToKeysAndUnknownFlagsSuggest) {
  // The training commands' options on CLI11, parsed as sprint-train parses them.
  auto parse = [](std::vector<std::string> args, CommandLine& cl) {
    CLI::App app;
    add_command_line_options(app, cl, {"steps", "data.dir"});
    std::reverse(args.begin(), args.end());  // CLI11 takes a vector in reverse order
    app.parse(args);
    reject_unknown_arguments(app, {"steps", "data.dir"});
  };
  CommandLine cl;
  parse({"--config", "a.json", "--steps", "5", "--data-dir=d", "--set", "x.y=1", "--resume", "--set=steps=7"}, cl);
  EXPECT_EQ(cl.config_file, "a.json");
  EXPECT_TRUE(cl.resume);
  // Command-line order, so the later setting of a key wins.
  EXPECT_EQ(cl.overrides, (std::vector<std::string>{"steps=5", "data.dir=d", "x.y=1", "steps=7"}));
  CommandLine typo;
  EXPECT_TRUE(throws_with([&] { parse({"--stepz", "5"}, typo); },
                          {"unknown option '--stepz'", "did you mean '--steps'"}));
  CommandLine typo_eq;
  EXPECT_TRUE(throws_with([&] { parse({"--stepz=5"}, typo_eq); }, {"unknown option '--stepz'"}));
  CommandLine missing;
  EXPECT_TRUE(throws_with([&] { parse({"--steps"}, missing); }, {"--steps"}));
}

// ---- checkpoints -----------------------------------------------------------------------------------------------

TEST(TrainingCheckpoint, SaveAndLoadRestoreModulesOptimiserAndGeneratorExactly) {
  auto dir = temp_dir("ckpt_roundtrip");
  TinyNet net;
  torch::optim::AdamW opt(net.parameters(), torch::optim::AdamWOptions(1e-2));
  auto gen = make_generator(5);
  auto step_once = [&] {
    opt.zero_grad();
    net.lin->forward(randn(gen, {8, 4})).pow(2).mean().backward();
    opt.step();
  };
  step_once();
  CheckpointContents c;
  c.modules["net"] = &net;
  c.optimizers["opt"] = &opt;
  c.generators["gen"] = &gen;
  c.extra = {{"phase", "D"}};
  {
    RunFolder run(dir, false);
    run.save_checkpoint(1, c);
  }
  // Continue the original for 3 steps and record the result.
  for (int i = 0; i < 3; ++i) step_once();
  auto expected = net.lin->weight.detach().clone();

  // A fresh net/optimiser/generator resumed from the checkpoint must reproduce it bit for bit.
  TinyNet net2;
  torch::optim::AdamW opt2(net2.parameters(), torch::optim::AdamWOptions(1e-2));
  auto gen2 = make_generator(999);
  CheckpointContents c2;
  c2.modules["net"] = &net2;
  c2.optimizers["opt"] = &opt2;
  c2.generators["gen"] = &gen2;
  RunFolder run2(dir, true);
  EXPECT_EQ(run2.load_latest(c2), 1);
  EXPECT_EQ(c2.extra["phase"], "D");
  for (int i = 0; i < 3; ++i) {
    opt2.zero_grad();
    net2.lin->forward(randn(gen2, {8, 4})).pow(2).mean().backward();
    opt2.step();
  }
  EXPECT_TRUE(torch::equal(net2.lin->weight.detach(), expected));
}

TEST(TrainingCheckpoint, RunFolderRefusesToOverwriteOrToResumeNothing) {
  auto dir = temp_dir("ckpt_guard");
  EXPECT_TRUE(throws_with([&] { RunFolder r(dir, true); }, {"--resume", "no checkpoint"}));
  TinyNet net;
  CheckpointContents c;
  c.modules["net"] = &net;
  RunFolder(dir, false).save_checkpoint(3, c);
  EXPECT_TRUE(throws_with([&] { RunFolder r(dir, false); }, {"already holds a run", "--resume"}));
}

TEST(TrainingCheckpoint, KeepsOnlyTheNewestAndLatestNamesTheLast) {
  auto dir = temp_dir("ckpt_keep");
  TinyNet net;
  CheckpointContents c;
  c.modules["net"] = &net;
  RunFolder run(dir, false);
  for (int s : {1, 2, 3, 4}) run.save_checkpoint(s, c, 2);
  std::vector<std::string> names;
  for (auto& e : fs::directory_iterator(fs::path(dir) / "checkpoints")) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"latest", "step-0000003", "step-0000004"}));
  std::ifstream in(fs::path(dir) / "checkpoints" / "latest");
  std::string latest;
  in >> latest;
  EXPECT_EQ(latest, "step-0000004");
}

TEST(TrainingCheckpoint, AFullDiskWhileSavingLeavesTheLatestCheckpointIntact) {
  auto dir = temp_dir("ckpt_full_disk");
  TinyNet net;
  torch::NoGradGuard ng;
  net.lin->weight.fill_(1.0);
  CheckpointContents c;
  c.modules["net"] = &net;
  RunFolder(dir, false).save_checkpoint(1, c);
  // Step 2 has a big tensor; a child process saves it with a file-size limit that the write exceeds (the kernel's
  // EFBIG, as a full disk gives ENOSPC: both are write errors).
  TinyNet big;
  big.lin->weight.fill_(2.0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{4096, 4096};
    setrlimit(RLIMIT_FSIZE, &lim);
    auto huge = torch::ones({64, 1024});
    big.register_buffer("huge", huge);
    CheckpointContents cb;
    cb.modules["net"] = &big;
    try {
      RunFolder(dir, true).save_checkpoint(2, cb);
    } catch (const std::exception& e) {
      const std::string msg = e.what();
      _exit(msg.find("previous checkpoint is still the latest") != std::string::npos ? 42 : 43);
    }
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 42) << "the save must fail with a message saying the old checkpoint is kept";
  // latest still names step 1, which loads, and no temporary folder is left behind.
  TinyNet back;
  CheckpointContents cr;
  cr.modules["net"] = &back;
  RunFolder run(dir, true);
  EXPECT_EQ(run.load_latest(cr), 1);
  EXPECT_TRUE(torch::all(back.lin->weight == 1.0).item<bool>());
  for (auto& e : fs::directory_iterator(fs::path(dir) / "checkpoints"))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(TrainingCheckpoint, ACheckpointFromAnotherModelIsRejectedByName) {
  auto dir = temp_dir("ckpt_mismatch");
  TinyNet net;
  CheckpointContents c;
  c.modules["net"] = &net;
  RunFolder(dir, false).save_checkpoint(1, c);
  struct Other : torch::nn::Module {
    Other() { lin = register_module("lin", torch::nn::Linear(5, 3)); }
    torch::nn::Linear lin{nullptr};
  } other;
  CheckpointContents co;
  co.modules["net"] = &other;
  RunFolder run(dir, true);
  EXPECT_TRUE(throws_with([&] { run.load_latest(co); }, {"net/lin.weight", "expected [3, 5]", "got [3, 4]"}));
}

// ---- NaN, EMA, metrics ---------------------------------------------------------------------------------------------

TEST(TrainingRun, NonFiniteTermsStopWithStepAndTerms) {
  EXPECT_NO_THROW(check_finite(3, {{"loss", 0.5}, {"grad_norm", 2.0}}));
  try {
    check_finite(17, {{"loss_scm", 0.25}, {"loss_adv", std::nan("")}});
    FAIL() << "no exception";
  } catch (const NonFiniteError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("step 17"), std::string::npos) << m;
    EXPECT_NE(m.find("loss_adv=nan"), std::string::npos) << m;
    EXPECT_NE(m.find("loss_scm=0.25"), std::string::npos) << m;
  }
  EXPECT_THROW(check_finite(1, {{"grad_norm", INFINITY}}), NonFiniteError);
}

TEST(TrainingRun, EmaFollowsTheDecayFormula) {
  TinyNet net;
  torch::NoGradGuard ng;
  net.lin->weight.fill_(0.0);
  Ema ema(net, 0.9);
  net.lin->weight.fill_(1.0);
  ema.update(net);  // 0.9 * 0 + 0.1 * 1
  ema.update(net);  // 0.9 * 0.1 + 0.1 * 1 = 0.19
  TinyNet out;
  ema.copy_to(out);
  EXPECT_NEAR(out.lin->weight[0][0].item<double>(), 0.19, 1e-6);  // float32 arithmetic
  EXPECT_THROW(Ema(net, 1.0), sprint::Error);
}

TEST(TrainingRun, MetricsAreTruncatedBackToTheResumedStep) {
  auto dir = temp_dir("metrics_trunc");
  RunFolder run(dir, false);
  for (int s = 1; s <= 5; ++s) run.log_metrics(s, {{"loss", 1.0 / s}});
  run.truncate_metrics_after(3);
  std::ifstream in(fs::path(dir) / "metrics.jsonl");
  int lines = 0;
  std::string line;
  while (std::getline(in, line)) ++lines;
  EXPECT_EQ(lines, 3);
  run.plot_losses({"loss"});
  EXPECT_GT(fs::file_size(fs::path(dir) / "loss.png"), 1000u);
}

TEST(TrainingRun, GradientClippingScalesToTheLimitAndReportsTheNorm) {
  auto p = torch::zeros({2}, torch::requires_grad());
  (p * torch::tensor({3.0f, 4.0f})).sum().backward();
  EXPECT_NEAR(clip_gradients({p}, 1.0), 5.0, 1e-6);
  EXPECT_NEAR(p.grad().norm().item<double>(), 1.0, 1e-5);
}

// ---- data ----------------------------------------------------------------------------------------------------------

TEST(TrainingData, LoadsSplitsAndMakesDeterministicBatches) {
  auto dir = tiny_dataset("data_ok");
  auto train = ImageCaptionDataset::load(dir, "train");
  auto held = ImageCaptionDataset::load(dir, "heldout");
  EXPECT_EQ(train.size(), 4);
  EXPECT_EQ(held.size(), 1);
  EXPECT_EQ(train.item(0).captions.front(), "disc 0");
  // The batch of a step depends only on (size, batch, step, seed); epochs cover every item once.
  EXPECT_EQ(batch_indices(4, 3, 5, 9), batch_indices(4, 3, 5, 9));
  auto e0 = batch_indices(4, 4, 0, 9);
  std::sort(e0.begin(), e0.end());
  EXPECT_EQ(e0, (std::vector<int64_t>{0, 1, 2, 3}));
  auto g1 = make_generator(3), g2 = make_generator(3);
  AugmentOptions aug;
  PictureEdgeOptions edges;
  edges.canvas = 64;
  auto b1 = make_batch(train, {0, 1, 2}, 16, g1, aug, true, edges);
  auto b2 = make_batch(train, {0, 1, 2}, 16, g2, aug, true, edges);
  EXPECT_TRUE(torch::equal(b1.images, b2.images));
  EXPECT_TRUE(torch::equal(b1.conditions, b2.conditions));
  EXPECT_EQ(b1.images.sizes(), (std::vector<int64_t>{3, 3, 16, 16}));
  EXPECT_GE(b1.images.min().item<float>(), -1.0f);
  EXPECT_LE(b1.images.max().item<float>(), 1.0f);
}

TEST(TrainingData, MissingAndCorruptFilesAreNamed) {
  auto dir = tiny_dataset("data_bad");
  EXPECT_TRUE(throws_with([&] { ImageCaptionDataset::load(dir + "/nope", "train"); }, {"nope", "does not exist"}));
  EXPECT_TRUE(throws_with([&] { ImageCaptionDataset::load(dir, "validation"); }, {"split 'validation'"}));
  write_file(dir + "/images/item1.png", "not a png");
  EXPECT_TRUE(throws_with([&] { ImageCaptionDataset::load(dir, "train"); }, {"manifest.jsonl:2", "item1.png", "not a PNG"}));
  fs::remove(dir + "/images/item1.png");
  EXPECT_TRUE(throws_with([&] { ImageCaptionDataset::load(dir, "train"); }, {"item1.png", "No such file"}));
  write_file(dir + "/manifest.jsonl", "{\"id\": \"a\"}\n");
  EXPECT_TRUE(throws_with([&] { ImageCaptionDataset::load(dir, "train"); }, {"manifest.jsonl:1", "needs id, file, split"}));
  write_file(dir + "/manifest.jsonl", "{oops\n");
  EXPECT_TRUE(throws_with([&] { ImageCaptionDataset::load(dir, "train"); }, {"manifest.jsonl:1", "not valid JSON"}));
}

// ---- picture -> scribble -------------------------------------------------------------------------------------------

TEST(PictureEdges, ADiscGivesItsOutlineNotItsInside) {
  auto pic = disc_picture(64, 32, 32, 20, {200, 40, 40});
  PictureEdgeOptions o;
  o.canvas = 256;
  auto mask = picture_to_stroke_mask(pic, o);
  ASSERT_EQ(mask.sizes(), (std::vector<int64_t>{256, 256}));
  // canvas scale 4: the rim is at radius ~80 px from (128, 128); the centre and the far corner are empty.
  EXPECT_EQ(mask[128][128].item<uint8_t>(), 0);
  EXPECT_EQ(mask[5][5].item<uint8_t>(), 0);
  EXPECT_EQ(mask[128][128 + 80].item<uint8_t>(), 255);
  EXPECT_EQ(mask[128 - 80][128].item<uint8_t>(), 255);
  auto map = picture_to_scribble(pic, o);
  EXPECT_EQ(map[128][128].item<uint8_t>(), 0);
  EXPECT_EQ(map[128][128 + 80].item<uint8_t>(), 255);
  EXPECT_TRUE(torch::equal(map, picture_to_scribble(pic, o)));  // deterministic
}

TEST(PictureEdges, BlankPaperHasNoLinesAndBadInputIsNamed) {
  auto paper = torch::full({32, 32, 3}, 255, torch::kUInt8);
  EXPECT_EQ(picture_to_scribble(paper).sum().item<int64_t>(), 0);
  EXPECT_TRUE(throws_with([] { picture_to_stroke_mask(torch::zeros({8, 8}, torch::kUInt8)); }, {"(H, W, 3)"}));
  EXPECT_TRUE(throws_with([] { picture_to_stroke_mask(torch::zeros({8, 8, 3})); }, {"uint8"}));
  PictureEdgeOptions o;
  o.pen_width = 0;
  EXPECT_TRUE(throws_with([&] { picture_to_stroke_mask(paper, o); }, {"pen_width"}));
}
