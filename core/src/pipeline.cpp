// SANA-Sprint pipeline. See include/sprint/pipeline.h.
#include "sprint/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "sprint/condition_image.h"
#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/generation_settings.h"
#include "sprint/log.h"
#include "sprint/memory_limits.h"
#include "sprint/runtime.h"

namespace fs = std::filesystem;

namespace sprint {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }
}  // namespace

const std::string& complex_human_instruction() {
  // diffusers pipeline_sana_sprint.py __call__ default (joined with "\n").
  static const std::string text =
      "Given a user prompt, generate an 'Enhanced prompt' that provides detailed visual descriptions suitable for "
      "image generation. Evaluate the level of detail in the user prompt:\n"
      "- If the prompt is simple, focus on adding specifics about colors, shapes, sizes, textures, and spatial "
      "relationships to create vivid and concrete scenes.\n"
      "- If the prompt is already detailed, refine and enhance the existing details slightly without "
      "overcomplicating.\n"
      "Here are examples of how to transform or refine prompts:\n"
      "- User Prompt: A cat sleeping -> Enhanced: A small, fluffy white cat curled up in a round shape, sleeping "
      "peacefully on a warm sunny windowsill, surrounded by pots of blooming red flowers.\n"
      "- User Prompt: A busy city street -> Enhanced: A bustling city street scene at dusk, featuring glowing street "
      "lamps, a diverse crowd of people in colorful clothing, and a double-decker bus passing by towering glass "
      "skyscrapers.\n"
      "Please generate only the enhanced description for the prompt below and avoid including any additional "
      "commentary or evaluations:\n"
      "User Prompt: ";
  return text;
}

TokenizedBatch tokenize_prompts(const Tokenizer& tokenizer, const std::vector<std::string>& prompts,
                                const PromptOptions& po, std::optional<int64_t> chi_tokens) {
  std::vector<std::string> texts;
  texts.reserve(prompts.size());
  int max_length = po.max_sequence_length;
  std::string prefix;
  if (po.complex_human_instruction) {
    prefix = complex_human_instruction();
    const auto n_chi = chi_tokens ? *chi_tokens : static_cast<int64_t>(tokenizer.encode(prefix, /*add_bos=*/true).size());
    max_length = static_cast<int>(sana_padded_length(n_chi, po.max_sequence_length));
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& p = prompts[i];
    check_utf8(p, prompts.size() == 1 ? std::string("the prompt") : str("prompt ", i, " of the batch"));
    texts.push_back(prefix + (po.lowercase ? python_lower_strip(p) : p));
  }
  return tokenizer.encode_batch(texts, max_length, /*add_bos=*/true);
}

std::pair<torch::Tensor, torch::Tensor> embed_prompts(Gemma2ModelImpl& text_encoder, const TokenizedBatch& tokens,
                                                      const PromptOptions& po, const torch::Device& device) {
  auto ids = tokens.input_ids.to(device), mask = tokens.attention_mask.to(device);
  auto hidden = text_encoder.forward(ids, mask);
  return select_sana_tokens(hidden, mask, po.max_sequence_length);
}

