// Process-wide runtime setup (core/src/runtime.cpp).
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "sprint/runtime.h"

using namespace sprint;

// The library's hand-written CPU loops (Winograd transforms, fused norms) run on every LibTorch thread. They are
// at::parallel_for loops, which LibTorch's headers compile to OpenMP: built without OpenMP they run on one thread
// and the DC-AE's fast path loses most of its gain, with no other symptom than time.
TEST(Runtime, ParallelLoopsUseEveryThread) {
  const int before = torch::get_num_threads();
  EXPECT_EQ(init_threads(2), 2);
  EXPECT_EQ(parallel_loop_threads(), 2);
  EXPECT_EQ(init_threads(1), 1);
  EXPECT_EQ(parallel_loop_threads(), 1);
  init_threads(before);
}
