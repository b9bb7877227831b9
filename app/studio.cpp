#include "studio.h"

#include <epoxy/gl.h>
#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "sprint/settings_meta.h"
#include "sprint/error.h"
#include "sprint/image_io.h"

namespace fs = std::filesystem;

namespace sprint {

namespace {

constexpr float kPanelWidth = 310.0f;     // controls column, pixels
constexpr uint64_t kSeedRange = 1u << 31;  // "Random" draws seeds below this so they stay easy to type

// out.png + "before" -> out.before.png
std::string with_suffix(const std::string& path, const std::string& suffix) {
  fs::path p(path);
  return (p.parent_path() / (p.stem().string() + "." + suffix + p.extension().string())).string();
}

}  // namespace

Studio::Studio(StudioOptions options, std::function<void()> wake) : options_(std::move(options)) {
  controls_.prompt = options_.prompt;
  controls_.seed = options_.seed;
  if (!options_.size.empty()) std::tie(width_, height_) = parse_size(options_.size);
  if (!options_.replay.empty()) replay_ = std::make_unique<ReplayPlayer>(load_replay(options_.replay));
  PipelineOptions po;
  po.device = options_.device;
  worker_ = std::make_unique<GenerationWorker>(options_.model, po, std::move(wake));
}

Studio::~Studio() = default;

void Studio::init_gl() {
  ui::create_display_pass(display_, options_.shaders);
  canvas_tex_.nearest = true;
  condition_tex_.nearest = true;
  gl_ready_ = true;
}

void Studio::shutdown_gl() {
  if (!gl_ready_) return;
  ui::destroy_texture(canvas_tex_);
  ui::destroy_texture(condition_tex_);
  ui::destroy_texture(output_tex_);
  ui::destroy_display_pass(display_);
  gl_ready_ = false;
}

void Studio::on_model_ready() {
  info_ = worker_->info();
  if (width_ == 0) {
    width_ = info_->default_width;
    height_ = info_->default_height;
  }
  raster_.resize(width_, height_);
  // A brush a little under 1% of the canvas: about 8 px at 1024, 1 px on the tiny test model.
  controls_.brush.radius = std::max(1.0f, width_ / 128.0f);
  canvas_view_.fit_pending = true;
  std::fprintf(stderr, "sprint-studio: %s; model %s loaded in %.0f ms; canvas %dx%d%s\n", info_->runtime.c_str(),
               info_->model_dir.c_str(), info_->load_ms, width_, height_,
               info_->has_controlnet ? "" : " (no controlnet/: text only)");
}

LiveSettings Studio::live_settings() const {
  LiveSettings s;
  s.prompt = controls_.prompt;
  s.steps = controls_.steps;
  s.guidance = controls_.guidance;
  s.control_scale = controls_.control_scale;
  s.seed = controls_.seed;
  s.thickness = controls_.thickness;
  return s;
}

bool Studio::input_shown() const {
  if (!info_ || history_.drawing() || !submitted_key_) return false;
  return worker_->idle() && !worker_->has_result() &&
         *submitted_key_ == LiveKey{info_->has_controlnet ? history_.revision() : 0, live_settings()};
}

bool Studio::needs_fast_loop() const {
  return worker_->state() == GenerationWorker::State::Loading || !worker_->idle() || worker_->has_result() ||
         history_.drawing() || (replay_ && !replay_->done()) || finishing_ || options_.frames > 0 ||
         options_.exit_after_replay;
}

void Studio::poll_results(double now_s) {
  auto r = worker_->take_result();
  const auto stats = worker_->stats();
  hud_.frames = stats.finished;
  hud_.dropped = stats.dropped;
  hud_.skipped = stats.skipped;
  if (!r) return;
  if (!r->error.empty()) {
    last_error_ = "generation failed: " + r->error;
    ++errors_;
    std::fprintf(stderr, "sprint-studio: %s\n", last_error_.c_str());
    return;
  }
  last_error_.clear();
  output_rgb_ = std::move(r->rgb);
  output_w_ = r->width;
  output_h_ = r->height;
  output_key_ = r->key;
  last_frame_final_ = r->final;
  if (gl_ready_) {
    hud_.upload_ms = ui::upload_image(output_tex_, output_rgb_.data(), output_w_, output_h_, 3);
    if (!r->condition.empty()) {
      ui::upload_image(condition_tex_, r->condition.data(), r->width, r->height, 1);
      display_dirty_ = true;
    }
  }
  const StageTimes& t = r->times;
  hud_.tokenize_ms = t.tokenize_ms;
  hud_.text_encoder_ms = t.text_encoder_ms;
  hud_.condition_ms = t.condition_ms;
  hud_.transformer_ms = t.transformer_ms;
  hud_.decode_ms = t.decode_ms;
  hud_.total_ms = t.total_ms + r->scribble_ms;
  hud_.scribble_ms = r->scribble_ms;
  hud_.prompt_cached = t.prompt_cached;
  hud_.condition_cached = t.condition_cached;
  ui::hud_record_result(hud_, now_s);
}

void Studio::submit_if_changed(bool final) {
  if (!info_ || worker_->state() != GenerationWorker::State::Ready) return;
  if (final && !controls_.seed_locked) controls_.seed = rng_() % kSeedRange;
  // Without a ControlNet the canvas does not reach the model: strokes must not cost a frame.
  LiveKey key{info_->has_controlnet ? history_.revision() : 0, live_settings()};
  if (!final && submitted_key_ && *submitted_key_ == key) return;  // unchanged: not even a slot offer
  if (snapshot_revision_ != history_.revision()) {
    canvas_snapshot_ = std::make_shared<const std::vector<uint8_t>>(raster_.canvas().pixels);
    snapshot_revision_ = history_.revision();
  }
  LiveRequest req;
  req.settings = key.settings;
  req.width = width_;
  req.height = height_;
  req.canvas = canvas_snapshot_;
  req.canvas_revision = history_.revision();
  worker_->submit(key, std::move(req), final);
  submitted_key_ = key;
}

void Studio::handle_shortcuts() {
  ImGuiIO& io = ImGui::GetIO();
  if (io.WantTextInput || history_.drawing()) return;
  // ImGui 1.86 key indices are the platform's key codes; GLFW's letter codes are their upper-case ASCII.
  if (io.KeyCtrl && ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Z), false)) io.KeyShift ? history_.redo() : history_.undo();
  if (io.KeyCtrl && ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Y), false)) history_.redo();
  if (!io.KeyCtrl && ImGui::IsKeyPressed('B', false)) controls_.brush.eraser = false;
  if (!io.KeyCtrl && ImGui::IsKeyPressed('E', false)) controls_.brush.eraser = true;
  if (!io.KeyCtrl && ImGui::IsKeyPressed('F', false)) canvas_view_.fit_pending = true;
}

