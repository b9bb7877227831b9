// sprint-train autoencoder: a small DC-AE-family autoencoder (diffusers AutoencoderDC layout) on the dataset's
// pictures. Loss: L1 + MSE on the reconstruction plus a small latent L2 that keeps the latent scale bounded (DC-AE
// has no KL term). `condition_fraction` of the rows (drawn per step over the global batch) are the condition maps of
// their pictures instead (white lines on black, as the ControlNet's pipeline encodes them), so the latent also keeps a
// sketch's lines, not only what pictures need. At the end the latent std over the training split sets `scaling_factor`, and the model is written
// to out/model/vae/ (config.json + diffusion_pytorch_model.safetensors), the folder pretrain's `vae` key names.
#include <iostream>

#include "commands.h"
#include "common.h"
#include "sprint/error.h"
#include "sprint/model_folder.h"
#include "sprint/training/sampling.h"
#include "sprint/vae.h"

namespace sprint::training::cli {

int run_autoencoder(const CommandLine& cl) {
  auto cfg = ConfigFile::load(cl.config_file, cl.overrides);
  auto s = read_common(cfg);
  const double latent_l2 = cfg.get_range("loss.latent_l2", 1e-4, 0.0, 1.0);
  const double mse_weight = cfg.get_range("loss.mse", 1.0, 0.0, 100.0);
  const double l1_weight = cfg.get_range("loss.l1", 1.0, 0.0, 100.0);
  const double condition_fraction = cfg.get_range("condition_fraction", 0.0, 0.0, 1.0);
  SPRINT_CHECK(cfg.has("model"), cfg.source(), ": 'model' (the AutoencoderDC config) is required");
  auto model_json = cfg.get<nlohmann::json>("model", nlohmann::json::object());
  const auto vc = VaeConfig::from_json(model_json, cfg.source() + " 'model'");
  SPRINT_CHECK(s.resolution % vc.spatial_compression() == 0, cfg.source(), ": resolution ", s.resolution,
               " is not a multiple of the autoencoder's compression ", vc.spatial_compression());
  cfg.finish();

  const int threads = setup_threads(s.threads);
  RunSetup setup(s, cl, cfg, "autoencoder");
  auto& [dist, local_batch, first_row, run, data, held] = setup;

  AutoencoderDC vae(vc);
  init_parameters(*vae, static_cast<uint64_t>(s.seed), 1.0);
  auto gen = make_generator(static_cast<uint64_t>(s.seed) + 17);
  CheckpointContents state;
  state.generators["data"] = &gen;
  auto trainee = add_trainee(state, "vae", *vae, s);
  auto* opt = trainee.opt.get();
  auto* ema = trainee.ema.get();
  int64_t start = cl.resume ? run.load_latest(state) : 0;
  sync_replicas(dist, state, start, data.size());
  std::cerr << "autoencoder: " << count_params(*vae) << " parameters, f" << vc.spatial_compression() << "c"
            << vc.latent_channels << ", " << data.size() << " training pictures, " << threads << " threads, steps "
            << start << " -> " << s.steps << "\n";

  LoopHooks hooks;
  hooks.dist = &dist;
  hooks.plot_terms = {"loss", "l1", "mse", "latent_rms", "grad_norm"};
  hooks.step = [&](int64_t step) {
    vae->train();
    set_lr(*opt, s.lr, step, s.warmup_steps, s.schedule, s.steps);
    // This rank's rows of the global batch (all of it in a single process); the generator advances as for all rows.
    const bool with_maps = condition_fraction > 0;
    auto b = make_batch_rows(data, batch_indices(data.size(), s.batch, step, static_cast<uint64_t>(s.seed)), first_row,
                             local_batch, s.resolution, gen, s.aug, with_maps, s.edges);
    if (with_maps) {
      // Drawn for the whole global batch, then this rank's rows: the same rows as a single process would pick.
      auto pick = dist.slice(torch::rand({s.batch}, gen) < condition_fraction).view({-1, 1, 1, 1});
      b.images = torch::where(pick, b.conditions, b.images);
    }
    auto z = vae->encode(b.images);
    auto rec = vae->decode(z);
    auto l1 = (rec - b.images).abs().mean();
    auto mse = (rec - b.images).pow(2).mean();
    auto zl2 = z.pow(2).mean();
    auto loss = l1_weight * l1 + mse_weight * mse + latent_l2 * zl2;
    opt->zero_grad();
    loss.backward();
    dist.average_gradients(trainee.params);  // the global batch's gradient on every rank (no-op single-process)
    const double gnorm = clip_gradients(trainee.params, s.grad_clip);
    check_finite(step + 1, {{"loss", loss.item<double>()}, {"grad_norm", gnorm}});
    opt->step();
    if (ema) ema->update(*vae);
    return std::map<std::string, double>{{"loss", loss.item<double>()}, {"l1", l1.item<double>()},
                                         {"mse", mse.item<double>()}, {"latent_rms", std::sqrt(zl2.item<double>())},
                                         {"grad_norm", gnorm}};
  };
  // Samples: held-out originals over their reconstructions; with condition maps in training, their maps over theirs.
  hooks.samples = [&](int64_t, const std::string& file) {
    torch::NoGradGuard ng;
    vae->prepare_for_inference(torch::kCPU, torch::kFloat32);  // eval mode, the CPU engine; the step's train() drops it
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < std::min<int64_t>(8, held.size()); ++i) idx.push_back(i);
    const bool with_maps = condition_fraction > 0;
    auto b = make_eval_batch(held, idx, s.resolution, with_maps, s.edges);
    std::vector<torch::Tensor> rows{b.images, vae->decode(vae->encode(b.images))};
    if (with_maps) {
      rows.push_back(b.conditions);
      rows.push_back(vae->decode(vae->encode(b.conditions)));
    }
    save_image_grid(file, torch::cat(rows, 0), static_cast<int64_t>(idx.size()), 4);
  };
  run_loop(run, state, s, start, hooks);
  if (!run.writer()) return 0;  // data parallel: rank 0 publishes

