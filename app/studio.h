// Sprint Studio: the live sketch-to-image window, between the GLFW main loop (studio_main.cpp) and the widgets (ui/).
// It owns the canvas model, the GL textures, the layout and the replay player, and puts together the parts that do
// one job each: the live session (requests, results, pacing: live_session.h), the history strip's model
// (frame_history.h), the import jobs (import_controller.h) and, for replays and headless runs, the driver that plays
// them and decides the exit code (headless_driver.h). The UI thread never waits on the model.
#pragma once

#include <imgui.h>

#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "frame_history.h"
#include "generation_worker.h"
#include "gl_interop.h"
#include "headless_driver.h"
#include "image_import.h"
#include "import_controller.h"
#include "live_session.h"
#include "replay.h"
#include "sprint/app/frame_stats.h"
#include "sprint/app/pacing.h"
#include "sprint/ui/canvas_widget.h"
#include "sprint/ui/controls_panel.h"
#include "sprint/ui/display_pass.h"
#include "sprint/ui/gl_texture.h"
#include "sprint/ui/history_strip.h"
#include "sprint/ui/image_view.h"
#include "sprint/ui/strokes.h"
#include "user_state.h"

namespace sprint {

// The settings the app starts with where the command line does not say otherwise.
inline GenerationSettings studio_default_settings() {
  GenerationSettings s;
  s.prompt = "a cozy cabin in a snowy forest, warm light, detailed illustration";
  return s;
}

struct StudioOptions {
  // The initial settings (the controls panel edits them from there); settings.model is the model folder, an empty
  // settings.size the model's default size.
  GenerationSettings settings = studio_default_settings();
  std::string device = "auto";
  std::string shaders;         // folder with display.vert / display.frag
  std::string replay;          // events.json
  std::string screenshot;      // PNG of the window at the end
  std::string save_output;     // PNG of the last generated frame at the end (with settings as text chunks)
  std::string output_dir = ".";  // where the "Save output PNG" button writes
  int frames = 0;              // > 0: exit after this many UI frames
  bool exit_after_replay = false;
  double timeout_s = 300;      // replay/frames runs fail after this long
  std::string import_path;     // PNG imported as the starting sketch once the model is ready
  std::string import_mode = "auto";  // auto | sketch | picture | photo
  std::string hed;             // HED weights (safetensors) for importing photos; empty: OpenCV soft-edge fallback
  int history_size = 12;       // frames kept in the history strip
  int bench_frames = 0;        // > 0: draw scripted strokes (unless --replay) and exit after this many UI frames
  PacingOptions pacing;
  // Remembered from the last run (user_state.h).
  bool seed_locked = true;
  bool show_condition = false;
  float brush_radius = 0;                  // canvas pixels; 0: the model's default
  std::vector<std::string> recent_files;   // imports and saves, newest first
};

class Studio {
 public:
  Studio(StudioOptions options, std::function<void()> wake);

  void init_gl();                      // needs the GL context; throws when shaders are missing or broken
  void shutdown_gl();
  void frame(double now_s, double dt_s);  // between ImGui::NewFrame() and ImGui::Render()
  void after_render(int framebuffer_w, int framebuffer_h);  // the frame is drawn, not yet swapped
  // Between the platform backend's NewFrame and ImGui::NewFrame: replaces the mouse with a replay's mouse_stroke.
  void inject_input();

  bool wants_exit() const { return headless_.wants_exit(); }
  int exit_code() const { return headless_.exit_code(); }
  bool needs_fast_loop() const;        // busy, drawing or replaying: poll instead of waiting for events

  // The monospace font and the UI scale (high DPI: text, padding and the fixed widths of the layout grow with it).
  void set_fonts(ImFont* mono, float ui_scale) {
    mono_font_ = mono;
    ui_scale_ = ui_scale;
  }

  // Imports a PNG as the starting sketch (File > Import image, a file dropped on the window, --import). Runs off the
  // UI thread; the result replaces the canvas as one undoable step. Failures show in the status line; the drawing
  // is kept.
  void request_import(const std::string& path, ImportMode mode);
  // The one-line frame timing report (and a line with details), printed when the app exits.
  void print_report() const;
  // "Sprint Studio - <model> - sketch saved" (or "not saved *" once the sketch changed after the last save).
  std::string window_title() const;
  // `base` with what the user set in this run: the panel's settings, the brush, the model and the files used.
  UserState remembered(UserState base) const;

