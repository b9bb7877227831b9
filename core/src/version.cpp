#include "sprint/version.h"

#include <torch/torch.h>

#include "sprint/error.h"
#include "sprint_version.h"  // generated at build time (cmake/SprintVersion.cmake)

namespace sprint {

std::string project_version() { return SPRINT_VERSION; }

std::string version_text(const std::string& program) {
  std::string backend = "CPU only";
#ifdef SPRINT_HAVE_CUDA
  const auto devices = torch::cuda::device_count();
  backend = devices > 0 ? str("CUDA (", devices, devices == 1 ? " device)" : " devices)")
                        : std::string("built with CUDA, no device found: CPU");
#endif
  return str(program, " ", SPRINT_VERSION, " (git ", SPRINT_GIT_COMMIT, "), LibTorch ", TORCH_VERSION_MAJOR, ".",
             TORCH_VERSION_MINOR, ".", TORCH_VERSION_PATCH, ", ", backend);
}

}  // namespace sprint
