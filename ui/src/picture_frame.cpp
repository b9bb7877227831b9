#include "sprint/ui/picture_frame.h"

#include <algorithm>

namespace sprint::ui {

namespace {

constexpr float kShadowOffset = 4.0f;
constexpr ImU32 kShadow = IM_COL32(0, 0, 0, 90);
constexpr ImU32 kOutline = IM_COL32(90, 95, 110, 255);

void fill(ImDrawList* dl, ImVec2 a, ImVec2 b, ImU32 col) {
  if (b.x > a.x && b.y > a.y) dl->AddRectFilled(a, b, col);
}

}  // namespace

void fill_around(ImDrawList* dl, ImVec2 p0, ImVec2 p1, ImVec2 h0, ImVec2 h1, ImU32 col) {
  // The hole, clipped to the rectangle; an empty hole leaves the whole rectangle.
  h0 = ImVec2(std::clamp(h0.x, p0.x, p1.x), std::clamp(h0.y, p0.y, p1.y));
  h1 = ImVec2(std::clamp(h1.x, p0.x, p1.x), std::clamp(h1.y, p0.y, p1.y));
  if (h1.x <= h0.x || h1.y <= h0.y) {
    fill(dl, p0, p1, col);
    return;
  }
  fill(dl, p0, ImVec2(p1.x, h0.y), col);                 // above
  fill(dl, ImVec2(p0.x, h1.y), p1, col);                 // below
  fill(dl, ImVec2(p0.x, h0.y), ImVec2(h0.x, h1.y), col);  // left
  fill(dl, ImVec2(h1.x, h0.y), ImVec2(p1.x, h1.y), col);  // right
}

void draw_framed_picture(ImDrawList* dl, ImTextureID texture, ImVec2 p0, ImVec2 p1, ImVec2 c0, ImVec2 c1) {
  fill_around(dl, p0, p1, c0, c1, kPaneBackground);
  const float o = kShadowOffset;
  fill(dl, ImVec2(c1.x, c0.y + o), ImVec2(c1.x + o, c1.y + o), kShadow);  // right edge, with the corner
  fill(dl, ImVec2(c0.x + o, c1.y), ImVec2(c1.x, c1.y + o), kShadow);      // bottom edge
  dl->AddImage(texture, c0, c1);
  dl->AddRect(c0, c1, kOutline);
}

}  // namespace sprint::ui
