// sprint-train end to end, as a user runs it: bit-identical --resume, kill -9 and resume, bad input, and the smoke
// mode of the bundled model's recipe (every stage of training/configs/emoji for a few steps on a small slice of the
// real emoji dataset), whose student folder must load in the app's pipeline.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "sprint/error.h"
#include "sprint/image_io.h"
#include "sprint/pipeline.h"
#include "sprint/safetensors.h"
#include "sprint/scribble.h"
#include "test_paths.h"
#include "test_util.h"
#include "train_cli_util.h"

namespace fs = std::filesystem;
using sprint::test::temp_dir;
using namespace sprint::test::cli;

namespace {


std::vector<std::string> losses(const std::string& run_dir) {
  std::vector<std::string> out;
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    out.push_back(std::to_string(j["step"].get<int64_t>()) + ":" + j["loss"].dump());
  }
  return out;
}

void expect_same_weights(const std::string& a_run, const std::string& b_run) {
  auto latest = [](const std::string& r) {
    std::string n;
    std::ifstream(r + "/checkpoints/latest") >> n;
    return sprint::safetensors::load_all(r + "/checkpoints/" + n + "/modules.safetensors");
  };
  auto a = latest(a_run), b = latest(b_run);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) {
    ASSERT_TRUE(b.count(k)) << k;
    EXPECT_TRUE(torch::equal(v, b.at(k))) << k << " differs";
  }
}

}  // namespace

TEST(TrainingCli, ResumeContinuesBitIdentically) {
  auto dir = temp_dir("cli_resume");
  auto data = disc_dataset("cli_resume_data");
  auto cfg = tiny_ae_config(dir, data);
  auto a = train({"autoencoder", "--config", cfg, "--out", dir + "/a", "--steps", "12", "--ckpt-every", "4"}, dir + "/a.log");
  ASSERT_EQ(a.code, 0) << a.log;
  auto b1 = train({"autoencoder", "--config", cfg, "--out", dir + "/b", "--steps", "6", "--ckpt-every", "4"}, dir + "/b1.log");
  ASSERT_EQ(b1.code, 0) << b1.log;
  auto b2 = train({"autoencoder", "--config", cfg, "--out", dir + "/b", "--steps", "12", "--ckpt-every", "4", "--resume"},
                  dir + "/b2.log");
  ASSERT_EQ(b2.code, 0) << b2.log;
  EXPECT_NE(b2.log.find("steps 6 -> 12"), std::string::npos) << b2.log;
  // Every logged loss (printed with full precision) and every final tensor agree exactly: on the CPU with the same
  // thread count, a resumed run is the same computation.
  EXPECT_EQ(losses(dir + "/a"), losses(dir + "/b"));
  expect_same_weights(dir + "/a", dir + "/b");
}

TEST(TrainingCli, KillNineThenResumeMatchesAnUninterruptedRun) {
  auto dir = temp_dir("cli_kill");
  auto data = disc_dataset("cli_kill_data");
  auto cfg = tiny_ae_config(dir, data);
  const std::vector<std::string> common = {"autoencoder", "--config", cfg, "--steps", "60", "--ckpt-every", "5"};
  auto ref_args = common;
  ref_args.insert(ref_args.end(), {"--out", dir + "/ref"});
  ASSERT_EQ(train(ref_args, dir + "/ref.log").code, 0);

  std::vector<std::string> args = common;
  args.insert(args.end(), {"--out", dir + "/k"});
  pid_t pid = spawn(args, dir + "/k1.log", {});
  // Kill it once its second checkpoint is written, i.e. mid-run.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string n;
    std::ifstream(dir + "/k/checkpoints/latest") >> n;
    if (n >= "step-0000010") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(pid, SIGKILL);
  EXPECT_EQ(wait_exit(pid), 128 + SIGKILL) << "the run finished before it could be killed";
  auto r = train({"autoencoder", "--config", cfg, "--steps", "60", "--ckpt-every", "5", "--out", dir + "/k", "--resume"},
                 dir + "/k2.log");
  ASSERT_EQ(r.code, 0) << r.log;
  EXPECT_EQ(losses(dir + "/ref"), losses(dir + "/k"));
  expect_same_weights(dir + "/ref", dir + "/k");
}

