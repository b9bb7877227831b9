// sprint-train eval: the bundled model's evaluation report (issue "bundled default model", Evaluation): the flow
// teacher (Flow-Euler and TrigFlow-Euler, several step counts) and every distilled student (1/2/4 steps) on the
// held-out items of the dataset, with metrics that need no outside weights:
//   FD               Fréchet distance (metrics.h) between FeatureNet features (`sprint-train classifier`) of the
//                    generated images and of the real pictures of the same items;
//   edge F1          picture_to_scribble of the output (upsampled to the dataset's picture size, the size training
//                    makes condition maps from) against the condition map the model was given (metrics.h edge_f1);
//   consistency MSE  the student's final latent against the teacher's Flow-Euler solution of the PF-ODE (the most
//                    teacher steps listed) from the same noise: what sCM distils.
// Students run through the app's own code path (ControlPipeline / Pipeline: tokenizer, text encoder, condition
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
#include <set>

#include "commands.h"
#include "common.h"
#include "models.h"
#include "sprint/control_pipeline.h"
#include "sprint/controlnet.h"
#include "sprint/error.h"
#include "sprint/loader.h"
#include "sprint/model_folder.h"
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
  json to_json() const {
    auto num = [](double v) { return std::isnan(v) ? json(nullptr) : json(v); };
    return {{"model", model}, {"sampler", sampler}, {"steps", steps}, {"nfe", nfe}, {"fd", num(fd)},
            {"edge_f1", num(edge_f1)}, {"edge_precision", num(edge_p)}, {"edge_recall", num(edge_r)},
            {"mse_vs_reference", num(mse)},
            {"ms_per_image", images.empty() ? json(nullptr) : json(ms / static_cast<double>(images.size()))}};
  }
};

struct Student {
  std::string name, folder;
  bool trained = false;
  json run = json::object();  // the training run's settings, when its config.json sits next to the model folder
  std::string pipeline;       // "ControlPipeline" or "Pipeline" (no controlnet/ in the folder)
  std::vector<Arm> arms;      // one per student step count
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

// (1, 3, R, R) in [-1, 1] -> (R, R, 3) uint8.
torch::Tensor to_picture(const torch::Tensor& image) {
  return image[0].clamp(-1, 1).add(1).mul(127.5).round().to(torch::kUInt8).permute({1, 2, 0}).contiguous();
}

// The line map of a generated image: upsampled (bicubic) to the dataset's picture size, then the condition-map
// function training uses on the pictures.
torch::Tensor output_map(const torch::Tensor& image, int64_t picture_side, const PictureEdgeOptions& edges) {
  auto pic = to_picture(image);
  if (pic.size(0) != picture_side) {
    cv::Mat src(static_cast<int>(pic.size(0)), static_cast<int>(pic.size(1)), CV_8UC3, pic.data_ptr<uint8_t>()), dst;
    cv::resize(src, dst, cv::Size(static_cast<int>(picture_side), static_cast<int>(picture_side)), 0, 0,
               cv::INTER_CUBIC);
    pic = torch::from_blob(dst.data, {dst.rows, dst.cols, 3}, torch::kUInt8).clone();
  }
  return picture_to_scribble(pic, edges);
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
  std::vector<int64_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;

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
    ref_maps.push_back(picture_to_scribble(held.item(i).image, edges));
    noise.push_back(seeded_cpu_noise(static_cast<uint64_t>(seed + i))(latent_shape));
  }
  torch::Tensor real_features;
  {
    torch::NoGradGuard ng;
    real_features = feature_net->features(real.images);
  }

