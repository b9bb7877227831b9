// sprint-train data parallel (c10d Gloo, training/include/sprint/training/distributed.h), as a user launches it:
// one process per rank with RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT.
//   - 2 ranks with the global batch 16 (8 rows each) end with the same weights as 1 process with batch 16;
//   - a rank killed with -9 (or stopped) makes the other exit non-zero with "another rank probably died" within the
//     timeout (dist.timeout_s) plus a margin;
//   - bad launch variables get a clear message and a non-zero exit, at once.
// The helpers are copies of test_training_cli.cpp's (they live in its anonymous namespace), plus an environment.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "sprint/image_io.h"
#include "sprint/safetensors.h"
#include "sprint/training/data.h"
#include "sprint/training/distributed.h"
#include "sprint/training/sampling.h"
#include "test_paths.h"
#include "test_util.h"
#include "train_cli_util.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using sprint::test::temp_dir;
using namespace sprint::test::cli;

namespace {

// A free TCP port on the loopback (bound, read, closed: another process could take it in between, unlikely here).
int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    return 29500 + static_cast<int>(getpid() % 2000);
  }
  const int port = ntohs(a.sin_port);
  close(fd);
  return port;
}

std::map<std::string, std::string> rank_env(int rank, int world, int port) {
  return {{"RANK", std::to_string(rank)}, {"WORLD_SIZE", std::to_string(world)}, {"MASTER_ADDR", "127.0.0.1"},
          {"MASTER_PORT", std::to_string(port)}};
}


std::map<std::string, torch::Tensor> latest_checkpoint(const std::string& run) {
  std::string n;
  std::ifstream(run + "/checkpoints/latest") >> n;
  return sprint::safetensors::load_all(run + "/checkpoints/" + n + "/modules.safetensors");
}

std::vector<double> logged(const std::string& run, const std::string& term) {
  std::vector<double> out;
  std::ifstream in(run + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line)[term].get<double>());
  return out;
}

// Waits until `run`'s metrics.jsonl has at least `lines` lines or the process has exited; true when it has them.
bool wait_for_steps(const std::string& run, size_t lines, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    std::ifstream in(run + "/metrics.jsonl");
    size_t n = 0;
    std::string line;
    while (std::getline(in, line)) ++n;
    if (n >= lines) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// Waits for `pid` at most `seconds`; returns its exit code, or -1 (and kills it) when it is still running.
int wait_exit_within(pid_t pid, double seconds) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  wait_exit(pid);
  return -1;
}

bool skip_without_gloo() { return !sprint::training::distributed_available(); }

}  // namespace

// Two ranks with the global batch 16 (each builds and trains its 8 rows) against one process with batch 16, for 10
// AdamW steps with augmentation on. Equal up to the order of floating-point sums: one process takes the batch mean
// over 16 rows in one reduction, the ranks over 8 rows each and then (g0 + g1) / 2 through the allreduce; that
// changes the gradients in the last bits (~1e-7 relative), and 10 AdamW steps carry it into the weights. Measured
// here: max |difference| of the weights 1.2e-7 (printed by the test) against weights of size ~0.1-1 and an lr of
// 3e-3 per step. The tolerance 1e-4 (3% of one step's update; AdamW's normalised step can amplify a last-bit
// difference of a near-zero gradient up to ~lr) is far below what a real mistake (a wrong row, a missed average, a
// skipped augmentation draw) produces, which is of the order of the updates themselves (> 1e-3).
TEST(TrainingDist, TwoGlooRanksMatchOneProcessWithTheDoubledBatch) {
  if (skip_without_gloo()) GTEST_SKIP() << "built without c10d Gloo (libgloo-dev)";
  auto dir = temp_dir("dist_equiv");
  auto data = disc_dataset("dist_equiv_data");
  auto cfg = tiny_ae_config(dir, data);
  const std::vector<std::string> common = {"autoencoder", "--config", cfg, "--steps", "10", "--batch", "16",
                                           "--ckpt-every", "10", "--threads", "1"};
  auto one_args = common;
  one_args.insert(one_args.end(), {"--out", dir + "/one"});
  auto one = train(one_args, dir + "/one.log");
  ASSERT_EQ(one.code, 0) << one.log;

  const int port = free_port();
  auto two_args = common;
  two_args.insert(two_args.end(), {"--out", dir + "/two"});
  pid_t r1 = spawn(two_args, dir + "/two.r1.log", rank_env(1, 2, port));
  pid_t r0 = spawn(two_args, dir + "/two.r0.log", rank_env(0, 2, port));
  const int c0 = wait_exit_within(r0, 300), c1 = wait_exit_within(r1, 60);
  ASSERT_EQ(c0, 0) << slurp(dir + "/two.r0.log");
  ASSERT_EQ(c1, 0) << slurp(dir + "/two.r1.log");
  EXPECT_NE(slurp(dir + "/two.r0.log").find("rank 0 of 2, global batch 16 = 2 x 8"), std::string::npos);
  EXPECT_TRUE(fs::exists(dir + "/two/model/vae/diffusion_pytorch_model.safetensors"));

  auto a = latest_checkpoint(dir + "/one"), b = latest_checkpoint(dir + "/two");
  ASSERT_EQ(a.size(), b.size());
  double max_diff = 0;
  std::string worst;
  int64_t compared = 0;
  for (const auto& [k, v] : a) {
    ASSERT_TRUE(b.count(k)) << k;
    if (k.rfind("rng/", 0) == 0) {
      // The data generator advanced exactly as the single process's: every rank drew the whole batch's randomness.
      EXPECT_TRUE(torch::equal(v, b.at(k))) << k;
      continue;
    }
    const double d = (v.to(torch::kFloat64) - b.at(k).to(torch::kFloat64)).abs().max().item<double>();
    compared += v.numel();
    if (d > max_diff) max_diff = d, worst = k;
  }
  std::cout << "[ dist ] 2 ranks x 8 vs 1 x 16, 10 steps: max |weight difference| = " << max_diff << " (" << worst
            << ", " << compared << " values compared)\n";
  EXPECT_LT(max_diff, 1e-4) << worst;
  EXPECT_GT(compared, 1000);
  // The logged losses are the global batch's (the mean of the ranks' means).
  auto la = logged(dir + "/one", "loss"), lb = logged(dir + "/two", "loss");
  ASSERT_EQ(la.size(), 10u);
  ASSERT_EQ(lb.size(), 10u);
  for (size_t i = 0; i < la.size(); ++i) EXPECT_NEAR(la[i], lb[i], 1e-4 * std::abs(la[i])) << "step " << i + 1;
}

