// Training run configuration: one JSON file per run plus command-line overrides, read strictly.
//
//   sprint-train pretrain --config training/configs/emoji/teacher.json --set steps=2000 --set optim.lr=2e-4
//
// Keys are dotted paths into the JSON object ("optim.lr" is {"optim": {"lr": ...}}). An override's value is parsed
// as JSON when it is valid JSON (numbers, true/false, lists, quoted strings) and taken as a plain string otherwise.
// Every key must be read by the command: finish() rejects the ones nobody read, naming the closest known key, so a
// typo ("optim.lrr") stops the run instead of silently training with the default. Type and range errors name the
// file (or the override) and the key.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <optional>
#include <set>
#include <string>
#include <vector>

namespace sprint::training {

class ConfigFile {
 public:
  ConfigFile() = default;
  // `file` may be empty (defaults + overrides only). Overrides are "key=value".
  static ConfigFile load(const std::string& file, const std::vector<std::string>& overrides = {});
  static ConfigFile from_json(nlohmann::json j, std::string source);

  // Typed reads; mark the key as known. get() returns `fallback` when the key is absent.
  template <typename T> T get(const std::string& key, const T& fallback);
  template <typename T> T require(const std::string& key);
  bool has(const std::string& key) const;

  // Range helpers: throw naming the key and the allowed range.
  double get_range(const std::string& key, double fallback, double lo, double hi);
  int64_t get_range(const std::string& key, int64_t fallback, int64_t lo, int64_t hi);
  std::string get_choice(const std::string& key, const std::string& fallback, const std::vector<std::string>& choices);

  // Throws listing every key that was never read, with a "did you mean" suggestion.
  void finish() const;
  // The effective configuration: the file with the overrides applied and every default that was read filled in.
  const nlohmann::json& resolved() const { return resolved_; }
  const std::string& source() const { return source_; }

  [[noreturn]] void reject(const std::string& key, const std::string& why) const;

 private:
  const nlohmann::json* find(const std::string& key) const;
  void remember(const std::string& key, const nlohmann::json& value);
  nlohmann::json j_;
  nlohmann::json resolved_ = nlohmann::json::object();
  std::string source_;
  mutable std::set<std::string> read_;
};

// The common command-line shape of the training commands, on CLI11 (sprint/cli.h): `--config FILE`, any number of
// `--set key=value`, `--resume`, and a long option for each key in `flag_keys` (dots and underscores as dashes:
// "data.dir" -> --data-dir, which means --set data.dir=VALUE). `--opt value` and `--opt=value` both work; overrides
// keep their command-line order, so the later of two settings of one key wins.
struct CommandLine {
  std::string config_file;
  std::vector<std::string> overrides;
  bool resume = false;
};
void add_command_line_options(CLI::App& command, CommandLine& cl, const std::vector<std::string>& flag_keys);
// After parsing (the command allows extras so that this can name them): throws a usage error for the first unknown
// option or argument, with the closest known option as a suggestion ("--stepz" -> did you mean '--steps'?).
void reject_unknown_arguments(const CLI::App& command, const std::vector<std::string>& flag_keys);

// Levenshtein distance (for suggestions).
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace sprint::training
