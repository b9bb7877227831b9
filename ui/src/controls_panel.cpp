#include "sprint/ui/controls_panel.h"

#include <imgui.h>
#include <imgui_stdlib.h>

namespace sprint::ui {

namespace {

void section(const char* title) {
  ImGui::Spacing();
  ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(0.55f, 0.75f, 1.0f, 1.0f));
  ImGui::TextUnformatted(title);
  ImGui::PopStyleColor();
  ImGui::Separator();
}

}  // namespace

ControlsActions draw_controls_panel(ControlsState& s, const ControlsInfo& info) {
  ControlsActions a;
  ImGui::PushItemWidth(-1);

  section("Prompt");
  a.settings_changed |= ImGui::InputTextMultiline("##prompt", &s.prompt, ImVec2(-1, ImGui::GetTextLineHeight() * 5));

  section("Sampling");
  ImGui::TextUnformatted("Steps");
  a.settings_changed |= ImGui::SliderInt("##steps", &s.steps, 1, 4);
  ImGui::TextUnformatted("Guidance");
  a.settings_changed |= ImGui::SliderFloat("##guidance", &s.guidance, 0.0f, 10.0f, "%.2f");
  if (info.has_controlnet) {
    ImGui::TextUnformatted("ControlNet scale");
    a.settings_changed |= ImGui::SliderFloat("##control_scale", &s.control_scale, 0.0f, 2.0f, "%.2f");
    ImGui::TextUnformatted("Scribble thickness");
    a.settings_changed |= ImGui::SliderInt("##thickness", &s.thickness, 0, 4);
  } else {
    ImGui::TextDisabled("model has no controlnet/: text only");
  }

  section("Seed");
  ImGui::PushItemWidth(ImGui::GetContentRegionAvail().x * 0.45f);
  a.settings_changed |= ImGui::InputScalar("##seed", ImGuiDataType_U64, &s.seed);
  ImGui::PopItemWidth();
  ImGui::SameLine();
  ImGui::Checkbox("Lock", &s.seed_locked);
  ImGui::SameLine();
  a.randomise_seed = ImGui::Button("Random");

  section("Brush");
  bool eraser = s.brush.eraser;
  if (ImGui::RadioButton("Brush", !eraser)) s.brush.eraser = false;
  ImGui::SameLine();
  if (ImGui::RadioButton("Eraser", eraser)) s.brush.eraser = true;
  ImGui::TextUnformatted("Size (px)");
  ImGui::SliderFloat("##radius", &s.brush.radius, 0.5f, 64.0f, "%.1f", ImGuiSliderFlags_Logarithmic);

  section("Canvas");
  ImGui::BeginDisabled(!info.can_undo);
  a.undo = ImGui::Button("Undo");
  ImGui::EndDisabled();
  ImGui::SameLine();
  ImGui::BeginDisabled(!info.can_redo);
  a.redo = ImGui::Button("Redo");
  ImGui::EndDisabled();
  ImGui::SameLine();
  a.clear = ImGui::Button("Clear");
  ImGui::Checkbox("Show condition map", &s.show_condition);
  a.save_output = ImGui::Button("Save output PNG", ImVec2(-1, 0));

  section("Model");
  ImGui::TextWrapped("%s", info.model);
  ImGui::Text("%d x %d", info.width, info.height);
  ImGui::TextWrapped("%s", info.device);
  if (info.error && *info.error) {
    ImGui::Spacing();
    ImGui::PushStyleColor(ImGuiCol_Text, ImVec4(1.0f, 0.45f, 0.4f, 1.0f));
    ImGui::TextWrapped("%s", info.error);
    ImGui::PopStyleColor();
  }
  ImGui::PopItemWidth();
  return a;
}

}  // namespace sprint::ui
