// SANA-Sprint pipeline. See include/sprint/pipeline.h.
#include "sprint/pipeline.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/log.h"
#include "sprint/runtime.h"

namespace fs = std::filesystem;

namespace sprint {

namespace {
using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

void require_dir(const fs::path& p, const std::string& what) {
  SPRINT_CHECK(fs::is_directory(p), "model folder '", p.parent_path().string(), "' has no ", p.filename().string(),
               "/ subfolder (", what, ")");
}
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

PromptOptions PromptOptions::load(const std::string& model_dir) {
  PromptOptions o;
  auto path = fs::path(model_dir) / "sprint_pipeline.json";
  if (!fs::exists(path)) return o;
  auto j = read_json_file(path.string());
  ConfigReader r(j, path.string());
  o.complex_human_instruction = r.optional<bool>("complex_human_instruction", o.complex_human_instruction);
  o.max_sequence_length = r.optional<int>("max_sequence_length", o.max_sequence_length);
  o.lowercase = r.optional<bool>("lowercase", o.lowercase);
  o.sketch_canvas = r.optional<int>("sketch_canvas", o.sketch_canvas);
  if (o.max_sequence_length < 2) r.reject("max_sequence_length", "must be >= 2");
  if (o.sketch_canvas < 0 || o.sketch_canvas > 16384) r.reject("sketch_canvas", "must be 0 (generation size) or 1..16384 px");
  r.report_unused();
  return o;
}

Pipeline::Pipeline(const std::string& dir, const PipelineOptions& options) : dir_(dir) {
  device_ = pick_device(options.device);
  dtype_ = options.dtype.value_or(default_dtype_for(device_));
  trim_text_padding_ = options.trim_text_padding;
  fast_cpu_vae_ = options.fast_cpu_vae;
}

std::unique_ptr<Pipeline> Pipeline::load(const std::string& dir, const PipelineOptions& options) {
  std::unique_ptr<Pipeline> p(new Pipeline(dir, options));
  p->load_components();
  return p;
}

void Pipeline::load_components() {
  const std::string& dir = dir_;
  Pipeline* p = this;
  SPRINT_CHECK(fs::is_directory(dir), "model folder '", dir, "' does not exist");
  fs::path root(dir);
  require_dir(root / "transformer", "the diffusion transformer");
  require_dir(root / "vae", "the DC-AE autoencoder");
  require_dir(root / "text_encoder", "the Gemma-2 text encoder");
  require_dir(root / "tokenizer", "the SentencePiece tokenizer");
  LoadOptions lo;
  lo.device = p->device_;
  lo.dtype = p->dtype_;
  p->prompt_options_ = PromptOptions::load(dir);
  p->tokenizer_ = with_context("loading tokenizer", [&] { return Tokenizer::load((root / "tokenizer").string()); });
  p->text_encoder_ = load_text_encoder((root / "text_encoder").string(), lo);
  p->transformer_ = load_transformer((root / "transformer").string(), lo);
  p->vae_ = load_vae((root / "vae").string(), lo);
  p->vae_->prepare_for_inference(lo.device, lo.dtype, VaeInferenceOptions{p->fast_cpu_vae_});
  p->vae_scale_ = p->vae_->config.spatial_compression();
  // Components must fit together; say which config keys disagree rather than failing inside a matmul.
  const auto& tc = p->transformer_->config;
  SPRINT_CHECK(tc.caption_channels == p->text_encoder_->config.hidden_size, dir, ": transformer/config.json caption_channels = ",
               tc.caption_channels, " but text_encoder/config.json hidden_size = ", p->text_encoder_->config.hidden_size);
  SPRINT_CHECK(tc.in_channels == p->vae_->config.latent_channels, dir, ": transformer/config.json in_channels = ",
               tc.in_channels, " but vae/config.json latent_channels = ", p->vae_->config.latent_channels);
  SPRINT_CHECK(p->tokenizer_.vocab_size() <= p->text_encoder_->config.vocab_size, dir, ": the tokenizer has ",
               p->tokenizer_.vocab_size(), " tokens but text_encoder/config.json vocab_size = ",
               p->text_encoder_->config.vocab_size);
}

void Pipeline::check_cancelled(const GenerateRequest& r) {
  if (r.cancelled && r.cancelled()) throw Cancelled();
}

void Pipeline::clear_caches() {
  prompt_cache_.clear();
  noise_key_.reset();
  noise_.clear();
}

TextEmbedding Pipeline::encode_prompt(const std::string& prompt, StageTimes* times) {
  if (auto it = prompt_cache_.find(prompt); it != prompt_cache_.end()) {
    if (times) times->prompt_cached = true;
    return it->second;
  }
  torch::InferenceMode guard;
  auto t0 = Clock::now();
  const auto& po = prompt_options_;
  if (po.complex_human_instruction && chi_ids_.empty())
    chi_ids_ = tokenizer_.encode(complex_human_instruction(), /*add_bos=*/true);
  auto batch = tokenize_prompts(tokenizer_, {prompt}, po,
                                po.complex_human_instruction ? std::optional<int64_t>(chi_ids_.size()) : std::nullopt);
  if (times) times->tokenize_ms = ms_since(t0);
  t0 = Clock::now();
  TextEmbedding e;
  if (trim_text_padding_) {
    if (po.complex_human_instruction && !chi_cache_)
      chi_cache_ = text_encoder_->encode_prefix(chi_ids_);
    e = embed_prompts_trimmed(*text_encoder_, batch, po, device_, chi_cache_ ? &*chi_cache_ : nullptr);
  } else {
    std::tie(e.embeds, e.mask) = embed_prompts(*text_encoder_, batch, po, device_);
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

FlowModel Pipeline::make_flow(const TextEmbedding& text, const torch::Tensor& guidance, const GenerateRequest&,
                              StageTimes&) {
  auto* t = transformer_.get();
  const bool with_guidance = t->config.guidance_embeds;
  return [t, text, guidance, with_guidance](const torch::Tensor& x, const torch::Tensor& s) {
    return t->forward(x, text.embeds, s, with_guidance ? guidance : torch::Tensor(), text.mask);
  };
}

torch::Tensor Pipeline::decode_on_device(const torch::Tensor& latent) {
  torch::InferenceMode guard;
  auto z = latent.to(device_, dtype_) / vae_->config.scaling_factor;
  return vae_->decode(z).to(torch::kFloat32);
}

torch::Tensor Pipeline::decode(const torch::Tensor& latent) { return decode_on_device(latent).to(torch::kCPU); }

GenerateResult Pipeline::generate(const GenerateRequest& r) {
  SPRINT_CHECK(r.steps >= 1 && r.steps <= 4, "steps = ", r.steps, ": SANA-Sprint samples in 1 to 4 steps");
  SPRINT_CHECK(r.width > 0 && r.height > 0, "size ", r.width, "x", r.height, " must be positive");
  const auto& tc = transformer_->config;
  // diffusers' use_resolution_binning: generate at the bin, resize and crop back after decoding.
  const auto bin = r.resolution_binning ? resolution_bin(tc.sample_size, r.height, r.width) : std::nullopt;
  const int gen_h = bin ? bin->first : r.height, gen_w = bin ? bin->second : r.width;
  SPRINT_CHECK(gen_w % vae_scale_ == 0 && gen_h % vae_scale_ == 0, "size ", r.width, "x", r.height,
               " must be positive multiples of ", vae_scale_, bin ? " (binned size)" : "");
  SPRINT_CHECK(std::isfinite(r.guidance), "guidance must be a finite number");
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
  // The flow sees the generated size (ControlPipeline encodes its condition at that size, as diffusers'
  // SanaControlNetPipeline prepares the control image at the binned size).
  GenerateRequest gen_r = r;
  gen_r.width = gen_w;
  gen_r.height = gen_h;
  auto flow = make_flow(text, guidance, gen_r, times);
  report("condition", times.condition_ms);
  check_cancelled(r);

  ScmSampleOptions so;
  so.timesteps = r.custom_timesteps.empty() ? scm_timesteps(r.steps, kScmMaxTimestep, r.steps == 2 ? r.intermediate : std::nullopt)
                                            : scm_timesteps(r.steps, kScmMaxTimestep, std::nullopt, r.custom_timesteps);
  so.device = device_;
  so.model_dtype = dtype_;
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
  times.transformer_ms = ms_since(t0);
  report("transformer", times.transformer_ms);
  check_cancelled(r);

  t0 = Clock::now();
  out.image = r.image_on_device ? decode_on_device(out.latent) : decode(out.latent);
  if (bin) out.image = resize_and_crop(out.image, r.height, r.width);
  synchronize(device_);
  times.decode_ms = ms_since(t0);
  report("decode", times.decode_ms);
  times.total_ms = ms_since(t_total);
  return out;
}

}  // namespace sprint
