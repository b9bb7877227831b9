// The live generation worker: loads the model on its own thread, then runs one job at a time from a
// LatestRequestSlot and publishes the newest finished frame for the UI to pick up. The UI thread never waits on the
// model: submit() and take_result() only take short locks. Errors (loading or generating) are caught here, at the
// job boundary, and travel to the UI as text.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sprint/app/request_slot.h"
#include "sprint/generation_settings.h"
#include "sprint/pipeline.h"

namespace sprint {

// The dirty key: canvas revision (StrokeHistory::revision) + the settings (everything a frame depends on besides
// the canvas). Equal keys give the same frame.
struct LiveKey {
  uint64_t canvas_revision = 0;
  GenerationSettings settings;
  bool operator==(const LiveKey&) const = default;
};

struct LiveRequest {
  GenerationSettings settings;                         // settings.size: the generation size (multiples of 32)
  int canvas_width = 0, canvas_height = 0;             // sketch canvas size (sketch_canvas_size(); 0 = width, height)
  std::shared_ptr<const std::vector<uint8_t>> canvas;  // (canvas_height, canvas_width) luma, 255 paper, 0 ink
  uint64_t canvas_revision = 0;
};

struct ModelInfo {
  std::string model_dir;
  std::string runtime;          // describe_runtime(): build + device
  std::string device;           // "cpu", "cuda:0"
  int default_width = 0, default_height = 0;  // transformer sample_size x VAE scale
  // Sketch canvas: sprint_pipeline.json "sketch_canvas" (0 = the generation size) and the canvas for the default
  // size (sketch_canvas_size in sprint/app/canvas_size.h gives it for any other size).
  int sketch_canvas = 0;
  int canvas_width = 0, canvas_height = 0;
  bool has_controlnet = false;
  double load_ms = 0;
};

struct FrameResult {
  uint64_t job_id = 0;
  bool final = false;
  LiveKey key;
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;        // (height, width, 3), empty on error
  // The same pixels on the GPU when the model runs on CUDA (undefined otherwise): the display copies them into its
  // texture through CUDA-GL interop; rgb (copied on this worker thread) serves history, export and the CPU path.
  torch::Tensor rgb_device;
  int canvas_width = 0, canvas_height = 0;
  std::shared_ptr<const std::vector<uint8_t>> canvas;  // the sketch this frame was made from (canvas size)
  // (canvas_height, canvas_width) scribble map made from the sketch, before the pipeline resizes it to the
  // generation size; empty without a ControlNet
  std::vector<uint8_t> condition;
  StageTimes times;
  double scribble_ms = 0;          // strokes -> scribble map
  double wall_ms = 0;              // whole job, as the worker saw it
  std::string error;               // non-empty when the job failed
};

class GenerationWorker {
 public:
  enum class State { Loading, Ready, Failed };
  using Slot = LatestRequestSlot<LiveKey, LiveRequest>;

  // Starts loading `model_dir` at once on the worker thread. `wake` is called (from the worker thread) when a
  // result or a state change is ready, e.g. glfwPostEmptyEvent.
  GenerationWorker(std::string model_dir, PipelineOptions options, std::function<void()> wake = {});
  ~GenerationWorker();  // cancels the job in flight and joins
  GenerationWorker(const GenerationWorker&) = delete;
  GenerationWorker& operator=(const GenerationWorker&) = delete;

  State state() const { return state_.load(); }
  std::string load_error() const;
  std::optional<ModelInfo> info() const;

  OfferResult submit(const LiveKey& key, LiveRequest request, bool final) {
    return slot_.offer(key, std::move(request), final);
  }
  void invalidate() { slot_.invalidate(); }
  std::optional<FrameResult> take_result();  // the newest finished frame not taken yet
  bool has_result() const;
  bool idle() const { return slot_.idle(); }
  Slot::Stats stats() const { return slot_.stats(); }

 private:
  void run();
  FrameResult generate(const Slot::Job& job);
  void publish(FrameResult r);

  std::string model_dir_;
  PipelineOptions options_;
  std::function<void()> wake_;
  Slot slot_;
  std::atomic<State> state_{State::Loading};
  std::atomic<bool> stopping_{false};

  mutable std::mutex mutex_;  // guards the fields below
  std::string load_error_;
  std::optional<ModelInfo> info_;
  std::optional<FrameResult> result_;

  // Worker-thread only.
  std::unique_ptr<Pipeline> pipeline_;
  // The scribble map of the last canvas revision and thickness, and its version for the pipeline's condition cache
  // (one more each time the map is remade).
  uint64_t condition_revision_ = ~0ull;
  int condition_thickness_ = -1;
  uint64_t condition_version_ = 0;
  torch::Tensor condition_map_;

  std::thread thread_;  // last: starts after every member above exists
};

}  // namespace sprint
