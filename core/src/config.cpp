#include "sprint/config.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <fstream>
#include <sstream>

#include "sprint/error.h"
#include "sprint/json_depth.h"
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
struct is_std_vector : std::false_type {};
template <typename T>
struct is_std_vector<std::vector<T>> : std::true_type {};

template <typename T>
T ConfigReader::convert(const std::string& key, const json& v) const {
  used_.insert(key);
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) reject(key, "expected true or false");
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    // Accept 3.0 for 3 (some hand-written configs), reject 3.5, and never wrap: 4294967302 is not 6.
    constexpr auto lo = std::numeric_limits<T>::min();
    constexpr auto hi = std::numeric_limits<T>::max();
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > static_cast<uint64_t>(hi)) reject(key, str("larger than ", hi));
      return static_cast<T>(v.get<uint64_t>());
    }
    if (v.is_number_integer()) {
      const int64_t i = v.get<int64_t>();
      if (std::is_unsigned_v<T> && i < 0) reject(key, "must not be negative");
      if (!std::is_unsigned_v<T> && (i < static_cast<int64_t>(lo) || i > static_cast<int64_t>(hi)))
        reject(key, str("out of range (", lo, " to ", hi, ")"));
      return static_cast<T>(i);
    }
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) {
      const double d = v.get<double>();
      // hi + 1 = 2^digits exactly in double; hi itself may round up to it (2^63 - 1 does).
      const double past_hi = std::ldexp(1.0, std::numeric_limits<T>::digits);
      if (!(d >= static_cast<double>(lo) && d < past_hi)) reject(key, str("out of range (", lo, " to ", hi, ")"));
      return static_cast<T>(d);
    }
    reject(key, "expected an integer");
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) reject(key, "expected a number");
    if (!std::isfinite(v.get<double>())) reject(key, "must be finite");
    return v.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) reject(key, "expected a string");
    return v.get<std::string>();
  } else if constexpr (is_std_vector<T>::value) {
    // Element by element, with the same checks (a list entry of 1e9 or 4294967302 is refused too).
    if (!v.is_array()) reject(key, "expected a list");
    if (v.size() > 4096) reject(key, "a list of more than 4096 entries");
    T out;
    for (const auto& e : v) out.push_back(convert<typename T::value_type>(key, e));
    return out;
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

void ConfigReader::refuse_unknown(const std::set<std::string>& ignore) const {
  for (auto it = j_.begin(); it != j_.end(); ++it) {
    const std::string& k = it.key();
    if (used_.count(k) || ignore.count(k) || (!k.empty() && k[0] == '_')) continue;
    throw Error(str(source_, ": unknown key '", k, "' (no setting of this file has that name; remove it or fix its spelling)"));
  }
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

std::string read_small_file(const std::string& path, size_t max_bytes) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  SPRINT_CHECK(fs::exists(st), "cannot open '", path, "': ", std::strerror(ENOENT));
  SPRINT_CHECK(fs::is_regular_file(st), "cannot open '", path, "': not a regular file (a ",
               fs::is_directory(st) ? "folder" : fs::is_fifo(st) ? "FIFO" : fs::is_character_file(st) || fs::is_block_file(st) ? "device" : "special file",
               ")");
  const auto size = fs::file_size(path, ec);
  SPRINT_CHECK(!ec, "cannot read '", path, "': ", ec.message());
  SPRINT_CHECK(size <= max_bytes, "'", path, "' is ", size, " bytes, more than the ", max_bytes,
               " this kind of file may have");
  std::ifstream in(path, std::ios::binary);
  SPRINT_CHECK(in.good(), "cannot open '", path, "'");
  std::string bytes(static_cast<size_t>(size), '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(size));
  SPRINT_CHECK(in.gcount() == static_cast<std::streamsize>(size), "cannot read '", path, "' (it changed while read)");
  return bytes;
}

json read_json_file(const std::string& path) {
  const std::string text = read_small_file(path);
  try {
    constexpr int kMaxDepth = 64;  // far deeper than any config needs
    return json::parse(text, json_depth_limit(kMaxDepth, str("'", path, "' nests JSON values more than ", kMaxDepth, " deep")));
  } catch (const json::parse_error& e) {
    throw Error(str("'", path, "' is not valid JSON (byte ", e.byte, "): ", e.what()));
  } catch (const json::exception& e) {  // e.g. a number past double's range, -1e400
    throw Error(str("'", path, "' is not valid JSON: ", e.what()));
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
  r.refuse_unknown();
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
  // Upper bounds far above any released model (SANA 4.8B: 2240 wide, 60 layers, 32x32 latents at 1024 px) but
  // low enough that no product of them overflows an int; whether the model fits memory is check_model_size's job.
  auto in_range = [&](const char* key, int v, int max) {
    if (v <= 0 || v > max) bad(key, v, str("must be > 0 and at most ", max));
  };
  in_range("in_channels", in_channels, 4096);
  in_range("out_channels", out_channels, 4096);
  in_range("num_attention_heads", num_attention_heads, 1024);
  in_range("attention_head_dim", attention_head_dim, 1024);
  in_range("num_cross_attention_heads", num_cross_attention_heads, 1024);
  in_range("cross_attention_head_dim", cross_attention_head_dim, 1024);
  in_range("caption_channels", caption_channels, 65536);
  in_range("patch_size", patch_size, 64);
  in_range("sample_size", sample_size, 256);  // SANA 4K: 128
  in_range("num_layers", num_layers, 1024);
  if (!(mlp_ratio > 0) || mlp_ratio > 64 || ff_hidden() < 1)
    bad("mlp_ratio", mlp_ratio, "must be in (0, 64] and give a feed-forward width >= 1");
  if (norm_elementwise_affine)
    bad("norm_elementwise_affine", "true",
        "only false is supported (every SANA and SANA-Sprint release; the blocks' norms carry no weights)");
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
  if (!std::isfinite(guidance_embeds_scale) || std::abs(guidance_embeds_scale) > 1000)
    bad("guidance_embeds_scale", guidance_embeds_scale, "must be a number from -1000 to 1000 (SANA-Sprint: 0.1)");
  if (!std::isfinite(timestep_scale) || !(timestep_scale > 0) || timestep_scale > 1e4)
    bad("timestep_scale", timestep_scale, "must be in (0, 10000] (SANA-Sprint: 1.0)");
}

double TransformerConfig::parameter_estimate() const {
  const double D = inner_dim(), Dc = cross_inner_dim(), F = ff_hidden(), p2 = double(patch_size) * patch_size;
  // Per block: self-attention q, k, v, out (4 D^2); cross-attention q and out (D Dc each) and k, v from the
  // caption (cross_attention_dim x Dc each); the GLU-MBConv feed-forward (D x 2F in, 2F x 9 depthwise, F x D out);
  // the modulation table. Outside: patch embedding, caption projection, timestep (and guidance) embedding, output.
  const double block = 4 * D * D + 2 * D * Dc + 2 * double(cross_attention_dim) * Dc + 3 * D * F + 18 * F + 6 * D;
  const double outside = in_channels * p2 * D + double(caption_channels) * D + D * D + 256 * D + 7 * D * D +
                         (guidance_embeds ? 256 * D + D * D : 0) + D * p2 * out_channels;
  return num_layers * block + outside;
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
