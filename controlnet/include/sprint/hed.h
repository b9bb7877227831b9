// HED soft-edge network (ControlNetHED_Apache2, the "ControlNetHED.pth" annotator of lllyasviel/Annotators) and the
// photo -> scribble path the NVlabs sketch demo runs on uploads.
// Reference: https://github.com/NVlabs/Sana/blob/main/tools/controlnet/annotator/hed/__init__.py (HEDdetector,
//            which Sana's get_scribble_map calls without resizing internally);
//            https://github.com/huggingface/controlnet_aux/blob/master/src/controlnet_aux/hed/__init__.py
//            Maths: docs/maths.md#hed.
//
// Network: input RGB float in 0..255 (no /255) minus the learned `norm` (1, 3, 1, 1); five DoubleConvBlocks, blocks
// 2-5 starting with a 2x2 / stride-2 max-pool (floor); each block = n 3x3 convs (pad 1) each followed by ReLU, plus a
// 1x1 `projection` to one channel on the block output (no activation). Edge map: every projection resized to (H, W)
// with bilinear interpolation (the reference uses cv2.resize INTER_LINEAR on float32; for these upsamplings torch's
// bilinear with align_corners = false has the same sample positions and weights: both sample at
// (dst + 0.5) * in / out - 0.5 and clamp at the borders; float rounding aside, measured NMSE ~1e-16), mean of the five
// in float32, sigmoid in float64, * 255, clipped and truncated to uint8 (numpy astype).
// `safe_step` quantisation is not used by Sana's scribble path and not implemented.
//
// Cost: ~15 M parameters; at 1024^2 the forward took ~17 s on one CPU core here (random weights of the official
// size), so run it on the GPU, or at detect_resolution 512, and never per stroke (see scribble.h).
//
// Weights: ControlNetHED.pth is a pickled torch.save state dict; convert it once with
// controlnet/tools/convert_hed_to_safetensors.py and load the .safetensors with load_hed().
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sprint/cpu_conv.h"
#include "sprint/loader.h"
#include "sprint/scribble.h"

namespace sprint {

struct HEDConfig {
  std::array<int64_t, 5> channels = {64, 128, 256, 512, 512};  // output width of block1..block5 (official values)
  std::array<int, 5> convs = {2, 2, 3, 3, 3};                   // 3x3 convs per block
  // Widths and conv counts read from a checkpoint's keys and shapes (block{i}.convs.{j}.weight), so reduced test
  // networks load through the same path; load_state_dict then checks every tensor's shape against them.
  static HEDConfig from_archive(const safetensors::Archive& archive);
};

// DoubleConvBlock. Keys: convs.{j}.weight/bias, projection.weight/bias.
struct HEDBlockImpl : torch::nn::Module {
  HEDBlockImpl(int64_t in_channels, int64_t out_channels, int num_convs);
  // x: (B, in, H, W) -> {features (B, out, H', W'), projection (B, 1, H', W')}; H' = H / 2 (floor) when
  // down_sampling, else H.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x, bool down_sampling);

  torch::nn::ModuleList convs;  // Conv2d 3x3, pad 1; the ReLU after each is functional (no index in the state dict)
  torch::nn::Conv2d projection{nullptr};

  // Set by HEDImpl::prepare_for_inference: the convolutions run by the CPU engine (sprint/cpu_conv.h), or none.
  void use_cpu_engine(bool on);

 private:
  std::vector<torch::nn::Conv2d> conv_layers_;  // typed views of `convs`
  std::vector<CpuConv3x3> cpu_convs_;           // empty: torch's convolutions
};
TORCH_MODULE(HEDBlock);

// ControlNetHED_Apache2. Keys: norm, block1..block5.
struct HEDImpl : torch::nn::Module {
  explicit HEDImpl(const HEDConfig& config = {});
  // x: (B, 3, H, W) RGB float in 0..255. Returns the five side projections, projection i (1-based) of shape
  // (B, 1, H >> (i - 1), W >> (i - 1)) (each pooling floors).
  std::vector<torch::Tensor> forward(const torch::Tensor& x);

