// Winograd F(4x4, 3x3) and F(6x6, 3x3) convolution and the DC-AE's resampling convolutions. See fast_conv.h and
// docs/maths.md#winograd.
#include "fast_conv.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <new>
#include <utility>
#include <variant>
#include <vector>

#include <sys/mman.h>

#include "simd.h"
#include "sprint/error.h"

namespace sprint::cpu {

// See fast_conv.h.
SPRINT_VECTOR_CLONES
void rms_norm_rows(const float* __restrict x, const float* __restrict r, const float* __restrict w,
                   const float* __restrict b, float eps, int64_t C, int64_t begin, int64_t end, float* __restrict y) {
  constexpr int64_t kLanes = 16;
  for (int64_t p = begin; p < end; ++p) {
    const float* xp = x + p * C;
    float acc[kLanes] = {};
    int64_t c = 0;
    for (; c + kLanes <= C; c += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) acc[l] += xp[c + l] * xp[c + l];
    float ss = 0.f;
    for (; c < C; ++c) ss += xp[c] * xp[c];
    for (int64_t l = 0; l < kLanes; ++l) ss += acc[l];
    const float s = 1.f / std::sqrt(ss / static_cast<float>(C) + eps);
    float* yp = y + p * C;
    const float* rp = r ? r + p * C : nullptr;
    for (int64_t k = 0; k < C; ++k) {
      float h = xp[k] * s * w[k];
      if (b) h += b[k];
      if (rp) h += rp[k];
      yp[k] = h;
    }
  }
}

namespace {
constexpr int64_t kBlock = 64;  // channels transformed together (the tile buffers stay in L1)
// Fewer input or output channels than this and the transforms cost more than the products save: an RGB conv_in
// (3 -> 128) or conv_out (128 -> 3) was 1.2-10x slower by Winograd than by oneDNN (sprint-bench --conv).
constexpr int64_t kMinChannels = 8;
// F(6x6, 3x3) from this output side on (winograd_tile). Measured on the 2-core development machine, F(6x6)
// over F(4x4) per convolution, both with their loops on 2 threads: 0.84-0.87x at 128 channels on 512x512,
// 0.85-0.90x at 256 on 256x256, 0.91-0.94x at 512 on 128x128, 0.88x at 128 and 0.91x at 256 on 96x96, but
// 1.05-1.5x at 64x64 with 32-512 channels (the 6x6 tiles overhang small images and their transforms cost more per
// point).
constexpr int64_t kLargeTileFrom = 96;

// Work memory per chunk of tiles: V (tiles x points x C_in) and M (tiles x points x C_out) floats. Chunks bound
// the memory of large images; the GEMMs run faster on larger chunks (sprint-bench --conv at 256x256, 2 threads:
// with 4 MiB chunks the products took 1.5-2.5x longer than with 64 MiB, and whole-image chunks gained little more).
constexpr int64_t kChunkBytes = int64_t{64} << 20;

// F(m x m, 3x3) for m = 4 or 6: an (m + 2)^2 input tile gives an m x m output tile.
template <int M>
struct Tile {
  static_assert(M == 4 || M == 6, "F(4x4, 3x3) and F(6x6, 3x3) only");
  static constexpr int64_t kOut = M;                // output tile side
  static constexpr int64_t kIn = M + 2;             // input tile side m + r - 1
  static constexpr int64_t kPoints = kIn * kIn;     // transformed points (GEMMs)
};

// silu(v) = v / (1 + e^-v) with e^x by Cody-Waite range reduction (x = n ln 2 + r, |r| <= ln 2 / 2) and the
// Cephes expf polynomial (relative error about 1e-7, as Sleef's expf that torch.silu uses): plain arithmetic, so
// the loops that call it vectorise. Arguments below -87 give e^-v = 2^127 at most, hence silu -> -0 as it should.
inline float silu(float v) {
  const float x = std::clamp(-v, -87.f, 87.f);
  const float n = std::nearbyint(x * 1.44269504088896341f);
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const float scale = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return v / (1.f + p * scale);
}

// The 1-D input transform B^T d of m + 2 n-channel vectors d[0..m+2) into m + 2 vectors `step` apart at out.
// F(4x4), points 0, 1, -1, 2, -2, infinity; rows of B^T:
//   [4, 0, -5, 0, 1, 0] [0, -4, -4, 1, 1, 0] [0, 4, -4, -1, 1, 0] [0, -2, -1, 2, 1, 0] [0, 2, -1, -2, 1, 0]
//   [0, 4, 0, -5, 0, 1]
// F(6x6), points 0, 1, -1, 2, -2, 1/2, -1/2, infinity:
//   [1, 0, -21/4, 0, 21/4, 0, -1, 0] [0, 1, 1, -17/4, -17/4, 1, 1, 0] [0, -1, 1, 17/4, -17/4, -1, 1, 0]
//   [0, 1/2, 1/4, -5/2, -5/4, 2, 1, 0] [0, -1/2, 1/4, 5/2, -5/4, -2, 1, 0] [0, 2, 4, -5/2, -5, 1/2, 1, 0]
//   [0, -2, 4, 5/2, -5, -1/2, 1, 0] [0, -1, 0, 21/4, 0, -21/4, 0, 1]
// Inlined into the vectorised tile functions; ivdep: the vectors never overlap.
#define SPRINT_R const float* __restrict
#define SPRINT_W float* __restrict
[[gnu::always_inline]] inline void input_pass4(SPRINT_R d0, SPRINT_R d1, SPRINT_R d2, SPRINT_R d3, SPRINT_R d4,
                                               SPRINT_R d5, int64_t n, SPRINT_W t0, SPRINT_W t1, SPRINT_W t2,
                                               SPRINT_W t3, SPRINT_W t4, SPRINT_W t5) {
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
}
[[gnu::always_inline]] inline void input_pass6(SPRINT_R d0, SPRINT_R d1, SPRINT_R d2, SPRINT_R d3, SPRINT_R d4,
                                               SPRINT_R d5, SPRINT_R d6, SPRINT_R d7, int64_t n, SPRINT_W t0,
                                               SPRINT_W t1, SPRINT_W t2, SPRINT_W t3, SPRINT_W t4, SPRINT_W t5,
                                               SPRINT_W t6, SPRINT_W t7) {
  for (int64_t c = 0; c < n; ++c) {
    t0[c] = d0[c] - d6[c] + 5.25f * (d4[c] - d2[c]);
    t7[c] = d7[c] - d1[c] + 5.25f * (d3[c] - d5[c]);
    const float a = d2[c] + d6[c] - 4.25f * d4[c], b = d1[c] + d5[c] - 4.25f * d3[c];
    t1[c] = a + b;
    t2[c] = a - b;
    const float e = d6[c] + 0.25f * d2[c] - 1.25f * d4[c], f = 0.5f * d1[c] - 2.5f * d3[c] + 2.f * d5[c];
    t3[c] = e + f;
    t4[c] = e - f;
    const float g = d6[c] + 4.f * d2[c] - 5.f * d4[c], h = 2.f * d1[c] - 2.5f * d3[c] + 0.5f * d5[c];
    t5[c] = g + h;
    t6[c] = g - h;
  }
}
template <int M>
[[gnu::always_inline]] inline void input_pass(const float* const* d, int64_t n, float* out, int64_t s) {
  if constexpr (M == 4)
    input_pass4(d[0], d[1], d[2], d[3], d[4], d[5], n, out, out + s, out + 2 * s, out + 3 * s, out + 4 * s,
                out + 5 * s);
  else
    input_pass6(d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], n, out, out + s, out + 2 * s, out + 3 * s,
                out + 4 * s, out + 5 * s, out + 6 * s, out + 7 * s);
}

// The 1-D output transform A^T m of m + 2 n-channel vectors `in_step` apart into m vectors `out_step` apart, plus
// `add` (bias, or nothing), then silu when `act`.
// F(4x4): [1, 1, 1, 1, 1, 0] [0, 1, -1, 2, -2, 0] [0, 1, 1, 4, 4, 0] [0, 1, -1, 8, -8, 1].
// F(6x6): [1, 1, 1, 1, 1, 1, 1, 0] [0, 1, -1, 2, -2, 1/2, -1/2, 0] [0, 1, 1, 4, 4, 1/4, 1/4, 0]
//   [0, 1, -1, 8, -8, 1/8, -1/8, 0] [0, 1, 1, 16, 16, 1/16, 1/16, 0] [0, 1, -1, 32, -32, 1/32, -1/32, 1]
[[gnu::always_inline]] inline void output_pass4(SPRINT_R m0, SPRINT_R m1, SPRINT_R m2, SPRINT_R m3, SPRINT_R m4,
                                                SPRINT_R m5, int64_t n, SPRINT_R add, SPRINT_W t0, SPRINT_W t1,
                                                SPRINT_W t2, SPRINT_W t3) {
  for (int64_t c = 0; c < n; ++c) {
    const float p = m1[c] + m2[c], q = m1[c] - m2[c], r = m3[c] + m4[c], s = m3[c] - m4[c];
    const float b = add ? add[c] : 0.f;
    t0[c] = m0[c] + p + r + b;
    t1[c] = q + 2.f * s + b;
    t2[c] = p + 4.f * r + b;
    t3[c] = q + 8.f * s + m5[c] + b;
  }
}
[[gnu::always_inline]] inline void output_pass6(SPRINT_R m0, SPRINT_R m1, SPRINT_R m2, SPRINT_R m3, SPRINT_R m4,
                                                SPRINT_R m5, SPRINT_R m6, SPRINT_R m7, int64_t n, SPRINT_R add,
                                                SPRINT_W t0, SPRINT_W t1, SPRINT_W t2, SPRINT_W t3, SPRINT_W t4,
                                                SPRINT_W t5) {
  for (int64_t c = 0; c < n; ++c) {
    const float p1 = m1[c] + m2[c], q1 = m1[c] - m2[c], p2 = m3[c] + m4[c], q2 = m3[c] - m4[c];
    const float p3 = m5[c] + m6[c], q3 = m5[c] - m6[c];
    const float b = add ? add[c] : 0.f;
    t0[c] = m0[c] + p1 + p2 + p3 + b;
    t1[c] = q1 + 2.f * q2 + 0.5f * q3 + b;
    t2[c] = p1 + 4.f * p2 + 0.25f * p3 + b;
    t3[c] = q1 + 8.f * q2 + 0.125f * q3 + b;
    t4[c] = p1 + 16.f * p2 + 0.0625f * p3 + b;
    t5[c] = q1 + 32.f * q2 + 0.03125f * q3 + m7[c] + b;
  }
}
#undef SPRINT_R
#undef SPRINT_W
template <int M>
[[gnu::always_inline]] inline void output_pass(const float* in, int64_t is, int64_t n, float* out, int64_t os,
                                               const float* add, bool act) {
  if constexpr (M == 4)
    output_pass4(in, in + is, in + 2 * is, in + 3 * is, in + 4 * is, in + 5 * is, n, add, out, out + os,
                 out + 2 * os, out + 3 * os);
  else
    output_pass6(in, in + is, in + 2 * is, in + 3 * is, in + 4 * is, in + 5 * is, in + 6 * is, in + 7 * is, n, add,
                 out, out + os, out + 2 * os, out + 3 * os, out + 4 * os, out + 5 * os);
  if (!act) return;
  for (int k = 0; k < M; ++k) {
    float* __restrict o = out + k * os;
    for (int64_t c = 0; c < n; ++c) o[c] = silu(o[c]);
  }
}

// Input transform V = B^T d B of one tile for n channels: src[r * (m + 2) + s] points at the n contiguous channels
// of tile pixel (r, s) (a zero vector outside the image); V point (i, j) goes to v + (i * (m + 2) + j) * ldv.
template <int M>
SPRINT_VECTOR_CLONES void input_tile(const float* const* src, int64_t n, float* __restrict tmp, float* __restrict v,
                                     int64_t ldv) {
  constexpr int64_t K = Tile<M>::kIn;
  const float* d[K];
  for (int64_t j = 0; j < K; ++j) {  // columns
    for (int64_t i = 0; i < K; ++i) d[i] = src[i * K + j];
    input_pass<M>(d, n, tmp + j * kBlock, K * kBlock);
  }
  for (int64_t i = 0; i < K; ++i) {  // rows
    for (int64_t j = 0; j < K; ++j) d[j] = tmp + (i * K + j) * kBlock;
    input_pass<M>(d, n, v + i * K * ldv, ldv);
  }
}

// Output transform Y = A^T m A (+ bias, then silu when asked) of one tile for n channels: point k of m at
// m + k * ldm; Y(i, j) goes to y + i * y_row + j * y_col.
template <int M>
SPRINT_VECTOR_CLONES void output_tile(const float* __restrict m, int64_t ldm, int64_t n, const float* __restrict bias,
                                      bool act, float* __restrict tmp, float* __restrict y, int64_t y_row,
                                      int64_t y_col) {
  constexpr int64_t K = Tile<M>::kIn;
  for (int64_t j = 0; j < K; ++j) output_pass<M>(m + j * ldm, K * ldm, n, tmp + j * kBlock, K * kBlock, nullptr, false);
  for (int64_t i = 0; i < M; ++i) output_pass<M>(tmp + i * K * kBlock, kBlock, n, y + i * y_row, y_col, bias, act);
}

// Output grid geometry: th x tw tiles of m x m per image, tiles numbered (b * th + ty) * tw + tx. The convolution's
// input is H x W too: x itself (up = 0) or x upsampled 2x by nearest (up = 1, x is (H / 2) x (W / 2)).
struct Grid {
  int64_t B, C, O, H, W, th, tw;
  int up = 0;
  bool silu = false;       // the output transform's epilogue
  int64_t repeats = 0;     // > 0: add the DC-AE up-shortcut of x (winograd_upsample_conv3x3), see transform_outputs
  // Set: the output transform ends with the RMSNorm over channels and the residual add (winograd_conv3x3_norm).
  const float* norm_weight = nullptr;
  const float* norm_bias = nullptr;
  float norm_eps = 0.f;
  const float* residual = nullptr;
  int64_t tiles() const { return B * th * tw; }
};

// Tiles [begin, end) of channels-last x into V (tile t at row t - t0; points x C values per tile, contiguous, so
// the writes are sequential).
template <int M>
void transform_inputs(const float* x, const Grid& g, int64_t t0, int64_t begin, int64_t end, float* V) {
  using T = Tile<M>;
  alignas(64) static const float zeros[kBlock] = {};
  alignas(64) float tmp[T::kPoints * kBlock];
  const float* src[T::kPoints];
  const int64_t Hs = g.H >> g.up, Ws = g.W >> g.up;  // x's size
  for (int64_t t = begin; t < end; ++t) {
    const int64_t tx = t % g.tw, ty = (t / g.tw) % g.th, b = t / (g.tw * g.th);
    const int64_t y0 = ty * T::kOut - 1, x0 = tx * T::kOut - 1;  // padding 1
    float* v = V + (t - t0) * T::kPoints * g.C;
    for (int64_t c0 = 0; c0 < g.C; c0 += kBlock) {
      for (int64_t r = 0; r < T::kIn; ++r)
        for (int64_t s = 0; s < T::kIn; ++s) {
          const int64_t yy = y0 + r, xx = x0 + s;
          src[r * T::kIn + s] = yy < 0 || yy >= g.H || xx < 0 || xx >= g.W
                                    ? zeros
                                    : x + ((b * Hs + (yy >> g.up)) * Ws + (xx >> g.up)) * g.C + c0;
        }
      input_tile<M>(src, std::min(kBlock, g.C - c0), tmp, v + c0, g.C);
    }
  }
}

// out[o] += src[index[o]] for o < n.
SPRINT_VECTOR_CLONES
void add_gathered(float* __restrict out, const float* __restrict src, const int32_t* __restrict index, int64_t n) {
  for (int64_t o = 0; o < n; ++o) out[o] += src[index[o]];
}

// Tiles [begin, end) of M (tile t at row t - t0; points x O values per tile) back to the tiles' pixels of
// channels-last y, adding bias, applying silu when g.silu, and adding the DC-AE up-shortcut of x when `shortcut`
// is given: output channel o of phase (a, b) (pixel parity) is channel o * 4 + a * 2 + b of
// repeat_interleave(x), so shortcut[(a * 2 + b) * O + o] = (o * 4 + a * 2 + b) / repeats indexes x's channels.
template <int M>
void transform_outputs(const float* Mt, const float* x, const int32_t* shortcut, const Grid& g, int64_t t0,
                       int64_t begin, int64_t end, const float* bias, float* y) {
  using T = Tile<M>;
  constexpr int64_t S = T::kOut;
  alignas(64) float tmp[T::kPoints * kBlock];
  alignas(64) float edge[S * S * kBlock];  // a border tile's full m x m result
  thread_local std::vector<float> whole;   // with the norm: the tile's m x m pixels of all O channels
  if (g.norm_weight) whole.resize(S * S * g.O);
  for (int64_t t = begin; t < end; ++t) {
    const int64_t tx = t % g.tw, ty = (t / g.tw) % g.th, b = t / (g.tw * g.th);
    const int64_t y0 = ty * S, x0 = tx * S;
    const bool inside = y0 + S <= g.H && x0 + S <= g.W;
    const float* m = Mt + (t - t0) * T::kPoints * g.O;
    if (g.norm_weight) {
      // Every channel block into the tile buffer, then the norm and the residual per pixel row of the tile.
      for (int64_t o0 = 0; o0 < g.O; o0 += kBlock)
        output_tile<M>(m + o0, g.O, std::min(kBlock, g.O - o0), bias ? bias + o0 : nullptr, false, tmp,
                       whole.data() + o0, S * g.O, g.O);
      const int64_t cols = std::min(S, g.W - x0);
      for (int64_t i = 0; i < S && y0 + i < g.H; ++i) {
        const int64_t pixel = (b * g.H + y0 + i) * g.W + x0;
        rms_norm_rows(whole.data() + i * S * g.O, g.residual + pixel * g.O, g.norm_weight, g.norm_bias, g.norm_eps,
                      g.O, 0, cols, y + pixel * g.O);
      }
      continue;
    }
    for (int64_t o0 = 0; o0 < g.O; o0 += kBlock) {
      const int64_t n = std::min(kBlock, g.O - o0);
      const float* bo = bias ? bias + o0 : nullptr;
      float* dst = y + ((b * g.H + y0) * g.W + x0) * g.O + o0;
      if (inside) {
        output_tile<M>(m + o0, g.O, n, bo, g.silu, tmp, dst, g.W * g.O, g.O);
      } else {
        output_tile<M>(m + o0, g.O, n, bo, g.silu, tmp, edge, S * kBlock, kBlock);
        for (int64_t i = 0; i < S && y0 + i < g.H; ++i)
          for (int64_t j = 0; j < S && x0 + j < g.W; ++j)
            std::copy_n(edge + (i * S + j) * kBlock, n, dst + i * g.W * g.O + j * g.O);
      }
      if (!shortcut) continue;
      // The DC-AE up-shortcut: output pixel (Y, X) adds x's pixel (Y / 2, X / 2) gathered by the phase's table.
      for (int64_t i = 0; i < S && y0 + i < g.H; ++i)
        for (int64_t j = 0; j < S && x0 + j < g.W; ++j) {
          const int64_t Y = y0 + i, X = x0 + j;
          const float* px = x + ((b * (g.H / 2) + Y / 2) * (g.W / 2) + X / 2) * g.C;
          add_gathered(dst + i * g.W * g.O + j * g.O, px, shortcut + ((Y % 2) * 2 + X % 2) * g.O + o0, n);
        }
    }
  }
}

// Per-thread work memory (V and M), kept between calls: fresh pages for every convolution cost page faults. The
// GEMMs read V and write M in rows points x C (points x O) floats apart, a new 4 KiB page for nearly every row; in
// 2 MiB pages (transparent huge pages, asked for with madvise where the kernel leaves them to the program) the TLB
// holds them.
class Workspace {
 public:
  ~Workspace() { release(); }
  float* get(int64_t floats) {
    const size_t need = static_cast<size_t>(floats) * sizeof(float);
    if (need > bytes_) {
      release();
      const size_t bytes = (need + kHuge - 1) / kHuge * kHuge;
      void* p = mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      map_ = p;
      mapped_ = bytes + kHuge;
      // The first 2 MiB boundary: huge pages need aligned ranges.
      base_ = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(p) + kHuge - 1) / kHuge * kHuge);
      bytes_ = bytes;
#ifdef MADV_HUGEPAGE
      madvise(base_, bytes_, MADV_HUGEPAGE);  // advice only: without it the memory works the same
#endif
    }
    return reinterpret_cast<float*>(base_);
  }

 private:
  static constexpr size_t kHuge = size_t{2} << 20;
  void release() {
    if (map_) munmap(map_, mapped_);
    map_ = nullptr;
    bytes_ = mapped_ = 0;
  }
  void* map_ = nullptr;
  char* base_ = nullptr;
  size_t bytes_ = 0, mapped_ = 0;
};