  // Publish: EMA weights if any, scaling factor from the latent std of the training split.
  if (ema) ema->copy_to(*vae);
  torch::NoGradGuard ng;
  vae->prepare_for_inference(torch::kCPU, torch::kFloat32);
  std::vector<torch::Tensor> zs;
  for (int64_t i = 0; i < data.size(); i += 64) {
    std::vector<int64_t> idx;
    for (int64_t j = i; j < std::min(data.size(), i + 64); ++j) idx.push_back(j);
    zs.push_back(vae->encode(make_eval_batch(data, idx, s.resolution, false, s.edges).images));
  }
  auto all = torch::cat(zs, 0);
  const double stdv = all.std().item<double>();
  vae->config.scaling_factor = 1.0 / stdv;
  auto held_b = make_eval_batch(held, [&] {
    std::vector<int64_t> v;
    for (int64_t i = 0; i < held.size(); ++i) v.push_back(i);
    return v;
  }(), s.resolution, false, s.edges);
  auto held_rec = vae->decode(vae->encode(held_b.images));
  const double psnr = 10 * std::log10(4.0 / (held_rec - held_b.images).pow(2).mean().item<double>());
  const std::string dir = run.path("model/vae");
  write_json_file(dir + "/config.json", vae->config.to_json());
  save_module(*vae, dir + "/diffusion_pytorch_model.safetensors");
  write_json_file(run.path("model/metrics.json"), {{"heldout_psnr_db", psnr}, {"latent_std", stdv},
                                                   {"scaling_factor", vae->config.scaling_factor},
                                                   {"steps", s.steps}, {"heldout_items", held.size()}});
  std::cerr << "autoencoder: held-out PSNR " << psnr << " dB, latent std " << stdv << " -> scaling_factor "
            << vae->config.scaling_factor << "; wrote " << dir << "\n";
  return 0;
}

}  // namespace sprint::training::cli
