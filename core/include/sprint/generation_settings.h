// The generation settings: one value type for everything a generated picture depends on besides the sketch
// (docs/architecture.md#settings). The app's controls panel, its live requests and history, sprint-generate, the
// PNG text chunks and replay files all hold a GenerationSettings, and it is converted in one place each:
//   command-line flags  app/settings_cli.h (CLI11 stays out of core)
//   JSON                settings_to_json / update_settings_from_json (replay "set" events)
//   PNG text            to_png_text / settings_from_png_text ("sprint:*" chunks)
// All of them walk for_each_setting, so a new setting is a member plus one line in that list (and a widget in the
// controls panel to show it). Plain C++ with no LibTorch, so the ui layer can embed it.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <string>

namespace sprint {

struct ImageSize {
  int width = 0, height = 0;  // 0 x 0: not chosen (the model's native size)
  bool empty() const { return width == 0 && height == 0; }
  bool operator==(const ImageSize&) const = default;
};

// "1024x1024" -> {1024, 1024}: decimal digits only, each side 1 to kMaxSizeSide. Throws sprint::Error
// "<what> '<s>': expected WIDTHxHEIGHT ..." otherwise. Whether a model can draw that size is the pipeline's check.
constexpr int kMaxSizeSide = 16384;
ImageSize parse_size(const std::string& s, const std::string& what = "--size");

struct GenerationSettings {
  std::string model;             // model folder (a PNG records its name only)
  std::string prompt;
  uint64_t seed = 0;
  int steps = 2;                 // 1-4
  double guidance = 4.5;         // embedded guidance: no extra pass
  double control_scale = 1.0;    // ControlNet conditioning scale
  int thickness = 2;             // scribble thickness (Sana demo: 1-4, default 2 = kDefaultScribbleThickness)
  ImageSize size;                // generation size
  std::string timesteps;         // custom TrigFlow schedule as typed, e.g. "1.5708,1.3,0"; empty: the steps' default
  bool operator==(const GenerationSettings&) const = default;
};

// How a setting is named and checked where it is converted.
struct SettingField {
  const char* key;              // PNG text "sprint:<key>", JSON key, replay "set" name
  const char* flag;             // command-line flag
  const char* help;
  bool condition_only = false;  // applies only with a ControlNet condition (recorded in a PNG only then)
  bool omit_empty = false;      // not recorded in a PNG while empty
  double min = 0, max = 0;      // accepted range wherever the setting is read (flags, JSON, PNG text), when max > min;
                                // for text settings, max is the longest text in bytes
};

// Every setting: f(field, &GenerationSettings::member), in this order. Member types: std::string, uint64_t, int,
// double, ImageSize.
template <typename F>
void for_each_setting(F&& f) {
  f(SettingField{"model_path", "--model",
                 "model folder in diffusers layout (transformer/, vae/, text_encoder/, tokenizer/; controlnet/ for "
                 "sketches)", false, false, 0, 4096},
    &GenerationSettings::model);
  // The text encoder reads a few hundred tokens at most; 10000 bytes keeps PNG text chunks readable by other tools
  // (PIL refuses chunks past 1 MB).
  f(SettingField{"prompt", "--prompt", "text prompt", false, false, 0, 10000}, &GenerationSettings::prompt);
  f(SettingField{"seed", "--seed", "noise seed, 0 to 2^63-1, or 'random'"}, &GenerationSettings::seed);
  f(SettingField{"steps", "--steps", "sampling steps, 1-4", false, false, 1, 4}, &GenerationSettings::steps);
  f(SettingField{"guidance", "--guidance", "guidance scale 0-30 (embedded: no extra pass)", false, false, 0, 30},
    &GenerationSettings::guidance);
  f(SettingField{"control_scale", "--control-scale", "ControlNet conditioning scale 0-4", true, false, 0, 4},
    &GenerationSettings::control_scale);
  f(SettingField{"thickness", "--thickness", "scribble thickness 0-24 (the Sana demo uses 1-4)", true, false, 0, 24},
    &GenerationSettings::thickness);
  f(SettingField{"size", "--size",
                 "WIDTHxHEIGHT, multiples of the VAE's compression (32 for SANA); default: the model's native size "
                 "(transformer sample_size x VAE compression, e.g. 1024x1024 for SANA-Sprint 1024, 64x64 for our emoji "
                 "model); the sketch canvas has this size, or the model's sketch_canvas on its longer side"},
    &GenerationSettings::size);
  f(SettingField{"timesteps", "--timesteps", "custom TrigFlow timesteps, e.g. 1.5708,1.3,0", false, true, 0, 1000},
    &GenerationSettings::timesteps);
}

// Whether `key` names a setting of for_each_setting.
bool is_setting(const std::string& key);

// Setting `key` from text as a person types it (a flag's value, a PNG chunk): strict decimal numbers within the
// setting's range (sprint/strict_parse.h), seeds 0 to 2^63-1 or "random" (drawn now, when `allow_random_seed`).
// Throws sprint::Error naming `what` and the text.
void set_setting_from_text(GenerationSettings& s, const std::string& key, const std::string& text,
                           const std::string& what, bool allow_random_seed = false);
// Setting `key` as text, the form set_setting_from_text reads back.
std::string setting_text(const GenerationSettings& s, const std::string& key);

// JSON: {"prompt": "...", "seed": 7, "size": "64x64", ...} with every setting.
nlohmann::json settings_to_json(const GenerationSettings& s);
// Sets the settings `j` names and keeps the rest. Throws sprint::Error naming `source` and the key for an unknown
// key or a value of the wrong type.
void update_settings_from_json(GenerationSettings& s, const nlohmann::json& j, const std::string& source);

// What a PNG we wrote records besides its pixels: the settings, whether a ControlNet condition was used, where the
// condition came from and the condition itself. No folder of this machine is recorded: pictures are shared.
struct SettingsRecord {
  GenerationSettings settings;   // settings.model is recorded as the folder's name
  bool controlled = false;       // made with a condition: control_scale and thickness are recorded too
  std::string sketch, image;     // the condition's source file, by name only (no folder), at most one set
  std::string condition_png;     // the condition map the model saw, as PNG bytes ("sprint:condition", base64), so
                                 // the picture alone re-runs with its sketch
  std::string software;          // "Software" chunk
};

// Text chunks "sprint:<key>" for every setting, "sprint:model" (the model folder's name), and the A1111-style
// "parameters" chunk that other tools and image viewers read (to_a1111_parameters).
std::map<std::string, std::string> to_png_text(const SettingsRecord& record);
// Reads what is present; absent keys keep their defaults. A PNG with only a "parameters" chunk (A1111, ComfyUI,
// sd.cpp) gives what that holds. Throws sprint::Error naming `source` and the key for a value that does not parse,
// and when the chunks hold no settings at all.
SettingsRecord settings_from_png_text(const std::map<std::string, std::string>& text, const std::string& source);

// A1111's "parameters" text: the prompt, then one line "Steps: 2, Sampler: SCM, CFG scale: 4.5, Seed: 7,
// Size: 64x64, Model: sprint-emoji-128" (plus "Control scale" with a condition). And back: the prompt, steps, CFG
// scale, seed, size and model name where present and valid; other keys are skipped. Throws naming `source` for a
// text without a settings line.
std::string to_a1111_parameters(const SettingsRecord& record);
SettingsRecord settings_from_a1111_parameters(const std::string& text, const std::string& source);

// The last component of a folder path ("models/sprint/" -> "sprint"): what a PNG records for the model.
std::string folder_name(const std::string& path);
// Whether the chunks hold setting `key` (so command-line options can override only the rest).
bool png_has_setting(const std::map<std::string, std::string>& text, const std::string& key);

}  // namespace sprint
