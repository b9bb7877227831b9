// sprint-train classifier: the feature network of the evaluation's Fréchet distance (our own stand-in for FID's
// Inception net, which would be outside weights). A tiny conv net (FeatureNet in sprint/training/metrics.h) learns
// to tell the training split's pictures apart: one class per picture, seen under the training augmentation (flip,
// shift, scale), cross-entropy on its linear head. Its globally pooled activations are the features `eval` compares.
//
// Accuracy reported at the end (out/model/metrics.json and the config):
//   train_top1         top-1 class of the un-augmented training pictures (the held-out pictures are classes the
//                      head has never seen, so there is no held-out accuracy);
//   heldout_retrieval  how well the features carry over to unseen pictures: for each held-out picture one seeded
//                      augmented view is matched (cosine similarity of features) against the un-augmented held-out
//                      pictures; the fraction that finds its own picture first.
// Output: out/model/feature_net.safetensors + config.json (FeatureNetConfig), the folder eval's `feature_net` names.
#include <iostream>

#include "commands.h"
#include "common.h"
#include "sprint/error.h"
#include "sprint/model_folder.h"
#include "sprint/training/metrics.h"
#include "sprint/training/sampling.h"

namespace sprint::training::cli {
namespace {

// Features (or logits) of `data`'s items [0, n) in chunks of 64, un-augmented.
torch::Tensor eval_outputs(FeatureNetImpl& net, const ImageCaptionDataset& data, int64_t resolution,
                           const PictureEdgeOptions& edges, bool logits) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> out;
  for (int64_t i = 0; i < data.size(); i += 64) {
    std::vector<int64_t> idx;
    for (int64_t j = i; j < std::min(data.size(), i + 64); ++j) idx.push_back(j);
    auto images = make_eval_batch(data, idx, resolution, false, edges).images;
    out.push_back(logits ? net.forward(images) : net.features(images));
  }
  return torch::cat(out, 0);
}

}  // namespace

