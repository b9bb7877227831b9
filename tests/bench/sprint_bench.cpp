// sprint-bench: SanaTransformer2DModel forward latency at batch 1 (tiny fixture model, 0.6B Sprint at 512² and
// 1024²), achieved GFLOP/s from an analytic FLOP count next to a matmul peak measured in the same run, and with
// --compare the same numbers for diffusers on the same weights, inputs and thread count (plus an output NMSE, which
// makes the comparison a full-size parity check as well).
//
// A tool, not a test: nothing here asserts; the numbers are for people. Modes: transformer (default); --pipeline:
// per-stage latency of the whole sketch-to-image pipeline, cold and warm, against diffusers' SanaSprintPipeline
// (see "pipeline mode" below); --train: training-step throughput (teacher flow matching, distill G and D steps)
// against the same steps in PyTorch/diffusers, with a first-step loss check (see "training-step mode" below).
#include <torch/cuda.h>
#include <torch/torch.h>

#include <execinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "conv_bench.h"
#include "sprint/atomic_file.h"
#include "sprint/config.h"
#include "sprint/controlnet.h"
#include "sprint/error.h"
#include "sprint/model_folder.h"
#include "sprint/pipeline.h"
#include "sprint/runtime.h"
#include "sprint/safetensors.h"
#include "sprint/scribble.h"
#include "sprint/text_encoder.h"
#include "sprint/tokenizer.h"
#include "sprint/training/ladd.h"
#include "sprint/training/run.h"
#include "sprint/training/sampling.h"
#include "sprint/training/scm_loss.h"
#include "sprint/training/trigflow.h"
#include "sprint/transformer.h"
#include "sprint/vae.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint64_t kWeightSeed = 0;     // torch::manual_seed before building a random model
constexpr uint64_t kInputSeed = 1000;   // + case index, before drawing that case's inputs
constexpr double kFlowTime = 0.7;       // flow time s in [0, 1], as the SCM wrapper passes it
constexpr double kGuidance = 0.45;      // 4.5 x guidance_embeds_scale 0.1 (forward takes it pre-scaled)

struct Case {
  std::string name;   // what --only selects and the sub-folder --save-weights writes
  std::string model;  // cases with the same model share one set of weights (built once, saved once)
  int64_t height, width, text_len;  // latent grid and number of text tokens
  int text_valid;                   // leading unmasked text tokens (the tokenizer pads on the right)
  int cpu_warmup, cpu_repeats, cuda_warmup, cuda_repeats;
};

// Repeat counts keep a default CPU run under ~3 minutes on 2 cores; CUDA runs are short, so they repeat more.
const std::vector<Case> kCases = {
    {"tiny", "tiny", 4, 6, 7, 5, 5, 50, 10, 100},
    {"512", "sprint_600m", 16, 16, 300, 120, 1, 3, 3, 20},
    {"1024", "sprint_600m", 32, 32, 300, 120, 1, 2, 3, 20},
};

struct Options {
  enum class Mode { Transformer, Pipeline, Train, Conv } mode = Mode::Transformer;
  int repeats = 0, warmup = -1, threads = 0;  // 0 / -1: per-case defaults, all cores
  std::set<std::string> only;
  std::string json_path, save_dir;
  std::string python = SPRINT_BENCH_PYTHON, script = SPRINT_BENCH_SCRIPT, tiny_dir = SPRINT_BENCH_TINY_DIR;
  bool compare = false, keep = false;
  // --pipeline
  std::string pipeline_script = SPRINT_BENCH_PIPELINE_SCRIPT, tiny_pipeline = SPRINT_BENCH_TINY_PIPELINE_DIR;
  std::string tokenizer = SPRINT_BENCH_TOKENIZER;
  int size = 0;            // real-shape image side; 0: real shape not run (opt-in with --real or --size)
  int steps = 0;           // 0: per case (tiny 2, real shape 1)
  int rounds = 1;          // --pipeline: C++ then diffusers, this many times in alternation
  bool no_tiny = false, no_compare = false, no_trim = false, no_winograd = false;
  // --train
  int64_t train_batch = 16;
  std::string device;  // "": cpu, and cuda when available
  std::string train_script = SPRINT_BENCH_TRAIN_SCRIPT, train_configs = SPRINT_BENCH_TRAIN_CONFIGS;
};

struct Row {
  std::string case_name, device, dtype, impl = "C++";
  int threads = 0, warmup = 0, repeats = 0;
  double mean_ms = 0, stdev_ms = 0, gflop = 0, peak_gflops = 0;
  std::vector<double> ms;
  std::optional<double> nmse;  // diffusers rows: against the C++ output
  double gflops() const { return gflop / (mean_ms * 1e-3); }
  double pct_peak() const { return peak_gflops > 0 ? 100.0 * gflops() / peak_gflops : NAN; }
};

json to_json(const Row& r) {
  json j = {{"case", r.case_name}, {"device", r.device}, {"dtype", r.dtype}, {"impl", r.impl},
            {"threads", r.threads}, {"warmup", r.warmup}, {"repeats", r.repeats}, {"mean_ms", r.mean_ms},
            {"stdev_ms", r.stdev_ms}, {"gflop", r.gflop}, {"gflops", r.gflops()}, {"peak_gflops", r.peak_gflops},
            {"pct_peak", r.peak_gflops > 0 ? json(r.pct_peak()) : json(nullptr)}, {"times_ms", r.ms}};
  if (r.nmse) j["nmse"] = *r.nmse;
  return j;
}

Row row_from_json(const json& j) {
  Row r;
  r.case_name = j.at("case"), r.device = j.at("device"), r.dtype = j.at("dtype"), r.impl = j.value("impl", "?");
  r.threads = j.at("threads"), r.warmup = j.at("warmup"), r.repeats = j.at("repeats");
  r.mean_ms = j.at("mean_ms"), r.stdev_ms = j.at("stdev_ms"), r.gflop = j.at("gflop");
  r.peak_gflops = j.value("peak_gflops", 0.0);
  if (j.contains("nmse") && !j["nmse"].is_null()) r.nmse = j["nmse"].get<double>();
  return r;
}

