// GLSL programs loaded from files at start-up (shaders/ is data, not code).
#pragma once

#include <string>

namespace sprint::ui {

// Reads, compiles and links `vertex_path` + `fragment_path`. Throws std::runtime_error naming the file and
// quoting the GL info log when a file is missing or does not compile or link. Needs a current GL context.
unsigned load_program(const std::string& vertex_path, const std::string& fragment_path);

}  // namespace sprint::ui
