// The history strip: thumbnails of the last generated frames (newest first), one click to pick one.
#pragma once

#include <imgui.h>

#include <string>
#include <vector>

namespace sprint::ui {

struct HistoryThumb {
  ImTextureID texture = nullptr;
  int width = 0, height = 0;  // picture size (the thumbnail keeps its aspect)
  std::string tooltip;        // e.g. prompt, seed, steps
};

struct HistoryStripActions {
  int clicked = -1;   // index into the thumbs list, -1 = none
  bool export_selected = false;
};

// Height the strip takes for thumbnails of `thumb_px` (callers reserve it).
float history_strip_height(float thumb_px);

// Draws the strip in a `size` region (width: available when 0). `selected` is highlighted (-1: none).
HistoryStripActions draw_history_strip(const char* id, const std::vector<HistoryThumb>& thumbs, int selected,
                                       float thumb_px, ImVec2 size = ImVec2(0, 0));

}  // namespace sprint::ui
