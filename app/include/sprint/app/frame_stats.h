// Frame timing for the HUD and the exit report (docs/architecture.md#pacing): a sample store with percentiles, and the
// input-to-photon tracker (time from the input event that changed the canvas or the settings to the first displayed
// frame that reflects it).
// Header-only, no LibTorch or GL: the app and the unit tests share it. Not thread-safe (UI thread only).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sprint {

// Samples in ms. Keeps every sample up to `capacity` (then the newest `capacity`).
class SampleWindow {
 public:
  explicit SampleWindow(size_t capacity = 1u << 20) : capacity_(capacity) {}
  void push(double ms) {
    samples_.push_back(ms);
    if (samples_.size() > capacity_) samples_.pop_front();
  }
  size_t size() const { return samples_.size(); }
  bool empty() const { return samples_.empty(); }
  void clear() { samples_.clear(); }
  const std::deque<double>& samples() const { return samples_; }  // oldest first
  // Nearest-rank percentile, p in [0, 100]; 0 when empty. p50 of {1, 2, 3, 4} is 2, p99 of 100 samples the 99th.
  double percentile(double p) const {
    if (samples_.empty()) return 0;
    std::vector<double> v(samples_.begin(), samples_.end());
    const double rank = std::ceil(std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(v.size()));
    const size_t k = static_cast<size_t>(std::max(1.0, rank)) - 1;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
  }

 private:
  size_t capacity_;
  std::deque<double> samples_;
};

// Input-to-photon latency. Every UI frame the app reports the current input key (canvas revision + settings): a
// key different from the previous frame's is an input event at that time. When a frame is displayed, every pending
// input up to the newest one that the frame reflects is done: a newer frame stands for the inputs it skipped (the
// live loop drops stale requests), so each input is measured to the first frame showing it or something newer.
// `Reflects(frame_key, input_key)` says whether a frame made for frame_key shows input_key (e.g. equality, or
// equality up to the step count when drafts are shown while drawing).
template <class Key>
class InputLatencyTracker {
 public:
  using Reflects = std::function<bool(const Key& frame, const Key& input)>;
  explicit InputLatencyTracker(Reflects reflects = [](const Key& a, const Key& b) { return a == b; })
      : reflects_(std::move(reflects)) {}

  // The first call only sets the baseline (the start-up state is no input).
  void observe(const Key& key, double t_s) {
    if (last_ && *last_ == key) return;
    if (last_) pending_.push_back({key, t_s});
    last_ = key;
  }
  // A frame made for `key` reached the screen at t_s. Returns how many inputs it completed.
  size_t displayed(const Key& key, double t_s) {
    size_t newest = pending_.size();
    for (size_t i = pending_.size(); i-- > 0;) {
      if (reflects_(key, pending_[i].first)) {
        newest = i;
        break;
      }
    }
    if (newest == pending_.size()) return 0;
    for (size_t i = 0; i <= newest; ++i) latency_ms_.push(std::max(0.0, (t_s - pending_[i].second) * 1000.0));
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(newest) + 1);
    return newest + 1;
  }
  size_t pending() const { return pending_.size(); }
  const SampleWindow& latency_ms() const { return latency_ms_; }

 private:
  Reflects reflects_;
  std::optional<Key> last_;
  std::deque<std::pair<Key, double>> pending_;
  SampleWindow latency_ms_;
};

// The one-line exit report: "frames: N  p50 X ms  p99 Y ms  input-to-photon p50 Z ms".
inline std::string frame_report(const SampleWindow& frame_ms, const SampleWindow& input_to_photon_ms) {
  char line[256];
  std::snprintf(line, sizeof line, "frames: %zu  p50 %.1f ms  p99 %.1f ms  input-to-photon p50 %.1f ms",
                frame_ms.size(), frame_ms.percentile(50), frame_ms.percentile(99), input_to_photon_ms.percentile(50));
  return line;
}

}  // namespace sprint
