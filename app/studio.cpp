#include "studio.h"

#include <epoxy/gl.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <filesystem>

#include "sprint/app/canvas_size.h"
#include "sprint/error.h"
#include "sprint/hed.h"
#include "sprint/image_io.h"
#include "sprint/generation_settings.h"

namespace fs = std::filesystem;

namespace sprint {

namespace {

constexpr float kPanelWidth = 310.0f;     // controls column, pixels at UI scale 1
constexpr uint64_t kSeedRange = 1u << 31;  // "Random" draws seeds below this so they stay easy to type

constexpr float kThumbPx = 72.0f;          // history thumbnails, longer side, at UI scale 1

// out.png + "before" -> out.before.png
std::string with_suffix(const std::string& path, const std::string& suffix) {
  fs::path p(path);
  return (p.parent_path() / (p.stem().string() + "." + suffix + p.extension().string())).string();
}

// "%.1f"
std::string fixed1(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

PipelineOptions pipeline_options(const StudioOptions& o) {
  PipelineOptions po;
  po.device = o.device;
  return po;
}

}  // namespace

Studio::Studio(StudioOptions options, std::function<void()> wake)
    : options_(std::move(options)),
      live_(options_.settings.model, pipeline_options(options_), options_.pacing, std::move(wake)),
      frames_(static_cast<size_t>(std::max(1, options_.history_size))),
      import_(options_.hed),
      headless_(options_) {
  controls_.settings = options_.settings;
  controls_.seed_locked = options_.seed_locked;
  controls_.show_condition = options_.show_condition;
  recent_files_ = options_.recent_files;
  width_ = options_.settings.size.width;
  height_ = options_.settings.size.height;
  if (!options_.import_path.empty()) request_import(options_.import_path, parse_import_mode(options_.import_mode));
  controls_.adaptive_steps = options_.pacing.enabled;
}

double Studio::mono_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - created_).count();
}

void Studio::init_gl() {
  ui::create_display_pass(display_, options_.shaders);
  canvas_tex_.nearest = true;
  condition_tex_.nearest = true;
  gl_ready_ = true;
}

void Studio::shutdown_gl() {
  if (!gl_ready_) return;
  if (interop_frames_ > 0)
    std::fprintf(stderr, "sprint-studio: %lld frames went into the texture through CUDA-GL interop\n",
                 static_cast<long long>(interop_frames_));
  interop_.release();
  ui::destroy_texture(canvas_tex_);
  ui::destroy_texture(condition_tex_);
  ui::destroy_texture(output_tex_);
  for (auto& e : frames_.entries()) ui::destroy_texture(e.thumb);
  ui::destroy_display_pass(display_);
  gl_ready_ = false;
}

void Studio::on_model_ready() {
  info_ = live_.worker().info();
  if (width_ == 0) {
    width_ = info_->default_width;
    height_ = info_->default_height;
  }
  // The sketch canvas has the size the model's ControlNet was trained with (sprint_pipeline.json "sketch_canvas"),
  // scaled to the generation aspect; without it, the generation size.
  controls_.settings.size = {width_, height_};
  std::tie(canvas_w_, canvas_h_) = sketch_canvas_size(info_->sketch_canvas, width_, height_);
  raster_.resize(canvas_w_, canvas_h_);
  // The remembered brush, within the panel's range (0.5-64 canvas pixels), else the canvas's default.
  controls_.brush.radius = options_.brush_radius > 0 ? std::clamp(options_.brush_radius, 0.5f, 64.0f)
                                                     : default_brush_radius(canvas_w_, canvas_h_);
  canvas_view_.fit_pending = true;
  std::fprintf(stderr, "sprint-studio: %s; model %s loaded in %.0f ms; generation %dx%d, sketch canvas %dx%d%s\n",
               info_->runtime.c_str(), info_->model_dir.c_str(), info_->load_ms, width_, height_, canvas_w_, canvas_h_,
               info_->has_controlnet ? "" : " (no controlnet/: text only)");
  // CUDA-GL interop: probe once on a CUDA device (one message when it is unavailable; the CPU copy is used then).
  if (gl_ready_ && info_->device.rfind("cuda", 0) == 0) {
    try {
      const auto probe = torch::zeros({height_, width_, 3}, torch::TensorOptions().dtype(torch::kUInt8).device(info_->device));
      if (interop_.upload(output_tex_, probe)) std::fprintf(stderr, "sprint-studio: CUDA-GL interop ready\n");
    } catch (const std::exception& e) {
      std::fprintf(stderr, "sprint-studio: CUDA-GL interop unavailable (%s); frames are copied through the CPU\n", message_of(e).c_str());
    }
  }
  if (const std::string notice = import_.start_pending(*import_canvas()); !notice.empty()) {
    notice_ = notice;
    import_error_.clear();
  }
}

