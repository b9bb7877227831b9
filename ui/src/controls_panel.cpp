#include "sprint/ui/controls_panel.h"

#include <algorithm>

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

// A slider on a double setting, two decimals shown (and kept: ImGui rounds the value to the format).
bool slider_double(const char* id, double& value, double min, double max) {
  return ImGui::SliderScalar(id, ImGuiDataType_Double, &value, &min, &max, "%.2f");
}

}  // namespace

bool draw_import_row(ControlsState& s, bool importing) {
  static const char* kModes[] = {"auto", "sketch (dark lines)", "picture (flat colours)", "photo (edges)"};
  ImGui::InputTextWithHint("##import_path", "picture (PNG, JPEG, WebP, BMP, TIFF) path (or drop a file on the window)",
                           &s.import_path);
  ImGui::PushItemWidth(ImGui::GetContentRegionAvail().x * 0.6f);
  ImGui::Combo("##import_mode", &s.import_mode, kModes, IM_ARRAYSIZE(kModes));
  ImGui::PopItemWidth();
  ImGui::SameLine();
  ImGui::BeginDisabled(importing || s.import_path.empty());
  const bool go = ImGui::Button(importing ? "Importing..." : "Import", ImVec2(-1, 0));
  ImGui::EndDisabled();
  return go;
}

ControlsActions draw_controls_panel(ControlsState& s, const ControlsInfo& info) {
  ControlsActions a;
  ImGui::PushItemWidth(-1);

  GenerationSettings& g = s.settings;
  section("Prompt");
  a.settings_changed |= ImGui::InputTextMultiline("##prompt", &g.prompt, ImVec2(-1, ImGui::GetTextLineHeight() * 5));

  section("Sampling");
  ImGui::TextUnformatted("Steps");
  a.settings_changed |= ImGui::SliderInt("##steps", &g.steps, 1, 4);
  ImGui::TextUnformatted("Guidance");
  a.settings_changed |= slider_double("##guidance", g.guidance, 0.0, 10.0);
  if (info.has_controlnet) {
    ImGui::TextUnformatted("ControlNet scale");
    a.settings_changed |= slider_double("##control_scale", g.control_scale, 0.0, 2.0);
    ImGui::TextUnformatted("Scribble thickness");
    a.settings_changed |= ImGui::SliderInt("##thickness", &g.thickness, 0, 4);
  } else {
    ImGui::TextDisabled("model has no controlnet/: text only");
  }
  ImGui::Checkbox("Fast drafts while drawing", &s.adaptive_steps);
  if (ImGui::IsItemHovered())
    ImGui::SetTooltip("When a frame takes longer than the budget, draw with 1 step and refine on pause");

  section("Seed");
  ImGui::PushItemWidth(ImGui::GetContentRegionAvail().x * 0.45f);
  a.settings_changed |= ImGui::InputScalar("##seed", ImGuiDataType_U64, &g.seed);
  g.seed = std::min<uint64_t>(g.seed, (uint64_t{1} << 63) - 1);  // seeds are 0 to 2^63 - 1 wherever they are read
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

  section("Import image");
  a.import_image = draw_import_row(s, info.importing);

  section("Model");
  ImGui::TextWrapped("%s", info.model);
  ImGui::Text("%d x %d", info.width, info.height);
  if (info.canvas_width > 0 && (info.canvas_width != info.width || info.canvas_height != info.height))
    ImGui::TextDisabled("sketch canvas %d x %d", info.canvas_width, info.canvas_height);
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