TEST(TrainingCli, BadInputGetsAClearMessageAndANonZeroExit) {
  auto dir = temp_dir("cli_bad");
  auto data = disc_dataset("cli_bad_data");
  auto cfg = tiny_ae_config(dir, data);
  auto typo = train({"autoencoder", "--config", cfg, "--out", dir + "/t", "--set", "optim.lrr=1"}, dir + "/t.log");
  EXPECT_EQ(typo.code, 1);
  EXPECT_NE(typo.log.find("unknown key 'optim.lrr' (did you mean 'optim.lr'?)"), std::string::npos) << typo.log;
  auto range = train({"autoencoder", "--config", cfg, "--out", dir + "/r", "--batch", "0"}, dir + "/r.log");
  EXPECT_EQ(range.code, 1);
  EXPECT_NE(range.log.find("'batch' = 0 must be in"), std::string::npos) << range.log;
  auto nodata = train({"autoencoder", "--config", cfg, "--out", dir + "/n", "--data-dir", dir + "/nowhere"}, dir + "/n.log");
  EXPECT_EQ(nodata.code, 1);
  EXPECT_NE(nodata.log.find("does not exist"), std::string::npos) << nodata.log;
  auto cmd = train({"autoencodr"}, dir + "/c.log");
  EXPECT_EQ(cmd.code, 2);
  EXPECT_NE(cmd.log.find("unknown command 'autoencodr'"), std::string::npos) << cmd.log;
  // A checkpoint whose weights went bad: the resumed run stops at its first step, naming the step and the terms.
  ASSERT_EQ(train({"autoencoder", "--config", cfg, "--out", dir + "/nan", "--steps", "4", "--ckpt-every", "4"},
                  dir + "/nan1.log").code, 0);
  const std::string ck = dir + "/nan/checkpoints/step-0000004/modules.safetensors";
  auto sd = sprint::safetensors::load_all(ck);
  bool poisoned = false;
  for (auto& [k, v] : sd)
    if (!poisoned && k.rfind("vae/encoder.conv_in.weight", 0) == 0) v.fill_(NAN), poisoned = true;
  ASSERT_TRUE(poisoned);
  sprint::safetensors::save(ck, sd);
  auto nan = train({"autoencoder", "--config", cfg, "--out", dir + "/nan", "--steps", "8", "--resume"}, dir + "/nan2.log");
  EXPECT_EQ(nan.code, 1) << nan.log;  // one scheme for every program: 1 is a runtime error
  EXPECT_NE(nan.log.find("step 5: a loss term or gradient norm is not finite"), std::string::npos) << nan.log;
  EXPECT_NE(nan.log.find("the last checkpoint is intact"), std::string::npos) << nan.log;
}

