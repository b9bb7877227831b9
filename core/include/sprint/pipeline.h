// The SANA-Sprint text-to-image pipeline on a diffusers-layout model folder:
//   tokenizer/ (SentencePiece) -> text_encoder/ (Gemma-2) -> transformer/ (SCM, 1-4 steps) -> vae/ (DC-AE decode).
// Mirrors diffusers' SanaSprintPipeline (pipeline_sana_sprint.py): prompt lower-cased and stripped, the complex
// human instruction (CHI) prefix, right padding to n_chi + max_sequence_length - 2 tokens, BOS + last
// (max_sequence_length - 1) hidden states, guidance x guidance_embeds_scale, latents / vae.scaling_factor.
//
// With a ControlNet (the folder's optional controlnet/, owned by the pipeline): a request's condition, a scribble map
// with its scale and version, is resized to the generation size, VAE-encoded and fed to the ControlNet, whose
// residuals join the transformer's blocks (controlled_forward). The request holds everything a frame depends on;
// the pipeline keeps no per-request state besides its caches (docs/architecture.md#caches): the prompt embedding
// (per prompt text), the noise of an unchanged seed and size, and the encoded condition (per condition version and
// size). Generation is cancellable between stages and steps (throws sprint::Cancelled).
//
// Resolution binning (GenerateRequest::resolution_binning, on by default as in diffusers): the request size is
// mapped to the closest-aspect entry of diffusers' ASPECT_RATIO_{512,1024,2048}_BIN table (picked by the
// transformer's sample_size 16/32/64; other sample sizes have no table and generate at the requested size), the
// image is generated there and bilinearly resized and centre-cropped back to the request size.
// Prompt lower-casing and stripping match Python 3.11's str.lower().strip() (full Unicode case mapping, via ICU;
// Unicode whitespace); a prompt that is not valid UTF-8 throws sprint::Error naming the byte offset.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "sprint/controlnet.h"
#include "sprint/model_folder.h"
#include "sprint/scm.h"
#include "sprint/text_encoder.h"
#include "sprint/tokenizer.h"
#include "sprint/transformer.h"
#include "sprint/vae.h"