void Studio::refresh_canvas() {
  if (!info_ || !gl_ready_) return;
  if (raster_.sync(history_)) {
    const auto& c = raster_.canvas();
    ui::upload_image(canvas_tex_, c.pixels.data(), c.width, c.height, 1);
    display_dirty_ = true;
  }
  if (display_dirty_ || shown_condition_ != controls_.show_condition) {
    ui::render_display(display_, canvas_tex_, condition_tex_,
                       controls_.show_condition ? ui::DisplayMode::Condition : ui::DisplayMode::Sketch);
    shown_condition_ = controls_.show_condition;
    display_dirty_ = false;
  }
}

std::string Studio::status_line() const {
  std::string state;
  switch (worker_->state()) {
    case GenerationWorker::State::Loading: state = "loading " + options_.model; break;
    case GenerationWorker::State::Failed: state = "model failed to load"; break;
    case GenerationWorker::State::Ready: state = worker_->idle() ? "ready" : "generating"; break;
  }
  return str(state, "   |   ", info_ ? info_->device : std::string("-"), "   |   ", width_, "x", height_, "   |   ",
             history_.visible().size(), " strokes   |   Ctrl+Z undo   Ctrl+Shift+Z redo   B/E brush/eraser   "
             "wheel zoom   right-drag pan   F fit");
}