LiveKey Studio::user_key() const {
  return LiveKey{info_ && info_->has_controlnet ? history_.revision() : 0, controls_.settings};
}

bool Studio::input_shown() const {
  if (!info_ || history_.drawing() || importing()) return false;
  return live_.shown(user_key());
}

bool Studio::needs_fast_loop() const {
  const GenerationWorker& w = live_.worker();
  return w.state() == GenerationWorker::State::Loading || !w.idle() || w.has_result() || history_.drawing() ||
         headless_.busy() || importing() || (info_ && live_.pending(user_key()));
}

// ---- Import -------------------------------------------------------------------------------------------------------

std::optional<ImportController::Canvas> Studio::import_canvas() const {
  if (!info_) return std::nullopt;  // the canvas size is known once the model is loaded
  return ImportController::Canvas{canvas_w_, canvas_h_, controls_.brush.radius};
}

void Studio::request_import(const std::string& path, ImportMode mode) {
  remember_recent(recent_files_, std::filesystem::absolute(path).lexically_normal().string());
  const bool was_running = import_.running();
  const std::string notice = import_.request(path, mode, import_canvas());
  if (notice.empty()) return;
  notice_ = notice;
  if (!was_running && import_.running()) import_error_.clear();
}

void Studio::poll_import() {
  if (history_.drawing()) return;  // applied between strokes, never under the pen
  auto r = import_.poll();
  if (!r) return;
  notice_ = r->notice;
  if (!r->sketch) {
    import_error_ = r->error;
    return;
  }
  history_.import_picture(std::make_shared<const ui::Canvas>(std::move(r->sketch->canvas)));
  force_final_ = true;
}

