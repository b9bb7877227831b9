// Gemma-2 text encoder. See include/sprint/text_encoder.h and docs/maths.md#gemma2.
#include "sprint/text_encoder.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/log.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sprint {

namespace {
constexpr const char* kSliding = "sliding_attention";
constexpr const char* kFull = "full_attention";

// torch.finfo(dtype).min: the value transformers' eager_mask writes at masked positions.
double finfo_min(torch::Dtype dtype) {
  switch (dtype) {
    case torch::kFloat32: return static_cast<double>(std::numeric_limits<float>::lowest());
    case torch::kFloat64: return std::numeric_limits<double>::lowest();
    case torch::kBFloat16: return static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest());
    case torch::kFloat16: return static_cast<double>(std::numeric_limits<c10::Half>::lowest());
    default: throw Error(str("text encoder: unsupported hidden dtype ", c10::toString(dtype)));
  }
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// (B, kv_heads, L, d) -> (B, kv_heads * n_rep, L, d), each KV head repeated for its n_rep query heads.
torch::Tensor repeat_kv(const torch::Tensor& x, int64_t n_rep) {
  if (n_rep == 1) return x;
  const auto B = x.size(0), H = x.size(1), L = x.size(2), d = x.size(3);
  return x.unsqueeze(2).expand({B, H, n_rep, L, d}).reshape({B, H * n_rep, L, d});
}

// An integer or a list of integers or null (transformers allows all three for eos_token_id).
std::vector<int> read_id_list(const json& j, const std::string& key, const std::string& source,
                              const std::vector<int>& fallback) {
  if (!j.contains(key)) return fallback;
  const auto& v = j.at(key);
  auto bad = [&] { throw Error(str(source, ": '", key, "' = ", v.dump(), ": expected an integer, a list of integers or null")); };
  // Token ids: 0 to 2^31 - 1, never wrapped (4294967297 is not 1).
  auto id = [&](const json& e) {
    if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > std::numeric_limits<int>::max()) bad();
    return static_cast<int>(e.get<int64_t>());
  };
  if (v.is_null()) return {};
  if (v.is_number_integer()) return {id(v)};
  if (!v.is_array() || v.size() > 1024) bad();
  std::vector<int> out;
  for (const auto& e : v) out.push_back(id(e));
  return out;
}
}  // namespace

// ---- config ----------------------------------------------------------------------------------------------------

std::vector<std::string> Gemma2Config::default_layer_types(int num_layers) {
  // configuration_gemma2.py: "sliding_attention" if bool((i + 1) % 2) else "full_attention".
  std::vector<std::string> out;
  for (int i = 0; i < num_layers; ++i) out.emplace_back((i + 1) % 2 ? kSliding : kFull);
  return out;
}