// kill -9 of one rank in the middle of a run: the other exits non-zero with the "another rank probably died"
// message within the timeout plus a margin (a dead peer's sockets close, so it is usually at once); then a rank
// that is stopped (SIGSTOP, alive but silent) makes its peer time out after dist.timeout_s.
TEST(TrainingDist, ADeadOrStoppedRankStopsTheOthersWithinTheTimeout) {
  if (skip_without_gloo()) GTEST_SKIP() << "built without c10d Gloo (libgloo-dev)";
  auto dir = temp_dir("dist_dead");
  auto data = disc_dataset("dist_dead_data");
  auto cfg = tiny_ae_config(dir, data);
  const double timeout = 8;
  for (const int victim : {1, 0}) {
    SCOPED_TRACE("killed rank " + std::to_string(victim));
    const std::string out = dir + "/kill" + std::to_string(victim);
    const std::vector<std::string> args = {"autoencoder", "--config", cfg, "--steps", "100000", "--batch", "8",
                                           "--ckpt-every", "100000", "--threads", "1", "--out", out,
                                           "--set", "dist.timeout_s=" + std::to_string(timeout)};
    const int port = free_port();
    pid_t pids[2];
    pids[1] = spawn(args, out + ".r1.log", rank_env(1, 2, port));
    pids[0] = spawn(args, out + ".r0.log", rank_env(0, 2, port));
    ASSERT_TRUE(wait_for_steps(out, 3, 120)) << slurp(out + ".r0.log") << slurp(out + ".r1.log");
    kill(pids[victim], SIGKILL);
    const auto t0 = Clock::now();
    EXPECT_EQ(wait_exit(pids[victim]), 128 + SIGKILL);
    const int survivor = 1 - victim;
    const int code = wait_exit_within(pids[survivor], timeout + 30);
    const double took = std::chrono::duration<double>(Clock::now() - t0).count();
    const std::string log = slurp(out + ".r" + std::to_string(survivor) + ".log");
    std::cout << "[ dist ] rank " << victim << " killed: rank " << survivor << " exited " << code << " after " << took
              << " s\n";
    EXPECT_EQ(code, 1) << log;
    EXPECT_LT(took, timeout + 30);
    EXPECT_NE(log.find("rank " + std::to_string(survivor) + ": "), std::string::npos) << log;
    EXPECT_NE(log.find("another rank probably died or stopped"), std::string::npos) << log;
  }
  {
    SCOPED_TRACE("stopped rank 1");
    const std::string out = dir + "/stop";
    const double short_timeout = 4;
    const std::vector<std::string> args = {"autoencoder", "--config", cfg, "--steps", "100000", "--batch", "8",
                                           "--ckpt-every", "100000", "--threads", "1", "--out", out,
                                           "--set", "dist.timeout_s=" + std::to_string(short_timeout)};
    const int port = free_port();
    pid_t r1 = spawn(args, out + ".r1.log", rank_env(1, 2, port));
    pid_t r0 = spawn(args, out + ".r0.log", rank_env(0, 2, port));
    ASSERT_TRUE(wait_for_steps(out, 3, 120)) << slurp(out + ".r0.log") << slurp(out + ".r1.log");
    kill(r1, SIGSTOP);
    const auto t0 = Clock::now();
    const int code = wait_exit_within(r0, short_timeout + 30);
    const double took = std::chrono::duration<double>(Clock::now() - t0).count();
    kill(r1, SIGKILL);
    wait_exit(r1);
    const std::string log = slurp(out + ".r0.log");
    std::cout << "[ dist ] rank 1 stopped: rank 0 exited " << code << " after " << took << " s (timeout "
              << short_timeout << " s)\n";
    EXPECT_EQ(code, 1) << log;
    EXPECT_GT(took, short_timeout * 0.8);
    EXPECT_LT(took, short_timeout + 30);
    EXPECT_NE(log.find("timed out after"), std::string::npos) << log;
    EXPECT_NE(log.find("another rank probably died or stopped"), std::string::npos) << log;
  }
}