 private:
  void on_model_ready();
  void poll_results(double now_s);
  void poll_import();
  std::optional<ImportController::Canvas> import_canvas() const;  // nullopt until the model has loaded
  bool importing() const { return import_.busy(); }
  void submit_if_changed(bool final, double now_s);
  LiveKey user_key() const;  // the input as the user set it (canvas revision + settings with the user's steps)
  bool input_shown() const;  // the frame for the current input is on screen (and nothing is pending)
  void handle_shortcuts();
  void refresh_canvas();  // raster + canvas texture + display pass, when something changed
  void draw_layout(ui::CanvasEvents& events);
  void draw_menu();
  void update_history(double now_s);
  void restore_history(int index);
  // rgb_device: the frame's pixels on the GPU when it came from a CUDA model (uploaded through interop).
  void show_frame(const ShownFrame& f, const torch::Tensor& rgb_device = {});
  // Saving a frame, the one way: the PNG with its settings (and the sketch it was made from). save_frame throws;
  // save_frame_from_ui reports the outcome on the status line (the panel's and the menu's buttons, the history's
  // export); replay and headless runs let the error end the run.
  void save_frame(const ShownFrame& f, const std::string& path);
  void save_frame_from_ui(const ShownFrame& f, const std::string& path);
  std::string output_path(const ShownFrame& f, const std::string& what) const;  // <output-dir>/sprint-<seed>-<what>.png
  void take_screenshot(const std::string& path, int w, int h);
  ReplayPlayer::Target replay_target();  // what a replay's events act on
  std::string status_line() const;
  double mono_s() const;  // seconds since the Studio was created (steady clock)

  StudioOptions options_;
  LiveSession live_;
  std::optional<ModelInfo> info_;
  int width_ = 0, height_ = 0;              // generation size
  int canvas_w_ = 0, canvas_h_ = 0;         // sketch canvas (sketch_canvas_size; = generation size by default)

  ui::StrokeHistory history_;
  ui::CanvasRaster raster_;
  ui::ControlsState controls_;
  ui::CanvasView canvas_view_;
  ImVec2 canvas_pane_pos_{0, 0}, canvas_pane_size_{0, 0};  // last frame's canvas pane, for replayed mouse input
  ui::LatencyHud hud_;
  std::mt19937_64 rng_{std::random_device{}()};

  // Last shown frame and the history strip.
  bool last_frame_final_ = false;
  std::string last_error_;    // last generation failure, shown in the panel
  ShownFrame output_;
  bool output_in_history_ = false;
  FrameHistory frames_;
  std::string notice_;        // status-line message (import results, exports)
  std::string import_error_;  // last import failure, shown in the panel too
  std::vector<std::string> recent_files_;  // imports and saves, newest first (remembered at exit)
  std::optional<uint64_t> saved_revision_;  // the canvas revision of the last saved frame
  bool import_requested_ = false;           // Ctrl+O: open the import dialog on the next menu draw

  // Import.
  ImportController import_;
  bool replay_import_started_ = false;
  bool force_final_ = false;  // submit the next request as final (after an import)

  // Timing display.
  std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
  SampleWindow ui_frame_ms_;
  SampleWindow hud_ui_ms_{240}, hud_photon_ms_{64};
  std::optional<LiveKey> displayed_key_;  // a frame uploaded this UI frame, on screen after the swap

  // GL.
  bool gl_ready_ = false;
  ui::GlTexture canvas_tex_, condition_tex_, output_tex_;
  CudaGlInterop interop_;  // output frames that are on the GPU; one message and the CPU copy when unavailable
  int64_t interop_frames_ = 0;  // frames shown through interop (reported at exit)
  ui::DisplayPass display_;
  bool display_dirty_ = true;
  bool shown_condition_ = false;
  ImFont* mono_font_ = nullptr;
  float ui_scale_ = 1.0f;

  // Replay / headless.
  HeadlessDriver headless_;
  uint64_t frame_count_ = 0;
};

}  // namespace sprint
