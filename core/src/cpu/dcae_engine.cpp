// The DC-AE's CPU inference engine. See dcae_engine.h, docs/architecture.md#cpu-engine and
// docs/performance.md#dc-ae-cpu-engine.
#include "dcae_engine.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <memory>
#include <string>

#include "fast_conv.h"
#include "sprint/error.h"

namespace F = torch::nn::functional;

namespace sprint::cpu {

namespace {
constexpr auto kChannelsLast = at::MemoryFormat::ChannelsLast;

std::shared_ptr<Conv> prepared(const torch::nn::Conv2d& conv) { return std::make_shared<Conv>(conv); }

// A plain convolution step (the encoder's conv_in).
Step conv_step(const torch::nn::Conv2d& conv) {
  return [c = prepared(conv)](const torch::Tensor& x) { return (*c)(x); };
}

// The linear attention and to_out of DCMultiscaleAttention (docs/maths.md#dc-ae-attention) on channels-last
// float32 tensors; returns to_out's result channels-last, before norm_out and the residual.
torch::Tensor linear_attention_channels_last(const torch::Tensor& all, const torch::Tensor& x, int64_t d,
                                             const torch::Tensor& to_out_weight) {
  // The same sums as the mirror's DCMultiscaleAttentionImpl::attend, read where they lie: `all` holds, per pixel,
  // the groups' [q | k | v] of head_dim each (channels g * 3d ...), so every group's q, k and v are strided (N, d)
  // matrices and no transposed copy of `all` is made (that copy was the slowest step of the block). Per group:
  // kv = relu(k)^T v and ksum = relu(k)^T 1, then [o | den] = relu(q) [kv | ksum] and o / (den + eps), which are the
  // rows of diffusers' v padded with a row of ones.
  const int64_t B = x.size(0), H = x.size(2), W = x.size(3), N = H * W, C = to_out_weight.size(0);
  const int64_t G = all.size(1) / (3 * d);
  auto rows = all.permute({0, 2, 3, 1}).reshape({B, N, G, 3, d});  // a view of the channels-last memory
  rows.narrow(3, 0, 2).relu_();                                    // q and k, in place (all is this call's own)
  auto ksum = rows.select(3, 1).sum(1);                            // (B, G, d)
  auto ext = torch::empty({B, N, G, d + 1}, x.options());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < G; ++g) {
      auto group = rows[b].select(1, g);  // (N, 3, d)
      auto kv = torch::cat({torch::mm(group.select(1, 1).t(), group.select(1, 2)), ksum[b][g].unsqueeze(1)}, 1);
      auto e = ext[b].select(1, g);  // (N, d + 1), rows G (d + 1) apart
      at::mm_out(e, group.select(1, 0), kv);
    }
  auto o = ext.narrow(3, 0, d) / (ext.narrow(3, d, 1) + DCMultiscaleAttentionImpl::kEps);  // (B, N, G, d), contiguous
  auto out = torch::empty({B, H, W, C}, x.options());
  const auto w_t = to_out_weight.t();
  for (int64_t b = 0; b < B; ++b) {
    auto ob = out[b].view({N, C});
    torch::mm_out(ob, o[b].view({N, G * d}), w_t);
  }
  return out.permute({0, 3, 1, 2});
}

// to_out of the quadratic form's o (B, groups, head_dim, N) as (N x K) * (K x C) per image, reading o transposed:
// the (H, W, C) layout directly.
torch::Tensor to_out_channels_last(const torch::Tensor& o, const torch::Tensor& x, const torch::Tensor& to_out_weight) {
  const int64_t B = x.size(0), H = x.size(2), W = x.size(3), N = H * W, C = to_out_weight.size(0);
  auto out = torch::empty({B, H, W, C}, x.options());
  const auto w_t = to_out_weight.t();
  for (int64_t b = 0; b < B; ++b) {
    auto ob = out[b].view({N, C});
    torch::mm_out(ob, o[b].reshape({-1, N}).t(), w_t);
  }
  return out.permute({0, 3, 1, 2});
}

Step attention_step(const DCMultiscaleAttention& attn) {
  return [attn = attn.ptr()](const torch::Tensor& x) {
    const int64_t N = x.size(2) * x.size(3);
    auto all = attn->multiscale_qkv(x).contiguous(kChannelsLast);
    // diffusers' quadratic form for tiny grids (N <= head_dim), as the mirror.
    auto out = N > attn->head_dim ? linear_attention_channels_last(all, x, attn->head_dim, attn->to_out->weight)
                                  : to_out_channels_last(attn->attend(all), x, attn->to_out->weight);
    return rms_norm_channels_last(out, *attn->norm_out, x);
  };
}

Step glumbconv_step(const DCGLUMBConv& block) {
  return [block = block.ptr()](const torch::Tensor& x) {
    return rms_norm_channels_last(block->gated_convs(x), *block->norm, x);
  };
}

torch::Tensor upsample_nearest2x(const torch::Tensor& x) {
  return F::interpolate(x, F::InterpolateFuncOptions().scale_factor(std::vector<double>{2.0, 2.0}).mode(torch::kNearest));
}

// The steps of one stage (a Sequential of the mirror), by the type of each module.
void append_stage(std::vector<Step>& plan, const torch::nn::Sequential& stage) {
  for (size_t i = 0; i < stage->size(); ++i) {
    const auto m = stage->ptr(i);
    if (auto res = std::dynamic_pointer_cast<DCResBlockImpl>(m))
      plan.push_back(res_block_step(DCResBlock(res)));
    else if (auto evit = std::dynamic_pointer_cast<EfficientViTBlockImpl>(m))
      plan.push_back(efficientvit_block_step(EfficientViTBlock(evit)));
    else if (auto down = std::dynamic_pointer_cast<DCDownBlock2dImpl>(m))
      plan.push_back(down_block_step(DCDownBlock2d(down)));
    else if (auto up = std::dynamic_pointer_cast<DCUpBlock2dImpl>(m))
      plan.push_back(up_block_step(DCUpBlock2d(up)));
    else
      throw Error("DC-AE CPU engine: no step for a stage module of type " + m->name());
  }
}

// Runs a plan: channels-last float32 between the steps, contiguous NCHW out. The kernels record nothing for
// autograd, and neither do the torch operations between them.
torch::Tensor run(const std::vector<Step>& plan, const torch::Tensor& input) {
  SPRINT_CHECK(input.device().is_cpu() && input.scalar_type() == torch::kFloat32,
               "DC-AE CPU engine: expected a float32 CPU input, got ", input.scalar_type(), " on ", input.device(),
               " (moved the model after prepare_for_inference? call it again)");
  torch::NoGradGuard no_grad;
  auto h = input.contiguous(kChannelsLast);
  for (const auto& step : plan) h = step(h).contiguous(kChannelsLast);
  return h.contiguous();
}
}  // namespace