  // Moves the network to `device` and `dtype`, switches it to eval mode and makes the one choice of how its 3x3
  // convolutions run (docs/architecture.md#cpu-engine): on the CPU in float32 with fast_cpu, by the CPU engine's
  // Winograd path (sprint/cpu_conv.h; the same values up to float32 rounding), otherwise torch's convolutions.
  // load_hed calls it. The engine computes no gradients; train() returns to torch's convolutions.
  void prepare_for_inference(torch::Device device, torch::Dtype dtype, bool fast_cpu = true);
  void train(bool on = true) override;

  HEDConfig config;
  torch::Tensor norm;  // (1, 3, 1, 1)
  HEDBlock block1{nullptr}, block2{nullptr}, block3{nullptr}, block4{nullptr}, block5{nullptr};
};
TORCH_MODULE(HED);

// Loads a safetensors state dict (a file, or a folder holding one) with the official key names; the widths come from
// the file (HEDConfig::from_archive). Missing, unexpected or mis-shaped tensors throw sprint::Error naming all of
// them. Runs in fp32 unless `options` says otherwise; prepared for inference on options.device and options.dtype.
HED load_hed(const std::string& path, const LoadOptions& options = {});

// image: (H, W) / (H, W, 1|3|4) uint8 (HWC3 semantics, RGBA composited on white). Runs the network on its own
// device and dtype. Returns the edge probability (H, W) float64 in (0, 1) on the CPU (sigmoid of the mean
// projection, before quantisation).
torch::Tensor hed_edge_probability(HEDImpl& net, const torch::Tensor& image);

// The reference's uint8 edge map: uint8(clip(p * 255, 0, 255)), truncated. (H, W) uint8.
torch::Tensor hed_edge_map(HEDImpl& net, const torch::Tensor& image);

// Fallback soft-edge map when no HED weights are available: BT.601 luma in [0, 1], GaussianBlur sigma 1.5, Sobel
// gradient magnitude (3x3, scaled to luma units per px), mapped to 255 * (1 - exp(-|grad| / 0.05)), truncated to
// uint8. A sharp step of contrast >= ~0.3 saturates over a few px, like HED's response, so it survives nms's blur
// and > 127; weaker edges fade out. How it differs from HED: it is a pure intensity-gradient detector, so it answers
// to every contrast edge (texture, shadows, JPEG blocks) rather than to the object contours HED was trained on, it
// ignores colour differences of equal luma, and a thin dark line gives two gradient ridges (one per side) that nms
// merges only while the line is narrower than ~6 px. Good enough to try an imported photo; use the real weights
// for anything that matters. (H, W) uint8.
torch::Tensor soft_edge_map(const torch::Tensor& image);

// controlnet_aux resize_image: HWC3, then scale so the short side is `resolution`, round both sides to multiples of
// 64 (numpy round, half to even), resize with Lanczos-4 when enlarging, area when shrinking. (H', W', 3) uint8.
torch::Tensor resize_for_detection(const torch::Tensor& image, int64_t resolution);

// Photo (or any image) -> scribble map, as Sana's get_scribble_map(det="Scribble_HED", ...): HWC3; resize_image to
// `detect_resolution` when > 0 (the demo passes min(h, w) of the generation size; 0 keeps the input size); HED edge
// map (net != nullptr; pass hed.get()) or the soft_edge_map fallback (net == nullptr); then
// edge_to_scribble (nms(127, 3.0), blur sigma 3, > 4 -> 255, thickness). Returns (H', W') uint8 at the detection
// size, as the reference does; scribble_to_condition resizes it to the generation size.
torch::Tensor photo_to_scribble(const torch::Tensor& image, HEDImpl* net, int thickness = kDefaultScribbleThickness,
                                int64_t detect_resolution = 0);

}  // namespace sprint
