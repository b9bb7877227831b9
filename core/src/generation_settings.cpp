// The generation settings and their JSON and PNG text forms. See include/sprint/generation_settings.h.
#include "sprint/generation_settings.h"

#include <nlohmann/json.hpp>

#include <climits>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <limits>

#include "sprint/error.h"
#include "sprint/strict_parse.h"

namespace fs = std::filesystem;

namespace sprint {

namespace {
const std::string kPrefix = "sprint:";
constexpr size_t kMaxEmbeddedConditionBytes = size_t{512} << 10;

// Each member type as text (PNG chunks, flags), and back. Numbers are read strictly, within the field's range.
std::string as_text(const std::string& v) { return v; }
std::string as_text(const ImageSize& v) { return str(v.width, "x", v.height); }
template <typename T>
std::string as_text(const T& v) {
  return str(v);  // ostream's default formatting: integers in full, doubles with 6 significant digits
}

bool has_range(const SettingField& f) { return f.max > f.min; }

void check_length(const std::string& text, const SettingField& f, const std::string& what) {
  SPRINT_CHECK(!has_range(f) || text.size() <= static_cast<size_t>(f.max), what, ": ", text.size(),
               " bytes, more than the ", static_cast<size_t>(f.max), " this setting may have");
}

void from_text(const std::string& text, std::string& out, const SettingField& f, const std::string& what, bool) {
  check_length(text, f, what);
  out = text;
}
void from_text(const std::string& text, ImageSize& out, const SettingField&, const std::string& what, bool) {
  out = parse_size(text, what);
}
void from_text(const std::string& text, uint64_t& out, const SettingField&, const std::string& what, bool random) {
  out = parse_seed(text, what, random);
}
void from_text(const std::string& text, int& out, const SettingField& f, const std::string& what, bool) {
  const int64_t lo = has_range(f) ? static_cast<int64_t>(f.min) : std::numeric_limits<int>::min();
  const int64_t hi = has_range(f) ? static_cast<int64_t>(f.max) : std::numeric_limits<int>::max();
  out = static_cast<int>(parse_integer(text, what, lo, hi));
}
void from_text(const std::string& text, double& out, const SettingField& f, const std::string& what, bool) {
  out = parse_decimal(text, what, has_range(f) ? f.min : -std::numeric_limits<double>::max(),
                      has_range(f) ? f.max : std::numeric_limits<double>::max());
}

// Each member type in JSON: sizes as "WxH" strings, seeds as whole numbers, the rest as JSON's own types, with the
// same ranges as text.
template <typename T>
nlohmann::json as_json(const T& v) {
  return v;
}
nlohmann::json as_json(const ImageSize& v) { return v.empty() ? std::string() : as_text(v); }  // "": native size

void from_json_value(const nlohmann::json& j, std::string& out, const SettingField& f, const std::string& what) {
  SPRINT_CHECK(j.is_string(), what, ": expected a string, not ", j.type_name());
  check_length(j.get<std::string>(), f, what);
  out = j.get<std::string>();
}
void from_json_value(const nlohmann::json& j, ImageSize& out, const SettingField&, const std::string& what) {
  SPRINT_CHECK(j.is_string(), what, ": expected a size string like \"64x64\", not ", j.type_name());
  out = j.get<std::string>().empty() ? ImageSize{} : parse_size(j.get<std::string>(), what);
}
void from_json_value(const nlohmann::json& j, uint64_t& out, const SettingField&, const std::string& what) {
  SPRINT_CHECK(j.is_number_unsigned() && j.get<uint64_t>() <= kMaxSeed, what, ": expected a seed from 0 to ", kMaxSeed,
               ", not ", j.dump());
  out = j.get<uint64_t>();
}
void from_json_value(const nlohmann::json& j, int& out, const SettingField& f, const std::string& what) {
  // A whole JSON number (3, not 3.0 or 0.5), within the field's range.
  SPRINT_CHECK(j.is_number_integer(), what, ": expected a whole number, not ", j.dump());
  out = static_cast<int>(parse_integer(j.dump(), what, has_range(f) ? static_cast<int64_t>(f.min) : INT32_MIN,
                                       has_range(f) ? static_cast<int64_t>(f.max) : INT32_MAX));
}
void from_json_value(const nlohmann::json& j, double& out, const SettingField& f, const std::string& what) {
  SPRINT_CHECK(j.is_number(), what, ": expected a number, not ", j.dump());
  const double v = j.get<double>();
  const bool in_range = !has_range(f) || (v >= f.min && v <= f.max);
  SPRINT_CHECK(std::isfinite(v) && in_range, what, ": ", j.dump(), " is out of range (", f.min, " to ", f.max, ")");
  out = v;
}
// Base64 (RFC 4648, with padding) for the embedded condition picture: a few lines, no library needed.
constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  for (size_t i = 0; i < in.size(); i += 3) {
    const uint32_t n = (uint32_t(uint8_t(in[i])) << 16) | (i + 1 < in.size() ? uint32_t(uint8_t(in[i + 1])) << 8 : 0) |
                       (i + 2 < in.size() ? uint32_t(uint8_t(in[i + 2])) : 0);
    out += kBase64[(n >> 18) & 63];
    out += kBase64[(n >> 12) & 63];
    out += i + 1 < in.size() ? kBase64[(n >> 6) & 63] : '=';
    out += i + 2 < in.size() ? kBase64[n & 63] : '=';
  }
  return out;
}

std::string base64_decode(const std::string& in, const std::string& what) {
  SPRINT_CHECK(in.size() % 4 == 0, what, ": not base64 (length ", in.size(), " is not a multiple of 4)");
  auto value = [&](char c) -> uint32_t {
    const char* p = std::strchr(kBase64, c);
    SPRINT_CHECK(c != '\0' && p != nullptr, what, ": not base64 (character code ", int(uint8_t(c)), ")");
    return static_cast<uint32_t>(p - kBase64);
  };
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    const int pad = last ? (in[i + 3] == '=') + (in[i + 2] == '=') : 0;
    SPRINT_CHECK(!(pad == 1 && in[i + 2] == '='), what, ": not base64 (bad padding)");
    const uint32_t n = (value(in[i]) << 18) | (value(in[i + 1]) << 12) | (pad >= 2 ? 0 : value(in[i + 2]) << 6) |
                       (pad >= 1 ? 0 : value(in[i + 3]));
    out += static_cast<char>((n >> 16) & 255);
    if (pad < 2) out += static_cast<char>((n >> 8) & 255);
    if (pad < 1) out += static_cast<char>(n & 255);
  }
  return out;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

}  // namespace