float* workspace(int64_t floats) {
  thread_local Workspace buffer;
  return buffer.get(floats);
}
}  // namespace

int winograd_tile(int64_t height, int64_t width) {
  return std::min(height, width) >= kLargeTileFrom ? 6 : 4;
}

torch::Tensor winograd_filter(const torch::Tensor& weight, int tile) {
  SPRINT_CHECK(weight.dim() == 4 && weight.size(2) == 3 && weight.size(3) == 3,
               "winograd_filter: expected a (C_out, C_in, 3, 3) weight, got ", weight.sizes());
  SPRINT_CHECK(tile == 4 || tile == 6, "winograd_filter: the tile must be 4 (F(4x4, 3x3)) or 6 (F(6x6, 3x3)), got ",
               tile);
  torch::NoGradGuard no_grad;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  // G ((m + 2) x 3), row k = [1, p, p^2] / N_k for the interpolation point p of row k (infinity: [0, 0, 1]), in
  // the order of input_pass and output_pass.
  const auto G = tile == 4 ? torch::tensor({1.0 / 4, 0.0, 0.0,                  //
                                            -1.0 / 6, -1.0 / 6, -1.0 / 6,       //
                                            -1.0 / 6, 1.0 / 6, -1.0 / 6,        //
                                            1.0 / 24, 1.0 / 12, 1.0 / 6,        //
                                            1.0 / 24, -1.0 / 12, 1.0 / 6,       //
                                            0.0, 0.0, 1.0},
                                           opts)
                           : torch::tensor({1.0, 0.0, 0.0,                      //
                                            -2.0 / 9, -2.0 / 9, -2.0 / 9,       //
                                            -2.0 / 9, 2.0 / 9, -2.0 / 9,        //
                                            1.0 / 90, 1.0 / 45, 2.0 / 45,       //
                                            1.0 / 90, -1.0 / 45, 2.0 / 45,      //
                                            32.0 / 45, 16.0 / 45, 8.0 / 45,     //
                                            32.0 / 45, -16.0 / 45, 8.0 / 45,    //
                                            0.0, 0.0, 1.0},
                                           opts);
  const int64_t K = tile + 2;
  const auto Gm = G.view({K, 3});
  auto g = weight.detach().to(torch::kCPU, torch::kFloat64);
  auto u = torch::matmul(torch::matmul(Gm, g), Gm.t());  // (C_out, C_in, K, K)
  return u.permute({2, 3, 1, 0}).reshape({K * K, weight.size(1), weight.size(0)}).to(torch::kFloat32).contiguous();
}

