#include "sprint/training/run.h"

#include <unistd.h>

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "sprint/atomic_file.h"
#include "sprint/config.h"
#include "sprint/error.h"
#include "sprint/image_io.h"
#include "sprint/log.h"
#include "sprint/model_folder.h"
#include "sprint/safetensors.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace sprint::training {
namespace {

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%07lld", static_cast<long long>(step));
  return buf;
}

// Regular files only (read_small_file); optimizer state and logs may be large.
std::string read_file(const fs::path& p, size_t max_bytes = kMaxConfigFileBytes) {
  return read_small_file(p.string(), max_bytes);
}

}  // namespace

void check_finite(int64_t step, const std::map<std::string, double>& terms) {
  bool bad = false;
  std::string list;
  for (const auto& [k, v] : terms) {
    bad = bad || !std::isfinite(v);
    list += str(list.empty() ? "" : ", ", k, "=", v);
  }
  if (bad) throw NonFiniteError(str("step ", step, ": a loss term or gradient norm is not finite: ", list));
}

// ---- EMA -----------------------------------------------------------------------------------------------------

Ema::Ema(const torch::nn::Module& module, double decay) : decay_(decay) {
  SPRINT_CHECK(decay > 0 && decay < 1, "EMA decay = ", decay, " must be in (0, 1)");
  for (const auto& [k, v] : module_state_dict(module)) shadow_[k] = v.detach().clone();
}

void Ema::update(const torch::nn::Module& module) {
  torch::NoGradGuard ng;
  for (const auto& p : module.named_parameters(true)) shadow_.at(p.key()).lerp_(p.value().detach(), 1.0 - decay_);
  for (const auto& b : module.named_buffers(true)) shadow_.at(b.key()).copy_(b.value());
}

void Ema::copy_to(torch::nn::Module& module) const {
  torch::NoGradGuard ng;
  for (auto& p : module.named_parameters(true)) p.value().copy_(shadow_.at(p.key()));
  for (auto& b : module.named_buffers(true)) b.value().copy_(shadow_.at(b.key()));
}

// ---- run folder ------------------------------------------------------------------------------------------------

RunFolder::RunFolder(std::string out, bool resume, bool writer)
    : out_(std::move(out)), writer_(writer), start_(Clock::now()) {
  SPRINT_CHECK(!out_.empty(), "the run needs an output folder (--out)");
  if (writer_) {
    std::error_code ec;
    fs::create_directories(fs::path(out_) / "checkpoints", ec);
    SPRINT_CHECK(!ec, "cannot create the run folder '", out_, "': ", ec.message());
    fs::create_directories(fs::path(out_) / "samples", ec);
    // Checkpoint writes killed part-way (kill -9, power loss) leave ".step-N.tmp-PID" folders and "latest.tmp-*"
    // files; they are never complete, so they go now rather than piling up.
    for (const auto& e : fs::directory_iterator(fs::path(out_) / "checkpoints", ec)) {
      const std::string name = e.path().filename().string();
      if (name.find(".tmp-") == std::string::npos) continue;
      std::string why;
      if (remove_tree(e.path().string(), &why)) log_info("removed an unfinished checkpoint write: ", e.path().string());
      else log_warn("cannot remove the unfinished checkpoint write '", e.path().string(), "': ", why);
    }
  }
  if (resume) {
    SPRINT_CHECK(has_checkpoint(), "--resume: '", out_, "' has no checkpoint to resume from (checkpoints/latest is missing)");
  } else {
    SPRINT_CHECK(!has_checkpoint(), "'", out_, "' already holds a run (checkpoints/latest exists): pass --resume to "
                 "continue it, or choose another --out");
  }
}

std::string RunFolder::path(const std::string& rel) const { return (fs::path(out_) / rel).string(); }

bool RunFolder::has_checkpoint() const { return fs::exists(fs::path(out_) / "checkpoints" / "latest"); }

