// See live_session.h.
#include "live_session.h"

#include <algorithm>

namespace sprint {

bool reflects(const LiveKey& frame, const LiveKey& input) {
  if (frame.canvas_revision != input.canvas_revision) return false;
  GenerationSettings a = frame.settings, b = input.settings;
  a.steps = b.steps = 0;
  return a == b;
}

LiveSession::LiveSession(const std::string& model_dir, const PipelineOptions& options, const PacingOptions& pacing,
                         std::function<void()> wake)
    : worker_(std::make_unique<GenerationWorker>(model_dir, options, std::move(wake))),
      pacing_(pacing),
      pacer_(pacing) {}

int LiveSession::submit(const Input& in, double now_s) {
  const LiveKey& user = in.key;
  photon_.observe(user, now_s);
  if (!last_user_key_ || !(*last_user_key_ == user)) {
    last_user_key_ = user;
    last_input_s_ = now_s;
  }
  // Adaptive pacing: while drawing (pen down, or the input changed within pause_s) and frames at the user's step
  // count are over budget, draft with fewer steps; the final frame (pen-up) and the frame after a pause refine.
  PacingOptions po = pacing_;
  po.enabled = pacing_.enabled && in.adaptive;
  if (po.enabled != pacer_.options().enabled) pacer_.set_options(po);
  const bool drawing = in.pen_down || (!in.final && now_s - last_input_s_ < po.pause_s);
  LiveKey key = user;
  key.settings.steps = in.final ? user.settings.steps : pacer_.steps_for(user.settings.steps, drawing);
  const int draft_steps = key.settings.steps < user.settings.steps ? key.settings.steps : 0;
  if (!in.final && submitted_key_ && *submitted_key_ == key) return draft_steps;  // unchanged: not even a slot offer
  if (snapshot_revision_ != in.canvas_revision && in.canvas) {
    canvas_snapshot_ = std::make_shared<const std::vector<uint8_t>>(*in.canvas);
    snapshot_revision_ = in.canvas_revision;
  }
  LiveRequest req;
  req.settings = key.settings;
  req.canvas_width = in.canvas_width;
  req.canvas_height = in.canvas_height;
  req.canvas = canvas_snapshot_;
  req.canvas_revision = in.canvas_revision;
  const OfferResult offered = worker_->submit(key, std::move(req), in.final);
  if (offered != OfferResult::Skipped) ++(draft_steps > 0 ? drafts_ : refined_);
  submitted_key_ = key;
  return draft_steps;
}

std::optional<FrameResult> LiveSession::poll() {
  auto r = worker_->take_result();
  if (!r) return r;
  if (!r->error.empty()) {
    ++errors_;
    return r;
  }
  // Pacing sees what a stroke costs: the prompt encoding is a one-off per prompt (cached while drawing), and the first
  // frame after loading pays one-off allocations and warm-up, which would start the app in draft mode.
  if (!gen_frame_ms_.empty())
    pacer_.record(r->key.settings.steps, std::max(0.0, r->wall_ms - r->times.tokenize_ms - r->times.text_encoder_ms));
  gen_frame_ms_.push(r->wall_ms);
  return r;
}

void LiveSession::frame_restored(const LiveKey& frame, const LiveKey& user) {
  // The worker's "unchanged input" memory must not swallow a later request for its last key.
  worker_->invalidate();
  if (frame == user) submitted_key_ = frame;
}

size_t LiveSession::displayed(const LiveKey& key, double now_s) { return photon_.displayed(key, now_s); }

bool LiveSession::shown(const LiveKey& user) const {
  return submitted_key_ && worker_->idle() && !worker_->has_result() && *submitted_key_ == user;
}

bool LiveSession::pending(const LiveKey& user) const { return submitted_key_ && !(*submitted_key_ == user); }

}  // namespace sprint
