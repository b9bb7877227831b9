// SANA-Sprint pipeline with a ControlNet: text + scribble/HED condition map -> image.
// The condition map is VAE-encoded once per change (the caller's `version` counter, e.g. the stroke count, is the
// exact dirty flag) and cached, so prompt, seed, guidance or scale changes cost no re-encode.
#pragma once

#include <memory>

#include "sprint/controlnet.h"
#include "sprint/pipeline.h"

namespace sprint {

class ControlPipeline : public Pipeline {
 public:
  // Loads the pipeline plus `dir/controlnet/`. Throws naming what is missing or mismatched.
  static std::unique_ptr<ControlPipeline> load(const std::string& dir, const PipelineOptions& options = {});

  // (H, W) uint8 condition map, white lines on black (sketch_to_scribble / photo_to_scribble output). The map is
  // resized and centre-cropped to the request size when they differ. Same version => treated as unchanged.
  void set_condition(const torch::Tensor& map, uint64_t version);
  void clear_condition();                 // generate without the ControlNet
  bool has_condition() const { return condition_map_.defined(); }
  void set_control_scale(double scale);   // ControlNet conditioning scale (0 disables it)
  double control_scale() const { return control_scale_; }
  SanaControlNetModelImpl& controlnet() { return *controlnet_; }

  // The encoded condition latent for a size (cached by version and size).
  torch::Tensor condition_latent(int width, int height, StageTimes* times = nullptr);

 protected:
  using Pipeline::Pipeline;
  FlowModel make_flow(const TextEmbedding& text, const torch::Tensor& guidance, const GenerateRequest& request,
                      StageTimes& times) override;

 private:
  SanaControlNetModel controlnet_{nullptr};
  double control_scale_ = 1.0;
  torch::Tensor condition_map_;
  uint64_t condition_version_ = 0;
  torch::Tensor latent_;  // cached encoding
  uint64_t latent_version_ = 0;
  int latent_w_ = 0, latent_h_ = 0;
};

}  // namespace sprint
