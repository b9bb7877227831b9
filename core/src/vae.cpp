// DC-AE autoencoder. See include/sprint/vae.h and docs/maths.md#dc-ae.
#include "sprint/vae.h"

#include <cmath>
#include <filesystem>

#include "cpu/dcae_engine.h"
#include "sprint/config.h"
#include "sprint/error.h"

namespace F = torch::nn::functional;
namespace nn = torch::nn;
namespace fs = std::filesystem;
using nlohmann::json;

namespace sprint {

// ---- config ----------------------------------------------------------------------------------------------------

namespace {
constexpr double kNormEps = 1e-5;       // get_normalization("rms_norm") and GLUMBConv / norm_out RMSNorm eps
constexpr double kAttnEps = DCMultiscaleAttentionImpl::kEps;
constexpr const char* kResBlock = "ResBlock";
constexpr const char* kEViTBlock = "EfficientViTBlock";

// A key that is either one string (applied to every stage) or a list with one string per stage.
std::vector<std::string> per_stage_strings(ConfigReader& r, const std::string& key, size_t stages,
                                           const std::string& fallback) {
  if (r.has(key) && r.raw().at(key).is_array()) {
    auto v = r.optional<std::vector<std::string>>(key, {});
    if (v.size() != stages) r.reject(key, str("expected one entry per stage (", stages, "), got ", v.size()));
    return v;
  }
  return std::vector<std::string>(stages, r.optional<std::string>(key, fallback));
}

Activation parse_activation(const std::string& name) {
  if (name == "silu" || name == "swish") return Activation::SiLU;
  if (name == "relu") return Activation::ReLU;
  if (name == "gelu") return Activation::GELU;
  if (name == "mish") return Activation::Mish;
  throw Error("unsupported activation \"" + name + "\" (supported: silu, swish, relu, gelu, mish)");
}

bool is_activation(const std::string& name) {
  try {
    parse_activation(name);
    return true;
  } catch (const Error&) {
    return false;
  }
}
}  // namespace

torch::Tensor activate(Activation a, const torch::Tensor& x) {
  switch (a) {
    case Activation::SiLU: return torch::silu(x);
    case Activation::ReLU: return torch::relu(x);
    case Activation::GELU: return torch::gelu(x);
    case Activation::Mish: return torch::mish(x);
  }
  return x;
}

VaeConfig VaeConfig::from_json(const json& j, const std::string& source) {
  ConfigReader r(j, source);
  VaeConfig c;
  // Architecture-defining sizes are required: a wrong default would build the wrong network silently.
  c.latent_channels = r.required<int>("latent_channels");
  c.encoder_block_out_channels = r.required<std::vector<int>>("encoder_block_out_channels");
  c.decoder_block_out_channels = r.required<std::vector<int>>("decoder_block_out_channels");
  c.in_channels = r.optional<int>("in_channels", c.in_channels);
  c.attention_head_dim = r.optional<int>("attention_head_dim", c.attention_head_dim);
  const size_t ne = c.encoder_block_out_channels.size(), nd = c.decoder_block_out_channels.size();
  c.encoder_block_types = per_stage_strings(r, "encoder_block_types", ne, kResBlock);
  c.decoder_block_types = per_stage_strings(r, "decoder_block_types", nd, kResBlock);
  c.encoder_layers_per_block = r.optional<std::vector<int>>("encoder_layers_per_block", c.encoder_layers_per_block);
  c.decoder_layers_per_block = r.optional<std::vector<int>>("decoder_layers_per_block", c.decoder_layers_per_block);
  c.encoder_qkv_multiscales = r.optional<std::vector<std::vector<int>>>("encoder_qkv_multiscales", c.encoder_qkv_multiscales);
  c.decoder_qkv_multiscales = r.optional<std::vector<std::vector<int>>>("decoder_qkv_multiscales", c.decoder_qkv_multiscales);
  c.upsample_block_type = r.optional<std::string>("upsample_block_type", c.upsample_block_type);
  c.downsample_block_type = r.optional<std::string>("downsample_block_type", c.downsample_block_type);
  c.decoder_norm_types = per_stage_strings(r, "decoder_norm_types", nd, "rms_norm");
  c.decoder_act_fns = per_stage_strings(r, "decoder_act_fns", nd, "silu");
  c.encoder_out_shortcut = r.optional<bool>("encoder_out_shortcut", c.encoder_out_shortcut);
  c.decoder_in_shortcut = r.optional<bool>("decoder_in_shortcut", c.decoder_in_shortcut);
  c.decoder_conv_act_fn = r.optional<std::string>("decoder_conv_act_fn", c.decoder_conv_act_fn);
  c.scaling_factor = r.optional<double>("scaling_factor", c.scaling_factor);
  // Loader / tiling bookkeeping written by save_pretrained or the Hub, not architecture.
  r.refuse_unknown({"force_upcast", "use_quant_conv", "use_post_quant_conv", "sample_size"});
  c.validate(source);
  return c;
}

VaeConfig VaeConfig::load(const std::string& path) {
  std::string file = fs::is_directory(path) ? (fs::path(path) / "config.json").string() : path;
  return from_json(read_json_file(file), file);
}

void VaeConfig::validate(const std::string& source) const {
  auto bad = [&](const std::string& key, const auto& value, const std::string& why) {
    throw Error(str(source, ": '", key, "' = ", json(value).dump(), ": ", why));
  };
  // Upper bounds far above released DC-AEs (1024 channels, 3 layers a stage, 6 stages); memory is check_model_size's.
  if (in_channels <= 0 || in_channels > 64) bad("in_channels", in_channels, "must be > 0 and at most 64");
  if (latent_channels <= 0 || latent_channels > 4096)
    bad("latent_channels", latent_channels, "must be > 0 and at most 4096");
  if (attention_head_dim <= 0 || attention_head_dim > 4096)
    bad("attention_head_dim", attention_head_dim, "must be > 0 and at most 4096");
  if (scaling_factor <= 0 || !std::isfinite(scaling_factor)) bad("scaling_factor", scaling_factor, "must be > 0");
  if (downsample_block_type != "Conv" && downsample_block_type != "pixel_unshuffle")
    bad("downsample_block_type", downsample_block_type, "supported: \"Conv\", \"pixel_unshuffle\"");
  if (upsample_block_type != "interpolate" && upsample_block_type != "pixel_shuffle")
    bad("upsample_block_type", upsample_block_type, "supported: \"interpolate\", \"pixel_shuffle\"");
  if (!is_activation(decoder_conv_act_fn))
    bad("decoder_conv_act_fn", decoder_conv_act_fn, "supported: silu, swish, relu, gelu, mish");

  // Checks shared by both halves; `side` is "encoder" or "decoder".
  auto check_half = [&](const std::string& side, const std::vector<int>& ch, const std::vector<std::string>& types,
                        const std::vector<int>& layers, const std::vector<std::vector<int>>& scales) {
    const size_t n = ch.size();
    if (n == 0 || n > 10) bad(side + "_block_out_channels", ch, "needs 1 to 10 stages (the compression is 2^(stages-1))");
    if (types.size() != n) bad(side + "_block_types", types, str("expected one entry per stage (", n, ")"));
    if (layers.size() != n) bad(side + "_layers_per_block", layers, str("expected one entry per stage (", n, ")"));
    if (scales.size() != n) bad(side + "_qkv_multiscales", scales, str("expected one entry per stage (", n, ")"));
    for (size_t i = 0; i < n; ++i) {
      if (ch[i] <= 0 || ch[i] > 16384) bad(side + "_block_out_channels", ch, "every entry must be > 0 and at most 16384");
      if (layers[i] < 1 || layers[i] > 256)
        bad(side + "_layers_per_block", layers, "every entry must be from 1 to 256 (stages without layers are not supported)");
      if (types[i] != kResBlock && types[i] != kEViTBlock)
        bad(side + "_block_types", types, str("stage ", i, ": \"", types[i], "\" is not ResBlock or EfficientViTBlock"));
      if (types[i] == kEViTBlock) {
        if (ch[i] % attention_head_dim != 0)
          bad(side + "_block_out_channels", ch,
              str("stage ", i, " (EfficientViTBlock): ", ch[i], " channels is not a multiple of attention_head_dim ",
                  attention_head_dim));
        for (int k : scales[i])
          if (k <= 0 || k % 2 == 0) bad(side + "_qkv_multiscales", scales, "kernel sizes must be odd and > 0");
      }
    }
    if (ch.back() % latent_channels != 0)
      bad(side + "_block_out_channels", ch, str("the last stage's channels must be a multiple of latent_channels ",
                                                latent_channels, " (latent shortcut)"));
  };
  check_half("encoder", encoder_block_out_channels, encoder_block_types, encoder_layers_per_block,
             encoder_qkv_multiscales);
  check_half("decoder", decoder_block_out_channels, decoder_block_types, decoder_layers_per_block,
             decoder_qkv_multiscales);
  if (encoder_block_out_channels.size() != decoder_block_out_channels.size())
    bad("decoder_block_out_channels", decoder_block_out_channels, "must have as many stages as encoder_block_out_channels");
  for (size_t i = 0; i + 1 < encoder_block_out_channels.size(); ++i) {
    const int a = encoder_block_out_channels[i], b = encoder_block_out_channels[i + 1];
    // The down shortcut averages groups of 4a/b channels after pixel_unshuffle; pixel_unshuffle mode convolves to b/4.
    if ((4 * a) % b != 0 || 4 * a < b)
      bad("encoder_block_out_channels", encoder_block_out_channels,
          str("stage ", i, " -> ", i + 1, ": 4 * ", a, " is not a multiple of ", b, " (downsample shortcut)"));
    if (downsample_block_type == "pixel_unshuffle" && b % 4 != 0)
      bad("encoder_block_out_channels", encoder_block_out_channels,
          str("stage ", i + 1, ": ", b, " is not a multiple of 4 (pixel_unshuffle downsampling)"));
  }
  for (size_t i = 0; i + 1 < decoder_block_out_channels.size(); ++i) {
    const int out = decoder_block_out_channels[i], in = decoder_block_out_channels[i + 1];
    if ((4 * out) % in != 0 || 4 * out < in)
      bad("decoder_block_out_channels", decoder_block_out_channels,
          str("stage ", i + 1, " -> ", i, ": 4 * ", out, " is not a multiple of ", in, " (upsample shortcut)"));
  }
  if (decoder_norm_types.size() != decoder_block_out_channels.size())
    bad("decoder_norm_types", decoder_norm_types, "expected one entry per stage");
  for (const auto& t : decoder_norm_types)
    if (t != "rms_norm") bad("decoder_norm_types", decoder_norm_types, "only \"rms_norm\" is supported");
  if (decoder_act_fns.size() != decoder_block_out_channels.size())
    bad("decoder_act_fns", decoder_act_fns, "expected one entry per stage");
  for (const auto& a : decoder_act_fns)
    if (!is_activation(a)) bad("decoder_act_fns", decoder_act_fns, "supported: silu, swish, relu, gelu, mish");
}

// Values from the Hub's mit-han-lab/dc-ae-f32c32-sana-1.0-diffusers vae config (docs/maths.md#dc-ae-config).
VaeConfig VaeConfig::dc_ae_f32c32() {
  VaeConfig c;
  c.in_channels = 3;
  c.latent_channels = 32;
  c.attention_head_dim = 32;
  c.encoder_block_types = {kResBlock, kResBlock, kResBlock, kEViTBlock, kEViTBlock, kEViTBlock};
  c.decoder_block_types = c.encoder_block_types;
  c.encoder_block_out_channels = {128, 256, 512, 512, 1024, 1024};
  c.decoder_block_out_channels = c.encoder_block_out_channels;
  c.encoder_layers_per_block = {2, 2, 2, 3, 3, 3};
  c.decoder_layers_per_block = {3, 3, 3, 3, 3, 3};
  c.encoder_qkv_multiscales = {{}, {}, {}, {5}, {5}, {5}};
  c.decoder_qkv_multiscales = c.encoder_qkv_multiscales;
  c.upsample_block_type = "interpolate";
  c.downsample_block_type = "Conv";
  c.decoder_norm_types = std::vector<std::string>(6, "rms_norm");
  c.decoder_act_fns = std::vector<std::string>(6, "silu");
  c.encoder_out_shortcut = true;
  c.decoder_in_shortcut = true;
  c.decoder_conv_act_fn = "relu";
  c.scaling_factor = 0.41407;
  return c;
}

// ---- blocks ----------------------------------------------------------------------------------------------------

namespace {
// A Conv2d as diffusers builds them: padding k / 2, zero padding.
nn::Conv2d conv_layer(int64_t in, int64_t out, int64_t k, bool bias = true, int64_t stride = 1, int64_t groups = 1) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride(stride).padding(k / 2).groups(groups).bias(bias));
}
}  // namespace

