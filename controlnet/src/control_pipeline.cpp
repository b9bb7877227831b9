#include "sprint/control_pipeline.h"

#include <chrono>
#include <cmath>
#include <filesystem>

#include "sprint/error.h"
#include "sprint/runtime.h"
#include "sprint/scribble.h"

namespace fs = std::filesystem;

namespace sprint {

std::unique_ptr<ControlPipeline> ControlPipeline::load(const std::string& dir, const PipelineOptions& options) {
  std::unique_ptr<ControlPipeline> p(new ControlPipeline(dir, options));
  p->load_components();
  auto cn_dir = fs::path(dir) / "controlnet";
  SPRINT_CHECK(fs::is_directory(cn_dir), "model folder '", dir, "' has no controlnet/ subfolder (the SANA ControlNet)");
  LoadOptions lo;
  lo.device = p->device();
  lo.dtype = p->dtype();
  p->controlnet_ = load_controlnet(cn_dir.string(), lo);
  const auto& cc = p->controlnet_->config.base;
  const auto& tc = p->transformer().config;
  SPRINT_CHECK(cc.inner_dim() == tc.inner_dim() && cc.caption_channels == tc.caption_channels &&
                   cc.in_channels == tc.in_channels && cc.num_layers < tc.num_layers,
               dir, ": controlnet/config.json (hidden ", cc.inner_dim(), ", caption ", cc.caption_channels, ", ",
               cc.num_layers, " blocks) does not fit transformer/config.json (hidden ", tc.inner_dim(), ", caption ",
               tc.caption_channels, ", ", tc.num_layers, " blocks)");
  return p;
}

void ControlPipeline::set_condition(const torch::Tensor& map, uint64_t version) {
  SPRINT_CHECK(map.defined() && map.dim() == 2 && map.scalar_type() == torch::kUInt8 && map.numel() > 0,
               "condition map must be a non-empty (H, W) uint8 image");
  if (condition_map_.defined() && version == condition_version_) return;
  condition_map_ = map.to(torch::kCPU).contiguous();
  condition_version_ = version;
  latent_ = torch::Tensor();
}

void ControlPipeline::clear_condition() {
  condition_map_ = torch::Tensor();
  latent_ = torch::Tensor();
}

void ControlPipeline::set_control_scale(double scale) {
  SPRINT_CHECK(std::isfinite(scale), "ControlNet scale must be a finite number");
  control_scale_ = scale;
}

torch::Tensor ControlPipeline::condition_latent(int width, int height, StageTimes* times) {
  SPRINT_CHECK(condition_map_.defined(), "no condition map set");
  if (latent_.defined() && latent_version_ == condition_version_ && latent_w_ == width && latent_h_ == height) {
    if (times) times->condition_cached = true;
    return latent_;
  }
  torch::InferenceMode guard;
  auto t0 = std::chrono::steady_clock::now();
  auto img = scribble_to_condition(condition_map_, height, width);  // (1, 3, H, W) in [-1, 1]
  latent_ = vae().encode(img.to(device(), dtype())) * vae().config.scaling_factor;
  latent_version_ = condition_version_;
  latent_w_ = width;
  latent_h_ = height;
  synchronize(device());
  if (times) times->condition_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return latent_;
}

FlowModel ControlPipeline::make_flow(const TextEmbedding& text, const torch::Tensor& guidance,
                                     const GenerateRequest& r, StageTimes& times) {
  if (!condition_map_.defined() || control_scale_ == 0.0) return Pipeline::make_flow(text, guidance, r, times);
  auto cond = condition_latent(r.width, r.height, &times);
  auto* t = &transformer();
  auto* cn = controlnet_.get();
  const double scale = control_scale_;
  const auto g = t->config.guidance_embeds ? guidance : torch::Tensor();
  return [t, cn, text, g, cond, scale](const torch::Tensor& x, const torch::Tensor& s) {
    return controlled_forward(*t, *cn, x, text.embeds, s, g, text.mask, cond, scale);
  };
}

}  // namespace sprint
