// What every training command shares: the run folder, atomic checkpoints with optimiser and RNG state, bit-identical
// --resume, NaN/Inf detection, gradient clipping, EMA, the progress line, JSONL metrics and the loss plot.
//
// Run folder layout (out/):
//   config.json              the effective config (file + overrides + defaults), written at the start
//   metrics.jsonl            one JSON object per logged step: {"step", "time_s", "<term>": value, ...}
//   loss.png                 the loss curves, redrawn at every checkpoint
//   samples/step-NNNNNNN.png sample grids
//   checkpoints/step-NNNNNNN/{modules.safetensors, optimizers.pt, state.json}
//   checkpoints/latest       the name of the newest complete checkpoint (written last, atomically)
//   model/                   the published model folder (diffusers layout), written at the end
// A checkpoint is assembled in a temporary folder, each file fsync'ed, then renamed into place; `latest` changes
// only after that. A crash or a full disk in the middle of a save leaves the previous checkpoint as `latest`.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace sprint::training {

// Thrown when a loss term or a gradient norm is not finite: names the step and every term's value.
class NonFiniteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws NonFiniteError("step 123: loss terms are not finite: scm=nan, adv=0.31") when any value is NaN or Inf.
void check_finite(int64_t step, const std::map<std::string, double>& terms);

// Exponential moving average of a module's parameters (buffers are copied). decay in (0, 1).
class Ema {
 public:
  Ema(const torch::nn::Module& module, double decay);
  void update(const torch::nn::Module& module);
  // Copies the averaged values into `module` (same structure as the one given to the constructor).
  void copy_to(torch::nn::Module& module) const;
  std::map<std::string, torch::Tensor>& shadow() { return shadow_; }
  double decay() const { return decay_; }

 private:
  double decay_;
  std::map<std::string, torch::Tensor> shadow_;
};

// A training run's state that checkpoints carry.
struct CheckpointContents {
  std::map<std::string, torch::nn::Module*> modules;        // saved under "<name>/<param key>"
  std::map<std::string, torch::optim::Optimizer*> optimizers;
  std::map<std::string, at::Generator*> generators;         // CPU generators (state saved bit-exactly)
  std::map<std::string, Ema*> emas;
  nlohmann::json extra = nlohmann::json::object();          // command-specific counters
};

class RunFolder {
 public:
  // Creates out/ (and subfolders). With resume == false an existing checkpoints/latest is an error (so a typo in
  // --out cannot overwrite a run); with resume == true it is required.
  // writer == false (a data-parallel rank other than 0): the same checks, but the folder is only read: nothing is
  // created, and save_checkpoint / log_metrics / plot_losses / truncate_metrics_after do nothing.
  RunFolder(std::string out, bool resume, bool writer = true);

  const std::string& out() const { return out_; }
  bool writer() const { return writer_; }
  std::string path(const std::string& rel) const;

  // Atomic save of a checkpoint for `step`; keeps the newest `keep` checkpoints. Returns the folder ("" when not
  // the writer).
  std::string save_checkpoint(int64_t step, const CheckpointContents& c, int keep = 3);
  // Loads checkpoints/latest into c; returns its step. Throws naming the file if something is missing, damaged or
  // does not fit, and names the newest earlier checkpoint that could be resumed instead.
  int64_t load_latest(CheckpointContents& c);
  bool has_checkpoint() const;

  // Appends one line to metrics.jsonl (flushed). With resume, lines after the resumed step are dropped first.
  void log_metrics(int64_t step, const std::map<std::string, double>& values);
  // Redraws loss.png from metrics.jsonl: one panel per listed term (log scale for positive series).
  void plot_losses(const std::vector<std::string>& terms) const;
  void truncate_metrics_after(int64_t step);

 private:
  int64_t load_checkpoint(CheckpointContents& c, const std::filesystem::path& folder);
  std::string out_;
  bool writer_ = true;
  double time_offset_s_ = 0;  // training time before a resume
  std::chrono::steady_clock::time_point start_;
};

// "[#####.....] 1234/5000  3.2 it/s  ETA 19m37s  loss 0.123" on stderr, redrawn at most every 0.5 s (a TTY) or
// printed every `every` steps (a pipe or a log file).
class Progress {
 public:
  Progress(int64_t first_step, int64_t total_steps, int64_t every = 50);
  void update(int64_t step, const std::map<std::string, double>& shown);
  void finish();

 private:
  int64_t first_, total_, every_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// Clips the global L2 norm of all gradients of `params` to `max_norm` (<= 0: no clipping) and returns the norm
// before clipping (NaN/Inf when a gradient is not finite; the caller checks).
double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm);

// Writes a grid of images (N, 3, H, W) in [-1, 1] with `cols` columns to a PNG, each image upscaled by `upscale`
// (nearest). Rows may be labelled by the caller's file name only; no text rendering.
void save_image_grid(const std::string& file, const torch::Tensor& images, int64_t cols, int upscale = 1);

// Seconds as "1h02m03s" / "4m05s" / "6s".
std::string format_duration(double seconds);

}  // namespace sprint::training