torch::Tensor rms_norm_channels(const torch::Tensor& x, const RMSNorm& norm, const torch::Tensor& residual) {
  const auto& w = norm->weight;
  const auto& b = norm->bias;
  // Same dtype rules as RMSNormImpl::forward (diffusers RMSNorm), reducing over channels.
  auto variance = x.to(torch::kFloat32).pow(2).mean(1, /*keepdim=*/true);
  auto h = x * torch::rsqrt(variance + norm->eps);
  if (!w.defined()) {
    h = h.to(x.scalar_type());
  } else {
    if (w.scalar_type() == torch::kFloat16 || w.scalar_type() == torch::kBFloat16) h = h.to(w.scalar_type());
    h = h * w.view({1, -1, 1, 1});
    if (b.defined()) h = h + b.view({1, -1, 1, 1});
  }
  return residual.defined() ? h + residual : h;
}

DCResBlockImpl::DCResBlockImpl(int64_t c, Activation act_) : act(act_) {
  conv1 = register_module("conv1", conv_layer(c, c, 3));
  conv2 = register_module("conv2", conv_layer(c, c, 3, /*bias=*/false));
  norm = register_module("norm", RMSNorm(c, kNormEps, true, /*bias=*/true));
}

torch::Tensor DCResBlockImpl::forward(const torch::Tensor& x) {
  return rms_norm_channels(conv2(activate(act, conv1(x))), norm, x);
}

