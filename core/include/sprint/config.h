// diffusers `config.json` -> typed, validated config structs.
//
// Unknown keys are tolerated and reported at debug level. Missing required keys and impossible values are
// rejected with sprint::Error naming the file and the key.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sprint {

// Reads typed values out of one JSON object and remembers which keys were used, so the rest can be reported.
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, std::string source);  // throws if j is not an object

  template <typename T> T required(const std::string& key);
  template <typename T> T optional(const std::string& key, const T& fallback);
  // Present and not null -> value; absent or null -> nullopt.
  template <typename T> std::optional<T> nullable(const std::string& key);
  bool has(const std::string& key) const;

  // Throws "<source>: '<key>' = <value>: <why>" .
  [[noreturn]] void reject(const std::string& key, const std::string& why) const;
  // Logs (debug) every key that was never read, except those listed.
  void report_unused(const std::set<std::string>& ignore = {}) const;
  // Throws "<source>: unknown key '<key>'" for the first key that was never read, except those listed and the
  // bookkeeping keys starting with '_' (_class_name, _diffusers_version): every key is honoured or refused.
  void refuse_unknown(const std::set<std::string>& ignore = {}) const;
  const std::string& source() const { return source_; }
  const nlohmann::json& raw() const { return j_; }

 private:
  template <typename T> T convert(const std::string& key, const nlohmann::json& v) const;
  const nlohmann::json& j_;
  std::string source_;
  mutable std::set<std::string> used_;
};

// The bytes of a small file a person or a program hands us (configs, replays, state): it must be a regular file
// (following symbolic links; not a FIFO, device or folder, which could block or never end) of at most `max_bytes`.
// Throws sprint::Error naming the file otherwise.
constexpr size_t kMaxConfigFileBytes = size_t{64} << 20;
std::string read_small_file(const std::string& path, size_t max_bytes = kMaxConfigFileBytes);

// Parses a JSON file (read_small_file's checks); throws naming the file on I/O or syntax errors (with the byte
// position).
nlohmann::json read_json_file(const std::string& path);

// SanaTransformer2DModel (diffusers: models/transformers/sana_transformer.py). Defaults are the class defaults.
struct TransformerConfig {
  int in_channels = 32;
  int out_channels = 32;
  int num_attention_heads = 70;
  int attention_head_dim = 32;
  int num_layers = 20;
  int num_cross_attention_heads = 20;
  int cross_attention_head_dim = 112;
  int cross_attention_dim = 2240;
  int caption_channels = 2304;
  double mlp_ratio = 2.5;
  bool attention_bias = false;
  int sample_size = 32;
  int patch_size = 1;
  bool norm_elementwise_affine = false;
  double norm_eps = 1e-6;
  std::optional<double> interpolation_scale;  // null -> no positional embedding (all SANA-Sprint releases)
  bool guidance_embeds = false;
  double guidance_embeds_scale = 0.1;
  std::string qk_norm;                        // "" or "rms_norm_across_heads"
  double timestep_scale = 1.0;

  int inner_dim() const { return num_attention_heads * attention_head_dim; }                 // D
  int cross_inner_dim() const { return num_cross_attention_heads * cross_attention_head_dim; }  // Dc
  int ff_hidden() const { return static_cast<int>(mlp_ratio * inner_dim()); }                // F = int(mlp_ratio * D)

  static TransformerConfig from_json(const nlohmann::json& j, const std::string& source);
  static TransformerConfig load(const std::string& path);  // a config.json file or a folder holding one
  nlohmann::json to_json() const;                          // diffusers layout, loadable by diffusers
  void validate(const std::string& source) const;          // throws on impossible values
  double parameter_estimate() const;                       // weights this config describes, within a small factor

  static TransformerConfig sprint_1600m();  // Sana_Sprint_1.6B_1024px
  static TransformerConfig sprint_600m();   // Sana_Sprint_0.6B_1024px
};

}  // namespace sprint