TextEmbedding embed_prompts_trimmed(Gemma2ModelImpl& text_encoder, const TokenizedBatch& tokens,
                                    const PromptOptions& po, const torch::Device& device,
                                    const Gemma2PrefixCache* prefix) {
  const auto& mask = tokens.attention_mask;
  SPRINT_CHECK(mask.dim() == 2 && mask.sizes() == tokens.input_ids.sizes(), "embed_prompts_trimmed: mask ",
               mask.sizes(), " does not match the token ids ", tokens.input_ids.sizes());
  const int64_t L = mask.size(1), keep = po.max_sequence_length - 1;
  const auto mask_cpu = mask.to(torch::kCPU);  // the index work below is on the CPU wherever the tokens are
  auto real = mask_cpu.ne(0);
  auto lengths = real.sum(1);  // (B,)
  auto right_padded = torch::arange(L).view({1, L}).lt(lengths.view({-1, 1}));
  if (!torch::equal(real, right_padded) || L < keep) {
    auto [embeds, sel_mask] = embed_prompts(text_encoder, tokens, po, device);
    return {embeds, sel_mask};
  }
  const int64_t R = lengths.max().item<int64_t>();
  SPRINT_CHECK(R >= 1, "embed_prompts_trimmed: a prompt row has no tokens at all (not even BOS)");
  // The selected columns: 0, then positions L - keep .. L - 1 (select_sana_tokens); column j >= 1 is real when its
  // position is below the row's length. Keep the columns up to the last real one of any row.
  const int64_t first = L - keep;
  const int64_t columns = 1 + std::clamp<int64_t>(R - first, 0, keep);
  auto index = torch::cat({torch::zeros({1}, torch::kLong), torch::arange(first, first + columns - 1, torch::kLong)});
  auto sel_mask = mask_cpu.index_select(1, index);
  // Leading tokens that every row shares with the cached prefix (and that are real in every row).
  int64_t use = 0;
  if (prefix) {
    use = std::min(prefix->length(), lengths.min().item<int64_t>());
    auto ids = tokens.input_ids.to(torch::kCPU, torch::kLong).contiguous();
    const auto* p = ids.data_ptr<int64_t>();
    for (int64_t b = 0; b < ids.size(0); ++b)
      for (int64_t j = 0; j < use; ++j)
        if (p[b * L + j] != prefix->ids[static_cast<size_t>(j)]) {
          use = j;
          break;
        }
  }
  const int64_t B = mask.size(0);
  torch::Tensor hidden;
  if (use == 0) {
    hidden = text_encoder.forward(tokens.input_ids.narrow(1, 0, R), tokens.attention_mask.narrow(1, 0, R));
  } else {
    auto cached = prefix->hidden.narrow(1, 0, use).expand({B, -1, -1});
    hidden = use == R ? cached
                      : torch::cat({cached, text_encoder.forward_from(*prefix, use,
                                                                      tokens.input_ids.narrow(1, use, R - use),
                                                                      tokens.attention_mask.narrow(1, use, R - use))},
                                   1);
  }
  auto embeds = hidden.index_select(1, index.to(hidden.device()));
  if (sel_mask.ne(0).all().item<bool>()) return {embeds, torch::Tensor()};
  return {embeds, sel_mask.to(device)};
}

std::vector<double> parse_timesteps(const std::string& s, const std::string& what) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      out.push_back(std::stod(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw Error(str(what, " '", s, "': '", item, "' is not a number (expected e.g. 1.5708,1.3,0)"));
    }
  }
  return out;
}

GenerateRequest make_generate_request(const GenerationSettings& s, const torch::Tensor& condition_map,
                                      uint64_t condition_version) {
  GenerateRequest r;
  r.prompt = s.prompt;
  r.steps = s.steps;
  r.guidance = s.guidance;
  r.seed = s.seed;
  r.width = s.size.width;
  r.height = s.size.height;
  if (!s.timesteps.empty()) r.custom_timesteps = parse_timesteps(s.timesteps);
  if (condition_map.defined()) r.condition = GenerateCondition{condition_map, s.control_scale, condition_version};
  return r;
}

std::unique_ptr<Pipeline> Pipeline::load(const std::string& dir, const PipelineOptions& options) {
  LoadOptions lo;
  lo.device = pick_device(options.device);
  lo.dtype = options.dtype.value_or(default_dtype_for(lo.device));
  return std::unique_ptr<Pipeline>(new Pipeline(read_model_folder(dir, lo), options));
}

Pipeline::Pipeline(ModelFolder folder, const PipelineOptions& options) : model_(std::move(folder)) {
  SPRINT_CHECK(model_.transformer && model_.vae && model_.text_encoder, "pipeline on '", model_.dir,
               "': the transformer, the VAE and the text encoder are required");
  device_ = model_.transformer->parameters().front().device();
  dtype_ = model_.transformer->parameters().front().scalar_type();
  trim_text_padding_ = options.trim_text_padding;
  model_.vae->prepare_for_inference(device_, dtype_, VaeInferenceOptions{options.fast_cpu_vae});
  vae_scale_ = model_.vae->config.spatial_compression();
}

int Pipeline::native_size() const { return model_.transformer->config.sample_size * vae_scale_; }

