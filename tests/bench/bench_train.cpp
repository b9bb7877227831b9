// sprint-bench --train, the training-step mode.
//
// Throughput (samples/s) of one optimisation step of the training commands, on the bundled model's sizes
// (training/configs/emoji: teacher 6 blocks, D 192, 8 latent channels, 8x8 latent, 24 caption tokens of 128
// channels from a 2-layer Gemma-2; the student = the teacher + guidance embedding + logvar head; a 3-head LADD
// discriminator on the frozen teacher), random weights written to a temporary folder:
//   teacher    `sprint-train pretrain`'s step: Gemma-2 forward (trained), flow_matching_loss on the teacher,
//              backward, grad clipping of both, AdamW on both;
//   distill G  `sprint-train distill`'s generator step: teacher CFG velocity on the doubled batch, scm_step (exact
//              forward-mode JVP of the student, tangent normalisation, logvar-weighted sCM loss), a second student
//              forward at a max-time weighted t, LADD hinge generator loss through the discriminator, backward,
//              clipping, AdamW on the student;
//   distill D  its discriminator step: student x0 (no grad), renoised fakes + misaligned real pairs and reals through
//              the discriminator, hinge loss, backward into the heads, clipping, AdamW on the heads.
// Each runs the same library functions the commands call (sprint::training), warm-up steps then the median of
// `repeats` timed steps (G and D alternate, as in the command), wall time and process CPU time (the latter is the
// steadier ratio on a machine other jobs share). Not timed (on either side): data loading and
// augmentation, the VAE encode (latents are given), tokenisation (token ids are given), the distill steps' frozen
// text encoder (its embeddings are given), EMA, logging and checkpoints.
// bench_train_diffusers.py then runs the same steps in PyTorch with diffusers' SanaTransformer2DModel and
// transformers' Gemma2Model on the same weights, inputs, random draws (the CPU generator sequence is replayed) and
// thread count, following diffusers' examples/research_projects/sana/train_sana_sprint_diffusers.py (distill) and
// examples/dreambooth/train_dreambooth_lora_sana.py (flow matching, full fine-tuning here), and prints its
// first-step losses, which this mode compares with its own.
#include <torch/cuda.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "sprint/atomic_file.h"
#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/model_folder.h"
#include "sprint/pipeline.h"
#include "sprint/runtime.h"
#include "sprint/safetensors.h"
#include "sprint/text_encoder.h"
#include "sprint/training/ladd.h"
#include "sprint/training/run.h"
#include "sprint/training/sampling.h"
#include "sprint/training/scm_loss.h"
#include "sprint/training/trigflow.h"
#include "sprint/transformer.h"
#include "sprint_bench.h"

