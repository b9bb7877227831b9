// The generation settings and their JSON and PNG text forms. See include/sprint/generation_settings.h.
#include "sprint/generation_settings.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "sprint/error.h"

namespace fs = std::filesystem;

namespace sprint {

namespace {
const std::string kPrefix = "sprint:";

// Each member type as text (PNG chunks), and back. `source` and `name` name the value in errors.
std::string as_text(const std::string& v) { return v; }
std::string as_text(const ImageSize& v) { return str(v.width, "x", v.height); }
template <typename T>
std::string as_text(const T& v) {
  return str(v);  // ostream's default formatting: integers in full, doubles with 6 significant digits
}

void from_text(const std::string& text, std::string& out, const std::string&, const std::string&) { out = text; }
void from_text(const std::string& text, ImageSize& out, const std::string& source, const std::string& name) {
  out = parse_size(text, source + ": " + name);
}
template <typename T>
void from_text(const std::string& text, T& out, const std::string& source, const std::string& name) {
  std::istringstream ss(text);
  T value{};
  ss >> value;
  SPRINT_CHECK(!ss.fail() && (ss >> std::ws).eof(), source, ": bad value '", text, "' for ", name);
  out = value;
}

// Each member type in JSON: sizes as "WxH" strings, the rest as JSON's own types.
template <typename T>
nlohmann::json as_json(const T& v) {
  return v;
}
nlohmann::json as_json(const ImageSize& v) { return as_text(v); }

template <typename T>
void from_json_value(const nlohmann::json& j, T& out, const std::string&, const std::string&) {
  out = j.get<T>();
}
void from_json_value(const nlohmann::json& j, ImageSize& out, const std::string& source, const std::string& name) {
  out = parse_size(j.get<std::string>(), source + ": " + name);
}
}  // namespace

ImageSize parse_size(const std::string& s, const std::string& what) {
  int w = 0, h = 0;
  char x = 0, extra = 0;
  if (std::sscanf(s.c_str(), "%d%c%d%c", &w, &x, &h, &extra) != 3 || (x != 'x' && x != 'X') || w <= 0 || h <= 0)
    throw Error(str(what, " '", s, "': expected WIDTHxHEIGHT, e.g. 1024x1024"));
  return {w, h};
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
    with_context(str(source, ": setting '", f.key, "'"), [&] { from_json_value(j.at(f.key), s.*member, source, f.key); });
  });
}

bool png_has_setting(const std::map<std::string, std::string>& text, const std::string& key) {
  return text.count(kPrefix + key) > 0;
}

std::map<std::string, std::string> to_png_text(const SettingsRecord& r) {
  std::map<std::string, std::string> m;
  for_each_setting([&](const SettingField& f, auto member) {
    const auto& v = r.settings.*member;
    if (f.condition_only && !r.controlled) return;
    if (f.omit_empty && as_text(v).empty()) return;
    m[kPrefix + f.key] = as_text(v);
  });
  m[kPrefix + "model"] = fs::path(r.settings.model).lexically_normal().filename().string();
  if (!r.software.empty()) m["Software"] = r.software;
  if (!r.sketch.empty()) m[kPrefix + "sketch"] = r.sketch;
  if (!r.image.empty()) m[kPrefix + "image"] = r.image;
  return m;
}

SettingsRecord settings_from_png_text(const std::map<std::string, std::string>& text, const std::string& source) {
  SPRINT_CHECK(png_has_setting(text, "prompt") || png_has_setting(text, "seed"), source,
               ": this PNG holds no Sprint Studio settings");
  SettingsRecord r;
  for_each_setting([&](const SettingField& f, auto member) {
    auto it = text.find(kPrefix + f.key);
    if (it == text.end()) return;
    from_text(it->second, r.settings.*member, source, kPrefix + f.key);
    r.controlled |= f.condition_only;
  });
  auto get = [&](const char* key) {
    auto it = text.find(key);
    return it == text.end() ? std::string() : it->second;
  };
  r.sketch = get("sprint:sketch");
  r.image = get("sprint:image");
  r.software = get("Software");
  return r;
}

}  // namespace sprint
