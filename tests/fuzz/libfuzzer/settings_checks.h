// Shared by fuzz_png and fuzz_settings: settings a reader accepted must travel unchanged from one picture to the
// next (to_png_text -> settings_from_png_text), as when sprint-generate --from re-runs a picture and saves the result.
#pragma once

#include <exception>
#include <string>

#include "fuzz_common.h"
#include "sprint/error.h"
#include "sprint/generation_settings.h"

namespace sprint_fuzz {

inline void check_png_text_round_trip(sprint::SettingsRecord r) {
  // The writers (sprint-generate, the app) always record a chosen size: an unset one is resolved to the model's
  // native size before a picture is made, and "0x0" is not a size the readers take.
  if (r.settings.size.empty()) r.settings.size = {64, 64};
  const auto text = sprint::to_png_text(r);
  sprint::SettingsRecord again;
  try {
    again = sprint::settings_from_png_text(text, "round trip");
  } catch (const std::exception& e) {
    std::string chunks;
    for (const auto& [k, v] : text) chunks += sprint::str("\n  ", k, " = ", v.substr(0, 200));
    invariant_broken(sprint::str("settings_from_png_text refuses what to_png_text wrote for accepted settings: ",
                                 sprint::message_of(e), chunks));
  }
  // to_png_text records the model folder by name and doubles with 6 significant digits; the rest is kept exactly.
  const auto& a = r.settings;
  const auto& b = again.settings;
  if (a.prompt != b.prompt || a.seed != b.seed || a.steps != b.steps || a.size != b.size ||
      a.timesteps != b.timesteps || (r.controlled && a.thickness != b.thickness) || r.controlled != again.controlled ||
      r.condition_png != again.condition_png)
    invariant_broken("settings change on their way through to_png_text -> settings_from_png_text");
}

}  // namespace sprint_fuzz