namespace {
// The checks every entry point makes: a float32 CPU (B, C, H, W) input, a float32 contiguous filter for
// filter_in == C input channels, and O bias values.
void check_input(const char* what, const torch::Tensor& x, const torch::Tensor& filter, int64_t filter_in,
                 const torch::Tensor& bias, int64_t O) {
  SPRINT_CHECK(x.dim() == 4 && x.scalar_type() == torch::kFloat32 && x.device().is_cpu(), what,
               ": expected a float32 CPU (B, C, H, W) input, got ", x.sizes(), " ", x.scalar_type(), " on ",
               x.device());
  SPRINT_CHECK(filter.scalar_type() == torch::kFloat32 && filter.is_contiguous() && filter_in == x.size(1), what,
               ": the filter (", filter.sizes(), ") does not match the input's ", x.size(1), " channels");
  SPRINT_CHECK(!bias.defined() || (bias.numel() == O && bias.scalar_type() == torch::kFloat32), what,
               ": bias must hold ", O, " float32 values");
}

// The Winograd path F(m x m, 3x3) for winograd_conv3x3 and winograd_upsample_conv3x3 (g filled in by winograd).
template <int M>
torch::Tensor winograd_tiles(const torch::Tensor& x, const torch::Tensor& filter, const torch::Tensor& b, Grid g) {
  using T = Tile<M>;
  g.th = (g.H + T::kOut - 1) / T::kOut;
  g.tw = (g.W + T::kOut - 1) / T::kOut;
  auto y = torch::empty({g.B, g.O, g.H, g.W}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (y.numel() == 0) return y;

  const int64_t per_tile = T::kPoints * (g.C + g.O);
  const float* xp = x.data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  const auto opts = x.options();
  // The GEMMs (nt x C) * (C x O), one per point, of tiles [t0, t0 + nt) at V, M; point k's rows are points x C
  // (points x O) apart.
  auto products = [&](float* V, float* Mt, int64_t nt) {
    for (int64_t k = 0; k < T::kPoints; ++k) {
      auto v = torch::from_blob(V + k * g.C, {nt, g.C}, {T::kPoints * g.C, 1}, opts);
      auto m = torch::from_blob(Mt + k * g.O, {nt, g.O}, {T::kPoints * g.O, 1}, opts);
      at::mm_out(m, v, filter[k]);
    }
  };
  // Chunks of tiles: transform all of them (every thread), then the large GEMMs (threaded by the BLAS), then
  // transform back. This beat per-thread blocks of tiles kept in cache with single-threaded GEMMs: at 128 -> 128
  // channels, blocks of 28 tiles took 2.2x longer (sprint-bench --conv at 256x256).
  const int64_t chunk = std::clamp<int64_t>(kChunkBytes / (per_tile * static_cast<int64_t>(sizeof(float))), 1, g.tiles());
  float* V = workspace(chunk * per_tile);
  float* Mt = V + chunk * T::kPoints * g.C;
  std::vector<int32_t> shortcut;
  if (g.repeats > 0)
    for (int64_t phase = 0; phase < 4; ++phase)
      for (int64_t o = 0; o < g.O; ++o) shortcut.push_back(static_cast<int32_t>((o * 4 + phase) / g.repeats));
  const int32_t* sp = shortcut.empty() ? nullptr : shortcut.data();
  for (int64_t t0 = 0; t0 < g.tiles(); t0 += chunk) {
    const int64_t t1 = std::min(g.tiles(), t0 + chunk);
    at::parallel_for(t0, t1, 4, [&](int64_t begin, int64_t end) { transform_inputs<M>(xp, g, t0, begin, end, V); });
    products(V, Mt, t1 - t0);
    at::parallel_for(t0, t1, 4,
                     [&](int64_t begin, int64_t end) { transform_outputs<M>(Mt, xp, sp, g, t0, begin, end, bp, yp); });
  }
  return y;
}

// The checks and the geometry for every Winograd entry point: `what` names the caller in messages; g.B, g.C,
// g.O, g.H, g.W are filled in here from the input (H and W doubled when g.up); the filter's point count picks
// F(4x4) or F(6x6).
torch::Tensor winograd(const char* what, const torch::Tensor& input, const torch::Tensor& filter,
                       const torch::Tensor& bias, Grid g) {
  SPRINT_CHECK(filter.dim() == 3 && (filter.size(0) == Tile<4>::kPoints || filter.size(0) == Tile<6>::kPoints), what,
               ": expected a (36 or 64, C_in, C_out) filter from winograd_filter, got ", filter.sizes());
  const int64_t O = filter.size(2);
  check_input(what, input, filter, filter.size(1), bias, O);
  SPRINT_CHECK(g.repeats <= 0 || input.size(1) * g.repeats == 4 * O, what, ": a shortcut of ", g.repeats,
               " repeats needs C_in * repeats (", input.size(1) * g.repeats, ") == 4 * C_out (", 4 * O, ")");
  g.B = input.size(0);
  g.C = input.size(1);
  g.O = O;
  g.H = input.size(2) << g.up;
  g.W = input.size(3) << g.up;
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast);
  const auto b = bias.defined() ? bias.contiguous() : bias;
  return filter.size(0) == Tile<4>::kPoints ? winograd_tiles<4>(x, filter, b, g) : winograd_tiles<6>(x, filter, b, g);
}
}  // namespace