Gemma2Config Gemma2Config::from_json(const json& j, const std::string& source) {
  ConfigReader r(j, source);
  Gemma2Config c;
  // Sizes are required: a default would silently build the 2B network for a config that describes another.
  c.vocab_size = r.required<int>("vocab_size");
  c.hidden_size = r.required<int>("hidden_size");
  c.intermediate_size = r.required<int>("intermediate_size");
  c.num_hidden_layers = r.required<int>("num_hidden_layers");
  c.num_attention_heads = r.required<int>("num_attention_heads");
  c.num_key_value_heads = r.required<int>("num_key_value_heads");
  c.head_dim = r.required<int>("head_dim");
  c.query_pre_attn_scalar = r.optional<double>("query_pre_attn_scalar", c.query_pre_attn_scalar);
  c.rms_norm_eps = r.optional<double>("rms_norm_eps", c.rms_norm_eps);
  c.hidden_activation = r.optional<std::string>("hidden_activation", c.hidden_activation);
  c.attention_bias = r.optional<bool>("attention_bias", c.attention_bias);
  // null means "off" here, absence means the class default: only read when present.
  if (r.has("sliding_window")) c.sliding_window = r.nullable<int>("sliding_window");
  if (r.has("attn_logit_softcapping")) c.attn_logit_softcapping = r.nullable<double>("attn_logit_softcapping");
  if (r.has("pad_token_id")) c.pad_token_id = r.nullable<int>("pad_token_id");
  if (r.has("bos_token_id")) c.bos_token_id = r.nullable<int>("bos_token_id");
  c.eos_token_ids = read_id_list(j, "eos_token_id", source, c.eos_token_ids);
  // Absent or null (configs saved before transformers 4.5x): the default alternation, as __post_init__ does.
  c.layer_types = r.optional<std::vector<std::string>>("layer_types", default_layer_types(c.num_hidden_layers));
  double dropout = r.optional<double>("attention_dropout", 0.0);
  if (dropout != 0.0) log_debug(source, ": attention_dropout ", dropout, " is ignored at inference");

  // RoPE (modeling_rope_utils.py): the rope_parameters dict (5.x) or rope_scaling (4.x) first, then a top-level
  // rope_theta, then 10000. Gemma2RotaryEmbedding supports only the "default" type here.
  const std::string rope_key = j.contains("rope_scaling") && !j.at("rope_scaling").is_null() ? "rope_scaling"
                                                                                            : "rope_parameters";
  std::optional<double> theta;
  if (j.contains(rope_key) && !j.at(rope_key).is_null()) {
    const auto& rp = j.at(rope_key);
    if (!rp.is_object()) r.reject(rope_key, "expected an object");
    if (rp.contains(kSliding) || rp.contains(kFull))
      r.reject(rope_key, "RoPE parameters per layer type are not supported (Gemma-2 has one set)");
    ConfigReader rr(rp, str(source, ": ", rope_key));
    std::string type = rr.optional<std::string>("rope_type", rr.optional<std::string>("type", "default"));
    if (type != "default") r.reject(rope_key, str("rope_type \"", type, "\" is not supported (only \"default\")"));
    theta = rr.nullable<double>("rope_theta");
    rr.report_unused();
  }
  if (!theta) theta = r.nullable<double>("rope_theta");
  c.rope_theta = theta.value_or(10000.0);

  if (j.contains("use_bidirectional_attention")) {
    const auto& v = j.at("use_bidirectional_attention");
    if (!v.is_null() && !v.is_boolean()) r.reject("use_bidirectional_attention", "expected true, false or null");
    if (v.is_boolean() && v.get<bool>())
      r.reject("use_bidirectional_attention", "bidirectional attention is not supported (Gemma-2 is causal)");
  }

  // Known keys that do not change the encoder: the LM head, generation, init, bookkeeping.
  r.report_unused({"eos_token_id", "rope_parameters", "rope_scaling", "use_bidirectional_attention",
                   "final_logit_softcapping", "max_position_embeddings", "initializer_range", "use_cache",
                   "tie_word_embeddings", "architectures", "model_type", "dtype", "torch_dtype",
                   "transformers_version", "hidden_act", "cache_implementation"});
  c.validate(source);
  return c;
}

Gemma2Config Gemma2Config::load(const std::string& path) {
  std::string file = fs::is_directory(path) ? (fs::path(path) / "config.json").string() : path;
  return from_json(read_json_file(file), file);
}

