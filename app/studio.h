// Sprint Studio: the live sketch-to-image window's logic, between the GLFW main loop (studio_main.cpp) and the
// widgets (ui/). Owns the canvas model, the generation worker, the GL textures and the replay player.
// Every per-frame decision lives here; the UI thread never waits on the model.
#pragma once

#include <imgui.h>

#include <memory>
#include <optional>
#include <random>
#include <string>

#include "generation_worker.h"
#include "replay.h"
#include "sprint/ui/canvas_widget.h"
#include "sprint/ui/controls_panel.h"
#include "sprint/ui/display_pass.h"
#include "sprint/ui/gl_texture.h"
#include "sprint/ui/image_view.h"
#include "sprint/ui/strokes.h"

namespace sprint {

struct StudioOptions {
  std::string model;
  std::string device = "auto";
  std::string size;            // WIDTHxHEIGHT; empty = the model's default size
  std::string shaders;         // folder with display.vert / display.frag
  std::string prompt = "a cozy cabin in a snowy forest, warm light, detailed illustration";
  uint64_t seed = 0;
  std::string replay;          // events.json
  std::string screenshot;      // PNG of the window at the end
  std::string save_output;     // PNG of the last generated frame at the end (with settings as text chunks)
  std::string output_dir = ".";  // where the "Save output PNG" button writes
  int frames = 0;              // > 0: exit after this many UI frames
  bool exit_after_replay = false;
  double timeout_s = 300;      // replay/frames runs fail after this long
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

 private:
  void on_model_ready();
  void poll_results(double now_s);
  void submit_if_changed(bool final);
  LiveSettings live_settings() const;
  bool input_shown() const;  // the frame for the current input is on screen (and nothing is pending)
  void handle_shortcuts();
  void refresh_canvas();  // raster + canvas texture + display pass, when something changed
  void draw_layout(ui::CanvasEvents& events);
  void save_output_png(const std::string& path);
  void take_screenshot(int w, int h);
  std::string status_line() const;

  StudioOptions options_;
  std::unique_ptr<GenerationWorker> worker_;
  std::optional<ModelInfo> info_;
  int width_ = 0, height_ = 0;  // canvas = generation size

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

  // Last shown frame.
  std::vector<uint8_t> output_rgb_;
  int output_w_ = 0, output_h_ = 0;
  LiveKey output_key_;

  // GL.
  bool gl_ready_ = false;
  ui::GlTexture canvas_tex_, condition_tex_, output_tex_;
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
