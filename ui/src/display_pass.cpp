#include "sprint/ui/display_pass.h"

#include <epoxy/gl.h>

#include <cassert>
#include <stdexcept>

#include "sprint/ui/shader.h"

namespace sprint::ui {

void create_display_pass(DisplayPass& pass, const std::string& shader_dir) {
  pass.program = load_program(shader_dir + "/display.vert", shader_dir + "/display.frag");
  pass.loc_sketch = glGetUniformLocation(pass.program, "u_sketch");
  pass.loc_condition = glGetUniformLocation(pass.program, "u_condition");
  pass.loc_mode = glGetUniformLocation(pass.program, "u_mode");
  if (pass.loc_sketch < 0 || pass.loc_condition < 0 || pass.loc_mode < 0)
    throw std::runtime_error("shader '" + shader_dir + "/display.frag' lacks u_sketch, u_condition or u_mode");
  glGenVertexArrays(1, &pass.vao);  // core profile: a draw needs a bound VAO even without attributes
  glGenFramebuffers(1, &pass.fbo);
}

void render_display(DisplayPass& pass, const GlTexture& sketch, const GlTexture& condition, DisplayMode mode) {
  assert(pass.program && "render_display before create_display_pass");
  assert(sketch.id && "render_display needs an uploaded sketch texture");
  GLint old_fbo = 0;  // before anything below binds ours
  glGetIntegerv(GL_FRAMEBUFFER_BINDING, &old_fbo);
  GlTexture& t = pass.target;
  if (!t.id || t.width != sketch.width || t.height != sketch.height) {
    if (!t.id) glGenTextures(1, &t.id);
    glBindTexture(GL_TEXTURE_2D, t.id);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA8, sketch.width, sketch.height, 0, GL_RGBA, GL_UNSIGNED_BYTE, nullptr);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
    t.width = sketch.width;
    t.height = sketch.height;
    t.channels = 4;
    glBindFramebuffer(GL_FRAMEBUFFER, pass.fbo);
    glFramebufferTexture2D(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, t.id, 0);
  }

  GLint old_program = 0, old_vao = 0, old_active = 0, viewport[4];
  glGetIntegerv(GL_CURRENT_PROGRAM, &old_program);
  glGetIntegerv(GL_VERTEX_ARRAY_BINDING, &old_vao);
  glGetIntegerv(GL_ACTIVE_TEXTURE, &old_active);
  glGetIntegerv(GL_VIEWPORT, viewport);
  const GLboolean blend = glIsEnabled(GL_BLEND), scissor = glIsEnabled(GL_SCISSOR_TEST);

  glBindFramebuffer(GL_FRAMEBUFFER, pass.fbo);
  glViewport(0, 0, t.width, t.height);
  glDisable(GL_BLEND);
  glDisable(GL_SCISSOR_TEST);
  glUseProgram(pass.program);
  glActiveTexture(GL_TEXTURE0);
  glBindTexture(GL_TEXTURE_2D, sketch.id);
  glActiveTexture(GL_TEXTURE1);
  glBindTexture(GL_TEXTURE_2D, condition.id ? condition.id : sketch.id);
  glUniform1i(pass.loc_sketch, 0);
  glUniform1i(pass.loc_condition, 1);
  glUniform1i(pass.loc_mode, condition.id ? static_cast<int>(mode) : 0);
  glBindVertexArray(pass.vao);
  glDrawArrays(GL_TRIANGLES, 0, 3);

  glBindTexture(GL_TEXTURE_2D, 0);
  glActiveTexture(GL_TEXTURE0);
  glBindTexture(GL_TEXTURE_2D, 0);
  glActiveTexture(static_cast<GLenum>(old_active));
  glBindVertexArray(static_cast<GLuint>(old_vao));
  glUseProgram(static_cast<GLuint>(old_program));
  glBindFramebuffer(GL_FRAMEBUFFER, static_cast<GLuint>(old_fbo));
  glViewport(viewport[0], viewport[1], viewport[2], viewport[3]);
  if (blend) glEnable(GL_BLEND);
  if (scissor) glEnable(GL_SCISSOR_TEST);
}

void destroy_display_pass(DisplayPass& pass) {
  if (pass.fbo) glDeleteFramebuffers(1, &pass.fbo);
  if (pass.vao) glDeleteVertexArrays(1, &pass.vao);
  if (pass.program) glDeleteProgram(pass.program);
  destroy_texture(pass.target);
  pass = DisplayPass{};
}

}  // namespace sprint::ui
