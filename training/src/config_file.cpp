#include "sprint/training/config_file.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/json_depth.h"

using json = nlohmann::json;

namespace sprint::training {
namespace {

std::vector<std::string> split_key(const std::string& key) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

void collect_leaf_keys(const json& j, const std::string& prefix, std::vector<std::string>& out) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string k = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it->is_object() && !it->empty())
      collect_leaf_keys(*it, k, out);
    else
      out.push_back(k);
  }
}

std::string type_name(const json& v) { return v.type_name(); }

}  // namespace

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

ConfigFile ConfigFile::from_json(json j, std::string source) {
  SPRINT_CHECK(j.is_object(), source, ": a training config must be a JSON object, got ", j.type_name());
  ConfigFile c;
  c.j_ = std::move(j);
  c.source_ = std::move(source);
  return c;
}

ConfigFile ConfigFile::load(const std::string& file, const std::vector<std::string>& overrides) {
  json j = json::object();
  std::string source = "command line";
  if (!file.empty()) {
    SPRINT_CHECK(std::filesystem::exists(file), "cannot open config file '", file, "': no such file");
    const std::string text = with_context("config file", [&] { return read_small_file(file); });
    try {
      // Bounded nesting as in read_json_file; comments allowed in training configs.
      j = json::parse(text, json_depth_limit(64, str("config file '", file, "' nests JSON values more than 64 deep")),
                      true, /*ignore_comments=*/true);
    } catch (const json::exception& e) {
      throw Error(str("config file '", file, "' is not valid JSON: ", e.what()));
    }
    SPRINT_CHECK(j.is_object(), "config file '", file, "' must hold a JSON object, got ", j.type_name());
    source = file;
  }
  for (const auto& o : overrides) {
    const auto eq = o.find('=');
    SPRINT_CHECK(eq != std::string::npos && eq > 0, "override '", o, "' must look like key=value (e.g. optim.lr=1e-4)");
    const std::string key = o.substr(0, eq), text = o.substr(eq + 1);
    json value;
    try {
      value = json::parse(text);
    } catch (const json::parse_error&) {
      value = text;  // a bare word is a string
    }
    json* node = &j;
    auto parts = split_key(key);
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      SPRINT_CHECK(!parts[i].empty(), "override '", o, "': empty key component");
      json& next = (*node)[parts[i]];
      if (next.is_null()) next = json::object();
      SPRINT_CHECK(next.is_object(), "override '", o, "': '", parts[i], "' is not a section");
      node = &next;
    }
    (*node)[parts.back()] = value;
    source = file.empty() ? "command line" : file + " (+ --set overrides)";
  }
  return from_json(std::move(j), source);
}

const json* ConfigFile::find(const std::string& key) const {
  const json* node = &j_;
  for (const auto& part : split_key(key)) {
    if (!node->is_object()) return nullptr;
    auto it = node->find(part);
    if (it == node->end()) return nullptr;
    node = &*it;
  }
  return node;
}

bool ConfigFile::has(const std::string& key) const { return find(key) != nullptr; }

void ConfigFile::remember(const std::string& key, const json& value) {
  read_.insert(key);
  json* node = &resolved_;
  auto parts = split_key(key);
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    json& next = (*node)[parts[i]];
    if (!next.is_object()) next = json::object();
    node = &next;
  }
  (*node)[parts.back()] = value;
}

void ConfigFile::reject(const std::string& key, const std::string& why) const {
  throw Error(str(source_, ": '", key, "' ", why));
}

template <typename T>
T ConfigFile::get(const std::string& key, const T& fallback) {
  const json* v = find(key);
  if (!v) {
    remember(key, json(fallback));
    return fallback;
  }
  T out;
  try {
    if constexpr (std::is_same_v<T, bool>) {
      if (!v->is_boolean()) throw json::type_error::create(302, "not a boolean", nullptr);
    } else if constexpr (std::is_arithmetic_v<T>) {
      if (!v->is_number()) throw json::type_error::create(302, "not a number", nullptr);
      if (std::is_integral_v<T> && !v->is_number_integer())
        throw json::type_error::create(302, "not an integer", nullptr);
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!v->is_string()) throw json::type_error::create(302, "not a string", nullptr);
    }
    out = v->get<T>();
  } catch (const json::exception&) {
    reject(key, str("has the wrong type: got ", type_name(*v), " ", v->dump()));
  }
  remember(key, *v);
  return out;
}

template <typename T>
T ConfigFile::require(const std::string& key) {
  SPRINT_CHECK(find(key), source_, ": '", key, "' is required");
  return get<T>(key, T{});
}

double ConfigFile::get_range(const std::string& key, double fallback, double lo, double hi) {
  double v = get<double>(key, fallback);
  if (!(v >= lo && v <= hi)) reject(key, str("= ", v, " must be in [", lo, ", ", hi, "]"));
  return v;
}