void Gemma2Config::validate(const std::string& source) const {
  auto bad = [&](const std::string& key, auto value, const std::string& why) {
    throw Error(str(source, ": '", key, "' = ", value, ": ", why));
  };
  // Upper bounds far above released models (Gemma-2 27B: 4608 wide, 46 layers, 256000 tokens); memory is
  // check_model_size's job.
  auto positive = [&](const char* key, int v, int max) {
    if (v <= 0 || v > max) bad(key, v, str("must be > 0 and at most ", max));
  };
  positive("vocab_size", vocab_size, 1 << 22);
  positive("hidden_size", hidden_size, 65536);
  positive("intermediate_size", intermediate_size, 1 << 20);
  positive("num_hidden_layers", num_hidden_layers, 1024);
  positive("num_attention_heads", num_attention_heads, 1024);
  positive("num_key_value_heads", num_key_value_heads, 1024);
  positive("head_dim", head_dim, 4096);
  if (head_dim % 2) bad("head_dim", head_dim, "must be even (RoPE rotates two halves)");
  // Gemma2Config.validate_architecture rejects this too, although head_dim is set separately.
  if (hidden_size % num_attention_heads)
    bad("hidden_size", hidden_size, str("must be a multiple of num_attention_heads = ", num_attention_heads));
  if (num_attention_heads % num_key_value_heads)
    bad("num_key_value_heads", num_key_value_heads,
        str("must divide num_attention_heads = ", num_attention_heads, " (each KV head serves a group of query heads)"));
  if (!(query_pre_attn_scalar > 0) || !(query_pre_attn_scalar <= 1e6))
    bad("query_pre_attn_scalar", query_pre_attn_scalar, "must be > 0 and at most 1e6 (Gemma-2: the head size, 256)");
  if (!(rms_norm_eps > 0) || rms_norm_eps > 1) bad("rms_norm_eps", rms_norm_eps, "must be in (0, 1]");
  if (!(rope_theta > 0) || !std::isfinite(rope_theta)) bad("rope_theta", rope_theta, "must be > 0");
  if (attn_logit_softcapping && (!(*attn_logit_softcapping > 0) || !std::isfinite(*attn_logit_softcapping)))
    bad("attn_logit_softcapping", *attn_logit_softcapping, "must be > 0 or null");
  if (hidden_activation != "gelu_pytorch_tanh")
    bad("hidden_activation", "\"" + hidden_activation + "\"", "only \"gelu_pytorch_tanh\" is supported");
  if (static_cast<int>(layer_types.size()) != num_hidden_layers)
    bad("layer_types", str(layer_types.size(), " entries"), str("must have num_hidden_layers = ", num_hidden_layers,
                                                               " entries"));
  bool any_sliding = false;
  for (size_t i = 0; i < layer_types.size(); ++i) {
    if (layer_types[i] != kSliding && layer_types[i] != kFull)
      bad("layer_types", str("[", i, "] \"", layer_types[i], "\""),
          "must be \"sliding_attention\" or \"full_attention\"");
    any_sliding |= layer_types[i] == kSliding;
  }
  if (any_sliding && !sliding_window) bad("sliding_window", "null", "required: some layer_types are sliding_attention");
  if (sliding_window && *sliding_window <= 0) bad("sliding_window", *sliding_window, "must be > 0");
  auto id_in_vocab = [&](const char* key, std::optional<int> id) {
    if (id && (*id < 0 || *id >= vocab_size)) bad(key, *id, str("must be in [0, vocab_size = ", vocab_size, ")"));
  };
  id_in_vocab("pad_token_id", pad_token_id);
  id_in_vocab("bos_token_id", bos_token_id);
  for (int id : eos_token_ids) id_in_vocab("eos_token_id", id);
}

// Efficient-Large-Model/gemma-2-2b-it (text_encoder/config.json of the SANA-Sprint diffusers releases) = the
// Gemma2Config class defaults.
Gemma2Config Gemma2Config::gemma2_2b() {
  Gemma2Config c;
  c.layer_types = default_layer_types(c.num_hidden_layers);
  return c;
}

// ---- modules ---------------------------------------------------------------------------------------------------

GemmaRMSNormImpl::GemmaRMSNormImpl(int64_t dim, double eps_, const torch::TensorOptions& options) : eps(eps_) {
  weight = register_parameter("weight", torch::empty({dim}, options), /*requires_grad=*/false);
}

torch::Tensor GemmaRMSNormImpl::forward(const torch::Tensor& x) {
  // Gemma2RMSNorm: (x * w) is rounded once, after the multiply (Llama rounds x first) - transformers PR 29402.
  auto xf = x.to(torch::kFloat32);
  auto out = xf * torch::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  out = out * (weight.to(torch::kFloat32) + 1.0);
  return out.to(x.scalar_type());
}

GemmaLinearImpl::GemmaLinearImpl(int64_t in, int64_t out, bool with_bias, const torch::TensorOptions& options) {
  weight = register_parameter("weight", torch::empty({out, in}, options), /*requires_grad=*/false);
  if (with_bias) bias = register_parameter("bias", torch::empty({out}, options), /*requires_grad=*/false);
}

Gemma2ScaledEmbeddingImpl::Gemma2ScaledEmbeddingImpl(int64_t vocab, int64_t dim, const torch::TensorOptions& options) {
  weight = register_parameter("weight", torch::empty({vocab, dim}, options), /*requires_grad=*/false);
}