DCMultiscaleProjectionImpl::DCMultiscaleProjectionImpl(int64_t inner, int64_t heads, int64_t k) {
  const int64_t c3 = 3 * inner;
  proj_in = register_module("proj_in", conv_layer(c3, c3, k, /*bias=*/false, 1, /*groups=*/c3));
  proj_out = register_module("proj_out", conv_layer(c3, c3, 1, /*bias=*/false, 1, /*groups=*/3 * heads));
}

torch::Tensor DCMultiscaleProjectionImpl::forward(const torch::Tensor& qkv) { return proj_out(proj_in(qkv)); }

DCMultiscaleAttentionImpl::DCMultiscaleAttentionImpl(int64_t c, int64_t d, const std::vector<int>& kernel_sizes)
    : channels(c), head_dim(d) {
  const int64_t heads = c / d, inner = heads * d;  // mult = 1
  to_q = register_module("to_q", nn::Linear(nn::LinearOptions(c, inner).bias(false)));
  to_k = register_module("to_k", nn::Linear(nn::LinearOptions(c, inner).bias(false)));
  to_v = register_module("to_v", nn::Linear(nn::LinearOptions(c, inner).bias(false)));
  to_qkv_multiscale = register_module("to_qkv_multiscale", nn::ModuleList());
  for (int k : kernel_sizes) {
    scales.emplace_back(inner, heads, k);
    to_qkv_multiscale->push_back(scales.back());
  }
  const int64_t all = inner * (1 + static_cast<int64_t>(kernel_sizes.size()));
  to_out = register_module("to_out", nn::Linear(nn::LinearOptions(all, c).bias(false)));
  norm_out = register_module("norm_out", RMSNorm(c, kNormEps, true, /*bias=*/true));
}