std::string fmt(double v, const char* spec) {
  if (std::isnan(v)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}

// Fixed one or two decimals for large values, 3 significant digits for small ones (the tiny model's GFLOP).
std::string num(double v, const char* large = "%.1f") { return std::fabs(v) >= 10 || v == 0 ? fmt(v, large) : fmt(v, "%.3g"); }

// Column-aligned "a | b | c" table; the first `text_cols` columns are left-aligned, the numbers right-aligned.
void print_table(const std::vector<std::string>& head, const std::vector<std::vector<std::string>>& rows,
                 size_t text_cols) {
  std::vector<size_t> w(head.size());
  for (size_t c = 0; c < head.size(); ++c) {
    w[c] = head[c].size();
    for (const auto& r : rows) w[c] = std::max(w[c], r[c].size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t c = 0; c < cells.size(); ++c) {
      const size_t pad = w[c] - cells[c].size();
      std::cout << (c ? " | " : "") << (c < text_cols ? cells[c] + std::string(pad, ' ') : std::string(pad, ' ') + cells[c]);
    }
    std::cout << "\n";
  };
  line(head);
  size_t total = 0;
  for (size_t x : w) total += x + 3;
  std::cout << std::string(total - 3, '-') << "\n";
  for (const auto& r : rows) line(r);
}

std::vector<std::string> row_cells(const Row& r) {
  return {r.case_name, r.device, r.dtype, std::to_string(r.threads), r.impl, fmt(r.mean_ms, "%.2f"),
          fmt(r.stdev_ms, "%.2f"), num(r.gflop, "%.2f"), num(r.gflops()), num(r.pct_peak())};
}
const std::vector<std::string> kHead = {"case", "device", "dtype", "threads", "impl", "mean ms",
                                        "stdev ms", "GFLOP", "GFLOP/s", "% of mm peak"};

// ---- FLOPs -----------------------------------------------------------------------------------------------------

// FLOPs of one forward at batch 1: 2 x multiply-adds of every matmul, linear and convolution. Elementwise work
// (norms, modulation, activations, softmax, the linear-attention division) is excluded: it is memory-bound and a
// fraction of a percent of the GEMM work at real sizes.
double transformer_flops(const sprint::TransformerConfig& c, int64_t latent_h, int64_t latent_w, int64_t L) {
  auto gemm = [](double m, double n, double k) { return 2.0 * m * n * k; };  // (m x k) @ (k x n)
  const double p = c.patch_size, N = static_cast<double>((latent_h / c.patch_size) * (latent_w / c.patch_size));
  const double D = c.inner_dim(), Dc = c.cross_inner_dim(), F = c.ff_hidden(), Cx = c.cross_attention_dim;
  const double H = c.num_attention_heads, d = c.attention_head_dim;
  const double Hc = c.num_cross_attention_heads, dc = c.cross_attention_head_dim;
  double f = 0;
  f += gemm(N, D, c.in_channels * p * p);  // patch_embed.proj: a p x p stride-p conv is one GEMM over tokens
  // Time embedding (one row, negligible, counted anyway): 256 -> D -> D per embedder, then D -> 6D.
  f += (c.guidance_embeds ? 2 : 1) * (gemm(1, D, 256) + gemm(1, D, D)) + gemm(1, 6 * D, D);
  f += gemm(L, D, c.caption_channels) + gemm(L, D, D);  // caption_projection.linear_1/2 over L text tokens
  double block = 0;
  block += 4 * gemm(N, D, D);                     // attn1 to_q, to_k, to_v, to_out.0
  block += H * 2 * gemm(d + 1, d, N);             // linear attention per head: [v;1] k (d+1 x N x d), then (.) q
  block += gemm(N, Dc, D) + gemm(N, D, Dc);       // attn2 to_q and to_out.0 over image tokens
  block += 2 * gemm(L, Dc, Cx);                   // attn2 to_k, to_v over text tokens
  block += Hc * 2 * gemm(N, L, dc);               // softmax attention per head: q k^T and P v
  block += gemm(N, 2 * F, D);                     // ff.conv_inverted (1x1, D -> 2F)
  block += 2.0 * 9 * 2 * F * N;                   // ff.conv_depth (3x3 depthwise on 2F channels)
  block += gemm(N, D, F);                         // ff.conv_point (1x1, F -> D)
  f += c.num_layers * block;
  f += gemm(N, p * p * c.out_channels, D);        // proj_out
  return f;
}

// ---- timing ----------------------------------------------------------------------------------------------------

void sync(const torch::Device& dev) {
  if (dev.is_cuda()) torch::cuda::synchronize();
}

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

void set_stats(Row& r, std::vector<double> ms) {
  const double n = static_cast<double>(ms.size());
  r.mean_ms = std::accumulate(ms.begin(), ms.end(), 0.0) / n;
  double ss = 0;
  for (double x : ms) ss += (x - r.mean_ms) * (x - r.mean_ms);
  r.stdev_ms = ms.size() > 1 ? std::sqrt(ss / (n - 1)) : 0.0;  // sample stdev
  r.ms = std::move(ms);
}

// Best-of-reps GFLOP/s of an n x n x n torch::mm: the ceiling the transformer's GEMMs can reach on this device.
double mm_peak_gflops(const torch::Device& dev, torch::Dtype dtype, int64_t n, int reps) {
  torch::InferenceMode guard;
  auto opts = torch::TensorOptions().device(dev).dtype(dtype);
  auto a = torch::randn({n, n}, opts), b = torch::randn({n, n}, opts), c = torch::empty({n, n}, opts);
  auto ms = time_runs([&] { torch::mm_out(c, a, b); }, 2, reps, dev);
  const double best = *std::min_element(ms.begin(), ms.end());
  const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(ms.size());
  const double flop = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  const double peak = flop / (best * 1e-3) / 1e9;
  std::cout << "mm peak: " << dev << " " << (dtype == torch::kBFloat16 ? "bf16 " : "fp32 ") << n << "^3 x" << reps << ": best "
            << fmt(peak, "%.1f") << " GFLOP/s, mean " << fmt(flop / (mean * 1e-3) / 1e9, "%.1f") << " GFLOP/s\n";
  return peak;
}

// ---- models, inputs, saving ------------------------------------------------------------------------------------

sprint::SanaTransformer2DModel make_model(const std::string& key, const Options& o) {
  if (key == "tiny") return sprint::load_transformer(o.tiny_dir);
  SPRINT_CHECK(key == "sprint_600m", "unknown model '", key, "'");
  torch::manual_seed(kWeightSeed);  // default LibTorch initialisers draw from the global generator
  sprint::SanaTransformer2DModel m(sprint::TransformerConfig::sprint_600m());
  m->eval();
  return m;
}

struct Inputs {
  torch::Tensor x, enc, mask, timestep, guidance;  // CPU fp32, batch 1
};

Inputs make_inputs(const sprint::TransformerConfig& c, const Case& k, uint64_t seed) {
  torch::manual_seed(seed);
  Inputs in;
  in.x = torch::randn({1, c.in_channels, k.height, k.width});
  in.enc = torch::randn({1, k.text_len, c.caption_channels});
  in.mask = torch::zeros({1, k.text_len});
  in.mask.narrow(1, 0, std::min<int64_t>(k.text_valid, k.text_len)).fill_(1.0);
  in.timestep = torch::full({1}, kFlowTime);
  in.guidance = torch::full({1}, kGuidance);
  return in;
}

Row bench_forward(sprint::SanaTransformer2DModel& model, const Inputs& in, const Case& k, const torch::Device& dev,
                  torch::Dtype dtype, int warmup, int repeats, int threads, double peak, torch::Tensor* out) {
  torch::NoGradGuard no_grad;
  torch::InferenceMode inference;
  auto x = in.x.to(dev, dtype), enc = in.enc.to(dev, dtype), mask = in.mask.to(dev);
  auto t = in.timestep.to(dev), g = in.guidance.to(dev);
  auto fwd = [&] { *out = model->forward(x, enc, t, g, mask); };
  Row r;
  r.case_name = k.name, r.device = dev.is_cuda() ? "cuda" : "cpu", r.dtype = dtype == torch::kBFloat16 ? "bf16" : "fp32";
  r.threads = threads, r.warmup = warmup, r.repeats = repeats, r.peak_gflops = peak;
  r.gflop = transformer_flops(model->config, k.height, k.width, k.text_len) / 1e9;
  set_stats(r, time_runs(fwd, warmup, repeats, dev));
  *out = out->to(torch::kCPU, torch::kFloat32);
  std::cout << "  " << k.name << " " << r.device << " " << r.dtype << ": " << fmt(r.mean_ms, "%.2f") << " ms\n"
            << std::flush;
  return r;
}

// Diffusers layout: config.json + diffusion_pytorch_model.safetensors, loadable by from_pretrained.
void save_model(sprint::SanaTransformer2DModel& model, const fs::path& dir) {
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << model->config.to_json().dump(2) << "\n";
  sprint::safetensors::StateDict sd;
  for (const auto& p : model->named_parameters(true)) sd[p.key()] = p.value().detach();
  for (const auto& b : model->named_buffers(true)) sd[b.key()] = b.value().detach();
  sprint::safetensors::save((dir / "diffusion_pytorch_model.safetensors").string(), sd);
}

// A second case with the same weights gets a hard link (the 0.6B fp32 file is 2.4 GB), or a copy where links fail.
void link_model(const fs::path& from, const fs::path& dir) {
  fs::create_directories(dir);
  for (const char* f : {"config.json", "diffusion_pytorch_model.safetensors"}) {
    fs::remove(dir / f);
    std::error_code ec;
    fs::create_hard_link(from / f, dir / f, ec);
    if (ec) fs::copy_file(from / f, dir / f);
  }
}

// Benchmarks the selected cases; with save_dir non-empty also writes weights, inputs and outputs per case.
std::vector<Row> bench_cases(const Options& o, const std::vector<const Case*>& cases, int threads, double cpu_peak,
                             std::optional<double> cuda_peak, const fs::path& save_dir) {
  std::vector<Row> rows;
  std::vector<std::string> models;  // model keys in first-use order
  for (const auto* k : cases)
    if (std::find(models.begin(), models.end(), k->model) == models.end()) models.push_back(k->model);
  auto pick = [&](int dflt, bool warm) { return warm ? (o.warmup >= 0 ? o.warmup : dflt) : (o.repeats > 0 ? o.repeats : dflt); };

  for (const auto& key : models) {
    std::vector<const Case*> group;
    for (const auto* k : cases)
      if (k->model == key) group.push_back(k);
    const auto t0 = Clock::now();
    auto model = make_model(key, o);
    std::cout << "model " << key << ": " << fmt(std::chrono::duration<double>(Clock::now() - t0).count(), "%.1f")
              << " s to build\n";
    std::vector<Inputs> inputs;
    std::vector<sprint::safetensors::StateDict> saved(group.size());
    for (const auto* k : group) {
      const auto idx = static_cast<uint64_t>(k - kCases.data());
      inputs.push_back(make_inputs(model->config, *k, kInputSeed + idx));
    }
    for (size_t i = 0; i < group.size(); ++i) {
      const auto& k = *group[i];
      rows.push_back(bench_forward(model, inputs[i], k, torch::kCPU, torch::kFloat32, pick(k.cpu_warmup, true),
                                   pick(k.cpu_repeats, false), threads, cpu_peak, &saved[i]["out.cpu"]));
    }
    if (!save_dir.empty()) {  // fp32 weights, before a CUDA run converts the model in place
      save_model(model, save_dir / group[0]->name);
      for (size_t i = 1; i < group.size(); ++i) link_model(save_dir / group[0]->name, save_dir / group[i]->name);
    }
    if (cuda_peak) {
      model->to(torch::kCUDA, torch::kBFloat16);
      for (size_t i = 0; i < group.size(); ++i) {
        const auto& k = *group[i];
        rows.push_back(bench_forward(model, inputs[i], k, torch::kCUDA, torch::kBFloat16, pick(k.cuda_warmup, true),
                                     pick(k.cuda_repeats, false), threads, *cuda_peak, &saved[i]["out.cuda"]));
      }
    }
    if (!save_dir.empty()) {
      for (size_t i = 0; i < group.size(); ++i) {
        auto& sd = saved[i];
        sd["x"] = inputs[i].x, sd["enc"] = inputs[i].enc, sd["mask"] = inputs[i].mask;
        sd["timestep"] = inputs[i].timestep, sd["guidance"] = inputs[i].guidance;
        sprint::safetensors::save((save_dir / group[i]->name / "inputs.safetensors").string(), sd);
      }
    }
  }
  return rows;
}

// ---- diffusers comparison --------------------------------------------------------------------------------------

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Why --compare cannot run diffusers, or "" when the Python can import what bench_diffusers.py needs.
std::string python_problem(const Options& o) {
  if (o.python.empty()) return "no Python configured (configure with -DSPRINT_PYTHON=<venv>/bin/python or pass --python)";
  if (!fs::exists(o.python)) return "Python '" + o.python + "' does not exist";
  if (!fs::exists(o.script)) return "script '" + o.script + "' does not exist";
  const std::string probe = shell_quote(o.python) + " -c 'import torch, diffusers, safetensors' >/dev/null 2>&1";
  if (std::system(probe.c_str()) != 0) return "'" + o.python + "' cannot import torch, diffusers and safetensors";
  return "";
}

// Runs bench_diffusers.py on the saved folder. Returns its rows, or nullopt with the reason in *why.
std::optional<std::vector<Row>> run_diffusers(const Options& o, const fs::path& dir, std::string* why) {
  const fs::path out = dir / "diffusers_results.json";
  const std::string cmd = sprint::malloc_settings_env() + " " + shell_quote(o.python) + " " + shell_quote(o.script) + " " + shell_quote(dir.string()) +
                          " --json " + shell_quote(out.string());
  std::cout << "\n$ " << cmd << "\n" << std::flush;
  const int rc = std::system(cmd.c_str());
  if (rc != 0 || !fs::exists(out)) {
    *why = "bench_diffusers.py failed (" + (WIFEXITED(rc) ? "exit code " + std::to_string(WEXITSTATUS(rc))
                                                          : "status " + std::to_string(rc)) + ", see above)";
    return std::nullopt;
  }
  std::vector<Row> rows;
  const json results = sprint::read_json_file(out.string());  // named: a temporary would die before the loop
  for (const auto& j : results.at("rows")) rows.push_back(row_from_json(j));
  return rows;
}

void print_combined(const std::vector<Row>& cpp, const std::vector<Row>& py) {
  auto head = kHead;
  head.push_back("C++/diffusers");
  head.push_back("NMSE vs C++");
  std::vector<std::vector<std::string>> cells;
  for (const auto& r : cpp) {
    auto c = row_cells(r);
    c.push_back(""), c.push_back("");
    cells.push_back(c);
    for (const auto& p : py) {
      if (p.case_name != r.case_name || p.device != r.device) continue;
      auto d = row_cells(p);
      d.push_back(fmt(r.mean_ms / p.mean_ms, "%.3f"));
      d.push_back(p.nmse ? fmt(*p.nmse, "%.2e") : "-");
      cells.push_back(d);
    }
  }
  print_table(head, cells, 5);
  std::cout << "C++/diffusers: ratio of mean latencies (< 1: C++ faster). % of mm peak: against the C++ run's mm.\n";
}

// ---- modes -----------------------------------------------------------------------------------------------------

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  return f >> a >> b >> c ? a + " " + b + " " + c : "unknown";
}

struct TempDir {
  fs::path path;  // empty: nothing to remove
  ~TempDir() {
    if (!path.empty()) sprint::remove_tree(path.string());
  }
};

int run_transformer_bench(const Options& o) {
  std::vector<const Case*> cases;
  for (const auto& k : kCases)
    if (o.only.empty() || o.only.count(k.name)) cases.push_back(&k);
  const int threads = sprint::init_threads(o.threads);
  std::cout << "sprint-bench: " << sprint::describe_runtime(torch::kCPU) << ", load average " << load_average()
            << " (other processes skew the numbers)\n";

  const double cpu_peak = mm_peak_gflops(torch::kCPU, torch::kFloat32, 2048, 8);
  std::optional<double> cuda_peak;
  if (sprint::cuda_available()) {
    cuda_peak = mm_peak_gflops(torch::kCUDA, torch::kBFloat16, 8192, 20);
  } else {
#ifdef SPRINT_HAVE_CUDA
    std::cout << "CUDA: skipped (torch::cuda::is_available() is false: no driver or no device)\n";
#else
    std::cout << "CUDA: skipped (this build links the CPU-only LibTorch)\n";
#endif
  }

  // Checked before the C++ runs so an unusable Python does not cost a 2.4 GB temporary write.
  const std::string py_problem = o.compare ? python_problem(o) : "";
  if (!py_problem.empty()) std::cout << "--compare: diffusers comparison unavailable: " << py_problem << "\n";
  const bool compare = o.compare && py_problem.empty();

  // --compare needs weights on disk: the --save-weights folder, or a temporary one removed afterwards.
  fs::path dir = o.save_dir;
  TempDir temp;  // removes the folder on every way out, errors included
  if (dir.empty() && compare) {
    std::string tmpl = (fs::temp_directory_path() / "sprint-bench-XXXXXX").string();
    SPRINT_CHECK(mkdtemp(tmpl.data()) != nullptr, "cannot create a temporary folder from ", tmpl);
    dir = tmpl;
    if (!o.keep) temp.path = dir;
  }

  const auto rows = bench_cases(o, cases, threads, cpu_peak, cuda_peak, dir);
  json results = {{"tool", "sprint-bench"}, {"threads", threads}, {"load_average", load_average()},
                  {"peak_gflops", {{"cpu_fp32", cpu_peak}, {"cuda_bf16", cuda_peak ? json(*cuda_peak) : json(nullptr)}}},
                  {"rows", json::array()}};
  for (const auto& r : rows) results["rows"].push_back(to_json(r));
  if (!dir.empty()) std::ofstream(dir / "cpp_results.json") << results.dump(2) << "\n";

  std::vector<std::vector<std::string>> cells;
  for (const auto& r : rows) cells.push_back(row_cells(r));
  std::cout << "\n";
  print_table(kHead, cells, 5);

  if (!py_problem.empty()) {
    std::cout << "\n--compare: diffusers comparison unavailable: " << py_problem << " (C++ numbers only)\n";
  } else if (compare) {
    std::string why;
    auto py = run_diffusers(o, dir, &why);
    if (py) {
      std::cout << "\nC++ vs diffusers (same weights, inputs, threads, warm-up and repeats):\n";
      print_combined(rows, *py);
      results["diffusers_rows"] = json::array();
      for (const auto& r : *py) results["diffusers_rows"].push_back(to_json(r));
    } else {
      std::cout << "\n--compare: diffusers comparison unavailable: " << why << "\n";
    }
    if (temp.path.empty()) std::cout << "weights, inputs and outputs kept in " << dir << "\n";
  }
  if (!o.json_path.empty()) std::ofstream(o.json_path) << results.dump(2) << "\n";
  return 0;
}

