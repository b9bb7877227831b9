// See include/sprint/training/trigflow.h and docs/maths.md#trigflow, #cfg-folding.
#include "sprint/training/trigflow.h"

#include "sprint/error.h"

namespace sprint::training {

torch::Tensor flow_time(const torch::Tensor& t) { return torch::sin(t) / (torch::sin(t) + torch::cos(t)); }

torch::Tensor trigflow_output(const FlowModel& flow, const torch::Tensor& x_scaled, const torch::Tensor& t) {
  SPRINT_CHECK(x_scaled.dim() >= 2, "trigflow_output: x must be (B, ...), got ", x_scaled.sizes());
  auto tt = t.reshape({-1});
  SPRINT_CHECK(tt.numel() == x_scaled.size(0), "trigflow_output: ", tt.numel(), " times for a batch of ",
               x_scaled.size(0));
  std::vector<int64_t> bshape(static_cast<size_t>(x_scaled.dim()), 1);
  bshape[0] = -1;
  auto s = flow_time(tt);
  auto se = s.view(bshape);
  auto c = torch::sqrt(se * se + (1 - se) * (1 - se));  // = 1 / (sin t + cos t)
  auto x_fm = x_scaled * c;
  auto v = flow(x_fm, s);
  return ((1 - 2 * se) * x_fm + (1 - 2 * se + 2 * se * se) * v) / c;
}

TrigModel as_trig_model(FlowModel flow) {
  return [flow = std::move(flow)](const torch::Tensor& x, const torch::Tensor& t) {
    return TrigOutput{trigflow_output(flow, x, t), {}};
  };
}

torch::Tensor cfg_velocity(const TrigModel& teacher_pair, const torch::Tensor& x_t, const torch::Tensor& t,
                           const torch::Tensor& w, double sigma_data) {
  torch::NoGradGuard no_grad;
  const int64_t B = x_t.size(0);
  SPRINT_CHECK(w.numel() == B, "cfg_velocity: ", w.numel(), " guidance scales for a batch of ", B);
  auto tt = t.reshape({-1});
  auto out = teacher_pair(torch::cat({x_t, x_t}) / sigma_data, torch::cat({tt, tt})).F * sigma_data;
  SPRINT_CHECK(out.size(0) == 2 * B, "cfg_velocity: the teacher returned ", out.size(0), " rows for 2 x ", B);
  auto u_unc = out.narrow(0, 0, B), u_c = out.narrow(0, B, B);
  std::vector<int64_t> bshape(static_cast<size_t>(x_t.dim()), 1);
  bshape[0] = B;
  return (u_unc + w.to(u_c.dtype()).reshape(bshape) * (u_c - u_unc)).detach();
}

torch::Tensor plain_velocity(const TrigModel& teacher, const torch::Tensor& x_t, const torch::Tensor& t,
                             double sigma_data) {
  torch::NoGradGuard no_grad;
  return (teacher(x_t / sigma_data, t.reshape({-1})).F * sigma_data).detach();
}

namespace {
torch::Tensor cat_defined(const torch::Tensor& a, const torch::Tensor& b, const char* what) {
  SPRINT_CHECK(a.defined() == b.defined(), "give ", what, " for both the conditional and unconditional batch or neither");
  return a.defined() ? torch::cat({a, b}) : torch::Tensor();
}
}  // namespace

FlowModel sana_flow_model(SanaTransformer2DModel model, TextCondition c, SanaControlNetModel cn) {
  SPRINT_CHECK(!cn || c.control.defined(), "a teacher with a ControlNet needs the condition latent (text.control)");
  return [model, c = std::move(c), cn](const torch::Tensor& x_fm, const torch::Tensor& s) mutable {
    if (cn) return controlled_forward(*model, *cn, x_fm, c.enc, s, {}, c.mask, c.control, c.control_scale);
    return model->forward(x_fm, c.enc, s, {}, c.mask);
  };
}

TrigModel sana_teacher_pair(SanaTransformer2DModel teacher, TextCondition cond, TextCondition uncond,
                            SanaControlNetModel cn) {
  SPRINT_CHECK(!teacher->config.guidance_embeds, "the flow teacher must not have guidance embeds (it uses real CFG)");
  SPRINT_CHECK(cond.enc.sizes() == uncond.enc.sizes(), "conditional text ", cond.enc.sizes(),
               " and unconditional text ", uncond.enc.sizes(), " differ in shape");
  TextCondition both;
  both.enc = torch::cat({uncond.enc, cond.enc});
  both.mask = cat_defined(uncond.mask, cond.mask, "masks");
  if (cn) both.control = torch::cat({cond.control, cond.control});
  both.control_scale = cond.control_scale;
  return as_trig_model(sana_flow_model(std::move(teacher), std::move(both), std::move(cn)));
}

TrigModel sana_teacher(SanaTransformer2DModel teacher, TextCondition cond, SanaControlNetModel cn) {
  SPRINT_CHECK(!teacher->config.guidance_embeds, "the flow teacher must not have guidance embeds (it uses real CFG)");
  return as_trig_model(sana_flow_model(std::move(teacher), std::move(cond), std::move(cn)));
}

SanaStudentImpl::SanaStudentImpl(SanaTransformer2DModel t, bool zero_init_guidance) : transformer(std::move(t)) {
  SPRINT_CHECK(transformer->config.guidance_embeds, "the student needs guidance embeds (guidance_embeds = true)");
  register_module("transformer", transformer);
  const int64_t D = transformer->config.inner_dim();
  logvar = register_module("logvar", torch::nn::Linear(D, 1));
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(logvar->weight);
  torch::nn::init::zeros_(logvar->bias);
  if (zero_init_guidance) {
    // Only the last linear: its zero output makes the guidance term vanish while linear_1 still receives gradient
    // once linear_2 moves away from zero.
    auto& ge = transformer->front.time_embed->guidance_embedder;
    torch::nn::init::zeros_(ge->linear_2->weight);
    torch::nn::init::zeros_(ge->linear_2->bias);
  }
}

void SanaStudentImpl::attach_controlnet(SanaControlNetModel cn) {
  SPRINT_CHECK(cn, "attach_controlnet: no ControlNet given");
  check_controlnet_fits(cn->config.base, transformer->config);
  controlnet = register_module("controlnet", std::move(cn));
}

TrigOutput SanaStudentImpl::forward(const torch::Tensor& x_scaled, const torch::Tensor& t, const TextCondition& text,
                                    const torch::Tensor& w) {
  auto& m = *transformer;
  SPRINT_CHECK(x_scaled.size(0) == text.enc.size(0), "latent batch ", x_scaled.size(0), " != text batch ",
               text.enc.size(0));
  auto tt = t.reshape({-1});
  SPRINT_CHECK(tt.numel() == x_scaled.size(0), "student: ", tt.numel(), " times for a batch of ", x_scaled.size(0));
  std::vector<int64_t> bshape{-1, 1, 1, 1};
  auto s = flow_time(tt);
  auto se = s.view(bshape);
  auto c = torch::sqrt(se * se + (1 - se) * (1 - se));
  auto x_fm = x_scaled * c;
  // The forward of SanaTransformer2DModel, opened up to reach the embedded timestep for the logvar head.
  auto tokens = m.front.embed(x_fm);
  const int64_t p = m.config.patch_size;
  auto guidance = w.reshape({-1}).to(x_scaled.dtype()) * m.config.guidance_embeds_scale;
  auto cond = m.front.condition(text.enc, s, guidance, text.mask, x_fm.size(2) / p, x_fm.size(3) / p,
                                tokens.scalar_type());
  if (!controlnet) {
    for (size_t i = 0; i < m.num_blocks(); ++i) tokens = m.run_block(i, tokens, cond);
  } else {
    SPRINT_CHECK(text.control.defined(), "a student with a ControlNet needs the condition latent (text.control)");
    auto& cn = *controlnet;
    const auto& cc = cn.config.base;
    auto cn_g = cc.guidance_embeds ? guidance : torch::Tensor();
    if (cn.config.injection == ControlInjection::AfterBlock) {
      auto cn_cond = cn.front.condition(text.enc, s, cn_g, text.mask, x_fm.size(2) / p, x_fm.size(3) / p,
                                        tokens.scalar_type());
      // diffusers order: the ControlNet runs on its own patch embedding of x.
      auto res = cn.control_stream(cn.front.embed(x_fm), text.control, cn_cond, text.control_scale);
      for (size_t i = 0; i < m.num_blocks(); ++i) {
        tokens = m.run_block(i, tokens, cond);
        if (i >= 1 && i <= res.size()) tokens = tokens + res[i - 1];
      }
    } else {
      tokens = m.run_block(0, tokens, cond);
      auto cn_cond = cn.front.condition(text.enc, s, cn_g, text.mask, x_fm.size(2) / p, x_fm.size(3) / p,
                                        tokens.scalar_type());
      auto res = cn.control_stream(tokens, text.control, cn_cond, text.control_scale);
      for (size_t i = 1; i < m.num_blocks(); ++i) {
        if (i <= res.size()) tokens = tokens + res[i - 1];
        tokens = m.run_block(i, tokens, cond);
      }
    }
  }
  auto v = m.finish(tokens, cond);
  TrigOutput out;
  out.F = ((1 - 2 * se) * x_fm + (1 - 2 * se + 2 * se * se) * v) / c;
  out.logvar = (logvar->forward(cond.embedded_timestep) * logvar_scale).view(bshape);
  return out;
}

TrigModel bind_student(SanaStudent student, TextCondition text, torch::Tensor w) {
  return [student, text = std::move(text), w = std::move(w)](const torch::Tensor& x, const torch::Tensor& t) mutable {
    return student->forward(x, t, text, w);
  };
}

}  // namespace sprint::training
