#include "sprint/ui/gl_texture.h"

#include <epoxy/gl.h>

#include <cassert>
#include <chrono>
#include <cstring>

namespace sprint::ui {

namespace {

GLenum format_of(int channels) { return channels == 1 ? GL_RED : channels == 3 ? GL_RGB : GL_RGBA; }
GLint internal_format_of(int channels) { return channels == 1 ? GL_R8 : channels == 3 ? GL_RGB8 : GL_RGBA8; }

}  // namespace

double upload_image(GlTexture& t, const uint8_t* pixels, int width, int height, int channels) {
  assert((channels == 1 || channels == 3 || channels == 4) && "upload_image takes 1, 3 or 4 channels");
  assert(width > 0 && height > 0 && pixels && "upload_image needs a non-empty image");
  const auto t0 = std::chrono::steady_clock::now();
  const size_t bytes = static_cast<size_t>(width) * height * channels;

  if (!t.id) glGenTextures(1, &t.id);
  if (!t.pbo) glGenBuffers(1, &t.pbo);
  glBindTexture(GL_TEXTURE_2D, t.id);
  if (t.width != width || t.height != height || t.channels != channels) {
    glTexImage2D(GL_TEXTURE_2D, 0, internal_format_of(channels), width, height, 0, format_of(channels),
                 GL_UNSIGNED_BYTE, nullptr);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, t.nearest ? GL_NEAREST : GL_LINEAR);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
    if (channels == 1) {  // grey: ImGui samples .rgba, so replicate red
      const GLint swizzle[4] = {GL_RED, GL_RED, GL_RED, GL_ONE};
      glTexParameteriv(GL_TEXTURE_2D, GL_TEXTURE_SWIZZLE_RGBA, swizzle);
    }
    t.width = width;
    t.height = height;
    t.channels = channels;
  }

  // Orphan the buffer, then copy: the driver may still be reading last frame's contents.
  glBindBuffer(GL_PIXEL_UNPACK_BUFFER, t.pbo);
  glBufferData(GL_PIXEL_UNPACK_BUFFER, static_cast<GLsizeiptr>(bytes), nullptr, GL_STREAM_DRAW);
  void* dst = glMapBufferRange(GL_PIXEL_UNPACK_BUFFER, 0, static_cast<GLsizeiptr>(bytes),
                               GL_MAP_WRITE_BIT | GL_MAP_INVALIDATE_BUFFER_BIT);
  GLint old_alignment = 4;
  glGetIntegerv(GL_UNPACK_ALIGNMENT, &old_alignment);
  glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
  if (dst) {
    std::memcpy(dst, pixels, bytes);
    glUnmapBuffer(GL_PIXEL_UNPACK_BUFFER);
    glTexSubImage2D(GL_TEXTURE_2D, 0, 0, 0, width, height, format_of(channels), GL_UNSIGNED_BYTE, nullptr);
    glBindBuffer(GL_PIXEL_UNPACK_BUFFER, 0);
  } else {  // mapping failed (driver quirk): plain client-memory upload
    glBindBuffer(GL_PIXEL_UNPACK_BUFFER, 0);
    glTexSubImage2D(GL_TEXTURE_2D, 0, 0, 0, width, height, format_of(channels), GL_UNSIGNED_BYTE, pixels);
  }
  glPixelStorei(GL_UNPACK_ALIGNMENT, old_alignment);
  glBindTexture(GL_TEXTURE_2D, 0);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void destroy_texture(GlTexture& t) {
  if (t.pbo) glDeleteBuffers(1, &t.pbo);
  if (t.id) glDeleteTextures(1, &t.id);
  t = GlTexture{};
}

}  // namespace sprint::ui
