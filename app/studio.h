// Sprint Studio: the live sketch-to-image window's logic, between the GLFW main loop (studio_main.cpp) and the
// widgets (ui/). Owns the canvas model, the generation worker, the GL textures and the replay player.
// Every per-frame decision lives here; the UI thread never waits on the model.
#pragma once

#include <imgui.h>

#include <chrono>
#include <deque>
#include <future>
#include <memory>
#include <optional>
#include <random>
#include <string>

#include "generation_worker.h"
#include "gl_interop.h"
#include "image_import.h"
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
};

class Studio {
 public:
  Studio(StudioOptions options, std::function<void()> wake);
  ~Studio();

  void init_gl();                      // needs the GL context; throws when shaders are missing or broken
  void shutdown_gl();
  void frame(double now_s, double dt_s);  // between ImGui::NewFrame() and ImGui::Render()
  void after_render(int framebuffer_w, int framebuffer_h);  // the frame is drawn, not yet swapped
  // Between the platform backend's NewFrame and ImGui::NewFrame: replaces the mouse with a replay's mouse_stroke.
  void inject_input();

  bool wants_exit() const { return exit_code_.has_value(); }
  int exit_code() const { return exit_code_.value_or(0); }
  bool needs_fast_loop() const;        // busy, drawing or replaying: poll instead of waiting for events

  void set_fonts(ImFont* mono) { mono_font_ = mono; }

  // Imports a PNG as the starting sketch (File > Import image, a file dropped on the window, --import). Runs off the
  // UI thread; the result replaces the canvas as one undoable step. Failures show in the status line; the drawing
  // is kept.
  void request_import(const std::string& path, ImportMode mode);
  // The one-line frame timing report (and a line with details), printed when the app exits.
  void print_report() const;

 private:
  // A generated frame as shown and kept: pixels, the key it was made for and the sketch it was made from.
  struct ShownFrame {
    std::vector<uint8_t> rgb;  // (height, width, 3)
    int width = 0, height = 0;
    LiveKey key;
    std::shared_ptr<const std::vector<uint8_t>> canvas;  // (canvas_height, canvas_width), null for text-only models
    int canvas_width = 0, canvas_height = 0;
    bool final = false;
  };
  struct HistoryEntry {
    ShownFrame frame;
    ui::GlTexture thumb;
  };
  struct ImportOutcome {
    std::optional<ImportedSketch> sketch;
    std::string error;
    double ms = 0;
  };

  void on_model_ready();
  void poll_results(double now_s);
  void poll_import();
  void start_import(const std::string& path, ImportMode mode);
  bool importing() const { return import_job_.valid() || !pending_import_.empty(); }
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
  void export_frame(const ShownFrame& f, const std::string& path);
  void save_output_png(const std::string& path) { export_frame(output_, path); }
  void take_screenshot(int w, int h);
  std::string status_line() const;
  double mono_s() const;  // seconds since the Studio was created (steady clock)

  StudioOptions options_;
  std::unique_ptr<GenerationWorker> worker_;
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

  // Live loop state.
  std::optional<LiveKey> submitted_key_;
  std::shared_ptr<const std::vector<uint8_t>> canvas_snapshot_;
  uint64_t snapshot_revision_ = ~0ull;
  bool last_frame_final_ = false;
  std::string last_error_;
  uint64_t errors_ = 0;

  // Last shown frame and the history strip (newest first).
  ShownFrame output_;
  bool output_in_history_ = false;
  std::deque<HistoryEntry> frames_;
  int selected_ = -1;
  std::string notice_;        // status-line message (import results, exports)
  std::string import_error_;  // last import failure, shown in the panel too

  // Import.
  std::future<ImportOutcome> import_job_;
  std::string import_source_;
  std::string pending_import_;  // requested before the model was ready
  ImportMode pending_import_mode_ = ImportMode::Auto;
  bool replay_import_started_ = false;
  bool force_final_ = false;  // submit the next request as final (after an import)
  std::shared_ptr<HEDImpl> hed_;  // loaded on the first photo import when --hed is given

  // Timing and pacing.
  std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
  SampleWindow ui_frame_ms_, gen_frame_ms_;
  SampleWindow hud_ui_ms_{240}, hud_photon_ms_{64};
  InputLatencyTracker<LiveKey> photon_;
  std::optional<LiveKey> displayed_key_;  // a frame uploaded this UI frame, on screen after the swap
  std::optional<LiveKey> last_user_key_;
  double last_input_s_ = -1e9;
  AdaptivePacer pacer_;
  uint64_t drafts_ = 0, refined_ = 0;

  // GL.
  bool gl_ready_ = false;
  ui::GlTexture canvas_tex_, condition_tex_, output_tex_;
  CudaGlInterop interop_;  // output frames that are on the GPU; one message and the CPU copy when unavailable
  int64_t interop_frames_ = 0;  // frames shown through interop (reported at exit)
  ui::DisplayPass display_;
  bool display_dirty_ = true;
  bool shown_condition_ = false;
  ImFont* mono_font_ = nullptr;

  // Replay / headless.
  std::unique_ptr<ReplayPlayer> replay_;
  bool finishing_ = false;  // the last frame is being drawn: screenshot and exit after it
  uint64_t frame_count_ = 0;
  double start_s_ = -1;
  std::optional<int> exit_code_;
};

}  // namespace sprint
