// Headless and scripted runs of the app: --replay (and the scripted strokes of --bench-frames), --frames,
// --exit-after-replay, --timeout, and the --screenshot / --save-output written when such a run ends. It plays the
// events into the Studio through a ReplayPlayer::Target, decides when the run is over, and turns how it ended into
// the exit code: 0 done, 1 the model failed to load or a replay event or a final write failed, 2 timed out, 3 a replay
// saw generation errors. An interactive run (none of these options) has no driver work to do.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "replay.h"

namespace sprint {

struct StudioOptions;

class HeadlessDriver {
 public:
  explicit HeadlessDriver(const StudioOptions& options);  // throws for a bad replay file

  bool headless() const { return replay_ || frames_ > 0; }
  bool replaying() const { return replay_ != nullptr; }
  // The run wants frames drawn back to back (a replay is playing or the run is ending).
  bool busy() const;
  // The replay's synthetic mouse, when a mouse_stroke is playing.
  const ReplayPlayer::Mouse* mouse() const { return replay_ && replay_->mouse().active ? &replay_->mouse() : nullptr; }

  void begin_frame(double now_s);
  // The model failed to load: a headless run ends with exit code 1.
  void model_failed(const std::string& error);
  // Plays this frame's events into `target`; returns true when one lifted the pen. A failing event ends the run.
  bool play(double dt_s, ReplayPlayer::Target& target);
  // After the frame's input: whether the run has reached its end (frame limits, replay done and its last frame
  // shown) or its timeout.
  void end_frame(double now_s, size_t timed_ui_frames, bool input_shown);

  bool finishing() const { return finishing_ && !exit_code_; }
  // The last frame is drawn (before the swap): writes the screenshot (write_screenshot(path)) and the output
  // (save_output(path)), prints `summary` and sets the exit code (3 when a replay saw `generation_errors`).
  void finish(const std::function<void(const std::string&)>& write_screenshot,
              const std::function<void(const std::string&)>& save_output, const std::string& summary,
              uint64_t generation_errors);

  bool wants_exit() const { return exit_code_.has_value(); }
  int exit_code() const { return exit_code_.value_or(0); }

 private:
  std::unique_ptr<ReplayPlayer> replay_;
  int frames_ = 0, bench_frames_ = 0;
  bool exit_after_replay_ = false;
  double timeout_s_ = 300;
  std::string screenshot_, save_output_;
  bool finishing_ = false;  // the last frame is being drawn: outputs and exit after it
  uint64_t frame_count_ = 0;
  double start_s_ = -1;
  std::optional<int> exit_code_;
};

}  // namespace sprint