torch::Tensor Gemma2ScaledEmbeddingImpl::forward(const torch::Tensor& ids) {
  // embed_scale = torch.tensor(hidden ** 0.5) (fp32), then .to(weight.dtype): in bf16 sqrt(2304) = 48.0 exactly,
  // and sqrt(3072) would become 55.5 - the rounding the checkpoint was trained with.
  auto scale = torch::scalar_tensor(std::sqrt(static_cast<double>(weight.size(1))), torch::kFloat32)
                   .to(weight.device(), weight.scalar_type());
  return torch::embedding(weight, ids) * scale;
}

Gemma2AttentionImpl::Gemma2AttentionImpl(const Gemma2Config& c, const torch::TensorOptions& options)
    : heads(c.num_attention_heads),
      kv_heads(c.num_key_value_heads),
      head_dim(c.head_dim),
      scaling(std::pow(c.query_pre_attn_scalar, -0.5)),
      softcap(c.attn_logit_softcapping) {
  const int64_t D = c.hidden_size;
  const bool b = c.attention_bias;
  q_proj = register_module("q_proj", GemmaLinear(D, heads * head_dim, b, options));
  k_proj = register_module("k_proj", GemmaLinear(D, kv_heads * head_dim, b, options));
  v_proj = register_module("v_proj", GemmaLinear(D, kv_heads * head_dim, b, options));
  o_proj = register_module("o_proj", GemmaLinear(heads * head_dim, D, b, options));
}

torch::Tensor Gemma2AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                           const torch::Tensor& bias, const Gemma2KV* past, Gemma2KV* present) {
  const int64_t B = x.size(0), L = x.size(1);
  auto q = q_proj(x).view({B, L, -1, head_dim}).transpose(1, 2);  // (B, heads, L, d)
  auto k = k_proj(x).view({B, L, -1, head_dim}).transpose(1, 2);  // (B, kv_heads, L, d)
  auto v = v_proj(x).view({B, L, -1, head_dim}).transpose(1, 2);
  auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  q = q * c + rotate_half(q) * s;
  k = k * c + rotate_half(k) * s;
  if (present) *present = {k, v};
  if (past) {
    k = torch::cat({past->k.expand({B, -1, -1, -1}), k}, 2);
    v = torch::cat({past->v.expand({B, -1, -1, -1}), v}, 2);
  }
  // Eager path op for op (eager_attention_forward): repeat KV, scale, soft-cap, add mask, fp32 softmax, cast back.
  k = repeat_kv(k, heads / kv_heads);
  v = repeat_kv(v, heads / kv_heads);
  auto w = torch::matmul(q, k.transpose(2, 3));
  if (!torch::GradMode::is_enabled() && w.scalar_type() == torch::kFloat32) {
    // fp32 inference: the same ops in the same order, in place (bit-identical in fp32; in bf16 the in-place scalar
    // ops round differently from transformers', so bf16 keeps the reference path). The (B, heads, L, L) scores are
    // the largest tensors of the encoder (L = the instruction + 300 tokens): not allocating four more of them saves
    // much of its time on a CPU.
    w.mul_(scaling);
    if (softcap) w.div_(*softcap).tanh_().mul_(*softcap);
    w.add_(bias);
  } else {  // training (autograd keeps the intermediates) and bf16
    w = w * scaling;
    if (softcap) w = torch::tanh(w / *softcap) * *softcap;
    w = w + bias;
  }
  w = torch::softmax(w, -1, torch::kFloat32).to(q.scalar_type());
  auto o = torch::matmul(w, v).transpose(1, 2).contiguous().reshape({B, L, -1});
  return o_proj(o);
}

Gemma2MLPImpl::Gemma2MLPImpl(const Gemma2Config& c, const torch::TensorOptions& options) {
  gate_proj = register_module("gate_proj", GemmaLinear(c.hidden_size, c.intermediate_size, false, options));
  up_proj = register_module("up_proj", GemmaLinear(c.hidden_size, c.intermediate_size, false, options));
  down_proj = register_module("down_proj", GemmaLinear(c.intermediate_size, c.hidden_size, false, options));
}

torch::Tensor Gemma2MLPImpl::forward(const torch::Tensor& x) {
  return down_proj(torch::gelu(gate_proj(x), "tanh") * up_proj(x));
}

