// Adaptive pacing for the live loop (docs/architecture.md#pacing): newest input wins (LatestRequestSlot), and
// when a frame at the user's step count takes longer than a budget, frames made while the user is drawing use
// fewer steps (1 by default); once input pauses (pen up, or no change for `pause_s`), the picture is refined at the
// user's step count. Hysteresis: drafting starts when the estimated full-quality frame time exceeds
// budget x high and stops when it falls below budget x low.
// Header-only, no LibTorch: the app and the unit tests share it. UI thread only.
#pragma once

#include <algorithm>
#include <array>

namespace sprint {

struct PacingOptions {
  bool enabled = true;
  double budget_ms = 250;   // a frame slower than this while drawing is too slow (~0.25 s per frame)
  int drawing_steps = 1;    // steps while drawing when over budget
  double pause_s = 0.3;     // no input for this long = paused (refine)
  double low = 0.8, high = 1.2;  // hysteresis band around the budget
};

class AdaptivePacer {
 public:
  static constexpr int kMaxSteps = 4;
  explicit AdaptivePacer(PacingOptions options = {}) : o_(options) {}

  const PacingOptions& options() const { return o_; }
  void set_options(const PacingOptions& o) { o_ = o; update(last_user_steps_); }

  // A finished frame made with `steps` took `ms` (the generation, not the UI).
  void record(int steps, double ms) {
    if (steps < 1 || steps > kMaxSteps || !(ms >= 0)) return;
    double& e = ema_[steps - 1];
    e = e < 0 ? ms : e + kAlpha * (ms - e);
    update(last_user_steps_);
  }

  // Estimated time of a frame with `steps`: measured when available, else scaled from the nearest measured step count
  // (the transformer dominates and costs the same per step). < 0 when nothing was measured yet.
  double estimate_ms(int steps) const {
    steps = std::clamp(steps, 1, kMaxSteps);
    if (ema_[steps - 1] >= 0) return ema_[steps - 1];
    for (int d = 1; d < kMaxSteps; ++d) {
      for (int s : {steps - d, steps + d}) {
        if (s >= 1 && s <= kMaxSteps && ema_[s - 1] >= 0) return ema_[s - 1] * steps / s;
      }
    }
    return -1;
  }

  // Steps for the next request. `drawing`: the pen is down or the input changed less than pause_s ago.
  int steps_for(int user_steps, bool drawing) {
    update(user_steps);
    if (!o_.enabled || !drawing || !reduced_) return user_steps;
    return std::min(user_steps, std::max(1, o_.drawing_steps));
  }
  bool reduced() const { return reduced_; }

 private:
  static constexpr double kAlpha = 0.3;
  void update(int user_steps) {
    last_user_steps_ = user_steps;
    const double est = estimate_ms(user_steps);
    if (!o_.enabled || est < 0 || user_steps <= o_.drawing_steps) {
      reduced_ = false;
      return;
    }
    if (!reduced_ && est > o_.budget_ms * o_.high) reduced_ = true;
    else if (reduced_ && est < o_.budget_ms * o_.low) reduced_ = false;
  }
  PacingOptions o_;
  std::array<double, kMaxSteps> ema_{-1, -1, -1, -1};
  bool reduced_ = false;
  int last_user_steps_ = 2;
};

}  // namespace sprint