std::string folder_name(const std::string& path) {
  fs::path p = fs::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

ImageSize parse_size(const std::string& s, const std::string& what) {
  const auto x = s.find_first_of("xX");
  auto side = [&](const std::string& part) {
    const bool digits = !part.empty() && part.size() <= 6 && part.find_first_not_of("0123456789") == std::string::npos;
    const int v = digits ? std::stoi(part) : 0;
    if (v < 1 || v > kMaxSizeSide)
      throw Error(str(what, " '", s.substr(0, 64), "': expected WIDTHxHEIGHT with sides from 1 to ", kMaxSizeSide,
                      ", e.g. 1024x1024"));
    return v;
  };
  if (x == std::string::npos) side("");
  return {side(s.substr(0, x)), side(s.substr(x + 1))};
}

bool is_setting(const std::string& key) {
  bool found = false;
  for_each_setting([&](const SettingField& f, auto) { found |= key == f.key; });
  return found;
}

nlohmann::json settings_to_json(const GenerationSettings& s) {
  nlohmann::json j = nlohmann::json::object();
  for_each_setting([&](const SettingField& f, auto member) { j[f.key] = as_json(s.*member); });
  return j;
}

void update_settings_from_json(GenerationSettings& s, const nlohmann::json& j, const std::string& source) {
  SPRINT_CHECK(j.is_object(), source, ": settings must be a JSON object");
  for (const auto& [key, value] : j.items())
    SPRINT_CHECK(is_setting(key), source, ": unknown setting '", key, "'");
  for_each_setting([&](const SettingField& f, auto member) {
    if (!j.contains(f.key)) return;
    from_json_value(j.at(f.key), s.*member, f, str(source, ": setting '", f.key, "'"));
  });
}

void set_setting_from_text(GenerationSettings& s, const std::string& key, const std::string& text,
                           const std::string& what, bool allow_random_seed) {
  bool found = false;
  for_each_setting([&](const SettingField& f, auto member) {
    if (key != f.key) return;
    found = true;
    from_text(text, s.*member, f, what, allow_random_seed);
  });
  SPRINT_CHECK(found, what, ": unknown setting '", key, "'");
}

std::string setting_text(const GenerationSettings& s, const std::string& key) {
  std::string text;
  for_each_setting([&](const SettingField& f, auto member) {
    if (key == f.key) text = as_text(s.*member);
  });
  return text;
}

bool png_has_setting(const std::map<std::string, std::string>& text, const std::string& key) {
  return text.count(kPrefix + key) > 0;
}

std::map<std::string, std::string> to_png_text(const SettingsRecord& record) {
  // Names, never folders of this machine (a shared picture must not leak them).
  SettingsRecord r = record;
  r.settings.model = folder_name(r.settings.model);
  std::map<std::string, std::string> m;
  for_each_setting([&](const SettingField& f, auto member) {
    const auto& v = r.settings.*member;
    if (f.condition_only && !r.controlled) return;
    if (f.omit_empty && as_text(v).empty()) return;
    m[kPrefix + f.key] = as_text(v);
  });
  m[kPrefix + "model"] = r.settings.model;
  if (!r.software.empty()) m["Software"] = r.software;
  if (!r.sketch.empty()) m[kPrefix + "sketch"] = fs::path(r.sketch).filename().string();
  if (!r.image.empty()) m[kPrefix + "image"] = fs::path(r.image).filename().string();
  // Embedded when small enough for other tools' chunk limits (PIL: 1 MB); a condition map is a few KB to ~200 KB.
  if (!r.condition_png.empty() && r.condition_png.size() <= kMaxEmbeddedConditionBytes)
    m[kPrefix + "condition"] = base64_encode(r.condition_png);
  m["parameters"] = to_a1111_parameters(r);
  return m;
}

std::string to_a1111_parameters(const SettingsRecord& r) {
  const auto& s = r.settings;
  std::string line = str("Steps: ", s.steps, ", Sampler: SCM, CFG scale: ", as_text(s.guidance), ", Seed: ", s.seed);
  if (!s.size.empty()) line += str(", Size: ", s.size.width, "x", s.size.height);
  if (!s.model.empty()) line += str(", Model: ", folder_name(s.model));
  if (r.controlled) line += str(", Control scale: ", as_text(s.control_scale));
  // The settings line is the last line: a prompt's own line breaks stay in the prompt.
  return s.prompt + "\n" + line;
}

SettingsRecord settings_from_a1111_parameters(const std::string& text, const std::string& source) {
  const auto nl = text.rfind('\n');
  const std::string line = trim(nl == std::string::npos ? text : text.substr(nl + 1));
  SPRINT_CHECK(line.rfind("Steps: ", 0) == 0, source, ": its 'parameters' chunk has no settings line (\"Steps: ...\")");
  SettingsRecord r;
  std::string prompt = nl == std::string::npos ? "" : text.substr(0, nl);
  // A1111 puts "Negative prompt: ..." on its own line before the settings; we have no negative prompt.
  if (const auto neg = prompt.find("\nNegative prompt:"); neg != std::string::npos) prompt.erase(neg);
  if (prompt.rfind("Negative prompt:", 0) == 0) prompt.clear();
  set_setting_from_text(r.settings, "prompt", prompt, str(source, ": parameters prompt"));  // length-checked
  // "Key: value, Key: value", values without commas except quoted ones (which we skip).
  size_t at = 0;
  while (at < line.size()) {
    const auto colon = line.find(": ", at);
    if (colon == std::string::npos) break;
    const std::string key = trim(line.substr(at, colon - at));
    size_t end = colon + 2;
    if (end < line.size() && line[end] == '"') {
      end = line.find('"', end + 1);
      end = end == std::string::npos ? line.size() : end + 1;
    }
    end = line.find(", ", end);
    if (end == std::string::npos) end = line.size();
    const std::string value = trim(line.substr(colon + 2, end - colon - 2));
    at = end + 2;
    const std::string what = str(source, ": parameters '", key, "'");
    try {
      if (key == "Steps") set_setting_from_text(r.settings, "steps", value, what);
      else if (key == "CFG scale") set_setting_from_text(r.settings, "guidance", value, what);
      else if (key == "Seed") set_setting_from_text(r.settings, "seed", value, what);
      else if (key == "Size") set_setting_from_text(r.settings, "size", value, what);
      else if (key == "Model") set_setting_from_text(r.settings, "model_path", value, what);
      else if (key == "Control scale") {
        set_setting_from_text(r.settings, "control_scale", value, what);
        r.controlled = true;
      }
    } catch (const Error&) {
      // Another tool's values may be out of this model's ranges (Steps: 30): keep the defaults for those.
      if (key == "Seed" || key == "Size") throw;
    }
  }
  return r;
}

SettingsRecord settings_from_png_text(const std::map<std::string, std::string>& text, const std::string& source) {
  if (!png_has_setting(text, "prompt") && !png_has_setting(text, "seed") && text.count("parameters"))
    return settings_from_a1111_parameters(text.at("parameters"), source);
  SPRINT_CHECK(png_has_setting(text, "prompt") || png_has_setting(text, "seed"), source,
               ": this PNG holds no Sprint Studio settings (and no 'parameters' chunk)");
  SettingsRecord r;
  for_each_setting([&](const SettingField& f, auto member) {
    auto it = text.find(kPrefix + f.key);
    if (it == text.end()) return;
    from_text(it->second, r.settings.*member, f, str(source, ": ", kPrefix, f.key), /*random=*/false);
    r.controlled |= f.condition_only;
  });
  auto get = [&](const char* key) {
    auto it = text.find(key);
    return it == text.end() ? std::string() : it->second;
  };
  // Older pictures recorded full paths; only the name is kept.
  r.sketch = fs::path(get("sprint:sketch")).filename().string();
  r.image = fs::path(get("sprint:image")).filename().string();
  if (const auto cond = get("sprint:condition"); !cond.empty())
    r.condition_png = base64_decode(cond, str(source, ": sprint:condition"));
  r.software = get("Software");
  return r;
}

}  // namespace sprint
