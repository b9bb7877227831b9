// sprint-train controlnet: a SANA ControlNet (docs/maths.md#controlnet) on a frozen flow teacher. It copies the
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
  const auto flow = read_flow_settings(cfg);
  const int sample_steps = flow.sample_steps;
  const double sample_cfg = flow.sample_guidance;
  const int64_t sample_count = flow.sample_count;
  cfg.finish();

  const int threads = setup_threads(s.threads);
  auto bundle = load_teacher(teacher_dir);
  auto teacher = bundle.transformer;
  auto vae = bundle.vae;
  auto& text = bundle.text;
  const auto& tc = teacher->config;
  SPRINT_CHECK(layers < tc.num_layers, cfg.source(), ": controlnet.num_layers = ", layers,
               " must be below the teacher's ", tc.num_layers, " blocks");
  RunSetup setup(s, cl, cfg, "controlnet");
  auto& [dist, local_batch, first_row, run, data, held] = setup;
  const int64_t side = s.resolution / vae->config.spatial_compression();

  auto cc = ControlNetConfig::for_transformer(tc, static_cast<int>(layers),
                                              injection == "before_block" ? ControlInjection::BeforeBlock
                                                                          : ControlInjection::AfterBlock);
  SanaControlNetModel cn(cc);
  cn->init_from_transformer(*teacher);
  for (auto& p : cn->parameters(true)) p.set_requires_grad(true);
  auto gen = make_generator(static_cast<uint64_t>(s.seed) + 17);
  CheckpointContents state;
  state.generators["train"] = &gen;
  auto trainee = add_trainee(state, "controlnet", *cn, s);
  const auto& params = trainee.params;
  auto* opt = trainee.opt.get();
  auto* ema = trainee.ema.get();
  const int64_t start = cl.resume ? run.load_latest(state) : 0;
  sync_replicas(dist, state, start, data.size());
  std::cerr << "controlnet: " << count_params(*cn) << " parameters (" << layers << " blocks, " << injection
            << "), teacher " << count_params(*teacher) << " frozen, " << data.size() << " pictures, " << threads
            << " threads, steps " << start << " -> " << s.steps << "\n";

  auto condition = [&](const TextCondition& t, const torch::Tensor& cond_images) {
    TextCondition c = t;
    c.control = encode_latents(*vae, cond_images);
    c.control_scale = cscale;
    return c;
  };
  LoopHooks hooks;
  hooks.dist = &dist;
  hooks.plot_terms = {"loss", "grad_norm"};
  hooks.step = [&](int64_t step) {
    cn->train();
    set_lr(*opt, s.lr, step, s.warmup_steps, s.schedule, s.steps);
    // This rank's rows of the global batch; noise and times drawn for the whole global batch and cut (as pretrain).
    auto b = make_batch_rows(data, batch_indices(data.size(), s.batch, step, static_cast<uint64_t>(s.seed)), first_row,
                             local_batch, s.resolution, gen, s.aug, true, s.edges);
    auto z = encode_latents(*vae, b.images);
    auto e = dist.slice(randn(gen, dist.global_shape(z.sizes())));
    auto sched = dist.slice(sample_flow_time(gen, s.batch, flow.scheme, flow.mean, flow.std));
    TextCondition c;
    {
      torch::NoGradGuard ng;
      c = condition(text.embed(b.captions), b.conditions);
    }
    auto loss = flow_matching_loss(sana_flow_model(teacher, c, cn), z, e, sched);
    opt->zero_grad();
    loss.backward();
    dist.average_gradients(params);  // no-op single-process
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
  if (!run.writer()) return 0;  // data parallel: rank 0 publishes

  if (ema) ema->copy_to(*cn);
  ModelFolderParts parts;
  parts.transformer = teacher.ptr().get();
  parts.controlnet = cn.ptr().get();
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
