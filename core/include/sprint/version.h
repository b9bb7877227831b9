// What `--version` prints, the same for every program (sprint-studio, sprint-generate, sprint-train, sprint-bench).
#pragma once

#include <string>

namespace sprint {

// "sprint-generate 0.1.0 (git 1a2b3c4d5e6f), LibTorch 2.15.0, CPU only" or "..., CUDA 13.0 (1 device)". The commit
// ends in "-modified" when the build had uncommitted changes; "unknown" outside a git checkout.
std::string version_text(const std::string& program);

// "0.1.0"
std::string project_version();

}  // namespace sprint