std::string RunFolder::save_checkpoint(int64_t step, const CheckpointContents& c, int keep) {
  if (!writer_) return "";
  const fs::path dir = fs::path(out_) / "checkpoints";
  const fs::path final_dir = dir / step_name(step);
  const fs::path tmp = dir / str(".", step_name(step), ".tmp-", ::getpid());
  remove_tree(tmp.string());
  try {
    fs::create_directories(tmp);
    safetensors::StateDict sd;
    for (const auto& [name, m] : c.modules)
      for (const auto& [k, v] : module_state_dict(*m)) sd[name + "/" + k] = v;
    for (const auto& [name, e] : c.emas)
      for (const auto& [k, v] : e->shadow()) sd["ema:" + name + "/" + k] = v;
    for (const auto& [name, g] : c.generators) sd["rng/" + name] = g->get_state();
    safetensors::save((tmp / "modules.safetensors").string(), sd);
    {
      torch::serialize::OutputArchive all;
      for (const auto& [name, opt] : c.optimizers) {
        torch::serialize::OutputArchive one;
        opt->save(one);
        all.write(name, one);
      }
      std::ostringstream os;
      all.save_to(os);
      write_file_atomically((tmp / "optimizers.pt").string(), os.str());
    }
    const double elapsed = time_offset_s_ + std::chrono::duration<double>(Clock::now() - start_).count();
    write_json_file((tmp / "state.json").string(), {{"step", step}, {"train_time_s", elapsed}, {"extra", c.extra}});
    remove_tree(final_dir.string());
    fs::rename(tmp, final_dir);
    write_file_atomically((dir / "latest").string(), step_name(step) + "\n");
  } catch (const std::exception& e) {
    remove_tree(tmp.string());
    throw Error(str("cannot save the checkpoint of step ", step, " in '", dir.string(), "' (the previous checkpoint is "
                    "still the latest): ", e.what()));
  }
  // Keep the newest `keep` complete checkpoints.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("step-", 0) == 0) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  for (size_t i = 0; i + static_cast<size_t>(std::max(keep, 1)) < names.size(); ++i)
    remove_tree((dir / names[i]).string());
  return final_dir.string();
}

int64_t RunFolder::load_latest(CheckpointContents& c) {
  const fs::path dir = fs::path(out_) / "checkpoints";
  std::string name = read_file(dir / "latest");
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
  try {
    return load_checkpoint(c, dir / name);
  } catch (const std::exception& e) {
    // Say which older checkpoint is there to fall back on, and how.
    std::vector<std::string> older;
    for (const auto& entry : fs::directory_iterator(dir)) {
      const std::string n = entry.path().filename().string();
      if (entry.is_directory() && n.rfind("step-", 0) == 0 && n < name && fs::exists(entry.path() / "state.json"))
        older.push_back(n);
    }
    std::sort(older.begin(), older.end());
    const std::string hint =
        older.empty() ? " (no earlier checkpoint is kept; start the run again without --resume, in a new --out)"
                      : str(" (the earlier checkpoint '", older.back(), "' is there: write that name into '",
                            (dir / "latest").string(), "' and --resume again)");
    throw Error(message_of(e) + hint);
  }
}

int64_t RunFolder::load_checkpoint(CheckpointContents& c, const fs::path& ck) {
  const std::string name = ck.filename().string();
  const fs::path dir = ck.parent_path();
  SPRINT_CHECK(fs::is_directory(ck), "'", (dir / "latest").string(), "' names '", name, "', which is not a checkpoint folder");
  auto where = [&](const std::string& f) { return (ck / f).string(); };
  auto archive = safetensors::Archive::open(where("modules.safetensors"));
  torch::NoGradGuard ng;
  auto assign = [&](const std::string& key, torch::Tensor dst) {
    SPRINT_CHECK(archive.contains(key), where("modules.safetensors"), ": tensor '", key, "' is missing (the checkpoint "
                 "does not fit this run's configuration)");
    auto src = archive.tensor(key);
    SPRINT_CHECK(src.sizes() == dst.sizes(), where("modules.safetensors"), ": tensor '", key, "': expected ",
                 shape_str(dst.sizes().vec()), ", got ", shape_str(src.sizes().vec()));
    dst.copy_(src);
  };
  for (auto& [name_m, m] : c.modules)
    for (auto& [k, v] : module_state_dict(*m)) assign(name_m + "/" + k, v);
  for (auto& [name_e, e] : c.emas)
    for (auto& [k, v] : e->shadow()) assign("ema:" + name_e + "/" + k, v);
  for (auto& [name_g, g] : c.generators) {
    const std::string key = "rng/" + name_g;
    SPRINT_CHECK(archive.contains(key), where("modules.safetensors"), ": generator state '", key, "' is missing");
    g->set_state(archive.tensor(key).clone());
  }
  with_context(where("optimizers.pt"), [&] {
    std::istringstream is(read_file(ck / "optimizers.pt", SIZE_MAX));
    torch::serialize::InputArchive all;
    all.load_from(is);
    for (auto& [name_o, opt] : c.optimizers) {
      torch::serialize::InputArchive one;
      SPRINT_CHECK(all.try_read(name_o, one), "optimiser '", name_o, "' is missing");
      opt->load(one);
    }
  });
  json state;
  try {
    state = json::parse(read_file(ck / "state.json"));
  } catch (const json::exception& e) {
    throw Error(str(where("state.json"), " is not valid JSON: ", e.what()));
  }
  c.extra = state.value("extra", json::object());
  time_offset_s_ = state.value("train_time_s", 0.0);
  start_ = Clock::now();
  const int64_t step = state.at("step").get<int64_t>();
  truncate_metrics_after(step);
  return step;
}