void Studio::draw_layout(ui::CanvasEvents& events) {
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  ImGui::SetNextWindowPos(vp->WorkPos);
  ImGui::SetNextWindowSize(vp->WorkSize);
  ImGui::PushStyleVar(ImGuiStyleVar_WindowRounding, 0.0f);
  ImGui::Begin("Sprint Studio", nullptr,
               ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoSavedSettings |
                   ImGuiWindowFlags_NoBringToFrontOnFocus);
  ImGui::PopStyleVar();

  ImGui::TextUnformatted("Sprint Studio");
  ImGui::SameLine();
  ImGui::TextDisabled("live sketch-to-image  |  SANA-Sprint + ControlNet");
  const float status_h = ImGui::GetFrameHeightWithSpacing();

  ImGui::BeginChild("controls", ImVec2(kPanelWidth, -status_h), true);
  const std::string device = info_ ? info_->runtime : std::string("loading...");
  const std::string model = fs::path(options_.model).lexically_normal().filename().string();
  ui::ControlsInfo ci;
  ci.device = device.c_str();
  ci.model = model.c_str();
  ci.width = width_;
  ci.height = height_;
  ci.has_controlnet = !info_ || info_->has_controlnet;
  ci.can_undo = history_.can_undo();
  ci.can_redo = history_.can_redo();
  const std::string error = worker_->state() == GenerationWorker::State::Failed ? worker_->load_error() : last_error_;
  ci.error = error.c_str();
  const ui::ControlsActions a = ui::draw_controls_panel(controls_, ci);
  if (a.undo) history_.undo();
  if (a.redo) history_.redo();
  if (a.clear) history_.clear();
  if (a.randomise_seed) controls_.seed = rng_() % kSeedRange;
  if (a.save_output) {
    const std::string path =
        (fs::path(options_.output_dir) / str("sprint-", output_key_.settings.seed, "-", hud_.frames, ".png")).string();
    try {
      save_output_png(path);
      std::fprintf(stderr, "sprint-studio: wrote %s\n", path.c_str());
    } catch (const std::exception& e) {
      last_error_ = e.what();
    }
  }
  ImGui::EndChild();
  ImGui::SameLine();

  ImGui::BeginChild("panes", ImVec2(0, -status_h), false);
  const float spacing = ImGui::GetStyle().ItemSpacing.x;
  const float pane_w = (ImGui::GetContentRegionAvail().x - spacing) / 2;
  ImGui::Text("Sketch%s", controls_.show_condition ? "  (condition map the model sees)" : "");
  ImGui::SameLine(pane_w + spacing);
  ImGui::Text("Output%s", output_rgb_.empty() ? "" : last_frame_final_ ? "  (final)" : "  (live)");
  const float pane_h = ImGui::GetContentRegionAvail().y;
  // The canvas pane leaves the same strip at the bottom as the output pane's HUD, so both pictures share a row.
  if (mono_font_) ImGui::PushFont(mono_font_);
  const float strip_h = ui::hud_height() + 8;
  if (mono_font_) ImGui::PopFont();
  ImGui::BeginGroup();
  canvas_pane_pos_ = ImGui::GetCursorScreenPos();
  canvas_pane_size_ = ImVec2(pane_w, pane_h - strip_h);
  events = ui::draw_canvas("##canvas", canvas_view_, history_, controls_.brush,
                           display_.target.id ? ui::imgui_texture_id(display_.target) : nullptr, width_, height_,
                           ImVec2(pane_w, pane_h - strip_h),
                           worker_->state() == GenerationWorker::State::Failed ? "the model failed to load (see the panel)"
                                                                               : "loading model...");
  ImGui::TextDisabled("%d x %d   zoom %.0f%%   %s %.1f px   %zu strokes%s", width_, height_, canvas_view_.zoom * 100,
                      controls_.brush.eraser ? "eraser" : "brush", controls_.brush.radius, history_.visible().size(),
                      history_.drawing() ? "   drawing" : "");
  ImGui::EndGroup();
  ImGui::SameLine();
  ui::ImageViewOverlay overlay;
  overlay.busy = !worker_->idle();
  const std::string caption =
      output_rgb_.empty() ? std::string() : str("seed ", output_key_.settings.seed, "   steps ", output_key_.settings.steps);
  overlay.caption = caption.c_str();
  if (mono_font_) ImGui::PushFont(mono_font_);
  ui::draw_image_view("##output", output_tex_.id ? ui::imgui_texture_id(output_tex_) : nullptr, output_w_, output_h_,
                      overlay, hud_, ImVec2(pane_w, pane_h));
  if (mono_font_) ImGui::PopFont();
  ImGui::EndChild();

  ImGui::TextDisabled("%s", status_line().c_str());
  ImGui::End();
}

