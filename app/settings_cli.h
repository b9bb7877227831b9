// Command-line flags for the generation settings (docs/architecture.md#settings): one flag per entry of
// for_each_setting, bound to a GenerationSettings, for sprint-generate and sprint-studio alike. CLI11 stays in app/.
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <set>
#include <string>

#include "sprint/generation_settings.h"

namespace sprint {

// Adds a flag for every setting whose key is not in `skip`, bound to `settings`; its current values are the
// defaults the help shows. A value out of the setting's range, or a bad size, is a CLI11 validation error.
void add_settings_flags(CLI::App& app, GenerationSettings& settings, const std::set<std::string>& skip = {});

// A whole-number or decimal option read by the strict parser (sprint/strict_parse.h): "--threads -3" or
// "--frames 0x10" are refused with the flag, the text and the range, not read as something else.
CLI::Option* add_integer_option(CLI::App& app, const std::string& flag, int& value, const std::string& help, int min,
                                int max);
CLI::Option* add_decimal_option(CLI::App& app, const std::string& flag, double& value, const std::string& help,
                                double min, double max);

// Failure messages on one line: "<program>: error: <what>  (see --help)".
void set_one_line_failures(CLI::App& app, const std::string& program);

// Parses the command line: -1 to go on; else the exit code, 0 after --help, 2 for a usage error (one scheme for
// every program: 0 ok, 1 runtime error, 2 usage error), the message printed.
int parse_command_line(CLI::App& app, int argc, char** argv);

// The settings a PNG records (`text`, read into `recorded`), except those given on the command line
// (sprint-generate --from: explicit options win).
void apply_recorded_settings(const CLI::App& app, const std::map<std::string, std::string>& text,
                             const GenerationSettings& recorded, GenerationSettings& settings);

}  // namespace sprint