// ---- pipeline mode ---------------------------------------------------------------------------------------------
//
// Per-stage latency of the whole sketch-to-image pipeline (sprint::Pipeline: tokenizer, Gemma-2, scribble ->
// DC-AE encode, Sprint transformer + ControlNet over all SCM steps, DC-AE decode) on
//   (a) the tiny fixture pipeline (tests/fixtures/pipeline/tiny_pipeline, 64x64), and
//   (b) opt-in, the real SANA-Sprint 0.6B shape: a random-weight folder in diffusers layout written to a temporary
//       folder (0.6B transformer, a 7-block ControlNet, DC-AE f32c32 and a REDUCED Gemma-2: hidden 2304 as the real
//       one, but 2 layers and a 4096-token vocabulary instead of 26 layers and 256000 tokens).
// C++ scenarios: "cold" (first call of a freshly loaded pipeline), "full" (warm process, nothing cached), "sketch
// changed" (prompt and noise cached, scribble map rebuilt and re-encoded) and "seed changed" (prompt and condition
// cached, new noise). The same stages then run through diffusers' SanaSprintPipeline (bench_pipeline_diffusers.py)
// on the same folder, prompt, condition map, seed and thread count, and the final latents are compared (NMSE).

constexpr uint64_t kPipelineWeightSeed = 0;  // torch::manual_seed before filling the random real-shape weights
constexpr uint64_t kPipelineSeed = 42;       // request seed of the cold / full / sketch-changed runs
constexpr double kPipelineGuidance = 4.5;
constexpr double kControlScale = 1.0;
const char* const kPipelinePrompt = "A fox sitting under a tree, watercolour";

// The reduced Gemma-2 of the real-shape folder: the 2B's widths (hidden 2304 = the transformer's caption_channels,
// heads, head_dim, MLP), 2 of its 26 layers and a 4096-token vocabulary (the fixture tokenizer has 420 pieces).
constexpr int kReducedGemmaLayers = 2;
constexpr int kReducedGemmaVocab = 4096;

struct PipelineCase {
  std::string name;      // "tiny" or "real512" / "real1024"
  std::string label;     // what the tables print
  fs::path model_dir;    // a diffusers-layout folder
  int size = 64, steps = 2, repeats = 3;
};

// A (H, W, 3) uint8 drawing, dark strokes on white: a horizontal and a vertical line, a diagonal, a circle; variant 1
// adds a stroke.
// Stroke width scales with the size (3 px at 1024).
torch::Tensor make_sketch(int64_t h, int64_t w, int variant) {
  auto img = torch::full({h, w, 3}, 255, torch::kUInt8);
  const int64_t t = std::max<int64_t>(1, std::min(h, w) / 340);
  auto ink = [&](int64_t y, int64_t x) {
    if (y >= 0 && x >= 0 && y + t <= h && x + t <= w) img.narrow(0, y, t).narrow(1, x, t).fill_(20);
  };
  for (int64_t x = w / 10; x < w * 9 / 10; ++x) ink(h / 5, x);               // horizontal line
  for (int64_t y = h / 5; y < h * 4 / 5; ++y) ink(y, w * 2 / 3);            // vertical line
  for (int64_t i = 0; i < std::min(h, w) / 2; ++i) ink(h / 4 + i, w / 8 + i);  // diagonal
  const double cy = h * 0.6, cx = w * 0.35, r = std::min(h, w) * 0.18;
  for (int a = 0; a < 2000; ++a) {  // circle
    const double phi = 2 * M_PI * a / 2000.0;
    ink(static_cast<int64_t>(cy + r * std::sin(phi)), static_cast<int64_t>(cx + r * std::cos(phi)));
  }
  if (variant == 1)
    for (int64_t x = w / 6; x < w * 5 / 6; ++x) ink(h * 7 / 8, x);  // one more stroke: the sketch changed
  return img;
}

// ---- random real-shape model folder ----

// Seeded random weights with a small std, so activations stay O(1) through every stage in fp32: matrices and
// convolutions N(0, 1/fan_in), scalar and shift vectors N(0, 0.02^2), norm weights `norm_weight` (1 for diffusers'
// RMSNorm, 0 for Gemma's offset-from-1 RMSNorm). Every tensor is written, including ones a constructor leaves
// uninitialised (Gemma2Model) or zero (the ControlNet's zero projections, which would hide its cost in nothing).
void randomize(torch::nn::Module& m, double norm_weight) {
  torch::NoGradGuard ng;
  for (auto& p : m.named_parameters(true)) {
    auto t = p.value();
    const std::string& k = p.key();
    const bool is_norm_weight = k.find("norm") != std::string::npos && k.size() >= 6 &&
                                k.compare(k.size() - 6, 6, "weight") == 0 && t.dim() == 1;
    if (t.dim() >= 2) {
      t.normal_(0.0, 1.0 / std::sqrt(static_cast<double>(t.numel() / t.size(0))));
    } else if (is_norm_weight) {
      t.fill_(norm_weight);
    } else {
      t.normal_(0.0, 0.02);
    }
  }
}

// Writes the random real-shape folder (diffusers layout, what Pipeline::load and SanaSprintPipeline read).
void write_real_shape_model(const fs::path& dir, const std::string& tokenizer_model) {
  const auto t0 = Clock::now();
  torch::manual_seed(kPipelineWeightSeed);

  const auto tc = sprint::TransformerConfig::sprint_600m();
  // diffusers' SanaControlNetModel is the Sana 1.0 layout (no guidance embedding, no QK norm, after-block residuals):
  // the only ControlNet both sides can load. Pipeline drives it as a Sana 1.0 ControlNet under a Sprint
  // transformer (timestep x 1000), as tests/fixtures/fx_pipeline.py's ControlledSprint does.
  auto cc = sprint::ControlNetConfig::for_transformer(tc, 7, sprint::ControlInjection::AfterBlock);
  cc.base.guidance_embeds = false;
  cc.base.qk_norm.clear();
  const auto vc = sprint::VaeConfig::dc_ae_f32c32();
  auto gc = sprint::Gemma2Config::gemma2_2b();
  gc.num_hidden_layers = kReducedGemmaLayers;
  gc.vocab_size = kReducedGemmaVocab;
  gc.layer_types = sprint::Gemma2Config::default_layer_types(gc.num_hidden_layers);

  sprint::SanaTransformer2DModel transformer(tc);
  randomize(*transformer, 1.0);
  sprint::SanaControlNetModel controlnet(cc);
  randomize(*controlnet, 1.0);
  // Without the keys diffusers' SanaControlNetModel does not know; absent, they read back as what cc holds
  // (after-block injection, no guidance embedding, no QK norm).
  auto cn_json = cc.to_json();
  for (const char* k : {"control_injection", "guidance_embeds", "guidance_embeds_scale", "qk_norm", "timestep_scale"})
    cn_json.erase(k);
  const auto back = sprint::ControlNetConfig::from_json(cn_json, "controlnet/config.json");
  SPRINT_CHECK(back.base.to_json() == cc.base.to_json() && back.injection == cc.injection,
               "controlnet/config.json does not read back as written without the Sprint-only keys");
  sprint::AutoencoderDC vae(vc);
  randomize(*vae, 1.0);
  sprint::Gemma2Model text_encoder(gc);
  randomize(*text_encoder, 0.0);
  sprint::ModelFolderParts parts;
  parts.transformer = transformer.get();
  parts.controlnet = controlnet.get();
  parts.controlnet_config = cn_json;
  parts.vae = vae.get();
  parts.text_encoder = text_encoder.get();
  parts.tokenizer_model = tokenizer_model;
  sprint::write_model_folder(dir.string(), parts);
  std::cout << "real-shape model: random weights (seed " << kPipelineWeightSeed << ") written to " << dir << " in "
            << fmt(std::chrono::duration<double>(Clock::now() - t0).count(), "%.1f") << " s\n"
            << "  transformer: Sana-Sprint 0.6B (28 blocks, hidden 1152); controlnet: 7 blocks (Sana 1.0 layout, "
               "after-block); vae: DC-AE f32c32\n"
            << "  text_encoder: REDUCED Gemma-2 (hidden 2304 like gemma-2-2b, but " << kReducedGemmaLayers
            << " of 26 layers and a " << kReducedGemmaVocab
            << "-token vocabulary): its latency is NOT the real 2B encoder's (~13x more layers)\n"
            << std::flush;
}

// ---- C++ runs ----

struct StageSample {
  sprint::StageTimes t;
  std::optional<double> scribble_ms;  // sketch_to_scribble, when the scenario rebuilt the map
};

struct Scenario {
  std::string name, what;
  std::vector<StageSample> samples;
};

struct PipelineResult {
  PipelineCase pcase;
  double load_s = 0;
  std::vector<Scenario> scenarios;  // cold, full, sketch changed, seed changed
  std::optional<json> diffusers;    // bench_pipeline_diffusers.py's results
  std::string diffusers_problem;    // why there are none
};

const std::vector<std::string> kStageKeys = {"scribble", "tokenize", "text_encoder", "condition", "transformer",
                                             "decode", "total"};

// One stage of a sample: nullopt when cached / not run.
std::optional<double> stage_ms(const StageSample& s, const std::string& key) {
  const auto& t = s.t;
  if (key == "scribble") return s.scribble_ms;
  if (key == "tokenize") return t.prompt_cached ? std::nullopt : std::optional<double>(t.tokenize_ms);
  if (key == "text_encoder") return t.prompt_cached ? std::nullopt : std::optional<double>(t.text_encoder_ms);
  if (key == "condition") return t.condition_cached ? std::nullopt : std::optional<double>(t.condition_ms);
  if (key == "transformer") return t.transformer_ms;
  if (key == "decode") return t.decode_ms;
  if (key == "total") return t.total_ms;
  return std::nullopt;
}

