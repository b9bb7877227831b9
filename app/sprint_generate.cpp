// sprint-generate: headless text(+sketch) -> image on a diffusers-layout model folder.
//
// Current stage (Foundation): the folder needs `transformer/`. A model without `text_encoder/` runs on empty
// (zero) text embeddings, and one without `vae/` is written as a latent preview (three latent channels as RGB).
// The full pipeline (Gemma-2 text encoder, DC-AE decoder, ControlNet sketch input) plugs in here.
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "sprint/error.h"
#include "sprint/image_io.h"
#include "sprint/runtime.h"
#include "sprint/scm.h"
#include "sprint/transformer.h"

namespace fs = std::filesystem;
using namespace sprint;

namespace {

struct Options {
  std::string model, prompt, out = "sprint.png", size = "1024x1024", device = "auto";
  int steps = 2, threads = 0;
  double guidance = 4.5;
  uint64_t seed = 0;
};

std::pair<int, int> parse_size(const std::string& s) {
  int w = 0, h = 0;
  char x = 0;
  if (std::sscanf(s.c_str(), "%d%c%d", &w, &x, &h) != 3 || (x != 'x' && x != 'X') || w <= 0 || h <= 0)
    throw Error(str("--size '", s, "': expected WIDTHxHEIGHT, e.g. 1024x1024"));
  if (w % 32 || h % 32) throw Error(str("--size ", s, ": width and height must be multiples of 32"));
  return {w, h};
}

// Three latent channels, each stretched to [0, 255], upsampled 8x so the preview is visible.
torch::Tensor latent_preview(const torch::Tensor& latent) {
  auto x = latent[0].narrow(0, 0, std::min<int64_t>(3, latent.size(1))).to(torch::kFloat32);
  if (x.size(0) < 3) x = torch::cat({x, x.narrow(0, 0, 1).expand({3 - x.size(0), x.size(1), x.size(2)})});
  auto lo = x.amin({1, 2}, true), hi = x.amax({1, 2}, true);
  x = (x - lo) / (hi - lo + 1e-6);
  x = x.repeat_interleave(8, 1).repeat_interleave(8, 2);
  return (x * 255).round().to(torch::kUInt8).permute({1, 2, 0}).contiguous();
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int run(const Options& o) {
  const int threads = init_threads(o.threads);
  const auto device = pick_device(o.device);
  const auto [width, height] = parse_size(o.size);
  SPRINT_CHECK(o.steps >= 1 && o.steps <= 4, "--steps ", o.steps, ": SANA-Sprint samples in 1 to 4 steps");
  SPRINT_CHECK(fs::is_directory(o.model), "--model '", o.model, "': not a folder (expected a diffusers-layout model folder)");
  SPRINT_CHECK(fs::is_directory(fs::path(o.model) / "transformer"), "--model '", o.model,
               "': no transformer/ subfolder (expected the diffusers layout: transformer/, vae/, text_encoder/, tokenizer/)");
  std::fprintf(stderr, "%s\n", describe_runtime(device).c_str());

  torch::InferenceMode guard;
  auto t0 = std::chrono::steady_clock::now();
  LoadOptions lo;
  lo.device = device;
  lo.dtype = default_dtype_for(device);
  auto transformer = load_transformer((fs::path(o.model) / "transformer").string(), lo);
  std::fprintf(stderr, "load transformer: %.0f ms\n", ms_since(t0));

  const auto& cfg = transformer->config;
  const bool has_text_encoder = fs::is_directory(fs::path(o.model) / "text_encoder");
  const bool has_vae = fs::is_directory(fs::path(o.model) / "vae");
  if (!has_text_encoder)
    std::fprintf(stderr, "note: %s has no text_encoder/: running on empty text embeddings (the prompt is not used)\n", o.model.c_str());
  // Text conditioning: one zero token with a full mask stands in for "no prompt".
  auto enc = torch::zeros({1, 1, cfg.caption_channels}, torch::TensorOptions().dtype(lo.dtype).device(device));
  auto mask = torch::ones({1, 1}, torch::TensorOptions().dtype(torch::kInt64).device(device));
  auto g = (torch::full({1}, o.guidance, torch::TensorOptions().device(device)).to(lo.dtype) * cfg.guidance_embeds_scale);
  FlowModel flow = [&](const torch::Tensor& x, const torch::Tensor& s) {
    return transformer->forward(x, enc, s, cfg.guidance_embeds ? g : torch::Tensor(), mask);
  };

  ScmSampleOptions so;
  so.timesteps = scm_timesteps(o.steps);
  so.device = device;
  so.model_dtype = lo.dtype;
  so.on_step = [&](int i, int n, const torch::Tensor&) {
    std::fprintf(stderr, "step %d/%d: %.0f ms\n", i + 1, n, ms_since(t0));
    return true;
  };
  const int vae_scale = 32;
  t0 = std::chrono::steady_clock::now();
  auto latent = scm_sample(flow, {1, cfg.in_channels, height / vae_scale, width / vae_scale}, seeded_cpu_noise(o.seed), so);
  std::fprintf(stderr, "transformer (%d steps): %.0f ms\n", o.steps, ms_since(t0));

  std::map<std::string, std::string> meta = {
      {"sprint:prompt", o.prompt}, {"sprint:seed", std::to_string(o.seed)}, {"sprint:steps", std::to_string(o.steps)},
      {"sprint:guidance", str(o.guidance)}, {"sprint:model", fs::path(o.model).filename().string()},
      {"sprint:size", str(width, "x", height)}, {"Software", "Sprint Studio sprint-generate"}};
  if (!has_vae) {
    std::fprintf(stderr, "note: %s has no vae/: writing a latent preview\n", o.model.c_str());
    meta["sprint:output"] = "latent-preview";
    write_png(o.out, latent_preview(latent), meta);
  } else {
    throw Error(str(o.model, "/vae: decoding is not implemented yet in this build"));
  }
  std::fprintf(stderr, "wrote %s (%d threads)\n", o.out.c_str(), threads);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"sprint-generate: SANA-Sprint text(+sketch) to image, headless"};
  app.add_option("--model", o.model, "model folder in diffusers layout")->required();
  app.add_option("--prompt", o.prompt, "text prompt");
  app.add_option("--steps", o.steps, "sampling steps, 1-4")->capture_default_str();
  app.add_option("--guidance", o.guidance, "guidance scale (embedded, no extra pass)")->capture_default_str();
  app.add_option("--seed", o.seed, "noise seed")->capture_default_str();
  app.add_option("--size", o.size, "WIDTHxHEIGHT, multiples of 32")->capture_default_str();
  app.add_option("--out", o.out, "output PNG")->capture_default_str();
  app.add_option("--device", o.device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--threads", o.threads, "CPU threads (0 = all cores)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sprint-generate: error: %s\n", e.what());
    return 1;
  }
}
