// See include/sprint/training/jvp.h.
#include "sprint/training/jvp.h"

#include <torch/csrc/autograd/autograd.h>

#include "sprint/error.h"

namespace sprint::training {

namespace {

// Exits the dual level on every path out (forward_ad levels must be released innermost first, also on throw).
struct DualLevel {
  uint64_t level;
  DualLevel() : level(torch::autograd::forward_ad::enter_dual_level()) {}
  ~DualLevel() { torch::autograd::forward_ad::exit_dual_level(level); }
  DualLevel(const DualLevel&) = delete;
  DualLevel& operator=(const DualLevel&) = delete;
};

void check_args(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& v_x, const torch::Tensor& v_t) {
  SPRINT_CHECK(x.defined() && t.defined() && v_x.defined() && v_t.defined(), "jvp: all of x, t, v_x, v_t are needed");
  SPRINT_CHECK(v_x.sizes() == x.sizes(), "jvp: tangent v_x ", v_x.sizes(), " does not match x ", x.sizes());
  SPRINT_CHECK(t.numel() == x.size(0) && v_t.numel() == t.numel(), "jvp: t and v_t need one value per sample (",
               x.size(0), "), got ", t.numel(), " and ", v_t.numel());
}

JvpResult forward_mode(const TrigModel& model, const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& v_x,
                       const torch::Tensor& v_t) {
  // No reverse-mode graph is wanted here (the reference runs torch.func.jvp under no_grad); forward grads are
  // propagated regardless of GradMode.
  torch::NoGradGuard no_grad;
  JvpResult r;
  {
    DualLevel dl;
    const int64_t level = static_cast<int64_t>(dl.level);
    auto xd = at::_make_dual(x.detach(), v_x.to(x.dtype()).contiguous(), level);
    auto td = at::_make_dual(t.detach().reshape({-1}), v_t.to(t.dtype()).reshape({-1}).contiguous(), level);
    auto out = model(xd, td);
    auto [primal, tangent] = at::_unpack_dual(out.F, level);
    SPRINT_CHECK(tangent.defined(), "jvp: the model output carries no tangent (is it connected to x and t?)");
    // Copies: the unpacked views die with the level.
    r.F = primal.clone();
    r.tangent = tangent.clone();
    if (out.logvar.defined()) r.logvar = std::get<0>(at::_unpack_dual(out.logvar, level)).clone();
  }
  return r;
}

JvpResult double_backward(const TrigModel& model, const torch::Tensor& x, const torch::Tensor& t,
                          const torch::Tensor& v_x, const torch::Tensor& v_t) {
  torch::AutoGradMode grad_on(true);
  auto xr = x.detach().requires_grad_(true);
  auto tr = t.detach().reshape({-1}).requires_grad_(true);
  auto out = model(xr, tr);
  // u enters linearly, so any value works; zeros keep the intermediate VJP free of overflow.
  auto u = torch::zeros_like(out.F).requires_grad_(true);
  auto vjp = torch::autograd::grad({out.F}, {xr, tr}, {u}, /*retain_graph=*/true, /*create_graph=*/true,
                                   /*allow_unused=*/true);
  std::vector<torch::Tensor> outs, tans;
  if (vjp[0].defined() && vjp[0].requires_grad()) outs.push_back(vjp[0]), tans.push_back(v_x.to(x.dtype()));
  if (vjp[1].defined() && vjp[1].requires_grad()) outs.push_back(vjp[1]), tans.push_back(v_t.to(t.dtype()).reshape({-1}));
  torch::Tensor J;
  if (!outs.empty()) {
    auto jv = torch::autograd::grad(outs, {u}, tans, /*retain_graph=*/false, /*create_graph=*/false,
                                    /*allow_unused=*/true);
    J = jv[0];
  }
  JvpResult r;
  r.F = out.F.detach();
  r.tangent = J.defined() ? J.detach() : torch::zeros_like(r.F);
  if (out.logvar.defined()) r.logvar = out.logvar.detach();
  return r;
}

}  // namespace

JvpResult jvp(const TrigModel& model, const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& v_x,
              const torch::Tensor& v_t, JvpMethod method) {
  check_args(x, t, v_x, v_t);
  if (method == JvpMethod::DoubleBackward) return double_backward(model, x, t, v_x, v_t);
  try {
    return forward_mode(model, x, t, v_x, v_t);
  } catch (const sprint::Error&) {
    throw;
  } catch (const std::exception& e) {
    // Typically an op without a forward-AD formula, e.g. the fused SDPA kernels.
    throw Error(str("jvp (forward-mode AD) failed; a Sana model needs set_explicit_attention(true), other ops can use "
                    "JvpMethod::DoubleBackward: ", e.what()));
  }
}

}  // namespace sprint::training