void Studio::inject_input() {
  if (!replay_ || !replay_->mouse().active || width_ <= 0) return;
  // The canvas widget's mapping (canvas_widget.cpp), with last frame's pane and view.
  const auto& m = replay_->mouse();
  const ImVec2 centre(canvas_pane_pos_.x + canvas_pane_size_.x / 2 + canvas_view_.pan.x,
                      canvas_pane_pos_.y + canvas_pane_size_.y / 2 + canvas_view_.pan.y);
  ImGuiIO& io = ImGui::GetIO();
  io.MousePos = ImVec2(centre.x + (m.pos.x - 0.5f) * width_ * canvas_view_.zoom,
                       centre.y + (m.pos.y - 0.5f) * height_ * canvas_view_.zoom);
  io.MouseDown[0] = m.down;
}

void Studio::frame(double now_s, double dt_s) {
  if (start_s_ < 0) start_s_ = now_s;
  ++frame_count_;
  ui::hud_record_ui_frame(hud_, dt_s * 1000.0);
  const bool headless = replay_ || options_.frames > 0;

  if (!info_ && worker_->state() == GenerationWorker::State::Ready) on_model_ready();
  if (worker_->state() == GenerationWorker::State::Failed && headless && !exit_code_) {
    std::fprintf(stderr, "sprint-studio: %s\n", worker_->load_error().c_str());
    exit_code_ = 1;
  }
  poll_results(now_s);

  bool final = false;
  if (replay_ && info_) {
    ReplayPlayer::Target t{history_, controls_, width_, height_, [this] { return input_shown(); },
                           [this](const std::string& suffix) {
                             SPRINT_CHECK(!options_.save_output.empty(), "replay event save_output needs --save-output");
                             save_output_png(with_suffix(options_.save_output, suffix));
                           }};
    try {
      replay_->advance(dt_s, t);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sprint-studio: replay: %s\n", e.what());
      exit_code_ = 1;
    }
    final |= t.pen_up;
  }
  handle_shortcuts();
  refresh_canvas();  // replay edits show this frame

  ui::CanvasEvents events;
  draw_layout(events);
  final |= events.pen_up;
  refresh_canvas();  // mouse edits
  submit_if_changed(final);

  if (finishing_ || exit_code_) return;
  if (options_.frames > 0 && frame_count_ >= static_cast<uint64_t>(options_.frames)) finishing_ = true;
  if (replay_ && options_.exit_after_replay && replay_->done() && input_shown()) finishing_ = true;
  if (headless && now_s - start_s_ > options_.timeout_s) {
    std::fprintf(stderr, "sprint-studio: timed out after %.0f s (replay at event %zu of %zu)\n", options_.timeout_s,
                 replay_ ? replay_->position() : 0, replay_ ? replay_->size() : 0);
    exit_code_ = 2;
  }
}

