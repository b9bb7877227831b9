// sprint-generate: headless text (+ sketch or photo) -> image on a diffusers-layout model folder.
//
//   sprint-generate --model DIR --prompt "a red fox" [--sketch in.png | --image photo.png] --steps 2
//                   --guidance 4.5 --control-scale 1.0 --seed 7 [--size 1024x1024] --out out.png
//   sprint-generate --from out.png [--seed 8 ...]      re-runs the settings stored in a PNG we wrote
//
// The PNG carries the settings as text chunks (sprint:prompt, sprint:seed, ...). Progress and per-stage times go to
// stderr. A sketch or photo needs a model with a controlnet/ folder. Without --size the model's native size is used
// (transformer sample_size x the VAE's compression). A model whose sprint_pipeline.json sets "sketch_canvas" wants
// its sketches at that size (longer side): a sketch of another size is resampled to it before the scribble
// conversion, and photos are detected at it; the app's exported sketches already have it.
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <filesystem>

#include "sprint/app/canvas_size.h"
#include "sprint/control_pipeline.h"
#include "sprint/error.h"
#include "sprint/hed.h"
#include "sprint/image_io.h"
#include "sprint/runtime.h"
#include "sprint/scribble.h"
#include "sprint/settings_meta.h"

namespace fs = std::filesystem;
using namespace sprint;

namespace {

struct Options {
  std::string model, prompt, sketch, image, hed, from, out = "sprint.png", size, device = "auto";
  std::string timesteps, save_condition;
  int steps = 2, threads = 0, thickness = kDefaultScribbleThickness;
  double guidance = 4.5, control_scale = 1.0;
  uint64_t seed = 0;
  bool no_binning = false;
};

// (H, W[, C]) uint8 sketch -> (h, w, C) uint8, antialiased bilinear (a no-op at that size).
torch::Tensor resample_sketch(torch::Tensor img, int64_t h, int64_t w) {
  if (img.dim() == 2) img = img.unsqueeze(-1);
  if (img.size(0) == h && img.size(1) == w) return img;
  namespace F = torch::nn::functional;
  auto x = img.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat32);
  x = F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kBilinear)
                            .align_corners(false).antialias(true));
  return x.squeeze(0).permute({1, 2, 0}).round().clamp(0, 255).to(torch::kUInt8).contiguous();
}

std::vector<double> parse_timesteps(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      out.push_back(std::stod(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw Error(str("--timesteps '", s, "': '", item, "' is not a number (expected e.g. 1.5708,1.3,0)"));
    }
  }
  return out;
}

// Settings stored by an earlier run; explicit command-line options win.
void apply_from(Options& o, const CLI::App& app) {
  const auto text = read_png(o.from).text;
  const auto saved = GenerationSettings::from_png_text(text, "--from '" + o.from + "'");
  auto keep = [&](const char* flag, const char* key) { return !app.count(flag) && GenerationSettings::has(text, key); };
  if (keep("--prompt", "prompt")) o.prompt = saved.prompt;
  if (keep("--model", "model_path")) o.model = saved.model_path;
  if (!app.count("--sketch") && !app.count("--image")) {
    o.sketch = saved.sketch;
    o.image = saved.image;
  }
  if (keep("--seed", "seed")) o.seed = saved.seed;
  if (keep("--steps", "steps")) o.steps = saved.steps;
  if (keep("--guidance", "guidance")) o.guidance = saved.guidance;
  if (keep("--control-scale", "control_scale")) o.control_scale = *saved.control_scale;
  if (keep("--size", "size")) o.size = str(saved.width, "x", saved.height);
  if (keep("--thickness", "thickness")) o.thickness = *saved.thickness;
  if (keep("--timesteps", "timesteps")) o.timesteps = saved.timesteps;
}

