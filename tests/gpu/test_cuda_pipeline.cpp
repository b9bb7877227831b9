// The pipeline on a CUDA device: the same tiny fixture cases as tests/parity (diffusers' fp32 outputs) in fp32 and
// in bf16 (the CUDA default), and the bundled model on CUDA against the CPU. Skipped, with the reason, where
// there is no CUDA device or the build has no CUDA support. tests/gpu/device_check.sh runs these on a GPU machine.
#include <gtest/gtest.h>

#include <ATen/Context.h>

#include "sprint/runtime.h"
#include "test_util.h"

using namespace sprint;

namespace {

#define SPRINT_REQUIRE_CUDA()                                                                        \
  do {                                                                                               \
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a CPU-only build): " << describe_runtime(torch::kCPU); \
  } while (0)

// fp32 on the GPU with TF32 off. The CPU parity bound is NMSE 1e-10 (summation noise of each component, ~1e-13,
// accumulated through the pipeline). cuBLAS and cuDNN sum in other orders and may pick FFT or Winograd
// convolutions, whose rounding is about ten times plain summation's; 1e-9 allows that. A wrong op, a tensor left
// on the CPU or a dropped condition gives NMSE > 1e-3.
constexpr double kCudaFp32Nmse = 1e-9;
// bf16: the CPU bf16 bound (tests/parity/test_pipeline_parity.cpp explains it): the rounding is the format's, and
// cuBLAS, like the CPU, accumulates bf16 products in fp32.
constexpr double kBf16Nmse = 1e-3;

struct Tf32Off {
  bool cublas = at::globalContext().allowTF32CuBLAS(), cudnn = at::globalContext().allowTF32CuDNN();
  Tf32Off() {
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }
  ~Tf32Off() {
    at::globalContext().setAllowTF32CuBLAS(cublas);
    at::globalContext().setAllowTF32CuDNN(cudnn);
  }
};

// The bundled model on `device`/`dtype` with the apple sketch and three seeds: (3, 3, 64, 64) images in [0, 1].
torch::Tensor bundled_images(const std::string& device, torch::Dtype dtype) {
  auto pipe = test::bundled_pipeline({device, dtype});
  std::vector<torch::Tensor> out;
  for (uint64_t seed : {1, 2, 3}) out.push_back((pipe->generate(test::bundled_apple_request(seed)).image * 0.5 + 0.5).clamp(0, 1));
  return torch::cat(out);
}

}  // namespace

TEST(CudaPipeline, Fp32MatchesTheDiffusersReference) {
  SPRINT_REQUIRE_CUDA();
  Tf32Off tf32_off;
  PipelineOptions o;
  o.device = "cuda";
  o.dtype = torch::kFloat32;
  test::expect_fixture_pipeline_close(o, kCudaFp32Nmse);
}

TEST(CudaPipeline, Bf16StaysCloseToTheFp32Reference) {
  SPRINT_REQUIRE_CUDA();
  PipelineOptions o;
  o.device = "cuda";  // dtype left out: bf16 is the CUDA default
  test::expect_fixture_pipeline_close(o, kBf16Nmse);
}

TEST(CudaPipeline, BundledModelOnCudaMatchesTheCpu) {
  SPRINT_REQUIRE_CUDA();
  const auto cpu = bundled_images("cpu", torch::kFloat32);
  torch::Tensor fp32;
  {
    Tf32Off tf32_off;
    fp32 = bundled_images("cuda", torch::kFloat32);
  }
  const auto bf16 = bundled_images("cuda", torch::kBFloat16);
  std::cout << "  bundled model, 3 seeds: CUDA fp32 vs CPU NMSE " << test::nmse(fp32, cpu) << ", CUDA bf16 vs CPU NMSE "
            << test::nmse(bf16, cpu) << "\n";
  EXPECT_TRUE(test::close_nmse(fp32, cpu, kCudaFp32Nmse));
  EXPECT_TRUE(test::close_nmse(bf16, cpu, kBf16Nmse));
  // The seeds give different pictures on the GPU too (the noise is drawn on the CPU and moved): on the CPU seeds 1
  // and 2 differ by NMSE 0.07, 70x the bf16 bound.
  EXPECT_GT(test::nmse(bf16[0], bf16[1]), 10 * kBf16Nmse);
}
