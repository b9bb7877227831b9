// An off-screen pass with the display shader (shaders/display.{vert,frag}): renders the canvas pane's picture
// (the sketch, or the condition map in false colour over it) into a texture that ImGui then shows.
#pragma once

#include <string>

#include "sprint/ui/gl_texture.h"

namespace sprint::ui {

enum class DisplayMode { Sketch = 0, Condition = 1 };

struct DisplayPass {
  unsigned program = 0, vao = 0, fbo = 0;
  int loc_sketch = -1, loc_condition = -1, loc_mode = -1;
  GlTexture target;  // RGBA8, the size of the last input
};

// Loads `shader_dir`/display.vert + display.frag. Throws std::runtime_error naming the file on failure.
void create_display_pass(DisplayPass& pass, const std::string& shader_dir);

// Renders into pass.target at the sketch's size. `condition` may be empty (id 0) in Sketch mode. Restores the
// framebuffer, viewport and program it changes.
void render_display(DisplayPass& pass, const GlTexture& sketch, const GlTexture& condition, DisplayMode mode);

void destroy_display_pass(DisplayPass& pass);

}  // namespace sprint::ui
