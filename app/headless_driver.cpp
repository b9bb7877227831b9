// See headless_driver.h.
#include "headless_driver.h"

#include <cstdio>

#include "sprint/error.h"
#include "studio.h"

namespace sprint {

namespace {

// Scripted strokes for --bench-frames without --replay: zig-zags across the canvas, one per second, for as long as
// the bench runs.
std::vector<ReplayEvent> bench_events() {
  std::vector<ReplayEvent> events;
  for (int i = 0; i < 2000; ++i) {
    ReplayEvent e;
    e.type = ReplayEvent::Type::Stroke;
    e.duration = 1.0;
    e.radius = 0.01f;
    const float y = 0.1f + 0.8f * static_cast<float>(i % 9) / 8.0f;
    for (int k = 0; k <= 16; ++k)
      e.points.push_back({0.1f + 0.8f * k / 16.0f, y + ((k % 2) ? 0.04f : -0.04f)});
    events.push_back(e);
    if (i % 9 == 8) {
      ReplayEvent c;
      c.type = ReplayEvent::Type::Clear;
      events.push_back(c);
    }
  }
  return events;
}

}  // namespace

HeadlessDriver::HeadlessDriver(const StudioOptions& o)
    : frames_(o.frames),
      bench_frames_(o.bench_frames),
      exit_after_replay_(o.exit_after_replay),
      timeout_s_(o.timeout_s),
      screenshot_(o.screenshot),
      save_output_(o.save_output) {
  if (!o.replay.empty()) replay_ = std::make_unique<ReplayPlayer>(load_replay(o.replay));
  else if (o.bench_frames > 0) replay_ = std::make_unique<ReplayPlayer>(bench_events());
}

bool HeadlessDriver::busy() const {
  return (replay_ && !replay_->done()) || finishing_ || frames_ > 0 || exit_after_replay_;
}

void HeadlessDriver::begin_frame(double now_s) {
  if (start_s_ < 0) start_s_ = now_s;
  ++frame_count_;
}

void HeadlessDriver::model_failed(const std::string& error) {
  if (!headless() || exit_code_) return;
  std::fprintf(stderr, "sprint-studio: %s\n", error.c_str());
  exit_code_ = 1;
}

bool HeadlessDriver::play(double dt_s, ReplayPlayer::Target& target) {
  if (!replay_) return false;
  try {
    replay_->advance(dt_s, target);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sprint-studio: replay: %s\n", message_of(e).c_str());
    exit_code_ = 1;
  }
  return target.pen_up;
}

void HeadlessDriver::end_frame(double now_s, size_t timed_ui_frames, bool input_shown) {
  if (finishing_ || exit_code_) return;
  if (frames_ > 0 && frame_count_ >= static_cast<uint64_t>(frames_)) finishing_ = true;
  if (bench_frames_ > 0 && timed_ui_frames >= static_cast<size_t>(bench_frames_)) finishing_ = true;
  if (replay_ && exit_after_replay_ && replay_->done() && input_shown) finishing_ = true;
  if (headless() && now_s - start_s_ > timeout_s_) {
    std::fprintf(stderr, "sprint-studio: timed out after %.0f s (replay at event %zu of %zu)\n", timeout_s_,
                 replay_ ? replay_->position() : 0, replay_ ? replay_->size() : 0);
    exit_code_ = 2;
  }
}

void HeadlessDriver::finish(const std::function<void(const std::string&)>& write_screenshot,
                            const std::function<void(const std::string&)>& save_output, const std::string& summary,
                            uint64_t generation_errors) {
  if (!finishing()) return;
  try {
    if (!screenshot_.empty()) write_screenshot(screenshot_);
    if (!save_output_.empty()) save_output(save_output_);
    exit_code_ = (replay_ && generation_errors > 0) ? 3 : 0;
    std::fprintf(stderr, "%s\n", summary.c_str());
    if (generation_errors > 0)
      std::fprintf(stderr, "sprint-studio: %llu generation error(s)\n", static_cast<unsigned long long>(generation_errors));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sprint-studio: %s\n", message_of(e).c_str());
    exit_code_ = 1;
  }
}

}  // namespace sprint
