// sprint-bench: SanaTransformer2DModel forward latency at batch 1 (tiny fixture model, 0.6B Sprint at 512² and
// 1024²), achieved GFLOP/s from an analytic FLOP count next to a matmul peak measured in the same run, and with
// --compare the same numbers for diffusers on the same weights, inputs and thread count (plus an output NMSE, which
// makes the comparison a full-size parity check as well).
//
// A tool, not a test: nothing here asserts; the numbers are for people. Modes: transformer (default); --pipeline:
// per-stage latency of the whole sketch-to-image pipeline, cold and warm, against diffusers' SanaSprintPipeline
// (see "pipeline mode" below).
#include <torch/cuda.h>
#include <torch/torch.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sprint/config.h"
#include "sprint/control_pipeline.h"
#include "sprint/controlnet.h"
#include "sprint/error.h"
#include "sprint/model_folder.h"
#include "sprint/runtime.h"
#include "sprint/safetensors.h"
#include "sprint/scribble.h"
#include "sprint/text_encoder.h"
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
  enum class Mode { Transformer, Pipeline } mode = Mode::Transformer;
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
  bool no_tiny = false, no_compare = false;
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
  const std::string cmd = shell_quote(o.python) + " " + shell_quote(o.script) + " " + shell_quote(dir.string()) +
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
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
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
// Per-stage latency of the whole sketch-to-image pipeline (sprint::ControlPipeline: tokenizer, Gemma-2, scribble ->
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