TEST(TrainingDist, BadLaunchVariablesGetAClearMessage) {
  auto dir = temp_dir("dist_bad");
  auto data = disc_dataset("dist_bad_data");
  auto cfg = tiny_ae_config(dir, data);
  auto run = [&](const std::string& tag, std::map<std::string, std::string> vars, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"autoencoder", "--config", cfg, "--steps", "2", "--out", dir + "/" + tag};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto t0 = Clock::now();
    auto r = train(args, dir + "/" + tag + ".log", vars);
    const double took = std::chrono::duration<double>(Clock::now() - t0).count();
    EXPECT_LT(took, 60) << tag;
    return r;
  };
  const std::string port = std::to_string(free_port());
  auto range = run("range", {{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", port}});
  EXPECT_EQ(range.code, 1) << range.log;
  EXPECT_NE(range.log.find("RANK=2 is out of range for WORLD_SIZE=2 (ranks are 0..1)"), std::string::npos)
      << range.log;
  auto addr = run("addr", {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", port}});
  EXPECT_EQ(addr.code, 1) << addr.log;
  EXPECT_NE(addr.log.find("MASTER_ADDR is not set"), std::string::npos) << addr.log;
  auto badport = run("port", {{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "70000"}});
  EXPECT_EQ(badport.code, 1) << badport.log;
  EXPECT_NE(badport.log.find("MASTER_PORT=70000 is not a TCP port"), std::string::npos) << badport.log;
  auto world = run("world", {{"RANK", "0"}, {"WORLD_SIZE", "two"}});
  EXPECT_EQ(world.code, 1) << world.log;
  EXPECT_NE(world.log.find("WORLD_SIZE='two' is not an integer"), std::string::npos) << world.log;
  auto batch = run("batch", rank_env(0, 2, free_port()), {"--batch", "5"});
  EXPECT_EQ(batch.code, 1) << batch.log;
  EXPECT_NE(batch.log.find("'batch' = 5 is not a multiple of WORLD_SIZE = 2"), std::string::npos) << batch.log;
  if (skip_without_gloo()) {
    auto off = run("off", rank_env(0, 2, free_port()));
    EXPECT_EQ(off.code, 1) << off.log;
    EXPECT_NE(off.log.find("libgloo-dev"), std::string::npos) << off.log;
    return;
  }
  // Rank 0 alone: its rendezvous gives up after dist.timeout_s, saying a rank did not start.
  auto alone = run("alone", rank_env(0, 2, free_port()), {"--set", "dist.timeout_s=2"});
  EXPECT_EQ(alone.code, 1) << alone.log;
  EXPECT_NE(alone.log.find("rank 0: rendezvous of 2 ranks at MASTER_ADDR:MASTER_PORT = 127.0.0.1:"), std::string::npos)
      << alone.log;
  EXPECT_NE(alone.log.find("another rank probably died or did not start"), std::string::npos) << alone.log;
  // WORLD_SIZE=1 is a plain single process (no c10d, no MASTER_* needed).
  auto single = run("single", {{"RANK", "0"}, {"WORLD_SIZE", "1"}});
  EXPECT_EQ(single.code, 0) << single.log;
}

// The launch variables' validation, without processes.
TEST(TrainingDist, EnvironmentParsing) {
  using sprint::training::DistributedEnv;
  auto parse = [](std::map<std::string, std::string> vars) {
    return DistributedEnv::parse([vars](const char* k) -> const char* {
      auto it = vars.find(k);
      return it == vars.end() ? nullptr : it->second.c_str();
    });
  };
  auto single = parse({});
  EXPECT_EQ(single.world, 1);
  EXPECT_EQ(single.rank, 0);
  auto two = parse({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29500"}});
  EXPECT_EQ(two.rank, 1);
  EXPECT_EQ(two.world, 2);
  EXPECT_EQ(two.master_addr, "10.0.0.1");
  EXPECT_EQ(two.master_port, 29500);
  EXPECT_TRUE(sprint::test::throws_with([&] { parse({{"RANK", "1"}}); }, {"RANK=1 is out of range", "WORLD_SIZE is unset"}));
  EXPECT_TRUE(sprint::test::throws_with([&] { parse({{"RANK", "-1"}, {"WORLD_SIZE", "2"}}); }, {"RANK=-1 is out of range"}));
  EXPECT_TRUE(sprint::test::throws_with(
      [&] { parse({{"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}}); }, {"RANK is not set"}));
  EXPECT_TRUE(sprint::test::throws_with([&] { parse({{"WORLD_SIZE", "0"}}); }, {"WORLD_SIZE=0 must be between 1 and 65536"}));
  EXPECT_TRUE(sprint::test::throws_with(
      [&] { parse({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}); }, {"MASTER_PORT is not set"}));
  EXPECT_TRUE(sprint::test::throws_with(
      [&] { parse({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "80x"}}); },
      {"MASTER_PORT='80x' is not an integer"}));
  // A single process: slices are the whole tensor, collectives no-ops.
  sprint::training::Distributed d;
  auto t = torch::arange(6);
  EXPECT_TRUE(torch::equal(d.slice(t), t));
  EXPECT_EQ(d.local_batch(7), 7);
  EXPECT_EQ(d.average(2.5), 2.5);
}

// A rank's rows of a batch (make_batch_rows) are exactly those rows of the whole batch, and the generator ends where
// the whole batch leaves it: the augmentation of the skipped rows is drawn, not built.
TEST(TrainingDist, BatchRowsAreThoseRowsOfTheWholeBatch) {
  using namespace sprint::training;
  auto data = ImageCaptionDataset::load(disc_dataset("dist_rows_data", 8), "train", 0);
  // The first model's augmentation, and the sketch-faithful one (geometry, silhouette cuts, sketch style), whose
  // per-row draws come from a seed drawn for every row.
  AugmentOptions plain;
  plain.caption_dropout = 0.4;
  AugmentOptions v2 = plain;
  v2.max_rotate = 25;
  v2.max_stretch = 0.25;
  v2.elastic = 0.05;
  v2.shape_transfer = 0.5;
  v2.sketch.enabled = true;
  v2.sketch.outline_only = 0.3;
  v2.sketch.drop_inner = 0.4;
  v2.sketch.jitter = 0.01;
  v2.sketch.min_pen = 2;
  v2.sketch.max_pen = 7;
  v2.sketch.partial = 0.3;
  for (const auto& aug : {plain, v2}) {
    SCOPED_TRACE(aug.sketch.enabled ? "sketch-faithful augmentation" : "plain augmentation");
    sprint::PictureEdgeOptions edges;
    const std::vector<int64_t> idx = {0, 3, 1, 6, 2, 5, 4, 0};
    auto g_all = make_generator(11);
    auto all = make_batch(data, idx, 16, g_all, aug, true, edges);
    for (auto [first, count] : std::vector<std::pair<int64_t, int64_t>>{{0, 8}, {0, 4}, {4, 4}, {3, 2}, {7, 1}}) {
      SCOPED_TRACE("rows " + std::to_string(first) + " +" + std::to_string(count));
      auto g = make_generator(11);
      auto part = make_batch_rows(data, idx, first, count, 16, g, aug, true, edges);
      EXPECT_TRUE(torch::equal(part.images, all.images.narrow(0, first, count)));
      EXPECT_TRUE(torch::equal(part.conditions, all.conditions.narrow(0, first, count)));
      EXPECT_EQ(part.captions, std::vector<std::string>(all.captions.begin() + first, all.captions.begin() + first + count));
      EXPECT_EQ(part.indices, std::vector<int64_t>(idx.begin() + first, idx.begin() + first + count));
      EXPECT_TRUE(torch::equal(g.get_state(), g_all.get_state()));
    }
  }
  AugmentOptions aug;
  sprint::PictureEdgeOptions edges;
  const std::vector<int64_t> idx = {0, 3, 1, 6, 2, 5, 4, 0};
  auto g = make_generator(11);
  EXPECT_TRUE(sprint::test::throws_with([&] { make_batch_rows(data, idx, 6, 3, 16, g, aug, false, edges); },
                                        {"rows [6, 9) of a batch of 8"}));
}
