// Shared by the slow tests that run sprint-train as a user does (test_training_cli.cpp, test_training_dist.cpp):
// spawning it with a log file and extra environment, a tiny dataset of coloured discs and a tiny autoencoder config.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "sprint/image_io.h"
#include "test_paths.h"
#include "test_util.h"

extern char** environ;

namespace sprint::test::cli {

namespace fs = std::filesystem;

inline const std::string kTrain = std::string(SPRINT_BINARY_DIR) + "/bin/sprint-train";

// The parent's environment without any launch variable, plus `vars`.
inline std::vector<std::string> environment(const std::map<std::string, std::string>& vars) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const std::string k = kv.substr(0, kv.find('='));
    if (k == "RANK" || k == "WORLD_SIZE" || k == "MASTER_ADDR" || k == "MASTER_PORT" || k == "LOCAL_RANK") continue;
    env.push_back(kv);
  }
  for (const auto& [k, v] : vars) env.push_back(k + "=" + v);
  return env;
}

inline pid_t spawn(std::vector<std::string> args, const std::string& log, const std::map<std::string, std::string>& vars) {
  args.insert(args.begin(), kTrain);
  const auto env = environment(vars);
  std::fflush(nullptr);  // else the child's freopen writes the parent's buffered output a second time
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stderr);
    (void)f;
    if (!std::freopen(log.c_str(), "a", stdout)) _exit(126);
    std::vector<char*> argv, envp;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  return pid;
}

inline int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Run {
  int code;
  std::string log;
};

inline Run train(const std::vector<std::string>& args, const std::string& log,
          const std::map<std::string, std::string>& vars = {}) {
  int code = wait_exit(spawn(args, log, vars));
  return {code, slurp(log)};
}

// A tiny dataset of coloured discs (the last item held out); captions that allow flips, so augmentation runs.
inline std::string disc_dataset(const std::string& tag, int n = 6) {
  auto dir = temp_dir(tag);
  fs::create_directories(fs::path(dir) / "images");
  std::ofstream m(fs::path(dir) / "manifest.jsonl");
  for (int i = 0; i < n; ++i) {
    auto img = torch::full({32, 32, 3}, 255, torch::kUInt8);
    img.narrow(0, 6 + i, 14).narrow(1, 8, 12).select(2, i % 3).fill_(30 * i);
    const std::string id = std::string("d").append(std::to_string(i));
    sprint::write_png((fs::path(dir) / "images" / (id + ".png")).string(), img);
    m << "{\"id\": \"" << id << "\", \"file\": \"images/" << id << ".png\", \"captions\": [\"shape " << i
      << "\"], \"split\": \"" << (i == n - 1 ? "heldout" : "train") << "\"}\n";
  }
  return dir;
}

// A tiny autoencoder run config (16 px, f2c4), single-threaded, fast enough for dozens of steps per second.
inline std::string tiny_ae_config(const std::string& dir, const std::string& data) {
  const std::string file = dir + "/ae.json";
  std::ofstream(file) << R"({"data": {"dir": ")" << data << R"("}, "resolution": 16, "batch": 4, "seed": 3,
    "log_every": 1, "optim": {"lr": 3e-3}, "grad_clip": 1.0, "threads": 1,
    "model": {"in_channels": 3, "latent_channels": 4, "attention_head_dim": 4,
      "encoder_block_types": ["ResBlock", "ResBlock"], "decoder_block_types": ["ResBlock", "ResBlock"],
      "encoder_block_out_channels": [8, 16], "decoder_block_out_channels": [8, 16],
      "encoder_layers_per_block": [1, 1], "decoder_layers_per_block": [1, 1],
      "encoder_qkv_multiscales": [[], []], "decoder_qkv_multiscales": [[], []],
      "downsample_block_type": "Conv", "upsample_block_type": "interpolate",
      "decoder_norm_types": "rms_norm", "decoder_act_fns": "silu"}})";
  return file;
}

}  // namespace sprint::test::cli
