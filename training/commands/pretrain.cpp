// sprint-train pretrain: the flow-matching teacher (spec training.md §2, §7) with the paper's stabilisers (dense
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
  const auto time_scheme = cfg.get_choice("flow.time", "logit_normal", {"logit_normal", "uniform"});
  const double time_mean = cfg.get_range("flow.mean", 0.0, -10.0, 10.0);
  const double time_std = cfg.get_range("flow.std", 1.0, 0.01, 10.0);
  const int sample_steps = static_cast<int>(cfg.get_range("sample.steps", int64_t{16}, 1, 1000));
  const double sample_cfg = cfg.get_range("sample.guidance", 4.5, 1.0, 30.0);
  const int64_t sample_count = cfg.get_range("sample.count", int64_t{8}, 1, 64);

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
  RunFolder run(s.out, cl.resume);
  record_config(run, cfg, cl.resume);
  auto data = ImageCaptionDataset::load(s.data_dir, "train", s.data_limit);
  auto held = ImageCaptionDataset::load(s.data_dir, "heldout", 0);
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
  auto t_params = trainable(*teacher);
  auto e_params = trainable(*text.encoder);
  auto opt = make_adamw(t_params, s);
  auto opt_te = make_adamw(e_params, s, s.lr * te_lr_scale);
  auto gen = make_generator(static_cast<uint64_t>(s.seed) + 17);
  std::unique_ptr<Ema> ema, ema_te;
  if (s.ema_decay > 0) {
    ema = std::make_unique<Ema>(*teacher, s.ema_decay);
    ema_te = std::make_unique<Ema>(*text.encoder, s.ema_decay);
  }
  CheckpointContents state;
  state.modules = {{"transformer", teacher.ptr().get()}, {"text_encoder", text.encoder.ptr().get()}};
  state.optimizers = {{"transformer", opt.get()}, {"text_encoder", opt_te.get()}};
  state.generators["train"] = &gen;
  if (ema) state.emas = {{"transformer", ema.get()}, {"text_encoder", ema_te.get()}};
  const int64_t start = cl.resume ? run.load_latest(state) : 0;
  std::cerr << "pretrain: teacher " << count_params(*teacher) << " parameters (" << tc.num_layers << " blocks, D "
            << tc.inner_dim() << "), text encoder " << count_params(*text.encoder) << ", latent " << tc.in_channels
            << "x" << side << "x" << side << ", " << data.size() << " pictures, " << threads << " threads, steps "
            << start << " -> " << s.steps << "\n";

  const FlowTimeScheme scheme = time_scheme == "uniform" ? FlowTimeScheme::Uniform : FlowTimeScheme::LogitNormal;
  LoopHooks hooks;
  hooks.plot_terms = {"loss", "grad_norm", "grad_norm_text"};
  hooks.step = [&](int64_t step) {
    teacher->train();
    text.encoder->train();
    set_lr(*opt, s.lr, step, s.warmup_steps);
    set_lr(*opt_te, s.lr * te_lr_scale, step, s.warmup_steps);
    auto b = make_batch(data, batch_indices(data.size(), s.batch, step, static_cast<uint64_t>(s.seed)), s.resolution,
                        gen, s.aug, false, s.edges);
    auto z = encode_latents(*vae, b.images);
    auto e = randn(gen, z.sizes());
    auto sched = sample_flow_time(gen, z.size(0), scheme, time_mean, time_std);
    auto cond = text.embed(b.captions);
    FlowModel flow = [&](const torch::Tensor& x, const torch::Tensor& tt) {
      return teacher->forward(x, cond.enc, tt * tc.timestep_scale, {}, cond.mask);
    };
    auto loss = flow_matching_loss(flow, z, e, sched);
    opt->zero_grad();
    opt_te->zero_grad();
    loss.backward();
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
