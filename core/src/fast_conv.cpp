// Winograd F(4x4, 3x3) convolution. See include/sprint/fast_conv.h.
#include "sprint/fast_conv.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>

#include "simd.h"
#include "sprint/error.h"

namespace sprint {

namespace {
constexpr int64_t kOut = 4;      // output tile side m
constexpr int64_t kIn = 6;       // input tile side m + r - 1
constexpr int64_t kPoints = 36;  // kIn * kIn transformed points
constexpr int64_t kBlock = 64;   // channels transformed together (the tile buffers stay in L1)
// Fewer input or output channels than this and the transforms cost more than the products save: an RGB conv_in
// (3 -> 128) or conv_out (128 -> 3) was 1.2-10x slower by Winograd than by oneDNN (sprint-bench --conv).
constexpr int64_t kMinChannels = 8;

// Work memory per chunk of tiles: V (tiles x 36 x C_in) and M (tiles x 36 x C_out) floats. Chunks bound the
// memory of large images; the GEMMs run faster on larger chunks (sprint-bench --conv at 256x256, 2 threads: with
// 4 MiB chunks the products took 1.5-2.5x longer than with 64 MiB, and whole-image chunks gained little more).
constexpr int64_t kChunkBytes = int64_t{64} << 20;

// Input transform V = B^T d B of one 6x6 tile for n channels. d(r, s) = d + r * d_row + s * d_col points at n
// contiguous channels; V point (i, j) goes to v + (i * 6 + j) * ldv. B^T (points 0, 1, -1, 2, -2, infinity):
//   [4, 0, -5, 0, 1, 0] [0, -4, -4, 1, 1, 0] [0, 4, -4, -1, 1, 0] [0, -2, -1, 2, 1, 0] [0, 2, -1, -2, 1, 0]
//   [0, 4, 0, -5, 0, 1]
// Every pointer is restrict and tmp is local, so the loops over channels vectorise.
SPRINT_VECTOR_CLONES
void input_tile(const float* __restrict d, int64_t d_row, int64_t d_col, int64_t n, float* __restrict tmp,
                float* __restrict v, int64_t ldv) {
  // The 1-D transform of six n-channel vectors `in_step` apart into six `out_step` apart.
  auto pass = [n](const float* __restrict in, int64_t in_step, float* __restrict out, int64_t out_step) {
    const float *d0 = in, *d1 = in + in_step, *d2 = in + 2 * in_step, *d3 = in + 3 * in_step,
                *d4 = in + 4 * in_step, *d5 = in + 5 * in_step;
    float *t0 = out, *t1 = out + out_step, *t2 = out + 2 * out_step, *t3 = out + 3 * out_step,
          *t4 = out + 4 * out_step, *t5 = out + 5 * out_step;
#pragma GCC ivdep
    for (int64_t c = 0; c < n; ++c) {
      const float a = d4[c] - 4.f * d2[c], b = d3[c] - 4.f * d1[c];
      const float e = d4[c] - d2[c], f = 2.f * (d3[c] - d1[c]);
      t0[c] = 4.f * d0[c] - 5.f * d2[c] + d4[c];
      t1[c] = a + b;
      t2[c] = a - b;
      t3[c] = e + f;
      t4[c] = e - f;
      t5[c] = 4.f * d1[c] - 5.f * d3[c] + d5[c];
    }
  };
  for (int64_t j = 0; j < kIn; ++j) pass(d + j * d_col, d_row, tmp + j * kBlock, kIn * kBlock);  // columns
  for (int64_t i = 0; i < kIn; ++i) pass(tmp + i * kIn * kBlock, kBlock, v + i * kIn * ldv, ldv);  // rows
}

// Output transform Y = A^T m A (+ bias) of one tile for n channels: point k of m at m + k * ldm; Y(i, j) goes to
// y + i * y_row + j * y_col. A^T: [1, 1, 1, 1, 1, 0] [0, 1, -1, 2, -2, 0] [0, 1, 1, 4, 4, 0] [0, 1, -1, 8, -8, 1].
SPRINT_VECTOR_CLONES
void output_tile(const float* __restrict m, int64_t ldm, int64_t n, const float* __restrict bias,
                 float* __restrict tmp, float* __restrict y, int64_t y_row, int64_t y_col) {
  // The 1-D transform of six n-channel vectors into four, plus `add` (bias or nothing).
  auto pass = [n](const float* __restrict in, int64_t in_step, float* __restrict out, int64_t out_step,
                  const float* __restrict add) {
    const float *m0 = in, *m1 = in + in_step, *m2 = in + 2 * in_step, *m3 = in + 3 * in_step,
                *m4 = in + 4 * in_step, *m5 = in + 5 * in_step;
    float *t0 = out, *t1 = out + out_step, *t2 = out + 2 * out_step, *t3 = out + 3 * out_step;
#pragma GCC ivdep
    for (int64_t c = 0; c < n; ++c) {
      const float p = m1[c] + m2[c], q = m1[c] - m2[c], r = m3[c] + m4[c], s = m3[c] - m4[c];
      const float b = add ? add[c] : 0.f;
      t0[c] = m0[c] + p + r + b;
      t1[c] = q + 2.f * s + b;
      t2[c] = p + 4.f * r + b;
      t3[c] = q + 8.f * s + m5[c] + b;
    }
  };
  for (int64_t j = 0; j < kIn; ++j) pass(m + j * ldm, kIn * ldm, tmp + j * kBlock, kIn * kBlock, nullptr);
  for (int64_t i = 0; i < kOut; ++i) pass(tmp + i * kIn * kBlock, kBlock, y + i * y_row, y_col, bias);
}

// Output grid geometry: th x tw tiles of 4x4 per image, tiles numbered (b * th + ty) * tw + tx.
struct Grid {
  int64_t B, C, O, H, W, th, tw;
  int64_t tiles() const { return B * th * tw; }
};

// Tiles [begin, end) of channels-last x into V (tile t at row t - t0; 36 x C values per tile, contiguous, so the
// writes are sequential).
void transform_inputs(const float* x, const Grid& g, int64_t t0, int64_t begin, int64_t end, float* V) {
  alignas(64) float d[kPoints * kBlock];  // a border tile, zero-padded
  alignas(64) float tmp[kPoints * kBlock];
  for (int64_t t = begin; t < end; ++t) {
    const int64_t tx = t % g.tw, ty = (t / g.tw) % g.th, b = t / (g.tw * g.th);
    const int64_t y0 = ty * kOut - 1, x0 = tx * kOut - 1;  // padding 1
    const bool inside = y0 >= 0 && x0 >= 0 && y0 + kIn <= g.H && x0 + kIn <= g.W;
    float* v = V + (t - t0) * kPoints * g.C;
    for (int64_t c0 = 0; c0 < g.C; c0 += kBlock) {
      const int64_t n = std::min(kBlock, g.C - c0);
      if (inside) {
        input_tile(x + ((b * g.H + y0) * g.W + x0) * g.C + c0, g.W * g.C, g.C, n, tmp, v + c0, g.C);
        continue;
      }
      for (int64_t r = 0; r < kIn; ++r)
        for (int64_t s = 0; s < kIn; ++s) {
          float* dst = d + (r * kIn + s) * kBlock;
          const int64_t yy = y0 + r, xx = x0 + s;
          if (yy < 0 || yy >= g.H || xx < 0 || xx >= g.W)
            std::fill(dst, dst + n, 0.f);
          else
            std::copy_n(x + ((b * g.H + yy) * g.W + xx) * g.C + c0, n, dst);
        }
      input_tile(d, kIn * kBlock, kBlock, n, tmp, v + c0, g.C);
    }
  }
}

// Tiles [begin, end) of M (tile t at row t - t0; 36 x O values per tile) back to the tiles' pixels of
// channels-last y, adding bias.
void transform_outputs(const float* M, const Grid& g, int64_t t0, int64_t begin, int64_t end, const float* bias,
                       float* y) {
  alignas(64) float tmp[kPoints * kBlock];
  alignas(64) float edge[kOut * kOut * kBlock];  // a border tile's full 4x4 result
  for (int64_t t = begin; t < end; ++t) {
    const int64_t tx = t % g.tw, ty = (t / g.tw) % g.th, b = t / (g.tw * g.th);
    const int64_t y0 = ty * kOut, x0 = tx * kOut;
    const bool inside = y0 + kOut <= g.H && x0 + kOut <= g.W;
    const float* m = M + (t - t0) * kPoints * g.O;
    for (int64_t o0 = 0; o0 < g.O; o0 += kBlock) {
      const int64_t n = std::min(kBlock, g.O - o0);
      const float* bo = bias ? bias + o0 : nullptr;
      float* dst = y + ((b * g.H + y0) * g.W + x0) * g.O + o0;
      if (inside) {
        output_tile(m + o0, g.O, n, bo, tmp, dst, g.W * g.O, g.O);
        continue;
      }
      output_tile(m + o0, g.O, n, bo, tmp, edge, kOut * kBlock, kBlock);
      for (int64_t i = 0; i < kOut && y0 + i < g.H; ++i)
        for (int64_t j = 0; j < kOut && x0 + j < g.W; ++j)
          std::copy_n(edge + (i * kOut + j) * kBlock, n, dst + i * g.W * g.O + j * g.O);
    }
  }
}

// Per-thread work memory (V and M), kept between calls: fresh pages for every convolution cost page faults.
float* workspace(int64_t floats) {
  thread_local torch::Tensor buffer;
  if (!buffer.defined() || buffer.numel() < floats) buffer = torch::empty({floats}, torch::kFloat32);
  return buffer.data_ptr<float>();
}
}  // namespace

torch::Tensor winograd_filter(const torch::Tensor& weight) {
  SPRINT_CHECK(weight.dim() == 4 && weight.size(2) == 3 && weight.size(3) == 3,
               "winograd_filter: expected a (C_out, C_in, 3, 3) weight, got ", weight.sizes());
  torch::NoGradGuard no_grad;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  // G (6x3): the filter transform for the points 0, 1, -1, 2, -2, infinity.
  const auto G = torch::tensor({1.0 / 4, 0.0, 0.0,                  //
                                -1.0 / 6, -1.0 / 6, -1.0 / 6,       //
                                -1.0 / 6, 1.0 / 6, -1.0 / 6,        //
                                1.0 / 24, 1.0 / 12, 1.0 / 6,        //
                                1.0 / 24, -1.0 / 12, 1.0 / 6,       //
                                0.0, 0.0, 1.0},
                               opts)
                     .view({6, 3});
  auto g = weight.detach().to(torch::kCPU, torch::kFloat64);
  auto u = torch::matmul(torch::matmul(G, g), G.t());  // (C_out, C_in, 6, 6)
  return u.permute({2, 3, 1, 0}).reshape({kPoints, weight.size(1), weight.size(0)}).to(torch::kFloat32).contiguous();
}

torch::Tensor winograd_conv3x3(const torch::Tensor& input, const torch::Tensor& filter, const torch::Tensor& bias) {
  SPRINT_CHECK(input.dim() == 4 && input.scalar_type() == torch::kFloat32 && input.device().is_cpu(),
               "winograd_conv3x3: expected a float32 CPU (B, C, H, W) input, got ", input.sizes(), " ",
               input.scalar_type(), " on ", input.device());
  SPRINT_CHECK(filter.dim() == 3 && filter.size(0) == kPoints && filter.size(1) == input.size(1) &&
                   filter.scalar_type() == torch::kFloat32 && filter.is_contiguous(),
               "winograd_conv3x3: the filter (", filter.sizes(), ") does not match the input's ", input.size(1),
               " channels");
  const int64_t O = filter.size(2);
  SPRINT_CHECK(!bias.defined() || (bias.numel() == O && bias.scalar_type() == torch::kFloat32),
               "winograd_conv3x3: bias must hold ", O, " float32 values");
  Grid g{input.size(0), input.size(1), O, input.size(2), input.size(3), 0, 0};
  g.th = (g.H + kOut - 1) / kOut;
  g.tw = (g.W + kOut - 1) / kOut;

  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast);
  auto y = torch::empty({g.B, O, g.H, g.W}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  const auto b = bias.defined() ? bias.contiguous() : bias;
  if (y.numel() == 0) return y;

  const int64_t per_tile = kPoints * (g.C + g.O);
  const float* xp = x.data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  const auto opts = x.options();
  // The 36 GEMMs (nt x C) * (C x O) of tiles [t0, t0 + nt) at V, M; point k's rows are 36 * C (36 * O) apart.
  auto products = [&](float* V, float* M, int64_t nt) {
    for (int64_t k = 0; k < kPoints; ++k) {
      auto v = torch::from_blob(V + k * g.C, {nt, g.C}, {kPoints * g.C, 1}, opts);
      auto m = torch::from_blob(M + k * g.O, {nt, g.O}, {kPoints * g.O, 1}, opts);
      at::mm_out(m, v, filter[k]);
    }
  };
  // Chunks of tiles: transform all of them (every thread), then 36 large GEMMs (threaded by the BLAS), then
  // transform back. This beat per-thread blocks of tiles kept in cache with single-threaded GEMMs: at 128 -> 128
  // channels, blocks of 28 tiles took 2.2x longer (sprint-bench --conv at 256x256).
  const int64_t chunk = std::clamp<int64_t>(kChunkBytes / (per_tile * static_cast<int64_t>(sizeof(float))), 1, g.tiles());
  float* V = workspace(chunk * per_tile);
  float* M = V + chunk * kPoints * g.C;
  for (int64_t t0 = 0; t0 < g.tiles(); t0 += chunk) {
    const int64_t t1 = std::min(g.tiles(), t0 + chunk);
    at::parallel_for(t0, t1, 4, [&](int64_t begin, int64_t end) { transform_inputs(xp, g, t0, begin, end, V); });
    products(V, M, t1 - t0);
    at::parallel_for(t0, t1, 4, [&](int64_t begin, int64_t end) { transform_outputs(M, g, t0, begin, end, bp, yp); });
  }
  return y;
}

bool winograd_applies(const torch::nn::detail::ConvNdOptions<2>& o, const torch::Tensor& weight, const torch::Tensor& bias,
                      const torch::Tensor& x) {
  auto all = [](const torch::ExpandingArray<2>& a, int64_t v) { return (*a)[0] == v && (*a)[1] == v; };
  const auto* pad = std::get_if<torch::ExpandingArray<2>>(&o.padding());
  return all(o.kernel_size(), 3) && all(o.stride(), 1) && all(o.dilation(), 1) && pad && all(*pad, 1) &&
         o.groups() == 1 && weight.size(0) >= kMinChannels && weight.size(1) >= kMinChannels &&
         std::holds_alternative<torch::enumtype::kZeros>(o.padding_mode()) && x.dim() == 4 &&
         x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && weight.scalar_type() == torch::kFloat32 &&
         (!bias.defined() || bias.scalar_type() == torch::kFloat32) && inference_only({&x, &weight, &bias});
}

bool inference_only(std::initializer_list<const torch::Tensor*> tensors) {
  if (!torch::GradMode::is_enabled()) return true;
  for (const auto* t : tensors)
    if (t->defined() && t->requires_grad()) return false;
  return true;
}

torch::Tensor FastConv2dImpl::forward(const torch::Tensor& x) {
  if (!winograd || !winograd_applies(options, weight, bias, x)) return torch::nn::Conv2dImpl::forward(x);
  torch::Tensor filter;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const void* of = weight.data_ptr();
    const int64_t version = weight._version();
    if (!filter_.defined() || filter_of_ != of || filter_version_ != version) {
      filter_ = winograd_filter(weight);
      filter_of_ = of;
      filter_version_ = version;
    }
    filter = filter_;
  }
  return winograd_conv3x3(x, filter, bias);
}

int set_winograd(torch::nn::Module& module, bool on) {
  int count = 0;
  for (const auto& m : module.modules(/*include_self=*/true))
    if (auto* conv = dynamic_cast<FastConv2dImpl*>(m.get())) {
      conv->winograd = on;
      ++count;
    }
  return count;
}

}  // namespace sprint
