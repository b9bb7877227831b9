#include "generation_worker.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>

#include "sprint/app/canvas_size.h"
#include "sprint/error.h"
#include "sprint/image_io.h"
#include "sprint/runtime.h"
#include "sprint/scribble.h"

namespace sprint {

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

constexpr auto kPollInterval = std::chrono::milliseconds(50);  // how often an idle worker checks for shutdown

// The model runs at a lower CPU priority than the UI thread and the GL driver's threads, so that on a busy machine a
// frame that is due is drawn before the next model step: a generation then takes a little longer, but drawing never
// stalls. Linux nice values are per thread, and the threads LibTorch starts from this one inherit it. Measured with
// tests/bench/studio_responsiveness.sh on 2 cores (bundled model, 2026-11-26): nice 10 gave a UI frame p99 of
// 17.5-20.6 ms over 7 runs, nice 19 gave 16.9-18.7 ms over 10, with 120-130 generated frames in both. Unlike
// SCHED_IDLE, nice 19 still gets a share of a busy CPU, so generation cannot starve.
constexpr int kWorkerNice = 19;

void lower_worker_priority() {
#ifdef __linux__
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  if (::setpriority(PRIO_PROCESS, tid, kWorkerNice) != 0)
    std::fprintf(stderr, "sprint-studio: could not lower the generation thread's priority (%s); drawing may stutter "
                 "while the model runs\n", std::strerror(errno));
#endif
}

}  // namespace

GenerationWorker::GenerationWorker(std::string model_dir, PipelineOptions options, std::function<void()> wake)
    : model_dir_(std::move(model_dir)), options_(std::move(options)), wake_(std::move(wake)) {
  thread_ = std::thread([this] { run(); });
}

GenerationWorker::~GenerationWorker() {
  stopping_ = true;
  slot_.close();
  if (thread_.joinable()) thread_.join();
}

std::string GenerationWorker::load_error() const {
  std::lock_guard lock(mutex_);
  return load_error_;
}

std::optional<ModelInfo> GenerationWorker::info() const {
  std::lock_guard lock(mutex_);
  return info_;
}

std::optional<FrameResult> GenerationWorker::take_result() {
  std::lock_guard lock(mutex_);
  std::optional<FrameResult> r = std::move(result_);
  result_.reset();
  return r;
}

bool GenerationWorker::has_result() const {
  std::lock_guard lock(mutex_);
  return result_.has_value();
}

void GenerationWorker::publish(FrameResult r) {
  {
    std::lock_guard lock(mutex_);
    result_ = std::move(r);  // an untaken older frame is stale: newest wins here too
  }
  if (wake_) wake_();
}

void GenerationWorker::run() {
  lower_worker_priority();
  torch::NoGradGuard no_grad;
  try {
    const auto t0 = std::chrono::steady_clock::now();
    ModelInfo info;
    info.model_dir = model_dir_;
    pipeline_ = Pipeline::load(model_dir_, options_);
    info.has_controlnet = pipeline_->has_controlnet();
    info.load_ms = ms_since(t0);
    info.runtime = describe_runtime(pipeline_->device());
    info.device = pipeline_->device().str();
    const int side = pipeline_->native_size();
    info.default_width = info.default_height = side;
    info.sketch_canvas = pipeline_->prompt_options().sketch_canvas;
    std::tie(info.canvas_width, info.canvas_height) = sketch_canvas_size(info.sketch_canvas, side, side);
    {
      std::lock_guard lock(mutex_);
      info_ = info;
    }
    state_ = State::Ready;
  } catch (const std::exception& e) {
    {
      std::lock_guard lock(mutex_);
      load_error_ = str("error loading model '", model_dir_, "': ", message_of(e));
    }
    state_ = State::Failed;
    if (wake_) wake_();
    return;
  }
  if (wake_) wake_();

  while (!stopping_) {
    auto job = slot_.wait_take(kPollInterval);
    if (!job) continue;
    FrameResult r;
    try {
      r = generate(*job);
    } catch (const Cancelled&) {
      slot_.finish();
      break;  // only shutdown cancels
    } catch (const std::exception& e) {
      r = FrameResult{};
      r.job_id = job->id;
      r.final = job->final;
      r.key = job->key;
      r.error = message_of(e);
    }
    publish(std::move(r));
    slot_.finish();  // after publish: idle() implies the frame is visible to take_result()
  }
}

FrameResult GenerationWorker::generate(const Slot::Job& job) {
  const auto t0 = std::chrono::steady_clock::now();
  const LiveRequest& req = job.payload;
  const GenerationSettings& s = req.settings;
  FrameResult r;
  r.job_id = job.id;
  r.final = job.final;
  r.key = job.key;
  r.width = s.size.width;
  r.height = s.size.height;
  const int cw = req.canvas_width > 0 ? req.canvas_width : r.width;
  const int ch = req.canvas_height > 0 ? req.canvas_height : r.height;
  r.canvas_width = cw;
  r.canvas_height = ch;
  r.canvas = req.canvas;

  // The sketch reaches the model only through a ControlNet.
  if (pipeline_->has_controlnet()) {
    SPRINT_CHECK(req.canvas && req.canvas->size() == static_cast<size_t>(cw) * ch, "canvas is ",
                 req.canvas ? req.canvas->size() : 0, " bytes, expected ", cw, "x", ch);
    if (req.canvas_revision != condition_revision_ || s.thickness != condition_thickness_ || !condition_map_.defined() ||
        condition_map_.numel() != static_cast<int64_t>(cw) * ch) {
      const auto ts = std::chrono::steady_clock::now();
      // The scribble map is made at the canvas size (the line width the ControlNet was trained with); the pipeline
      // resizes it to the generation size. from_blob does not own the bytes; sketch_to_scribble reads them before
      // returning.
      auto sketch = torch::from_blob(const_cast<uint8_t*>(req.canvas->data()), {ch, cw}, torch::kUInt8);
      condition_map_ = sketch_to_scribble(sketch, s.thickness).contiguous();
      ++condition_version_;
      condition_revision_ = req.canvas_revision;
      condition_thickness_ = s.thickness;
      r.scribble_ms = ms_since(ts);
    }
    r.condition.assign(condition_map_.data_ptr<uint8_t>(), condition_map_.data_ptr<uint8_t>() + condition_map_.numel());
  }

  GenerateRequest g = make_generate_request(s, condition_map_, condition_version_);
  g.cancelled = [this] { return stopping_.load(); };
  g.image_on_device = pipeline_->device().is_cuda();  // the frame stays on the GPU for the interop display
  GenerateResult out = pipeline_->generate(g);
  torch::Tensor rgb = to_uint8_image(out.image);  // (H, W, 3) uint8 on the run device
  if (rgb.is_cuda()) r.rgb_device = rgb;
  const torch::Tensor host = rgb.to(torch::kCPU);
  r.rgb.assign(host.data_ptr<uint8_t>(), host.data_ptr<uint8_t>() + host.numel());
  r.times = out.times;
  r.wall_ms = ms_since(t0);
  return r;
}

}  // namespace sprint
