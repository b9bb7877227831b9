#include "common.h"

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "sprint/error.h"
#include "sprint/model_folder.h"
#include "sprint/training/came.h"
#include "sprint/training/sampling.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace sprint::training::cli {

const std::vector<std::string> kCommonFlags = {"out", "steps", "batch", "seed", "threads", "data.dir", "data.limit",
                                               "log_every", "ckpt_every", "sample_every", "optim.lr"};

CommonSettings read_common(ConfigFile& cfg) {
  CommonSettings s;
  s.out = cfg.require<std::string>("out");
  s.steps = cfg.get_range("steps", s.steps, 1, int64_t{1} << 40);
  s.batch = cfg.get_range("batch", s.batch, 1, 65536);
  s.seed = cfg.get_range("seed", s.seed, 0, int64_t{1} << 62);
  s.threads = cfg.get_range("threads", s.threads, 0, 1024);
  s.log_every = cfg.get_range("log_every", s.log_every, 1, int64_t{1} << 40);
  s.ckpt_every = cfg.get_range("ckpt_every", s.ckpt_every, 1, int64_t{1} << 40);
  s.sample_every = cfg.get_range("sample_every", s.sample_every, 1, int64_t{1} << 40);
  s.keep_checkpoints = cfg.get_range("keep_checkpoints", s.keep_checkpoints, 1, 1000);
  s.lr = cfg.get_range("optim.lr", s.lr, 0.0, 1.0);
  s.weight_decay = cfg.get_range("optim.weight_decay", s.weight_decay, 0.0, 1.0);
  s.beta1 = cfg.get_range("optim.beta1", s.beta1, 0.0, 0.99999);
  s.beta2 = cfg.get_range("optim.beta2", s.beta2, 0.0, 0.99999999);
  s.warmup_steps = cfg.get_range("optim.warmup_steps", s.warmup_steps, 0, int64_t{1} << 40);
  s.optimizer = cfg.get_choice("optim.name", s.optimizer, {"adamw", "came"});
  s.beta3 = cfg.get_range("optim.beta3", s.beta3, 0.0, 0.99999999);
  s.schedule = cfg.get_choice("optim.schedule", s.schedule, {"constant", "cosine"});
  s.grad_clip = cfg.get_range("grad_clip", s.grad_clip, 0.0, 1e9);
  s.ema_decay = cfg.get_range("ema.decay", s.ema_decay, 0.0, 0.999999);
  s.data_dir = cfg.require<std::string>("data.dir");
  s.data_limit = cfg.get_range("data.limit", s.data_limit, 0, int64_t{1} << 40);
  s.resolution = cfg.get_range("resolution", s.resolution, 8, 4096);
  SPRINT_CHECK(s.resolution % 8 == 0, cfg.source(), ": 'resolution' = ", s.resolution, " must be a multiple of 8");
  s.aug.enabled = cfg.get<bool>("augment.enabled", s.aug.enabled);
  s.aug.flip = cfg.get<bool>("augment.flip", s.aug.flip);
  s.aug.max_shift = cfg.get_range("augment.max_shift", s.aug.max_shift, 0.0, 0.5);
  s.aug.min_scale = cfg.get_range("augment.min_scale", s.aug.min_scale, 0.25, 4.0);
  s.aug.max_scale = cfg.get_range("augment.max_scale", s.aug.max_scale, s.aug.min_scale, 4.0);
  s.aug.max_rotate = cfg.get_range("augment.max_rotate", s.aug.max_rotate, 0.0, 180.0);
  s.aug.max_stretch = cfg.get_range("augment.max_stretch", s.aug.max_stretch, 0.0, 1.0);
  s.aug.elastic = cfg.get_range("augment.elastic", s.aug.elastic, 0.0, 0.25);
  s.aug.shape_transfer = cfg.get_range("augment.shape_transfer", s.aug.shape_transfer, 0.0, 1.0);
  s.aug.caption_dropout = cfg.get_range("augment.caption_dropout", s.aug.caption_dropout, 0.0, 1.0);
  auto& sk = s.aug.sketch;
  sk.enabled = cfg.get<bool>("sketch.enabled", sk.enabled);
  sk.outline_only = cfg.get_range("sketch.outline_only", sk.outline_only, 0.0, 1.0);
  sk.drop_inner = cfg.get_range("sketch.drop_inner", sk.drop_inner, 0.0, 1.0);
  sk.jitter = cfg.get_range("sketch.jitter", sk.jitter, 0.0, 0.1);
  sk.min_pen = static_cast<int>(cfg.get_range("sketch.min_pen", int64_t{sk.min_pen}, 1, 64));
  sk.max_pen = static_cast<int>(cfg.get_range("sketch.max_pen", int64_t{sk.max_pen}, int64_t{sk.min_pen}, 64));
  sk.partial = cfg.get_range("sketch.partial", sk.partial, 0.0, 1.0);
  sk.min_partial = cfg.get_range("sketch.min_partial", sk.min_partial, 0.0, 1.0);
  sk.min_thickness = static_cast<int>(cfg.get_range("sketch.min_thickness", int64_t{sk.min_thickness}, 0, 24));
  sk.max_thickness =
      static_cast<int>(cfg.get_range("sketch.max_thickness", int64_t{sk.max_thickness}, int64_t{sk.min_thickness}, 24));
  s.aug.caption_variants = cfg.get<bool>("augment.caption_variants", s.aug.caption_variants);
  s.edges.canvas = static_cast<int>(cfg.get_range("edges.canvas", int64_t{s.edges.canvas}, 16, 8192));
  s.edges.pen_width = static_cast<int>(cfg.get_range("edges.pen_width", int64_t{s.edges.pen_width}, 1, 64));
  s.edges.thickness = static_cast<int>(cfg.get_range("edges.thickness", int64_t{s.edges.thickness}, 0, 24));
  s.dist_timeout_s = cfg.get_range("dist.timeout_s", s.dist_timeout_s, 1.0, 86400.0);
  return s;
}

