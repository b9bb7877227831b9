// Gemma-2 text encoder as SANA uses it: the decoder stack (transformers `Gemma2Model`, no LM head) and SANA's
// selection of prompt token states. Tokenisation lives in sprint::Tokenizer.
// Reference: transformers 5.24 models/gemma2/modeling_gemma2.py (eager attention path), masking_utils.py;
// diffusers pipelines/sana/pipeline_sana_sprint.py (encode_prompt). Maths: docs/maths.md#gemma2 and #prompt.
//
// Module and parameter names equal the checkpoint keys (`layers.3.self_attn.q_proj.weight`), so a
// `text_encoder/model*.safetensors` binds with sprint::load_state_dict; a `model.` prefix (a checkpoint saved from
// Gemma2ForCausalLM) is detected by load_text_encoder.
//
// Semantics follow the transformers EAGER attention path exactly, including what it does to padded positions:
//   * mask = causal AND key-not-padding (AND q - window < k on sliding layers), turned into an additive bias of
//     0 / finfo(dtype).min in the hidden dtype and added after the logit soft-cap;
//   * a right-padded query row still sees the real keys before it (causal), so on full-attention layers it gets an
//     ordinary output. On a sliding layer, a padded row j >= len - 1 + window sees no key at all: every logit of the
//     row becomes exactly finfo.min and the fp32 softmax is uniform over all L keys (padding included). That only
//     happens when L > window (never for SANA: L ~ 420 < 4096), and it is reproduced here rather than "fixed", so
//     parity holds for every position.
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sprint/loader.h"

namespace sprint {

// transformers Gemma2Config (configuration_gemma2.py). Defaults are the class defaults = gemma-2-2b.
struct Gemma2Config {
  int vocab_size = 256000;
  int hidden_size = 2304;
  int intermediate_size = 9216;
  int num_hidden_layers = 26;
  int num_attention_heads = 8;
  int num_key_value_heads = 4;
  int head_dim = 256;
  double query_pre_attn_scalar = 256;         // logits scale = query_pre_attn_scalar^-0.5 (not head_dim^-0.5)
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;                // rope_parameters.rope_theta (5.x) or top-level rope_theta (4.x)
  std::optional<int> sliding_window = 4096;   // null only allowed when no layer is "sliding_attention"
  std::optional<double> attn_logit_softcapping = 50.0;  // null -> no soft-cap
  std::string hidden_activation = "gelu_pytorch_tanh";
  bool attention_bias = false;
  // Per layer "sliding_attention" or "full_attention". When config.json has no `layer_types`, transformers 5.x
  // uses sliding for even layers (0, 2, ...) and full for odd ones; from_json fills that in.
  std::vector<std::string> layer_types;
  std::optional<int> pad_token_id = 0;
  std::vector<int> eos_token_ids = {1};      // `eos_token_id` may be an int or a list
  std::optional<int> bos_token_id = 2;

  bool is_sliding(int layer) const { return layer_types.at(static_cast<size_t>(layer)) == "sliding_attention"; }

  static std::vector<std::string> default_layer_types(int num_layers);
  static Gemma2Config from_json(const nlohmann::json& j, const std::string& source);
  nlohmann::json to_json() const;  // transformers Gemma2Config config.json, loadable by transformers
  static Gemma2Config load(const std::string& path);  // a config.json file or a folder holding one
  void validate(const std::string& source) const;     // throws naming the key
  double parameter_estimate() const;                  // weights this config describes, within a small factor