Gemma2DecoderLayerImpl::Gemma2DecoderLayerImpl(const Gemma2Config& c, const torch::TensorOptions& options) {
  self_attn = register_module("self_attn", Gemma2Attention(c, options));
  mlp = register_module("mlp", Gemma2MLP(c, options));
  const double eps = c.rms_norm_eps;
  input_layernorm = register_module("input_layernorm", GemmaRMSNorm(c.hidden_size, eps, options));
  post_attention_layernorm = register_module("post_attention_layernorm", GemmaRMSNorm(c.hidden_size, eps, options));
  pre_feedforward_layernorm = register_module("pre_feedforward_layernorm", GemmaRMSNorm(c.hidden_size, eps, options));
  post_feedforward_layernorm =
      register_module("post_feedforward_layernorm", GemmaRMSNorm(c.hidden_size, eps, options));
}

torch::Tensor Gemma2DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                              const torch::Tensor& sin, const torch::Tensor& bias,
                                              const Gemma2KV* past, Gemma2KV* present) {
  // Sandwich norms: each branch is normed before and after, then added to the residual.
  auto h = x + post_attention_layernorm(self_attn(input_layernorm(x), cos, sin, bias, past, present));
  return h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)));
}

// ---- model -----------------------------------------------------------------------------------------------------

double Gemma2Config::parameter_estimate() const {
  const double H = hidden_size, q = double(num_attention_heads) * head_dim, kv = double(num_key_value_heads) * head_dim;
  // Embedding table, then per layer: q and o (H x q each), k and v (H x kv each), the gated MLP (3 H x I), 4 norms.
  return double(vocab_size) * H + num_hidden_layers * (2 * H * q + 2 * H * kv + 3 * H * intermediate_size + 4 * H) + H;
}

Gemma2ModelImpl::Gemma2ModelImpl(const Gemma2Config& c, const torch::TensorOptions& options) : config(c) {
  if (config.layer_types.empty()) config.layer_types = Gemma2Config::default_layer_types(config.num_hidden_layers);
  config.validate("Gemma2Config");
  check_model_size("text encoder", config.parameter_estimate(), "Gemma2Config");
  embed_tokens = register_module("embed_tokens", Gemma2ScaledEmbedding(config.vocab_size, config.hidden_size, options));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < config.num_hidden_layers; ++i) {
    blocks.emplace_back(config, options);
    layers->push_back(blocks.back());
  }
  norm = register_module("norm", GemmaRMSNorm(config.hidden_size, config.rms_norm_eps, options));
  // compute_default_rope_parameters: 1 / base ** (arange(0, d, 2, float32) / d), in fp32 on the CPU (where
  // transformers builds the buffer before moving the model).
  const int64_t d = config.head_dim;
  inv_freq = torch::reciprocal(torch::pow(config.rope_theta, torch::arange(0, d, 2, torch::kFloat32) / d));
}

