// See include/sprint/training/ladd.h and docs/maths.md#ladd.
#include "sprint/training/ladd.h"

#include <algorithm>
#include <cmath>

#include "sprint/error.h"
#include "sprint/training/scm_loss.h"

namespace F = torch::nn::functional;

namespace sprint::training {

namespace {
constexpr double kSpectralEps = 1e-12;  // torch.nn.utils.spectral_norm default
constexpr double kLeakySlope = 0.2;
}  // namespace

SpectralConv1dImpl::SpectralConv1dImpl(int64_t in, int64_t out, int64_t kernel_) : kernel(kernel_) {
  SPRINT_CHECK(kernel >= 1 && kernel % 2 == 1, "SpectralConv1d: kernel must be odd, got ", kernel);
  // nn.Conv1d default init (kaiming-uniform with a = sqrt 5 -> U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both).
  const double bound = 1.0 / std::sqrt(static_cast<double>(in * kernel));
  weight_orig = register_parameter("weight_orig", torch::empty({out, in, kernel}).uniform_(-bound, bound));
  bias = register_parameter("bias", torch::empty({out}).uniform_(-bound, bound));
  u = register_buffer("weight_u", F::normalize(torch::randn({out}), F::NormalizeFuncOptions().dim(0).eps(kSpectralEps)));
  v = register_buffer("weight_v", F::normalize(torch::randn({in * kernel}), F::NormalizeFuncOptions().dim(0).eps(kSpectralEps)));
}

torch::Tensor SpectralConv1dImpl::normalized_weight() {
  auto w = weight_orig.flatten(1);  // (out, in * k)
  if (is_training()) {
    torch::NoGradGuard no_grad;
    auto opt = F::NormalizeFuncOptions().dim(0).eps(kSpectralEps);
    v.copy_(F::normalize(torch::mv(w.t(), u), opt));
    u.copy_(F::normalize(torch::mv(w, v), opt));
  }
  // u, v are constants for autograd, as in spectral_norm (which clones them); sigma still depends on the weight.
  auto sigma = torch::dot(u.detach().clone(), torch::mv(w, v.detach().clone()));
  return weight_orig / sigma;
}

torch::Tensor SpectralConv1dImpl::forward(const torch::Tensor& x) {
  auto w = normalized_weight();
  auto h = x;
  if (kernel > 1) h = F::pad(x, F::PadFuncOptions({kernel / 2, kernel / 2}).mode(torch::kCircular));
  return F::conv1d(h, w.to(x.dtype()), F::Conv1dFuncOptions().bias(bias.to(x.dtype())));
}

BatchNormLocalImpl::BatchNormLocalImpl(int64_t channels, int64_t vb, double eps_) : virtual_batch(vb), eps(eps_) {
  SPRINT_CHECK(vb >= 1, "BatchNormLocal: virtual batch must be >= 1");
  weight = register_parameter("weight", torch::ones({channels}));
  bias = register_parameter("bias", torch::zeros({channels}));
}

torch::Tensor BatchNormLocalImpl::forward(const torch::Tensor& x) {
  SPRINT_CHECK(x.dim() == 3, "BatchNormLocal expects (B, C, N), got ", x.sizes());
  const int64_t B = x.size(0);
  const int64_t G = (B + virtual_batch - 1) / virtual_batch;
  SPRINT_CHECK(B % G == 0, "BatchNormLocal: batch ", B, " does not split into ", G, " equal groups (virtual batch ",
               virtual_batch, ")");
  auto h = x.view({G, B / G, x.size(1), x.size(2)});
  auto mean = h.mean({1, 3}, /*keepdim=*/true);
  auto var = (h - mean).pow(2).mean({1, 3}, /*keepdim=*/true);  // biased
  h = (h - mean) / torch::sqrt(var + eps);
  h = h.view(x.sizes());
  return h * weight.to(x.dtype()).view({1, -1, 1}) + bias.to(x.dtype()).view({1, -1, 1});
}

DiscBlockImpl::DiscBlockImpl(int64_t channels, int64_t kernel, int64_t vb) {
  conv = register_module("conv", SpectralConv1d(channels, channels, kernel));
  norm = register_module("norm", BatchNormLocal(channels, vb));
}

torch::Tensor DiscBlockImpl::forward(const torch::Tensor& x) {
  return F::leaky_relu(norm(conv(x)), F::LeakyReLUFuncOptions().negative_slope(kLeakySlope));
}

DiscHeadImpl::DiscHeadImpl(int64_t channels, int64_t vb) {
  block1 = register_module("block1", DiscBlock(channels, 1, vb));
  block9 = register_module("block9", DiscBlock(channels, 9, vb));
  cls = register_module("cls", SpectralConv1d(channels, 1, 1));
}

torch::Tensor DiscHeadImpl::forward(const torch::Tensor& x) {
  auto h = block1(x);
  h = (block9(h) + h) / std::sqrt(2.0);
  return cls(h);
}

SanaDiscriminatorImpl::SanaDiscriminatorImpl(SanaTransformer2DModel t, std::vector<int> ids, int64_t vb)
    : teacher(std::move(t)), block_ids(std::move(ids)) {
  SPRINT_CHECK(!block_ids.empty(), "the discriminator needs at least one hooked block");
  const int n = static_cast<int>(teacher->num_blocks());
  for (size_t i = 0; i < block_ids.size(); ++i) {
    SPRINT_CHECK(block_ids[i] >= 0 && block_ids[i] < n, "discriminator block id ", block_ids[i],
                 " is outside the teacher's ", n, " blocks");
    SPRINT_CHECK(i == 0 || block_ids[i] > block_ids[i - 1], "discriminator block ids must be increasing");
  }
  heads = register_module("heads", torch::nn::ModuleList());
  for (size_t i = 0; i < block_ids.size(); ++i) heads->push_back(DiscHead(teacher->config.inner_dim(), vb));
}

std::vector<torch::Tensor> SanaDiscriminatorImpl::features(const torch::Tensor& x_scaled, const torch::Tensor& t,
                                                           const TextCondition& text) {
  auto& m = *teacher;
  auto tt = t.reshape({-1}).to(x_scaled.dtype());
  SPRINT_CHECK(tt.numel() == x_scaled.size(0), "discriminator: ", tt.numel(), " times for a batch of ",
               x_scaled.size(0));
  auto s = flow_time(tt);
  auto se = s.view({-1, 1, 1, 1});
  auto x_fm = x_scaled * torch::sqrt(se * se + (1 - se) * (1 - se));
  auto tokens = m.front.embed(x_fm);
  const int64_t p = m.config.patch_size;
  auto cond = m.front.condition(text.enc, s, {}, text.mask, x_fm.size(2) / p, x_fm.size(3) / p, tokens.scalar_type());
  std::vector<torch::Tensor> feats;
  size_t next = 0;
  for (size_t i = 0; next < block_ids.size(); ++i) {
    tokens = m.run_block(i, tokens, cond);
    if (static_cast<int>(i) == block_ids[next]) {
      feats.push_back(tokens);
      ++next;
    }
  }
  return feats;
}

torch::Tensor SanaDiscriminatorImpl::forward(const torch::Tensor& x_scaled, const torch::Tensor& t,
                                             const TextCondition& text) {
  auto feats = features(x_scaled, t, text);
  std::vector<torch::Tensor> logits;
  for (size_t i = 0; i < feats.size(); ++i) {
    auto h = heads[i]->as<DiscHeadImpl>()->forward(feats[i].transpose(1, 2));  // (B, D, N) -> (B, 1, N)
    logits.push_back(h.squeeze(1));
  }
  return torch::cat(logits, 1);
}

torch::Tensor hinge_generator_loss(const torch::Tensor& fake_logits) { return -fake_logits.mean(); }

DiscriminatorLoss hinge_discriminator_loss(const torch::Tensor& real_logits, const torch::Tensor& fake_logits) {
  DiscriminatorLoss out;
  auto lr = torch::relu(1 - real_logits).mean();
  auto lf = torch::relu(1 + fake_logits).mean();
  out.loss = 0.5 * (lr + lf);
  out.loss_real = lr.detach();
  out.loss_fake = lf.detach();
  return out;
}

torch::Tensor renoise(at::Generator& gen, const torch::Tensor& x0, const torch::Tensor& t_D, double sd) {
  auto eps = randn(gen, x0.sizes(), x0.options()) * sd;
  return trigflow_noise(x0, eps, t_D);
}

}  // namespace sprint::training
