// See sprint/cli.h.
#include "sprint/cli.h"

#include <algorithm>

#include "sprint/error.h"
#include "sprint/memory_limits.h"
#include "sprint/strict_parse.h"
#include "sprint/version.h"

namespace sprint {

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

void add_program_flags(CLI::App& app, const std::string& program, LogLevel normal) {
  set_log_level(normal);
  app.set_version_flag("--version", [program] { return version_text(program); },
                       "print the version (project, commit, LibTorch, CUDA or CPU) and exit");
  auto* verbose = app.add_flag_function(
      "-v,--verbose",
      [normal](int64_t n) {
        set_log_level(static_cast<LogLevel>(std::max<int64_t>(0, static_cast<int64_t>(normal) - n)));
      },
      "more messages on stderr (repeat for more: -vv)");
  auto* quiet = app.add_flag_function("-q,--quiet", [](int64_t) { set_log_level(LogLevel::Error); }, "errors only");
  verbose->excludes(quiet);
  app.add_flag_function("--allow-large", [](int64_t) { set_allow_large(true); },
                        "do not refuse a model or a size that is estimated not to fit this machine's memory");
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

}  // namespace sprint