torch::Tensor DCMultiscaleAttentionImpl::multiscale_qkv(const torch::Tensor& x) {
  // to_q/to_k/to_v are Linear layers applied channels-last; one 1x1 convolution with the stacked weights computes
  // the concatenation [q | k | v] directly in NCHW (no permutes).
  auto w = torch::cat({to_q->weight, to_k->weight, to_v->weight}, 0);
  auto qkv = F::conv2d(x, w.view({w.size(0), w.size(1), 1, 1}));
  if (scales.empty()) return qkv;
  std::vector<torch::Tensor> parts{qkv};
  for (auto& s : scales) parts.push_back(s->forward(qkv));
  return torch::cat(parts, 1);
}

torch::Tensor DCMultiscaleAttentionImpl::attend(const torch::Tensor& qkv) {
  const int64_t B = qkv.size(0), N = qkv.size(2) * qkv.size(3), d = head_dim;
  const auto dtype = qkv.scalar_type();
  // diffusers: the quadratic form for tiny grids, where the N x N score matrix is smaller than d x d.
  const bool linear = N > d;
  auto all = linear ? qkv.to(torch::kFloat32) : qkv;  // diffusers upcasts the whole linear path
  all = all.reshape({B, -1, 3 * d, N});             // (B, groups, [q|k|v] of head_dim each, N)
  auto q = torch::relu(all.narrow(2, 0, d));
  auto k = torch::relu(all.narrow(2, d, d));
  auto v = all.narrow(2, 2 * d, d);
  if (linear) {
    // A row of ones appended to v makes the last output row the normaliser sum_m k_m . q_n.
    v = F::pad(v, F::PadFuncOptions({0, 0, 0, 1}).mode(torch::kConstant).value(1.0));
    auto scores = torch::matmul(v, k.transpose(-1, -2));  // (B, G, d+1, d)
    auto o = torch::matmul(scores, q);                    // (B, G, d+1, N)
    return (o.narrow(2, 0, d) / (o.narrow(2, d, 1) + kAttnEps)).to(dtype);
  }
  auto scores = torch::matmul(k.transpose(-1, -2), q).to(torch::kFloat32);  // (B, G, N keys, N queries)
  scores = scores / (scores.sum(2, /*keepdim=*/true) + kAttnEps);
  return torch::matmul(v, scores.to(v.scalar_type()));  // (B, G, d, N)
}

