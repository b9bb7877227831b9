// The command-line conventions every Sprint Studio program shares (sprint-studio, sprint-generate, sprint-train,
// sprint-bench; docs/usage.md#command-line), on CLI11:
//   - `--opt value` and `--opt=value`; numbers are read by the strict parser (sprint/strict_parse.h);
//   - --version, -v/--verbose, -q/--quiet and --allow-large (add_program_flags);
//   - one exit-code scheme: 0 ok, 1 runtime error, 2 usage error (parse_command_line), each failure on one line.
// A small library beside core (sprint::cli), so that app/, training/ and the benchmarks share it without core
// itself depending on CLI11.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "sprint/log.h"

namespace sprint {

// A whole-number or decimal option read by the strict parser (sprint/strict_parse.h): "--threads -3" or
// "--frames 0x10" are refused with the flag, the text and the range, not read as something else.
CLI::Option* add_integer_option(CLI::App& app, const std::string& flag, int& value, const std::string& help, int min,
                                int max);
CLI::Option* add_decimal_option(CLI::App& app, const std::string& flag, double& value, const std::string& help,
                                double min, double max);

// The flags every program has (docs/usage.md#command-line):
//   --version        version_text(program): project version and commit, LibTorch, CUDA or CPU; exit 0
//   -v, --verbose    one log level more than `normal` (sprint/log.h); -vv two
//   -q, --quiet      errors only
//   --allow-large    do not refuse models or sizes estimated not to fit this machine's memory (memory_limits.h)
// Sets the log level to `normal` now, so the flags act relative to the program's usual output.
void add_program_flags(CLI::App& app, const std::string& program, LogLevel normal = LogLevel::Warn);

// Failure messages on one line: "<program>: error: <what>  (see --help)".
void set_one_line_failures(CLI::App& app, const std::string& program);

// Parses the command line: -1 to go on; else the exit code, 0 after --help, 2 for a usage error (one scheme for
// every program: 0 ok, 1 runtime error, 2 usage error), the message printed.
int parse_command_line(CLI::App& app, int argc, char** argv);

}  // namespace sprint
