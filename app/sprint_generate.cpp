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
#include <filesystem>

#include "data_dir.h"
#include "settings_cli.h"
#include "sprint/app/canvas_size.h"
#include "sprint/atomic_file.h"
#include "sprint/error.h"
#include "sprint/generation_settings.h"
#include "sprint/hed.h"
#include "sprint/image_io.h"
#include "sprint/pipeline.h"
#include "sprint/runtime.h"
#include "sprint/scribble.h"
#include "sprint/strict_parse.h"

namespace fs = std::filesystem;
using namespace sprint;

namespace {

struct Options {
  GenerationSettings settings;
  std::string sketch, image, hed, from, out = "sprint.png", device = "auto", save_condition;
  int threads = 0;
  int64_t max_image_pixels = kDefaultMaxImagePixels;
  torch::Tensor recorded_condition;  // --from: the condition map embedded in the PNG, (H, W) uint8
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

// Settings stored by an earlier run; explicit command-line options win.
// The PNG records the model folder's name: a folder of that name here, or among the bundled models.
std::string find_recorded_model(const std::string& name, const std::string& from) {
  if (name.empty() || fs::is_directory(name)) return name;
  const fs::path bundled = bundled_models_dir() / fs::path(name).filename();
  SPRINT_CHECK(fs::is_directory(bundled), "--from '", from, "' was made with the model '", name,
               "', which is neither a folder here nor a bundled model: pass --model FOLDER");
  return bundled.string();
}

void apply_from(Options& o, const CLI::App& app) {
  const std::string what = "--from '" + o.from + "'";
  const auto text = read_png(o.from, o.max_image_pixels).text;
  const auto saved = settings_from_png_text(text, what);
  apply_recorded_settings(app, text, saved.settings, o.settings);
  if (!app.count("--model"))
    o.settings.model = find_recorded_model(saved.settings.model, o.from);
  if (app.count("--sketch") || app.count("--image")) return;
  if (!saved.condition_png.empty()) {
    // The condition the model saw is inside the PNG: the picture alone re-runs with its sketch.
    auto map = decode_png(saved.condition_png, what + " sprint:condition", o.max_image_pixels).pixels;
    SPRINT_CHECK(map.size(2) == 1, what, ": sprint:condition must be a grey picture");
    o.recorded_condition = map.squeeze(-1).contiguous();
  } else if (!saved.sketch.empty() || !saved.image.empty()) {
    // Older pictures name their sketch: look next to the PNG.
    const std::string name = saved.sketch.empty() ? saved.image : saved.sketch;
    const fs::path next_to = fs::path(o.from).parent_path() / name;
    SPRINT_CHECK(fs::exists(next_to), what, " was made from '", name, "', which is not next to it: pass --sketch or --image");
    (saved.sketch.empty() ? o.image : o.sketch) = next_to.string();
  }
}

// printf-style text for the log lines below (sprint::log levels: -q hides Info, -v shows Debug).
template <typename... Args>
std::string format(const char* pattern, Args... args) {
  char buffer[1024];
  std::snprintf(buffer, sizeof buffer, pattern, args...);
  return buffer;
}

// The condition map of --sketch or --image at the model's sketch canvas; undefined without either.
torch::Tensor condition_map(const Options& o, const Pipeline& pipe, int canvas_w, int canvas_h) {
  if (o.recorded_condition.defined() && o.sketch.empty() && o.image.empty()) return o.recorded_condition;
  if (!o.sketch.empty()) {
    return with_context("--sketch '" + o.sketch + "'", [&] {
      torch::Tensor sketch = read_png(o.sketch, o.max_image_pixels).pixels;
      if (pipe.prompt_options().sketch_canvas > 0 && (sketch.size(0) != canvas_h || sketch.size(1) != canvas_w)) {
        log_info(format("note: resampling the %lldx%lld sketch to the model's sketch canvas %dx%d",
                        static_cast<long long>(sketch.size(1)), static_cast<long long>(sketch.size(0)), canvas_w,
                        canvas_h));
        sketch = resample_sketch(sketch, canvas_h, canvas_w);
      }
      return sketch_to_scribble(sketch, o.settings.thickness);
    });
  }
  if (o.image.empty()) return {};
  HED hed{nullptr};
  if (!o.hed.empty()) hed = load_hed(o.hed);
  else log_info("note: no --hed weights given: using the OpenCV soft-edge detector instead of HED");
  return with_context("--image '" + o.image + "'", [&] {
    return photo_to_scribble(read_png(o.image, o.max_image_pixels).pixels, hed ? hed.get() : nullptr, o.settings.thickness,
                             std::min(canvas_w, canvas_h));
  });
}

int run(Options o, const CLI::App& app) {
  if (!o.from.empty()) apply_from(o, app);
  GenerationSettings& s = o.settings;
  SPRINT_CHECK(!s.model.empty(), "--model is required (or --from a PNG written by sprint-generate)");
  SPRINT_CHECK(o.sketch.empty() || o.image.empty(), "give --sketch or --image, not both");
  // Output names are checked before the model loads, so a bad one fails in a moment, not after the picture.
  require_png_name(o.out, "--out");
  check_replaceable(o.out);
  if (!o.save_condition.empty()) {
    require_png_name(o.save_condition, "--save-condition");
    check_replaceable(o.save_condition);
  }
  const int threads = init_threads(o.threads);

  PipelineOptions po;
  po.device = o.device;
  auto t0 = std::chrono::steady_clock::now();
  auto pipe = Pipeline::load(s.model, po);
  log_info(format("%s; model %s loaded in %.0f ms", describe_runtime(pipe->device()).c_str(), s.model.c_str(),
                  std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count()));
  if (s.size.empty()) {
    s.size = {pipe->native_size(), pipe->native_size()};
    log_info(format("size: the model's native %dx%d (give --size to change it)", s.size.width, s.size.height));
  }
  const int width = s.size.width, height = s.size.height;
  // The sketch canvas the ControlNet was trained with (= the generation size unless the model says otherwise).
  int canvas_w = 0, canvas_h = 0;
  std::tie(canvas_w, canvas_h) = sketch_canvas_size(pipe->prompt_options().sketch_canvas, width, height);

  const torch::Tensor map = condition_map(o, *pipe, canvas_w, canvas_h);
  if (map.defined() && !o.save_condition.empty()) write_png(o.save_condition, map.unsqueeze(-1));
  GenerateRequest r = make_generate_request(s, map, /*condition_version=*/1);
  r.resolution_binning = !o.no_binning;
  r.on_stage = [](const std::string& stage, double ms) { log_debug(format("  %-12s %8.1f ms", stage.c_str(), ms)); };
  auto result = pipe->generate(r);
  if (result.gen_width != width || result.gen_height != height)
    log_info(format("resolution binning: generated at %dx%d, resized and cropped to %dx%d "
                    "(--no-binning turns this off)",
                    result.gen_width, result.gen_height, width, height));
  const auto& t = result.times;
  log_info(format("total %.1f ms (tokenize %.1f, text encoder %.1f, condition %.1f, transformer %.1f, decode %.1f)",
                  t.total_ms, t.tokenize_ms, t.text_encoder_ms, t.condition_ms, t.transformer_ms, t.decode_ms));

  SettingsRecord saved;  // names only (to_png_text), and the condition itself
  saved.settings = s;
  saved.software = "Sprint Studio sprint-generate";
  saved.controlled = map.defined();
  saved.sketch = o.sketch;
  saved.image = o.image;
  if (map.defined()) saved.condition_png = encode_png(map.unsqueeze(-1).contiguous());
  write_png(o.out, to_uint8_image(result.image), to_png_text(saved));
  log_info(format("wrote %s (%dx%d, seed %llu, %d threads)", o.out.c_str(), width, height,
                  static_cast<unsigned long long>(s.seed), threads));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"sprint-generate: SANA-Sprint text (+ sketch) to image, headless"};
  add_settings_flags(app, o.settings);
  app.add_option("--sketch", o.sketch, "PNG sketch (dark strokes on light) -> scribble condition (needs controlnet/)");
  app.add_option("--image", o.image, "PNG photo -> HED scribble condition (needs controlnet/)");
  app.add_option("--hed", o.hed, "HED weights (safetensors) for --image; without them an OpenCV soft-edge detector is used");
  app.add_flag("--no-binning", o.no_binning,
               "generate at --size itself, not at the model's closest aspect-ratio bin resized back to --size "
               "(diffusers' use_resolution_binning=False; binning applies to sample_size 16/32/64 models only)");
  app.add_option("-o,--out", o.out, "output PNG")->capture_default_str();
  app.add_option("--save-condition", o.save_condition, "also write the condition map the model sees (PNG)");
  app.add_option("--from", o.from, "re-run the settings stored in a PNG written by sprint-generate");
  app.add_option("--device", o.device, "auto, cpu, cuda or cuda:N")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& s) { return s.empty() ? std::string("empty: use auto, cpu, cuda or cuda:N") : std::string(); },
          "DEVICE"));
  add_integer_option(app, "--threads", o.threads, "CPU threads (0 = all cores)", 0, kMaxThreads);
  app.add_option_function<std::string>(
         "--max-image-pixels",
         [&o](const std::string& text) {
           try {
             o.max_image_pixels = parse_integer(text, "--max-image-pixels", 1, int64_t{1} << 34);
           } catch (const std::exception& e) {
             throw CLI::ValidationError(e.what());
           }
         },
         "largest --sketch/--image/--from picture read, in pixels (refused before decoding)")
      ->default_str(std::to_string(o.max_image_pixels));
  add_program_flags(app, "sprint-generate", LogLevel::Info);
  // Progress lines as they are; warnings and errors named by the program.
  set_log_sink([](LogLevel level, const std::string& message) {
    if (level >= LogLevel::Warn)
      std::fprintf(stderr, "sprint-generate: %s: %s\n", level == LogLevel::Warn ? "warning" : "error", message.c_str());
    else
      std::fprintf(stderr, "%s\n", message.c_str());
  });
  set_one_line_failures(app, "sprint-generate");
  if (const int rc = parse_command_line(app, argc, argv); rc >= 0) return rc;
  try {
    return run(o, app);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sprint-generate: error: %s\n", message_of(e).c_str());
    return 1;
  }
}
