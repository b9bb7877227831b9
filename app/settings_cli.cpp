// See settings_cli.h.
#include "settings_cli.h"

#include <type_traits>

namespace sprint {

namespace {

template <typename T>
void add_flag(CLI::App& app, const SettingField& f, T& value) {
  auto* o = app.add_option(f.flag, value, f.help)->capture_default_str();
  if (f.max <= f.min) return;
  if constexpr (std::is_integral_v<T>) o->check(CLI::Range(static_cast<T>(f.min), static_cast<T>(f.max)));
  else o->check(CLI::Range(f.min, f.max));
}

void add_flag(CLI::App& app, const SettingField& f, ImageSize& value) {
  const std::string flag = f.flag;
  app.add_option_function<std::string>(
      flag,
      [&value, flag](const std::string& text) {
        try {
          value = parse_size(text, flag);
        } catch (const std::exception& e) {
          throw CLI::ValidationError(flag, e.what());
        }
      },
      f.help);
}

}  // namespace

void add_settings_flags(CLI::App& app, GenerationSettings& settings, const std::set<std::string>& skip) {
  for_each_setting([&](const SettingField& f, auto member) {
    if (!skip.count(f.key)) add_flag(app, f, settings.*member);
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
