// sprint-train eval: the bundled model's evaluation report (issue "bundled default model", Evaluation): the flow
// teacher (Flow-Euler and TrigFlow-Euler, several step counts) and every distilled student (1/2/4 steps) on the
// held-out items of the dataset, with metrics that need no outside weights:
//   FD               Fréchet distance (metrics.h) between FeatureNet features (`sprint-train classifier`) of the
//                    generated images and of the real pictures of the same items;
//   edge F1          picture_to_scribble of the output (upsampled to the dataset's picture size, the size training
//                    makes condition maps from) against the condition map the model was given (metrics.h edge_f1);
//   consistency MSE  the student's final latent against the teacher's Flow-Euler solution of the PF-ODE (the most
//                    teacher steps listed) from the same noise: what sCM distils.
// Students run through the app's own code path (Pipeline::generate: tokenizer, text encoder, condition
// encoding, SCM sampler, seeded noise), so the report measures what users get. The teacher runs through the training
// samplers (teacher_sampling.h) with classifier-free guidance, batched.
//
// Noise: item i (0-based, manifest order of the held-out split) uses seed + i for every model. The teacher's initial
// noise is the first draw of seeded_cpu_noise(seed + i) at (1, C, h, w); Pipeline::generate draws its initial
// latent the same way (noise_for -> seeded_cpu_noise(seed), first draw; later draws are the per-step SCM noise).
// The report carries a check of this: the pipeline's latent for item 0 against scm_sample() on the pipeline's own
// modules driven by seeded_cpu_noise(seed) (an exact match unless the noise differs).
//
// Output (config key `out`): report.md (the tables of the issue, setup, seeds, goals), report.json (every number and
// the resolved config), grid_teacher.png and grid_<student>.png (rows: pictures, conditions, teacher, student at
// each step count; first grid.count items, 4x upscaled).
// Student folders that do not exist are "not trained" rows; table entries not listed in `students` are "not
// configured" rows. Nothing here trains: the run is a pure function of the models, the data and the config.
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include "commands.h"
#include "common.h"
#include "models.h"
#include "transfer.h"
#include "sprint/controlnet.h"
#include "sprint/error.h"
#include "sprint/loader.h"
#include "sprint/model_folder.h"
#include "sprint/pipeline.h"
#include "sprint/safetensors.h"
#include "sprint/scribble.h"
#include "sprint/training/metrics.h"
#include "sprint/training/teacher_sampling.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace sprint::training::cli {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// One generated set: a model at one sampler and step count, over the N items.
struct Arm {
  std::string model, sampler;  // "teacher" / student name; "Flow-Euler", "TrigFlow-Euler", "SCM"
  int steps = 0, nfe = 0;
  std::vector<torch::Tensor> images, latents;  // per item: (1, 3, R, R) in [-1, 1]; (1, C, h, w) transformer units
  double ms = 0;                               // total model time
  double fd = NAN, edge_f1 = NAN, edge_p = NAN, edge_r = NAN, mse = NAN;
  Interval fd_ci{NAN, NAN, NAN}, f1_ci{NAN, NAN, NAN}, fidelity{NAN, NAN, NAN};  // 95 % bootstrap intervals
  json to_json() const {
    auto num = [](double v) { return std::isnan(v) ? json(nullptr) : json(v); };
    auto ci = [&](const Interval& v) { return json::array({num(v.lo), num(v.hi)}); };
    return {{"model", model}, {"sampler", sampler}, {"steps", steps}, {"nfe", nfe}, {"fd", num(fd)},
            {"fd_ci95", ci(fd_ci)}, {"edge_f1", num(edge_f1)}, {"edge_f1_ci95", ci(f1_ci)},
            {"edge_precision", num(edge_p)}, {"edge_recall", num(edge_r)}, {"mse_vs_reference", num(mse)},
            {"prompt_fidelity", num(fidelity.value)}, {"prompt_fidelity_ci95", ci(fidelity)},
            {"ms_per_image", images.empty() ? json(nullptr) : json(ms / static_cast<double>(images.size()))}};
  }
};

// One model at one step count on the sketch-transfer cases (transfer.h): per-case metrics by kind, and the images
// of the first grid.count cases of each kind.
struct TransferArm {
  std::string model;
  int steps = 0;
  std::map<std::string, std::vector<double>> iou, f1, hit;
  std::map<std::string, std::vector<torch::Tensor>> grid;
  json to_json(const std::vector<std::string>& kinds, int resamples) const {
    json j = {{"model", model}, {"steps", steps}};
    for (const auto& k : kinds) {
      if (!iou.count(k)) continue;
      auto iv = [&](const std::vector<double>& v) {
        auto c = bootstrap_mean(v, 0.95, resamples, 7);
        return json{{"mean", c.value}, {"ci95", {c.lo, c.hi}}, {"n", v.size()}};
      };
      j[k] = {{"silhouette_iou", iv(iou.at(k))}, {"edge_f1", iv(f1.at(k))}, {"prompt_fidelity", iv(hit.at(k))}};
    }
    return j;
  }
};

struct Student {
  std::string name, folder;
  bool trained = false;
  json run = json::object();  // the training run's settings, when its config.json sits next to the model folder
  std::string pipeline;       // "Pipeline + ControlNet" or "Pipeline" (no controlnet/ in the folder)
  std::vector<Arm> arms;      // one per student step count
  std::vector<TransferArm> transfer;  // one per student step count
  double noise_check = NAN;   // max |pipeline latent - scm_sample(seeded_cpu_noise)| for item 0
};

FeatureNet load_feature_net(const std::string& dir) {
  const auto cfg_file = fs::path(dir) / "config.json";
  const auto weights = fs::path(dir) / "feature_net.safetensors";
  SPRINT_CHECK(fs::exists(cfg_file) && fs::exists(weights), "feature net folder '", dir,
               "' needs config.json and feature_net.safetensors (train it with `sprint-train classifier`)");
  std::ifstream in(cfg_file);
  json j = json::parse(in, nullptr, false);
  SPRINT_CHECK(!j.is_discarded(), "'", cfg_file.string(), "' is not valid JSON");
  FeatureNet net(FeatureNetConfig::from_json(j, cfg_file.string()));
  with_context(weights.string(), [&] { load_state_dict(*net, safetensors::Archive::open(weights.string()), {}); });
  freeze(*net);
  return net;
}

// The settings of the training run that wrote `model_dir` (its parent's config.json), as far as they are there.
json run_settings(const std::string& model_dir) {
  auto dir = fs::path(model_dir).lexically_normal();
  if (!dir.has_filename()) dir = dir.parent_path();  // "run/model/" -> "run/model"
  const auto file = dir.parent_path() / "config.json";
  json out = json::object();
  if (!fs::exists(file)) return out;
  std::ifstream in(file);
  json j = json::parse(in, nullptr, false, true);
  if (j.is_discarded() || !j.is_object()) return out;
  for (const char* k : {"mode", "steps", "batch", "seed"})
    if (j.contains(k)) out[k] = j[k];
  if (j.contains("ladd") && j["ladd"].is_object() && j["ladd"].contains("largest_timestep_prob"))
    out["largest_timestep_prob"] = j["ladd"]["largest_timestep_prob"];
  return out;
}

