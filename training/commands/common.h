// Shared plumbing of the sprint-train commands (internal to the tool).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sprint/training/config_file.h"
#include "sprint/training/data.h"
#include "sprint/training/distributed.h"
#include "sprint/training/run.h"
#include "sprint/training/sampling.h"

namespace sprint::training::cli {

// Keys every command reads, with their command-line flags (--out, --steps, ...).
extern const std::vector<std::string> kCommonFlags;

struct CommonSettings {
  std::string out;
  int64_t steps = 1000, batch = 16, seed = 0, threads = 0;
  int64_t log_every = 10, ckpt_every = 200, sample_every = 500, keep_checkpoints = 3;
  double lr = 1e-4, weight_decay = 0.0, beta1 = 0.9, beta2 = 0.999, grad_clip = 1.0, ema_decay = 0.0;
  std::string optimizer = "adamw";  // "optim.name": adamw | came (sprint/training/came.h)
  double beta3 = 0.9999;            // CAME's instability average
  std::string schedule = "constant";  // "optim.schedule": constant | cosine (after the warm-up, to 0 at 'steps')
  int64_t warmup_steps = 0;
  std::string data_dir;
  int64_t data_limit = 0;
  int64_t resolution = 64;
  AugmentOptions aug;
  PictureEdgeOptions edges;
  bool smoke = false;  // CI smoke mode: tiny model, few steps (set by the command's --smoke handling)
  double dist_timeout_s = 120;  // data parallel: a collective (or the rendezvous) fails after this many seconds
};

// Reads the common keys ("out", "steps", "batch", "seed", "threads", "log_every", "ckpt_every", "sample_every",
// "optim.*", "grad_clip", "ema.decay", "data.*", "resolution", "augment.*", "edges.*", "dist.timeout_s").
CommonSettings read_common(ConfigFile& cfg);

// Flow-matching time distribution ("flow.time" logit_normal | uniform, "flow.mean", "flow.std") and the sample-grid
// keys ("sample.steps", "sample.guidance", "sample.count") of the flow-matching commands.
struct FlowSettings {
  FlowTimeScheme scheme = FlowTimeScheme::LogitNormal;
  double mean = 0.0, std = 1.0;
  int sample_steps = 16;
  double sample_guidance = 4.5;
  int64_t sample_count = 8;
};
FlowSettings read_flow_settings(ConfigFile& cfg);

// Sets LibTorch's intra-op threads (threads <= 0: all cores) and returns the count.
int setup_threads(int64_t threads);

// The configured optimizer ("optim.name": AdamW, or CAME as SANA and SANA-Sprint train) over params with the common
// settings (lr, betas, weight decay; CAME also beta3).
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<torch::Tensor>& params,
                                                        const CommonSettings& s, double lr_override = 0);
// The learning rate at `step`: a linear warm-up, lr * min(1, (step + 1) / warmup), then constant (SANA's and
// SANA-Sprint's reference configs) or, with "optim.schedule" cosine, a half cosine from lr to 0 at `total` steps.
double scheduled_lr(double lr, int64_t step, int64_t warmup, const std::string& schedule = "constant",
                    int64_t total = 0);
// Sets every group of `opt` to scheduled_lr(...).
void set_lr(torch::optim::Optimizer& opt, double lr, int64_t step, int64_t warmup,
            const std::string& schedule = "constant", int64_t total = 0);

// Data parallel (sprint/training/distributed.h): joins the process group the RANK / WORLD_SIZE / MASTER_ADDR /
// MASTER_PORT variables describe (a single process when WORLD_SIZE is unset or 1), with s.dist_timeout_s; checks
// that the global `batch` splits evenly over the ranks and says so on stderr.
Distributed start_distributed(const CommonSettings& s, const std::string& command);
// After (re)loading, before the first step: every rank must start from the same step with the same data (checked
// across ranks) and the same weights: rank 0's module parameters, buffers and EMA shadows are broadcast to the
// others, as DDP does (some initialisations draw from LibTorch's process-global generator). No-op single-process.
void sync_replicas(const Distributed& dist, const CheckpointContents& state, int64_t start, int64_t data_size);

// A module being trained: its parameters, optimizer (make_optimizer) and optional EMA (s.ema_decay > 0 and with_ema), registered in
// `state` so checkpoints carry them: the module under `name`, the optimiser under `optimizer_name` (default `name`).
struct Trainee {
  std::vector<torch::Tensor> params;
  std::unique_ptr<torch::optim::Optimizer> opt;
  std::unique_ptr<Ema> ema;
};
Trainee add_trainee(CheckpointContents& state, const std::string& name, torch::nn::Module& module,
                    const CommonSettings& s, double lr = 0, bool with_ema = true, const std::string& optimizer_name = "");

// All parameters of a module that require grad.
std::vector<torch::Tensor> trainable(const torch::nn::Module& m);
int64_t count_params(const torch::nn::Module& m);

// Re-initialises a module's parameters for training from scratch, seeded: matrices xavier-uniform, biases 0,
// norm weights `norm_weight` (1 for diffusers RMSNorm, 0 for Gemma's offset form); then requires_grad(true).
void init_parameters(torch::nn::Module& m, uint64_t seed, double norm_weight);

// The main loop every command runs: resume, per-step callback, logging, checkpoints, samples, NaN stop.
struct LoopHooks {
  // One optimisation step; returns the logged terms (must include "loss").
  std::function<std::map<std::string, double>(int64_t step)> step;
  std::function<void(int64_t step, const std::string& file)> samples;  // may be empty
  std::vector<std::string> plot_terms{"loss"};
  // Data parallel: the logged terms are averaged over the ranks (the global batch's values); only the run folder's
  // writer (rank 0) logs, draws samples and saves checkpoints. nullptr: a single process.
  const Distributed* dist = nullptr;
};
// Runs steps [start, s.steps). Checkpoints every ckpt_every steps and at the end.
void run_loop(RunFolder& run, CheckpointContents& state, const CommonSettings& s, int64_t start, LoopHooks& hooks);

// Writes the effective config to out/config.json (not over an existing one when resuming, where it must match).
// Nothing when `run` is not the writer (data-parallel ranks other than 0).
void record_config(RunFolder& run, const ConfigFile& cfg, bool resume);

// What every training command opens once its models are built, in this order: the data-parallel group
// (start_distributed), this rank's share of the batch, the run folder, the train and held-out splits of the dataset, and
// the effective config recorded in the run folder. Use as
//   RunSetup setup(s, cl, cfg, "pretrain");
//   auto& [dist, local_batch, first_row, run, data, held] = setup;
struct RunSetup {
  RunSetup(const CommonSettings& s, const CommandLine& cl, const ConfigFile& cfg, const std::string& command);
  Distributed dist;
  int64_t local_batch;
  int64_t first_row;
  RunFolder run;
  ImageCaptionDataset data;
  ImageCaptionDataset held;
};

}  // namespace sprint::training::cli