namespace {
// When a model's output overflows: the weight of largest magnitude among its components, if it is far out of the
// usual range ("controlnet transformer_blocks.0.scale_shift_table holds 3e+38"), else "". Run only on failure.
std::string largest_weight_note(const ModelFolder& m) {
  std::string where;
  double largest = 0;
  auto scan = [&](const char* component, const torch::nn::Module& module) {
    for (const auto& p : module.named_parameters(true)) {
      const double v = p.value().detach().abs().max().item<double>();
      if (v > largest) largest = v, where = str(component, " ", p.key());
    }
  };
  torch::NoGradGuard ng;
  if (m.transformer) scan("transformer", *m.transformer);
  if (m.controlnet) scan("controlnet", *m.controlnet);
  if (m.vae) scan("vae", *m.vae);
  return largest > 1e6 ? str("; ", where, " holds ", largest) : std::string();
}

// Far past anything a working model gives (latents about unit-variance, pictures about [-1, 1]), far below overflow.
constexpr double kMaxLatentMagnitude = 1e4;
constexpr double kMaxImageMagnitude = 1e3;

}  // namespace

// The transformer: tokens x width x about 16 live floats (the block input, attention and the Mix-FFN's two
// 2.5x-wide halves); the decoder: each stage's channels at its resolution, about 4 live tensors (input, output,
// residual, norm). At large sizes the full-resolution decoder stage dominates (4096^2 on SANA's DC-AE: about 60 GiB).
double working_memory_bytes(const TransformerConfig& tc, const VaeConfig& vc, int gen_w, int gen_h, bool condition) {
  const double scale = vc.spatial_compression();
  const double tokens = (gen_w / scale) * (gen_h / scale) / (double(tc.patch_size) * tc.patch_size);
  const double transformer = tokens * tc.inner_dim() * (4 + 4 * tc.mlp_ratio) * 4;
  double decoder = 0;
  for (size_t i = 0; i < vc.decoder_block_out_channels.size(); ++i)
    decoder += vc.decoder_block_out_channels[i] * (double(gen_w) / (1 << i)) * (double(gen_h) / (1 << i)) * 4 * 4;
  const double picture = 3.0 * gen_w * gen_h * 4 * 2;
  return std::max(transformer, decoder * (condition ? 2 : 1)) + picture;
}

int Pipeline::max_side() const {
  const int sample_size = model_.transformer->config.sample_size;
  const int base = resolution_bin(sample_size, 1, 1) ? sample_size * 32 : native_size();
  return kMaxSizeFactor * base;
}

void Pipeline::require_controlnet() const {
  SPRINT_CHECK(has_controlnet(), "model folder '", model_.dir, "' has no controlnet/ subfolder (the SANA ControlNet)");
}

SanaControlNetModelImpl& Pipeline::controlnet() {
  require_controlnet();
  return *model_.controlnet;
}

void Pipeline::check_cancelled(const GenerateRequest& r) {
  if (r.cancelled && r.cancelled()) throw Cancelled();
}

void Pipeline::clear_caches() {
  prompt_cache_.clear();
  noise_key_.reset();
  noise_.clear();
  condition_key_.reset();
  condition_latent_ = torch::Tensor();
}

TextEmbedding Pipeline::encode_prompt(const std::string& prompt, StageTimes* times) {
  if (auto it = prompt_cache_.find(prompt); it != prompt_cache_.end()) {
    if (times) times->prompt_cached = true;
    return it->second;
  }
  torch::InferenceMode guard;
  auto t0 = Clock::now();
  const auto& po = model_.prompt_options;
  if (po.complex_human_instruction && chi_ids_.empty())
    chi_ids_ = model_.tokenizer.encode(complex_human_instruction(), /*add_bos=*/true);
  auto batch = tokenize_prompts(model_.tokenizer, {prompt}, po,
                                po.complex_human_instruction ? std::optional<int64_t>(chi_ids_.size()) : std::nullopt);
  if (times) times->tokenize_ms = ms_since(t0);
  t0 = Clock::now();
  TextEmbedding e;
  if (trim_text_padding_) {
    if (po.complex_human_instruction && !chi_cache_)
      chi_cache_ = model_.text_encoder->encode_prefix(chi_ids_);
    e = embed_prompts_trimmed(*model_.text_encoder, batch, po, device_, chi_cache_ ? &*chi_cache_ : nullptr);
  } else {
    std::tie(e.embeds, e.mask) = embed_prompts(*model_.text_encoder, batch, po, device_);
  }
  e.embeds = e.embeds.to(dtype_);
  synchronize(device_);
  if (times) times->text_encoder_ms = ms_since(t0);
  if (prompt_cache_.size() >= kPromptCacheSize) prompt_cache_.clear();
  prompt_cache_[prompt] = e;
  return e;
}