torch::Tensor DCMultiscaleAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), H = x.size(2), W = x.size(3);
  auto o = attend(multiscale_qkv(x)).reshape({B, -1, H, W});
  o = F::conv2d(o, to_out->weight.view({channels, -1, 1, 1}));  // Linear applied channels-last
  return rms_norm_channels(o, norm_out, x);
}

DCGLUMBConvImpl::DCGLUMBConvImpl(int64_t c) : hidden(4 * c) {
  conv_inverted = register_module("conv_inverted", conv_layer(c, 2 * hidden, 1));
  conv_depth = register_module("conv_depth", conv_layer(2 * hidden, 2 * hidden, 3, true, 1, /*groups=*/2 * hidden));
  conv_point = register_module("conv_point", conv_layer(hidden, c, 1, /*bias=*/false));
  norm = register_module("norm", RMSNorm(c, kNormEps, true, /*bias=*/true));
}

torch::Tensor DCGLUMBConvImpl::gated_convs(const torch::Tensor& x) {
  auto h = conv_depth(torch::silu(conv_inverted(x)));
  auto parts = h.chunk(2, 1);  // (a, gate)
  return conv_point(parts[0] * torch::silu(parts[1]));
}

torch::Tensor DCGLUMBConvImpl::forward(const torch::Tensor& x) { return rms_norm_channels(gated_convs(x), norm, x); }

EfficientViTBlockImpl::EfficientViTBlockImpl(int64_t c, int64_t d, const std::vector<int>& kernel_sizes) {
  attn = register_module("attn", DCMultiscaleAttention(c, d, kernel_sizes));
  conv_out = register_module("conv_out", DCGLUMBConv(c));
}

DCDownBlock2dImpl::DCDownBlock2dImpl(int64_t in, int64_t out, bool pixel_unshuffle_, bool shortcut_)
    : pixel_unshuffle(pixel_unshuffle_), shortcut(shortcut_), group_size(4 * in / out) {
  conv = register_module("conv", conv_layer(in, pixel_unshuffle ? out / 4 : out, 3, true, pixel_unshuffle ? 1 : 2));
}

torch::Tensor DCDownBlock2dImpl::shortcut_of(const torch::Tensor& x) const {
  auto y = F::pixel_unshuffle(x, 2);
  return group_size > 1 ? y.unflatten(1, {-1, group_size}).mean(2) : y;
}

torch::Tensor DCDownBlock2dImpl::forward(const torch::Tensor& x) {
  auto h = conv(x);
  if (pixel_unshuffle) h = F::pixel_unshuffle(h, 2);
  return shortcut ? h + shortcut_of(x) : h;
}

DCUpBlock2dImpl::DCUpBlock2dImpl(int64_t in, int64_t out, bool interpolate_, bool shortcut_)
    : interpolate(interpolate_), shortcut(shortcut_), repeats(4 * out / in) {
  conv = register_module("conv", conv_layer(in, interpolate ? out : 4 * out, 3));
}

torch::Tensor DCUpBlock2dImpl::shortcut_of(const torch::Tensor& x) const {
  return F::pixel_shuffle(x.repeat_interleave(repeats, 1), 2);
}

