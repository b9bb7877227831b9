#include "sprint/config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sprint/error.h"
#include "sprint/log.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sprint {

// ---- ConfigReader ----------------------------------------------------------------------------------------------

ConfigReader::ConfigReader(const json& j, std::string source) : j_(j), source_(std::move(source)) {
  SPRINT_CHECK(j_.is_object(), source_, ": expected a JSON object, got ", j_.type_name());
}

bool ConfigReader::has(const std::string& key) const { return j_.contains(key); }

void ConfigReader::reject(const std::string& key, const std::string& why) const {
  std::string value = j_.contains(key) ? j_.at(key).dump() : "<absent>";
  throw Error(str(source_, ": '", key, "' = ", value, ": ", why));
}

template <typename T>
T ConfigReader::convert(const std::string& key, const json& v) const {
  used_.insert(key);
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) reject(key, "expected true or false");
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    // Accept 3.0 for 3 (some hand-written configs), reject 3.5.
    if (v.is_number_integer()) return v.get<T>();
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) return static_cast<T>(v.get<double>());
    reject(key, "expected an integer");
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) reject(key, "expected a number");
    return v.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) reject(key, "expected a string");
    return v.get<std::string>();
  } else {
    try {
      return v.get<T>();
    } catch (const std::exception& e) {
      reject(key, e.what());
    }
  }
}

template <typename T>
T ConfigReader::required(const std::string& key) {
  if (!j_.contains(key) || j_.at(key).is_null()) {
    used_.insert(key);
    throw Error(str(source_, ": required key '", key, "' is missing"));
  }
  return convert<T>(key, j_.at(key));
}

template <typename T>
T ConfigReader::optional(const std::string& key, const T& fallback) {
  used_.insert(key);
  if (!j_.contains(key) || j_.at(key).is_null()) return fallback;
  return convert<T>(key, j_.at(key));
}

template <typename T>
std::optional<T> ConfigReader::nullable(const std::string& key) {
  used_.insert(key);
  if (!j_.contains(key) || j_.at(key).is_null()) return std::nullopt;
  return convert<T>(key, j_.at(key));
}

void ConfigReader::report_unused(const std::set<std::string>& ignore) const {
  for (auto it = j_.begin(); it != j_.end(); ++it) {
    const std::string& k = it.key();
    if (used_.count(k) || ignore.count(k) || (!k.empty() && k[0] == '_')) continue;
    log_debug(source_, ": ignoring unknown key '", k, "'");
  }
}

template int ConfigReader::required<int>(const std::string&);
template int64_t ConfigReader::required<int64_t>(const std::string&);
template double ConfigReader::required<double>(const std::string&);
template bool ConfigReader::required<bool>(const std::string&);
template std::string ConfigReader::required<std::string>(const std::string&);
template std::vector<int> ConfigReader::required<std::vector<int>>(const std::string&);
template std::vector<std::string> ConfigReader::required<std::vector<std::string>>(const std::string&);
template int ConfigReader::optional<int>(const std::string&, const int&);
template int64_t ConfigReader::optional<int64_t>(const std::string&, const int64_t&);
template double ConfigReader::optional<double>(const std::string&, const double&);
template bool ConfigReader::optional<bool>(const std::string&, const bool&);
template std::string ConfigReader::optional<std::string>(const std::string&, const std::string&);
template std::vector<int> ConfigReader::optional<std::vector<int>>(const std::string&, const std::vector<int>&);
template std::vector<std::string> ConfigReader::optional<std::vector<std::string>>(const std::string&, const std::vector<std::string>&);
template std::vector<std::vector<int>> ConfigReader::optional<std::vector<std::vector<int>>>(const std::string&, const std::vector<std::vector<int>>&);
template std::optional<double> ConfigReader::nullable<double>(const std::string&);
template std::optional<int> ConfigReader::nullable<int>(const std::string&);
template std::optional<std::string> ConfigReader::nullable<std::string>(const std::string&);

json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SPRINT_CHECK(in.good(), "cannot open '", path, "'");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::parse_error& e) {
    throw Error(str("'", path, "' is not valid JSON (byte ", e.byte, "): ", e.what()));
  }
}

// ---- TransformerConfig -----------------------------------------------------------------------------------------

TransformerConfig TransformerConfig::from_json(const json& j, const std::string& source) {
  ConfigReader r(j, source);
  TransformerConfig c;
  // Architecture-defining sizes are required: a wrong default would load the wrong network silently.
  c.in_channels = r.required<int>("in_channels");
  c.num_attention_heads = r.required<int>("num_attention_heads");
  c.attention_head_dim = r.required<int>("attention_head_dim");
  c.num_layers = r.required<int>("num_layers");
  c.caption_channels = r.required<int>("caption_channels");
  c.out_channels = r.optional<int>("out_channels", c.in_channels);
  c.num_cross_attention_heads = r.optional<int>("num_cross_attention_heads", c.num_cross_attention_heads);
  c.cross_attention_head_dim = r.optional<int>("cross_attention_head_dim", c.cross_attention_head_dim);
  c.cross_attention_dim = r.optional<int>("cross_attention_dim", c.cross_attention_dim);
  c.mlp_ratio = r.optional<double>("mlp_ratio", c.mlp_ratio);
  c.attention_bias = r.optional<bool>("attention_bias", c.attention_bias);
  c.sample_size = r.optional<int>("sample_size", c.sample_size);
  c.patch_size = r.optional<int>("patch_size", c.patch_size);
  c.norm_elementwise_affine = r.optional<bool>("norm_elementwise_affine", c.norm_elementwise_affine);
  c.norm_eps = r.optional<double>("norm_eps", c.norm_eps);
  c.interpolation_scale = r.nullable<double>("interpolation_scale");
  c.guidance_embeds = r.optional<bool>("guidance_embeds", c.guidance_embeds);
  c.guidance_embeds_scale = r.optional<double>("guidance_embeds_scale", c.guidance_embeds_scale);
  c.qk_norm = r.nullable<std::string>("qk_norm").value_or("");
  c.timestep_scale = r.optional<double>("timestep_scale", c.timestep_scale);
  double dropout = r.optional<double>("dropout", 0.0);
  if (dropout != 0.0) log_debug(source, ": dropout ", dropout, " is ignored at inference");
  r.report_unused();
  c.validate(source);
  return c;
}