void RunFolder::truncate_metrics_after(int64_t step) {
  if (!writer_) return;
  const fs::path file = fs::path(out_) / "metrics.jsonl";
  if (!fs::exists(file)) return;
  std::istringstream in(read_file(file, SIZE_MAX));
  std::string line, kept;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      if (json::parse(line).value("step", int64_t{0}) > step) continue;
    } catch (const json::exception&) {
      continue;  // a line torn by a crash
    }
    kept += line + "\n";
  }
  write_file_atomically(file.string(), kept);
}

void RunFolder::log_metrics(int64_t step, const std::map<std::string, double>& values) {
  if (!writer_) return;
  json j = {{"step", step},
            {"time_s", time_offset_s_ + std::chrono::duration<double>(Clock::now() - start_).count()}};
  for (const auto& [k, v] : values) j[k] = std::isfinite(v) ? json(v) : json(str(v));
  std::ofstream f(fs::path(out_) / "metrics.jsonl", std::ios::app);
  f << j.dump() << "\n";
  f.flush();
  SPRINT_CHECK(f.good(), "cannot append to '", path("metrics.jsonl"), "'");
}

void RunFolder::plot_losses(const std::vector<std::string>& terms) const {
  if (!writer_) return;
  const fs::path file = fs::path(out_) / "metrics.jsonl";
  if (!fs::exists(file) || terms.empty()) return;
  std::map<std::string, std::vector<std::pair<double, double>>> series;
  std::istringstream in(read_file(file, SIZE_MAX));
  std::string line;
  while (std::getline(in, line)) {
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception&) {
      continue;
    }
    for (const auto& t : terms)
      if (j.contains(t) && j[t].is_number()) series[t].emplace_back(j["step"].get<double>(), j[t].get<double>());
  }
  const int pw = 480, ph = 220, cols = 2;
  const int rows = static_cast<int>((terms.size() + cols - 1) / cols);
  cv::Mat img(rows * ph, cols * pw, CV_8UC3, cv::Scalar(255, 255, 255));  // RGB, as write_png takes it
  for (size_t i = 0; i < terms.size(); ++i) {
    const auto& pts = series[terms[i]];
    const int x0 = static_cast<int>(i % cols) * pw, y0 = static_cast<int>(i / cols) * ph;
    const int l = x0 + 60, r = x0 + pw - 10, t = y0 + 24, b = y0 + ph - 30;
    cv::rectangle(img, {l, t}, {r, b}, cv::Scalar(160, 160, 160));
    cv::putText(img, terms[i], {x0 + 60, y0 + 18}, cv::FONT_HERSHEY_SIMPLEX, 0.5, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    if (pts.size() < 2) continue;
    bool positive = std::all_of(pts.begin(), pts.end(), [](auto& p) { return p.second > 0; });
    auto yv = [&](double v) { return positive ? std::log10(v) : v; };
    double smin = pts.front().first, smax = pts.back().first, vmin = 1e300, vmax = -1e300;
    for (auto& p : pts) vmin = std::min(vmin, yv(p.second)), vmax = std::max(vmax, yv(p.second));
    if (vmax - vmin < 1e-12) vmax = vmin + 1;
    if (smax <= smin) smax = smin + 1;
    std::vector<cv::Point> poly;
    for (auto& p : pts)
      poly.emplace_back(l + static_cast<int>((p.first - smin) / (smax - smin) * (r - l)),
                        b - static_cast<int>((yv(p.second) - vmin) / (vmax - vmin) * (b - t)));
    cv::polylines(img, poly, false, cv::Scalar(30, 90, 200), 1, cv::LINE_AA);  // RGB
    auto label = [&](double v) { return positive ? str(std::pow(10.0, v)) : str(v); };
    cv::putText(img, label(vmax).substr(0, 8), {x0 + 2, t + 10}, cv::FONT_HERSHEY_SIMPLEX, 0.35, cv::Scalar(0, 0, 0), 1);
    cv::putText(img, label(vmin).substr(0, 8), {x0 + 2, b}, cv::FONT_HERSHEY_SIMPLEX, 0.35, cv::Scalar(0, 0, 0), 1);
    cv::putText(img, str("step ", static_cast<int64_t>(smin)), {l, b + 16}, cv::FONT_HERSHEY_SIMPLEX, 0.35,
                cv::Scalar(0, 0, 0), 1);
    const std::string right = str(static_cast<int64_t>(smax), positive ? "  (log scale)" : "");
    cv::putText(img, right, {r - 8 * static_cast<int>(right.size()), b + 16}, cv::FONT_HERSHEY_SIMPLEX, 0.35,
                cv::Scalar(0, 0, 0), 1);
  }
  write_png(path("loss.png"), torch::from_blob(img.data, {img.rows, img.cols, 3}, torch::kUInt8));
}

