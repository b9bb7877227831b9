// SANA transformer. See include/sprint/transformer.h and docs/maths.md#transformer.
#include "sprint/transformer.h"

#include <cmath>

#include "sprint/error.h"

namespace F = torch::nn::functional;
namespace nn = torch::nn;

namespace sprint {

namespace {
constexpr double kQkNormEps = 1e-5;        // diffusers Attention default eps for qk_norm
constexpr double kCaptionNormEps = 1e-5;   // caption_norm = RMSNorm(D, eps=1e-5)
constexpr double kFinalNormEps = 1e-6;     // norm_out = LayerNorm(D, no affine, eps=1e-6)
constexpr double kLinearAttnEps = 1e-15;   // diffusers SanaLinearAttnProcessor2_0 denominator eps
constexpr double kMaskBias = -10000.0;     // diffusers: (1 - mask) * -10000, not -inf

torch::Tensor layer_norm_noaffine(const torch::Tensor& x, double eps) {
  return at::layer_norm(x, {x.size(-1)}, {}, {}, eps);
}

// 1x1 convolution on tokens (B, N, Cin) -> (B, N, Cout): the same maths as Conv2d(k=1) on the grid, as a GEMM.
torch::Tensor pointwise(const torch::Tensor& tokens, const nn::Conv2d& conv) {
  const auto& w = conv->weight;
  return torch::linear(tokens, w.view({w.size(0), w.size(1)}), conv->options.bias() ? conv->bias : torch::Tensor());
}
}  // namespace

// ---- small modules ---------------------------------------------------------------------------------------------

torch::Tensor timestep_sinusoid(const torch::Tensor& t, int64_t dim) {
  const int64_t half = dim / 2;
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(t.device());
  auto exponent = torch::arange(0, half, opts) * (-std::log(10000.0));
  exponent = exponent / static_cast<double>(half);
  auto emb = t.reshape({-1, 1}).to(torch::kFloat32) * torch::exp(exponent).unsqueeze(0);
  return torch::cat({torch::cos(emb), torch::sin(emb)}, -1);  // flip_sin_to_cos=True
}

TimestepEmbeddingImpl::TimestepEmbeddingImpl(int64_t in_dim, int64_t out_dim) {
  linear_1 = register_module("linear_1", nn::Linear(in_dim, out_dim));
  linear_2 = register_module("linear_2", nn::Linear(out_dim, out_dim));  // nn.SiLU() in between
}

torch::Tensor TimestepEmbeddingImpl::forward(const torch::Tensor& x) { return linear_2(torch::silu(linear_1(x))); }

// ---- attention -------------------------------------------------------------------------------------------------

SanaAttentionImpl::SanaAttentionImpl(int64_t query_dim, int64_t kv_dim, int64_t heads_, int64_t head_dim_,
                                     bool qkv_bias, bool qk_norm)
    : heads(heads_), head_dim(head_dim_) {
  const int64_t inner = heads * head_dim;
  to_q = register_module("to_q", nn::Linear(nn::LinearOptions(query_dim, inner).bias(qkv_bias)));
  to_k = register_module("to_k", nn::Linear(nn::LinearOptions(kv_dim, inner).bias(qkv_bias)));
  to_v = register_module("to_v", nn::Linear(nn::LinearOptions(kv_dim, inner).bias(qkv_bias)));
  if (qk_norm) {  // "rms_norm_across_heads": one RMSNorm over all heads' channels
    norm_q = register_module("norm_q", RMSNorm(inner, kQkNormEps));
    norm_k = register_module("norm_k", RMSNorm(inner, kQkNormEps));
  }
  to_out = register_module("to_out", nn::ModuleList());
  to_out->push_back(nn::Linear(nn::LinearOptions(inner, query_dim).bias(true)));  // to_out.1 = Dropout
}

torch::Tensor SanaAttentionImpl::linear_attention(const torch::Tensor& x) {
  const auto dtype = x.scalar_type();
  auto q = to_q(x), k = to_k(x), v = to_v(x);  // (B, N, D)
  if (norm_q) {
    q = norm_q(q);
    k = norm_k(k);
  }
  // Channel-first heads: q, v (B, H, d, N); k (B, H, N, d).
  q = q.transpose(1, 2).unflatten(1, {heads, -1});
  k = k.transpose(1, 2).unflatten(1, {heads, -1}).transpose(2, 3);
  v = v.transpose(1, 2).unflatten(1, {heads, -1});
  q = torch::relu(q).to(torch::kFloat32);
  k = torch::relu(k).to(torch::kFloat32);
  v = v.to(torch::kFloat32);
  // A row of ones appended to v makes the last output row the normaliser sum_m relu(k_m) . relu(q_n).
  v = F::pad(v, F::PadFuncOptions({0, 0, 0, 1}).mode(torch::kConstant).value(1.0));
  auto scores = torch::matmul(v, k);   // (B, H, d+1, d)
  auto out = torch::matmul(scores, q); // (B, H, d+1, N)
  out = out.narrow(2, 0, head_dim) / (out.narrow(2, head_dim, 1) + kLinearAttnEps);
  out = out.flatten(1, 2).transpose(1, 2).to(dtype);  // (B, N, D)
  return to_out[0]->as<nn::Linear>()->forward(out);
}

torch::Tensor SanaAttentionImpl::cross_attention(const torch::Tensor& x, const torch::Tensor& enc,
                                                 const torch::Tensor& bias, bool explicit_softmax) {
  const int64_t B = x.size(0);
  auto q = to_q(x), k = to_k(enc), v = to_v(enc);
  if (norm_q) {
    q = norm_q(q);
    k = norm_k(k);
  }
  q = q.view({B, -1, heads, head_dim}).transpose(1, 2);  // (B, Hc, N, dc)
  k = k.view({B, -1, heads, head_dim}).transpose(1, 2);  // (B, Hc, L, dc)
  v = v.view({B, -1, heads, head_dim}).transpose(1, 2);
  torch::Tensor o;
  if (explicit_softmax) {
    auto logits = torch::matmul(q, k.transpose(-1, -2)) * (1.0 / std::sqrt(static_cast<double>(head_dim)));
    if (bias.defined()) logits = logits + bias;
    o = torch::matmul(torch::softmax(logits, -1), v);
  } else {
    o = at::scaled_dot_product_attention(q, k, v, bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt);
  }
  o = o.transpose(1, 2).reshape({B, -1, heads * head_dim}).to(q.scalar_type());
  return to_out[0]->as<nn::Linear>()->forward(o);
}

// ---- feed-forward ----------------------------------------------------------------------------------------------

GLUMBConvImpl::GLUMBConvImpl(int64_t in_channels, int64_t out_channels, int64_t hidden_) : hidden(hidden_) {
  conv_inverted = register_module("conv_inverted", nn::Conv2d(nn::Conv2dOptions(in_channels, 2 * hidden, 1)));
  conv_depth = register_module(
      "conv_depth", nn::Conv2d(nn::Conv2dOptions(2 * hidden, 2 * hidden, 3).padding(1).groups(2 * hidden)));
  conv_point = register_module("conv_point", nn::Conv2d(nn::Conv2dOptions(hidden, out_channels, 1).bias(false)));
}

torch::Tensor GLUMBConvImpl::forward(const torch::Tensor& tokens, int64_t h, int64_t w) {
  const int64_t B = tokens.size(0);
  auto y = torch::silu(pointwise(tokens, conv_inverted));                 // (B, N, 2F)
  auto grid = y.view({B, h, w, 2 * hidden}).permute({0, 3, 1, 2});        // (B, 2F, h, w), channels-last strides
  grid = F::conv2d(grid, conv_depth->weight,
                   F::Conv2dFuncOptions().bias(conv_depth->bias).padding(1).groups(2 * hidden));
  y = grid.permute({0, 2, 3, 1}).reshape({B, h * w, 2 * hidden});       // back to tokens
  auto parts = y.chunk(2, -1);                                            // (a, gate)
  return pointwise(parts[0] * torch::silu(parts[1]), conv_point);          // (B, N, D)
}

// ---- block -----------------------------------------------------------------------------------------------------

SanaTransformerBlockImpl::SanaTransformerBlockImpl(const TransformerConfig& c) : norm_eps(c.norm_eps) {
  const int64_t D = c.inner_dim();
  const bool qk = !c.qk_norm.empty();
  // norm1 / norm2: LayerNorm without parameters.
  attn1 = register_module("attn1", SanaAttention(D, D, c.num_attention_heads, c.attention_head_dim, c.attention_bias, qk));
  attn2 = register_module("attn2", SanaAttention(D, c.cross_attention_dim, c.num_cross_attention_heads,
                                                 c.cross_attention_head_dim, /*qkv_bias=*/true, qk));
  ff = register_module("ff", GLUMBConv(D, D, c.ff_hidden()));
  scale_shift_table = register_parameter("scale_shift_table", torch::randn({6, D}) / std::sqrt(static_cast<double>(D)));
}

torch::Tensor SanaTransformerBlockImpl::forward(const torch::Tensor& x, const SanaConditioning& cond) {
  const int64_t B = x.size(0);
  auto mod = (scale_shift_table.unsqueeze(0) + cond.temb6.reshape({B, 6, -1})).chunk(6, 1);  // each (B, 1, D)
  const auto &shift_msa = mod[0], &scale_msa = mod[1], &gate_msa = mod[2];
  const auto &shift_mlp = mod[3], &scale_mlp = mod[4], &gate_mlp = mod[5];

  auto h = (layer_norm_noaffine(x, norm_eps) * (1 + scale_msa) + shift_msa).to(x.scalar_type());
  auto out = x + gate_msa * attn1->linear_attention(h);
  out = out + attn2->cross_attention(out, cond.encoder, cond.encoder_bias, explicit_softmax);
  h = layer_norm_noaffine(out, norm_eps) * (1 + scale_mlp) + shift_mlp;
  return out + gate_mlp * ff->forward(h, cond.height, cond.width);
}

// ---- time embedding --------------------------------------------------------------------------------------------

SanaTimeEmbedImpl::SanaTimeEmbedImpl(int64_t dim, bool with_guidance_) : with_guidance(with_guidance_) {
  if (with_guidance) {  // SanaCombinedTimestepGuidanceEmbeddings
    timestep_embedder = register_module("timestep_embedder", TimestepEmbedding(256, dim));
    guidance_embedder = register_module("guidance_embedder", TimestepEmbedding(256, dim));
  } else {  // AdaLayerNormSingle: emb = PixArtAlphaCombinedTimestepSizeEmbeddings
    auto emb = register_module("emb", std::make_shared<nn::Module>());
    timestep_embedder = emb->register_module("timestep_embedder", TimestepEmbedding(256, dim));
  }
  linear = register_module("linear", nn::Linear(dim, 6 * dim));  // after nn.SiLU()
}

std::pair<torch::Tensor, torch::Tensor> SanaTimeEmbedImpl::forward(const torch::Tensor& timestep,
                                                                    const torch::Tensor& guidance, torch::Dtype dtype) {
  auto cond = timestep_embedder(timestep_sinusoid(timestep).to(dtype));
  if (with_guidance) {
    SPRINT_CHECK(guidance.defined(), "this transformer has guidance embeds (guidance_embeds=true): pass a guidance value");
    cond = cond + guidance_embedder(timestep_sinusoid(guidance).to(dtype));
  }
  return {linear(torch::silu(cond)), cond};
}

// ---- model -----------------------------------------------------------------------------------------------------

void SanaFrontEnd::build(nn::Module& owner, const TransformerConfig& c) {
  c.validate("transformer config");
  config = c;
  const int64_t D = c.inner_dim(), p = c.patch_size;
  auto patch_embed = owner.register_module("patch_embed", std::make_shared<nn::Module>());
  patch_embed_proj = patch_embed->register_module(
      "proj", nn::Conv2d(nn::Conv2dOptions(c.in_channels, D, p).stride(p).bias(true)));
  time_embed = owner.register_module("time_embed", SanaTimeEmbed(D, c.guidance_embeds));
  auto caption_projection = owner.register_module("caption_projection", std::make_shared<nn::Module>());
  caption_linear_1 = caption_projection->register_module("linear_1", nn::Linear(c.caption_channels, D));
  caption_linear_2 = caption_projection->register_module("linear_2", nn::Linear(D, D));  // GELU(tanh) in between
  caption_norm = owner.register_module("caption_norm", RMSNorm(D, kCaptionNormEps));
  transformer_blocks = owner.register_module("transformer_blocks", nn::ModuleList());
  for (int i = 0; i < c.num_layers; ++i) {
    blocks.emplace_back(c);
    transformer_blocks->push_back(blocks.back());
  }
}

void SanaFrontEnd::set_explicit_attention(bool on) {
  for (auto& b : blocks) b->explicit_softmax = on;
}

torch::Tensor SanaFrontEnd::embed(const torch::Tensor& x) {
  SPRINT_CHECK(x.dim() == 4 && x.size(1) == config.in_channels, "transformer input must be (B, ", config.in_channels,
               ", H, W), got ", x.sizes());
  SPRINT_CHECK(x.size(2) % config.patch_size == 0 && x.size(3) % config.patch_size == 0,
               "latent size ", x.size(2), "x", x.size(3), " is not a multiple of patch_size ", config.patch_size);
  return patch_embed_proj->forward(x).flatten(2).transpose(1, 2);  // (B, N, D)
}

SanaConditioning SanaFrontEnd::condition(const torch::Tensor& enc, const torch::Tensor& timestep,
                                         const torch::Tensor& guidance, const torch::Tensor& enc_mask, int64_t height,
                                         int64_t width, torch::Dtype dtype) {
  SPRINT_CHECK(enc.dim() == 3 && enc.size(2) == config.caption_channels, "text embeddings must be (B, L, ",
               config.caption_channels, "), got ", enc.sizes());
  const int64_t B = enc.size(0);
  SanaConditioning c;
  c.height = height;
  c.width = width;
  auto t = timestep.reshape({-1});
  if (t.numel() == 1 && B > 1) t = t.expand({B});
  SPRINT_CHECK(t.numel() == B, "timestep has ", t.numel(), " values for a batch of ", B);
  torch::Tensor g;
  if (config.guidance_embeds) {
    SPRINT_CHECK(guidance.defined(), "this transformer has guidance embeds (guidance_embeds=true): pass a guidance value");
    g = guidance.reshape({-1});
    if (g.numel() == 1 && B > 1) g = g.expand({B});
    SPRINT_CHECK(g.numel() == B, "guidance has ", g.numel(), " values for a batch of ", B);
  }
  std::tie(c.temb6, c.embedded_timestep) = time_embed->forward(t, g, dtype);
  auto e = caption_linear_2->forward(torch::gelu(caption_linear_1->forward(enc.to(dtype)), "tanh"));
  c.encoder = caption_norm->forward(e.view({B, -1, config.inner_dim()}));
  if (enc_mask.defined()) {
    SPRINT_CHECK(enc_mask.dim() == 2 && enc_mask.size(0) == B && enc_mask.size(1) == enc.size(1),
                 "text mask must be (B, L) = (", B, ", ", enc.size(1), "), got ", enc_mask.sizes());
    c.encoder_bias = ((1 - enc_mask.to(dtype)) * kMaskBias).view({B, 1, 1, -1});
  }
  return c;
}

SanaTransformer2DModelImpl::SanaTransformer2DModelImpl(const TransformerConfig& c) : config(c) {
  check_model_size("transformer", c.parameter_estimate(), "transformer config");
  front.build(*this, c);
  const int64_t D = c.inner_dim(), p = c.patch_size;
  scale_shift_table = register_parameter("scale_shift_table", torch::randn({2, D}) / std::sqrt(static_cast<double>(D)));
  // norm_out: SanaModulatedNorm, no parameters.
  proj_out = register_module("proj_out", nn::Linear(D, p * p * c.out_channels));
}

torch::Tensor SanaTransformer2DModelImpl::finish(const torch::Tensor& tokens, const SanaConditioning& cond) {
  const int64_t B = tokens.size(0), p = config.patch_size;
  auto ss = (scale_shift_table.unsqueeze(0) + cond.embedded_timestep.unsqueeze(1)).chunk(2, 1);  // shift, scale
  auto h = layer_norm_noaffine(tokens, kFinalNormEps) * (1 + ss[1]) + ss[0];
  h = proj_out(h);  // (B, N, p*p*C)
  h = h.reshape({B, cond.height, cond.width, p, p, -1}).permute({0, 5, 1, 3, 2, 4});
  return h.reshape({B, -1, cond.height * p, cond.width * p});
}

torch::Tensor SanaTransformer2DModelImpl::forward(const torch::Tensor& x, const torch::Tensor& enc,
                                                  const torch::Tensor& timestep, const torch::Tensor& guidance,
                                                  const torch::Tensor& enc_mask,
                                                  const std::vector<torch::Tensor>& control, ControlInjection inj) {
  SPRINT_CHECK(x.size(0) == enc.size(0), "latent batch ", x.size(0), " != text batch ", enc.size(0));
  SPRINT_CHECK(control.size() < num_blocks() || control.empty(), "got ", control.size(),
               " ControlNet residuals for ", num_blocks(), " transformer blocks");
  auto tokens = front.embed(x);
  const int64_t p = config.patch_size;
  auto cond = front.condition(enc, timestep, guidance, enc_mask, x.size(2) / p, x.size(3) / p, tokens.scalar_type());
  for (size_t i = 0; i < num_blocks(); ++i) {
    const bool inject = !control.empty() && i >= 1 && i <= control.size();
    if (inject && inj == ControlInjection::BeforeBlock) tokens = tokens + control[i - 1];
    tokens = run_block(i, tokens, cond);
    if (inject && inj == ControlInjection::AfterBlock) tokens = tokens + control[i - 1];
  }
  return finish(tokens, cond);
}

}  // namespace sprint

namespace sprint {

SanaTransformer2DModel load_transformer(const std::string& dir, const LoadOptions& options) {
  return with_context("loading transformer from '" + dir + "'", [&] {
    auto config = TransformerConfig::load(dir);
    // The weights' header first: a config that does not match them is refused before the model is allocated.
    auto archive = safetensors::Archive::open(dir);
    check_model_size("transformer", config.parameter_estimate(), dir + "/config.json", &archive);
    check_block_count(archive, "transformer_blocks.", config.num_layers, dir + "/config.json", "num_layers");
    SanaTransformer2DModel model(config);
    load_state_dict(*model, archive, options);
    model->eval();
    return model;
  });
}

}  // namespace sprint
