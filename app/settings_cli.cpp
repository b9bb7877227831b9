// See settings_cli.h.
#include "settings_cli.h"

#include "sprint/error.h"
#include "sprint/strict_parse.h"

namespace sprint {

namespace {
// Short forms of the settings people type most (sd.cpp and most generators use the same letters).
const std::map<std::string, std::string> kShortFlags = {
    {"model_path", "-m"}, {"prompt", "-p"}, {"seed", "-s"}, {"steps", "-n"}};
}  // namespace

void add_settings_flags(CLI::App& app, GenerationSettings& settings, const std::set<std::string>& skip) {
  for_each_setting([&](const SettingField& f, auto) {
    if (skip.count(f.key)) return;
    const std::string flag = f.flag, key = f.key;
    const auto short_flag = kShortFlags.find(key);
    const std::string names = short_flag == kShortFlags.end() ? flag : short_flag->second + "," + flag;
    // One strict parser for every flag (decimal numbers in the setting's range, seeds or "random"), the same one
    // the PNG text uses; CLI11's own conversion would take "0x10" for 16 and wrap "-1" into an unsigned seed.
    app.add_option_function<std::string>(
           names,
           [&settings, flag, key](const std::string& text) {
             try {
               set_setting_from_text(settings, key, text, flag, /*allow_random_seed=*/true);
             } catch (const std::exception& e) {
               throw CLI::ValidationError(e.what());
             }
           },
           f.help)
        ->default_str(setting_text(settings, key));
  });
}

void apply_recorded_settings(const CLI::App& app, const std::map<std::string, std::string>& text,
                             const GenerationSettings& recorded, GenerationSettings& settings) {
  for_each_setting([&](const SettingField& f, auto member) {
    const CLI::Option* given = app.get_option_no_throw(f.flag);
    if (!(given && given->count() > 0) && png_has_setting(text, f.key)) settings.*member = recorded.*member;
  });
}

}  // namespace sprint
