// See settings_cli.h.
#include "settings_cli.h"

#include "sprint/error.h"
#include "sprint/strict_parse.h"

namespace sprint {

void add_settings_flags(CLI::App& app, GenerationSettings& settings, const std::set<std::string>& skip) {
  for_each_setting([&](const SettingField& f, auto) {
    if (skip.count(f.key)) return;
    const std::string flag = f.flag, key = f.key;
    // One strict parser for every flag (decimal numbers in the setting's range, seeds or "random"), the same one
    // the PNG text uses; CLI11's own conversion would take "0x10" for 16 and wrap "-1" into an unsigned seed.
    app.add_option_function<std::string>(
           flag,
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

CLI::Option* add_integer_option(CLI::App& app, const std::string& flag, int& value, const std::string& help, int min,
                                int max) {
  return app
      .add_option_function<std::string>(
          flag,
          [&value, flag, min, max](const std::string& text) {
            try {
              value = static_cast<int>(parse_integer(text, flag, min, max));
            } catch (const std::exception& e) {
              throw CLI::ValidationError(e.what());
            }
          },
          help)
      ->default_str(std::to_string(value));
}

CLI::Option* add_decimal_option(CLI::App& app, const std::string& flag, double& value, const std::string& help,
                                double min, double max) {
  return app
      .add_option_function<std::string>(
          flag,
          [&value, flag, min, max](const std::string& text) {
            try {
              value = parse_decimal(text, flag, min, max);
            } catch (const std::exception& e) {
              throw CLI::ValidationError(e.what());
            }
          },
          help)
      ->default_str(str(value));
}

void set_one_line_failures(CLI::App& app, const std::string& program) {
  app.failure_message([program](const CLI::App*, const CLI::Error& e) {
    return program + ": error: " + e.what() + "  (see --help)\n";
  });
}

int parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
}

void apply_recorded_settings(const CLI::App& app, const std::map<std::string, std::string>& text,
                             const GenerationSettings& recorded, GenerationSettings& settings) {
  for_each_setting([&](const SettingField& f, auto member) {
    const CLI::Option* given = app.get_option_no_throw(f.flag);
    if (!(given && given->count() > 0) && png_has_setting(text, f.key)) settings.*member = recorded.*member;
  });
}

}  // namespace sprint