torch::Tensor winograd_conv3x3(const torch::Tensor& x, const torch::Tensor& filter, const torch::Tensor& bias,
                               bool silu) {
  Grid g{};
  g.silu = silu;
  return winograd("winograd_conv3x3", x, filter, bias, g);
}

torch::Tensor winograd_conv3x3_norm(const torch::Tensor& x, const torch::Tensor& filter, const torch::Tensor& bias,
                                   const torch::Tensor& norm_weight, const torch::Tensor& norm_bias, double eps,
                                   const torch::Tensor& residual) {
  const int64_t O = filter.dim() == 3 ? filter.size(2) : -1;
  auto f32_cpu = [](const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat32; };
  SPRINT_CHECK(norm_weight.numel() == O && f32_cpu(norm_weight) &&
                   (!norm_bias.defined() || (norm_bias.numel() == O && f32_cpu(norm_bias))),
               "winograd_conv3x3_norm: the norm's weight and bias must hold ", O, " float32 values");
  SPRINT_CHECK(x.dim() == 4 && residual.dim() == 4 && residual.size(0) == x.size(0) && residual.size(1) == O &&
                   residual.size(2) == x.size(2) && residual.size(3) == x.size(3) && f32_cpu(residual),
               "winograd_conv3x3_norm: the residual ", residual.sizes(), " must be float32 on the CPU and match the output");
  const auto w = norm_weight.contiguous();
  const auto nb = norm_bias.defined() ? norm_bias.contiguous() : norm_bias;
  const auto r = residual.contiguous(at::MemoryFormat::ChannelsLast);
  Grid g{};
  g.norm_weight = w.data_ptr<float>();
  g.norm_bias = nb.defined() ? nb.data_ptr<float>() : nullptr;
  g.norm_eps = static_cast<float>(eps);
  g.residual = r.data_ptr<float>();
  return winograd("winograd_conv3x3_norm", x, filter, bias, g);
}

