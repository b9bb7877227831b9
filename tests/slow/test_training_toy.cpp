// 2-D toy of the whole recipe (docs/maths.md#teacher, #scm): a small MLP flow teacher trained with flow matching
// on a mixture of 8 Gaussians, then distilled with the sCM loss (exact forward-mode JVP, tangent warm-up and
// normalisation, adaptive logvar weighting) into a student whose ONE-step samples must match the teacher's
// multi-step ODE samples. Writes test-artifacts/training/toy_scatter.png (data | teacher 100-step | student 1-step).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <array>
#include <chrono>
#include <cmath>

#include "sprint/image_io.h"
#include "sprint/training/training.h"
#include "test_util.h"

using namespace sprint;
using namespace sprint::training;
namespace nn = torch::nn;

namespace {

constexpr int kFreqs = 8;

// Fourier features of the dense flow time s in [0, 1] (the toy's "time embedding").
torch::Tensor time_features(const torch::Tensor& s) {
  auto k = torch::arange(1, kFreqs + 1, s.options()) * M_PI;
  auto a = s.reshape({-1, 1}) * k;
  return torch::cat({torch::sin(a), torch::cos(a)}, 1);
}

struct ToyNetImpl : nn::Module {
  ToyNetImpl() {
    l1 = register_module("l1", nn::Linear(2 + 2 * kFreqs, 128));
    l2 = register_module("l2", nn::Linear(128, 128));
    l3 = register_module("l3", nn::Linear(128, 128));
    out = register_module("out", nn::Linear(128, 2));
  }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& s) {
    auto h = torch::cat({x, time_features(s)}, 1);
    h = torch::silu(l1(h));
    h = torch::silu(l2(h));
    h = torch::silu(l3(h));
    return out(h);
  }
  nn::Linear l1{nullptr}, l2{nullptr}, l3{nullptr}, out{nullptr};
};
TORCH_MODULE(ToyNet);

// 8 Gaussians on a circle of radius 1.2, std 0.1 (latent units, overall std ~0.85).
torch::Tensor sample_data(at::Generator& gen, int64_t n) {
  auto k = torch::randint(8, {n}, gen, torch::TensorOptions().dtype(torch::kLong)).to(torch::kFloat32);
  auto ang = k * (2 * M_PI / 8);
  auto centres = torch::stack({torch::cos(ang), torch::sin(ang)}, 1) * 1.2;
  return centres + 0.1 * randn(gen, {n, 2});
}

// Euler integration of the flow ODE from s = 1 (noise) to 0.
torch::Tensor teacher_sample(ToyNet& net, const torch::Tensor& noise, int steps) {
  torch::NoGradGuard no_grad;
  auto x = noise.clone();
  for (int i = steps; i > 0; --i) {
    const double s = static_cast<double>(i) / steps, ds = 1.0 / steps;
    x = x - ds * net(x, torch::full({x.size(0)}, s));
  }
  return x;
}

// Sliced 2-Wasserstein distance over `dirs` random directions (equal sample counts: sorted projections).
double sliced_w2(const torch::Tensor& a, const torch::Tensor& b, int dirs, uint64_t seed) {
  auto gen = make_generator(seed);
  auto d = randn(gen, {2, dirs});
  d = d / d.norm(2, 0, true);
  auto pa = std::get<0>((a.to(torch::kFloat64).matmul(d.to(torch::kFloat64))).sort(0));
  auto pb = std::get<0>((b.to(torch::kFloat64).matmul(d.to(torch::kFloat64))).sort(0));
  return std::sqrt((pa - pb).pow(2).mean().item<double>());
}

void draw(torch::Tensor& img, const torch::Tensor& pts, int panel, std::array<uint8_t, 3> rgb) {
  const int S = 256;
  auto acc = img.accessor<uint8_t, 3>();
  auto p = pts.accessor<float, 2>();
  for (int64_t i = 0; i < pts.size(0); ++i) {
    const int x = static_cast<int>((p[i][0] + 2.0f) / 4.0f * S), y = static_cast<int>((2.0f - p[i][1]) / 4.0f * S);
    if (x < 0 || x >= S || y < 0 || y >= S) continue;
    for (int c = 0; c < 3; ++c) acc[y][panel * S + x][c] = rgb[static_cast<size_t>(c)];
  }
}

}  // namespace

