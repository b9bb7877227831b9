// LADD adversarial part of SANA-Sprint (docs/maths.md#ladd): discriminator heads on frozen-teacher features,
// hinge losses, renoising and max-time weighting.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "sprint/scm.h"
#include "sprint/training/sampling.h"
#include "sprint/training/trigflow.h"

namespace sprint::training {

// Hyperparameters of the adversarial part; defaults are the official 1.6B config (docs/maths.md#ladd).
struct LaddConfig {
  std::vector<int> head_block_ids{2, 8, 14, 19};
  double disc_p_mean = -0.6;             // logit_mean_discriminator
  double disc_p_std = 1.0;               // logit_std_discriminator
  double time_sigma = 0.5;               // t_D = arctan(exp(n) / 0.5)
  double largest_timestep = kScmMaxTimestep;
  double largest_timestep_prob = 0.5;    // 0 disables max-time weighting; the paper also tries 0.7
  int64_t virtual_batch = 8;             // BatchNormLocal
  double adv_lambda = 0.5;               // L_G = scm_lambda L_sCM + adv_lambda L_adv
  double scm_lambda = 1.0;
  bool misaligned_pairs = true;          // rolled real latents join the fake set in the D phase
};

// Conv1d(in -> out, kernel k) with spectral normalisation (torch.nn.utils.spectral_norm: dim 0, 1 power
// iteration per training-mode forward, eps 1e-12) and circular padding k / 2 on both sides.
struct SpectralConv1dImpl : torch::nn::Module {
  SpectralConv1dImpl(int64_t in, int64_t out, int64_t kernel);
  torch::Tensor forward(const torch::Tensor& x /* (B, in, N) */);
  torch::Tensor normalized_weight();  // weight_orig / sigma; updates u, v when training
  int64_t kernel;
  torch::Tensor weight_orig, bias, u, v;
};
TORCH_MODULE(SpectralConv1d);

// Batch norm over groups of `virtual_batch` samples, always with batch statistics (biased variance, eps 1e-5) and a
// per-channel affine. The batch must split into ceil(B / virtual_batch) equal groups, as the reference's view()
// requires.
struct BatchNormLocalImpl : torch::nn::Module {
  BatchNormLocalImpl(int64_t channels, int64_t virtual_batch = 8, double eps = 1e-5);
  torch::Tensor forward(const torch::Tensor& x /* (B, C, N) */);
  int64_t virtual_batch;
  double eps;
  torch::Tensor weight, bias;
};
TORCH_MODULE(BatchNormLocal);

// block(k) = SpectralConv1d(C, C, k) -> BatchNormLocal -> LeakyReLU(0.2).
struct DiscBlockImpl : torch::nn::Module {
  DiscBlockImpl(int64_t channels, int64_t kernel, int64_t virtual_batch);
  torch::Tensor forward(const torch::Tensor& x);
  SpectralConv1d conv{nullptr};
  BatchNormLocal norm{nullptr};
};
TORCH_MODULE(DiscBlock);

// StyleGAN-T head over the token axis (c_dim = 0): main = block(1) -> Residual(block(9)), Residual(f)(x) =
// (f(x) + x) / sqrt 2; cls = SpectralConv1d(C, 1, 1). (B, C, N) -> (B, 1, N).
struct DiscHeadImpl : torch::nn::Module {
  DiscHeadImpl(int64_t channels, int64_t virtual_batch = 8);
  torch::Tensor forward(const torch::Tensor& x);
  DiscBlock block1{nullptr}, block9{nullptr};
  SpectralConv1d cls{nullptr};
};
TORCH_MODULE(DiscHead);

// Discriminator = frozen Sana flow teacher + one DiscHead per hooked block (docs/maths.md#ladd-discriminator). The
// teacher is shared (not registered as a submodule, so parameters() lists only the heads) and must have
// requires_grad off; gradients still flow through it to the input.
struct SanaDiscriminatorImpl : torch::nn::Module {
  SanaDiscriminatorImpl(SanaTransformer2DModel teacher, std::vector<int> head_block_ids, int64_t virtual_batch = 8);

  // Features of the hooked blocks: the teacher run on x_scaled (noised sample / sd) at TrigFlow time t (B,), through
  // the TrigFlow input transform, stopping after the last hooked block (the rest of the output is discarded by the
  // reference). Each (B, N, D).
  std::vector<torch::Tensor> features(const torch::Tensor& x_scaled, const torch::Tensor& t, const TextCondition& text);
  // Logits (B, N * heads), heads concatenated in block-id order.
  torch::Tensor forward(const torch::Tensor& x_scaled, const torch::Tensor& t, const TextCondition& text);

  SanaTransformer2DModel teacher;
  std::vector<int> block_ids;
  torch::nn::ModuleList heads;
};
TORCH_MODULE(SanaDiscriminator);

// Hinge losses (docs/maths.md#hinge).
torch::Tensor hinge_generator_loss(const torch::Tensor& fake_logits);  // -mean(D(fake))
struct DiscriminatorLoss {
  torch::Tensor loss;       // 0.5 [mean relu(1 - D(real)) + mean relu(1 + D(fake))]
  torch::Tensor loss_real;  // mean relu(1 - D(real)), detached
  torch::Tensor loss_fake;  // mean relu(1 + D(fake)), detached
};
DiscriminatorLoss hinge_discriminator_loss(const torch::Tensor& real_logits, const torch::Tensor& fake_logits);

// Renoising for the discriminator: x = cos t_D x0 + sin t_D eps, eps = sd * N(0, 1) from gen
// (docs/maths.md#ladd-renoise).
torch::Tensor renoise(at::Generator& gen, const torch::Tensor& x0, const torch::Tensor& t_D,
                      double sigma_data = kSigmaData);

}  // namespace sprint::training
