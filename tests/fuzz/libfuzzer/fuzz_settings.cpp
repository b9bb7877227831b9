// fuzz_settings: the input bytes as the text forms of the generation settings.
//   * as a whole: an A1111 "parameters" text, to settings_from_a1111_parameters and, as the only chunk of a PNG,
//     to settings_from_png_text;
//   * split at NUL bytes into key, value, key, value, ...: a PNG's text chunks ("sprint:seed", "sprint:condition",
//     ...), to settings_from_png_text;
//   * as a JSON file read with read_json_file (how replay files, whose "set" events carry settings, are read): to
//     update_settings_from_json.
// Accepted settings must come back unchanged from settings_to_json / to_png_text, and a picture written with them
// (encode_png with to_png_text's chunks) must read back.
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <exception>
#include <map>
#include <string>

#include "fuzz_common.h"
#include "settings_checks.h"
#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/generation_settings.h"
#include "sprint/image_io.h"

using sprint_fuzz::invariant_broken;

namespace {

void check_record(const sprint::SettingsRecord& r) {
  sprint_fuzz::check_png_text_round_trip(r);
  // Through a real PNG: libpng may drop what a text chunk cannot hold (a NUL ends its text), but the picture must
  // still read back with settings.
  sprint::SettingsRecord sized = r;
  if (sized.settings.size.empty()) sized.settings.size = {64, 64};
  try {
    const std::string png = sprint::encode_png(torch::zeros({1, 1, 3}, torch::kUInt8), sprint::to_png_text(sized));
    sprint::settings_from_png_text(sprint::decode_png(png, "round trip").text, "round trip");
  } catch (const std::exception& e) {
    invariant_broken(sprint::str("a picture written with accepted settings does not read back: ", sprint::message_of(e)));
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  torch::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  try {
    check_record(sprint::settings_from_a1111_parameters(text, "fuzz"));
  } catch (const std::exception&) {
  }
  try {
    check_record(sprint::settings_from_png_text({{"parameters", text}}, "fuzz"));
  } catch (const std::exception&) {
  }

  std::map<std::string, std::string> chunks;
  for (size_t at = 0; at <= text.size();) {
    size_t key_end = text.find('\0', at);
    if (key_end == std::string::npos) key_end = text.size();
    size_t value_end = key_end < text.size() ? text.find('\0', key_end + 1) : std::string::npos;
    if (value_end == std::string::npos) value_end = text.size();
    chunks[text.substr(at, key_end - at)] = key_end < text.size() ? text.substr(key_end + 1, value_end - key_end - 1) : "";
    at = value_end + 1;
  }
  try {
    check_record(sprint::settings_from_png_text(chunks, "fuzz"));
  } catch (const std::exception&) {
  }

  static const std::string path = (sprint_fuzz::scratch_dir() / "settings.json").string();
  sprint_fuzz::write_file(path, data, size);
  nlohmann::json j;
  bool parsed = false;
  try {
    j = sprint::read_json_file(path);
    parsed = true;
  } catch (const std::exception&) {
  }
  if (parsed) {
    sprint::SettingsRecord r;
    bool accepted = false;
    try {
      sprint::update_settings_from_json(r.settings, j, "fuzz");
      accepted = true;
    } catch (const std::exception&) {
    }
    if (accepted) {
      // settings_to_json writes an unset size as "0x0", which no reader takes; the writers resolve it first.
      if (r.settings.size.empty()) r.settings.size = {64, 64};
      sprint::GenerationSettings again;
      try {
        sprint::update_settings_from_json(again, sprint::settings_to_json(r.settings), "round trip");
      } catch (const std::exception& e) {
        invariant_broken(sprint::str("update_settings_from_json refuses settings_to_json of settings it accepted: ",
                                     sprint::message_of(e)));
      }
      if (!(again == r.settings)) invariant_broken("settings change on their way through settings_to_json");
      r.controlled = true;  // record control_scale and thickness too
      check_record(r);
    }
  }
  return 0;
}
