// CUDA-GL interop, the app's display path for frames made on the GPU (app/gl_interop.cpp): a uint8 RGB tensor on
// the GPU goes into the output texture through the registered pixel-unpack buffer, and reading the texture back
// gives exactly the tensor's bytes. Needs a CUDA device and an EGL display on the same NVIDIA GPU (headless, no
// window system); each test skips with the reason where either is missing (CI: no GPU; Mesa cannot share with
// CUDA). tests/gpu/device_check.sh runs it on a GPU machine.
#include <gtest/gtest.h>

#include <epoxy/egl.h>
#include <epoxy/gl.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "gl_interop.h"
#include "sprint/image_io.h"
#include "sprint/pipeline.h"
#include "sprint/runtime.h"
#include "sprint/ui/gl_texture.h"
#include "test_util.h"

using namespace sprint;

namespace {

// A GL 3.3 core context on an EGL pbuffer: the first EGL device that gives one (NVIDIA's EGL exposes the GPU as a
// device), else the default display. Empty `problem` when current.
struct HeadlessGl {
  EGLDisplay display = EGL_NO_DISPLAY;
  EGLContext context = EGL_NO_CONTEXT;
  EGLSurface surface = EGL_NO_SURFACE;
  std::string problem, vendor, renderer;

  HeadlessGl() {
    std::vector<EGLDisplay> candidates;
    if (epoxy_has_egl_extension(EGL_NO_DISPLAY, "EGL_EXT_device_enumeration") &&
        epoxy_has_egl_extension(EGL_NO_DISPLAY, "EGL_EXT_platform_device")) {
      EGLDeviceEXT devices[8];
      EGLint n = 0;
      if (eglQueryDevicesEXT(8, devices, &n))
        for (EGLint i = 0; i < n; ++i) candidates.push_back(eglGetPlatformDisplayEXT(EGL_PLATFORM_DEVICE_EXT, devices[i], nullptr));
    }
    candidates.push_back(eglGetDisplay(EGL_DEFAULT_DISPLAY));
    for (EGLDisplay d : candidates)
      if (d != EGL_NO_DISPLAY && try_display(d)) break;
    if (context == EGL_NO_CONTEXT) {
      if (problem.empty()) problem = "no EGL display gave a GL 3.3 context";
      return;
    }
    vendor = reinterpret_cast<const char*>(glGetString(GL_VENDOR));
    renderer = reinterpret_cast<const char*>(glGetString(GL_RENDERER));
  }

  bool try_display(EGLDisplay d) {
    EGLint major = 0, minor = 0;
    if (!eglInitialize(d, &major, &minor)) {
      problem = "eglInitialize failed";
      return false;
    }
    const EGLint config_attrs[] = {EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_RENDERABLE_TYPE, EGL_OPENGL_BIT,
                                   EGL_RED_SIZE, 8, EGL_GREEN_SIZE, 8, EGL_BLUE_SIZE, 8, EGL_NONE};
    EGLConfig config = nullptr;
    EGLint count = 0;
    if (!eglChooseConfig(d, config_attrs, &config, 1, &count) || count < 1 || !eglBindAPI(EGL_OPENGL_API)) {
      problem = "no EGL config with a pbuffer and desktop OpenGL";
      eglTerminate(d);
      return false;
    }
    const EGLint context_attrs[] = {EGL_CONTEXT_MAJOR_VERSION, 3, EGL_CONTEXT_MINOR_VERSION, 3,
                                    EGL_CONTEXT_OPENGL_PROFILE_MASK, EGL_CONTEXT_OPENGL_CORE_PROFILE_BIT, EGL_NONE};
    const EGLint surface_attrs[] = {EGL_WIDTH, 16, EGL_HEIGHT, 16, EGL_NONE};
    EGLContext c = eglCreateContext(d, config, EGL_NO_CONTEXT, context_attrs);
    EGLSurface s = c != EGL_NO_CONTEXT ? eglCreatePbufferSurface(d, config, surface_attrs) : EGL_NO_SURFACE;
    if (c == EGL_NO_CONTEXT || s == EGL_NO_SURFACE || !eglMakeCurrent(d, s, s, c)) {
      problem = "no GL 3.3 core context on an EGL pbuffer";
      if (c != EGL_NO_CONTEXT) eglDestroyContext(d, c);
      eglTerminate(d);
      return false;
    }
    display = d, context = c, surface = s;
    return true;
  }