void Studio::after_render(int framebuffer_w, int framebuffer_h) {
  if (!finishing_ || exit_code_) return;
  try {
    if (!options_.screenshot.empty()) take_screenshot(framebuffer_w, framebuffer_h);
    if (!options_.save_output.empty()) save_output_png(options_.save_output);
    exit_code_ = (replay_ && errors_ > 0) ? 3 : 0;
    std::fprintf(stderr,
                 "sprint-studio: %llu frames (%llu dropped, %llu skipped); last frame %.1f ms: text %.1f, scribble %.1f, "
                 "condition %.1f, transformer %.1f, decode %.1f; %.1f frames/s\n",
                 static_cast<unsigned long long>(hud_.frames), static_cast<unsigned long long>(hud_.dropped),
                 static_cast<unsigned long long>(hud_.skipped), hud_.total_ms, hud_.text_encoder_ms, hud_.scribble_ms,
                 hud_.condition_ms, hud_.transformer_ms, hud_.decode_ms, hud_.gen_fps);
    if (errors_ > 0) std::fprintf(stderr, "sprint-studio: %llu generation error(s)\n", static_cast<unsigned long long>(errors_));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sprint-studio: %s\n", e.what());
    exit_code_ = 1;
  }
}

void Studio::save_output_png(const std::string& path) {
  SPRINT_CHECK(!output_rgb_.empty(), "no generated frame to save yet (", path, ")");
  auto pixels = torch::from_blob(output_rgb_.data(), {output_h_, output_w_, 3}, torch::kUInt8).clone();
  const LiveSettings& s = output_key_.settings;
  GenerationSettings saved;
  saved.prompt = s.prompt;
  saved.seed = s.seed;
  saved.steps = s.steps;
  saved.guidance = s.guidance;
  saved.width = output_w_;
  saved.height = output_h_;
  saved.model_path = fs::absolute(options_.model).lexically_normal().string();
  saved.software = "Sprint Studio sprint-studio";
  if (info_ && info_->has_controlnet) {
    saved.control_scale = s.control_scale;
    saved.thickness = s.thickness;
    // The sketch next to it, so `sprint-generate --from` can re-run the frame (exact when the canvas has not
    // changed since the frame was made, which holds at the end of a replay).
    const std::string sketch = with_suffix(path, "sketch");
    const auto& c = raster_.canvas();
    write_png(sketch, torch::from_blob(const_cast<uint8_t*>(c.pixels.data()), {c.height, c.width, 1}, torch::kUInt8));
    saved.sketch = fs::absolute(sketch).lexically_normal().string();
  }
  write_png(path, pixels, saved.to_png_text());
  std::fprintf(stderr, "sprint-studio: wrote %s\n", path.c_str());
}

void Studio::take_screenshot(int w, int h) {
  std::vector<uint8_t> rows(static_cast<size_t>(w) * h * 3);
  GLint old_alignment = 4;
  glGetIntegerv(GL_PACK_ALIGNMENT, &old_alignment);
  glPixelStorei(GL_PACK_ALIGNMENT, 1);
  glReadBuffer(GL_BACK);
  glReadPixels(0, 0, w, h, GL_RGB, GL_UNSIGNED_BYTE, rows.data());
  glPixelStorei(GL_PACK_ALIGNMENT, old_alignment);
  auto img = torch::empty({h, w, 3}, torch::kUInt8);
  const size_t stride = static_cast<size_t>(w) * 3;
  for (int y = 0; y < h; ++y)  // GL rows go bottom-up
    std::memcpy(img.data_ptr<uint8_t>() + y * stride, rows.data() + (h - 1 - y) * stride, stride);
  write_png(options_.screenshot, img, {{"Software", "Sprint Studio sprint-studio"}});
  std::fprintf(stderr, "sprint-studio: wrote %s (%dx%d)\n", options_.screenshot.c_str(), w, h);
}

}  // namespace sprint