torch::Tensor rms_norm_channels_last(const torch::Tensor& input, const RMSNormImpl& norm, const torch::Tensor& residual) {
  SPRINT_CHECK(input.dim() == 4 && norm.weight.defined() && norm.weight.numel() == input.size(1),
               "rms_norm_channels_last: expected a (B, C, H, W) input and a norm with C weights, got ", input.sizes(),
               " and ", norm.weight.defined() ? norm.weight.numel() : 0);
  SPRINT_CHECK(!residual.defined() || residual.sizes() == input.sizes(), "rms_norm_channels_last: the residual ",
               residual.sizes(), " does not match the input ", input.sizes());
  const auto x = input.contiguous(kChannelsLast);
  const int64_t C = x.size(1), rows = x.numel() / std::max<int64_t>(C, 1);
  const auto r = residual.defined() ? residual.contiguous(kChannelsLast) : residual;
  const auto w = norm.weight.contiguous();
  const auto b = norm.bias.defined() ? norm.bias.contiguous() : norm.bias;
  auto y = torch::empty_like(x, kChannelsLast);
  const float* xp = x.data_ptr<float>();
  const float* rp = r.defined() ? r.data_ptr<float>() : nullptr;
  const float* wp = w.data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  const auto eps = static_cast<float>(norm.eps);
  // One pass instead of the mirror's six element-wise passes.
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) { rms_norm_rows(xp, rp, wp, bp, eps, C, begin, end, yp); });
  return y;
}

