#include "sprint/runtime.h"

#include <torch/torch.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include <malloc.h>

#include <atomic>
#include <bit>
#include <climits>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "sprint/error.h"
#include "sprint/strict_parse.h"

namespace sprint {

namespace {
// glibc serves blocks above M_MMAP_THRESHOLD (dynamic, at most 32 MiB) with mmap and unmaps them on free, and
// returns heap tops above M_TRIM_THRESHOLD to the system, so every large tensor (a 512x512x128 activation is
// 128 MiB) arrives as fresh pages and pays a page fault per 4 KiB on first touch. On the 2-core VM this project
// is measured on, that was 2.5 million faults and a third of the DC-AE's time at 256x256, and most of the run
// to run noise. Keeping freed blocks in the heap lets the next tensor of the same size reuse them.
constexpr int kMmapThreshold = 1 << 30;
constexpr int kTrimThreshold = INT_MAX;
}  // namespace

std::string malloc_settings_env() {
  return str("MALLOC_MMAP_THRESHOLD_=", kMmapThreshold, " MALLOC_TRIM_THRESHOLD_=", kTrimThreshold);
}

int init_threads(int n) {
  static std::once_flag malloc_once;
  std::call_once(malloc_once, [] {
    mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
    mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
  });
  SPRINT_CHECK(n >= 0 && n <= kMaxThreads, "threads: ", n, " is out of range (0 = all cores, at most ", kMaxThreads, ")");
  if (n == 0) {
    if (const char* env = std::getenv("SPRINT_THREADS"); env && *env)
      n = static_cast<int>(parse_integer(env, "$SPRINT_THREADS", 0, kMaxThreads));
  }
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // More threads than 4x the cores only costs memory (each one's stack) and time; a typo like 100000 is refused.
  SPRINT_CHECK(n <= std::max(64, 4 * cores), "threads: ", n, " is far more than this machine's ", cores, " cores");
  if (n <= 0) n = cores;
  torch::set_num_threads(n);
  return torch::get_num_threads();
}

int parallel_loop_threads() {
  // One item per thread id bit: each thread of the loop marks its own.
  std::atomic<uint64_t> seen{0};
  at::parallel_for(0, 4096, 1, [&](int64_t, int64_t) {
    seen.fetch_or(uint64_t{1} << std::min(at::get_thread_num(), 63), std::memory_order_relaxed);
  });
  return std::popcount(seen.load());
}

bool cuda_available() { return torch::cuda::is_available(); }

void synchronize(const torch::Device& device) {
#ifdef SPRINT_HAVE_CUDA
  if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : -1);
#else
  (void)device;
#endif
}

torch::Device pick_device(const std::string& name) {
  if (name.empty() || name == "auto") return cuda_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  torch::Device d(torch::kCPU);
  try {
    d = torch::Device(name);
  } catch (const std::exception&) {
    throw Error(str("unknown device '", name, "' (use auto, cpu, cuda or cuda:N)"));
  }
  if (d.is_cuda()) {
#ifndef SPRINT_HAVE_CUDA
    throw Error(str("device '", name, "' asked for, but this build has no CUDA support (configured with the CPU-only LibTorch path)"));
#else
    SPRINT_CHECK(cuda_available(), "device '", name, "' asked for, but no CUDA device is available");
    SPRINT_CHECK(!d.has_index() || d.index() < static_cast<int>(torch::cuda::device_count()), "device '", name,
                 "' does not exist (", torch::cuda::device_count(), " CUDA devices)");
#endif
  } else {
    SPRINT_CHECK(d.is_cpu(), "device '", name, "' is not supported (use auto, cpu, cuda or cuda:N)");
  }
  return d;
}

std::string describe_runtime(const torch::Device& device) {
  std::string s = str("LibTorch ", TORCH_VERSION, ", ");
  if (device.is_cuda()) return s + "CUDA device " + std::to_string(device.has_index() ? device.index() : 0);
  const int n = torch::get_num_threads();
  return s + str("CPU (", n, n == 1 ? " thread)" : " threads)");
}

}  // namespace sprint
