// Multi-step ODE samplers of a flow-matching teacher with classifier-free guidance, for sample grids, evaluation and
// the paper's Table 1 (Flow-Euler vs TrigFlow-Euler on the same teacher, docs/maths.md#teacher-samplers).
//   Flow-Euler:     s_i = 1 - i/N; x <- x + (s_{i+1} - s_i) v(x, s_i), x_1 = noise ~ N(0, 1).
//   TrigFlow-Euler: t_i = (pi/2)(1 - i/N); x <- x + (t_{i+1} - t_i) sd F(x / sd, t_i), x_{pi/2} = sd * noise; the
//                   result is divided by sd. F is the TrigFlow transform of the same teacher (trigflow_output).
// Guidance: v = v_u + w (v_c - v_u) (w = 1: conditional only, w <= 0 not allowed). Both model calls are given the
// same x and time; `uncond` may be empty when w == 1.
#pragma once

#include <torch/torch.h>

#include "sprint/scm.h"

namespace sprint::training {

enum class TeacherSolver { FlowEuler, TrigFlowEuler };

torch::Tensor sample_teacher(const FlowModel& cond, const FlowModel& uncond, const torch::Tensor& noise, int steps,
                             double guidance, TeacherSolver solver = TeacherSolver::FlowEuler);

}  // namespace sprint::training