std::vector<torch::Tensor> Pipeline::noise_for(uint64_t seed, const std::vector<int64_t>& shape, int draws, bool& cached) {
  NoiseKey key{seed, shape};
  cached = noise_key_ && *noise_key_ == key && static_cast<int>(noise_.size()) >= draws;
  if (!(noise_key_ && *noise_key_ == key)) {
    noise_key_ = key;
    noise_.clear();
  }
  if (static_cast<int>(noise_.size()) < draws) {
    // Regenerate the whole sequence: draw k of a seed depends on the draws before it.
    noise_.clear();
    auto src = seeded_cpu_noise(seed);
    for (int i = 0; i < draws; ++i) noise_.push_back(src(shape));
  }
  return std::vector<torch::Tensor>(noise_.begin(), noise_.begin() + draws);
}

torch::Tensor Pipeline::condition_latent(const GenerateCondition& c, int width, int height, StageTimes* times) {
  const ConditionKey key{c.version, width, height};
  if (condition_key_ && *condition_key_ == key && condition_latent_.defined()) {
    if (times) times->condition_cached = true;
    return condition_latent_;
  }
  with_context("the request has a condition", [&] { require_controlnet(); });
  SPRINT_CHECK(c.map.defined() && c.map.dim() == 2 && c.map.scalar_type() == torch::kUInt8 && c.map.numel() > 0,
               "condition map must be a non-empty (H, W) uint8 image");
  torch::InferenceMode guard;
  auto t0 = Clock::now();
  auto img = scribble_to_condition(c.map.to(torch::kCPU).contiguous(), height, width);  // (1, 3, H, W) in [-1, 1]
  condition_latent_ = model_.vae->encode(img.to(device_, dtype_)) * model_.vae->config.scaling_factor;
  condition_key_ = key;
  synchronize(device_);
  if (times) times->condition_ms = ms_since(t0);
  return condition_latent_;
}

FlowModel Pipeline::make_flow(const TextEmbedding& text, const torch::Tensor& guidance, const GenerateRequest& r,
                              int gen_width, int gen_height, StageTimes& times) {
  auto* t = model_.transformer.get();
  const auto g = t->config.guidance_embeds ? guidance : torch::Tensor();
  if (!r.condition || r.condition->scale == 0.0) {
    return [t, text, g](const torch::Tensor& x, const torch::Tensor& s) {
      return t->forward(x, text.embeds, s, g, text.mask);
    };
  }
  // The condition at the generated size, as diffusers' SanaControlNetPipeline prepares the control image at the
  // binned size.
  auto cond = condition_latent(*r.condition, gen_width, gen_height, &times);
  auto* cn = model_.controlnet.get();
  const double scale = r.condition->scale;
  return [t, cn, text, g, cond, scale](const torch::Tensor& x, const torch::Tensor& s) {
    return controlled_forward(*t, *cn, x, text.embeds, s, g, text.mask, cond, scale);
  };
}

torch::Tensor Pipeline::decode_on_device(const torch::Tensor& latent) {
  torch::InferenceMode guard;
  auto z = latent.to(device_, dtype_) / model_.vae->config.scaling_factor;
  return model_.vae->decode(z).to(torch::kFloat32);
}

torch::Tensor Pipeline::decode(const torch::Tensor& latent) { return decode_on_device(latent).to(torch::kCPU); }

void Pipeline::check_request(const GenerateRequest& r) const {
  SPRINT_CHECK(r.steps >= 1 && r.steps <= 4, "steps = ", r.steps, ": SANA-Sprint samples in 1 to 4 steps");
  SPRINT_CHECK(r.width > 0 && r.height > 0, "size ", r.width, "x", r.height, " must be positive");
  SPRINT_CHECK(std::isfinite(r.guidance), "guidance must be a finite number");
  if (r.condition) {
    SPRINT_CHECK(std::isfinite(r.condition->scale), "ControlNet scale must be a finite number");
    with_context("the request has a condition", [&] { require_controlnet(); });
  }
}