// ---- progress ----------------------------------------------------------------------------------------------------

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const auto total = static_cast<int64_t>(s + 0.5);
  const int64_t h = total / 3600, m = (total / 60) % 60, sec = total % 60;
  char buf[48];
  if (h > 0)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm%02llds", (long long)h, (long long)m, (long long)sec);
  else if (m > 0)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)m, (long long)sec);
  else
    std::snprintf(buf, sizeof buf, "%llds", (long long)sec);
  return buf;
}

Progress::Progress(int64_t first_step, int64_t total_steps, int64_t every)
    : first_(first_step), total_(total_steps), every_(std::max<int64_t>(every, 1)), tty_(::isatty(2) != 0),
      start_(Clock::now()), last_draw_(Clock::now() - std::chrono::seconds(10)) {}

void Progress::update(int64_t step, const std::map<std::string, double>& shown) {
  const auto now = Clock::now();
  const bool due = tty_ ? now - last_draw_ > std::chrono::milliseconds(500) || step == total_
                        : (step % every_ == 0 || step == total_);
  if (!due) return;
  last_draw_ = now;
  const double el = std::chrono::duration<double>(now - start_).count();
  const double rate = el > 0 ? (step - first_) / el : 0;
  const double eta = rate > 0 ? (total_ - step) / rate : NAN;
  const int width = 24;
  const double frac = total_ > 0 ? std::clamp(double(step) / total_, 0.0, 1.0) : 0.0;
  const size_t fill = static_cast<size_t>(width * frac);
  std::string bar(static_cast<size_t>(width) + 2, '.');
  bar.front() = '[';
  bar.back() = ']';
  for (size_t i = 0; i < fill; ++i) bar[i + 1] = '#';
  char head[160];
  std::snprintf(head, sizeof head, "%s %lld/%lld  %.2f it/s  ETA %s", bar.c_str(), (long long)step, (long long)total_,
                rate, format_duration(eta).c_str());
  std::string line = head;
  for (const auto& [k, v] : shown) {
    char b[64];
    std::snprintf(b, sizeof b, "  %s %.4g", k.c_str(), v);
    line += b;
  }
  if (tty_)
    std::cerr << "\r" << line << "\033[K" << std::flush;
  else
    std::cerr << line << "\n" << std::flush;
}

void Progress::finish() {
  if (tty_) std::cerr << "\n";
}

// ---- misc ----------------------------------------------------------------------------------------------------------

double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> norms;
  for (const auto& p : params)
    if (p.grad().defined()) norms.push_back(p.grad().detach().to(torch::kFloat32).norm().pow(2));
  if (norms.empty()) return 0.0;
  const double total = std::sqrt(torch::stack(norms).sum().item<double>());
  if (max_norm > 0 && std::isfinite(total) && total > max_norm) {
    const double f = max_norm / (total + 1e-6);
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(f);
  }
  return total;
}

void save_image_grid(const std::string& file, const torch::Tensor& images, int64_t cols, int upscale) {
  SPRINT_CHECK(images.dim() == 4 && images.size(1) == 3, "save_image_grid: expected (N, 3, H, W), got ",
               shape_str(images.sizes().vec()));
  const int64_t n = images.size(0), h = images.size(2), w = images.size(3);
  cols = std::max<int64_t>(1, std::min(cols, n));
  const int64_t rows = (n + cols - 1) / cols, pad = 2;
  auto u8 = ((images.detach().to(torch::kCPU, torch::kFloat32).clamp(-1, 1) + 1) * 127.5)
                .round()
                .to(torch::kUInt8)
                .permute({0, 2, 3, 1})
                .contiguous();
  cv::Mat grid(static_cast<int>(rows * (h * upscale + pad) + pad), static_cast<int>(cols * (w * upscale + pad) + pad),
               CV_8UC3, cv::Scalar(255, 255, 255));
  for (int64_t i = 0; i < n; ++i) {
    cv::Mat one(static_cast<int>(h), static_cast<int>(w), CV_8UC3, u8[i].data_ptr<uint8_t>()), big;
    cv::resize(one, big, cv::Size(), upscale, upscale, cv::INTER_NEAREST);
    const int x = static_cast<int>(pad + (i % cols) * (w * upscale + pad));
    const int y = static_cast<int>(pad + (i / cols) * (h * upscale + pad));
    big.copyTo(grid(cv::Rect(x, y, big.cols, big.rows)));
  }
  fs::create_directories(fs::path(file).parent_path());
  write_png(file, torch::from_blob(grid.data, {grid.rows, grid.cols, 3}, torch::kUInt8));
}

}  // namespace sprint::training