int64_t ConfigFile::get_range(const std::string& key, int64_t fallback, int64_t lo, int64_t hi) {
  int64_t v = get<int64_t>(key, fallback);
  if (v < lo || v > hi) reject(key, str("= ", v, " must be in [", lo, ", ", hi, "]"));
  return v;
}

std::string ConfigFile::get_choice(const std::string& key, const std::string& fallback,
                                   const std::vector<std::string>& choices) {
  std::string v = get<std::string>(key, fallback);
  if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    reject(key, str("= \"", v, "\" must be one of: ", list));
  }
  return v;
}

void ConfigFile::finish() const {
  std::vector<std::string> leaves;
  collect_leaf_keys(j_, "", leaves);
  std::string problems;
  for (const auto& k : leaves) {
    if (read_.count(k) || (!k.empty() && k[0] == '_') || k.find("._") != std::string::npos) continue;
    // A section read as a whole (e.g. a list-valued key) counts for its children.
    bool covered = false;
    for (const auto& r : read_)
      if (k.size() > r.size() && k.compare(0, r.size(), r) == 0 && k[r.size()] == '.') covered = true;
    if (covered) continue;
    std::string best;
    size_t best_d = 4;
    for (const auto& r : read_) {
      size_t d = edit_distance(k, r);
      if (d < best_d) best_d = d, best = r;
    }
    problems += str("\n  unknown key '", k, "'", best.empty() ? "" : str(" (did you mean '", best, "'?)"));
  }
  SPRINT_CHECK(problems.empty(), source_, ":", problems);
}

template bool ConfigFile::get<bool>(const std::string&, const bool&);
template int ConfigFile::get<int>(const std::string&, const int&);
template int64_t ConfigFile::get<int64_t>(const std::string&, const int64_t&);
template double ConfigFile::get<double>(const std::string&, const double&);
template std::string ConfigFile::get<std::string>(const std::string&, const std::string&);
template std::vector<int> ConfigFile::get<std::vector<int>>(const std::string&, const std::vector<int>&);
template std::vector<double> ConfigFile::get<std::vector<double>>(const std::string&, const std::vector<double>&);
template std::vector<std::string> ConfigFile::get<std::vector<std::string>>(const std::string&,
                                                                          const std::vector<std::string>&);
template nlohmann::json ConfigFile::get<nlohmann::json>(const std::string&, const nlohmann::json&);
template std::string ConfigFile::require<std::string>(const std::string&);

namespace {
std::string flag_of(std::string key) {
  std::replace(key.begin(), key.end(), '.', '-');
  std::replace(key.begin(), key.end(), '_', '-');
  return "--" + key;
}
}  // namespace

void add_command_line_options(CLI::App& command, CommandLine& cl, const std::vector<std::string>& flag_keys) {
  command.add_option("--config", cl.config_file, "the run's configuration (JSON)");
  // trigger_on_parse: each occurrence is recorded as it is read, so overrides keep the command line's order.
  command
      .add_option_function<std::string>(
          "--set", [&cl](const std::string& kv) { cl.overrides.push_back(kv); },
          "set a config key: --set optim.lr=2e-4 (repeatable; dotted keys for sections)")
      ->trigger_on_parse()
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  command.add_flag("--resume", cl.resume, "continue the run in 'out' from its latest checkpoint");
  for (const auto& key : flag_keys)
    command
        .add_option_function<std::string>(
            flag_of(key), [&cl, key](const std::string& v) { cl.overrides.push_back(key + "=" + v); },
            "--set " + key + "=VALUE")
        ->trigger_on_parse()
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  command.allow_extras();
}

void reject_unknown_arguments(const CLI::App& command, const std::vector<std::string>& flag_keys) {
  const auto extra = command.remaining();
  if (extra.empty()) return;
  const std::string& a = extra.front();
  if (a.rfind("-", 0) != 0) throw CLI::ExtrasError(str("unexpected argument '", a, "'"), CLI::ExitCodes::ExtrasError);
  const std::string name = a.substr(0, a.find('='));
  std::string best;
  size_t best_d = 4;
  std::vector<std::string> known = {"--config", "--set", "--resume", "--help"};
  for (const auto& k : flag_keys) known.push_back(flag_of(k));
  for (const auto& k : known)
    if (const size_t d = edit_distance(name, k); d < best_d) best_d = d, best = k;
  throw CLI::ExtrasError(str("unknown option '", name, "'", best.empty() ? "" : str(" (did you mean '", best, "'?)"),
                             "; any config key can be set with --set key=value"),
                         CLI::ExitCodes::ExtrasError);
}

}  // namespace sprint::training