// Median over a scenario's samples (robust to the odd run slowed down by other processes); nullopt when the stage
// was cached or not run in every sample.
std::optional<double> median_stage(const Scenario& sc, const std::string& key) {
  std::vector<double> v;
  for (const auto& s : sc.samples)
    if (auto x = stage_ms(s, key)) v.push_back(*x);
  if (v.empty()) return std::nullopt;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// device: "cpu" (fp32) or "cuda" (bf16, the pipeline's defaults).
PipelineResult run_cpp_pipeline(const PipelineCase& pc, const fs::path& work, int threads, const std::string& device,
                                bool trim_text_padding, bool fast_cpu_vae) {
  PipelineResult res;
  res.pcase = pc;
  const bool cuda = device == "cuda";
  const char* dtype_name = cuda ? "bf16" : "fp32";
  std::cout << "\n== " << pc.label << ": C++ (Pipeline, " << device << " " << dtype_name << ", " << threads
            << " threads, " << pc.steps
            << " step" << (pc.steps > 1 ? "s" : "") << ", " << pc.repeats << " repeat" << (pc.repeats > 1 ? "s" : "")
            << " per warm scenario; text padding " << (trim_text_padding ? "skipped" : "computed, --no-trim")
            << "; DC-AE " << (fast_cpu_vae ? "Winograd, channels-last" : "torch NCHW convolutions, --no-winograd")
            << ")\n"
            << std::flush;
  sprint::PipelineOptions po;
  po.device = device;
  po.trim_text_padding = trim_text_padding;
  po.fast_cpu_vae = fast_cpu_vae;
  po.dtype = cuda ? torch::kBFloat16 : torch::kFloat32;
  auto t0 = Clock::now();
  auto pipe = sprint::Pipeline::load(pc.model_dir.string(), po);
  res.load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "  loaded in " << fmt(res.load_s, "%.2f") << " s\n" << std::flush;

  const auto sketch_a = make_sketch(pc.size, pc.size, 0), sketch_b = make_sketch(pc.size, pc.size, 1);
  sprint::GenerateRequest req;
  req.condition = sprint::GenerateCondition{torch::Tensor(), kControlScale, 0};
  req.prompt = kPipelinePrompt;
  req.steps = pc.steps;
  req.guidance = kPipelineGuidance;
  req.width = req.height = pc.size;
  // At the requested size, as bench_pipeline_diffusers.py calls diffusers (use_resolution_binning=False): with
  // binning a 1024-px transformer would generate 512 x 512 at its 1024 bin, four times the work.
  req.resolution_binning = false;
  torch::Tensor full_map, full_latent, full_image;

  auto run = [&](const torch::Tensor* sketch, uint64_t seed, const char* what) {
    StageSample s;
    if (sketch) {
      const auto ts = Clock::now();
      auto map = sprint::sketch_to_scribble(*sketch);
      s.scribble_ms = std::chrono::duration<double, std::milli>(Clock::now() - ts).count();
      req.condition->map = map;
      ++req.condition->version;
      if (sketch == &sketch_a) full_map = map;
    }
    req.seed = seed;
    auto out = pipe->generate(req);
    s.t = out.times;
    if (sketch == &sketch_a && seed == kPipelineSeed) full_latent = out.latent, full_image = out.image;
    std::cout << "  " << what << ": " << fmt(s.t.total_ms, "%.1f") << " ms\n" << std::flush;
    return s;
  };

  Scenario cold{"cold (first call)", "fresh pipeline: nothing cached, first-call costs included", {}};
  cold.samples.push_back(run(&sketch_a, kPipelineSeed, "cold"));
  Scenario full{"full (nothing cached)", "warm process; prompt, condition and noise caches cleared (the instruction prefix's encoder states stay: they depend on the weights only)", {}};
  for (int i = 0; i < pc.repeats; ++i) {
    pipe->clear_caches();
    full.samples.push_back(run(&sketch_a, kPipelineSeed, "full"));
  }
  Scenario sketch{"sketch changed", "prompt and noise cached; scribble map rebuilt and re-encoded", {}};
  for (int i = 0; i < pc.repeats; ++i)
    sketch.samples.push_back(run(i % 2 == 0 ? &sketch_b : &sketch_a, kPipelineSeed, "sketch changed"));
  Scenario seed{"seed changed", "prompt and condition cached; new noise", {}};
  for (int i = 0; i < pc.repeats; ++i) seed.samples.push_back(run(nullptr, kPipelineSeed + 1 + i, "seed changed"));
  res.scenarios = {cold, full, sketch, seed};

  // What diffusers gets: settings + the condition map and the C++ outputs of the "full" request.
  sprint::safetensors::StateDict sd;
  sd["condition_map"] = full_map;
  sd["latent"] = full_latent.to(torch::kFloat32).contiguous();
  sd["image"] = full_image.to(torch::kFloat32).contiguous();
  fs::create_directories(work);
  sprint::safetensors::save((work / "inputs.safetensors").string(), sd);
  sprint::write_json_file((work / "settings.json").string(),
             {{"case", pc.name}, {"label", pc.label}, {"model_dir", pc.model_dir.string()}, {"threads", threads},
              {"device", device}, {"dtype", dtype_name}, {"prompt", kPipelinePrompt}, {"seed", kPipelineSeed}, {"steps", pc.steps}, {"guidance", kPipelineGuidance},
              {"width", pc.size}, {"height", pc.size}, {"control_scale", kControlScale}, {"repeats", pc.repeats},
              {"inputs", (work / "inputs.safetensors").string()}});
  return res;  // the pipeline (GBs at the real shape) is freed here, before diffusers loads its copy
}

// ---- diffusers ----

std::string pipeline_python_problem(const Options& o) {
  if (o.python.empty()) return "no Python configured (configure with -DSPRINT_PYTHON=<venv>/bin/python or pass --python)";
  if (!fs::exists(o.python)) return "Python '" + o.python + "' does not exist";
  if (!fs::exists(o.pipeline_script)) return "script '" + o.pipeline_script + "' does not exist";
  const std::string probe = shell_quote(o.python) +
                            " -c 'import torch, diffusers, transformers, safetensors, sentencepiece' >/dev/null 2>&1";
  if (std::system(probe.c_str()) != 0)
    return "'" + o.python + "' cannot import torch, diffusers, transformers, safetensors and sentencepiece";
  return "";
}

void run_diffusers_pipeline(const Options& o, const fs::path& work, PipelineResult& res) {
  const fs::path out = work / "diffusers_results.json";
  const std::string cmd = sprint::malloc_settings_env() + " " + shell_quote(o.python) + " " + shell_quote(o.pipeline_script) + " " +
                          shell_quote(work.string()) + " --json " + shell_quote(out.string());
  std::cout << "\n$ " << cmd << "\n" << std::flush;
  const int rc = std::system(cmd.c_str());
  if (rc != 0 || !fs::exists(out)) {
    res.diffusers_problem = "bench_pipeline_diffusers.py failed (" +
                            (WIFEXITED(rc) ? "exit code " + std::to_string(WEXITSTATUS(rc)) : "status " + std::to_string(rc)) +
                            ", see above)";
    return;
  }
  res.diffusers = sprint::read_json_file(out.string());
}

// ---- report ----

std::string ms_cell(std::optional<double> v) { return v ? fmt(*v, *v >= 100 ? "%.0f" : "%.2f") : "cached"; }

// diffusers' time for a stage: group "median_ms" (warm calls) or "cold_ms"; nullopt when absent.
std::optional<double> diffusers_ms(const PipelineResult& r, const char* group, const std::string& key) {
  if (!r.diffusers) return std::nullopt;
  const json& d = *r.diffusers;
  if (!d.contains(group) || !d[group].contains(key) || d[group][key].is_null()) return std::nullopt;
  return d[group][key].get<double>();
}

// C++/diffusers of a stage's warm median ("full" scenario); nullopt without both.
std::optional<double> stage_ratio(const PipelineResult& r, const std::string& key) {
  const auto c = median_stage(r.scenarios.at(1), key);
  const auto p = diffusers_ms(r, "median_ms", key);
  if (!c || !p || *p <= 0) return std::nullopt;
  return *c / *p;
}

void print_pipeline_result(const PipelineResult& r) {
  const auto& pc = r.pcase;
  const Scenario& full = r.scenarios.at(1);
  const std::string steps = std::to_string(pc.steps) + " step" + (pc.steps > 1 ? "s" : "");
  std::cout << "\n" << pc.label << ", " << steps << ", " << pc.size << "x" << pc.size << ": C++ (\"full\", median of "
            << full.samples.size() << ") vs diffusers (median of " << full.samples.size() << " warm calls)\n";
  const json* d = r.diffusers ? &*r.diffusers : nullptr;
  auto py = [&](const char* group, const std::string& key) { return diffusers_ms(r, group, key); };
  const std::vector<std::pair<std::string, std::string>> stages = {
      {"scribble", "scribble (sketch -> map)"},
      {"tokenize", "tokenize"},
      {"text_encoder", "text encoder"},
      {"condition", "condition encode (map -> VAE)"},
      {"transformer", "transformer+ControlNet (" + steps + ")"},
      {"decode", "decode"},
      {"total", "total (generate)"}};
  std::vector<std::vector<std::string>> cells;
  for (const auto& [key, label] : stages) {
    const auto c = median_stage(full, key);
    std::optional<double> p;
    if (key != "scribble") p = py("median_ms", key);
    cells.push_back({label, ms_cell(c), key == "scribble" ? "n/a" : p ? ms_cell(p) : "-",
                     c && p ? fmt(*c / *p, "%.3f") : "-"});
  }
  {
    const auto c = median_stage(r.scenarios.at(0), "total");
    const auto p = py("cold_ms", "total");
    cells.push_back({"total, first call (cold)", ms_cell(c), p ? ms_cell(p) : "-", c && p ? fmt(*c / *p, "%.3f") : "-"});
  }
  print_table({"stage", "C++ ms", "diffusers ms", "C++/diffusers"}, cells, 1);
  std::cout << "C++/diffusers < 1: C++ faster. scribble: our stroke -> scribble map (no diffusers equivalent; not in "
               "total). total: generate() / pipe() wall time plus the condition encode.\n";
  if (d) {
    auto num_or = [&](const char* k) { return d->contains(k) && !(*d)[k].is_null() ? fmt((*d)[k].get<double>(), "%.2e") : "-"; };
    std::cout << "same computation: final latent NMSE C++ vs diffusers " << num_or("nmse_latent") << ", image NMSE "
              << num_or("nmse_image") << " (" << d->value("device", "cpu") << " " << d->value("dtype", "fp32") << "; diffusers " << d->value("diffusers", "?") << ", torch "
              << d->value("torch", "?") << ", " << d->value("threads", 0) << " threads)\n";
  } else {
    std::cout << "diffusers: not run: " << r.diffusers_problem << "\n";
  }

  std::cout << "\n" << pc.label << ": C++ cold and warm calls (median ms; \"cached\": stage skipped; load "
            << fmt(r.load_s, "%.2f") << " s)\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& sc : r.scenarios) {
    std::vector<std::string> row = {sc.name, std::to_string(sc.samples.size())};
    for (const auto& key : kStageKeys) row.push_back(ms_cell(median_stage(sc, key)));
    const auto sc_ms = median_stage(sc, "scribble");
    const auto tot = median_stage(sc, "total");
    row.push_back(ms_cell(tot ? std::optional<double>(*tot + sc_ms.value_or(0.0)) : std::nullopt));
    rows.push_back(row);
  }
  print_table({"scenario", "n", "scribble", "tokenize", "text enc", "condition", "transformer", "decode", "total",
               "total+scribble"},
              rows, 1);
  for (const auto& sc : r.scenarios) std::cout << "  " << sc.name << ": " << sc.what << "\n";
  std::cout << std::flush;  // the tables reach a piped log even if something fails later
}

json pipeline_result_json(const PipelineResult& r) {
  json j = {{"case", r.pcase.name}, {"label", r.pcase.label}, {"size", r.pcase.size}, {"steps", r.pcase.steps},
            {"load_s", r.load_s}, {"scenarios", json::array()}};
  for (const auto& sc : r.scenarios) {
    json s = {{"name", sc.name}, {"samples", json::array()}, {"median_ms", json::object()}};
    for (const auto& smp : sc.samples) {
      json m = json::object();
      for (const auto& key : kStageKeys) {
        const auto v = stage_ms(smp, key);
        m[key] = v ? json(*v) : json(nullptr);
      }
      s["samples"].push_back(m);
    }
    for (const auto& key : kStageKeys) {
      const auto v = median_stage(sc, key);
      s["median_ms"][key] = v ? json(*v) : json(nullptr);
    }
    j["scenarios"].push_back(s);
  }
  j["diffusers"] = r.diffusers ? *r.diffusers : json(nullptr);
  if (!r.diffusers_problem.empty()) j["diffusers_problem"] = r.diffusers_problem;
  return j;
}