std::pair<torch::Tensor, torch::Tensor> Gemma2ModelImpl::rope(int64_t length, torch::Dtype dtype,
                                                              const torch::Device& device, int64_t first) const {
  auto pos = torch::arange(first, first + length, torch::TensorOptions().dtype(torch::kLong).device(device)).unsqueeze(0);
  auto freqs = pos.unsqueeze(-1).to(torch::kFloat32) * inv_freq.to(device);  // (1, L, d/2)
  auto emb = torch::cat({freqs, freqs}, -1);
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor Gemma2ModelImpl::attention_bias(const torch::Tensor& attention_mask, int64_t batch, int64_t length,
                                              bool sliding, torch::Dtype dtype, const torch::Device& device) const {
  return attention_bias(attention_mask, batch, length, length, sliding, dtype, device);
}

torch::Tensor Gemma2ModelImpl::attention_bias(const torch::Tensor& attention_mask, int64_t batch, int64_t queries,
                                              int64_t keys, bool sliding, torch::Dtype dtype,
                                              const torch::Device& device) const {
  // masking_utils: causal (k <= q), sliding overlay (k > q - window), padding (mask[b, k]); eager_mask turns the
  // boolean into 0 / finfo(dtype).min. The queries are the last `queries` of the `keys` positions.
  const auto opts = torch::TensorOptions().dtype(torch::kLong).device(device);
  auto q = torch::arange(keys - queries, keys, opts).view({queries, 1}), k = torch::arange(keys, opts).view({1, keys});
  auto allowed = k <= q;
  if (sliding) allowed = allowed & (k > q - static_cast<int64_t>(*config.sliding_window));
  auto allowed4 = allowed.view({1, 1, queries, keys});
  if (attention_mask.defined()) allowed4 = allowed4 & attention_mask.to(device, torch::kBool).view({batch, 1, 1, keys});
  allowed4 = allowed4.expand({batch, 1, queries, keys});
  return torch::zeros({batch, 1, queries, keys}, torch::TensorOptions().dtype(dtype).device(device))
      .masked_fill(allowed4.logical_not(), finfo_min(dtype));
}

void Gemma2ModelImpl::check_inputs(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) const {
  SPRINT_CHECK(input_ids.dim() == 2, "text encoder: input_ids must be (B, L), got ", input_ids.sizes());
  SPRINT_CHECK(!torch::isFloatingType(input_ids.scalar_type()) && input_ids.scalar_type() != torch::kBool,
               "text encoder: input_ids must be an integer tensor, got ", c10::toString(input_ids.scalar_type()));
  const int64_t B = input_ids.size(0), L = input_ids.size(1);
  SPRINT_CHECK(B > 0 && L > 0, "text encoder: empty input_ids ", input_ids.sizes());
  if (attention_mask.defined())
    SPRINT_CHECK(attention_mask.dim() == 2 && attention_mask.size(0) == B && attention_mask.size(1) == L,
                 "text encoder: attention_mask must be (B, L) = ", input_ids.sizes(), ", got ", attention_mask.sizes());
  check_ids(input_ids);
}

void Gemma2ModelImpl::check_ids(const torch::Tensor& input_ids) const {
  // An out-of-range id is a device-side assert on CUDA; name it here instead.
  const int64_t lo = input_ids.min().item<int64_t>(), hi = input_ids.max().item<int64_t>();
  SPRINT_CHECK(lo >= 0 && hi < config.vocab_size, "text encoder: token id ", lo < 0 ? lo : hi,
               " outside the vocabulary [0, ", config.vocab_size, ")");
}

torch::Tensor Gemma2ModelImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  check_inputs(input_ids, attention_mask);
  return run(input_ids, attention_mask, nullptr, 0, nullptr);
}

torch::Tensor Gemma2ModelImpl::run(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                   const Gemma2PrefixCache* past, int64_t use, std::vector<Gemma2KV>* present) {
  const auto& w = embed_tokens->weight;
  const auto dtype = w.scalar_type();
  const auto device = w.device();
  const int64_t B = input_ids.size(0), L = input_ids.size(1), P = past ? use : 0;
  auto ids = input_ids.to(device, torch::kLong);
  auto mask = attention_mask.defined() ? attention_mask.to(device) : attention_mask;
  if (mask.defined() && P > 0)  // the cached positions are real tokens
    mask = torch::cat({torch::ones({B, P}, mask.options()), mask}, 1);

  auto h = embed_tokens(ids);
  auto [cos, sin] = rope(L, dtype, device, P);
  torch::Tensor bias_full, bias_sliding;
  if (present) present->resize(blocks.size());
  for (int i = 0; i < config.num_hidden_layers; ++i) {
    const bool sliding = config.is_sliding(i);
    auto& bias = sliding ? bias_sliding : bias_full;
    if (!bias.defined()) bias = attention_bias(mask, B, L, P + L, sliding, dtype, device);
    const auto li = static_cast<size_t>(i);
    Gemma2KV kv_past;
    if (past) kv_past = {past->kv[li].k.narrow(2, 0, P), past->kv[li].v.narrow(2, 0, P)};
    h = blocks[li]->forward(h, cos, sin, bias, past ? &kv_past : nullptr, present ? &(*present)[li] : nullptr);
  }
  return norm(h);
}

Gemma2PrefixCache Gemma2ModelImpl::encode_prefix(const std::vector<int64_t>& ids) {
  SPRINT_CHECK(!ids.empty(), "text encoder: encode_prefix needs at least one token");
  torch::InferenceMode guard;
  Gemma2PrefixCache c;
  c.ids = ids;
  auto t = torch::tensor(ids, torch::kLong).view({1, -1});
  check_ids(t);
  c.hidden = run(t, {}, nullptr, 0, &c.kv);
  return c;
}