namespace sprint::bench {

namespace {

constexpr uint64_t kTrainWeightSeed = 7;      // torch::manual_seed before building the random models
constexpr uint64_t kTrainInputSeed = 2000;    // latents and token ids
constexpr uint64_t kTeacherGenSeed = 17;      // the teacher step's generator (noise, flow time)
constexpr uint64_t kDistillGenSeed = 21;      // the distill steps' generator (CFG scales, times, noise)
constexpr int64_t kTrainBos = 2;              // Gemma's BOS and pad ids (Gemma2Config defaults)
constexpr int64_t kTrainPad = 0;

struct TrainSettings {
  // Models (teacher.json "transformer", "text_encoder"; distill.json "ladd.head_block_ids").
  sprint::TransformerConfig tc;
  sprint::Gemma2Config gc;
  int64_t text_len = 24;  // teacher.json prompt.max_sequence_length
  // Teacher step (teacher.json).
  double t_lr = 1e-4, t_te_lr_scale = 1.0, t_clip = 1.0, t_wd = 0.0, t_beta1 = 0.9, t_beta2 = 0.999;
  double flow_mean = 0.0, flow_std = 1.0;
  bool flow_uniform = false;
  // Distill steps (distill.json).
  double d_lr = 1e-4, d_lr_d = 1e-4, d_clip = 1.0, d_wd = 0.0, d_beta1 = 0.9, d_beta2 = 0.999;
  sprint::training::ScmConfig sc;
  sprint::training::LaddConfig lc;
  double r = 1.0;  // tangent warm-up factor: 1 (after warm-up), so the JVP term counts in the loss
};

// `a.b.c` in a JSON object, or `dflt` when absent.
template <typename T>
T jget(const json& j, const std::string& dotted, T dflt) {
  const json* cur = &j;
  size_t pos = 0;
  while (true) {
    const size_t dot = dotted.find('.', pos);
    const std::string key = dotted.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (!cur->is_object() || !cur->contains(key)) return dflt;
    cur = &(*cur)[key];
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return cur->get<T>();
}

TrainSettings read_train_settings(const fs::path& dir) {
  const json tj = sprint::read_json_file((dir / "teacher.json").string());
  const json dj = sprint::read_json_file((dir / "distill.json").string());
  TrainSettings s;
  s.tc = sprint::TransformerConfig::from_json(tj.at("transformer"), (dir / "teacher.json").string() + " 'transformer'");
  s.gc = sprint::Gemma2Config::from_json(tj.at("text_encoder"), (dir / "teacher.json").string() + " 'text_encoder'");
  // As `sprint-train pretrain` from scratch: QK RMSNorm and the dense timestep unless the config turns them off.
  if (jget(tj, "finetune.qk_norm", true)) s.tc.qk_norm = "rms_norm_across_heads";
  if (jget(tj, "finetune.dense_timestep", true)) s.tc.timestep_scale = 1.0;
  s.text_len = jget<int64_t>(tj, "prompt.max_sequence_length", 300);
  s.t_lr = jget(tj, "optim.lr", s.t_lr);
  s.t_te_lr_scale = jget(tj, "text_encoder_lr_scale", s.t_te_lr_scale);
  s.t_clip = jget(tj, "grad_clip", s.t_clip);
  s.t_wd = jget(tj, "optim.weight_decay", s.t_wd);
  s.t_beta1 = jget(tj, "optim.beta1", s.t_beta1);
  s.t_beta2 = jget(tj, "optim.beta2", s.t_beta2);
  s.flow_uniform = jget<std::string>(tj, "flow.time", "logit_normal") == "uniform";
  s.flow_mean = jget(tj, "flow.mean", s.flow_mean);
  s.flow_std = jget(tj, "flow.std", s.flow_std);

  s.d_lr = jget(dj, "optim.lr", s.d_lr);
  s.d_lr_d = jget(dj, "optim.lr_d", s.d_lr);
  s.d_clip = jget(dj, "grad_clip", s.d_clip);
  s.d_wd = jget(dj, "optim.weight_decay", s.d_wd);
  s.d_beta1 = jget(dj, "optim.beta1", s.d_beta1);
  s.d_beta2 = jget(dj, "optim.beta2", s.d_beta2);
  auto& sc = s.sc;
  sc.p_mean = jget(dj, "scm.p_mean", sc.p_mean);
  sc.p_std = jget(dj, "scm.p_std", sc.p_std);
  sc.tangent_norm_c = jget(dj, "scm.tangent_norm_c", sc.tangent_norm_c);
  sc.cfg_scales = jget(dj, "scm.cfg_scales", sc.cfg_scales);
  sc.jvp_method = jget<std::string>(dj, "scm.jvp", "forward") == "forward" ? sprint::training::JvpMethod::Forward
                                                                          : sprint::training::JvpMethod::DoubleBackward;
  auto& lc = s.lc;
  lc.head_block_ids = jget(dj, "ladd.head_block_ids", std::vector<int>{1, 3, 5});
  lc.disc_p_mean = jget(dj, "ladd.p_mean", lc.disc_p_mean);
  lc.disc_p_std = jget(dj, "ladd.p_std", lc.disc_p_std);
  lc.largest_timestep_prob = jget(dj, "ladd.largest_timestep_prob", lc.largest_timestep_prob);
  lc.adv_lambda = jget(dj, "ladd.adv_lambda", lc.adv_lambda);
  lc.scm_lambda = jget(dj, "scm.lambda", lc.scm_lambda);
  lc.virtual_batch = jget(dj, "ladd.virtual_batch", lc.virtual_batch);
  lc.misaligned_pairs = jget(dj, "ladd.misaligned_pairs", lc.misaligned_pairs);
  SPRINT_CHECK(jget<std::string>(dj, "mode", "scm+ladd") == "scm+ladd", (dir / "distill.json").string(),
               ": sprint-bench --train times the \"scm+ladd\" mode only");
  return s;
}

json train_settings_json(const TrainSettings& s) {
  return {{"teacher", {{"lr", s.t_lr}, {"text_encoder_lr_scale", s.t_te_lr_scale}, {"grad_clip", s.t_clip},
                       {"weight_decay", s.t_wd}, {"betas", {s.t_beta1, s.t_beta2}}, {"eps", 1e-8},
                       {"flow_time", s.flow_uniform ? "uniform" : "logit_normal"}, {"flow_mean", s.flow_mean},
                       {"flow_std", s.flow_std}, {"timestep_scale", s.tc.timestep_scale}}},
          {"distill", {{"lr", s.d_lr}, {"lr_d", s.d_lr_d}, {"grad_clip", s.d_clip}, {"weight_decay", s.d_wd},
                       {"betas", {s.d_beta1, s.d_beta2}}, {"eps", 1e-8}, {"sigma_data", s.sc.sigma_data},
                       {"p_mean", s.sc.p_mean}, {"p_std", s.sc.p_std}, {"time_sigma", s.sc.time_sigma},
                       {"tangent_norm_c", s.sc.tangent_norm_c}, {"cfg_scales", s.sc.cfg_scales}, {"r", s.r},
                       {"head_block_ids", s.lc.head_block_ids}, {"disc_p_mean", s.lc.disc_p_mean},
                       {"disc_p_std", s.lc.disc_p_std}, {"largest_timestep", s.lc.largest_timestep},
                       {"largest_timestep_prob", s.lc.largest_timestep_prob}, {"adv_lambda", s.lc.adv_lambda},
                       {"scm_lambda", s.lc.scm_lambda}, {"virtual_batch", s.lc.virtual_batch},
                       {"misaligned_pairs", s.lc.misaligned_pairs}}}};
}

// The teacher's keys under the student's names: the time embedding moves from `time_embed.emb.timestep_embedder.*`
// (AdaLayerNormSingle) to `time_embed.timestep_embedder.*` (with guidance); the guidance embedder keeps its init.
void copy_teacher_into_student(const torch::nn::Module& teacher, torch::nn::Module& student) {
  torch::NoGradGuard ng;
  const auto src = teacher.named_parameters(true);
  const std::string from = "time_embed.timestep_embedder.", to = "time_embed.emb.timestep_embedder.";
  for (auto& p : student.named_parameters(true)) {
    std::string k = p.key();
    if (k.rfind(from, 0) == 0) k = to + k.substr(from.size());
    if (const auto* t = src.find(k)) p.value().copy_(*t);
  }
}

void copy_from(torch::nn::Module& m, const sprint::safetensors::StateDict& sd, const std::string& prefix) {
  torch::NoGradGuard ng;
  for (auto& p : m.named_parameters(true)) p.value().copy_(sd.at(prefix + p.key()));
  for (auto& b : m.named_buffers(true)) b.value().copy_(sd.at(prefix + b.key()));
}

// Writes the random models and the inputs: teacher/, text_encoder/, student/ (diffusers / transformers layouts),
// heads.safetensors (student logvar head as "logvar.*", discriminator heads as "disc.*"), inputs.safetensors.
void write_train_folder(const fs::path& root, const TrainSettings& s, int64_t B) {
  torch::manual_seed(kTrainWeightSeed);
  sprint::SanaTransformer2DModel teacher(s.tc);
  randomize(*teacher, 1.0);
  sprint::Gemma2Model te(s.gc);
  randomize(*te, 0.0);
  auto stc = s.tc;
  stc.guidance_embeds = true;
  sprint::SanaTransformer2DModel student_tr(stc);
  randomize(*student_tr, 1.0);
  copy_teacher_into_student(*teacher, *student_tr);
  sprint::training::SanaStudent student(student_tr, /*zero_init_guidance=*/true);
  sprint::training::SanaDiscriminator disc(teacher, s.lc.head_block_ids, s.lc.virtual_batch);

  sprint::write_json_file((root / "teacher" / "config.json").string(), s.tc.to_json());
  sprint::save_module(*teacher, (root / "teacher" / "diffusion_pytorch_model.safetensors").string());
  sprint::write_json_file((root / "text_encoder" / "config.json").string(), s.gc.to_json());
  sprint::save_module(*te, (root / "text_encoder" / "model.safetensors").string());
  sprint::write_json_file((root / "student" / "config.json").string(), stc.to_json());
  sprint::save_module(*student->transformer, (root / "student" / "diffusion_pytorch_model.safetensors").string());
  sprint::safetensors::StateDict heads;
  for (const auto& [k, v] : sprint::module_state_dict(*student->logvar)) heads["logvar." + k] = v;
  for (const auto& [k, v] : sprint::module_state_dict(*disc)) heads["disc." + k] = v;
  sprint::safetensors::save((root / "heads.safetensors").string(), heads);

  // Inputs: unit-variance latents, right-padded token ids (BOS first, 4..L real tokens), the empty prompt (BOS only).
  torch::manual_seed(kTrainInputSeed);
  const int64_t side = s.tc.sample_size, L = s.text_len;
  sprint::safetensors::StateDict in;
  in["z"] = torch::randn({B, s.tc.in_channels, side, side});
  auto lengths = torch::randint(std::min<int64_t>(4, L), L + 1, {B}, torch::kLong);
  auto ids = torch::randint(3, s.gc.vocab_size, {B, L}, torch::kLong);
  ids.select(1, 0).fill_(kTrainBos);
  auto mask = (torch::arange(L, torch::kLong).unsqueeze(0) < lengths.unsqueeze(1)).to(torch::kLong);
  in["ids"] = torch::where(mask.to(torch::kBool), ids, torch::full_like(ids, kTrainPad));
  in["mask"] = mask;
  auto uids = torch::full({B, L}, kTrainPad, torch::kLong);
  uids.select(1, 0).fill_(kTrainBos);
  in["uncond_ids"] = uids;
  in["uncond_mask"] = (torch::arange(L, torch::kLong) < 1).to(torch::kLong).unsqueeze(0).expand({B, L}).contiguous();
  sprint::safetensors::save((root / "inputs.safetensors").string(), in);
}
// CPU time of the whole process (all threads), in ms: on a loaded machine it counts the work done, not the time spent
// waiting for a core (with --threads 1 the step runs on the calling thread).
double process_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

struct TrainRow {
  std::string step, device;
  int64_t batch = 0;
  int warmup = 0, repeats = 0;
  std::vector<double> ms, cpu_ms;       // wall time and process CPU time per timed step
  std::map<std::string, double> first;  // the first step's loss terms
  double median_ms() const { return median(ms); }
  double median_cpu_ms() const { return median(cpu_ms); }
  double samples_per_s() const { return static_cast<double>(batch) / (median_ms() * 1e-3); }
};

json to_json(const TrainRow& r) {
  return {{"step", r.step}, {"device", r.device}, {"batch", r.batch}, {"warmup", r.warmup}, {"repeats", r.repeats},
          {"times_ms", r.ms}, {"median_ms", r.median_ms()}, {"cpu_times_ms", r.cpu_ms},
          {"median_cpu_ms", r.median_cpu_ms()}, {"samples_per_s", r.samples_per_s()}, {"first", r.first}};
}

// One timed step: wall and CPU time; the first step's terms are kept, steps after the warm-up are recorded.
template <typename F>
void time_step(TrainRow& row, int i, const torch::Device& dev, F&& step) {
  const auto t0 = Clock::now();
  const double c0 = process_cpu_ms();
  auto terms = step(i);
  sync(dev);
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  const double cpu = process_cpu_ms() - c0;
  if (i == 0) row.first = terms;
  if (i >= row.warmup) row.ms.push_back(ms), row.cpu_ms.push_back(cpu);
}

std::vector<torch::Tensor> trainable_params(const torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.parameters(true))
    if (p.requires_grad()) out.push_back(p);
  return out;
}

std::unique_ptr<torch::optim::AdamW> adamw(const std::vector<torch::Tensor>& params, double lr, double b1, double b2,
                                           double wd) {
  torch::optim::AdamWOptions o(lr);
  o.betas({b1, b2}).eps(1e-8).weight_decay(wd);
  return std::make_unique<torch::optim::AdamW>(params, o);
}

// The teacher step of `sprint-train pretrain` (its hooks.step minus data, VAE, EMA and logging).
TrainRow bench_teacher_step(const fs::path& root, const TrainSettings& s, const sprint::safetensors::StateDict& in,
                            const torch::Device& dev, int warmup, int repeats, sprint::safetensors::StateDict* out) {
  namespace st = sprint::training;
  auto teacher = sprint::load_transformer((root / "teacher").string());
  auto te = sprint::load_text_encoder((root / "text_encoder").string());
  teacher->to(dev);
  te->to(dev);
  for (auto* m : std::initializer_list<torch::nn::Module*>{teacher.ptr().get(), te.ptr().get()}) {
    m->train();
    for (auto& p : m->parameters(true)) p.set_requires_grad(true);
  }
  const auto t_params = trainable_params(*teacher), e_params = trainable_params(*te);
  auto opt = adamw(t_params, s.t_lr, s.t_beta1, s.t_beta2, s.t_wd);
  auto opt_te = adamw(e_params, s.t_lr * s.t_te_lr_scale, s.t_beta1, s.t_beta2, s.t_wd);
  sprint::PromptOptions po;
  po.complex_human_instruction = false;
  po.max_sequence_length = static_cast<int>(s.text_len);
  sprint::TokenizedBatch tokens{in.at("ids").to(dev), in.at("mask").to(dev)};
  const auto z = in.at("z").to(dev);
  const auto fopts = z.options();
  const int64_t B = z.size(0);
  auto gen = st::make_generator(kTeacherGenSeed);
  const double tscale = s.tc.timestep_scale;

  TrainRow row;
  row.step = "teacher", row.device = dev.is_cuda() ? "cuda" : "cpu", row.batch = B;
  row.warmup = warmup, row.repeats = repeats;
  auto step = [&](int i) {
    auto e = st::randn(gen, z.sizes(), fopts);
    auto sched = st::sample_flow_time(gen, B, s.flow_uniform ? st::FlowTimeScheme::Uniform : st::FlowTimeScheme::LogitNormal,
                                      s.flow_mean, s.flow_std, fopts);
    torch::Tensor enc, mask;
    std::tie(enc, mask) = sprint::embed_prompts(*te, tokens, po, dev);
    sprint::FlowModel model = [&](const torch::Tensor& x, const torch::Tensor& tt) {
      return teacher->forward(x, enc, tt * tscale, {}, mask);
    };
    auto loss = st::flow_matching_loss(model, z, e, sched);
    opt->zero_grad();
    opt_te->zero_grad();
    loss.backward();
    const double gn = st::clip_gradients(t_params, s.t_clip);
    const double gn_te = st::clip_gradients(e_params, s.t_clip);
    std::map<std::string, double> terms{{"loss", loss.item<double>()}, {"grad_norm", gn}, {"grad_norm_text", gn_te}};
    st::check_finite(i + 1, terms);
    opt->step();
    opt_te->step();
    if (i == 0 && out) (*out)["teacher.enc"] = enc.detach().to(torch::kCPU).contiguous();
    return terms;
  };
  for (int i = 0; i < warmup + repeats; ++i) time_step(row, i, dev, step);
  return row;
}

// The G and D steps of `sprint-train distill` (mode scm+ladd, no ControlNet), alternating as in the command.
std::pair<TrainRow, TrainRow> bench_distill_steps(const fs::path& root, const TrainSettings& s,
                                                  const sprint::safetensors::StateDict& in, const torch::Device& dev,
                                                  int warmup, int repeats, sprint::safetensors::StateDict* out) {
  namespace st = sprint::training;
  const double sd = s.sc.sigma_data;
  auto teacher = sprint::load_transformer((root / "teacher").string());
  auto te = sprint::load_text_encoder((root / "text_encoder").string());
  for (auto* m : std::initializer_list<torch::nn::Module*>{teacher.ptr().get(), te.ptr().get()}) {
    m->eval();
    for (auto& p : m->parameters(true)) p.set_requires_grad(false);
  }
  teacher->to(dev);
  te->to(dev);
  const auto heads = sprint::safetensors::load_all((root / "heads.safetensors").string());
  auto student_tr = sprint::load_transformer((root / "student").string());
  st::SanaStudent student(student_tr, /*zero_init_guidance=*/false);  // the saved guidance embedder is already zeroed
  copy_from(*student->logvar, heads, "logvar.");
  student->to(dev);
  for (auto& p : student->parameters(true)) p.set_requires_grad(true);
  student->transformer->front.set_explicit_attention(true);  // forward-mode AD needs the plain softmax
  st::SanaDiscriminator disc(teacher, s.lc.head_block_ids, s.lc.virtual_batch);
  copy_from(*disc, heads, "disc.");
  disc->to(dev);
  const auto g_params = trainable_params(*student), d_params = trainable_params(*disc);
  auto opt_g = adamw(g_params, s.d_lr, s.d_beta1, s.d_beta2, s.d_wd);
  auto opt_d = adamw(d_params, s.d_lr_d, s.d_beta1, s.d_beta2, s.d_wd);

  // Text embeddings of the frozen encoder, computed once (not timed).
  sprint::PromptOptions po;
  po.complex_human_instruction = false;
  po.max_sequence_length = static_cast<int>(s.text_len);
  st::TextCondition cond, uncond;
  {
    torch::NoGradGuard ng;
    std::tie(cond.enc, cond.mask) = sprint::embed_prompts(*te, {in.at("ids").to(dev), in.at("mask").to(dev)}, po, dev);
    std::tie(uncond.enc, uncond.mask) =
        sprint::embed_prompts(*te, {in.at("uncond_ids").to(dev), in.at("uncond_mask").to(dev)}, po, dev);
  }
  const auto x0 = in.at("z").to(dev) * sd;
  const auto fopts = x0.options();
  const int64_t B = x0.size(0);
  const auto& sc = s.sc;
  const auto& lc = s.lc;
  auto gen = st::make_generator(kDistillGenSeed);
  // x0_hat of the student at a fresh, max-time weighted t (distill.cpp's student_x0).
  auto student_x0 = [&](const st::TextCondition& c, const torch::Tensor& w) {
    auto t_new = st::apply_max_time(gen, st::sample_trigflow_time(gen, B, sc.p_mean, sc.p_std, sc.time_sigma, fopts),
                                    lc.largest_timestep_prob, lc.largest_timestep);
    auto eps = st::randn(gen, x0.sizes(), fopts) * sd;
    auto x_t = st::trigflow_noise(x0, eps, t_new);
    auto F = student->forward(x_t / sd, t_new, c, w).F;
    return st::trigflow_x0(x_t, F, t_new, sd);
  };

  auto g_step = [&](int i) {
    student->train();
    auto w = st::sample_cfg_scale(gen, B, sc.cfg_scales, fopts);
    auto pair = st::sana_teacher_pair(teacher, cond, uncond);
    st::VelocityFn vel = [&](const torch::Tensor& x_t, const torch::Tensor& t) {
      return st::cfg_velocity(pair, x_t, t, w, sd);
    };
    auto t = st::sample_trigflow_time(gen, B, sc.p_mean, sc.p_std, sc.time_sigma, fopts);
    auto eps = st::randn(gen, x0.sizes(), fopts) * sd;
    auto res = st::scm_step(st::bind_student(student, cond, w), vel, x0, eps, t, s.r, sc);
    auto loss = lc.scm_lambda * res.loss;
    for (auto& p : d_params) p.set_requires_grad(false);
    auto x0_hat = student_x0(cond, w);
    auto t_d = st::sample_trigflow_time(gen, B, lc.disc_p_mean, lc.disc_p_std, lc.time_sigma, fopts);
    auto fake = st::renoise(gen, x0_hat, t_d, sd);
    auto adv = st::hinge_generator_loss(disc->forward(fake / sd, t_d, cond));
    for (auto& p : d_params) p.set_requires_grad(true);
    loss = loss + lc.adv_lambda * adv;
    opt_g->zero_grad();
    loss.backward();
    std::map<std::string, double> terms{{"loss_scm", res.loss.item<double>()},
                                        {"loss_no_logvar", res.loss_no_logvar.item<double>()},
                                        {"g_norm", res.g_norm.item<double>()},
                                        {"loss_adv", adv.item<double>()}};
    terms["grad_norm_g"] = st::clip_gradients(g_params, s.d_clip);
    terms["loss_g"] = loss.item<double>();
    st::check_finite(2 * i + 1, terms);
    opt_g->step();
    if (i == 0 && out) {
      (*out)["g.x_t"] = res.x_t.to(torch::kCPU).contiguous();
      (*out)["g.dxdt"] = res.dxdt.to(torch::kCPU).contiguous();
      (*out)["g.J"] = res.J.to(torch::kCPU).contiguous();
      (*out)["g.F_theta"] = res.F_theta.detach().to(torch::kCPU).contiguous();
      (*out)["g.logvar"] = res.logvar.detach().to(torch::kCPU).contiguous();
      (*out)["distill.cond_enc"] = cond.enc.to(torch::kCPU).contiguous();
      (*out)["distill.uncond_enc"] = uncond.enc.to(torch::kCPU).contiguous();
    }
    return terms;
  };
  auto d_step = [&](int i) {
    student->eval();
    auto w = st::sample_cfg_scale(gen, B, sc.cfg_scales, fopts);
    torch::Tensor x0_hat;
    {
      torch::NoGradGuard ng;
      x0_hat = student_x0(cond, w);
    }
    auto t_d = st::sample_trigflow_time(gen, B, lc.disc_p_mean, lc.disc_p_std, lc.time_sigma, fopts);
    auto real = st::renoise(gen, x0, t_d, sd);
    auto fake = st::renoise(gen, x0_hat, t_d, sd);
    torch::Tensor fake_logits;
    if (lc.misaligned_pairs && B > 1) {
      auto t_mis = st::sample_trigflow_time(gen, B, lc.disc_p_mean, lc.disc_p_std, lc.time_sigma, fopts);
      auto mis = st::renoise(gen, torch::roll(x0, 1, 0), t_mis, sd);
      st::TextCondition c2 = cond;
      c2.enc = torch::cat({cond.enc, cond.enc});
      if (cond.mask.defined()) c2.mask = torch::cat({cond.mask, cond.mask});
      fake_logits = disc->forward(torch::cat({fake, mis}) / sd, torch::cat({t_d, t_mis}), c2);
    } else {
      fake_logits = disc->forward(fake / sd, t_d, cond);
    }
    auto dl = st::hinge_discriminator_loss(disc->forward(real / sd, t_d, cond), fake_logits);
    opt_d->zero_grad();
    dl.loss.backward();
    const double gn = st::clip_gradients(d_params, s.d_clip);
    std::map<std::string, double> terms{{"loss_d", dl.loss.item<double>()}, {"loss_real", dl.loss_real.item<double>()},
                                        {"loss_fake", dl.loss_fake.item<double>()}, {"grad_norm_d", gn}};
    st::check_finite(2 * i + 2, terms);
    opt_d->step();
    return terms;
  };

  TrainRow g, d;
  g.step = "distill G", d.step = "distill D";
  g.device = d.device = dev.is_cuda() ? "cuda" : "cpu";
  g.batch = d.batch = B;
  g.warmup = d.warmup = warmup, g.repeats = d.repeats = repeats;
  for (int i = 0; i < warmup + repeats; ++i) {  // alternating, as the command's steps
    time_step(g, i, dev, g_step);
    time_step(d, i, dev, d_step);
  }
  return {g, d};
}
// The first-step losses compared (C++ key, diffusers key, label) per step.
const std::map<std::string, std::vector<std::string>> kTrainLossKeys = {
    {"teacher", {"loss"}}, {"distill G", {"loss_scm", "loss_adv", "loss_g"}}, {"distill D", {"loss_d"}}};

}  // namespace

int run_train_bench(const Options& o) {
  const int threads = sprint::init_threads(o.threads);
  std::cout << "sprint-bench --train: " << sprint::describe_runtime(torch::kCPU) << ", load average " << load_average()
            << " (other processes skew the numbers)\n";
  const auto settings = read_train_settings(o.train_configs);
  const int64_t B = o.train_batch;
  SPRINT_CHECK(B % settings.lc.virtual_batch == 0 || B < settings.lc.virtual_batch, "--train-batch ", B,
               " must be a multiple of ladd.virtual_batch ", settings.lc.virtual_batch, " (BatchNormLocal groups)");
  const int warmup = o.warmup >= 0 ? o.warmup : 2, repeats = o.repeats > 0 ? o.repeats : 10;

  std::vector<torch::Device> devices;
  if (o.device.empty() || o.device == "cpu") devices.push_back(torch::kCPU);
  if (o.device.empty() || o.device == "cuda") {
    if (sprint::cuda_available()) {
      devices.push_back(torch::kCUDA);
    } else {
#ifdef SPRINT_HAVE_CUDA
      std::cout << "CUDA: skipped (torch::cuda::is_available() is false: no driver or no device)\n";
#else
      std::cout << "CUDA: skipped (this build links the CPU-only LibTorch)\n";
#endif
    }
  }
  if (devices.empty()) {
    std::cout << "nothing to run (--device " << o.device << ")\n";
    return 0;
  }
  const std::string py_problem =
      o.no_compare ? "--no-compare"
                   : python_problem(o.python, o.train_script, {"torch", "diffusers", "transformers", "safetensors"});
  if (!py_problem.empty()) std::cout << "diffusers comparison unavailable: " << py_problem << "\n";

  TempDir temp;
  const fs::path root = make_temp_dir("sprint-bench-train");
  if (!o.keep) temp.path = root;

  const auto& tc = settings.tc;
  write_train_folder(root, settings, B);
  const auto inputs = sprint::safetensors::load_all((root / "inputs.safetensors").string());
  std::cout << "models (random weights, seed " << kTrainWeightSeed << ", from " << o.train_configs << "): teacher "
            << tc.num_layers << " blocks, D " << tc.inner_dim() << ", " << tc.in_channels << "x" << tc.sample_size
            << "x" << tc.sample_size << " latent, " << settings.text_len << " caption tokens x "
            << tc.caption_channels << "; Gemma-2 " << settings.gc.num_hidden_layers << " layers; student + guidance "
            << "embedding + logvar head; discriminator heads on blocks "
            << json(settings.lc.head_block_ids).dump() << "\n"
            << "batch " << B << ", " << threads << " threads, " << warmup << " warm-up + " << repeats
            << " timed steps each (median)\n"
            << std::flush;

  std::vector<TrainRow> rows;
  sprint::safetensors::StateDict first;
  for (const auto& dev : devices) {
    const std::string dn = dev.is_cuda() ? "cuda" : "cpu";
    sprint::safetensors::StateDict f;
    std::cout << "  " << dn << " teacher step ..." << std::flush;
    rows.push_back(bench_teacher_step(root, settings, inputs, dev, warmup, repeats, &f));
    std::cout << " " << fmt(rows.back().median_ms(), "%.1f") << " ms\n  " << dn << " distill G + D steps ..." << std::flush;
    auto [g, d] = bench_distill_steps(root, settings, inputs, dev, warmup, repeats, &f);
    std::cout << " G " << fmt(g.median_ms(), "%.1f") << " ms, D " << fmt(d.median_ms(), "%.1f") << " ms\n" << std::flush;
    rows.push_back(g);
    rows.push_back(d);
    for (auto& [k, v] : f) first[dn + "." + k] = v;
  }
  sprint::safetensors::save((root / "cpp_first_step.safetensors").string(), first);
  json results = {{"tool", "sprint-bench --train"}, {"threads", threads}, {"batch", B}, {"warmup", warmup},
                  {"repeats", repeats}, {"seeds", {{"teacher", kTeacherGenSeed}, {"distill", kDistillGenSeed}}},
                  {"text_len", settings.text_len}, {"settings", train_settings_json(settings)},
                  {"load_average", load_average()}, {"rows", json::array()}};
  for (const auto& r : rows) results["rows"].push_back(to_json(r));
  sprint::write_json_file((root / "cpp_results.json").string(), results);

  std::optional<json> py;
  std::string why = py_problem;
  if (py_problem.empty()) py = run_python_script(o.python, o.train_script, "bench_train_diffusers.py", root, &why);
  auto py_row = [&](const TrainRow& r) -> const json* {
    if (!py) return nullptr;
    for (const auto& j : py->at("rows"))
      if (j.at("step") == r.step && j.at("device") == r.device) return &j;
    return nullptr;
  };

  std::cout << "\n==== sprint-bench --train results (batch " << B << ", " << threads << " threads, median of "
            << repeats << " steps after " << warmup << " warm-up; load average " << load_average() << ") ====\n";
  std::vector<std::vector<std::string>> cells;
  // Medians in ms: wall and CPU time, C++ and diffusers (nullopt: diffusers not run).
  auto add = [&](const std::string& step, const std::string& dev, int64_t samples, double c_ms, double c_cpu,
                 std::optional<double> p_ms, std::optional<double> p_cpu) {
    const double cs = static_cast<double>(samples) / (c_ms * 1e-3);
    std::optional<double> ps;
    if (p_ms) ps = static_cast<double>(samples) / (*p_ms * 1e-3);
    const bool cpu = dev == "cpu";
    cells.push_back({step, dev, fmt(c_ms, "%.1f"), fmt(cs, "%.2f"), p_ms ? fmt(*p_ms, "%.1f") : "-",
                     ps ? fmt(*ps, "%.2f") : "-", ps ? fmt(cs / *ps, "%.2f") : "-",
                     cpu ? fmt(c_cpu, "%.1f") : "-", cpu && p_cpu ? fmt(*p_cpu, "%.1f") : "-",
                     cpu && p_cpu ? fmt(*p_cpu / c_cpu, "%.2f") : "-"});
  };
  auto pget = [](const json* p, const char* k) -> std::optional<double> {
    if (!p || !p->contains(k) || (*p)[k].is_null()) return std::nullopt;
    return (*p)[k].get<double>();
  };
  auto sum = [](std::optional<double> a, std::optional<double> b) -> std::optional<double> {
    if (a && b) return *a + *b;
    return std::nullopt;
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const json* p = py_row(r);
    add(r.step, r.device, r.batch, r.median_ms(), r.median_cpu_ms(), pget(p, "median_ms"), pget(p, "median_cpu_ms"));
    if (r.step == "distill D" && i > 0 && rows[i - 1].step == "distill G") {  // one G + one D step: 2 batches
      const auto& g = rows[i - 1];
      const json* pg = py_row(g);
      add("distill G+D", r.device, 2 * r.batch, r.median_ms() + g.median_ms(), r.median_cpu_ms() + g.median_cpu_ms(),
          sum(pget(p, "median_ms"), pget(pg, "median_ms")), sum(pget(p, "median_cpu_ms"), pget(pg, "median_cpu_ms")));
    }
  }
  print_table({"step", "device", "C++ ms", "C++ samples/s", "diffusers ms", "diffusers samples/s", "C++/diffusers",
               "C++ CPU ms", "diffusers CPU ms", "C++/diffusers by CPU time"},
              cells, 2);
  std::cout << "ms: median wall time per step. C++/diffusers: samples/s ratio from wall time (> 1: C++ faster). CPU ms "
               "and the last column: the same from process CPU time (cpu rows only), which a busy machine skews less. "
               "distill G+D: one G and one D step (two batches), as the command alternates them.\n";

  if (py) {
    std::cout << "\nfirst-step losses (same weights, inputs and random draws; step 1 of the warm-up):\n";
    std::vector<std::vector<std::string>> lc;
    for (const auto& r : rows) {
      const json* p = py_row(r);
      for (const auto& key : kTrainLossKeys.at(r.step)) {
        const double c = r.first.at(key);
        std::optional<double> v;
        if (p && p->at("first").contains(key)) v = p->at("first").at(key).get<double>();
        lc.push_back({r.step, r.device, key, fmt(c, "%.8g"), v ? fmt(*v, "%.8g") : "-",
                      v ? fmt(std::fabs(c - *v) / std::max(std::fabs(c), 1e-30), "%.2e") : "-"});
      }
    }
    print_table({"step", "device", "term", "C++", "diffusers", "rel. diff"}, lc, 3);
    if (py->contains("parity")) {
      std::cout << "intermediates of the first step, diffusers vs C++ (NMSE):";
      for (const auto& [k, v] : py->at("parity").items())
        std::cout << " " << k << " " << (v.is_null() ? "-" : fmt(v.get<double>(), "%.1e"));
      std::cout << "\n";
    }
    std::cout << "diffusers side: torch " << py->value("torch", "?") << ", diffusers " << py->value("diffusers", "?")
              << ", transformers " << py->value("transformers", "?") << ", " << py->value("threads", 0)
              << " threads, mode " << py->value("mode", "?") << "\n";
  } else {
    std::cout << "\ndiffusers: not run: " << why << "\n";
    std::cout << "first-step losses (C++):";
    for (const auto& r : rows)
      for (const auto& key : kTrainLossKeys.at(r.step))
        std::cout << " " << r.step << "/" << r.device << " " << key << " " << fmt(r.first.at(key), "%.6g") << ";";
    std::cout << "\n";
  }
  if (o.keep) std::cout << "\nweights, inputs and results kept in " << root << "\n";
  if (!o.json_path.empty()) {
    if (py) results["diffusers"] = *py;
    std::ofstream(o.json_path) << results.dump(2) << "\n";
  }
  return 0;
}

}  // namespace sprint::bench
