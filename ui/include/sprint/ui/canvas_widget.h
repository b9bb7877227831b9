// The sketch canvas pane: shows the canvas texture at any zoom, turns mouse input into strokes in a
// StrokeHistory, pans and zooms. State lives in the caller's structs; the function keeps none.
//
//   left drag            draw (brush or eraser)
//   right / middle drag  pan;  wheel: zoom about the cursor;  double right-click: fit
#pragma once

#include <imgui.h>

#include "sprint/ui/strokes.h"

namespace sprint::ui {

struct CanvasView {
  float zoom = 1.0f;          // screen pixels per canvas pixel
  ImVec2 pan{0, 0};           // offset of the canvas centre from the pane centre, screen pixels
  bool fit_pending = true;    // fit the canvas into the pane on the next frame
  bool mouse_stroke = false;  // the active stroke is the mouse's (a replay may draw one too)
};

struct BrushSettings {
  float radius = 4.0f;  // canvas pixels
  bool eraser = false;
};

struct CanvasEvents {
  bool pen_down = false;  // a stroke started this frame
  bool pen_moved = false; // the active stroke grew
  bool pen_up = false;    // a stroke was committed this frame
  bool hovered = false;
};

// Fills `size` (ImGui's available region when zero). `texture` shows the canvas (canvas_w x canvas_h); while it is
// 0 the pane shows `placeholder` and takes no input. Must be called between ImGui::NewFrame and ImGui::Render.
CanvasEvents draw_canvas(const char* id, CanvasView& view, StrokeHistory& history, const BrushSettings& brush,
                         ImTextureID texture, int canvas_w, int canvas_h, ImVec2 size = ImVec2(0, 0),
                         const char* placeholder = "loading model...");

}  // namespace sprint::ui