torch::Tensor winograd_upsample_conv3x3(const torch::Tensor& x, const torch::Tensor& filter, const torch::Tensor& bias,
                                        int64_t shortcut_repeats) {
  Grid g{};
  g.up = 1;
  g.repeats = shortcut_repeats;
  return winograd("winograd_upsample_conv3x3", x, filter, bias, g);
}

bool winograd_applies(const torch::nn::detail::ConvNdOptions<2>& o) {
  auto all = [](const torch::ExpandingArray<2>& a, int64_t v) { return (*a)[0] == v && (*a)[1] == v; };
  const auto* pad = std::get_if<torch::ExpandingArray<2>>(&o.padding());
  return all(o.kernel_size(), 3) && all(o.stride(), 1) && all(o.dilation(), 1) && pad && all(*pad, 1) &&
         o.groups() == 1 && o.in_channels() >= kMinChannels && o.out_channels() >= kMinChannels &&
         std::holds_alternative<torch::enumtype::kZeros>(o.padding_mode());
}

torch::Tensor DerivedWeight::get(const torch::Tensor& weight,
                                 const std::function<torch::Tensor(const torch::Tensor&)>& make) {
  std::lock_guard<std::mutex> lock(mutex_);
  const void* of = weight.data_ptr();
  const int64_t version = weight._version();
  if (!value_.defined() || of_ != of || version_ != version) {
    value_ = make(weight);
    of_ = of;
    version_ = version;
  }
  return value_;
}