int run(Options o, const CLI::App& app) {
  if (!o.from.empty()) apply_from(o, app);
  SPRINT_CHECK(!o.model.empty(), "--model is required (or --from a PNG written by sprint-generate)");
  SPRINT_CHECK(o.sketch.empty() || o.image.empty(), "give --sketch or --image, not both");
  const int threads = init_threads(o.threads);
  if (!o.size.empty()) parse_size(o.size);  // a bad --size fails before the model loads

  PipelineOptions po;
  po.device = o.device;
  const bool controlled = !o.sketch.empty() || !o.image.empty();
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Pipeline> pipe;
  ControlPipeline* cpipe = nullptr;
  if (controlled) {
    auto cp = ControlPipeline::load(o.model, po);
    cpipe = cp.get();
    pipe = std::move(cp);
  } else {
    pipe = Pipeline::load(o.model, po);
  }
  std::fprintf(stderr, "%s; model %s loaded in %.0f ms\n", describe_runtime(pipe->device()).c_str(), o.model.c_str(),
               std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  int width = 0, height = 0;
  if (!o.size.empty()) {
    std::tie(width, height) = parse_size(o.size);
  } else {
    width = height = pipe->transformer().config.sample_size * pipe->vae_scale_factor();
    std::fprintf(stderr, "size: the model's native %dx%d (give --size to change it)\n", width, height);
  }
  // The sketch canvas the ControlNet was trained with (= the generation size unless the model says otherwise).
  int canvas_w = 0, canvas_h = 0;
  std::tie(canvas_w, canvas_h) = sketch_canvas_size(pipe->prompt_options().sketch_canvas, width, height);

  if (cpipe) {
    torch::Tensor map;
    if (!o.sketch.empty()) {
      map = with_context("--sketch '" + o.sketch + "'", [&] {
        torch::Tensor sketch = read_png(o.sketch).pixels;
        if (pipe->prompt_options().sketch_canvas > 0 && (sketch.size(0) != canvas_h || sketch.size(1) != canvas_w)) {
          std::fprintf(stderr, "note: resampling the %lldx%lld sketch to the model's sketch canvas %dx%d\n",
                       static_cast<long long>(sketch.size(1)), static_cast<long long>(sketch.size(0)), canvas_w, canvas_h);
          sketch = resample_sketch(sketch, canvas_h, canvas_w);
        }
        return sketch_to_scribble(sketch, o.thickness);
      });
    } else {
      HED hed{nullptr};
      if (!o.hed.empty()) hed = load_hed(o.hed);
      else std::fprintf(stderr, "note: no --hed weights given: using the OpenCV soft-edge detector instead of HED\n");
      map = with_context("--image '" + o.image + "'", [&] {
        return photo_to_scribble(read_png(o.image).pixels, hed ? hed.get() : nullptr, o.thickness,
                                 std::min(canvas_w, canvas_h));
      });
    }
    if (!o.save_condition.empty()) write_png(o.save_condition, map.unsqueeze(-1));
    cpipe->set_condition(map, 1);
    cpipe->set_control_scale(o.control_scale);
  }

  GenerateRequest r;
  r.prompt = o.prompt;
  r.steps = o.steps;
  r.guidance = o.guidance;
  r.seed = o.seed;
  r.width = width;
  r.height = height;
  r.resolution_binning = !o.no_binning;
  if (!o.timesteps.empty()) r.custom_timesteps = parse_timesteps(o.timesteps);
  r.on_stage = [](const std::string& stage, double ms) { std::fprintf(stderr, "  %-12s %8.1f ms\n", stage.c_str(), ms); };
  auto result = pipe->generate(r);
  if (result.gen_width != width || result.gen_height != height)
    std::fprintf(stderr,
                 "resolution binning: generated at %dx%d, resized and cropped to %dx%d (--no-binning turns this off)\n",
                 result.gen_width, result.gen_height, width, height);
  const auto& t = result.times;
  std::fprintf(stderr, "total %.1f ms (tokenize %.1f, text encoder %.1f, condition %.1f, transformer %.1f, decode %.1f)\n",
               t.total_ms, t.tokenize_ms, t.text_encoder_ms, t.condition_ms, t.transformer_ms, t.decode_ms);

  GenerationSettings saved;
  saved.prompt = o.prompt;
  saved.seed = o.seed;
  saved.steps = o.steps;
  saved.guidance = o.guidance;
  saved.width = width;
  saved.height = height;
  saved.model_path = fs::absolute(o.model).lexically_normal().string();
  saved.timesteps = o.timesteps;
  saved.software = "Sprint Studio sprint-generate";
  if (controlled) {
    saved.control_scale = o.control_scale;
    saved.thickness = o.thickness;
    (o.sketch.empty() ? saved.image : saved.sketch) = fs::absolute(o.sketch.empty() ? o.image : o.sketch).string();
  }
  write_png(o.out, to_uint8_image(result.image), saved.to_png_text());
  std::fprintf(stderr, "wrote %s (%dx%d, seed %llu, %d threads)\n", o.out.c_str(), width, height,
               static_cast<unsigned long long>(o.seed), threads);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"sprint-generate: SANA-Sprint text (+ sketch) to image, headless"};
  app.add_option("--model", o.model, "model folder in diffusers layout (transformer/, vae/, text_encoder/, tokenizer/, [controlnet/])");
  app.add_option("--prompt", o.prompt, "text prompt");
  app.add_option("--sketch", o.sketch, "PNG sketch (dark strokes on light) -> scribble condition (needs controlnet/)");
  app.add_option("--image", o.image, "PNG photo -> HED scribble condition (needs controlnet/)");
  app.add_option("--hed", o.hed, "HED weights (safetensors) for --image; without them an OpenCV soft-edge detector is used");
  app.add_option("--thickness", o.thickness, "scribble thickness 0-24 (the Sana demo uses 1-4)")->capture_default_str();
  app.add_option("--steps", o.steps, "sampling steps, 1-4")->capture_default_str();
  app.add_option("--timesteps", o.timesteps, "custom TrigFlow timesteps, e.g. 1.5708,1.3,0");
  app.add_option("--guidance", o.guidance, "guidance scale (embedded: no extra pass)")->capture_default_str();
  app.add_option("--control-scale", o.control_scale, "ControlNet conditioning scale")->capture_default_str();
  app.add_option("--seed", o.seed, "noise seed")->capture_default_str();
  app.add_option("--size", o.size,
                 "WIDTHxHEIGHT, multiples of the VAE's compression (32 for SANA); default: the model's native size "
                 "(transformer sample_size x VAE compression, e.g. 1024x1024 for SANA-Sprint 1024, 64x64 for our emoji "
                 "model)");
  app.add_flag("--no-binning", o.no_binning,
               "generate at --size itself, not at the model's closest aspect-ratio bin resized back to --size "
               "(diffusers' use_resolution_binning=False; binning applies to sample_size 16/32/64 models only)");
  app.add_option("--out", o.out, "output PNG")->capture_default_str();
  app.add_option("--save-condition", o.save_condition, "also write the condition map the model sees (PNG)");
  app.add_option("--from", o.from, "re-run the settings stored in a PNG written by sprint-generate");
  app.add_option("--device", o.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads (0 = all cores)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o, app);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sprint-generate: error: %s\n", e.what());
    return 1;
  }
}
