// The generation settings as they travel inside a PNG (text chunks "sprint:*"), shared by sprint-generate
// (writes them, --from reads them back) and the app (export, history restore).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

namespace sprint {

// "1024x1024" -> {1024, 1024}. Throws sprint::Error "<what> '<s>': expected WIDTHxHEIGHT ..." otherwise.
std::pair<int, int> parse_size(const std::string& s, const std::string& what = "--size");

struct GenerationSettings {
  std::string prompt;
  uint64_t seed = 0;
  int steps = 2;
  double guidance = 4.5;
  int width = 0, height = 0;
  std::string model_path;                 // stored absolute; "sprint:model" holds its folder name
  std::string timesteps;                  // custom schedule as typed, e.g. "1.5708,1.3,0"; empty: default
  std::optional<double> control_scale;    // set when a ControlNet condition was used
  std::optional<int> thickness;
  std::string sketch, image;              // condition source files (absolute), at most one set
  std::string software;                   // "Software" chunk

  std::map<std::string, std::string> to_png_text() const;
  // Reads what is present; absent keys keep their defaults. Throws sprint::Error naming `source` and the key for
  // a value that does not parse, and when the chunks hold no Sprint Studio settings at all.
  static GenerationSettings from_png_text(const std::map<std::string, std::string>& text, const std::string& source);
  // Which keys were present in the PNG (so command-line options can override only the rest).
  static bool has(const std::map<std::string, std::string>& text, const std::string& key);
};

}  // namespace sprint