TEST(TrainingToy, ScmDistilledOneStepMatchesTeacher) {
  const auto t0 = std::chrono::steady_clock::now();
  torch::manual_seed(0);
  auto gen = make_generator(1234);
  const double sd = kSigmaData;

  // ---- teacher: flow matching (docs/maths.md#flow-matching-loss, dense time s in [0, 1]) ----
  ToyNet teacher;
  {
    torch::optim::Adam opt(teacher->parameters(), torch::optim::AdamOptions(2e-3));
    for (int step = 0; step < 3000; ++step) {
      auto z = sample_data(gen, 512);
      auto e = randn(gen, {512, 2});
      auto s = sample_flow_time(gen, 512, FlowTimeScheme::LogitNormal);
      FlowModel flow = [&](const torch::Tensor& x, const torch::Tensor& ss) { return teacher(x, ss); };
      auto loss = flow_matching_loss(flow, z, e, s);
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }
  for (auto& p : teacher->parameters()) p.requires_grad_(false);

  const int64_t n_eval = 4096;
  auto eval_noise = randn(gen, {n_eval, 2});
  auto data = sample_data(gen, n_eval);
  auto z_teacher = teacher_sample(teacher, eval_noise, 100);
  auto z_teacher_1 = teacher_sample(teacher, eval_noise, 1);  // collapses towards the mean: the 1-step baseline

  // ---- student: copy of the teacher + logvar head, sCM distillation (docs/maths.md#scm) ----
  ToyNet student;
  {
    torch::NoGradGuard no_grad;
    auto src = teacher->named_parameters();
    for (auto& p : student->named_parameters()) p.value().copy_(src[p.key()]);
  }
  nn::Linear logvar(2 * kFreqs, 1);
  {
    torch::NoGradGuard no_grad;
    nn::init::xavier_uniform_(logvar->weight);
    nn::init::zeros_(logvar->bias);
  }
  TrigModel student_trig = [&](const torch::Tensor& x, const torch::Tensor& t) {
    FlowModel flow = [&](const torch::Tensor& xf, const torch::Tensor& s) { return student(xf, s); };
    return TrigOutput{trigflow_output(flow, x, t), logvar(time_features(flow_time(t.reshape({-1})))).view({-1, 1})};
  };
  auto teacher_trig = as_trig_model([&](const torch::Tensor& x, const torch::Tensor& s) { return teacher(x, s); });
  VelocityFn teacher_velocity = [&](const torch::Tensor& x_t, const torch::Tensor& t) {
    return plain_velocity(teacher_trig, x_t, t, sd);
  };
  ScmConfig cfg;
  cfg.tangent_warmup_steps = 400;
  std::vector<torch::Tensor> params = student->parameters();
  for (auto& p : logvar->parameters()) params.push_back(p);
  torch::optim::Adam opt(params, torch::optim::AdamOptions(1e-4).betas({0.9, 0.99}));
  double g_norm_last = 0, loss_last = 0;
  // lr 1e-4 x 5000 steps: measured sliced W2 0.078; 2e-4 x 4000 gave 0.17, 5e-4 x 3000 0.54 (unstable), 1e-4 x 2000
  // 0.21 (not converged).
  for (int step = 0; step < 5000; ++step) {
    auto x0 = sample_data(gen, 256) * sd;
    auto eps = randn(gen, {256, 2}) * sd;
    auto t = sample_trigflow_time(gen, 256, cfg.p_mean, cfg.p_std, cfg.time_sigma);
    auto r = scm_step(student_trig, teacher_velocity, x0, eps, t, tangent_warmup(step, cfg.tangent_warmup_steps), cfg);
    opt.zero_grad();
    r.loss.backward();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    opt.step();
    g_norm_last = r.g_norm.item<double>();
    loss_last = r.loss_no_logvar.item<double>();
  }

  torch::Tensor z_student;
  {
    torch::NoGradGuard no_grad;
    auto x = eval_noise * sd;  // x_T at t = pi/2
    auto t = torch::full({n_eval}, kScmMaxTimestep);
    z_student = trigflow_x0(x, student_trig(x / sd, t).F, t, sd) / sd;
  }

  const double sw_student = sliced_w2(z_student, z_teacher, 128, 5);
  const double sw_teacher1 = sliced_w2(z_teacher_1, z_teacher, 128, 5);
  const double sw_data = sliced_w2(z_teacher, data, 128, 5);
  const double sw_noise = sliced_w2(data, eval_noise, 128, 5);
  std::printf("[toy] sliced W2: student 1-step vs teacher %.4f | teacher 1-step vs teacher %.4f | teacher vs data "
              "%.4f | data vs noise %.4f | last loss_no_logvar %.4f g_norm %.4f | %.1f s\n",
              sw_student, sw_teacher1, sw_data, sw_noise, loss_last, g_norm_last,
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

  auto img = torch::full({256, 3 * 256, 3}, 255, torch::kUInt8);
  draw(img, data, 0, {90, 90, 90});
  draw(img, z_teacher, 1, {30, 80, 200});
  draw(img, z_student, 2, {200, 40, 40});
  write_png(test::artifact_path("training/toy_scatter.png"), img,
            {{"panels", "data | teacher 100-step Euler | sCM student 1-step"}});

  EXPECT_TRUE(torch::isfinite(z_student).all().item<bool>());
  // Measured (seeded, CPU): student 0.078, teacher 1-step 0.644 (it collapses the modes towards the mean), teacher vs
  // data 0.093, data vs noise 0.31. The student must beat the teacher's own 1-step sample by ~3x and stay within
  // 0.15 of the multi-step teacher (about 2x the measured value, for thread-count dependent float summation
  // changing the training trajectory; the mixture's modes are 0.92 apart with std 0.1).
  EXPECT_LT(sw_student, 0.35 * sw_teacher1);
  EXPECT_LT(sw_student, 0.15);
}
