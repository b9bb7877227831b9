// The live loop's generation side (docs/architecture.md#live-loop): offers the current input to the generation
// worker when it changed (a draft step count while drawing, from adaptive pacing), takes finished frames, and keeps
// the timings that pacing, the HUD and the exit report use. No GL and no ImGui: Studio shows what it returns.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "generation_worker.h"
#include "sprint/app/frame_stats.h"
#include "sprint/app/pacing.h"

namespace sprint {

// A frame shows an input when it was made for the same canvas and settings; the step count may differ (a draft
// made while drawing shows the drawing).
bool reflects(const LiveKey& frame, const LiveKey& input);

class LiveSession {
 public:
  // Starts loading the model on the worker thread; `wake` runs when a result or a state change is ready.
  LiveSession(const std::string& model_dir, const PipelineOptions& options, const PacingOptions& pacing,
              std::function<void()> wake);

  GenerationWorker& worker() { return *worker_; }
  const GenerationWorker& worker() const { return *worker_; }

  // One UI frame's input.
  struct Input {
    LiveKey key;                  // the input as the user set it (canvas revision + settings at the user's steps)
    bool final = false;           // pen-up or import: always offered, at the user's steps
    bool pen_down = false;
    bool adaptive = true;         // drafts with fewer steps while drawing are allowed
    uint64_t canvas_revision = 0;                  // what the canvas pixels are
    const std::vector<uint8_t>* canvas = nullptr;  // the pixels (copied only when they changed and a request goes)
    int canvas_width = 0, canvas_height = 0;
  };
  // Offers `in` to the worker when it differs from the last request (or is final). Returns the draft's step count,
  // 0 when the request is at the user's steps.
  int submit(const Input& in, double now_s);

  // The newest finished frame (nullopt when none), with its pacing sample and timing recorded; a failed one counted.
  std::optional<FrameResult> poll();

  // A frame restored from the history is on screen: a later request for its key must not be swallowed as unchanged,
  // and it stands for `user` when the keys are equal (there is nothing to generate).
  void frame_restored(const LiveKey& frame, const LiveKey& user);
  // The frame made for `key` reached the screen at now_s; returns how many inputs it completed (their latencies are
  // the last ones in input_to_photon_ms()).
  size_t displayed(const LiveKey& key, double now_s);

  bool shown(const LiveKey& user) const;    // the frame for `user` is the last one and nothing is pending
  bool pending(const LiveKey& user) const;  // `user` has not been submitted yet
  double last_input_s() const { return last_input_s_; }  // when the input last changed

  const SampleWindow& generation_ms() const { return gen_frame_ms_; }
  const SampleWindow& input_to_photon_ms() const { return photon_.latency_ms(); }
  uint64_t drafts() const { return drafts_; }
  uint64_t refined() const { return refined_; }
  uint64_t errors() const { return errors_; }

 private:
  std::unique_ptr<GenerationWorker> worker_;
  PacingOptions pacing_;
  AdaptivePacer pacer_;
  InputLatencyTracker<LiveKey> photon_{reflects};
  std::optional<LiveKey> submitted_key_;
  std::optional<LiveKey> last_user_key_;
  double last_input_s_ = -1e9;
  std::shared_ptr<const std::vector<uint8_t>> canvas_snapshot_;
  uint64_t snapshot_revision_ = ~0ull;
  SampleWindow gen_frame_ms_;
  uint64_t drafts_ = 0, refined_ = 0, errors_ = 0;
};

}  // namespace sprint
