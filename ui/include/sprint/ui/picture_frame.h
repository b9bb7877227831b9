// Drawing a picture inside a pane with as little overdraw as possible. Under Xvfb the GL driver is a software
// rasteriser (llvmpipe), where every blended pixel costs CPU time the model needs: a pane background and a shadow
// rectangle under each picture filled its pixels three times. Filling the background only around the picture and the
// shadow only where it shows (with the main window drawing no background of its own) took the idle 1600x900 UI frame
// from p50 34 ms to 19 ms, measured with a training run busy on one of the 2 cores.
#pragma once

#include <imgui.h>

namespace sprint::ui {

constexpr ImU32 kPaneBackground = IM_COL32(30, 32, 38, 255);

// Fills [p0, p1] minus the hole [h0, h1] (the hole may reach outside [p0, p1]) with at most four rectangles.
void fill_around(ImDrawList* dl, ImVec2 p0, ImVec2 p1, ImVec2 h0, ImVec2 h1, ImU32 col);

// The picture `texture` at [c0, c1] in the pane [p0, p1]: pane background around it, a 4 px drop shadow to the right
// and below, the picture, and a thin outline. The caller clips to the pane.
void draw_framed_picture(ImDrawList* dl, ImTextureID texture, ImVec2 p0, ImVec2 p1, ImVec2 c0, ImVec2 c1);

}  // namespace sprint::ui
