// Exact Jacobian-vector products of a TrigFlow model (docs/maths.md#jvp).
//
// J = dF(x, t)[v_x, v_t] = dF/dx . v_x + dF/dt . v_t, computed exactly (no finite differences), by
//   - forward-mode AD (LibTorch dual tensors: torch::autograd::forward_ad::enter_dual_level, at::_make_dual,
//     at::_unpack_dual), the reference's torch.func.jvp; one forward pass carrying tangents; or
//   - the double-backward identity J v = d/du [ (dF/dx)^T u . v_x + (dF/dt)^T u . v_t ] (u a dummy cotangent), two
//     reverse passes through a graph of the vector-Jacobian product; about 3x the cost, for ops without a
//     forward-AD formula.
// A Sana model must run with set_explicit_attention(true) under JvpMethod::Forward: the fused SDPA kernels have no
// forward-AD formula (docs/maths.md#jvp).
#pragma once

#include <torch/torch.h>

#include "sprint/training/trigflow.h"

namespace sprint::training {

enum class JvpMethod { Forward, DoubleBackward };

struct JvpResult {
  torch::Tensor F;        // primal output, detached
  torch::Tensor logvar;   // primal logvar, detached (not differentiated: the reference's has_aux); may be undefined
  torch::Tensor tangent;  // J, detached, same shape as F
};

// x (B, ...), t (B,); v_x like x, v_t like t. The result carries no autograd history.
JvpResult jvp(const TrigModel& model, const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& v_x,
              const torch::Tensor& v_t, JvpMethod method = JvpMethod::Forward);

}  // namespace sprint::training
