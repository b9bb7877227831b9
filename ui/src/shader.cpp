#include "sprint/ui/shader.h"

#include <epoxy/gl.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace sprint::ui {

namespace {

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open shader '" + path + "' (is --shaders pointing at the shaders/ folder?)");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string info_log(GLuint object, bool program) {
  GLint n = 0;
  program ? glGetProgramiv(object, GL_INFO_LOG_LENGTH, &n) : glGetShaderiv(object, GL_INFO_LOG_LENGTH, &n);
  std::vector<char> log(static_cast<size_t>(n > 1 ? n : 1), '\0');
  program ? glGetProgramInfoLog(object, n, nullptr, log.data()) : glGetShaderInfoLog(object, n, nullptr, log.data());
  return log.data();
}

GLuint compile(GLenum type, const std::string& path) {
  const std::string src = read_text(path);
  const char* p = src.c_str();
  GLuint s = glCreateShader(type);
  glShaderSource(s, 1, &p, nullptr);
  glCompileShader(s);
  GLint ok = 0;
  glGetShaderiv(s, GL_COMPILE_STATUS, &ok);
  if (!ok) {
    const std::string log = info_log(s, false);
    glDeleteShader(s);
    throw std::runtime_error("shader '" + path + "' does not compile:\n" + log);
  }
  return s;
}

}  // namespace

unsigned load_program(const std::string& vertex_path, const std::string& fragment_path) {
  GLuint vs = compile(GL_VERTEX_SHADER, vertex_path);
  GLuint fs = 0;
  try {
    fs = compile(GL_FRAGMENT_SHADER, fragment_path);
  } catch (...) {
    glDeleteShader(vs);
    throw;
  }
  GLuint prog = glCreateProgram();
  glAttachShader(prog, vs);
  glAttachShader(prog, fs);
  glLinkProgram(prog);
  glDeleteShader(vs);
  glDeleteShader(fs);
  GLint ok = 0;
  glGetProgramiv(prog, GL_LINK_STATUS, &ok);
  if (!ok) {
    const std::string log = info_log(prog, true);
    glDeleteProgram(prog);
    throw std::runtime_error("shaders '" + vertex_path + "' + '" + fragment_path + "' do not link:\n" + log);
  }
  return prog;
}

}  // namespace sprint::ui
