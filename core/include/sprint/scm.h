// TrigFlow transform (SANA-Sprint paper, Prop. 3.1) and the SCM sampler for 1-4 steps.
//
// A flow-matching model predicts the velocity v = eps' - x0' at flow time s in [0, 1] on x_s = (1-s) x0' + s eps'.
// TrigFlow uses x_t = cos(t) x0 + sin(t) eps, t in [0, pi/2], sigma_d = 0.5, with the model input x_t / sigma_d.
// The wrapper (diffusers pipeline_sana_sprint.py, NVlabs SanaMSCM):
//   s    = sin t / (sin t + cos t)
//   x_fm = (x_t / sigma_d) * sqrt(s^2 + (1-s)^2)
//   F    = ((1 - 2s) x_fm + (1 - 2s + 2s^2) v(x_fm, s)) / sqrt(s^2 + (1-s)^2)
// and the clean estimate is x0 = cos(t) x_t - sin(t) sigma_d F.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <optional>
#include <vector>

namespace sprint {

constexpr double kSigmaData = 0.5;
constexpr double kScmMaxTimestep = 1.57080;         // pi/2 as the references write it
constexpr double kScmIntermediateTimestep = 1.3;    // 2-step default (diffusers SCMScheduler)

// Flow-matching network: velocity at (x_fm, s). s is (B,) float32.
using FlowModel = std::function<torch::Tensor(const torch::Tensor& x_fm, const torch::Tensor& s)>;

// s = sin t / (sin t + cos t), elementwise, float32.
torch::Tensor trig_to_flow_time(const torch::Tensor& t);

// TrigFlow model output F(x_scaled = x_t / sigma_d, t) from a flow model; t is (B,). Returns float32.
torch::Tensor trigflow_forward(const FlowModel& model, const torch::Tensor& x_scaled, const torch::Tensor& t);

// The SCM schedule, as float32 values ending in 0 (length steps + 1), built exactly like diffusers'
// SCMScheduler.set_timesteps:
//   custom non-empty: must have steps + 1 descending values ending in 0 (a missing final 0 is appended);
//   steps == 2:       [max_t, intermediate (default 1.3), 0];
//   otherwise:        linspace(max_t, 0, steps + 1).
// `intermediate` is only legal with steps == 2. Throws sprint::Error on bad input.
torch::Tensor scm_timesteps(int steps, double max_t = kScmMaxTimestep, std::optional<double> intermediate = std::nullopt,
                            const std::vector<double>& custom = {});

// Draws standard-normal noise of a shape (float32). Called once for the initial latent and once per step.
using NoiseSource = std::function<torch::Tensor(const std::vector<int64_t>& shape)>;

// torch.Generator().manual_seed(seed) + torch.randn(shape, generator=g) on the CPU: the same numbers as the
// diffusers pipeline with a CPU generator. The returned source owns its generator; draws advance it.
NoiseSource seeded_cpu_noise(uint64_t seed);

struct ScmSampleOptions {
  torch::Tensor timesteps;               // from scm_timesteps()
  torch::Device device = torch::kCPU;    // where the model runs; noise is drawn on the CPU and moved
  torch::Dtype model_dtype = torch::kFloat32;
  double sigma_data = kSigmaData;
  // Called after each step with (step index, number of steps, x0 estimate / sigma_d). Return false to cancel
  // (the sampler then throws sprint::Cancelled).
  std::function<bool(int, int, const torch::Tensor&)> on_step;
};

struct Cancelled : std::runtime_error {
  Cancelled() : std::runtime_error("cancelled") {}
};

// Runs the SCM loop: latents = noise * sigma_d; for each t: x0 = cos t * latents - sin t * sigma_d * F;
// latents = cos t_next * x0 + sin t_next * noise * sigma_d (fresh noise every step, also the last).
// Returns the final clean latent divided by sigma_d, float32, shape `shape`.
torch::Tensor scm_sample(const FlowModel& model, const std::vector<int64_t>& shape, const NoiseSource& noise,
                         const ScmSampleOptions& options);

}  // namespace sprint
