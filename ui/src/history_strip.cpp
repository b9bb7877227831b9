#include "sprint/ui/history_strip.h"

#include <algorithm>

namespace sprint::ui {

float history_strip_height(float thumb_px) {
  return thumb_px + ImGui::GetFrameHeightWithSpacing() + ImGui::GetStyle().ScrollbarSize + 12;
}

HistoryStripActions draw_history_strip(const char* id, const std::vector<HistoryThumb>& thumbs, int selected,
                                       float thumb_px, ImVec2 size) {
  HistoryStripActions a;
  if (size.x <= 0) size.x = ImGui::GetContentRegionAvail().x;
  if (size.y <= 0) size.y = history_strip_height(thumb_px);
  ImGui::PushID(id);
  ImGui::TextUnformatted("History");
  ImGui::SameLine();
  ImGui::TextDisabled("(%zu)  click: show + restore settings", thumbs.size());
  ImGui::SameLine();
  ImGui::BeginDisabled(selected < 0 || selected >= static_cast<int>(thumbs.size()));
  a.export_selected = ImGui::SmallButton("Export selected PNG");
  ImGui::EndDisabled();
  ImGui::BeginChild("strip", ImVec2(size.x, size.y - ImGui::GetFrameHeightWithSpacing()), true,
                    ImGuiWindowFlags_HorizontalScrollbar);
  if (thumbs.empty()) ImGui::TextDisabled("final frames appear here when you pause");
  for (size_t i = 0; i < thumbs.size(); ++i) {
    const HistoryThumb& t = thumbs[i];
    if (i > 0) ImGui::SameLine();
    ImGui::PushID(static_cast<int>(i));
    const float k = thumb_px / std::max(1, std::max(t.width, t.height));
    const ImVec2 sz(std::max(8.0f, t.width * k), std::max(8.0f, t.height * k));
    const bool is_selected = static_cast<int>(i) == selected;
    if (is_selected) ImGui::PushStyleColor(ImGuiCol_Button, ImVec4(0.35f, 0.60f, 0.95f, 1.0f));
    if (ImGui::ImageButton(t.texture, sz, ImVec2(0, 0), ImVec2(1, 1), 2)) a.clicked = static_cast<int>(i);
    if (is_selected) ImGui::PopStyleColor();
    if (ImGui::IsItemHovered() && !t.tooltip.empty()) ImGui::SetTooltip("%s", t.tooltip.c_str());
    ImGui::PopID();
  }
  ImGui::EndChild();
  ImGui::PopID();
  return a;
}

}  // namespace sprint::ui