// The bundled model's recipe in smoke mode: the real configs (training/configs/emoji), the real dataset builder on
// a slice of the emoji font, 2-3 steps per stage. Skips when the dataset builder cannot run here.
TEST(TrainingCli, SmokeOfTheBundledModelRecipeLoadsInThePipeline) {
  const std::string py = SPRINT_PYTHON_EXE;
  if (py.empty() || !fs::exists(py)) GTEST_SKIP() << "no pinned Python (SPRINT_PYTHON) to build the dataset";
  if (!fs::exists("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"))
    GTEST_SKIP() << "fonts-noto-color-emoji is not installed (./bootstrap.sh deps installs it)";
  auto dir = temp_dir("cli_smoke");
  const std::string src = SPRINT_SOURCE_DIR;
  const std::string data = dir + "/data";
  ASSERT_EQ(std::system((py + " " + src + "/training/data/build_emoji_dataset.py --out " + data +
                         " --limit 40 --heldout-fraction 0.2 > " + dir + "/data.log 2>&1").c_str()), 0)
      << slurp(dir + "/data.log");
  ASSERT_EQ(std::system((py + " " + src + "/training/data/train_tokenizer.py --captions " + data + "/captions.txt --out " +
                         dir + "/tok --vocab-size 320 > " + dir + "/tok.log 2>&1").c_str()), 0)
      << slurp(dir + "/tok.log");
  const std::string cfgs = src + "/training/configs/emoji128/";
  const std::vector<std::string> quick = {"--data-dir", data, "--threads", "2", "--steps", "2", "--batch", "8",
                                          "--ckpt-every", "1", "--sample-every", "2"};
  // sprint-train CMD --config CONFIG, the quick flags, then `extra` (a later flag wins), logged to dir/LOG.
  auto run_quick = [&](const std::string& cmd, const std::string& config, const std::vector<std::string>& extra,
                       const std::string& log) {
    std::vector<std::string> a{cmd, "--config", config};
    a.insert(a.end(), quick.begin(), quick.end());
    a.insert(a.end(), extra.begin(), extra.end());
    return train(a, dir + "/" + log);
  };
  auto stage = [&](const std::string& cmd, const std::string& cfg, std::vector<std::string> extra) {
    extra.insert(extra.begin(), {"--out", dir + "/" + cmd});
    auto r = run_quick(cmd, cfgs + cfg, extra, cmd + ".log");
    EXPECT_EQ(r.code, 0) << cmd << ":\n" << r.log;
    return r.code == 0;
  };
  ASSERT_TRUE(stage("autoencoder", "autoencoder.json", {}));
  ASSERT_TRUE(stage("pretrain", "teacher.json",
                    {"--set", "vae=" + dir + "/autoencoder/model/vae", "--set", "tokenizer=" + dir + "/tok/tokenizer.model",
                     "--set", "sample.steps=2"}));
  // Fine-tune mode, as for an official checkpoint: a source teacher without QK norm and with the sparse timestep
  // (timestep_scale 1000), then `init_from` it at lr 0 for one step. The loaded weights must come through unchanged
  // (AdamW with lr 0 moves nothing), the new QK-norm weights start at 1, and the saved config has both stabilisers.
  ASSERT_TRUE(stage("pretrain", "teacher.json",
                    {"--out", dir + "/plain", "--set", "vae=" + dir + "/autoencoder/model/vae", "--set",
                     "tokenizer=" + dir + "/tok/tokenizer.model", "--set", "sample.steps=2", "--set",
                     "transformer.qk_norm=null", "--set", "transformer.timestep_scale=1000", "--set",
                     "finetune.qk_norm=false", "--set", "finetune.dense_timestep=false"}));
  const std::vector<std::string> finetune = {"--out", dir + "/finetune", "--set", "vae=" + dir + "/autoencoder/model/vae",
                                             "--set", "init_from=" + dir + "/plain/model", "--set", "sample.steps=2",
                                             "--set", "optim.lr=0", "--steps", "1"};
  {  // the teacher config still names an architecture: that is refused with the reason
    auto r = run_quick("pretrain", cfgs + "teacher.json", finetune, "finetune-refused.log");
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.log.find("remove the 'transformer' and 'text_encoder' sections"), std::string::npos) << r.log;
  }
  {
    auto j = nlohmann::json::parse(slurp(cfgs + "teacher.json"), nullptr, true, /*ignore_comments=*/true);
    j.erase("transformer");
    j.erase("text_encoder");
    j.erase("tokenizer");
    std::ofstream(dir + "/finetune.json") << j.dump(2);
  }
  {
    auto r = run_quick("pretrain", dir + "/finetune.json", finetune, "finetune.log");
    ASSERT_EQ(r.code, 0) << r.log;
  }
  {
    auto src_cfg = nlohmann::json::parse(slurp(dir + "/plain/model/transformer/config.json"));
    auto ft_cfg = nlohmann::json::parse(slurp(dir + "/finetune/model/transformer/config.json"));
    EXPECT_TRUE(src_cfg["qk_norm"].is_null());
    EXPECT_EQ(src_cfg["timestep_scale"].get<double>(), 1000.0);
    EXPECT_EQ(ft_cfg["qk_norm"], "rms_norm_across_heads");
    EXPECT_EQ(ft_cfg["timestep_scale"].get<double>(), 1.0);
    for (const std::string part : {"transformer/diffusion_pytorch_model", "text_encoder/model"}) {
      auto a = sprint::safetensors::load_all(dir + "/plain/model/" + part + ".safetensors");
      auto b = sprint::safetensors::load_all(dir + "/finetune/model/" + part + ".safetensors");
      int64_t norms = 0;
      for (const auto& [k, v] : b) {
        if (k.find("norm_q") != std::string::npos || k.find("norm_k") != std::string::npos) {
          EXPECT_FALSE(a.count(k)) << k << " should be new in the fine-tuned model";
          EXPECT_TRUE(torch::equal(v, torch::ones_like(v))) << k << " should start at 1";
          ++norms;
          continue;
        }
        ASSERT_TRUE(a.count(k)) << part << ": " << k << " is not in the source model";
        EXPECT_TRUE(torch::equal(v, a.at(k))) << part << ": " << k << " changed at lr 0";
      }
      if (part.rfind("transformer", 0) == 0) EXPECT_GT(norms, 0) << "no QK-norm weights were added";
      else EXPECT_EQ(a.size(), b.size());
    }
  }
  ASSERT_TRUE(stage("controlnet", "controlnet.json", {"--set", "teacher=" + dir + "/pretrain/model", "--set", "sample.steps=2"}));
  ASSERT_TRUE(stage("distill", "distill.json", {"--set", "teacher=" + dir + "/controlnet/model"}));
  for (const char* f : {"loss.png", "metrics.jsonl", "config.json", "samples/step-0000002.png"})
    EXPECT_TRUE(fs::exists(dir + "/distill/" + f)) << f;

  // The student folder is what the app loads: the pipeline reads it unchanged and draws a 128x128 picture.
  auto p = sprint::Pipeline::load(dir + "/distill/model");
  auto sketch = torch::full({256, 256, 3}, 255, torch::kUInt8);
  sketch.narrow(0, 60, 8).narrow(1, 40, 160).fill_(0);
  sprint::GenerateRequest req;
  req.condition = sprint::GenerateCondition{sprint::sketch_to_scribble(sketch), 1.0, 1};
  req.prompt = "red apple";
  req.steps = 1;
  req.width = req.height = 128;
  auto out = p->generate(req);
  EXPECT_EQ(out.image.sizes(), (std::vector<int64_t>{1, 3, 128, 128}));
  EXPECT_TRUE(torch::isfinite(out.image).all().item<bool>());
}