  ~HeadlessGl() {
    if (display == EGL_NO_DISPLAY) return;
    eglMakeCurrent(display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    if (surface != EGL_NO_SURFACE) eglDestroySurface(display, surface);
    if (context != EGL_NO_CONTEXT) eglDestroyContext(display, context);
    eglTerminate(display);
  }
};

// The texture's level 0 as (H, W, 3) uint8.
torch::Tensor read_texture(const ui::GlTexture& t) {
  auto out = torch::empty({t.height, t.width, 3}, torch::kUInt8);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glBindTexture(GL_TEXTURE_2D, t.id);
  glGetTexImage(GL_TEXTURE_2D, 0, GL_RGB, GL_UNSIGNED_BYTE, out.data_ptr<uint8_t>());
  glBindTexture(GL_TEXTURE_2D, 0);
  return out;
}

#define SPRINT_REQUIRE_CUDA_AND_GL(gl)                                                                          \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a CPU-only build)";                                \
  HeadlessGl gl;                                                                                                \
  if (!gl.problem.empty()) GTEST_SKIP() << "no headless GL on the GPU: " << gl.problem                          \
                                        << " (NVIDIA's EGL is needed; __EGL_VENDOR_LIBRARY_FILENAMES names it)"; \
  std::cout << "  GL: " << gl.vendor << ", " << gl.renderer << "\n"

}  // namespace

TEST(CudaGlInterop, GpuFramesReachTheTextureByteForByte) {
  SPRINT_REQUIRE_CUDA_AND_GL(gl);
  ui::GlTexture tex;
  CudaGlInterop interop;
  torch::manual_seed(3);
  // 80 x 48: rows of 240 bytes, not a multiple of 4 (the unpack alignment must be 1); not square (w/h swaps show).
  for (auto [h, w] : std::vector<std::pair<int64_t, int64_t>>{{48, 80}, {48, 80}, {64, 64}}) {
    const auto rgb = torch::randint(0, 256, {h, w, 3}, torch::TensorOptions().dtype(torch::kUInt8).device(torch::kCUDA));
    ASSERT_TRUE(interop.upload(tex, rgb)) << interop.failure();
    EXPECT_EQ(tex.width, w);
    EXPECT_EQ(tex.height, h);
    EXPECT_TRUE(torch::equal(read_texture(tex), rgb.cpu())) << h << "x" << w;
  }
  EXPECT_EQ(glGetError(), static_cast<GLenum>(GL_NO_ERROR));
  // A CPU frame is not interop's: it says so (false) without recording a failure, and the caller copies it.
  EXPECT_FALSE(interop.upload(tex, torch::zeros({64, 64, 3}, torch::kUInt8)));
  EXPECT_TRUE(interop.available());
  interop.release();
  ui::destroy_texture(tex);
}

TEST(CudaGlInterop, DisplayedGpuFrameEqualsTheHostCopy) {
  SPRINT_REQUIRE_CUDA_AND_GL(gl);
  // What the app's worker does on CUDA: the image stays on the GPU, the display takes it through interop, and the
  // host copy (history, export) has the same bytes.
  auto pipe = test::bundled_pipeline({"cuda", {}});
  auto r = test::bundled_apple_request(1);
  r.image_on_device = true;
  const auto out = pipe->generate(r);
  ASSERT_TRUE(out.image.is_cuda());
  const auto rgb = to_uint8_image(out.image);
  ASSERT_TRUE(rgb.is_cuda());
  ui::GlTexture tex;
  CudaGlInterop interop;
  ASSERT_TRUE(interop.upload(tex, rgb)) << interop.failure();
  EXPECT_TRUE(torch::equal(read_texture(tex), rgb.cpu()));
  r.image_on_device = false;  // the default: the same picture in host memory
  const auto host = pipe->generate(r);
  EXPECT_FALSE(host.image.is_cuda());
  EXPECT_TRUE(torch::equal(to_uint8_image(host.image), rgb.cpu()));
  interop.release();
  ui::destroy_texture(tex);
}
