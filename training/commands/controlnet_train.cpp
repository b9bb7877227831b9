// sprint-train controlnet: a SANA ControlNet (spec training.md §9) on a frozen flow teacher. The ControlNet copies the
// teacher's front end and first `controlnet.num_layers` blocks, with zero-initialised input and output projections
// (so training starts exactly at the teacher); only it trains, with the teacher's flow-matching loss on
// (picture, scribble condition, caption) data. Conditions come from picture_to_scribble on the augmented picture
// (the app's stroke path), VAE-encoded like the pipeline does. Caption dropout keeps CFG usable with the ControlNet.
// Output: out/model, the teacher folder plus controlnet/.
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "common.h"
#include "models.h"
#include "sprint/controlnet.h"
#include "sprint/error.h"
#include "sprint/model_folder.h"
#include "sprint/training/sampling.h"
#include "sprint/training/scm_loss.h"
#include "sprint/training/teacher_sampling.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace sprint::training::cli {

int run_controlnet(const CommandLine& cl) {
  auto cfg = ConfigFile::load(cl.config_file, cl.overrides);
  auto s = read_common(cfg);
  const std::string teacher_dir = cfg.require<std::string>("teacher");
  const int64_t layers = cfg.get_range("controlnet.num_layers", int64_t{3}, 1, 64);
  const auto injection = cfg.get_choice("controlnet.injection", "before_block", {"before_block", "after_block"});
  const double cscale = cfg.get_range("conditioning_scale", 1.0, 0.0, 10.0);
  const auto time_scheme = cfg.get_choice("flow.time", "logit_normal", {"logit_normal", "uniform"});
  const double time_mean = cfg.get_range("flow.mean", 0.0, -10.0, 10.0);
  const double time_std = cfg.get_range("flow.std", 1.0, 0.01, 10.0);
  const int sample_steps = static_cast<int>(cfg.get_range("sample.steps", int64_t{16}, 1, 1000));
  const double sample_cfg = cfg.get_range("sample.guidance", 4.5, 1.0, 30.0);
  const int64_t sample_count = cfg.get_range("sample.count", int64_t{8}, 1, 64);
  cfg.finish();

  const int threads = setup_threads(s.threads);
  auto teacher = load_transformer((fs::path(teacher_dir) / "transformer").string());
  freeze(*teacher);
  auto vae = load_frozen_vae((fs::path(teacher_dir) / "vae").string());
  auto text = load_text_stack(teacher_dir, /*frozen=*/true);
  const auto& tc = teacher->config;
  SPRINT_CHECK(!tc.guidance_embeds, "'", teacher_dir, "' holds a distilled (guidance-embedding) transformer; the "
               "ControlNet is trained on the flow teacher that `sprint-train pretrain` writes");
  SPRINT_CHECK(layers < tc.num_layers, cfg.source(), ": controlnet.num_layers = ", layers,
               " must be below the teacher's ", tc.num_layers, " blocks");
  RunFolder run(s.out, cl.resume);
  record_config(run, cfg, cl.resume);
  auto data = ImageCaptionDataset::load(s.data_dir, "train", s.data_limit);
  auto held = ImageCaptionDataset::load(s.data_dir, "heldout", 0);
  const int64_t side = s.resolution / vae->config.spatial_compression();

  auto cc = ControlNetConfig::for_transformer(tc, static_cast<int>(layers),
                                              injection == "before_block" ? ControlInjection::BeforeBlock
                                                                          : ControlInjection::AfterBlock);
  SanaControlNetModel cn(cc);
  cn->init_from_transformer(*teacher);
  for (auto& p : cn->parameters(true)) p.set_requires_grad(true);
  auto params = trainable(*cn);
  auto opt = make_adamw(params, s);
  auto gen = make_generator(static_cast<uint64_t>(s.seed) + 17);
  std::unique_ptr<Ema> ema;
  if (s.ema_decay > 0) ema = std::make_unique<Ema>(*cn, s.ema_decay);
  CheckpointContents state;
  state.modules["controlnet"] = cn.ptr().get();
  state.optimizers["controlnet"] = opt.get();
  state.generators["train"] = &gen;
  if (ema) state.emas["controlnet"] = ema.get();
  const int64_t start = cl.resume ? run.load_latest(state) : 0;
  std::cerr << "controlnet: " << count_params(*cn) << " parameters (" << layers << " blocks, " << injection
            << "), teacher " << count_params(*teacher) << " frozen, " << data.size() << " pictures, " << threads
            << " threads, steps " << start << " -> " << s.steps << "\n";

  auto condition = [&](const TextCondition& t, const torch::Tensor& cond_images) {
    TextCondition c = t;
    c.control = encode_latents(*vae, cond_images);
    c.control_scale = cscale;
    return c;
  };
  const FlowTimeScheme scheme = time_scheme == "uniform" ? FlowTimeScheme::Uniform : FlowTimeScheme::LogitNormal;
  LoopHooks hooks;
  hooks.plot_terms = {"loss", "grad_norm"};
  hooks.step = [&](int64_t step) {
    cn->train();
    set_lr(*opt, s.lr, step, s.warmup_steps);
    auto b = make_batch(data, batch_indices(data.size(), s.batch, step, static_cast<uint64_t>(s.seed)), s.resolution,
                        gen, s.aug, true, s.edges);
    auto z = encode_latents(*vae, b.images);
    auto e = randn(gen, z.sizes());
    auto sched = sample_flow_time(gen, z.size(0), scheme, time_mean, time_std);
    TextCondition c;
    {
      torch::NoGradGuard ng;
      c = condition(text.embed(b.captions), b.conditions);
    }
    auto loss = flow_matching_loss(sana_flow_model(teacher, c, cn), z, e, sched);
    opt->zero_grad();
    loss.backward();
    const double gn = clip_gradients(params, s.grad_clip);
    check_finite(step + 1, {{"loss", loss.item<double>()}, {"grad_norm", gn}});
    opt->step();
    if (ema) ema->update(*cn);
    return std::map<std::string, double>{{"loss", loss.item<double>()}, {"grad_norm", gn}};
  };
  // Samples: pictures, their condition maps, and the teacher + ControlNet's samples (Flow-Euler, CFG).
  hooks.samples = [&](int64_t, const std::string& file) {
    torch::NoGradGuard ng;
    cn->eval();
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < std::min(sample_count, held.size()); ++i) idx.push_back(i);
    auto b = make_eval_batch(held, idx, s.resolution, true, s.edges);
    auto c = condition(text.embed(b.captions), b.conditions);
    auto u = condition(text.embed(std::vector<std::string>(b.captions.size(), "")), b.conditions);
    auto x = sample_teacher(sana_flow_model(teacher, c, cn), sana_flow_model(teacher, u, cn),
                            grid_noise(static_cast<int64_t>(idx.size()), tc.in_channels, side, 1234), sample_steps,
                            sample_cfg);
    save_image_grid(file, torch::cat({b.images, b.conditions, decode_latents(*vae, x)}, 0),
                    static_cast<int64_t>(idx.size()), 4);
  };
  run_loop(run, state, s, start, hooks);

  if (ema) ema->copy_to(*cn);
  ModelFolderParts parts;
  parts.transformer = teacher.ptr().get();
  parts.controlnet = cn.ptr().get();
  parts.controlnet_config = cn->config.to_json();
  parts.vae = vae.ptr().get();
  parts.text_encoder = text.encoder.ptr().get();
  parts.tokenizer_model = (fs::path(teacher_dir) / "tokenizer" / "tokenizer.model").string();
  parts.prompt_options = text.prompt;
  parts.prompt_options->sketch_canvas = s.edges.canvas;  // the app draws its scribble maps at the training canvas
  parts.extra_files["README.md"] = str("# Flow teacher + ControlNet\n\nMade by `sprint-train controlnet` (", s.steps,
                                       " steps, batch ", s.batch, ") on the teacher in `", teacher_dir,
                                       "`. Distill it with `sprint-train distill`.\n");
  write_model_folder(run.path("model"), parts);
  std::cerr << "controlnet: wrote " << run.path("model") << "\n";
  return 0;
}

}  // namespace sprint::training::cli
