// sprint-train pretrain: the flow-matching teacher (docs/maths.md#teacher) with the paper's stabilisers (dense
// timestep: the network gets s in [0, 1], not 1000 s; QK RMSNorm in self- and cross-attention), trained with its
// small Gemma-2 text encoder on (picture, caption) data, caption dropout for classifier-free guidance.
//   loss = mean (v(x_s, s) - (e - z))^2, x_s = (1 - s) z + s e, s ~ logit-normal(mean, std) or U(0, 1).
// Fine-tune mode (`init_from` a model folder): loads that transformer and text encoder and switches on what its
// config lacks (QK norm weights start at 1, i.e. a plain RMSNorm; timestep_scale set to 1).
// Output: out/model, a diffusers-layout folder (transformer = the flow teacher, vae, text_encoder, tokenizer).
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "models.h"
#include "sprint/error.h"
#include "sprint/model_folder.h"
#include "sprint/training/sampling.h"
#include "sprint/training/scm_loss.h"
#include "sprint/training/teacher_sampling.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace sprint::training::cli {

int run_pretrain(const CommandLine& cl) {
  auto cfg = ConfigFile::load(cl.config_file, cl.overrides);
  auto s = read_common(cfg);
  const std::string vae_dir = cfg.require<std::string>("vae");
  const std::string init_from = cfg.get<std::string>("init_from", "");
  std::string tokenizer_file = cfg.get<std::string>("tokenizer", "");
  const double te_lr_scale = cfg.get_range("text_encoder_lr_scale", 1.0, 0.0, 100.0);
  const auto flow = read_flow_settings(cfg);
  const int sample_steps = flow.sample_steps;
  const double sample_cfg = flow.sample_guidance;
  const int64_t sample_count = flow.sample_count;

  TransformerConfig tc;
  Gemma2Config gc;
  PromptOptions po;
  po.complex_human_instruction = false;
  if (init_from.empty()) {
    SPRINT_CHECK(cfg.has("transformer") && cfg.has("text_encoder") && !tokenizer_file.empty(), cfg.source(),
                 ": training from scratch needs 'transformer' and 'text_encoder' configs and a 'tokenizer' model file "
                 "(or 'init_from' a model folder to fine-tune)");
    tc = TransformerConfig::from_json(cfg.get<json>("transformer", json::object()), cfg.source() + " 'transformer'");
    gc = Gemma2Config::from_json(cfg.get<json>("text_encoder", json::object()), cfg.source() + " 'text_encoder'");
  } else {
    SPRINT_CHECK(!cfg.has("transformer") && !cfg.has("text_encoder"), cfg.source(), ": 'init_from' fine-tunes the "
                 "model in '", init_from, "' with its own configs; remove the 'transformer' and 'text_encoder' sections");
    tc = TransformerConfig::load((fs::path(init_from) / "transformer").string());
    gc = Gemma2Config::load((fs::path(init_from) / "text_encoder").string());
    po = PromptOptions::load(init_from);
    if (tokenizer_file.empty()) tokenizer_file = (fs::path(init_from) / "tokenizer" / "tokenizer.model").string();
  }
  po.max_sequence_length = static_cast<int>(cfg.get_range("prompt.max_sequence_length",
                                                          int64_t{po.max_sequence_length}, 2, 4096));
  po.lowercase = cfg.get<bool>("prompt.lowercase", po.lowercase);
  const bool add_qk_norm = cfg.get<bool>("finetune.qk_norm", true);
  const bool dense_timestep = cfg.get<bool>("finetune.dense_timestep", true);
  cfg.finish();

  SPRINT_CHECK(!tc.guidance_embeds, cfg.source(), ": the teacher is a plain flow model: transformer.guidance_embeds "
               "must be false (the student gets the guidance embedding in distill)");
  const bool had_qk_norm = !tc.qk_norm.empty();
  if (add_qk_norm) tc.qk_norm = "rms_norm_across_heads";
  if (dense_timestep) tc.timestep_scale = 1.0;
  SPRINT_CHECK(tc.caption_channels == gc.hidden_size, cfg.source(), ": transformer.caption_channels = ",
               tc.caption_channels, " must equal text_encoder.hidden_size = ", gc.hidden_size);

  const int threads = setup_threads(s.threads);
  RunSetup setup(s, cl, cfg, "pretrain");
  auto& [dist, local_batch, first_row, run, data, held] = setup;
  auto vae = load_frozen_vae(vae_dir);
  SPRINT_CHECK(vae->config.latent_channels == tc.in_channels, cfg.source(), ": transformer.in_channels = ",
               tc.in_channels, " but the autoencoder in '", vae_dir, "' has ", vae->config.latent_channels,
               " latent channels");
  const int64_t side = s.resolution / vae->config.spatial_compression();

  SanaTransformer2DModel teacher(tc);
  TextStack text;
  text.tokenizer = Tokenizer::load(tokenizer_file);
  text.prompt = po;
  text.encoder = Gemma2Model(gc);
  SPRINT_CHECK(text.tokenizer.vocab_size() <= gc.vocab_size, "the tokenizer '", tokenizer_file, "' has ",
               text.tokenizer.vocab_size(), " pieces but text_encoder.vocab_size = ", gc.vocab_size);
  init_parameters(*teacher, static_cast<uint64_t>(s.seed), 1.0);
  init_parameters(*text.encoder, static_cast<uint64_t>(s.seed) + 1, 0.0);
  {
    torch::NoGradGuard ng;  // zero-init output projection: the teacher starts by predicting 0
    for (auto& p : teacher->named_parameters(true))
      if (p.key().rfind("proj_out.", 0) == 0) p.value().zero_();
  }
  if (!init_from.empty()) {
    LoadOptions lo;
    if (!had_qk_norm)
      for (auto& p : teacher->named_parameters(true))
        if (p.key().find("norm_q") != std::string::npos || p.key().find("norm_k") != std::string::npos)
          lo.optional.insert(p.key());
    load_state_dict(*teacher, safetensors::Archive::open((fs::path(init_from) / "transformer").string()), lo);
    load_text_encoder_weights(*text.encoder,
                              safetensors::Archive::open((fs::path(init_from) / "text_encoder").string()));
    for (auto* m : std::initializer_list<torch::nn::Module*>{teacher.ptr().get(), text.encoder.ptr().get()})
      for (auto& p : m->parameters(true)) p.set_requires_grad(true);
  }
  auto gen = make_generator(static_cast<uint64_t>(s.seed) + 17);
  CheckpointContents state;
  state.generators["train"] = &gen;
  auto t_train = add_trainee(state, "transformer", *teacher, s);
  auto e_train = add_trainee(state, "text_encoder", *text.encoder, s, s.lr * te_lr_scale);
  const auto& t_params = t_train.params;
  const auto& e_params = e_train.params;
  auto* opt = t_train.opt.get();
  auto* opt_te = e_train.opt.get();
  auto* ema = t_train.ema.get();
  auto* ema_te = e_train.ema.get();
  std::vector<torch::Tensor> all_params = t_params;
  all_params.insert(all_params.end(), e_params.begin(), e_params.end());
  const int64_t start = cl.resume ? run.load_latest(state) : 0;
  sync_replicas(dist, state, start, data.size());
  std::cerr << "pretrain: teacher " << count_params(*teacher) << " parameters (" << tc.num_layers << " blocks, D "
            << tc.inner_dim() << "), text encoder " << count_params(*text.encoder) << ", latent " << tc.in_channels
            << "x" << side << "x" << side << ", " << data.size() << " pictures, " << threads << " threads, steps "
            << start << " -> " << s.steps << "\n";

  LoopHooks hooks;
  hooks.dist = &dist;
  hooks.plot_terms = {"loss", "grad_norm", "grad_norm_text"};
  hooks.step = [&](int64_t step) {
    teacher->train();
    text.encoder->train();
    set_lr(*opt, s.lr, step, s.warmup_steps, s.schedule, s.steps);
    set_lr(*opt_te, s.lr * te_lr_scale, step, s.warmup_steps, s.schedule, s.steps);
    // This rank's rows of the global batch; noise and times are drawn for the whole global batch and cut, so the
    // generator and every row are those of a single process with the global batch.
    auto b = make_batch_rows(data, batch_indices(data.size(), s.batch, step, static_cast<uint64_t>(s.seed)), first_row,
                             local_batch, s.resolution, gen, s.aug, false, s.edges);
    auto z = encode_latents(*vae, b.images);
    auto e = dist.slice(randn(gen, dist.global_shape(z.sizes())));
    auto sched = dist.slice(sample_flow_time(gen, s.batch, flow.scheme, flow.mean, flow.std));
    auto cond = text.embed(b.captions);
    FlowModel model = [&](const torch::Tensor& x, const torch::Tensor& tt) {
      return teacher->forward(x, cond.enc, tt * tc.timestep_scale, {}, cond.mask);
    };
    auto loss = flow_matching_loss(model, z, e, sched);
    opt->zero_grad();
    opt_te->zero_grad();
    loss.backward();
    dist.average_gradients(all_params);  // one allreduce for both modules (no-op single-process)
    const double gn = clip_gradients(t_params, s.grad_clip);
    const double gn_te = clip_gradients(e_params, s.grad_clip);
    check_finite(step + 1, {{"loss", loss.item<double>()}, {"grad_norm", gn}, {"grad_norm_text", gn_te}});
    opt->step();
    opt_te->step();
    if (ema) {
      ema->update(*teacher);
      ema_te->update(*text.encoder);
    }
    return std::map<std::string, double>{{"loss", loss.item<double>()}, {"grad_norm", gn}, {"grad_norm_text", gn_te}};
  };
  // Samples: held-out captions, fixed noise, Flow-Euler with CFG; top row the pictures, bottom row the samples.
  hooks.samples = [&](int64_t, const std::string& file) {
    torch::NoGradGuard ng;
    teacher->eval();
    text.encoder->eval();
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < std::min(sample_count, held.size()); ++i) idx.push_back(i);
    auto b = make_eval_batch(held, idx, s.resolution, false, s.edges);
    auto cond = text.embed(b.captions);
    auto unc = text.embed(std::vector<std::string>(b.captions.size(), ""));
    FlowModel fc = [&](const torch::Tensor& x, const torch::Tensor& tt) {
      return teacher->forward(x, cond.enc, tt * tc.timestep_scale, {}, cond.mask);
    };
    FlowModel fu = [&](const torch::Tensor& x, const torch::Tensor& tt) {
      return teacher->forward(x, unc.enc, tt * tc.timestep_scale, {}, unc.mask);
    };
    auto x = sample_teacher(fc, fu, grid_noise(static_cast<int64_t>(idx.size()), tc.in_channels, side, 1234),
                            sample_steps, sample_cfg);
    save_image_grid(file, torch::cat({b.images, decode_latents(*vae, x)}, 0), static_cast<int64_t>(idx.size()), 4);
  };
  run_loop(run, state, s, start, hooks);
  if (!run.writer()) return 0;  // data parallel: rank 0 publishes

  if (ema) {
    ema->copy_to(*teacher);
    ema_te->copy_to(*text.encoder);
  }
  ModelFolderParts parts;
  parts.transformer = teacher.ptr().get();
  parts.vae = vae.ptr().get();
  parts.text_encoder = text.encoder.ptr().get();
  parts.tokenizer_model = tokenizer_file;
  parts.prompt_options = po;
  parts.extra_files["README.md"] = str("# Flow-matching teacher\n\nMade by `sprint-train pretrain` (", s.steps,
                                       " steps, batch ", s.batch, "). The transformer is a flow-matching velocity "
                                       "model (dense timestep s in [0, 1]); sample it with a multi-step ODE solver, "
                                       "or distill it with `sprint-train distill`.\n");
  write_model_folder(run.path("model"), parts);
  std::cerr << "pretrain: wrote " << run.path("model") << "\n";
  return 0;
}

}  // namespace sprint::training::cli
