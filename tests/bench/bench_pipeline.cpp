// sprint-bench --pipeline, the pipeline mode.
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
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench_util.h"
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
#include "sprint/transformer.h"
#include "sprint/vae.h"
#include "sprint_bench.h"

namespace sprint::bench {

namespace {

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
  return median(std::move(v));
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

void run_diffusers_pipeline(const Options& o, const fs::path& work, PipelineResult& res) {
  if (auto results = run_python_script(o.python, o.pipeline_script, "bench_pipeline_diffusers.py", work,
                                       &res.diffusers_problem))
    res.diffusers = *results;
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

}  // namespace

int run_pipeline_bench(const Options& o) {
  const int threads = sprint::init_threads(o.threads);
  // --device cuda: both sides on the GPU in bf16 (the pipeline's CUDA default); otherwise the CPU in fp32.
  const std::string device = o.device == "cuda" ? "cuda" : "cpu";
  const auto dev = sprint::pick_device(device);  // throws with the reason when CUDA is asked for but missing
  std::cout << "sprint-bench --pipeline: " << sprint::describe_runtime(dev) << ", load average " << load_average()
            << " (other processes skew the numbers)\n"
            << "device: " << device << (device == "cuda" ? " bf16" : " fp32")
            << " (--device cpu|cuda picks one; stage times are device-synchronised)\n";
  const std::string py_problem =
      o.no_compare ? "--no-compare"
                   : python_problem(o.python, o.pipeline_script,
                                    {"torch", "diffusers", "transformers", "safetensors", "sentencepiece"});
  if (!py_problem.empty()) std::cout << "diffusers comparison unavailable: " << py_problem << "\n";

  TempDir temp;
  const fs::path root = make_temp_dir("sprint-bench-pipeline");
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

}  // namespace sprint::bench