torch::Tensor DCUpBlock2dImpl::forward(const torch::Tensor& x) {
  torch::Tensor h;
  if (interpolate) {
    h = conv(F::interpolate(x, F::InterpolateFuncOptions()
                                   .scale_factor(std::vector<double>{2.0, 2.0})
                                   .mode(torch::kNearest)));
  } else {
    h = F::pixel_shuffle(conv(x), 2);
  }
  return shortcut ? h + shortcut_of(x) : h;
}

namespace {
void add_block(nn::Sequential& seq, const std::string& type, int64_t c, int64_t head_dim, Activation act,
               const std::vector<int>& scales) {
  if (type == kResBlock)
    seq->push_back(DCResBlock(c, act));
  else
    seq->push_back(EfficientViTBlock(c, head_dim, scales));
}
}  // namespace

DCEncoderImpl::DCEncoderImpl(const VaeConfig& c) : out_shortcut(c.encoder_out_shortcut) {
  const auto& ch = c.encoder_block_out_channels;
  const size_t n = ch.size();
  conv_in = register_module("conv_in", conv_layer(c.in_channels, ch[0], 3));
  down_blocks = register_module("down_blocks", nn::ModuleList());
  for (size_t i = 0; i < n; ++i) {
    nn::Sequential seq;
    for (int j = 0; j < c.encoder_layers_per_block[i]; ++j)  // the encoder's blocks are always rms_norm + SiLU
      add_block(seq, c.encoder_block_types[i], ch[i], c.attention_head_dim, Activation::SiLU,
                c.encoder_qkv_multiscales[i]);
    if (i + 1 < n)
      seq->push_back(DCDownBlock2d(ch[i], ch[i + 1], c.downsample_block_type == "pixel_unshuffle", /*shortcut=*/true));
    stages.push_back(seq);
    down_blocks->push_back(seq);
  }
  conv_out = register_module("conv_out", conv_layer(ch.back(), c.latent_channels, 3));
  out_group = ch.back() / c.latent_channels;
}

torch::Tensor DCEncoderImpl::out_shortcut_of(const torch::Tensor& h) const {
  return out_group > 1 ? h.unflatten(1, {-1, out_group}).mean(2) : h;
}

torch::Tensor DCEncoderImpl::forward(const torch::Tensor& x) {
  auto h = conv_in(x);
  for (auto& s : stages) h = s->forward(h);
  return out_shortcut ? conv_out(h) + out_shortcut_of(h) : conv_out(h);
}

DCDecoderImpl::DCDecoderImpl(const VaeConfig& c)
    : in_shortcut(c.decoder_in_shortcut), conv_act(parse_activation(c.decoder_conv_act_fn)) {
  const auto& ch = c.decoder_block_out_channels;
  const size_t n = ch.size();
  conv_in = register_module("conv_in", conv_layer(c.latent_channels, ch.back(), 3));
  in_repeats = ch.back() / c.latent_channels;
  up_blocks = register_module("up_blocks", nn::ModuleList());
  for (size_t i = 0; i < n; ++i) {
    nn::Sequential seq;
    if (i + 1 < n)
      seq->push_back(DCUpBlock2d(ch[i + 1], ch[i], c.upsample_block_type == "interpolate", /*shortcut=*/true));
    for (int j = 0; j < c.decoder_layers_per_block[i]; ++j)
      add_block(seq, c.decoder_block_types[i], ch[i], c.attention_head_dim, parse_activation(c.decoder_act_fns[i]),
                c.decoder_qkv_multiscales[i]);
    stages.push_back(seq);
    up_blocks->push_back(seq);
  }
  norm_out = register_module("norm_out", RMSNorm(ch[0], kNormEps, true, /*bias=*/true));
  conv_out = register_module("conv_out", conv_layer(ch[0], c.in_channels, 3));
}

torch::Tensor DCDecoderImpl::in_shortcut_of(const torch::Tensor& z) const {
  return in_repeats > 1 ? z.repeat_interleave(in_repeats, 1) : z;
}

torch::Tensor DCDecoderImpl::forward(const torch::Tensor& z) {
  auto h = conv_in(z);
  if (in_shortcut) h = h + in_shortcut_of(z);
  for (auto it = stages.rbegin(); it != stages.rend(); ++it) h = (*it)->forward(h);
  return conv_out(activate(conv_act, rms_norm_channels(h, norm_out)));
}

// ---- model -----------------------------------------------------------------------------------------------------

