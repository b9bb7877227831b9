#include "sprint/settings_meta.h"

#include <cstdio>
#include <filesystem>
#include <tuple>
#include <sstream>

#include "sprint/error.h"

namespace fs = std::filesystem;

namespace sprint {

namespace {
const std::string kPrefix = "sprint:";

template <typename T>
void parse_into(const std::map<std::string, std::string>& text, const std::string& key, const std::string& source, T& out) {
  auto it = text.find(kPrefix + key);
  if (it == text.end()) return;
  std::istringstream ss(it->second);
  T value{};
  ss >> value;
  SPRINT_CHECK(!ss.fail() && (ss >> std::ws).eof(), source, ": bad value '", it->second, "' for ", kPrefix, key);
  out = value;
}
}  // namespace

std::pair<int, int> parse_size(const std::string& s, const std::string& what) {
  int w = 0, h = 0;
  char x = 0, extra = 0;
  if (std::sscanf(s.c_str(), "%d%c%d%c", &w, &x, &h, &extra) != 3 || (x != 'x' && x != 'X') || w <= 0 || h <= 0)
    throw Error(str(what, " '", s, "': expected WIDTHxHEIGHT, e.g. 1024x1024"));
  return {w, h};
}

bool GenerationSettings::has(const std::map<std::string, std::string>& text, const std::string& key) {
  return text.count(kPrefix + key) > 0;
}

std::map<std::string, std::string> GenerationSettings::to_png_text() const {
  std::map<std::string, std::string> m = {
      {kPrefix + "prompt", prompt},
      {kPrefix + "seed", std::to_string(seed)},
      {kPrefix + "steps", std::to_string(steps)},
      {kPrefix + "guidance", str(guidance)},
      {kPrefix + "size", str(width, "x", height)},
      {kPrefix + "model", fs::path(model_path).lexically_normal().filename().string()},
      {kPrefix + "model_path", model_path}};
  if (!software.empty()) m["Software"] = software;
  if (!timesteps.empty()) m[kPrefix + "timesteps"] = timesteps;
  if (control_scale) m[kPrefix + "control_scale"] = str(*control_scale);
  if (thickness) m[kPrefix + "thickness"] = std::to_string(*thickness);
  if (!sketch.empty()) m[kPrefix + "sketch"] = sketch;
  if (!image.empty()) m[kPrefix + "image"] = image;
  return m;
}

GenerationSettings GenerationSettings::from_png_text(const std::map<std::string, std::string>& text,
                                                     const std::string& source) {
  SPRINT_CHECK(has(text, "prompt") || has(text, "seed"), source, ": this PNG holds no Sprint Studio settings");
  GenerationSettings s;
  auto get = [&](const char* key) {
    auto it = text.find(kPrefix + key);
    return it == text.end() ? std::string() : it->second;
  };
  s.prompt = get("prompt");
  s.model_path = get("model_path");
  s.timesteps = get("timesteps");
  s.sketch = get("sketch");
  s.image = get("image");
  parse_into(text, "seed", source, s.seed);
  parse_into(text, "steps", source, s.steps);
  parse_into(text, "guidance", source, s.guidance);
  if (has(text, "size")) std::tie(s.width, s.height) = parse_size(get("size"), source + ": sprint:size");
  if (has(text, "control_scale")) parse_into(text, "control_scale", source, s.control_scale.emplace());
  if (has(text, "thickness")) parse_into(text, "thickness", source, s.thickness.emplace());
  return s;
}

}  // namespace sprint
