// GL textures fed from CPU memory through a pixel-unpack buffer (PBO) and glTexSubImage2D.
//
// upload_image() is the one seam where frames enter GL: the later CUDA-GL interop path (a texture or PBO
// registered with cudaGraphicsGLRegisterBuffer once, mapped per frame) goes behind the same call, with this CPU
// copy as the remembered fallback (docs/architecture.md#display).
// Needs a current GL 3.3 context; functions here never throw.
#pragma once

#include <cstdint>

namespace sprint::ui {

struct GlTexture {
  unsigned id = 0;   // GL texture name; 0 = not created yet
  unsigned pbo = 0;  // GL buffer name used as the staging area
  int width = 0, height = 0, channels = 0;
  bool nearest = false;  // magnification filter: nearest shows canvas pixels crisply when zoomed in
};

// pixels: (height, width, channels) uint8 rows, tightly packed; channels 1 (shown as grey), 3 (RGB) or 4 (RGBA).
// (Re)allocates the texture when the size or channel count changes. Returns the upload time in ms (CPU side).
double upload_image(GlTexture& texture, const uint8_t* pixels, int width, int height, int channels);

void destroy_texture(GlTexture& texture);

// The value ImGui::Image takes for a texture (the OpenGL3 backend stores the GLuint in ImTextureID).
inline void* imgui_texture_id(const GlTexture& t) { return reinterpret_cast<void*>(static_cast<intptr_t>(t.id)); }

}  // namespace sprint::ui