Distributed start_distributed(const CommonSettings& s, const std::string& command) {
  const auto env = DistributedEnv::from_process_env();
  // Checked before connecting, so a bad batch fails at once instead of after the peers' rendezvous.
  SPRINT_CHECK(s.batch % env.world == 0, "'batch' = ", s.batch, " is not a multiple of WORLD_SIZE = ", env.world,
               ": 'batch' is the global batch, split evenly over the ranks");
  auto dist = Distributed::connect(env, s.dist_timeout_s);
  if (dist.active()) {
    const int64_t local = dist.local_batch(s.batch);
    std::cerr << command << ": data parallel (c10d Gloo), rank " << dist.rank() << " of " << dist.world()
              << ", global batch " << s.batch << " = " << dist.world() << " x " << local << ", timeout "
              << s.dist_timeout_s << " s" << (dist.is_main() ? "" : "; rank 0 writes the run folder") << "\n";
  }
  return dist;
}

void sync_replicas(const Distributed& dist, const CheckpointContents& state, int64_t start, int64_t data_size) {
  if (!dist.active()) return;
  dist.expect_same(static_cast<double>(start), "the starting step (checkpoints/latest)");
  dist.expect_same(static_cast<double>(data_size), "the number of training pictures");
  std::vector<torch::Tensor> all;
  for (const auto& [name, m] : state.modules) {
    for (const auto& p : m->parameters(true)) all.push_back(p);
    for (const auto& b : m->buffers(true)) all.push_back(b);
  }
  for (const auto& [name, e] : state.emas)
    for (const auto& [k, v] : e->shadow()) all.push_back(v);
  dist.broadcast_from_main(all);
}
FlowSettings read_flow_settings(ConfigFile& cfg) {
  FlowSettings f;
  f.scheme = cfg.get_choice("flow.time", "logit_normal", {"logit_normal", "uniform"}) == "uniform"
                 ? FlowTimeScheme::Uniform
                 : FlowTimeScheme::LogitNormal;
  f.mean = cfg.get_range("flow.mean", f.mean, -10.0, 10.0);
  f.std = cfg.get_range("flow.std", f.std, 0.01, 10.0);
  f.sample_steps = static_cast<int>(cfg.get_range("sample.steps", int64_t{f.sample_steps}, 1, 1000));
  f.sample_guidance = cfg.get_range("sample.guidance", f.sample_guidance, 1.0, 30.0);
  f.sample_count = cfg.get_range("sample.count", f.sample_count, 1, 64);
  return f;
}

int setup_threads(int64_t threads) {
  int n = threads > 0 ? static_cast<int>(threads) : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
  return n;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<torch::Tensor>& params,
                                                        const CommonSettings& s, double lr_override) {
  const double lr = lr_override > 0 ? lr_override : s.lr;
  if (s.optimizer == "came") {
    CameOptions o(lr);
    o.betas({s.beta1, s.beta2, s.beta3}).weight_decay(s.weight_decay);
    return std::make_unique<Came>(params, o);
  }
  torch::optim::AdamWOptions o(lr);
  o.betas({s.beta1, s.beta2}).weight_decay(s.weight_decay).eps(1e-8);
  return std::make_unique<torch::optim::AdamW>(params, o);
}

double scheduled_lr(double lr, int64_t step, int64_t warmup, const std::string& schedule, int64_t total) {
  if (warmup > 0 && step < warmup) return lr * (static_cast<double>(step + 1) / static_cast<double>(warmup));
  if (schedule == "cosine" && total > warmup) {
    const double progress = std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(total - warmup));
    return lr * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  return lr;
}

