// Command-line flags for the generation settings (docs/architecture.md#settings): one flag per entry of
// for_each_setting, bound to a GenerationSettings, for sprint-generate and sprint-studio alike. The conventions every
// program shares (--version, -v/-q, exit codes, strict numbers) are sprint/cli.h.
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <set>
#include <string>

#include "sprint/cli.h"
#include "sprint/generation_settings.h"

namespace sprint {

// Adds a flag for every setting whose key is not in `skip`, bound to `settings`; its current values are the
// defaults the help shows. The common ones also have short forms: -m model, -p prompt, -s seed, -n steps. A value
// out of the setting's range, or a bad size, is a CLI11 validation error.
void add_settings_flags(CLI::App& app, GenerationSettings& settings, const std::set<std::string>& skip = {});

// The settings a PNG records (`text`, read into `recorded`), except those given on the command line
// (sprint-generate --from: explicit options win).
void apply_recorded_settings(const CLI::App& app, const std::map<std::string, std::string>& text,
                             const GenerationSettings& recorded, GenerationSettings& settings);

}  // namespace sprint
