#include "sprint/ui/canvas_widget.h"

#include "sprint/ui/picture_frame.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace sprint::ui {

namespace {

constexpr float kMinZoom = 0.05f, kMaxZoom = 64.0f;
constexpr float kWheelZoomStep = 1.15f;  // per wheel notch
constexpr float kFitMargin = 0.96f;      // leave a thin border around a fitted canvas

}  // namespace

CanvasEvents draw_canvas(const char* id, CanvasView& view, StrokeHistory& history, const BrushSettings& brush,
                         ImTextureID texture, int canvas_w, int canvas_h, ImVec2 size, const char* placeholder) {
  CanvasEvents ev;
  if (size.x <= 0 || size.y <= 0) size = ImGui::GetContentRegionAvail();
  size.x = std::max(size.x, 32.0f);
  size.y = std::max(size.y, 32.0f);
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const ImVec2 p1(p0.x + size.x, p0.y + size.y);
  ImDrawList* dl = ImGui::GetWindowDrawList();

  ImGui::InvisibleButton(id, size, ImGuiButtonFlags_MouseButtonLeft | ImGuiButtonFlags_MouseButtonRight |
                                       ImGuiButtonFlags_MouseButtonMiddle);
  if (!texture || canvas_w <= 0 || canvas_h <= 0) {
    dl->AddRectFilled(p0, p1, kPaneBackground);
    const ImVec2 ts = ImGui::CalcTextSize(placeholder, nullptr, false, size.x - 20);
    dl->AddText(ImGui::GetFont(), ImGui::GetFontSize(), ImVec2(p0.x + std::max(10.0f, (size.x - ts.x) / 2), p0.y + (size.y - ts.y) / 2),
                IM_COL32(200, 200, 200, 255), placeholder, nullptr, size.x - 20);
    return ev;
  }

  if (view.fit_pending) {
    view.zoom = std::clamp(kFitMargin * std::min(size.x / canvas_w, size.y / canvas_h), kMinZoom, kMaxZoom);
    view.pan = ImVec2(0, 0);
    view.fit_pending = false;
  }
  ImGuiIO& io = ImGui::GetIO();
  ev.hovered = ImGui::IsItemHovered();
  const ImVec2 centre(p0.x + size.x / 2 + view.pan.x, p0.y + size.y / 2 + view.pan.y);
  auto to_canvas = [&](ImVec2 s) {
    return StrokePoint{(s.x - centre.x) / view.zoom + canvas_w / 2.0f, (s.y - centre.y) / view.zoom + canvas_h / 2.0f};
  };

  // Zoom about the cursor: the canvas point under the mouse stays put.
  if (ev.hovered && io.MouseWheel != 0) {
    const float old_zoom = view.zoom;
    view.zoom = std::clamp(view.zoom * std::pow(kWheelZoomStep, io.MouseWheel), kMinZoom, kMaxZoom);
    const ImVec2 m(io.MousePos.x - (p0.x + size.x / 2), io.MousePos.y - (p0.y + size.y / 2));
    const float k = view.zoom / old_zoom;
    view.pan = ImVec2(m.x - (m.x - view.pan.x) * k, m.y - (m.y - view.pan.y) * k);
  }
  if (ImGui::IsItemActive() && (ImGui::IsMouseDragging(ImGuiMouseButton_Right, 0.0f) ||
                                ImGui::IsMouseDragging(ImGuiMouseButton_Middle, 0.0f))) {
    view.pan.x += io.MouseDelta.x;
    view.pan.y += io.MouseDelta.y;
  }
  if (ev.hovered && ImGui::IsMouseDoubleClicked(ImGuiMouseButton_Right)) view.fit_pending = true;

  // Strokes.
  if (ImGui::IsItemActivated() && ImGui::IsMouseClicked(ImGuiMouseButton_Left) && !history.drawing()) {
    history.begin_stroke(to_canvas(io.MousePos), brush.radius, brush.eraser);
    view.mouse_stroke = true;
    ev.pen_down = true;
  } else if (view.mouse_stroke && history.drawing() && ImGui::IsItemActive() && ImGui::IsMouseDown(ImGuiMouseButton_Left)) {
    const uint64_t before = history.revision();
    history.extend_stroke(to_canvas(io.MousePos));
    ev.pen_moved = history.revision() != before;
  }
  if (view.mouse_stroke && !ImGui::IsMouseDown(ImGuiMouseButton_Left)) {
    if (history.drawing()) {
      history.end_stroke();
      ev.pen_up = true;
    }
    view.mouse_stroke = false;
  }

  // Picture, clipped to the pane.
  const ImVec2 half(canvas_w * view.zoom / 2, canvas_h * view.zoom / 2);
  const ImVec2 c0(centre.x - half.x, centre.y - half.y), c1(centre.x + half.x, centre.y + half.y);
  dl->PushClipRect(p0, p1, true);
  draw_framed_picture(dl, texture, p0, p1, c0, c1);
  if (ev.hovered || history.drawing()) {  // brush outline
    const float r = std::max(brush.radius * view.zoom, 1.5f);
    dl->AddCircle(io.MousePos, r, brush.eraser ? IM_COL32(255, 120, 120, 220) : IM_COL32(80, 160, 255, 220), 32, 1.5f);
  }
  dl->PopClipRect();
  return ev;
}

}  // namespace sprint::ui