double VaeConfig::parameter_estimate() const {
  // A ResBlock is two 3x3 convolutions (18 c^2); an EfficientViT block's attention and MBConv are of the same order
  // (a generous 24 c^2, more with many multiscale branches). Plus the resampling convolutions between stages.
  auto half = [](const std::vector<int>& ch, const std::vector<int>& layers, const std::vector<std::string>& types) {
    double n = 0;
    for (size_t i = 0; i < ch.size() && i < layers.size(); ++i) {
      const double c = ch[i];
      n += layers[i] * (i < types.size() && types[i] == "ResBlock" ? 18.0 : 24.0) * c * c;
      if (i + 1 < ch.size()) n += 9.0 * c * ch[i + 1];
    }
    return n;
  };
  return half(encoder_block_out_channels, encoder_layers_per_block, encoder_block_types) +
         half(decoder_block_out_channels, decoder_layers_per_block, decoder_block_types);
}

AutoencoderDCImpl::AutoencoderDCImpl(const VaeConfig& c) : config(c) {
  check_model_size("VAE", c.parameter_estimate(), "VAE config");
  c.validate("vae config");
  encoder = register_module("encoder", DCEncoder(c));
  decoder = register_module("decoder", DCDecoder(c));
}

// The one decision point (docs/architecture.md#cpu-engine): made here, when the model is set up, and not per call.
void AutoencoderDCImpl::prepare_for_inference(torch::Device device, torch::Dtype dtype,
                                              const VaeInferenceOptions& options) {
  to(device, dtype);
  eval();
  engine_.reset();
  if (options.fast_cpu && device.is_cpu() && dtype == torch::kFloat32) engine_ = std::make_shared<cpu::DcaeEngine>(*this);
}

void AutoencoderDCImpl::train(bool on) {
  if (on) engine_.reset();
  torch::nn::Module::train(on);
}

torch::Tensor AutoencoderDCImpl::prepare(const torch::Tensor& x, const torch::Tensor& like) const {
  return x.to(like.device(), like.scalar_type());
}

// The engine's kernels record nothing for autograd: refuse a call whose result autograd would track, rather than
// return one without gradients.
void AutoencoderDCImpl::check_engine_call(const torch::Tensor& x) const {
  if (!torch::GradMode::is_enabled()) return;
  bool needs_grad = x.requires_grad();
  for (const auto& p : parameters()) needs_grad = needs_grad || p.requires_grad();
  SPRINT_CHECK(!needs_grad, "vae: the model is prepared for CPU inference (prepare_for_inference), which computes no "
               "gradients; call train() to differentiate through it, or run inference under torch::NoGradGuard or "
               "torch::InferenceMode");
}

torch::Tensor AutoencoderDCImpl::encode(const torch::Tensor& x) {
  const int64_t f = config.spatial_compression();
  SPRINT_CHECK(x.dim() == 4 && x.size(1) == config.in_channels, "vae encode: input must be (B, ", config.in_channels,
               ", H, W), got ", x.sizes());
  SPRINT_CHECK(x.size(2) % f == 0 && x.size(3) % f == 0, "vae encode: image size ", x.size(2), "x", x.size(3),
               " is not a multiple of the compression factor ", f);
  auto h = prepare(x, encoder->conv_in->weight);
  if (engine_) {
    check_engine_call(h);
    return engine_->encode(h);
  }
  return encoder->forward(h).contiguous();
}

torch::Tensor AutoencoderDCImpl::decode(const torch::Tensor& z) {
  SPRINT_CHECK(z.dim() == 4 && z.size(1) == config.latent_channels, "vae decode: latent must be (B, ",
               config.latent_channels, ", h, w), got ", z.sizes());
  auto h = prepare(z, decoder->conv_in->weight);
  if (engine_) {
    check_engine_call(h);
    return engine_->decode(h);
  }
  return decoder->forward(h).contiguous();
}

AutoencoderDC load_vae(const std::string& dir, const LoadOptions& options) {
  return with_context("loading vae from '" + dir + "'", [&] {
    auto config = VaeConfig::load(dir);
    auto archive = safetensors::Archive::open(dir);
    check_model_size("VAE", config.parameter_estimate(), dir + "/config.json", &archive);
    AutoencoderDC model(config);
    load_state_dict(*model, archive, options);
    model->eval();
    return model;
  });
}

}  // namespace sprint