int run_pipeline_bench(const Options& o) {
  const int threads = sprint::init_threads(o.threads);
  // --device cuda: both sides on the GPU in bf16 (the pipeline's CUDA default); otherwise the CPU in fp32.
  const std::string device = o.device == "cuda" ? "cuda" : "cpu";
  const auto dev = sprint::pick_device(device);  // throws with the reason when CUDA is asked for but missing
  std::cout << "sprint-bench --pipeline: " << sprint::describe_runtime(dev) << ", load average " << load_average()
            << " (other processes skew the numbers)\n"
            << "device: " << device << (device == "cuda" ? " bf16" : " fp32")
            << " (--device cpu|cuda picks one; stage times are device-synchronised)\n";
  const std::string py_problem = o.no_compare ? "--no-compare" : pipeline_python_problem(o);
  if (!py_problem.empty()) std::cout << "diffusers comparison unavailable: " << py_problem << "\n";

  TempDir temp;
  std::string tmpl = (fs::temp_directory_path() / "sprint-bench-pipeline-XXXXXX").string();
  SPRINT_CHECK(mkdtemp(tmpl.data()) != nullptr, "cannot create a temporary folder from ", tmpl);
  const fs::path root = tmpl;
  if (!o.keep) temp.path = root;

  std::vector<PipelineCase> cases;
  if (!o.no_tiny) {
    PipelineCase t;
    t.name = "tiny";
    // --tiny-pipeline DIR names another folder (e.g. the bundled model): the tables say which.
    t.label = o.tiny_pipeline == SPRINT_BENCH_TINY_PIPELINE_DIR
                  ? std::string("tiny fixture pipeline")
                  : "model " + fs::path(o.tiny_pipeline).lexically_normal().filename().string();
    t.model_dir = o.tiny_pipeline;
    t.size = 64;  // the fixture's size ("embedded size" until the bundled model)
    t.steps = o.steps > 0 ? o.steps : 2;
    t.repeats = o.repeats > 0 ? o.repeats : 5;
    cases.push_back(t);
  } else {
    std::cout << "tiny fixture pipeline: skipped (--no-tiny)\n";
  }
  if (o.size > 0) {
    PipelineCase r;
    r.name = "real" + std::to_string(o.size);
    r.label = "0.6B shape (random weights, reduced Gemma)";
    r.model_dir = root / "real_model";
    r.size = o.size;
    r.steps = o.steps > 0 ? o.steps : 1;
    r.repeats = o.repeats > 0 ? o.repeats : 1;
    cases.push_back(r);
  } else {
    std::cout << "0.6B real shape: skipped (opt in with --real for 512x512 or --size 512|1024; at 512 on 2 busy cores "
                 "about 15 min with the diffusers comparison, mostly DC-AE encode/decode)\n";
  }

  std::vector<PipelineResult> results;
  for (const auto& pc : cases) {
    if (pc.name != "tiny") write_real_shape_model(pc.model_dir, o.tokenizer);
    const fs::path work = root / pc.name;
    std::vector<PipelineResult> rounds;
    for (int k = 0; k < o.rounds; ++k) {
      auto res = run_cpp_pipeline(pc, work, threads, device, !o.no_trim, !o.no_winograd);
      if (py_problem.empty()) {
        run_diffusers_pipeline(o, work, res);
      } else {
        res.diffusers_problem = py_problem;
      }
      rounds.push_back(std::move(res));
    }
    if (o.rounds > 1 && py_problem.empty()) {
      // Each round's ratios, then the round with the median total ratio goes to the tables.
      std::cout << "\n" << pc.label << ": C++/diffusers per round (warm medians; C++ ran first in each round)\n";
      std::vector<std::pair<double, size_t>> totals;
      for (size_t k = 0; k < rounds.size(); ++k) {
        auto cell = [&](const char* key) {
          const auto v = stage_ratio(rounds[k], key);
          return v ? fmt(*v, "%.3f") : std::string("-");
        };
        std::cout << "  round " << k + 1 << ": total " << cell("total") << " (C++ "
                  << ms_cell(median_stage(rounds[k].scenarios.at(1), "total")) << " ms, diffusers "
                  << ms_cell(diffusers_ms(rounds[k], "median_ms", "total")) << " ms); condition " << cell("condition")
                  << ", transformer " << cell("transformer") << ", decode " << cell("decode") << "\n";
        if (const auto v = stage_ratio(rounds[k], "total")) totals.emplace_back(*v, k);
      }
      if (!totals.empty()) {
        std::sort(totals.begin(), totals.end());
        const auto& mid = totals[(totals.size() - 1) / 2];
        std::cout << "  total ratio: median " << fmt(mid.first, "%.3f") << ", range " << fmt(totals.front().first, "%.3f")
                  << " to " << fmt(totals.back().first, "%.3f") << "; the tables below are round " << mid.second + 1
                  << "'s\n";
        std::swap(rounds[0], rounds[mid.second]);
      }
    }
    auto res = std::move(rounds[0]);
    if (pc.name != "tiny" && !o.keep) {  // 5 GB: remove as soon as both sides are done
      sprint::remove_tree(pc.model_dir.string());
    }
    results.push_back(std::move(res));
  }

  std::cout << "\n==== sprint-bench --pipeline results (load average " << load_average() << ", " << threads
            << " threads) ====\n";
  for (const auto& r : results) print_pipeline_result(r);
  if (o.keep) std::cout << "\nmodel folders, settings and outputs kept in " << root << "\n";

  if (!o.json_path.empty()) {
    json j = {{"tool", "sprint-bench --pipeline"}, {"threads", threads}, {"load_average", load_average()},
              {"cases", json::array()}};
    for (const auto& r : results) j["cases"].push_back(pipeline_result_json(r));
    std::ofstream(o.json_path) << j.dump(2) << "\n";
  }
  return 0;
}

// ---- training-step mode ----------------------------------------------------------------------------------------
//
// Throughput (samples/s) of one optimisation step of the training commands, on the bundled model's sizes
// (training/configs/emoji: teacher 6 blocks, D 192, 8 latent channels, 8x8 latent, 24 caption tokens of 128
// channels from a 2-layer Gemma-2; the student = the teacher + guidance embedding + logvar head; a 3-head LADD
// discriminator on the frozen teacher), random weights written to a temporary folder:
//   teacher    `sprint-train pretrain`'s step: Gemma-2 forward (trained), flow_matching_loss on the teacher,
//              backward, grad clipping of both, AdamW on both;
//   distill G  `sprint-train distill`'s generator step: teacher CFG velocity on the doubled batch, scm_step (exact
//              forward-mode JVP of the student, tangent normalisation, logvar-weighted sCM loss), a second student
//              forward at a max-time weighted t, LADD hinge generator loss through the discriminator, backward,
//              clipping, AdamW on the student;
//   distill D  its discriminator step: student x0 (no grad), renoised fakes + misaligned real pairs and reals through
//              the discriminator, hinge loss, backward into the heads, clipping, AdamW on the heads.
// Each runs the same library functions the commands call (sprint::training), warm-up steps then the median of
// `repeats` timed steps (G and D alternate, as in the command), wall time and process CPU time (the latter is the
// steadier ratio on a machine other jobs share). Not timed (on either side): data loading and
// augmentation, the VAE encode (latents are given), tokenisation (token ids are given), the distill steps' frozen
// text encoder (its embeddings are given), EMA, logging and checkpoints.
// bench_train_diffusers.py then runs the same steps in PyTorch with diffusers' SanaTransformer2DModel and
// transformers' Gemma2Model on the same weights, inputs, random draws (the CPU generator sequence is replayed) and
// thread count, following diffusers' examples/research_projects/sana/train_sana_sprint_diffusers.py (distill) and
// examples/dreambooth/train_dreambooth_lora_sana.py (flow matching, full fine-tuning here), and prints its
// first-step losses, which this mode compares with its own.

constexpr uint64_t kTrainWeightSeed = 7;      // torch::manual_seed before building the random models
constexpr uint64_t kTrainInputSeed = 2000;    // latents and token ids
constexpr uint64_t kTeacherGenSeed = 17;      // the teacher step's generator (noise, flow time)
constexpr uint64_t kDistillGenSeed = 21;      // the distill steps' generator (CFG scales, times, noise)
constexpr int64_t kTrainBos = 2;              // Gemma's BOS and pad ids (Gemma2Config defaults)
constexpr int64_t kTrainPad = 0;

struct TrainSettings {
  // Models (teacher.json "transformer", "text_encoder"; distill.json "ladd.head_block_ids").
  sprint::TransformerConfig tc;
  sprint::Gemma2Config gc;
  int64_t text_len = 24;  // teacher.json prompt.max_sequence_length
  // Teacher step (teacher.json).
  double t_lr = 1e-4, t_te_lr_scale = 1.0, t_clip = 1.0, t_wd = 0.0, t_beta1 = 0.9, t_beta2 = 0.999;
  double flow_mean = 0.0, flow_std = 1.0;
  bool flow_uniform = false;
  // Distill steps (distill.json).
  double d_lr = 1e-4, d_lr_d = 1e-4, d_clip = 1.0, d_wd = 0.0, d_beta1 = 0.9, d_beta2 = 0.999;
  sprint::training::ScmConfig sc;
  sprint::training::LaddConfig lc;
  double r = 1.0;  // tangent warm-up factor: 1 (after warm-up), so the JVP term counts in the loss
};