GenerateResult Pipeline::generate(const GenerateRequest& r) {
  check_request(r);
  const auto& tc = model_.transformer->config;
  // diffusers' use_resolution_binning: generate at the bin, resize and crop back after decoding.
  const auto bin = r.resolution_binning ? resolution_bin(tc.sample_size, r.height, r.width) : std::nullopt;
  const int gen_h = bin ? bin->first : r.height, gen_w = bin ? bin->second : r.width;
  SPRINT_CHECK(gen_w % vae_scale_ == 0 && gen_h % vae_scale_ == 0, "size ", r.width, "x", r.height,
               " must be positive multiples of ", vae_scale_, bin ? " (binned size)" : "");
  // After the multiples check, so a size that is wrong both ways names the more basic problem first.
  SPRINT_CHECK(r.width <= max_side() && r.height <= max_side(), "size ", r.width, "x", r.height,
               ": this model draws at most ", max_side(), " px per side (", kMaxSizeFactor, "x its base size ",
               max_side() / kMaxSizeFactor, " px)");
  check_fits_memory(working_memory_bytes(tc, model_.vae->config, gen_w, gen_h, r.condition.has_value()),
                    str("size ", r.width, "x", r.height, ": one generation"), "ask for a smaller size");
  torch::InferenceMode guard;
  const auto t_total = Clock::now();
  GenerateResult out;
  auto& times = out.times;
  auto report = [&](const char* stage, double ms) { if (r.on_stage) r.on_stage(stage, ms); };

  check_cancelled(r);
  auto text = encode_prompt(r.prompt, &times);
  report("text", times.tokenize_ms + times.text_encoder_ms);
  check_cancelled(r);

  // diffusers: guidance cast to the text dtype, then times guidance_embeds_scale (in that dtype).
  auto guidance = torch::full({1}, r.guidance, torch::TensorOptions().device(device_)).to(dtype_) * tc.guidance_embeds_scale;
  auto flow = make_flow(text, guidance, r, gen_w, gen_h, times);
  report("condition", times.condition_ms);
  check_cancelled(r);

  ScmSampleOptions so;
  so.timesteps = r.custom_timesteps.empty() ? scm_timesteps(r.steps, kScmMaxTimestep, r.steps == 2 ? r.intermediate : std::nullopt)
                                            : scm_timesteps(r.steps, kScmMaxTimestep, std::nullopt, r.custom_timesteps);
  so.device = device_;
  so.model_dtype = dtype_;
  so.sigma_data = model_.scheduler.sigma_data;
  so.on_step = [&](int, int, const torch::Tensor&) { return !(r.cancelled && r.cancelled()); };
  // The noise (and its cache key) is at the generated, i.e. binned, size.
  const std::vector<int64_t> shape = {1, tc.in_channels, gen_h / vae_scale_, gen_w / vae_scale_};
  out.gen_width = gen_w;
  out.gen_height = gen_h;
  auto draws = noise_for(r.seed, shape, r.steps + 1, times.noise_cached);
  size_t next = 0;
  NoiseSource noise = [&](const std::vector<int64_t>&) { return draws.at(next++); };
  auto t0 = Clock::now();
  out.latent = scm_sample(flow, shape, noise, so).to(torch::kCPU);
  // A model whose weights or config overflow (NaN or huge weights, guidance_embeds_scale 1e308) gives NaN or Inf
  // here, which would decode to a black picture: say so instead (one reduction over a small tensor).
  // Finite but huge (weights of 3e38 that do not quite overflow) decodes to a black picture just the same; a
  // latent of a working model stays within a few tens (it is about unit-variance).
  // One reduction: max() propagates NaN, and NaN fails the comparison as Inf does.
  const double latent_max = out.latent.abs().max().item<double>();
  SPRINT_CHECK(latent_max < kMaxLatentMagnitude, "model '", model_.dir, "': the transformer produced ",
               std::isfinite(latent_max) ? str("values up to ", latent_max) : std::string("NaN or Inf values"),
               " in the final latent (weights or config values out of range?", largest_weight_note(model_),
               "); no picture was written");
  times.transformer_ms = ms_since(t0);
  report("transformer", times.transformer_ms);
  check_cancelled(r);

  t0 = Clock::now();
  out.image = r.image_on_device ? decode_on_device(out.latent) : decode(out.latent);
  SPRINT_CHECK(out.image.abs().max().item<double>() < kMaxImageMagnitude,  // NaN and Inf fail it too
               "model '", model_.dir, "': the VAE decoder produced NaN, Inf or huge values (a picture is about -1 to "
               "1; weights or config values out of range?); no picture was written");
  if (bin) out.image = resize_and_crop(out.image, r.height, r.width);
  synchronize(device_);
  times.decode_ms = ms_since(t0);
  report("decode", times.decode_ms);
  times.total_ms = ms_since(t_total);
  return out;
}

}  // namespace sprint
