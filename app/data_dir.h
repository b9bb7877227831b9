// Where the programs find what they ship with: the GLSL shaders and the bundled models.
//
//   $SPRINT_DATA_DIR, when set; else <folder of the executable>/../share/sprint-studio
//
// That is the install layout (`cmake --install`: bin/sprint-studio next to share/sprint-studio/{shaders,models}),
// and the build tree mirrors it (build/share/sprint-studio holds links to the source tree's shaders/ and
// assets/models/), so the same binary runs in place and installed, and no source or build path is compiled in.
#pragma once

#include <filesystem>

namespace sprint {

std::filesystem::path data_dir();
std::filesystem::path shader_dir();          // data_dir() / "shaders"
std::filesystem::path bundled_models_dir();  // data_dir() / "models"
// The model sprint-studio opens when no --model is given: bundled_models_dir() / kDefaultModelName.
inline constexpr const char* kDefaultModelName = "sprint-emoji-64";
std::filesystem::path default_model_dir();

}  // namespace sprint
