#include "gl_interop.h"

#include <epoxy/gl.h>

#include <cstdio>

#include "sprint/error.h"

#if defined(SPRINT_HAVE_CUDA) && SPRINT_HAVE_CUDA
#include <cuda_gl_interop.h>
#include <cuda_runtime_api.h>
#endif

namespace sprint {

CudaGlInterop::~CudaGlInterop() { release(); }

void CudaGlInterop::fail(const std::string& why) {
  if (failed_) return;
  failed_ = true;
  failure_ = why;
  std::fprintf(stderr, "sprint-studio: CUDA-GL interop unavailable (%s); frames are copied through the CPU from now on\n",
               why.c_str());
}

#if defined(SPRINT_HAVE_CUDA) && SPRINT_HAVE_CUDA

void CudaGlInterop::release() {
  if (resource_) cudaGraphicsUnregisterResource(static_cast<cudaGraphicsResource_t>(resource_));
  resource_ = nullptr;
  registered_pbo_ = 0;
  registered_bytes_ = 0;
}

bool CudaGlInterop::upload(ui::GlTexture& t, const torch::Tensor& rgb) {
  if (failed_ || !rgb.defined() || !rgb.is_cuda()) return false;
  if (rgb.dim() != 3 || rgb.size(2) != 3 || rgb.scalar_type() != torch::kUInt8 || !rgb.is_contiguous()) return false;
  const int w = static_cast<int>(rgb.size(1)), h = static_cast<int>(rgb.size(0));
  const size_t bytes = static_cast<size_t>(rgb.numel());
  // Texture storage and the PBO at the right size: a CPU-path upload of zeros sets both up (once per size).
  if (t.width != w || t.height != h || t.channels != 3 || !t.pbo) {
    std::vector<uint8_t> zeros(bytes, 0);
    ui::upload_image(t, zeros.data(), w, h, 3);
  }
  if (registered_pbo_ != t.pbo || registered_bytes_ != bytes) {
    release();
    glBindBuffer(GL_PIXEL_UNPACK_BUFFER, t.pbo);
    glBufferData(GL_PIXEL_UNPACK_BUFFER, static_cast<GLsizeiptr>(bytes), nullptr, GL_STREAM_DRAW);
    glBindBuffer(GL_PIXEL_UNPACK_BUFFER, 0);
    cudaGraphicsResource_t res = nullptr;
    const cudaError_t e = cudaGraphicsGLRegisterBuffer(&res, t.pbo, cudaGraphicsRegisterFlagsWriteDiscard);
    if (e != cudaSuccess) {
      cudaGetLastError();  // clear the sticky error for LibTorch
      fail(str("cudaGraphicsGLRegisterBuffer: ", cudaGetErrorString(e)));
      return false;
    }
    resource_ = res;
    registered_pbo_ = t.pbo;
    registered_bytes_ = bytes;
  }
  auto res = static_cast<cudaGraphicsResource_t>(resource_);
  void* dst = nullptr;
  size_t size = 0;
  cudaError_t e = cudaGraphicsMapResources(1, &res, 0);
  if (e == cudaSuccess) e = cudaGraphicsResourceGetMappedPointer(&dst, &size, res);
  if (e == cudaSuccess && size >= bytes) e = cudaMemcpy(dst, rgb.data_ptr(), bytes, cudaMemcpyDeviceToDevice);
  const cudaError_t unmap = cudaGraphicsUnmapResources(1, &res, 0);
  if (e != cudaSuccess || unmap != cudaSuccess || size < bytes) {
    cudaGetLastError();
    release();
    fail(str("mapping the texture buffer: ", cudaGetErrorString(e != cudaSuccess ? e : unmap)));
    return false;
  }
  GLint old_alignment = 4;
  glGetIntegerv(GL_UNPACK_ALIGNMENT, &old_alignment);
  glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
  glBindTexture(GL_TEXTURE_2D, t.id);
  glBindBuffer(GL_PIXEL_UNPACK_BUFFER, t.pbo);
  glTexSubImage2D(GL_TEXTURE_2D, 0, 0, 0, w, h, GL_RGB, GL_UNSIGNED_BYTE, nullptr);
  glBindBuffer(GL_PIXEL_UNPACK_BUFFER, 0);
  glBindTexture(GL_TEXTURE_2D, 0);
  glPixelStorei(GL_UNPACK_ALIGNMENT, old_alignment);
  return true;
}

#else  // a build without the CUDA parts

void CudaGlInterop::release() {}

bool CudaGlInterop::upload(ui::GlTexture&, const torch::Tensor& rgb) {
  if (!failed_ && rgb.defined() && rgb.is_cuda()) fail("this build has no CUDA parts (SPRINT_HAVE_CUDA is off)");
  return false;
}

#endif

}  // namespace sprint