TransformerConfig TransformerConfig::load(const std::string& path) {
  std::string file = fs::is_directory(path) ? (fs::path(path) / "config.json").string() : path;
  return from_json(read_json_file(file), file);
}

void TransformerConfig::validate(const std::string& source) const {
  auto bad = [&](const std::string& key, auto value, const std::string& why) {
    throw Error(str(source, ": '", key, "' = ", value, ": ", why));
  };
  auto positive = [&](const char* key, int v) { if (v <= 0) bad(key, v, "must be > 0"); };
  positive("in_channels", in_channels);
  positive("out_channels", out_channels);
  positive("num_attention_heads", num_attention_heads);
  positive("attention_head_dim", attention_head_dim);
  positive("num_cross_attention_heads", num_cross_attention_heads);
  positive("cross_attention_head_dim", cross_attention_head_dim);
  positive("caption_channels", caption_channels);
  positive("patch_size", patch_size);
  positive("sample_size", sample_size);
  if (num_layers < 1) bad("num_layers", num_layers, "must be >= 1");
  if (!(mlp_ratio > 0) || ff_hidden() < 1) bad("mlp_ratio", mlp_ratio, "must give a feed-forward width >= 1");
  if (!(norm_eps > 0) || norm_eps > 1) bad("norm_eps", norm_eps, "must be in (0, 1]");
  if (cross_attention_dim != inner_dim())
    bad("cross_attention_dim", cross_attention_dim,
        str("must equal num_attention_heads * attention_head_dim = ", inner_dim(),
            " (the caption is projected to the hidden size before cross-attention)"));
  if (!qk_norm.empty() && qk_norm != "rms_norm_across_heads")
    bad("qk_norm", "\"" + qk_norm + "\"", "only null and \"rms_norm_across_heads\" are supported");
  if (interpolation_scale.has_value())
    bad("interpolation_scale", *interpolation_scale,
        "sin-cos position embeddings are not supported (every SANA-Sprint release sets it to null)");
  if (!std::isfinite(guidance_embeds_scale)) bad("guidance_embeds_scale", guidance_embeds_scale, "must be finite");
}

json TransformerConfig::to_json() const {
  json j;
  j["_class_name"] = "SanaTransformer2DModel";
  j["in_channels"] = in_channels;
  j["out_channels"] = out_channels;
  j["num_attention_heads"] = num_attention_heads;
  j["attention_head_dim"] = attention_head_dim;
  j["num_layers"] = num_layers;
  j["num_cross_attention_heads"] = num_cross_attention_heads;
  j["cross_attention_head_dim"] = cross_attention_head_dim;
  j["cross_attention_dim"] = cross_attention_dim;
  j["caption_channels"] = caption_channels;
  j["mlp_ratio"] = mlp_ratio;
  j["dropout"] = 0.0;
  j["attention_bias"] = attention_bias;
  j["sample_size"] = sample_size;
  j["patch_size"] = patch_size;
  j["norm_elementwise_affine"] = norm_elementwise_affine;
  j["norm_eps"] = norm_eps;
  j["interpolation_scale"] = interpolation_scale ? json(*interpolation_scale) : json(nullptr);
  j["guidance_embeds"] = guidance_embeds;
  j["guidance_embeds_scale"] = guidance_embeds_scale;
  j["qk_norm"] = qk_norm.empty() ? json(nullptr) : json(qk_norm);
  j["timestep_scale"] = timestep_scale;
  return j;
}

// Values from diffusers scripts/convert_sana_to_diffusers.py and the released transformer/config.json files.
TransformerConfig TransformerConfig::sprint_1600m() {
  TransformerConfig c;
  c.num_attention_heads = 70;  // D = 2240
  c.attention_head_dim = 32;
  c.num_layers = 20;
  c.num_cross_attention_heads = 20;  // Dc = 2240
  c.cross_attention_head_dim = 112;
  c.cross_attention_dim = 2240;
  c.guidance_embeds = true;
  c.qk_norm = "rms_norm_across_heads";
  return c;
}

TransformerConfig TransformerConfig::sprint_600m() {
  TransformerConfig c = sprint_1600m();
  c.num_attention_heads = 36;  // D = 1152
  c.num_layers = 28;
  c.num_cross_attention_heads = 16;  // Dc = 1152
  c.cross_attention_head_dim = 72;
  c.cross_attention_dim = 1152;
  return c;
}

}  // namespace sprint