namespace sprint {

// The token batch SANA feeds its text encoder for `prompts`: stripped and lower-cased (when po.lowercase), the CHI
// prefix (when po.complex_human_instruction), BOS, right padding to max_sequence_length (or n_chi +
// max_sequence_length - 2 with CHI). Training and the pipeline share it so a model sees the same tokens in both.
// chi_tokens: the CHI prefix's token count (with BOS) when the caller has it; otherwise it is tokenized to count.
TokenizedBatch tokenize_prompts(const Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                                const PromptOptions& po, std::optional<int64_t> chi_tokens = std::nullopt);

// The text encoder on `tokens` and SANA's token selection: {embeds (B, max_sequence_length, hidden), mask (B, L)}.
// Differentiable (no inference guard), so training can run it with gradients.
std::pair<torch::Tensor, torch::Tensor> embed_prompts(Gemma2ModelImpl& text_encoder, const TokenizedBatch& tokens,
                                                      const PromptOptions& po, const torch::Device& device);

// Python 3.11's str.lower(), str.strip() and s.lower().strip() on UTF-8 text (what diffusers does to prompts).
// Throw sprint::Error naming the byte offset when `s` is not valid UTF-8 (check_utf8 names it `what`).
void check_utf8(const std::string& s, const std::string& what);
std::string python_lower(const std::string& s);
std::string python_strip(const std::string& s);
std::string python_lower_strip(const std::string& s);

// diffusers' resolution binning: the (height, width) of the ASPECT_RATIO_*_BIN entry closest in aspect ratio to
// height / width for a transformer of `sample_size` (16: 512 px table, 32: 1024, 64: 2048), nullopt when there is
// no table for that sample_size (generate at the requested size).
std::optional<std::pair<int, int>> resolution_bin(int sample_size, int height, int width);
// diffusers PixArtImageProcessor.resize_and_crop_tensor: (N, C, h, w) -> (N, C, height, width) by a bilinear resize
// (align_corners=False, no antialias) that covers the target, then a centre crop.
torch::Tensor resize_and_crop(const torch::Tensor& images, int height, int width);

// The diffusers CHI text (lines joined with "\n"; ends in "User Prompt: ").
const std::string& complex_human_instruction();

struct PipelineOptions {
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  std::optional<torch::Dtype> dtype;  // default: fp32 on CPU, bf16 on CUDA
  // Encode prompts with embed_prompts_trimmed (the same image, without the work on padding). false: the full
  // selection of max_sequence_length columns, as diffusers computes it (sprint-bench --no-trim compares the two).
  bool trim_text_padding = true;
  // The DC-AE's CPU float32 engine: Winograd 3x3 convolutions on channels-last activations (the same image up
  // to float32 rounding; AutoencoderDCImpl::prepare_for_inference). false: torch's NCHW convolutions, as diffusers
  // runs them (sprint-bench --no-winograd compares the two). No effect on CUDA.
  bool fast_cpu_vae = true;
};

struct GenerationSettings;  // sprint/generation_settings.h

// A ControlNet condition (docs/architecture.md#settings).
struct GenerateCondition {
  torch::Tensor map;      // (H, W) uint8 scribble map, white lines on black (sketch_to_scribble, photo_to_scribble);
                          // resized to the generation size (scribble_to_condition)
  double scale = 1.0;     // ControlNet conditioning scale; 0: the transformer alone (nothing is encoded)
  uint64_t version = 0;   // the caller's change counter for `map`: an equal version means an equal map, so its
                          // encoding is reused (a stroke count, a canvas revision)
};

struct GenerateRequest {
  std::string prompt;
  int steps = 2;                        // 1-4
  std::optional<double> intermediate;   // 2 steps only (default 1.3)
  std::vector<double> custom_timesteps;  // overrides steps' schedule when non-empty
  double guidance = 4.5;
  uint64_t seed = 0;
  int width = 1024, height = 1024;      // output size; multiples of 32 unless binning applies
  // diffusers' use_resolution_binning: generate at the model's closest-aspect bin size, then resize and crop back
  // to width x height. Only where the transformer's sample_size has a table (see resolution_bin); else ignored.
  bool resolution_binning = true;
  // Leave GenerateResult::image on the run device (a CUDA frame goes into a GL texture through CUDA-GL interop
  // without a trip through host memory). Default: the image comes back in CPU memory.
  bool image_on_device = false;
  // Drive the model's ControlNet with this condition. A request with a condition needs a model with a ControlNet.
  std::optional<GenerateCondition> condition;
  std::function<bool()> cancelled;      // polled between stages and steps
  std::function<void(const std::string& stage, double ms)> on_stage;  // progress reporting
};

struct StageTimes {
  double tokenize_ms = 0, text_encoder_ms = 0, condition_ms = 0, transformer_ms = 0, decode_ms = 0, total_ms = 0;
  bool prompt_cached = false, condition_cached = false, noise_cached = false;
};

struct GenerateResult {
  torch::Tensor image;   // (1, 3, H, W) float32 in [-1, 1], CPU (on the run device with image_on_device)
  torch::Tensor latent;  // (1, C, h/32, w/32) float32 final clean latent (x0 / sigma_d), CPU; h x w = the binned size
  int gen_width = 0, gen_height = 0;  // the size the model generated at (the bin when binning applied)
  StageTimes times;
};

struct TextEmbedding {
  torch::Tensor embeds;  // (1, L, caption_channels) in the run dtype
  torch::Tensor mask;    // (1, L) int64; undefined when every column is a real token
};

// embed_prompts for inference, with the work on padding left out; the image it leads to is the same.
//  * The encoder runs on the longest real prefix of the batch only: with right padding and a causal encoder, a real
//    token's state does not depend on the padding after it.
//  * The selection is cut after its last real column: the transformer and the ControlNet give padded text tokens a
//    -10000 cross-attention bias, whose softmax weight is exactly 0 in fp32 and bf16, so those columns add nothing.
//    The mask is left undefined when every kept column is real (one prompt: always).
//  * With `prefix` (the encoded CHI prefix, Gemma2ModelImpl::encode_prefix), the tokens every row shares with it are
//    not encoded again: the encoder continues from its cached keys and values (forward_from).
// A SANA prompt of a few words thus costs those words instead of the CHI prefix plus 300 tokens, and each
// cross-attention reads a few keys instead of 300. Rows whose mask is not right padding (ones, then zeros) get
// embed_prompts' full result. Inference only: no gradients are needed, and training keeps embed_prompts.
TextEmbedding embed_prompts_trimmed(Gemma2ModelImpl& text_encoder, const TokenizedBatch& tokens,
                                    const PromptOptions& po, const torch::Device& device,
                                    const Gemma2PrefixCache* prefix = nullptr);

// The request for `settings` (prompt, steps, guidance, seed, size, custom timesteps) and, when `condition_map` is
// defined, the condition {condition_map, settings.control_scale, condition_version}. The app's generation worker and
// sprint-generate both build their requests here. settings.size must be set (the caller picks the model's native
// size for an empty one). Throws sprint::Error for custom timesteps that are not numbers.
GenerateRequest make_generate_request(const GenerationSettings& settings, const torch::Tensor& condition_map = {},
                                      uint64_t condition_version = 0);

// "1.5708,1.3,0" -> {1.5708, 1.3, 0}. Throws sprint::Error naming `what` and the item that is not a number.
std::vector<double> parse_timesteps(const std::string& s, const std::string& what = "--timesteps");

class Pipeline {
 public:
  // Loads every component of `dir` (read_model_folder), the ControlNet too when the folder has one. Missing folders
  // or files, bad configs and weights that disagree with a config throw sprint::Error naming the file (and tensor).
  static std::unique_ptr<Pipeline> load(const std::string& dir, const PipelineOptions& options = {});
  // A pipeline on components already read (read_model_folder); it runs on their device and dtype, and
  // options.device and options.dtype are not used.
  explicit Pipeline(ModelFolder folder, const PipelineOptions& options = {});