Conv::Conv(torch::nn::Conv2d conv) : conv_(std::move(conv)), winograd_(winograd_applies(conv_->options)) {}

torch::Tensor Conv::operator()(const torch::Tensor& x) {
  if (!winograd_) return conv_->forward(x);
  return winograd_conv3x3(x, filter(winograd_tile(x.size(2), x.size(3))), conv_->bias);
}

torch::Tensor Conv::silu(const torch::Tensor& x) {
  if (!winograd_) return torch::silu(conv_->forward(x));
  return winograd_conv3x3(x, filter(winograd_tile(x.size(2), x.size(3))), conv_->bias, /*silu=*/true);
}

torch::Tensor Conv::filter(int tile) {
  SPRINT_CHECK(tile == 4 || tile == 6, "Conv: the Winograd tile must be 4 or 6, got ", tile);
  return (tile == 4 ? filter4_ : filter6_).get(conv_->weight, [tile](const torch::Tensor& w) { return winograd_filter(w, tile); });
}

// ---- resampling convolutions -----------------------------------------------------------------------------------

namespace {
// im2col rows per chunk: up to this much memory for the rows. The BLAS packs its panels from them, so the chunk
// need not fit a cache; smaller chunks only add calls.
constexpr int64_t kRowChunkBytes = int64_t{16} << 20;

// Rows [p0, p1) of the im2col matrix of a 3x3, stride-2, padding-1 convolution over channels-last x (B, H, W, C),
// output grid Ho x Wo: row p (output pixel (b, i, j), p = (b * Ho + i) * Wo + j) holds tap (ky, kx) at columns
// (ky * 3 + kx) * C; outside the image is zero. The three taps of a kernel row are three neighbouring pixels, so
// an interior row is three copies of 3 C contiguous values.
void im2col3x3_stride2(const float* x, int64_t H, int64_t W, int64_t C, int64_t Ho, int64_t Wo, int64_t p0,
                       int64_t p1, float* A) {
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t j = p % Wo, i = (p / Wo) % Ho, b = p / (Wo * Ho);
    const int64_t x0 = 2 * j - 1;
    float* a = A + (p - p0) * 9 * C;
    for (int64_t ky = 0; ky < 3; ++ky, a += 3 * C) {
      const int64_t yy = 2 * i - 1 + ky;
      if (yy < 0 || yy >= H) {
        std::fill_n(a, 3 * C, 0.f);
        continue;
      }
      const float* row = x + (b * H + yy) * W * C;
      if (x0 >= 0 && x0 + 3 <= W) {
        std::copy_n(row + x0 * C, 3 * C, a);
        continue;
      }
      for (int64_t kx = 0; kx < 3; ++kx) {
        const int64_t xx = x0 + kx;
        if (xx < 0 || xx >= W)
          std::fill_n(a + kx * C, C, 0.f);
        else
          std::copy_n(row + xx * C, C, a + kx * C);
      }
    }
  }
}
}  // namespace

