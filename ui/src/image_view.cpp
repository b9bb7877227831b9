#include "sprint/ui/image_view.h"

#include "sprint/ui/picture_frame.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace sprint::ui {

namespace {

constexpr ImU32 kOverlayPlate = IM_COL32(10, 12, 16, 200);  // dark plate under text drawn over a picture

double ema(double old, double sample) { return old == 0 ? sample : old + kHudEmaAlpha * (sample - old); }

void draw_spinner(ImDrawList* dl, ImVec2 centre, float radius, double t) {
  constexpr int kSegments = 24;
  const float start = static_cast<float>(t * 6.0);
  dl->PathClear();
  for (int i = 0; i <= kSegments; ++i) {
    const float a = start + i * (4.2f / kSegments);
    dl->PathLineTo(ImVec2(centre.x + std::cos(a) * radius, centre.y + std::sin(a) * radius));
  }
  dl->PathStroke(IM_COL32(120, 190, 255, 255), false, 3.0f);
}

// Four lines: headline latency and rate, the per-stage split, and the live-loop counters.
constexpr int kHudLines = 5;

void draw_hud(ImDrawList* dl, ImVec2 at, const LatencyHud& h) {
  char lines[kHudLines][128];
  std::snprintf(lines[0], sizeof lines[0], "%.1f ms/frame   %.1f frames/s%s", h.total_ms, h.gen_fps,
                h.draft_steps > 0 ? "   (drafting while drawing)" : "");
  std::snprintf(lines[1], sizeof lines[1], "tokenize %.1f  text %.1f%s  scribble %.1f  condition %.1f%s", h.tokenize_ms,
                h.text_encoder_ms, h.prompt_cached ? "*" : "", h.scribble_ms, h.condition_ms, h.condition_cached ? "*" : "");
  std::snprintf(lines[2], sizeof lines[2], "transformer %.1f  decode %.1f  upload %.1f   (ms, * cached)", h.transformer_ms,
                h.decode_ms, h.upload_ms);
  std::snprintf(lines[3], sizeof lines[3], "UI %.1f ms   done %llu  dropped %llu  skipped %llu", h.frame_ms,
                static_cast<unsigned long long>(h.frames), static_cast<unsigned long long>(h.dropped),
                static_cast<unsigned long long>(h.skipped));
  std::snprintf(lines[4], sizeof lines[4], "UI p50 %.1f p99 %.1f   input-to-photon p50 %.0f p99 %.0f ms%s", h.ui_p50_ms,
                h.ui_p99_ms, h.photon_p50_ms, h.photon_p99_ms, h.draft_steps > 0 ? "   drafts" : "");
  const float lh = ImGui::GetTextLineHeight();
  float w = 0;
  for (const auto& l : lines) w = std::max(w, ImGui::CalcTextSize(l).x);
  dl->AddRectFilled(at, ImVec2(at.x + w + 16, at.y + kHudLines * lh + 12), kOverlayPlate, 4.0f);
  for (int i = 0; i < kHudLines; ++i)
    dl->AddText(ImVec2(at.x + 8, at.y + 6 + i * lh), i == 0 ? IM_COL32(255, 255, 255, 255) : IM_COL32(175, 185, 200, 255),
                lines[i]);
}

}  // namespace

float hud_height() { return kHudLines * ImGui::GetTextLineHeight() + 12; }

void hud_record_ui_frame(LatencyHud& hud, double frame_ms) { hud.frame_ms = ema(hud.frame_ms, frame_ms); }

void hud_record_result(LatencyHud& hud, double now_s) {
  if (hud.last_result_s >= 0 && now_s > hud.last_result_s) hud.gen_fps = ema(hud.gen_fps, 1.0 / (now_s - hud.last_result_s));
  hud.last_result_s = now_s;
}

void draw_image_view(const char* id, ImTextureID texture, int width, int height, const ImageViewOverlay& overlay,
                     const LatencyHud& hud, ImVec2 size) {
  if (size.x <= 0 || size.y <= 0) size = ImGui::GetContentRegionAvail();
  size.x = std::max(size.x, 32.0f);
  size.y = std::max(size.y, 32.0f);
  const ImVec2 p0 = ImGui::GetCursorScreenPos();
  const ImVec2 p1(p0.x + size.x, p0.y + size.y);
  ImGui::InvisibleButton(id, size);
  ImDrawList* dl = ImGui::GetWindowDrawList();
  dl->PushClipRect(p0, p1, true);
  // The HUD gets a strip at the bottom of the pane so it never covers the picture (unless the pane is tiny).
  const float hud_h = overlay.show_hud ? hud_height() + 8 : 0.0f;
  const float img_h = std::max(size.y - hud_h, size.y * 0.5f);
  if (texture && width > 0 && height > 0) {
    const float zoom = 0.96f * std::min(size.x / width, img_h / height);
    const ImVec2 c((p0.x + p1.x) / 2, p0.y + img_h / 2);
    const ImVec2 c0(c.x - width * zoom / 2, c.y - height * zoom / 2), c1(c.x + width * zoom / 2, c.y + height * zoom / 2);
    draw_framed_picture(dl, texture, p0, p1, c0, c1);
  } else {
    dl->AddRectFilled(p0, p1, kPaneBackground);
    const char* msg = "no output yet";
    const ImVec2 ts = ImGui::CalcTextSize(msg);
    dl->AddText(ImVec2(p0.x + (size.x - ts.x) / 2, p0.y + (size.y - ts.y) / 2), IM_COL32(160, 160, 170, 255), msg);
  }
  if (overlay.caption && *overlay.caption) {  // on a dark plate: it must stay readable over a white picture
    const ImVec2 at(p0.x + 10, p0.y + 8), ts = ImGui::CalcTextSize(overlay.caption);
    dl->AddRectFilled(ImVec2(at.x - 4, at.y - 2), ImVec2(at.x + ts.x + 4, at.y + ts.y + 2), kOverlayPlate, 3.0f);
    dl->AddText(at, IM_COL32(200, 205, 215, 255), overlay.caption);
  }
  if (overlay.busy) {
    draw_spinner(dl, ImVec2(p1.x - 22, p0.y + 22), 10.0f, ImGui::GetTime());
    const char* msg = "generating";
    dl->AddText(ImVec2(p1.x - 40 - ImGui::CalcTextSize(msg).x, p0.y + 14), IM_COL32(120, 190, 255, 255), msg);
  }
  if (overlay.show_hud) draw_hud(dl, ImVec2(p0.x + 8, p1.y - hud_h), hud);
  dl->PopClipRect();
}

}  // namespace sprint::ui
