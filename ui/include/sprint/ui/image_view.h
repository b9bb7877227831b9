// The output pane (the generated image, fitted) with a busy indicator and the latency HUD drawn over it.
#pragma once

#include <imgui.h>

#include <cstdint>

namespace sprint::ui {

// What the HUD shows. Stage times come from the last finished frame; rates are exponential moving averages.
struct LatencyHud {
  double tokenize_ms = 0, text_encoder_ms = 0, scribble_ms = 0, condition_ms = 0, transformer_ms = 0, decode_ms = 0;
  double total_ms = 0;       // inside the pipeline
  double upload_ms = 0;      // CPU -> GL texture
  bool prompt_cached = false, condition_cached = false;
  double gen_fps = 0;        // finished frames per second
  double frame_ms = 0;       // UI frame time
  double last_result_s = -1; // time of the last finished frame (ImGui time base), for the rate
  uint64_t frames = 0, dropped = 0, skipped = 0;
  // Frame timing over the recent frames (app: sprint/app/frame_stats.h).
  double ui_p50_ms = 0, ui_p99_ms = 0;          // UI frame time
  double photon_p50_ms = 0, photon_p99_ms = 0;  // input-to-photon latency
  int draft_steps = 0;                          // > 0: adaptive pacing draws drafts with this many steps
};

constexpr double kHudEmaAlpha = 0.15;  // weight of the newest sample in the moving averages

void hud_record_ui_frame(LatencyHud& hud, double frame_ms);
void hud_record_result(LatencyHud& hud, double now_s);  // call once per finished frame, after setting stage times

// Height of the HUD strip draw_image_view reserves under the picture (callers align other panes with it).
float hud_height();

struct ImageViewOverlay {
  bool busy = false;         // a job is pending or running
  const char* caption = "";  // shown top-left, e.g. "final" / "live"
  bool show_hud = true;
};

// Fills `size` (available region when zero). texture 0 shows a placeholder.
void draw_image_view(const char* id, ImTextureID texture, int width, int height, const ImageViewOverlay& overlay,
                     const LatencyHud& hud, ImVec2 size = ImVec2(0, 0));

}  // namespace sprint::ui
