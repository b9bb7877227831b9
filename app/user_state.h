// What sprint-studio remembers between runs, in $XDG_CONFIG_HOME/sprint-studio/ (~/.config/sprint-studio/ when the
// variable is unset):
//   state.json   the settings the panel edits (prompt, steps, guidance, ControlNet scale, thickness, seed and its
//                lock), the model folder, the brush, the window size, and the recent models and files
//   imgui.ini    ImGui's window layout
// Folders under the home folder are stored as "~/..." so the file does not tie itself to one account's path.
// Command-line options win over remembered values; --reset-settings starts from the defaults (and the next exit
// writes them). A file that cannot be read is reported once, set aside as state.json.bad, and replaced at exit:
// never fatal.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "sprint/generation_settings.h"

namespace sprint {

struct UserState {
  std::optional<GenerationSettings> settings;  // the size is not remembered: it follows the model
  bool seed_locked = true;
  float brush_radius = 0;  // canvas pixels; 0: the model's default
  bool show_condition = false;
  int window_w = 0, window_h = 0;  // 0: the default
  std::vector<std::string> recent_models, recent_files;  // newest first, at most kMaxRecent each
  static constexpr size_t kMaxRecent = 10;
};

std::filesystem::path user_state_dir();

// Never throws. A missing file gives the defaults; an unreadable or invalid one gives the defaults, is renamed to
// state.json.bad, and `notice` says so in one line.
UserState load_user_state(std::string& notice);
// Atomic write (temporary file, fsync, rename). Throws sprint::Error naming the file.
void save_user_state(const UserState& state);

// `path` moved to the front of `list` (added when absent), the list cut to UserState::kMaxRecent.
void remember_recent(std::vector<std::string>& list, const std::string& path);

// "/home/ana/models/x" <-> "~/models/x" (other paths unchanged).
std::string home_relative(const std::string& path);
std::string expand_home(const std::string& path);

}  // namespace sprint
