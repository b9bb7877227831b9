// HED network and photo -> scribble. See include/sprint/hed.h and docs/maths.md#hed.
#include "sprint/hed.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "sprint/error.h"

namespace nn = torch::nn;

namespace sprint {

namespace {
constexpr int kBlocks = 5;

// soft_edge_map constants (see hed.h): pre-blur, and the gradient (luma units per px) at which the response reaches
// 1 - 1/e. A 0 -> 1 step blurred with sigma 1.5 peaks at a gradient of ~0.27, a 0.3 step at ~0.08 (-> 200).
constexpr double kSoftEdgeSigma = 1.5;
constexpr float kSoftEdgeScale = 0.05f;

std::string conv_key(int block, int j) { return str("block", block, ".convs.", j, ".weight"); }

cv::Mat as_mat_rgb(const torch::Tensor& rgb) {  // (H, W, 3) contiguous CPU uint8
  return cv::Mat(static_cast<int>(rgb.size(0)), static_cast<int>(rgb.size(1)), CV_8UC3, rgb.data_ptr());
}
}  // namespace

HEDConfig HEDConfig::from_archive(const safetensors::Archive& archive) {
  HEDConfig c;
  for (int i = 0; i < kBlocks; ++i) {
    const int block = i + 1;
    int n = 0;
    while (archive.contains(conv_key(block, n))) ++n;
    SPRINT_CHECK(n > 0, archive.source(), ": tensor '", conv_key(block, 0),
                 "' is missing (not a ControlNetHED state dict?)");
    const auto& shape = archive.info(conv_key(block, 0)).shape;
    SPRINT_CHECK(shape.size() == 4 && shape[0] > 0, archive.source(), ": tensor '", conv_key(block, 0),
                 "': expected a conv weight [out, in, 3, 3], got ", shape_str(shape));
    c.channels[i] = shape[0];
    c.convs[i] = n;
  }
  return c;
}

HEDBlockImpl::HEDBlockImpl(int64_t in_channels, int64_t out_channels, int num_convs) {
  convs = register_module("convs", nn::ModuleList());
  for (int j = 0; j < num_convs; ++j) {
    nn::Conv2d conv(nn::Conv2dOptions(j == 0 ? in_channels : out_channels, out_channels, 3).padding(1));
    convs->push_back(conv);
    conv_layers_.push_back(conv);
  }
  projection = register_module("projection", nn::Conv2d(nn::Conv2dOptions(out_channels, 1, 1)));
}

void HEDBlockImpl::use_cpu_engine(bool on) {
  cpu_convs_.clear();
  if (on)
    for (const auto& conv : conv_layers_) cpu_convs_.emplace_back(conv);
}

std::pair<torch::Tensor, torch::Tensor> HEDBlockImpl::forward(const torch::Tensor& x, bool down_sampling) {
  auto h = down_sampling ? torch::max_pool2d(x, /*kernel_size=*/{2, 2}, /*stride=*/{2, 2}) : x;
  for (size_t j = 0; j < conv_layers_.size(); ++j)
    h = torch::relu(cpu_convs_.empty() ? conv_layers_[j]->forward(h) : cpu_convs_[j](h));
  return {h, projection->forward(h)};
}

HEDImpl::HEDImpl(const HEDConfig& c) : config(c) {
  for (int i = 0; i < kBlocks; ++i)
    SPRINT_CHECK(c.channels[i] > 0 && c.convs[i] > 0, "HEDConfig: block", i + 1,
                 " needs channels > 0 and convs > 0, got ", c.channels[i], " and ", c.convs[i]);
  norm = register_parameter("norm", torch::zeros({1, 3, 1, 1}));
  HEDBlock* blocks[kBlocks] = {&block1, &block2, &block3, &block4, &block5};
  int64_t in = 3;
  for (int i = 0; i < kBlocks; ++i) {
    *blocks[i] = register_module(str("block", i + 1), HEDBlock(in, c.channels[i], c.convs[i]));
    in = c.channels[i];
  }
}

std::vector<torch::Tensor> HEDImpl::forward(const torch::Tensor& x) {
  SPRINT_CHECK(x.dim() == 4 && x.size(1) == 3, "HED: expected a (B, 3, H, W) RGB input, got ", x.sizes());
  auto h = x - norm;
  std::vector<torch::Tensor> projections;
  HEDBlock* blocks[kBlocks] = {&block1, &block2, &block3, &block4, &block5};
  for (int i = 0; i < kBlocks; ++i) {
    auto [features, projection] = (*blocks[i])->forward(h, /*down_sampling=*/i > 0);
    h = features;
    projections.push_back(projection);
  }
  return projections;
}

// The one decision point for the HED network (docs/architecture.md#cpu-engine).
void HEDImpl::prepare_for_inference(torch::Device device, torch::Dtype dtype, bool fast_cpu) {
  to(device, dtype);
  eval();
  const bool engine = fast_cpu && device.is_cpu() && dtype == torch::kFloat32;
  for (HEDBlock* b : {&block1, &block2, &block3, &block4, &block5}) (*b)->use_cpu_engine(engine);
}

void HEDImpl::train(bool on) {
  if (on)
    for (HEDBlock* b : {&block1, &block2, &block3, &block4, &block5}) (*b)->use_cpu_engine(false);
  torch::nn::Module::train(on);
}

HED load_hed(const std::string& path, const LoadOptions& options) {
  return with_context("loading HED weights from '" + path + "'", [&] {
    auto archive = safetensors::Archive::open(path);
    HED net(HEDConfig::from_archive(archive));
    load_state_dict(*net, archive, options);
    net->prepare_for_inference(options.device, options.dtype);
    return net;
  });
}

torch::Tensor hed_edge_probability(HEDImpl& net, const torch::Tensor& image) {
  torch::NoGradGuard no_grad;
  const auto rgb = with_context("hed_edge_probability", [&] { return to_rgb(image); });
  const int64_t H = rgb.size(0), W = rgb.size(1);
  SPRINT_CHECK(H >= 16 && W >= 16, "hed_edge_probability: image ", rgb.sizes().slice(0, 2),
               " is too small; HED pools four times and needs at least 16 x 16 px");
  auto x = rgb.to(net.norm.device()).permute({2, 0, 1}).unsqueeze(0).to(net.norm.scalar_type());  // (1, 3, H, W)
  const auto projections = net.forward(x);
  namespace F = torch::nn::functional;
  torch::Tensor sum;  // float32, summed in block order as numpy's mean over the stacked maps does
  for (const auto& p : projections) {
    auto e = p.to(torch::kFloat32);
    if (e.size(2) != H || e.size(3) != W)
      e = F::interpolate(e, F::InterpolateFuncOptions()
                                .size(std::vector<int64_t>{H, W})
                                .mode(torch::kBilinear)
                                .align_corners(false));
    sum = sum.defined() ? sum + e : e;
  }
  const auto mean = (sum / static_cast<float>(kBlocks)).to(torch::kCPU, torch::kFloat64).reshape({H, W});
  return 1.0 / (1.0 + torch::exp(-mean));  // (H, W) float64
}

torch::Tensor hed_edge_map(HEDImpl& net, const torch::Tensor& image) {
  const auto p = hed_edge_probability(net, image);
  return (p * 255.0).clamp(0.0, 255.0).floor().to(torch::kUInt8);  // astype(np.uint8) truncates
}

torch::Tensor soft_edge_map(const torch::Tensor& image) {
  const auto rgb = with_context("soft_edge_map", [&] { return to_rgb(image); });
  cv::Mat gray, luma, blurred, dx, dy, mag;
  cv::cvtColor(as_mat_rgb(rgb), gray, cv::COLOR_RGB2GRAY);
  gray.convertTo(luma, CV_32F, 1.0 / 255.0);
  cv::GaussianBlur(luma, blurred, cv::Size(0, 0), kSoftEdgeSigma);
  // The 3x3 Sobel sums 4 central differences of 2 px each: / 8 gives luma units per px.
  cv::Sobel(blurred, dx, CV_32F, 1, 0, 3, 1.0 / 8.0);
  cv::Sobel(blurred, dy, CV_32F, 0, 1, 3, 1.0 / 8.0);
  cv::magnitude(dx, dy, mag);
  auto out = torch::empty({rgb.size(0), rgb.size(1)}, torch::kUInt8);
  cv::Mat o(static_cast<int>(out.size(0)), static_cast<int>(out.size(1)), CV_8U, out.data_ptr());
  for (int y = 0; y < mag.rows; ++y) {
    const float* m = mag.ptr<float>(y);
    uint8_t* q = o.ptr<uint8_t>(y);
    for (int x = 0; x < mag.cols; ++x) q[x] = static_cast<uint8_t>(255.0f * (1.0f - std::exp(-m[x] / kSoftEdgeScale)));
  }
  return out;
}

torch::Tensor resize_for_detection(const torch::Tensor& image, int64_t resolution) {
  constexpr const char* fn = "resize_for_detection";
  SPRINT_CHECK(resolution > 0, fn, ": resolution must be > 0, got ", resolution);
  const auto rgb = with_context(fn, [&] { return to_rgb(image); });
  const double h = static_cast<double>(rgb.size(0)), w = static_cast<double>(rgb.size(1));
  const double k = static_cast<double>(resolution) / std::min(h, w);
  // np.round rounds half to even, as nearbyint does in the default rounding mode.
  const int64_t H = static_cast<int64_t>(std::nearbyint(h * k / 64.0)) * 64;
  const int64_t W = static_cast<int64_t>(std::nearbyint(w * k / 64.0)) * 64;
  SPRINT_CHECK(H > 0 && W > 0 && H <= (1 << 16) && W <= (1 << 16), fn, ": resizing ", rgb.sizes().slice(0, 2),
               " to a short side of ", resolution, " gives (", H, ", ", W, "); it must be 64 .. 65536 px per side");
  auto out = torch::empty({H, W, 3}, torch::kUInt8);
  cv::Mat o = as_mat_rgb(out);
  cv::resize(as_mat_rgb(rgb), o, cv::Size(static_cast<int>(W), static_cast<int>(H)), 0, 0,
             k > 1 ? cv::INTER_LANCZOS4 : cv::INTER_AREA);
  return out;
}

torch::Tensor photo_to_scribble(const torch::Tensor& image, HEDImpl* net, int thickness, int64_t detect_resolution) {
  return with_context("photo_to_scribble", [&] {
    SPRINT_CHECK(thickness >= 0 && thickness <= kMaxScribbleThickness, "thickness must be in 0..",
                 kMaxScribbleThickness, ", got ", thickness);
    SPRINT_CHECK(detect_resolution >= 0, "detect_resolution must be >= 0 (0 = input size), got ", detect_resolution);
    auto rgb = to_rgb(image);
    if (detect_resolution > 0) rgb = resize_for_detection(rgb, detect_resolution);
    const auto edge = net ? hed_edge_map(*net, rgb) : soft_edge_map(rgb);
    return edge_to_scribble(edge, thickness);
  });
}

}  // namespace sprint
