// CUDA-GL interop for the output texture (docs/architecture.md#display): a frame that is already on the GPU goes into
// the texture's pixel-unpack buffer with a device-to-device copy (the buffer registered with CUDA once, mapped per
// frame) instead of a trip through CPU memory. When interop is not available (a build without CUDA, no GPU, a GL
// driver CUDA cannot share with, e.g. Mesa/Xvfb), the first attempt prints one clear message and every frame uses
// the CPU copy (ui::upload_image) from then on; the failure is remembered.
//
// Today's pipeline hands back frames in CPU memory (GenerateResult::image), so frames take the CPU path; the
// device path is used for frames that arrive as CUDA tensors.
#pragma once

#include <torch/types.h>

#include <string>

#include "sprint/ui/gl_texture.h"

namespace sprint {

class CudaGlInterop {
 public:
  CudaGlInterop() = default;
  ~CudaGlInterop();  // unregisters (needs the GL context still current)
  CudaGlInterop(const CudaGlInterop&) = delete;
  CudaGlInterop& operator=(const CudaGlInterop&) = delete;

  // rgb: (H, W, 3) uint8 contiguous. Returns true when it was uploaded through interop; false means "use the CPU
  // copy" (CPU tensor, interop unavailable or failed: then a single message on stderr, once per run).
  bool upload(ui::GlTexture& texture, const torch::Tensor& rgb);
  bool available() const { return !failed_; }
  const std::string& failure() const { return failure_; }
  void release();  // before the GL context goes away

 private:
  void fail(const std::string& why);
  bool failed_ = false;
  std::string failure_;
  void* resource_ = nullptr;  // cudaGraphicsResource_t
  unsigned registered_pbo_ = 0;
  size_t registered_bytes_ = 0;
};

}  // namespace sprint