int run_classifier(const CommandLine& cl) {
  auto cfg = ConfigFile::load(cl.config_file, cl.overrides);
  auto s = read_common(cfg);
  FeatureNetConfig nc;
  const auto widths = cfg.get<std::vector<int>>("model.widths", std::vector<int>(nc.widths.begin(), nc.widths.end()));
  nc.widths.assign(widths.begin(), widths.end());
  nc.resolution = s.resolution;
  const double label_smoothing = cfg.get_range("loss.label_smoothing", 0.0, 0.0, 0.5);
  cfg.finish();

  const int threads = setup_threads(s.threads);
  RunSetup setup(s, cl, cfg, "classifier");
  auto& [dist, local_batch, first_row, run, data, held] = setup;
  nc.num_classes = data.size();
  with_context(cfg.source() + " 'model'", [&] { nc.validate("FeatureNet"); });

  FeatureNet net(nc);
  init_parameters(*net, static_cast<uint64_t>(s.seed), 1.0);
  auto gen = make_generator(static_cast<uint64_t>(s.seed) + 17);
  CheckpointContents state;
  state.generators["data"] = &gen;
  auto trainee = add_trainee(state, "feature_net", *net, s);
  auto* opt = trainee.opt.get();
  auto* ema = trainee.ema.get();
  const int64_t start = cl.resume ? run.load_latest(state) : 0;
  sync_replicas(dist, state, start, data.size());
  std::cerr << "classifier: " << count_params(*net) << " parameters, " << nc.feature_dim() << "-d features, "
            << data.size() << " classes (training pictures), " << threads << " threads, steps " << start << " -> "
            << s.steps << "\n";

  LoopHooks hooks;
  hooks.dist = &dist;
  hooks.plot_terms = {"loss", "accuracy", "grad_norm"};
  hooks.step = [&](int64_t step) {
    net->train();
    set_lr(*opt, s.lr, step, s.warmup_steps, s.schedule, s.steps);
    // This rank's rows of the global batch (all of it in a single process).
    auto b = make_batch_rows(data, batch_indices(data.size(), s.batch, step, static_cast<uint64_t>(s.seed)), first_row,
                             local_batch, s.resolution, gen, s.aug, false, s.edges);
    auto labels = torch::tensor(b.indices, torch::kInt64);
    auto logits = net->forward(b.images);
    auto loss = torch::nn::functional::cross_entropy(
        logits, labels, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(label_smoothing));
    opt->zero_grad();
    loss.backward();
    dist.average_gradients(trainee.params);  // no-op single-process
    const double gnorm = clip_gradients(trainee.params, s.grad_clip);
    check_finite(step + 1, {{"loss", loss.item<double>()}, {"grad_norm", gnorm}});
    opt->step();
    if (ema) ema->update(*net);
    const double acc = logits.detach().argmax(1).eq(labels).to(torch::kFloat64).mean().item<double>();
    return std::map<std::string, double>{{"loss", loss.item<double>()}, {"accuracy", acc}, {"grad_norm", gnorm}};
  };
  // Samples: 16 augmented views like the ones the net trains on (a check of the augmentation), seeded by the step
  // on a generator of their own so the training stream is untouched.
  hooks.samples = [&](int64_t step, const std::string& file) {
    auto g = make_generator(static_cast<uint64_t>(s.seed) + 99 + static_cast<uint64_t>(step));
    auto b = make_batch(data, batch_indices(data.size(), 16, step, static_cast<uint64_t>(s.seed) + 1), s.resolution, g,
                        s.aug, false, s.edges);
    save_image_grid(file, b.images, 8, 2);
  };
  run_loop(run, state, s, start, hooks);
  if (!run.writer()) return 0;  // data parallel: rank 0 publishes

  // Publish: EMA weights if any, then the accuracy figures described above.
  if (ema) ema->copy_to(*net);
  net->eval();
  torch::NoGradGuard ng;
  auto logits = eval_outputs(*net, data, s.resolution, s.edges, true);
  const double train_top1 =
      logits.argmax(1).eq(torch::arange(data.size(), torch::kInt64)).to(torch::kFloat64).mean().item<double>();
  auto clean = torch::nn::functional::normalize(eval_outputs(*net, held, s.resolution, s.edges, false),
                                                torch::nn::functional::NormalizeFuncOptions().dim(1));
  std::vector<int64_t> all(static_cast<size_t>(held.size()));
  for (int64_t i = 0; i < held.size(); ++i) all[static_cast<size_t>(i)] = i;
  auto view_gen = make_generator(static_cast<uint64_t>(s.seed) + 1234);
  AugmentOptions view_aug = s.aug;
  view_aug.enabled = true;
  auto views = make_batch(held, all, s.resolution, view_gen, view_aug, false, s.edges).images;
  auto vf =
      torch::nn::functional::normalize(net->features(views), torch::nn::functional::NormalizeFuncOptions().dim(1));
  const double retrieval =
      vf.matmul(clean.transpose(0, 1)).argmax(1).eq(torch::arange(held.size(), torch::kInt64)).to(torch::kFloat64)
          .mean().item<double>();

  const std::string dir = run.path("model");
  auto cj = nc.to_json();
  cj["classes"] = "the training split's pictures in manifest order";
  cj["train_top1"] = train_top1;
  cj["heldout_retrieval"] = retrieval;
  cj["steps"] = s.steps;
  write_json_file(dir + "/config.json", cj);
  save_module(*net, dir + "/feature_net.safetensors");
  write_json_file(dir + "/metrics.json", {{"train_top1", train_top1},
                                          {"heldout_retrieval", retrieval},
                                          {"train_items", data.size()},
                                          {"heldout_items", held.size()},
                                          {"steps", s.steps}});
  std::cerr << "classifier: train top-1 " << train_top1 << " (un-augmented, " << data.size()
            << " classes), held-out view retrieval " << retrieval << " (" << held.size() << " pictures); wrote " << dir
            << "\n";
  return 0;
}

}  // namespace sprint::training::cli
