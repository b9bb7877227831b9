// sprint-bench, transformer mode (the default): SanaTransformer2DModel forward latency at batch 1 (tiny fixture model,
// 0.6B Sprint at 512² and 1024²), achieved GFLOP/s from an analytic FLOP count next to a matmul peak measured in the
// same run, and with --compare the same numbers for diffusers on the same weights, inputs and thread count (plus an
// output NMSE, which makes the comparison a full-size parity check as well).
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "bench_util.h"
#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/runtime.h"
#include "sprint/safetensors.h"
#include "sprint/transformer.h"
#include "sprint_bench.h"

namespace sprint::bench {

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

// Runs bench_diffusers.py on the saved folder. Returns its rows, or nullopt with the reason in *why.
std::optional<std::vector<Row>> run_diffusers(const Options& o, const fs::path& dir, std::string* why) {
  const auto results = run_python_script(o.python, o.script, "bench_diffusers.py", dir, why);
  if (!results) return std::nullopt;
  std::vector<Row> rows;
  for (const auto& j : results->at("rows")) rows.push_back(row_from_json(j));
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

}  // namespace

bool is_transformer_case(const std::string& name) {
  return std::any_of(kCases.begin(), kCases.end(), [&](const Case& k) { return k.name == name; });
}

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
  const std::string py_problem = o.compare ? python_problem(o.python, o.script, {"torch", "diffusers", "safetensors"}) : "";
  if (!py_problem.empty()) std::cout << "--compare: diffusers comparison unavailable: " << py_problem << "\n";
  const bool compare = o.compare && py_problem.empty();

  // --compare needs weights on disk: the --save-weights folder, or a temporary one removed afterwards.
  fs::path dir = o.save_dir;
  TempDir temp;  // removes the folder on every way out, errors included
  if (dir.empty() && compare) {
    dir = make_temp_dir("sprint-bench");
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

}  // namespace sprint::bench
