// Seeded random draws for training: noise, timesteps, CFG scales (docs/maths.md#scm-time, #cfg-folding, #ladd-renoise,
// #max-time, #flow-matching-loss).
//
// Every draw is made on the CPU from the given generator and then moved to `options`' device, so a seed gives the
// same numbers on every device.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace sprint::training {

// A CPU generator seeded like torch.Generator().manual_seed(seed).
at::Generator make_generator(uint64_t seed);

// N(0, 1) of `shape` (float32 draws, converted to options' dtype and device).
torch::Tensor randn(at::Generator& gen, at::IntArrayRef shape, const torch::TensorOptions& options = {});

// The sCM / LADD "logit_normal_trigflow" time: t = arctan(exp(mean + std * n) / time_sigma), n ~ N(0, 1), (B,).
// time_sigma is the reference's hard-coded 0.5 (docs/maths.md#scm-time).
torch::Tensor sample_trigflow_time(at::Generator& gen, int64_t batch, double mean, double std, double time_sigma = 0.5,
                                   const torch::TensorOptions& options = {});

// Max-time weighting (docs/maths.md#max-time): each sample of t is replaced by `max_t` with probability `prob`.
torch::Tensor apply_max_time(at::Generator& gen, const torch::Tensor& t, double prob, double max_t);

// Per-sample CFG scale drawn uniformly with replacement from `choices` (docs/maths.md#cfg-folding), (B,).
torch::Tensor sample_cfg_scale(at::Generator& gen, int64_t batch, const std::vector<double>& choices,
                               const torch::TensorOptions& options = {});

enum class FlowTimeScheme { LogitNormal, Uniform };
// Flow-matching time s in (0, 1): sigmoid(mean + std * n) (logit-normal, SD3 style) or U(0, 1), (B,).
torch::Tensor sample_flow_time(at::Generator& gen, int64_t batch, FlowTimeScheme scheme, double mean = 0.0,
                               double std = 1.0, const torch::TensorOptions& options = {});

}  // namespace sprint::training