  static Gemma2Config gemma2_2b();  // Efficient-Large-Model/gemma-2-2b-it as SANA ships it
};

// Gemma RMSNorm: in fp32, x * rsqrt(mean(x^2) + eps) * (1 + w), cast back to the input dtype at the end
// (unlike diffusers' RMSNorm, which casts before multiplying by w). Stored weights are offsets from 1.
struct GemmaRMSNormImpl : torch::nn::Module {
  GemmaRMSNormImpl(int64_t dim, double eps, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  double eps;
  torch::Tensor weight;
};
TORCH_MODULE(GemmaRMSNorm);

// y = x W^T (+ b). Like torch::nn::Linear but created uninitialised in the requested dtype/device: a 2.6B-parameter
// encoder is built straight in bf16 on the GPU, without a random fp32 init that the checkpoint overwrites anyway.
struct GemmaLinearImpl : torch::nn::Module {
  GemmaLinearImpl(int64_t in, int64_t out, bool bias, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x) { return torch::linear(x, weight, bias); }
  torch::Tensor weight, bias;  // bias undefined when absent
};
TORCH_MODULE(GemmaLinear);

// transformers Gemma2TextScaledWordEmbedding: weight[ids] * sqrt(hidden), the factor a tensor rounded to fp32 and
// then to the weight dtype (in bf16 sqrt(2304) = 48 exactly).
struct Gemma2ScaledEmbeddingImpl : torch::nn::Module {
  Gemma2ScaledEmbeddingImpl(int64_t vocab, int64_t dim, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& ids);
  torch::Tensor weight;
};
TORCH_MODULE(Gemma2ScaledEmbedding);

// Keys and values of one attention layer (after RoPE, before the GQA repeat): (B, kv_heads, L, head_dim).
struct Gemma2KV {
  torch::Tensor k, v;
};

struct Gemma2AttentionImpl : torch::nn::Module {
  Gemma2AttentionImpl(const Gemma2Config& c, const torch::TensorOptions& options);
  // x: (B, L, hidden); cos/sin: (1, L, head_dim) in x's dtype; bias: (B, 1, L, P + L) additive, x's dtype, where
  // P is the length of `past` (keys and values of the P positions before x's, batch 1 or B; none: P = 0).
  // `present`, when given, receives x's own keys and values.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& bias, const Gemma2KV* past = nullptr, Gemma2KV* present = nullptr);
  int64_t heads, kv_heads, head_dim;
  double scaling;
  std::optional<double> softcap;
  GemmaLinear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
};
TORCH_MODULE(Gemma2Attention);

// GeGLU: down_proj(gelu_tanh(gate_proj(x)) * up_proj(x)).
struct Gemma2MLPImpl : torch::nn::Module {
  Gemma2MLPImpl(const Gemma2Config& c, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x);
  GemmaLinear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Gemma2MLP);

struct Gemma2DecoderLayerImpl : torch::nn::Module {
  Gemma2DecoderLayerImpl(const Gemma2Config& c, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& bias, const Gemma2KV* past = nullptr, Gemma2KV* present = nullptr);
  Gemma2Attention self_attn{nullptr};
  Gemma2MLP mlp{nullptr};
  GemmaRMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  GemmaRMSNorm pre_feedforward_layernorm{nullptr}, post_feedforward_layernorm{nullptr};
};
TORCH_MODULE(Gemma2DecoderLayer);

// A run of leading tokens encoded once (batch 1): every layer's keys and values and the final hidden states. A
// causal encoder's states at those positions do not depend on what follows, so any input that starts with the same
// tokens can continue from here (Gemma2ModelImpl::forward_from) instead of recomputing them. SANA puts the same long
// instruction before every prompt: with it cached, a new prompt costs its own few tokens.
struct Gemma2PrefixCache {
  std::vector<int64_t> ids;
  std::vector<Gemma2KV> kv;  // per layer, (1, kv_heads, P, head_dim)
  torch::Tensor hidden;      // (1, P, hidden) after the final norm
  int64_t length() const { return static_cast<int64_t>(ids.size()); }
};

struct Gemma2ModelImpl : torch::nn::Module {
  // Parameters are created UNINITIALISED with `options` (dtype/device); bind a checkpoint before use
  // (load_text_encoder / load_text_encoder_weights). They do not require grad: SANA never trains the encoder.
  explicit Gemma2ModelImpl(const Gemma2Config& config, const torch::TensorOptions& options = {});

  // input_ids: (B, L) integer token ids; attention_mask: (B, L), nonzero = real token (undefined = all real).
  // Returns last_hidden_state (B, L, hidden) after the final norm, in the parameters' dtype.
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {});

