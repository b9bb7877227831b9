// sprint-train distill: SANA-Sprint's hybrid distillation (docs/maths.md#scm, #ladd, #distill-step) of a flow teacher
// (optionally with its ControlNet) into a 1-4 step Sprint student with a guidance embedding.
//   G phase (one batch): sCM loss (TrigFlow teacher with CFG folded in, exact JVP of the student, tangent
//     normalisation and warm-up, adaptive logvar weighting) + adv_lambda x LADD generator hinge loss on a second
//     student forward at a fresh (max-time weighted) t; one optimizer step (AdamW or CAME) on the student (and its
//     ControlNet).
//   D phase (next batch): student x0 (no grad) and real latents renoised at the same t_D, misaligned real pairs join
//     the fakes; hinge loss; one optimizer step on the discriminator heads only.
// Phases alternate 1:1 on different batches; a non-finite gradient stops the run (check_finite) with the terms.
// Arms for the paper's ablations: mode = "scm+ladd" | "scm" | "ladd"; ladd.largest_timestep_prob = 0 / 0.5 / 0.7.
// The ControlNet condition is given to teacher and student alike; the discriminator sees the text only.
// Output: out/model, a Sprint model folder (student transformer with guidance embeds, its ControlNet, vae, text
// encoder, tokenizer) that Pipeline::load / the app load unchanged.
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "models.h"
#include "sprint/controlnet.h"
#include "sprint/error.h"
#include "sprint/model_folder.h"
#include "sprint/training/ladd.h"
#include "sprint/training/sampling.h"
#include "sprint/training/scm_loss.h"
#include "sprint/training/trigflow.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace sprint::training::cli {
namespace {

// Teacher -> student weights: same names except the time embedding, which moves from `time_embed.emb.*` (no
// guidance embedding) to `time_embed.*`. Student keys with no teacher counterpart (the guidance embedder) keep their
// initialisation.
void copy_teacher_weights(const torch::nn::Module& teacher, torch::nn::Module& student) {
  torch::NoGradGuard ng;
  auto src = teacher.named_parameters(true);
  for (auto& p : student.named_parameters(true)) {
    std::string k = p.key();
    const std::string prefix = "time_embed.timestep_embedder.";
    const auto pos = k.find(prefix);
    std::string alt = pos == std::string::npos ? k : k.substr(0, pos) + "time_embed.emb.timestep_embedder." +
                                                          k.substr(pos + prefix.size());
    if (auto* s = src.find(k))
      p.value().copy_(*s);
    else if (auto* s2 = src.find(alt))
      p.value().copy_(*s2);
  }
}

torch::Tensor sample_student(SanaStudentImpl& st, const TextCondition& text, double guidance, int steps,
                             uint64_t seed, const std::vector<int64_t>& shape) {
  torch::NoGradGuard ng;
  auto& tr = *st.transformer;
  auto g = torch::full({shape[0]}, guidance) * tr.config.guidance_embeds_scale;
  FlowModel f = [&](const torch::Tensor& x, const torch::Tensor& s) {
    if (st.controlnet)
      return controlled_forward(tr, *st.controlnet, x, text.enc, s, g, text.mask, text.control, text.control_scale);
    return tr.forward(x, text.enc, s, g, text.mask);
  };
  ScmSampleOptions o;
  o.timesteps = scm_timesteps(steps);
  return scm_sample(f, shape, seeded_cpu_noise(seed), o);
}

}  // namespace