// `a.b.c` in a JSON object, or `dflt` when absent.
template <typename T>
T jget(const json& j, const std::string& dotted, T dflt) {
  const json* cur = &j;
  size_t pos = 0;
  while (true) {
    const size_t dot = dotted.find('.', pos);
    const std::string key = dotted.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (!cur->is_object() || !cur->contains(key)) return dflt;
    cur = &(*cur)[key];
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return cur->get<T>();
}

TrainSettings read_train_settings(const fs::path& dir) {
  const json tj = sprint::read_json_file((dir / "teacher.json").string());
  const json dj = sprint::read_json_file((dir / "distill.json").string());
  TrainSettings s;
  s.tc = sprint::TransformerConfig::from_json(tj.at("transformer"), (dir / "teacher.json").string() + " 'transformer'");
  s.gc = sprint::Gemma2Config::from_json(tj.at("text_encoder"), (dir / "teacher.json").string() + " 'text_encoder'");
  // As `sprint-train pretrain` from scratch: QK RMSNorm and the dense timestep unless the config turns them off.
  if (jget(tj, "finetune.qk_norm", true)) s.tc.qk_norm = "rms_norm_across_heads";
  if (jget(tj, "finetune.dense_timestep", true)) s.tc.timestep_scale = 1.0;
  s.text_len = jget<int64_t>(tj, "prompt.max_sequence_length", 300);
  s.t_lr = jget(tj, "optim.lr", s.t_lr);
  s.t_te_lr_scale = jget(tj, "text_encoder_lr_scale", s.t_te_lr_scale);
  s.t_clip = jget(tj, "grad_clip", s.t_clip);
  s.t_wd = jget(tj, "optim.weight_decay", s.t_wd);
  s.t_beta1 = jget(tj, "optim.beta1", s.t_beta1);
  s.t_beta2 = jget(tj, "optim.beta2", s.t_beta2);
  s.flow_uniform = jget<std::string>(tj, "flow.time", "logit_normal") == "uniform";
  s.flow_mean = jget(tj, "flow.mean", s.flow_mean);
  s.flow_std = jget(tj, "flow.std", s.flow_std);

  s.d_lr = jget(dj, "optim.lr", s.d_lr);
  s.d_lr_d = jget(dj, "optim.lr_d", s.d_lr);
  s.d_clip = jget(dj, "grad_clip", s.d_clip);
  s.d_wd = jget(dj, "optim.weight_decay", s.d_wd);
  s.d_beta1 = jget(dj, "optim.beta1", s.d_beta1);
  s.d_beta2 = jget(dj, "optim.beta2", s.d_beta2);
  auto& sc = s.sc;
  sc.p_mean = jget(dj, "scm.p_mean", sc.p_mean);
  sc.p_std = jget(dj, "scm.p_std", sc.p_std);
  sc.tangent_norm_c = jget(dj, "scm.tangent_norm_c", sc.tangent_norm_c);
  sc.cfg_scales = jget(dj, "scm.cfg_scales", sc.cfg_scales);
  sc.jvp_method = jget<std::string>(dj, "scm.jvp", "forward") == "forward" ? sprint::training::JvpMethod::Forward
                                                                          : sprint::training::JvpMethod::DoubleBackward;
  auto& lc = s.lc;
  lc.head_block_ids = jget(dj, "ladd.head_block_ids", std::vector<int>{1, 3, 5});
  lc.disc_p_mean = jget(dj, "ladd.p_mean", lc.disc_p_mean);
  lc.disc_p_std = jget(dj, "ladd.p_std", lc.disc_p_std);
  lc.largest_timestep_prob = jget(dj, "ladd.largest_timestep_prob", lc.largest_timestep_prob);
  lc.adv_lambda = jget(dj, "ladd.adv_lambda", lc.adv_lambda);
  lc.scm_lambda = jget(dj, "scm.lambda", lc.scm_lambda);
  lc.virtual_batch = jget(dj, "ladd.virtual_batch", lc.virtual_batch);
  lc.misaligned_pairs = jget(dj, "ladd.misaligned_pairs", lc.misaligned_pairs);
  SPRINT_CHECK(jget<std::string>(dj, "mode", "scm+ladd") == "scm+ladd", (dir / "distill.json").string(),
               ": sprint-bench --train times the \"scm+ladd\" mode only");
  return s;
}

json train_settings_json(const TrainSettings& s) {
  return {{"teacher", {{"lr", s.t_lr}, {"text_encoder_lr_scale", s.t_te_lr_scale}, {"grad_clip", s.t_clip},
                       {"weight_decay", s.t_wd}, {"betas", {s.t_beta1, s.t_beta2}}, {"eps", 1e-8},
                       {"flow_time", s.flow_uniform ? "uniform" : "logit_normal"}, {"flow_mean", s.flow_mean},
                       {"flow_std", s.flow_std}, {"timestep_scale", s.tc.timestep_scale}}},
          {"distill", {{"lr", s.d_lr}, {"lr_d", s.d_lr_d}, {"grad_clip", s.d_clip}, {"weight_decay", s.d_wd},
                       {"betas", {s.d_beta1, s.d_beta2}}, {"eps", 1e-8}, {"sigma_data", s.sc.sigma_data},
                       {"p_mean", s.sc.p_mean}, {"p_std", s.sc.p_std}, {"time_sigma", s.sc.time_sigma},
                       {"tangent_norm_c", s.sc.tangent_norm_c}, {"cfg_scales", s.sc.cfg_scales}, {"r", s.r},
                       {"head_block_ids", s.lc.head_block_ids}, {"disc_p_mean", s.lc.disc_p_mean},
                       {"disc_p_std", s.lc.disc_p_std}, {"largest_timestep", s.lc.largest_timestep},
                       {"largest_timestep_prob", s.lc.largest_timestep_prob}, {"adv_lambda", s.lc.adv_lambda},
                       {"scm_lambda", s.lc.scm_lambda}, {"virtual_batch", s.lc.virtual_batch},
                       {"misaligned_pairs", s.lc.misaligned_pairs}}}};
}

// The teacher's keys under the student's names: the time embedding moves from `time_embed.emb.timestep_embedder.*`
// (AdaLayerNormSingle) to `time_embed.timestep_embedder.*` (with guidance); the guidance embedder keeps its init.
void copy_teacher_into_student(const torch::nn::Module& teacher, torch::nn::Module& student) {
  torch::NoGradGuard ng;
  const auto src = teacher.named_parameters(true);
  const std::string from = "time_embed.timestep_embedder.", to = "time_embed.emb.timestep_embedder.";
  for (auto& p : student.named_parameters(true)) {
    std::string k = p.key();
    if (k.rfind(from, 0) == 0) k = to + k.substr(from.size());
    if (const auto* t = src.find(k)) p.value().copy_(*t);
  }
}

void copy_from(torch::nn::Module& m, const sprint::safetensors::StateDict& sd, const std::string& prefix) {
  torch::NoGradGuard ng;
  for (auto& p : m.named_parameters(true)) p.value().copy_(sd.at(prefix + p.key()));
  for (auto& b : m.named_buffers(true)) b.value().copy_(sd.at(prefix + b.key()));
}

// Writes the random models and the inputs: teacher/, text_encoder/, student/ (diffusers / transformers layouts),
// heads.safetensors (student logvar head as "logvar.*", discriminator heads as "disc.*"), inputs.safetensors.
void write_train_folder(const fs::path& root, const TrainSettings& s, int64_t B) {
  torch::manual_seed(kTrainWeightSeed);
  sprint::SanaTransformer2DModel teacher(s.tc);
  randomize(*teacher, 1.0);
  sprint::Gemma2Model te(s.gc);
  randomize(*te, 0.0);
  auto stc = s.tc;
  stc.guidance_embeds = true;
  sprint::SanaTransformer2DModel student_tr(stc);
  randomize(*student_tr, 1.0);
  copy_teacher_into_student(*teacher, *student_tr);
  sprint::training::SanaStudent student(student_tr, /*zero_init_guidance=*/true);
  sprint::training::SanaDiscriminator disc(teacher, s.lc.head_block_ids, s.lc.virtual_batch);

  sprint::write_json_file((root / "teacher" / "config.json").string(), s.tc.to_json());
  sprint::save_module(*teacher, (root / "teacher" / "diffusion_pytorch_model.safetensors").string());
  sprint::write_json_file((root / "text_encoder" / "config.json").string(), s.gc.to_json());
  sprint::save_module(*te, (root / "text_encoder" / "model.safetensors").string());
  sprint::write_json_file((root / "student" / "config.json").string(), stc.to_json());
  sprint::save_module(*student->transformer, (root / "student" / "diffusion_pytorch_model.safetensors").string());
  sprint::safetensors::StateDict heads;
  for (const auto& [k, v] : sprint::module_state_dict(*student->logvar)) heads["logvar." + k] = v;
  for (const auto& [k, v] : sprint::module_state_dict(*disc)) heads["disc." + k] = v;
  sprint::safetensors::save((root / "heads.safetensors").string(), heads);

  // Inputs: unit-variance latents, right-padded token ids (BOS first, 4..L real tokens), the empty prompt (BOS only).
  torch::manual_seed(kTrainInputSeed);
  const int64_t side = s.tc.sample_size, L = s.text_len;
  sprint::safetensors::StateDict in;
  in["z"] = torch::randn({B, s.tc.in_channels, side, side});
  auto lengths = torch::randint(std::min<int64_t>(4, L), L + 1, {B}, torch::kLong);
  auto ids = torch::randint(3, s.gc.vocab_size, {B, L}, torch::kLong);
  ids.select(1, 0).fill_(kTrainBos);
  auto mask = (torch::arange(L, torch::kLong).unsqueeze(0) < lengths.unsqueeze(1)).to(torch::kLong);
  in["ids"] = torch::where(mask.to(torch::kBool), ids, torch::full_like(ids, kTrainPad));
  in["mask"] = mask;
  auto uids = torch::full({B, L}, kTrainPad, torch::kLong);
  uids.select(1, 0).fill_(kTrainBos);
  in["uncond_ids"] = uids;
  in["uncond_mask"] = (torch::arange(L, torch::kLong) < 1).to(torch::kLong).unsqueeze(0).expand({B, L}).contiguous();
  sprint::safetensors::save((root / "inputs.safetensors").string(), in);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? NAN : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// CPU time of the whole process (all threads), in ms: on a loaded machine it counts the work done, not the time spent
// waiting for a core (with --threads 1 the step runs on the calling thread).
double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

struct TrainRow {
  std::string step, device;
  int64_t batch = 0;
  int warmup = 0, repeats = 0;
  std::vector<double> ms, cpu_ms;       // wall time and process CPU time per timed step
  std::map<std::string, double> first;  // the first step's loss terms
  double median_ms() const { return median(ms); }
  double median_cpu_ms() const { return median(cpu_ms); }
  double samples_per_s() const { return static_cast<double>(batch) / (median_ms() * 1e-3); }
};

json to_json(const TrainRow& r) {
  return {{"step", r.step}, {"device", r.device}, {"batch", r.batch}, {"warmup", r.warmup}, {"repeats", r.repeats},
          {"times_ms", r.ms}, {"median_ms", r.median_ms()}, {"cpu_times_ms", r.cpu_ms},
          {"median_cpu_ms", r.median_cpu_ms()}, {"samples_per_s", r.samples_per_s()}, {"first", r.first}};
}

// One timed step: wall and CPU time; the first step's terms are kept, steps after the warm-up are recorded.
template <typename F>
void time_step(TrainRow& row, int i, const torch::Device& dev, F&& step) {
  const auto t0 = Clock::now();
  const double c0 = process_cpu_ms();
  auto terms = step(i);
  sync(dev);
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  const double cpu = process_cpu_ms() - c0;
  if (i == 0) row.first = terms;
  if (i >= row.warmup) row.ms.push_back(ms), row.cpu_ms.push_back(cpu);
}

std::vector<torch::Tensor> trainable_params(const torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.parameters(true))
    if (p.requires_grad()) out.push_back(p);
  return out;
}

std::unique_ptr<torch::optim::AdamW> adamw(const std::vector<torch::Tensor>& params, double lr, double b1, double b2,
                                           double wd) {
  torch::optim::AdamWOptions o(lr);
  o.betas({b1, b2}).eps(1e-8).weight_decay(wd);
  return std::make_unique<torch::optim::AdamW>(params, o);
}

// The teacher step of `sprint-train pretrain` (its hooks.step minus data, VAE, EMA and logging).
TrainRow bench_teacher_step(const fs::path& root, const TrainSettings& s, const sprint::safetensors::StateDict& in,
                            const torch::Device& dev, int warmup, int repeats, sprint::safetensors::StateDict* out) {
  namespace st = sprint::training;
  auto teacher = sprint::load_transformer((root / "teacher").string());
  auto te = sprint::load_text_encoder((root / "text_encoder").string());
  teacher->to(dev);
  te->to(dev);
  for (auto* m : std::initializer_list<torch::nn::Module*>{teacher.ptr().get(), te.ptr().get()}) {
    m->train();
    for (auto& p : m->parameters(true)) p.set_requires_grad(true);
  }
  const auto t_params = trainable_params(*teacher), e_params = trainable_params(*te);
  auto opt = adamw(t_params, s.t_lr, s.t_beta1, s.t_beta2, s.t_wd);
  auto opt_te = adamw(e_params, s.t_lr * s.t_te_lr_scale, s.t_beta1, s.t_beta2, s.t_wd);
  sprint::PromptOptions po;
  po.complex_human_instruction = false;
  po.max_sequence_length = static_cast<int>(s.text_len);
  sprint::TokenizedBatch tokens{in.at("ids").to(dev), in.at("mask").to(dev)};
  const auto z = in.at("z").to(dev);
  const auto fopts = z.options();
  const int64_t B = z.size(0);
  auto gen = st::make_generator(kTeacherGenSeed);
  const double tscale = s.tc.timestep_scale;

  TrainRow row;
  row.step = "teacher", row.device = dev.is_cuda() ? "cuda" : "cpu", row.batch = B;
  row.warmup = warmup, row.repeats = repeats;
  auto step = [&](int i) {
    auto e = st::randn(gen, z.sizes(), fopts);
    auto sched = st::sample_flow_time(gen, B, s.flow_uniform ? st::FlowTimeScheme::Uniform : st::FlowTimeScheme::LogitNormal,
                                      s.flow_mean, s.flow_std, fopts);
    torch::Tensor enc, mask;
    std::tie(enc, mask) = sprint::embed_prompts(*te, tokens, po, dev);
    sprint::FlowModel model = [&](const torch::Tensor& x, const torch::Tensor& tt) {
      return teacher->forward(x, enc, tt * tscale, {}, mask);
    };
    auto loss = st::flow_matching_loss(model, z, e, sched);
    opt->zero_grad();
    opt_te->zero_grad();
    loss.backward();
    const double gn = st::clip_gradients(t_params, s.t_clip);
    const double gn_te = st::clip_gradients(e_params, s.t_clip);
    std::map<std::string, double> terms{{"loss", loss.item<double>()}, {"grad_norm", gn}, {"grad_norm_text", gn_te}};
    st::check_finite(i + 1, terms);
    opt->step();
    opt_te->step();
    if (i == 0 && out) (*out)["teacher.enc"] = enc.detach().to(torch::kCPU).contiguous();
    return terms;
  };
  for (int i = 0; i < warmup + repeats; ++i) time_step(row, i, dev, step);
  return row;
}

// The G and D steps of `sprint-train distill` (mode scm+ladd, no ControlNet), alternating as in the command.
std::pair<TrainRow, TrainRow> bench_distill_steps(const fs::path& root, const TrainSettings& s,
                                                  const sprint::safetensors::StateDict& in, const torch::Device& dev,
                                                  int warmup, int repeats, sprint::safetensors::StateDict* out) {
  namespace st = sprint::training;
  const double sd = s.sc.sigma_data;
  auto teacher = sprint::load_transformer((root / "teacher").string());
  auto te = sprint::load_text_encoder((root / "text_encoder").string());
  for (auto* m : std::initializer_list<torch::nn::Module*>{teacher.ptr().get(), te.ptr().get()}) {
    m->eval();
    for (auto& p : m->parameters(true)) p.set_requires_grad(false);
  }
  teacher->to(dev);
  te->to(dev);
  const auto heads = sprint::safetensors::load_all((root / "heads.safetensors").string());
  auto student_tr = sprint::load_transformer((root / "student").string());
  st::SanaStudent student(student_tr, /*zero_init_guidance=*/false);  // the saved guidance embedder is already zeroed
  copy_from(*student->logvar, heads, "logvar.");
  student->to(dev);
  for (auto& p : student->parameters(true)) p.set_requires_grad(true);
  student->transformer->front.set_explicit_attention(true);  // forward-mode AD needs the plain softmax
  st::SanaDiscriminator disc(teacher, s.lc.head_block_ids, s.lc.virtual_batch);
  copy_from(*disc, heads, "disc.");
  disc->to(dev);
  const auto g_params = trainable_params(*student), d_params = trainable_params(*disc);
  auto opt_g = adamw(g_params, s.d_lr, s.d_beta1, s.d_beta2, s.d_wd);
  auto opt_d = adamw(d_params, s.d_lr_d, s.d_beta1, s.d_beta2, s.d_wd);

  // Text embeddings of the frozen encoder, computed once (not timed).
  sprint::PromptOptions po;
  po.complex_human_instruction = false;
  po.max_sequence_length = static_cast<int>(s.text_len);
  st::TextCondition cond, uncond;
  {
    torch::NoGradGuard ng;
    std::tie(cond.enc, cond.mask) = sprint::embed_prompts(*te, {in.at("ids").to(dev), in.at("mask").to(dev)}, po, dev);
    std::tie(uncond.enc, uncond.mask) =
        sprint::embed_prompts(*te, {in.at("uncond_ids").to(dev), in.at("uncond_mask").to(dev)}, po, dev);
  }
  const auto x0 = in.at("z").to(dev) * sd;
  const auto fopts = x0.options();
  const int64_t B = x0.size(0);
  const auto& sc = s.sc;
  const auto& lc = s.lc;
  auto gen = st::make_generator(kDistillGenSeed);
  // x0_hat of the student at a fresh, max-time weighted t (distill.cpp's student_x0).
  auto student_x0 = [&](const st::TextCondition& c, const torch::Tensor& w) {
    auto t_new = st::apply_max_time(gen, st::sample_trigflow_time(gen, B, sc.p_mean, sc.p_std, sc.time_sigma, fopts),
                                    lc.largest_timestep_prob, lc.largest_timestep);
    auto eps = st::randn(gen, x0.sizes(), fopts) * sd;
    auto x_t = st::trigflow_noise(x0, eps, t_new);
    auto F = student->forward(x_t / sd, t_new, c, w).F;
    return st::trigflow_x0(x_t, F, t_new, sd);
  };

  auto g_step = [&](int i) {
    student->train();
    auto w = st::sample_cfg_scale(gen, B, sc.cfg_scales, fopts);
    auto pair = st::sana_teacher_pair(teacher, cond, uncond);
    st::VelocityFn vel = [&](const torch::Tensor& x_t, const torch::Tensor& t) {
      return st::cfg_velocity(pair, x_t, t, w, sd);
    };
    auto t = st::sample_trigflow_time(gen, B, sc.p_mean, sc.p_std, sc.time_sigma, fopts);
    auto eps = st::randn(gen, x0.sizes(), fopts) * sd;
    auto res = st::scm_step(st::bind_student(student, cond, w), vel, x0, eps, t, s.r, sc);
    auto loss = lc.scm_lambda * res.loss;
    for (auto& p : d_params) p.set_requires_grad(false);
    auto x0_hat = student_x0(cond, w);
    auto t_d = st::sample_trigflow_time(gen, B, lc.disc_p_mean, lc.disc_p_std, lc.time_sigma, fopts);
    auto fake = st::renoise(gen, x0_hat, t_d, sd);
    auto adv = st::hinge_generator_loss(disc->forward(fake / sd, t_d, cond));
    for (auto& p : d_params) p.set_requires_grad(true);
    loss = loss + lc.adv_lambda * adv;
    opt_g->zero_grad();
    loss.backward();
    std::map<std::string, double> terms{{"loss_scm", res.loss.item<double>()},
                                        {"loss_no_logvar", res.loss_no_logvar.item<double>()},
                                        {"g_norm", res.g_norm.item<double>()},
                                        {"loss_adv", adv.item<double>()}};
    terms["grad_norm_g"] = st::clip_gradients(g_params, s.d_clip);
    terms["loss_g"] = loss.item<double>();
    st::check_finite(2 * i + 1, terms);
    opt_g->step();
    if (i == 0 && out) {
      (*out)["g.x_t"] = res.x_t.to(torch::kCPU).contiguous();
      (*out)["g.dxdt"] = res.dxdt.to(torch::kCPU).contiguous();
      (*out)["g.J"] = res.J.to(torch::kCPU).contiguous();
      (*out)["g.F_theta"] = res.F_theta.detach().to(torch::kCPU).contiguous();
      (*out)["g.logvar"] = res.logvar.detach().to(torch::kCPU).contiguous();
      (*out)["distill.cond_enc"] = cond.enc.to(torch::kCPU).contiguous();
      (*out)["distill.uncond_enc"] = uncond.enc.to(torch::kCPU).contiguous();
    }
    return terms;
  };
  auto d_step = [&](int i) {
    student->eval();
    auto w = st::sample_cfg_scale(gen, B, sc.cfg_scales, fopts);
    torch::Tensor x0_hat;
    {
      torch::NoGradGuard ng;
      x0_hat = student_x0(cond, w);
    }
    auto t_d = st::sample_trigflow_time(gen, B, lc.disc_p_mean, lc.disc_p_std, lc.time_sigma, fopts);
    auto real = st::renoise(gen, x0, t_d, sd);
    auto fake = st::renoise(gen, x0_hat, t_d, sd);
    torch::Tensor fake_logits;
    if (lc.misaligned_pairs && B > 1) {
      auto t_mis = st::sample_trigflow_time(gen, B, lc.disc_p_mean, lc.disc_p_std, lc.time_sigma, fopts);
      auto mis = st::renoise(gen, torch::roll(x0, 1, 0), t_mis, sd);
      st::TextCondition c2 = cond;
      c2.enc = torch::cat({cond.enc, cond.enc});
      if (cond.mask.defined()) c2.mask = torch::cat({cond.mask, cond.mask});
      fake_logits = disc->forward(torch::cat({fake, mis}) / sd, torch::cat({t_d, t_mis}), c2);
    } else {
      fake_logits = disc->forward(fake / sd, t_d, cond);
    }
    auto dl = st::hinge_discriminator_loss(disc->forward(real / sd, t_d, cond), fake_logits);
    opt_d->zero_grad();
    dl.loss.backward();
    const double gn = st::clip_gradients(d_params, s.d_clip);
    std::map<std::string, double> terms{{"loss_d", dl.loss.item<double>()}, {"loss_real", dl.loss_real.item<double>()},
                                        {"loss_fake", dl.loss_fake.item<double>()}, {"grad_norm_d", gn}};
    st::check_finite(2 * i + 2, terms);
    opt_d->step();
    return terms;
  };

  TrainRow g, d;
  g.step = "distill G", d.step = "distill D";
  g.device = d.device = dev.is_cuda() ? "cuda" : "cpu";
  g.batch = d.batch = B;
  g.warmup = d.warmup = warmup, g.repeats = d.repeats = repeats;
  for (int i = 0; i < warmup + repeats; ++i) {  // alternating, as the command's steps
    time_step(g, i, dev, g_step);
    time_step(d, i, dev, d_step);
  }
  return {g, d};
}

std::string train_python_problem(const Options& o) {
  if (o.python.empty()) return "no Python configured (configure with -DSPRINT_PYTHON=<venv>/bin/python or pass --python)";
  if (!fs::exists(o.python)) return "Python '" + o.python + "' does not exist";
  if (!fs::exists(o.train_script)) return "script '" + o.train_script + "' does not exist";
  const std::string probe = shell_quote(o.python) + " -c 'import torch, diffusers, transformers, safetensors' >/dev/null 2>&1";
  if (std::system(probe.c_str()) != 0)
    return "'" + o.python + "' cannot import torch, diffusers, transformers and safetensors";
  return "";
}

// The first-step losses compared (C++ key, diffusers key, label) per step.
const std::map<std::string, std::vector<std::string>> kTrainLossKeys = {
    {"teacher", {"loss"}}, {"distill G", {"loss_scm", "loss_adv", "loss_g"}}, {"distill D", {"loss_d"}}};

int run_train_bench(const Options& o) {
  const int threads = sprint::init_threads(o.threads);
  std::cout << "sprint-bench --train: " << sprint::describe_runtime(torch::kCPU) << ", load average " << load_average()
            << " (other processes skew the numbers)\n";
  const auto settings = read_train_settings(o.train_configs);
  const int64_t B = o.train_batch;
  SPRINT_CHECK(B % settings.lc.virtual_batch == 0 || B < settings.lc.virtual_batch, "--train-batch ", B,
               " must be a multiple of ladd.virtual_batch ", settings.lc.virtual_batch, " (BatchNormLocal groups)");
  const int warmup = o.warmup >= 0 ? o.warmup : 2, repeats = o.repeats > 0 ? o.repeats : 10;

  std::vector<torch::Device> devices;
  if (o.device.empty() || o.device == "cpu") devices.push_back(torch::kCPU);
  if (o.device.empty() || o.device == "cuda") {
    if (sprint::cuda_available()) {
      devices.push_back(torch::kCUDA);
    } else {
#ifdef SPRINT_HAVE_CUDA
      std::cout << "CUDA: skipped (torch::cuda::is_available() is false: no driver or no device)\n";
#else
      std::cout << "CUDA: skipped (this build links the CPU-only LibTorch)\n";
#endif
    }
  }
  if (devices.empty()) {
    std::cout << "nothing to run (--device " << o.device << ")\n";
    return 0;
  }
  const std::string py_problem = o.no_compare ? "--no-compare" : train_python_problem(o);
  if (!py_problem.empty()) std::cout << "diffusers comparison unavailable: " << py_problem << "\n";

  TempDir temp;
  std::string tmpl = (fs::temp_directory_path() / "sprint-bench-train-XXXXXX").string();
  SPRINT_CHECK(mkdtemp(tmpl.data()) != nullptr, "cannot create a temporary folder from ", tmpl);
  const fs::path root = tmpl;
  if (!o.keep) temp.path = root;

  const auto& tc = settings.tc;
  write_train_folder(root, settings, B);
  const auto inputs = sprint::safetensors::load_all((root / "inputs.safetensors").string());
  std::cout << "models (random weights, seed " << kTrainWeightSeed << ", from " << o.train_configs << "): teacher "
            << tc.num_layers << " blocks, D " << tc.inner_dim() << ", " << tc.in_channels << "x" << tc.sample_size
            << "x" << tc.sample_size << " latent, " << settings.text_len << " caption tokens x "
            << tc.caption_channels << "; Gemma-2 " << settings.gc.num_hidden_layers << " layers; student + guidance "
            << "embedding + logvar head; discriminator heads on blocks "
            << json(settings.lc.head_block_ids).dump() << "\n"
            << "batch " << B << ", " << threads << " threads, " << warmup << " warm-up + " << repeats
            << " timed steps each (median)\n"
            << std::flush;

  std::vector<TrainRow> rows;
  sprint::safetensors::StateDict first;
  for (const auto& dev : devices) {
    const std::string dn = dev.is_cuda() ? "cuda" : "cpu";
    sprint::safetensors::StateDict f;
    std::cout << "  " << dn << " teacher step ..." << std::flush;
    rows.push_back(bench_teacher_step(root, settings, inputs, dev, warmup, repeats, &f));
    std::cout << " " << fmt(rows.back().median_ms(), "%.1f") << " ms\n  " << dn << " distill G + D steps ..." << std::flush;
    auto [g, d] = bench_distill_steps(root, settings, inputs, dev, warmup, repeats, &f);
    std::cout << " G " << fmt(g.median_ms(), "%.1f") << " ms, D " << fmt(d.median_ms(), "%.1f") << " ms\n" << std::flush;
    rows.push_back(g);
    rows.push_back(d);
    for (auto& [k, v] : f) first[dn + "." + k] = v;
  }
  sprint::safetensors::save((root / "cpp_first_step.safetensors").string(), first);
  json results = {{"tool", "sprint-bench --train"}, {"threads", threads}, {"batch", B}, {"warmup", warmup},
                  {"repeats", repeats}, {"seeds", {{"teacher", kTeacherGenSeed}, {"distill", kDistillGenSeed}}},
                  {"text_len", settings.text_len}, {"settings", train_settings_json(settings)},
                  {"load_average", load_average()}, {"rows", json::array()}};
  for (const auto& r : rows) results["rows"].push_back(to_json(r));
  sprint::write_json_file((root / "cpp_results.json").string(), results);

  std::optional<json> py;
  std::string why = py_problem;
  if (py_problem.empty()) {
    const fs::path out = root / "diffusers_results.json";
    const std::string cmd = sprint::malloc_settings_env() + " " + shell_quote(o.python) + " " + shell_quote(o.train_script) + " " +
                            shell_quote(root.string()) + " --json " + shell_quote(out.string());
    std::cout << "\n$ " << cmd << "\n" << std::flush;
    const int rc = std::system(cmd.c_str());
    if (rc != 0 || !fs::exists(out)) {
      why = "bench_train_diffusers.py failed (" +
            (WIFEXITED(rc) ? "exit code " + std::to_string(WEXITSTATUS(rc)) : "status " + std::to_string(rc)) +
            ", see above)";
    } else {
      py = sprint::read_json_file(out.string());
    }
  }
  auto py_row = [&](const TrainRow& r) -> const json* {
    if (!py) return nullptr;
    for (const auto& j : py->at("rows"))
      if (j.at("step") == r.step && j.at("device") == r.device) return &j;
    return nullptr;
  };

  std::cout << "\n==== sprint-bench --train results (batch " << B << ", " << threads << " threads, median of "
            << repeats << " steps after " << warmup << " warm-up; load average " << load_average() << ") ====\n";
  std::vector<std::vector<std::string>> cells;
  // Medians in ms: wall and CPU time, C++ and diffusers (nullopt: diffusers not run).
  auto add = [&](const std::string& step, const std::string& dev, int64_t samples, double c_ms, double c_cpu,
                 std::optional<double> p_ms, std::optional<double> p_cpu) {
    const double cs = static_cast<double>(samples) / (c_ms * 1e-3);
    std::optional<double> ps;
    if (p_ms) ps = static_cast<double>(samples) / (*p_ms * 1e-3);
    const bool cpu = dev == "cpu";
    cells.push_back({step, dev, fmt(c_ms, "%.1f"), fmt(cs, "%.2f"), p_ms ? fmt(*p_ms, "%.1f") : "-",
                     ps ? fmt(*ps, "%.2f") : "-", ps ? fmt(cs / *ps, "%.2f") : "-",
                     cpu ? fmt(c_cpu, "%.1f") : "-", cpu && p_cpu ? fmt(*p_cpu, "%.1f") : "-",
                     cpu && p_cpu ? fmt(*p_cpu / c_cpu, "%.2f") : "-"});
  };
  auto pget = [](const json* p, const char* k) -> std::optional<double> {
    if (!p || !p->contains(k) || (*p)[k].is_null()) return std::nullopt;
    return (*p)[k].get<double>();
  };
  auto sum = [](std::optional<double> a, std::optional<double> b) -> std::optional<double> {
    if (a && b) return *a + *b;
    return std::nullopt;
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const json* p = py_row(r);
    add(r.step, r.device, r.batch, r.median_ms(), r.median_cpu_ms(), pget(p, "median_ms"), pget(p, "median_cpu_ms"));
    if (r.step == "distill D" && i > 0 && rows[i - 1].step == "distill G") {  // one G + one D step: 2 batches
      const auto& g = rows[i - 1];
      const json* pg = py_row(g);
      add("distill G+D", r.device, 2 * r.batch, r.median_ms() + g.median_ms(), r.median_cpu_ms() + g.median_cpu_ms(),
          sum(pget(p, "median_ms"), pget(pg, "median_ms")), sum(pget(p, "median_cpu_ms"), pget(pg, "median_cpu_ms")));
    }
  }
  print_table({"step", "device", "C++ ms", "C++ samples/s", "diffusers ms", "diffusers samples/s", "C++/diffusers",
               "C++ CPU ms", "diffusers CPU ms", "C++/diffusers by CPU time"},
              cells, 2);
  std::cout << "ms: median wall time per step. C++/diffusers: samples/s ratio from wall time (> 1: C++ faster). CPU ms "
               "and the last column: the same from process CPU time (cpu rows only), which a busy machine skews less. "
               "distill G+D: one G and one D step (two batches), as the command alternates them.\n";

  if (py) {
    std::cout << "\nfirst-step losses (same weights, inputs and random draws; step 1 of the warm-up):\n";
    std::vector<std::vector<std::string>> lc;
    for (const auto& r : rows) {
      const json* p = py_row(r);
      for (const auto& key : kTrainLossKeys.at(r.step)) {
        const double c = r.first.at(key);
        std::optional<double> v;
        if (p && p->at("first").contains(key)) v = p->at("first").at(key).get<double>();
        lc.push_back({r.step, r.device, key, fmt(c, "%.8g"), v ? fmt(*v, "%.8g") : "-",
                      v ? fmt(std::fabs(c - *v) / std::max(std::fabs(c), 1e-30), "%.2e") : "-"});
      }
    }
    print_table({"step", "device", "term", "C++", "diffusers", "rel. diff"}, lc, 3);
    if (py->contains("parity")) {
      std::cout << "intermediates of the first step, diffusers vs C++ (NMSE):";
      for (const auto& [k, v] : py->at("parity").items())
        std::cout << " " << k << " " << (v.is_null() ? "-" : fmt(v.get<double>(), "%.1e"));
      std::cout << "\n";
    }
    std::cout << "diffusers side: torch " << py->value("torch", "?") << ", diffusers " << py->value("diffusers", "?")
              << ", transformers " << py->value("transformers", "?") << ", " << py->value("threads", 0)
              << " threads, mode " << py->value("mode", "?") << "\n";
  } else {
    std::cout << "\ndiffusers: not run: " << why << "\n";
    std::cout << "first-step losses (C++):";
    for (const auto& r : rows)
      for (const auto& key : kTrainLossKeys.at(r.step))
        std::cout << " " << r.step << "/" << r.device << " " << key << " " << fmt(r.first.at(key), "%.6g") << ";";
    std::cout << "\n";
  }
  if (o.keep) std::cout << "\nweights, inputs and results kept in " << root << "\n";
  if (!o.json_path.empty()) {
    if (py) results["diffusers"] = *py;
    std::ofstream(o.json_path) << results.dump(2) << "\n";
  }
  return 0;
}

const char* kUsage = R"(usage: sprint-bench [options]
  --only tiny|512|1024   run one case (comma-separated list allowed); default: all
  --repeats N            timed runs per case (default: per case, e.g. tiny 50, 512 3, 1024 2 on CPU)
  --warmup N             untimed runs before timing (default: per case)
  --threads N            intra-op threads (default: all cores, or $SPRINT_THREADS)
  --json FILE            also write the numbers as JSON
  --save-weights DIR     write DIR/<case>/{config.json, diffusion_pytorch_model.safetensors, inputs.safetensors}
                         and DIR/cpp_results.json for tests/bench/bench_diffusers.py
  --compare              also time diffusers on the same weights (runs bench_diffusers.py) and print both
  --keep                 keep the temporary --compare folder
  --python PATH          Python for --compare (default: SPRINT_PYTHON at configure time)
  --script PATH          bench_diffusers.py to run
  --tiny-dir DIR         tiny transformer folder (default: the test fixture)
  --pipeline             per-stage latency of the sketch-to-image pipeline (tokenize, text encoder, condition
                         encode, transformer+ControlNet, decode) on the tiny fixture pipeline, cold and warm, next
                         to diffusers' SanaSprintPipeline on the same folder, seed and threads
pipeline options:
  --real                 also run the real 0.6B shape at 512x512 (random weights, reduced 2-layer Gemma; slow)
  --size N               real-shape image side (512 or 1024; implies --real)
  --steps N              SCM steps (default: tiny 2, real shape 1)
  --repeats N            runs per warm scenario (default: tiny 5, real shape 1)
  --rounds N             run C++ and then diffusers N times in turn and print each round's ratios: on a machine
                         whose speed drifts (a shared VM) a single round compares two different machines; the
                         tables show the round with the median total ratio (default 1)
  --no-tiny              skip the tiny fixture pipeline
  --no-compare           C++ only (skip bench_pipeline_diffusers.py)
  --no-trim              C++ encodes all max_sequence_length text columns, as diffusers does, instead of skipping
                         the padding (embed_prompts_trimmed; the same image): shows what that skip is worth
  --no-winograd          C++ runs the DC-AE with torch's NCHW convolutions, as diffusers does, instead of the
                         Winograd / channels-last CPU path (PipelineOptions::fast_cpu_vae; the same image up to
                         float32 rounding): shows what that path is worth
  --keep                 keep the temporary folder (random model, settings, outputs)
  --pipeline-script PATH bench_pipeline_diffusers.py to run
  --tiny-pipeline DIR    tiny pipeline folder (default: the test fixture)
  --tokenizer FILE       tokenizer.model for the real-shape folder (default: the fixture tokenizer)
  --device cpu|cuda      cpu: fp32 (default); cuda: bf16 on the GPU, diffusers too
  --train                training-step throughput (samples/s) of the teacher flow-matching step and the distill G
                         and D steps on the bundled model's sizes (random weights), next to the same steps in
                         PyTorch/diffusers (bench_train_diffusers.py) on the same weights, inputs and random draws,
                         with the first-step losses of both sides
train options:
  --train-batch N        batch size (default 16, the bundled distill config's)
  --repeats N            timed steps per step kind, median reported (default 10)
  --warmup N             untimed steps first (default 2)
  --device cpu|cuda      only this device (default: cpu, and cuda when available)
  --no-compare           C++ only (skip bench_train_diffusers.py)
  --keep                 keep the temporary folder (weights, inputs, first-step tensors, results)
  --train-script PATH    bench_train_diffusers.py to run
  --train-configs DIR    folder with teacher.json and distill.json (default: training/configs/emoji)
  --conv                 the DC-AE's 3x3 convolution shapes (f32c32, float32, CPU): torch NCHW (as diffusers runs
                         them), torch channels-last and sprint's Winograd F(4x4, 3x3), with ratios and NMSE
conv options:
  --size N               image side (default 512)
  --repeats N            timed runs per shape, median reported (default 3)
  --threads, --json and --python apply to every mode; --only, --compare and --save-weights to the transformer
  mode only (--pipeline and --train compare with diffusers unless --no-compare)
)";

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      SPRINT_CHECK(i + 1 < argc, a, " needs a value\n", kUsage);
      return argv[++i];
    };
    auto number = [&]() {
      const std::string v = value();
      try {
        return std::stoi(v);
      } catch (const std::exception&) {
        throw sprint::Error(sprint::str(a, ": '", v, "' is not a number"));
      }
    };
    if (a == "--only") {
      std::string v = value(), item;
      for (size_t p = 0; p <= v.size(); ++p) {
        if (p < v.size() && v[p] != ',') { item += v[p]; continue; }
        SPRINT_CHECK(std::any_of(kCases.begin(), kCases.end(), [&](const Case& k) { return k.name == item; }),
                     "--only: unknown case '", item, "' (use tiny, 512 or 1024)");
        o.only.insert(item), item.clear();
      }
    } else if (a == "--repeats") { o.repeats = number(); SPRINT_CHECK(o.repeats > 0, "--repeats must be > 0");
    } else if (a == "--warmup") { o.warmup = number(); SPRINT_CHECK(o.warmup >= 0, "--warmup must be >= 0");
    } else if (a == "--threads") { o.threads = number();
    } else if (a == "--json") { o.json_path = value();
    } else if (a == "--save-weights") { o.save_dir = value();
    } else if (a == "--compare") { o.compare = true;
    } else if (a == "--keep") { o.keep = true;
    } else if (a == "--python") { o.python = value();
    } else if (a == "--script") { o.script = value();
    } else if (a == "--tiny-dir") { o.tiny_dir = value();
    } else if (a == "--pipeline") { o.mode = Options::Mode::Pipeline;
    } else if (a == "--real") { if (o.size == 0) o.size = 512;
    } else if (a == "--size") {
      o.size = number();
      SPRINT_CHECK(o.size > 0 && o.size % 32 == 0, "--size must be a positive multiple of 32 (the DC-AE compresses 32x)");
    } else if (a == "--rounds") { o.rounds = number(); SPRINT_CHECK(o.rounds >= 1 && o.rounds <= 20, "--rounds must be 1 to 20");
    } else if (a == "--steps") { o.steps = number(); SPRINT_CHECK(o.steps >= 1 && o.steps <= 4, "--steps must be 1 to 4");
    } else if (a == "--no-tiny") { o.no_tiny = true;
    } else if (a == "--no-compare") { o.no_compare = true;
    } else if (a == "--no-trim") { o.no_trim = true;
    } else if (a == "--no-winograd") { o.no_winograd = true;
    } else if (a == "--pipeline-script") { o.pipeline_script = value();
    } else if (a == "--tiny-pipeline") { o.tiny_pipeline = value();
    } else if (a == "--tokenizer") { o.tokenizer = value();
    } else if (a == "--train") { o.mode = Options::Mode::Train;
    } else if (a == "--conv") { o.mode = Options::Mode::Conv;
    } else if (a == "--train-batch") {
      o.train_batch = number();
      SPRINT_CHECK(o.train_batch >= 1 && o.train_batch <= 4096, "--train-batch must be 1 to 4096");
    } else if (a == "--device") {
      o.device = value();
      SPRINT_CHECK(o.device == "cpu" || o.device == "cuda", "--device must be cpu or cuda");
    } else if (a == "--train-script") { o.train_script = value();
    } else if (a == "--train-configs") { o.train_configs = value();
    } else if (a == "-h" || a == "--help") { std::cout << kUsage; std::exit(0);
    } else { throw sprint::Error(sprint::str("unknown option '", a, "'\n", kUsage)); }
  }
  return o;
}

}  // namespace

