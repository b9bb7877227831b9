// sprint-bench --conv (conv_bench.cpp).
#pragma once

#include <string>

namespace sprint::bench {

// Times the DC-AE's 3x3 convolution shapes at `size`: torch NCHW, torch channels-last, Winograd. Returns 0.
int run_conv_bench(int size, int repeats, const std::string& json_path);

}  // namespace sprint::bench