// Writes the random real-shape folder (diffusers layout, what ControlPipeline::load and SanaSprintPipeline read).
void write_real_shape_model(const fs::path& dir, const std::string& tokenizer_model) {
  const auto t0 = Clock::now();
  fs::create_directories(dir);
  torch::manual_seed(kPipelineWeightSeed);

  const auto tc = sprint::TransformerConfig::sprint_600m();
  // diffusers' SanaControlNetModel is the Sana 1.0 layout (no guidance embedding, no QK norm, after-block residuals):
  // the only ControlNet both sides can load. ControlPipeline drives it as a Sana 1.0 ControlNet under a Sprint
  // transformer (timestep x 1000), as tests/fixtures/fx_pipeline.py's ControlledSprint does.
  auto cc = sprint::ControlNetConfig::for_transformer(tc, 7, sprint::ControlInjection::AfterBlock);
  cc.base.guidance_embeds = false;
  cc.base.qk_norm.clear();
  const auto vc = sprint::VaeConfig::dc_ae_f32c32();
  auto gc = sprint::Gemma2Config::gemma2_2b();
  gc.num_hidden_layers = kReducedGemmaLayers;
  gc.vocab_size = kReducedGemmaVocab;
  gc.layer_types = sprint::Gemma2Config::default_layer_types(gc.num_hidden_layers);

  {
    sprint::SanaTransformer2DModel m(tc);
    randomize(*m, 1.0);
    sprint::write_json_file((dir / "transformer" / "config.json").string(), tc.to_json());
    sprint::save_module(*m, (dir / "transformer" / "diffusion_pytorch_model.safetensors").string());
  }
  {
    sprint::SanaControlNetModel m(cc);
    randomize(*m, 1.0);
    // Without the keys diffusers' SanaControlNetModel does not know; absent, they read back as what cc holds
    // (after-block injection, no guidance embedding, no QK norm).
    auto j = cc.to_json();
    for (const char* k : {"control_injection", "guidance_embeds", "guidance_embeds_scale", "qk_norm", "timestep_scale"})
      j.erase(k);
    const auto back = sprint::ControlNetConfig::from_json(j, "controlnet/config.json");
    SPRINT_CHECK(back.base.to_json() == cc.base.to_json() && back.injection == cc.injection,
                 "controlnet/config.json does not read back as written without the Sprint-only keys");
    sprint::write_json_file((dir / "controlnet" / "config.json").string(), j);
    sprint::save_module(*m, (dir / "controlnet" / "diffusion_pytorch_model.safetensors").string());
  }
  {
    sprint::AutoencoderDC m(vc);
    randomize(*m, 1.0);
    sprint::write_json_file((dir / "vae" / "config.json").string(), vc.to_json());
    sprint::save_module(*m, (dir / "vae" / "diffusion_pytorch_model.safetensors").string());
  }
  {
    sprint::Gemma2Model m(gc);
    randomize(*m, 0.0);
    sprint::write_json_file((dir / "text_encoder" / "config.json").string(), gc.to_json());
    sprint::save_module(*m, (dir / "text_encoder" / "model.safetensors").string());
  }
  fs::create_directories(dir / "tokenizer");
  fs::copy_file(tokenizer_model, dir / "tokenizer" / "tokenizer.model", fs::copy_options::overwrite_existing);
  sprint::write_json_file((dir / "model_index.json").string(),
             {{"_class_name", "SanaSprintPipeline"}, {"scheduler", {"diffusers", "SCMScheduler"}},
              {"text_encoder", {"transformers", "Gemma2Model"}}, {"tokenizer", {"transformers", "GemmaTokenizer"}},
              {"transformer", {"diffusers", "SanaTransformer2DModel"}}, {"vae", {"diffusers", "AutoencoderDC"}}});
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

PipelineResult run_cpp_pipeline(const PipelineCase& pc, const fs::path& work, int threads) {
  PipelineResult res;
  res.pcase = pc;
  std::cout << "\n== " << pc.label << ": C++ (ControlPipeline, cpu fp32, " << threads << " threads, " << pc.steps
            << " step" << (pc.steps > 1 ? "s" : "") << ", " << pc.repeats << " repeat" << (pc.repeats > 1 ? "s" : "")
            << " per warm scenario)\n" << std::flush;
  sprint::PipelineOptions po;
  po.device = "cpu";
  po.dtype = torch::kFloat32;
  auto t0 = Clock::now();
  auto pipe = sprint::ControlPipeline::load(pc.model_dir.string(), po);
  res.load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "  loaded in " << fmt(res.load_s, "%.2f") << " s\n" << std::flush;
  pipe->set_control_scale(kControlScale);

  const auto sketch_a = make_sketch(pc.size, pc.size, 0), sketch_b = make_sketch(pc.size, pc.size, 1);
  uint64_t version = 0;
  sprint::GenerateRequest req;
  req.prompt = kPipelinePrompt;
  req.steps = pc.steps;
  req.guidance = kPipelineGuidance;
  req.width = req.height = pc.size;
  torch::Tensor full_map, full_latent, full_image;

  auto run = [&](const torch::Tensor* sketch, uint64_t seed, const char* what) {
    StageSample s;
    if (sketch) {
      const auto ts = Clock::now();
      auto map = sprint::sketch_to_scribble(*sketch);
      s.scribble_ms = std::chrono::duration<double, std::milli>(Clock::now() - ts).count();
      pipe->set_condition(map, ++version);
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
  Scenario full{"full (nothing cached)", "warm process; prompt, condition and noise caches cleared", {}};
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
              {"prompt", kPipelinePrompt}, {"seed", kPipelineSeed}, {"steps", pc.steps}, {"guidance", kPipelineGuidance},
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
  const std::string cmd = shell_quote(o.python) + " " + shell_quote(o.pipeline_script) + " " +
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

void print_pipeline_result(const PipelineResult& r) {
  const auto& pc = r.pcase;
  const Scenario& full = r.scenarios.at(1);
  const std::string steps = std::to_string(pc.steps) + " step" + (pc.steps > 1 ? "s" : "");
  std::cout << "\n" << pc.label << ", " << steps << ", " << pc.size << "x" << pc.size << ": C++ (\"full\", median of "
            << full.samples.size() << ") vs diffusers (median of " << full.samples.size() << " warm calls)\n";
  const json* d = r.diffusers ? &*r.diffusers : nullptr;
  auto py = [&](const char* group, const std::string& key) -> std::optional<double> {
    if (!d || !d->contains(group) || !(*d)[group].contains(key) || (*d)[group][key].is_null()) return std::nullopt;
    return (*d)[group][key].get<double>();
  };
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
              << num_or("nmse_image") << " (fp32; diffusers " << d->value("diffusers", "?") << ", torch "
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
  std::cout << "sprint-bench --pipeline: " << sprint::describe_runtime(torch::kCPU) << ", load average "
            << load_average() << " (other processes skew the numbers)\n"
            << "device: cpu fp32 only (CUDA is not measured in this mode)\n";
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
    t.label = "tiny fixture pipeline";
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
    auto res = run_cpp_pipeline(pc, work, threads);
    if (py_problem.empty()) {
      run_diffusers_pipeline(o, work, res);
    } else {
      res.diffusers_problem = py_problem;
    }
    if (pc.name != "tiny" && !o.keep) {  // 5 GB: remove as soon as both sides are done
      std::error_code ec;
      fs::remove_all(pc.model_dir, ec);
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
  --no-tiny              skip the tiny fixture pipeline
  --no-compare           C++ only (skip bench_pipeline_diffusers.py)
  --keep                 keep the temporary folder (random model, settings, outputs)
  --pipeline-script PATH bench_pipeline_diffusers.py to run
  --tiny-pipeline DIR    tiny pipeline folder (default: the test fixture)
  --tokenizer FILE       tokenizer.model for the real-shape folder (default: the fixture tokenizer)
  --threads, --json and --python apply to both modes; --only, --warmup, --compare and --save-weights to the
  transformer mode only (--pipeline compares with diffusers unless --no-compare)
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
    } else if (a == "--steps") { o.steps = number(); SPRINT_CHECK(o.steps >= 1 && o.steps <= 4, "--steps must be 1 to 4");
    } else if (a == "--no-tiny") { o.no_tiny = true;
    } else if (a == "--no-compare") { o.no_compare = true;
    } else if (a == "--pipeline-script") { o.pipeline_script = value();
    } else if (a == "--tiny-pipeline") { o.tiny_pipeline = value();
    } else if (a == "--tokenizer") { o.tokenizer = value();
    } else if (a == "-h" || a == "--help") { std::cout << kUsage; std::exit(0);
    } else { throw sprint::Error(sprint::str("unknown option '", a, "'\n", kUsage)); }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Options o = parse_args(argc, argv);
    switch (o.mode) {
      case Options::Mode::Pipeline:
        return run_pipeline_bench(o);
      case Options::Mode::Transformer:
        return run_transformer_bench(o);
    }
  } catch (const std::exception& e) {
    std::cerr << "sprint-bench: " << e.what() << "\n";
  }
  return 1;
}
