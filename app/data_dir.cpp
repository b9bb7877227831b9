// See data_dir.h.
#include "data_dir.h"

#include <cstdlib>
#include <system_error>

namespace sprint {

std::filesystem::path data_dir() {
  if (const char* env = std::getenv("SPRINT_DATA_DIR"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  // Without /proc (a chroot without it mounted): the current folder's share/, the best remaining guess.
  const auto bin = ec ? std::filesystem::current_path(ec) / "bin" : exe.parent_path();
  return (bin / ".." / "share" / "sprint-studio").lexically_normal();
}

std::filesystem::path shader_dir() { return data_dir() / "shaders"; }
std::filesystem::path bundled_models_dir() { return data_dir() / "models"; }
std::filesystem::path default_model_dir() { return bundled_models_dir() / kDefaultModelName; }

}  // namespace sprint