int run_distill(const CommandLine& cl) {
  auto cfg = ConfigFile::load(cl.config_file, cl.overrides);
  auto s = read_common(cfg);
  const std::string teacher_dir = cfg.require<std::string>("teacher");
  const auto mode = cfg.get_choice("mode", "scm+ladd", {"scm+ladd", "scm", "ladd"});
  const bool use_scm = mode != "ladd", use_ladd = mode != "scm";
  ScmConfig sc;
  sc.p_mean = cfg.get_range("scm.p_mean", sc.p_mean, -10.0, 10.0);
  sc.p_std = cfg.get_range("scm.p_std", sc.p_std, 0.01, 10.0);
  sc.tangent_warmup_steps = cfg.get_range("scm.tangent_warmup_steps", sc.tangent_warmup_steps, 0, int64_t{1} << 40);
  sc.tangent_norm_c = cfg.get_range("scm.tangent_norm_c", sc.tangent_norm_c, 0.0, 100.0);
  sc.cfg_scales = cfg.get<std::vector<double>>("scm.cfg_scales", sc.cfg_scales);
  SPRINT_CHECK(!sc.cfg_scales.empty(), cfg.source(), ": 'scm.cfg_scales' must list at least one scale");
  for (double w : sc.cfg_scales)
    SPRINT_CHECK(w >= 1.0 && w <= 30.0, cfg.source(), ": 'scm.cfg_scales' value ", w, " must be in [1, 30]");
  const auto jvp_method = cfg.get_choice("scm.jvp", "forward", {"forward", "double_backward"});
  sc.jvp_method = jvp_method == "forward" ? JvpMethod::Forward : JvpMethod::DoubleBackward;
  LaddConfig lc;
  lc.head_block_ids = cfg.get<std::vector<int>>("ladd.head_block_ids", {1, 3, 5});
  lc.disc_p_mean = cfg.get_range("ladd.p_mean", lc.disc_p_mean, -10.0, 10.0);
  lc.disc_p_std = cfg.get_range("ladd.p_std", lc.disc_p_std, 0.01, 10.0);
  lc.largest_timestep_prob = cfg.get_range("ladd.largest_timestep_prob", lc.largest_timestep_prob, 0.0, 1.0);
  lc.adv_lambda = cfg.get_range("ladd.adv_lambda", lc.adv_lambda, 0.0, 100.0);
  lc.scm_lambda = cfg.get_range("scm.lambda", lc.scm_lambda, 0.0, 100.0);
  lc.virtual_batch = cfg.get_range("ladd.virtual_batch", lc.virtual_batch, 1, 1024);
  lc.misaligned_pairs = cfg.get<bool>("ladd.misaligned_pairs", lc.misaligned_pairs);
  const double lr_d = cfg.get_range("optim.lr_d", s.lr, 0.0, 1.0);
  const double cscale = cfg.get_range("conditioning_scale", 1.0, 0.0, 10.0);
  const double sample_cfg = cfg.get_range("sample.guidance", 4.5, 1.0, 30.0);
  const int64_t sample_count = cfg.get_range("sample.count", int64_t{8}, 1, 64);
  cfg.finish();
  SPRINT_CHECK(s.batch % lc.virtual_batch == 0 || s.batch < lc.virtual_batch, cfg.source(), ": batch ", s.batch,
               " must be a multiple of ladd.virtual_batch ", lc.virtual_batch, " (BatchNormLocal groups)");

  const int threads = setup_threads(s.threads);
  auto bundle = load_teacher(teacher_dir);
  auto teacher = bundle.transformer;
  auto vae = bundle.vae;
  auto& text = bundle.text;
  const auto& tc = teacher->config;
  for (int id : lc.head_block_ids)
    SPRINT_CHECK(id >= 0 && id < tc.num_layers, cfg.source(), ": ladd.head_block_ids holds ", id, "; the teacher has ",
                 tc.num_layers, " blocks (0..", tc.num_layers - 1, ")");
  SanaControlNetModel teacher_cn = bundle.controlnet;
  const bool with_cn = static_cast<bool>(teacher_cn);

  // Student = teacher + guidance embedding (+ logvar head), its ControlNet likewise.
  auto stc = tc;
  stc.guidance_embeds = true;
  SanaTransformer2DModel student_tr(stc);
  init_parameters(*student_tr, static_cast<uint64_t>(s.seed), 1.0);
  copy_teacher_weights(*teacher, *student_tr);
  SanaStudent student(student_tr, /*zero_init_guidance=*/true);
  if (with_cn) {
    auto scc = teacher_cn->config;
    scc.base.guidance_embeds = true;
    SanaControlNetModel scn(scc);
    init_parameters(*scn, static_cast<uint64_t>(s.seed) + 5, 1.0);
    copy_teacher_weights(*teacher_cn, *scn);
    {
      torch::NoGradGuard ng;
      auto& ge = scn->front.time_embed->guidance_embedder;
      ge->linear_2->weight.zero_();
      ge->linear_2->bias.zero_();
    }
    student->attach_controlnet(scn);
  }
  for (auto& p : student->parameters(true)) p.set_requires_grad(true);
  student->transformer->front.set_explicit_attention(true);  // forward-mode AD needs the plain softmax
  if (with_cn) student->controlnet->front.set_explicit_attention(true);
  SanaDiscriminator disc(teacher, lc.head_block_ids, lc.virtual_batch);

  RunSetup setup(s, cl, cfg, "distill");
  auto& [dist, local_batch, first_row, run, data, held] = setup;
  SPRINT_CHECK(!dist.active() || local_batch % lc.virtual_batch == 0, cfg.source(), ": each rank's batch ",
               local_batch, " (batch ", s.batch, " / WORLD_SIZE ", dist.world(), ") must be a multiple of "
               "ladd.virtual_batch ", lc.virtual_batch, ", so that the BatchNormLocal groups are those of one process");
  const int64_t side = s.resolution / vae->config.spatial_compression();

  auto gen = make_generator(static_cast<uint64_t>(s.seed) + 17);
  CheckpointContents state;
  state.generators["train"] = &gen;
  auto g_train = add_trainee(state, "student", *student, s, 0, true, "G");
  auto d_train = add_trainee(state, "disc", *disc, s, lr_d, false, "D");
  const auto& g_params = g_train.params;
  const auto& d_params = d_train.params;
  auto* opt_g = g_train.opt.get();
  auto* opt_d = d_train.opt.get();
  auto* ema = g_train.ema.get();
  const int64_t start = cl.resume ? run.load_latest(state) : 0;
  sync_replicas(dist, state, start, data.size());
  std::cerr << "distill (" << mode << ", max-time p " << lc.largest_timestep_prob << "): student "
            << count_params(*student) << " parameters" << (with_cn ? " (with ControlNet)" : "") << ", disc heads "
            << count_params(*disc) - 0 << ", " << data.size() << " pictures, " << threads << " threads, steps " << start
            << " -> " << s.steps << "\n";

  const double sd = kSigmaData;
  auto conditions = [&](const Batch& b, bool empty_text) {
    torch::NoGradGuard ng;
    auto c = text.embed(empty_text ? std::vector<std::string>(b.captions.size(), "") : b.captions);
    if (with_cn) {
      c.control = encode_latents(*vae, b.conditions);
      c.control_scale = cscale;
    }
    return c;
  };
  // Data parallel: every draw is made for the whole global batch (s.batch rows) and cut to this rank's rows, so the
  // generator and each row are those of a single process with the global batch (dist.slice is the identity there).
  const int64_t GB = s.batch;
  auto renoise_rows = [&](const torch::Tensor& x, const torch::Tensor& t) {  // renoise() with global draws
    auto eps = dist.slice(randn(gen, dist.global_shape(x.sizes()), x.options())) * sd;
    return trigflow_noise(x, eps, t);
  };
  // x0_hat of the student at a fresh, max-time weighted t (docs/maths.md#max-time), with or without grad.
  auto student_x0 = [&](const torch::Tensor& x0, const TextCondition& c, const torch::Tensor& w) {
    auto t_new = dist.slice(apply_max_time(gen, sample_trigflow_time(gen, GB, sc.p_mean, sc.p_std),
                                           lc.largest_timestep_prob, lc.largest_timestep));
    auto eps = dist.slice(randn(gen, dist.global_shape(x0.sizes()))) * sd;
    auto x_t = trigflow_noise(x0, eps, t_new);
    auto F = student->forward(x_t / sd, t_new, c, w).F;
    return trigflow_x0(x_t, F, t_new, sd);
  };

  LoopHooks hooks;
  hooks.dist = &dist;
  hooks.plot_terms = {"loss_scm", "loss_adv", "loss_d", "g_norm", "grad_norm_g", "grad_norm_d"};
  std::map<std::string, double> last;  // the other phase's terms, carried into every log line
  hooks.step = [&](int64_t step) {
    auto b = make_batch_rows(data, batch_indices(data.size(), s.batch, step, static_cast<uint64_t>(s.seed)), first_row,
                             local_batch, s.resolution, gen, s.aug, with_cn, s.edges);
    auto x0 = encode_latents(*vae, b.images) * sd;
    auto cond = conditions(b, false);
    auto w = dist.slice(sample_cfg_scale(gen, GB, sc.cfg_scales));
    const bool g_phase = !use_ladd || step % 2 == 0;
    std::map<std::string, double> terms;
    if (g_phase) {
      student->train();
      set_lr(*opt_g, s.lr, step / (use_ladd ? 2 : 1), s.warmup_steps, s.schedule, s.steps / (use_ladd ? 2 : 1));
      torch::Tensor loss = torch::zeros({});
      if (use_scm) {
        auto uncond = conditions(b, true);
        auto pair = sana_teacher_pair(teacher, cond, uncond, teacher_cn);
        VelocityFn vel = [&](const torch::Tensor& x_t, const torch::Tensor& t) { return cfg_velocity(pair, x_t, t, w, sd); };
        auto t = dist.slice(sample_trigflow_time(gen, GB, sc.p_mean, sc.p_std));
        auto eps = dist.slice(randn(gen, dist.global_shape(x0.sizes()))) * sd;
        auto r = tangent_warmup(step, sc.tangent_warmup_steps);
        auto res = scm_step(bind_student(student, cond, w), vel, x0, eps, t, r, sc);
        loss = loss + lc.scm_lambda * res.loss;
        terms["loss_scm"] = res.loss.item<double>();
        terms["loss_no_logvar"] = res.loss_no_logvar.item<double>();
        terms["g_norm"] = res.g_norm.item<double>();
      }
      if (use_ladd) {
        // As the reference: the heads are in eval mode for the G step, so spectral norm keeps its (u, v) and runs no
        // power iteration; BatchNormLocal uses batch statistics in either mode.
        disc->eval();
        for (auto& p : d_params) p.set_requires_grad(false);
        auto x0_hat = student_x0(x0, cond, w);
        auto t_d = dist.slice(sample_trigflow_time(gen, GB, lc.disc_p_mean, lc.disc_p_std));
        auto fake = renoise_rows(x0_hat, t_d);
        auto adv = hinge_generator_loss(disc->forward(fake / sd, t_d, cond));
        for (auto& p : d_params) p.set_requires_grad(true);
        loss = loss + lc.adv_lambda * adv;
        terms["loss_adv"] = adv.item<double>();
      }
      opt_g->zero_grad();
      loss.backward();
      dist.average_gradients(g_params);  // no-op single-process
      const double gn = clip_gradients(g_params, s.grad_clip);
      terms["grad_norm_g"] = gn;
      terms["loss_g"] = loss.item<double>();
      check_finite(step + 1, terms);
      opt_g->step();
      if (ema) ema->update(*student);
    } else {
      student->eval();
      disc->train();
      set_lr(*opt_d, lr_d, step / 2, s.warmup_steps, s.schedule, s.steps / 2);
      torch::Tensor x0_hat;
      {
        torch::NoGradGuard ng;
        x0_hat = student_x0(x0, cond, w);
      }
      auto t_d = dist.slice(sample_trigflow_time(gen, GB, lc.disc_p_mean, lc.disc_p_std));
      auto real = renoise_rows(x0, t_d);
      auto fake = renoise_rows(x0_hat, t_d);
      torch::Tensor fake_logits;
      if (lc.misaligned_pairs && GB > 1) {
        auto t_mis = dist.slice(sample_trigflow_time(gen, GB, lc.disc_p_mean, lc.disc_p_std));
        // The pairing rolls over the global batch: a rank's first row pairs with the previous rank's last one.
        auto mis = renoise_rows(dist.slice(torch::roll(dist.gather_rows(x0), 1, 0)), t_mis);
        TextCondition c2 = cond;
        c2.enc = torch::cat({cond.enc, cond.enc});
        if (cond.mask.defined()) c2.mask = torch::cat({cond.mask, cond.mask});
        fake_logits = disc->forward(torch::cat({fake, mis}) / sd, torch::cat({t_d, t_mis}), c2);
      } else {
        fake_logits = disc->forward(fake / sd, t_d, cond);
      }
      auto dl = hinge_discriminator_loss(disc->forward(real / sd, t_d, cond), fake_logits);
      opt_d->zero_grad();
      dl.loss.backward();
      dist.average_gradients(d_params);  // no-op single-process
      const double gn = clip_gradients(d_params, s.grad_clip);
      terms = {{"loss_d", dl.loss.item<double>()}, {"loss_real", dl.loss_real.item<double>()},
               {"loss_fake", dl.loss_fake.item<double>()}, {"grad_norm_d", gn}};
      check_finite(step + 1, terms);
      opt_d->step();
    }
    for (const auto& [k, v] : terms) last[k] = v;
    auto out = last;
    out["loss"] = last.count("loss_g") ? last["loss_g"] : 0.0;
    return out;
  };
  // Samples: pictures (and conditions), then the student at 1, 2 and 4 steps (seeded noise, guidance sample.guidance).
  hooks.samples = [&](int64_t, const std::string& file) {
    torch::NoGradGuard ng;
    student->eval();
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < std::min(sample_count, held.size()); ++i) idx.push_back(i);
    auto b = make_eval_batch(held, idx, s.resolution, with_cn, s.edges);
    auto c = conditions(b, false);
    std::vector<torch::Tensor> rows{b.images};
    if (with_cn) rows.push_back(b.conditions);
    const std::vector<int64_t> shape{static_cast<int64_t>(idx.size()), tc.in_channels, side, side};
    for (int steps : {1, 2, 4})
      rows.push_back(decode_latents(*vae, sample_student(*student, c, sample_cfg, steps, 1234, shape)));
    save_image_grid(file, torch::cat(rows, 0), static_cast<int64_t>(idx.size()), 4);
  };
  run_loop(run, state, s, start, hooks);
  if (!run.writer()) return 0;  // data parallel: rank 0 publishes

  if (ema) ema->copy_to(*student);
  student->transformer->front.set_explicit_attention(false);
  ModelFolderParts parts;
  parts.transformer = student->transformer.ptr().get();
  if (with_cn) parts.controlnet = student->controlnet.ptr().get();
  parts.vae = vae.ptr().get();
  parts.text_encoder = text.encoder.ptr().get();
  parts.tokenizer_model = (fs::path(teacher_dir) / "tokenizer" / "tokenizer.model").string();
  parts.prompt_options = text.prompt;
  parts.prompt_options->sketch_canvas = s.edges.canvas;  // the app draws its scribble maps at the training canvas
  parts.extra_files["README.md"] = str("# SANA-Sprint student\n\nMade by `sprint-train distill` (mode ", mode,
                                       ", max-time probability ", lc.largest_timestep_prob, ", ", s.steps,
                                       " steps, batch ", s.batch, ") from the teacher in `", teacher_dir, "`.\n");
  write_model_folder(run.path("model"), parts);
  std::cerr << "distill: wrote " << run.path("model") << "\n";
  return 0;
}

}  // namespace sprint::training::cli