// The line map of a generated image: upsampled (bicubic) to the dataset's picture size, then the condition-map
// function training uses on the pictures.
torch::Tensor output_map(const torch::Tensor& image, int64_t picture_side, const PictureEdgeOptions& edges) {
  return picture_to_scribble(picture_at(as_picture(image), picture_side), edges);
}

std::string file_stem(const std::string& name) {
  std::string s;
  for (char c : name) s += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return s;
}

std::string fmt(double v, int decimals) {
  if (std::isnan(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Significant digits (small errors such as a consistency MSE of 3e-05 stay visible).
std::string fmt_sig(double v, int digits) {
  if (std::isnan(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

std::string with_ci(double v, const Interval& ci, int decimals) {
  if (std::isnan(v)) return "n/a";
  return str(fmt(v, decimals), " [", fmt(ci.lo, decimals), ", ", fmt(ci.hi, decimals), "]");
}

// Two intervals: "overlap" (the data cannot order them) or which one is lower.
std::string interval_verdict(const std::string& a, const Interval& x, const std::string& b, const Interval& y) {
  if (std::isnan(x.lo) || std::isnan(y.lo)) return "not comparable";
  if (x.hi < y.lo) return str(a, " lower beyond the intervals");
  if (y.hi < x.lo) return str(b, " lower beyond the intervals");
  return "intervals overlap: not separated";
}

std::string join_ints(const std::vector<int>& v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : ", ") + std::to_string(x);
  return s;
}

// Generator updates of a distill run: every step in sCM-only mode; with LADD the G and D phases alternate 1:1
// (distill.cpp: G on even steps), so half the steps, rounded up. 0 when the run config lacks mode or steps.
int64_t generator_updates(const json& run) {
  if (!run.contains("steps") || !run["steps"].is_number_integer() || !run.contains("mode")) return 0;
  const auto steps = run["steps"].get<int64_t>();
  return run["mode"] == "scm" ? steps : (steps + 1) / 2;
}

std::string run_text(const Student& s) {
  const auto& r = s.run;
  if (r.empty()) return "run config not found";
  std::string out;
  if (r.contains("mode")) out += r["mode"].is_string() ? r["mode"].get<std::string>() : r["mode"].dump();
  if (r.contains("largest_timestep_prob")) out += str(", max-time p ", r["largest_timestep_prob"].dump());
  if (r.contains("steps") && r.contains("batch"))
    out += str(", ", r["steps"].dump(), " steps x batch ", r["batch"].dump());
  if (const auto g = generator_updates(r); g > 0) out += str(" (", g, " generator updates)");
  if (r.contains("seed")) out += str(", seed ", r["seed"].dump());
  return out;
}

}  // namespace

int run_eval(const CommandLine& cl) {
  auto cfg = ConfigFile::load(cl.config_file, cl.overrides);
  const std::string data_dir = cfg.require<std::string>("data.dir");
  const std::string feature_dir = cfg.require<std::string>("feature_net");
  const std::string teacher_dir = cfg.require<std::string>("teacher");
  const std::string out = cfg.require<std::string>("out");
  const json students_cfg = cfg.get<json>("students", json::object());
  if (!students_cfg.is_object()) cfg.reject("students", "must be an object {name: student model folder}");
  for (auto it = students_cfg.begin(); it != students_cfg.end(); ++it)
    if (!it->is_string() || it.key().empty())
      cfg.reject("students", str("entry '", it.key(), "' must map a name to a model folder (a string)"));
  const auto teacher_steps = cfg.get<std::vector<int>>("teacher_steps", {16, 32});
  const auto student_steps = cfg.get<std::vector<int>>("student_steps", {1, 2, 4});
  if (teacher_steps.empty()) cfg.reject("teacher_steps", "must list at least one step count");
  for (int n : teacher_steps)
    if (n < 1 || n > 1000) cfg.reject("teacher_steps", str("value ", n, " must be in 1..1000"));
  if (student_steps.empty()) cfg.reject("student_steps", "must list at least one step count");
  for (int n : student_steps)
    if (n < 1 || n > 4) cfg.reject("student_steps", str("value ", n, " must be in 1..4 (SANA-Sprint's range)"));
  const double guidance = cfg.get_range("guidance", 4.5, 1.0, 30.0);
  const int64_t seed = cfg.get_range("seed", int64_t{0}, 0, int64_t{1} << 62);
  const int64_t count = cfg.get_range("count", int64_t{0}, 0, int64_t{1} << 30);
  const int64_t limit = cfg.get_range("limit", int64_t{0}, 0, int64_t{1} << 30);
  const int64_t threads_cfg = cfg.get_range("threads", int64_t{0}, 0, 1024);
  const int64_t batch = cfg.get_range("batch", int64_t{16}, 1, 1024);
  const int64_t resolution = cfg.get_range("resolution", int64_t{64}, 8, 4096);
  const double cscale = cfg.get_range("conditioning_scale", 1.0, 0.0, 10.0);
  const int tolerance = static_cast<int>(cfg.get_range("edge_tolerance", int64_t{4}, 0, 256));
  const int64_t grid_count = cfg.get_range("grid.count", int64_t{8}, 1, 64);
  // FD with enough samples: every held-out item is generated with `fd.seeds_per_item` seeds, and the reference set is
  // the held-out pictures or every picture of the dataset (`fd.reference`: heldout | all).
  const int64_t seeds_per_item = cfg.get_range("fd.seeds_per_item", int64_t{1}, 1, 1000);
  const auto fd_reference = cfg.get_choice("fd.reference", "heldout", {"heldout", "all"});
  const int bootstrap_resamples = static_cast<int>(cfg.get_range("bootstrap.resamples", int64_t{1000}, 10, 100000));
  const auto transfer = read_transfer_options(cfg);
  PictureEdgeOptions edges;
  edges.canvas = static_cast<int>(cfg.get_range("edges.canvas", int64_t{edges.canvas}, 16, 8192));
  edges.pen_width = static_cast<int>(cfg.get_range("edges.pen_width", int64_t{edges.pen_width}, 1, 64));
  edges.thickness = static_cast<int>(cfg.get_range("edges.thickness", int64_t{edges.thickness}, 0, 24));
  const auto main_name = cfg.get<std::string>("tables.main", "scm+ladd");
  const auto objective_names = cfg.get<std::vector<std::string>>("tables.objective", {"scm", "ladd", "scm+ladd"});
  const auto maxtime_names = cfg.get<std::vector<std::string>>("tables.max_time", {"scm+ladd maxtime0", "scm+ladd"});
  cfg.finish();

  const int threads = setup_threads(threads_cfg);
  const int ref_steps = *std::max_element(teacher_steps.begin(), teacher_steps.end());
  auto held = ImageCaptionDataset::load(data_dir, "heldout", 0);
  int64_t n = held.size();
  if (count > 0) n = std::min(n, count);
  if (limit > 0) n = std::min(n, limit);
  SPRINT_CHECK(n >= 2, cfg.source(), ": the evaluation needs at least 2 held-out items for the Fréchet distance's "
               "covariances ('count' / 'limit' leave ", n, ")");
  const int64_t picture_side = held.item(0).image.size(0);
  // Cases: item i with seed k is case k * items + i (seed + case), so one seed per item gives the old numbering.
  const int64_t items = n;
  n = items * seeds_per_item;
  auto item_of = [items](int64_t c) { return c % items; };
  std::vector<int64_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = item_of(i);

  // --- models -------------------------------------------------------------------------------------------------
  auto feature_net = load_feature_net(feature_dir);
  const auto& fc = feature_net->config;
  SPRINT_CHECK(fc.resolution == resolution, "feature net '", feature_dir, "' was trained at ", fc.resolution,
               " px; the evaluation runs at ", resolution, " px (", cfg.source(), " 'resolution')");
  json feature_info = {{"folder", feature_dir}, {"feature_dim", fc.feature_dim()}, {"classes", fc.num_classes}};
  {
    std::ifstream in(fs::path(feature_dir) / "config.json");
    json j = json::parse(in, nullptr, false);
    for (const char* k : {"train_top1", "heldout_retrieval", "steps"})
      if (!j.is_discarded() && j.contains(k)) feature_info[k] = j[k];
  }

  auto teacher = load_transformer((fs::path(teacher_dir) / "transformer").string());
  freeze(*teacher);
  const auto& tc = teacher->config;
  SPRINT_CHECK(!tc.guidance_embeds, "'", teacher_dir, "': the teacher must be a flow model without guidance embeds "
               "(the folder `sprint-train pretrain` or `controlnet` writes), not a distilled student");
  auto vae = load_frozen_vae((fs::path(teacher_dir) / "vae").string());
  auto text = load_text_stack(teacher_dir, /*frozen=*/true);
  const int64_t f = vae->config.spatial_compression();
  SPRINT_CHECK(resolution % f == 0, cfg.source(), ": 'resolution' = ", resolution,
               " is not a multiple of the autoencoder's compression ", f);
  const int64_t side = resolution / f;
  const std::vector<int64_t> latent_shape{1, tc.in_channels, side, side};
  SanaControlNetModel teacher_cn{nullptr};
  const bool teacher_has_cn = fs::exists(fs::path(teacher_dir) / "controlnet");
  if (teacher_has_cn) {
    teacher_cn = load_controlnet((fs::path(teacher_dir) / "controlnet").string());
    freeze(*teacher_cn);
  }
  std::cerr << "eval: " << n << " held-out items, seed " << seed << " + item, guidance " << guidance << ", teacher "
            << teacher_dir << (teacher_has_cn ? " (with ControlNet)" : " (text only)") << ", " << threads
            << " threads\n";

  // --- data: real pictures, condition maps, per-item noise ------------------------------------------------------
  auto real = make_eval_batch(held, all, resolution, true, edges);
  std::vector<torch::Tensor> ref_maps, noise;
  for (int64_t i = 0; i < n; ++i) {
    ref_maps.push_back(picture_to_scribble(held.item(item_of(i)).image, edges));
    noise.push_back(seeded_cpu_noise(static_cast<uint64_t>(seed + i))(latent_shape));
  }
  torch::Tensor real_features;
  {
    torch::NoGradGuard ng;
    if (fd_reference == "heldout") {
      real_features = feature_net->features(real.images.slice(0, 0, items));
    } else {
      auto everything = ImageCaptionDataset::load(data_dir, "all", 0);
      std::vector<torch::Tensor> chunks;
      for (int64_t i0 = 0; i0 < everything.size(); i0 += 64) {
        std::vector<int64_t> idx;
        for (int64_t j = i0; j < std::min(everything.size(), i0 + 64); ++j) idx.push_back(j);
        chunks.push_back(feature_net->features(make_eval_batch(everything, idx, resolution, false, edges).images));
      }
      real_features = torch::cat(chunks, 0);
    }
  }

  const TransferScorer scorer(held, resolution, transfer);
  // Metrics of one arm (consistency against `reference` latents when given), with 95 % bootstrap intervals over the
  // cases (for FD: resampling the generated set against the fixed reference set).
  auto score = [&](Arm& a, const std::vector<torch::Tensor>* reference) {
    torch::NoGradGuard ng;
    auto images = torch::cat(a.images, 0);
    auto feats = feature_net->features(images);
    a.fd = frechet_distance(feats, real_features);
    const int64_t m = static_cast<int64_t>(a.images.size());
    a.fd_ci = bootstrap_ci(m, [&](const std::vector<int64_t>& idx) {
      return frechet_distance(feats.index_select(0, torch::tensor(idx)), real_features);
    }, 0.95, std::min(bootstrap_resamples, 500), 11);
    double p = 0, r = 0;
    std::vector<double> f1s, hits;
    for (int64_t i = 0; i < m; ++i) {
      const auto k = static_cast<size_t>(i);
      auto e = edge_scores(ref_maps[k], output_map(a.images[k], picture_side, edges), tolerance);
      p += e.precision, r += e.recall;
      f1s.push_back(e.f1);
      hits.push_back(scorer.fidelity(item_of(i), a.images[k]));
    }
    a.edge_p = p / m, a.edge_r = r / m;
    a.f1_ci = bootstrap_mean(f1s, 0.95, bootstrap_resamples, 12);
    a.edge_f1 = a.f1_ci.value;
    a.fidelity = bootstrap_mean(hits, 0.95, bootstrap_resamples, 13);
    if (reference) a.mse = (torch::cat(a.latents, 0) - torch::cat(*reference, 0)).pow(2).mean().item<double>();
  };
  // The sketch-transfer cases, and the metrics of one output on one case.
  const auto cases = make_transfer_cases(held, edges, transfer, static_cast<uint64_t>(seed));
  const auto kinds = transfer_kinds(transfer);
  std::vector<torch::Tensor> case_conditions;
  for (const auto& c : cases) case_conditions.push_back(scribble_to_condition(c.map, resolution, resolution));
  auto record = [&](TransferArm& t, size_t ci, const torch::Tensor& image) {
    const auto& c = cases[ci];
    t.iou[c.kind].push_back(scorer.iou(c, image));
    t.f1[c.kind].push_back(edge_scores(c.map, output_map(image, picture_side, edges), tolerance).f1);
    t.hit[c.kind].push_back(scorer.fidelity(c.prompt_item, image));
    if (static_cast<int64_t>(t.grid[c.kind].size()) < grid_count) t.grid[c.kind].push_back(image);
  };
  if (!cases.empty()) std::cerr << "eval: " << cases.size() << " sketch-transfer cases\n";

  // Ceiling of edge F1: the real pictures themselves at the model's resolution.
  Arm real_arm;
  real_arm.model = "real pictures";
  real_arm.sampler = str(resolution, " px");
  for (int64_t i = 0; i < n; ++i) real_arm.images.push_back(real.images.slice(0, i, i + 1));
  score(real_arm, nullptr);

  // --- teacher --------------------------------------------------------------------------------------------------
  std::vector<Arm> teacher_arms;
  for (auto solver : {TeacherSolver::FlowEuler, TeacherSolver::TrigFlowEuler})
    for (int steps : teacher_steps) {
      Arm a;
      a.model = "teacher";
      a.sampler = solver == TeacherSolver::FlowEuler ? "Flow-Euler" : "TrigFlow-Euler";
      a.steps = steps;
      a.nfe = guidance == 1.0 ? steps : 2 * steps;
      teacher_arms.push_back(a);
    }
  for (int64_t i0 = 0; i0 < n; i0 += batch) {
    torch::NoGradGuard ng;
    const int64_t i1 = std::min(n, i0 + batch), bn = i1 - i0;
    std::vector<std::string> captions, empty(static_cast<size_t>(bn));
    for (int64_t i = i0; i < i1; ++i) captions.push_back(held.item(item_of(i)).captions.front());
    auto c = text.embed(captions), u = text.embed(empty);
    if (teacher_has_cn) {
      c.control = u.control = encode_latents(*vae, real.conditions.slice(0, i0, i1));
      c.control_scale = u.control_scale = cscale;
    }
    auto fm_c = sana_flow_model(teacher, c, teacher_cn), fm_u = sana_flow_model(teacher, u, teacher_cn);
    auto x1 = torch::cat(std::vector<torch::Tensor>(noise.begin() + i0, noise.begin() + i1), 0);
    for (auto& a : teacher_arms) {
      const auto t0 = Clock::now();
      auto x = sample_teacher(fm_c, fm_u, x1, a.steps, guidance,
                              a.sampler == "Flow-Euler" ? TeacherSolver::FlowEuler : TeacherSolver::TrigFlowEuler);
      a.ms += ms_since(t0);
      auto img = decode_latents(*vae, x);
      for (int64_t k = 0; k < bn; ++k) {
        a.latents.push_back(x.slice(0, k, k + 1));
        a.images.push_back(img.slice(0, k, k + 1));
      }
    }
    std::cerr << "eval: teacher " << i1 << "/" << n << "\n";
  }
  const Arm* reference = nullptr;
  for (const auto& a : teacher_arms)
    if (a.sampler == "Flow-Euler" && a.steps == ref_steps) reference = &a;
  for (auto& a : teacher_arms) score(a, &reference->latents);

  // The teacher (Flow-Euler at the reference step count, CFG) on the sketch-transfer cases; case c's noise is
  // seeded_cpu_noise(seed + 1000003 + c), the students' seed for it too.
  const uint64_t transfer_seed = static_cast<uint64_t>(seed) + 1000003ULL;
  TransferArm teacher_transfer;
  teacher_transfer.model = "teacher";
  teacher_transfer.steps = ref_steps;
  for (int64_t i0 = 0; i0 < static_cast<int64_t>(cases.size()) && teacher_has_cn; i0 += batch) {
    torch::NoGradGuard ng;
    const int64_t i1 = std::min(static_cast<int64_t>(cases.size()), i0 + batch), bn = i1 - i0;
    std::vector<std::string> captions, empty(static_cast<size_t>(bn));
    std::vector<torch::Tensor> conds, x1s;
    for (int64_t i = i0; i < i1; ++i) {
      captions.push_back(cases[static_cast<size_t>(i)].prompt);
      conds.push_back(case_conditions[static_cast<size_t>(i)]);
      x1s.push_back(seeded_cpu_noise(transfer_seed + static_cast<uint64_t>(i))(latent_shape));
    }
    auto c = text.embed(captions), u = text.embed(empty);
    c.control = u.control = encode_latents(*vae, torch::cat(conds, 0));
    c.control_scale = u.control_scale = cscale;
    auto x = sample_teacher(sana_flow_model(teacher, c, teacher_cn), sana_flow_model(teacher, u, teacher_cn),
                            torch::cat(x1s, 0), ref_steps, guidance, TeacherSolver::FlowEuler);
    auto img = decode_latents(*vae, x);
    for (int64_t k = 0; k < bn; ++k) record(teacher_transfer, static_cast<size_t>(i0 + k), img.slice(0, k, k + 1));
    std::cerr << "eval: teacher, sketch transfer " << i1 << "/" << cases.size() << "\n";
  }

  // --- students, through the app's pipeline -----------------------------------------------------------------------
  std::vector<Student> students;
  for (auto it = students_cfg.begin(); it != students_cfg.end(); ++it) {
    Student s;
    s.name = it.key();
    s.folder = it->get<std::string>();
    s.trained = fs::is_directory(s.folder);
    if (!s.trained) {
      std::cerr << "eval: student '" << s.name << "': " << s.folder << " does not exist (not trained)\n";
      students.push_back(std::move(s));
      continue;
    }
    s.run = run_settings(s.folder);
    PipelineOptions po;
    po.device = "cpu";
    po.dtype = torch::kFloat32;
    const bool has_cn = fs::is_directory(fs::path(s.folder) / "controlnet");
    s.pipeline = has_cn ? "Pipeline + ControlNet" : "Pipeline";
    std::unique_ptr<Pipeline> pipe;
    with_context(str("student '", s.name, "' (", s.folder, ")"), [&] { pipe = Pipeline::load(s.folder, po); });
    const auto& sc = pipe->transformer().config;
    SPRINT_CHECK(sc.in_channels == tc.in_channels && pipe->vae_scale_factor() == f, "student '", s.name, "' (",
                 s.folder, ") has ", sc.in_channels, " latent channels at compression ", pipe->vae_scale_factor(),
                 "; the teacher has ", tc.in_channels, " at ", f,
                 ": the consistency error needs the same latent space");
    for (int steps : student_steps) {
      Arm a;
      a.model = s.name;
      a.sampler = "SCM";
      a.steps = a.nfe = steps;
      s.arms.push_back(a);
    }
    for (int64_t i = 0; i < n; ++i) {
      std::optional<GenerateCondition> cond;
      if (has_cn) cond = GenerateCondition{ref_maps[static_cast<size_t>(i)], cscale, static_cast<uint64_t>(i + 1)};
      for (auto& a : s.arms) {
        GenerateRequest r;
        r.condition = cond;
        r.prompt = held.item(item_of(i)).captions.front();
        r.steps = a.steps;
        r.guidance = guidance;
        r.seed = static_cast<uint64_t>(seed + i);
        r.width = r.height = static_cast<int>(resolution);
        auto res = pipe->generate(r);
        a.ms += res.times.transformer_ms;
        a.latents.push_back(res.latent.to(torch::kFloat32));
        a.images.push_back(res.image.to(torch::kFloat32).clamp(-1, 1));
      }
      if (i == 0) {
        // Noise check: the pipeline's latent at the most steps vs scm_sample on the same modules and prompt,
        // driven by seeded_cpu_noise(seed) (the teacher's noise source): equal unless the noise differs.
        torch::InferenceMode guard;
        const auto& last = s.arms.back();
        auto emb = pipe->encode_prompt(held.item(0).captions.front());
        auto& tr = pipe->transformer();
        auto g = tr.config.guidance_embeds
                     ? torch::full({1}, guidance).to(pipe->dtype()) * tr.config.guidance_embeds_scale
                     : torch::Tensor();
        FlowModel flow;
        if (cond && cscale != 0.0) {
          auto cl = pipe->condition_latent(*cond, static_cast<int>(resolution), static_cast<int>(resolution));
          flow = [&, cl](const torch::Tensor& x, const torch::Tensor& t) {
            return controlled_forward(tr, pipe->controlnet(), x, emb.embeds, t, g, emb.mask, cl, cscale);
          };
        } else {
          flow = [&](const torch::Tensor& x, const torch::Tensor& t) {
            return tr.forward(x, emb.embeds, t, g, emb.mask);
          };
        }
        ScmSampleOptions so;
        so.timesteps = scm_timesteps(last.steps);
        so.device = pipe->device();
        so.model_dtype = pipe->dtype();
        auto x = scm_sample(flow, latent_shape, seeded_cpu_noise(static_cast<uint64_t>(seed)), so);
        s.noise_check = (x - last.latents.front()).abs().max().item<double>();
      }
      if ((i + 1) % 16 == 0 || i + 1 == n)
        std::cerr << "eval: student '" << s.name << "' " << i + 1 << "/" << n << "\n";
    }
    for (auto& a : s.arms) score(a, &reference->latents);
    // The sketch-transfer cases through the same pipeline.
    for (int steps : student_steps) {
      TransferArm t;
      t.model = s.name;
      t.steps = steps;
      s.transfer.push_back(t);
    }
    for (size_t ci = 0; ci < cases.size() && has_cn; ++ci) {
      for (auto& t : s.transfer) {
        GenerateRequest r;
        r.condition = GenerateCondition{cases[ci].map, cscale, static_cast<uint64_t>(n + 1 + ci)};
        r.prompt = cases[ci].prompt;
        r.steps = t.steps;
        r.guidance = guidance;
        r.seed = transfer_seed + ci;
        r.width = r.height = static_cast<int>(resolution);
        record(t, ci, pipe->generate(r).image.to(torch::kFloat32).clamp(-1, 1));
      }
      if ((ci + 1) % 64 == 0 || ci + 1 == cases.size())
        std::cerr << "eval: student '" << s.name << "', sketch transfer " << ci + 1 << "/" << cases.size() << "\n";
    }
    students.push_back(std::move(s));
  }
  auto find_student = [&](const std::string& name) -> const Student* {
    for (const auto& s : students)
      if (s.name == name) return &s;
    return nullptr;
  };

  // --- grids ------------------------------------------------------------------------------------------------------
  fs::create_directories(out);
  const int64_t gn = std::min(grid_count, n);
  auto rows_of = [&](const Arm& a) {
    return torch::cat(std::vector<torch::Tensor>(a.images.begin(), a.images.begin() + gn), 0);
  };
  const auto pictures = real.images.slice(0, 0, gn), conditions = real.conditions.slice(0, 0, gn);
  std::vector<std::string> grids;
  {
    std::vector<torch::Tensor> rows{pictures, conditions};
    for (const auto& a : teacher_arms) rows.push_back(rows_of(a));
    save_image_grid((fs::path(out) / "grid_teacher.png").string(), torch::cat(rows, 0), gn, 4);
    grids.push_back("grid_teacher.png");
  }
  for (const auto& s : students) {
    if (!s.trained) continue;
    std::vector<torch::Tensor> rows{pictures, conditions, rows_of(*reference)};
    for (const auto& a : s.arms) rows.push_back(rows_of(a));
    const std::string name = "grid_" + file_stem(s.name) + ".png";
    save_image_grid((fs::path(out) / name).string(), torch::cat(rows, 0), gn, 4);
    grids.push_back(name);
  }

  // --- report ---------------------------------------------------------------------------------------------------
  const Student* main_student = find_student(main_name);
  const Arm* main_1 = nullptr;
  if (main_student)
    for (const auto& a : main_student->arms)
      if (a.steps == 1) main_1 = &a;
  std::string goal_fd, goal_f1;
  bool fd_met = false, f1_met = false;
  if (main_1) {
    fd_met = main_1->fd <= 1.1 * reference->fd;
    f1_met = main_1->edge_f1 >= 0.9 * reference->edge_f1;
    goal_fd = str("goal: 1-step FD within 10 % of teacher: ", fd_met ? "met" : "not met", " (", fmt(main_1->fd, 3),
                  " vs ", fmt(reference->fd, 3), ", teacher Flow-Euler ", ref_steps, " steps; limit ",
                  fmt(1.1 * reference->fd, 3), ")");
    goal_f1 = str("goal: 1-step edge F1 >= 0.9x teacher: ", f1_met ? "met" : "not met", " (", fmt(main_1->edge_f1, 3),
                  " vs ", fmt(reference->edge_f1, 3), "; limit ", fmt(0.9 * reference->edge_f1, 3), ")");
  } else {
    const std::string why = !main_student ? str("'", main_name, "' is not in `students`")
                            : !main_student->trained ? str("'", main_name, "' is not trained")
                                                     : "no 1-step arm (student_steps lacks 1)";
    goal_fd = "goal: 1-step FD within 10 % of teacher: not evaluated (" + why + ")";
    goal_f1 = "goal: 1-step edge F1 >= 0.9x teacher: not evaluated (" + why + ")";
  }

  std::string md;
  auto line = [&](const std::string& s) { md += s + "\n"; };
  line("# Sprint Studio evaluation");
  line("");
  line("Written by `sprint-train eval`" + (cl.config_file.empty() ? std::string() : " --config " + cl.config_file) +
       "; regenerate it with the same command rather than editing it. All numbers are also in `report.json`.");
  line("");
  line("## Setup");
  line("");
  line(str("- Items: the first ", items, " of the ", held.size(), " held-out items of `", data_dir,
           "` (manifest order), each with its canonical caption and its condition map, each generated with ",
           seeds_per_item, " seed(s): N = ", n, " cases for every metric of the matched tables."));
  line(str("- Condition maps: `picture_to_scribble` (canvas ", edges.canvas, " px, pen ", edges.pen_width,
           " px, thickness ", edges.thickness, "), fed to the models at ", resolution, " px (the training path)."));
  line(str("- Seeds: case c (item c mod ", items, ") uses seed ", seed, " + c for every model. The teacher's initial noise is the first draw "
           "of `seeded_cpu_noise(", seed, " + c)` at ", shape_str(latent_shape),
           "; the student pipeline draws its initial latent from the same source (and one fresh draw per step)."));
  line(str("- Guidance ", fmt(guidance, 2), ": classifier-free guidance for the teacher (", guidance == 1.0 ? 1 : 2,
           " passes per step), the guidance embedding for the students. ControlNet scale ", fmt(cscale, 2), "."));
  line(str("- Teacher: `", teacher_dir, "`", teacher_has_cn ? " with its ControlNet" : " (text only, no ControlNet)",
           ". Students run through the app's pipeline (`Pipeline::generate`, with the condition in the request "
           "when the folder has a controlnet/; CPU, fp32; listed per run below)."));
  line("- Noise check (per student): the largest |difference| between the pipeline's latent for item 0 (at the most "
       "steps) and `scm_sample` on the same modules driven by `seeded_cpu_noise(seed)`, the teacher's noise source. "
       "0 means the student started from exactly the teacher's noise.");
  line(str("- Feature net: `", feature_dir, "`, ", fc.feature_dim(), "-d features, ", fc.num_classes,
           " classes (training pictures)", feature_info.contains("train_top1")
               ? str(", train top-1 ", fmt(feature_info["train_top1"].get<double>(), 3)) : "",
           feature_info.contains("heldout_retrieval")
               ? str(", held-out view retrieval ", fmt(feature_info["heldout_retrieval"].get<double>(), 3)) : "",
           "."));
  line("");
  line("Metrics:");
  line("");
  line(str("- **FD**: Fréchet distance between the feature-net features of the ", n, " generated images (", items,
           " items x ", seeds_per_item, " seed(s)) and of ", real_features.size(0), " real pictures (",
           fd_reference == "all" ? "every picture of the dataset" : "the held-out pictures", ") at ", resolution,
           " px (lower is better), feature dimension ", fc.feature_dim(), ". ",
           std::min<int64_t>(n, real_features.size(0)) <= fc.feature_dim()
               ? "A covariance is singular (fewer samples than dimensions), so FD is biased upwards. " : "",
           "The interval resamples the generated set. Compare values within this report only."));
  line(str("- **Edge F1**: the output's line map (`picture_to_scribble` of the output upsampled to ", picture_side,
           " px) against the input condition map at the ", edges.canvas, " px canvas, tolerance ", tolerance,
           " canvas px (", fmt(static_cast<double>(tolerance) * resolution / edges.canvas, 2),
           " output px); mean over items (higher is better). Real pictures at ", resolution, " px score ",
           fmt(real_arm.edge_f1, 3), " (the ceiling at this resolution)."));
  line(str("- **Consistency MSE**: mean squared difference between a model's final latent and the teacher's "
           "Flow-Euler ", ref_steps, "-step solution from the same noise, in the transformer's latent units (VAE "
           "latent x scaling_factor, about unit variance; the student's x0 / sigma_d, the teacher's x at s = 0). "
           "Teacher rows give the same MSE for the other solvers and step counts. For scale, the reference latents "
           "have mean square ",
           fmt(torch::cat(reference->latents, 0).pow(2).mean().item<double>(), 3), "."));
  line(str("- **NFE** counts network evaluations per image (CFG doubles the teacher's). **ms/image**: model time per "
           "image on ", threads, " CPU thread(s) of a shared machine; indicative only."));
  line("");
  line("## Goals");
  line("");
  line("- " + goal_fd);
  line("- " + goal_f1);
  // Sketch-transfer goals: on whole sketches (mismatched + hand-drawn) and on the 60 % partial ones.
  auto pooled = [&](const TransferArm& t, const std::map<std::string, std::vector<double>> TransferArm::*field,
                    const std::vector<std::string>& which) {
    std::vector<double> v;
    for (const auto& k : which)
      if ((t.*field).count(k)) v.insert(v.end(), (t.*field).at(k).begin(), (t.*field).at(k).end());
    return v.empty() ? Interval{NAN, NAN, NAN} : bootstrap_mean(v, 0.95, bootstrap_resamples, 21);
  };
  const std::vector<std::string> whole{"mismatched", "hand-drawn"};
  const TransferArm* main_t1 = nullptr;
  if (main_student)
    for (const auto& t : main_student->transfer)
      if (t.steps == 1) main_t1 = &t;
  json transfer_goals = json::object();
  if (main_t1 && !cases.empty()) {
    const auto iou = pooled(*main_t1, &TransferArm::iou, whole);
    const auto p60 = pooled(*main_t1, &TransferArm::iou, {"partial 60 %"});
    const auto f1 = pooled(*main_t1, &TransferArm::f1, whole);
    const auto tf1 = pooled(teacher_transfer, &TransferArm::f1, whole);
    const auto fid = pooled(*main_t1, &TransferArm::hit, {"mismatched"});
    const double matched_fid = main_1 ? main_1->fidelity.value : NAN;
    auto goal = [&](const std::string& what, bool met, const std::string& detail) {
      line(str("- goal: ", what, ": ", met ? "met" : "**not met**", " (", detail, ")"));
      transfer_goals[what] = met;
    };
    goal("sketch-transfer silhouette IoU at 1 step >= 0.80", iou.value >= 0.80, with_ci(iou.value, iou, 3));
    if (!std::isnan(p60.value))
      goal("60 % partial sketches: silhouette IoU at 1 step >= 0.70", p60.value >= 0.70, with_ci(p60.value, p60, 3));
    if (!std::isnan(tf1.value))
      goal("sketch-transfer edge F1 at 1 step >= 0.9x teacher", f1.value >= 0.9 * tf1.value,
           str(with_ci(f1.value, f1, 3), " vs teacher ", with_ci(tf1.value, tf1, 3), "; limit ",
               fmt(0.9 * tf1.value, 3)));
    goal("prompt fidelity on mismatched pairs >= 0.8x matched", fid.value >= 0.8 * matched_fid,
         str(with_ci(fid.value, fid, 2), " vs matched ", fmt(matched_fid, 2), "; limit ", fmt(0.8 * matched_fid, 2)));
  }
  line("");
  if (!cases.empty()) {
    line("## Sketch transfer");
    line("");
    std::map<std::string, int64_t> per_kind;
    for (const auto& c : cases) ++per_kind[c.kind];
    std::string counts;
    for (const auto& k : kinds) counts += str(counts.empty() ? "" : ", ", k, " ", per_kind[k]);
    line(str("What an artist does: a shape the caption does not give. Cases (", counts, "):"));
    line("");
    line(str("- **mismatched**: the condition map of a held-out item with the caption of another held-out emoji whose "
             "figure overlaps it by IoU < ", fmt(transfer.max_shape_iou, 2), " (", transfer.mismatched_per_item,
             " per item)."));
    line("- **hand-drawn**: simple shapes and objects (" + [&] {
      std::string names;
      for (const auto& nm : hand_drawn_shape_names()) names += (names.empty() ? "" : ", ") + nm;
      return names;
    }() + ") drawn as pen strokes with wobble and uneven pressure, random size, tilt and position, through the "
          "app's stroke-to-condition path, each with the caption of a random held-out item.");
    line("- **partial N %**: the same drawings cut after the first N % of their stroke length (the canvas while "
         "someone draws); the target silhouette stays the whole shape.");
    line(str("- **Silhouette IoU**: the filled sketch (lines closed over gaps of ~5 canvas px, then filled) against the "
             "output's figure (pixels with a channel below ", transfer.paper_luma, ", holes filled), at ", resolution,
             " px. **Edge F1** as above, against the sketch. **Prompt fidelity**: the output's figure colours "
             "(4x4x4 RGB histogram, Hellinger distance) retrieve the prompt's emoji among the ", held.size(),
             " held-out pictures' emoji within the top ", transfer.top_k,
             " (chance is about ", fmt(static_cast<double>(transfer.top_k) / std::max<int64_t>(1, [&] {
               std::set<std::string> b;
               for (int64_t i = 0; i < held.size(); ++i) b.insert(held.item(i).base_id);
               return static_cast<int64_t>(b.size());
             }()), 2), "). When the sketch fixes the shape, the prompt shows in colours; emoji palettes name them well. "
             "The matched column of the tables above is the same measure on the matched pairs."));
    line("- Every value is a mean over the cases with its 95 % bootstrap interval.");
    line("");
    std::string header = "| Model | Steps |";
    std::string rule = "|---|---:|";
    for (const auto& k : kinds) header += " IoU " + k + " |", rule += "---:|";
    for (const auto& k : whole) header += " Edge F1 " + k + " |", rule += "---:|";
    for (const auto& k : whole) header += " Fidelity " + k + " |", rule += "---:|";
    line(header);
    line(rule);
    auto transfer_row = [&](const TransferArm& t) {
      std::string row = str("| ", t.model, " | ", t.steps, " |");
      for (const auto& k : kinds) {
        const auto v = pooled(t, &TransferArm::iou, {k});
        row += " " + with_ci(v.value, v, 3) + " |";
      }
      for (const auto& k : whole) {
        const auto v = pooled(t, &TransferArm::f1, {k});
        row += " " + with_ci(v.value, v, 3) + " |";
      }
      for (const auto& k : whole) {
        const auto v = pooled(t, &TransferArm::hit, {k});
        row += " " + with_ci(v.value, v, 2) + " |";
      }
      return row;
    };
    if (teacher_has_cn) line(transfer_row(teacher_transfer));
    for (const auto& st : students)
      for (const auto& t : st.transfer) line(transfer_row(t));
    line("");
    if (main_student && main_student->trained && !main_student->transfer.empty()) {
      fs::create_directories(out);
      for (const auto& k : kinds) {
        const auto& first = main_student->transfer.front();
        if (!first.grid.count(k)) continue;
        const int64_t cols = static_cast<int64_t>(first.grid.at(k).size());
        std::vector<torch::Tensor> rows;
        std::vector<std::string> prompts;
        for (size_t ci = 0, shown = 0; ci < cases.size() && static_cast<int64_t>(shown) < cols; ++ci)
          if (cases[ci].kind == k) {
            rows.push_back(case_conditions[ci]);
            prompts.push_back(str("\"", cases[ci].prompt, "\" on ", cases[ci].shape));
            ++shown;
          }
        if (teacher_has_cn && teacher_transfer.grid.count(k))
          for (const auto& im : teacher_transfer.grid.at(k)) rows.push_back(im);
        for (const auto& t : main_student->transfer)
          for (const auto& im : t.grid.at(k)) rows.push_back(im);
        std::string kind_name = k;
        if (auto pos = kind_name.find(" %"); pos != std::string::npos) kind_name.replace(pos, 2, "pct");
        const std::string name = "transfer_" + file_stem(kind_name) + ".png";
        save_image_grid((fs::path(out) / name).string(), torch::cat(rows, 0), cols, 4);
        line(str("**", k, "** (`", name, "`): rows: sketch, ", teacher_has_cn ? "teacher, " : "", main_name,
                 " at ", join_ints(student_steps), " step(s). Columns, left to right:"));
        std::string list;
        for (size_t i = 0; i < prompts.size(); ++i) list += str(i ? "; " : "", i + 1, ". ", prompts[i]);
        line(list + ".");
        line("");
        line(str("![", name, "](", name, ")"));
        line("");
      }
    }
  }

  auto arm_row = [&](const std::string& label, const Arm& a, bool with_mse) {
    return str("| ", label, " | ", a.sampler, " | ", a.steps, " | ", a.nfe, " | ", with_ci(a.fd, a.fd_ci, 0), " | ",
               with_ci(a.edge_f1, a.f1_ci, 3), " | ", with_ci(a.fidelity.value, a.fidelity, 2), " | ",
               with_mse ? fmt_sig(a.mse, 4) : std::string("-"), " | ",
               fmt(a.ms / static_cast<double>(a.images.size()), 1), " |");
  };
  const std::string arm_header =
      "| Model | Sampler | Steps | NFE | FD [95 % CI] | Edge F1 [95 % CI] | Prompt fidelity | Consistency MSE | "
      "ms/image |\n|---|---|---:|---:|---:|---:|---:|---:|---:|";
  auto student_rows = [&](const std::string& name, const std::string& label) {
    const Student* s = find_student(name);
    if (!s) return str("| ", label, " | not configured (not in `students`) | | | | | | |\n");
    if (!s->trained) return str("| ", label, " | not trained (`", s->folder, "` missing) | | | | | | |\n");
    // The run's objective and max-time probability next to the name, when its config says them.
    std::string tag;
    if (s->run.contains("mode") && s->run["mode"].is_string()) tag = s->run["mode"].get<std::string>();
    if (s->run.contains("largest_timestep_prob"))
      tag += (tag.empty() ? "" : ", ") + str("max-time p ", s->run["largest_timestep_prob"].dump());
    const std::string shown = tag.empty() ? label : str(label, " [", tag, "]");
    std::string rows;
    for (const auto& a : s->arms) rows += arm_row(shown, a, true) + "\n";
    return rows;
  };

  line(str("## Teacher vs student (", main_name, ")"));
  line("");
  line(arm_header);
  for (const auto& a : teacher_arms)
    if (a.sampler == "Flow-Euler") line(arm_row("teacher", a, a.steps != ref_steps));
  md += student_rows(main_name, "student " + main_name);
  line(str("| real pictures | ", resolution, " px | | | 0 (reference set) | ", fmt(real_arm.edge_f1, 3), " | | |"));
  line("");

  line("## Training objective: sCM vs LADD vs sCM+LADD (paper Table 3)");
  line("");
  line(arm_header);
  for (const auto& name : objective_names) md += student_rows(name, name);
  line("");
  line("## Max-time weighting (paper Table 6)");
  line("");
  line(arm_header);
  for (const auto& name : maxtime_names) md += student_rows(name, name);
  line("");
  // Which orderings the data can tell apart: 1-step FD and sketch-transfer IoU, pairwise, by their intervals.
  auto verdicts = [&](const std::vector<std::string>& names, const std::string& title) {
    std::vector<std::string> out_lines;
    for (size_t i = 0; i < names.size(); ++i)
      for (size_t j = i + 1; j < names.size(); ++j) {
        const Student* x = find_student(names[i]);
        const Student* y = find_student(names[j]);
        if (!x || !y || !x->trained || !y->trained) continue;
        const Arm *ax = nullptr, *ay = nullptr;
        for (const auto& a : x->arms) if (a.steps == 1) ax = &a;
        for (const auto& a : y->arms) if (a.steps == 1) ay = &a;
        if (!ax || !ay) continue;
        std::string l = str("- ", names[i], " vs ", names[j], ": 1-step FD ", with_ci(ax->fd, ax->fd_ci, 0), " vs ",
                            with_ci(ay->fd, ay->fd_ci, 0), ": ", interval_verdict(names[i], ax->fd_ci, names[j],
                                                                                  ay->fd_ci));
        const TransferArm *tx = nullptr, *ty = nullptr;
        for (const auto& t : x->transfer) if (t.steps == 1) tx = &t;
        for (const auto& t : y->transfer) if (t.steps == 1) ty = &t;
        if (tx && ty && !cases.empty()) {
          const auto ix = pooled(*tx, &TransferArm::iou, whole), iy = pooled(*ty, &TransferArm::iou, whole);
          l += str("; sketch-transfer IoU ", with_ci(ix.value, ix, 3), " vs ", with_ci(iy.value, iy, 3), ": ",
                   interval_verdict(names[i], ix, names[j], iy));
        }
        out_lines.push_back(l + ".");
      }
    if (out_lines.empty()) return;
    line(str("Orderings of ", title, " (1 step; \"lower beyond the intervals\" means the 95 % intervals do not "
             "overlap, so the ordering is a property of the arms and not of the sampling noise; for IoU higher is "
             "better):"));
    line("");
    for (const auto& l : out_lines) line(l);
    line("");
  };
  verdicts(objective_names, "the training objectives (Table 3)");
  verdicts(maxtime_names, "max-time weighting (Table 6)");
  // An arm of the Table 3 / Table 6 comparisons.
  auto in_comparisons = [&](const std::string& name) {
    return std::find(objective_names.begin(), objective_names.end(), name) != objective_names.end() ||
           std::find(maxtime_names.begin(), maxtime_names.end(), name) != maxtime_names.end();
  };
  std::vector<std::string> others;
  for (const auto& s : students)
    if (s.name != main_name && !in_comparisons(s.name)) others.push_back(s.name);
  if (!others.empty()) {
    line("## Other students");
    line("");
    line(arm_header);
    for (const auto& name : others) md += student_rows(name, name);
    line("");
  }
  line("## Student runs");
  line("");
  line("From each student's run folder (`<model>/../config.json`); the noise check is described in Setup.");
  line("");
  // The ablation tables compare arms at the same budget: generator updates x batch (an sCM+LADD step is a G or a
  // D step, an sCM step is a G step). The main (shipped) student may have trained longer: said separately.
  std::set<std::string> budgets;  // of the comparisons' arms
  for (const auto& s : students) {
    if (!s.trained) {
      line(str("- ", s.name, ": not trained (`", s.folder, "`)"));
      continue;
    }
    line(str("- ", s.name, ": `", s.folder, "`: ", run_text(s), "; `", s.pipeline, "`; noise check ",
             fmt(s.noise_check, 7), (s.pipeline != "Pipeline") != teacher_has_cn
                 ? " (**the teacher and this student differ in having a ControlNet**: its consistency MSE and FD are "
                   "not like for like)"
                 : ""));
    if (in_comparisons(s.name) && s.run.contains("batch") && generator_updates(s.run) > 0)
      budgets.insert(str(generator_updates(s.run), " x ", s.run["batch"].dump()));
  }
  if (budgets.size() == 1)
    line(str("- Same budget for every arm of the Table 3 and Table 6 comparisons: ", *budgets.begin(),
             " (generator updates x batch)."));
  if (budgets.size() > 1)
    line("- **Budgets differ between the arms of the Table 3 / Table 6 comparisons** (see above): not like for like.");
  if (main_student && main_student->trained && main_student->run.contains("batch") && budgets.size() == 1) {
    const auto b = str(generator_updates(main_student->run), " x ", main_student->run["batch"].dump());
    if (b != *budgets.begin())
      line(str("- The main student (", main_name, ") trained with a budget of ", b,
               " (generator updates x batch), not the comparisons' ", *budgets.begin(), "."));
  }
  line("");
  line("## Teacher solver: Flow-Euler vs TrigFlow-Euler (paper Table 1)");
  line("");
  line(str("Same teacher, same noise; the last MSE column is against the Flow-Euler ", ref_steps, "-step solution."));
  line("");
  line(arm_header);
  for (const auto& a : teacher_arms) line(arm_row("teacher", a, !(a.sampler == "Flow-Euler" && a.steps == ref_steps)));
  line("");
  line("## Sample grids");
  line("");
  line(str("First ", gn, " items. Rows: pictures, condition maps, then the teacher (Flow-Euler ",
           join_ints(teacher_steps), ", TrigFlow-Euler ", join_ints(teacher_steps),
           ") in `grid_teacher.png`; in each student grid the teacher "
           "(Flow-Euler ", ref_steps, ") and the student at ", join_ints(student_steps), " step(s)."));
  line("");
  for (const auto& g : grids) line(str("![", g, "](", g, ")"));
  write_text_file((fs::path(out) / "report.md").string(), md);

  json rj;
  rj["config"] = cfg.resolved();
  rj["items"] = n;
  rj["heldout_items"] = held.size();
  rj["seed_rule"] =
      str("item i uses seed ", seed, " + i; teacher initial noise = first draw of seeded_cpu_noise(seed + i)");
  rj["reference"] = {{"sampler", "Flow-Euler"}, {"steps", ref_steps}};
  rj["edge_tolerance_canvas_px"] = tolerance;
  rj["feature_net"] = feature_info;
  rj["real_pictures"] = real_arm.to_json();
  rj["teacher"] = json::array();
  for (const auto& a : teacher_arms) rj["teacher"].push_back(a.to_json());
  rj["students"] = json::object();
  for (const auto& s : students) {
    json sj = {{"folder", s.folder}, {"trained", s.trained}, {"run", s.run}};
    if (s.trained) {
      sj["noise_check_max_abs"] = s.noise_check;
      sj["arms"] = json::array();
      for (const auto& a : s.arms) sj["arms"].push_back(a.to_json());
    }
    rj["students"][s.name] = sj;
  }
  rj["transfer"] = {{"cases", cases.size()}, {"teacher", teacher_transfer.to_json(kinds, bootstrap_resamples)},
                    {"students", json::object()}, {"goals", transfer_goals}};
  for (const auto& st : students) {
    json arr = json::array();
    for (const auto& t : st.transfer) arr.push_back(t.to_json(kinds, bootstrap_resamples));
    rj["transfer"]["students"][st.name] = arr;
  }
  rj["goals"] = {{"fd", goal_fd}, {"edge_f1", goal_f1}, {"fd_met", main_1 ? json(fd_met) : json(nullptr)},
                 {"edge_f1_met", main_1 ? json(f1_met) : json(nullptr)}};
  write_json_file((fs::path(out) / "report.json").string(), rj);
  std::cerr << "eval: " << goal_fd << "\neval: " << goal_f1 << "\neval: wrote " << out << "/report.md, report.json and "
            << grids.size() << " grids\n";
  return 0;
}

}  // namespace sprint::training::cli