torch::Tensor Gemma2ModelImpl::forward_from(const Gemma2PrefixCache& prefix, int64_t use,
                                            const torch::Tensor& input_ids, const torch::Tensor& attention_mask) {
  SPRINT_CHECK(use >= 0 && use <= prefix.length(), "text encoder: forward_from uses ", use, " of ",
               prefix.length(), " cached tokens");
  SPRINT_CHECK(prefix.kv.size() == blocks.size(), "text encoder: the prefix cache has ", prefix.kv.size(),
               " layers, the encoder ", blocks.size());
  check_inputs(input_ids, attention_mask);
  return run(input_ids, attention_mask, use > 0 ? &prefix : nullptr, use, nullptr);
}

LoadReport load_text_encoder_weights(Gemma2ModelImpl& model, const safetensors::Archive& archive,
                                     const LoadOptions& options) {
  LoadOptions opt = options;
  if (archive.contains("embed_tokens.weight")) {
    opt.prefix = "";
  } else if (archive.contains("model.embed_tokens.weight")) {
    opt.prefix = "model.";  // saved from Gemma2ForCausalLM; lm_head.* lies outside the prefix and is skipped
  } else {
    throw Error(str(archive.source(), ": neither 'embed_tokens.weight' nor 'model.embed_tokens.weight' found; ",
                    "not a Gemma-2 checkpoint"));
  }
  return load_state_dict(model, archive, opt);
}

Gemma2Model load_text_encoder(const std::string& dir, const LoadOptions& options) {
  return with_context("loading text encoder from '" + dir + "'", [&] {
    auto config = Gemma2Config::load(dir);
    auto archive = safetensors::Archive::open(dir);
    check_model_size("text encoder", config.parameter_estimate(), dir + "/config.json", &archive);
    Gemma2Model model(config, torch::TensorOptions().dtype(options.dtype).device(options.device));
    load_text_encoder_weights(*model, archive, options);
    model->eval();
    return model;
  });
}

// ---- SANA prompt selection ---------------------------------------------------------------------------------------

std::pair<torch::Tensor, torch::Tensor> select_sana_tokens(const torch::Tensor& hidden, const torch::Tensor& mask,
                                                           int64_t max_sequence_length) {
  SPRINT_CHECK(hidden.dim() == 3, "select_sana_tokens: hidden must be (B, L, H), got ", hidden.sizes());
  SPRINT_CHECK(mask.dim() == 2 && mask.size(0) == hidden.size(0) && mask.size(1) == hidden.size(1),
               "select_sana_tokens: mask must be (B, L) = (", hidden.size(0), ", ", hidden.size(1), "), got ",
               mask.sizes());
  SPRINT_CHECK(max_sequence_length >= 1, "select_sana_tokens: max_sequence_length must be >= 1, got ",
               max_sequence_length);
  const int64_t L = hidden.size(1), keep = max_sequence_length - 1;
  SPRINT_CHECK(L >= keep, "select_sana_tokens: ", L, " token states are too few for max_sequence_length ",
               max_sequence_length, " (need at least ", keep, ")");
  // [0] + range(-keep, 0), as non-negative indices.
  auto index = torch::cat({torch::zeros({1}, torch::kLong), torch::arange(L - keep, L, torch::kLong)});
  return {hidden.index_select(1, index.to(hidden.device())), mask.index_select(1, index.to(mask.device()))};
}

int64_t sana_padded_length(int64_t num_chi_tokens, int64_t max_sequence_length) {
  SPRINT_CHECK(num_chi_tokens >= 0 && max_sequence_length >= 1, "sana_padded_length: bad arguments ",
               num_chi_tokens, ", ", max_sequence_length);
  // diffusers _get_gemma_prompt_embeds: max_length_all = num_chi_prompt_tokens + max_sequence_length - 2 with an
  // instruction, max_sequence_length without one.
  return num_chi_tokens == 0 ? max_sequence_length : num_chi_tokens + max_sequence_length - 2;
}

}  // namespace sprint