Step res_block_step(const DCResBlock& block) {
  return [block = block.ptr(), conv1 = prepared(block->conv1), conv2 = prepared(block->conv2)](const torch::Tensor& x) {
    // SiLU (the encoder's and the default decoder's) in conv1's Winograd output transform.
    auto h = block->act == Activation::SiLU ? conv1->silu(x) : activate(block->act, (*conv1)(x));
    const auto& norm = *block->norm;
    // conv2, the RMSNorm over channels and the residual add as one output transform.
    if (conv2->winograd())
      return winograd_conv3x3_norm(h, conv2->filter(winograd_tile(h.size(2), h.size(3))), block->conv2->bias,
                                   norm.weight, norm.bias, norm.eps, x);
    return rms_norm_channels_last((*conv2)(h), norm, x);
  };
}

Step efficientvit_block_step(const EfficientViTBlock& block) {
  return [attn = attention_step(block->attn), ffn = glumbconv_step(block->conv_out)](const torch::Tensor& x) {
    return ffn(attn(x).contiguous(kChannelsLast));
  };
}

Step down_block_step(const DCDownBlock2d& block) {
  return [block = block.ptr(), conv = prepared(block->conv), filter = std::make_shared<DerivedWeight>()](
             const torch::Tensor& x) {
    // "Conv": the strided convolution, its bias and the shortcut as one pass (im2col GEMMs).
    if (!block->pixel_unshuffle && (!block->shortcut || (x.size(2) % 2 == 0 && x.size(3) % 2 == 0)))
      return conv3x3_stride2(x, filter->get(block->conv->weight, im2col_filter), block->conv->bias,
                             block->shortcut ? block->group_size : 0);
    auto h = (*conv)(x);
    if (block->pixel_unshuffle) h = F::pixel_unshuffle(h, 2);
    return block->shortcut ? h + block->shortcut_of(x) : h;
  };
}

Step up_block_step(const DCUpBlock2d& block) {
  return [block = block.ptr(), conv = prepared(block->conv)](const torch::Tensor& x) {
    // "interpolate": upsampling, convolution, bias and shortcut as one pass at the input's resolution.
    if (block->interpolate && conv->winograd())
      return winograd_upsample_conv3x3(x, conv->filter(winograd_tile(2 * x.size(2), 2 * x.size(3))), block->conv->bias,
                                       block->shortcut ? block->repeats : 0);
    auto h = block->interpolate ? (*conv)(upsample_nearest2x(x)) : F::pixel_shuffle((*conv)(x), 2);
    return block->shortcut ? h + block->shortcut_of(x) : h;
  };
}

DcaeEngine::DcaeEngine(AutoencoderDCImpl& model) {
  const auto encoder = model.encoder.ptr();
  encoder_.push_back(conv_step(encoder->conv_in));
  for (const auto& stage : encoder->stages) append_stage(encoder_, stage);
  encoder_.push_back([encoder, conv_out = prepared(encoder->conv_out)](const torch::Tensor& h) {
    return encoder->out_shortcut ? (*conv_out)(h) + encoder->out_shortcut_of(h) : (*conv_out)(h);
  });

  const auto decoder = model.decoder.ptr();
  decoder_.push_back([decoder, conv_in = prepared(decoder->conv_in)](const torch::Tensor& z) {
    auto h = (*conv_in)(z);
    return decoder->in_shortcut ? h + decoder->in_shortcut_of(z) : h;
  });
  for (auto it = decoder->stages.rbegin(); it != decoder->stages.rend(); ++it) append_stage(decoder_, *it);
  decoder_.push_back([decoder, conv_out = prepared(decoder->conv_out)](const torch::Tensor& h) {
    return (*conv_out)(activate(decoder->conv_act, rms_norm_channels_last(h, *decoder->norm_out)));
  });
}

torch::Tensor DcaeEngine::encode(const torch::Tensor& x) const { return run(encoder_, x); }

torch::Tensor DcaeEngine::decode(const torch::Tensor& z) const { return run(decoder_, z); }

}  // namespace sprint::cpu
