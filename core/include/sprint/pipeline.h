// The SANA-Sprint text-to-image pipeline on a diffusers-layout model folder:
//   tokenizer/ (SentencePiece) -> text_encoder/ (Gemma-2) -> transformer/ (SCM, 1-4 steps) -> vae/ (DC-AE decode).
// Mirrors diffusers' SanaSprintPipeline (pipeline_sana_sprint.py): prompt lower-cased and stripped, the complex
// human instruction (CHI) prefix, right padding to n_chi + max_sequence_length - 2 tokens, BOS + last
// (max_sequence_length - 1) hidden states, guidance x guidance_embeds_scale, latents / vae.scaling_factor.
//
// What the live app needs is cached between calls: the prompt embedding (per prompt text), the noise of an
// unchanged seed and size, and (in ControlPipeline) the encoded condition. Generation is cancellable between
// stages and steps (throws sprint::Cancelled).
//
// Differences from diffusers, by design: no resolution binning (sizes must be multiples of 32 and are used as
// given); lower-casing is ASCII-only (Python's str.lower() also folds non-ASCII capitals).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "sprint/scm.h"
#include "sprint/text_encoder.h"
#include "sprint/tokenizer.h"
#include "sprint/transformer.h"
#include "sprint/vae.h"

namespace sprint {

// Prompt handling; defaults are the SANA-Sprint release's. A model folder may override them in an optional
// `sprint_pipeline.json` ({"complex_human_instruction": false, "max_sequence_length": 64, "lowercase": true}).
struct PromptOptions {
  bool complex_human_instruction = true;
  int max_sequence_length = 300;
  bool lowercase = true;
  // Longer side, in px, of the sketch canvas the model's ControlNet was trained with ("sketch_canvas"): the scribble
  // map is drawn at that size (its lines are ~11 px wide there) and then resized to the generation size. 0: the
  // generation size (the SANA releases: 1024 canvas for 1024 images). Our 64 px emoji model uses 256.
  int sketch_canvas = 0;
  static PromptOptions load(const std::string& model_dir);  // defaults when the file is absent
  nlohmann::json to_json() const;                           // sprint_pipeline.json
};

// The token batch SANA feeds its text encoder for `prompts`: stripped and lower-cased (when po.lowercase), the CHI
// prefix (when po.complex_human_instruction), BOS, right padding to max_sequence_length (or n_chi +
// max_sequence_length - 2 with CHI). Training and the pipeline share it so a model sees the same tokens in both.
TokenizedBatch tokenize_prompts(const Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                                const PromptOptions& po);

// The text encoder on `tokens` and SANA's token selection: {embeds (B, max_sequence_length, hidden), mask (B, L)}.
// Differentiable (no inference guard), so training can run it with gradients.
std::pair<torch::Tensor, torch::Tensor> embed_prompts(Gemma2ModelImpl& text_encoder, const TokenizedBatch& tokens,
                                                      const PromptOptions& po, const torch::Device& device);

// The diffusers CHI text (lines joined with "\n"; ends in "User Prompt: ").
const std::string& complex_human_instruction();

struct PipelineOptions {
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  std::optional<torch::Dtype> dtype;  // default: fp32 on CPU, bf16 on CUDA
};

struct GenerateRequest {
  std::string prompt;
  int steps = 2;                        // 1-4
  std::optional<double> intermediate;   // 2 steps only (default 1.3)
  std::vector<double> custom_timesteps;  // overrides steps' schedule when non-empty
  double guidance = 4.5;
  uint64_t seed = 0;
  int width = 1024, height = 1024;      // multiples of 32
  std::function<bool()> cancelled;      // polled between stages and steps
  std::function<void(const std::string& stage, double ms)> on_stage;  // progress reporting
};

struct StageTimes {
  double tokenize_ms = 0, text_encoder_ms = 0, condition_ms = 0, transformer_ms = 0, decode_ms = 0, total_ms = 0;
  bool prompt_cached = false, condition_cached = false, noise_cached = false;
};

struct GenerateResult {
  torch::Tensor image;   // (1, 3, H, W) float in [-1, 1], CPU
  torch::Tensor latent;  // (1, C, H/32, W/32) float32 final clean latent (x0 / sigma_d), CPU
  StageTimes times;
};

struct TextEmbedding {
  torch::Tensor embeds;  // (1, L, caption_channels) in the run dtype
  torch::Tensor mask;    // (1, L) int64
};

class Pipeline {
 public:
  // Loads every component of `dir`. Missing folders or files, bad configs and weights that disagree with a config
  // throw sprint::Error naming the file (and tensor).
  static std::unique_ptr<Pipeline> load(const std::string& dir, const PipelineOptions& options = {});
  virtual ~Pipeline() = default;

  GenerateResult generate(const GenerateRequest& request);

  // Stages, usable on their own.
  TextEmbedding encode_prompt(const std::string& prompt, StageTimes* times = nullptr);  // cached by prompt text
  torch::Tensor decode(const torch::Tensor& latent);  // (1, C, h, w) x0/sigma_d -> (1, 3, H, W) in [-1, 1]

  const std::string& model_dir() const { return dir_; }
  const torch::Device& device() const { return device_; }
  torch::Dtype dtype() const { return dtype_; }
  SanaTransformer2DModelImpl& transformer() { return *transformer_; }
  AutoencoderDCImpl& vae() { return *vae_; }
  const PromptOptions& prompt_options() const { return prompt_options_; }
  int vae_scale_factor() const { return vae_scale_; }
  void clear_caches();

 protected:
  explicit Pipeline(const std::string& dir, const PipelineOptions& options);
  void load_components();  // what load() does after construction; subclasses call it from their own load()
  // The velocity model for one request; ControlPipeline overrides it to attach the ControlNet.
  virtual FlowModel make_flow(const TextEmbedding& text, const torch::Tensor& guidance, const GenerateRequest& request,
                              StageTimes& times);
  static void check_cancelled(const GenerateRequest& r);

  std::string dir_;
  torch::Device device_{torch::kCPU};
  torch::Dtype dtype_ = torch::kFloat32;
  PromptOptions prompt_options_;
  Tokenizer tokenizer_;
  Gemma2Model text_encoder_{nullptr};
  SanaTransformer2DModel transformer_{nullptr};
  AutoencoderDC vae_{nullptr};
  int vae_scale_ = 32;

 private:
  std::vector<torch::Tensor> noise_for(uint64_t seed, const std::vector<int64_t>& shape, int draws, bool& cached);
  std::map<std::string, TextEmbedding> prompt_cache_;
  static constexpr size_t kPromptCacheSize = 8;  // a few recent prompts: typing back and forth stays instant
  struct NoiseKey {
    uint64_t seed;
    std::vector<int64_t> shape;
    bool operator==(const NoiseKey& o) const { return seed == o.seed && shape == o.shape; }
  };
  std::optional<NoiseKey> noise_key_;
  std::vector<torch::Tensor> noise_;  // draws for noise_key_, grown on demand
};

}  // namespace sprint
