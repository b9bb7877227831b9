// TrigFlow view of flow-matching models for training (docs/maths.md#trigflow, #cfg-folding): the dtype-preserving,
// forward-AD friendly wrapper, the teacher velocity with classifier-free guidance folded in, and the Sana
// student/teacher adapters.
//
// Conventions (as the reference training code): a TrigFlow model takes x_scaled = x_t / sigma_d and the TrigFlow time
// t (B,), and returns F (B, C, H, W); the PF-ODE velocity in latent units is dx_t/dt = sigma_d * F, the clean estimate
// x0 = cos t * x_t - sin t * sigma_d * F.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>

#include "sprint/scm.h"
#include "sprint/controlnet.h"
#include "sprint/transformer.h"

namespace sprint::training {

// Output of a TrigFlow model. logvar (B, 1, 1, 1) is the adaptive-weighting head (student only); undefined otherwise.
struct TrigOutput {
  torch::Tensor F;
  torch::Tensor logvar;
};

// A TrigFlow model with its conditioning (text, mask, guidance) already bound. x_scaled (B, C, H, W), t (B,).
using TrigModel = std::function<TrigOutput(const torch::Tensor& x_scaled, const torch::Tensor& t)>;

// s = sin t / (sin t + cos t), elementwise, in t's dtype (core's trig_to_flow_time casts to float32, which would cap
// the float64 derivative checks at float32 precision).
torch::Tensor flow_time(const torch::Tensor& t);

// F(x_scaled, t) of a flow-matching velocity model (docs/maths.md#trigflow-transform steps 1-5), dtype preserved, no
// detach: usable under reverse- and forward-mode AD. t is (B,); the flow model gets (x_fm, s) with s (B,).
torch::Tensor trigflow_output(const FlowModel& flow, const torch::Tensor& x_scaled, const torch::Tensor& t);

// Wraps a flow model as a TrigModel without logvar.
TrigModel as_trig_model(FlowModel flow);

// Teacher velocity in latent units with CFG folded in (docs/maths.md#cfg-folding): dxdt = u_unc + w (u_c - u_unc),
// u = sigma_d * F. `teacher_pair` is evaluated once on the doubled batch [x; x], [t; t] and must treat rows [0, B) as
// unconditional and rows [B, 2B) as conditional. w: (B,) per-sample scale. Runs under no_grad; the result is
// detached.
torch::Tensor cfg_velocity(const TrigModel& teacher_pair, const torch::Tensor& x_t, const torch::Tensor& t,
                           const torch::Tensor& w, double sigma_data = kSigmaData);
// Without guidance (the reference's single conditional pass when CFG is off): dxdt = sigma_d * F.
torch::Tensor plain_velocity(const TrigModel& teacher, const torch::Tensor& x_t, const torch::Tensor& t,
                             double sigma_data = kSigmaData);

// Conditioning of one batch: text enc (B, L, caption_channels); mask (B, L) 0/1 or undefined; and, for models with a
// ControlNet, the encoded condition latent (B, C, h, w) (VAE latent x scaling_factor) and its scale.
struct TextCondition {
  torch::Tensor enc, mask;
  torch::Tensor control;  // undefined: no control
  double control_scale = 1.0;
};

// A Sana flow teacher (no guidance embeds, no logvar) bound as the doubled-batch CFG pair: rows [0, B) use `uncond`,
// rows [B, 2B) `cond`. The model is held by reference-counted handle; the dense timestep s is fed directly
// (docs/maths.md#dense-time). With a ControlNet `cn`, both halves get cond.control (guidance acts on the text only,
// as in Sana's ControlNet pipeline).
TrigModel sana_teacher_pair(SanaTransformer2DModel teacher, TextCondition cond, TextCondition uncond,
                            SanaControlNetModel cn = nullptr);
// The same teacher with one conditioning (discriminator features, no-CFG runs).
TrigModel sana_teacher(SanaTransformer2DModel teacher, TextCondition cond, SanaControlNetModel cn = nullptr);
// The flow model itself (x_fm, s) -> v with the conditioning bound (sampling, evaluation).
FlowModel sana_flow_model(SanaTransformer2DModel teacher, TextCondition cond, SanaControlNetModel cn = nullptr);

// The Sprint student: a Sana transformer with guidance embeds plus the adaptive-weighting head `logvar`
// (Linear(D -> 1) on the embedded timestep, which already includes the guidance embedding, docs/maths.md#logvar).
struct SanaStudentImpl : torch::nn::Module {
  // `transformer` must have guidance_embeds = true. The logvar head is xavier-uniform with zero bias, the guidance
  // embedder's last linear is zero-initialised when zero_init_guidance (docs/maths.md#student-init) so the student
  // starts at the teacher.
  SanaStudentImpl(SanaTransformer2DModel transformer, bool zero_init_guidance = true);
  // Adds a ControlNet (registered as "controlnet", trained with the student); text.control then feeds it.
  void attach_controlnet(SanaControlNetModel cn);

  // x_scaled (B, C, H, W); t (B,) TrigFlow time; w (B,) CFG scale (multiplied by guidance_embeds_scale inside).
  TrigOutput forward(const torch::Tensor& x_scaled, const torch::Tensor& t, const TextCondition& text,
                     const torch::Tensor& w);

  SanaTransformer2DModel transformer{nullptr};
  SanaControlNetModel controlnet{nullptr};
  torch::nn::Linear logvar{nullptr};
  double logvar_scale = 1.0;  // logvar_scale_factor of the reference
};
TORCH_MODULE(SanaStudent);

// Binds text and per-sample CFG scale w (B,).
TrigModel bind_student(SanaStudent student, TextCondition text, torch::Tensor w);

}  // namespace sprint::training