void Studio::poll_results(double now_s) {
  auto r = live_.poll();
  const auto stats = live_.worker().stats();
  hud_.frames = stats.finished;
  hud_.dropped = stats.dropped;
  hud_.skipped = stats.skipped;
  if (!r) return;
  if (!r->error.empty()) {
    last_error_ = "generation failed: " + r->error;
    std::fprintf(stderr, "sprint-studio: %s\n", last_error_.c_str());
    return;
  }
  last_error_.clear();
  ShownFrame f;
  f.rgb = std::move(r->rgb);
  f.width = r->width;
  f.height = r->height;
  f.key = r->key;
  f.canvas = r->canvas;
  f.canvas_width = r->canvas_width;
  f.canvas_height = r->canvas_height;
  f.final = r->final;
  show_frame(f, r->rgb_device);
  output_in_history_ = false;
  if (gl_ready_ && !r->condition.empty()) {
    ui::upload_image(condition_tex_, r->condition.data(), r->canvas_width, r->canvas_height, 1);
    display_dirty_ = true;
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

void Studio::show_frame(const ShownFrame& f, const torch::Tensor& rgb_device) {
  output_ = f;
  last_frame_final_ = f.final;
  if (gl_ready_) {
    // A CUDA frame goes GPU to GPU (interop); a CPU frame, a restored one, or a failed interop uses the CPU copy.
    const auto t0 = std::chrono::steady_clock::now();
    if (rgb_device.defined() && interop_.upload(output_tex_, rgb_device)) {
      hud_.upload_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      ++interop_frames_;
    } else {
      hud_.upload_ms = ui::upload_image(output_tex_, output_.rgb.data(), output_.width, output_.height, 3);
    }
  }
  displayed_key_ = f.key;
}

void Studio::submit_if_changed(bool final, double now_s) {
  if (!info_ || live_.worker().state() != GenerationWorker::State::Ready) return;
  if (final && !controls_.seed_locked) controls_.settings.seed = rng_() % kSeedRange;
  LiveSession::Input in;
  in.key = user_key();  // without a ControlNet the canvas does not reach the model: strokes must not cost a frame
  in.final = final;
  in.pen_down = history_.drawing();
  in.adaptive = controls_.adaptive_steps;
  in.canvas_revision = history_.revision();
  in.canvas = &raster_.canvas().pixels;
  in.canvas_width = canvas_w_;
  in.canvas_height = canvas_h_;
  hud_.draft_steps = live_.submit(in, now_s);
}

// ---- History strip ------------------------------------------------------------------------------------------------

void Studio::update_history(double now_s) {
  // A frame joins the history when it reached final quality for the current input: the pen-up frame, or the frame
  // shown once the input has paused (pause_s without a change). Drafts never do.
  if (output_.rgb.empty() || output_in_history_ || history_.drawing() || !info_) return;
  if (!(output_.key == user_key())) return;
  if (!output_.final && now_s - live_.last_input_s() < options_.pacing.pause_s) return;
  output_in_history_ = true;
  std::vector<FrameHistory::Entry> dropped;
  FrameHistory::Entry* e = frames_.add(output_, dropped);
  if (e && gl_ready_) ui::upload_image(e->thumb, e->frame.rgb.data(), e->frame.width, e->frame.height, 3);
  for (auto& d : dropped) ui::destroy_texture(d.thumb);
}

void Studio::restore_history(int index) {
  SPRINT_CHECK(index >= 0, "there is no history frame ", index);
  const ShownFrame f = frames_.select(static_cast<size_t>(index));
  const GenerationSettings& s = f.key.settings;
  controls_.settings = s;
  show_frame(f);
  output_in_history_ = true;
  // Same canvas: the frame is the one the restored settings give, so there is nothing to generate.
  live_.frame_restored(f.key, user_key());
  notice_ = str("restored seed ", s.seed, ", ", s.steps, " steps from the history",
                f.key == user_key() ? "" : " (the canvas has changed since: regenerating)");
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
  // [ and ] (GLFW_KEY_LEFT_BRACKET, GLFW_KEY_RIGHT_BRACKET): the brush a quarter smaller or larger, within the
  // panel's range; held down, they repeat.
  if (!io.KeyCtrl && ImGui::IsKeyPressed(91, true))
    controls_.brush.radius = std::max(0.5f, controls_.brush.radius / 1.25f);
  if (!io.KeyCtrl && ImGui::IsKeyPressed(93, true))
    controls_.brush.radius = std::min(64.0f, controls_.brush.radius * 1.25f);
  // Ctrl+S saves the output (with its settings and sketch) into the output folder; Ctrl+O opens File > Import.
  if (io.KeyCtrl && !io.KeyShift && ImGui::IsKeyPressed('S', false) && !output_.rgb.empty())
    save_frame_from_ui(output_, output_path(output_, str(hud_.frames)));
  if (io.KeyCtrl && ImGui::IsKeyPressed('O', false) && info_ && !importing()) import_requested_ = true;
}

std::string Studio::window_title() const {
  const std::string model = std::filesystem::path(options_.settings.model).filename().string();
  const bool saved = saved_revision_ && *saved_revision_ == history_.revision();
  return str("Sprint Studio - ", model.empty() ? options_.settings.model : model,
             history_.visible().empty() ? "" : saved ? " - sketch saved" : " - sketch not saved *");
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
  switch (live_.worker().state()) {
    case GenerationWorker::State::Loading: state = "loading " + options_.settings.model; break;
    case GenerationWorker::State::Failed: state = "model failed to load"; break;
    case GenerationWorker::State::Ready: state = live_.worker().idle() ? "ready" : "generating"; break;
  }
  const std::string size = canvas_w_ == width_ && canvas_h_ == height_
                               ? str(width_, "x", height_)
                               : str(width_, "x", height_, " (sketch ", canvas_w_, "x", canvas_h_, ")");
  return str(notice_.empty() ? "" : notice_ + "   |   ", state, "   |   ", info_ ? info_->device : std::string("-"),
             "   |   ", size, "   |   ", history_.visible().size(),
             " strokes   |   Ctrl+Z undo   Ctrl+Shift+Z redo   B/E brush/eraser   [ ] brush size   wheel zoom   "
             "right-drag pan   F fit   Ctrl+S save   Ctrl+O or drop a picture (PNG, JPEG, WebP, BMP, TIFF) to "
             "import");
}

void Studio::draw_menu() {
  bool open_import = import_requested_;
  import_requested_ = false;
  if (ImGui::BeginMenuBar()) {
    if (ImGui::BeginMenu("File")) {
      if (ImGui::MenuItem("Import image...", "Ctrl+O", false, info_.has_value() && !importing())) open_import = true;
      if (ImGui::MenuItem("Save output PNG", "Ctrl+S", false, !output_.rgb.empty()))
        save_frame_from_ui(output_, output_path(output_, str(hud_.frames)));
      ImGui::EndMenu();
    }
    ImGui::TextDisabled("   live sketch-to-image  |  SANA-Sprint + ControlNet");
    ImGui::EndMenuBar();
  }
  if (open_import) ImGui::OpenPopup("Import image");
  if (ImGui::BeginPopupModal("Import image", nullptr, ImGuiWindowFlags_AlwaysAutoResize)) {
    ImGui::TextUnformatted("A picture (PNG, JPEG, WebP, BMP, TIFF) becomes the starting sketch (one undoable step); "
                           "you can keep drawing over it.");
    ImGui::PushItemWidth(520);
    const bool go = ui::draw_import_row(controls_, importing());
    ImGui::PopItemWidth();
    if (go) {
      request_import(controls_.import_path, static_cast<ImportMode>(controls_.import_mode));
      ImGui::CloseCurrentPopup();
    }
    if (ImGui::Button("Cancel")) ImGui::CloseCurrentPopup();
    ImGui::EndPopup();
  }
}

void Studio::draw_layout(ui::CanvasEvents& events) {
  const ImGuiViewport* vp = ImGui::GetMainViewport();
  ImGui::SetNextWindowPos(vp->WorkPos);
  ImGui::SetNextWindowSize(vp->WorkSize);
  ImGui::PushStyleVar(ImGuiStyleVar_WindowRounding, 0.0f);
  ImGui::Begin("Sprint Studio", nullptr,
               ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove | ImGuiWindowFlags_NoSavedSettings |
                   ImGuiWindowFlags_NoBringToFrontOnFocus | ImGuiWindowFlags_MenuBar |
                   ImGuiWindowFlags_NoBackground);  // the clear colour is the background (studio_main.cpp)
  ImGui::PopStyleVar();
  draw_menu();

  const float status_h = ImGui::GetFrameHeightWithSpacing();

  ImGui::BeginChild("controls", ImVec2(kPanelWidth * ui_scale_, -status_h), true);
  const std::string device = info_ ? info_->runtime : std::string("loading...");
  const std::string model = fs::path(options_.settings.model).lexically_normal().filename().string();
  ui::ControlsInfo ci;
  ci.device = device.c_str();
  ci.model = model.c_str();
  ci.width = width_;
  ci.height = height_;
  ci.canvas_width = canvas_w_;
  ci.canvas_height = canvas_h_;
  ci.has_controlnet = !info_ || info_->has_controlnet;
  ci.can_undo = history_.can_undo();
  ci.can_redo = history_.can_redo();
  ci.importing = importing() || !info_;
  const std::string error = live_.worker().state() == GenerationWorker::State::Failed ? live_.worker().load_error()
                            : !last_error_.empty()                              ? last_error_
                                                                                : import_error_;
  ci.error = error.c_str();
  const ui::ControlsActions a = ui::draw_controls_panel(controls_, ci);
  if (a.undo) history_.undo();
  if (a.redo) history_.redo();
  if (a.clear) history_.clear();
  if (a.randomise_seed) controls_.settings.seed = rng_() % kSeedRange;
  if (a.import_image) request_import(controls_.import_path, static_cast<ImportMode>(controls_.import_mode));
  if (a.save_output) save_frame_from_ui(output_, output_path(output_, str(hud_.frames)));
  ImGui::EndChild();
  ImGui::SameLine();

  // No background of its own: the views fill theirs, and a software GL pays for every pixel filled twice.
  ImGui::BeginChild("panes", ImVec2(0, -status_h), false, ImGuiWindowFlags_NoBackground);
  const float spacing = ImGui::GetStyle().ItemSpacing.x;
  const float pane_w = (ImGui::GetContentRegionAvail().x - spacing) / 2;
  ImGui::Text("Sketch%s", controls_.show_condition ? "  (condition map the model sees)" : "");
  ImGui::SameLine(pane_w + spacing);
  ImGui::Text("Output%s", output_.rgb.empty() ? "" : last_frame_final_ ? "  (final)" : "  (live)");
  const float history_h = ui::history_strip_height(kThumbPx * ui_scale_);
  const float pane_h = ImGui::GetContentRegionAvail().y - history_h - ImGui::GetStyle().ItemSpacing.y;
  // The canvas pane leaves the same strip at the bottom as the output pane's HUD, so both pictures share a row.
  if (mono_font_) ImGui::PushFont(mono_font_);
  const float strip_h = ui::hud_height() + 8;
  if (mono_font_) ImGui::PopFont();
  ImGui::BeginGroup();
  canvas_pane_pos_ = ImGui::GetCursorScreenPos();
  canvas_pane_size_ = ImVec2(pane_w, pane_h - strip_h);
  events = ui::draw_canvas("##canvas", canvas_view_, history_, controls_.brush,
                           display_.target.id ? ui::imgui_texture_id(display_.target) : nullptr, canvas_w_, canvas_h_,
                           ImVec2(pane_w, pane_h - strip_h),
                           live_.worker().state() == GenerationWorker::State::Failed ? "the model failed to load (see the panel)"
                                                                               : "loading model...");
  ImGui::TextDisabled("%d x %d   zoom %.0f%%   %s %.1f px   %zu strokes%s", canvas_w_, canvas_h_, canvas_view_.zoom * 100,
                      controls_.brush.eraser ? "eraser" : "brush", controls_.brush.radius, history_.visible().size(),
                      history_.drawing() ? "   drawing" : "");
  ImGui::EndGroup();
  ImGui::SameLine();
  ui::ImageViewOverlay overlay;
  overlay.busy = !live_.worker().idle();
  const std::string caption =
      output_.rgb.empty() ? std::string()
                          : str("seed ", output_.key.settings.seed, "   steps ", output_.key.settings.steps);
  overlay.caption = caption.c_str();
  if (mono_font_) ImGui::PushFont(mono_font_);
  ui::draw_image_view("##output", output_tex_.id ? ui::imgui_texture_id(output_tex_) : nullptr, output_.width,
                      output_.height, overlay, hud_, ImVec2(pane_w, pane_h));
  if (mono_font_) ImGui::PopFont();

  std::vector<ui::HistoryThumb> thumbs;
  thumbs.reserve(frames_.size());
  for (const auto& e : frames_.entries()) {
    const GenerationSettings& s = e.frame.key.settings;
    thumbs.push_back({ui::imgui_texture_id(e.thumb), e.frame.width, e.frame.height,
                      str(s.prompt, "\nseed ", s.seed, "   steps ", s.steps, "   guidance ", s.guidance, "   control ",
                          s.control_scale)});
  }
  const int selected = frames_.selected();
  const ui::HistoryStripActions ha = ui::draw_history_strip("##history", thumbs, selected, kThumbPx * ui_scale_,
                                                             ImVec2(0, history_h));
  if (ha.clicked >= 0) restore_history(ha.clicked);
  if (ha.export_selected && selected >= 0 && selected < static_cast<int>(frames_.size())) {
    const ShownFrame& f = frames_.at(static_cast<size_t>(selected)).frame;
    save_frame_from_ui(f, output_path(f, str("history", selected)));
  }
  ImGui::EndChild();

  ImGui::TextDisabled("%s", status_line().c_str());
  ImGui::End();
}

void Studio::inject_input() {
  const ReplayPlayer::Mouse* mouse = headless_.mouse();
  if (!mouse || canvas_w_ <= 0) return;
  // The canvas widget's mapping (canvas_widget.cpp), with last frame's pane and view.
  const auto& m = *mouse;
  const ImVec2 centre(canvas_pane_pos_.x + canvas_pane_size_.x / 2 + canvas_view_.pan.x,
                      canvas_pane_pos_.y + canvas_pane_size_.y / 2 + canvas_view_.pan.y);
  ImGuiIO& io = ImGui::GetIO();
  io.MousePos = ImVec2(centre.x + (m.pos.x - 0.5f) * canvas_w_ * canvas_view_.zoom,
                       centre.y + (m.pos.y - 0.5f) * canvas_h_ * canvas_view_.zoom);
  io.MouseDown[0] = m.down;
}

ReplayPlayer::Target Studio::replay_target() {
  ReplayPlayer::Target t{history_, controls_, canvas_w_, canvas_h_, [this] { return input_shown(); },
                         [this](const std::string& suffix) {
                           SPRINT_CHECK(!options_.save_output.empty(), "replay event save_output needs --save-output");
                           save_frame(output_, with_suffix(options_.save_output, suffix));
                         }};
  t.import_image = [this](const std::string& path, const std::string& mode) {
    if (!replay_import_started_) {
      request_import(path, parse_import_mode(mode));
      replay_import_started_ = true;
      return false;
    }
    if (importing()) return false;
    replay_import_started_ = false;
    return true;
  };
  t.history_size = [this] { return frames_.size(); };
  t.select_history = [this](size_t i) { restore_history(static_cast<int>(i)); };
  t.export_history = [this](size_t i, const std::string& suffix) {
    SPRINT_CHECK(!options_.save_output.empty(), "replay event export_history needs --save-output");
    save_frame(frames_.at(i).frame, with_suffix(options_.save_output, suffix));
  };
  return t;
}

void Studio::frame(double now_s, double dt_s) {
  headless_.begin_frame(now_s);
  ++frame_count_;
  const double t_input = mono_s();  // this frame's input events arrived just before it
  ui::hud_record_ui_frame(hud_, dt_s * 1000.0);

  if (!info_ && live_.worker().state() == GenerationWorker::State::Ready) {
    on_model_ready();
  } else if (info_ && frame_count_ > 1) {  // UI frame times once the model is up (loading frames are not the app's)
    ui_frame_ms_.push(dt_s * 1000.0);
    hud_ui_ms_.push(dt_s * 1000.0);
    hud_.ui_p50_ms = hud_ui_ms_.percentile(50);
    hud_.ui_p99_ms = hud_ui_ms_.percentile(99);
  }
  if (live_.worker().state() == GenerationWorker::State::Failed) headless_.model_failed(live_.worker().load_error());
  poll_results(now_s);
  // Here, before this frame's input can change the settings: a final frame that just arrived belongs to the input it
  // was made for (a replay can save it and change the seed within this same frame). A frame that joins on a pause
  // joins at the start of the first UI frame after the pause.
  update_history(t_input);
  poll_import();

  bool final = force_final_;
  force_final_ = false;
  if (headless_.replaying() && info_) {
    ReplayPlayer::Target t = replay_target();
    final |= headless_.play(dt_s, t);
  }
  handle_shortcuts();
  refresh_canvas();  // replay edits show this frame

  ui::CanvasEvents events;
  draw_layout(events);
  final |= events.pen_up;
  refresh_canvas();  // mouse edits
  submit_if_changed(final, t_input);
  hud_.photon_p50_ms = hud_photon_ms_.percentile(50);
  hud_.photon_p99_ms = hud_photon_ms_.percentile(99);

  headless_.end_frame(now_s, ui_frame_ms_.size(), input_shown());
}

void Studio::after_render(int framebuffer_w, int framebuffer_h) {
  // The frame uploaded this UI frame is in the back buffer now; it is on screen with this swap.
  if (displayed_key_) {
    const size_t done = live_.displayed(*displayed_key_, mono_s());
    const auto& all = live_.input_to_photon_ms().samples();
    for (size_t i = all.size() - std::min(done, all.size()); i < all.size(); ++i) hud_photon_ms_.push(all[i]);
    displayed_key_.reset();
  }
  if (!headless_.finishing()) return;
  const std::string summary =
      str("sprint-studio: ", hud_.frames, " frames (", hud_.dropped, " dropped, ", hud_.skipped, " skipped); last frame ",
          fixed1(hud_.total_ms), " ms: text ", fixed1(hud_.text_encoder_ms), ", scribble ", fixed1(hud_.scribble_ms),
          ", condition ", fixed1(hud_.condition_ms), ", transformer ", fixed1(hud_.transformer_ms), ", decode ",
          fixed1(hud_.decode_ms), "; ", fixed1(hud_.gen_fps), " frames/s");
  headless_.finish([&](const std::string& path) { take_screenshot(path, framebuffer_w, framebuffer_h); },
                   [&](const std::string& path) { save_frame(output_, path); }, summary, live_.errors());
}

void Studio::print_report() const {
  const SampleWindow& gen = live_.generation_ms();
  const SampleWindow& photon = live_.input_to_photon_ms();
  std::printf("%s\n", frame_report(ui_frame_ms_, photon).c_str());
  std::printf("generated: %zu frames  p50 %.1f ms  p99 %.1f ms  (%llu requests at full steps, %llu drafts)  "
              "input-to-photon p99 %.1f ms over %zu inputs\n",
              gen.size(), gen.percentile(50), gen.percentile(99), static_cast<unsigned long long>(live_.refined()),
              static_cast<unsigned long long>(live_.drafts()), photon.percentile(99), photon.size());
  std::fflush(stdout);
}

std::string Studio::output_path(const ShownFrame& f, const std::string& what) const {
  return (fs::path(options_.output_dir) / str("sprint-", f.key.settings.seed, "-", what, ".png")).string();
}

void Studio::save_frame_from_ui(const ShownFrame& f, const std::string& path) {
  try {
    save_frame(f, path);
    notice_ = "wrote " + path;
  } catch (const std::exception& e) {
    notice_ = str("export failed: ", message_of(e));
  }
}

void Studio::save_frame(const ShownFrame& f, const std::string& path) {
  SPRINT_CHECK(!f.rgb.empty(), "no generated frame to save yet (", path, ")");
  auto pixels = torch::from_blob(const_cast<uint8_t*>(f.rgb.data()), {f.height, f.width, 3}, torch::kUInt8).clone();
  SettingsRecord saved;
  saved.settings = f.key.settings;
  saved.settings.model = options_.settings.model;  // recorded by name (to_png_text)
  saved.software = "Sprint Studio sprint-studio";
  if (info_ && info_->has_controlnet && f.canvas) {
    saved.controlled = true;
    // The sketch this frame was made from (at the sketch canvas size), so `sprint-generate --from` re-runs the frame
    // exactly whatever was drawn since.
    const std::string sketch = with_suffix(path, "sketch");
    write_png(sketch, torch::from_blob(const_cast<uint8_t*>(f.canvas->data()), {f.canvas_height, f.canvas_width, 1},
                                       torch::kUInt8));
    saved.sketch = sketch;  // recorded by name: sprint-generate --from finds it next to the PNG
  }
  write_png(path, pixels, to_png_text(saved));
  remember_recent(recent_files_, std::filesystem::absolute(path).lexically_normal().string());
  if (f.canvas) saved_revision_ = f.key.canvas_revision;
  std::fprintf(stderr, "sprint-studio: wrote %s\n", path.c_str());
}

UserState Studio::remembered(UserState base) const {
  base.settings = controls_.settings;
  base.seed_locked = controls_.seed_locked;
  base.show_condition = controls_.show_condition;
  if (info_) base.brush_radius = controls_.brush.radius;  // before the model loads, the radius is not the user's yet
  remember_recent(base.recent_models, std::filesystem::absolute(options_.settings.model).lexically_normal().string());
  base.recent_files = recent_files_;
  return base;
}

void Studio::take_screenshot(const std::string& path, int w, int h) {
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
  write_png(path, img, {{"Software", "Sprint Studio sprint-studio"}});
  std::fprintf(stderr, "sprint-studio: wrote %s (%dx%d)\n", path.c_str(), w, h);
}

}  // namespace sprint
