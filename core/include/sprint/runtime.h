// Process-wide runtime setup: thread counts and device choice.
#pragma once

#include <torch/types.h>

#include <string>

namespace sprint {

// Sets LibTorch's intra-op thread count explicitly (it was seen defaulting to 1). n <= 0 means "all cores"
// (std::thread::hardware_concurrency, or $SPRINT_THREADS when set). Returns the count in effect.
// The first call also tells glibc's malloc to keep freed large blocks for reuse instead of returning them to the
// system (mallopt M_MMAP_THRESHOLD 1 GiB, M_TRIM_THRESHOLD INT_MAX): fresh pages for every large tensor cost a
// page fault per 4 KiB. The process keeps its peak heap size.
// n < 0, n > kMaxThreads or a $SPRINT_THREADS that is not such a number throws sprint::Error.
constexpr int kMaxThreads = 1024;
int init_threads(int n = 0);

// The same malloc settings as environment variables ("MALLOC_MMAP_THRESHOLD_=... MALLOC_TRIM_THRESHOLD_=..."), for
// a child process: sprint-bench gives them to the diffusers scripts so both sides run with the same allocator.
std::string malloc_settings_env();

// How many threads the library's own CPU loops (at::parallel_for in its hand-written kernels) run on right now:
// torch::get_num_threads() when they are built with OpenMP as LibTorch is, 1 when they are not.
int parallel_loop_threads();

// "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1". Throws sprint::Error with the reason when
// CUDA is asked for but unavailable (CPU-only build, no driver, no device).
torch::Device pick_device(const std::string& name);

bool cuda_available();

// Waits for the work queued on `device` (no-op on the CPU). Stage timings call it at stage boundaries, so a CUDA
// stage's time is its own and not the next stage's.
void synchronize(const torch::Device& device);

// One line describing the build and the device: "LibTorch 2.15.0, CPU (2 threads)" / "... CUDA (NVIDIA H100)".
std::string describe_runtime(const torch::Device& device);

}  // namespace sprint