  // Metrics of one arm (consistency against `reference` latents when given).
  auto score = [&](Arm& a, const std::vector<torch::Tensor>* reference) {
    torch::NoGradGuard ng;
    auto images = torch::cat(a.images, 0);
    a.fd = frechet_distance(feature_net->features(images), real_features);
    double p = 0, r = 0, f1 = 0;
    for (int64_t i = 0; i < n; ++i) {
      const auto k = static_cast<size_t>(i);
      auto e = edge_scores(ref_maps[k], output_map(a.images[k], picture_side, edges), tolerance);
      p += e.precision, r += e.recall, f1 += e.f1;
    }
    a.edge_p = p / n, a.edge_r = r / n, a.edge_f1 = f1 / n;
    if (reference) a.mse = (torch::cat(a.latents, 0) - torch::cat(*reference, 0)).pow(2).mean().item<double>();
  };

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
    for (int64_t i = i0; i < i1; ++i) captions.push_back(held.item(i).captions.front());
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
    s.pipeline = has_cn ? "ControlPipeline" : "Pipeline";
    std::unique_ptr<Pipeline> pipe;
    ControlPipeline* cpipe = nullptr;
    with_context(str("student '", s.name, "' (", s.folder, ")"), [&] {
      if (has_cn) {
        auto cp = ControlPipeline::load(s.folder, po);
        cp->set_control_scale(cscale);
        cpipe = cp.get();
        pipe = std::move(cp);
      } else {
        pipe = Pipeline::load(s.folder, po);
      }
    });
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
      if (cpipe) cpipe->set_condition(ref_maps[static_cast<size_t>(i)], static_cast<uint64_t>(i + 1));
      for (auto& a : s.arms) {
        GenerateRequest r;
        r.prompt = held.item(i).captions.front();
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
        if (cpipe && cscale != 0.0) {
          auto cond = cpipe->condition_latent(static_cast<int>(resolution), static_cast<int>(resolution));
          flow = [&, cond](const torch::Tensor& x, const torch::Tensor& t) {
            return controlled_forward(tr, cpipe->controlnet(), x, emb.embeds, t, g, emb.mask, cond, cscale);
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
  line(str("- Items: the first ", n, " of the ", held.size(), " held-out items of `", data_dir,
           "` (manifest order), each with its canonical caption and its condition map. N = ", n, " for every metric."));
  line(str("- Condition maps: `picture_to_scribble` (canvas ", edges.canvas, " px, pen ", edges.pen_width,
           " px, thickness ", edges.thickness, "), fed to the models at ", resolution, " px (the training path)."));
  line(str("- Seeds: item i uses seed ", seed, " + i for every model. The teacher's initial noise is the first draw "
           "of `seeded_cpu_noise(", seed, " + i)` at ", shape_str(latent_shape),
           "; the student pipeline draws its initial latent from the same source (and one fresh draw per step)."));
  line(str("- Guidance ", fmt(guidance, 2), ": classifier-free guidance for the teacher (", guidance == 1.0 ? 1 : 2,
           " passes per step), the guidance embedding for the students. ControlNet scale ", fmt(cscale, 2), "."));
  line(str("- Teacher: `", teacher_dir, "`", teacher_has_cn ? " with its ControlNet" : " (text only, no ControlNet)",
           ". Students run through the app's pipeline (`ControlPipeline`: set_condition + generate, or "
           "`Pipeline::generate` for a folder without controlnet/; CPU, fp32; listed per run below)."));
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
  line(str("- **FD**: Fréchet distance between the feature-net features of the N generated images and of the N real "
           "pictures of the same items at ", resolution, " px (lower is better). With N = ", n, " and D = ",
           fc.feature_dim(), " the covariances are ", n <= fc.feature_dim() ? "singular and " : "",
           "estimated from few samples, so FD is biased upwards: compare values within this report only."));
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
  line("");

  auto arm_row = [&](const std::string& label, const Arm& a, bool with_mse) {
    return str("| ", label, " | ", a.sampler, " | ", a.steps, " | ", a.nfe, " | ", fmt(a.fd, 3), " | ",
               fmt(a.edge_f1, 3), " | ", with_mse ? fmt_sig(a.mse, 4) : std::string("-"), " | ",
               fmt(a.ms / static_cast<double>(a.images.size()), 1), " |");
  };
  const std::string arm_header = "| Model | Sampler | Steps | NFE | FD | Edge F1 | Consistency MSE | ms/image |\n"
                                 "|---|---|---:|---:|---:|---:|---:|---:|";
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
             fmt(s.noise_check, 7), (s.pipeline == "ControlPipeline") != teacher_has_cn
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
  rj["goals"] = {{"fd", goal_fd}, {"edge_f1", goal_f1}, {"fd_met", main_1 ? json(fd_met) : json(nullptr)},
                 {"edge_f1_met", main_1 ? json(f1_met) : json(nullptr)}};
  write_json_file((fs::path(out) / "report.json").string(), rj);
  std::cerr << "eval: " << goal_fd << "\neval: " << goal_f1 << "\neval: wrote " << out << "/report.md, report.json and "
            << grids.size() << " grids\n";
  return 0;
}

}  // namespace sprint::training::cli
