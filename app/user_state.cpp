// See user_state.h.
#include "user_state.h"

#include <algorithm>
#include <cstdlib>
#include <system_error>

#include "sprint/atomic_file.h"
#include "sprint/config.h"
#include "sprint/error.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace sprint {
namespace {

std::string home() {
  const char* h = std::getenv("HOME");
  return h != nullptr && *h == '/' ? std::string(h) : std::string();
}

fs::path state_file() { return user_state_dir() / "state.json"; }

std::vector<std::string> string_list(const json& j, const char* key) {
  std::vector<std::string> out;
  if (!j.contains(key)) return out;
  SPRINT_CHECK(j.at(key).is_array(), "'", key, "' must be a list of paths");
  for (const auto& v : j.at(key)) {
    SPRINT_CHECK(v.is_string(), "'", key, "' must be a list of paths");
    if (out.size() < UserState::kMaxRecent) out.push_back(expand_home(v.get<std::string>()));
  }
  return out;
}

UserState parse(const json& j) {
  SPRINT_CHECK(j.is_object(), "not a JSON object");
  UserState s;
  if (j.contains("settings")) {
    GenerationSettings g;
    update_settings_from_json(g, j.at("settings"), "'settings'");
    g.model = expand_home(g.model);
    g.size = {};
    s.settings = g;
  }
  auto number = [&](const char* key, double lo, double hi, double fallback) {
    if (!j.contains(key)) return fallback;
    SPRINT_CHECK(j.at(key).is_number(), "'", key, "' must be a number");
    const double v = j.at(key).get<double>();
    SPRINT_CHECK(v >= lo && v <= hi, "'", key, "' = ", v, " must be from ", lo, " to ", hi);
    return v;
  };
  auto flag = [&](const char* key, bool fallback) {
    if (!j.contains(key)) return fallback;
    SPRINT_CHECK(j.at(key).is_boolean(), "'", key, "' must be true or false");
    return j.at(key).get<bool>();
  };
  s.seed_locked = flag("seed_locked", s.seed_locked);
  s.show_condition = flag("show_condition", s.show_condition);
  s.brush_radius = static_cast<float>(number("brush_radius", 0, 64, 0));
  s.window_w = static_cast<int>(number("window_width", 0, 16384, 0));
  s.window_h = static_cast<int>(number("window_height", 0, 16384, 0));
  s.recent_models = string_list(j, "recent_models");
  s.recent_files = string_list(j, "recent_files");
  return s;
}

}  // namespace

fs::path user_state_dir() {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  // The XDG spec: a relative XDG_CONFIG_HOME is invalid and must be ignored.
  if (xdg != nullptr && *xdg == '/') return fs::path(xdg) / "sprint-studio";
  return fs::path(home().empty() ? "." : home()) / ".config" / "sprint-studio";
}

std::string home_relative(const std::string& path) {
  const std::string h = home();
  if (h.empty() || path.size() <= h.size() || path.compare(0, h.size(), h) != 0 || path[h.size()] != '/') return path;
  std::string out = "~";
  out.append(path, h.size(), std::string::npos);
  return out;
}

std::string expand_home(const std::string& path) {
  if (path.rfind("~/", 0) != 0 || home().empty()) return path;
  return home() + path.substr(1);
}

void remember_recent(std::vector<std::string>& list, const std::string& path) {
  if (path.empty()) return;
  list.erase(std::remove(list.begin(), list.end(), path), list.end());
  list.insert(list.begin(), path);
  if (list.size() > UserState::kMaxRecent) list.resize(UserState::kMaxRecent);
}

UserState load_user_state(std::string& notice) {
  const fs::path file = state_file();
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(file, ec))) return {};
  try {
    return parse(read_json_file(file.string()));
  } catch (const std::exception& e) {
    fs::rename(file, fs::path(file.string() + ".bad"), ec);
    notice = str("remembered settings ", file.string(), " could not be read (", e.what(), "); starting from the "
                 "defaults", ec ? "" : " (the old file is kept as state.json.bad)");
    return {};
  }
}

void save_user_state(const UserState& s) {
  json j = json::object();
  if (s.settings) {
    GenerationSettings g = *s.settings;
    g.model = home_relative(g.model);
    json settings = settings_to_json(g);
    settings.erase("size");
    j["settings"] = settings;
  }
  j["seed_locked"] = s.seed_locked;
  j["show_condition"] = s.show_condition;
  if (s.brush_radius > 0) j["brush_radius"] = s.brush_radius;
  if (s.window_w > 0 && s.window_h > 0) j["window_width"] = s.window_w, j["window_height"] = s.window_h;
  auto paths = [](const std::vector<std::string>& list) {
    json out = json::array();
    for (const auto& p : list) out.push_back(home_relative(p));
    return out;
  };
  j["recent_models"] = paths(s.recent_models);
  j["recent_files"] = paths(s.recent_files);
  std::error_code ec;
  fs::create_directories(user_state_dir(), ec);
  SPRINT_CHECK(!ec, "cannot create ", user_state_dir().string(), ": ", ec.message());
  write_file_atomically(state_file().string(), j.dump(2) + "\n");
}

}  // namespace sprint