// A crash prints the stack (library names, and our functions by name: linked with -rdynamic) before dying, so a
// run on a remote machine says where it failed.
void on_fatal_signal(int sig) {
  std::cout.flush();
  const char msg[] = "\nsprint-bench: fatal signal, stack:\n";
  [[maybe_unused]] auto n = write(STDERR_FILENO, msg, sizeof msg - 1);
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

int main(int argc, char** argv) {
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) std::signal(sig, on_fatal_signal);
  try {
    const Options o = parse_args(argc, argv);
    int rc = 1;
    switch (o.mode) {
      case Options::Mode::Pipeline:
        rc = run_pipeline_bench(o);
        break;
      case Options::Mode::Transformer:
        rc = run_transformer_bench(o);
        break;
      case Options::Mode::Train:
        rc = run_train_bench(o);
        break;
      case Options::Mode::Conv:
        sprint::init_threads(o.threads);
        rc = sprint::bench::run_conv_bench(o.size > 0 ? o.size : 512, o.repeats > 0 ? o.repeats : 3, o.json_path);
        break;
    }
    std::cout << "sprint-bench: done" << std::endl;
    return rc;
  } catch (const std::exception& e) {
    std::cerr << "sprint-bench: " << e.what() << "\n";
  }
  return 1;
}
