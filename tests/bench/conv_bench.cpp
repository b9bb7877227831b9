// sprint-bench --conv: the DC-AE's 3x3 convolutions (f32c32, every stride-1 shape of the encoder and decoder at
// one image size) three ways in the same run, float32 on the CPU: torch's convolution on NCHW tensors (what
// diffusers runs), torch's convolution on channels-last tensors, and sprint's Winograd F(4x4, 3x3) path
// (core/src/cpu/fast_conv.h, private to core). Prints milliseconds, the direct-equivalent GFLOP/s, the Winograd/torch ratio and the
// NMSE of the Winograd output against torch's. A tool, not a test: nothing here asserts.
#include "conv_bench.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

#include "cpu/fast_conv.h"
#include "sprint/runtime.h"

namespace sprint::bench {

namespace {
using Clock = std::chrono::steady_clock;
using sprint::cpu::winograd_conv3x3;
using sprint::cpu::winograd_filter;

struct ConvShape {
  const char* where;
  int64_t c_in, c_out, side_div;  // image side / side_div = the feature map's side
  int count;                      // how many convolutions of this shape one encode + decode runs
};

// f32c32 (dc-ae-f32c32-sana-1.0): ResBlock stages 0-2 (128, 256, 512 channels at 1, 1/2, 1/4 of the image side),
// the "interpolate" up-block convolutions, and the encoder's and decoder's conv_in/conv_out. Counts: encoder 2 and
// decoder 3 ResBlocks per stage, 2 convolutions each.
const std::vector<ConvShape> kShapes = {
    {"enc conv_in", 3, 128, 1, 1},          {"stage0 res", 128, 128, 1, 10},      {"stage1 res", 256, 256, 2, 10},
    {"stage2 res", 512, 512, 4, 10},        {"dec up 1->0", 256, 128, 1, 1},      {"dec up 2->1", 512, 256, 2, 1},
    {"dec up 3->2", 512, 512, 4, 1},        {"dec up 4->3", 1024, 512, 8, 1},     {"dec conv_out", 128, 3, 1, 1},
};

double median_ms(const std::function<void()>& f, int repeats) {
  f();  // warm-up: allocations, oneDNN primitive creation, the Winograd filter
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = Clock::now();
    f();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}
}  // namespace

int run_conv_bench(int size, int repeats, const std::string& json_path) {
  torch::InferenceMode guard;
  torch::manual_seed(0);
  std::printf("DC-AE 3x3 convolutions at %dx%d, float32, %d threads, median of %d\n", size, size,
              torch::get_num_threads(), repeats);
  std::printf("%-13s %5s %5s %5s %4s | %9s %9s %9s | %7s %7s | %8s %8s | %9s\n", "shape", "C_in", "C_out", "side",
              "n", "NCHW ms", "ch-last", "Winograd", "Wg/NCHW", "Wg/CL", "NCHW GF", "Wg GF", "NMSE");
  double sum_nchw = 0, sum_cl = 0, sum_wg = 0;
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& s : kShapes) {
    const int64_t side = size / s.side_div;
    auto x = torch::randn({1, s.c_in, side, side});
    auto w = torch::randn({s.c_out, s.c_in, 3, 3}) / std::sqrt(9.0 * static_cast<double>(s.c_in));
    auto b = torch::randn({s.c_out});
    auto x_cl = x.contiguous(at::MemoryFormat::ChannelsLast);
    auto w_cl = w.contiguous(at::MemoryFormat::ChannelsLast);
    auto filter = winograd_filter(w);
    torch::Tensor ref, out;
    const double t_nchw = median_ms([&] { ref = torch::conv2d(x, w, b, 1, 1); }, repeats);
    const double t_cl = median_ms([&] { torch::conv2d(x_cl, w_cl, b, 1, 1); }, repeats);
    const double t_wg = median_ms([&] { out = winograd_conv3x3(x_cl, filter, b); }, repeats);
    const double err = (out - ref).pow(2).sum().item<double>() / ref.pow(2).sum().item<double>();
    const double gflop = 2.0 * 9 * static_cast<double>(s.c_in * s.c_out * side * side) / 1e9;
    std::printf("%-13s %5lld %5lld %5lld %4d | %9.1f %9.1f %9.1f | %7.2f %7.2f | %8.1f %8.1f | %9.2e\n", s.where,
                static_cast<long long>(s.c_in), static_cast<long long>(s.c_out), static_cast<long long>(side),
                s.count, t_nchw, t_cl, t_wg, t_wg / t_nchw, t_wg / t_cl, gflop / t_nchw * 1e3, gflop / t_wg * 1e3,
                err);
    std::fflush(stdout);
    sum_nchw += s.count * t_nchw;
    sum_cl += s.count * t_cl;
    sum_wg += s.count * t_wg;
    rows.push_back({{"shape", s.where}, {"c_in", s.c_in}, {"c_out", s.c_out}, {"side", side}, {"count", s.count},
                    {"nchw_ms", t_nchw}, {"channels_last_ms", t_cl}, {"winograd_ms", t_wg}, {"nmse", err}});
  }
  std::printf("weighted by count (one encode + decode): NCHW %.0f ms, channels-last %.0f ms, Winograd %.0f ms; "
              "Winograd/NCHW %.2f, Winograd/channels-last %.2f\n",
              sum_nchw, sum_cl, sum_wg, sum_wg / sum_nchw, sum_wg / sum_cl);
  if (!json_path.empty()) {
    std::ofstream(json_path) << nlohmann::json{{"size", size},
                                               {"threads", torch::get_num_threads()},
                                               {"repeats", repeats},
                                               {"rows", rows},
                                               {"total_nchw_ms", sum_nchw},
                                               {"total_channels_last_ms", sum_cl},
                                               {"total_winograd_ms", sum_wg}}
                                    .dump(2);
  }
  return 0;
}

}  // namespace sprint::bench
