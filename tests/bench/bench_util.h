// Helpers shared by sprint-bench's modes: number formatting, tables, timing, temporary folders, the Python side of
// the diffusers comparisons, random weights.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sprint::bench {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// printf-formatted v; "-" for NaN.
std::string fmt(double v, const char* spec);

// Fixed one or two decimals for large values, 3 significant digits for small ones (the tiny model's GFLOP).
std::string num(double v, const char* large = "%.1f");

// Column-aligned "a | b | c" table; the first `text_cols` columns are left-aligned, the numbers right-aligned.
void print_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows,
                 size_t text_cols);

// Waits for the device's queued work (CUDA); nothing on the CPU.
void sync(const torch::Device& dev);

// Runs f warmup times untimed, then repeats timed runs (device-synchronised). Returns milliseconds per run.
template <typename F>
std::vector<double> time_runs(F&& f, int warmup, int repeats, const torch::Device& dev) {
  for (int i = 0; i < warmup; ++i) f();
  sync(dev);
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = Clock::now();
    f();
    sync(dev);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  return ms;
}

// The median of v; NaN when empty.
double median(std::vector<double> v);

// /proc/loadavg's three averages, or "unknown".
std::string load_average();

// A folder removed on every way out, errors included.
struct TempDir {
  fs::path path;  // empty: nothing to remove
  ~TempDir();
};

// A fresh folder under the system's temporary folder, named prefix-XXXXXX.
fs::path make_temp_dir(const std::string& prefix);

std::string shell_quote(const std::string& s);

// Why `python` cannot run `script`, or "" when it exists and can import every one of `modules`.
std::string python_problem(const std::string& python, const std::string& script, const std::vector<std::string>& modules);

// Runs `python script dir --json dir/diffusers_results.json` with the C++ side's malloc settings, echoing the command.
// Returns the results file, or nullopt with "<name> failed (...)" in *why.
std::optional<json> run_python_script(const std::string& python, const std::string& script, const std::string& name,
                                      const fs::path& dir, std::string* why);

// Seeded random weights with a small std, so activations stay O(1) through every stage in fp32: matrices and
// convolutions N(0, 1/fan_in), scalar and shift vectors N(0, 0.02^2), norm weights `norm_weight` (1 for diffusers'
// RMSNorm, 0 for Gemma's offset-from-1 RMSNorm). Every tensor is written, including ones a constructor leaves
// uninitialised (Gemma2Model) or zero (the ControlNet's zero projections, which would hide its cost in nothing).
void randomize(torch::nn::Module& m, double norm_weight);

}  // namespace sprint::bench