void set_lr(torch::optim::Optimizer& opt, double lr, int64_t step, int64_t warmup, const std::string& schedule,
            int64_t total) {
  // Through the base options' set_lr, so AdamW and CAME groups alike.
  const double value = scheduled_lr(lr, step, warmup, schedule, total);
  for (auto& g : opt.param_groups()) g.options().set_lr(value);
}

Trainee add_trainee(CheckpointContents& state, const std::string& name, torch::nn::Module& module,
                    const CommonSettings& s, double lr, bool with_ema, const std::string& optimizer_name) {
  Trainee t;
  t.params = trainable(module);
  t.opt = make_optimizer(t.params, s, lr);
  if (with_ema && s.ema_decay > 0) t.ema = std::make_unique<Ema>(module, s.ema_decay);
  state.modules[name] = &module;
  state.optimizers[optimizer_name.empty() ? name : optimizer_name] = t.opt.get();
  if (t.ema) state.emas[name] = t.ema.get();
  return t;
}

std::vector<torch::Tensor> trainable(const torch::nn::Module& m) {
  std::vector<torch::Tensor> out;
  for (const auto& p : m.parameters(true))
    if (p.requires_grad()) out.push_back(p);
  return out;
}

int64_t count_params(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters(true)) n += p.numel();
  return n;
}

void init_parameters(torch::nn::Module& m, uint64_t seed, double norm_weight) {
  torch::NoGradGuard ng;
  auto gen = make_generator(seed);
  for (auto& p : m.named_parameters(true)) {
    auto t = p.value();
    const std::string& k = p.key();
    const bool is_weight = k.size() >= 6 && k.compare(k.size() - 6, 6, "weight") == 0;
    if (t.dim() >= 2) {
      const double fan_in = static_cast<double>(t.numel() / t.size(0));
      const double fan_out = static_cast<double>(t.size(0)) * (t.dim() > 2 ? static_cast<double>(t[0][0].numel()) : 1.0);
      const double bound = std::sqrt(6.0 / (fan_in + fan_out));
      t.copy_(torch::rand(t.sizes(), gen, torch::kFloat32).mul(2 * bound).sub(bound));
    } else if (is_weight && k.find("norm") != std::string::npos) {
      t.fill_(norm_weight);
    } else if (k.find("scale_shift_table") != std::string::npos) {
      t.copy_(torch::randn(t.sizes(), gen, torch::kFloat32).div(std::sqrt(static_cast<double>(t.size(-1)))));
    } else {
      t.zero_();
    }
    t.set_requires_grad(true);
  }
}

void record_config(RunFolder& run, const ConfigFile& cfg, bool resume) {
  if (!run.writer()) return;
  const std::string file = run.path("config.json");
  if (resume && fs::exists(file)) {
    std::ifstream in(file);
    json before = json::parse(in, nullptr, false);
    if (!before.is_discarded() && before != cfg.resolved())
      std::cerr << "note: the configuration differs from the one the run started with (" << file
                << "); continuing with the new values\n";
  }
  write_json_file(file, cfg.resolved());
}

void run_loop(RunFolder& run, CheckpointContents& state, const CommonSettings& s, int64_t start, LoopHooks& hooks) {
  Progress progress(start, s.steps, s.log_every);
  const bool writer = run.writer();
  for (int64_t step = start; step < s.steps; ++step) {
    auto terms = hooks.step(step);
    if (hooks.dist) terms = hooks.dist->average(terms);
    check_finite(step, terms);
    const int64_t done = step + 1;
    if (done % s.log_every == 0 || done == s.steps) run.log_metrics(done, terms);
    std::map<std::string, double> shown;
    for (const auto& k : hooks.plot_terms)
      if (terms.count(k)) shown[k] = terms[k];
    if (writer) progress.update(done, shown);
    const bool last = done == s.steps;
    if (writer && hooks.samples && (done % s.sample_every == 0 || last))
      hooks.samples(done, run.path(str("samples/step-", std::string(7 - std::min<size_t>(7, std::to_string(done).size()), '0'),
                                       done, ".png")));
    if (done % s.ckpt_every == 0 || last) {
      run.save_checkpoint(done, state, static_cast<int>(s.keep_checkpoints));
      run.plot_losses(hooks.plot_terms);
    }
  }
  if (writer) progress.finish();
}

RunSetup::RunSetup(const CommonSettings& s, const CommandLine& cl, const ConfigFile& cfg, const std::string& command)
    : dist(start_distributed(s, command)),
      local_batch(dist.local_batch(s.batch)),
      first_row(dist.first_row(s.batch)),
      run(s.out, cl.resume, dist.is_main()),
      data(ImageCaptionDataset::load(s.data_dir, "train", s.data_limit)),
      held(ImageCaptionDataset::load(s.data_dir, "heldout", 0)) {
  record_config(run, cfg, cl.resume);
}

}  // namespace sprint::training::cli