  GenerateResult generate(const GenerateRequest& request);

  // Stages, usable on their own.
  TextEmbedding encode_prompt(const std::string& prompt, StageTimes* times = nullptr);  // cached by prompt text
  // The encoded condition latent (VAE latent x scaling_factor) of `condition` at a generation size; cached by the
  // condition's version and the size. Needs a ControlNet.
  torch::Tensor condition_latent(const GenerateCondition& condition, int width, int height, StageTimes* times = nullptr);
  torch::Tensor decode(const torch::Tensor& latent);  // (1, C, h, w) x0/sigma_d -> (1, 3, H, W) in [-1, 1], CPU fp32
  torch::Tensor decode_on_device(const torch::Tensor& latent);  // the same, fp32 on the run device

  const std::string& model_dir() const { return model_.dir; }
  const torch::Device& device() const { return device_; }
  torch::Dtype dtype() const { return dtype_; }
  SanaTransformer2DModelImpl& transformer() { return *model_.transformer; }
  AutoencoderDCImpl& vae() { return *model_.vae; }
  bool has_controlnet() const { return !model_.controlnet.is_empty(); }
  SanaControlNetModelImpl& controlnet();  // throws without one
  const PromptOptions& prompt_options() const { return model_.prompt_options; }
  int vae_scale_factor() const { return vae_scale_; }
  // The native generation size: transformer sample_size x the VAE's compression, square.
  int native_size() const;
  // The largest side a request may ask for: kMaxSizeFactor x the model's base size (its aspect-ratio table's base,
  // sample_size x 32, where it has one, else native_size()). SANA's tables reach 2x the base on the long side; past
  // 4x a model draws tiled repeats while time and memory grow with the area.
  static constexpr int kMaxSizeFactor = 4;
  int max_side() const;
  void clear_caches();

 private:
  static void check_cancelled(const GenerateRequest& r);
  void check_request(const GenerateRequest& r) const;
  void require_controlnet() const;  // throws naming the folder when it has no ControlNet
  // The velocity model for one request at the generated size: the transformer alone, or with the ControlNet driven
  // by the request's condition.
  FlowModel make_flow(const TextEmbedding& text, const torch::Tensor& guidance, const GenerateRequest& request,
                      int gen_width, int gen_height, StageTimes& times);
  std::vector<torch::Tensor> noise_for(uint64_t seed, const std::vector<int64_t>& shape, int draws, bool& cached);

  ModelFolder model_;
  torch::Device device_{torch::kCPU};
  torch::Dtype dtype_ = torch::kFloat32;
  int vae_scale_ = 32;
  bool trim_text_padding_ = true;
  // The CHI prefix encoded once per loaded model (the first prompt pays for it); clear_caches() keeps it: it
  // depends on the weights only.
  std::optional<Gemma2PrefixCache> chi_cache_;
  std::vector<int64_t> chi_ids_;  // the CHI prefix's tokens (with BOS), tokenized once

  std::map<std::string, TextEmbedding> prompt_cache_;
  static constexpr size_t kPromptCacheSize = 8;  // a few recent prompts: typing back and forth stays instant
  struct NoiseKey {
    uint64_t seed;
    std::vector<int64_t> shape;
    bool operator==(const NoiseKey& o) const { return seed == o.seed && shape == o.shape; }
  };
  std::optional<NoiseKey> noise_key_;
  std::vector<torch::Tensor> noise_;  // draws for noise_key_, grown on demand
  struct ConditionKey {
    uint64_t version;
    int width, height;
    bool operator==(const ConditionKey&) const = default;
  };
  std::optional<ConditionKey> condition_key_;
  torch::Tensor condition_latent_;  // the encoding for condition_key_
};

}  // namespace sprint