torch::Tensor im2col_filter(const torch::Tensor& weight) {
  SPRINT_CHECK(weight.dim() == 4 && weight.size(2) == 3 && weight.size(3) == 3,
               "im2col_filter: expected a (C_out, C_in, 3, 3) weight, got ", weight.sizes());
  torch::NoGradGuard no_grad;
  return weight.detach().to(torch::kCPU, torch::kFloat32).permute({2, 3, 1, 0}).reshape({9 * weight.size(1), weight.size(0)}).contiguous();
}

torch::Tensor conv3x3_stride2(const torch::Tensor& input, const torch::Tensor& filter, const torch::Tensor& bias,
                              int64_t group) {
  SPRINT_CHECK(filter.dim() == 2 && filter.size(0) % 9 == 0, "conv3x3_stride2: expected a (9 C_in, C_out) filter, got ",
               filter.sizes());
  const int64_t O = filter.size(1);
  check_input("conv3x3_stride2", input, filter, filter.size(0) / 9, bias, O);
  const int64_t B = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  const int64_t Ho = (H + 1) / 2, Wo = (W + 1) / 2;
  SPRINT_CHECK(group <= 0 || (H % 2 == 0 && W % 2 == 0 && 4 * C == group * O), "conv3x3_stride2: a shortcut of groups of ",
               group, " needs an even size (got ", H, "x", W, ") and 4 * C_in (", 4 * C, ") == ", group, " * C_out (",
               O, ")");
  const auto x = input.contiguous(at::MemoryFormat::ChannelsLast);
  auto y = torch::empty({B, O, Ho, Wo}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
  if (y.numel() == 0) return y;
  const auto b = bias.defined() ? bias.contiguous() : bias;
  const float* xp = x.data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  const int64_t rows = B * Ho * Wo;
  const int64_t chunk = std::clamp<int64_t>(kRowChunkBytes / (9 * C * static_cast<int64_t>(sizeof(float))), 1, rows);
  float* A = workspace(chunk * 9 * C);
  const float inv_group = group > 0 ? 1.f / static_cast<float>(group) : 0.f;
  for (int64_t p0 = 0; p0 < rows; p0 += chunk) {
    const int64_t p1 = std::min(rows, p0 + chunk);
    at::parallel_for(p0, p1, 16, [&](int64_t begin, int64_t end) {
      im2col3x3_stride2(xp, H, W, C, Ho, Wo, begin, end, A + (begin - p0) * 9 * C);
      // The GEMM adds onto the bias and the shortcut: unshuffled channel u = c * 4 + a * 2 + e is input channel c
      // at pixel (2i + a, 2j + e).
      for (int64_t p = begin; p < end; ++p) {
        float* out = yp + p * O;
        for (int64_t o = 0; o < O; ++o) out[o] = bp ? bp[o] : 0.f;
        if (group <= 0) continue;
        const int64_t j = p % Wo, i = (p / Wo) % Ho, bb = p / (Wo * Ho);
        const float* px = xp + ((bb * H + 2 * i) * W + 2 * j) * C;  // pixel (2i, 2j)
        for (int64_t o = 0; o < O; ++o) {
          float sum = 0.f;
          for (int64_t u = o * group; u < (o + 1) * group; ++u)
            sum += px[((u >> 1) & 1) * W * C + (u & 1) * C + (u >> 2)];
          out[o] += sum * inv_group;
        }
      }
    });
    auto out = torch::from_blob(yp + p0 * O, {p1 - p0, O}, x.options());
    out.addmm_(torch::from_blob(A, {p1 - p0, 9 * C}, x.options()), filter);
  }
  return y;
}

}  // namespace sprint::cpu