  // Inference only. encode_prefix: the cache of `ids` (all real tokens). forward_from: forward() of inputs whose
  // first `use` tokens (<= prefix.length()) are prefix.ids' first `use`, given only the rest: input_ids /
  // attention_mask (B, N) at positions use..use+N-1; returns those positions' last hidden states (B, N, hidden).
  // The same numbers as forward() on the whole input, up to summation order.
  Gemma2PrefixCache encode_prefix(const std::vector<int64_t>& ids);
  torch::Tensor forward_from(const Gemma2PrefixCache& prefix, int64_t use, const torch::Tensor& input_ids,
                             const torch::Tensor& attention_mask = {});

  // The additive attention bias (B, 1, L, L) the reference builds for a full or a sliding layer.
  torch::Tensor attention_bias(const torch::Tensor& attention_mask, int64_t batch, int64_t length, bool sliding,
                               torch::Dtype dtype, const torch::Device& device) const;
  // The same for the last `queries` of `keys` positions: (B, 1, queries, keys); attention_mask (B, keys) or
  // undefined (all real).
  torch::Tensor attention_bias(const torch::Tensor& attention_mask, int64_t batch, int64_t queries, int64_t keys,
                               bool sliding, torch::Dtype dtype, const torch::Device& device) const;
  // RoPE tables (1, L, head_dim) for positions first..first+L-1, computed in fp32 and cast to dtype.
  std::pair<torch::Tensor, torch::Tensor> rope(int64_t length, torch::Dtype dtype, const torch::Device& device,
                                               int64_t first = 0) const;

  Gemma2Config config;
  Gemma2ScaledEmbedding embed_tokens{nullptr};
  torch::nn::ModuleList layers;
  std::vector<Gemma2DecoderLayer> blocks;  // typed views of layers
  GemmaRMSNorm norm{nullptr};
  torch::Tensor inv_freq;  // (head_dim / 2) fp32 on the CPU; not a checkpoint tensor

 private:
  void check_inputs(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) const;
  void check_ids(const torch::Tensor& input_ids) const;
  // The layers on input_ids at positions use..use+L-1 after `use` tokens of `past` (none: 0..L-1); `present`
  // receives every layer's keys and values.
  torch::Tensor run(const torch::Tensor& input_ids, const torch::Tensor& attention_mask, const Gemma2PrefixCache* past,
                    int64_t use, std::vector<Gemma2KV>* present);
};
TORCH_MODULE(Gemma2Model);

// Binds a Gemma2Model / Gemma2ForCausalLM state dict: keys with or without the `model.` prefix (detected from
// `embed_tokens.weight`); with the prefix, keys outside it (`lm_head.weight`) are ignored.
LoadReport load_text_encoder_weights(Gemma2ModelImpl& model, const safetensors::Archive& archive,
                                     const LoadOptions& options = {});

// Loads `dir/config.json` and `dir/model*.safetensors` (single file or sharded with model.safetensors.index.json);
// dtype/device from `options` (options.prefix is ignored: the prefix is detected). Errors name the folder and key.
Gemma2Model load_text_encoder(const std::string& dir, const LoadOptions& options = {});

// SANA's prompt selection (diffusers SanaSprintPipeline.encode_prompt): keep position 0 (BOS) and the last
// max_sequence_length - 1 positions, i.e. select_index = [0] + range(-max_sequence_length + 1, 0).
// hidden: (B, L_all, H), mask: (B, L_all) -> {(B, max_sequence_length, H), (B, max_sequence_length)}.
// Needs L_all >= max_sequence_length - 1 (as in Python, where shorter input raises IndexError); with
// L_all == max_sequence_length - 1 position 0 appears twice, exactly as in diffusers.
std::pair<torch::Tensor, torch::Tensor> select_sana_tokens(const torch::Tensor& hidden, const torch::Tensor& mask,
                                                           int64_t max_sequence_length = 300);

// Tokenised length (padding "max_length") SANA uses for chi_text + prompt: n_chi + max_sequence_length - 2, where
// n_chi is the token count of the complex human instruction alone including BOS; without an instruction
// (n_chi == 0) it is max_sequence_length.
int64_t sana_padded_length(int64_t num_chi_tokens, int64_t max_sequence_length = 300);

}  // namespace sprint
